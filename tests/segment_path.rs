//! The `gpfdist` transport on real Greenplum clusters: windows move segment to segment
//! (writable external table → gpfdist → FIFO → gpfdist → readable external table), byte-exact
//! and counted; the gpfdist processes never outlive a window, whether it succeeds, fails, is
//! interrupted or gptransfer is killed; what the segment path cannot do is refused before any
//! data moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::canonical::assert_same_lines;
use support::fact::{fact_jobs, fact_lines, fact_source_sql, DAY, DAY_ROWS, FACT, FACT_COLUMNS, FACT_COLUMNS_DDL};
use support::runs::{wait_for_row, wait_until_gone, Guard};
use support::{gp6_home, table_digest, CmdOutput, Kind, Pg, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The transport's TOML: gpfdist of the test's GP6 install, windows' directories under the
/// test's own directory (so its gpfdist processes can be found by their `-d`).
fn transport(first_port: u16) -> String {
    format!(
        r#"transport = {{ plugin = "gpfdist", host = "127.0.0.1", port_range = [{first_port}, {}], gpfdist = "{}", work_dir = "{{TEMP_DIR}}/gpfdist" }}"#,
        first_port + 39,
        gp6_home().join("bin/gpfdist").display()
    )
}

/// Every gpfdist process still alive (not a zombie) serving a directory under `dir`.
fn gpfdists_under(dir: &Path) -> Vec<String> {
    let needle = dir.join("gpfdist").display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("gpfdist") || !cmdline.contains(&needle) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next().unwrap_or('?')).unwrap_or('?');
        if state != 'Z' && state != 'X' {
            found.push(format!("{} {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Waits (a little) until no gpfdist of the test is left; fails naming the survivors.
fn assert_no_gpfdist_left(env: &TestEnv, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = gpfdists_under(env.dir());
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "gpfdist still running {when}:\n{}", left.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_ok(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let out = env.run(args);
    out.assert_success();
    out
}

fn digest(pg: &Pg, db: &str, table: &str, filter: &str) -> String {
    table_digest(pg, db, table, FACT_COLUMNS, "id", filter)
}

fn history_count(env: &TestEnv, filter: &str) -> usize {
    env.dst_psql(&format!("SELECT count(*) FROM gptransfer.history WHERE {filter}")).parse().unwrap()
}

/// Per hourly window of `target`: the source's rows of the hour were read and written by the
/// `attempt`-th attempt, which succeeded.
fn assert_history_counts(env: &TestEnv, target: &str, attempt: u32) {
    let per_hour = env.src_psql(&format!(
        "SELECT to_char(h, 'YYYYMMDDHH24MISS') || '^' || to_char(h + interval '1 hour', 'YYYYMMDDHH24MISS') \
         || ' ' || count(*) FROM (SELECT date_trunc('hour', evt_ts) AS h FROM {FACT} WHERE {DAY}) w \
         GROUP BY h ORDER BY h"
    ));
    assert_eq!(per_hour.lines().count(), 24);
    let history = env.dst_psql(&format!(
        "SELECT window_id || ' ' || rows_read FROM gptransfer.history WHERE target_table = '{target}' \
         AND attempt = {attempt} AND status = 'succeeded' AND rows_read = rows_written ORDER BY window_id"
    ));
    assert_eq!(history, per_hour, "{target}: attempt {attempt}");
}

// ---------------------------------------------------------------------------------------------
// 1. GP6 → GP6 in replace, append and full
// ---------------------------------------------------------------------------------------------

const BY_KEY: &str = "eda.by_key";
const RANDOMLY: &str = "eda.randomly";
const PARTED: &str = "eda.parted";
const MODES: &[(&str, &str)] = &[("replace", BY_KEY), ("append", RANDOMLY), ("full", PARTED)];

#[test]
fn gp6_to_gp6_through_gpfdist_is_byte_exact_counted_and_idempotent() {
    let env = TestEnv::on("seg_gp6_gp6", Server::Gp6, Server::Gp6);
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(Kind::Gp6)));
    env.dst_psql(&format!(
        "SET ROLE gpt;\nCREATE SCHEMA eda;\n\
         CREATE TABLE {BY_KEY} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);\n\
         CREATE TABLE {RANDOMLY} ({FACT_COLUMNS_DDL}) DISTRIBUTED RANDOMLY;\n\
         CREATE TABLE {PARTED} ({FACT_COLUMNS_DDL}) DISTRIBUTED BY (id)
             PARTITION BY RANGE (evt_ts)
             (START (timestamp '2024-03-10 00:00:00') END (timestamp '2024-03-11 00:00:00') EVERY (interval '6 hours'),
              DEFAULT PARTITION outside_day);"
    ));
    // Both source segments hold rows of the day: the target can only equal the source if the
    // rows of each arrived.
    let per_segment = env.src_psql(&format!("SELECT count(DISTINCT gp_segment_id) FROM {FACT} WHERE {DAY}"));
    assert_eq!(per_segment, "2", "the source's rows are not on both segments");
    let config = fact_jobs(MODES, "1h", false);
    let config = config.replace("mode = \"", &format!("{}\nmode = \"", transport(29200)));
    env.write_config(&config);
    let day = digest(env.src, &env.db, FACT, DAY);
    let whole = digest(env.src, &env.db, FACT, "true");
    assert!(day.starts_with(&format!("{DAY_ROWS} ")), "{day}");
    let expected = |mode: &str| if mode == "full" { whole.clone() } else { day.clone() };

    let out = run_ok(&env, &["run", "--parallel", "2"]);
    assert!(out.stdout.contains("49 window(s) loaded, 0 failed"), "{}", out.render());
    for (mode, t) in MODES {
        assert_eq!(digest(env.dst, &env.dst_db, t, "true"), expected(mode), "{mode} into {t}");
    }
    assert_history_counts(&env, BY_KEY, 1);
    assert_history_counts(&env, RANDOMLY, 1);
    let whole_rows: usize = env.src_psql(&format!("SELECT count(*) FROM {FACT}")).parse().unwrap();
    assert_eq!(
        history_count(
            &env,
            &format!("target_table = '{PARTED}' AND rows_read = {whole_rows} AND rows_written = {whole_rows}")
        ),
        1
    );
    // The bytes recorded are the text the source's segments wrote: the rows' COPY text.
    let copy_text = |filter: &str| {
        let text = env
            .src_psql(&format!("SET extra_float_digits = 3;\n\\copy (SELECT * FROM {FACT} WHERE {filter}) to stdout"));
        (text.len() + usize::from(!text.is_empty())).to_string()
    };
    let bytes = |target: &str| {
        env.dst_psql(&format!(
            "SELECT sum(bytes) FROM gptransfer.history WHERE target_table = '{target}' AND attempt = 1"
        ))
    };
    assert_eq!(bytes(PARTED), copy_text("true"), "the full window's bytes");
    assert_eq!(bytes(BY_KEY), copy_text(DAY), "the hourly windows' bytes");
    // The chain in history names the transport.
    assert_eq!(
        env.dst_psql(
            "SELECT mode || ' ' || chain || ' ' || count(*) FROM gptransfer.history GROUP BY mode, chain ORDER BY mode"
        ),
        "append copy > gpfdist > copy 24\nfull copy > gpfdist > copy 1\nreplace copy > gpfdist > copy 24"
    );
    assert_no_gpfdist_left(&env, "after the run");
    // No external table is left behind on either side.
    for (pg, db) in [(env.src, &env.db), (env.dst, &env.dst_db)] {
        assert_eq!(pg.psql(
                db,
                "SELECT count(*) FROM pg_exttable x JOIN pg_class c ON c.oid = x.reloid WHERE c.relname LIKE 'gptransfer%'"
            ), "0", "external tables left in {db}");
    }

    // Nothing due: a second run changes nothing.
    let again = run_ok(&env, &["run"]);
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    assert_eq!(history_count(&env, "true"), 49);
    // Forced (all but append, which inserts by definition): the same rows, once.
    env.dst_psql("DELETE FROM gptransfer.cursors WHERE job <> 'eda_randomly'");
    run_ok(&env, &["run", "--parallel", "2"]);
    for (mode, t) in MODES {
        assert_eq!(digest(env.dst, &env.dst_db, t, "true"), expected(mode), "{mode} into {t} after a forced re-run");
    }
    assert_history_counts(&env, BY_KEY, 2);
    assert_eq!(history_count(&env, "status <> 'succeeded'"), 0);
    assert_no_gpfdist_left(&env, "after the forced re-run");
}

// ---------------------------------------------------------------------------------------------
// 2. GP4 → GP6: GP4.3's segments write through writable external tables too
// ---------------------------------------------------------------------------------------------

#[test]
fn gp4_to_gp6_through_gpfdist_is_byte_exact() {
    let env = TestEnv::on("seg_gp4_gp6", Server::Gp4, Server::Gp6);
    env.src_psql(&fact_source_sql(Kind::Gp4));
    env.dst_psql(&format!(
        "SET ROLE gpt;\nCREATE SCHEMA eda;\n\
         CREATE TABLE {BY_KEY} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);"
    ));
    assert_eq!(env.src_psql(&format!("SELECT count(DISTINCT gp_segment_id) FROM {FACT} WHERE {DAY}")), "2");
    let config = fact_jobs(&[("replace", BY_KEY)], "6h", false);
    env.write_config(&config.replace("mode = \"", &format!("{}\nmode = \"", transport(29900))));
    let out = run_ok(&env, &["run"]);
    assert!(out.stdout.contains(&format!("4 window(s) loaded, 0 failed; {DAY_ROWS} rows")), "{}", out.render());
    // Floats by their bits, timestamps to the microsecond, bytea, text with tabs, backslashes
    // and newlines, NULL and empty: the same canonical lines on both sides.
    let source = fact_lines(env.src, &env.db, FACT, DAY);
    assert_same_lines(BY_KEY, &source, &fact_lines(env.dst, &env.dst_db, BY_KEY, "true"));
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "gp4 > gpfdist > copy");
    assert_eq!(history_count(&env, "status = 'succeeded' AND rows_read = rows_written"), 4);
    assert_no_gpfdist_left(&env, "after the run");
}

/// A `full` reload through gpfdist drops the target's indexes after the TRUNCATE and builds
/// them again after the segments' INSERT, in the window's transaction, as over the masters.
#[test]
fn a_full_reload_through_gpfdist_rebuilds_the_indexes() {
    let env = TestEnv::on("seg_full_idx", Server::Gp6, Server::Gp6);
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(Kind::Gp6)));
    env.dst_psql(&format!(
        "SET ROLE gpt;\nCREATE SCHEMA eda;\n\
         CREATE TABLE {BY_KEY} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);\n\
         CREATE INDEX by_key_ts ON {BY_KEY} (evt_ts);"
    ));
    let oids = "SELECT string_agg(indexrelid::regclass::text || ' ' || indexrelid::text, ',' ORDER BY 1) \
                FROM pg_index WHERE indrelid = 'eda.by_key'::regclass";
    let before = env.dst_psql(oids);
    let config = fact_jobs(&[("full", BY_KEY)], "1d", false);
    env.write_config(&config.replace("mode = \"", &format!("{}\nmode = \"", transport(30000))));
    run_ok(&env, &["run"]);
    assert_eq!(digest(env.dst, &env.dst_db, BY_KEY, "true"), digest(env.src, &env.db, FACT, "true"));
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > gpfdist > copy");
    let after = env.dst_psql(oids);
    let names = |s: &str| s.split(',').map(|i| i.split(' ').next().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "the same indexes after the reload");
    for (b, a) in before.split(',').zip(after.split(',')) {
        assert_ne!(a, b, "index not rebuilt by the full reload through gpfdist");
    }
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM pg_index WHERE indrelid = 'eda.by_key'::regclass AND indisvalid"),
        "2"
    );
    assert_no_gpfdist_left(&env, "after the run");
}

/// GP7's segments (a 12 kernel, external tables as foreign tables) take the same path.
#[test]
fn gp7_to_gp7_through_gpfdist_is_byte_exact() {
    let env = TestEnv::on("seg_gp7_gp7", Server::Gp7, Server::Gp7);
    big_tables(&env, 29950, "");
    next_run_loads_the_window_once(&env);
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > gpfdist > copy");
    assert_no_gpfdist_left(&env, "after the run");
}

// ---------------------------------------------------------------------------------------------
// 3. and 4. A window held mid-way, then killed, interrupted or failing
// ---------------------------------------------------------------------------------------------

const BIG_ROWS: i32 = 200_000;

/// GP6 source `big` (200 000 rows of the first hour of 2024 on both segments) and an empty
/// target `big` owned by gpt; one hourly window through gpfdist, its source read with `filter`.
fn big_tables(env: &TestEnv, first_port: u16, filter: &str) {
    env.src_psql(&format!(
        "CREATE TABLE big (id integer, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);
         INSERT INTO big SELECT g, timestamp '2024-01-01 00:00:00' + (g % 3600) * interval '1 second',
                rpad(g::text, 100, 'x') FROM generate_series(1, {BIG_ROWS}) g;"
    ));
    env.dst_psql(
        "SET ROLE gpt;
         CREATE TABLE big (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);",
    );
    big_config(env, first_port, filter);
}

fn big_config(env: &TestEnv, first_port: u16, filter: &str) {
    let source = if filter.is_empty() {
        String::new()
    } else {
        format!("source = {{ plugin = \"copy\", filter = {filter:?} }}\n")
    };
    env.write_config(&format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"
retries = 0
{}

[[jobs.j.tables]]
table = "public.big"
condition_column = "ts"
final_end = "2024-01-01 01:00:00"
{source}"#,
        transport(first_port)
    ));
}

/// One source segment sleeps at row 150 000 for longer than the test: the window is provably
/// mid-way (the other segment's rows written, the target reading) until the test acts.
const HOLD: &str = "id <> 150000 OR pg_sleep(40) IS NOT NULL";

/// Waits until the window runs through gpfdist: both processes up and the target's segments
/// reading inside the window's transaction.
async fn wait_until_mid_window(env: &TestEnv, dst: &tokio_postgres::Client) {
    wait_for_row(
        dst,
        "the target's INSERT from the readable external table",
        "SELECT 0::bigint FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer %' AND query LIKE 'INSERT INTO%gptransfer_in%'",
    )
    .await;
    assert_eq!(gpfdists_under(env.dir()).len(), 2, "the window's two gpfdist processes");
}

fn big_count(env: &TestEnv) -> String {
    env.dst_psql("SELECT count(*) FROM big")
}

/// The next run loads the window, exactly once: every row of the source's `big`.
fn next_run_loads_the_window_once(env: &TestEnv) {
    let out = run_ok(env, &["run"]);
    assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {BIG_ROWS} rows")), "{}", out.render());
    let source = table_digest(env.src, &env.db, "big", &["id", "ts", "payload"], "id", "true");
    assert_eq!(table_digest(env.dst, &env.dst_db, "big", &["id", "ts", "payload"], "id", "true"), source);
}

fn big_history(env: &TestEnv) -> String {
    env.dst_psql("SELECT attempt || ' ' || status FROM gptransfer.history WHERE table_name = 'public.big' ORDER BY id")
}

/// The reader of the FIFO sees EOF only once every source segment is done: one segment starts
/// writing seconds after the other has written all its rows and said it is done (gpfdist then
/// closes the FIFO), and all rows of both still arrive. An empty window, and a window whose
/// rows are on one segment only, complete at once.
#[test]
fn a_late_segment_still_arrives_and_empty_windows_complete() {
    let env = TestEnv::on("seg_late_segment", Server::Gp6, Server::Gp6);
    // Row 1 is the first row of its segment: that segment sleeps before its first row.
    big_tables(&env, 29250, "id > 1 OR pg_sleep(4) IS NOT NULL");
    next_run_loads_the_window_once(&env);

    for (filter, rows) in [("id < 0", 0), ("id = 7", 1)] {
        env.dst_psql("DELETE FROM gptransfer.cursors");
        big_config(&env, 29250, filter);
        let started = Instant::now();
        let out = env.run_with_timeout(&["run"], Duration::from_secs(60));
        out.assert_success();
        assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {rows} rows")), "{}", out.render());
        assert!(started.elapsed() < Duration::from_secs(30), "{filter}: took {:?}", started.elapsed());
    }
    assert_eq!(big_count(&env), "1");
    assert_no_gpfdist_left(&env, "after the runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_window_leaves_no_gpfdist_and_the_target_unchanged() {
    let env = TestEnv::on("seg_sigkill", Server::Gp6, Server::Gp6);
    big_tables(&env, 29300, HOLD);
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&env, &dst).await;
    run.signal("KILL");
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{}", out.render());
    // The kernel kills them with their parent (no idle timeout to wait for).
    assert_no_gpfdist_left(&env, "after gptransfer was killed");
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0", "rows of the killed window are visible");
    assert_eq!(big_history(&env), "1 running");
    // Nothing ran to remove the window's directory; once settled, a later window removes it.
    let work_dir = env.dir().join("gpfdist");
    let left = support::files::names_in(&work_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    let old = std::time::SystemTime::now() - Duration::from_secs(300);
    std::fs::File::open(work_dir.join(&left[0])).unwrap().set_modified(old).unwrap();

    // The next run (no sleep now) loads the window, exactly once.
    big_config(&env, 29300, "");
    next_run_loads_the_window_once(&env);
    assert_no_gpfdist_left(&env, "after the next run");
    assert_eq!(support::files::names_in(&work_dir), Vec::<String>::new(), "window directories left");
}

/// A gpfdist process that dies mid-window (killed, crashed): the window fails at once, naming
/// it, instead of waiting out the segments' retries of a gpfdist that is gone (300 s); the
/// target is unchanged and the next run loads the window exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpfdist_that_dies_mid_window_fails_the_window_at_once() {
    let env = TestEnv::on("seg_gpfdist_dies", Server::Gp6, Server::Gp6);
    big_tables(&env, 30100, HOLD);
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&env, &dst).await;
    let running = gpfdists_under(env.dir());
    let reader = running.iter().find(|p| p.contains("gpfdist-reader.log")).expect("the reading gpfdist");
    let pid = reader.split(' ').next().unwrap();
    assert!(std::process::Command::new("kill").args(["-KILL", pid]).status().unwrap().success());
    let started = Instant::now();
    let out = run.wait();
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(out.stderr.contains("gpfdist (reader) on port"), "{}", out.render());
    assert!(out.stderr.contains("ended during the window"), "{}", out.render());
    assert_no_gpfdist_left(&env, "after the window failed");
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0", "rows of the failed window are visible");

    big_config(&env, 30100, "");
    next_run_loads_the_window_once(&env);
}

/// A killed run's source segment still writes after the kill (it slept through it, and Greenplum
/// retries a failed write to gpfdist); the next run's gpfdist takes the same port meanwhile.
/// Those rows must not reach the next window: each window's FIFO has a name of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_late_writes_never_reach_the_next_window() {
    let env = TestEnv::on("seg_stale_writer", Server::Gp6, Server::Gp6);
    big_tables(&env, 29350, "id <> 150000 OR pg_sleep(8) IS NOT NULL");
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&env, &dst).await;
    run.signal("KILL");
    assert_eq!(run.wait().code, 128 + 9);
    assert_no_gpfdist_left(&env, "after gptransfer was killed");
    // The next run is still in its window (one of its segments sleeps longer) when the killed
    // run's segment wakes and writes the rest of its rows to the same port.
    big_config(&env, 29350, "id <> 160000 OR pg_sleep(16) IS NOT NULL");
    next_run_loads_the_window_once(&env);
    assert_no_gpfdist_left(&env, "after the next run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_window_stops_leaves_no_gpfdist_and_the_target_unchanged() {
    let env = TestEnv::on("seg_sigterm", Server::Gp6, Server::Gp6);
    big_tables(&env, 29400, HOLD);
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&env, &dst).await;
    let signalled = Instant::now();
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.code, 143, "{}", out.render());
    assert!(signalled.elapsed() < Duration::from_secs(15), "took {:?} to stop\n{}", signalled.elapsed(), out.render());
    assert!(out.stderr.contains("interrupted by SIGTERM"), "{}", out.render());
    assert_no_gpfdist_left(&env, "after SIGTERM");
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0");
    assert_eq!(big_history(&env), "1 failed");
}

/// A window that passes the transport's `timeout` fails, its gpfdist processes are killed and
/// the target is unchanged.
#[test]
fn a_window_past_the_timeout_fails_and_leaves_no_gpfdist() {
    let env = TestEnv::on("seg_timeout", Server::Gp6, Server::Gp6);
    big_tables(&env, 29450, HOLD);
    let config = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    env.write_config(&config.replace("work_dir =", "timeout = \"3s\", work_dir ="));
    let started = Instant::now();
    let out = env.run_with_timeout(&["run"], Duration::from_secs(90));
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stderr.contains("did not finish within the gpfdist transport's timeout (3s)"), "{}", out.render());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_no_gpfdist_left(&env, "after the timeout");
    assert_eq!(big_count(&env), "0");
    assert_eq!(big_history(&env), "1 failed");
}

/// A source that fails (division by zero on a segment, at its first row or after others were
/// written) fails the window without hanging; nothing lands, no gpfdist is left.
#[test]
fn a_failing_source_fails_the_window_cleanly() {
    let env = TestEnv::on("seg_source_fails", Server::Gp6, Server::Gp6);
    big_tables(&env, 29500, "1 / (id - id) = 1");
    for (filter, when) in [("1 / (id - id) = 1", "at once"), ("1 / (id - 150000) IS NOT NULL", "mid-window")] {
        big_config(&env, 29500, filter);
        let started = Instant::now();
        let out = env.run_with_timeout(&["run"], Duration::from_secs(90));
        assert_eq!(out.code, 1, "{when}: {}", out.render());
        assert!(out.stderr.contains("division by zero"), "{when}: {}", out.render());
        assert!(out.stderr.contains("source cluster \"src\""), "{when}: {}", out.render());
        assert!(started.elapsed() < Duration::from_secs(60), "{when}: took {:?}", started.elapsed());
        assert_no_gpfdist_left(&env, when);
        assert_eq!(big_count(&env), "0", "{when}");
    }
    assert_eq!(big_history(&env), "1 failed\n2 failed");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0");
}

/// A row the target refuses mid-window: the target's failure stops the source's segments
/// (their gpfdist is killed) instead of leaving them writing into a FIFO nobody reads.
#[test]
fn a_target_that_fails_stops_the_source_and_leaves_no_gpfdist() {
    let env = TestEnv::on("seg_target_fails", Server::Gp6, Server::Gp6);
    big_tables(&env, 29600, "");
    // A row the target refuses (its payload column is too narrow for one value).
    env.dst_psql("SET ROLE gpt; DROP TABLE big; CREATE TABLE big (id integer, ts timestamp NOT NULL, payload varchar(100)) DISTRIBUTED BY (id);");
    // varchar(100) from text would cut trailing spaces silently: accepted for this column (the
    // only entry, last in the file), so the long value fails loudly on the target.
    let path = env.dir().join("gptransfer.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    env.write_config(&format!("{text}lossy_columns = [\"payload\"]\n"));
    env.src_psql("UPDATE big SET payload = repeat('y', 200) WHERE id = 150000");
    let started = Instant::now();
    let out = env.run_with_timeout(&["run"], Duration::from_secs(90));
    assert_eq!(out.code, 1, "{}", out.render());
    // The target's refusal is the error, not the source's consequence of it.
    assert!(out.stderr.contains("target cluster \"dst\""), "{}", out.render());
    assert!(out.stderr.contains("value too long"), "{}", out.render());
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert_no_gpfdist_left(&env, "after the target failed");
    assert_eq!(big_count(&env), "0");
}

// ---------------------------------------------------------------------------------------------
// 5. What the segment path cannot do is refused before any data moves
// ---------------------------------------------------------------------------------------------

#[test]
fn merge_and_non_greenplum_ends_are_refused_at_config_check() {
    let env = TestEnv::on("seg_refused", Server::Gp6, Server::Gp6);
    big_tables(&env, 29700, "");
    let config = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    let merge = config
        .replace("retries = 0", "retries = 0\nmode = \"merge\"")
        .replace("final_end = \"2024-01-01 01:00:00\"", "final_end = \"2024-01-01 01:00:00\"\nkey = [\"id\"]");
    env.write_config(&merge);
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(out.stderr.contains("transport: merge keeps the last row of each key in source order"), "{}", out.render());
    // And `run` refuses it before any window starts.
    let out = env.run(&["run"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(out.stderr.contains("merge keeps the last row"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history"), "0");
    assert_no_gpfdist_left(&env, "after the refusals");
}

#[test]
fn a_postgresql_source_is_refused_at_config_check() {
    let env = TestEnv::on("seg_pg_refused", Server::Pg, Server::Gp6);
    env.src_psql("CREATE TABLE big (id integer, ts timestamp NOT NULL, payload text);");
    env.dst_psql(
        "SET ROLE gpt; CREATE TABLE big (id integer, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);",
    );
    big_config(&env, 29800, "");
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(out.stderr.contains("the source cluster is postgres"), "{}", out.render());
    assert!(out.stderr.contains("not Greenplum"), "{}", out.render());
}

/// A source `filter` with a subquery gives the export a plan of several slices. Greenplum 6
/// evaluates some slices with the segments' own `extra_float_digits` instead of the session's
/// (seen: `f::text` in the scan slice of a GROUP BY, and in an `INSERT … SELECT` into a heap
/// table, printed 15 digits): floats must still arrive with every bit.
#[test]
fn a_filter_with_a_subquery_still_moves_floats_exactly() {
    let env = TestEnv::on("seg_float_slices", Server::Gp6, Server::Gp6);
    let ddl = "CREATE TABLE fl (id int, ts timestamp NOT NULL, f8 float8, f4 real) DISTRIBUTED BY (id)";
    env.src_psql(&format!(
        "{ddl};\nCREATE TABLE keep (k int, id int) DISTRIBUTED BY (k);\n\
         INSERT INTO fl SELECT i, timestamp '2024-01-01 00:00:00' + i * interval '1 minute', 0.1 * i + pi() / i, \
         (1.0 / (i + 3))::real FROM generate_series(1, 600) i;\n\
         INSERT INTO keep SELECT i * 7, i FROM generate_series(1, 600) i WHERE i % 3 <> 0;"
    ));
    env.dst_psql(ddl);
    env.write_config(&format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"
{}

[[jobs.j.tables]]
table = "public.fl"
condition_column = "ts"
final_end = "2024-01-02 00:00:00"
source = {{ plugin = "copy", filter = "id IN (SELECT id FROM public.keep)" }}
"#,
        transport(29400)
    ));
    run_ok(&env, &["run"]);
    let bits = "SELECT count(*) || ' ' || md5(array_to_string(ARRAY(SELECT id || ':' || encode(float8send(f8), 'hex') \
                || ':' || encode(float4send(f4), 'hex') FROM fl WHERE id % 3 <> 0 ORDER BY id), ','))";
    assert_eq!(env.dst_psql(bits), env.src_psql(bits), "floats changed on the way");
    assert_eq!(env.dst_psql("SELECT count(*) FROM fl"), "400");
}
