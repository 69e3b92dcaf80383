//! A window's two gpfdist processes, the FIFO and its write end's holder on the ETL host.
//!
//! The holder is a background subshell: it opens the read end of a control FIFO (`hold.ctl`),
//! then the window's FIFO for writing — blocking until the reading gpfdist opens it, as
//! [`crate::fifo::Keeper`]'s thread does — then reads the control FIFO until EOF. The shell
//! holds the control FIFO's only write end and closes it on `release`: whether that comes
//! before or after the reader opened the FIFO, the holder closes its write end only once the
//! reader has it open, so the reader sees EOF after the release and after the writing gpfdist
//! closed, never before, and an empty window still ends at once. gpfdist is started with the
//! control FIFO closed (`4>&-`) so that nothing else keeps it open.
//!
//! The shell ends what it started when it ends, or when its SSH session does (EOF on its
//! stdin). Should the shell itself be SIGKILLed, the kernel kills the gpfdist processes and the
//! holder with it (`setpriv --pdeathsig KILL`, where util-linux has it; gpfdist's watchdog
//! otherwise), and the window's directory, locked by the shell and its children while they live
//! (`flock`), is removed by the next window's shell once it is a minute old and unlocked.

use std::path::Path;
use std::time::Instant;

use gptransfer_plugin_ssh::{shell_quote, SshConfig};

use super::shell::RemoteShell;
use super::{base_dir, LIBRARY_PATH, READY_WITHIN, STOP_WITHIN};

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

/// The remote shell of one window (see the `remote` module's comment). Every value is shell-quoted.
pub fn window_script(launch: &RemoteLaunch<'_>) -> String {
    let base = base_dir(launch.work_dir);
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
# What this shell starts dies with it, SIGKILL included (the kernel's parent-death signal).
pds=; setpriv --pdeathsig KILL true 2>/dev/null && pds="setpriv --pdeathsig KILL"
# A window's directory is locked by its shell (and what it started) for as long as they live: one
# left by a shell that was killed is removed here, by a later window's shell.
lock=; command -v flock >/dev/null 2>&1 && lock=1
if [ -n "$lock" ]; then
  find "$base" -mindepth 1 -maxdepth 1 -type d -name 'gptransfer-gpfdist-*' -mmin +1 2>/dev/null |
    while IFS= read -r old; do
      [ -e "$old/owner.lock" ] && flock -n "$old/owner.lock" true 2>/dev/null && rm -rf "$old"
    done
fi
dir=$(mktemp -d "$base/gptransfer-gpfdist-XXXXXXXXXX") || {{ dir=; fail "cannot make a directory in work_dir $base"; }}
if [ -n "$lock" ]; then
  exec 9>"$dir/owner.lock" && flock -n 9 || fail "cannot lock $dir/owner.lock"
fi
name=${{dir##*/}}.fifo; fifo=$dir/$name; ctl=$dir/hold.ctl
mkfifo -m 600 "$fifo" "$ctl" || fail "cannot make the FIFO in $dir"
$pds /bin/sh -c 'exec 5<"$1"; exec 3>"$2"; exec cat <&5 >/dev/null' holder "$ctl" "$fifo" </dev/null >/dev/null 2>&1 &
hp=$!
exec 4>"$ctl"
start() {{
  role=$1; p=$first; why=
  while [ "$p" -le "$last" ]; do
    if [ "$p" != "$wport" ]; then
      out=$dir/gpfdist-$role.out
      $pds "$prog" -d "$dir" -p "$p" -P "$p" -m "$maxrow" -l "$dir/gpfdist-$role.log" </dev/null >"$out" 2>&1 4>&- &
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
written() {{ # all the writer wrote, less its log and output, read while it is stopped (see Gpfdist::written)
  kill -STOP "$wp" 2>/dev/null || return 1
  n=0
  until case $(cat "/proc/$wp/stat" 2>/dev/null) in *") T "*) true ;; *) false ;; esac; do
    n=$((n+1)); [ "$n" -ge 200 ] && return 1
    sleep 0.01
  done
  w=$(sed -n 's/^wchar: *//p' "/proc/$wp/io" 2>/dev/null)
  [ -n "$w" ] || return 1
  l=$(wc -c <"$dir/gpfdist-writer.log" 2>/dev/null) || l=0
  o=$(wc -c <"$dir/gpfdist-writer.out" 2>/dev/null) || o=0
  echo $((w - l - o))
}}
start writer; wp=$pid; wport=$port; w0=$(written); kill -CONT "$wp" 2>/dev/null; echo "writer $port $pid"
start reader; rp=$pid; echo "reader $port $pid"
echo "ready $name"
while IFS= read -r line; do
  case $line in
    release) exec 4>&- ;;
    kill) kill -KILL $wp $rp 2>/dev/null ;;
    stop)
      # The bytes the writer put into the FIFO since it listened.
      w1=$(written) && [ -n "$w0" ] && echo "bytes $((w1 - w0))"
      kill -KILL $wp $rp 2>/dev/null; wait $wp $rp 2>/dev/null
      for role in writer reader; do
        cat "$dir/gpfdist-$role.log" "$dir/gpfdist-$role.out" 2>/dev/null | grep 'WARN\|ERROR\|FATAL' | tail -n 3 |
          while IFS= read -r l; do echo "log $role $l"; done
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

/// The last complaints of each remote gpfdist (`writer`, `reader`), oldest first.
pub type Logs = Vec<(String, String)>;

/// A window's remote gpfdist processes (see the `remote` module's comment); dropped, they are ended.
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

    /// What ended the remote shell (and so its gpfdist processes), once it has ended during
    /// the window; None while it runs.
    pub fn ended(&self) -> Option<String> {
        self.shell.ended().then(|| {
            format!(
                "the remote shell holding the window's gpfdist processes on the ETL host {} ended during the window \
                 (killed there, or the SSH connection lost)",
                self.shell.target
            )
        })
    }

    /// Ends both gpfdist processes, removes the window's directory and returns their last
    /// complaints, and the bytes the writer put into the FIFO (None where the host's `/proc`
    /// does not tell).
    pub async fn stop(mut self) -> (Logs, Option<u64>) {
        self.shell.send("stop");
        let (mut logs, mut bytes) = (Vec::new(), None);
        let deadline = Instant::now() + STOP_WITHIN;
        while let Ok(Some(line)) = self.shell.next_line(deadline.saturating_duration_since(Instant::now())).await {
            if let Some((role, complaint)) = line.strip_prefix("log ").and_then(|r| r.split_once(' ')) {
                if !complaint.trim().is_empty() {
                    logs.push((role.to_string(), complaint.trim().to_string()));
                }
            } else if let Some(n) = line.strip_prefix("bytes ") {
                bytes = n.trim().parse().ok();
            }
        }
        (logs, bytes)
    }
}
