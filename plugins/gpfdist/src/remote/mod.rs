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
//! libssh2 blocks: each remote shell's session lives in a thread of its own ([`shell`]);
//! dropping a [`RemoteWindow`] or [`RemoteProbe`] closes its connection. [`preflight`] checks
//! the login and the remote gpfdist when the transport is built, [`probe`] runs `config
//! check`'s reach probe gpfdist there.

mod preflight;
mod probe;
mod shell;
mod window;

use std::path::Path;
use std::time::Duration;

use gptransfer_plugin_ssh::shell_quote;

pub use preflight::preflight;
pub use probe::RemoteProbe;
pub use window::{window_script, RemoteLaunch, RemoteWindow};

/// How long a remote shell may take to start its gpfdist (after the login).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long stopping waits for a remote shell to report and end.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// `script` run by `/bin/sh`, whatever the remote user's login shell is (sshd hands the command
/// line to that shell).
fn in_sh(script: &str) -> String {
    format!("exec /bin/sh -c {}", shell_quote(script))
}

/// A Greenplum install's gpfdist finds its libraries (libapr, libevent, …) in `<install>/lib`.
const LIBRARY_PATH: &str = r#"lib=${prog%/*}; lib=${lib%/*}/lib
if [ -d "$lib" ]; then LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; export LD_LIBRARY_PATH; fi"#;

/// `work_dir` as the remote shell reads it: quoted, or its `$TMPDIR` (else `/tmp`) when not set.
fn base_dir(work_dir: Option<&Path>) -> String {
    work_dir.map_or_else(|| "\"${TMPDIR:-/tmp}\"".to_string(), |d| shell_quote(&d.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::preflight::preflight_script;
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
