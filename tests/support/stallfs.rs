//! A directory that hangs like a hard NFS mount whose server is gone: `stallfs.py`, a FUSE
//! passthrough (Debian's python3-fusepy, installed by scripts/setup.sh), mounted for one test.
//! While [`StallFs::hang`] is in force, every file operation on a matching path blocks in the
//! kernel until [`StallFs::release`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/stallfs.py");

pub struct StallFs {
    /// Where it is mounted: the directory to use.
    pub mountpoint: PathBuf,
    control: PathBuf,
    child: Child,
}

impl StallFs {
    /// Mounts a fresh directory under `dir` at `dir/mnt` (world-usable, like a shared mount).
    pub fn mount(dir: &Path) -> StallFs {
        let (root, mountpoint, control) = (dir.join("stallfs-root"), dir.join("mnt"), dir.join("stallfs-hang"));
        for d in [&root, &mountpoint] {
            fs::create_dir_all(d).unwrap();
        }
        let child = Command::new("/usr/bin/python3")
            .arg(SCRIPT)
            .args([&root, &mountpoint, &control])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start stallfs.py (scripts/setup.sh installs python3-fusepy): {e}"));
        let mut fs = StallFs { mountpoint, control, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs.mounted() {
            if let Ok(Some(status)) = fs.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = fs.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("stallfs.py exited {status} before mounting (is /dev/fuse there?): {err}");
            }
            assert!(Instant::now() < deadline, "stallfs never mounted {}", fs.mountpoint.display());
            thread::sleep(Duration::from_millis(50));
        }
        fs
    }

    fn mounted(&self) -> bool {
        fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(self.mountpoint.to_str().unwrap_or("")))
    }

    /// From now on, operations on paths containing `text` hang ("" hangs every path).
    pub fn hang(&self, text: &str) {
        fs::write(&self.control, text).unwrap();
    }

    /// Lets every hung operation go on.
    pub fn release(&self) {
        let _ = fs::remove_file(&self.control);
    }
}

impl Drop for StallFs {
    fn drop(&mut self) {
        self.release();
        for unmount in [&["fusermount3", "-u"][..], &["umount", "-l"]] {
            if self.mounted() {
                let _ =
                    Command::new(unmount[0]).args(&unmount[1..]).arg(&self.mountpoint).stderr(Stdio::null()).status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
