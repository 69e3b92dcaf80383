//! A remote shell talked to line by line over SSH, its blocking session in a thread of its own.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gptransfer_plugin_ssh::{connect, SshConfig};

use super::in_sh;

/// How often the session's thread looks for output and orders.
const TICK: Duration = Duration::from_millis(10);

/// A remote shell talked to line by line, on an SSH connection of its own driven by a thread
/// (libssh2 blocks). Dropped, the thread closes the connection and the shell sees EOF.
pub struct RemoteShell {
    /// `user@host:port` of the ETL host, for messages.
    pub target: String,
    orders: mpsc::Sender<String>,
    lines: tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
}

impl RemoteShell {
    /// Logs in and starts `script`.
    pub fn start(ssh: SshConfig, script: String) -> Result<RemoteShell, String> {
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let (orders, orders_rx) = mpsc::channel();
        let target = format!("{}@{}:{}", ssh.user, ssh.host, ssh.port);
        std::thread::Builder::new()
            .name("gpfdist-ssh".into())
            .spawn(move || drive(&ssh, &script, &orders_rx, &lines_tx))
            .map_err(|e| format!("cannot start the thread of the SSH session: {e}"))?;
        Ok(RemoteShell { target, orders, lines })
    }

    /// Whether the shell's stdout has ended (the shell ended, or its session failed).
    pub fn ended(&self) -> bool {
        self.lines.is_closed()
    }

    /// Writes `line` to the shell's stdin.
    pub fn send(&self, line: &str) {
        let _ = self.orders.send(line.to_string());
    }

    /// The shell's next stdout line; `Ok(None)` when its stdout ended, `Err` when the session
    /// failed or `within` passed.
    pub async fn next_line(&mut self, within: Duration) -> Result<Option<String>, String> {
        match tokio::time::timeout(within, self.lines.recv()).await {
            Ok(Some(Ok(line))) => Ok(Some(line)),
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => Ok(None),
            Err(_) => Err(format!("no answer from the ETL host within {}s", within.as_secs())),
        }
    }

    /// Reads lines until one starts with `word`: returns the rest of it. A line `error …`, the
    /// shell's end or `within` passing is an `Err` with the shell's words.
    pub async fn expect(&mut self, word: &str, within: Duration) -> Result<String, String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left).await? {
                Some(line) => {
                    if line == word {
                        return Ok(String::new());
                    }
                    if let Some(rest) = line.strip_prefix(word).and_then(|r| r.strip_prefix(' ')) {
                        return Ok(rest.to_string());
                    }
                    if let Some(e) = line.strip_prefix("error ") {
                        return Err(e.to_string());
                    }
                }
                None => return Err("the remote shell ended unexpectedly".to_string()),
            }
        }
    }
}

/// The session's thread: logs in, starts the script, passes orders on as stdin lines and
/// stdout lines back, until the script's stdout ends or the orders' sender is dropped (then
/// the connection is closed, and the remote shell cleans up on the EOF).
fn drive(
    ssh: &SshConfig,
    script: &str,
    orders: &mpsc::Receiver<String>,
    lines: &tokio::sync::mpsc::UnboundedSender<Result<String, String>>,
) {
    let mut remote = match connect(ssh).and_then(|s| s.start_line(&in_sh(script))) {
        Ok(r) => r,
        Err(e) => {
            let _ = lines.send(Err(e.0));
            return;
        }
    };
    loop {
        loop {
            match orders.try_recv() {
                Ok(order) => {
                    if let Err(e) = remote.write_line(&order) {
                        let _ = lines.send(Err(e.0));
                        return;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                // Given up: the connection closes with `remote`, the shell cleans up.
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        match remote.poll_lines() {
            Err(e) => {
                let _ = lines.send(Err(e.0));
                return;
            }
            Ok((got, ended)) => {
                for line in got {
                    if lines.send(Ok(line)).is_err() {
                        return;
                    }
                }
                if ended {
                    let stderr = remote.stderr();
                    if !stderr.trim().is_empty() {
                        tracing::debug!("{}: the remote shell said on stderr: {}", remote.target(), stderr.trim());
                    }
                    return;
                }
            }
        }
        std::thread::sleep(TICK);
    }
}
