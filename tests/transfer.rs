//! The transfer core against two real PostgreSQL clusters (issue 2, SPEC §2-§6): windows land
//! byte-exact and counted, re-runs change nothing, `final_end` and `lag` bound the plan, the
//! four modes, tables in parallel, and no password in any output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike};
use support::table_digest as digest;
use support::{assert_no_secret, CmdOutput, TestEnv};

fn write_config(env: &TestEnv, jobs: &str) {
    env.write_config(&format!("{{CLUSTERS}}\n{jobs}"));
}

/// The stored cursor of a table (`None` when there is none).
fn cursor(env: &TestEnv, table: &str) -> Option<String> {
    let out = env.dst_psql(&format!("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = '{table}'"));
    (!out.is_empty()).then_some(out)
}

fn history_count(env: &TestEnv, filter: &str) -> i64 {
    env.dst_psql(&format!("SELECT count(*) FROM gptransfer.history WHERE {filter}")).parse().unwrap()
}

/// Keys present more than once in a target table (should be empty).
fn duplicate_keys(env: &TestEnv, table: &str, key: &str) -> String {
    env.dst_psql(&format!(
        "SELECT {key}, count(*) FROM {table} GROUP BY {key} HAVING count(*) > 1 ORDER BY {key} LIMIT 5"
    ))
}

/// `plan --output json`, parsed.
fn plan_json(env: &TestEnv) -> Vec<serde_json::Value> {
    let out = env.run(&["plan", "--output", "json"]);
    out.assert_success();
    let value: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --output json is not JSON: {e}\n{}", out.render()));
    value.as_array().expect("plan JSON is an array").clone()
}

fn plan_windows(table: &serde_json::Value) -> Vec<String> {
    table["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("no windows array in {table}"))
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn ts(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn ts_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The end of a window id `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`.
fn window_end(id: &str) -> NaiveDateTime {
    let (_, end) = id.split_once('^').unwrap();
    NaiveDateTime::parse_from_str(end, "%Y%m%d%H%M%S").unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. A day of hourly windows
// ---------------------------------------------------------------------------------------------

const FACT: &str = "eda.wpp_fdefect_f_n";
/// The fixed column order of the digest (the target's physical order differs).
const FACT_COLUMNS: &[&str] = &[
    "id",
    "evt_timestamp",
    "glass_id",
    "defect_code",
    "defect_qty",
    "ratio",
    "ratio4",
    "evt_tz",
    "evt_date",
    "is_ok",
    "payload",
    "note",
];
const DAY: &str = "evt_timestamp >= '2024-03-10' AND evt_timestamp < '2024-03-11'";

const FACT_SOURCE_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.wpp_fdefect_f_n (
    id bigint PRIMARY KEY,
    evt_timestamp timestamp NOT NULL,
    glass_id text,
    defect_code int,
    defect_qty numeric(14,4),
    ratio float8,
    ratio4 float4,
    evt_tz timestamptz,
    evt_date date,
    is_ok boolean,
    payload bytea,
    note text
);
CREATE INDEX wpp_fdefect_f_n_evt ON eda.wpp_fdefect_f_n (evt_timestamp);
-- 300000 rows, one every 288 ms: exactly one day; rows fall on hour boundaries, some carry
-- microseconds.
INSERT INTO eda.wpp_fdefect_f_n
SELECT i,
       timestamp '2024-03-10 00:00:00' + (i - 1) * interval '288 milliseconds'
           + CASE WHEN i % 7 = 3 THEN (i % 1000) * interval '1 microsecond' ELSE interval '0' END,
       CASE i % 13
           WHEN 0 THEN NULL
           WHEN 1 THEN 'GLS,' || i || ',A,B'
           WHEN 2 THEN 'say "hi" ' || i || ' ""'
           WHEN 3 THEN E'line1\nline2 ' || i || E'\n'
           WHEN 4 THEN E'back\\slash\\' || i || E'\\'
           WHEN 5 THEN E'tab\there\t' || i
           WHEN 6 THEN '缺陷' || i || '号，玻璃'
           WHEN 7 THEN ''
           WHEN 8 THEN E'\\N'
           WHEN 9 THEN E'cr\r\nlf ' || i
           WHEN 10 THEN 'NULL'
           WHEN 11 THEN E'mix,"q"\t\\\n缺陷 ' || i
           ELSE 'G' || lpad(i::text, 8, '0')
       END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE (i % 500) - 250 END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE round(i * 1.23456 - 100000, 4) END,
       CASE i % 11
           WHEN 0 THEN 0.1::float8
           WHEN 1 THEN 1e-300::float8
           WHEN 2 THEN (1 / 3.0)::float8
           WHEN 3 THEN '-0'::float8
           WHEN 4 THEN NULL
           WHEN 5 THEN 1::float8 / 3
           WHEN 6 THEN 'Infinity'::float8
           WHEN 7 THEN 1.7976931348623157e308::float8
           WHEN 8 THEN -i * 0.000001::float8
           WHEN 9 THEN 5e-324::float8
           ELSE i::float8 / 7
       END,
       CASE i % 23
           WHEN 0 THEN NULL
           WHEN 1 THEN '-0'::float4
           WHEN 2 THEN 0.1::float4
           ELSE (i * 0.1)::float4
       END,
       CASE WHEN i % 29 = 0 THEN NULL
            ELSE (timestamp '2024-03-10' + i * interval '1.000001 seconds') AT TIME ZONE 'Asia/Shanghai'
       END,
       CASE i % 31
           WHEN 0 THEN NULL
           WHEN 1 THEN date '0044-03-15 BC'
           ELSE date '2024-03-10' - (i % 4000)
       END,
       CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
       CASE i % 37
           WHEN 0 THEN NULL
           WHEN 1 THEN ''::bytea
           ELSE decode(md5(i::text), 'hex') || '\x00ff5c0a09'::bytea
       END,
       CASE WHEN i % 41 = 0 THEN NULL
            WHEN i % 10007 = 5 THEN repeat('长', 5000)
            ELSE repeat('x', i % 50) || ' 中文 €'
       END
FROM generate_series(1, 300000) AS i;
-- Some rows with NULL in every nullable column.
UPDATE eda.wpp_fdefect_f_n
SET glass_id = NULL, defect_code = NULL, defect_qty = NULL, ratio = NULL, ratio4 = NULL,
    evt_tz = NULL, evt_date = NULL, is_ok = NULL, payload = NULL, note = NULL
WHERE id % 9973 = 0;
-- Outside the job's day: never moved.
INSERT INTO eda.wpp_fdefect_f_n (id, evt_timestamp, glass_id)
VALUES (1000001, '2024-03-09 23:59:59.999999', 'before'),
       (1000002, '2024-03-11 00:00:00', 'at the end, excluded'),
       (1000003, '2024-03-11 07:00:00', 'after');
ANALYZE eda.wpp_fdefect_f_n;
"#;

/// Same columns, another physical order: columns are matched by name.
const FACT_TARGET_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.wpp_fdefect_f_n (
    note text,
    payload bytea,
    is_ok boolean,
    evt_date date,
    evt_tz timestamptz,
    ratio4 float4,
    ratio float8,
    defect_qty numeric(14,4),
    defect_code int,
    glass_id text,
    evt_timestamp timestamp NOT NULL,
    id bigint PRIMARY KEY
);
CREATE INDEX wpp_fdefect_f_n_evt ON eda.wpp_fdefect_f_n (evt_timestamp);
"#;

#[test]
fn day_of_hourly_windows_lands_byte_exact() {
    let env = TestEnv::new("day_of_hourly_windows");
    env.src_psql(FACT_SOURCE_SQL);
    env.dst_psql(FACT_TARGET_SQL);
    write_config(
        &env,
        r#"
[jobs.datatransfer]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "1h"
mode = "replace"

[[jobs.datatransfer.tables]]
table = "eda.wpp_fdefect_f_n"
condition_column = "evt_timestamp"
"#,
    );
    let source_digest = digest(env.src, &env.db, FACT, FACT_COLUMNS, "id", DAY);
    assert!(source_digest.starts_with("300000 "), "generated data: {source_digest}");

    let run = env.run(&["run"]);
    run.assert_success();
    assert!(run.stdout.contains("24 window(s) loaded, 0 failed; 300000 rows"), "{}", run.render());

    // 24 windows, all succeeded, each counted: read == written == the source's rows of that hour.
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), count(DISTINCT window_id), count(*) FILTER (WHERE status = 'succeeded'), \
             bool_and(rows_read = rows_written), sum(rows_written), min(window_id), max(window_id), \
             bool_and(mode = 'replace' AND attempt = 1 AND bytes > 0 AND elapsed_seconds IS NOT NULL) \
             FROM gptransfer.history"
        ),
        "24|24|24|t|300000|20240310000000^20240310010000|20240310230000^20240311000000|t"
    );
    let per_hour_source = env.src_psql(&format!(
        "SELECT to_char(h, 'YYYYMMDDHH24MISS') || '^' || to_char(h + interval '1 hour', 'YYYYMMDDHH24MISS') \
         || ' ' || count(*) FROM (SELECT date_trunc('hour', evt_timestamp) AS h FROM {FACT} WHERE {DAY}) w \
         GROUP BY h ORDER BY h"
    ));
    let per_window_history =
        env.dst_psql("SELECT window_id || ' ' || rows_read FROM gptransfer.history ORDER BY window_id");
    assert_eq!(per_window_history, per_hour_source);
    assert_eq!(per_window_history.lines().count(), 24);

    // Byte-exact: the same ordered md5 over every row on both sides; nothing outside the day.
    let target_digest = digest(env.dst, &env.db, FACT, FACT_COLUMNS, "id", "true");
    assert_eq!(target_digest, source_digest);
    assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM {FACT} WHERE id > 1000000 OR NOT ({DAY})")), "0");
    // Spot checks of the hard values, read back from the target.
    assert_eq!(
        env.dst_psql(&format!("SELECT ratio::text FROM {FACT} WHERE id IN (1, 2, 3, 6, 7, 9, 22) ORDER BY id")),
        "1e-300\n0.3333333333333333\n-0\nInfinity\n1.7976931348623157e+308\n5e-324\n0.1"
    );
    assert_eq!(env.dst_psql(&format!("SELECT glass_id FROM {FACT} WHERE id = 19")), "缺陷19号，玻璃");
    assert_eq!(cursor(&env, FACT).as_deref(), Some("2024-03-11 00:00:00"));

    // A second run: nothing due, nothing changed, no history row added.
    let again = env.run(&["run"]);
    again.assert_success();
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    assert_eq!(digest(env.dst, &env.db, FACT, FACT_COLUMNS, "id", "true"), source_digest);
    assert_eq!(history_count(&env, "true"), 24);
    assert_eq!(cursor(&env, FACT).as_deref(), Some("2024-03-11 00:00:00"));
    let plan = plan_json(&env);
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(plan[0]["table"], "eda.wpp_fdefect_f_n");
    assert!(plan_windows(&plan[0]).is_empty(), "{plan:?}");
    assert_eq!(plan[0]["cursor"], "2024-03-11T00:00:00");
    cli_snapshot!(env.run(&["plan"]));
}

// ---------------------------------------------------------------------------------------------
// 2. final_end and lag bound the plan
// ---------------------------------------------------------------------------------------------

#[test]
fn final_end_backfills_a_month_in_one_run() {
    let env = TestEnv::new("final_end_backfills");
    let ddl = "CREATE TABLE backfill (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
               CREATE INDEX backfill_ts ON backfill (ts);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // One row every 10 minutes for 41 days, from the job start to past final_end.
    env.src_psql(
        "INSERT INTO backfill SELECT i, timestamp '2024-01-01' + (i - 1) * interval '10 minutes', 'row ' || i
         FROM generate_series(1, 41 * 144) AS i",
    );
    write_config(
        &env,
        r#"
[jobs.backfill]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"

[[jobs.backfill.tables]]
table = "backfill"
condition_column = "ts"
duration = "1d"
final_end = "2024-01-31 00:00:00"
"#,
    );
    let plan = plan_json(&env);
    let windows = plan_windows(&plan[0]);
    assert_eq!(windows.len(), 30, "{windows:?}");
    assert_eq!(windows[0], "20240101000000^20240102000000");
    assert_eq!(windows[29], "20240130000000^20240131000000");
    assert_eq!(plan[0]["limit"], "2024-01-31T00:00:00");
    cli_snapshot!("final_end_plan_before_the_run", env.run(&["plan"]));

    env.run(&["run"]).assert_success();
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), min(window_id), max(window_id), \
             sum(rows_written) FROM gptransfer.history"
        ),
        "30|30|20240101000000^20240102000000|20240130000000^20240131000000|4320"
    );
    let columns = &["id", "ts", "v"];
    let before_final_end = "ts < '2024-01-31'";
    assert_eq!(
        digest(env.dst, &env.db, "backfill", columns, "id", "true"),
        digest(env.src, &env.db, "backfill", columns, "id", before_final_end)
    );
    // Rows from final_end on stay on the source only.
    assert_eq!(env.src_psql("SELECT count(*) FROM backfill WHERE ts >= '2024-01-31'"), (11 * 144).to_string());
    assert_eq!(env.dst_psql("SELECT count(*) FROM backfill WHERE ts >= '2024-01-31'"), "0");
    assert_eq!(cursor(&env, "public.backfill").as_deref(), Some("2024-01-31 00:00:00"));
    // Caught up: nothing more is due although the data goes on.
    assert!(plan_windows(&plan_json(&env)[0]).is_empty());
}

#[test]
fn lag_holds_back_the_newest_window() {
    let env = TestEnv::new("lag_holds_back");
    // The tool's clock is the local wall clock, and its TZ is UTC under the harness.
    let now = chrono::Utc::now().naive_utc();
    let hour = now.with_minute(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_nanosecond(0)).unwrap();
    let start = hour - chrono::Duration::hours(5);
    let ddl = "CREATE TABLE recent (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
               CREATE INDEX recent_ts ON recent (ts);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // One row a minute from the job start to 3 hours into the future.
    env.src_psql(&format!(
        "INSERT INTO recent SELECT i, timestamp '{}' + i * interval '1 minute', 'r' || i
         FROM generate_series(0, 8 * 60 - 1) AS i",
        ts_text(start)
    ));
    write_config(
        &env,
        &format!(
            r#"
[jobs.recent]
from = "src"
to = "dst"
start = "{}"
duration = "1h"
lag = "2h"

[[jobs.recent.tables]]
table = "recent"
condition_column = "ts"
"#,
            ts_text(start)
        ),
    );
    let lag = chrono::Duration::hours(2);

    let before_plan = chrono::Utc::now().naive_utc();
    let plan = plan_json(&env);
    let after_plan = chrono::Utc::now().naive_utc();
    let windows = plan_windows(&plan[0]);
    let newest_end = window_end(windows.last().expect("some windows are due"));
    assert!(
        newest_end <= after_plan - lag,
        "the newest due window ends at {newest_end}, after now - lag ({})",
        after_plan - lag
    );
    assert!(
        newest_end + chrono::Duration::hours(1) > before_plan - lag,
        "the window ending at {} is due too (now - lag = {}): {windows:?}",
        newest_end + chrono::Duration::hours(1),
        before_plan - lag
    );
    // With the job start 5h back, exactly 3 windows are due, unless the hour turned meanwhile.
    assert!(windows.len() == 3 || (windows.len() == 4 && after_plan.hour() != hour.hour()), "{windows:?}");

    let before_run = chrono::Utc::now().naive_utc();
    env.run(&["run"]).assert_success();
    let after_run = chrono::Utc::now().naive_utc();
    let loaded_to = ts(&cursor(&env, "public.recent").expect("a cursor after the run"));
    assert!(loaded_to <= after_run - lag, "cursor {loaded_to}");
    assert!(loaded_to + chrono::Duration::hours(1) > before_run - lag, "cursor {loaded_to}");
    let windows_loaded = (loaded_to - start).num_hours();
    assert_eq!(history_count(&env, "status = 'succeeded'"), windows_loaded, "one history row per loaded window");
    assert_eq!(history_count(&env, "true"), windows_loaded);

    // Everything before the cursor landed; nothing newer did, though the source has it.
    let cursor_sql = format!("ts < '{}'", ts_text(loaded_to));
    let columns = &["id", "ts", "v"];
    assert_eq!(
        digest(env.dst, &env.db, "recent", columns, "id", "true"),
        digest(env.src, &env.db, "recent", columns, "id", &cursor_sql)
    );
    assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM recent WHERE ts >= '{}'", ts_text(loaded_to))), "0");
    let held_back: i64 = env
        .src_psql(&format!(
            "SELECT count(*) FROM recent WHERE ts >= '{}' AND ts < '{}'",
            ts_text(loaded_to),
            ts_text(before_run)
        ))
        .parse()
        .unwrap();
    assert!(held_back >= 119, "the 2h lag holds back at least 2h of rows, got {held_back}");
}

// ---------------------------------------------------------------------------------------------
// 3. Modes
// ---------------------------------------------------------------------------------------------

const EVENTS_COLUMNS: &[&str] = &["id", "ts", "v"];

/// `events` on both sides; the target has no primary key, so duplicates would show.
fn events_tables(env: &TestEnv) {
    env.src_psql(
        "CREATE TABLE events (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
         INSERT INTO events SELECT i, timestamp '2024-02-01' + i * interval '17 seconds', md5(i::text)
         FROM generate_series(0, 5000) AS i;",
    );
    env.dst_psql("CREATE TABLE events (ts timestamp NOT NULL, v text, id int)");
}

fn events_job(mode: &str, duration: &str) -> String {
    format!(
        r#"
[jobs.events]
from = "src"
to = "dst"
start = "2024-02-01 00:00:00"
end = "2024-02-02 00:00:00"
duration = "{duration}"
mode = "{mode}"

[[jobs.events.tables]]
table = "events"
condition_column = "ts"
"#
    )
}

#[test]
fn append_mode_inserts_only() {
    let env = TestEnv::new("append_mode");
    events_tables(&env);
    // A row already on the target inside the first window: append never deletes.
    env.dst_psql("INSERT INTO events VALUES ('2024-02-01 06:00', 'pre-existing', -1)");
    write_config(&env, &events_job("append", "12h"));
    let source = digest(env.src, &env.db, "events", EVENTS_COLUMNS, "id", "true");
    assert!(source.starts_with("5001 "), "{source}");

    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.db, "events", EVENTS_COLUMNS, "id", "id >= 0"), source);
    assert_eq!(env.dst_psql("SELECT v FROM events WHERE id = -1"), "pre-existing");
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), string_agg(DISTINCT mode, ','), sum(rows_written) FROM gptransfer.history \
             WHERE status = 'succeeded'"
        ),
        "2|append|5001"
    );

    // Insert only: a forced re-run of the same windows appends the rows once more.
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM events"), "10003");
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) FROM (SELECT id FROM events WHERE id >= 0 GROUP BY id HAVING count(*) = 2) twice"
        ),
        "5001"
    );
    assert_eq!(env.dst_psql("SELECT v FROM events WHERE id = -1"), "pre-existing");
    assert_eq!(history_count(&env, "status = 'succeeded' AND attempt = 2"), 2);
}

#[test]
fn replace_mode_rerun_is_harmless() {
    let env = TestEnv::new("replace_rerun");
    events_tables(&env);
    // Junk inside a window is replaced; a row outside every window is left alone.
    env.dst_psql(
        "INSERT INTO events VALUES ('2024-02-01 07:00', 'junk in a window', -1),
                                   ('2024-01-15 00:00', 'outside the windows', -2)",
    );
    write_config(&env, &events_job("replace", "6h"));
    let source = digest(env.src, &env.db, "events", EVENTS_COLUMNS, "id", "true");

    env.run(&["run"]).assert_success();
    let first = digest(env.dst, &env.db, "events", EVENTS_COLUMNS, "id", "true");
    assert_eq!(digest(env.dst, &env.db, "events", EVENTS_COLUMNS, "id", "id <> -2"), source);
    assert_eq!(env.dst_psql("SELECT id || ' ' || v FROM events WHERE id < 0"), "-2 outside the windows");
    assert_eq!(history_count(&env, "status = 'succeeded'"), 4);

    // Forget the cursor: the same four windows are due and run again.
    env.dst_psql("DELETE FROM gptransfer.cursors");
    let plan = plan_json(&env);
    assert_eq!(plan_windows(&plan[0]).len(), 4);
    env.run(&["run"]).assert_success();
    assert_eq!(duplicate_keys(&env, "events", "id"), "", "duplicates after a re-run");
    assert_eq!(digest(env.dst, &env.db, "events", EVENTS_COLUMNS, "id", "true"), first);
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), count(*) FILTER (WHERE attempt = 2), sum(rows_written) FILTER (WHERE attempt = 2) \
             FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "8|4|5001"
    );
    assert_eq!(cursor(&env, "public.events").as_deref(), Some("2024-02-02 00:00:00"));
}

#[test]
fn full_mode_truncates_and_reloads() {
    let env = TestEnv::new("full_mode");
    env.src_psql(
        "CREATE TABLE dim_site (site_id int PRIMARY KEY, name text, updated timestamp);
         INSERT INTO dim_site SELECT i, 'site ' || i, timestamp '2020-01-01' + i * interval '1 day'
         FROM generate_series(1, 5000) AS i;",
    );
    // Junk on the target, one row with a key the source also has: without the truncate the
    // load would fail on the primary key.
    env.dst_psql(
        "CREATE TABLE dim_site (name text, updated timestamp, site_id int PRIMARY KEY);
         INSERT INTO dim_site VALUES ('junk', NULL, 1), ('junk', '1999-01-01', 99999);",
    );
    write_config(
        &env,
        r#"
[jobs.dims]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "1h"

[[jobs.dims.tables]]
table = "dim_site"
mode = "full"
"#,
    );
    let columns = &["site_id", "name", "updated"];
    let plan = plan_json(&env);
    assert_eq!(plan_windows(&plan[0]), ["20240101000000^20240102000000"], "full mode loads once for all due windows");

    env.run(&["run"]).assert_success();
    assert_eq!(
        digest(env.dst, &env.db, "dim_site", columns, "site_id", "true"),
        digest(env.src, &env.db, "dim_site", columns, "site_id", "true")
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM dim_site WHERE name = 'junk'"), "0");

    // The source changes (rows deleted, changed, added); a forced reload mirrors it exactly.
    env.src_psql(
        "DELETE FROM dim_site WHERE site_id % 10 = 0;
         UPDATE dim_site SET name = 'renamed ' || site_id WHERE site_id % 7 = 0;
         INSERT INTO dim_site VALUES (6000, 'new site', NULL);",
    );
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    let source = digest(env.src, &env.db, "dim_site", columns, "site_id", "true");
    assert!(source.starts_with("4501 "), "{source}");
    assert_eq!(digest(env.dst, &env.db, "dim_site", columns, "site_id", "true"), source);
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), string_agg(DISTINCT mode, ','), string_agg(rows_written::text, ',' ORDER BY id) \
             FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "2|full|5000,4501"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Merge
// ---------------------------------------------------------------------------------------------

const DEFECT_COLUMNS: &[&str] = &["glass_id", "defect_code", "evt_timestamp", "qty", "note"];
const DEFECT_KEY: &str = "glass_id, defect_code";

#[test]
fn merge_mode_updates_changed_rows_and_dedups_batch() {
    let env = TestEnv::new("merge_mode");
    env.src_psql(
        "CREATE SCHEMA qms;
         CREATE TABLE qms.defect (glass_id text, defect_code int, evt_timestamp timestamp NOT NULL,
                                  qty numeric(10,2), note text, PRIMARY KEY (glass_id, defect_code));
         INSERT INTO qms.defect
         SELECT 'G' || (i / 10), i % 10, timestamp '2024-05-01' + i * interval '40 seconds', i * 0.5, 'n' || i
         FROM generate_series(0, 1999) AS i;
         -- No primary key: one window's batch holds keys twice and three times. A heap table
         -- filled by three statements and never updated is read back in insertion order,
         -- so the COPY emits the later rows last. The last row of a key is neither the max nor
         -- the min of any column.
         CREATE TABLE qms.defect_raw (glass_id text, defect_code int, evt_timestamp timestamp NOT NULL,
                                      qty numeric(10,2), note text);
         INSERT INTO qms.defect_raw
         SELECT 'R' || i, i % 5, timestamp '2024-05-01 03:00' + i * interval '1 minute', 100, 'z first'
         FROM generate_series(0, 999) AS i;
         INSERT INTO qms.defect_raw
         SELECT 'R' || i, i % 5, timestamp '2024-05-01 01:00' + i * interval '1 minute', 300, 'a second'
         FROM generate_series(0, 999, 10) AS i;
         INSERT INTO qms.defect_raw
         SELECT 'R' || i, i % 5, timestamp '2024-05-01 02:00' + i * interval '1 minute', 200, 'm third'
         FROM generate_series(0, 999, 50) AS i;",
    );
    // Targets without a key constraint, so that a duplicate would show.
    env.dst_psql(
        "CREATE SCHEMA qms;
         CREATE TABLE qms.defect (note text, qty numeric(10,2), evt_timestamp timestamp NOT NULL,
                                  defect_code int, glass_id text);
         CREATE TABLE qms.defect_raw (glass_id text, defect_code int, evt_timestamp timestamp NOT NULL,
                                      qty numeric(10,2), note text);
         -- Merge is an upsert: a key the batch does not hold stays.
         INSERT INTO qms.defect (glass_id, defect_code, evt_timestamp, qty, note)
         VALUES ('only on the target', 1, '2024-05-01 12:00', 1, 'ONLY');",
    );
    write_config(
        &env,
        r#"
[jobs.merge]
from = "src"
to = "dst"
start = "2024-05-01 00:00:00"
end = "2024-05-02 00:00:00"
duration = "1d"
mode = "merge"

[[jobs.merge.tables]]
table = "qms.defect"
condition_column = "evt_timestamp"
key = ["glass_id", "defect_code"]

[[jobs.merge.tables]]
table = "qms.defect_raw"
condition_column = "evt_timestamp"
key = ["glass_id", "defect_code"]
"#,
    );
    let not_only = "glass_id <> 'only on the target'";
    let only_row = "SELECT note FROM qms.defect WHERE glass_id = 'only on the target'";
    // The expected target of the dups table: per key, the physically last row of the source.
    let last_rows = "(SELECT DISTINCT ON (glass_id, defect_code) * FROM qms.defect_raw \
                     ORDER BY glass_id, defect_code, ctid DESC) last_rows";

    env.run(&["run"]).assert_success();
    assert_eq!(duplicate_keys(&env, "qms.defect", DEFECT_KEY), "");
    assert_eq!(
        digest(env.dst, &env.db, "qms.defect", DEFECT_COLUMNS, DEFECT_KEY, not_only),
        digest(env.src, &env.db, "qms.defect", DEFECT_COLUMNS, DEFECT_KEY, "true")
    );
    assert_eq!(env.dst_psql(only_row), "ONLY");
    let expected_raw = digest(env.src, &env.db, last_rows, DEFECT_COLUMNS, DEFECT_KEY, "true");
    assert!(expected_raw.starts_with("1000 "), "{expected_raw}");
    assert_eq!(digest(env.dst, &env.db, "qms.defect_raw", DEFECT_COLUMNS, DEFECT_KEY, "true"), expected_raw);
    assert_eq!(duplicate_keys(&env, "qms.defect_raw", DEFECT_KEY), "");
    assert_eq!(
        env.dst_psql(
            "SELECT glass_id || ' ' || note || ' ' || qty || ' ' || evt_timestamp FROM qms.defect_raw \
             WHERE glass_id IN ('R0', 'R10', 'R11') ORDER BY glass_id"
        ),
        "R0 m third 200.00 2024-05-01 02:00:00\n\
         R10 a second 300.00 2024-05-01 01:10:00\n\
         R11 z first 100.00 2024-05-01 03:11:00"
    );

    // Rows change on the source and a new one arrives; the window is due again.
    env.src_psql(
        "UPDATE qms.defect SET qty = qty + 1000, note = 'changed ' || glass_id WHERE defect_code = 3;
         INSERT INTO qms.defect VALUES ('G-new', 7, '2024-05-01 23:59:59.999999', 42, 'new row');",
    );
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    let source = digest(env.src, &env.db, "qms.defect", DEFECT_COLUMNS, DEFECT_KEY, "true");
    assert!(source.starts_with("2001 "), "{source}");
    assert_eq!(digest(env.dst, &env.db, "qms.defect", DEFECT_COLUMNS, DEFECT_KEY, not_only), source);
    assert_eq!(duplicate_keys(&env, "qms.defect", DEFECT_KEY), "");
    assert_eq!(env.dst_psql(only_row), "ONLY");
    assert_eq!(env.dst_psql("SELECT count(*) FROM qms.defect WHERE note LIKE 'changed %' AND qty >= 1000"), "200");
    // The batch with duplicates merged once more: still one row per key, the last one.
    assert_eq!(digest(env.dst, &env.db, "qms.defect_raw", DEFECT_COLUMNS, DEFECT_KEY, "true"), expected_raw);
    assert_eq!(duplicate_keys(&env, "qms.defect_raw", DEFECT_KEY), "");
    // Counted truly: rows written are the rows that landed; the batch's earlier rows of a key
    // are folded (1120 read = 1000 written + 120 folded).
    assert_eq!(
        env.dst_psql(
            "SELECT table_name || ' ' || string_agg(rows_read || '=' || rows_written || '+' || duplicates_folded, ',' \
             ORDER BY id) FROM gptransfer.history \
             WHERE status = 'succeeded' AND mode = 'merge' GROUP BY table_name ORDER BY table_name"
        ),
        "qms.defect 2000=2000+0,2001=2001+0\nqms.defect_raw 1120=1000+120,1120=1000+120"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Tables in parallel
// ---------------------------------------------------------------------------------------------

const PARALLEL_TABLES: &[&str] = &["par.alpha", "par.beta", "\"Par Two\".\"Gamma\""];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_tables_concurrently() {
    let env = TestEnv::new("parallel_runs");
    let mut ddl = String::from("CREATE SCHEMA par; CREATE SCHEMA \"Par Two\";\n");
    for t in PARALLEL_TABLES {
        ddl.push_str(&format!("CREATE TABLE {t} (id int PRIMARY KEY, ts timestamp NOT NULL, v text);\n"));
    }
    env.src_psql(&ddl);
    env.dst_psql(&ddl);
    let mut inserts = String::new();
    for (n, t) in PARALLEL_TABLES.iter().enumerate() {
        inserts.push_str(&format!(
            "INSERT INTO {t} SELECT i, timestamp '2024-06-01' + i * interval '{} seconds', '{n}-' || md5(i::text)
             FROM generate_series(0, 20000) AS i WHERE timestamp '2024-06-01' + i * interval '{} seconds' < '2024-06-02';\n",
            n + 3,
            n + 3
        ));
    }
    env.src_psql(&inserts);
    let mut job = String::from(
        r#"
[jobs.many]
from = "src"
to = "dst"
start = "2024-06-01 00:00:00"
end = "2024-06-02 00:00:00"
duration = "6h"
"#,
    );
    for t in PARALLEL_TABLES {
        job.push_str(&format!("\n[[jobs.many.tables]]\ntable = '{t}'\ncondition_column = \"ts\"\n"));
    }
    write_config(&env, &job);

    // Hold every target table locked: each table's first window then waits on its DELETE,
    // and with --parallel 3 all three wait at the same time.
    let admin = env.dst.admin(&env.db).await;
    admin.batch_execute("BEGIN").await.unwrap();
    admin.batch_execute(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", PARALLEL_TABLES.join(", "))).await.unwrap();
    let mut running = env.spawn(&["run", "--parallel", "3"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = loop {
        let waiting: i64 = env
            .dst_psql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name LIKE 'gptransfer%' AND wait_event_type = 'Lock'",
            )
            .parse()
            .unwrap();
        if waiting >= 3 {
            break waiting;
        }
        if running.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            admin.batch_execute("ROLLBACK").await.unwrap();
            panic!("{waiting} of 3 tables waited at once\n{}", running.wait().render());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(waiting, 3);
    admin.batch_execute("COMMIT").await.unwrap();
    let out = tokio::task::spawn_blocking(move || running.wait()).await.unwrap();
    out.assert_success();

    for t in PARALLEL_TABLES {
        let src = digest(env.src, &env.db, t, EVENTS_COLUMNS, "id", "true");
        assert!(!src.starts_with("0 "), "{t}: {src}");
        assert_eq!(digest(env.dst, &env.db, t, EVENTS_COLUMNS, "id", "true"), src, "{t}");
    }
    assert_eq!(
        env.dst_psql(
            "SELECT table_name || ' ' || count(*) || ' ' || bool_and(status = 'succeeded') FROM gptransfer.history \
             GROUP BY table_name ORDER BY table_name"
        ),
        "\"Par Two\".\"Gamma\" 4 true\npar.alpha 4 true\npar.beta 4 true"
    );
    assert_eq!(env.dst_psql("SELECT DISTINCT cursor_end FROM gptransfer.cursors"), "2024-06-02 00:00:00");
}

// ---------------------------------------------------------------------------------------------
// 5b. Sessions kept between windows
// ---------------------------------------------------------------------------------------------

/// A table's source session serves its next window (issue 11: a new session per window was a
/// fixed cost). One the server closed while it waited between windows is replaced, and the
/// window lands at its first attempt. The source database sits on the target cluster here, so
/// that a trigger on the target table can end the source's idle sessions at every window's
/// load (after the source's COPY was read to its end).
#[test]
fn a_source_session_closed_between_windows_is_replaced() {
    let env = TestEnv::new("source_session_closed");
    let src_db = format!("{}_s", env.db);
    env.dst.create_db(&src_db);
    env.dst.psql(
        &src_db,
        "CREATE TABLE events (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
         INSERT INTO events SELECT i, timestamp '2024-02-01' + i * interval '17 seconds', md5(i::text)
         FROM generate_series(0, 5000) AS i;",
    );
    env.dst_psql(&format!(
        "CREATE TABLE events (ts timestamp NOT NULL, v text, id int);
         CREATE TABLE idle_source_sessions_ended (n bigint NOT NULL);
         CREATE FUNCTION end_idle_source_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO idle_source_sessions_ended
           SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = '{src_db}' AND application_name LIKE 'gptransfer pid %' AND state = 'idle';
           RETURN NULL;
         END $$;
         CREATE TRIGGER end_idle_source_sessions AFTER INSERT ON events
         FOR EACH STATEMENT EXECUTE FUNCTION end_idle_source_sessions();"
    ));
    let src_url = env.dst.url(&src_db);
    env.write_config(&format!(
        r#"[clusters.src]
url = "{src_url}"
password_env = "GPT_DST_PASSWORD"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"
{}"#,
        events_job("append", "1h")
    ));
    let source = digest(env.dst, &src_db, "events", EVENTS_COLUMNS, "id", "true");

    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.dst_db, "events", EVENTS_COLUMNS, "id", "true"), source);
    assert_eq!(
        env.dst_psql("SELECT count(*), bool_and(status = 'succeeded' AND attempt = 1) FROM gptransfer.history"),
        "24|t",
        "every window landed at its first attempt"
    );
    // The sessions the trigger ended were the ones kept for the next window: windows after the
    // first found their source session closed, and opened another.
    let ended: i64 = env.dst_psql("SELECT sum(n) FROM idle_source_sessions_ended").parse().unwrap();
    assert!(ended >= 1, "no idle source session was ended between windows");
    env.dst.drop_db(&src_db);
}

/// Sessions are kept within a run only: a daemon's next round opens its own and sees what
/// changed on the target in between — here the target table dropped and made again with one
/// more column, in another order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_round_sees_the_target_changed_since_the_round_before() {
    use support::runs::{wait_for_row, Guard};
    let env = TestEnv::new("daemon_round_sees_change");
    events_tables(&env);
    write_config(&env, &events_job("replace", "1h"));
    let source = digest(env.src, &env.db, "events", EVENTS_COLUMNS, "id", "true");
    let dst = env.dst.admin(&env.dst_db).await;
    // Long enough between rounds for the changes below; the test waits for the first round.
    let daemon = Guard(Some(env.spawn(&["daemon", "--rounds", "2", "--interval", "30s"])));
    wait_for_row(&dst, "the state schema", "SELECT 0::bigint WHERE to_regclass('gptransfer.history') IS NOT NULL")
        .await;
    wait_for_row(
        &dst,
        "the first round's 24 windows",
        "SELECT 0::bigint FROM gptransfer.history HAVING count(*) FILTER (WHERE status = 'succeeded') = 24",
    )
    .await;
    dst.batch_execute(
        "DROP TABLE events;
         CREATE TABLE events (id int, note text DEFAULT 'new', v text, ts timestamp NOT NULL);
         DELETE FROM gptransfer.cursors;",
    )
    .await
    .unwrap();
    let out = daemon.wait();
    out.assert_success();
    assert_eq!(digest(env.dst, &env.dst_db, "events", EVENTS_COLUMNS, "id", "true"), source, "{}", out.render());
    assert_eq!(env.dst_psql("SELECT DISTINCT note FROM events"), "new");
    assert_eq!(
        env.dst_psql(
            "SELECT attempt, count(*) FROM gptransfer.history WHERE status = 'succeeded' GROUP BY 1 ORDER BY 1"
        ),
        "1|24\n2|24"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets
// ---------------------------------------------------------------------------------------------

/// Asserts no password leaked, that JSON logs are JSON, and that logging really said something
/// where it must (`expect_logs`).
fn check_quiet_about_secrets(out: &CmdOutput, json_logs: bool, expect_logs: bool) {
    assert_no_secret(out);
    if expect_logs {
        assert!(!out.stderr.trim().is_empty(), "no log lines\n{}", out.render());
    }
    if json_logs {
        // Log lines are JSON; only the final error message (with its hint lines) is text.
        for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
            if line.starts_with("error: ") {
                break;
            }
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}\n{}", out.render()));
        }
    }
}

#[test]
fn no_password_in_any_output() {
    let env = TestEnv::new("no_password");
    let ddl = "CREATE TABLE secrets_t (id int PRIMARY KEY, ts timestamp NOT NULL, v text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "INSERT INTO secrets_t SELECT i, timestamp '2024-07-01' + i * interval '1 minute', 'v' || i
         FROM generate_series(0, 2000) AS i",
    );
    let job = r#"
[jobs.secret]
from = "src"
to = "dst"
start = "2024-07-01 00:00:00"
end = "2024-07-02 00:00:00"
duration = "6h"

[[jobs.secret.tables]]
table = "secrets_t"
condition_column = "ts"
"#;
    let commands: &[&[&str]] = &[
        &["config", "check"],
        &["plan"],
        &["plan", "--output", "json"],
        &["run"],
        &["history"],
        &["history", "--output", "json"],
    ];
    let log_flags: &[(&[&str], bool)] =
        &[(&["-v", "--log-format", "json"], true), (&["-vv", "--log-format", "json"], true), (&["-v"], false)];

    // Passwords from the environment.
    write_config(&env, job);
    let mut runs = 0;
    for (flags, json) in log_flags {
        for command in commands {
            let args: Vec<&str> = flags.iter().chain(command.iter()).copied().collect();
            let out = env.run(&args);
            out.assert_success();
            check_quiet_about_secrets(&out, *json, command[0] == "run");
            runs += 1;
        }
        env.dst_psql("DELETE FROM gptransfer.cursors");
    }
    assert_eq!(runs, 18);
    assert_eq!(history_count(&env, "status = 'succeeded'"), 12);

    // Passwords written in the url and in a password file, and a failing run.
    let file = env.write_file("dst.password", &format!("{}\n", env.dst.password));
    env.write_config(&format!(
        r#"
[clusters.src]
url = "postgres://gpt:{src_password}@127.0.0.1:{{SRC_PORT}}/{{DB}}"

[clusters.dst]
url = "{{DST_URL}}"
password_file = "{file}"

[state]
cluster = "dst"
{job}
[[jobs.secret.tables]]
table = "missing_on_both"
condition_column = "ts"
"#,
        src_password = env.src.password,
        file = file.display()
    ));
    for flags in [&["-vv", "--log-format", "json"][..], &["-vv"][..]] {
        for command in [&["config", "check"][..], &["plan"], &["run"], &["history"]] {
            let args: Vec<&str> = flags.iter().chain(command.iter()).copied().collect();
            let out = env.run(&args);
            check_quiet_about_secrets(&out, flags.len() > 1, command[0] == "run");
        }
    }
    // The failing table names itself in the error, without a password.
    let out = env.run(&["-v", "run"]);
    assert_no_secret(&out);
    out.assert_code(2);
    assert!(out.stderr.contains("missing_on_both"), "{}", out.render());

    // An unreachable cluster whose url carries the password.
    env.write_config(&format!(
        r#"
[clusters.src]
url = "postgres://gpt:{src_password}@127.0.0.1:1/{{DB}}"
connect_timeout = "2s"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"
{job}"#,
        src_password = env.src.password,
    ));
    for args in [&["-vv", "config", "check"][..], &["-vv", "--log-format", "json", "run"]] {
        let out = env.run(args);
        assert_no_secret(&out);
        assert_ne!(out.code, 0, "{}", out.render());
    }
}
