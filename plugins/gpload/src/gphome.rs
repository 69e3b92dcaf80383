//! The environment gpload needs. Greenplum's `bin/gpload` is a shell wrapper that runs
//! `gpload.py` with the install's own Python 2.7: without `GPHOME` (or `greenplum_path.sh`
//! sourced) it fails with `exec: gpload.py: not found`, exit 127. So the install is found from
//! the program itself (`<GPHOME>/bin/gpload`, with `greenplum_path.sh` in `<GPHOME>`), or from the
//! sink's `gphome` option, and gpload gets what `greenplum_path.sh` sets: `GPHOME`, `PATH`,
//! `LD_LIBRARY_PATH`, `PYTHONHOME`, `PYTHONPATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use gptransfer_plugin_ssh::shell_quote;

/// The file that marks a Greenplum install's root.
const MARKER: &str = "greenplum_path.sh";

/// Finds `program` as a shell would: a path as it is, a bare name on `PATH`.
pub fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// The Greenplum install `program` belongs to: the option when given, else the parent of the
/// (symlink-resolved) program's directory when it holds `greenplum_path.sh`.
pub fn local_gphome(program: &str, option: Option<&Path>) -> Option<PathBuf> {
    if let Some(home) = option {
        return Some(home.to_path_buf());
    }
    let found = resolve_program(program)?;
    let real = std::fs::canonicalize(&found).unwrap_or(found);
    let home = real.parent()?.parent()?;
    home.join(MARKER).is_file().then(|| home.to_path_buf())
}

/// What `greenplum_path.sh` exports for the install at `home`, on top of this process's
/// `PATH` and `LD_LIBRARY_PATH`.
pub fn local_env(home: &Path) -> Vec<(String, String)> {
    let python = home.join("ext/python");
    let has_python = python.join("bin").is_dir();
    let prepend = |dirs: Vec<PathBuf>, var: &str| -> String {
        let mut all: Vec<PathBuf> = dirs;
        if let Some(old) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            all.extend(std::env::split_paths(&old));
        }
        std::env::join_paths(all).map(OsString::into_string).ok().and_then(Result::ok).unwrap_or_default()
    };
    let mut bins = vec![home.join("bin")];
    let mut libs = vec![home.join("lib")];
    if has_python {
        bins.push(python.join("bin"));
        libs.push(python.join("lib"));
    }
    let mut env = vec![
        ("GPHOME".to_string(), home.display().to_string()),
        ("PATH".to_string(), prepend(bins, "PATH")),
        ("LD_LIBRARY_PATH".to_string(), prepend(libs, "LD_LIBRARY_PATH")),
        ("PYTHONPATH".to_string(), home.join("lib/python").display().to_string()),
    ];
    if has_python {
        env.push(("PYTHONHOME".to_string(), python.display().to_string()));
    }
    env
}

/// Shell text run before gpload on an ETL host: exports `GPHOME` — the option, or the install
/// `program` sits in (found with `command -v`, symlinks resolved) when it holds
/// `greenplum_path.sh` — so that the `gpload` wrapper sources `greenplum_path.sh` itself.
/// Left alone otherwise (the login environment's own GPHOME, if any, stays).
pub fn remote_prefix(program: &str, option: Option<&Path>) -> String {
    if let Some(home) = option {
        return format!("GPHOME={}; export GPHOME; ", shell_quote(&home.display().to_string()));
    }
    let p = shell_quote(program);
    format!(
        "gpt_prog=$(command -v -- {p}) || gpt_prog={p}; \
         gpt_prog=$(readlink -f -- \"$gpt_prog\" 2>/dev/null || printf '%s' \"$gpt_prog\"); \
         gpt_home=$(cd -- \"$(dirname -- \"$gpt_prog\")/..\" 2>/dev/null && pwd -P); \
         if [ -n \"$gpt_home\" ] && [ -f \"$gpt_home/{MARKER}\" ]; then GPHOME=$gpt_home; export GPHOME; fi; "
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_is_found_from_its_bin_directory() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("gp");
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::create_dir_all(home.join("ext/python/bin")).unwrap();
        std::fs::write(home.join("bin/gpload"), "").unwrap();
        let program = home.join("bin/gpload").display().to_string();
        assert_eq!(local_gphome(&program, None), None, "no greenplum_path.sh yet");
        std::fs::write(home.join(MARKER), "").unwrap();
        let found = local_gphome(&program, None).unwrap();
        assert_eq!(found, std::fs::canonicalize(&home).unwrap());
        let env = local_env(&found);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("GPHOME"), found.display().to_string());
        assert!(get("PATH").starts_with(&format!("{}/bin:{}/ext/python/bin", found.display(), found.display())));
        assert_eq!(get("PYTHONHOME"), found.join("ext/python").display().to_string());
        // The option wins.
        assert_eq!(local_gphome("gpload", Some(Path::new("/opt/gp"))), Some(PathBuf::from("/opt/gp")));
    }

    #[test]
    fn the_remote_prefix_quotes_the_program() {
        let prefix = remote_prefix("/opt/g p/bin/gpload", None);
        assert!(prefix.contains("command -v -- '/opt/g p/bin/gpload'"), "{prefix}");
        assert_eq!(remote_prefix("gpload", Some(Path::new("/opt/gp"))), "GPHOME=/opt/gp; export GPHOME; ");
    }
}
