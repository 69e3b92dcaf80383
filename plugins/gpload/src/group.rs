//! The process group of a local gpload run: gpload and the gpfdist it starts. Killing gpload
//! alone leaves gpfdist serving the port; a run given up (timeout, Ctrl+C) must take both.

use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};

/// How long gpload gets after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A process group this run leads; killed when dropped before [`ProcessGroup::stop`] or
/// [`ProcessGroup::kill_leftovers`] was called.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Pid,
    done: bool,
}

impl ProcessGroup {
    /// The group led by the child with pid `id` (started with `process_group(0)`).
    pub fn of(id: Option<u32>) -> Result<ProcessGroup, String> {
        let pgid = id
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| "the started program has no process id (it already ended and was reaped)".to_string())?;
        Ok(ProcessGroup { pgid, done: false })
    }

    /// After the leader exited by itself: members still there are strays (a gpfdist gpload
    /// did not stop); they go.
    pub fn kill_leftovers(&mut self) {
        self.done = true;
        if test_kill_process_group(self.pgid).is_ok() {
            tracing::debug!("process group {}: stopping what the run left behind", self.pgid.as_raw_nonzero());
            let _ = kill_process_group(self.pgid, Signal::KILL);
        }
    }

    /// Stops a run still going: SIGTERM to the group, up to [`GRACE`] for the leader to end,
    /// then SIGKILL to what is left; reaps the leader. Says what was done, for the error.
    pub async fn stop(&mut self, leader: &mut tokio::process::Child) -> String {
        self.done = true;
        let pgid = self.pgid.as_raw_nonzero();
        let _ = kill_process_group(self.pgid, Signal::TERM);
        let ended = tokio::time::timeout(GRACE, leader.wait()).await.is_ok();
        // The leader gone, a member may linger; SIGKILL to a group with no one left is harmless.
        let _ = kill_process_group(self.pgid, Signal::KILL);
        if !ended {
            let _ = leader.wait().await;
        }
        let how = if ended { "SIGTERM" } else { "SIGKILL" };
        format!("it was stopped (process group {pgid} — gpload and all it started — ended by {how})")
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The run's future was dropped mid-run (an interrupted window): nothing may load on
        // after the window is reported rolled back. SIGTERM first, so gpload can close its
        // session; SIGKILL a moment later, whoever is left. Blocking here is brief and only on
        // this path.
        let _ = kill_process_group(self.pgid, Signal::TERM);
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until && test_kill_process_group(self.pgid).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill_process_group(self.pgid, Signal::KILL);
        tracing::warn!("stopped gpload (process group {}) of an interrupted window", self.pgid.as_raw_nonzero());
    }
}
