//! The `copy` sink into a real Greenplum 6 cluster (master + 2 segments), GP6 → GP6, and GP6 as
//! the state cluster (issue 9): a day of hourly windows with hard values lands byte-exact in
//! tables distributed by the key, by another column and randomly, partitioned and
//! append-optimized column-oriented, in every mode; a re-run changes nothing; a killed run
//! leaves target and cursor as they were; compare and `--repair` between GP6 databases and
//! from PostgreSQL 15. Also what GP6 showed: a merge into a partitioned table must not need a
//! segment gang per partition, and each target of one source table keeps its own cursor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::runs::{wait_for_row, wait_until_gone, Guard};
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

/// `eda.fact` into each of `targets` in hourly windows over the day, one job (`eda_<table>`)
/// per target.
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

    let out = run_ok(&env, &["run", "--parallel", "3"]);
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
    // PG15 and GP6 agree on every column's type, encoding and datetime form: binary COPY,
    // except for merge (its sink numbers the batch's rows in the text stream).
    let chain = if mode == "merge" { "copy > stream > copy" } else { "copy > stream > copy (binary)" };
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), chain);
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
// 2. Merge into a table with many partitions
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

// ---------------------------------------------------------------------------------------------
// 3. GP6 → GP6 (two databases of the one cluster), every mode
// ---------------------------------------------------------------------------------------------

/// `(mode, target)`: each mode into another table layout.
const GP6_TO_GP6: &[(&str, &str)] = &[("replace", BY_KEY), ("append", RANDOMLY), ("merge", BY_GRP), ("full", PARTED)];

#[test]
fn gp6_to_gp6_every_mode_is_byte_exact_and_binary_where_it_can() {
    let env = TestEnv::on("gp6_to_gp6", Server::Gp6, Server::Gp6);
    // Created as the superuser, who owns the table: with psql's default extra_float_digits,
    // GP6's automatic ANALYZE after the INSERT would fail on the float8 maximum.
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(true)));
    create_gp6_targets(&env, &GP6_TO_GP6.iter().map(|(_, t)| *t).collect::<Vec<_>>());
    let mut config = String::from("{CLUSTERS}\n");
    for (mode, t) in GP6_TO_GP6 {
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
key = ["id"]
"#
        ));
    }
    env.write_config(&config);
    let day = digest(env.src, &env.db, FACT, DAY);
    let whole = digest(env.src, &env.db, FACT, "true");
    assert!(day.starts_with(&format!("{DAY_ROWS} ")), "{day}");
    let expected = |mode: &str| if mode == "full" { whole.clone() } else { day.clone() };

    let out = run_ok(&env, &["run", "--parallel", "2"]);
    assert!(out.stdout.contains("73 window(s) loaded, 0 failed"), "{}", out.render());
    for (mode, t) in GP6_TO_GP6 {
        assert_eq!(digest(env.dst, &env.dst_db, t, "true"), expected(mode), "{mode} into {t}");
        assert_eq!(duplicate_keys(&env, t), "", "{mode} into {t}");
    }
    assert_history_counts(&env, &[BY_KEY, RANDOMLY, BY_GRP], 1);

    // The COPY format negotiated between the two GP6 databases: binary (same built-in types,
    // encoding and integer datetimes on both sides), except for merge, whose sink numbers the
    // rows of the batch in the text stream.
    assert_eq!(
        env.dst_psql(
            "SELECT mode || ' ' || chain || ' ' || count(*) FROM gptransfer.history \
             GROUP BY mode, chain ORDER BY mode"
        ),
        "append copy > stream > copy (binary) 24\n\
         full copy > stream > copy (binary) 1\n\
         merge copy > stream > copy 24\n\
         replace copy > stream > copy (binary) 24"
    );

    // Nothing due: a second run changes nothing.
    let again = run_ok(&env, &["run"]);
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    assert_eq!(history_count(&env, "true"), 73);
    // Forced again (all but append, which inserts by definition): the same rows, once.
    env.dst_psql("DELETE FROM gptransfer.cursors WHERE job <> 'eda_randomly'");
    run_ok(&env, &["run", "--parallel", "2"]);
    for (mode, t) in GP6_TO_GP6 {
        assert_eq!(digest(env.dst, &env.dst_db, t, "true"), expected(mode), "{mode} into {t} after a forced re-run");
        assert_eq!(duplicate_keys(&env, t), "", "{mode} into {t}");
    }
    assert_history_counts(&env, &[BY_KEY, BY_GRP], 2);
    assert_eq!(history_count(&env, "status <> 'succeeded'"), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. GP6 as target and state cluster: SIGKILL mid-window, one runner per job, history
// ---------------------------------------------------------------------------------------------

/// Advisory lock key the source view waits for at row [`HOLD_AT`].
const HOLD_KEY: i64 = 4243;
const HOLD_AT: i32 = 100_000;
const BIG_ROWS: i32 = 200_000;

/// PG15 source `big`: a view over 200 000 rows of the first hour of 2024 that stops at row
/// [`HOLD_AT`] while the test holds [`HOLD_KEY`] on the source. A trigger on the GP6 target
/// would run on a segment, out of the test's reach; holding the source instead leaves the
/// run provably mid-window, ~10 MB already sent into the target's open COPY. The GP6 target
/// `big` is owned by gpt, and the state lives on GP6 too.
fn big_tables(env: &TestEnv) {
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
/// [`HOLD_AT`] (PG15) and its COPY into the target is running on the GP6 master.
async fn wait_until_mid_copy(src: &tokio_postgres::Client, dst: &tokio_postgres::Client) {
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
async fn hold(env: &TestEnv) -> tokio_postgres::Client {
    let locker = env.src.admin(&env.db).await;
    locker.execute("SELECT pg_advisory_lock($1)", &[&HOLD_KEY]).await.unwrap();
    locker
}

async fn release(locker: &tokio_postgres::Client) {
    locker.execute("SELECT pg_advisory_unlock($1)", &[&HOLD_KEY]).await.unwrap();
}

/// `count(*)`, `count(DISTINCT id)` and the digest of `big` on GP6.
fn big_content(env: &TestEnv) -> (String, String) {
    let counts = env.dst_psql("SELECT count(*) || ' ' || count(DISTINCT id) FROM big");
    (counts, table_digest(env.dst, &env.dst_db, "big", &["id", "ts", "payload"], "id", "true"))
}

fn big_history(env: &TestEnv) -> String {
    env.dst_psql(
        "SELECT attempt || ' ' || status || ' ' || coalesce(rows_written::text, '-') FROM gptransfer.history \
         WHERE table_name = 'public.big' ORDER BY id",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_state_sigkill_mid_window_leaves_target_and_cursor_untouched() {
    let env = TestEnv::on("gp6_sigkill", Server::Pg, Server::Gp6);
    big_tables(&env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&src, &dst).await;
    // The attempt is on record on GP6 before any data moved.
    assert_eq!(big_history(&env), "1 running -");
    run.signal("KILL");
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{}", out.render());

    // The GP6 master sees its client gone and rolls the window back.
    wait_until_gone(&dst).await;
    release(&locker).await;
    wait_until_gone(&src).await;
    assert_eq!(big_content(&env).0, "0 0", "rows of the killed window are visible on GP6");
    assert_eq!(cursors(&env), "", "the cursor moved");
    assert_eq!(big_history(&env), "1 running -");

    // The next run completes the window, exactly once.
    let out = run_ok(&env, &["run"]);
    assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {BIG_ROWS} rows")), "{}", out.render());
    let source = table_digest(env.src, &env.db, "big_rows", &["id", "ts", "payload"], "id", "true");
    assert_eq!(big_content(&env), (format!("{BIG_ROWS} {BIG_ROWS}"), source));
    assert_eq!(cursors(&env), "public.big 2024-01-01 01:00:00");
    // The killed attempt is marked abandoned by the next run; history reads back from GP6.
    assert_eq!(big_history(&env), format!("1 failed -\n2 succeeded {BIG_ROWS}"));
    let history = run_ok(&env, &["history", "--output", "json"]);
    let rows: Value = serde_json::from_str(&history.stdout)
        .unwrap_or_else(|e| panic!("history --output json is not JSON: {e}\n{}", history.render()));
    let rows = rows.as_array().unwrap_or_else(|| panic!("not an array: {rows}"));
    let statuses: BTreeSet<(i64, String)> =
        rows.iter().map(|r| (r["attempt"].as_i64().unwrap(), r["status"].as_str().unwrap().to_string())).collect();
    assert_eq!(statuses, BTreeSet::from([(1, "failed".to_string()), (2, "succeeded".to_string())]));
    let failed = run_ok(&env, &["history", "--failed"]);
    assert!(failed.stdout.contains("abandoned"), "{}", failed.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_state_second_concurrent_run_exits_75() {
    let env = TestEnv::on("gp6_concurrent", Server::Pg, Server::Gp6);
    big_tables(&env);
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(&env).await;

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
    assert_eq!(big_history(&env), "1 running -");

    release(&locker).await;
    first.wait().assert_success();
    let source = table_digest(env.src, &env.db, "big_rows", &["id", "ts", "payload"], "id", "true");
    assert_eq!(big_content(&env), (format!("{BIG_ROWS} {BIG_ROWS}"), source));
    assert_eq!(big_history(&env), format!("1 succeeded {BIG_ROWS}"));
}

// ---------------------------------------------------------------------------------------------
// 5. compare GP6 ↔ GP6 and PostgreSQL 15 ↔ GP6: equal after the load, damaged keys named
//    exactly, --repair heals them
// ---------------------------------------------------------------------------------------------

/// `compare --output json` with extra arguments: the run and its parsed output.
fn compare_json(env: &TestEnv, args: &[&str]) -> (CmdOutput, Value) {
    let mut all = vec!["compare", "--output", "json"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let value: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("compare --output json is not JSON: {e}\n{}", out.render()));
    (out, value)
}

fn compared_windows(value: &Value) -> &Vec<Value> {
    value["windows"].as_array().unwrap_or_else(|| panic!("no windows array in {value}"))
}

/// Every `(kind, key)` of every window.
fn differences(value: &Value) -> BTreeSet<(String, String)> {
    compared_windows(value)
        .iter()
        .flat_map(|w| w["differences"].as_array().unwrap().iter())
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["key"].as_str().unwrap().to_string()))
        .collect()
}

/// Every window equal, without error; returns the rows compared.
fn assert_all_equal(value: &Value) -> i64 {
    let mut rows = 0;
    for w in compared_windows(value) {
        assert_eq!(w["equal"], true, "{w:#}");
        assert!(w["error"].is_null(), "{w:#}");
        assert_eq!(w["source_count"], w["target_count"], "{w:#}");
        rows += w["source_count"].as_i64().unwrap();
    }
    rows
}

/// Loads the day of `eda.fact` into `target` (merge on `id`), compares equal, damages six rows
/// on the target, finds exactly them, repairs them and compares equal again.
fn compare_finds_and_repairs(env: &TestEnv, target: &str) {
    create_gp6_targets(env, &[target]);
    env.write_config(&day_job("merge", &[target], true).replace("duration = \"1h\"", "duration = \"6h\""));
    run_ok(env, &["run"]);
    let source = digest(env.src, &env.db, FACT, DAY);
    assert_eq!(digest(env.dst, &env.dst_db, target, "true"), source);

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
    assert_eq!(digest(env.dst, &env.dst_db, target, "true"), source);
    let (out, value) = compare_json(env, &[]);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), DAY_ROWS as i64);
}

#[test]
fn compare_gp6_to_gp6_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp6_compare_gp6", Server::Gp6, Server::Gp6);
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(true)));
    compare_finds_and_repairs(&env, BY_GRP);
}

#[test]
fn compare_pg15_to_gp6_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp6_compare_pg15", Server::Pg, Server::Gp6);
    env.src_psql(&fact_source_sql(false));
    compare_finds_and_repairs(&env, PARTED);
}

// ---------------------------------------------------------------------------------------------
// 6. One source table feeding two targets in one job
// ---------------------------------------------------------------------------------------------

/// Each target of one source table has its own cursor and attempts: when one target fails a
/// window and the other goes on to the end of the day, the next run still loads the failed
/// target's remaining windows (a cursor shared by the two said the day was done: 21 windows
/// silently missing, exit 0).
#[test]
fn two_targets_of_one_source_keep_their_own_cursors() {
    let env = TestEnv::on("gp6_two_targets", Server::Pg, Server::Gp6);
    env.src_psql(&fact_source_sql(false));
    create_gp6_targets(&env, &[BY_KEY, RANDOMLY]);
    // Row 500 (window 02:00-03:00) cannot go into eda.randomly yet.
    env.dst_psql("ALTER TABLE eda.randomly ADD CONSTRAINT not_500 CHECK (id <> 500)");
    let mut config = day_job("replace", &[BY_KEY], false);
    config.push_str(&format!(
        "\n[[jobs.eda_by_key.tables]]\ntable = \"{FACT}\"\ntarget_table = \"{RANDOMLY}\"\ncondition_column = \"evt_ts\"\n"
    ));
    env.write_config(&config);
    let source = digest(env.src, &env.db, FACT, DAY);

    let first = env.run(&["run", "--parallel", "2"]);
    first.assert_code(1);
    assert!(first.stdout.contains("26 window(s) loaded, 1 failed"), "{}", first.render());
    assert_eq!(digest(env.dst, &env.dst_db, BY_KEY, "true"), source);
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.randomly"), "400");
    assert_eq!(
        cursors(&env),
        "eda.fact -> eda.by_key 2024-03-11 00:00:00\neda.fact -> eda.randomly 2024-03-10 02:00:00"
    );

    env.dst_psql("ALTER TABLE eda.randomly DROP CONSTRAINT not_500");
    let second = run_ok(&env, &["run"]);
    assert!(second.stdout.contains("22 window(s) loaded, 0 failed"), "{}", second.render());
    assert_targets_equal_source(&env, &[BY_KEY, RANDOMLY], &source, "after the second run");
    // Attempts are counted per target: only the failed window of eda.randomly was tried twice.
    assert_eq!(
        env.dst_psql(
            "SELECT target_table || ' ' || window_id || ' ' || attempt || ' ' || status FROM gptransfer.history \
             WHERE attempt > 1 OR status <> 'succeeded' ORDER BY id"
        ),
        "eda.randomly 20240310020000^20240310030000 1 failed\neda.randomly 20240310020000^20240310030000 2 succeeded"
    );

    // A state written before cursors were kept per target holds one row under the source
    // table's name: both targets go on from it, nothing is loaded again.
    env.dst_psql(
        "DELETE FROM gptransfer.cursors;
         INSERT INTO gptransfer.cursors VALUES ('eda_by_key', 'eda.fact', '2024-03-10 22:00:00', now());",
    );
    let plan = run_ok(&env, &["plan", "--output", "json"]);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", plan.stdout));
    let first_windows: Vec<&str> = plan
        .as_array()
        .unwrap_or_else(|| panic!("plan is not an array: {plan}"))
        .iter()
        .map(|t| t["windows"][0].as_str().unwrap_or_else(|| panic!("no windows in {t}")))
        .collect();
    assert_eq!(first_windows, ["20240310220000^20240310230000", "20240310220000^20240310230000"], "{plan:#}");
}
