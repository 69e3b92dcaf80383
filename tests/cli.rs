//! The command line for people and for scripts (SPEC §5): help texts, `plugins`, `history` in
//! both formats and with `--failed`, `run --output json`, `run --dry-run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{CmdOutput, TestEnv};

/// Source and target table `public.events`; 10 rows per hour from 2024-01-01 00:00 to 03:00
/// on the source (30 rows, 3 windows of 1h), nothing on the target.
fn create_events(env: &TestEnv) {
    let ddl = "CREATE TABLE events (id integer PRIMARY KEY, ts timestamp NOT NULL, note text, qty numeric(10,2));";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "INSERT INTO events SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '6 minutes', \
         'note ' || g, g * 1.5 FROM generate_series(0, 29) g",
    );
}

/// A job `j` moving `public.events` in 1h windows from 2024-01-01 00:00 up to `final_end`.
fn write_config(env: &TestEnv, final_end: &str) {
    env.write_config(&format!(
        r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
final_end = "{final_end}"
"#
    ));
}

/// Byte counts depend on the COPY format the run picks (text or binary), not on what these
/// tests hold the output to.
fn hide_bytes(out: CmdOutput) -> CmdOutput {
    out.with_filter(r"\b\d+(\.\d+)? (B|kB|MB|GB)\b", "[BYTES]").with_filter(r#""bytes": \d+"#, r#""bytes": [BYTES]"#)
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn dst_count(env: &TestEnv) -> i64 {
    env.dst_psql("SELECT count(*) FROM events").parse().unwrap()
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let env = TestEnv::new("help");
    let out = env.run(&["--help"]);
    out.assert_success();
    cli_snapshot!(out);
}

#[test]
fn run_help_lists_its_options() {
    let env = TestEnv::new("run_help");
    let out = env.run(&["run", "--help"]);
    out.assert_success();
    for option in ["--job", "--table", "--until", "--parallel", "--dry-run", "--output"] {
        assert!(out.stdout.contains(option), "{option} missing:\n{}", out.stdout);
    }
    cli_snapshot!(out);
}

#[test]
fn plugins_lists_the_built_in_plugins() {
    let env = TestEnv::new("plugins");
    // No config needed to list what is built in.
    let out = env.run(&["plugins"]);
    out.assert_success();
    cli_snapshot!(out);
}

#[test]
fn unknown_command_is_a_usage_error() {
    let env = TestEnv::new("unknown_command");
    let out = env.run(&["frobnicate"]);
    out.assert_code(2);
    cli_snapshot!(out);
}

#[test]
fn config_check_passes_on_a_good_config() {
    let env = TestEnv::new("config_check_ok");
    create_events(&env);
    write_config(&env, "2024-01-01 03:00:00");
    let out = env.run(&["config", "check"]);
    out.assert_success();
    cli_snapshot!(out);
    // A check moves nothing.
    assert_eq!(dst_count(&env), 0);
}

#[test]
fn history_human_output_after_a_run() {
    let env = TestEnv::new("history_human");
    create_events(&env);
    write_config(&env, "2024-01-01 03:00:00");

    // Before any run there is no state schema yet: history says so, and exits 0.
    let before = env.run(&["history"]);
    before.assert_success();
    assert_eq!(before.stdout.trim(), "no history yet");

    let run = env.run(&["run"]);
    run.assert_success();
    cli_snapshot!("history_human_output_after_a_run__run", hide_bytes(run));

    let out = env.run(&["history"]);
    out.assert_success();
    cli_snapshot!(hide_bytes(out));

    // --limit and --table narrow it.
    let limited = env.run(&["history", "--limit", "1", "--table", "events"]);
    limited.assert_success();
    assert_eq!(limited.stdout.matches("succeeded").count(), 1, "{}", limited.stdout);
    assert!(limited.stdout.contains("20240101020000^20240101030000"), "newest first:\n{}", limited.stdout);
}

#[test]
fn history_json_has_every_field_a_script_needs() {
    let env = TestEnv::new("history_json");
    create_events(&env);
    write_config(&env, "2024-01-01 02:00:00");
    env.run(&["run"]).assert_success();

    let out = env.run(&["history", "--output", "json"]);
    out.assert_success();
    let rows = parse_json(&out.stdout);
    let rows = rows.as_array().expect("an array of history rows");
    assert_eq!(rows.len(), 2, "{}", out.stdout);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    // Newest first.
    let expected_windows = ["20240101010000^20240101020000", "20240101000000^20240101010000"];
    for (row, window) in rows.iter().zip(expected_windows) {
        assert_eq!(row["job"], "j", "{row}");
        assert_eq!(row["table"], "public.events", "{row}");
        assert_eq!(row["target_table"], "public.events", "{row}");
        assert_eq!(row["window_id"], window, "{row}");
        assert_eq!(row["status"], "succeeded", "{row}");
        assert_eq!(row["mode"], "replace", "{row}");
        // The chain may name the COPY format it settled on, e.g. "copy > stream > copy (binary)".
        assert!(row["chain"].as_str().is_some_and(|c| c.starts_with("copy > stream > copy")), "{row}");
        assert_eq!(row["rows_read"], 10, "{row}");
        assert_eq!(row["rows_written"], 10, "{row}");
        assert!(row["bytes"].as_i64().is_some_and(|b| b > 0), "bytes: {row}");
        let elapsed =
            row["elapsed_seconds"].as_str().unwrap_or_else(|| panic!("elapsed_seconds is not a string: {row}"));
        let (whole, decimals) =
            elapsed.split_once('.').unwrap_or_else(|| panic!("elapsed_seconds without decimals: {elapsed}"));
        assert!(
            whole.chars().all(|c| c.is_ascii_digit())
                && decimals.len() == 2
                && decimals.chars().all(|c| c.is_ascii_digit()),
            "elapsed_seconds must have exactly two decimals: {elapsed}"
        );
        assert_eq!(row["attempt"], 1, "{row}");
        assert_eq!(row["host"], host.as_str(), "{row}");
        assert!(row["error"].is_null(), "{row}");
        assert!(row["started_at"].is_string(), "{row}");
        assert!(row["finished_at"].is_string(), "{row}");
    }
    assert_eq!(rows[1]["window_start"], "2024-01-01T00:00:00");
    assert_eq!(rows[1]["window_end"], "2024-01-01T01:00:00");

    // The same in the history table itself (what a monitor reading SQL sees).
    assert_eq!(
        env.dst_psql(
            "SELECT string_agg(window_id || ' ' || status || ' ' || rows_written || ' ' || (elapsed_seconds::text ~ '^[0-9]+\\.[0-9]{2}$')::text, ',' ORDER BY id) FROM gptransfer.history"
        ),
        "20240101000000^20240101010000 succeeded 10 true,20240101010000^20240101020000 succeeded 10 true"
    );
}

#[test]
fn history_failed_shows_only_failed_attempts() {
    let env = TestEnv::new("history_failed");
    create_events(&env);
    // The target rejects one row of the second window.
    env.dst_psql("ALTER TABLE events ADD CONSTRAINT qty_small CHECK (qty < 20)");
    write_config(&env, "2024-01-01 03:00:00");

    let run = env.run(&["run"]);
    run.assert_code(1);
    cli_snapshot!("history_failed_shows_only_failed_attempts__run", hide_bytes(run));
    // Window 1 landed; window 2 rolled back; window 3 waits behind it (no hole in the cursor).
    assert_eq!(dst_count(&env), 10);
    assert_eq!(env.dst_psql("SELECT cursor_end FROM gptransfer.cursors"), "2024-01-01 01:00:00");

    let all = env.run(&["history", "--output", "json"]);
    all.assert_success();
    let all = parse_json(&all.stdout);
    let statuses: Vec<&str> = all.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "succeeded"]);

    let failed = env.run(&["history", "--failed", "--output", "json"]);
    failed.assert_success();
    let failed = parse_json(&failed.stdout);
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let row = &failed[0];
    assert_eq!(row["status"], "failed");
    assert_eq!(row["window_id"], "20240101010000^20240101020000");
    assert_eq!(row["rows_written"], 0);
    let error = row["error"].as_str().unwrap();
    assert!(error.contains("qty_small"), "the error names the constraint: {error}");

    let human = env.run(&["history", "--failed"]);
    human.assert_success();
    assert!(!human.stdout.contains("succeeded"), "{}", human.stdout);
    cli_snapshot!(hide_bytes(human));
    // The table cuts errors; `--errors` prints each one whole.
    let whole = env.run(&["history", "--failed", "--errors"]);
    whole.assert_success();
    assert!(
        whole.stdout.contains(&format!("j / public.events 20240101010000^20240101020000 (attempt 1):\n{error}")),
        "{}",
        whole.render()
    );
}

#[test]
fn run_json_output_shape() {
    let env = TestEnv::new("run_json");
    create_events(&env);
    write_config(&env, "2024-01-01 02:00:00");

    let out = env.run(&["run", "--output", "json"]);
    out.assert_success();
    // Only JSON on stdout: a script pipes it straight into a parser.
    let report = parse_json(&out.stdout);
    assert!(report["interrupted_by"].is_null(), "{report}");
    let windows = report["windows"].as_array().expect("windows array");
    assert_eq!(windows.len(), 2);
    for (w, id) in windows.iter().zip(["20240101000000^20240101010000", "20240101010000^20240101020000"]) {
        assert_eq!(w["job"], "j");
        assert_eq!(w["table"], "public.events");
        assert_eq!(w["window"], id);
        assert_eq!(w["status"], "succeeded");
        assert_eq!(w["rows_read"], 10);
        assert_eq!(w["rows_written"], 10);
        assert!(w["bytes"].as_u64().is_some_and(|b| b > 0), "{w}");
        let elapsed = w["elapsed_seconds"].as_f64().expect("elapsed_seconds is a number");
        assert!((elapsed * 100.0 - (elapsed * 100.0).round()).abs() < 1e-6, "two decimals at most: {elapsed}");
        assert!(w["error"].is_null());
    }
    cli_snapshot!(hide_bytes(out.with_filter(r#""elapsed_seconds": [0-9.]+"#, r#""elapsed_seconds": [ELAPSED]"#)));

    // A second run has nothing due: an empty window list, still valid JSON.
    let again = env.run(&["run", "--output", "json"]);
    again.assert_success();
    let again = parse_json(&again.stdout);
    assert_eq!(again["windows"], Value::Array(vec![]));
}

#[test]
fn dry_run_moves_nothing() {
    let env = TestEnv::new("dry_run");
    create_events(&env);
    write_config(&env, "2024-01-01 03:00:00");

    let out = env.run(&["run", "--dry-run"]);
    out.assert_success();
    cli_snapshot!(out);
    assert_eq!(dst_count(&env), 0);
    let state = |table: &str| {
        env.dst.try_psql(&env.db, &format!("SELECT count(*) FROM gptransfer.{table}")).unwrap_or_else(|_| "0".into())
    };
    assert_eq!(state("cursors"), "0", "a dry run moves no cursor");
    assert_eq!(state("history"), "0", "a dry run records no attempt");

    let json = env.run(&["run", "--dry-run", "--output", "json"]);
    json.assert_success();
    let report = parse_json(&json.stdout);
    let windows = report["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3);
    assert!(windows.iter().all(|w| w["status"] == "planned"), "{report}");
    assert_eq!(dst_count(&env), 0);

    // The real run afterwards loads all three windows.
    env.run(&["run"]).assert_success();
    assert_eq!(dst_count(&env), 30);
}

/// Shell completions come from the command line itself: bash's completes a subcommand from a
/// prefix, zsh's and fish's name every subcommand; the man page is roff listing them all.
#[test]
fn completions_and_the_man_page_cover_every_command() {
    let env = TestEnv::new("cli_completions");
    let commands = [
        "run",
        "plan",
        "history",
        "config",
        "plugins",
        "compare",
        "alarm",
        "daemon",
        "status",
        "completions",
        "man",
        "reload",
        "cursor",
    ];
    let bash = env.run(&["completions", "bash"]);
    bash.assert_success();
    let script = env.write_file("gptransfer.bash", &bash.stdout);
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(gptransfer rel) COMP_CWORD=1 && _gptransfer gptransfer rel gptransfer && \
             echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&completed.stdout).trim(), "reload", "{completed:?}");
    for shell in ["zsh", "fish"] {
        let out = env.run(&["completions", shell]);
        out.assert_success();
        for c in commands {
            assert!(out.stdout.contains(c), "{shell} completion lacks {c}");
        }
    }
    let man = env.run(&["man"]);
    man.assert_success();
    assert!(man.stdout.starts_with(".ie") && man.stdout.contains(".TH gptransfer 1"), "{}", man.render());
    for c in commands {
        assert!(man.stdout.contains(&format!("gptransfer\\-{c}")) || man.stdout.contains(c), "man page lacks {c}");
    }
    let unknown = env.run(&["completions", "tcsh"]);
    unknown.assert_code(2);
}

/// The systemd unit's command line parses (its options exist and take those values).
#[test]
fn the_systemd_unit_runs_a_valid_command_line() {
    let env = TestEnv::new("cli_systemd_unit");
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gptransfer.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("no ExecStart");
    let mut words: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert!(words.contains(&"daemon"), "{exec}");
    // `--help` after the subcommand's options: clap parses them all first, then prints help.
    words.push("--help");
    let out = env.run(&words);
    out.assert_success();
    assert!(out.stdout.contains("Usage: gptransfer daemon"), "{}", out.render());
}
