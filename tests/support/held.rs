//! A window held open mid-COPY: a PostgreSQL 15 source view of 200 000 rows that stops at a row
//! while the test holds an advisory lock, so that a run is provably in the middle of a window
//! (its COPY into the target running) when the test kills it or starts a second run.

use std::collections::BTreeSet;

use serde_json::Value;

use super::runs::{wait_for_row, wait_until_gone, Guard};
use super::{table_digest, CmdOutput, TestEnv};

fn run_ok(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let out = env.run(args);
    out.assert_success();
    out
}

/// Each stored cursor, as `table cursor` lines.
fn cursor_lines(env: &TestEnv) -> String {
    env.dst_psql("SELECT table_name || ' ' || cursor_end FROM gptransfer.cursors ORDER BY table_name")
}

/// Advisory lock key the source view waits for at row [`HOLD_AT`].
pub const HOLD_KEY: i64 = 4243;
pub const HOLD_AT: i32 = 100_000;
pub const BIG_ROWS: i32 = 200_000;

/// PG15 source `big`: a view over 200 000 rows of the first hour of 2024 that stops at row
/// [`HOLD_AT`] while the test holds [`HOLD_KEY`] on the source. A trigger on the GP6 target
/// would run on a segment, out of the test's reach; holding the source instead leaves the
/// run provably mid-window, ~10 MB already sent into the target's open COPY. The GP6 target
/// `big` is owned by gpt, and the state lives on GP6 too.
pub fn big_tables(env: &TestEnv) {
    env.src_psql(&format!(
        "CREATE TABLE big_rows (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text);
         INSERT INTO big_rows SELECT g, timestamp '2024-01-01 00:00:00' + (g % 3600) * interval '1 second',
                rpad(g::text, 100, 'x') FROM generate_series(1, {BIG_ROWS}) g;
         CREATE FUNCTION hold(id integer) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
         BEGIN
             IF id = {HOLD_AT} THEN PERFORM pg_advisory_xact_lock({HOLD_KEY}); END IF;
             RETURN true;
         END $$;
         CREATE VIEW big AS SELECT id, ts, payload FROM big_rows WHERE hold(id);"
    ));
    env.dst_psql(
        "SET ROLE gpt;
         CREATE TABLE big (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);",
    );
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.big"
condition_column = "ts"
final_end = "2024-01-01 01:00:00"
"#,
    );
}

/// Waits until the run is mid-window: its source COPY waits for [`HOLD_KEY`] at row
/// [`HOLD_AT`] (PG15) and its COPY into the target is running on the target (a Greenplum master).
pub async fn wait_until_mid_copy(src: &tokio_postgres::Client, dst: &tokio_postgres::Client) {
    wait_for_row(
        src,
        "the source COPY to wait at the held row",
        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer %' AND query LIKE 'COPY%' \
         AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
    )
    .await;
    wait_for_row(
        dst,
        "the target COPY to run on the GP6 master",
        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer %' AND query LIKE 'COPY%' AND state = 'active'",
    )
    .await;
}

/// An admin session on the source holding [`HOLD_KEY`]: the view waits while it is held.
pub async fn hold(env: &TestEnv) -> tokio_postgres::Client {
    let locker = env.src.admin(&env.db).await;
    locker.execute("SELECT pg_advisory_lock($1)", &[&HOLD_KEY]).await.unwrap();
    locker
}

pub async fn release(locker: &tokio_postgres::Client) {
    locker.execute("SELECT pg_advisory_unlock($1)", &[&HOLD_KEY]).await.unwrap();
}

/// `count(*)`, `count(DISTINCT id)` and the digest of `big` on GP6.
pub fn big_content(env: &TestEnv) -> (String, String) {
    let counts = env.dst_psql("SELECT count(*) || ' ' || count(DISTINCT id) FROM big");
    (counts, table_digest(env.dst, &env.dst_db, "big", &["id", "ts", "payload"], "id", "true"))
}

pub fn big_history(env: &TestEnv) -> String {
    env.dst_psql(
        "SELECT attempt || ' ' || status || ' ' || coalesce(rows_written::text, '-') FROM gptransfer.history \
         WHERE table_name = 'public.big' ORDER BY id",
    )
}

/// A run killed (SIGKILL) in the middle of a window of `big`, with the target and the state on
/// `env.dst`: the target and the cursor are as before, the attempt stays on record as running
/// until the next run marks it abandoned and loads the window exactly once.
pub async fn sigkill_mid_window_leaves_target_and_cursor_untouched(env: &TestEnv) {
    big_tables(env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&src, &dst).await;
    // The attempt is on record on GP6 before any data moved.
    assert_eq!(big_history(env), "1 running -");
    run.signal("KILL");
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{}", out.render());

    // The GP6 master sees its client gone and rolls the window back.
    wait_until_gone(&dst).await;
    release(&locker).await;
    wait_until_gone(&src).await;
    assert_eq!(big_content(env).0, "0 0", "rows of the killed window are visible on GP6");
    assert_eq!(cursor_lines(env), "", "the cursor moved");
    assert_eq!(big_history(env), "1 running -");

    // The next run completes the window, exactly once.
    let out = run_ok(env, &["run"]);
    assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {BIG_ROWS} rows")), "{}", out.render());
    let source = table_digest(env.src, &env.db, "big_rows", &["id", "ts", "payload"], "id", "true");
    assert_eq!(big_content(env), (format!("{BIG_ROWS} {BIG_ROWS}"), source));
    assert_eq!(cursor_lines(env), "public.big 2024-01-01 01:00:00");
    // The killed attempt is marked abandoned by the next run; history reads back from GP6.
    assert_eq!(big_history(env), format!("1 failed -\n2 succeeded {BIG_ROWS}"));
    let history = run_ok(env, &["history", "--output", "json"]);
    let rows: Value = serde_json::from_str(&history.stdout)
        .unwrap_or_else(|e| panic!("history --output json is not JSON: {e}\n{}", history.render()));
    let rows = rows.as_array().unwrap_or_else(|| panic!("not an array: {rows}"));
    let statuses: BTreeSet<(i64, String)> =
        rows.iter().map(|r| (r["attempt"].as_i64().unwrap(), r["status"].as_str().unwrap().to_string())).collect();
    assert_eq!(statuses, BTreeSet::from([(1, "failed".to_string()), (2, "succeeded".to_string())]));
    let failed = run_ok(env, &["history", "--failed"]);
    assert!(failed.stdout.contains("abandoned"), "{}", failed.render());
}

/// A second run of the job while the first is mid-window exits 75 at once, naming the holder
/// of the lock (kept on `env.dst`, the state cluster), and leaves no trace; the first completes.
pub async fn second_concurrent_run_exits_75(env: &TestEnv) {
    big_tables(env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(env).await;

    let first = Guard(Some(env.spawn(&["run"])));
    let pid = first.pid();
    wait_until_mid_copy(&src, &dst).await;

    let started = std::time::Instant::now();
    let second = env.run(&["run"]);
    assert_eq!(second.code, 75, "{}", second.render());
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the second run waited for the lock");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let application = format!("gptransfer pid {pid} host {host}");
    let shown = &application[..application.len().min(63)];
    assert!(second.stderr.contains(shown), "the holder is not named {shown:?}:\n{}", second.render());
    // The refused run left no trace.
    assert_eq!(big_history(env), "1 running -");

    release(&locker).await;
    first.wait().assert_success();
    let source = table_digest(env.src, &env.db, "big_rows", &["id", "ts", "payload"], "id", "true");
    assert_eq!(big_content(env), (format!("{BIG_ROWS} {BIG_ROWS}"), source));
    assert_eq!(big_history(env), format!("1 succeeded {BIG_ROWS}"));
}
