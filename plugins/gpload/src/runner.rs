//! Where gpload runs. Files are put and commands run through this trait, so the same sink runs
//! gpload locally ([`LocalRunner`]) or on an ETL host over SSH ([`crate::SshRunner`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::group::ProcessGroup;

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
    /// travel in `env`, never in `args`. A run past the runner's timeout, or one whose future is
    /// dropped (Ctrl+C, SIGTERM), is killed with everything it started before it returns.
    async fn run(&self, args: &[String], env: &[(String, String)]) -> Result<RunOutput, String>;
}

/// Runs gpload on this machine, with the environment of its Greenplum install.
#[derive(Debug, Clone)]
pub struct LocalRunner {
    /// What `greenplum_path.sh` would export (empty when the install is unknown).
    env: Vec<(String, String)>,
    /// The longest one run may take.
    timeout: Duration,
}

/// How long a run may take unless the sink says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

impl LocalRunner {
    /// This runner with runs limited to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> LocalRunner {
        self.timeout = timeout;
        self
    }

    /// A runner for `program` whose install is `gphome` (or the one it sits in), checked by
    /// running `program --version` with the environment it will get: a gpload that cannot run
    /// here fails `config check` and `run` before any data moves, saying why.
    pub fn for_program(program: &str, gphome: Option<&Path>) -> Result<LocalRunner, String> {
        // Every table of a config builds its own sink: check each program once per process.
        static CHECKED: Mutex<Vec<(String, Option<PathBuf>, LocalRunner)>> = Mutex::new(Vec::new());
        let key = (program.to_string(), gphome.map(Path::to_path_buf));
        let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, runner)) = checked.iter().find(|(p, h, _)| (p, h) == (&key.0, &key.1)) {
            return Ok(runner.clone());
        }
        let runner = LocalRunner::check(program, gphome)?;
        checked.push((key.0, key.1, runner.clone()));
        Ok(runner)
    }

    fn check(program: &str, gphome: Option<&Path>) -> Result<LocalRunner, String> {
        let home: Option<PathBuf> = crate::gphome::local_gphome(program, gphome);
        let env = home.as_deref().map(crate::gphome::local_env).unwrap_or_default();
        let output = std::process::Command::new(program)
            .arg("--version")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "gpload program {program:?} was not found on this machine: set the sink's gpload option to the \
                     full path of Greenplum's bin/gpload"
                ),
                _ => format!("gpload program {program:?} cannot be started: {e}"),
            })?;
        // gpload prints its version on stderr.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = format!("{} {}", stdout.trim(), stderr.trim()).trim().to_string();
        if output.status.success() && said.contains("gpload version") {
            tracing::debug!("{program}: {said}");
            return Ok(LocalRunner { env, timeout: DEFAULT_TIMEOUT });
        }
        let code = exit_code(output.status);
        let install = match &home {
            Some(h) => format!("with GPHOME={}", h.display()),
            None => "without GPHOME: no greenplum_path.sh beside the directory it is in".to_string(),
        };
        Err(format!(
            "gpload program {program:?} does not run on this machine {install} (`{program} --version` exited \
             {code}: {said}); set the sink's gphome option to the Greenplum install that holds bin/gpload.py and \
             greenplum_path.sh"
        ))
    }
}

/// Exit status as a shell reports it: 128 + n when killed by signal n.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
    }
    #[cfg(not(unix))]
    status.code().unwrap_or(-1)
}

#[async_trait]
impl Runner for LocalRunner {
    async fn put_file(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        crate::workdir::write_private(path, bytes).await
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
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .envs(self.env.iter().chain(env).map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // gpload and the gpfdist it starts as one group: they are stopped together.
            .process_group(0)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("{program}: command not found (set the sink's gpload option)"),
                std::io::ErrorKind::PermissionDenied => format!("{program}: not executable ({e})"),
                _ => format!("cannot start {program}: {e}"),
            })?;
        // Dropped with this future (an interrupted window), it kills the group.
        let mut group = ProcessGroup::of(child.id())?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let work = async { tokio::join!(child.wait(), read_all(stdout), read_all(stderr)) };
        match tokio::time::timeout(self.timeout, work).await {
            Ok((status, stdout, stderr)) => {
                let status = status.map_err(|e| format!("waiting for {program}: {e}"))?;
                // Whatever it left behind (a gpfdist it did not stop) goes with it.
                group.kill_leftovers();
                Ok(RunOutput {
                    code: exit_code(status),
                    stdout: String::from_utf8_lossy(&stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&stderr).into_owned(),
                })
            }
            Err(_) => {
                let stopped = group.stop(&mut child).await;
                Err(format!(
                    "{program} ran longer than its timeout of {}; {stopped}{}",
                    humantime::format_duration(self.timeout),
                    crate::ssh_runner::TIMEOUT_HINT
                ))
            }
        }
    }
}

/// All of a pipe, or what arrived before it failed.
async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    bytes
}
