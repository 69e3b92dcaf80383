//! The `gpfdist` transport: a window moves segment to segment, never through either master.
//!
//! Per window, in a directory of its own: a FIFO; two gpfdist processes serving it (one for the
//! source's segments to write, one for the target's segments to read: one gpfdist serving both
//! ends blocks its only thread in the FIFO's open); the source's segments write the window
//! through a writable external table ([`Source::export`]) while, at the same time, in the
//! window's own transaction on the target, its segments read it through a readable external
//! table ([`SinkWindow::load_external`]). The two row counts are the window's rows read and
//! written, which the engine compares. When the reader may see EOF is this process's decision:
//! see [`fifo`].
//!
//! The gpfdist processes never outlive the window: stopped when it ends, killed when it fails,
//! times out or is interrupted (its future dropped), and by the kernel when this process dies.

pub mod check;
mod fifo;
mod log;
mod orphan;
mod process;
mod remote;
mod workdir;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::cluster::Session;
use gptransfer_core::config::{ConfigDuration, Mode, TableSpec};
use gptransfer_core::dialect::Flavour;
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{
    ByteStream, ChainCheck, CopyFormat, Delivered, ExternalLocation, SinkWindow, Source, StopSignal, Transport,
    WindowCtx,
};
use gptransfer_core::RoleError;

use gptransfer_plugin_ssh::{default_known_hosts, SshConfig};
use process::{Gpfdist, Launch};
use remote::{RemoteLaunch, RemoteWindow};

/// Options of the `gpfdist` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpfdistConfig {
    /// The ETL host's address as the segments of both clusters reach it (this host's, or with
    /// `ssh` the remote one's).
    pub host: String,
    /// The first and last port the window's two gpfdist processes may listen on.
    pub port_range: [u16; 2],
    /// The gpfdist program (default: `gpfdist` on PATH, else `$GPHOME/bin/gpfdist`); with
    /// `ssh`, a path on the ETL host.
    pub gpfdist: Option<PathBuf>,
    /// Where each window's directory (its FIFO and the gpfdist logs) is made (default: the
    /// system's temporary directory); with `ssh`, a directory on the ETL host.
    pub work_dir: Option<PathBuf>,
    /// Run the gpfdist processes on an ETL host over SSH instead of this host.
    #[serde(default)]
    pub ssh: Option<EtlSsh>,
    /// How long one window may take, end to end.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// The longest row gpfdist accepts, in bytes (its `-m`; 32 KiB to 256 MiB).
    #[serde(default = "default_max_row_bytes")]
    pub max_row_bytes: u32,
}

/// How to reach the ETL host the gpfdist processes run on (the transport's `ssh` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtlSsh {
    /// The ETL host's name or address as this host reaches its sshd.
    pub host: String,
    /// Its sshd port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// The user the gpfdist processes run as there.
    pub user: String,
    /// Private key; left out, ssh-agent's keys are used.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// known_hosts file (default `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Trust (and record) a host key missing from known_hosts; a changed key is refused anyway.
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// TCP connect limit.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// Limit for any one SSH read or write, and how long a dead connection may go unnoticed.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

fn default_read_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

impl EtlSsh {
    /// The SSH session settings.
    fn session(&self) -> SshConfig {
        SshConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            key_file: self.key_file.clone(),
            passphrase_env: self.passphrase_env.clone(),
            known_hosts: self.known_hosts.clone().unwrap_or_else(default_known_hosts),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: self.connect_timeout.0,
            read_timeout: self.read_timeout.0,
        }
    }

    fn problem(&self, c: &GpfdistConfig) -> Option<String> {
        if self.host.trim().is_empty() {
            return Some("ssh.host must name the ETL host (its sshd)".into());
        }
        if self.user.trim().is_empty() {
            return Some("ssh.user must name the user the gpfdist processes run as on the ETL host".into());
        }
        if self.connect_timeout.0.is_zero() {
            return Some("ssh.connect_timeout must be more than zero".into());
        }
        for (key, path) in [("gpfdist", &c.gpfdist), ("work_dir", &c.work_dir)] {
            if let Some(p) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Some(format!(
                    "{key} = {:?} is not UTF-8: give a path the remote shell can be sent",
                    p.display().to_string()
                ));
            }
            if let Some(p) = path.as_ref().filter(|p| !p.is_absolute()) {
                return Some(format!(
                    "{key} = {:?} must be an absolute path on the ETL host {} (with ssh, {key} is a path there)",
                    p.display().to_string(),
                    self.host
                ));
            }
        }
        None
    }
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

fn default_max_row_bytes() -> u32 {
    1024 * 1024
}

impl GpfdistConfig {
    fn parse(options: &toml::Table) -> Result<GpfdistConfig, String> {
        let c: GpfdistConfig = parse_options(options)?;
        let [first, last] = c.port_range;
        if first == 0 || last < first.saturating_add(1) {
            return Err(format!(
                "port_range = [{first}, {last}] must hold at least two ports (a window's two gpfdist processes), \
                 first > 0"
            ));
        }
        if c.host.trim().is_empty() || c.host.contains(['/', ' ', '\'']) {
            return Err(format!("host {:?} is not an address the segments can reach", c.host));
        }
        if !(32 * 1024..=log::MAX_ROW_BYTES_LIMIT).contains(&c.max_row_bytes) {
            return Err(format!(
                "max_row_bytes = {} must be between 32768 and {}",
                c.max_row_bytes,
                log::MAX_ROW_BYTES_LIMIT
            ));
        }
        if c.timeout.0 < Duration::from_secs(1) {
            return Err("timeout must be at least 1s".into());
        }
        if let Some(problem) = c.ssh.as_ref().and_then(|s| s.problem(&c)) {
            return Err(problem);
        }
        Ok(c)
    }
}

/// The `gpfdist` transport.
#[derive(Debug, Clone)]
pub struct GpfdistTransport {
    config: GpfdistConfig,
    /// The gpfdist program: on this host, or with `ssh` on the ETL host.
    program: PathBuf,
}

/// Registers `gpfdist`.
pub struct GpfdistFactory;

impl Factory<dyn Transport> for GpfdistFactory {
    fn name(&self) -> &'static str {
        "gpfdist"
    }
    fn describe(&self) -> &'static str {
        "segment to segment through two local gpfdist processes and a FIFO (Greenplum to Greenplum)"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        GpfdistConfig::parse(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Transport>, String> {
        let config = GpfdistConfig::parse(options)?;
        let program = match &config.ssh {
            // Before the run touches any server: an unknown host key, a refused login or no
            // gpfdist on the ETL host fails now.
            Some(ssh) => remote::preflight(
                &ssh.session(),
                config.gpfdist.as_deref().and_then(|p| p.to_str()),
                config.work_dir.as_deref(),
            )
            .map(PathBuf::from)?,
            None => find_program(config.gpfdist.as_deref())?,
        };
        Ok(Arc::new(GpfdistTransport { config, program }))
    }
}

/// The configured gpfdist, else `gpfdist` on PATH, else `$GPHOME/bin/gpfdist`.
fn find_program(configured: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("gpfdist = {:?} is not a file; give the path of a Greenplum install's bin/gpfdist", p))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("gpfdist")).find(|p| p.is_file()))
        .unwrap_or_default();
    let in_gphome = || std::env::var_os("GPHOME").map(|h| PathBuf::from(h).join("bin/gpfdist")).filter(|p| p.is_file());
    on_path.or_else(in_gphome).ok_or_else(|| {
        "gpfdist is neither on PATH nor in $GPHOME/bin; set gpfdist = \"/path/to/greenplum/bin/gpfdist\"".to_string()
    })
}

fn flavour_problem(side: &str, flavour: Flavour) -> Option<String> {
    (!flavour.is_greenplum()).then(|| {
        format!(
            "the {side} cluster is {flavour}, not Greenplum: it has no segments to move rows between; use transport \
             \"stream\" for it"
        )
    })
}

#[async_trait]
impl Transport for GpfdistTransport {
    fn formats(&self) -> Vec<CopyFormat> {
        // The segments write and read the text format; the engine's choice is not used.
        vec![CopyFormat::Text]
    }

    async fn deliver(
        &self,
        ctx: &WindowCtx,
        _rows: ByteStream,
        _sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        Err(RoleError::new(format!(
            "transport gpfdist moves windows segment to segment and carries no byte stream (table {})",
            ctx.table.display_name()
        )))
    }

    async fn move_window(
        &self,
        ctx: &WindowCtx,
        source: &dyn Source,
        sink: &mut dyn SinkWindow,
    ) -> Option<Result<Delivered, RoleError>> {
        let limit = self.config.timeout.0;
        let moved = match tokio::time::timeout(limit, self.segment_to_segment(ctx, source, sink)).await {
            Ok(r) => r,
            // Dropping the window's future killed its gpfdist processes.
            Err(_) => Err(RoleError::new(format!(
                "window {} of {} did not finish within the gpfdist transport's timeout ({}); raise `timeout` or make \
                 the windows smaller",
                ctx.window.id(),
                ctx.table.display_name(),
                self.config.timeout
            ))),
        };
        Some(moved)
    }

    fn check_chain(&self, chain: &ChainCheck<'_>) -> Result<(), String> {
        let t = chain.table;
        if t.mode == Mode::Merge {
            return Err(
                "merge keeps the last row of each key in source order, which the source's segments writing in \
                 parallel cannot keep; use mode replace, append or full with transport gpfdist, or transport \
                 \"stream\" for merge"
                    .into(),
            );
        }
        if let Some(p) = flavour_problem("source", chain.source_flavour) {
            return Err(p);
        }
        if let Some(p) = flavour_problem("target", chain.target_flavour) {
            return Err(p);
        }
        if !chain.source.exports(chain.source_flavour) {
            return Err(format!(
                "source {:?} cannot have the segments of a {} cluster write through a writable external table",
                t.source.get_ref().plugin,
                chain.source_flavour
            ));
        }
        if !chain.sink.loads_external(chain.target_flavour) {
            return Err(format!(
                "sink {:?} cannot have the segments of a {} cluster read a readable external table; use sink \"copy\"",
                t.sink.get_ref().plugin,
                chain.target_flavour
            ));
        }
        Ok(())
    }

    async fn check_clusters(
        &self,
        table: &TableSpec,
        source: &Session,
        target: &Session,
        probe: bool,
    ) -> Result<(), String> {
        reach::check(self, table, source, target, probe).await
    }
}

/// What the transport proves of the clusters before any data moves.
mod reach {
    use super::check::{missing_privileges, unreachable_segments_on, ProbeHost, Side, DEFAULT_PROBE_TIMEOUT};
    use super::*;

    /// Both roles may create the temporary external tables of their side (every run: one
    /// catalog query per cluster); with `probe` (`config check`), every segment of both
    /// clusters also reaches `host` on the port range (a gpfdist started for it, seconds).
    /// Every problem found is named, not only the first.
    pub(super) async fn check(
        transport: &GpfdistTransport,
        table: &TableSpec,
        source: &Session,
        target: &Session,
        probe: bool,
    ) -> Result<(), String> {
        let sides = [(source, &table.from, Side::Source), (target, &table.to, Side::Target)];
        let mut problems = Vec::new();
        for (session, cluster, side) in sides {
            match missing_privileges(&session.client, cluster, side).await {
                Ok(None) => {}
                Ok(Some(missing)) => problems.push(missing),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() && probe {
            let [first, last] = transport.config.port_range;
            let ports: Vec<u16> = (first..=last).collect();
            for (session, cluster, side) in sides {
                let at = match &transport.config.ssh {
                    Some(ssh) => ProbeHost::Ssh {
                        ssh: ssh.session(),
                        program: transport.program.display().to_string(),
                        work_dir: transport.config.work_dir.clone(),
                    },
                    None => ProbeHost::Local(&transport.program),
                };
                if let Err(e) = unreachable_segments_on(
                    &session.client,
                    cluster,
                    side,
                    &transport.config.host,
                    &ports,
                    at,
                    DEFAULT_PROBE_TIMEOUT,
                )
                .await
                {
                    problems.push(e);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

impl GpfdistTransport {
    /// Starts the window's gpfdist processes: here, or on the ETL host over SSH.
    async fn start_servers(&self, ctx: &WindowCtx) -> Result<Servers, RoleError> {
        // Idle that long, it is an orphan whatever else failed.
        let watchdog_seconds = self.config.timeout.0.as_secs().max(60);
        let ports = (self.config.port_range[0], self.config.port_range[1]);
        if let Some(ssh) = &self.config.ssh {
            let script = remote::window_script(&RemoteLaunch {
                program: &self.program.display().to_string(),
                work_dir: self.config.work_dir.as_deref(),
                ports,
                max_row_bytes: self.config.max_row_bytes,
                watchdog_seconds,
            });
            let window = RemoteWindow::start(ssh.session(), script, ports).await.map_err(|e| {
                RoleError::new(format!(
                    "window {} of {}: cannot start its gpfdist processes over SSH: {e}",
                    ctx.window.id(),
                    ctx.table.display_name(),
                ))
            })?;
            return Ok(Servers::Remote(window));
        }
        // Declared first, dropped last: the FIFO and the logs go after the processes.
        let base = self.config.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = std::fs::create_dir_all(&base)
            .and_then(|()| {
                workdir::sweep_once(&base);
                tempfile::Builder::new().prefix(workdir::PREFIX).tempdir_in(&base)
            })
            .map_err(|e| RoleError::new(format!("cannot make the window's directory for gpfdist: {e}")))?;
        let lock = workdir::lock(dir.path())?;
        let (path, name) = fifo::create(dir.path())?;
        let keeper = fifo::Keeper::hold(&path)?;
        let launch = |role| Launch {
            program: &self.program,
            dir: dir.path(),
            ports,
            max_row_bytes: self.config.max_row_bytes,
            watchdog_seconds,
            role,
        };
        let writer = Gpfdist::start(&launch("writer")).await?;
        let reader = Gpfdist::start(&launch("reader")).await?;
        Ok(Servers::Local(Box::new(LocalServers {
            processes: std::sync::Mutex::new((writer, reader)),
            keeper,
            name,
            lock,
            dir,
        })))
    }

    async fn segment_to_segment(
        &self,
        ctx: &WindowCtx,
        source: &dyn Source,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        let table = ctx.table.display_name();
        let window = ctx.window.id();
        let servers = self.start_servers(ctx).await?;
        let (writer_port, reader_port, name) = servers.where_();
        tracing::debug!(
            table = %table, window = %window,
            "gpfdist: writer on port {writer_port}, reader on port {reader_port}, FIFO {name}{}",
            self.config.ssh.as_ref().map_or_else(String::new, |s| format!(" on {} over SSH", s.host))
        );
        let url = |port: u16| format!("gpfdist://{}:{port}/{name}", self.config.host);
        // The bytes between the segments: UTF-8, or the source's stored encoding that the
        // database cannot tell (GBK in SQL_ASCII), which the target converts.
        let encoding = source.stored_text_encoding().unwrap_or("UTF8").to_string();
        let (stop, signal) = StopSignal::new();
        let timeout = self.config.timeout.0;
        let out = ExternalLocation { url: url(writer_port), encoding: encoding.clone(), timeout, stop: signal.clone() };
        let inn = ExternalLocation { url: url(reader_port), encoding, timeout, stop: signal };
        // The side that failed first: its error is the cause, the other's its consequence
        // (the processes killed under it, its statement stopped).
        let first_failure = std::sync::Mutex::new(None::<Side>);
        let failed = |side: Side| {
            first_failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(side);
            servers.kill();
            let _ = stop.send(true);
        };

        let export = async {
            let exported = source.export(ctx, &out).await;
            // Every segment is done writing (or none will): the reader may see EOF.
            servers.release();
            if exported.is_err() {
                // The target's segments would wait on a FIFO nobody writes.
                failed(Side::Source);
            }
            exported
        };
        let load = async {
            let loaded = sink.load_external(&inn).await;
            if loaded.is_err() {
                // The source's segments would block on a FIFO nobody reads.
                failed(Side::Target);
            }
            loaded
        };
        // A gpfdist process (or the remote shell holding them) that ends during the window ends
        // the window at once; otherwise each side would wait out the segments' retries.
        let mut ended = None;
        let (exported, loaded) = {
            let both = async { tokio::join!(export, load) };
            tokio::pin!(both);
            tokio::select! {
                done = &mut both => done,
                why = servers.ended() => {
                    ended = Some(why);
                    failed(Side::Servers);
                    both.await
                }
            }
        };
        let Finished { writer_log, reader_log, bytes } = servers.finish(exported.is_err() || loaded.is_err()).await;
        let first = first_failure.into_inner().unwrap_or_else(|p| p.into_inner());
        if let (Some(why), Some(Side::Servers)) = (ended, first) {
            if exported.is_err() || loaded.is_err() {
                return Err(RoleError::new(format!("window {window} of {table}: {why}")));
            }
        }
        let explain = |e, log| log::explain(e, log, self.config.max_row_bytes);
        let (rows_read, rows_written) = match (exported, loaded) {
            (Ok(read), Ok(written)) => (read, written),
            (Err(e), Ok(_)) => return Err(explain(e, &writer_log)),
            (Ok(_), Err(e)) => return Err(explain(e, &reader_log)),
            (Err(e), Err(_)) if first == Some(Side::Source) => return Err(explain(e, &writer_log)),
            (Err(_), Err(e)) => return Err(explain(e, &reader_log)),
        };
        // The text the source's segments wrote; 0 where the ETL host cannot tell.
        let bytes = bytes.unwrap_or(0);
        ctx.counters.add(rows_read, bytes);
        Ok(Delivered { rows_read, bytes, rows_written, ..Delivered::default() })
    }
}

/// The window's gpfdist processes on this host, the FIFO's keeper, and their directory
/// (dropped last: the FIFO and the logs go after the processes).
struct LocalServers {
    processes: std::sync::Mutex<(Gpfdist, Gpfdist)>,
    keeper: fifo::Keeper,
    name: String,
    /// This process's lock on `dir` ([`workdir`]).
    lock: std::fs::File,
    dir: tempfile::TempDir,
}

/// A window's two gpfdist processes and the FIFO between them.
enum Servers {
    /// On this host.
    Local(Box<LocalServers>),
    /// On the ETL host over SSH: dropped, they are ended there.
    Remote(RemoteWindow),
}

impl Servers {
    /// The writer's port, the reader's port and the FIFO's name.
    fn where_(&self) -> (u16, u16, String) {
        match self {
            Servers::Local(local) => {
                let p = local.processes.lock().unwrap_or_else(|p| p.into_inner());
                (p.0.port, p.1.port, local.name.clone())
            }
            Servers::Remote(w) => (w.ready.writer.0, w.ready.reader.0, w.ready.name.clone()),
        }
    }

    /// Lets the reader see EOF once the writing gpfdist has closed the FIFO too.
    fn release(&self) {
        match self {
            Servers::Local(local) => local.keeper.release(),
            Servers::Remote(w) => w.release(),
        }
    }

    /// Returns once a gpfdist process has ended (or the remote shell holding them), with what
    /// happened; never while they run. Looked at every 250 ms.
    async fn ended(&self) -> String {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let ended = match self {
                Servers::Local(local) => {
                    let mut p = local.processes.lock().unwrap_or_else(|p| p.into_inner());
                    p.0.exited().or_else(|| p.1.exited())
                }
                Servers::Remote(w) => w.ended(),
            };
            if let Some(why) = ended {
                return why;
            }
        }
    }

    /// Kills both gpfdist processes (a side failed).
    fn kill(&self) {
        match self {
            Servers::Local(local) => {
                let mut p = local.processes.lock().unwrap_or_else(|p| p.into_inner());
                p.0.kill();
                p.1.kill();
            }
            Servers::Remote(w) => w.kill(),
        }
    }

    /// Stops both and removes the window's directory; returns what the writer and the reader
    /// logged, read from this host's log files only when the window `failed` (they explain
    /// errors, and a window that succeeded has none), and the bytes the writer put into the
    /// FIFO.
    async fn finish(self, failed: bool) -> Finished {
        match self {
            Servers::Local(local) => {
                let LocalServers { processes, keeper, name: _, lock, dir } = *local;
                let (writer, reader) = processes.into_inner().unwrap_or_else(|p| p.into_inner());
                let logs = (writer.log.clone(), reader.log.clone());
                let bytes = writer.bytes_written().await;
                writer.stop().await;
                reader.stop().await;
                drop(keeper);
                let logged = |log: &std::path::Path| log::Logged {
                    text: if failed { std::fs::read_to_string(log).unwrap_or_default() } else { String::new() },
                    place: "gpfdist log".to_string(),
                    silent: None,
                };
                let found = Finished { writer_log: logged(&logs.0), reader_log: logged(&logs.1), bytes };
                drop(lock);
                drop(dir);
                found
            }
            Servers::Remote(w) => {
                let target = w.target().to_string();
                let (logs, bytes) = w.stop().await;
                let of = |role: &str| log::Logged {
                    text: logs.iter().filter(|(r, _)| r == role).map(|(_, l)| format!("{l}\n")).collect(),
                    place: format!("gpfdist log on the ETL host {target}"),
                    // The host is named even when gpfdist logged nothing: the place to look.
                    silent: Some(format!("gpfdist ({role}) on the ETL host {target}")),
                };
                Finished { writer_log: of("writer"), reader_log: of("reader"), bytes }
            }
        }
    }
}

/// What a window's gpfdist processes left when they were stopped.
struct Finished {
    writer_log: log::Logged,
    reader_log: log::Logged,
    /// The bytes the writer put into the FIFO; None where the host does not tell.
    bytes: Option<u64>,
}

/// A side of the window, or its gpfdist processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
    Servers,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GpfdistConfig, String> {
        GpfdistConfig::parse(&toml::from_str::<toml::Table>(text).map_err(|e| e.to_string())?)
    }

    #[test]
    fn options() {
        let c = parse("host = \"10.0.0.5\"\nport_range = [8100, 8199]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.timeout.0, Duration::from_secs(3600));
        assert_eq!(c.max_row_bytes, 1024 * 1024);
        assert!(parse("host = \"h\"\nport_range = [8100, 8100]").unwrap_err().contains("two ports"));
        assert!(parse("host = \"h\"\nport_range = [8100, 8199]\nmax_row_bytes = 10").unwrap_err().contains("32768"));
        assert!(parse("host = \"h\"\nport_range = [1, 2]\nbogus = 1").unwrap_err().contains("bogus"));
    }

    #[test]
    fn ssh_options() {
        let base = "host = \"10.0.0.5\"\nport_range = [8100, 8199]\n";
        let c =
            parse(&format!("{base}ssh = {{ host = \"etl\", user = \"gpadmin\" }}")).unwrap_or_else(|e| panic!("{e}"));
        let ssh = c.ssh.unwrap_or_else(|| panic!("no ssh"));
        assert_eq!(
            (ssh.port, ssh.connect_timeout.0, ssh.read_timeout.0),
            (22, Duration::from_secs(10), Duration::from_secs(300))
        );
        let refused = |extra: &str| parse(&format!("{base}{extra}")).unwrap_err();
        assert!(refused("gpfdist = \"bin/gpfdist\"\nssh = { host = \"etl\", user = \"u\" }")
            .contains("absolute path on the ETL host etl"));
        assert!(refused("work_dir = \"tmp\"\nssh = { host = \"etl\", user = \"u\" }").contains("work_dir"));
        assert!(refused("ssh = { host = \"etl\", user = \"\" }").contains("ssh.user"));
        assert!(refused("ssh = { host = \"etl\", user = \"u\", root = \"/x\" }").contains("root"));
        assert!(refused("ssh = { host = \"etl\", user = \"u\", connect_timeout = \"0s\" }").contains("connect_timeout"));
        // Without ssh a relative gpfdist is a local path, as before.
        assert!(parse(&format!("{base}gpfdist = \"bin/gpfdist\"")).is_ok());
    }
}
