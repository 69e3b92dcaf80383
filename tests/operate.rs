//! Operating it day to day (issue 12, item 1): `reload` re-loads a range of windows after
//! something was fixed upstream, `cursor set` moves a cursor by hand; both under the job's lock,
//! both in history. Into a real Greenplum 6 cluster with the state on it, as our users run it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::held::{big_tables, hold, release, wait_until_mid_copy};
use support::runs::Guard;
use support::{defects_digest, defects_source_sql, CmdOutput, Server, TestEnv};

/// `eda.defects` (600 rows over six hours) into GP6 twice: `eda.defects` in replace mode and
/// `eda.defects_m` in merge mode, hourly windows.
fn six_hours(name: &str) -> TestEnv {
    let env = TestEnv::on(name, Server::Pg, Server::Gp6);
    env.src_psql(&defects_source_sql(600, "36 seconds"));
    env.dst_psql(
        "SET ROLE gpt;
         CREATE SCHEMA eda;
         CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea) DISTRIBUTED BY (id);
         CREATE TABLE eda.defects_m (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea) DISTRIBUTED BY (id);",
    );
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"

[[jobs.j.tables]]
table = "eda.defects"
target_table = "eda.defects_m"
condition_column = "evt_ts"
mode = "merge"
key = ["id"]
"#,
    );
    let out = env.run(&["run"]);
    out.assert_success();
    assert!(out.stdout.contains("12 window(s) loaded, 0 failed; 1200 rows"), "{}", out.render());
    env
}

/// `eda.defects` and `eda.defects_m` both equal to the source.
fn assert_both_equal(env: &TestEnv, when: &str) {
    let source = defects_digest(env.src, &env.db);
    assert_eq!(defects_digest(env.dst, &env.dst_db), source, "eda.defects {when}");
    let merged = support::table_digest(
        env.dst,
        &env.dst_db,
        "eda.defects_m",
        &["id", "evt_ts", "glass", "qty", "payload"],
        "id",
        "true",
    );
    assert_eq!(merged, source, "eda.defects_m {when}");
}

fn cursors(env: &TestEnv) -> String {
    env.dst_psql("SELECT table_name || ' ' || cursor_end FROM gptransfer.cursors ORDER BY table_name")
}

const LOADED: &str = "eda.defects 2024-03-10 06:00:00\neda.defects -> eda.defects_m 2024-03-10 06:00:00";

/// Damages rows of 01:00–04:00 in both targets (rows gone, changed, and one too many).
fn damage(env: &TestEnv) {
    for t in ["eda.defects", "eda.defects_m"] {
        env.dst_psql(&format!(
            "DELETE FROM {t} WHERE id BETWEEN 110 AND 130;
             UPDATE {t} SET glass = 'damaged' WHERE id IN (250, 390);"
        ));
    }
    env.dst_psql("INSERT INTO eda.defects VALUES (9001, '2024-03-10 02:30:00', 'not on the source', 1, NULL)");
}

fn json(out: &CmdOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{}", out.render()))
}

#[test]
fn reload_restores_damaged_windows_byte_exact_without_moving_the_cursor() {
    let env = six_hours("reload_restores");
    damage(&env);

    // The dry run lists the windows of both entries and moves nothing.
    let dry =
        env.run(&["reload", "--job", "j", "--from", "2024-03-10 01:00:00", "--to", "2024-03-10 04:00:00", "--dry-run"]);
    dry.assert_success();
    cli_snapshot!("reload_dry_run", dry);
    let dry_json = env.run(&[
        "reload",
        "--job",
        "j",
        "--from",
        "2024-03-10 01:00:00",
        "--to",
        "2024-03-10 04:00:00",
        "--dry-run",
        "--output",
        "json",
    ]);
    dry_json.assert_success();
    cli_snapshot!("reload_dry_run_json", dry_json);
    assert_eq!(json(&dry_json)["windows"].as_array().unwrap().len(), 6, "{}", dry_json.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects WHERE glass = 'damaged'"), "2");

    let out = env.run(&["reload", "--job", "j", "--from", "2024-03-10 01:00:00", "--to", "2024-03-10 04:00:00"]);
    out.assert_success();
    cli_snapshot!("reload_three_windows", out);
    assert_both_equal(&env, "after the reload");
    assert_eq!(cursors(&env), LOADED, "the cursor moved");
    assert_eq!(
        env.dst_psql(
            "SELECT target_table || ' ' || window_id || ' ' || status || ' ' || attempt FROM gptransfer.history \
             WHERE reason = 'reload' ORDER BY target_table, window_id"
        ),
        "eda.defects 20240310010000^20240310020000 succeeded 2\n\
         eda.defects 20240310020000^20240310030000 succeeded 2\n\
         eda.defects 20240310030000^20240310040000 succeeded 2\n\
         eda.defects_m 20240310010000^20240310020000 succeeded 2\n\
         eda.defects_m 20240310020000^20240310030000 succeeded 2\n\
         eda.defects_m 20240310030000^20240310040000 succeeded 2"
    );
    let history = env.run(&["history", "--table", "eda.defects", "--limit", "3"]);
    history.assert_success();
    assert!(history.stdout.contains("succeeded (reload)"), "{}", history.render());

    // Only one entry, as JSON: its windows re-loaded once more, the other's not.
    let one = env.run(&[
        "reload",
        "--job",
        "j",
        "--table",
        "eda.defects -> eda.defects_m",
        "--from",
        "2024-03-10 05:00:00",
        "--to",
        "2024-03-10 06:00:00",
        "--output",
        "json",
    ]);
    one.assert_success();
    let windows = json(&one)["windows"].as_array().unwrap().clone();
    assert_eq!(windows.len(), 1, "{}", one.render());
    assert_eq!(windows[0]["table"], "eda.defects -> eda.defects_m");
    assert_eq!(windows[0]["status"], "succeeded");
    assert_eq!(windows[0]["rows_written"], 100);
}

#[test]
fn a_failing_window_stops_the_reload_and_cursor_set_back_makes_the_next_run_reload() {
    let env = six_hours("reload_failing");
    // A value the target now refuses, in the window 02:00–03:00.
    env.src_psql("UPDATE eda.defects SET glass = 'refused' WHERE id = 250");
    env.dst_psql("ALTER TABLE eda.defects ADD CONSTRAINT no_refused CHECK (glass IS DISTINCT FROM 'refused')");
    let before = defects_digest(env.dst, &env.dst_db);

    let out = env.run(&[
        "reload",
        "--job",
        "j",
        "--table",
        "eda.defects",
        "--from",
        "2024-03-10 01:00:00",
        "--to",
        "2024-03-10 04:00:00",
    ]);
    out.assert_code(1);
    // `--table eda.defects` is every entry reading it: eda.defects_m re-loads its three windows,
    // eda.defects stops at the window its target refuses.
    assert!(out.stdout.contains("4 window(s) re-loaded, 1 failed"), "{}", out.render());
    assert!(out.stderr.contains("no_refused"), "{}", out.render());
    // The failed window rolled back, the one after it was not tried, the cursor stayed.
    assert_eq!(defects_digest(env.dst, &env.dst_db), before);
    assert_eq!(cursors(&env), LOADED);

    // The cursor is set back by hand; the next run loads from there, the failing window
    // fails again (exit 1) and the cursor stops before it.
    let set = env.run(&["cursor", "set", "--job", "j", "--table", "eda.defects", "2024-03-10 02:00:00"]);
    set.assert_success();
    cli_snapshot!("cursor_set_back", set);
    assert!(
        set.stdout.contains("cursor of j / eda.defects: 2024-03-10 06:00:00 -> 2024-03-10 02:00:00"),
        "{}",
        set.render()
    );
    assert_eq!(
        cursors(&env),
        "eda.defects 2024-03-10 02:00:00\neda.defects -> eda.defects_m 2024-03-10 06:00:00",
        "only the named entry's cursor moves"
    );
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || window_start || ' ' || window_end || ' ' || reason FROM gptransfer.history \
             WHERE status = 'cursor set'"
        ),
        "cursor set 2024-03-10 06:00:00 2024-03-10 02:00:00 cursor was 2024-03-10 06:00:00"
    );
    let history = env.run(&["history", "--limit", "1", "--output", "json"]);
    assert_eq!(json(&history)[0]["reason"], "cursor was 2024-03-10 06:00:00", "{}", history.render());
    let plan = env.run(&["plan"]);
    assert!(plan.stdout.contains("20240310020000^20240310030000"), "{}", plan.render());

    let run = env.run(&["run"]);
    run.assert_code(1);
    assert_eq!(cursors(&env).lines().next(), Some("eda.defects 2024-03-10 02:00:00"));

    // Fixed upstream: the run goes on from the cursor set by hand to the end.
    env.dst_psql("ALTER TABLE eda.defects DROP CONSTRAINT no_refused");
    let run = env.run(&["run"]);
    run.assert_success();
    assert!(run.stdout.contains("4 window(s) loaded, 0 failed"), "{}", run.render());
    assert_eq!(defects_digest(env.dst, &env.dst_db), defects_digest(env.src, &env.db));
    assert_eq!(cursors(&env), LOADED);

    // JSON, and forwards: the cursor moves past windows, which are then not loaded.
    let set = env.run(&[
        "cursor",
        "set",
        "--job",
        "j",
        "--table",
        "eda.defects -> eda.defects_m",
        "2024-03-10 07:00:00",
        "--output",
        "json",
    ]);
    set.assert_success();
    cli_snapshot!("cursor_set_forwards_json", set);
    let moved = json(&set);
    assert_eq!(moved["old"], "2024-03-10T06:00:00");
    assert_eq!(moved["new"], "2024-03-10T07:00:00");
    assert_eq!(moved["table"], "eda.defects -> eda.defects_m");
}

#[test]
fn reload_and_cursor_set_refuse_what_they_cannot_do_safely() {
    let env = TestEnv::new("reload_refusals");
    env.src_psql("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL)");
    env.dst_psql(
        "CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL); CREATE TABLE t2 (id int, ts timestamp NOT NULL)",
    );
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.t"
condition_column = "ts"

[[jobs.j.tables]]
table = "public.t"
target_table = "public.t2"
condition_column = "ts"
mode = "append"

[jobs.k]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
duration = "1h"

[[jobs.k.tables]]
table = "public.t"
target_table = "public.t2"
condition_column = "ts"
mode = "append"
"#,
    );
    // A bound off the table's window grid.
    let off = env.run(&[
        "reload",
        "--job",
        "j",
        "--table",
        "public.t",
        "--from",
        "2024-03-10 01:30:00",
        "--to",
        "2024-03-10 03:00:00",
    ]);
    off.assert_code(2);
    cli_snapshot!("reload_off_the_grid", off);
    // An empty range.
    let empty = env.run(&["reload", "--job", "j", "--from", "2024-03-10 03:00:00", "--to", "2024-03-10 03:00:00"]);
    empty.assert_code(2);
    assert!(empty.stderr.contains("is not before --to"), "{}", empty.render());
    // An append entry whose target another entry loads too: a replace would take its rows.
    let shared = env.run(&[
        "reload",
        "--job",
        "j",
        "--table",
        "public.t -> public.t2",
        "--from",
        "2024-03-10 01:00:00",
        "--to",
        "2024-03-10 03:00:00",
    ]);
    shared.assert_code(2);
    cli_snapshot!("reload_shared_append_target", shared);
    // `--table t` names two entries of job j (neither is named just `t`): cursor set needs one.
    let ambiguous = env.run(&["cursor", "set", "--job", "j", "--table", "t", "2024-03-10 01:00:00"]);
    ambiguous.assert_code(2);
    cli_snapshot!("cursor_set_ambiguous", ambiguous);
    assert_eq!(env.dst_psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'gptransfer'"), "0");
}

/// A job with a run in progress: both commands exit 75 naming the holder, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_cursor_set_refuse_a_running_job() {
    let env = TestEnv::on("reload_locked", Server::Pg, Server::Gp6);
    big_tables(&env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(&env).await;
    let first = Guard(Some(env.spawn(&["run"])));
    let pid = first.pid();
    wait_until_mid_copy(&src, &dst).await;

    let set = env.run(&["cursor", "set", "--job", "j", "--table", "public.big", "2024-01-01 00:00:00"]);
    assert_eq!(set.code, 75, "{}", set.render());
    assert!(set.stderr.contains(&format!("gptransfer pid {pid}")), "{}", set.render());
    let reload = env.run(&["reload", "--job", "j", "--from", "2024-01-01 00:00:00", "--to", "2024-01-01 01:00:00"]);
    assert_eq!(reload.code, 75, "{}", reload.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE status <> 'running'"), "0");

    release(&locker).await;
    first.wait().assert_success();
    assert_eq!(cursors(&env), "public.big 2024-01-01 01:00:00");
}

/// `status` of a job with a table that is fine (but compare found a difference), one that
/// fails and one that lags: the failing and the lagging one are named, exit 3; JSON parses.
#[test]
fn status_names_the_failing_and_the_lagging_table() {
    let env = TestEnv::on("status_failing_lagging", Server::Pg, Server::Gp7);
    env.src_psql(&defects_source_sql(600, "36 seconds"));
    let mut ddl = String::from("SET ROLE gpt;\nCREATE SCHEMA eda;\n");
    for t in ["fine", "failing", "lagging"] {
        ddl.push_str(&format!(
            "CREATE TABLE eda.{t} (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), \
             payload bytea) DISTRIBUTED BY (id);\n"
        ));
    }
    // Row 250 (window 02:00–03:00) cannot go into eda.failing.
    ddl.push_str("ALTER TABLE eda.failing ADD CONSTRAINT not_250 CHECK (id <> 250);\n");
    env.dst_psql(&ddl);
    let mut config = String::from(
        "{CLUSTERS}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-03-10 00:00:00\"\n\
         end = \"2024-03-10 06:00:00\"\nduration = \"1h\"\n",
    );
    for t in ["fine", "failing", "lagging"] {
        config.push_str(&format!(
            "\n[[jobs.j.tables]]\ntable = \"eda.defects\"\ntarget_table = \"eda.{t}\"\ncondition_column = \"evt_ts\"\n\
             key = [\"id\"]\n"
        ));
    }
    env.write_config(&config);
    // Nothing run yet: every table never run, six hours behind.
    let before = env.run(&["status", "--output", "json"]);
    before.assert_success();
    assert!(json(&before).as_array().unwrap().iter().all(|s| s["cursor"].is_null() && s["lag_seconds"] == 21600));

    env.run(&["run", "--table", "eda.defects -> eda.fine", "--table", "eda.defects -> eda.failing"]).assert_code(1);
    env.run(&["run", "--table", "eda.defects -> eda.lagging", "--until", "2024-03-10 03:00:00"]).assert_success();
    env.dst_psql("DELETE FROM eda.fine WHERE id = 10");
    env.run(&["compare", "--table", "eda.defects -> eda.fine"]).assert_code(3);

    let out = env.run(&["status", "--max-lag", "2h"]);
    out.assert_code(3);
    cli_snapshot!("status_failing_and_lagging", out);
    assert!(out.stdout.contains("FAILING 20240310020000^20240310030000"), "{}", out.render());
    assert!(out.stdout.contains("BEHIND j / eda.defects -> eda.lagging: 3h behind"), "{}", out.render());
    // The failing table is behind too (4h).
    assert!(out.stdout.contains("3 table(s): 1 failing, 2 behind"), "{}", out.render());

    let out = env.run(&["status", "--max-lag", "2h", "--output", "json"]);
    out.assert_code(3);
    cli_snapshot!("status_failing_and_lagging_json", out);
    let found = json(&out);
    let by_table = |t: &str| -> Value {
        found.as_array().unwrap().iter().find(|s| s["target_table"] == t).cloned().unwrap_or_else(|| panic!("{t}"))
    };
    let fine = by_table("eda.fine");
    assert_eq!(
        (fine["failing"].as_bool(), fine["lag_seconds"].as_i64(), fine["active_alarms"].as_i64()),
        (Some(false), Some(0), Some(1))
    );
    let failing = by_table("eda.failing");
    assert_eq!(failing["failing"], true);
    assert_eq!(failing["cursor"], "2024-03-10T02:00:00");
    assert_eq!(failing["lag_seconds"], 4 * 3600);
    assert_eq!(failing["due_windows"], 4);
    assert!(failing["last_failure"]["error"].as_str().unwrap().contains("not_250"), "{failing:#}");
    let lagging = by_table("eda.lagging");
    assert_eq!((lagging["failing"].as_bool(), lagging["lag_seconds"].as_i64()), (Some(false), Some(3 * 3600)));

    // A generous --max-lag: only the failing table makes it exit 3; once fixed, exit 0.
    env.run(&["status", "--max-lag", "5h"]).assert_code(3);
    env.dst_psql("ALTER TABLE eda.failing DROP CONSTRAINT not_250");
    env.run(&["run"]).assert_success();
    env.run(&["alarm", "reset"]).assert_success();
    let ok = env.run(&["status", "--max-lag", "2h"]);
    ok.assert_success();
    assert!(ok.stdout.contains("3 table(s): none failing or behind"), "{}", ok.render());
}
