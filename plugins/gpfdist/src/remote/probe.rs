//! `config check`'s reach probe gpfdist on the ETL host.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use gptransfer_plugin_ssh::{shell_quote, SshConfig};

use super::shell::RemoteShell;
use super::{base_dir, LIBRARY_PATH, READY_WITHIN, STOP_WITHIN};

/// The remote shell of a reach probe's gpfdist (see [`crate::check`]): serves a one-line file
/// on `port`, logging every request verbosely, under `timeout` so that it never outlives
/// `life`; `segments` prints the segments whose requests arrived, `stop` or EOF ends it (and it
/// is gone, its port free, before the shell ends).
pub fn probe_script(program: &str, work_dir: Option<&Path>, port: u16, life: Duration) -> String {
    let base = base_dir(work_dir);
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
    pub async fn connected_segments(&mut self) -> BTreeSet<i32> {
        self.shell.send("segments");
        match self.shell.expect("segments", STOP_WITHIN).await {
            Ok(list) => list.split_whitespace().filter_map(|s| s.parse().ok()).collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    /// Ends it and waits until the remote shell is done (its port is free again).
    pub async fn stop(mut self) {
        self.shell.send("stop");
        let deadline = Instant::now() + STOP_WITHIN;
        while let Ok(Some(_)) = self.shell.next_line(deadline.saturating_duration_since(Instant::now())).await {}
    }
}
