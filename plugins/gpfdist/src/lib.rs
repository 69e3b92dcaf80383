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
    ByteStream, ChainCheck, CopyFormat, Delivered, ExternalLocation, SinkWindow, Source, Transport, WindowCtx,
};
use gptransfer_core::RoleError;

use process::{Gpfdist, Launch};

/// Options of the `gpfdist` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpfdistConfig {
    /// This host's address as the segments of both clusters reach it.
    pub host: String,
    /// The first and last port the window's two gpfdist processes may listen on.
    pub port_range: [u16; 2],
    /// The gpfdist program (default: `gpfdist` on PATH, else `$GPHOME/bin/gpfdist`).
    pub gpfdist: Option<PathBuf>,
    /// Where each window's directory (its FIFO and the gpfdist logs) is made (default: the
    /// system's temporary directory).
    pub work_dir: Option<PathBuf>,
    /// How long one window may take, end to end.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// The longest row gpfdist accepts, in bytes (its `-m`; 32 KiB to 256 MiB).
    #[serde(default = "default_max_row_bytes")]
    pub max_row_bytes: u32,
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
        Ok(c)
    }
}

/// The `gpfdist` transport.
#[derive(Debug, Clone)]
pub struct GpfdistTransport {
    config: GpfdistConfig,
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
        let program = find_program(config.gpfdist.as_deref())?;
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
    use super::check::{missing_privileges, unreachable_segments, Side, DEFAULT_PROBE_TIMEOUT};
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
                if let Err(e) = unreachable_segments(
                    &session.client,
                    cluster,
                    side,
                    &transport.config.host,
                    &ports,
                    &transport.program,
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
    async fn segment_to_segment(
        &self,
        ctx: &WindowCtx,
        source: &dyn Source,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        let table = ctx.table.display_name();
        let window = ctx.window.id();
        // Declared first, dropped last: the FIFO and the logs go after the processes.
        let dir = match &self.config.work_dir {
            Some(d) => std::fs::create_dir_all(d)
                .and_then(|()| tempfile::Builder::new().prefix("gptransfer-gpfdist-").tempdir_in(d)),
            None => tempfile::Builder::new().prefix("gptransfer-gpfdist-").tempdir(),
        }
        .map_err(|e| RoleError::new(format!("cannot make the window's directory for gpfdist: {e}")))?;
        let (path, name) = fifo::create(dir.path())?;
        let keeper = fifo::Keeper::hold(&path)?;
        let launch = |role| Launch {
            program: &self.program,
            dir: dir.path(),
            ports: (self.config.port_range[0], self.config.port_range[1]),
            max_row_bytes: self.config.max_row_bytes,
            // Idle that long, it is an orphan whatever else failed.
            watchdog_seconds: self.config.timeout.0.as_secs().max(60),
            role,
        };
        let writer = Gpfdist::start(&launch("writer")).await?;
        let reader = Gpfdist::start(&launch("reader")).await?;
        tracing::debug!(
            table = %table, window = %window,
            "gpfdist: writer on port {} (pid {:?}), reader on port {} (pid {:?}), FIFO {}",
            writer.port, writer.pid(), reader.port, reader.pid(), path.display()
        );
        let url = |port: u16| format!("gpfdist://{}:{port}/{name}", self.config.host);
        // The bytes between the segments: UTF-8, or the source's stored encoding that the
        // database cannot tell (GBK in SQL_ASCII), which the target converts.
        let encoding = source.stored_text_encoding().unwrap_or("UTF8").to_string();
        let out =
            ExternalLocation { url: url(writer.port), encoding: encoding.clone(), timeout: self.config.timeout.0 };
        let inn = ExternalLocation { url: url(reader.port), encoding, timeout: self.config.timeout.0 };
        let processes = std::sync::Mutex::new((writer, reader));
        // The side that failed first: its error is the cause, the other's its consequence
        // (the processes killed under it).
        let first_failure = std::sync::Mutex::new(None::<Side>);
        let failed = |side: Side| {
            first_failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(side);
            let mut p = processes.lock().unwrap_or_else(|p| p.into_inner());
            p.0.kill();
            p.1.kill();
        };

        let export = async {
            let exported = source.export(ctx, &out).await;
            // Every segment is done writing (or none will): the reader may see EOF.
            keeper.release();
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
        let (exported, loaded) = tokio::join!(export, load);
        let (writer, reader) = processes.into_inner().unwrap_or_else(|p| p.into_inner());
        let logs = (writer.log.clone(), reader.log.clone());
        writer.stop().await;
        reader.stop().await;
        drop(keeper);
        let first = first_failure.into_inner().unwrap_or_else(|p| p.into_inner());
        let explain = |e, log| log::explain(e, log, self.config.max_row_bytes);
        let (rows_read, rows_written) = match (exported, loaded) {
            (Ok(read), Ok(written)) => (read, written),
            (Err(e), Ok(_)) => return Err(explain(e, &logs.0)),
            (Ok(_), Err(e)) => return Err(explain(e, &logs.1)),
            (Err(e), Err(_)) if first == Some(Side::Source) => return Err(explain(e, &logs.0)),
            (Err(_), Err(e)) => return Err(explain(e, &logs.1)),
        };
        ctx.counters.add(rows_read, 0);
        drop(dir);
        Ok(Delivered { rows_read, bytes: 0, rows_written, ..Delivered::default() })
    }
}

/// A side of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
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
}
