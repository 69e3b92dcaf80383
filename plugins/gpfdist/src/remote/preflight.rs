//! The login and the gpfdist program on the ETL host, checked when the transport is built.

use std::path::Path;

use gptransfer_plugin_ssh::{connect, shell_quote, SshConfig};

use super::{base_dir, in_sh, LIBRARY_PATH};

/// The remote shell that finds gpfdist on the ETL host (the configured path, else `gpfdist` on
/// its PATH, else `$GPHOME/bin/gpfdist`), runs its `--version` and makes sure `work_dir` can be
/// written. Prints `program <path>` when all is well, else `problem <words>`.
pub fn preflight_script(configured: Option<&str>, work_dir: Option<&Path>) -> String {
    let base = base_dir(work_dir);
    format!(
        r#"prog={prog}
base={base}
if [ -z "$prog" ]; then
  prog=$(command -v gpfdist 2>/dev/null)
  [ -z "$prog" ] && [ -n "${{GPHOME:-}}" ] && [ -f "$GPHOME/bin/gpfdist" ] && prog=$GPHOME/bin/gpfdist
  [ -z "$prog" ] && {{ echo "problem gpfdist is neither on the PATH of a remote command nor in \$GPHOME/bin there; set gpfdist = \"/path/to/greenplum/bin/gpfdist\" (a path on that host)"; exit 0; }}
fi
if [ ! -f "$prog" ] || [ ! -x "$prog" ]; then
  echo "problem gpfdist = \"$prog\" is not an executable file there; set gpfdist to the path of a Greenplum install's bin/gpfdist on that host"; exit 0
fi
{library}
v=$("$prog" --version 2>&1) || {{ echo "problem $prog --version failed there: $v"; exit 0; }}
mkdir -p "$base" 2>/dev/null && [ -d "$base" ] && [ -w "$base" ] || {{ echo "problem work_dir $base cannot be made or written there by this user; set work_dir to a writable directory on that host"; exit 0; }}
echo "program $prog"
"#,
        prog = shell_quote(configured.unwrap_or("")),
        library = LIBRARY_PATH,
    )
}

/// Logs in and runs [`preflight_script`] (blocking): the gpfdist program's path on the ETL host,
/// or what is wrong, naming the host and what to do.
pub fn preflight(ssh: &SshConfig, configured: Option<&str>, work_dir: Option<&Path>) -> Result<String, String> {
    let session = connect(ssh).map_err(|e| format!("gpfdist transport, ETL host over SSH: {e}"))?;
    let out = session
        .run_line(&in_sh(&preflight_script(configured, work_dir)))
        .map_err(|e| format!("gpfdist transport, ETL host over SSH: {e}"))?;
    let target = &session.target;
    session.abandon();
    if let Some(program) = out.stdout.lines().find_map(|l| l.strip_prefix("program ")) {
        return Ok(program.to_string());
    }
    match out.stdout.lines().find_map(|l| l.strip_prefix("problem ")) {
        Some(problem) => Err(format!("gpfdist transport, ETL host {target} (over SSH): {problem}")),
        None => Err(format!(
            "gpfdist transport, ETL host {target} (over SSH): the check of gpfdist there did not finish: {}",
            out.explain()
        )),
    }
}
