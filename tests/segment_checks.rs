//! The gpfdist transport's pre-flight checks on real Greenplum 6 and 4.3 clusters (master and 2
//! segments), always as a role without superuser: the external-table privileges it needs
//! (refused with the grant statement, which — run as given — makes the check pass and a real
//! temporary external table work), and every segment reaching the gpfdist host and ports.
//!
//! A segment is made unable to reach a port with iptables: its postmaster is moved into a cgroup
//! (v2, at /sys/fs/cgroup/unified; the processes it forks afterwards, such as the new session's
//! segment backends, inherit it) and an OUTPUT rule matching that cgroup and the test's own port
//! rejects or drops the connection. Each rule matches only the test's port, so tests running at
//! the same time are not affected, and it is removed (the cgroup emptied and removed) when the
//! test ends, passing or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gptransfer_plugin_gpfdist::check::{missing_privileges, unreachable_segments, ProbeServer, Side};
use support::{free_ports, gp4, gp4_home, gp6, gp6_home, gp7, gp7_home, quote_ident, Kind, Pg};

/// The timeout the checks get here: short, so that the tests that make it expire stay quick.
const TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh database `db` and a login role `role` without superuser nor external-table
/// privileges on `pg`.
fn fresh_db_and_role(pg: &Pg, db: &str, role: &str) {
    let _ = pg.try_drop_db(db);
    pg.create_db(db);
    let r = quote_ident(role);
    let _ = pg.try_psql("postgres", &format!("DROP ROLE {r}"));
    pg.psql("postgres", &format!("CREATE ROLE {r} LOGIN NOSUPERUSER"));
}

/// Grants `role` what both sides of the transport need.
fn grant_both(pg: &Pg, role: &str) {
    let r = quote_ident(role);
    pg.psql(
        "postgres",
        &format!(
            "ALTER ROLE {r} CREATEEXTTABLE (type='readable', protocol='gpfdist') \
             CREATEEXTTABLE (type='writable', protocol='gpfdist')"
        ),
    );
}

/// `role`'s own connection (trusted on the socket), as the tool would log in.
async fn connect_as(pg: &Pg, db: &str, role: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(&pg.socket_dir)
        .port(pg.port)
        .user(role)
        .dbname(db)
        .connect_timeout(Duration::from_secs(10))
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connection as {role} to {} db {db}: {e}", pg.name));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The cluster's own gpfdist.
fn gpfdist(pg: &Pg) -> PathBuf {
    match pg.kind {
        Kind::Gp4 => gp4_home().join("bin/gpfdist"),
        Kind::Gp6 => gp6_home().join("bin/gpfdist"),
        Kind::Gp7 => gp7_home().join("bin/gpfdist"),
        other => panic!("no gpfdist for {other:?}"),
    }
}

/// PIDs of the live (not zombie) processes running gpfdist on `port`, its `timeout` wrapper
/// included (the probe's must all be gone after a check).
fn gpfdist_processes(port: u16) -> Vec<u32> {
    let port = port.to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_gpfdist = args.iter().any(|a| a.ends_with("gpfdist"));
        let on_port = args.windows(2).any(|w| w[0] == "-p" && w[1] == port);
        // `pid (comm) S …`: state after the last parenthesis.
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if is_gpfdist && on_port && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Runs the reach check for `side` of `pg` as `role` on `ports`, and checks that it left no
/// gpfdist behind. Returns its result and how long it took.
async fn reach(pg: &Pg, db: &str, role: &str, side: Side, host: &str, ports: &[u16]) -> (Result<(), String>, Duration) {
    let client = connect_as(pg, db, role).await;
    let started = Instant::now();
    let result = unreachable_segments(&client, pg.name.as_str(), side, host, ports, &gpfdist(pg), TIMEOUT).await;
    let took = started.elapsed();
    if let Err(message) = &result {
        eprintln!("{side:?} check on {} failed in {took:?}:\n{message}", pg.name);
    }
    for port in ports {
        assert_eq!(gpfdist_processes(*port), Vec::<u32>::new(), "a probe gpfdist outlived the check on port {port}");
    }
    (result, took)
}

/// The segment's postmaster PID (GP6: its data directory from gp_segment_configuration).
fn segment_postmaster(pg: &Pg, content: i32) -> u32 {
    let dir = pg.psql(
        "postgres",
        &format!("SELECT datadir FROM gp_segment_configuration WHERE content = {content} AND role = 'p'"),
    );
    let pid_file = fs::read_to_string(Path::new(dir.trim()).join("postmaster.pid")).unwrap();
    pid_file.lines().next().unwrap().trim().parse().unwrap()
}

/// The cgroup v2 hierarchy: beside the v1 controllers (hybrid, as on this project's machines) or
/// alone.
fn cgroup_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").is_file() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// An iptables OUTPUT rule on one TCP port, for one segment's processes or for everyone;
/// removed on drop.
struct Blocked {
    rule: Vec<String>,
    cgroup: Option<PathBuf>,
}

impl Blocked {
    /// Connections from segment `content` of `pg` to `port` get `verdict` (`REJECT` or `DROP`).
    fn segment(pg: &Pg, content: i32, port: u16, verdict: &str) -> Blocked {
        let name = format!("gptransfer-segcheck-{}-{port}", std::process::id());
        let cgroup = cgroup_root().join(&name);
        fs::create_dir(&cgroup).unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cgroup.display()));
        let mut blocked = Blocked { rule: Vec::new(), cgroup: Some(cgroup.clone()) };
        let postmaster = segment_postmaster(pg, content);
        fs::write(cgroup.join("cgroup.procs"), postmaster.to_string())
            .unwrap_or_else(|e| panic!("cannot move segment {content}'s postmaster {postmaster} into {name}: {e}"));
        blocked.rule = rule(port, Some(&name), verdict);
        iptables("-I", &blocked.rule);
        blocked
    }

    /// Every connection to `port` from this machine gets `verdict`.
    fn everyone(port: u16, verdict: &str) -> Blocked {
        let blocked = Blocked { rule: rule(port, None, verdict), cgroup: None };
        iptables("-I", &blocked.rule);
        blocked
    }
}

fn rule(port: u16, cgroup: Option<&str>, verdict: &str) -> Vec<String> {
    let mut rule: Vec<String> =
        ["OUTPUT", "-p", "tcp", "--dport", &port.to_string()].iter().map(|s| s.to_string()).collect();
    if let Some(path) = cgroup {
        rule.extend(["-m", "cgroup", "--path", path].iter().map(|s| s.to_string()));
    }
    rule.extend(["-j", verdict].iter().map(|s| s.to_string()));
    if verdict == "REJECT" {
        rule.extend(["--reject-with", "tcp-reset"].iter().map(|s| s.to_string()));
    }
    rule
}

fn iptables(action: &str, rule: &[String]) {
    let output = Command::new("iptables")
        .args(["-w", action])
        .args(rule)
        .output()
        .unwrap_or_else(|e| panic!("cannot run iptables (scripts/setup.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "iptables {action} {}: {}",
        rule.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if !self.rule.is_empty() {
            let _ = Command::new("iptables").args(["-w", "-D"]).args(&self.rule).output();
        }
        if let Some(cgroup) = &self.cgroup {
            // Back to the root: the postmaster and whatever it forked meanwhile. A process that
            // is exiting stays listed until it is reaped: retry for a while.
            for _ in 0..60 {
                let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines() {
                    let _ = fs::write(cgroup_root().join("cgroup.procs"), pid.trim());
                }
                if fs::remove_dir(cgroup).is_ok() || !cgroup.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Privileges
// ---------------------------------------------------------------------------------------------

/// The `ALTER ROLE` / `GRANT` lines of a refusal: what an administrator is told to run.
fn grant_statements(message: &str) -> Vec<String> {
    message
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ALTER ROLE") || l.starts_with("GRANT"))
        .map(str::to_string)
        .collect()
}

/// Without the privilege the role is refused with a message naming role, cluster, privilege and
/// statement; Greenplum refuses the external table too. The statement, run as given, makes the
/// check pass, and the role then creates and uses a real temporary external table of its side.
async fn privilege_refused_then_granted(pg: &Pg, db: &str, role: &str) {
    fresh_db_and_role(pg, db, role);
    // No TEMP for PUBLIC in this database either.
    pg.psql("postgres", &format!("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC", quote_ident(db)));
    let served = tempfile::tempdir().unwrap();
    fs::set_permissions(served.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    fs::write(served.path().join("rows.txt"), "1\n2\n3\n").unwrap();
    let port = free_ports(1).unwrap()[0];
    let server = ProbeServer::start(
        &gpfdist(pg),
        served.path(),
        &served.path().join("gpfdist.log"),
        port,
        Duration::from_secs(120),
    )
    .await
    .unwrap();
    let location = format!("gpfdist://127.0.0.1:{port}");

    for side in [Side::Target, Side::Source] {
        let client = connect_as(pg, db, role).await;
        let kind = side.table_type();
        let message = missing_privileges(&client, "gpx", side).await.unwrap().expect("refused");
        eprintln!("{side:?} refused on {}:\n{message}", pg.name);
        assert!(message.contains(&format!("role \"{role}\"")), "{message}");
        assert!(message.contains("cluster gpx"), "{message}");
        assert!(message.contains(&format!("create {kind} gpfdist external tables")), "{message}");
        assert!(
            message.contains(&format!("ALTER ROLE \"{role}\" CREATEEXTTABLE (type='{kind}', protocol='gpfdist');")),
            "{message}"
        );
        assert!(message.contains(&format!("GRANT TEMPORARY ON DATABASE \"{db}\" TO \"{role}\";")), "{message}");
        // The reach check says so too, rather than blaming the segments.
        let (ports, program) = ([free_ports(1).unwrap()[0]], gpfdist(pg));
        let probe = unreachable_segments(&client, "gpx", side, "127.0.0.1", &ports, &program, TIMEOUT).await;
        let probe = probe.expect_err("no privilege to probe");
        assert!(probe.contains("no privilege to create") || probe.contains("permission denied"), "{probe}");
        // Greenplum agrees: the role cannot create the table.
        let create = create_external(side, &location);
        let refused = client.batch_execute(&create).await.unwrap_err();
        assert!(refused.as_db_error().is_some(), "{refused}");

        for statement in grant_statements(&message) {
            pg.psql(db, &statement);
        }
        // The next side starts without TEMP again.
        let revoke_temp = format!("REVOKE TEMPORARY ON DATABASE {} FROM {}", quote_ident(db), quote_ident(role));
        let client = connect_as(pg, db, role).await;
        assert_eq!(missing_privileges(&client, "gpx", side).await.unwrap(), None);
        client.batch_execute(&create).await.unwrap_or_else(|e| panic!("{create}: {e:?}"));
        match side {
            Side::Target => {
                let row = client.query_one("SELECT count(*)::int, sum(v::int)::int FROM gpt_ext", &[]).await.unwrap();
                assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (3, 6));
            }
            Side::Source => {
                let n = client.execute("INSERT INTO gpt_ext_w SELECT generate_series(1, 10)", &[]).await.unwrap();
                assert_eq!(n, 10);
                let written = fs::read_to_string(served.path().join("out.txt")).unwrap();
                let mut values: Vec<i32> = written.lines().map(|l| l.parse().unwrap()).collect();
                values.sort();
                assert_eq!(values, (1..=10).collect::<Vec<_>>());
            }
        }
        pg.psql(db, &revoke_temp);
    }
    server.stop().await;
}

fn create_external(side: Side, location: &str) -> String {
    match side {
        Side::Target => {
            format!("CREATE EXTERNAL TEMP TABLE gpt_ext (v text) LOCATION ('{location}/rows.txt') FORMAT 'TEXT'")
        }
        Side::Source => format!(
            "CREATE WRITABLE EXTERNAL TEMP TABLE gpt_ext_w (k int) LOCATION ('{location}/out.txt') FORMAT 'TEXT' \
             DISTRIBUTED BY (k)"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_role_without_external_table_privilege_is_refused_until_granted() {
    privilege_refused_then_granted(gp6(), "segcheck_priv_gp6", "segcheck_priv_gp6").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp4_role_without_external_table_privilege_is_refused_until_granted() {
    privilege_refused_then_granted(gp4(), "segcheck_priv_gp4", "segcheck_priv_gp4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp7_role_without_external_table_privilege_is_refused_until_granted() {
    privilege_refused_then_granted(gp7(), "segcheck_priv_gp7", "segcheck_priv_gp7").await;
}

// ---------------------------------------------------------------------------------------------
// 2. Every segment reaches the host
// ---------------------------------------------------------------------------------------------

async fn every_segment_reaches(pg: &Pg, db: &str, role: &str) {
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let ports = free_ports(2).unwrap();
    for side in [Side::Target, Side::Source] {
        let (result, took) = reach(pg, db, role, side, "127.0.0.1", &ports).await;
        assert_eq!(result, Ok(()), "{side:?}");
        assert!(took < TIMEOUT, "{side:?}: a passing check took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_every_segment_reaches_the_gpfdist_host() {
    every_segment_reaches(gp6(), "segcheck_reach_gp6", "segcheck_reach_gp6").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp4_every_segment_reaches_the_gpfdist_host() {
    every_segment_reaches(gp4(), "segcheck_reach_gp4", "segcheck_reach_gp4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp7_every_segment_reaches_the_gpfdist_host() {
    every_segment_reaches(gp7(), "segcheck_reach_gp7", "segcheck_reach_gp7").await;
}

// ---------------------------------------------------------------------------------------------
// 3. A segment that cannot reach the host is named
// ---------------------------------------------------------------------------------------------

/// Segment 0 of GP6 refused on the probed port, segment 1 not: only segment 0 is named, with
/// its port and Greenplum's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_segment_that_cannot_reach_the_host_is_named() {
    let pg = gp6();
    let (db, role) = ("segcheck_named_gp6", "segcheck_named_gp6");
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let port = free_ports(1).unwrap()[0];
    let seg0_port = pg.psql("postgres", "SELECT port FROM gp_segment_configuration WHERE content = 0 AND role = 'p'");
    let _blocked = Blocked::segment(pg, 0, port, "REJECT");
    for side in [Side::Target, Side::Source] {
        let (result, _) = reach(pg, db, role, side, "127.0.0.1", &[port]).await;
        let message = result.expect_err("segment 0 cannot connect");
        assert!(
            message.contains(&format!("cluster gp6: 1 of 2 primary segments cannot reach gpfdist at 127.0.0.1:{port}")),
            "{side:?}: {message}"
        );
        assert!(
            message.contains(&format!("segment 0 (dbid 2, host localhost, address 127.0.0.1, port {seg0_port})")),
            "{message}"
        );
        assert!(!message.contains("segment 1 "), "{side:?}: segment 1 can connect: {message}");
        assert!(message.contains("What to do:"), "{message}");
    }
    // The same cluster passes once the rule is gone.
    drop(_blocked);
    let (result, _) = reach(pg, db, role, Side::Target, "127.0.0.1", &[port]).await;
    assert_eq!(result, Ok(()));
}

/// Every segment of GP6 refused at once: each is named. Greenplum stops the statement at the
/// first error, so a source segment it did not see is probed alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_every_refused_segment_is_named() {
    let pg = gp6();
    let (db, role) = ("segcheck_all_refused_gp6", "segcheck_all_refused_gp6");
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let port = free_ports(1).unwrap()[0];
    let _blocked = Blocked::everyone(port, "REJECT");
    for side in [Side::Target, Side::Source] {
        let (result, _) = reach(pg, db, role, side, "127.0.0.1", &[port]).await;
        let message = result.expect_err("no segment can connect");
        assert!(message.contains("2 of 2 primary segments cannot reach"), "{side:?}: {message}");
        assert!(message.contains("segment 0 (") && message.contains("segment 1 ("), "{side:?}: {message}");
        if side == Side::Source {
            assert!(!message.contains("not proven"), "{message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Never hangs
// ---------------------------------------------------------------------------------------------

/// Segment 1's packets to the port are dropped (no answer at all): the check ends within its
/// timeout and names segment 1 only, on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_dropped_packets_fail_within_the_timeout() {
    let pg = gp6();
    let (db, role) = ("segcheck_drop_gp6", "segcheck_drop_gp6");
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let port = free_ports(1).unwrap()[0];
    let _blocked = Blocked::segment(pg, 1, port, "DROP");
    for side in [Side::Target, Side::Source] {
        let (result, took) = reach(pg, db, role, side, "127.0.0.1", &[port]).await;
        let message = result.expect_err("segment 1's packets are dropped");
        assert!(message.contains("1 of 2 primary segments cannot reach"), "{side:?}: {message}");
        assert!(message.contains("segment 1 (dbid 3"), "{side:?}: {message}");
        assert!(!message.contains("segment 0 "), "{side:?}: {message}");
        assert!(took < TIMEOUT + Duration::from_secs(5), "{side:?}: took {took:?}");
    }
}

/// A check abandoned half-way (its future dropped, as on Ctrl+C) kills its gpfdist at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_abandoned_check_leaves_no_gpfdist() {
    let pg = gp6();
    let (db, role) = ("segcheck_abandon_gp6", "segcheck_abandon_gp6");
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let port = free_ports(1).unwrap()[0];
    let _blocked = Blocked::everyone(port, "DROP");
    let client = connect_as(pg, db, role).await;
    let (ports, program) = ([port], gpfdist(pg));
    let check = unreachable_segments(&client, "gp6", Side::Target, "127.0.0.1", &ports, &program, TIMEOUT);
    // Boxed, so that dropping it drops the future itself.
    let mut check = Box::pin(check);
    // Running, with its gpfdist up, when it is abandoned.
    let deadline = Instant::now() + TIMEOUT;
    while gpfdist_processes(port).is_empty() {
        assert!(Instant::now() < deadline, "the probe gpfdist never started");
        let _ = tokio::time::timeout(Duration::from_millis(50), check.as_mut()).await;
    }
    drop(check);
    // Terminated, not waited for: give it a moment to exit.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gpfdist_processes(port).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gpfdist_processes(port), Vec::<u32>::new(), "the probe gpfdist outlived its abandoned check");
}

/// On GP4 (whose writable external tables have no connect timeout of their own) every
/// connection to the port is dropped: both segments are named, within the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp4_dropped_packets_fail_within_the_timeout() {
    let pg = gp4();
    let (db, role) = ("segcheck_drop_gp4", "segcheck_drop_gp4");
    fresh_db_and_role(pg, db, role);
    grant_both(pg, role);
    let port = free_ports(1).unwrap()[0];
    let _blocked = Blocked::everyone(port, "DROP");
    for side in [Side::Target, Side::Source] {
        let (result, took) = reach(pg, db, role, side, "127.0.0.1", &[port]).await;
        let message = result.expect_err("every segment's packets are dropped");
        assert!(message.contains("2 of 2 primary segments cannot reach"), "{side:?}: {message}");
        assert!(message.contains("segment 0 (") && message.contains("segment 1 ("), "{side:?}: {message}");
        assert!(message.contains("no connection before the probe's timeout"), "{side:?}: {message}");
        assert!(took < TIMEOUT + Duration::from_secs(5), "{side:?}: took {took:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Through the CLI: `run` refuses a role without the privilege before any data moves, and
//    `config check` names a segment that cannot reach the transport's host
// ---------------------------------------------------------------------------------------------

/// GP6 → GP6 as login role `role` (password login, not a superuser): a day of 48 rows in `src`
/// and an empty `dst` owned by the role, moved through the gpfdist transport on `ports`.
fn cli_env(name: &str, role: &str, ports: [u16; 2]) -> support::TestEnv {
    cli_env_with(name, role, ports, "")
}

/// [`cli_env`] with `extra` options in the transport's table (e.g. `, ssh = { … }`).
fn cli_env_with(name: &str, role: &str, ports: [u16; 2], extra: &str) -> support::TestEnv {
    let env = support::TestEnv::on(name, support::Server::Gp6, support::Server::Gp6);
    let pg = gp6();
    let r = quote_ident(role);
    let _ = pg.try_psql("postgres", &format!("DROP OWNED BY {r}"));
    let _ = pg.try_psql("postgres", &format!("DROP ROLE {r}"));
    pg.psql("postgres", &format!("CREATE ROLE {r} LOGIN NOSUPERUSER PASSWORD '{}'", pg.password));
    for db in [&env.db, &env.dst_db] {
        pg.psql("postgres", &format!("GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {r}", quote_ident(db)));
    }
    env.src_psql(&format!(
        "CREATE TABLE src (id int, ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);\n\
         INSERT INTO src SELECT i, timestamp '2024-01-01' + i * interval '30 minutes', 'v' || i \
         FROM generate_series(0, 47) i;\nGRANT SELECT ON src TO {r};"
    ));
    env.dst_psql(&format!(
        "CREATE TABLE dst (id int, ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);\nALTER TABLE dst OWNER TO {r};"
    ));
    let url = |db: &str| format!("postgres://{role}@127.0.0.1:{}/{db}", pg.port);
    env.write_config(&format!(
        r#"[clusters.src]
url = "{}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"
transport = {{ plugin = "gpfdist", host = "127.0.0.1", port_range = [{}, {}], gpfdist = "{}"{extra} }}

[[jobs.j.tables]]
table = "public.src"
target_table = "public.dst"
condition_column = "ts"
final_end = "2024-01-02 00:00:00"
"#,
        url(&env.db),
        url(&env.dst_db),
        ports[0],
        ports[1],
        gpfdist(pg).display()
    ));
    env
}

#[test]
fn run_refuses_a_role_without_the_external_table_privilege_before_any_data_moves() {
    let role = "segcheck_cli_loader";
    let first = support::free_port_block(40).unwrap();
    let env = cli_env("segcheck_cli_privilege", role, [first, first + 39]);
    let check = env.run(&["config", "check"]);
    assert_ne!(check.code, 0, "{}", check.render());
    let text = check.render();
    for needed in [
        format!("ALTER ROLE \"{role}\" CREATEEXTTABLE (type='writable', protocol='gpfdist')"),
        format!("ALTER ROLE \"{role}\" CREATEEXTTABLE (type='readable', protocol='gpfdist')"),
    ] {
        assert!(text.contains(&needed), "config check does not say {needed}:\n{text}");
    }
    let run = env.run(&["run"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.render().contains("CREATEEXTTABLE (type='writable'"), "{}", run.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM dst"), "0");
    assert_eq!(gpfdist_processes(first), Vec::<u32>::new());
    // Granted as the message says: the same run moves the day.
    grant_both(gp6(), role);
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM dst"), "48");
}

#[test]
fn config_check_names_the_segment_that_cannot_reach_the_transports_host() {
    let role = "segcheck_cli_reach";
    let first = support::free_port_block(2).unwrap();
    let env = cli_env("segcheck_cli_reach", role, [first, first + 1]);
    grant_both(gp6(), role);
    env.run(&["config", "check"]).assert_success();
    check_names_only_segment_0(&env, first);
}

/// `config check` with segment 0 of the GP6 cluster unable to reach port `first`: it fails,
/// naming segment 0 and the host and port, not segment 1. Its output.
fn check_names_only_segment_0(env: &support::TestEnv, first: u16) -> String {
    let seg0_port =
        gp6().psql("postgres", "SELECT port FROM gp_segment_configuration WHERE content = 0 AND role = 'p'");
    let blocked = Blocked::segment(gp6(), 0, first, "REJECT");
    let check = env.run(&["config", "check"]);
    drop(blocked);
    assert_ne!(check.code, 0, "{}", check.render());
    let text = check.render();
    assert!(
        text.contains(&format!("segment 0 (dbid 2, host localhost, address 127.0.0.1, port {seg0_port})")),
        "{text}"
    );
    assert!(!text.contains("segment 1 ("), "segment 1 reaches the host:\n{text}");
    assert!(text.contains(&format!("127.0.0.1:{first}")), "{text}");
    text
}

/// The same with the gpfdist processes on an ETL host over SSH (a real sshd on 127.0.0.1): the
/// probe's gpfdist runs there, and the segment that cannot reach it is named with the host.
#[test]
fn config_check_over_ssh_names_the_segment_that_cannot_reach_the_etl_host() {
    let sshd = support::sshd::Sshd::start();
    let role = "segcheck_cli_reach_ssh";
    let first = support::free_port_block(2).unwrap();
    let ssh = format!(
        r#", work_dir = "{{TEMP_DIR}}/remote-gpfdist", ssh = {{ host = "127.0.0.1", port = {}, user = "{}", key_file = "{}", known_hosts = "{{TEMP_DIR}}/known_hosts", connect_timeout = "5s", read_timeout = "30s" }}"#,
        sshd.port,
        sshd.user,
        sshd.client_key.display()
    );
    let env = cli_env_with("segcheck_cli_reach_ssh", role, [first, first + 1], &ssh);
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    grant_both(gp6(), role);
    let ok = env.run(&["config", "check"]);
    assert_eq!(ok.code, 0, "{}\nsshd log:\n{}", ok.render(), sshd.log());
    let text = check_names_only_segment_0(&env, first);
    assert!(text.contains(&format!("{}@127.0.0.1:{}", sshd.user, sshd.port)), "the ETL host is not named:\n{text}");
}
