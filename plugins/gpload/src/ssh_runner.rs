//! [`SshRunner`]: gpload on the ETL host over SSH (plugins/ssh).
//!
//! Files: `put_file` uploads at once over SFTP (so an unwritable `work_dir` fails the window
//! before any row moves) and starts a local staging copy; `append_file` appends to that local
//! copy; `run` uploads every file appended to since (temporary name, then rename) before it runs
//! the command. SFTP append is not used: servers differ in how they honour it.
//!
//! The password: neither argv (any user on the ETL host sees it in `ps`) nor a file (it would
//! outlive a crash). The remote shell reads it from the channel's standard input with the
//! builtin `read` and exports it as `PGPASSWORD` to gpload only:
//! `IFS= read -r PGPASSWORD && export PGPASSWORD && exec 'gpload' -f '…'` — the secret travels
//! inside the encrypted channel, is never on disk and never in a process's arguments. This needs
//! a POSIX login shell (sh, bash, ksh, zsh) for the remote user.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gptransfer_plugin_ssh::{command_line, explain_exit, shell_quote, Ssh, Watch};

use crate::runner::{RunOutput, Runner};

/// A local copy of a remote file being appended to.
struct Staged {
    file: tempfile::NamedTempFile,
    dirty: bool,
}

struct Inner {
    ssh: Ssh,
    staged: HashMap<PathBuf, Staged>,
    /// Shell text run before gpload: its GPHOME (see `gphome::remote_prefix`).
    prefix: String,
    /// The longest one gpload run may take.
    timeout: Duration,
}

/// Runs gpload on a remote host through an open [`Ssh`] session.
#[derive(Clone)]
pub struct SshRunner {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SshRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRunner").finish_non_exhaustive()
    }
}

impl SshRunner {
    /// A runner on `ssh` (connected and authenticated); `prefix` runs before each command,
    /// which may run for `timeout`.
    pub fn new(ssh: Ssh, prefix: String, timeout: Duration) -> SshRunner {
        SshRunner { inner: Arc::new(Mutex::new(Inner { ssh, staged: HashMap::new(), prefix, timeout })) }
    }

    /// Runs `f` with the session on a blocking thread (libssh2 blocks), one call at a time.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().map_err(|_| "ssh: the session was poisoned by a panic".to_string())?;
            f(&mut guard)
        })
        .await
        .map_err(|e| format!("ssh: a remote operation stopped unexpectedly: {e}"))?
    }
}

fn upload(inner: &mut Inner, path: &Path) -> Result<(), String> {
    let Some(staged) = inner.staged.get_mut(path) else {
        return Ok(());
    };
    staged.file.as_file_mut().flush().map_err(|e| format!("cannot write a staging copy of {}: {e}", path.display()))?;
    inner.ssh.put(staged.file.path(), path).map_err(|e| e.0)?;
    staged.dirty = false;
    Ok(())
}

fn mkdir_p(ssh: &Ssh, dir: &Path) -> Result<(), String> {
    let dir = dir.display().to_string();
    let out = ssh.run(&["mkdir", "-p", "-m", "700", &dir]).map_err(|e| e.0)?;
    if out.code != 0 {
        return Err(format!("ssh {}: cannot create {dir}: {}", ssh.target, out.explain()));
    }
    Ok(())
}

#[async_trait]
impl Runner for SshRunner {
    async fn put_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
        self.with(move |inner| {
            if let Some(dir) = path.parent() {
                mkdir_p(&inner.ssh, dir)?;
            }
            let mut file =
                tempfile::NamedTempFile::new().map_err(|e| format!("cannot create a local staging file: {e}"))?;
            file.write_all(&bytes).map_err(|e| format!("cannot write a local staging file: {e}"))?;
            inner.staged.insert(path.clone(), Staged { file, dirty: true });
            upload(inner, &path)
        })
        .await
    }

    async fn append_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
        self.with(move |inner| {
            let staged = inner
                .staged
                .get_mut(&path)
                .ok_or_else(|| format!("cannot append to {}: it was not created first", path.display()))?;
            staged.file.write_all(&bytes).map_err(|e| format!("cannot write a local staging file: {e}"))?;
            staged.dirty = true;
            Ok(())
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> Result<(), String> {
        let path = path.to_path_buf();
        self.with(move |inner| {
            inner.staged.remove(&path);
            let sftp = inner.ssh.sftp().map_err(|e| e.0)?;
            match sftp.unlink(&path) {
                Ok(()) => Ok(()),
                Err(_) if sftp.lstat(&path).is_err() => Ok(()),
                Err(e) => Err(format!("ssh {}: cannot remove {}: {e}", inner.ssh.target, path.display())),
            }
        })
        .await
    }

    async fn run(&self, args: &[String], env: &[(String, String)]) -> Result<RunOutput, String> {
        let (args, env) = (args.to_vec(), env.to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let (done, finished) = mpsc::channel::<()>();
        let guard = StopOnDrop { stop: stop.clone(), finished: Some(finished) };
        let result = self
            .with(move |inner| {
                // Dropped when this ends, which is what a dropped run waits for.
                let _done = done;
                run_remote(inner, &args, &env, &stop)
            })
            .await;
        guard.disarm();
        result
    }
}

/// What to do about a run stopped at its timeout.
pub(crate) const TIMEOUT_HINT: &str = " (raise the gpload sink's `timeout` if loads this long are expected)";

/// Set on a run whose future is dropped (an interrupted window): the remote gpload is killed
/// before the drop returns, so nothing loads on after the window is reported rolled back.
struct StopOnDrop {
    stop: Arc<AtomicBool>,
    finished: Option<mpsc::Receiver<()>>,
}

impl StopOnDrop {
    fn disarm(mut self) {
        self.finished = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let Some(finished) = self.finished.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // The kill takes at most ~10 s on the host (SIGTERM, then SIGKILL); the sender is
        // dropped when the remote run has ended.
        let _ = finished.recv_timeout(Duration::from_secs(45));
    }
}

/// Uploads what changed, then runs `args` on the host with `env` passed on stdin; stops it at
/// the runner's timeout or when `stop` is set.
fn run_remote(
    inner: &mut Inner,
    args: &[String],
    env: &[(String, String)],
    stop: &AtomicBool,
) -> Result<RunOutput, String> {
    if stop.load(Ordering::SeqCst) {
        return Err("interrupted before gpload started".into());
    }
    let dirty: Vec<PathBuf> = inner.staged.iter().filter(|(_, s)| s.dirty).map(|(p, _)| p.clone()).collect();
    for p in dirty {
        upload(inner, &p)?;
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let program = argv.first().copied().unwrap_or_default().to_string();
    // Secrets come on stdin, one line each, read by the shell's builtin `read`.
    let mut line = inner.prefix.clone();
    let mut input = String::new();
    for (k, v) in env {
        if !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || k.is_empty() {
            return Err(format!("cannot pass {k:?} to the remote command: not an environment variable name"));
        }
        if v.contains('\n') {
            return Err(format!("cannot pass {k} to the remote command: its value contains a newline"));
        }
        line.push_str(&format!("IFS= read -r {k} && export {k} && "));
        input.push_str(v);
        input.push('\n');
    }
    line.push_str("exec ");
    line.push_str(&command_line(&argv));
    let watch = Watch { timeout: Some(inner.timeout), stop: Some(stop) };
    let started = std::time::Instant::now();
    let out = inner.ssh.run_line_watched(&line, input.as_bytes(), watch).map_err(|e| {
        let hint = if started.elapsed() >= inner.timeout { TIMEOUT_HINT } else { "" };
        format!("{} on the ETL host: {}{hint}", shell_quote(&program), e.0)
    })?;
    if matches!(out.code, 126 | 127 | 255) {
        // Not gpload's own failure: the remote host could not run it.
        return Err(format!(
            "ssh {}: {}: {}",
            inner.ssh.target,
            shell_quote(&program),
            explain_exit(out.code, &out.stderr)
        ));
    }
    Ok(RunOutput { code: out.code, stdout: out.stdout, stderr: out.stderr })
}
