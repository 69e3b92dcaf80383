//! A limit on how long one file operation on the mount may take. A hung NFS mount blocks a
//! `read`, `write` or `stat` for ever, in a thread nothing can interrupt: the window gives up
//! on that thread after `stall_timeout` and fails, instead of blocking the run, every later
//! table and the daemon. Time a thread spends waiting for the source or the sink is not a
//! stall: only time inside a file operation counts.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use gptransfer_core::RoleError;

/// Where a file thread is: inside a file operation since some instant, or not.
#[derive(Debug, Clone)]
pub struct Busy {
    base: Instant,
    /// Milliseconds after `base` (plus one) the current operation began; 0 when none runs.
    since: Arc<AtomicU64>,
}

impl Busy {
    /// A thread not yet in any operation.
    pub fn new() -> Busy {
        Busy { base: Instant::now(), since: Arc::new(AtomicU64::new(0)) }
    }

    /// Runs one file operation, marked as such.
    pub fn io<T>(&self, op: impl FnOnce() -> T) -> T {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.since.store(now, Ordering::SeqCst);
        let out = op();
        self.since.store(0, Ordering::SeqCst);
        out
    }

    /// How long the operation in progress has taken, if one is.
    fn stuck_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::SeqCst) {
            0 => None,
            since => Some(self.base.elapsed().saturating_sub(Duration::from_millis(since - 1))),
        }
    }
}

impl Default for Busy {
    fn default() -> Self {
        Busy::new()
    }
}

/// The error of a mount that stopped answering.
pub fn stalled(root: &Path, what: &str, limit: Duration) -> RoleError {
    RoleError::new(format!(
        "shared-mount: no answer from {} for {} while {what} (stall_timeout): is the mount hung (an NFS server \
         gone)? Check it with `stat {}`; the operation may still be blocked in the kernel",
        root.display(),
        humantime::format_duration(limit),
        root.display()
    ))
}

/// Awaits `work` (file threads and what feeds or drains them), failing once an operation
/// marked by `busy` has taken longer than `limit`. A thread blocked in a hung mount cannot be
/// stopped (the kernel holds it): it is left behind, and `work` is dropped.
pub async fn watch<T>(
    busy: &Busy,
    limit: Duration,
    on_stall: impl Fn() -> RoleError,
    work: impl std::future::Future<Output = Result<T, RoleError>>,
) -> Result<T, RoleError> {
    let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let watchdog = async {
        loop {
            tokio::time::sleep(tick).await;
            if busy.stuck_for().is_some_and(|d| d > limit) {
                return on_stall();
            }
        }
    };
    tokio::select! {
        done = work => done,
        stalled = watchdog => Err(stalled),
    }
}

/// A file thread's result, its panic in words.
pub async fn joined<T>(what: &str, thread: tokio::task::JoinHandle<Result<T, RoleError>>) -> Result<T, RoleError> {
    thread.await.map_err(|e| RoleError::new(format!("shared-mount: the {what} stopped unexpectedly: {e}")))?
}

/// Runs a blocking check from synchronous code (building the chain) on its own thread, and
/// gives up after `limit`.
pub fn bounded<T: Send + 'static>(
    limit: Duration,
    on_stall: impl FnOnce() -> String,
    check: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("shared-mount check".into())
        .spawn(move || {
            let _ = tx.send(check());
        })
        .map_err(|e| format!("shared-mount: cannot start a thread: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(on_stall()),
    }
}
