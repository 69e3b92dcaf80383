//! `.pgpass` lookup as libpq does it: `host:port:database:user:password`, `*` wildcards,
//! `\:` and `\\` escapes, first match wins, ignored unless private (0600) like libpq.

use std::path::{Path, PathBuf};

/// The file libpq would read: `$PGPASSFILE`, else `~/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass"))
}

/// The password for these connection parameters, when the file has a matching line.
pub fn lookup(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    if !is_private(path) {
        tracing::warn!("{} is readable by group or others: ignored, as libpq does (chmod 0600 it)", path.display());
        return None;
    }
    let port = port.to_string();
    text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).find_map(|line| {
        let fields = split_fields(line);
        if fields.len() < 5 {
            return None;
        }
        let host_ok =
            matches(&fields[0], host) || (fields[0] == "localhost" && (host.starts_with('/') || host == "127.0.0.1"));
        (host_ok && matches(&fields[1], &port) && matches(&fields[2], database) && matches(&fields[3], user))
            .then(|| fields[4].clone())
    })
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if let Some(last) = fields.last_mut() {
                        last.push(next);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(unix)]
fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.permissions().mode() & 0o077 == 0).unwrap_or(false)
}

#[cfg(not(unix))]
fn is_private(_path: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_wildcards() {
        let dir = std::env::temp_dir().join(format!("gpt-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pgpass");
        std::fs::write(&path, "# comment\nother:5432:*:u:no\ngp6:*:qms:gpadmin:se\\:cr\\\\et\n*:*:*:*:fallback\n")
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(lookup(&path, "gp6", 5432, "qms", "gpadmin").as_deref(), Some("se:cr\\et"));
        assert_eq!(lookup(&path, "x", 1, "y", "z").as_deref(), Some("fallback"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
