//! The window's gpfdist processes on an ETL host reached over SSH (the transport's `ssh` option).
//!
//! One remote shell per window, on an SSH connection of its own ([`window_script`]): it makes
//! the window's directory under `work_dir`, the FIFO, a holder of the FIFO's write end (as
//! [`crate::fifo::Keeper`] does locally: its open completes when the reading gpfdist opens the
//! FIFO, whichever comes first, and it closes once released), starts the two gpfdist processes
//! on free ports of the range (a port in use: the next) and reports their ports and pids. Then
//! it reads its stdin: `release` lets the holder close (the reader sees EOF once the writing
//! gpfdist has closed too), `kill` kills both gpfdist (a failed side), `stop` kills them and
//! reports their last complaints. EOF on stdin — this process stopped the window, gave it up
//! (its future dropped: timeout, Ctrl+C, SIGTERM), died or was SIGKILLed, or the connection
//! dropped — kills both gpfdist and removes the directory. gpfdist's own watchdog
//! (`GPFDIST_WATCHDOG_TIMER`) is the last resort, as locally.
//!
//! libssh2 blocks: the session lives in a thread of its own, driven by orders over a channel;
//! dropping [`RemoteWindow`] drops the orders' sender, and the thread closes the connection.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gptransfer_plugin_ssh::{connect, shell_quote, SshConfig};

/// How long the remote shell may take to start both gpfdist processes (after the login).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long [`RemoteWindow::stop`] waits for the remote shell to report and end.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// How often the session's thread looks for output and orders.
const TICK: Duration = Duration::from_millis(10);

/// What a window's remote gpfdist processes are started with.
pub struct RemoteLaunch<'a> {
    /// The gpfdist program on the ETL host.
    pub program: &'a str,
    /// `work_dir` on the ETL host; `None`: its `$TMPDIR`, else `/tmp`.
    pub work_dir: Option<&'a Path>,
    /// First and last port.
    pub ports: (u16, u16),
    /// gpfdist's `-m`.
    pub max_row_bytes: u32,
    /// gpfdist's own idle watchdog, in seconds.
    pub watchdog_seconds: u64,
}

/// The remote shell of one window (see the module's comment). Every value is shell-quoted.
pub fn window_script(launch: &RemoteLaunch<'_>) -> String {
    let base =
        launch.work_dir.map_or_else(|| "\"${TMPDIR:-/tmp}\"".to_string(), |d| shell_quote(&d.display().to_string()));
    format!(
        r#"prog={prog}
base={base}
first={first}; last={last}; maxrow={maxrow}
GPFDIST_WATCHDOG_TIMER={watchdog}; export GPFDIST_WATCHDOG_TIMER
{library}
dir= hp= wp= rp= wport=
cleanup() {{
  trap - EXIT HUP INT TERM PIPE
  for p in $wp $rp $hp; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "$dir" ] && rm -rf "$dir"
}}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM PIPE
fail() {{ echo "error $*"; exit 3; }}
mkdir -p "$base" || fail "cannot make work_dir $base"
dir=$(mktemp -d "$base/gptransfer-gpfdist-XXXXXXXXXX") || {{ dir=; fail "cannot make a directory in work_dir $base"; }}
name=${{dir##*/}}.fifo; fifo=$dir/$name; ctl=$dir/hold.ctl
mkfifo -m 600 "$fifo" "$ctl" || fail "cannot make the FIFO in $dir"
(exec 5<"$ctl"; exec 3>"$fifo"; exec cat <&5 >/dev/null) </dev/null >/dev/null 2>&1 &
hp=$!
exec 4>"$ctl"
start() {{
  role=$1; p=$first; why=
  while [ "$p" -le "$last" ]; do
    if [ "$p" != "$wport" ]; then
      out=$dir/gpfdist-$role.out
      "$prog" -d "$dir" -p "$p" -P "$p" -m "$maxrow" -l "$dir/gpfdist-$role.log" </dev/null >"$out" 2>&1 4>&- &
      pid=$!; n=0
      while kill -0 "$pid" 2>/dev/null; do
        grep -q "^Serving HTTP on port $p" "$out" 2>/dev/null && {{ port=$p; return 0; }}
        grep -q "FATAL\|exiting" "$out" 2>/dev/null && break
        case $(cat "/proc/$pid/stat" 2>/dev/null) in *") Z "*) break ;; esac
        n=$((n+1)); [ "$n" -ge 500 ] && {{ kill -KILL "$pid"; wait "$pid"; fail "gpfdist ($role) did not listen on port $p within 10 s"; }}
        sleep 0.02
      done
      kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
      why="$p: $(grep -v '^ *\.\.\.' "$out" | tail -n 1)"
    fi
    p=$((p+1))
  done
  fail "cannot start gpfdist ($role) on any port of $first-$last (last tried: $why); widen port_range or free ports in it"
}}
start writer; wp=$pid; wport=$port; echo "writer $port $pid"
start reader; rp=$pid; echo "reader $port $pid"
echo "ready $name"
while IFS= read -r line; do
  case $line in
    release) exec 4>&- ;;
    kill) kill -KILL $wp $rp 2>/dev/null ;;
    stop)
      kill -KILL $wp $rp 2>/dev/null; wait $wp $rp 2>/dev/null
      for role in writer reader; do
        echo "log $role $(cat "$dir/gpfdist-$role.log" "$dir/gpfdist-$role.out" 2>/dev/null | grep 'WARN\|ERROR\|FATAL' | tail -n 1)"
      done
      exit 0 ;;
  esac
done
exit 0
"#,
        prog = shell_quote(launch.program),
        first = launch.ports.0,
        last = launch.ports.1,
        maxrow = launch.max_row_bytes,
        watchdog = launch.watchdog_seconds,
        library = LIBRARY_PATH,
    )
}

/// `script` run by `/bin/sh`, whatever the remote user's login shell is (sshd hands the command
/// line to that shell).
fn in_sh(script: &str) -> String {
    format!("exec /bin/sh -c {}", shell_quote(script))
}

/// A Greenplum install's gpfdist finds its libraries (libapr, libevent, …) in `<install>/lib`.
const LIBRARY_PATH: &str = r#"lib=${prog%/*}; lib=${lib%/*}/lib
if [ -d "$lib" ]; then LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; export LD_LIBRARY_PATH; fi"#;

/// The remote shell that finds gpfdist on the ETL host (the configured path, else `gpfdist` on
/// its PATH, else `$GPHOME/bin/gpfdist`), runs its `--version` and makes sure `work_dir` can be
/// written. Prints `program <path>` when all is well, else `problem <words>`.
pub fn preflight_script(configured: Option<&str>, work_dir: Option<&Path>) -> String {
    let base = work_dir.map_or_else(|| "\"${TMPDIR:-/tmp}\"".to_string(), |d| shell_quote(&d.display().to_string()));
    format!(
        r#"prog={prog}
base={base}
if [ -z "$prog" ]; then
  prog=$(command -v gpfdist 2>/dev/null)
  [ -z "$prog" ] && [ -n "${{GPHOME:-}}" ] && [ -f "$GPHOME/bin/gpfdist" ] && prog=$GPHOME/bin/gpfdist
  [ -z "$prog" ] && {{ echo "problem gpfdist is neither on the PATH of a remote command nor in \$GPHOME/bin there; set gpfdist = \"/path/to/greenplum/bin/gpfdist\" (a path on that host)"; exit 0; }}
fi
if [ ! -f "$prog" ] || [ ! -x "$prog" ]; then
  echo "problem gpfdist = \"$prog\" is not an executable file there; set gpfdist to the path of a Greenplum install's bin/gpfdist on that host"; exit 0
fi
{library}
v=$("$prog" --version 2>&1) || {{ echo "problem $prog --version failed there: $v"; exit 0; }}
mkdir -p "$base" 2>/dev/null && [ -d "$base" ] && [ -w "$base" ] || {{ echo "problem work_dir $base cannot be made or written there by this user; set work_dir to a writable directory on that host"; exit 0; }}
echo "program $prog"
"#,
        prog = shell_quote(configured.unwrap_or("")),
        library = LIBRARY_PATH,
    )
}

/// Logs in and runs [`preflight_script`] (blocking): the gpfdist program's path on the ETL host,
/// or what is wrong, naming the host and what to do.
pub fn preflight(ssh: &SshConfig, configured: Option<&str>, work_dir: Option<&Path>) -> Result<String, String> {
    let session = connect(ssh).map_err(|e| format!("gpfdist transport, ETL host over SSH: {e}"))?;
    let out = session
        .run_line(&in_sh(&preflight_script(configured, work_dir)))
        .map_err(|e| format!("gpfdist transport, ETL host over SSH: {e}"))?;
    let target = &session.target;
    session.abandon();
    if let Some(program) = out.stdout.lines().find_map(|l| l.strip_prefix("program ")) {
        return Ok(program.to_string());
    }
    match out.stdout.lines().find_map(|l| l.strip_prefix("problem ")) {
        Some(problem) => Err(format!("gpfdist transport, ETL host {target} (over SSH): {problem}")),
        None => Err(format!(
            "gpfdist transport, ETL host {target} (over SSH): the check of gpfdist there did not finish: {}",
            out.explain()
        )),
    }
}

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

/// Where the window's remote gpfdist processes listen.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// The FIFO's name: the path of both gpfdist URLs.
    pub name: String,
    /// Port and pid of the gpfdist the source's segments write to.
    pub writer: (u16, u32),
    /// Port and pid of the gpfdist the target's segments read from.
    pub reader: (u16, u32),
}

/// The last complaint of each remote gpfdist (`writer`, `reader`), when it had one.
pub type Logs = Vec<(String, String)>;

/// A window's remote gpfdist processes (see the module's comment); dropped, they are ended.
pub struct RemoteWindow {
    /// Where they listen.
    pub ready: Ready,
    shell: RemoteShell,
}

impl RemoteWindow {
    /// Logs in to the ETL host and starts the window's gpfdist processes there.
    pub async fn start(ssh: SshConfig, script: String, ports: (u16, u16)) -> Result<RemoteWindow, String> {
        let mut shell = RemoteShell::start(ssh, script)?;
        let mut ready = Ready::default();
        let deadline = Instant::now() + READY_WITHIN;
        let fail = |shell: &RemoteShell, e: String| format!("ETL host {}: {e}", shell.target);
        for role in ["writer", "reader"] {
            let left = deadline.saturating_duration_since(Instant::now());
            let said = shell.expect(role, left).await.map_err(|e| fail(&shell, e))?;
            let (port, pid) = said.split_once(' ').unwrap_or((said.as_str(), ""));
            let at = match (port.trim().parse::<u16>(), pid.trim().parse::<u32>()) {
                (Ok(port), Ok(pid)) if (ports.0..=ports.1).contains(&port) => (port, pid),
                _ => {
                    return Err(fail(&shell, format!("the remote shell said {role} {said:?}, not a port of the range")))
                }
            };
            if role == "writer" {
                ready.writer = at;
            } else {
                ready.reader = at;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        ready.name = shell.expect("ready", left).await.map_err(|e| fail(&shell, e))?;
        // It goes into the external tables' LOCATION: mktemp's letters only.
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if ready.name.is_empty() || !ready.name.chars().all(plain) {
            return Err(fail(&shell, format!("the remote shell named the FIFO {:?}", ready.name)));
        }
        Ok(RemoteWindow { ready, shell })
    }

    /// `user@host:port` of the ETL host.
    pub fn target(&self) -> &str {
        &self.shell.target
    }

    /// Lets the reader see EOF once the writing gpfdist has closed the FIFO too.
    pub fn release(&self) {
        self.shell.send("release");
    }

    /// Kills both gpfdist processes at once (a side failed), keeping their logs for [`Self::stop`].
    pub fn kill(&self) {
        self.shell.send("kill");
    }

    /// Ends both gpfdist processes, removes the window's directory and returns their last
    /// complaints.
    pub async fn stop(mut self) -> Logs {
        self.shell.send("stop");
        let mut logs = Vec::new();
        let deadline = Instant::now() + STOP_WITHIN;
        while let Ok(Some(line)) = self.shell.next_line(deadline.saturating_duration_since(Instant::now())).await {
            if let Some((role, complaint)) = line.strip_prefix("log ").and_then(|r| r.split_once(' ')) {
                if !complaint.trim().is_empty() {
                    logs.push((role.to_string(), complaint.trim().to_string()));
                }
            }
        }
        logs
    }
}

/// The remote shell of a reach probe's gpfdist (see [`crate::check`]): serves a one-line file
/// on `port`, logging every request verbosely, under `timeout` so that it never outlives
/// `life`; `segments` prints the segments whose requests arrived, `stop` or EOF ends it (and it
/// is gone, its port free, before the shell ends).
pub fn probe_script(program: &str, work_dir: Option<&Path>, port: u16, life: Duration) -> String {
    let base = work_dir.map_or_else(|| "\"${TMPDIR:-/tmp}\"".to_string(), |d| shell_quote(&d.display().to_string()));
    format!(
        r#"prog={prog}
base={base}
port={port}
{library}
dir= gp=
cleanup() {{
  trap - EXIT HUP INT TERM PIPE
  [ -n "$gp" ] && kill -TERM "$gp" 2>/dev/null && wait "$gp" 2>/dev/null
  [ -n "$dir" ] && rm -rf "$dir"
}}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM PIPE
fail() {{ echo "error $*"; exit 3; }}
mkdir -p "$base" || fail "cannot make work_dir $base"
dir=$(mktemp -d "$base/gptransfer-reach-XXXXXXXXXX") || {{ dir=; fail "cannot make a directory in work_dir $base"; }}
mkdir "$dir/served" && echo 1 >"$dir/served/probe.txt" || fail "cannot write the probe file in $dir"
log=$dir/gpfdist.log
timeout -k 2 -s KILL {life} "$prog" -d "$dir/served" -p "$port" -P "$port" -V </dev/null >"$log" 2>&1 &
gp=$!; n=0
until grep -q "Serving HTTP on port" "$log" 2>/dev/null; do
  gone=
  kill -0 "$gp" 2>/dev/null || gone=1
  case $(cat "/proc/$gp/stat" 2>/dev/null) in *") Z "*) gone=1 ;; esac
  [ -n "$gone" ] && {{ wait "$gp" 2>/dev/null; gp=; fail "gpfdist on port $port exited: $(grep -v '^ *\.\.\.' "$log" | tail -n 2 | tr '\n' ' ')"; }}
  n=$((n+1)); [ "$n" -ge 500 ] && fail "gpfdist did not open port $port within 10 s"
  sleep 0.02
done
echo ready
while IFS= read -r line; do
  case $line in
    segments) echo "segments $(grep -o 'X-GP-SEGMENT-ID: *[0-9]*' "$log" | sed 's/.*: *//' | sort -u | tr '\n' ' ')" ;;
    stop) break ;;
  esac
done
exit 0
"#,
        prog = shell_quote(program),
        life = life.as_secs().max(1),
        library = LIBRARY_PATH,
    )
}

/// A reach probe's gpfdist on the ETL host; ended by [`RemoteProbe::stop`] or when dropped.
pub struct RemoteProbe {
    shell: RemoteShell,
    port: u16,
}

impl RemoteProbe {
    /// Logs in and starts the probe's gpfdist on `port` there, waiting until it listens.
    pub async fn start(
        ssh: SshConfig,
        program: &str,
        work_dir: Option<&Path>,
        port: u16,
        life: Duration,
    ) -> Result<RemoteProbe, String> {
        let mut shell = RemoteShell::start(ssh, probe_script(program, work_dir, port, life))?;
        match shell.expect("ready", READY_WITHIN).await {
            Ok(_) => Ok(RemoteProbe { shell, port }),
            Err(e) => Err(format!("gpfdist ({program}) on port {port} of the ETL host {}: {e}", shell.target)),
        }
    }

    /// The port it serves.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The segments (content ids) whose requests reached it so far, from its log.
    pub async fn connected_segments(&mut self) -> std::collections::BTreeSet<i32> {
        self.shell.send("segments");
        match self.shell.expect("segments", STOP_WITHIN).await {
            Ok(list) => list.split_whitespace().filter_map(|s| s.parse().ok()).collect(),
            Err(_) => std::collections::BTreeSet::new(),
        }
    }

    /// Ends it and waits until the remote shell is done (its port is free again).
    pub async fn stop(mut self) {
        self.shell.send("stop");
        let deadline = Instant::now() + STOP_WITHIN;
        while let Ok(Some(_)) = self.shell.next_line(deadline.saturating_duration_since(Instant::now())).await {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_in_the_scripts_is_quoted() {
        let launch = RemoteLaunch {
            program: "/opt/g p/bin/gpfdist'; rm -rf /",
            work_dir: Some(Path::new("/data/$(reboot)")),
            ports: (8000, 8010),
            max_row_bytes: 65536,
            watchdog_seconds: 60,
        };
        let script = window_script(&launch);
        assert!(script.contains(r"prog='/opt/g p/bin/gpfdist'\''; rm -rf /'"), "{script}");
        assert!(script.contains("base='/data/$(reboot)'"), "{script}");
        let check = preflight_script(Some("/x y/gpfdist"), None);
        assert!(check.contains("prog='/x y/gpfdist'"), "{check}");
        assert!(check.contains("base=\"${TMPDIR:-/tmp}\""), "{check}");
    }
}
