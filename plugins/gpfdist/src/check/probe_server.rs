//! A short-lived gpfdist on this host for the reach probe: serves one directory on one port,
//! logs every request verbosely (the log names the segment of each request in its
//! `X-GP-SEGMENT-ID` header, on GP4.3, GP6 and GP7 alike), and never outlives the probe: it runs
//! under `timeout -k 2 -s KILL` (so even a SIGKILL of gptransfer leaves it at most `life`
//! seconds), in a process group of its own that is sent SIGTERM when the server is stopped or
//! dropped: `timeout` passes it on, reaps gpfdist and exits (a KILL follows 2 s later if gpfdist
//! ignored it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::{Child, Command};

/// How long gpfdist may take to open its port.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`ProbeServer::stop`] waits for a terminated gpfdist before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running probe gpfdist; killed on [`ProbeServer::stop`] or drop.
#[derive(Debug)]
pub struct ProbeServer {
    child: Child,
    group: Option<Pid>,
    log: PathBuf,
    port: u16,
}

impl ProbeServer {
    /// Starts `gpfdist` serving `dir` on `port`, its output (verbose) in `log`, and waits until
    /// it listens. It is killed after `life` whatever happens.
    pub async fn start(gpfdist: &Path, dir: &Path, log: &Path, port: u16, life: Duration) -> Result<Self, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut command = Command::new("timeout");
        command
            .args(["-k", "2", "-s", "KILL", &life.as_secs().max(1).to_string()])
            .arg(gpfdist)
            .arg("-d")
            .arg(dir)
            .args(["-p", &port.to_string(), "-V"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group, so that one signal reaches `timeout` and gpfdist both. Not
            // kill_on_drop: a SIGKILL would stop `timeout` before it reaps gpfdist.
            .process_group(0);
        let child =
            command.spawn().map_err(|e| format!("cannot start {} (under `timeout`): {e}", gpfdist.display()))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
        let mut server = ProbeServer { child, group, log: log.to_path_buf(), port };
        server.wait_listening(gpfdist).await?;
        Ok(server)
    }

    /// The port it serves.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn wait_listening(&mut self, gpfdist: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log_text();
            if log.contains("Serving HTTP on port") {
                return Ok(());
            }
            let exited = self.child.try_wait().map_err(|e| format!("gpfdist: {e}"))?;
            if exited.is_some() || Instant::now() > deadline {
                let why = if exited.is_some() { "exited" } else { "did not open its port in time" };
                return Err(format!(
                    "gpfdist ({}) on port {} of this host {why}: {}",
                    gpfdist.display(),
                    self.port,
                    last_lines(&log, 3)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The segments (content ids) whose requests reached this gpfdist so far, from its log.
    pub fn connected_segments(&self) -> BTreeSet<i32> {
        self.log_text()
            .lines()
            .filter_map(|line| line.split("X-GP-SEGMENT-ID:").nth(1))
            .filter_map(|rest| rest.trim().parse().ok())
            .collect()
    }

    fn log_text(&self) -> String {
        // gpfdist's log may hold bytes of a request that are not UTF-8.
        std::fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Terminates gpfdist and its `timeout` wrapper and reaps the wrapper (killing both if they
    /// have not ended within [`STOP_TIMEOUT`]).
    pub async fn stop(mut self) {
        self.signal(Signal::TERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_err() {
            // The wrapper is not reaped yet, so its group id cannot have been reused.
            self.signal(Signal::KILL);
            let _ = self.child.wait().await;
        }
        self.group = None;
    }

    fn signal(&self, signal: Signal) {
        if let Some(group) = self.group {
            // ESRCH (already gone) is what we want anyway.
            let _ = kill_process_group(group, signal);
        }
    }
}

impl Drop for ProbeServer {
    /// Abandoned (the check's future dropped): terminate; the runtime reaps the wrapper.
    fn drop(&mut self) {
        self.signal(Signal::TERM);
    }
}

/// The last `n` non-empty lines of `text`, on one line.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    if tail.is_empty() {
        "no output".to_string()
    } else {
        tail.join(" | ")
    }
}
