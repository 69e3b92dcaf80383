//! The window's FIFO, and the one write end of it that decides when its reader sees EOF.
//!
//! The gpfdist serving the source's segments opens the FIFO for writing once per session, and
//! frees a session (closing the FIFO) as soon as every segment *attached so far* has said it is
//! done: a segment that attaches after another finished opens a new session. Left alone, the
//! reading gpfdist would see EOF in that gap and the target would commit a part of the window.
//! So this process holds a write end of its own from before any segment writes until the
//! source's `INSERT` has returned, i.e. until every segment has finished and gpfdist has
//! written all of it into the FIFO (it answers a segment's request only after writing it). The
//! reader sees EOF only after that.
//!
//! The write end is opened blocking in a thread of its own: that open completes when the
//! reading gpfdist opens the FIFO, in whichever order the two come, so an empty window (no
//! segment writes, the source returns at once) still gives the reader its EOF instead of
//! leaving its open blocked forever.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use gptransfer_core::RoleError;

/// The FIFO's buffer, asked for once both ends are open.
const PIPE_BYTES: usize = 1024 * 1024;

/// Makes the FIFO in `dir` (the window's own directory); returns its path and its name, the
/// path of both gpfdist URLs.
///
/// The name is the directory's, unique to the window: segments of a killed run's source may
/// still be retrying their writes when a later window's gpfdist takes the same port, and
/// must find no FIFO of that window under the name they ask for.
pub fn create(dir: &Path) -> Result<(PathBuf, String), RoleError> {
    let name = format!("{}.fifo", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let path = dir.join(&name);
    rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600))
        .map_err(|e| RoleError::new(format!("cannot make the FIFO {}: {e}", path.display())))?;
    Ok((path, name))
}

/// This process's write end of the FIFO (see the module's comment).
pub struct Keeper {
    path: PathBuf,
    release: Mutex<Option<mpsc::Sender<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    /// Starts opening the write end; it is held until [`Keeper::release`] or drop.
    pub fn hold(path: &Path) -> Result<Keeper, RoleError> {
        let (tx, rx) = mpsc::channel::<()>();
        let opened = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("gpfdist-fifo".into())
            .spawn(move || {
                // Blocks until a reader opens the FIFO (the reading gpfdist, or drop's own).
                let end = OpenOptions::new().write(true).open(&opened);
                if let Ok(end) = &end {
                    // A FIFO's default 64 KiB buffer has the two gpfdist processes take turns
                    // sleeping on it; a bigger one lets them run at once (an unprivileged process
                    // may ask for up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
                    let _ = rustix::pipe::fcntl_setpipe_size(end, PIPE_BYTES);
                }
                // Held until released (or the Keeper is gone).
                let _ = rx.recv();
                drop(end);
            })
            .map_err(|e| RoleError::new(format!("cannot start the FIFO's keeper thread: {e}")))?;
        Ok(Keeper { path: path.to_path_buf(), release: Mutex::new(Some(tx)), thread: Some(thread) })
    }

    /// Lets the reader see EOF once the writing gpfdist has closed the FIFO too.
    pub fn release(&self) {
        self.release.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.release();
        if let Some(thread) = self.thread.take() {
            // A thread still waiting in its open (no reader ever came) is let through by a
            // read end of our own, held until it is done so it cannot miss it.
            let own_reader: Option<File> = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&self.path)
                .ok();
            let _ = thread.join();
            drop(own_reader);
        }
    }
}
