//! SPEC §4.1, §4.4, §4.7: a window lands completely or not at all, whatever happens in the
//! middle — SIGKILL, SIGTERM, Ctrl+C, a source connection dropped mid-stream — and one job
//! never has two runners. A window cut off by a dropped connection before its commit is tried
//! again in the same run (`retries`, `retry_delay`); a row the target rejects is not.
//!
//! "In the middle" is made deterministic rather than timed: the target table has a row trigger
//! that, at row id 1000, waits for an advisory lock the test holds. The run's COPY into the
//! target is then provably mid-window (999 rows already inserted in its open transaction, the
//! rest still streaming) for as long as the test wants, whatever the machine's speed. Releasing
//! the lock lets the target backend go on (and notice its client is gone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::runs::{wait_for_row, wait_until_gone, Guard};
use support::TestEnv;
use tokio_postgres::Client;

/// Advisory lock key the target trigger waits for.
const HOLD_KEY: i64 = 4242;
/// How long the test waits for any expected state of the servers.
/// The job lock's first key (`gptr`), as `pg_locks.classid` shows it.
const JOB_LOCK_CLASSID: i64 = 0x6770_7472;

const WINDOW_1: &str = "20240101000000^20240101010000";

/// A job `j` with the given tables, each in 1h windows from 2024-01-01 00:00 up to 01:00: one
/// window per table.
fn write_config(env: &TestEnv, tables: &[&str]) {
    write_config_with(env, tables, "");
}

/// [`write_config`] with more keys for the job (`retries`, `retry_delay`).
fn write_config_with(env: &TestEnv, tables: &[&str], job_keys: &str) {
    let mut text = r#"
[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"
"#
    .to_string();
    text.push_str(job_keys);
    for t in tables {
        text.push_str(&format!(
            "\n[[jobs.j.tables]]\ntable = \"public.{t}\"\ncondition_column = \"ts\"\nfinal_end = \"2024-01-01 01:00:00\"\n"
        ));
    }
    env.write_config(&text);
}

/// `table` on both sides; `rows` rows on the source, all inside the first hour, each with a
/// `payload_bytes`-long text. The target is empty and holds at row id 1000 while the test
/// holds [`HOLD_KEY`].
fn create_big(env: &TestEnv, table: &str, rows: u32, payload_bytes: u32) {
    let ddl = format!("CREATE TABLE {table} (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text);");
    env.src_psql(&ddl);
    env.dst_psql(&ddl);
    env.src_psql(&format!(
        "INSERT INTO {table} SELECT g, timestamp '2024-01-01 00:00:00' + (g % 3600) * interval '1 second', \
         rpad(g::text, {payload_bytes}, 'x') FROM generate_series(1, {rows}) g"
    ));
    env.dst_psql(&format!(
        "CREATE FUNCTION {table}_hold() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = 1000 THEN PERFORM pg_advisory_xact_lock({HOLD_KEY}); END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER hold BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_hold();"
    ));
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}

/// Waits until the run has its target COPY blocked at row 1000. Sessions are found by database
/// (each test has its own) and application name (`gptransfer pid <pid> host <host>`).
async fn wait_until_mid_copy(dst: &Client) -> i64 {
    wait_for_row(
        dst,
        "the run's COPY on the target to reach row 1000",
        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'gptransfer %' AND query LIKE 'COPY%' \
             AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
    )
    .await
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// `count(*)`, `count(DISTINCT id)` and an md5 of all rows, ordered.
async fn content(client: &Client, table: &str) -> (i64, i64, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT id), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY id)), '') FROM {table} t"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn history(dst: &Client, table: &str) -> Vec<(String, Option<String>, i32)> {
    dst.query("SELECT status, error, attempt FROM gptransfer.history WHERE table_name = $1 ORDER BY id", &[&table])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn cursor(dst: &Client, table: &str) -> Option<String> {
    dst.query_opt("SELECT cursor_end::text FROM gptransfer.cursors WHERE job = 'j' AND table_name = $1", &[&table])
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// An admin session holding [`HOLD_KEY`] on the target: the trigger waits while it is held.
async fn hold(env: &TestEnv) -> Client {
    let locker = env.dst.admin(&env.db).await;
    locker.execute("SELECT pg_advisory_lock($1)", &[&HOLD_KEY]).await.unwrap();
    locker
}

/// Sends `signal` (`INT`, `TERM`) and waits: the process must end with `code` within 10 s.
fn signal_promptly(run: Guard, signal: &str, code: i32) -> support::CmdOutput {
    let signalled = Instant::now();
    run.signal(signal);
    let out = run.wait();
    let took = signalled.elapsed();
    assert_eq!(out.code, code, "{}", out.render());
    assert!(took < Duration::from_secs(10), "took {took:?} to exit after SIG{signal}\n{}", out.render());
    out
}

/// An admin session holding the state table `gptransfer.<table>` exclusively, in a transaction
/// the caller commits: every statement of a run on that table waits.
async fn lock_state_table(env: &TestEnv, table: &str) -> Client {
    let locker = env.dst.admin(&env.db).await;
    locker.batch_execute(&format!("BEGIN; LOCK TABLE gptransfer.{table} IN ACCESS EXCLUSIVE MODE")).await.unwrap();
    locker
}

/// Waits until some session waits for a lock on `gptransfer.<table>` (`what`: who, for the
/// timeout's message).
async fn wait_for_lock_wait(dst: &Client, table: &str, what: &str) {
    let sql = format!("SELECT 0::bigint FROM pg_locks WHERE relation = 'gptransfer.{table}'::regclass AND NOT granted");
    wait_for_row(dst, what, &sql).await;
}

async fn release(locker: &Client) {
    locker.execute("SELECT pg_advisory_unlock($1)", &[&HOLD_KEY]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_window_leaves_target_and_cursor_untouched() {
    let env = TestEnv::new("sigkill_mid_window");
    create_big(&env, "big", 100_000, 100);
    write_config(&env, &["big"]);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&dst).await;
    // The attempt is on record before any data moves.
    assert_eq!(history(&dst, "public.big").await, [("running".to_string(), None, 1)]);
    run.signal("KILL");
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{}", out.render());

    // The target backend still waits at row 1000; let it go on: it finds its client gone and
    // rolls back.
    release(&locker).await;
    wait_until_gone(&dst).await;
    wait_until_gone(&src).await;

    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0, "rows of the killed window are visible");
    assert_eq!(cursor(&dst, "public.big").await, None, "the cursor moved");
    // Nobody was left to finish the history row: it still says running (expected after SIGKILL).
    assert_eq!(history(&dst, "public.big").await, [("running".to_string(), None, 1)]);

    // The next run completes the window, exactly once.
    let out = env.run(&["run"]);
    out.assert_success();
    let (source_rows, _, source_md5) = content(&src, "big").await;
    let (rows, distinct, md5) = content(&dst, "big").await;
    assert_eq!(rows, 100_000);
    assert_eq!(rows, source_rows);
    assert_eq!(distinct, rows, "duplicates on the target");
    assert_eq!(md5, source_md5);
    assert_eq!(cursor(&dst, "public.big").await.as_deref(), Some("2024-01-01 01:00:00"));
    let h = history(&dst, "public.big").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_ne!(h[0].0, "succeeded", "the killed attempt: {h:?}");
    assert_eq!((h[1].0.as_str(), h[1].2), ("succeeded", 2), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_source_connection_fails_window_and_run_continues() {
    let env = TestEnv::new("dropped_source");
    // Large enough (~100 MB) that the source is still sending, blocked on a full socket, while
    // the target holds at row 1000: no buffer between them can take it all.
    create_big(&env, "big1", 400_000, 250);
    let ddl = "CREATE TABLE small2 (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "INSERT INTO small2 SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '1 minute', 'row ' || g \
         FROM generate_series(0, 59) g",
    );
    // No retry (a dropped connection is retried by default): the failed window must not stop
    // the other table.
    write_config_with(&env, &["big1", "small2"], "retries = 0\n");
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run", "--parallel", "1"])));
    wait_until_mid_copy(&dst).await;
    let source_backend = wait_for_row(
        &src,
        "the source COPY to block on a full socket",
        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'gptransfer %' AND query LIKE 'COPY%' \
             AND wait_event = 'ClientWrite'",
    )
    .await;
    let terminated: bool =
        src.query_one("SELECT pg_terminate_backend(($1::bigint)::int)", &[&source_backend]).await.unwrap().get(0);
    assert!(terminated);
    wait_for_row(
        &src,
        "the source backend to end",
        &format!("SELECT 0::bigint WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {source_backend})"),
    )
    .await;
    release(&locker).await;

    let out = run.wait();
    assert_eq!(out.code, 1, "{}", out.render());

    // Table 1: failed, rolled back, cursor where it was.
    let h = history(&dst, "public.big1").await;
    assert_eq!(h.len(), 1, "{h:?}");
    let (status, error, _) = &h[0];
    assert_eq!(status, "failed");
    let error = error.as_deref().unwrap_or_default();
    assert!(error.contains("source cluster \"src\""), "the error names the source: {error}");
    assert!(
        ["terminating connection", "closed", "unexpected EOF", "administrator command"]
            .iter()
            .any(|s| error.contains(s)),
        "the error names the dropped connection: {error}"
    );
    wait_until_gone(&dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM big1").await, 0, "a part of the failed window landed");
    assert_eq!(cursor(&dst, "public.big1").await, None);

    // The failure is reported with job, table and window.
    assert!(
        out.stderr.lines().any(|l| l.contains("public.big1")
            && l.contains(WINDOW_1)
            && (l.contains("job=j") || l.contains("job \"j\"") || l.contains("j / "))),
        "stderr has no line naming job, table and window:\n{}",
        out.render()
    );

    // Table 2 ran after it and landed whole.
    let h = history(&dst, "public.small2").await;
    assert_eq!(h, [("succeeded".to_string(), None, 1)]);
    let (rows, distinct, md5) = content(&dst, "small2").await;
    assert_eq!((rows, distinct), (60, 60));
    assert_eq!(md5, content(&src, "small2").await.2);
    assert_eq!(cursor(&dst, "public.small2").await.as_deref(), Some("2024-01-01 01:00:00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_concurrent_run_exits_75() {
    let env = TestEnv::new("concurrent_run");
    create_big(&env, "big", 20_000, 20);
    write_config(&env, &["big"]);
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let first = Guard(Some(env.spawn(&["run"])));
    let pid = first.pid();
    wait_for_row(
        &dst,
        "the first run to hold the job lock",
        &format!(
            "SELECT l.pid::bigint FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {JOB_LOCK_CLASSID} \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND a.application_name LIKE 'gptransfer %'"
        ),
    )
    .await;
    // Let it get into the window too: the second run must not disturb a load in flight.
    wait_until_mid_copy(&dst).await;

    let started = Instant::now();
    let second = env.run(&["run"]);
    assert_eq!(second.code, 75, "{}", second.render());
    assert!(started.elapsed() < Duration::from_secs(30), "the second run waited for the lock");
    assert!(second.stderr.contains("gptransfer"), "{}", second.stderr);
    // The holder's application name starts with its process id, so a long host name that the
    // server cuts at 63 bytes cannot hide it.
    let application = format!("gptransfer pid {pid} host {}", host_name());
    let shown = &application[..application.len().min(63)];
    assert!(second.stderr.contains(shown), "the holder is not named {shown:?}:\n{}", second.stderr);
    cli_snapshot!(second.with_filter(r"pid \d+", "pid [PID]"));
    // The refused run left no trace.
    assert_eq!(history(&dst, "public.big").await.len(), 1);

    release(&locker).await;
    let out = first.wait();
    out.assert_success();
    let (rows, distinct, _) = content(&dst, "big").await;
    assert_eq!((rows, distinct), (20_000, 20_000));
    assert_eq!(history(&dst, "public.big").await, [("succeeded".to_string(), None, 1)]);
}

/// SIGTERM / SIGINT mid-window: exit `code`, nothing of the window on the target, history
/// `failed` with "interrupted", the cursor unmoved; the next run completes the window.
async fn interrupted(name: &str, signal: &str, code: i32) {
    let env = TestEnv::new(name);
    create_big(&env, "big", 50_000, 50);
    write_config(&env, &["big"]);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&dst).await;
    // Not while the target is still stuck at row 1000: the process must not wait for it.
    let out = signal_promptly(run, signal, code);

    let h = history(&dst, "public.big").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].0, "failed");
    let error = h[0].1.as_deref().unwrap_or_default();
    assert!(error.contains("interrupted"), "{error}");
    assert!(out.stderr.contains("interrupted"), "{}", out.render());
    cli_snapshot!(name, out);

    release(&locker).await;
    wait_until_gone(&dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0, "rows of the interrupted window are visible");
    assert_eq!(cursor(&dst, "public.big").await, None);

    env.run(&["run"]).assert_success();
    let (rows, distinct, md5) = content(&dst, "big").await;
    assert_eq!((rows, distinct), (50_000, 50_000));
    assert_eq!(md5, content(&src, "big").await.2);
    assert_eq!(cursor(&dst, "public.big").await.as_deref(), Some("2024-01-01 01:00:00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_and_exits_143() {
    interrupted("sigterm_rolls_back_and_exits_143", "TERM", 143).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_rolls_back_and_exits_130() {
    interrupted("sigint_rolls_back_and_exits_130", "INT", 130).await;
}

/// Ctrl+C while the run is still getting ready, before any window: here its state cluster does
/// not answer (the history table locked, so closing abandoned rows waits). The run waited for
/// the server, up to the read timeout (10 minutes by default), and the signal did nothing
/// (seen: no exit within 10 s). It now exits at once with 130, saying nothing moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_before_the_first_window_exits_at_once() {
    let env = TestEnv::new("sigint_before_windows");
    create_big(&env, "big", 100, 10);
    write_config(&env, &["big"]);
    let dst = env.dst.admin(&env.db).await;
    env.run(&["run"]).assert_success();
    let locker = lock_state_table(&env, "history").await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_for_lock_wait(&dst, "history", "the run to wait for the history table").await;
    let out = signal_promptly(run, "INT", 130);
    assert!(out.stderr.contains("before any window moved"), "{}", out.render());
    locker.batch_execute("COMMIT").await.unwrap();
    env.run(&["run"]).assert_success();
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 100);
}

/// Kills the run's COPY session on the target while it is held at row 1000 (a connection
/// error: retriable) and waits until the server has let it go.
async fn terminate_target_copy(dst: &Client) {
    let backend = wait_until_mid_copy(dst).await;
    let terminated: bool =
        dst.query_one("SELECT pg_terminate_backend(($1::bigint)::int)", &[&backend]).await.unwrap().get(0);
    assert!(terminated);
    wait_for_row(
        dst,
        "the target COPY backend to end",
        &format!("SELECT 0::bigint WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {backend})"),
    )
    .await;
}

/// Issue 15 item 6: a connection dropped mid-window (the target's COPY session terminated) is
/// retried in the same run: the window lands whole, history keeps the failed attempt and the
/// one that succeeded, and the run says it retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_target_connection_is_retried_and_the_window_lands() {
    let env = TestEnv::new("retried_window");
    create_big(&env, "big", 20_000, 20);
    write_config_with(&env, &["big"], "retry_delay = \"200ms\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    terminate_target_copy(&dst).await;
    release(&locker).await;
    let out = run.wait();
    out.assert_success();

    let source = support::table_digest(env.src, &env.db, "big", &["id", "ts", "payload"], "id", "true");
    let target = support::table_digest(env.dst, &env.db, "big", &["id", "ts", "payload"], "id", "true");
    assert_eq!(target, source, "{}", out.render());
    assert_eq!(cursor(&dst, "public.big").await.as_deref(), Some("2024-01-01 01:00:00"));
    let h = history(&dst, "public.big").await;
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!((h[0].0.as_str(), h[0].2), ("failed", 1), "{h:?}");
    let error = h[0].1.as_deref().unwrap_or_default();
    assert!(error.contains("administrator command") || error.contains("closed"), "{error}");
    assert_eq!(h[1], ("succeeded".to_string(), None, 2), "{h:?}");
    let warning = format!("retrying window {WINDOW_1} of public.big in 200ms (attempt 2 of 3): ");
    assert!(out.stderr.contains(&warning), "no {warning:?} in:\n{}", out.render());
    assert!(out.stdout.contains("1 window(s) loaded, 0 failed; 20000 rows"), "{}", out.render());
}

/// `retries = 0`: the same dropped connection fails the window at once; nothing of it on the
/// target, the cursor where it was, one attempt in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_retries_a_dropped_target_connection_fails_the_window_at_once() {
    let env = TestEnv::new("no_retries");
    create_big(&env, "big", 20_000, 20);
    write_config_with(&env, &["big"], "retries = 0\nretry_delay = \"200ms\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    terminate_target_copy(&dst).await;
    release(&locker).await;
    let out = run.wait();
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(!out.stderr.contains("retrying"), "{}", out.render());
    assert!(!out.stdout.contains("attempts made"), "one attempt is no news: {}", out.render());

    wait_until_gone(&dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0, "a part of the failed window landed");
    assert_eq!(cursor(&dst, "public.big").await, None);
    let h = history(&dst, "public.big").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!((h[0].0.as_str(), h[0].2), ("failed", 1), "{h:?}");
}

/// Every attempt dropped: the window fails after `1 + retries` attempts, each in history, and
/// the final message says how many were made; the wait doubled between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_failing_every_attempt_fails_saying_how_many_were_made() {
    let env = TestEnv::new("retries_spent");
    create_big(&env, "big", 20_000, 20);
    write_config_with(&env, &["big"], "retries = 1\nretry_delay = \"200ms\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    // The trigger holds the retry at row 1000 too, while the lock is held.
    terminate_target_copy(&dst).await;
    terminate_target_copy(&dst).await;
    let out = run.wait();
    release(&locker).await;
    assert_eq!(out.code, 1, "{}", out.render());
    let warning = format!("retrying window {WINDOW_1} of public.big in 200ms (attempt 2 of 2): ");
    assert!(out.stderr.contains(&warning), "no {warning:?} in:\n{}", out.render());
    assert_eq!(out.stderr.matches("retrying window").count(), 1, "{}", out.render());
    assert!(
        out.stdout.lines().any(|l| l.starts_with("FAILED j / public.big") && l.ends_with("(2 attempts made)")),
        "{}",
        out.render()
    );

    wait_until_gone(&dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0, "a part of the failed window landed");
    assert_eq!(cursor(&dst, "public.big").await, None);
    let h = history(&dst, "public.big").await;
    let attempts: Vec<(&str, i32)> = h.iter().map(|(status, _, attempt)| (status.as_str(), *attempt)).collect();
    assert_eq!(attempts, [("failed", 1), ("failed", 2)], "{h:?}");
    assert!(h[1].1.as_deref().unwrap_or_default().ends_with("(2 attempts made)"), "{h:?}");
}

/// A value the target rejects (too long for its column) is not a connection problem: no retry,
/// no wait, one attempt.
#[test]
fn a_row_the_target_rejects_is_not_retried() {
    let env = TestEnv::new("rejected_not_retried");
    env.src_psql(
        "CREATE TABLE narrow (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text);
         INSERT INTO narrow SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '1 minute', 'row ' || g
         FROM generate_series(0, 59) g;",
    );
    env.dst_psql("CREATE TABLE narrow (id integer PRIMARY KEY, ts timestamp NOT NULL, payload varchar(5));");
    write_config_with(&env, &["narrow"], "retries = 2\nretry_delay = \"200ms\"\n");
    // varchar(5) from text would cut trailing spaces silently: accepted for this column (the
    // only entry, last in the file), so a value with more than spaces past 5 fails loudly.
    let path = env.dir().join("gptransfer.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    env.write_config(&format!("{text}lossy_columns = [\"payload\"]\n"));

    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stdout.contains("value too long"), "{}", out.render());
    assert!(!out.stderr.contains("retrying"), "{}", out.render());
    assert!(!out.stdout.contains("attempts made"), "{}", out.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(status || ' ' || attempt, E'\\n' ORDER BY id) FROM gptransfer.history"),
        "failed 1"
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM narrow"), "0");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0");
}

/// SIGTERM while the run waits to retry a window ends the wait at once: exit 143 as for any
/// interrupt, no further attempt, nothing of the window on the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_retry_wait_stops_at_once() {
    let env = TestEnv::new("sigterm_retry_wait");
    create_big(&env, "big", 20_000, 20);
    // A wait far longer than the test allows itself.
    write_config_with(&env, &["big"], "retry_delay = \"10m\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    terminate_target_copy(&dst).await;
    release(&locker).await;
    // The failed attempt is recorded before the wait begins.
    wait_for_row(
        &dst,
        "the first attempt to be recorded failed",
        "SELECT 0::bigint FROM gptransfer.history WHERE table_name = 'public.big' AND status = 'failed'",
    )
    .await;
    let out = signal_promptly(run, "TERM", 143);
    assert!(out.stderr.contains("retrying window"), "{}", out.render());
    assert!(out.stderr.contains("interrupted"), "{}", out.render());
    // How the dropped connection is worded depends on where the COPY was cut.
    cli_snapshot!(out.with_filter(
        r#"(?m)[a-zA-Z][a-zA-Z ]* on target cluster "dst": .*?(?P<tail> \(not retried: interrupted\)| job=|$)"#,
        "[TARGET CONNECTION DROPPED]${tail}"
    ));

    let h = history(&dst, "public.big").await;
    assert_eq!(h.len(), 1, "no further attempt: {h:?}");
    assert_eq!((h[0].0.as_str(), h[0].2), ("failed", 1), "{h:?}");
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0);
    assert_eq!(cursor(&dst, "public.big").await, None);
}

/// The daemon runs windows through the same engine: a dropped connection is retried within the
/// round, under the job's lock, and the round ends clean (loaded, compared equal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_retries_a_window_within_its_round() {
    let env = TestEnv::new("daemon_retry");
    create_big(&env, "big", 20_000, 20);
    write_config_with(&env, &["big"], "retry_delay = \"200ms\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let daemon = Guard(Some(env.spawn(&["daemon", "--interval", "1s", "--rounds", "1"])));
    terminate_target_copy(&dst).await;
    release(&locker).await;
    let out = daemon.wait();
    out.assert_success();
    let warning = format!("retrying window {WINDOW_1} of public.big in 200ms (attempt 2 of 3): ");
    assert!(out.stderr.contains(&warning), "no {warning:?} in:\n{}", out.render());

    let source = support::table_digest(env.src, &env.db, "big", &["id", "ts", "payload"], "id", "true");
    let target = support::table_digest(env.dst, &env.db, "big", &["id", "ts", "payload"], "id", "true");
    assert_eq!(target, source, "{}", out.render());
    let h = history(&dst, "public.big").await;
    let attempts: Vec<(&str, i32)> = h.iter().map(|(status, _, attempt)| (status.as_str(), *attempt)).collect();
    assert_eq!(attempts, [("failed", 1), ("succeeded", 2)], "{h:?}");
}

/// SIGTERM while the daemon compares the windows it has just loaded, its state cluster not
/// answering (the alarm table locked): the daemon waited for the server, up to the read
/// timeout (seen: no exit within 120 s). It now ends at once with 143; the window it loaded
/// stays loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_daemon_compares_ends_it_at_once() {
    let env = TestEnv::new("daemon_sigterm_compare");
    create_big(&env, "big", 100, 10);
    write_config(&env, &["big"]);
    // The state schema, before the alarm table is locked.
    env.run(&["alarm", "check"]).assert_success();
    let dst = env.dst.admin(&env.db).await;
    let locker = lock_state_table(&env, "alarms").await;

    let daemon = Guard(Some(env.spawn(&["daemon", "--interval", "1s", "--rounds", "1"])));
    wait_for_lock_wait(&dst, "alarms", "the daemon's compare to wait for the alarm table").await;
    signal_promptly(daemon, "TERM", 143);
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 100);
}

/// Ctrl+C while `compare --repair` compares the repaired windows again, the state cluster not
/// answering (the alarm table locked once the repair's load is under way): its signal handler,
/// installed for the repair, kept the process alive, waiting for the server up to the read
/// timeout (seen: no exit within 120 s). It now exits at once with 130, saying the repair is
/// done; the window stays repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_compare_checks_its_repair_exits_at_once() {
    let env = TestEnv::new("sigint_after_repair");
    create_big(&env, "big", 2_000, 10);
    write_config(&env, &["big"]);
    env.run(&["run"]).assert_success();
    let dst = env.dst.admin(&env.db).await;
    dst.batch_execute("DELETE FROM big WHERE id = 5").await.unwrap();
    let locker = hold(&env).await;

    let repair = Guard(Some(env.spawn(&["compare", "--repair"])));
    wait_until_mid_copy(&dst).await;
    let alarms = lock_state_table(&env, "alarms").await;
    release(&locker).await;
    wait_for_lock_wait(&dst, "alarms", "the compare after the repair to wait for the alarm table").await;
    let out = signal_promptly(repair, "INT", 130);
    assert!(out.stderr.contains("while comparing the repaired windows again"), "{}", out.render());
    alarms.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 2_000);
}

/// The job's lock lives on the state session: when that session is gone too, the run no longer
/// owns the job (another run may have taken it over), so a dropped target connection is not
/// retried — the next run loads the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_state_session_does_not_retry() {
    let env = TestEnv::new("no_retry_without_lock");
    create_big(&env, "big", 20_000, 20);
    write_config_with(&env, &["big"], "retry_delay = \"200ms\"\n");
    let dst = env.dst.admin(&env.db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&dst).await;
    let state_backend = wait_for_row(
        &dst,
        "the run's state session",
        &format!(
            "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'gptransfer pid {} %' AND query NOT LIKE 'COPY%'",
            run.pid()
        ),
    )
    .await;
    dst.execute("SELECT pg_terminate_backend(($1::bigint)::int)", &[&state_backend]).await.unwrap();
    terminate_target_copy(&dst).await;
    release(&locker).await;
    let out = run.wait();
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(!out.stderr.contains("retrying"), "{}", out.render());

    wait_until_gone(&dst).await;
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 0);
    assert_eq!(cursor(&dst, "public.big").await, None);
    // Nobody could close the attempt; the next run marks it abandoned and loads the window.
    assert_eq!(history(&dst, "public.big").await, [("running".to_string(), None, 1)]);
    env.run(&["run"]).assert_success();
    assert_eq!(count(&dst, "SELECT count(*) FROM big").await, 20_000);
}
