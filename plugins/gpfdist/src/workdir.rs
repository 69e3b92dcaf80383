//! The windows' directories on this host: each locked by the process whose window it is, for as
//! long as that process lives; one left behind by a process that was killed (SIGKILL: nothing
//! ran to remove it) is removed when a later window starts. The remote shell does the same on
//! the ETL host (`remote::window`).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use gptransfer_core::RoleError;
use rustix::fs::{flock, FlockOperation};

/// Prefix of every window directory.
pub const PREFIX: &str = "gptransfer-gpfdist-";

/// The lock file in a window directory.
const LOCK: &str = "owner.lock";

/// A directory younger than this is left alone: its process may not have locked it yet.
const SETTLED: Duration = Duration::from_secs(60);

/// Locks the window directory `dir` for this process; the lock goes with the returned file
/// (closed on drop or when the process dies).
pub fn lock(dir: &Path) -> Result<File, RoleError> {
    let path = dir.join(LOCK);
    let file = File::create(&path).map_err(|e| RoleError::new(format!("cannot create {}: {e}", path.display())))?;
    flock(&file, FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| RoleError::new(format!("cannot lock {}: {e}", path.display())))?;
    Ok(file)
}

/// Bases this process has swept: once each is enough (a directory is left only by a process
/// that was killed, before this one started), and `base` may be a busy `/tmp`.
static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Removes, once per process, the window directories under `base` that nobody holds any more
/// ([`sweep`]).
pub fn sweep_once(base: &Path) {
    if SWEPT.lock().unwrap_or_else(|p| p.into_inner()).insert(base.to_path_buf()) {
        sweep(base);
    }
}

/// Removes the window directories under `base` that nobody holds any more: settled, with a
/// lock file that can be locked. Best effort: a directory that cannot be read or removed stays.
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) || !dir.is_dir() {
            continue;
        }
        let settled = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if settled.is_none_or(|age| age < SETTLED) {
            continue;
        }
        // A directory without a lock file is not ours to judge (another version's, or one
        // being made): only an unlocked lock file says its owner is gone.
        let Ok(file) = File::open(dir.join(LOCK)) else { continue };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::debug!("gpfdist: removed {}, left by a process that was killed", dir.display()),
                Err(e) => tracing::debug!("gpfdist: cannot remove {}: {e}", dir.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settled_unlocked_directories_go() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = std::time::SystemTime::now() - Duration::from_secs(300);
        let make = |name: &str, with_lock: bool| {
            let dir = base.path().join(name);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
            if with_lock {
                File::create(dir.join(LOCK)).unwrap_or_else(|e| panic!("{e}"));
            }
            dir
        };
        let dead = make(&format!("{PREFIX}dead"), true);
        let held = make(&format!("{PREFIX}held"), true);
        let young = make(&format!("{PREFIX}young"), true);
        let unlocked = make(&format!("{PREFIX}nolock"), false);
        let other = make("something-else", true);
        let _holder = lock(&held).unwrap_or_else(|e| panic!("{e}"));
        for dir in [&dead, &held, &unlocked, &other] {
            File::open(dir).and_then(|f| f.set_modified(old)).unwrap_or_else(|e| panic!("{e}"));
        }
        sweep(base.path());
        assert!(!dead.exists());
        for kept in [&held, &young, &unlocked, &other] {
            assert!(kept.exists(), "{}", kept.display());
        }
    }
}
