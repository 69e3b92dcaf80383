//! Compare and alarms against two real PostgreSQL clusters (issue 3, SPEC §8): clean transfers
//! compare equal, damaged rows are named exactly by key and kind, the `group_by` drill-down
//! stops where sites agree, equal data hashes equal whatever the servers' settings, keyless
//! tables compare as multisets, `--repair` heals a window, empty windows are zero, and the
//! daemon loads, compares and stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::compared::{compare_json, compared_windows as windows, differences};
use support::{Pg, TestEnv};

/// [`support::table_digest`] of the whole table.
fn digest(pg: &Pg, db: &str, table: &str, columns: &[&str], order: &str) -> String {
    support::table_digest(pg, db, table, columns, order, "true")
}

fn write_config(env: &TestEnv, jobs: &str) {
    env.write_config(&format!("{{CLUSTERS}}\n{jobs}"));
}

/// The stored cursor of a table (`None` when there is none).
fn cursor(env: &TestEnv, table: &str) -> Option<String> {
    let out = env.dst_psql(&format!("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = '{table}'"));
    (!out.is_empty()).then_some(out)
}

/// The window of a compare output with this id.
fn window<'a>(value: &'a Value, id: &str) -> &'a Value {
    windows(value).iter().find(|w| w["window"] == id).unwrap_or_else(|| panic!("no window {id} in {value:#}"))
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `(level, buckets, differing)` of a window's drill-down.
fn levels(w: &Value) -> Vec<(String, u64, u64)> {
    w["levels"]
        .as_array()
        .unwrap_or_else(|| panic!("no levels in {w:#}"))
        .iter()
        .map(|l| {
            (l["level"].as_str().unwrap().to_string(), l["buckets"].as_u64().unwrap(), l["differing"].as_u64().unwrap())
        })
        .collect()
}

fn level(name: &str, buckets: u64, differing: u64) -> (String, u64, u64) {
    (name.to_string(), buckets, differing)
}

/// Asserts that every window of a compare output is equal, without error, with equal counts;
/// returns the total of rows.
fn assert_all_equal(value: &Value) -> i64 {
    let mut rows = 0;
    for w in windows(value) {
        assert_eq!(w["equal"], true, "{w:#}");
        assert!(w["error"].is_null(), "{w:#}");
        assert_eq!(w["source_count"], w["target_count"], "{w:#}");
        assert_eq!(w["total_differences"], 0, "{w:#}");
        assert_eq!(w["differences"].as_array().unwrap().len(), 0, "{w:#}");
        assert_eq!(levels(w), [level("window", 1, 0)], "an equal window stops at the first level: {w:#}");
        rows += w["source_count"].as_i64().unwrap();
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// 1. A clean transfer compares equal
// ---------------------------------------------------------------------------------------------

const MIXED_SOURCE_SQL: &str = r#"
CREATE SCHEMA cmp;
CREATE TABLE cmp.mixed (
    id bigint PRIMARY KEY,
    ts timestamp NOT NULL,
    site text,
    qty numeric(12,4),
    ratio float8,
    ratio4 float4,
    evt_tz timestamptz,
    evt_date date,
    is_ok boolean,
    payload bytea,
    note text
);
-- 20000 rows, one every 4.32 s: exactly one day, some on the 6h window boundaries.
INSERT INTO cmp.mixed
SELECT i,
       timestamp '2024-01-01 00:00:00' + i * interval '4320 milliseconds',
       CASE WHEN i % 11 = 0 THEN NULL ELSE 'S' || (i % 5) END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE round(i * 1.2345 - 5000, 4) END,
       CASE i % 9
           WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8 WHEN 2 THEN 'Infinity'::float8
           WHEN 3 THEN '-Infinity'::float8 WHEN 4 THEN 0.1::float8 WHEN 5 THEN 1e-300::float8
           ELSE i::float8 / 7
       END,
       CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 0.1)::float4 END,
       CASE WHEN i % 17 = 0 THEN NULL
            ELSE timestamptz '2024-01-01 08:00:00+08' + i * interval '1.000001 seconds' END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE date '2024-01-01' - (i % 3000) END,
       CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
       CASE WHEN i % 23 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') || '\x00ff5c0a'::bytea END,
       CASE i % 6
           WHEN 0 THEN NULL WHEN 1 THEN '缺陷' || i || '号' WHEN 2 THEN E'quote '' " \\ \n' || i
           WHEN 3 THEN '' ELSE 'row ' || i
       END
FROM generate_series(0, 19999) AS i;
"#;

/// Same columns, another physical order: columns are matched by name.
const MIXED_TARGET_SQL: &str = r#"
CREATE SCHEMA cmp;
CREATE TABLE cmp.mixed (
    note text,
    payload bytea,
    is_ok boolean,
    evt_date date,
    evt_tz timestamptz,
    ratio4 float4,
    ratio float8,
    qty numeric(12,4),
    site text,
    ts timestamp NOT NULL,
    id bigint PRIMARY KEY
);
"#;

const MIXED_COLUMNS: &[&str] =
    &["id", "ts", "site", "qty", "ratio", "ratio4", "evt_tz", "evt_date", "is_ok", "payload", "note"];

#[test]
fn clean_transfer_compares_equal() {
    let env = TestEnv::new("clean_transfer_compares_equal");
    env.src_psql(MIXED_SOURCE_SQL);
    env.dst_psql(MIXED_TARGET_SQL);
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "6h"

[[jobs.j.tables]]
table = "cmp.mixed"
condition_column = "ts"
key = ["id"]
"#,
    );
    env.run(&["run"]).assert_success();
    let source = digest(env.src, &env.db, "cmp.mixed", MIXED_COLUMNS, "id");
    assert!(source.starts_with("20000 "), "{source}");
    assert_eq!(digest(env.dst, &env.db, "cmp.mixed", MIXED_COLUMNS, "id"), source);

    let (out, value) = compare_json(&env, &[]);
    out.assert_success();
    let ids: Vec<&str> = windows(&value).iter().map(|w| w["window"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "20240101000000^20240101060000",
            "20240101060000^20240101120000",
            "20240101120000^20240101180000",
            "20240101180000^20240102000000"
        ]
    );
    for w in windows(&value) {
        assert_eq!(w["job"], "j");
        assert_eq!(w["table"], "cmp.mixed");
        assert_eq!(w["source_count"], 5000, "{w:#}");
    }
    assert_eq!(assert_all_equal(&value), 20000);
    // Comparing reads only: no alarm, the target untouched.
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.alarms"), "0");
    assert_eq!(digest(env.dst, &env.db, "cmp.mixed", MIXED_COLUMNS, "id"), source);

    let human = env.run(&["compare"]);
    human.assert_success();
    cli_snapshot!(human);
}

// ---------------------------------------------------------------------------------------------
// 2. Six damaged rows, named exactly; alarms
// ---------------------------------------------------------------------------------------------

#[test]
fn six_damaged_rows_are_named_exactly() {
    let env = TestEnv::new("six_damaged_rows");
    let ddl = "CREATE SCHEMA quality;
               CREATE TABLE quality.defect (id int PRIMARY KEY, ts timestamp NOT NULL, val float8, note text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // 2000 rows, one every 43.2 s over one day: 500 per 6h window.
    env.src_psql(
        "INSERT INTO quality.defect
         SELECT i, timestamp '2024-01-01' + i * interval '43.2 seconds', i::float8 / 7, '缺陷' || i || '号，玻璃'
         FROM generate_series(0, 1999) AS i",
    );
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "6h"

[[jobs.j.tables]]
table = "quality.defect"
condition_column = "ts"
key = ["id"]
# Pinned: the snapshot shows the slices.
compare = { plugin = "hash", slices = 24 }
"#,
    );
    env.run(&["run"]).assert_success();
    let (out, value) = compare_json(&env, &[]);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), 2000);

    // Damage on the target: 3 deleted (windows 1, 2, 4), one float changed by a relative 1e-12
    // (window 3), one Chinese character changed (window 4), one row added (window 3).
    env.dst_psql(
        "DELETE FROM quality.defect WHERE id IN (10, 800, 1900);
         UPDATE quality.defect SET val = val * (1 + 1e-12) WHERE id = 1234;
         UPDATE quality.defect SET note = replace(note, '号', '號') WHERE id = 1500;
         INSERT INTO quality.defect VALUES (5000, '2024-01-01 13:00:00.5', 1.5, '新的缺陷');",
    );
    // The changes are real, and only in the column named.
    assert_eq!(
        env.dst_psql(
            "SELECT (val = 1234::float8 / 7)::text || ' ' || (abs(val / (1234::float8 / 7) - 1) < 1e-11)::text || ' ' || note \
             FROM quality.defect WHERE id = 1234"
        ),
        "false true 缺陷1234号，玻璃"
    );
    assert_eq!(
        env.dst_psql("SELECT (val = 1500::float8 / 7)::text || ' ' || note FROM quality.defect WHERE id = 1500"),
        "true 缺陷1500號，玻璃"
    );

    let (out, value) = compare_json(&env, &[]);
    out.assert_code(3);
    assert_eq!(
        differences(&value),
        set(&[
            ("missing", "id=10"),
            ("missing", "id=800"),
            ("missing", "id=1900"),
            ("changed", "id=1234"),
            ("changed", "id=1500"),
            ("extra", "id=5000"),
        ])
    );
    let total: u64 = windows(&value).iter().map(|w| w["total_differences"].as_u64().unwrap()).sum();
    assert_eq!(total, 6, "{value:#}");
    for d in windows(&value).iter().flat_map(|w| w["differences"].as_array().unwrap()) {
        assert_eq!(d["rows"], 1, "{d}");
    }
    // Counts per window: 500 each on the source; the target lost one in windows 1, 2 and 4,
    // and won one in window 3.
    let counts: Vec<(i64, i64, bool)> = windows(&value)
        .iter()
        .map(|w| {
            (w["source_count"].as_i64().unwrap(), w["target_count"].as_i64().unwrap(), w["equal"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(counts, [(500, 499, false), (500, 499, false), (500, 501, false), (500, 499, false)]);
    assert!(windows(&value).iter().all(|w| w["error"].is_null()), "{value:#}");

    // One alarm row per difference, active.
    assert_eq!(
        env.dst_psql(
            "SELECT data_name, job, table_name, window_id, kind, key, diff, reset_at IS NULL, source_count, target_count \
             FROM gptransfer.alarms ORDER BY window_id, kind, key"
        ),
        "GPTRANSFER|j|quality.defect|20240101000000^20240101060000|missing|id=10|1|t|500|499\n\
         GPTRANSFER|j|quality.defect|20240101060000^20240101120000|missing|id=800|1|t|500|499\n\
         GPTRANSFER|j|quality.defect|20240101120000^20240101180000|changed|id=1234|1|t|500|501\n\
         GPTRANSFER|j|quality.defect|20240101120000^20240101180000|extra|id=5000|1|t|500|501\n\
         GPTRANSFER|j|quality.defect|20240101180000^20240102000000|changed|id=1500|1|t|500|499\n\
         GPTRANSFER|j|quality.defect|20240101180000^20240102000000|missing|id=1900|1|t|500|499"
    );

    let check = env.run(&["alarm", "check"]);
    check.assert_code(3);
    assert!(check.stdout.starts_with("ABNORMAL"), "{}", check.render());
    cli_snapshot!("six_damaged_rows_are_named_exactly__alarm_check_abnormal", check);
    // The same for a monitor that parses it.
    let json = env.run(&["alarm", "check", "--output", "json"]);
    json.assert_code(3);
    let value: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.render()));
    assert_eq!(value["normal"], false, "{value:#}");
    assert_eq!(value["differences"], 6, "{value:#}");
    assert_eq!(value["tables"], serde_json::json!(["quality.defect"]), "{value:#}");
    assert_eq!(value["errors"], 0, "{value:#}");
    assert_eq!(value["message"].as_str(), check.stdout.lines().next(), "{value:#}");

    let reset = env.run(&["alarm", "reset"]);
    reset.assert_success();
    assert!(reset.stdout.contains("6 alarm(s) reset"), "{}", reset.render());
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), count(*) FILTER (WHERE diff = 0 AND reset_at IS NOT NULL AND reset_at >= detected_at) \
             FROM gptransfer.alarms"
        ),
        "6|6"
    );
    let check = env.run(&["alarm", "check"]);
    check.assert_success();
    let json = env.run(&["alarm", "check", "--output", "json"]);
    json.assert_success();
    assert!(json.stdout.contains("\"normal\": true"), "{}", json.render());
    assert_eq!(check.stdout.trim_end(), "NORMAL", "{}", check.render());
    cli_snapshot!("six_damaged_rows_are_named_exactly__alarm_check_normal_after_reset", check);

    // The human report of the same differences; the compare raises the alarms again.
    let report = env.run(&["compare"]);
    report.assert_code(3);
    cli_snapshot!("six_damaged_rows_are_named_exactly__report", report);
    for key in ["id=10", "id=800", "id=1900", "id=1234", "id=1500", "id=5000"] {
        assert!(report.stdout.contains(&format!("{key} ")), "{key} not named\n{}", report.render());
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.alarms WHERE diff = 1 AND reset_at IS NULL"), "6");
    env.run(&["alarm", "check"]).assert_code(3);
}

// ---------------------------------------------------------------------------------------------
// 3. group_by drill-down
// ---------------------------------------------------------------------------------------------

#[test]
fn group_by_drill_down_stops_at_first_level_for_equal_sites() {
    let env = TestEnv::new("group_by_drill_down");
    let ddl = "CREATE SCHEMA eda;
               CREATE TABLE eda.site_evt (id int PRIMARY KEY, ts timestamp NOT NULL, site text NOT NULL, v int);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // 8000 rows over two days, one every 21.6 s, sites S01..S04 in turn: every site has rows
    // in every hour.
    env.src_psql(
        "INSERT INTO eda.site_evt
         SELECT i, timestamp '2024-01-01' + i * interval '21.6 seconds', 'S0' || (i % 4 + 1), i * 3
         FROM generate_series(0, 7999) AS i",
    );
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-03 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "eda.site_evt"
condition_column = "ts"
key = ["id"]
compare = { plugin = "hash", group_by = "site", slices = 24 }
"#,
    );
    env.run(&["run"]).assert_success();

    // Damage site S03 only, on the first day, in three hours (1, 5 and 17).
    let damaged = env.dst_psql(
        "DELETE FROM eda.site_evt WHERE id = 170 AND site = 'S03' AND ts >= '2024-01-01 01:00' AND ts < '2024-01-01 02:00' RETURNING id;
         UPDATE eda.site_evt SET v = v + 1 WHERE id = 834 AND site = 'S03' AND ts >= '2024-01-01 05:00' AND ts < '2024-01-01 06:00' RETURNING id;
         DELETE FROM eda.site_evt WHERE id = 2838 AND site = 'S03' AND ts >= '2024-01-01 17:00' AND ts < '2024-01-01 18:00' RETURNING id;
         INSERT INTO eda.site_evt VALUES (100000, '2024-01-01 17:30:00', 'S03', 0) RETURNING id;",
    );
    assert_eq!(damaged, "170\n834\n2838\n100000");

    let (out, value) = compare_json(&env, &[]);
    out.assert_code(3);
    assert_eq!(windows(&value).len(), 2);
    let day1 = window(&value, "20240101000000^20240102000000");
    assert_eq!((day1["source_count"].as_i64(), day1["target_count"].as_i64()), (Some(4000), Some(3999)));
    // Four sites compared at the group_by level, one differs; only that site's 24 slices were
    // examined (all four would be 96), of which 3 differ; keys listed in those 3 slices only.
    assert_eq!(
        levels(day1),
        [level("window", 1, 1), level("group_by", 4, 1), level("slices", 24, 3), level("keys", 3, 3)],
        "{day1:#}"
    );
    assert_eq!(
        differences(&value),
        set(&[("missing", "id=170"), ("changed", "id=834"), ("missing", "id=2838"), ("extra", "id=100000")])
    );
    for d in day1["differences"].as_array().unwrap() {
        assert!(d["bucket"].as_str().unwrap().starts_with("site=S03, "), "{d}");
    }
    let bucket_of = |key: &str| {
        day1["differences"].as_array().unwrap().iter().find(|d| d["key"] == key).unwrap()["bucket"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(bucket_of("id=170"), "site=S03, 01:00:00..02:00:00");
    assert_eq!(bucket_of("id=834"), "site=S03, 05:00:00..06:00:00");
    assert_eq!(bucket_of("id=2838"), "site=S03, 17:00:00..18:00:00");
    assert_eq!(bucket_of("id=100000"), "site=S03, 17:00:00..18:00:00");
    // The second day agrees: it stops at the whole window.
    let day2 = window(&value, "20240102000000^20240103000000");
    assert_eq!(day2["equal"], true);
    assert_eq!(levels(day2), [level("window", 1, 0)]);

    let report = env.run(&["compare"]);
    report.assert_code(3);
    assert!(
        report
            .stdout
            .contains("drill-down: window 1/1 differ, group_by 1/4 differ, slices 3/24 differ, keys 3/3 differ"),
        "{}",
        report.render()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Equal data of every type, different server settings
// ---------------------------------------------------------------------------------------------

const TYPED_DDL: &str = r#"
CREATE SCHEMA typed;
CREATE TABLE typed.all_types (
    id int PRIMARY KEY,
    ts timestamp NOT NULL,
    big bigint,
    num numeric(12,4),
    f4 float4,
    f8 float8,
    tstz timestamptz,
    d date,
    b boolean,
    t text,
    raw bytea
);
"#;

/// The same statement runs on both sides, each under its own server settings: every literal
/// means the same value whatever DateStyle, TimeZone or extra_float_digits say.
const TYPED_ROWS: &str = r#"
INSERT INTO typed.all_types VALUES
(1, '2024-01-01 00:00:00', 9223372036854775807, 12345678.1234, 0.1, 0.1,
    '2024-01-01 08:00:00+08', '2024-02-29', true, 'plain', '\x00ff5c0a'),
(2, '2024-01-01 01:02:03.456789', -9223372036854775808, -0.0001, 'NaN', 'NaN',
    '2023-12-31 19:00:00-05', '1999-12-31', false, 'it''s "quoted"', '\x'),
(3, '2024-01-01 02:00:00', 0, 0, 'Infinity', 'Infinity',
    '2024-06-30 23:59:59.999999+00', '2000-01-01', NULL, E'line1\nline2\r\n', '\x5c5c'),
(4, '2024-01-01 03:00:00', 42, 1.5, '-Infinity', '-Infinity',
    '2024-01-01 00:00:00.000001+05:30', '2024-01-01', true, E'back\\slash\\', '\x0a0d09'),
(5, '2024-01-01 04:00:00', 1, 99999999.9999, 1e-30, 1e-300,
    '1970-01-01 00:00:00+00', '1970-01-01', false, '中文字符，全角标点。', '\xe4b8ad'),
(6, '2024-01-01 05:00:00', -1, -99999999.9999, 3.4028235e38, 1.7976931348623157e308,
    '2038-01-19 03:14:08+00', '2038-01-19', true, '', '\x00'),
(7, '2024-01-01 06:00:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(8, '2024-01-01 07:00:00', 7, 0.5, '-0', '-0', '2024-03-10 02:30:00-05', '2024-03-10', false, 'N', '\x4e'),
(9, '2024-01-01 08:00:00', 8, 3.1416, 3.1415927, 3.141592653589793, '2024-11-03 01:30:00-04', '2024-11-03', true,
    E'tab\there|pipe', '\x7c'),
(10, '2024-01-01 09:00:00', 9, 123.4560, 0.30000001, 0.30000000000000004, '2024-11-03 01:30:00-05', '0001-01-01',
    false, E'\\N', '\x5c4e'),
(11, '2024-01-01 10:00:00', 10, 1e-4, 1e10, 5e-324, '2024-01-01 12:00:00+14', '2024-01-01', NULL, 'NULL', NULL),
(12, '2024-01-01 23:59:59.999999', 11, 1, 2.5, 2.5, '2024-01-01 23:59:59.999999+00', '2024-12-31', true,
    '3:abc', '\x333a616263');
"#;

const TYPED_COLUMNS: &[&str] = &["id", "ts", "big", "num", "f4", "f8", "tstz", "d", "b", "t", "raw"];

#[test]
fn equal_data_of_every_type_hashes_equal_across_server_settings() {
    let env = TestEnv::new("every_type_across_settings");
    // Different server settings on the two databases, in place before any session starts.
    env.src.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} SET DateStyle = 'SQL, DMY';
             ALTER DATABASE {db} SET TimeZone = 'Asia/Shanghai';
             ALTER DATABASE {db} SET extra_float_digits = 0;
             ALTER DATABASE {db} SET bytea_output = 'escape';",
            db = support::quote_ident(&env.db)
        ),
    );
    env.dst.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} SET DateStyle = 'ISO, MDY';
             ALTER DATABASE {db} SET TimeZone = 'America/New_York';
             ALTER DATABASE {db} SET extra_float_digits = 3;
             ALTER DATABASE {db} SET bytea_output = 'hex';",
            db = support::quote_ident(&env.db)
        ),
    );
    let show = "SELECT current_setting('DateStyle') || ' / ' || current_setting('TimeZone') || ' / ' || \
                current_setting('extra_float_digits') || ' / ' || current_setting('bytea_output')";
    assert_eq!(env.src_psql(show), "SQL, DMY / Asia/Shanghai / 0 / escape");
    assert_eq!(env.dst_psql(show), "ISO, MDY / America/New_York / 3 / hex");
    // Default output differs indeed.
    let sample =
        "SELECT ts::text || ' ' || tstz::text || ' ' || f8::text || ' ' || raw::text FROM typed.all_types WHERE id = 1";

    // The same data created on each side independently.
    for pg in [env.src, env.dst] {
        pg.psql(&env.db, TYPED_DDL);
        pg.psql(&env.db, TYPED_ROWS);
    }
    assert_ne!(env.src_psql(sample), env.dst_psql(sample));
    let source = digest(env.src, &env.db, "typed.all_types", TYPED_COLUMNS, "id");
    assert!(source.starts_with("12 "), "{source}");
    assert_eq!(digest(env.dst, &env.db, "typed.all_types", TYPED_COLUMNS, "id"), source, "the test data differ");

    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "12h"

[[jobs.j.tables]]
table = "typed.all_types"
condition_column = "ts"
key = ["id"]
"#,
    );
    let range = ["--from", "2024-01-01 00:00:00", "--to", "2024-01-02 00:00:00"];
    let (out, value) = compare_json(&env, &range);
    out.assert_success();
    assert_eq!(windows(&value).len(), 2);
    assert_eq!(assert_all_equal(&value), 12);
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.alarms"), "0");

    // One value changed: found, and named by its key. Then more, one at a time, each a change
    // the canonical text must see (a microsecond, the next float, NULL against '', …).
    let changes: &[(&str, &str)] = &[
        ("UPDATE typed.all_types SET tstz = tstz + interval '1 microsecond' WHERE id = 3", "id=3"),
        ("UPDATE typed.all_types SET f8 = 0.30000000000000010 WHERE id = 10", "id=10"),
        ("UPDATE typed.all_types SET t = NULL WHERE id = 6", "id=6"),
        ("UPDATE typed.all_types SET f4 = 1 WHERE id = 8", "id=8"),
        ("UPDATE typed.all_types SET raw = '\\x00fe5c0a' WHERE id = 1", "id=1"),
        ("UPDATE typed.all_types SET num = 3.1417 WHERE id = 9", "id=9"),
        ("UPDATE typed.all_types SET b = true WHERE id = 11", "id=11"),
        ("UPDATE typed.all_types SET t = E'line1\\nline2\\n' WHERE id = 3", "id=3"),
        ("UPDATE typed.all_types SET big = NULL, num = 0 WHERE id = 7", "id=7"),
    ];
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for (n, (sql, key)) in changes.iter().enumerate() {
        assert_eq!(env.dst_psql(&format!("{sql} RETURNING 1")), "1", "{sql}");
        expected.insert(("changed".to_string(), key.to_string()));
        let (out, value) = compare_json(&env, &range);
        out.assert_code(3);
        assert_eq!(differences(&value), expected, "after change {n}: {sql}\n{value:#}");
        for w in windows(&value) {
            assert!(w["error"].is_null(), "{w:#}");
            assert_eq!(w["source_count"], w["target_count"], "{w:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A table without a key
// ---------------------------------------------------------------------------------------------

#[test]
fn keyless_table_duplicate_rows_are_a_count_difference() {
    let env = TestEnv::new("keyless_duplicates");
    let ddl = "CREATE SCHEMA logs; CREATE TABLE logs.raw (ts timestamp NOT NULL, msg text, n int);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // 3000 rows over one day; the rows with n % 500 = 0 exist twice, exactly alike.
    env.src_psql(
        "INSERT INTO logs.raw SELECT timestamp '2024-01-01' + n * interval '28.8 seconds', 'message ' || n, n
         FROM generate_series(0, 2999) AS n;
         INSERT INTO logs.raw SELECT * FROM logs.raw WHERE n % 500 = 0;",
    );
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "6h"

[[jobs.j.tables]]
table = "logs.raw"
condition_column = "ts"
"#,
    );
    env.run(&["run"]).assert_success();
    let (out, value) = compare_json(&env, &[]);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), 3006);

    // A row duplicated in window 1; one of the two copies of a doubled row gone in window 3.
    env.dst_psql(
        "INSERT INTO logs.raw SELECT * FROM logs.raw WHERE n = 123;
         DELETE FROM logs.raw WHERE ctid = (SELECT min(ctid) FROM logs.raw WHERE n = 2000);",
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM logs.raw WHERE n = 123"), "2");
    assert_eq!(env.dst_psql("SELECT count(*) FROM logs.raw WHERE n = 2000"), "1");

    let (out, value) = compare_json(&env, &[]);
    out.assert_code(3);
    let w1 = window(&value, "20240101000000^20240101060000");
    let source_count = w1["source_count"].as_i64().unwrap();
    assert_eq!(w1["target_count"].as_i64().unwrap(), source_count + 1, "{w1:#}");
    assert_eq!(w1["equal"], false);
    assert_eq!(w1["total_differences"], 1, "{w1:#}");
    let d = &w1["differences"][0];
    assert_eq!(d["kind"], "extra", "{w1:#}");
    assert_eq!(d["rows"], 1, "{w1:#}");
    let key = d["key"].as_str().unwrap();
    assert!(key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()), "a row hash as key: {key}");

    let w3 = window(&value, "20240101120000^20240101180000");
    assert_eq!(w3["target_count"].as_i64().unwrap(), w3["source_count"].as_i64().unwrap() - 1, "{w3:#}");
    assert_eq!(w3["total_differences"], 1, "{w3:#}");
    assert_eq!(w3["differences"][0]["kind"], "missing", "{w3:#}");
    assert_eq!(w3["differences"][0]["rows"], 1, "{w3:#}");

    for id in ["20240101060000^20240101120000", "20240101180000^20240102000000"] {
        assert_eq!(window(&value, id)["equal"], true, "{value:#}");
    }
    assert_eq!(
        env.dst_psql("SELECT kind || ' ' || window_id FROM gptransfer.alarms WHERE diff = 1 ORDER BY window_id"),
        "extra 20240101000000^20240101060000\nmissing 20240101120000^20240101180000"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. --repair
// ---------------------------------------------------------------------------------------------

const ORDERS_COLUMNS: &[&str] = &["id", "ts", "amount", "status"];

/// `table` merged by `id` in windows of 6 h over 2024-01-01, with `table_lines` added.
fn merge_day_job(env: &TestEnv, table: &str, table_lines: &str) {
    write_config(
        env,
        &format!(
            r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "6h"
mode = "merge"

[[jobs.j.tables]]
table = "{table}"
condition_column = "ts"
key = ["id"]
{table_lines}
"#
        ),
    );
}

#[test]
fn repair_fixes_a_damaged_window() {
    let env = TestEnv::new("repair_fixes_a_damaged_window");
    let ddl = "CREATE SCHEMA rep;
               CREATE TABLE rep.orders (id int PRIMARY KEY, ts timestamp NOT NULL, amount numeric(10,2), status text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "INSERT INTO rep.orders SELECT i, timestamp '2024-01-01' + i * interval '21.6 seconds', i * 1.25, '状态' || (i % 3)
         FROM generate_series(0, 3999) AS i",
    );
    // Merge: a repair must still remove the extra row (it deletes the window, then merges).
    // Pinned slices: the snapshot shows them.
    merge_day_job(&env, "rep.orders", "compare = { plugin = \"hash\", slices = 24 }");
    env.run(&["run"]).assert_success();
    let source = digest(env.src, &env.db, "rep.orders", ORDERS_COLUMNS, "id");
    assert_eq!(digest(env.dst, &env.db, "rep.orders", ORDERS_COLUMNS, "id"), source);
    assert_eq!(cursor(&env, "rep.orders").as_deref(), Some("2024-01-02 00:00:00"));

    // Damage window 2 (06:00-12:00, ids 1000-1999): 5 deleted, 3 changed, 1 extra.
    env.dst_psql(
        "DELETE FROM rep.orders WHERE id IN (1000, 1001, 1500, 1998, 1999);
         UPDATE rep.orders SET amount = amount + 0.01 WHERE id IN (1100, 1200);
         UPDATE rep.orders SET status = NULL WHERE id = 1300;
         INSERT INTO rep.orders VALUES (90000, '2024-01-01 07:00:00', 1, 'extra');",
    );
    assert_ne!(digest(env.dst, &env.db, "rep.orders", ORDERS_COLUMNS, "id"), source);

    let repair = env.run(&["compare", "--repair"]);
    repair.assert_success();
    assert!(repair.stdout.contains("after repair"), "{}", repair.render());
    cli_snapshot!("repair_fixes_a_damaged_window__report", repair);
    assert_eq!(digest(env.dst, &env.db, "rep.orders", ORDERS_COLUMNS, "id"), source);
    // The repair went through the window chain (as a merge), and the cursor stayed.
    assert_eq!(cursor(&env, "rep.orders").as_deref(), Some("2024-01-02 00:00:00"));
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || mode || ' ' || status || ' ' || rows_written FROM gptransfer.history \
             WHERE attempt > 1 ORDER BY id"
        ),
        "20240101060000^20240101120000 merge succeeded 1000"
    );
    env.run(&["compare"]).assert_success();

    // Again, damaging the last window, with JSON output.
    env.dst_psql("DELETE FROM rep.orders WHERE id IN (3500, 3999)");
    let (out, value) = compare_json(&env, &["--repair"]);
    out.assert_success();
    let last = "20240101180000^20240102000000";
    let before = window(&value, last);
    assert_eq!(before["equal"], false);
    assert_eq!(differences(&value), set(&[("missing", "id=3500"), ("missing", "id=3999")]));
    assert_eq!((before["source_count"].as_i64(), before["target_count"].as_i64()), (Some(1000), Some(998)));
    let after = value["after_repair"].as_array().unwrap_or_else(|| panic!("no after_repair in {value:#}"));
    assert_eq!(after.len(), 1, "only the damaged window is repaired and compared again: {value:#}");
    assert_eq!(after[0]["window"], last);
    assert_eq!(after[0]["equal"], true, "{value:#}");
    assert_eq!(after[0]["target_count"], 1000);
    assert_eq!(digest(env.dst, &env.db, "rep.orders", ORDERS_COLUMNS, "id"), source);
    assert_eq!(cursor(&env, "rep.orders").as_deref(), Some("2024-01-02 00:00:00"));

    let (out, value) = compare_json(&env, &[]);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), 4000);
    assert!(value.get("after_repair").is_none(), "{value:#}");
}

/// A merge table whose source keeps each key's versions (id 7 again, later, in the third
/// window), into GP6 without a unique key, as Greenplum tables often are. The repair of the
/// first window (a real loss there: id 50) loaded the window as a replace: id 7's old version
/// came back beside the new one, and the key was in the target twice (seen). A merge table's
/// window is now repaired by deleting it and merging the source's rows of the window that no
/// later row of their key supersedes: id 50 is back, id 7 keeps its newest row, once.
#[test]
fn repair_of_a_merge_table_never_leaves_a_key_twice() {
    repair_of_merge_versions("repair_merge_versions", support::Server::Pg);
}

/// The same from GP4 (its own source plugin, 8.2 SQL).
#[test]
fn repair_of_a_merge_table_from_gp4_never_leaves_a_key_twice() {
    repair_of_merge_versions("repair_merge_versions_gp4", support::Server::Gp4);
}

fn repair_of_merge_versions(name: &str, source: support::Server) {
    let env = TestEnv::on(name, source, support::Server::Gp6);
    env.src_psql(
        "CREATE SCHEMA rep;
         CREATE TABLE rep.acct (id int NOT NULL, ts timestamp NOT NULL, v text);
         INSERT INTO rep.acct SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'v1' FROM generate_series(1, 200) AS i;
         INSERT INTO rep.acct VALUES (7, '2024-01-01 13:00:00', 'v2');",
    );
    env.dst_psql(
        "CREATE SCHEMA rep;
         CREATE TABLE rep.acct (id int NOT NULL, ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);",
    );
    merge_day_job(&env, "rep.acct", "");
    env.run(&["run"]).assert_success();
    let state = "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || \
                 (SELECT v || ' ' || ts FROM rep.acct WHERE id = 7 ORDER BY ts DESC LIMIT 1) FROM rep.acct";
    assert_eq!(env.dst_psql(state), "200 200 v2 2024-01-01 13:00:00");
    env.dst_psql("DELETE FROM rep.acct WHERE id = 50");

    let repair = env.run(&["compare", "--repair"]);
    assert!(!repair.stderr.contains("repair of"), "the repair itself failed: {}", repair.render());
    assert_eq!(env.dst_psql(state), "200 200 v2 2024-01-01 13:00:00", "{}", repair.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM rep.acct WHERE id = 50"), "1");
    // Compared again as first (row for row), the old row of id 7 still shows as missing: a
    // comparison cannot know it was superseded (README, `compare`); id 50 no longer does.
    repair.assert_code(3);
    let after = repair.stdout.split("after repair:").nth(1).unwrap_or_default();
    assert!(after.contains("id=7") && !after.contains("id=50"), "{}", repair.render());
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || mode || ' ' || status || ' ' || reason FROM gptransfer.history \
             WHERE attempt > 1 ORDER BY id"
        ),
        "20240101000000^20240101060000 merge succeeded repair"
    );
}

/// Two append entries loading one target (per-site tables consolidated). A repair of one
/// entry's window replaced it: its delete took the other entry's rows of the window too, and
/// they were lost (seen). Such an entry is not repaired: the report says why, and nothing of
/// the target is removed.
#[test]
fn repair_never_deletes_the_rows_another_entry_appends_to_the_same_target() {
    let env = TestEnv::new("repair_shared_append");
    let ddl = "CREATE SCHEMA rep; CREATE TABLE rep.site_a (id int NOT NULL, ts timestamp NOT NULL, site text);
               CREATE TABLE rep.site_b (id int NOT NULL, ts timestamp NOT NULL, site text);";
    env.src_psql(ddl);
    env.src_psql(
        "INSERT INTO rep.site_a SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'a' FROM generate_series(1, 100) AS i;
         INSERT INTO rep.site_b SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'b' FROM generate_series(1, 100) AS i;",
    );
    env.dst_psql("CREATE SCHEMA rep; CREATE TABLE rep.sites (id int NOT NULL, ts timestamp NOT NULL, site text);");
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-01 06:00:00"
duration = "6h"
mode = "append"

[[jobs.j.tables]]
table = "rep.site_a"
target_table = "rep.sites"
condition_column = "ts"

[[jobs.j.tables]]
table = "rep.site_b"
target_table = "rep.sites"
condition_column = "ts"
"#,
    );
    env.run(&["run"]).assert_success();
    let sites = "SELECT site || ' ' || count(*) FROM rep.sites GROUP BY site ORDER BY site";
    assert_eq!(env.dst_psql(sites), "a 100\nb 100");
    env.dst_psql("DELETE FROM rep.sites WHERE site = 'a' AND id = 10");

    let repair = env.run(&["compare", "--repair"]);
    assert_ne!(repair.code, 0, "{}", repair.render());
    assert!(repair.stderr.contains("not repaired"), "{}", repair.render());
    assert_eq!(env.dst_psql(sites), "a 99\nb 100", "{}", repair.render());
}

// ---------------------------------------------------------------------------------------------
// 7. Empty windows
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_windows_compare_as_zero() {
    let env = TestEnv::new("empty_windows_compare_as_zero");
    let ddl = "CREATE SCHEMA sparse;
               CREATE TABLE sparse.evt (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
               CREATE TABLE sparse.nothing (id int PRIMARY KEY, ts timestamp NOT NULL, v text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // Window 1 (00-06) on both sides; window 2 (06-12) empty on both; window 3 (12-18) on the
    // source only; window 4 (18-24) on the target only. `sparse.nothing` is empty everywhere.
    let both = "INSERT INTO sparse.evt SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'v' || i
                FROM generate_series(0, 99) AS i;";
    env.src_psql(both);
    env.dst_psql(both);
    env.src_psql(
        "INSERT INTO sparse.evt SELECT i, timestamp '2024-01-01 12:00' + (i - 1000) * interval '1 minute', 'v' || i
         FROM generate_series(1000, 1002) AS i",
    );
    env.dst_psql("INSERT INTO sparse.evt VALUES (2000, '2024-01-01 23:59:59.999999', 'late')");
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "6h"

[[jobs.j.tables]]
table = "sparse.evt"
condition_column = "ts"
key = ["id"]
# Pinned: the snapshot shows the slices.
compare = { plugin = "hash", slices = 24 }

[[jobs.j.tables]]
table = "sparse.nothing"
condition_column = "ts"
key = ["id"]
"#,
    );
    let (out, value) = compare_json(&env, &["--to", "2024-01-02 00:00:00"]);
    out.assert_code(3);
    assert_eq!(windows(&value).len(), 8, "{value:#}");
    for w in windows(&value) {
        assert!(w["error"].is_null(), "{w:#}");
    }
    let summary: Vec<String> = windows(&value)
        .iter()
        .map(|w| format!("{} {} {} {} {}", w["table"], w["window"], w["source_count"], w["target_count"], w["equal"]))
        .collect();
    assert_eq!(
        summary,
        [
            r#""sparse.evt" "20240101000000^20240101060000" 100 100 true"#,
            r#""sparse.evt" "20240101060000^20240101120000" 0 0 true"#,
            r#""sparse.evt" "20240101120000^20240101180000" 3 0 false"#,
            r#""sparse.evt" "20240101180000^20240102000000" 0 1 false"#,
            r#""sparse.nothing" "20240101000000^20240101060000" 0 0 true"#,
            r#""sparse.nothing" "20240101060000^20240101120000" 0 0 true"#,
            r#""sparse.nothing" "20240101120000^20240101180000" 0 0 true"#,
            r#""sparse.nothing" "20240101180000^20240102000000" 0 0 true"#,
        ]
    );
    assert_eq!(
        differences(&value),
        set(&[("missing", "id=1000"), ("missing", "id=1001"), ("missing", "id=1002"), ("extra", "id=2000")])
    );
    let empty = window(&value, "20240101060000^20240101120000");
    assert_eq!(levels(empty), [level("window", 1, 0)]);

    let report = env.run(&["compare", "--to", "2024-01-02 00:00:00"]);
    report.assert_code(3);
    cli_snapshot!("empty_windows_compare_as_zero__report", report);
}

// ---------------------------------------------------------------------------------------------
// 8. The daemon
// ---------------------------------------------------------------------------------------------

#[test]
fn daemon_runs_transfers_then_compares() {
    let env = TestEnv::new("daemon_runs_transfers_then_compares");
    let ddl = "CREATE TABLE good (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
               CREATE TABLE bent (id int PRIMARY KEY, ts timestamp NOT NULL, v text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    env.src_psql(
        "CREATE TABLE missing_on_target (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
         INSERT INTO good SELECT i, timestamp '2024-01-01' + i * interval '30 seconds', 'g' || i FROM generate_series(0, 2879) AS i;
         INSERT INTO bent SELECT i, timestamp '2024-01-01' + i * interval '30 seconds', 'b' || i FROM generate_series(0, 2879) AS i;
         INSERT INTO missing_on_target SELECT i, timestamp '2024-01-01' + i * interval '1 hour', 'm' FROM generate_series(0, 23) AS i;",
    );
    // `bent` loads, but a trigger on the target alters rows on the way in: the compare that
    // follows the load must find them — one in the first window, 25 in the second, every one
    // of them in the alarm table (the daemon kept 20 keys and a summary row).
    env.dst_psql(
        "CREATE FUNCTION bend() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.id = 7 OR NEW.id BETWEEN 1000 AND 1024 THEN NEW.v := 'bent'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER bend BEFORE INSERT ON bent FOR EACH ROW EXECUTE FUNCTION bend();",
    );
    // The broken table comes first: it must not stop the others.
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "6h"

[[jobs.j.tables]]
table = "missing_on_target"
condition_column = "ts"
key = ["id"]

[[jobs.j.tables]]
table = "good"
condition_column = "ts"
key = ["id"]

[[jobs.j.tables]]
table = "bent"
condition_column = "ts"
key = ["id"]
"#,
    );
    let columns = &["id", "ts", "v"];
    let out = env.run(&["daemon", "--interval", "1s", "--rounds", "1"]);
    // A bounded round reports its worst table: one could not run, so 1 (the others still ran).
    out.assert_code(1);
    assert!(
        out.stderr.contains("table public.missing_on_target does not exist on cluster \"dst\""),
        "the broken table is reported\n{}",
        out.render()
    );
    assert!(out.stderr.contains("public.bent: 2 window(s) differ after loading; alarms raised"), "{}", out.render());
    assert_eq!(
        digest(env.dst, &env.db, "good", columns, "id"),
        digest(env.src, &env.db, "good", columns, "id"),
        "{}",
        out.render()
    );
    assert_eq!(
        env.dst_psql(
            "SELECT table_name || ' ' || count(*) || ' ' || bool_and(status = 'succeeded') || ' ' || sum(rows_written) \
             FROM gptransfer.history GROUP BY table_name ORDER BY table_name"
        ),
        "public.bent 4 true 2880\npublic.good 4 true 2880"
    );
    assert_eq!(cursor(&env, "public.good").as_deref(), Some("2024-01-02 00:00:00"));
    // The compare after the load raised exactly the bent rows.
    assert_eq!(
        env.dst_psql(
            "SELECT table_name || ' ' || window_id || ' ' || kind || ' ' || key || ' ' || diff FROM gptransfer.alarms \
             WHERE window_id LIKE '20240101000000%'"
        ),
        "public.bent 20240101000000^20240101060000 changed id=7 1"
    );
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) || ' ' || count(DISTINCT key) || ' ' || min(kind) || ' ' || max(kind) FROM gptransfer.alarms \
             WHERE window_id LIKE '20240101060000%'"
        ),
        "25 25 changed changed"
    );
    env.run(&["alarm", "check"]).assert_code(3);

    // A long interval: the daemon sleeps after its round; SIGTERM ends it promptly.
    let running = env.spawn(&["daemon", "--interval", "1h"]);
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    running.signal("TERM");
    let out = running.wait_timeout(Duration::from_secs(20));
    let took = signalled.elapsed();
    out.assert_code(143);
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?} to end the daemon\n{}", out.render());
    // Nothing was due in that round: nothing more loaded.
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE table_name = 'public.good'"), "4");
}

// ---------------------------------------------------------------------------------------------
// Regressions: infinite and BC values, alarms of every difference
// ---------------------------------------------------------------------------------------------

/// `canonical::text_expr` renders timestamp/date with `to_char`, which returns NULL for
/// `infinity`/`-infinity` and drops the era of BC dates. At commit 58c163d the whole row text
/// (and md5) of a row holding an infinite value is NULL: its changes are invisible and the key
/// level panics on the NULL hash. With the field wrapped as `N` when its text is NULL, infinite
/// values hash like NULL: `infinity`, `-infinity` and NULL are all equal. BC dates hash like AD.
#[test]
fn infinite_and_bc_values_are_compared() {
    let env = TestEnv::new("infinite_and_bc_values");
    let sql = "CREATE TABLE odd (id int PRIMARY KEY, ts timestamp NOT NULL, t2 timestamp, d date, v text);
               INSERT INTO odd VALUES (1, '2024-01-01 01:00', 'infinity', '2024-01-01', 'a'),
                                      (2, '2024-01-01 01:01', '2024-01-01', '0044-03-15', 'b'),
                                      (3, '2024-01-01 01:02', '2024-01-01', '-infinity', 'c'),
                                      (4, '2024-01-01 01:03', '2024-01-01', '2024-01-01', 'd');";
    each_change_alone_is_named(
        &env,
        sql,
        "odd",
        &[
            // A change in a row holding 'infinity' (58c163d: exit 0).
            ("UPDATE odd SET v = 'changed' WHERE id = 1", "UPDATE odd SET v = 'a' WHERE id = 1", "id=1"),
            // 'infinity' against '-infinity', '-infinity' against NULL (now: exit 0).
            ("UPDATE odd SET t2 = '-infinity' WHERE id = 1", "UPDATE odd SET t2 = 'infinity' WHERE id = 1", "id=1"),
            ("UPDATE odd SET d = NULL WHERE id = 3", "UPDATE odd SET d = '-infinity' WHERE id = 3", "id=3"),
            // 44 AD against 44 BC (exit 0).
            ("UPDATE odd SET d = '0044-03-15 BC' WHERE id = 2", "UPDATE odd SET d = '0044-03-15' WHERE id = 2", "id=2"),
            // A plain row next to them (58c163d: exit 101, "panicked at plugins/compare/src/lib.rs:
            // error retrieving column 1: error deserializing column 1").
            ("UPDATE odd SET v = 'changed' WHERE id = 4", "UPDATE odd SET v = 'd' WHERE id = 4", "id=4"),
        ],
    );
}

/// `table` (created on both sides by `sql`, keyed by `id`, windowed on `ts`) compares equal;
/// then each `(change, undo, key)` alone on the target is found as exactly that key changed.
fn each_change_alone_is_named(env: &TestEnv, sql: &str, table: &str, changes: &[(&str, &str, &str)]) {
    env.src_psql(sql);
    env.dst_psql(sql);
    write_config(
        env,
        &format!(
            r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "{table}"
condition_column = "ts"
key = ["id"]
"#
        ),
    );
    let range = ["--to", "2024-01-02 00:00:00"];
    compare_json(env, &range).0.assert_success();
    for (change, undo, key) in changes {
        env.dst_psql(change);
        let (out, value) = compare_json(env, &range);
        assert_eq!(out.code, 3, "{change}: not found\n{}", out.render());
        assert_eq!(differences(&value), set(&[("changed", key)]), "{change}");
        env.dst_psql(undo);
    }
    compare_json(env, &range).0.assert_success();
}

/// `--show N` is documented as "Differing keys shown per window (all are counted and
/// alarmed)", but the drill-down truncates the list before the alarms are written: only N keys
/// are alarmed (plus one `count` summary row), and `alarm check` counts N + 1.
#[test]
fn show_limits_the_report_not_the_alarms() {
    let env = TestEnv::new("show_limits_the_report");
    let ddl = "CREATE TABLE shown (id int PRIMARY KEY, ts timestamp NOT NULL, v text);";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    let rows = "INSERT INTO shown SELECT i, timestamp '2024-01-01' + i * interval '1 minute', 'v' || i
                FROM generate_series(1, 100) AS i;";
    env.src_psql(rows);
    env.dst_psql(rows);
    env.dst_psql("DELETE FROM shown WHERE id <= 6");
    write_config(
        &env,
        r#"
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "shown"
condition_column = "ts"
key = ["id"]
"#,
    );
    let report = env.run(&["compare", "--to", "2024-01-02 00:00:00", "--show", "2"]);
    report.assert_code(3);
    assert!(report.stdout.contains("6 differing key(s), first 2:"), "{}", report.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(key, ',' ORDER BY id) FROM gptransfer.alarms WHERE kind = 'missing'"),
        "id=1,id=2,id=3,id=4,id=5,id=6"
    );
    let check = env.run(&["alarm", "check"]);
    check.assert_code(3);
    assert_eq!(check.stdout.trim_end(), "ABNORMAL 6 differences in public.shown");
}

/// The canonical timestamp text is the ISO output with its trailing zeros trimmed (the
/// versions differ only in how many zeros they keep after a fraction). Values whose text only
/// differs in zeros at the end must still hash apart: 10 s against 1 s, a whole second against
/// a microsecond past it, one fraction digit against another, in timestamp and timestamptz
/// columns and in a BC timestamp.
#[test]
fn timestamps_differing_only_in_trailing_zeros_are_compared() {
    let env = TestEnv::new("timestamp_trailing_zeros");
    let sql = "CREATE TABLE zeros (id int PRIMARY KEY, ts timestamp NOT NULL, t2 timestamp, tz timestamptz);
               INSERT INTO zeros VALUES (1, '2024-01-01 01:00', '2024-01-01 10:00:10', '2024-01-01 10:00:10+00'),
                                        (2, '2024-01-01 01:01', '2024-01-01 10:00:00', '2024-01-01 10:00:00+00'),
                                        (3, '2024-01-01 01:02', '2024-01-01 10:00:00.5', '2024-01-01 10:00:00.5+00'),
                                        (4, '2024-01-01 01:03', '0044-03-15 10:00:00.5 BC', NULL);";
    let changes: &[(&str, &str, &str)] = &[
        (
            "UPDATE zeros SET t2 = '2024-01-01 10:00:01' WHERE id = 1",
            "UPDATE zeros SET t2 = '2024-01-01 10:00:10' WHERE id = 1",
            "id=1",
        ),
        (
            "UPDATE zeros SET tz = '2024-01-01 10:00:01+00' WHERE id = 1",
            "UPDATE zeros SET tz = '2024-01-01 10:00:10+00' WHERE id = 1",
            "id=1",
        ),
        (
            "UPDATE zeros SET t2 = '2024-01-01 10:00:00.000001' WHERE id = 2",
            "UPDATE zeros SET t2 = '2024-01-01 10:00:00' WHERE id = 2",
            "id=2",
        ),
        (
            "UPDATE zeros SET t2 = '2024-01-01 10:00:00.05' WHERE id = 3",
            "UPDATE zeros SET t2 = '2024-01-01 10:00:00.5' WHERE id = 3",
            "id=3",
        ),
        (
            "UPDATE zeros SET tz = '2024-01-01 10:00:00.05+00' WHERE id = 3",
            "UPDATE zeros SET tz = '2024-01-01 10:00:00.5+00' WHERE id = 3",
            "id=3",
        ),
        (
            "UPDATE zeros SET t2 = '0044-03-15 10:00:00.05 BC' WHERE id = 4",
            "UPDATE zeros SET t2 = '0044-03-15 10:00:00.5 BC' WHERE id = 4",
            "id=4",
        ),
        (
            "UPDATE zeros SET t2 = '0044-03-15 10:00:00.5' WHERE id = 4",
            "UPDATE zeros SET t2 = '0044-03-15 10:00:00.5 BC' WHERE id = 4",
            "id=4",
        ),
    ];
    each_change_alone_is_named(&env, sql, "zeros", changes);
}
