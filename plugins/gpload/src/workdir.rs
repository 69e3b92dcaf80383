//! gpload's work files hold a window's rows and a control file whose `SQL` runs with the
//! target's credentials: only this user may read them, and no other user may plant them.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// The default work directory: `gptransfer-<uid>` in the system temp directory, mode 0700,
/// created when missing; refused when another user owns it or others may write to it (a
/// planted directory in a shared `/tmp`).
pub fn private_default() -> Result<PathBuf, String> {
    let uid = rustix::process::geteuid().as_raw();
    let dir = std::env::temp_dir().join(format!("gptransfer-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => return Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create the gpload work directory {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the gpload work directory {} is not a directory of this user (uid {uid}) closed to others (it is uid {}, \
             mode {:o}): remove it, or set the sink's work_dir to a private directory",
            dir.display(),
            meta.uid(),
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(dir)
}

/// The default work directory on the ETL host: `gptransfer-<uid>` in the remote user's
/// `$TMPDIR` (else `/tmp`), mode 0700, created when missing; refused, as here, when it is not
/// a directory of that user closed to others (checked without following a symlink).
pub fn remote_private_default(ssh: &gptransfer_plugin_ssh::Ssh) -> Result<PathBuf, String> {
    let out = ssh.run_line("printf '%s\\n' \"${TMPDIR:-/tmp}\" && id -u").map_err(|e| e.0)?;
    let mut lines = out.stdout.lines();
    let (Some(tmp), Some(uid)) = (lines.next(), lines.next().and_then(|u| u.trim().parse::<u32>().ok())) else {
        return Err(format!(
            "ssh {}: cannot find the remote user's temporary directory and uid ({}): set the gpload sink's work_dir",
            ssh.target,
            out.explain()
        ));
    };
    let dir = Path::new(tmp).join(format!("gptransfer-{uid}"));
    let sftp = ssh.sftp().map_err(|e| e.0)?;
    // Already there is fine; what is there is judged below.
    let _ = sftp.mkdir(&dir, 0o700);
    let stat = sftp
        .lstat(&dir)
        .map_err(|e| format!("ssh {}: cannot create the gpload work directory {}: {e}", ssh.target, dir.display()))?;
    let mode = stat.perm.unwrap_or(0);
    if !stat.is_dir() || stat.uid != Some(uid) || mode & 0o077 != 0 {
        return Err(format!(
            "ssh {}: the gpload work directory {} is not a directory of the remote user (uid {uid}) closed to others \
             (it is uid {}, mode {:o}): remove it on the ETL host, or set the sink's work_dir to a private directory",
            ssh.target,
            dir.display(),
            stat.uid.map_or_else(|| "?".to_string(), |u| u.to_string()),
            mode & 0o7777
        ));
    }
    Ok(dir)
}

/// Writes a fresh file readable by this user only. A file left by an earlier attempt is
/// replaced; one another user planted in a shared directory can be neither removed nor
/// reused, and fails the window.
pub async fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(refused(path, &e)),
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| refused(path, &e))?;
    file.write_all(bytes).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.flush().await.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn refused(path: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot create {} as a new private file ({e}): another user's file may be in the way; set the sink's \
         work_dir to a directory only this user can write",
        path.display()
    )
}
