//! The `copy` sink into a real Greenplum 6 cluster (master + 2 segments), GP6 → GP6, and GP6 as
//! the state cluster (issue 9): a day of hourly windows with hard values lands byte-exact in
//! tables distributed by the key, by another column and randomly, partitioned and
//! append-optimized column-oriented, in every mode; a re-run changes nothing; a killed run
//! leaves target and cursor as they were; compare and `--repair` between GP6 databases and
//! from PostgreSQL 15.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{table_digest, CmdOutput, Pg, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// The data: a day of rows with every hard value
// ---------------------------------------------------------------------------------------------

const FACT: &str = "eda.fact";
const DAY: &str = "evt_ts >= '2024-03-10' AND evt_ts < '2024-03-11'";
/// Rows of the day: one every 18 s, 200 per hourly window.
const DAY_ROWS: usize = 4800;

/// The digest's columns in canonical forms that are byte-identical on PostgreSQL 15 and GP6
/// whatever their text output: floats by their bits, timestamps to the microsecond in UTC,
/// bytea in hex.
const FACT_COLUMNS: &[&str] = &[
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

const FACT_COLUMNS_DDL: &str = "
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

/// The source table and its rows; valid on PostgreSQL 15 and on GP6 (distributed by the key).
/// The float8 column holds its maximum next to other values in every window: GP6's automatic
/// ANALYZE after a load into a table without statistics fails on that (`value out of range:
/// overflow`).
fn fact_source_sql(gp: bool) -> String {
    let distributed = if gp { " DISTRIBUTED BY (id)" } else { "" };
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
           WHEN 9 THEN 5e-324::float8
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
           WHEN 5 THEN '3.4028235e38'::float4
           WHEN 6 THEN '1e-45'::float4
           WHEN 7 THEN '-Infinity'::float4
           WHEN 8 THEN '1.17549435e-38'::float4
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

/// GP6 target tables, one per way Greenplum can store a table; some with another column order.
const BY_KEY: &str = "eda.by_key";
const BY_GRP: &str = "eda.by_grp";
const RANDOMLY: &str = "eda.randomly";
const PARTED: &str = "eda.parted";
const AOCO: &str = "eda.aoco";

fn gp6_target_ddl(table: &str) -> String {
    match table {
        // The key is the distribution key and a primary key.
        BY_KEY => format!("CREATE TABLE {table} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);"),
        // Another column order; distributed by a column that is not the key, no constraint.
        BY_GRP => format!(
            "CREATE TABLE {table} (note text, payload bytea, is_ok boolean, evt_date date, evt_tz timestamptz, \
             ratio4 float4, ratio float8, defect_qty numeric(14,4), glass_id text, grp int, evt_ts timestamp NOT NULL, \
             id bigint NOT NULL) DISTRIBUTED BY (grp);"
        ),
        RANDOMLY => format!("CREATE TABLE {table} ({FACT_COLUMNS_DDL}) DISTRIBUTED RANDOMLY;"),
        // Hourly range partitions over the day and a default partition.
        PARTED => format!(
            "CREATE TABLE {table} ({FACT_COLUMNS_DDL}) DISTRIBUTED BY (id)
             PARTITION BY RANGE (evt_ts)
             (START (timestamp '2024-03-10 00:00:00') END (timestamp '2024-03-11 00:00:00') EVERY (interval '1 hour'),
              DEFAULT PARTITION outside_day);"
        ),
        AOCO => format!(
            "CREATE TABLE {table} ({FACT_COLUMNS_DDL}) WITH (appendonly=true, orientation=column) DISTRIBUTED BY (id);"
        ),
        other => panic!("no DDL for {other}"),
    }
}

/// The targets, created by role `gpt`, the role the tool logs in as: GP6 runs its automatic
/// ANALYZE after a load (`gp_autostats_mode`) only for the table's owner, as in production where
/// the loading role owns its tables.
fn create_gp6_targets(env: &TestEnv, targets: &[&str]) {
    let mut ddl = String::from("SET ROLE gpt;\nCREATE SCHEMA eda;\n");
    for t in targets {
        ddl.push_str(&gp6_target_ddl(t));
        ddl.push('\n');
    }
    env.dst_psql(&ddl);
}

fn digest(pg: &Pg, db: &str, table: &str, filter: &str) -> String {
    table_digest(pg, db, table, FACT_COLUMNS, "id", filter)
}

/// Keys present more than once in a target table (should be none).
fn duplicate_keys(env: &TestEnv, table: &str) -> String {
    env.dst_psql(&format!("SELECT id, count(*) FROM {table} GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 5"))
}

/// Each table's stored cursor, as `table cursor` lines.
fn cursors(env: &TestEnv) -> String {
    env.dst_psql("SELECT table_name || ' ' || cursor_end FROM gptransfer.cursors ORDER BY table_name")
}

fn history_count(env: &TestEnv, filter: &str) -> usize {
    env.dst_psql(&format!("SELECT count(*) FROM gptransfer.history WHERE {filter}")).parse().unwrap()
}

/// `eda.fact` into each of `targets` in hourly windows over the day, one job per target (a
/// job's cursor is kept per source table, so one source feeding two targets of one job would
/// share it).
fn day_job(mode: &str, targets: &[&str], key: bool) -> String {
    let mut config = String::from("{CLUSTERS}\n");
    for t in targets {
        let job = t.replace('.', "_");
        config.push_str(&format!(
            r#"
[jobs.{job}]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "1h"
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

fn run_ok(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let out = env.run(args);
    out.assert_success();
    out
}

/// Every target holds exactly the source's day, with no key twice.
fn assert_targets_equal_source(env: &TestEnv, targets: &[&str], source: &str, when: &str) {
    for t in targets {
        assert_eq!(digest(env.dst, &env.dst_db, t, "true"), source, "{t} {when}");
        assert_eq!(duplicate_keys(env, t), "", "{t} {when}: duplicate keys");
    }
}

/// Per window and target: the source's rows of the hour were read and written, and the attempt
/// succeeded.
fn assert_history_counts(env: &TestEnv, targets: &[&str], attempt: u32) {
    let per_hour = env.src_psql(&format!(
        "SELECT to_char(h, 'YYYYMMDDHH24MISS') || '^' || to_char(h + interval '1 hour', 'YYYYMMDDHH24MISS') \
         || ' ' || count(*) FROM (SELECT date_trunc('hour', evt_ts) AS h FROM {FACT} WHERE {DAY}) w \
         GROUP BY h ORDER BY h"
    ));
    assert_eq!(per_hour.lines().count(), 24);
    for t in targets {
        let history = env.dst_psql(&format!(
            "SELECT window_id || ' ' || rows_read FROM gptransfer.history WHERE target_table = '{t}' \
             AND attempt = {attempt} AND status = 'succeeded' AND rows_read = rows_written ORDER BY window_id"
        ));
        assert_eq!(history, per_hour, "{t}: attempt {attempt}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. PostgreSQL 15 → GP6, a day of hourly windows in every mode
// ---------------------------------------------------------------------------------------------

/// PG15 → GP6 into `targets` in `mode`; byte-exact; a second run has nothing due; where the
/// mode makes a forced re-run idempotent (all but append), forgetting the cursors and running
/// again changes nothing either.
fn day_into_gp6(name: &str, mode: &str, targets: &[&str]) -> TestEnv {
    let env = TestEnv::on(name, Server::Pg, Server::Gp6);
    env.src_psql(&fact_source_sql(false));
    create_gp6_targets(&env, targets);
    env.write_config(&day_job(mode, targets, mode == "merge"));
    let source = digest(env.src, &env.db, FACT, DAY);
    assert!(source.starts_with(&format!("{DAY_ROWS} ")), "generated data: {source}");

    let started = std::time::Instant::now();
    let out = run_ok(&env, &["run", "--parallel", "3"]);
    eprintln!("{name}: first run {:?}", started.elapsed());
    let windows = if mode == "full" { 1 } else { 24 };
    let loaded = if mode == "full" { DAY_ROWS + 3 } else { DAY_ROWS };
    assert!(
        out.stdout.contains(&format!(
            "{} window(s) loaded, 0 failed; {} rows",
            windows * targets.len(),
            loaded * targets.len()
        )),
        "{}",
        out.render()
    );
    let expected = if mode == "full" { digest(env.src, &env.db, FACT, "true") } else { source.clone() };
    assert_targets_equal_source(&env, targets, &expected, "after the run");
    if mode != "full" {
        assert_history_counts(&env, targets, 1);
    }
    let cursors_after = cursors(&env);
    assert_eq!(cursors_after.lines().count(), targets.len(), "{cursors_after}");

    // Nothing is due any more: the second run changes nothing and records nothing.
    let again = run_ok(&env, &["run"]);
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    assert_targets_equal_source(&env, targets, &expected, "after a second run");
    assert_eq!(history_count(&env, "true"), windows * targets.len());
    assert_eq!(cursors(&env), cursors_after);

    if mode != "append" {
        // Forced: the same windows once more land the same rows, once.
        env.dst_psql("DELETE FROM gptransfer.cursors");
        run_ok(&env, &["run", "--parallel", "3"]);
        assert_targets_equal_source(&env, targets, &expected, "after a forced re-run");
        assert_eq!(history_count(&env, "status = 'succeeded' AND attempt = 2"), windows * targets.len());
        if mode != "full" {
            assert_history_counts(&env, targets, 2);
        }
        assert_eq!(cursors(&env), cursors_after);
    }
    env
}

const ALL_TARGETS: &[&str] = &[BY_KEY, BY_GRP, RANDOMLY, PARTED, AOCO];

#[test]
fn pg15_to_gp6_replace_day_is_byte_exact() {
    let env = day_into_gp6("pg15_gp6_replace", "replace", ALL_TARGETS);
    // Rows went into the right hourly partitions, none into the default one.
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) FROM pg_partitions WHERE schemaname = 'eda' AND tablename = 'parted' \
             AND partitionname = ''"
        ),
        "24"
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.parted_1_prt_outside_day"), "0");
    // GP6 ran its automatic ANALYZE after the first load into each (gpt-owned, statistics-less)
    // table, on a float8 column holding its maximum next to other values: with the default
    // extra_float_digits that ANALYZE fails with "value out of range: overflow" (GP6 passes
    // sampled values through text); the sink's session (extra_float_digits 3) is immune.
    for t in [BY_KEY, BY_GRP, RANDOMLY, AOCO] {
        assert_eq!(
            env.dst_psql(&format!(
                "SELECT count(*) > 0 FROM pg_statistic WHERE starelid = '{t}'::regclass \
                 AND staattnum = (SELECT attnum FROM pg_attribute WHERE attrelid = '{t}'::regclass AND attname = 'ratio')"
            )),
            "t",
            "{t}: no statistics, so the trap was not exercised"
        );
    }
    // Every distributed target really spread its rows over both segments.
    for t in [BY_KEY, BY_GRP, RANDOMLY, AOCO] {
        assert_eq!(env.dst_psql(&format!("SELECT count(DISTINCT gp_segment_id) FROM {t}")), "2", "{t}");
    }
}

#[test]
fn pg15_to_gp6_merge_day_is_byte_exact() {
    let env = day_into_gp6("pg15_gp6_merge", "merge", ALL_TARGETS);
    // Rows change on the source (also the distribution column of eda.by_grp, so rows move
    // between segments) and new ones arrive; the day is merged again.
    env.src_psql(
        "UPDATE eda.fact SET grp = grp + 1, note = 'changed ' || id, ratio = 1.7976931348623157e308 \
         WHERE id % 10 = 3;
         INSERT INTO eda.fact (id, evt_ts, grp, note) VALUES (5001, '2024-03-10 05:30:00.000001', 1, 'new');",
    );
    env.dst_psql("DELETE FROM gptransfer.cursors");
    run_ok(&env, &["run", "--parallel", "3"]);
    let source = digest(env.src, &env.db, FACT, DAY);
    assert!(source.starts_with(&format!("{} ", DAY_ROWS + 1)), "{source}");
    assert_targets_equal_source(&env, ALL_TARGETS, &source, "after merging changed rows");
}

#[test]
fn pg15_to_gp6_append_day_is_byte_exact() {
    day_into_gp6("pg15_gp6_append", "append", &[BY_KEY, BY_GRP, RANDOMLY]);
}

#[test]
fn pg15_to_gp6_full_reload_is_byte_exact() {
    day_into_gp6("pg15_gp6_full", "full", &[BY_KEY, BY_GRP, RANDOMLY, PARTED, AOCO]);
}

// ---------------------------------------------------------------------------------------------
// 5. Merge into a table with many partitions
// ---------------------------------------------------------------------------------------------

/// A merge that deletes the batch's keys from a partitioned GP6 table must not plan a motion
/// (and so a gang of processes on every segment) per partition: with the 120 daily partitions
/// below that needed hundreds of segment connections and failed with "connection limit
/// exceeded" as soon as the keys had to be found in the table (the second load), although a
/// real fact table has far more partitions than this one.
#[test]
fn merge_into_many_partitions_uses_few_segment_connections() {
    let env = TestEnv::on("gp6_merge_many_partitions", Server::Pg, Server::Gp6);
    let ddl = "CREATE TABLE part_src (id bigint PRIMARY KEY, ts timestamp NOT NULL, v text);";
    env.src_psql(ddl);
    env.src_psql(
        "INSERT INTO part_src SELECT i, timestamp '2024-01-01' + i * interval '1 hour', 'v' || i \
         FROM generate_series(0, 120 * 24 - 1) AS i",
    );
    // Distributed by the merge key, by another column and randomly: the keys of a batch are
    // found in every partition of each.
    let mut target_ddl = String::from("SET ROLE gpt;\n");
    for (table, distributed) in [("part_by_key", "BY (id)"), ("part_by_v", "BY (v)"), ("part_randomly", "RANDOMLY")] {
        target_ddl.push_str(&format!(
            "CREATE TABLE {table} (id bigint NOT NULL, ts timestamp NOT NULL, v text) DISTRIBUTED {distributed}
             PARTITION BY RANGE (ts) (START (timestamp '2024-01-01') END (timestamp '2024-04-30') EVERY (interval '1 day'));\n"
        ));
    }
    env.dst_psql(&target_ddl);
    let mut config = String::from("{CLUSTERS}\n");
    for table in ["part_by_key", "part_by_v", "part_randomly"] {
        config.push_str(&format!(
            r#"
[jobs.{table}]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-04-30 00:00:00"
duration = "60d"
mode = "merge"

[[jobs.{table}.tables]]
table = "part_src"
target_table = "{table}"
condition_column = "ts"
key = ["id"]
"#
        ));
    }
    env.write_config(&config);
    let columns = &["id", "to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US')", "v"];
    let source = table_digest(env.src, &env.db, "part_src", columns, "id", "true");
    for attempt in 1..=2 {
        // The second time every key of the batch is already in the table.
        if attempt > 1 {
            env.dst_psql("DELETE FROM gptransfer.cursors");
        }
        let out = env.run(&["run", "--parallel", "1"]);
        out.assert_success();
        for table in ["part_by_key", "part_by_v", "part_randomly"] {
            assert_eq!(table_digest(env.dst, &env.dst_db, table, columns, "id", "true"), source, "{table} {attempt}");
        }
    }
}
