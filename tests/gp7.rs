//! Greenplum 7 as target, source and state cluster (issue 14), on the run's real GP7 cluster
//! (7.0.0: a coordinator and 2 segments), fed by the real GP6 and GP4 (4.3.99) clusters: a day of
//! windows GP6 → GP7 and GP4 → GP7 in replace, merge and full lands byte-exact in tables
//! distributed by the key, by another column and randomly, PG12-style partitioned and
//! `ao_column`; merge takes `INSERT … ON CONFLICT` where the table has a unique index on the key
//! and is a heap, the staging path otherwise, with the same last-row-wins and NULL-key rules on
//! both; GP7 → GP7 and GP7 → PostgreSQL 15; the state on GP7 through a SIGKILL; compare GP6 ↔ GP7
//! and GP4 ↔ GP7.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::canonical::assert_same_lines;
use support::fact::{
    compare_finds_and_repairs, fact_jobs, fact_lines, fact_source_sql, DAY, DAY_ROWS, FACT, FACT_COLUMNS_DDL,
};
use support::held::{second_concurrent_run_exits_75, sigkill_mid_window_leaves_target_and_cursor_untouched};
use support::{CmdOutput, Kind, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// The GP7 tables a day of `eda.fact` (support::fact) goes into
// ---------------------------------------------------------------------------------------------

/// The key is the distribution key and the primary key, a heap: merge through `ON CONFLICT`.
const BY_KEY: &str = "eda.by_key";
/// Another column order, distributed by a column that is not the key, no constraint: staging.
const BY_GRP: &str = "eda.by_grp";
/// Distributed randomly (GP7 allows no unique index there): staging.
const RANDOMLY: &str = "eda.randomly";
/// PG12-style: `PARTITION BY RANGE` with hourly partitions attached by `PARTITION OF`, and a
/// default one; its primary key must hold the partition column, so it is no arbiter for a merge
/// on `id`: staging.
const PARTED: &str = "eda.parted";
/// `USING ao_column` with a primary key: GP7 refuses `ON CONFLICT` on append-optimized tables,
/// so staging although the key has a unique index.
const AOCO: &str = "eda.aoco";

const ALL_TARGETS: &[&str] = &[BY_KEY, BY_GRP, RANDOMLY, PARTED, AOCO];

fn gp7_target_ddl(table: &str) -> String {
    match table {
        BY_KEY => format!("CREATE TABLE {table} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);"),
        BY_GRP => format!(
            "CREATE TABLE {table} (note text, payload bytea, is_ok boolean, evt_date date, evt_tz timestamptz, \
             ratio4 float4, ratio float8, defect_qty numeric(14,4), glass_id text, grp int, evt_ts timestamp NOT NULL, \
             id bigint NOT NULL) DISTRIBUTED BY (grp);"
        ),
        RANDOMLY => format!("CREATE TABLE {table} ({FACT_COLUMNS_DDL}) DISTRIBUTED RANDOMLY;"),
        PARTED => {
            let mut ddl = format!(
                "CREATE TABLE {table} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id, evt_ts)) DISTRIBUTED BY (id) \
                 PARTITION BY RANGE (evt_ts);\n"
            );
            for hour in 0..24 {
                ddl.push_str(&format!(
                    "CREATE TABLE eda.parted_h{hour:02} PARTITION OF {table} FOR VALUES FROM \
                     ('2024-03-10 {hour:02}:00:00') TO ('2024-03-10 {hour:02}:00:00'::timestamp + interval '1 hour');\n"
                ));
            }
            ddl.push_str(&format!("CREATE TABLE eda.parted_other PARTITION OF {table} DEFAULT;"));
            ddl
        }
        AOCO => {
            format!("CREATE TABLE {table} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) USING ao_column DISTRIBUTED BY (id);")
        }
        other => panic!("no DDL for {other}"),
    }
}

/// The targets, owned by role `gpt`, the role the tool logs in as.
fn create_gp7_targets(env: &TestEnv, targets: &[&str]) {
    let mut ddl = String::from("SET ROLE gpt;\nCREATE SCHEMA eda;\n");
    for t in targets {
        ddl.push_str(&gp7_target_ddl(t));
        ddl.push('\n');
    }
    env.dst_psql(&ddl);
}

/// The source table `eda.fact` on `env.src`, whatever server that is.
fn create_source(env: &TestEnv) {
    // psql's default extra_float_digits would make GP6's automatic ANALYZE after the INSERT
    // fail on the float8 maximum (GP4 refuses the setting's value 3).
    let floats = if env.src.kind.is_82() { "" } else { "SET extra_float_digits = 3;\n" };
    env.src_psql(&format!("{floats}{}", fact_source_sql(env.src.kind)));
}

fn run_ok(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let out = env.run(args);
    out.assert_success();
    out
}

fn history_count(env: &TestEnv, filter: &str) -> usize {
    env.dst_psql(&format!("SELECT count(*) FROM gptransfer.history WHERE {filter}")).parse().unwrap()
}

fn cursors(env: &TestEnv) -> String {
    env.dst_psql("SELECT table_name || ' ' || cursor_end FROM gptransfer.cursors ORDER BY table_name")
}

/// Every target holds `expected` (canonical lines) and no key twice.
fn assert_targets_hold(env: &TestEnv, targets: &[&str], expected: &[String], when: &str) {
    for t in targets {
        assert_same_lines(&format!("{t} {when}"), expected, &fact_lines(env.dst, &env.dst_db, t, "true"));
        assert_eq!(
            env.dst_psql(&format!("SELECT id FROM {t} GROUP BY id HAVING count(*) > 1 LIMIT 5")),
            "",
            "{t} {when}: duplicate keys"
        );
    }
}

/// The merge statements a run logged (`-v`) for `target`: which path each window took.
fn merge_paths(out: &CmdOutput, target: &str) -> (usize, usize) {
    let quoted = target.split('.').map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(".");
    let lines = || out.stderr.lines();
    let on_conflict =
        lines().filter(|l| l.contains(&format!("INSERT INTO {quoted} ")) && l.contains("ON CONFLICT")).count();
    let deletes = lines().filter(|l| l.contains(&format!("DELETE FROM {quoted} t USING"))).count();
    (on_conflict, deletes)
}

// ---------------------------------------------------------------------------------------------
// 1. A day of windows GP6 → GP7 and GP4 → GP7 in replace, merge and full
// ---------------------------------------------------------------------------------------------

/// Windows of three hours over the day.
const WINDOWS: usize = 8;

/// `eda.fact` from `src` into `targets` on GP7 in `mode`: byte-exact; a second run has nothing
/// due; forgetting the cursors and running again changes nothing. Merge: the rows changed on
/// the source are merged again, each target by its path.
fn day_into_gp7(name: &str, src: Server, mode: &str, targets: &[&str]) {
    let env = TestEnv::on(name, src, Server::Gp7);
    create_source(&env);
    create_gp7_targets(&env, targets);
    let entries: Vec<(&str, &str)> = targets.iter().map(|t| (mode, *t)).collect();
    env.write_config(&fact_jobs(&entries, "3h", mode == "merge"));
    let filter = if mode == "full" { "true" } else { DAY };
    let expected = fact_lines(env.src, &env.db, FACT, filter);
    assert_eq!(expected.len(), if mode == "full" { DAY_ROWS + 3 } else { DAY_ROWS });

    let out = run_ok(&env, &["run", "--parallel", "2"]);
    let windows = if mode == "full" { 1 } else { WINDOWS };
    assert!(
        out.stdout.contains(&format!(
            "{} window(s) loaded, 0 failed; {} rows",
            windows * targets.len(),
            expected.len() * targets.len()
        )),
        "{}",
        out.render()
    );
    assert_targets_hold(&env, targets, &expected, "after the run");
    assert_eq!(history_count(&env, "status = 'succeeded' AND rows_read = rows_written"), windows * targets.len());
    // The COPY format negotiated: binary from GP6 (same types, encoding and integer datetimes
    // as GP7) except in merge, whose sink numbers the batch's rows in the text stream; text
    // from GP4, whose `gp4` source reads text or CSV only (it converts legacy encodings).
    let chain = match (src, mode) {
        (Server::Gp4, _) => "gp4 > stream > copy",
        (_, "merge") => "copy > stream > copy",
        _ => "copy > stream > copy (binary)",
    };
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), chain);
    let cursors_after = cursors(&env);
    assert_eq!(cursors_after.lines().count(), targets.len(), "{cursors_after}");

    let again = run_ok(&env, &["run"]);
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    assert_targets_hold(&env, targets, &expected, "after a second run");
    assert_eq!(history_count(&env, "true"), windows * targets.len());

    // Forced: the same windows once more land the same rows, once.
    env.dst_psql("DELETE FROM gptransfer.cursors");
    run_ok(&env, &["run", "--parallel", "2"]);
    assert_targets_hold(&env, targets, &expected, "after a forced re-run");
    assert_eq!(history_count(&env, "status = 'succeeded' AND attempt = 2"), windows * targets.len());
    assert_eq!(cursors(&env), cursors_after);

    if mode == "merge" {
        // Rows change on the source (the distribution column of eda.by_grp too, so rows move
        // between segments) and a new one arrives; the day is merged again, and each target
        // took its path: ON CONFLICT into the heap with a primary key on the key, the delete
        // and insert everywhere else.
        env.src_psql(
            "UPDATE eda.fact SET grp = grp + 1, note = 'changed ' || id, ratio = 1.5 WHERE id % 10 = 3;
             INSERT INTO eda.fact (id, evt_ts, grp, note) VALUES (5001, '2024-03-10 05:30:00.000001', 1, 'new');",
        );
        env.dst_psql("DELETE FROM gptransfer.cursors");
        let out = run_ok(&env, &["-v", "run"]);
        let expected = fact_lines(env.src, &env.db, FACT, DAY);
        assert_eq!(expected.len(), DAY_ROWS + 1);
        assert_targets_hold(&env, targets, &expected, "after merging changed rows");
        for t in targets {
            let want = if *t == BY_KEY { (WINDOWS, 0) } else { (0, WINDOWS) };
            assert_eq!(merge_paths(&out, t), want, "{t}: (ON CONFLICT, DELETE) statements");
        }
    }
}

#[test]
fn gp6_to_gp7_replace_day_is_byte_exact() {
    day_into_gp7("gp6_gp7_replace", Server::Gp6, "replace", ALL_TARGETS);
}

#[test]
fn gp6_to_gp7_merge_day_is_byte_exact_through_on_conflict_and_staging() {
    day_into_gp7("gp6_gp7_merge", Server::Gp6, "merge", ALL_TARGETS);
}

#[test]
fn gp6_to_gp7_full_reload_is_byte_exact() {
    day_into_gp7("gp6_gp7_full", Server::Gp6, "full", &[BY_KEY, PARTED, AOCO]);
}

#[test]
fn gp4_to_gp7_replace_day_is_byte_exact() {
    day_into_gp7("gp4_gp7_replace", Server::Gp4, "replace", &[BY_KEY, RANDOMLY, PARTED]);
}

#[test]
fn gp4_to_gp7_merge_day_is_byte_exact_through_on_conflict_and_staging() {
    day_into_gp7("gp4_gp7_merge", Server::Gp4, "merge", &[BY_KEY, BY_GRP, AOCO]);
}

#[test]
fn gp4_to_gp7_full_reload_is_byte_exact() {
    day_into_gp7("gp4_gp7_full", Server::Gp4, "full", &[BY_GRP, PARTED]);
}

// ---------------------------------------------------------------------------------------------
// 2. Merge on both paths: a key twice in one batch, a key that is not the distribution key,
//    a NULL key
// ---------------------------------------------------------------------------------------------

/// `dups` on GP6, distributed by `id` (so both rows of a key are on one segment and arrive in
/// the order they were inserted): window 00-03 has 20 keys, key 7 twice (`first`, then `last`);
/// window 03-06 has a row with a NULL id.
const DUPS_SOURCE: &str = "
CREATE TABLE dups (id bigint, grp int, ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);
INSERT INTO dups SELECT i, i % 3, timestamp '2024-03-10 00:00:00' + i * interval '1 minute',
                        CASE WHEN i = 7 THEN 'first' ELSE 'r' || i END FROM generate_series(1, 20) AS i;
INSERT INTO dups VALUES (7, 1, '2024-03-10 01:00:00', 'last');
INSERT INTO dups VALUES (21, 0, '2024-03-10 04:00:00', 'ok'), (NULL, 1, '2024-03-10 04:30:00', 'no key');
";

/// `(target, DDL, key, path)`: ON CONFLICT on the distribution key, ON CONFLICT on a key that
/// holds the distribution column and another, staging for a key that is not the distribution
/// key, and staging into a randomly distributed table.
const DUP_TARGETS: &[(&str, &str, &str, &str)] = &[
    (
        "dup_by_key",
        "(id bigint PRIMARY KEY, grp int, ts timestamp NOT NULL, v text) DISTRIBUTED BY (id)",
        r#"["id"]"#,
        "on conflict",
    ),
    (
        "dup_grp_key",
        "(id bigint NOT NULL, grp int NOT NULL, ts timestamp NOT NULL, v text, PRIMARY KEY (id, grp)) DISTRIBUTED BY (grp)",
        r#"["id", "grp"]"#,
        "on conflict",
    ),
    ("dup_by_grp", "(id bigint, grp int, ts timestamp NOT NULL, v text) DISTRIBUTED BY (grp)", r#"["id"]"#, "staging"),
    ("dup_random", "(id bigint, grp int, ts timestamp NOT NULL, v text) DISTRIBUTED RANDOMLY", r#"["id"]"#, "staging"),
];

#[test]
fn merge_keeps_the_last_row_of_a_key_and_refuses_null_keys_on_both_paths() {
    let env = TestEnv::on("gp7_merge_dups", Server::Gp6, Server::Gp7);
    env.src_psql(DUPS_SOURCE);
    let mut ddl = String::from("SET ROLE gpt;\n");
    let mut config = String::from(
        "{CLUSTERS}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-03-10 00:00:00\"\n\
         end = \"2024-03-10 06:00:00\"\nduration = \"3h\"\nmode = \"merge\"\n",
    );
    for (table, columns, key, _) in DUP_TARGETS {
        ddl.push_str(&format!("CREATE TABLE {table} {columns};\n"));
        config.push_str(&format!(
            "\n[[jobs.j.tables]]\ntable = \"public.dups\"\ntarget_table = \"public.{table}\"\n\
             condition_column = \"ts\"\nkey = {key}\n"
        ));
    }
    env.dst_psql(&ddl);
    env.write_config(&config);

    let out = env.run(&["-v", "run"]);
    out.assert_code(1);
    for (table, _, _, path) in DUP_TARGETS {
        // Key 7 twice: the last row wins, counted truly (21 read, 20 written, 1 folded).
        assert_eq!(env.dst_psql(&format!("SELECT count(*), count(DISTINCT id) FROM {table}")), "20|20", "{table}");
        assert_eq!(env.dst_psql(&format!("SELECT v FROM {table} WHERE id = 7")), "last", "{table}");
        assert_eq!(
            env.dst_psql(&format!(
                "SELECT window_id || ' ' || status || ' ' || rows_read || ' ' || coalesce(rows_written::text, '-') \
                 || ' ' || coalesce(duplicates_folded::text, '-') FROM gptransfer.history \
                 WHERE target_table = 'public.{table}' ORDER BY window_id"
            )),
            "20240310000000^20240310030000 succeeded 21 20 1\n20240310030000^20240310060000 failed 2 0 -",
            "{table}"
        );
        let (on_conflict, deletes) = merge_paths(&out, &format!("public.{table}"));
        let want = if *path == "on conflict" { (1, 0) } else { (0, 1) };
        assert_eq!((on_conflict, deletes), want, "{table}: its merge path");
        // The window with the NULL key failed as a whole: not even its good row landed.
        assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM {table} WHERE id = 21")), "0", "{table}");
    }
    assert!(
        out.stderr.contains("merge key (id) is NULL in 1 row(s) of this window"),
        "the NULL key is not named:\n{}",
        out.render()
    );
    // The cursor stopped before the failed window.
    assert_eq!(
        env.dst_psql("SELECT DISTINCT cursor_end FROM gptransfer.cursors"),
        "2024-03-10 03:00:00",
        "{}",
        out.render()
    );

    // Changed rows are merged: updated in place by ON CONFLICT, replaced by the staging path.
    env.src_psql("DELETE FROM dups WHERE id IS NULL; UPDATE dups SET v = 'again ' || id WHERE id % 2 = 0;");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    run_ok(&env, &["run"]);
    for (table, _, _, _) in DUP_TARGETS {
        assert_eq!(
            env.dst_psql(&format!(
                "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE v LIKE 'again %'), \
                 max(v) FILTER (WHERE id = 7) FROM {table}"
            )),
            "21|21|10|last",
            "{table}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. GP7 as source: GP7 → GP7 and GP7 → PostgreSQL 15
// ---------------------------------------------------------------------------------------------

/// `(mode, target)`: each mode into another table layout.
const GP7_TO_GP7: &[(&str, &str)] = &[("replace", BY_KEY), ("append", RANDOMLY), ("merge", BY_GRP), ("full", PARTED)];

#[test]
fn gp7_to_gp7_every_mode_is_byte_exact_and_binary_where_it_can() {
    let env = TestEnv::on("gp7_to_gp7", Server::Gp7, Server::Gp7);
    create_source(&env);
    create_gp7_targets(&env, &GP7_TO_GP7.iter().map(|(_, t)| *t).collect::<Vec<_>>());
    env.write_config(&fact_jobs(GP7_TO_GP7, "3h", true));
    let day = fact_lines(env.src, &env.db, FACT, DAY);
    let whole = fact_lines(env.src, &env.db, FACT, "true");
    let out = run_ok(&env, &["run", "--parallel", "2"]);
    assert!(out.stdout.contains(&format!("{} window(s) loaded, 0 failed", 3 * WINDOWS + 1)), "{}", out.render());
    for (mode, t) in GP7_TO_GP7 {
        let expected = if *mode == "full" { &whole } else { &day };
        assert_targets_hold(&env, &[t], expected, mode);
    }
    // Same built-in types, encoding and integer datetimes on both sides: binary, except merge
    // (the sink numbers the batch's rows in the text stream).
    assert_eq!(
        env.dst_psql(
            "SELECT mode || ' ' || chain || ' ' || count(*) FROM gptransfer.history GROUP BY mode, chain ORDER BY mode"
        ),
        format!(
            "append copy > stream > copy (binary) {WINDOWS}\nfull copy > stream > copy (binary) 1\n\
             merge copy > stream > copy {WINDOWS}\nreplace copy > stream > copy (binary) {WINDOWS}"
        )
    );
    let again = run_ok(&env, &["run"]);
    assert!(again.stdout.contains("nothing due"), "{}", again.render());
    env.dst_psql("DELETE FROM gptransfer.cursors WHERE job <> 'eda_randomly'");
    run_ok(&env, &["run", "--parallel", "2"]);
    for (mode, t) in GP7_TO_GP7 {
        let expected = if *mode == "full" { &whole } else { &day };
        assert_targets_hold(&env, &[t], expected, &format!("{mode} after a forced re-run"));
    }
    assert_eq!(history_count(&env, "status <> 'succeeded'"), 0);
}

#[test]
fn gp7_to_postgresql_is_byte_exact_in_every_mode() {
    let env = TestEnv::on("gp7_to_pg15", Server::Gp7, Server::Pg);
    create_source(&env);
    let tables = ["eda.pg_replace", "eda.pg_append", "eda.pg_merge", "eda.pg_full"];
    let mut ddl = String::from("SET ROLE gpt;\nCREATE SCHEMA eda;\n");
    for t in tables {
        ddl.push_str(&format!("CREATE TABLE {t} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id));\n"));
    }
    env.dst_psql(&ddl);
    let modes: Vec<(&str, &str)> = ["replace", "append", "merge", "full"].into_iter().zip(tables).collect();
    env.write_config(&fact_jobs(&modes, "3h", true));
    let day = fact_lines(env.src, &env.db, FACT, DAY);
    let whole = fact_lines(env.src, &env.db, FACT, "true");
    let out = run_ok(&env, &["run", "--parallel", "2"]);
    assert!(out.stdout.contains(&format!("{} window(s) loaded, 0 failed", 3 * WINDOWS + 1)), "{}", out.render());
    for (mode, t) in &modes {
        let expected = if *mode == "full" { &whole } else { &day };
        assert_targets_hold(&env, &[t], expected, mode);
    }
    assert_eq!(
        env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history WHERE mode = 'replace'"),
        "copy > stream > copy (binary)"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. GP7 as target and state cluster: SIGKILL mid-window, one runner per job
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp7_state_sigkill_mid_window_leaves_target_and_cursor_untouched() {
    let env = TestEnv::on("gp7_sigkill", Server::Pg, Server::Gp7);
    sigkill_mid_window_leaves_target_and_cursor_untouched(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gp7_state_second_concurrent_run_exits_75() {
    let env = TestEnv::on("gp7_concurrent", Server::Pg, Server::Gp7);
    second_concurrent_run_exits_75(&env).await;
}

// ---------------------------------------------------------------------------------------------
// 5. compare GP6 ↔ GP7 and GP4 ↔ GP7: equal after the load, damaged keys named exactly
// ---------------------------------------------------------------------------------------------

#[test]
fn compare_gp6_to_gp7_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp7_compare_gp6", Server::Gp6, Server::Gp7);
    create_source(&env);
    create_gp7_targets(&env, &[BY_KEY]);
    compare_finds_and_repairs(&env, BY_KEY);
}

#[test]
fn compare_gp4_to_gp7_names_damaged_keys_and_repairs() {
    let env = TestEnv::on("gp7_compare_gp4", Server::Gp4, Server::Gp7);
    create_source(&env);
    create_gp7_targets(&env, &[PARTED]);
    compare_finds_and_repairs(&env, PARTED);
}

/// The flavours detected from the real servers' `version()`.
#[test]
fn the_real_servers_are_detected_as_gp4_and_gp7() {
    let env = TestEnv::on("gp7_flavours", Server::Gp4, Server::Gp7);
    assert_eq!(env.src.kind, Kind::Gp4);
    env.write_config("{CLUSTERS}\n");
    let out = run_ok(&env, &["config", "check"]);
    assert!(out.stdout.contains("gp4") && out.stdout.contains("gp7"), "{}", out.render());
}
