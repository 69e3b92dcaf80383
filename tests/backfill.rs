//! Parallel backfill (issue 11): 30 daily windows of one table run up to `--parallel` at once in
//! replace and merge, never more than `--parallel` windows in all; append keeps one at a time.
//! The cursor moves only over the contiguous prefix of committed windows: a failure in window
//! 10, or a kill while window 10 is still loading, leaves it at window 10's start, and the next
//! run loads window 10 on again, byte-exact, without duplicates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::canonical::assert_same_lines;
use support::fact::{fact_lines, fact_source_sql, FACT, FACT_COLUMNS_DDL};
use support::runs::{wait_for_row, wait_until_gone, Guard};
use support::{table_digest, Server, TestEnv};

/// The 30 days the job covers; `eda.fact`'s 4800 rows spread over them, 160 a day.
const DAYS: &str = "evt_ts >= '2024-03-01' AND evt_ts < '2024-03-31'";
const ROWS: usize = 4800;
/// Window 10 (the 10th of March) holds ids 1441–1600.
const WINDOW_10: &str = "evt_ts >= '2024-03-10' AND evt_ts < '2024-03-11'";
const WINDOW_10_START: &str = "2024-03-10 00:00:00";
const BEFORE_10: &str = "evt_ts >= '2024-03-01' AND evt_ts < '2024-03-10'";

/// `eda.fact` on the source spread over 30 days (microseconds kept); the rows outside the job's
/// span moved out of it. The target table, without a key: a duplicate would show.
fn thirty_days(env: &TestEnv) {
    env.src_psql(&fact_source_sql(env.src.kind));
    env.src_psql(
        "UPDATE eda.fact SET evt_ts = evt_ts - interval '9 days' + (id - 1) * interval '522 seconds' WHERE id <= 4800;
         UPDATE eda.fact SET evt_ts = '2024-02-20 00:00:00' WHERE id = 1000001;
         UPDATE eda.fact SET evt_ts = '2024-03-31 00:00:00' WHERE id = 1000002;
         UPDATE eda.fact SET evt_ts = '2024-04-02 00:00:00' WHERE id = 1000003;",
    );
    assert_eq!(env.src_psql(&format!("SELECT count(*) FROM eda.fact WHERE {DAYS}")), ROWS.to_string());
    assert_eq!(env.src_psql(&format!("SELECT min(id) || '-' || max(id) FROM eda.fact WHERE {WINDOW_10}")), "1441-1600");
    env.dst_psql(&format!("CREATE SCHEMA eda; CREATE TABLE {FACT} ({FACT_COLUMNS_DDL});"));
}

/// One job, daily windows over the 30 days, `source` into each of `targets` in `mode`.
fn job(mode: &str, source: &str, targets: &[&str]) -> String {
    let mut config = format!(
        r#"{{CLUSTERS}}

[jobs.bf]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-31 00:00:00"
duration = "1d"
mode = "{mode}"
"#
    );
    for t in targets {
        config.push_str(&format!(
            "\n[[jobs.bf.tables]]\ntable = \"{source}\"\ntarget_table = \"{t}\"\ncondition_column = \"evt_ts\"\nkey = [\"id\"]\n"
        ));
    }
    config
}

/// The 30 days on the source and all of `target`, as canonical lines (a duplicate is a line).
fn assert_exact(env: &TestEnv, target: &str) {
    let source = fact_lines(env.src, &env.db, FACT, DAYS);
    assert_eq!(source.len(), ROWS);
    assert_same_lines(target, &source, &fact_lines(env.dst, &env.dst_db, target, "true"));
}

fn cursor(env: &TestEnv) -> String {
    env.dst_psql("SELECT table_name || ' ' || cursor_end FROM gptransfer.cursors ORDER BY table_name")
}

/// The most windows whose attempts (history, start to finish) ran at one instant, over all
/// tables of the run.
fn most_at_once(env: &TestEnv) -> i64 {
    env.dst_psql(
        "SELECT max(n) FROM (SELECT a.id, count(*) AS n FROM gptransfer.history a JOIN gptransfer.history b \
         ON b.started_at <= a.started_at AND b.finished_at > a.started_at GROUP BY a.id) AS at_once",
    )
    .parse()
    .unwrap()
}

fn succeeded(env: &TestEnv, target: &str) -> String {
    env.dst_psql(&format!(
        "SELECT count(*) || ' ' || count(DISTINCT window_id) FROM gptransfer.history \
         WHERE target_table = '{target}' AND status = 'succeeded'"
    ))
}

#[test]
fn a_backfill_runs_windows_of_one_table_at_once_within_the_parallel_slots() {
    let env = TestEnv::new("backfill_parallel");
    thirty_days(&env);
    env.dst_psql(&format!("CREATE TABLE eda.fact_b ({FACT_COLUMNS_DDL});"));
    env.write_config(&job("replace", FACT, &[FACT, "eda.fact_b"]));

    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_success();
    assert!(out.stdout.contains("60 window(s) loaded, 0 failed"), "{}", out.render());
    for t in [FACT, "eda.fact_b"] {
        assert_exact(&env, t);
        assert_eq!(succeeded(&env, t), "30 30");
    }
    assert_eq!(cursor(&env), "eda.fact 2024-03-31 00:00:00\neda.fact -> eda.fact_b 2024-03-31 00:00:00");
    // Windows of one table overlapped; never more than 4 windows ran at once, in all.
    let at_once = most_at_once(&env);
    assert!((2..=4).contains(&at_once), "{at_once} windows at once");
    let one_table: i64 = env
        .dst_psql(
            "SELECT count(*) FROM gptransfer.history a JOIN gptransfer.history b ON a.id < b.id \
             AND a.target_table = b.target_table AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
        )
        .parse()
        .unwrap();
    assert!(one_table > 0, "no two windows of one table overlapped");

    // A re-run finds nothing due and changes nothing.
    let again = env.run(&["run", "--parallel", "4"]);
    again.assert_success();
    assert_exact(&env, FACT);
}

#[test]
fn append_runs_its_windows_one_at_a_time_whatever_the_parallel() {
    let env = TestEnv::new("backfill_append");
    thirty_days(&env);
    env.write_config(&job("append", FACT, &[FACT]));
    env.run(&["run", "--parallel", "4"]).assert_success();
    assert_exact(&env, FACT);
    assert_eq!(succeeded(&env, FACT), "30 30");
    assert_eq!(most_at_once(&env), 1);
    assert_eq!(cursor(&env), "eda.fact 2024-03-31 00:00:00");
}

/// A CHECK on the target refuses a row of window 10: the run fails (exit 1), the cursor stays
/// at window 10's start with windows 1–9 exact and window 10 absent; without the CHECK, the
/// next run loads window 10 on, byte-exact and without duplicates.
fn a_failure_in_window_10_holds_the_cursor_at_its_start(mode: &str) {
    let env = TestEnv::new(&format!("backfill_fail_{mode}"));
    thirty_days(&env);
    env.dst_psql("ALTER TABLE eda.fact ADD CONSTRAINT refuse_1500 CHECK (id <> 1500)");
    env.write_config(&job(mode, FACT, &[FACT]));

    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_code(1);
    assert!(out.stdout.contains("20240310000000^20240311000000"), "{}", out.render());
    assert!(out.render().contains("refuse_1500"), "{}", out.render());
    assert_eq!(cursor(&env), format!("eda.fact {WINDOW_10_START}"));
    assert_same_lines(
        "windows 1-9",
        &fact_lines(env.src, &env.db, FACT, BEFORE_10),
        &fact_lines(env.dst, &env.dst_db, FACT, BEFORE_10),
    );
    assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM eda.fact WHERE {WINDOW_10}")), "0");
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || status FROM gptransfer.history WHERE window_start = '2024-03-10' ORDER BY id"
        ),
        "20240310000000^20240311000000 failed"
    );
    // Windows after 10 that were running when it failed may have committed: in history, not
    // under the cursor. How many depends on timing (small windows may all finish first), so
    // that they commit while the cursor holds is proven by the SIGKILL test below, which
    // holds window 10 until every other window has committed. Here: no new window started.
    let beyond: i64 = env
        .dst_psql("SELECT count(*) FROM gptransfer.history WHERE window_start > '2024-03-10' AND status = 'succeeded'")
        .parse()
        .unwrap();
    assert!(beyond < 20, "every window after 10 started although 10 had failed ({beyond})");

    env.dst_psql("ALTER TABLE eda.fact DROP CONSTRAINT refuse_1500");
    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_success();
    assert!(out.stdout.contains("21 window(s) loaded, 0 failed"), "{}", out.render());
    assert_exact(&env, FACT);
    assert_eq!(env.dst_psql("SELECT count(*) - count(DISTINCT id) FROM eda.fact"), "0");
    assert_eq!(cursor(&env), "eda.fact 2024-03-31 00:00:00");
}

#[test]
fn replace_failure_in_window_10_holds_the_cursor_and_a_rerun_is_exact() {
    a_failure_in_window_10_holds_the_cursor_at_its_start("replace");
}

#[test]
fn merge_failure_in_window_10_holds_the_cursor_and_a_rerun_is_exact() {
    a_failure_in_window_10_holds_the_cursor_at_its_start("merge");
}

const HOLD_KEY: i64 = 4311;

/// A run killed (SIGKILL) while window 10 is still loading and every other window has
/// committed: the cursor never passed window 10 — neither while the run went on nor after the
/// kill — and the next run loads window 10 on, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_window_10_loads_leaves_the_cursor_at_its_start() {
    stopped_while_window_10_loads("KILL", 128 + 9).await;
}

/// SIGTERM instead: window 10 is rolled back and recorded as interrupted, exit 143.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_window_10_loads_rolls_it_back_and_holds_the_cursor() {
    stopped_while_window_10_loads("TERM", 143).await;
}

async fn stopped_while_window_10_loads(signal: &str, code: i32) {
    let env = TestEnv::new(&format!("backfill_sig{}", signal.to_lowercase()));
    thirty_days(&env);
    // The source view stops at row 1500 (window 10) while the test holds the lock; the high
    // cost keeps the window's own condition evaluated first, so no other window waits.
    env.src_psql(&format!(
        "CREATE FUNCTION eda.hold(id bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE COST 10000 AS $$
         BEGIN
             IF id = 1500 THEN PERFORM pg_advisory_xact_lock({HOLD_KEY}); END IF;
             RETURN true;
         END $$;
         CREATE VIEW eda.fact_v AS SELECT * FROM eda.fact WHERE eda.hold(id);"
    ));
    env.write_config(&job("replace", "eda.fact_v", &[FACT]));
    let locker = env.src.admin(&env.db).await;
    locker.execute("SELECT pg_advisory_lock($1)", &[&HOLD_KEY]).await.unwrap();
    let dst = env.dst.admin(&env.dst_db).await;
    let src = env.src.admin(&env.db).await;

    let run = Guard(Some(env.spawn(&["run", "--parallel", "4"])));
    // The 29 other windows commit around the held one.
    wait_for_row(&dst, "the state schema", "SELECT 0::bigint WHERE to_regclass('gptransfer.cursors') IS NOT NULL")
        .await;
    wait_for_row(
        &dst,
        "29 windows to commit while window 10 waits",
        "SELECT 0::bigint FROM gptransfer.history HAVING count(*) FILTER (WHERE status = 'succeeded') = 29 \
         AND count(*) FILTER (WHERE status = 'running' AND window_start = '2024-03-10') = 1",
    )
    .await;
    assert_eq!(cursor(&env), format!("eda.fact_v -> eda.fact {WINDOW_10_START}"));
    run.signal(signal);
    let out = run.wait();
    assert_eq!(out.code, code, "{}", out.render());
    wait_until_gone(&dst).await;
    locker.execute("SELECT pg_advisory_unlock($1)", &[&HOLD_KEY]).await.unwrap();
    wait_until_gone(&src).await;

    assert_eq!(cursor(&env), format!("eda.fact_v -> eda.fact {WINDOW_10_START}"));
    assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM eda.fact WHERE {WINDOW_10}")), "0");
    if signal == "TERM" {
        assert_eq!(
            env.dst_psql(
                "SELECT status || ' ' || error FROM gptransfer.history WHERE window_start = '2024-03-10' ORDER BY id"
            ),
            "failed interrupted by SIGTERM; the window was rolled back"
        );
    }
    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_success();
    assert!(out.stdout.contains("21 window(s) loaded, 0 failed"), "{}", out.render());
    assert_exact(&env, FACT);
    assert_eq!(cursor(&env), "eda.fact_v -> eda.fact 2024-03-31 00:00:00");
}

/// Merge keeps a key's newest row when the key is in many windows of a parallel backfill (the
/// windows merge in window order): each of 2000 keys comes once a day for 30 days; the target,
/// without a unique index (delete + insert), must end with one row per key, from the 30th day.
#[test]
fn a_parallel_merge_keeps_the_newest_row_of_a_key_found_in_every_window() {
    let env = TestEnv::new("backfill_merge_order");
    env.src_psql(
        "CREATE TABLE kv (id int NOT NULL, ts timestamp NOT NULL, v text);
         INSERT INTO kv SELECT i, timestamp '2024-03-01' + (d - 1) * interval '1 day' + i * interval '1 second',
                'day ' || d || ' ' || md5(i::text) FROM generate_series(1, 30) d, generate_series(1, 2000) i;",
    );
    env.dst_psql("CREATE TABLE kv (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.write_config(
        r#"{CLUSTERS}

[jobs.kv]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-31 00:00:00"
duration = "1d"
mode = "merge"

[[jobs.kv.tables]]
table = "public.kv"
condition_column = "ts"
key = ["id"]
"#,
    );
    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_success();
    assert!(out.stdout.contains("30 window(s) loaded, 0 failed"), "{}", out.render());
    assert!(most_at_once(&env) >= 2, "the windows did not run at once");
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || count(*) FILTER (WHERE v LIKE 'day 30 %') FROM kv"
        ),
        "2000 2000 2000"
    );
    assert_eq!(
        table_digest(env.dst, &env.dst_db, "kv", &["id", "ts", "v"], "id", "true"),
        table_digest(env.src, &env.db, "kv", &["id", "ts", "v"], "id", "ts >= '2024-03-30'")
    );
}

/// The same backfill into real Greenplum 6, the state there too: windows of a replace and a
/// merge entry run at once (GP6 locks a whole table for DELETE and UPDATE, the state's tables
/// included: nothing may wait in a circle), and both land byte-exact.
#[test]
fn a_parallel_backfill_into_gp6_lands_exact_with_the_state_there() {
    let env = TestEnv::on("backfill_gp6", Server::Pg, Server::Gp6);
    env.src_psql(&fact_source_sql(env.src.kind));
    env.src_psql(
        "UPDATE eda.fact SET evt_ts = evt_ts - interval '9 days' + (id - 1) * interval '522 seconds' WHERE id <= 4800;
         DELETE FROM eda.fact WHERE id > 4800;",
    );
    env.dst_psql(&format!(
        "SET ROLE gpt; CREATE SCHEMA eda;
         CREATE TABLE eda.fact_r ({FACT_COLUMNS_DDL}) DISTRIBUTED BY (id);
         CREATE TABLE eda.fact_m ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);"
    ));
    let mut config = job("replace", FACT, &["eda.fact_r"]);
    config.push_str(&format!(
        "\n[[jobs.bf.tables]]\ntable = \"{FACT}\"\ntarget_table = \"eda.fact_m\"\ncondition_column = \"evt_ts\"\nkey = [\"id\"]\nmode = \"merge\"\n"
    ));
    env.write_config(&config);
    let out = env.run(&["run", "--parallel", "4"]);
    out.assert_success();
    assert!(out.stdout.contains("60 window(s) loaded, 0 failed"), "{}", out.render());
    for t in ["eda.fact_r", "eda.fact_m"] {
        assert_exact(&env, t);
        assert_eq!(succeeded(&env, t), "30 30");
    }
    assert_eq!(cursor(&env), "eda.fact -> eda.fact_m 2024-03-31 00:00:00\neda.fact -> eda.fact_r 2024-03-31 00:00:00");
    // Never more than the slots. How many overlap here depends on timing: GP6 takes a whole
    // table's lock for DELETE, so replace windows of one table wait for each other there
    // (the overlap itself is proven on PostgreSQL above).
    let at_once = most_at_once(&env);
    assert!((1..=4).contains(&at_once), "{at_once} windows at once");
}
