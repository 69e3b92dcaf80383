//! External plugins (issue 5, ARCHITECTURE.md "External plugins"): the example `files` sink,
//! built as a shared library here, is listed, moves windows end to end and passes the same
//! conformance checks as the built-in `copy` sink; and each way a plugin can fail to load or
//! run fails with a message naming the library while the process survives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use support::{regex_escape, CmdOutput, TestEnv};

/// The libraries the tests load, as (package, library file stem).
const LIBRARIES: &[&str] = &[
    "gptransfer-sink-files",
    "gptransfer-fixture-not-a-plugin",
    "gptransfer-fixture-other-sdk-version",
    "gptransfer-fixture-init-error",
    "gptransfer-fixture-init-panic",
    "gptransfer-fixture-write-panic",
];

/// `target/debug` of this build (the test binary lives in `target/debug/deps`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Builds the example plugin and the fixtures as shared libraries (once per process) and
/// returns the path of one of them.
fn library(package: &str) -> PathBuf {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        let profile = target_profile_dir();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--quiet"]);
        for p in LIBRARIES {
            cmd.args(["-p", p]);
        }
        cmd.arg("--target-dir").arg(profile.parent().unwrap());
        let status = cmd.status().expect("run cargo build for the plugin libraries");
        assert!(status.success(), "cargo build of the plugin libraries failed: {status}");
    });
    target_profile_dir().join(format!("lib{}.so", package.replace('-', "_")))
}

/// Source and target table `public.ev` with six rows in 2024-03-10 00:00..01:00 and two after.
fn seed(env: &TestEnv) {
    let ddl = "CREATE TABLE public.ev (id int, ts timestamp, note text)";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "INSERT INTO public.ev SELECT g, timestamp '2024-03-10 00:00:00' + g * interval '7 minutes', \
         'row ' || g || E'\\ttab' FROM generate_series(0, 7) g",
    );
}

/// A config with `[plugins] paths` and one job whose table uses `sink`.
fn config(env: &TestEnv, paths: &[PathBuf], sink: &str) {
    let paths = paths.iter().map(|p| format!("{:?}", p.display().to_string())).collect::<Vec<_>>().join(", ");
    env.write_config(&format!(
        r#"{{CLUSTERS}}
[plugins]
paths = [{paths}]

[jobs.ev]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 01:00:00"
duration = "1h"

[[jobs.ev.tables]]
table = "public.ev"
condition_column = "ts"
sink = {sink}
"#
    ));
}

fn with_target(out: CmdOutput) -> CmdOutput {
    out.with_filter(&regex_escape(&target_profile_dir().display().to_string()), "[TARGET]")
}

/// The stored cursor of the table, `-` when there is none (or no state tables yet).
fn cursor(env: &TestEnv) -> String {
    env.dst
        .try_psql(
            &env.db,
            "SELECT coalesce(max(cursor_end)::text, '-') FROM gptransfer.cursors WHERE table_name = 'public.ev'",
        )
        .unwrap_or_else(|_| "-".to_string())
}

// ---------------------------------------------------------------------------------------------
// Conformance: the same checks against a built-in sink and the external one
// ---------------------------------------------------------------------------------------------

/// How a conformance check sees what a sink made visible.
trait Visible {
    /// Rows visible for the window 2024-03-10 00:00..01:00.
    fn rows(&self, env: &TestEnv) -> u64;
}

struct CopyTarget;
impl Visible for CopyTarget {
    fn rows(&self, env: &TestEnv) -> u64 {
        env.dst_psql("SELECT count(*) FROM public.ev").parse().unwrap()
    }
}

struct FilesTarget;
impl Visible for FilesTarget {
    fn rows(&self, env: &TestEnv) -> u64 {
        let manifest = env.dir().join("out/public.ev/20240310000000^20240310010000/manifest.json");
        match std::fs::read_to_string(&manifest) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text).unwrap()["rows"].as_u64().unwrap(),
            Err(_) => 0,
        }
    }
}

/// Runs the conformance checks with `sink` (TOML) and `visible` to observe the result:
/// a window lands counted, history and cursor agree, a re-run moves nothing, and a forced
/// re-load of the window replaces it instead of adding to it.
fn conformance(name: &str, sink: &str, visible: &dyn Visible) {
    let env = TestEnv::new(name);
    seed(&env);
    config(&env, &[library("gptransfer-sink-files")], sink);

    // Nothing visible before the run.
    assert_eq!(visible.rows(&env), 0);

    let out = env.run(&["run"]);
    out.assert_success();
    assert_eq!(visible.rows(&env), 8, "rows of the window: ids 0..=7 at 7-minute steps\n{}", out.render());
    assert_eq!(
        env.dst_psql("SELECT status || ' ' || rows_read || ' ' || rows_written FROM gptransfer.history"),
        "succeeded 8 8",
        "history records the rows the sink wrote"
    );
    assert_eq!(cursor(&env), "2024-03-10 01:00:00");

    // A re-run finds nothing due.
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history"), "1", "a re-run loads nothing");
}

#[test]
fn conformance_builtin_copy_sink() {
    conformance("conformance_builtin_copy_sink", r#""copy""#, &CopyTarget);
}

#[test]
fn conformance_external_files_sink() {
    conformance("conformance_external_files_sink", r#"{ plugin = "files", dir = "{TEMP_DIR}/out" }"#, &FilesTarget);
}

// ---------------------------------------------------------------------------------------------
// The example plugin
// ---------------------------------------------------------------------------------------------

#[test]
fn plugins_lists_the_loaded_example() {
    let env = TestEnv::new("plugins_lists_the_loaded_example");
    config(&env, &[library("gptransfer-sink-files")], r#""copy""#);
    let out = env.run(&["plugins"]);
    out.assert_success();
    // Not a snapshot: the table's width follows the library path, which differs per checkout.
    let line = out.stdout.lines().find(|l| l.contains(" files ")).unwrap_or_else(|| panic!("{}", out.render()));
    let path = library("gptransfer-sink-files").display().to_string();
    for part in ["sink", "0.1.0", path.as_str(), "example external sink"] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    assert!(out.stdout.lines().any(|l| l.contains(" copy ") && l.contains("built-in")), "{}", out.render());
}

#[test]
fn example_plugin_moves_a_window_end_to_end() {
    let env = TestEnv::new("example_plugin_moves_a_window_end_to_end");
    seed(&env);
    config(&env, &[library("gptransfer-sink-files")], r#"{ plugin = "files", dir = "{TEMP_DIR}/out" }"#);
    let out = env.run(&["run"]);
    out.assert_success();
    let dir = env.dir().join("out/public.ev/20240310000000^20240310010000");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"], 8);
    assert_eq!(manifest["columns"], serde_json::json!(["id", "ts", "note"]));
    assert!(manifest["bytes"].as_u64().unwrap() > 0);
    let gz = std::fs::read(dir.join("data.txt.gz")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    // No temporary directory left behind.
    let left: Vec<_> =
        std::fs::read_dir(env.dir().join("out/public.ev")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(cursor(&env), "2024-03-10 01:00:00");
}

// ---------------------------------------------------------------------------------------------
// Load failures: one test each, the message names the library
// ---------------------------------------------------------------------------------------------

fn load_failure(name: &str, library: PathBuf) -> CmdOutput {
    let env = TestEnv::new(name);
    seed(&env);
    let sink = if name.contains("init") || name.contains("write") {
        format!("{:?}", name.split("load_failure_").nth(1).unwrap().replace('_', "-"))
    } else {
        r#""copy""#.to_string()
    };
    config(&env, std::slice::from_ref(&library), &sink);
    let out = with_target(env.run(&["run"]));
    assert!(out.code == 1 || out.code == 2, "a failure exit code, not a crash: {}", out.render());
    assert!(out.stderr.contains(&library.display().to_string()), "the message names the file: {}", out.render());
    assert_eq!(cursor(&env), "-", "nothing advanced");
    out
}

#[test]
fn load_failure_missing_file() {
    let out = load_failure("load_failure_missing_file", target_profile_dir().join("libgptransfer_no_such_plugin.so"));
    cli_snapshot!(out);
}

#[test]
fn load_failure_not_a_plugin() {
    cli_snapshot!(load_failure("load_failure_not_a_plugin", library("gptransfer-fixture-not-a-plugin")));
}

#[test]
fn load_failure_other_sdk_version() {
    cli_snapshot!(load_failure("load_failure_other_sdk_version", library("gptransfer-fixture-other-sdk-version")));
}

#[test]
fn load_failure_init_error() {
    cli_snapshot!(load_failure("load_failure_init_error", library("gptransfer-fixture-init-error")));
}

#[test]
fn load_failure_init_panic() {
    let out = load_failure("load_failure_init_panic", library("gptransfer-fixture-init-panic"));
    assert!(out.stderr.contains("panicked in init"), "{}", out.render());
    cli_snapshot!(out);
}

#[test]
fn load_failure_write_panic() {
    let out = load_failure("load_failure_write_panic", library("gptransfer-fixture-write-panic"));
    assert_eq!(out.code, 1, "the window failed, the process did not: {}", out.render());
    assert!(out.stderr.contains("panicked in write"), "{}", out.render());
    cli_snapshot!(out);
}

/// Issue 15 item 6: an external plugin's `PluginError::retriable` is retried in the same run.
/// The `files` sink cannot create its window directory while a plain file stands in the way
/// (a retriable error in its words); the file is removed during the wait and the retry lands.
#[test]
fn a_retriable_plugin_error_is_retried_in_the_same_run() {
    let env = TestEnv::new("plugin_retriable");
    seed(&env);
    // The table's own retry_delay: long enough to clear the way before the retry.
    config(
        &env,
        &[library("gptransfer-sink-files")],
        "{ plugin = \"files\", dir = \"{TEMP_DIR}/out\" }\nretry_delay = \"3s\"",
    );
    let blocker = env.dir().join("out/public.ev");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, "in the way").unwrap();

    let run = env.spawn(&["run"]);
    let failed = "SELECT count(*) FROM gptransfer.history WHERE status = 'failed'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while env.dst.try_psql(&env.db, failed).unwrap_or_default() != "1" {
        assert!(std::time::Instant::now() < deadline, "the first attempt never failed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::remove_file(&blocker).unwrap();
    let out = run.wait();
    out.assert_success();
    let warning =
        "retrying window 20240310000000^20240310010000 of public.ev in 3s (attempt 2 of 3): sink plugin \"files\"";
    assert!(out.stderr.contains(warning), "no {warning:?} in:\n{}", out.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(status || ' ' || attempt, ', ' ORDER BY id) FROM gptransfer.history"),
        "failed 1, succeeded 2"
    );
    assert_eq!(FilesTarget.rows(&env), 8);
    assert_eq!(cursor(&env), "2024-03-10 01:00:00");
}
