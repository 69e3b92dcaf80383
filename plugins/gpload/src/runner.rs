//! Where gpload runs. Files are put and commands run through this trait, so the same sink runs
//! gpload locally ([`LocalRunner`]) or on an ETL host over SSH (a runner added later).

use std::path::Path;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// What a command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit status; 128 + n when killed by signal n.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Puts files on, and runs commands on, the host gpload runs on.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Creates (or truncates) `path` with `bytes`.
    async fn put_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String>;

    /// Appends `bytes` to `path`, which `put_file` created.
    async fn append_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String>;

    /// Removes `path`; a missing file is not an error.
    async fn remove_file(&self, path: &Path) -> Result<(), String>;

    /// Runs `args[0]` with `args[1..]` (no shell) and `env` added to its environment. Secrets
    /// travel in `env`, never in `args`.
    async fn run(&self, args: &[String], env: &[(String, String)]) -> Result<RunOutput, String>;
}

/// Runs gpload on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalRunner;

#[async_trait]
impl Runner for LocalRunner {
    async fn put_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tokio::fs::write(path, bytes).await.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    async fn append_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        let mut f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        f.write_all(bytes).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.flush().await.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    async fn remove_file(&self, path: &Path) -> Result<(), String> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        }
    }

    async fn run(&self, args: &[String], env: &[(String, String)]) -> Result<RunOutput, String> {
        let Some((program, rest)) = args.split_first() else {
            return Err("no command to run".into());
        };
        let output = tokio::process::Command::new(program)
            .args(rest)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("{program}: command not found (set the sink's gpload option)"),
                std::io::ErrorKind::PermissionDenied => format!("{program}: not executable ({e})"),
                _ => format!("cannot start {program}: {e}"),
            })?;
        #[cfg(unix)]
        let code = {
            use std::os::unix::process::ExitStatusExt;
            output.status.code().or_else(|| output.status.signal().map(|s| 128 + s)).unwrap_or(-1)
        };
        #[cfg(not(unix))]
        let code = output.status.code().unwrap_or(-1);
        Ok(RunOutput {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
