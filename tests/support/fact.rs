//! The fact table of the Greenplum tests: a day of rows holding every hard value (floats at
//! their limits, NaN, ±infinity, -0, microseconds, BC dates, quotes, tabs, newlines,
//! backslashes, `\\N`, CJK text, empty and NULL everywhere), valid on every server of the tests.

use std::collections::BTreeSet;

use super::canonical::{assert_same_lines, canonical_lines};
use super::compared::{assert_all_equal, compare_json, compared_windows, differences};
use super::{Kind, Pg, TestEnv};

pub const FACT: &str = "eda.fact";
pub const DAY: &str = "evt_ts >= '2024-03-10' AND evt_ts < '2024-03-11'";
/// Rows of the day: one every 18 s, 200 per hourly window.
pub const DAY_ROWS: usize = 4800;

/// The digest's columns in canonical forms that are byte-identical on PostgreSQL 15 and GP6
/// whatever their text output: floats by their bits, timestamps to the microsecond in UTC,
/// bytea in hex.
pub const FACT_COLUMNS: &[&str] = &[
    "id",
    "to_char(evt_ts, 'YYYY-MM-DD HH24:MI:SS.US')",
    "grp",
    "glass_id",
    "defect_qty",
    "encode(float8send(ratio), 'hex')",
    "encode(float4send(ratio4), 'hex')",
    "CASE WHEN isfinite(evt_tz) THEN to_char(evt_tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') \
     ELSE evt_tz::text END",
    "evt_date",
    "is_ok",
    "encode(payload, 'hex')",
    "note",
];

pub const FACT_COLUMNS_DDL: &str = "
    id bigint NOT NULL,
    evt_ts timestamp NOT NULL,
    grp int,
    glass_id text,
    defect_qty numeric(14,4),
    ratio float8,
    ratio4 float4,
    evt_tz timestamptz,
    evt_date date,
    is_ok boolean,
    payload bytea,
    note text";

/// The source table and its rows, on a server of `kind` (distributed by the key on Greenplum).
/// The float8 column holds its maximum next to other values in every window: GP6's automatic
/// ANALYZE after a load into a table without statistics fails on that (`value out of range:
/// overflow`).
pub fn fact_source_sql(kind: Kind) -> String {
    let distributed = if kind.is_greenplum() { " DISTRIBUTED BY (id)" } else { "" };
    // 8.2's text input refuses subnormal floats and checks a float4 against FLT_MAX / FLT_MIN
    // as a double: there the extremes are written so that they round to the same float4.
    let (f8_tiny, f4_tiny, f4_max, f4_min) = if kind.is_82() {
        ("2.2250738585072019e-308", "2e-38", "3.40282346e38", "1.1754944e-38")
    } else {
        ("5e-324", "1e-45", "3.4028235e38", "1.17549435e-38")
    };
    format!(
        r#"
CREATE SCHEMA eda;
CREATE TABLE eda.fact ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)){distributed};
INSERT INTO eda.fact
SELECT i,
       timestamp '2024-03-10 00:00:00' + (i - 1) * interval '18 seconds'
           + CASE WHEN i % 3 = 0 THEN (i % 1000) * interval '1 microsecond' ELSE interval '0' END,
       i % 7,
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
           WHEN 11 THEN E'mix,"q"\t\\\n缺陷 '' ' || i
           ELSE 'G' || lpad(i::text, 8, '0')
       END,
       CASE WHEN i % 19 = 0 THEN NULL WHEN i % 97 = 0 THEN 'NaN'::numeric ELSE round(i * 1.23456 - 3000, 4) END,
       CASE i % 13
           WHEN 0 THEN 0.1::float8
           WHEN 1 THEN 1e-300::float8
           WHEN 2 THEN (1 / 3.0)::float8
           WHEN 3 THEN '-0'::float8
           WHEN 4 THEN NULL
           WHEN 5 THEN 'Infinity'::float8
           WHEN 6 THEN '-Infinity'::float8
           WHEN 7 THEN 1.7976931348623157e308::float8
           WHEN 8 THEN 'NaN'::float8
           WHEN 9 THEN {f8_tiny}::float8
           WHEN 10 THEN 2.2250738585072014e-308::float8
           WHEN 11 THEN -1.7976931348623157e308::float8
           ELSE i::float8 / 7
       END,
       CASE i % 11
           WHEN 0 THEN NULL
           WHEN 1 THEN '-0'::float4
           WHEN 2 THEN 0.1::float4
           WHEN 3 THEN 'Infinity'::float4
           WHEN 4 THEN 'NaN'::float4
           WHEN 5 THEN '{f4_max}'::float4
           WHEN 6 THEN '{f4_tiny}'::float4
           WHEN 7 THEN '-Infinity'::float4
           WHEN 8 THEN '{f4_min}'::float4
           ELSE (i * 0.1)::float4
       END,
       CASE WHEN i % 29 = 0 THEN NULL
            WHEN i = 31 THEN 'infinity'::timestamptz
            WHEN i = 62 THEN '-infinity'::timestamptz
            ELSE timestamptz '2024-03-10 08:00:00+08' + i * interval '1.000001 seconds'
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
           ELSE decode(md5(i::text), 'hex') || decode('00ff5c0a09', 'hex')
       END,
       CASE WHEN i % 41 = 0 THEN NULL
            WHEN i % 1001 = 5 THEN repeat('长', 5000)
            ELSE repeat('x', i % 50) || ' 中文 €'
       END
FROM generate_series(1, {DAY_ROWS}) AS i;
-- Some rows with NULL in every nullable column.
UPDATE eda.fact
SET grp = NULL, glass_id = NULL, defect_qty = NULL, ratio = NULL, ratio4 = NULL,
    evt_tz = NULL, evt_date = NULL, is_ok = NULL, payload = NULL, note = NULL
WHERE id % 997 = 0;
-- Outside the job's day: never moved.
INSERT INTO eda.fact (id, evt_ts, glass_id)
VALUES (1000001, '2024-03-09 23:59:59.999999', 'before'),
       (1000002, '2024-03-11 00:00:00', 'at the end, excluded'),
       (1000003, '2024-03-11 07:00:00', 'after');
"#
    )
}

/// [`FACT_COLUMNS`] with their types, for [`canonical_lines`] (8.2 and GP4 print several types
/// differently, and quote literals their own way).
pub const FACT_TYPED: &[(&str, &str)] = &[
    ("evt_ts", "timestamp"),
    ("grp", "int4"),
    ("glass_id", "text"),
    ("defect_qty", "numeric"),
    ("ratio", "float8"),
    ("ratio4", "float4"),
    ("evt_tz", "timestamptz"),
    ("evt_date", "date"),
    ("is_ok", "bool"),
    ("payload", "bytea"),
    ("note", "text"),
];

/// The rows of `table` matching `filter` as canonical lines, the same text on every server.
pub fn fact_lines(pg: &Pg, db: &str, table: &str, filter: &str) -> Vec<String> {
    canonical_lines(pg, db, &format!("{table} WHERE {filter}"), FACT_TYPED)
}

/// `eda.fact` into each `(mode, target)` in windows of `duration` over the day, one job
/// (`eda_<table>`) per target, keyed by `id` when `key`.
pub fn fact_jobs(entries: &[(&str, &str)], duration: &str, key: bool) -> String {
    let mut config = String::from("{CLUSTERS}\n");
    for (mode, t) in entries {
        let job = t.replace('.', "_");
        config.push_str(&format!(
            r#"
[jobs.{job}]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "{duration}"
mode = "{mode}"

[[jobs.{job}.tables]]
table = "{FACT}"
target_table = "{t}"
condition_column = "evt_ts"
"#
        ));
        if key {
            config.push_str("key = [\"id\"]\n");
        }
    }
    config
}

/// `eda.fact` into each of `targets` in hourly windows over the day, all in `mode`.
pub fn day_job(mode: &str, targets: &[&str], key: bool) -> String {
    let entries: Vec<(&str, &str)> = targets.iter().map(|t| (mode, *t)).collect();
    fact_jobs(&entries, "1h", key)
}

/// Loads the day of `eda.fact` into `target` (created by the caller; merge on `id`), compares
/// equal, damages six rows on the target, finds exactly them, repairs them and compares equal
/// again.
pub fn compare_finds_and_repairs(env: &TestEnv, target: &str) {
    env.write_config(&fact_jobs(&[("merge", target)], "6h", true));
    env.run(&["run"]).assert_success();
    let source = fact_lines(env.src, &env.db, FACT, DAY);
    assert_same_lines(target, &source, &fact_lines(env.dst, &env.dst_db, target, "true"));

    let (out, value) = compare_json(env, &[]);
    out.assert_success();
    assert_eq!(compared_windows(&value).len(), 4, "{value:#}");
    assert_eq!(assert_all_equal(&value), DAY_ROWS as i64);

    // The row changed by one bit of its float8 held 0.1, the next one -0.
    assert_eq!(
        env.dst_psql(&format!("SELECT ratio = 0.1, ratio::text FROM {target} WHERE id IN (1300, 1303) ORDER BY id")),
        "t|0.1\nf|-0"
    );
    // Six kinds of damage in three windows: two rows gone, a float8 one bit off, -0 become +0,
    // a microsecond more, a Chinese character changed, and a row that is not on the source.
    env.dst_psql(&format!(
        "DELETE FROM {target} WHERE id IN (10, 4790);
         UPDATE {target} SET ratio = '0.10000000000000002'::float8 WHERE id = 1300;
         UPDATE {target} SET ratio = 0 WHERE id = 1303;
         UPDATE {target} SET evt_ts = evt_ts + interval '1 microsecond' WHERE id = 2400;
         UPDATE {target} SET glass_id = replace(glass_id, '号', '號') WHERE id = 2411;
         INSERT INTO {target} (id, evt_ts, note) VALUES (9999, '2024-03-10 13:00:00.5', '新的');"
    ));
    let (out, value) = compare_json(env, &[]);
    out.assert_code(3);
    let expected: BTreeSet<(String, String)> = [
        ("missing", "id=10"),
        ("missing", "id=4790"),
        ("changed", "id=1300"),
        ("changed", "id=1303"),
        ("changed", "id=2400"),
        ("changed", "id=2411"),
        ("extra", "id=9999"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(differences(&value), expected, "{value:#}");
    assert!(compared_windows(&value).iter().all(|w| w["error"].is_null()), "{value:#}");

    let (out, value) = compare_json(env, &["--repair"]);
    out.assert_success();
    let after = value["after_repair"].as_array().unwrap_or_else(|| panic!("no after_repair in {value:#}"));
    assert!(!after.is_empty() && after.iter().all(|w| w["equal"] == true), "{value:#}");
    assert_same_lines(target, &source, &fact_lines(env.dst, &env.dst_db, target, "true"));
    let (out, value) = compare_json(env, &[]);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), DAY_ROWS as i64);
}
