//! Who may write and read the shared mount, checked before any data moves.
//!
//! The writer (this process) is checked with `access(2)` on its effective ids, so ACLs and NFS
//! server-side checks count. The sink runs as another user, often on another host: its access
//! is worked out from the owner, group and mode bits, as the kernel would for that uid/gid.
//! When either side is refused, the message names the directory's owner and both sides' ids:
//! the same user name can have different uids on different hosts (the seed's
//! "Permission denied" story: user1 is 530:530 on host A and 540:2180 on host B).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{Access, AtFlags, CWD};

/// The ids one side of the mount runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups (known only for ourselves).
    pub groups: Vec<u32>,
}

impl Ids {
    /// This process's effective uid, gid and supplementary groups.
    pub fn current() -> Ids {
        let groups =
            rustix::process::getgroups().map(|g| g.into_iter().map(|g| g.as_raw()).collect()).unwrap_or_default();
        Ids { uid: rustix::process::geteuid().as_raw(), gid: rustix::process::getegid().as_raw(), groups }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

impl fmt::Display for Ids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {} (gid {}", self.uid, self.gid)?;
        let extra: Vec<String> = self.groups.iter().filter(|g| **g != self.gid).map(u32::to_string).collect();
        if !extra.is_empty() {
            write!(f, ", groups {}", extra.join(","))?;
        }
        f.write_str(")")
    }
}

/// Permission bits asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// `r`
    pub read: bool,
    /// `w`
    pub write: bool,
    /// `x` (traverse, for a directory)
    pub exec: bool,
}

impl Want {
    fn words(self) -> &'static str {
        match (self.read, self.write, self.exec) {
            (true, true, true) => "readable, writable and traversable (rwx)",
            (false, true, true) => "writable (wx)",
            (true, false, true) => "readable (rx)",
            (false, false, true) => "traversable (x)",
            (true, false, false) => "readable (r)",
            _ => "accessible",
        }
    }
}

/// Whether `ids` would get `want` on a file with that owner, group and mode (the kernel's
/// owner → group → other rule; root gets everything but needs one `x` bit to traverse).
pub fn allowed(ids: &Ids, owner: u32, group: u32, mode: u32, want: Want) -> bool {
    if ids.uid == 0 {
        return !want.exec || mode & 0o111 != 0;
    }
    let bits = if ids.uid == owner {
        (mode >> 6) & 7
    } else if ids.in_group(group) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    (!want.read || bits & 4 != 0) && (!want.write || bits & 2 != 0) && (!want.exec || bits & 1 != 0)
}

/// Checks that `writer` (this process) may create entries in `dir` and that `sink` may reach
/// and read it (and every directory above it). The error is the whole message for people.
pub fn check_dir(dir: &Path, writer: &Ids, sink: &Ids, sink_configured: bool) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "shared mount {}: does not exist; create it (or mount the share there) on every host that writes \
                 or loads, owned by the uid the writers use",
                dir.display()
            )
        } else {
            format!("shared mount {}: cannot be inspected as {writer}: {e}", dir.display())
        }
    })?;
    if !meta.is_dir() {
        return Err(format!("shared mount {}: is not a directory", dir.display()));
    }
    let describe =
        |m: &std::fs::Metadata| format!("owned by uid {}, gid {}, mode {:04o}", m.uid(), m.gid(), m.mode() & 0o7777);
    let sink_words = if sink_configured {
        format!("the sink reads as {sink} (sink_uid/sink_gid)")
    } else {
        format!("the sink reads as {sink}, the same ids (set sink_uid/sink_gid when it runs as another user)")
    };
    let hint = "the same user name can have different uids and gids on different hosts (compare `id <user>` on \
                each host)";

    let writable = rustix::fs::accessat(CWD, dir, Access::WRITE_OK | Access::EXEC_OK, AtFlags::EACCESS).is_ok();
    if !writable {
        return Err(format!(
            "shared mount {}: not writable by {writer}, which gptransfer runs as; the directory is {}; {sink_words}; \
             {hint} — chown the directory to the uid the writers use (chown {}:{} {}), or give a group both \
             sides share write access (chgrp <group> and chmod g+rwx)",
            dir.display(),
            describe(&meta),
            writer.uid,
            writer.gid,
            dir.display()
        ));
    }
    let read = Want { read: true, write: false, exec: true };
    if !allowed(sink, meta.uid(), meta.gid(), meta.mode(), read) {
        return Err(format!(
            "shared mount {}: not {} by {sink}, which the sink loads as; the directory is {}; gptransfer writes \
             as {writer}; {hint} — give the sink's uid or group read access (chmod o+rx, or chgrp to a group \
             the sink is in and chmod g+rx), or set sink_uid/sink_gid to the ids the sink really uses",
            dir.display(),
            read.words(),
            describe(&meta),
        ));
    }
    // The sink must traverse every directory above, too.
    let traverse = Want { read: false, write: false, exec: true };
    for parent in dir.ancestors().skip(1) {
        if parent.as_os_str().is_empty() {
            continue;
        }
        let Ok(m) = std::fs::metadata(parent) else { continue };
        if !allowed(sink, m.uid(), m.gid(), m.mode(), traverse) {
            return Err(format!(
                "shared mount {}: the sink, loading as {sink}, cannot reach it: {} is not {} for it (it is {}); \
                 gptransfer writes as {writer}; {hint}",
                dir.display(),
                parent.display(),
                traverse.words(),
                describe(&m),
            ));
        }
    }
    Ok(())
}

/// Modes of a window's directory and files: open to the sink, closed to everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowModes {
    /// The window directory's mode.
    pub dir: u32,
    /// Each file's mode.
    pub file: u32,
    /// The group to give the directory and files (the sink's), when not the one they get.
    pub group: Option<u32>,
}

impl WindowModes {
    /// Whether everyone on the mount may read the window (the sink shares no group with us).
    pub fn world_readable(&self) -> bool {
        self.file & 0o004 != 0
    }
}

/// A window only its writer may read.
pub const PRIVATE: WindowModes = WindowModes { dir: 0o700, file: 0o600, group: None };

/// How to open a window to the sink and no one else. New entries under `root` get the root's
/// group when it is setgid, else the writer's: a sink in that group reads through group bits;
/// else the writer gives them the sink's group when it may (it is in that group, or root);
/// only a sink that shares no group with the writer needs "other" bits.
pub fn window_modes(writer: &Ids, sink: &Ids, root_gid: u32, root_mode: u32) -> WindowModes {
    if sink.uid == writer.uid || sink.uid == 0 {
        return PRIVATE;
    }
    let new_entries_gid = if root_mode & 0o2000 != 0 { root_gid } else { writer.gid };
    if sink.in_group(new_entries_gid) {
        return WindowModes { dir: 0o750, file: 0o640, group: None };
    }
    if writer.uid == 0 || writer.in_group(sink.gid) {
        return WindowModes { dir: 0o750, file: 0o640, group: Some(sink.gid) };
    }
    WindowModes { dir: 0o755, file: 0o644, group: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(uid: u32, gid: u32, groups: &[u32]) -> Ids {
        Ids { uid, gid, groups: groups.to_vec() }
    }

    const RX: Want = Want { read: true, write: false, exec: true };
    const WX: Want = Want { read: false, write: true, exec: true };

    #[test]
    fn owner_group_other_rule() {
        // The seed's story: user1 is 530:530 on A, the directory was chowned on B to 540:2180.
        let a = ids(530, 530, &[]);
        assert!(!allowed(&a, 540, 2180, 0o755, WX));
        assert!(allowed(&a, 540, 2180, 0o755, RX));
        assert!(allowed(&ids(540, 2180, &[]), 540, 2180, 0o755, WX));
        // Group bits, through a supplementary group.
        assert!(allowed(&ids(530, 530, &[2180]), 540, 2180, 0o775, WX));
        assert!(!allowed(&ids(530, 530, &[2180]), 540, 2180, 0o705, RX));
        // The owner's bits apply to the owner even when "other" has more.
        assert!(!allowed(&ids(540, 1, &[]), 540, 2180, 0o077, RX));
        assert!(!allowed(&a, 540, 2180, 0o750, RX));
        // Root ignores bits, but needs one x to traverse.
        assert!(allowed(&ids(0, 0, &[]), 540, 2180, 0o100, WX));
        assert!(!allowed(&ids(0, 0, &[]), 540, 2180, 0o600, RX));
    }

    #[test]
    fn windows_are_open_to_the_sink_only() {
        let me = ids(530, 530, &[2180]);
        // The same user: nobody else.
        assert_eq!(window_modes(&me, &me, 530, 0o755), WindowModes { dir: 0o700, file: 0o600, group: None });
        // Another user in the group new entries get (the writer's, or a setgid root's).
        let sink = ids(540, 530, &[]);
        assert_eq!(window_modes(&me, &sink, 99, 0o755).file, 0o640);
        let sink = ids(540, 2180, &[]);
        assert_eq!(window_modes(&me, &sink, 2180, 0o2775), WindowModes { dir: 0o750, file: 0o640, group: None });
        // Another user whose group the writer is in: the files get that group.
        assert_eq!(window_modes(&me, &sink, 99, 0o755), WindowModes { dir: 0o750, file: 0o640, group: Some(2180) });
        // No group in common: only "other" bits reach the sink.
        let stranger = ids(540, 777, &[]);
        assert!(window_modes(&me, &stranger, 99, 0o755).world_readable());
    }

    #[test]
    fn ids_display_names_the_groups() {
        assert_eq!(ids(1000, 1000, &[1000, 27]).to_string(), "uid 1000 (gid 1000, groups 27)");
        assert_eq!(ids(540, 2180, &[]).to_string(), "uid 540 (gid 2180)");
    }

    #[test]
    fn missing_dir_says_so() {
        let me = Ids::current();
        let err = check_dir(Path::new("/nonexistent/gptransfer-mount"), &me, &me, false).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn sink_without_access_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let me = Ids::current();
        let sink = ids(me.uid.wrapping_add(4242), me.gid.wrapping_add(4242), &[]);
        let err = check_dir(dir.path(), &me, &sink, true).unwrap_err();
        assert!(err.contains(&format!("not readable (rx) by uid {} (gid {})", sink.uid, sink.gid)), "{err}");
        assert!(err.contains(&format!("owned by uid {}", me.uid)), "{err}");
        assert!(err.contains("different uids"), "{err}");
    }
}
