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
    "gptransfer-fixture-faulty",
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

/// Source and target table `public.ev` with eight rows in 2024-03-10 00:00..01:00.
fn seed(env: &TestEnv) {
    env.dst_psql("CREATE TABLE public.ev (id int, ts timestamp, note text)");
    seed_source(env);
}

/// The source table alone: a sink that loads no database needs no target table.
fn seed_source(env: &TestEnv) {
    env.src_psql("CREATE TABLE public.ev (id int NOT NULL, ts timestamp, note text)");
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

/// The SDK's version, from its Cargo.toml.
fn sdk_version() -> String {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ").trim_matches('"').to_string()
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
fn conformance(name: &str, sink: &str, visible: &dyn Visible, loads_target: bool) {
    let env = TestEnv::new(name);
    if loads_target {
        seed(&env);
    } else {
        seed_source(&env);
    }
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
    conformance("conformance_builtin_copy_sink", r#""copy""#, &CopyTarget, true);
}

#[test]
fn conformance_external_files_sink() {
    // No target table: the files sink loads no database.
    conformance("conformance_external_files_sink", r#"{ plugin = "files", dir = "out" }"#, &FilesTarget, false);
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
    // Its own version, then the SDK version it was built against.
    let words: Vec<&str> = line.split_whitespace().skip_while(|w| *w != "files").collect();
    assert_eq!(words.get(1..3), Some(&["0.1.0", sdk_version().as_str()][..]), "{line}");
    for part in ["sink", path.as_str(), "example external sink"] {
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
    // Typed columns reach the plugin: declared types and NOT NULL from the source.
    assert_eq!(
        manifest["columns"],
        serde_json::json!([
            {"name": "id", "type": "integer", "nullable": false},
            {"name": "ts", "type": "timestamp without time zone", "nullable": true},
            {"name": "note", "type": "text", "nullable": true},
        ])
    );
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
    assert!(out.stderr.contains("init: panicked: init blew up"), "{}", out.render());
    cli_snapshot!(out);
}

#[test]
fn load_failure_write_panic() {
    let out = load_failure("load_failure_write_panic", library("gptransfer-fixture-write-panic"));
    assert_eq!(out.code, 1, "the window failed, the process did not: {}", out.render());
    assert!(out.stderr.contains("write: panicked: write blew up"), "{}", out.render());
    assert!(!out.stderr.contains("panicked in"), "the entry point is named once: {}", out.render());
    cli_snapshot!(out);
}

// ---------------------------------------------------------------------------------------------
// A sink that loads no database (issue 15): no target table, its own compare, its own cleanup
// ---------------------------------------------------------------------------------------------

/// A job of one table loaded by `sink` with the files and faulty libraries; `extra` is
/// appended to the table entry (mode, compare, …).
fn sink_only_config(env: &TestEnv, sink: &str, extra: &str) {
    let libraries = [library("gptransfer-sink-files"), library("gptransfer-fixture-faulty")];
    config(env, &libraries, &format!("{sink}\n{extra}"));
}

fn history(env: &TestEnv) -> String {
    env.dst_psql("SELECT string_agg(status || ' ' || rows_read || ' ' || rows_written, ', ' ORDER BY id) FROM gptransfer.history")
}

#[test]
fn a_sink_that_loads_no_database_runs_reruns_compares_and_never_false_alarms() {
    let env = TestEnv::new("a_sink_that_loads_no_database_runs_reruns_compares_and_never_false_alarms");
    seed_source(&env);
    // A relative dir: from the config file's directory.
    sink_only_config(&env, r#"{ plugin = "files", dir = "out" }"#, "");
    let window = env.dir().join("out/public.ev/20240310000000^20240310010000");

    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    assert!(window.join("manifest.json").exists(), "the window is under the config's directory");
    assert_eq!(env.dst_psql("SELECT to_regclass('public.ev') IS NULL"), "t", "no target table was needed or made");
    let rerun = env.run(&["run"]);
    rerun.assert_success();
    assert_eq!(history(&env), "succeeded 8 8", "a re-run loads nothing: {}", rerun.render());

    // compare asks the sink (files counts its windows): equal, and the monitor sees NORMAL.
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    assert!(out.stdout.contains("equal"), "{}", out.render());
    let alarm = env.run(&["alarm", "check", "--hours", "100000"]);
    assert_eq!((alarm.code, alarm.stdout.trim()), (0, "NORMAL"), "{}", alarm.render());

    // The daemon loads, compares and raises nothing.
    env.src_psql("INSERT INTO public.ev VALUES (100, '2024-03-10 00:30:00', 'late')");
    env.run(&["reload", "--job", "ev", "--from", "2024-03-10 00:00:00", "--to", "2024-03-10 01:00:00"])
        .assert_success();
    let daemon = env.run(&["daemon", "--interval", "1s", "--rounds", "1"]);
    assert_eq!(daemon.code, 0, "{}", daemon.render());
    let alarm = env.run(&["alarm", "check", "--hours", "100000"]);
    assert_eq!((alarm.code, alarm.stdout.trim()), (0, "NORMAL"), "{}", alarm.render());

    // A window lost on the sink's side is found, counted on both sides, and repaired.
    std::fs::remove_dir_all(&window).unwrap();
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 3, "{}", out.render());
    assert!(
        out.stdout.contains("source 9 rows, target 0 rows")
            && out.stdout.contains("the sink's output holds 0 rows of the window; it cannot name keys"),
        "{}",
        out.render()
    );
    let alarm = env.run(&["alarm", "check", "--hours", "100000"]);
    assert_eq!(alarm.code, 3, "a difference the sink's count shows alarms: {}", alarm.render());
    let json = env.run(&["compare", "--output", "json"]);
    let found: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (found["windows"][0]["source_count"].as_i64(), found["windows"][0]["target_count"].as_i64()),
        (Some(9), Some(0))
    );
    let repaired = env.run(&["compare", "--repair"]);
    assert_eq!(repaired.code, 0, "{}", repaired.render());
    assert!(window.join("manifest.json").exists(), "{}", repaired.render());
}

#[test]
fn a_sink_that_loads_no_database_is_refused_what_it_cannot_do_at_config_check() {
    let env = TestEnv::new("a_sink_that_loads_no_database_is_refused_what_it_cannot_do_at_config_check");
    seed_source(&env);
    // A mode the sink does not declare.
    sink_only_config(&env, r#"{ plugin = "files", dir = "out" }"#, "mode = \"merge\"\nkey = [\"id\"]");
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(
        out.stderr.contains(r#"sink plugin "files" loads replace, full mode only, and this table is in merge mode"#),
        "{}",
        out.render()
    );
    let run = env.run(&["run"]);
    assert_ne!(run.code, 0, "{}", run.render());
    assert!(!env.dir().join("out").exists(), "nothing was written: {}", run.render());

    // A comparator that reads a target table there is none of.
    sink_only_config(&env, r#"{ plugin = "files", dir = "out" }"#, "compare = \"hash\"");
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(
        out.stderr.contains(
            r#"compare: "hash" reads target table public.ev on cluster "dst", but sink "files" loads no table there"#
        ),
        "{}",
        out.render()
    );

    // compare = "none" is taken: the table is loaded and never compared.
    sink_only_config(&env, r#"{ plugin = "files", dir = "out" }"#, "compare = \"none\"");
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    let out = env.run(&["compare", "--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.render());
    let found: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(found["windows"], serde_json::json!([]), "{}", out.render());
}

#[test]
fn full_loads_into_a_files_sink_keep_one_slot() {
    let env = TestEnv::new("full_loads_into_a_files_sink_keep_one_slot");
    seed_source(&env);
    sink_only_config(&env, r#"{ plugin = "files", dir = "out" }"#, "mode = \"full\"");
    env.run(&["run"]).assert_success();
    env.src_psql("INSERT INTO public.ev VALUES (100, '2024-03-10 00:30:00', 'more')");
    env.run(&["reload", "--job", "ev", "--from", "2024-03-10 00:00:00", "--to", "2024-03-10 01:00:00"])
        .assert_success();
    let table_dir = env.dir().join("out/public.ev");
    let slots: Vec<String> =
        std::fs::read_dir(&table_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert_eq!(slots, vec!["full".to_string()], "each full load replaces the last");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(table_dir.join("full/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["rows"], 9);
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
}

/// What the faulty fixture left in its directory, sorted.
fn faulty_files(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.dir().join("faulty"))
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_sink_that_miscounts_fails_its_window_before_anything_is_visible() {
    let env = TestEnv::new("a_sink_that_miscounts_fails_its_window_before_anything_is_visible");
    seed_source(&env);
    sink_only_config(&env, r#"{ plugin = "faulty", dir = "faulty", extra_rows = 1 }"#, "");
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stderr.contains("8 rows read from the source but 9 written to the target"), "{}", out.render());
    assert_eq!(faulty_files(&env), Vec::<String>::new(), "never committed, and cleaned up");
    assert_eq!(cursor(&env), "-");
}

#[test]
fn a_failed_commit_is_aborted_and_leaves_nothing_behind() {
    let env = TestEnv::new("a_failed_commit_is_aborted_and_leaves_nothing_behind");
    seed_source(&env);
    sink_only_config(&env, r#"{ plugin = "faulty", dir = "faulty", fail_commit = true }"#, "");
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stderr.contains("commit: the commit failed halfway (fixture)"), "{}", out.render());
    assert_eq!(faulty_files(&env), Vec::<String>::new(), "the half-made file and the temp file are gone");
    assert_eq!(cursor(&env), "-");
}

#[test]
fn a_plugins_log_lines_reach_gptransfers_log_naming_the_window() {
    let env = TestEnv::new("a_plugins_log_lines_reach_gptransfers_log_naming_the_window");
    seed_source(&env);
    sink_only_config(&env, r#"{ plugin = "faulty", dir = "faulty" }"#, "");
    let out = env.run(&["run", "-v"]);
    out.assert_success();
    let line =
        out.stderr.lines().find(|l| l.contains("prepared 8 row(s)")).unwrap_or_else(|| panic!("{}", out.render()));
    for part in [r#"sink plugin "faulty""#, r#"job "ev""#, "table public.ev", "window 20240310000000^20240310010000"] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    assert_eq!(faulty_files(&env), vec!["20240310000000^20240310010000.rows".to_string()]);
    assert_eq!(
        std::fs::read_to_string(env.dir().join("faulty/20240310000000^20240310010000.rows")).unwrap().lines().count(),
        8
    );
}

#[test]
fn a_plugin_failing_retriably_in_prepare_is_retried_and_lands() {
    let env = TestEnv::new("a_plugin_failing_retriably_in_prepare_is_retried_and_lands");
    seed_source(&env);
    sink_only_config(
        &env,
        r#"{ plugin = "faulty", dir = "faulty", retriable_failures = 1 }"#,
        "retry_delay = \"100ms\"",
    );
    let out = env.run(&["run"]);
    out.assert_success();
    assert!(out.stderr.contains("the store is busy (fixture), try again"), "{}", out.render());
    assert_eq!(history(&env), "failed 8 0, succeeded 8 8");
    assert_eq!(faulty_files(&env), vec!["20240310000000^20240310010000.rows".to_string()], "no temp file left");
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
