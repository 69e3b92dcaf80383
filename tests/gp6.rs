//! The `copy` sink into a real Greenplum 6 cluster (master + 2 segments), GP6 → GP6, and GP6 as
//! the state cluster (issue 9): a day of hourly windows with hard values lands byte-exact in
//! tables distributed by the key, by another column and randomly, partitioned and
//! append-optimized column-oriented, in every mode; a re-run changes nothing; a killed run
//! leaves target and cursor as they were; compare and `--repair` between GP6 databases and
//! from PostgreSQL 15. Also what GP6 showed: a merge into a partitioned table must not need a
//! segment gang per partition, and each target of one source table keeps its own cursor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::fact::{
    compare_finds_and_repairs, day_job, fact_jobs, fact_source_sql, DAY, DAY_ROWS, FACT, FACT_COLUMNS, FACT_COLUMNS_DDL,
};
use support::held::{second_concurrent_run_exits_75, sigkill_mid_window_leaves_target_and_cursor_untouched};
use support::{table_digest, CmdOutput, Kind, Pg, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// The GP6 tables a day of `eda.fact` (support::fact) goes into
// ---------------------------------------------------------------------------------------------

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
    env.src_psql(&fact_source_sql(Kind::Pg15));
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
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(Kind::Gp6)));
    create_gp6_targets(&env, &GP6_TO_GP6.iter().map(|(_, t)| *t).collect::<Vec<_>>());
    let config = fact_jobs(GP6_TO_GP6, "1h", true);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_state_sigkill_mid_window_leaves_target_and_cursor_untouched() {
    let env = TestEnv::on("gp6_sigkill", Server::Pg, Server::Gp6);
    sigkill_mid_window_leaves_target_and_cursor_untouched(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp6_state_second_concurrent_run_exits_75() {
    let env = TestEnv::on("gp6_concurrent", Server::Pg, Server::Gp6);
    second_concurrent_run_exits_75(&env).await;
}

// ---------------------------------------------------------------------------------------------
// 5. compare GP6 ↔ GP6 and PostgreSQL 15 ↔ GP6: equal after the load, damaged keys named
//    exactly, --repair heals them
// ---------------------------------------------------------------------------------------------

#[test]
fn compare_gp6_to_gp6_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp6_compare_gp6", Server::Gp6, Server::Gp6);
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(Kind::Gp6)));
    create_gp6_targets(&env, &[BY_GRP]);
    compare_finds_and_repairs(&env, BY_GRP);
}

#[test]
fn compare_pg15_to_gp6_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp6_compare_pg15", Server::Pg, Server::Gp6);
    env.src_psql(&fact_source_sql(Kind::Pg15));
    create_gp6_targets(&env, &[PARTED]);
    compare_finds_and_repairs(&env, PARTED);
}

/// Compare's window-level statement (the one pass over every row) aggregates on the segments:
/// in EXPLAIN ANALYZE on GP6 the scan feeds an aggregate on each segment, and the Gather Motion
/// to the master carries at most one row per bucket and segment, never the table's rows. With
/// time slices alone and with a `group_by` column as well.
#[test]
fn compare_window_statement_aggregates_on_the_segments() {
    use chrono::NaiveDate;
    use gptransfer_core::compare::{Grouping, Scope};
    use gptransfer_core::dialect::canonical::StoredText;
    use gptransfer_core::dialect::QualifiedName;

    let env = TestEnv::on("gp6_compare_explain", Server::Gp6, Server::Gp6);
    let rows = 100_000;
    env.src_psql(&format!(
        "CREATE TABLE public.t (id bigint, site text, ts timestamp, tz timestamptz, x float8, n numeric(12,3), v text) \
         DISTRIBUTED BY (id);
         INSERT INTO public.t SELECT i, 'S' || (i % 5), '2024-01-01'::timestamp + i * interval '0.8 second', \
           '2024-01-01'::timestamptz + i * interval '1 second', i / 7.0, i / 3.0, repeat('v', i % 20) \
         FROM generate_series(1, {rows}) AS i;
         ANALYZE public.t;"
    ));
    let segments: usize = env
        .src_psql("SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0")
        .parse()
        .unwrap();
    assert!(segments >= 2, "{segments} segments");
    let columns = [
        ("id", "int8"),
        ("site", "text"),
        ("ts", "timestamp"),
        ("tz", "timestamptz"),
        ("x", "float8"),
        ("n", "numeric"),
        ("v", "text"),
    ];
    let day = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let scope = Scope {
        table: QualifiedName::parse("public.t").unwrap(),
        columns: columns.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect(),
        condition: Some(("ts".into(), "timestamp".into())),
        range: Some((day, day + chrono::Duration::days(1))),
        group: None,
        text: StoredText::AsIs,
        float_datetimes: false,
        text_form: Vec::new(),
        cast_to: Vec::new(),
        filter: None,
    };
    // 24 hourly slices (the rows span 22.2 hours), then 5 sites × 24 slices.
    for (group_by, buckets) in [(None, 24), (Some("site".to_string()), 5 * 24)] {
        let grouping = Grouping { group_by: group_by.clone(), slice_seconds: Some(3600) };
        let (statement, params) = gptransfer_plugin_compare::sql::summary(&scope, &grouping, true);
        assert!(params.is_empty());
        let plan = env.src_psql(&format!("SET DateStyle = 'ISO, MDY';\nEXPLAIN ANALYZE {statement}"));
        let nodes: Vec<&str> = plan.lines().filter(|l| l.contains("(cost=")).collect();
        let context = format!("group_by {group_by:?}:\n{plan}");
        // The top node gathers the finished buckets to the master.
        assert!(nodes[0].trim_start().starts_with(&format!("Gather Motion {segments}:1")), "{context}");
        let gathered = actual_rows(nodes[0]);
        assert!(gathered <= buckets * segments, "the Gather Motion carries {gathered} rows: {context}");
        // The scan of the table is directly below an aggregate, on the segments (below the
        // Gather Motion): every row is aggregated where it is stored.
        let scan = nodes.iter().position(|l| l.contains("Scan on t ")).unwrap_or_else(|| panic!("no scan: {context}"));
        assert!(scan >= 2, "{context}");
        assert!(nodes[scan - 1].contains("Aggregate"), "no aggregate right above the scan: {context}");
        assert!(actual_rows(nodes[scan]) > 0, "{context}");
        // Every motion below the gather carries buckets, not rows.
        for motion in nodes.iter().skip(1).filter(|l| l.contains("Motion")) {
            assert!(actual_rows(motion) <= buckets * segments, "{motion}: {context}");
        }
    }
}

/// `rows=N` of a node's `(actual time=… rows=N …)` (GP6 shows the busiest segment's figure).
fn actual_rows(node: &str) -> usize {
    let actual = node.split("(actual ").nth(1).unwrap_or_else(|| panic!("no actual figures: {node}"));
    let rows = actual.split("rows=").nth(1).unwrap_or_else(|| panic!("no rows: {node}"));
    rows.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
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
    env.src_psql(&fact_source_sql(Kind::Pg15));
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
    // eda.randomly's windows run two at a time (a backfill): one after the failed window may
    // have committed too, beyond the cursor.
    let loaded: usize = first
        .stdout
        .split_once(" window(s) loaded, 1 failed")
        .and_then(|(before, _)| before.rsplit(['\n', ' ']).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary line\n{}", first.render()));
    assert!((26..=27).contains(&loaded), "{}", first.render());
    assert_eq!(digest(env.dst, &env.dst_db, BY_KEY, "true"), source);
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.randomly WHERE evt_ts < '2024-03-10 03:00'"), "400");
    assert_eq!(
        cursors(&env),
        "eda.fact -> eda.by_key 2024-03-11 00:00:00\neda.fact -> eda.randomly 2024-03-10 02:00:00"
    );

    env.dst_psql("ALTER TABLE eda.randomly DROP CONSTRAINT not_500");
    let second = run_ok(&env, &["run"]);
    assert!(second.stdout.contains("22 window(s) loaded, 0 failed"), "{}", second.render());
    assert_targets_equal_source(&env, &[BY_KEY, RANDOMLY], &source, "after the second run");
    // Attempts are counted per target: of eda.randomly's windows up to the failed one, only
    // the failed one was tried twice (one after it that committed beyond the cursor was loaded
    // again by the second run).
    assert_eq!(
        env.dst_psql(
            "SELECT target_table || ' ' || window_id || ' ' || attempt || ' ' || status FROM gptransfer.history \
             WHERE (attempt > 1 OR status <> 'succeeded') AND window_start <= '2024-03-10 02:00' ORDER BY id"
        ),
        "eda.randomly 20240310020000^20240310030000 1 failed\neda.randomly 20240310020000^20240310030000 2 succeeded"
    );
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE attempt > 1 AND target_table <> 'eda.randomly'"),
        "0"
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
