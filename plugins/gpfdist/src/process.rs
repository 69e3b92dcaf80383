//! One gpfdist process: started on a free port of the configured range, killed when dropped,
//! and killed by the kernel if this process dies first (SIGKILL included).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gptransfer_core::RoleError;

/// Ports this process's gpfdist processes listen on now: windows running at once never pick
/// the same one.
static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// How long a started gpfdist may take to listen.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running gpfdist serving one directory.
pub struct Gpfdist {
    child: tokio::process::Child,
    /// The port it listens on.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
    /// Its standard output and error.
    pub out: PathBuf,
    /// `writer` or `reader`.
    role: String,
    /// What it had written once it listened ([`Gpfdist::bytes_written`]).
    written_at_start: Option<u64>,
}

/// What a gpfdist is started with.
pub struct Launch<'a> {
    /// The program.
    pub program: &'a Path,
    /// The directory it serves (the window's, holding the FIFO).
    pub dir: &'a Path,
    /// First and last port it may take.
    pub ports: (u16, u16),
    /// `-m`: the longest row it accepts, in bytes.
    pub max_row_bytes: u32,
    /// Seconds without activity after which gpfdist aborts itself (its own watchdog): the
    /// last resort should both this process and the kernel's parent-death signal fail it.
    pub watchdog_seconds: u64,
    /// `writer` or `reader`, for its log file's name and messages.
    pub role: &'a str,
}

impl Gpfdist {
    /// Starts gpfdist on the first port of the range that is free, and waits until it listens.
    pub async fn start(launch: &Launch<'_>) -> Result<Gpfdist, RoleError> {
        let (first, last) = launch.ports;
        let mut tried = Vec::new();
        for port in first..=last {
            if !reserve(port) {
                continue;
            }
            match try_start(launch, port).await {
                Ok(g) => return Ok(g),
                Err(e) => {
                    unreserve(port);
                    tried.push(format!("{port}: {e}"));
                }
            }
        }
        Err(RoleError::new(format!(
            "cannot start gpfdist ({}) on any port of {first}-{last}{}; widen port_range or free ports in it",
            launch.role,
            if tried.is_empty() { " (all in use)".to_string() } else { format!(" (tried {})", tried.join("; ")) }
        )))
    }

    /// The bytes it wrote into the FIFO since it listened (the writer's count), taken once the
    /// window is over; it stays stopped, to be killed. See [`Gpfdist::written`].
    pub async fn bytes_written(&self) -> Option<u64> {
        let now = self.written().await?;
        now.checked_sub(self.written_at_start?)
    }

    /// All it has written less what went to its log and its output, the only other files it
    /// writes: `wchar` of `/proc/<pid>/io` counts `write` calls, and not the `send` calls of
    /// its HTTP answers. Read while it is stopped (SIGSTOP): a stopped process is in no
    /// `write`, so the file sizes and `wchar` agree (a running one may have grown its log and
    /// not yet counted it: a test once saw 85 bytes too many). It is left stopped. None where
    /// `/proc` does not tell.
    async fn written(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let process = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
        rustix::process::kill_process(process, rustix::process::Signal::STOP).ok()?;
        let stopped = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !stopped() {
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let all: u64 = text.lines().find_map(|l| l.strip_prefix("wchar:"))?.trim().parse().ok()?;
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        all.checked_sub(size(&self.log) + size(&self.out))
    }

    /// Lets a stopped gpfdist go on.
    fn resume(&self) {
        let pid = self.child.id().and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        }
    }

    /// What ended it, once it has ended by itself: `gpfdist (writer) on port N exited (…)`.
    pub fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok()??;
        Some(format!("gpfdist ({}) on port {} ended during the window ({status})", self.role, self.port))
    }

    /// Kills it and waits for it to end.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Kills it without waiting (the runtime reaps it).
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Drop for Gpfdist {
    fn drop(&mut self) {
        // kill_on_drop kills it; the port is free for the next window.
        unreserve(self.port);
    }
}

/// Takes `port` for this process when nothing listens on it.
fn reserve(port: u16) -> bool {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if taken.contains(&port) || std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
        return false;
    }
    taken.insert(port);
    true
}

fn unreserve(port: u16) {
    TAKEN.lock().unwrap_or_else(|p| p.into_inner()).remove(&port);
}

async fn try_start(launch: &Launch<'_>, port: u16) -> Result<Gpfdist, String> {
    let log = launch.dir.join(format!("gpfdist-{}.log", launch.role));
    // Its output goes to a file: what it says on failure is read from there, and its size is
    // known ([`Gpfdist::bytes_written`]).
    let out = launch.dir.join(format!("gpfdist-{}.out", launch.role));
    let stdout = std::fs::File::create(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let stderr = stdout.try_clone().map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut cmd = tokio::process::Command::new(launch.program);
    cmd.arg("-d")
        .arg(launch.dir)
        .arg("-p")
        .arg(port.to_string())
        .arg("-m")
        .arg(launch.max_row_bytes.to_string())
        .arg("-l")
        .arg(&log)
        .env("GPFDIST_WATCHDOG_TIMER", launch.watchdog_seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    if let Some(lib) = library_dir(launch.program) {
        // A Greenplum install's gpfdist finds its libraries (libapr, libevent, …) there.
        let mut path = std::ffi::OsString::from(lib);
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            path.push(":");
            path.push(old);
        }
        cmd.env("LD_LIBRARY_PATH", path);
    }
    crate::orphan::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", launch.program.display()))?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&out).unwrap_or_default();
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            let last = said.lines().chain(logged.lines()).rfind(|l| !l.trim().is_empty()).unwrap_or("").trim();
            return Err(format!(
                "gpfdist exited ({status}){}",
                if last.is_empty() { String::new() } else { format!(": {last}") }
            ));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            let mut gpfdist = Gpfdist { child, port, log, out, role: launch.role.to_string(), written_at_start: None };
            gpfdist.written_at_start = gpfdist.written().await;
            gpfdist.resume();
            return Ok(gpfdist);
        }
        if started.elapsed() > READY_WITHIN {
            let _ = child.kill().await;
            return Err(format!("gpfdist did not listen within {}s", READY_WITHIN.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `<install>/lib` for `<install>/bin/gpfdist`, when it exists.
fn library_dir(program: &Path) -> Option<PathBuf> {
    let lib = program.parent()?.parent()?.join("lib");
    lib.is_dir().then_some(lib)
}
