//! Integration-test harness: two throw-away PostgreSQL clusters (source and target), an isolated
//! database pair per test, the real `gptransfer` binary run with a hard timeout, and insta
//! snapshots of its output with the unstable parts filtered out.
//!
//! Every test file uses it with `mod support;`. A typical test:
//!
//! ```ignore
//! mod support;
//! use support::TestEnv;
//!
//! #[test]
//! fn plan_lists_due_windows() {
//!     let env = TestEnv::new("plan_lists_due_windows");
//!     env.src.psql(&env.db, "CREATE TABLE t (id int, ts timestamp)");
//!     env.write_config(r#"
//!         [clusters.src]
//!         url = "{SRC_URL}"
//!         password_env = "GPT_SRC_PASSWORD"
//!     "#);
//!     cli_snapshot!(env.run(&["plan"]));
//! }
//! ```
//!
//! The clusters are started by `scripts/pg-cluster.sh` the first time a test asks for them and
//! stopped by a detached watchdog once the test run ends (a `static` is never dropped, so a
//! `Drop` impl could not do it). Under cargo-nextest, which runs every test in its own process,
//! all processes of one run share one pair of clusters instead of paying two `initdb` per test.
//!
//! Nothing here ever skips: a missing PostgreSQL installation is a test failure with a message
//! saying what to install.
#![allow(dead_code)] // not every test file uses every helper
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test helper reports

pub mod canonical;
pub mod compared;
pub mod day_job;
pub mod fact;
pub mod files;
pub mod held;
pub mod proxy;
pub mod runs;
pub mod sshd;
pub mod stallfs;

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_gptransfer");
/// Environment variable holding the source cluster's password for role `gpt`, set by [`TestEnv::run`].
pub const SRC_PASSWORD_ENV: &str = "GPT_SRC_PASSWORD";
/// Environment variable holding the target cluster's password for role `gpt`, set by [`TestEnv::run`].
pub const DST_PASSWORD_ENV: &str = "GPT_DST_PASSWORD";
/// Hard limit for one run of the binary: a hung run must fail the test, not stall the suite.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

const PG_CLUSTER_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster.sh");
/// How long a test process waits for another process of the same nextest run to start the clusters.
const SHARED_START_TIMEOUT: Duration = Duration::from_secs(180);

/// Filters applied to every snapshot after the per-environment ones (paths, ports, database).
/// Order matters: insta applies them one after the other. Add new generic filters here.
pub const GENERIC_FILTERS: &[(&str, &str)] = &[
    (r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:\d\d)?)?", "[TIMESTAMP]"),
    // Elapsed times are printed with decimals (`1.23s`, `0.45 s`, `12.5ms`); configured
    // durations such as `90s` or `1h30m` are whole numbers and stay visible on purpose.
    (r"\b\d+\.\d+ ?(s|ms|µs|us)\b", "[ELAPSED]"),
];

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// Which server a [`Pg`] is: the PostgreSQL 15 pair, a real Greenplum 4.3, 6 or 7 cluster
/// (master + 2 segments) or a real PostgreSQL 8.2 server (GP4's SQL kernel alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pg15,
    Gp4,
    Gp6,
    Gp7,
    Pg82,
}

impl Kind {
    /// A Greenplum cluster (master and segments, superuser `gpadmin`).
    pub fn is_greenplum(self) -> bool {
        matches!(self, Kind::Gp4 | Kind::Gp6 | Kind::Gp7)
    }

    /// On the PostgreSQL 8.2 kernel (GP4 and plain 8.2): no string_agg, old settings.
    pub fn is_82(self) -> bool {
        matches!(self, Kind::Gp4 | Kind::Pg82)
    }
}

/// One running PostgreSQL cluster.
#[derive(Debug, Clone)]
pub struct Pg {
    /// `source`, `target`, `gp4`, `gp6`, `gp7` or `pg82`.
    pub name: String,
    pub kind: Kind,
    /// TCP port on 127.0.0.1 (a Greenplum cluster's master; its segments listen on the next ports).
    pub port: u16,
    /// Unix socket directory, where the superuser is trusted (the cluster directory for the
    /// PostgreSQL 15 pair, `/tmp` for Greenplum and 8.2).
    pub socket_dir: PathBuf,
    /// The cluster's data directory (the socket directory for the PostgreSQL 15 pair).
    pub data_dir: PathBuf,
    /// Password of role `gpt` (superuser, password login over TCP only).
    pub password: String,
}

/// The source and target clusters shared by all tests of a run.
#[derive(Debug)]
pub struct Clusters {
    pub source: Pg,
    pub target: Pg,
    /// Directory holding both clusters and the tests' directories; removed by the watchdog at
    /// the end of the run.
    pub base_dir: PathBuf,
}

static CLUSTERS: LazyLock<Result<Clusters, String>> = LazyLock::new(start_clusters);

/// The clusters, started on first use. Panics with the reason when they cannot be started.
pub fn clusters() -> &'static Clusters {
    match &*CLUSTERS {
        Ok(clusters) => clusters,
        Err(message) => panic!("test clusters unavailable: {message}"),
    }
}

impl Pg {
    /// URL for the tool: role `gpt` over TCP; the password travels by environment variable.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://gpt@127.0.0.1:{}/{db}", self.port)
    }

    /// A superuser connection over the Unix socket. Must be called inside a tokio runtime: the
    /// connection task is spawned on it.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(self.admin_user())
            .dbname(db)
            .application_name("gptransfer-tests")
            .connect_timeout(Duration::from_secs(10))
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("admin connection to {} db {db}: {e}", self.name));
        tokio::spawn(async move {
            // Errors surface on the client side; nothing to do with them here.
            let _ = connection.await;
        });
        client
    }

    /// Runs `sql` (any number of statements) with psql as superuser over the socket and returns
    /// the unaligned, tuples-only output without its final newline. Panics on any SQL error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Pg::psql`], but returns the error text instead of panicking.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let psql = pg_binary("psql")?;
        let mut cmd = Command::new(psql);
        // SQL goes through stdin, not `-c`, so that several statements run one by one (a `-c`
        // string is one implicit transaction, where e.g. CREATE DATABASE is refused).
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]).arg("-h").arg(&self.socket_dir).args([
            "-p",
            &self.port.to_string(),
            "-U",
            self.admin_user(),
            "-d",
            db,
        ]);
        scrub_pg_env(&mut cmd);
        let output =
            run_with_stdin(&mut cmd, sql.as_bytes()).map_err(|e| format!("psql on {} db {db}: {e}", self.name))?;
        if !output.status.success() {
            return Err(format!(
                "psql on {} db {db} failed ({}):\n{}\n--- sql\n{sql}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE {}", quote_ident(name)));
    }

    pub fn drop_db(&self, name: &str) {
        self.try_drop_db(name).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Drops a database, first ending the sessions a test may have left in it (a killed run, a
    /// spawned admin client).
    pub fn try_drop_db(&self, name: &str) -> Result<String, String> {
        match self.kind {
            Kind::Pg15 => {
                self.try_psql("postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
            }
            // No WITH (FORCE) before PostgreSQL 13; 9.4 names the column pid.
            Kind::Gp6 | Kind::Gp7 => self.try_psql(
                "postgres",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = {lit};\n\
                     DROP DATABASE IF EXISTS {ident}",
                    lit = quote_literal(name),
                    ident = quote_ident(name)
                ),
            ),
            // 8.2 has no pg_terminate_backend: a session left behind keeps its database.
            Kind::Gp4 | Kind::Pg82 => {
                self.try_psql("postgres", &format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
            }
        }
    }

    /// The superuser trusted on the socket.
    pub fn admin_user(&self) -> &'static str {
        match self.kind {
            Kind::Gp4 | Kind::Gp6 | Kind::Gp7 => "gpadmin",
            Kind::Pg15 | Kind::Pg82 => "postgres",
        }
    }
}

/// Quotes an SQL string literal (standard_conforming_strings off on 8.2 makes `\` special: E'').
pub fn quote_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Starts the clusters, or joins the ones another process of the same nextest run started.
fn start_clusters() -> Result<Clusters, String> {
    // Fail early and clearly when PostgreSQL is not installed.
    for tool in ["initdb", "pg_ctl", "psql"] {
        pg_binary(tool)?;
    }
    match std::env::var("NEXTEST_RUN_ID") {
        // nextest: one process per test. The first one creates the run's directory and starts
        // the clusters; the others wait for its `ready` file. The clusters live until the
        // nextest runner (our parent) exits.
        Ok(run_id) if !run_id.is_empty() => {
            let base = PathBuf::from(format!("/tmp/gptransfer-tests-{run_id}"));
            match fs::create_dir(&base) {
                Ok(()) => start_in(&base, std::os::unix::process::parent_id()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => wait_for_shared(&base),
                Err(e) => Err(format!("cannot create {}: {e}", base.display())),
            }
        }
        // cargo test: one process per test binary, which owns its clusters.
        _ => {
            let base = loop {
                let base =
                    PathBuf::from(format!("/tmp/gptransfer-tests-{}-{:08x}", std::process::id(), random_u64() as u32));
                match fs::create_dir(&base) {
                    Ok(()) => break base,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(format!("cannot create {}: {e}", base.display())),
                }
            };
            start_in(&base, std::process::id())
        }
    }
}

/// Starts both clusters under `base`; they are stopped and `base` removed once `owner_pid` exits.
fn start_in(base: &Path, owner_pid: u32) -> Result<Clusters, String> {
    let result = try_start_in(base, owner_pid);
    if let Err(message) = &result {
        // Tell the processes waiting on us why there is nothing to wait for.
        let _ = write_atomically(&base.join("failed"), message);
    }
    result
}

fn try_start_in(base: &Path, owner_pid: u32) -> Result<Clusters, String> {
    // The clusters run as OS user postgres, which must be able to traverse `base`.
    fs::set_permissions(base, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", base.display()))?;
    let source_dir = base.join("source");
    let target_dir = base.join("target");
    // The watchdog comes first, so that a failure half-way still cleans up.
    spawn_watchdog(owner_pid, &[&source_dir, &target_dir], base)?;
    let mut ports = free_ports(2)?.into_iter();
    let (source_port, target_port) = (ports.next().unwrap(), ports.next().unwrap());
    let source_password = format!("gpt-src-{:016x}", random_u64());
    let target_password = format!("gpt-dst-{:016x}", random_u64());
    // Both initdb's at once: they are the slowest part of a test run's start.
    let (source, target) = thread::scope(|s| {
        let source = s.spawn(|| start_one("source", &source_dir, source_port, &source_password));
        let target = s.spawn(|| start_one("target", &target_dir, target_port, &target_password));
        (join(source), join(target))
    });
    let clusters = Clusters { source: source?, target: target?, base_dir: base.to_path_buf() };
    write_atomically(&base.join("ready"), &clusters_to_text(&clusters))?;
    eprintln!(
        "test clusters: source 127.0.0.1:{} target 127.0.0.1:{} in {}",
        clusters.source.port,
        clusters.target.port,
        base.display()
    );
    Ok(clusters)
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    handle.join().unwrap_or_else(|_| Err("cluster start thread panicked".to_string()))
}

/// Starts one cluster, retrying on a new port when another process took ours in the meantime.
fn start_one(name: &str, dir: &Path, first_port: u16, password: &str) -> Result<Pg, String> {
    let mut port = first_port;
    for attempt in 1..=5 {
        let output = Command::new("bash")
            .arg(PG_CLUSTER_SH)
            .args(["start"])
            .arg(dir)
            .args([&port.to_string(), password])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {PG_CLUSTER_SH}: {e}"))?;
        if output.status.success() {
            return Ok(Pg {
                name: name.to_string(),
                kind: Kind::Pg15,
                port,
                socket_dir: dir.to_path_buf(),
                data_dir: dir.to_path_buf(),
                password: password.to_string(),
            });
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if attempt < 5 && stderr.contains("already in use") {
            port = free_ports(1)?[0];
            continue;
        }
        return Err(format!(
            "pg-cluster.sh start {} {port} failed ({}):\n{}",
            dir.display(),
            output.status,
            stderr.trim_end()
        ));
    }
    unreachable!("the last attempt returns")
}

/// Detached (own session, no stdio) so that neither Ctrl+C nor nextest's process-group kill
/// reaches it, and nextest does not wait on it as a leaked process holding the test's pipes.
fn spawn_watchdog(owner_pid: u32, cluster_dirs: &[&Path], base: &Path) -> Result<(), String> {
    let script = r#"
        owner=$1 script=$2 base=$3; shift 3
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        for dir in "$@"; do bash "$script" stop "$dir"; done
        rm -rf "$base"
    "#;
    Command::new("setsid")
        .args(["bash", "-c", script, "gptransfer-test-watchdog"])
        .arg(owner_pid.to_string())
        .arg(PG_CLUSTER_SH)
        .arg(base)
        .args(cluster_dirs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot spawn the cluster watchdog (setsid bash): {e}"))
}

fn wait_for_shared(base: &Path) -> Result<Clusters, String> {
    let deadline = Instant::now() + SHARED_START_TIMEOUT;
    loop {
        if let Ok(text) = fs::read_to_string(base.join("ready")) {
            return clusters_from_text(&text, base);
        }
        if let Ok(message) = fs::read_to_string(base.join("failed")) {
            return Err(message);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "another test process did not start the clusters in {} within {SHARED_START_TIMEOUT:?}",
                base.display()
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn clusters_to_text(c: &Clusters) -> String {
    let mut text = String::new();
    for pg in [&c.source, &c.target] {
        let _ = writeln!(text, "{} {} {}", pg.name, pg.port, pg.password);
    }
    text
}

fn clusters_from_text(text: &str, base: &Path) -> Result<Clusters, String> {
    let parse = |name: &str| -> Result<Pg, String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .ok_or_else(|| format!("no {name} in {}/ready", base.display()))?;
        let mut fields = line.split(' ').skip(1);
        let port = fields.next().and_then(|p| p.parse().ok());
        let password = fields.next();
        match (port, password) {
            (Some(port), Some(password)) => Ok(Pg {
                name: name.to_string(),
                kind: Kind::Pg15,
                port,
                socket_dir: base.join(name),
                data_dir: base.join(name),
                password: password.to_string(),
            }),
            _ => Err(format!("bad line in {}/ready: {line}", base.display())),
        }
    };
    Ok(Clusters { source: parse("source")?, target: parse("target")?, base_dir: base.to_path_buf() })
}

/// Ports free right now. Held together while choosing so that the same port is not returned twice.
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// The first of `n` consecutive ports free right now, below the kernel's ephemeral range
/// (32768 on): a port range a test hands to gptransfer must not be taken meanwhile by the
/// client side of some connection, which a port from [`free_ports`] (an ephemeral one) and its
/// neighbours can be.
pub fn free_port_block(n: u16) -> Result<u16, String> {
    for _ in 0..500 {
        let first = 20000 + (random_u64() % (12000 - u64::from(n))) as u16;
        if (0..n).all(|i| TcpListener::bind(("0.0.0.0", first + i)).is_ok()) {
            return Ok(first);
        }
    }
    Err(format!("cannot find {n} consecutive free ports in 20000-31999"))
}

// ---------------------------------------------------------------------------------------------
// Real Greenplum 6 and PostgreSQL 8.2
// ---------------------------------------------------------------------------------------------

const GP_SERVER_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gp-server.sh");
/// A GP6 cluster's init (initdb of a master and two segments) takes ~25 s alone; on a loaded
/// 2-core machine with the whole suite running, several times that.
const GP_START_TIMEOUT: Duration = Duration::from_secs(600);

static GP4: OnceLock<Result<Pg, String>> = OnceLock::new();
static GP6: OnceLock<Result<Pg, String>> = OnceLock::new();
static GP7: OnceLock<Result<Pg, String>> = OnceLock::new();
static PG82: OnceLock<Result<Pg, String>> = OnceLock::new();

/// The real Greenplum 6 cluster (a master and 2 segments) of this test run, started on first
/// use and shared by every test of the run (each test in its own databases). Panics, never
/// skips, when it cannot start.
pub fn gp6() -> &'static Pg {
    match GP6.get_or_init(|| start_gp_server(Kind::Gp6)) {
        Ok(pg) => pg,
        Err(message) => panic!("real Greenplum 6 cluster unavailable: {message}"),
    }
}

/// The real Greenplum 7.0.0 cluster (a coordinator and 2 segments) of this test run; see [`gp6`].
pub fn gp7() -> &'static Pg {
    match GP7.get_or_init(|| start_gp_server(Kind::Gp7)) {
        Ok(pg) => pg,
        Err(message) => panic!("real Greenplum 7 cluster unavailable: {message}"),
    }
}

/// The real Greenplum 4.3.99 cluster (a master and 2 segments) of this test run; see [`gp6`].
pub fn gp4() -> &'static Pg {
    match GP4.get_or_init(|| start_gp_server(Kind::Gp4)) {
        Ok(pg) => pg,
        Err(message) => panic!("real Greenplum 4.3 cluster unavailable: {message}"),
    }
}

/// The real PostgreSQL 8.2 server (GP4's SQL kernel) of this test run; see [`gp6`].
pub fn pg82() -> &'static Pg {
    match PG82.get_or_init(|| start_gp_server(Kind::Pg82)) {
        Ok(pg) => pg,
        Err(message) => panic!("real PostgreSQL 8.2 server unavailable: {message}"),
    }
}

/// The GP6 install the harness uses (`GP6_HOME`, else the shared archives'): its gpload.
pub fn gp6_home() -> PathBuf {
    gp_home("GP6_HOME")
}

/// The GP7 install the harness uses (`GP7_HOME`, else the shared archives'): its gpload.
pub fn gp7_home() -> PathBuf {
    gp_home("GP7_HOME")
}

/// The GP4 install the harness uses (`GP4_HOME`, else the shared archives').
pub fn gp4_home() -> PathBuf {
    gp_home("GP4_HOME")
}

/// `var` (`GP6_HOME`, …) as `gp-server.sh homes` resolves it.
fn gp_home(var: &str) -> PathBuf {
    static HOMES: OnceLock<Result<String, String>> = OnceLock::new();
    let homes = HOMES.get_or_init(|| {
        let output = Command::new("bash")
            .arg(GP_SERVER_SH)
            .arg("homes")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {GP_SERVER_SH}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!("{GP_SERVER_SH} homes failed: {}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(stdout.into_owned())
    });
    let found = homes.as_ref().map_err(Clone::clone).and_then(|homes| {
        homes
            .lines()
            .find_map(|l| l.strip_prefix(var).and_then(|rest| rest.strip_prefix('=')))
            .map(PathBuf::from)
            .ok_or_else(|| format!("{GP_SERVER_SH} homes printed no {var}"))
    });
    found.unwrap_or_else(|message| panic!("no Greenplum install for {var}: {message}"))
}

fn kind_arg(kind: Kind) -> &'static str {
    match kind {
        Kind::Gp4 => "gp4",
        Kind::Gp6 => "gp6",
        Kind::Gp7 => "gp7",
        Kind::Pg82 => "pg82",
        Kind::Pg15 => unreachable!("the PostgreSQL 15 pair is started by start_clusters"),
    }
}

/// Starts the server, or joins the one another process of the same nextest run started (the
/// first process to create its directory starts it; the others wait for its `ready` file).
fn start_gp_server(kind: Kind) -> Result<Pg, String> {
    let name = kind_arg(kind);
    let (root, owner_pid) = match std::env::var("NEXTEST_RUN_ID") {
        Ok(run_id) if !run_id.is_empty() => {
            (PathBuf::from(format!("/tmp/gptransfer-gp-{run_id}")), std::os::unix::process::parent_id())
        }
        _ => (PathBuf::from(format!("/tmp/gptransfer-gp-{}", std::process::id())), std::process::id()),
    };
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    // gpadmin and postgres must traverse it.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", root.display()))?;
    let claim = root.join(format!("{name}.claim"));
    let dir = root.join(name);
    match fs::create_dir(&claim) {
        Ok(()) => {
            let result = try_start_gp_server(kind, &root, &dir, owner_pid);
            match &result {
                Ok(pg) => {
                    write_atomically(&root.join(format!("{name}.ready")), &format!("{} {}\n", pg.port, pg.password))?
                }
                Err(message) => {
                    let _ = write_atomically(&root.join(format!("{name}.failed")), message);
                }
            }
            result
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let deadline = Instant::now() + GP_START_TIMEOUT;
            loop {
                if let Ok(text) = fs::read_to_string(root.join(format!("{name}.ready"))) {
                    let mut fields = text.split_whitespace();
                    let port = fields.next().and_then(|p| p.parse().ok());
                    let password = fields.next();
                    return match (port, password) {
                        (Some(port), Some(password)) => Ok(gp_server(kind, port, &dir, password)),
                        _ => Err(format!("bad {}/{name}.ready: {text}", root.display())),
                    };
                }
                if let Ok(message) = fs::read_to_string(root.join(format!("{name}.failed"))) {
                    return Err(message);
                }
                if Instant::now() > deadline {
                    return Err(format!("another test process did not start {name} within {GP_START_TIMEOUT:?}"));
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => Err(format!("cannot create {}: {e}", claim.display())),
    }
}

fn gp_server(kind: Kind, port: u16, dir: &Path, password: &str) -> Pg {
    let data_dir = match kind {
        Kind::Gp4 | Kind::Gp6 | Kind::Gp7 => dir.join("master/gpseg-1"),
        _ => dir.join("data"),
    };
    Pg {
        name: kind_arg(kind).to_string(),
        kind,
        port,
        socket_dir: PathBuf::from("/tmp"),
        data_dir,
        password: password.to_string(),
    }
}

fn try_start_gp_server(kind: Kind, root: &Path, dir: &Path, owner_pid: u32) -> Result<Pg, String> {
    let name = kind_arg(kind);
    spawn_gp_watchdog(owner_pid, name, dir, root)?;
    let password = format!("gpt-{name}-{:016x}", random_u64());
    // A Greenplum cluster needs its master's port and the two after it (segments).
    let span = if kind.is_greenplum() { 3 } else { 1 };
    let mut last_error = String::new();
    // A bound port is retried up to 5 times; any other failure (seen: GP4's "DTM initialization:
    // failure during startup recovery" on a loaded machine) twice more, from a clean directory.
    let mut other_failures = 0;
    for _ in 0..5 {
        let port = free_port_range(span)?;
        let output = Command::new("bash")
            .arg(GP_SERVER_SH)
            .args(["start", name])
            .arg(dir)
            .args([&port.to_string(), &password])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {GP_SERVER_SH}: {e}"))?;
        if output.status.success() {
            let pg = gp_server(kind, port, dir, &password);
            eprintln!("test {name}: 127.0.0.1:{port} in {}", dir.display());
            return Ok(pg);
        }
        last_error = format!(
            "gp-server.sh start {name} {} {port} failed ({}):\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
        if !last_error.contains("already in use") && !last_error.contains("could not bind") {
            other_failures += 1;
            if other_failures > 2 {
                break;
            }
            eprintln!("test {name}: start failed, trying again from a clean directory:\n{last_error}");
        }
        let _ = Command::new("bash").arg(GP_SERVER_SH).args(["stop", name]).arg(dir).stdin(Stdio::null()).output();
        let _ = fs::remove_dir_all(dir);
    }
    Err(last_error)
}

/// `span` consecutive free ports, the first returned.
fn free_port_range(span: u16) -> Result<u16, String> {
    for _ in 0..100 {
        let first = free_ports(1)?[0];
        if first.checked_add(span).is_none() {
            continue;
        }
        let all_free = (0..span).all(|i| TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if all_free {
            return Ok(first);
        }
    }
    Err(format!("no {span} consecutive free ports found"))
}

/// Stops the server once `owner_pid` exits, then removes its files (see [`spawn_watchdog`]).
fn spawn_gp_watchdog(owner_pid: u32, kind: &str, dir: &Path, root: &Path) -> Result<(), String> {
    let script = r#"
        owner=$1 script=$2 kind=$3 dir=$4 root=$5
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        bash "$script" stop "$kind" "$dir"
        rm -rf "$dir" "$dir.log" "$root/$kind.claim" "$root/$kind.ready" "$root/$kind.failed"
        rmdir "$root" 2>/dev/null || true
    "#;
    Command::new("setsid")
        .args(["bash", "-c", script, "gptransfer-test-gp-watchdog"])
        .arg(owner_pid.to_string())
        .arg(GP_SERVER_SH)
        .arg(kind)
        .arg(dir)
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot spawn the {kind} watchdog (setsid bash): {e}"))
}

/// Finds a PostgreSQL program the way scripts/pg-cluster.sh does: PATH first, then the newest
/// Debian installation under /usr/lib/postgresql.
fn pg_binary(name: &str) -> Result<PathBuf, String> {
    static FOUND: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = found.iter().find(|(n, _)| n == name) {
        return Ok(path.clone());
    }
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    let in_debian = || {
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let path = entry.path().join("bin").join(name);
                path.is_file().then_some((version, path))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, path)| path)
    };
    let path = in_path.or_else(in_debian).ok_or_else(|| {
        format!(
            "PostgreSQL program `{name}` not found in PATH or /usr/lib/postgresql/*/bin; \
             install PostgreSQL (run scripts/setup.sh)"
        )
    })?;
    found.push((name.to_string(), path.clone()));
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Test environment
// ---------------------------------------------------------------------------------------------

/// One test's world: a fresh database of the same name on both clusters, a temporary directory
/// for config files, and the binary run against them.
pub struct TestEnv {
    /// Name of the test's database on the source cluster (and on the target, unless both are
    /// one server: see `dst_db`).
    pub db: String,
    /// Name of the test's database on the target cluster: `db`, or `<db>_d` when source and
    /// target are one server (GP6 → GP6).
    pub dst_db: String,
    pub src: &'static Pg,
    pub dst: &'static Pg,
    dir: tempfile::TempDir,
    config: Mutex<Option<PathBuf>>,
    runs: AtomicUsize,
    filters: Vec<(String, String)>,
}

/// The `src`/`dst` clusters (passwords from the harness's env vars) with state on `dst`: the
/// head of most test configs, written `{CLUSTERS}` in them.
pub const CLUSTERS_TOML: &str = r#"[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst""#;

/// Which server a test's source or target is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The PostgreSQL 15 pair: `source` as source, `target` as target.
    Pg,
    /// The run's real Greenplum 6 cluster ([`gp6`]).
    Gp6,
    /// The run's real PostgreSQL 8.2 server ([`pg82`]).
    Pg82,
    /// The run's real Greenplum 7 cluster ([`gp7`]).
    Gp7,
    /// The run's real Greenplum 4.3 cluster ([`gp4`]).
    Gp4,
}

impl TestEnv {
    /// `name` is usually the test function's name; it only makes the database easy to recognise.
    /// Source and target on the PostgreSQL 15 pair.
    pub fn new(name: &str) -> TestEnv {
        TestEnv::on(name, Server::Pg, Server::Pg)
    }

    /// Like [`TestEnv::new`] with the source and target on the given servers (both may be the
    /// GP6 cluster: the target database is then `<db>_d`).
    pub fn on(name: &str, src: Server, dst: Server) -> TestEnv {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let clusters = clusters();
        let pick = |server: Server, pair: &'static Pg| -> &'static Pg {
            match server {
                Server::Pg => pair,
                Server::Gp6 => gp6(),
                Server::Pg82 => pg82(),
                Server::Gp7 => gp7(),
                Server::Gp4 => gp4(),
            }
        };
        let (src, dst) = (pick(src, &clusters.source), pick(dst, &clusters.target));
        // The pid keeps names unique across the processes sharing the clusters under nextest,
        // the counter within one process; 63 bytes is PostgreSQL's identifier limit.
        let mut slug: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        slug.truncate(30);
        let db = format!("t_{slug}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dst_db = if std::ptr::eq(src, dst) { format!("{db}_d") } else { db.clone() };
        src.create_db(&db);
        dst.create_db(&dst_db);
        // Inside the clusters' directory, so that the watchdog removes it even when the test
        // process is killed before TempDir's Drop runs.
        let dir = tempfile::Builder::new()
            .prefix("env-")
            .tempdir_in(&clusters.base_dir)
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let filters = env_filters(&db, dir.path(), clusters, src, dst);
        TestEnv { db, dst_db, src, dst, dir, config: Mutex::new(None), runs: AtomicUsize::new(0), filters }
    }

    /// The test's temporary directory (also the working directory and HOME of every run).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `{SRC_URL}`, `{DST_URL}`, `{DB}`, `{DST_DB}`, `{SRC_PORT}`, `{DST_PORT}` and
    /// `{TEMP_DIR}`.
    pub fn expand(&self, text: &str) -> String {
        // `{CLUSTERS}` first: it expands to text holding the other placeholders.
        text.replace("{CLUSTERS}", CLUSTERS_TOML)
            .replace("{SRC_URL}", &self.src.url(&self.db))
            .replace("{DST_URL}", &self.dst.url(&self.dst_db))
            .replace("{DST_DB}", &self.dst_db)
            .replace("{DB}", &self.db)
            .replace("{SRC_PORT}", &self.src.port.to_string())
            .replace("{DST_PORT}", &self.dst.port.to_string())
            .replace("{TEMP_DIR}", &self.dir().display().to_string())
    }

    /// Writes `gptransfer.toml` (placeholders expanded, see [`TestEnv::expand`]) and makes
    /// every following [`TestEnv::run`] pass it with `--config`.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.write_file("gptransfer.toml", toml);
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
        path
    }

    /// Writes any file into the test's directory, placeholders expanded.
    pub fn write_file(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(&path, self.expand(text)).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The binary, ready to run: `--config <file>` (when one was written) then `args`; passwords
    /// in `GPT_SRC_PASSWORD` / `GPT_DST_PASSWORD`; a hermetic environment (no PG* or
    /// GPTRANSFER* variables from the caller, HOME and working directory = the test directory,
    /// NO_COLOR, UTC).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        if let Some(config) = &*self.config.lock().unwrap_or_else(|e| e.into_inner()) {
            cmd.arg("--config").arg(config);
        }
        cmd.args(args);
        scrub_pg_env(&mut cmd);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GPTRANSFER") {
                cmd.env_remove(key);
            }
        }
        cmd.env(SRC_PASSWORD_ENV, &self.src.password)
            .env(DST_PASSWORD_ENV, &self.dst.password)
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .env("COLUMNS", "100")
            .env("TZ", "UTC")
            .env("HOME", self.dir())
            .current_dir(self.dir())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the binary to completion; panics when it runs longer than [`RUN_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        self.spawn(args).wait()
    }

    /// Like [`TestEnv::run`] with another time limit.
    pub fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> CmdOutput {
        self.spawn(args).wait_timeout(timeout)
    }

    /// Starts the binary without waiting, for tests that signal or kill it mid-run.
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_command(self.command(args))
    }

    /// Starts a prepared [`TestEnv::command`] (e.g. with an extra environment variable).
    pub fn spawn_command(&self, mut cmd: Command) -> Running {
        // Output goes to files rather than pipes: a child that writes more than a pipe buffer
        // while the test is busy elsewhere (waiting to send a signal) must not block.
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let stdout = self.dir().join(format!("run-{n}.stdout"));
        let stderr = self.dir().join(format!("run-{n}.stderr"));
        let open = |path: &Path| fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let child = cmd
            .stdout(open(&stdout))
            .stderr(open(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Running {
            child,
            stdout,
            stderr,
            // Not `{cmd:?}`: Command's Debug shows the environment, passwords included.
            command_line: std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            filters: self.filters.clone(),
        }
    }

    /// psql as superuser on the source database of this test.
    pub fn src_psql(&self, sql: &str) -> String {
        self.src.psql(&self.db, sql)
    }

    /// psql as superuser on the target database of this test.
    pub fn dst_psql(&self, sql: &str) -> String {
        self.dst.psql(&self.dst_db, sql)
    }

    /// Filters specific to this environment, applied before [`GENERIC_FILTERS`].
    pub fn filters(&self) -> Vec<(String, String)> {
        self.filters.clone()
    }

    /// A [`CmdOutput`] carrying this environment's filters, for output not produced by `run`.
    pub fn output(&self, code: i32, stdout: &str, stderr: &str) -> CmdOutput {
        CmdOutput { code, stdout: stdout.to_string(), stderr: stderr.to_string(), filters: self.filters.clone() }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Dropped databases keep a long run's clusters small. After a failure, leave them:
        // a second panic here would abort, and the clusters go away at the end anyway.
        if !thread::panicking() {
            for (pg, db) in [(self.src, &self.db), (self.dst, &self.dst_db)] {
                if let Err(e) = pg.try_drop_db(db) {
                    eprintln!("warning: {e}");
                }
            }
        }
    }
}

fn env_filters(db: &str, dir: &Path, clusters: &Clusters, src: &Pg, dst: &Pg) -> Vec<(String, String)> {
    let mut filters = Vec::new();
    let mut path = |p: &Path, replacement: &str| {
        filters.push((regex_escape(&p.display().to_string()), replacement.to_string()));
        // The tool may print the resolved path (/tmp could be a symlink elsewhere).
        if let Ok(canonical) = p.canonicalize() {
            if canonical != p {
                filters.push((regex_escape(&canonical.display().to_string()), replacement.to_string()));
            }
        }
    };
    // Longest paths first: the others lie inside the clusters' base directory.
    path(&clusters.source.socket_dir, "[SRC_SOCKET_DIR]");
    path(&clusters.target.socket_dir, "[DST_SOCKET_DIR]");
    path(dir, "[TEMP_DIR]");
    path(&clusters.base_dir, "[CLUSTERS_DIR]");
    // Before the ports: the name contains digits (though never at a word boundary).
    filters.push((regex_escape(db), "[DB]".to_string()));
    if std::ptr::eq(src, dst) {
        filters.push((format!(r"\b{}\b", src.port), "[PORT]".to_string()));
    }
    filters.push((format!(r"\b{}\b", src.port), "[SRC_PORT]".to_string()));
    filters.push((format!(r"\b{}\b", dst.port), "[DST_PORT]".to_string()));
    // The machine's name differs between machines; 127.0.0.1, used by the configs, does not.
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() && host != "localhost" {
        filters.push((format!(r"\b{}\b", regex_escape(host)), "[HOST]".to_string()));
    }
    filters
}

/// Escapes the characters that are special in a `regex` crate pattern.
pub fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

// ---------------------------------------------------------------------------------------------
// Running the binary and snapshotting its output
// ---------------------------------------------------------------------------------------------

/// A started run of the binary (see [`TestEnv::spawn`]).
pub struct Running {
    pub child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    command_line: String,
    filters: Vec<(String, String)>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`INT`, `TERM`, `KILL`, …): std only offers SIGKILL.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -s {signal} {} failed", self.pid());
    }

    /// Waits for the exit, at most [`RUN_TIMEOUT`].
    pub fn wait(self) -> CmdOutput {
        self.wait_timeout(RUN_TIMEOUT)
    }

    /// Waits for the exit; past `timeout` the process is killed and the test fails.
    pub fn wait_timeout(mut self, timeout: Duration) -> CmdOutput {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let output = self.output(-1);
                    panic!(
                        "{} did not finish within {timeout:?} and was killed\n{}",
                        self.command_line,
                        output.render()
                    );
                }
                Err(e) => panic!("waiting for {}: {e}", self.command_line),
            }
        };
        // Like a shell: 128 + n when killed by signal n.
        let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1);
        self.output(code)
    }

    fn output(&self, code: i32) -> CmdOutput {
        let read = |path: &Path| {
            let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            String::from_utf8_lossy(&bytes).into_owned()
        };
        CmdOutput { code, stdout: read(&self.stdout), stderr: read(&self.stderr), filters: self.filters.clone() }
    }
}

/// Exit code and output of one run, with the filters that make it snapshot-stable.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit code; 128 + n when killed by signal n.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// (regex, replacement) pairs applied before [`GENERIC_FILTERS`].
    pub filters: Vec<(String, String)>,
}

impl CmdOutput {
    /// Adds a filter for this snapshot only (applied after the environment's, before the
    /// generic ones).
    pub fn with_filter(mut self, regex: &str, replacement: &str) -> CmdOutput {
        self.filters.push((regex.to_string(), replacement.to_string()));
        self
    }

    /// All filters, in the order insta applies them.
    pub fn snapshot_filters(&self) -> Vec<(String, String)> {
        let generic = GENERIC_FILTERS.iter().map(|(r, s)| (r.to_string(), s.to_string()));
        self.filters.iter().cloned().chain(generic).collect()
    }

    /// The text a snapshot holds (before filtering).
    pub fn render(&self) -> String {
        format!("exit: {}\n--- stdout\n{}\n--- stderr\n{}\n", self.code, self.stdout.trim_end(), self.stderr.trim_end())
    }

    /// Panics with the whole output unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &CmdOutput {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.render());
        self
    }

    pub fn assert_success(&self) -> &CmdOutput {
        self.assert_code(0)
    }
}

/// Panics when a cluster password appears in the output (the secret itself is not printed).
pub fn assert_no_secret(out: &CmdOutput) {
    let clusters = clusters();
    let started = [GP4.get(), GP6.get(), GP7.get(), PG82.get()].into_iter().flatten().filter_map(|r| r.as_ref().ok());
    for pg in [&clusters.source, &clusters.target].into_iter().chain(started) {
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if text.contains(&pg.password) {
                panic!(
                    "the {} cluster's password leaked into {stream}:\n{}",
                    pg.name,
                    out.render().replace(&pg.password, "[SECRET]")
                );
            }
        }
    }
}

/// Snapshots a [`CmdOutput`] with insta: exit code, stdout and stderr, filtered (see
/// [`CmdOutput::snapshot_filters`]); fails first if a password leaked.
/// `cli_snapshot!(output)` names the snapshot after the test, `cli_snapshot!("name", output)`
/// names it explicitly (several snapshots in one test).
#[macro_export]
macro_rules! cli_snapshot {
    ($output:expr) => {{
        let output: &$crate::support::CmdOutput = &$output;
        $crate::support::assert_no_secret(output);
        let filters = output.snapshot_filters();
        ::insta::with_settings!({
            filters => filters.iter().map(|(r, s)| (r.as_str(), s.as_str())),
            omit_expression => true,
        }, {
            ::insta::assert_snapshot!(output.render());
        });
    }};
    ($name:expr, $output:expr) => {{
        let output: &$crate::support::CmdOutput = &$output;
        $crate::support::assert_no_secret(output);
        let filters = output.snapshot_filters();
        ::insta::with_settings!({
            filters => filters.iter().map(|(r, s)| (r.as_str(), s.as_str())),
            omit_expression => true,
        }, {
            ::insta::assert_snapshot!($name, output.render());
        });
    }};
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// libpq reads PG* variables (PGPASSWORD, PGHOST, PGSERVICE, …); the caller's must not leak in.
fn scrub_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A separate writer thread: a large input and a large output must not deadlock each other.
    let input = input.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    // A write error (psql stopped reading after ON_ERROR_STOP) shows in psql's own stderr.
    let _ = writer.join();
    Ok(output)
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Randomness without a dependency: std seeds every RandomState from the OS.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// `count md5` of the rows of `table` matching `filter`, in `order`, every column cast to text
/// and quoted, under fixed session settings: equal on both sides when a transfer was
/// byte-exact. On 8.2 (no string_agg, concat_ws, quote_nullable; extra_float_digits at most 2,
/// no bytea_output) the same digest is built from what 8.2 has; where 8.2 prints a type
/// differently (float4, float timestamps, escaped bytea) cast the column in `columns`.
pub fn table_digest(pg: &Pg, db: &str, table: &str, columns: &[&str], order: &str, filter: &str) -> String {
    let sql = if pg.kind.is_82() {
        let row = columns
            .iter()
            .map(|c| format!("coalesce(quote_literal(({c})::text), 'NULL')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        format!(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 2;\n\
             SELECT count(*) || ' ' || CASE WHEN count(*) = 0 THEN '-' ELSE md5(array_to_string(ARRAY(\
             SELECT {row} FROM {table} WHERE {filter} ORDER BY {order}), E'\\n')) END FROM {table} WHERE {filter}"
        )
    } else {
        let row = columns.iter().map(|c| format!("quote_nullable(({c})::text)")).collect::<Vec<_>>().join(", ");
        let float_digits = if pg.kind == Kind::Gp6 { 2 } else { 3 };
        format!(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = {float_digits}; SET bytea_output = 'hex';\n\
             SELECT count(*) || ' ' || coalesce(md5(string_agg(concat_ws('|', {row}), E'\\n' ORDER BY {order})), '-') \
             FROM {table} WHERE {filter}"
        )
    };
    pg.psql(db, &sql)
}

/// [`table_digest`] of `eda.defects` (the [`defects_source_sql`] table).
pub fn defects_digest(pg: &Pg, db: &str) -> String {
    table_digest(pg, db, "eda.defects", &["id", "evt_ts", "glass", "qty", "payload"], "id", "true")
}

/// The `eda.defects` source table shared by the transport and sink tests: `rows` rows from
/// 2024-03-10 00:00:00, one every `step` (an interval such as "3.6 seconds"), with NULLs,
/// newlines, tabs, backslashes, Chinese text, empty strings, numerics and bytea.
pub fn defects_source_sql(rows: u32, step: &str) -> String {
    format!(
        r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea);
INSERT INTO eda.defects
SELECT i,
       timestamp '2024-03-10 00:00:00' + (i - 1) * interval '{step}',
       CASE i % 7
           WHEN 0 THEN NULL
           WHEN 1 THEN E'line1\nline2 ' || i
           WHEN 2 THEN E'tab\there\\' || i
           WHEN 3 THEN '缺陷' || i || '号，玻璃'
           WHEN 4 THEN ''
           WHEN 5 THEN 'say "hi", ok' || E'\r\n\\.' || i
           ELSE 'G' || lpad(i::text, 8, '0') || repeat('x', i % 40)
       END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE round(i * 1.234, 3) END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END
FROM generate_series(1, {rows}) AS i;
"#
    )
}
