//! Proves that every primary segment of a cluster can open a TCP connection to the gpfdist
//! host and ports: a short-lived gpfdist ([`ProbeServer`]) serves on the port, and one statement
//! makes every segment connect to it through the kind of external table the cluster's side
//! uses — a READABLE one on the target (every segment requests the file), a WRITABLE one on the
//! source (one row routed to each segment, which connects to send it). gpfdist's log says which
//! segments' requests arrived; Greenplum's error names the segment that failed first. The probe
//! runs in a transaction that is rolled back (its temporary tables vanish), under a
//! `statement_timeout`, so a firewall that drops packets costs at most `timeout`.
//!
//! Greenplum stops the statement at the first failing segment, so a second one that failed at
//! the same moment may not be seen: on the source each such segment is then probed alone (a
//! writable external table connects only from segments that have rows to write); on the target
//! every segment reads, so those are named as not proven.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::privileges::db_error_text;
use super::{ProbeServer, Side};
use crate::remote::RemoteProbe;
use gptransfer_plugin_ssh::SshConfig;

/// Where the probe's gpfdist runs.
#[derive(Debug, Clone)]
pub enum ProbeHost<'a> {
    /// On this host: this gpfdist program.
    Local(&'a Path),
    /// On the ETL host over SSH.
    Ssh {
        /// The session settings.
        ssh: SshConfig,
        /// The gpfdist program there.
        program: String,
        /// Where its directory is made there (`None`: its `$TMPDIR`, else `/tmp`).
        work_dir: Option<PathBuf>,
    },
}

/// How long one probe statement may run: a segment that has not connected by then is named as
/// unreachable (packets dropped on the way).
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times the target's probe is repeated for segments it did not see.
const TARGET_RETRIES: usize = 3;

/// How many ports next to a sampled one are tried when it is busy on this host.
const BUSY_TRIES: usize = 5;

/// Extra time the client waits for the server past the statement's own timeout (GP6 answers a
/// cancelled probe within a few hundred milliseconds; GP4.3's writable probe never does, see
/// [`ProbeError::stuck`]).
const CLIENT_GRACE: Duration = Duration::from_millis(2500);

/// A primary segment, as `gp_segment_configuration` lists it.
#[derive(Debug, Clone)]
struct Segment {
    content: i32,
    dbid: i32,
    hostname: String,
    address: String,
    port: i32,
}

/// Which ports of the configured range are probed: its first and its last. Firewall rules open
/// port ranges, and a rule that lets both ends through lets the ports between them through; the
/// ends catch the usual mistake, a rule one port short or for another range. Probing every
/// port would cost a gpfdist and a statement per port (seconds for a 100-port range) for
/// little more certainty.
pub fn sample_ports(ports: &[u16]) -> Vec<u16> {
    let mut sample: Vec<u16> = ports.first().into_iter().chain(ports.last()).copied().collect();
    sample.dedup();
    sample
}

/// Checks that every primary segment of the cluster behind `client` (named `cluster` in the
/// configuration) can open a connection to `host` (the address the segments will be told to
/// use) on the sampled ports of `ports` (see [`sample_ports`]; a sampled port busy on this host
/// is replaced by its neighbour in the range), running `gpfdist` (this host's) for each.
/// `Err` names each segment that cannot — content id, dbid, host, address and port from
/// `gp_segment_configuration`, with the error Greenplum gave — and says what to do. When
/// packets are dropped it takes about `timeout` per probed port (and one more per source
/// segment probed alone); gpfdist is stopped on every path. The probe runs in transactions of
/// its own on `client` (rolled back): call it outside a transaction.
pub async fn unreachable_segments(
    client: &Client,
    cluster: &str,
    side: Side,
    host: &str,
    ports: &[u16],
    gpfdist: &Path,
    timeout: Duration,
) -> Result<(), String> {
    unreachable_segments_on(client, cluster, side, host, ports, ProbeHost::Local(gpfdist), timeout).await
}

/// [`unreachable_segments`] with the probe's gpfdist on `at`: this host, or the ETL host over
/// SSH (`host` is then that host's address as the segments reach it).
pub async fn unreachable_segments_on(
    client: &Client,
    cluster: &str,
    side: Side,
    host: &str,
    ports: &[u16],
    at: ProbeHost<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let url_host = url_host(host).ok_or_else(|| {
        format!("cluster {cluster}: gpfdist host {host:?} is not a host name or IP address the segments can be given")
    })?;
    if ports.is_empty() {
        return Err(format!("cluster {cluster}: no gpfdist port to probe (the port range is empty)"));
    }
    let segments = primaries(client).await.map_err(|e| format!("cluster {cluster}: {e}"))?;
    let plan = Plan::new(client, side, &segments, timeout).await.map_err(|e| format!("cluster {cluster}: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("gptransfer-reach-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the probe gpfdist: {e}"))?;
    let served = dir.path().join("served");
    std::fs::create_dir(&served)
        .and_then(|()| std::fs::write(served.join("probe.txt"), "1\n"))
        .map_err(|e| format!("cannot write the probe file in {}: {e}", served.display()))?;
    // Each gpfdist serves one statement: it never outlives it by more than a few seconds.
    let launcher = Launcher {
        at: match at {
            ProbeHost::Local(gpfdist) => At::Local(gpfdist.to_path_buf()),
            ProbeHost::Ssh { ssh, program, work_dir } => At::Ssh { ssh, program, work_dir },
        },
        served,
        dir: dir.path().to_path_buf(),
        life: timeout + CLIENT_GRACE + Duration::from_secs(5),
    };
    let mut failed = Vec::new();
    let ascending: Vec<u16> = ports.to_vec();
    let descending: Vec<u16> = ports.iter().rev().copied().collect();
    let mut probed = BTreeSet::new();
    for i in 0..sample_ports(ports).len() {
        let candidates = if i == 0 { &ascending } else { &descending };
        let mut server = launcher.start_near(candidates, &probed).await?;
        probed.insert(server.port());
        let url = format!("gpfdist://{url_host}:{}/probe.txt", server.port());
        let outcome = plan.probe_all(client, &url, &mut server).await;
        let port = server.port();
        server.stop().await;
        let verdict = outcome.map_err(|e| format!("cluster {cluster}: {e}"))?;
        let (failures, stuck) = match verdict {
            Verdict::Reached => (BTreeMap::new(), false),
            Verdict::Failed(failures, true) => (failures, true),
            Verdict::Failed(failures, false) => (plan.resolve(client, &url, &launcher, port, failures).await, false),
        };
        if !failures.is_empty() {
            failed.push((port, failures));
        }
        if stuck {
            // The session still runs the probe: nothing more can be asked on it.
            let mut text = report(cluster, side, host, &launcher.place(), ports, &segments, &failed);
            text.push_str(&format!(
                "\n(The probe's session on cluster {cluster} still waits for those segments: Greenplum 4.3 segments \
                 do not stop connecting when a statement is cancelled; it ends when they give up.)"
            ));
            return Err(text);
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(report(cluster, side, host, &launcher.place(), ports, &segments, &failed))
}

/// `host` as it goes into a gpfdist URL (IPv6 in brackets), or `None` when it holds anything but
/// a host name or an address (it is spliced into a LOCATION literal).
fn url_host(host: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(allowed) {
        return None;
    }
    Some(if host.contains(':') { format!("[{host}]") } else { host.to_string() })
}

/// Where a probe gpfdist is started.
enum At {
    /// On this host, this program.
    Local(PathBuf),
    /// On the ETL host over SSH.
    Ssh { ssh: SshConfig, program: String, work_dir: Option<PathBuf> },
}

/// A running probe gpfdist, here or on the ETL host.
enum Probe {
    Local(ProbeServer),
    Remote(RemoteProbe),
}

impl Probe {
    fn port(&self) -> u16 {
        match self {
            Probe::Local(s) => s.port(),
            Probe::Remote(s) => s.port(),
        }
    }

    async fn connected_segments(&mut self) -> BTreeSet<i32> {
        match self {
            Probe::Local(s) => s.connected_segments(),
            Probe::Remote(s) => s.connected_segments().await,
        }
    }

    async fn stop(self) {
        match self {
            Probe::Local(s) => s.stop().await,
            Probe::Remote(s) => s.stop().await,
        }
    }
}

/// Starts probe gpfdists (on this host in the temporary directory, or on the ETL host).
struct Launcher {
    at: At,
    /// The directory gpfdist serves (the probe file).
    served: PathBuf,
    /// Where the logs go.
    dir: PathBuf,
    /// How long one gpfdist may live.
    life: Duration,
}

impl Launcher {
    async fn start(&self, port: u16) -> Result<Probe, String> {
        match &self.at {
            At::Local(gpfdist) => {
                let log = self.dir.join(format!("gpfdist-{port}.log"));
                ProbeServer::start(gpfdist, &self.served, &log, port, self.life).await.map(Probe::Local)
            }
            At::Ssh { ssh, program, work_dir } => {
                RemoteProbe::start(ssh.clone(), program, work_dir.as_deref(), port, self.life).await.map(Probe::Remote)
            }
        }
    }

    /// Starts on the first of `candidates` (at most [`BUSY_TRIES`]) not probed yet that gpfdist
    /// can bind: a port busy on this host (another run's gpfdist) is replaced by the next.
    async fn start_near(&self, candidates: &[u16], probed: &BTreeSet<u16>) -> Result<Probe, String> {
        let mut errors = Vec::new();
        for &port in candidates.iter().filter(|p| !probed.contains(p)).take(BUSY_TRIES) {
            match self.start(port).await {
                Ok(server) => return Ok(server),
                Err(e) => errors.push(e),
            }
        }
        Err(format!("cannot start a probe gpfdist on {}: {}", self.place(), errors.join("; ")))
    }

    /// Where the probe's gpfdist runs, in words.
    fn place(&self) -> String {
        match &self.at {
            At::Local(_) => "this host".to_string(),
            At::Ssh { ssh, .. } => {
                format!("the ETL host {} ({}@{}:{} over SSH)", ssh.host, ssh.user, ssh.host, ssh.port)
            }
        }
    }
}

async fn primaries(client: &Client) -> Result<Vec<Segment>, String> {
    let rows = client
        .query(
            "SELECT content::int, dbid::int, hostname::text, address::text, port::int \
             FROM pg_catalog.gp_segment_configuration WHERE role = 'p' AND content >= 0 ORDER BY content",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read gp_segment_configuration ({})", db_error_text(&e)))?;
    let segments: Vec<Segment> = rows
        .iter()
        .map(|r| Segment { content: r.get(0), dbid: r.get(1), hostname: r.get(2), address: r.get(3), port: r.get(4) })
        .collect();
    if segments.is_empty() {
        return Err("gp_segment_configuration lists no primary segment".to_string());
    }
    Ok(segments)
}

/// What one probe statement showed.
enum Verdict {
    Reached,
    /// Segment content id → why it did not reach gpfdist; and whether the session is stuck.
    Failed(BTreeMap<i32, Failure>, bool),
}

#[derive(Debug, Clone)]
enum Failure {
    /// Greenplum's error for this segment.
    Error(String),
    /// No connection before the statement timed out.
    Silent,
    /// Not seen: the statement stopped at another segment's failure first.
    NotProven,
}

/// How the probe statement runs on this cluster's side.
struct Plan {
    side: Side,
    segments: Vec<i32>,
    timeout: Duration,
    /// Source: for each segment, a distribution-key value that lands on it.
    keys: BTreeMap<i32, i32>,
    /// GP6+: `gpfdist_retry_timeout` bounds a writable table's connect, and the error then names
    /// the segment (a read has no such bound: only the statement timeout ends it).
    retry_timeout: bool,
}

impl Plan {
    async fn new(client: &Client, side: Side, segments: &[Segment], timeout: Duration) -> Result<Plan, String> {
        let contents: Vec<i32> = segments.iter().map(|s| s.content).collect();
        let mut plan = Plan { side, segments: contents, timeout, keys: BTreeMap::new(), retry_timeout: false };
        if side == Side::Source {
            plan.keys = segment_keys(client, segments.len()).await?;
            if let Some(s) = plan.segments.iter().find(|s| !plan.keys.contains_key(s)) {
                return Err(format!("no probe row lands on segment {s}: cannot probe it"));
            }
            let row = client
                .query_one("SELECT count(*)::int FROM pg_catalog.pg_settings WHERE name = 'gpfdist_retry_timeout'", &[])
                .await
                .map_err(|e| format!("cannot read pg_settings ({})", db_error_text(&e)))?;
            plan.retry_timeout = row.get::<_, i32>(0) > 0;
        }
        Ok(plan)
    }

    /// One statement that makes every segment connect.
    async fn probe_all(&self, client: &Client, url: &str, server: &mut Probe) -> Result<Verdict, String> {
        let result = self.run(client, url, None).await?;
        let connected = server.connected_segments().await;
        let missing: Vec<i32> = self.segments.iter().copied().filter(|s| !connected.contains(s)).collect();
        let error = match result {
            Ok(()) if missing.is_empty() => return Ok(Verdict::Reached),
            // Every segment had the URL: one that did not ask had not connected.
            Ok(()) => None,
            Err(e) => Some(e),
        };
        let mut failures = BTreeMap::new();
        let named = error.as_ref().and_then(|e| named_segment(&e.message));
        if let Some(e) = error.as_ref().filter(|e| named.is_none() && !e.timed_out) {
            // Not a segment's failure (a missing privilege, an unusable URL): say it as it is.
            return Err(format!("the reach probe through {url} failed: {}", e.message));
        }
        if let (Some(seg), Some(e)) = (named, &error) {
            failures.insert(seg, Failure::Error(e.message.clone()));
        }
        let timed_out = error.as_ref().is_some_and(|e| e.timed_out);
        let stuck = error.as_ref().is_some_and(|e| e.stuck);
        for seg in missing {
            failures.entry(seg).or_insert(if timed_out || error.is_none() {
                Failure::Silent
            } else {
                Failure::NotProven
            });
        }
        if failures.is_empty() {
            // Every segment connected, yet the statement failed: say how.
            let message = error.map(|e| e.message).unwrap_or_default();
            return Err(format!("the reach probe through {url} failed: {message}"));
        }
        Ok(Verdict::Failed(failures, stuck))
    }

    /// Segments not seen because the statement stopped at another's failure: on the source each
    /// is probed alone (only segments with rows to write connect); on the target, where every
    /// segment reads, the whole probe is repeated a few times and a segment seen connecting in
    /// any of them is proven (the one that fails tends to fail first again).
    async fn resolve(
        &self,
        client: &Client,
        url: &str,
        launcher: &Launcher,
        port: u16,
        mut failures: BTreeMap<i32, Failure>,
    ) -> BTreeMap<i32, Failure> {
        let unproven = |failures: &BTreeMap<i32, Failure>| -> Vec<i32> {
            failures.iter().filter(|(_, f)| matches!(f, Failure::NotProven)).map(|(s, _)| *s).collect()
        };
        let rounds: Vec<Option<i32>> = match self.side {
            Side::Source => unproven(&failures).into_iter().map(Some).collect(),
            Side::Target => vec![None; TARGET_RETRIES],
        };
        for only in rounds {
            let pending = unproven(&failures);
            if pending.is_empty() {
                break;
            }
            let mut server = match launcher.start(port).await {
                Ok(server) => server,
                Err(e) => {
                    for seg in pending.iter().filter(|s| only.is_none() || only == Some(**s)) {
                        failures.insert(*seg, Failure::Error(format!("not probed again: {e}")));
                    }
                    continue;
                }
            };
            let result = self.run(client, url, only).await;
            let connected = server.connected_segments().await;
            server.stop().await;
            for seg in &pending {
                if connected.contains(seg) {
                    failures.remove(seg);
                }
            }
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(ProbeError { message: e, timed_out: false, stuck: false }),
            };
            let Some(error) = error else { continue };
            let named = named_segment(&error.message).or(only);
            if let Some(seg) = named.filter(|s| pending.contains(s) && !connected.contains(s)) {
                let failure = if error.timed_out { Failure::Silent } else { Failure::Error(error.message.clone()) };
                failures.insert(seg, failure);
            }
            if error.stuck {
                break;
            }
        }
        failures
    }

    /// Runs the probe statement (all segments, or only `only` on the source) in a transaction
    /// that is rolled back. Outer `Err`: the cluster did not answer; inner: the statement failed.
    async fn run(&self, client: &Client, url: &str, only: Option<i32>) -> Result<Result<(), ProbeError>, String> {
        let wait = self.timeout + CLIENT_GRACE;
        let work = async {
            client.batch_execute("BEGIN").await.map_err(ProbeError::from)?;
            let result = self.statements(client, url, only).await;
            let _ = client.batch_execute("ROLLBACK").await;
            result
        };
        match tokio::time::timeout(wait, work).await {
            Ok(result) => Ok(result),
            Err(_) => {
                // Queue the ROLLBACK behind the statement still running (a request is sent on
                // the first poll), so that the session is usable once it ends.
                let _ = tokio::time::timeout(Duration::from_millis(1), client.batch_execute("ROLLBACK")).await;
                Ok(Err(ProbeError {
                    message: format!("the probe did not end within {:.1}s", wait.as_secs_f64()),
                    timed_out: true,
                    stuck: true,
                }))
            }
        }
    }

    async fn statements(&self, client: &Client, url: &str, only: Option<i32>) -> Result<(), ProbeError> {
        let millis = self.timeout.as_millis().max(1);
        let mut setup = format!("SET LOCAL statement_timeout = {millis};\n");
        // Each URL is given to at most gp_external_max_segs segments (default 64), chosen at
        // random: all of them must connect.
        let _ = writeln!(setup, "SET LOCAL gp_external_max_segs = {};", self.segments.len().max(1));
        if self.retry_timeout {
            // Below the statement timeout, so that the writable table's error names the segment.
            let _ = writeln!(setup, "SET LOCAL gpfdist_retry_timeout = {};", (self.timeout.as_secs() / 2).max(1));
        }
        let literal = url.replace('\'', "''");
        let probe = match self.side {
            Side::Target => {
                let _ = writeln!(
                    setup,
                    "CREATE EXTERNAL TEMP TABLE gpt_reach_probe (v text) LOCATION ('{literal}') FORMAT 'TEXT';"
                );
                "SELECT count(*) FROM gpt_reach_probe".to_string()
            }
            Side::Source => {
                let _ = writeln!(
                    setup,
                    "CREATE WRITABLE EXTERNAL TEMP TABLE gpt_reach_probe (k int) LOCATION ('{literal}') \
                     FORMAT 'TEXT' DISTRIBUTED BY (k);"
                );
                let keys: Vec<String> = self
                    .keys
                    .iter()
                    .filter(|(seg, _)| match only {
                        Some(o) => o == **seg,
                        None => true,
                    })
                    .map(|(_, k)| format!("({k})"))
                    .collect();
                format!("INSERT INTO gpt_reach_probe VALUES {}", keys.join(", "))
            }
        };
        client.batch_execute(&setup).await?;
        client.batch_execute(&probe).await?;
        Ok(())
    }
}

/// A distribution-key value landing on each segment: a temporary table of 64 values per
/// segment distributed by them, read back by segment (rolled back).
async fn segment_keys(client: &Client, segments: usize) -> Result<BTreeMap<i32, i32>, String> {
    let values = segments.saturating_mul(64).max(64);
    let err = |e: tokio_postgres::Error| format!("cannot place the probe rows ({})", db_error_text(&e));
    client.batch_execute("BEGIN").await.map_err(err)?;
    let result = async {
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE gpt_reach_keys AS SELECT generate_series(1, {values}) AS k DISTRIBUTED BY (k)"
            ))
            .await?;
        client.query("SELECT gp_segment_id::int, min(k)::int FROM gpt_reach_keys GROUP BY 1", &[]).await
    }
    .await;
    let _ = client.batch_execute("ROLLBACK").await;
    let rows = result.map_err(err)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A failed probe statement.
#[derive(Debug)]
struct ProbeError {
    message: String,
    /// Cancelled by its `statement_timeout`, or not answered at all.
    timed_out: bool,
    /// Not answered even after the `statement_timeout`: the session still runs it. GP4.3's
    /// writable external table connects without looking at cancel requests, so its segments go
    /// on until their own connect attempts give up.
    stuck: bool,
}

impl From<tokio_postgres::Error> for ProbeError {
    fn from(e: tokio_postgres::Error) -> Self {
        let timed_out = e.code() == Some(&SqlState::QUERY_CANCELED);
        ProbeError { message: db_error_text(&e), timed_out, stuck: false }
    }
}

/// The segment Greenplum names at the end of a dispatched error: `… (seg0 slice1 host:port
/// pid=…)` or `… (seg0 host:port pid=…)`.
fn named_segment(message: &str) -> Option<i32> {
    message.match_indices("(seg").find_map(|(at, _)| {
        let digits: String = message[at + 4..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

fn report(
    cluster: &str,
    side: Side,
    host: &str,
    etl: &str,
    ports: &[u16],
    segments: &[Segment],
    failed: &[(u16, BTreeMap<i32, Failure>)],
) -> String {
    let how = match side {
        Side::Source => "they write the rows to gpfdist there",
        Side::Target => "they read the rows from gpfdist there",
    };
    let mut text = String::new();
    for (port, failures) in failed {
        let _ = write!(
            text,
            "cluster {cluster}: {} of {} primary segments cannot reach gpfdist at {host}:{port} ({how}):",
            failures.len(),
            segments.len()
        );
        for (content, failure) in failures {
            let seg = segments.iter().find(|s| s.content == *content);
            let place = seg.map_or_else(String::new, |s| {
                format!(" (dbid {}, host {}, address {}, port {})", s.dbid, s.hostname, s.address, s.port)
            });
            let why = match failure {
                Failure::Error(message) => message.clone(),
                Failure::Silent => "no connection before the probe's timeout: something on the way drops the packets \
                                    (a firewall), or the address leads elsewhere"
                    .to_string(),
                Failure::NotProven => "not proven: Greenplum stopped the probe at another segment's failure; \
                                       run the check again once that one is fixed"
                    .to_string(),
            };
            let _ = write!(text, "\n  - segment {content}{place}: {why}");
        }
        text.push('\n');
    }
    let range = match (ports.first(), ports.last()) {
        (Some(a), Some(b)) if a != b => format!("ports {a}-{b}"),
        (Some(a), _) => format!("port {a}"),
        _ => String::new(),
    };
    let _ = write!(
        text,
        "What to do: let the segment hosts named above open TCP connections to {host} on {range} \
         (firewalls on the segment hosts, {etl} and between them), or set the gpfdist transport's `host` to \
         an address of {etl} that those segment hosts can reach."
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_segment_of_greenplum_errors() {
        assert_eq!(
            named_segment(
                "connection with gpfdist failed for \"gpfdist://h:1/p\": error code = 111 (Connection refused);  \
                 (seg0 slice1 127.0.0.1:41910 pid=29271)"
            ),
            Some(0)
        );
        assert_eq!(
            named_segment(
                "error when connecting to gpfdist http://h:1/p, quit after 1 tries  (seg12 h:41910 pid=6452)"
            ),
            Some(12)
        );
        assert_eq!(named_segment("canceling statement due to statement timeout"), None);
    }

    #[test]
    fn samples_the_ends_of_the_range() {
        assert_eq!(sample_ports(&[8000, 8001, 8002]), vec![8000, 8002]);
        assert_eq!(sample_ports(&[8000]), vec![8000]);
        assert!(sample_ports(&[]).is_empty());
    }

    #[test]
    fn host_goes_into_the_url_only_when_plain() {
        assert_eq!(url_host("etl-1.example.com").as_deref(), Some("etl-1.example.com"));
        assert_eq!(url_host("::1").as_deref(), Some("[::1]"));
        assert_eq!(url_host("h'); DROP TABLE x; --"), None);
        assert_eq!(url_host(""), None);
    }
}
