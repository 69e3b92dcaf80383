//! `full` loads with the target's indexes dropped after the TRUNCATE and rebuilt after the COPY,
//! all in the window's transaction (issue 11 part 5): every index comes back with its exact
//! definition, name, tablespace, comment, CLUSTER mark and replica identity; a failure anywhere
//! (a duplicate key the unique index refuses, a value COPY refuses) leaves the old rows with
//! all their indexes; an index a foreign key depends on is kept as it is; the same on GP6 and
//! GP7.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{table_digest, Pg, Server, TestEnv};

const COLUMNS: &[&str] = &["id", "code", "grp", "name", "active", "updated"];

fn write_config(env: &TestEnv, table: &str, sink: &str) {
    env.write_config(&format!(
        r#"{{CLUSTERS}}
[jobs.dims]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
end = "2024-01-02 00:00:00"
duration = "1d"
sink = {sink}

[[jobs.dims.tables]]
table = "{table}"
mode = "full"
"#
    ));
}

/// The source rows: `rows` dimension rows with a unique code, a group, and NULLs.
fn source_sql(table: &str, rows: u32) -> String {
    format!(
        "CREATE TABLE {table} (id int NOT NULL, code text NOT NULL, grp int, name text, active boolean, updated timestamp);
         INSERT INTO {table} SELECT i, 'C' || i, i % 17, CASE WHEN i % 9 = 0 THEN NULL ELSE 'name ' || i END,
                i % 3 <> 0, timestamp '2020-01-01' + i * interval '1 minute'
         FROM generate_series(1, {rows}) AS i;"
    )
}

/// Every index of `table` in a comparable form: name, definition, the constraint it backs,
/// tablespace, CLUSTER mark, replica identity and comments; one line each, by name.
fn index_definitions(pg: &Pg, db: &str, table: &str) -> String {
    let replident = if pg.kind == support::Kind::Pg15 { "i.indisreplident" } else { "false" };
    pg.psql(
        db,
        &format!(
            "SELECT ic.relname || ' | ' || pg_get_indexdef(i.indexrelid) || ' | ' \
                    || coalesce(con.conname || ' ' || pg_get_constraintdef(con.oid), '-') || ' | ' \
                    || coalesce(ts.spcname, 'default') || ' | clustered=' || i.indisclustered \
                    || ' | replident=' || {replident} || ' | valid=' || i.indisvalid \
                    || ' | ' || coalesce(obj_description(i.indexrelid, 'pg_class'), '-') \
                    || ' | ' || coalesce(obj_description(con.oid, 'pg_constraint'), '-')
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
             LEFT JOIN pg_constraint con ON con.conrelid = i.indrelid AND con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
             WHERE i.indrelid = '{table}'::regclass
             ORDER BY ic.relname"
        ),
    )
}

/// `name oid` of every index of `table`: an index dropped and created again has a new oid
/// (TRUNCATE alone keeps it), the evidence that it was rebuilt.
fn index_oids(pg: &Pg, db: &str, table: &str) -> Vec<(String, String)> {
    pg.psql(
        db,
        &format!(
            "SELECT ic.relname || ' ' || ic.oid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = '{table}'::regclass ORDER BY ic.relname"
        ),
    )
    .lines()
    .map(|l| {
        let (name, oid) = l.rsplit_once(' ').unwrap();
        (name.to_string(), oid.to_string())
    })
    .collect()
}

fn digest(pg: &Pg, db: &str, table: &str) -> String {
    table_digest(pg, db, table, COLUMNS, "id", "true")
}

fn cursor(env: &TestEnv, table: &str) -> String {
    env.dst_psql(&format!("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = 'public.{table}'"))
}

/// The target of the PostgreSQL tests: every kind of index a dimension table carries.
fn indexed_target_sql(env: &TestEnv, table: &str) -> String {
    // A tablespace of this test's own, inside the server's data directory (the server runs as
    // another user: a directory of ours would not do).
    let tablespace = format!("ts_{}", env.db);
    format!(
        "SET allow_in_place_tablespaces = on;
         CREATE TABLESPACE {tablespace} LOCATION '';
         CREATE TABLE {table} (name text, id int NOT NULL, code text NOT NULL, grp int, active boolean, updated timestamp,
                               CONSTRAINT dim_pk PRIMARY KEY (id),
                               CONSTRAINT dim_code_uq UNIQUE (code) WITH (fillfactor = 80));
         CREATE INDEX dim_active_only ON {table} (updated) WHERE active;
         CREATE INDEX dim_lower_name ON {table} (lower(name));
         CREATE INDEX \"Dim Grp, Updated\" ON {table} (grp, updated DESC NULLS LAST) TABLESPACE {tablespace};
         CREATE UNIQUE INDEX dim_id_code ON {table} (id, code);
         COMMENT ON INDEX dim_lower_name IS 'for the search page';
         COMMENT ON CONSTRAINT dim_code_uq ON {table} IS 'codes are unique';
         ALTER TABLE {table} CLUSTER ON \"Dim Grp, Updated\";
         ALTER TABLE {table} REPLICA IDENTITY USING INDEX dim_id_code;
         INSERT INTO {table} (id, code, name) VALUES (1, 'junk', 'junk'), (999999, 'junk 2', NULL);"
    )
}

// ---------------------------------------------------------------------------------------------
// 1. PostgreSQL: every index rebuilt, identical
// ---------------------------------------------------------------------------------------------

#[test]
fn full_reload_rebuilds_every_index_identically() {
    let env = TestEnv::new("full_reload_rebuilds_indexes");
    env.src_psql(&source_sql("dim", 5000));
    env.dst_psql(&indexed_target_sql(&env, "dim"));
    write_config(&env, "dim", "\"copy\"");
    let before = index_definitions(env.dst, &env.dst_db, "dim");
    assert_eq!(before.lines().count(), 6, "{before}");
    let oids = index_oids(env.dst, &env.dst_db, "dim");

    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.dst_db, "dim"), digest(env.src, &env.db, "dim"));
    assert_eq!(index_definitions(env.dst, &env.dst_db, "dim"), before, "the indexes after the reload");
    for ((name, old), (new_name, new)) in oids.iter().zip(index_oids(env.dst, &env.dst_db, "dim")) {
        assert_eq!(name, &new_name);
        assert_ne!(old, &new, "index {name} was not rebuilt (same oid)");
    }
    // The constraints hold and serve: a duplicate is refused, the planner can use the indexes.
    assert!(env.dst.try_psql(&env.dst_db, "INSERT INTO dim (id, code) VALUES (7, 'new')").is_err());
    assert!(env.dst.try_psql(&env.dst_db, "INSERT INTO dim (id, code) VALUES (-7, 'C7')").is_err());
    assert_eq!(env.dst_psql("SELECT count(*) FROM dim WHERE lower(name) = 'name 10'"), "1");

    // Switched off: the same reload keeps the indexes (same oids).
    write_config(&env, "dim", "{ plugin = \"copy\", rebuild_indexes = false }");
    let oids = index_oids(env.dst, &env.dst_db, "dim");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.dst_db, "dim"), digest(env.src, &env.db, "dim"));
    assert_eq!(index_oids(env.dst, &env.dst_db, "dim"), oids, "rebuild_indexes = false keeps the indexes");
    assert_eq!(index_definitions(env.dst, &env.dst_db, "dim"), before);
}

// ---------------------------------------------------------------------------------------------
// 2. A failure after the indexes were dropped leaves the old table with all its indexes
// ---------------------------------------------------------------------------------------------

/// Runs the reload that must fail, then checks that the target kept its rows, its indexes (the
/// very same ones) and its cursor; returns the run's stderr.
fn failed_reload_changes_nothing(env: &TestEnv, table: &str) -> String {
    let rows = digest(env.dst, &env.dst_db, table);
    let definitions = index_definitions(env.dst, &env.dst_db, table);
    let oids = index_oids(env.dst, &env.dst_db, table);
    let cursor_before = cursor(env, table);
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert_eq!(digest(env.dst, &env.dst_db, table), rows, "{table}: rows after the failed reload");
    assert_eq!(index_definitions(env.dst, &env.dst_db, table), definitions, "{table}: indexes");
    assert_eq!(index_oids(env.dst, &env.dst_db, table), oids, "{table}: the very same indexes");
    assert_eq!(cursor(env, table), cursor_before, "{table}: cursor moved");
    out.stderr
}

#[test]
fn duplicate_key_fails_the_rebuild_and_keeps_the_old_table() {
    let env = TestEnv::new("full_reload_duplicate_key");
    env.src_psql(&source_sql("dim", 3000));
    env.dst_psql(&indexed_target_sql(&env, "dim"));
    write_config(&env, "dim", "\"copy\"");
    env.run(&["run"]).assert_success();
    // A code twice at the source: the unique constraint cannot be rebuilt.
    env.src_psql("UPDATE dim SET code = 'C5' WHERE id = 2000");
    env.dst_psql("DELETE FROM gptransfer.cursors; INSERT INTO dim (id, code) VALUES (-1, 'kept')");
    let stderr = failed_reload_changes_nothing(&env, "dim");
    for needle in ["public.dim", "20240101000000", "dim_code_uq", "C5", "rebuild_indexes"] {
        assert!(stderr.contains(needle), "the error names {needle}:\n{stderr}");
    }
    assert_eq!(
        env.dst_psql("SELECT status FROM gptransfer.history ORDER BY id DESC LIMIT 1"),
        "failed",
        "the failed window is recorded"
    );
}

#[test]
fn copy_error_after_the_drop_keeps_the_old_table() {
    let env = TestEnv::new("full_reload_copy_error");
    env.src_psql(&source_sql("dim", 3000));
    env.dst_psql(&indexed_target_sql(&env, "dim"));
    write_config(&env, "dim", "\"copy\"");
    env.run(&["run"]).assert_success();
    // A value the target refuses, late in the COPY (after the indexes were dropped).
    env.src_psql("UPDATE dim SET grp = NULL WHERE id = 2999");
    env.dst_psql("ALTER TABLE dim ALTER COLUMN grp SET NOT NULL; DELETE FROM gptransfer.cursors");
    let stderr = failed_reload_changes_nothing(&env, "dim");
    assert!(stderr.contains("grp"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 4. Foreign keys: an index a foreign key depends on is kept
// ---------------------------------------------------------------------------------------------

#[test]
fn index_a_foreign_key_depends_on_is_kept() {
    let env = TestEnv::new("full_reload_foreign_key");
    // A self-referencing table (a table referenced by another table cannot be truncated at all).
    let create = "CREATE TABLE node (id int PRIMARY KEY, parent int REFERENCES node (id), name text UNIQUE);";
    env.src_psql(&format!(
        "{create} INSERT INTO node SELECT i, CASE WHEN i > 1 THEN i / 2 END, 'n' || i FROM generate_series(1, 2000) i;"
    ));
    env.dst_psql(&format!(
        "{create} CREATE INDEX node_parent ON node (parent); INSERT INTO node VALUES (1, NULL, 'x');"
    ));
    env.write_config(
        "{CLUSTERS}
[jobs.dims]
from = \"src\"
to = \"dst\"
start = \"2024-01-01 00:00:00\"
end = \"2024-01-02 00:00:00\"
duration = \"1d\"
# The builds' memory, set for the transaction only.
sink = { plugin = \"copy\", maintenance_work_mem = \"200MB\" }

[[jobs.dims.tables]]
table = \"node\"
mode = \"full\"
",
    );
    let definitions = index_definitions(env.dst, &env.dst_db, "node");
    let oids = index_oids(env.dst, &env.dst_db, "node");
    env.run(&["run"]).assert_success();
    let columns = &["id", "parent", "name"];
    assert_eq!(
        table_digest(env.dst, &env.dst_db, "node", columns, "id", "true"),
        table_digest(env.src, &env.db, "node", columns, "id", "true")
    );
    assert_eq!(index_definitions(env.dst, &env.dst_db, "node"), definitions);
    let after = index_oids(env.dst, &env.dst_db, "node");
    for ((name, old), (_, new)) in oids.iter().zip(&after) {
        if name == "node_pkey" {
            assert_eq!(old, new, "the key the foreign key references stays");
        } else {
            assert_ne!(old, new, "{name} rebuilt");
        }
    }
    // The foreign key still holds.
    assert_eq!(
        env.dst_psql("SELECT convalidated FROM pg_constraint WHERE conrelid = 'node'::regclass AND contype = 'f'"),
        "t"
    );
    assert!(env.dst.try_psql(&env.dst_db, "INSERT INTO node VALUES (5000, 4999, 'orphan')").is_err());

    // The setting reaches the server: a value it refuses fails the window, named, and the
    // reload is rolled back.
    let config = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    env.write_config(&config.replace("\"200MB\"", "\"lots\""));
    env.dst_psql("DELETE FROM gptransfer.cursors; UPDATE node SET name = 'changed' WHERE id = 1");
    let rows = table_digest(env.dst, &env.dst_db, "node", columns, "id", "true");
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stderr.contains("maintenance_work_mem"), "{}", out.render());
    assert_eq!(table_digest(env.dst, &env.dst_db, "node", columns, "id", "true"), rows);
    assert_eq!(index_definitions(env.dst, &env.dst_db, "node"), definitions);
}

// ---------------------------------------------------------------------------------------------
// 3. GP6 and GP7
// ---------------------------------------------------------------------------------------------

#[test]
fn gp6_full_reload_rebuilds_indexes_and_rolls_back_on_duplicates() {
    greenplum_full_reload("gp6_full_reload_indexes", Server::Gp6);
}

#[test]
fn gp7_full_reload_rebuilds_indexes_and_rolls_back_on_duplicates() {
    greenplum_full_reload("gp7_full_reload_indexes", Server::Gp7);
}

/// Into Greenplum: a heap table distributed by the key, its primary key holding the
/// distribution column, a partial and an expression index; an append-optimized column table
/// with a btree and a bitmap index. Index DDL inside the window's transaction works on both.
fn greenplum_full_reload(name: &str, target: Server) {
    let env = TestEnv::on(name, Server::Pg, target);
    env.src_psql(&format!(
        "{} {} {}",
        source_sql("dim", 5000),
        source_sql("dim_ao", 5000),
        source_sql("dim_parted", 5000)
    ));
    // A partitioned table keeps its indexes (and its partitions theirs).
    let parted = if target == Server::Gp6 {
        "PARTITION BY RANGE (id) (START (0) END (10000) EVERY (5000));"
    } else {
        "PARTITION BY RANGE (id);
         CREATE TABLE dim_parted_1 PARTITION OF dim_parted FOR VALUES FROM (0) TO (3000);
         CREATE TABLE dim_parted_2 PARTITION OF dim_parted FOR VALUES FROM (3000) TO (10000);"
    };
    env.dst_psql(&format!(
        "SET ROLE gpt;
         CREATE TABLE dim_parted (id int NOT NULL, code text NOT NULL, grp int, name text, active boolean, updated timestamp)
           DISTRIBUTED BY (id) {parted}
         CREATE INDEX dim_parted_code ON dim_parted (code);"
    ));
    env.dst_psql(
        "SET ROLE gpt;
         CREATE TABLE dim (name text, id int NOT NULL, code text NOT NULL, grp int, active boolean, updated timestamp,
                           CONSTRAINT dim_pk PRIMARY KEY (id, code)) DISTRIBUTED BY (id);
         CREATE INDEX dim_grp ON dim (grp, updated) WHERE active;
         CREATE INDEX dim_lower_name ON dim (lower(name));
         COMMENT ON INDEX dim_grp IS 'active rows by group';
         CREATE TABLE dim_ao (id int NOT NULL, code text NOT NULL, grp int, name text, active boolean, updated timestamp)
           WITH (appendonly = true, orientation = column) DISTRIBUTED BY (id);
         CREATE INDEX dim_ao_code ON dim_ao (code);
         CREATE INDEX dim_ao_grp ON dim_ao USING bitmap (grp);
         INSERT INTO dim (id, code) VALUES (1, 'junk');
         INSERT INTO dim_ao (id, code) VALUES (1, 'junk');",
    );
    env.write_config(
        "{CLUSTERS}
[jobs.dims]
from = \"src\"
to = \"dst\"
start = \"2024-01-01 00:00:00\"
end = \"2024-01-02 00:00:00\"
duration = \"1d\"
mode = \"full\"

[[jobs.dims.tables]]
table = \"dim\"

[[jobs.dims.tables]]
table = \"dim_ao\"

[[jobs.dims.tables]]
table = \"dim_parted\"
",
    );
    let partitions: Vec<String> = env
        .dst_psql("SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'dim_parted'::regclass ORDER BY 1")
        .lines()
        .map(String::from)
        .chain(["dim_parted".to_string()])
        .collect();
    assert_eq!(partitions.len(), 3, "{partitions:?}");
    let parted_oids: Vec<_> = partitions.iter().map(|t| index_oids(env.dst, &env.dst_db, t)).collect();
    let tables = ["dim", "dim_ao"];
    let before: Vec<_> = tables.iter().map(|t| index_definitions(env.dst, &env.dst_db, t)).collect();
    let oids: Vec<_> = tables.iter().map(|t| index_oids(env.dst, &env.dst_db, t)).collect();
    env.run(&["run"]).assert_success();
    for (i, t) in tables.iter().enumerate() {
        assert_eq!(digest(env.dst, &env.dst_db, t), digest(env.src, &env.db, t), "{t}");
        assert_eq!(index_definitions(env.dst, &env.dst_db, t), before[i], "{t}: indexes");
        for ((name, old), (_, new)) in oids[i].iter().zip(index_oids(env.dst, &env.dst_db, t)) {
            assert_ne!(old, &new, "{t}: index {name} was not rebuilt");
        }
    }
    assert!(env.dst.try_psql(&env.dst_db, "INSERT INTO dim (id, code) VALUES (7, 'C7')").is_err());
    assert_eq!(digest(env.dst, &env.dst_db, "dim_parted"), digest(env.src, &env.db, "dim_parted"));
    for (t, before) in partitions.iter().zip(&parted_oids) {
        assert!(!before.is_empty(), "{t} has an index");
        assert_eq!(&index_oids(env.dst, &env.dst_db, t), before, "{t}: indexes kept");
    }

    // A key twice at the source: the primary key cannot be rebuilt; nothing changes.
    env.src_psql("INSERT INTO dim SELECT * FROM dim WHERE id = 5");
    env.dst_psql("DELETE FROM gptransfer.cursors; INSERT INTO dim (id, code) VALUES (-1, 'kept')");
    let stderr = failed_reload_changes_nothing(&env, "dim");
    assert!(stderr.contains("dim_pk") && stderr.contains("public.dim"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 2b. A signal mid-COPY, the indexes dropped in the open transaction
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_copy_keeps_the_old_table_and_its_indexes() {
    use support::held::{hold, release, wait_until_mid_copy, BIG_ROWS, HOLD_AT, HOLD_KEY};
    use support::runs::{wait_until_gone, Guard};
    let env = TestEnv::new("full_reload_sigterm");
    // The source view stops at row HOLD_AT while the test holds HOLD_KEY (as support::held's).
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
        "CREATE TABLE big (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text);
         CREATE INDEX big_ts ON big (ts) WHERE payload IS NOT NULL;
         INSERT INTO big VALUES (1, '2020-01-01', 'old'), (2, '2020-01-02', NULL);",
    );
    env.write_config(
        "{CLUSTERS}
[jobs.j]
from = \"src\"
to = \"dst\"
start = \"2024-01-01 00:00:00\"
end = \"2024-01-02 00:00:00\"
duration = \"1d\"

[[jobs.j.tables]]
table = \"big\"
mode = \"full\"
",
    );
    let columns = &["id", "ts", "payload"];
    let rows = table_digest(env.dst, &env.dst_db, "big", columns, "id", "true");
    let definitions = index_definitions(env.dst, &env.dst_db, "big");
    let oids = index_oids(env.dst, &env.dst_db, "big");
    let src = env.src.admin(&env.db).await;
    let dst = env.dst.admin(&env.dst_db).await;
    let locker = hold(&env).await;

    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_copy(&src, &dst).await;
    // The run's open transaction has dropped the primary key (a TRUNCATE alone locks the
    // table and its indexes, never the constraint).
    let dropped = dst
        .query_one(
            "SELECT count(*) FROM pg_locks l WHERE l.locktype = 'object' \
             AND l.classid = 'pg_constraint'::regclass AND l.mode = 'AccessExclusiveLock' \
             AND l.objid = (SELECT oid FROM pg_constraint WHERE conname = 'big_pkey')",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(dropped, 1, "the run has dropped big_pkey in its open transaction");
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.code, 143, "{}", out.render());
    wait_until_gone(&dst).await;
    release(&locker).await;
    wait_until_gone(&src).await;

    assert_eq!(table_digest(env.dst, &env.dst_db, "big", columns, "id", "true"), rows);
    assert_eq!(index_definitions(env.dst, &env.dst_db, "big"), definitions);
    assert_eq!(index_oids(env.dst, &env.dst_db, "big"), oids);
    assert_eq!(cursor(&env, "big"), "");
}

// ---------------------------------------------------------------------------------------------
// 5. A partitioned table keeps its indexes
// ---------------------------------------------------------------------------------------------

#[test]
fn partitioned_table_keeps_its_indexes() {
    let env = TestEnv::new("full_reload_partitioned");
    env.src_psql(&source_sql("parted", 3000));
    // The partitions' indexes come from the parent's, with generated names: left alone.
    env.dst_psql(
        "CREATE TABLE parted (id int NOT NULL, code text NOT NULL, grp int, name text, active boolean, updated timestamp,
                              PRIMARY KEY (id, grp)) PARTITION BY LIST (grp);
         CREATE TABLE parted_low PARTITION OF parted FOR VALUES IN (0, 1, 2, 3, 4, 5, 6, 7);
         CREATE TABLE parted_high PARTITION OF parted DEFAULT;
         CREATE INDEX parted_code ON parted (code);
         CREATE INDEX parted_low_name ON parted_low (name);",
    );
    env.write_config(
        "{CLUSTERS}
[jobs.dims]
from = \"src\"
to = \"dst\"
start = \"2024-01-01 00:00:00\"
end = \"2024-01-02 00:00:00\"
duration = \"1d\"
mode = \"full\"

[[jobs.dims.tables]]
table = \"parted\"
",
    );
    let tables = ["parted", "parted_low", "parted_high"];
    let oids: Vec<_> = tables.iter().map(|t| index_oids(env.dst, &env.dst_db, t)).collect();
    assert_eq!(oids[1].len(), 3, "{:?}", oids[1]);
    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.dst_db, "parted"), digest(env.src, &env.db, "parted"));
    for (t, before) in tables.iter().zip(&oids) {
        assert_eq!(&index_oids(env.dst, &env.dst_db, t), before, "{t}: indexes kept");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. COPY FREEZE after the TRUNCATE (PostgreSQL)
// ---------------------------------------------------------------------------------------------

#[test]
fn freeze_writes_the_reload_frozen() {
    let env = TestEnv::new("full_reload_freeze");
    env.src_psql(&source_sql("dim", 5000));
    env.dst_psql(&format!("CREATE EXTENSION pg_visibility; {}", indexed_target_sql(&env, "dim")));
    let frozen = "SELECT all_visible || ' ' || all_frozen FROM pg_visibility_map_summary('dim')";
    // The stream transport picks binary here; the server takes the other spellings of
    // `copy_in_frozen` too.
    env.dst_psql(
        "BEGIN; TRUNCATE dim;\nCOPY dim (id, code, grp) FROM STDIN WITH FREEZE;\n1\ta\t1\n\\.\n\
         COPY dim (id, code, grp) FROM STDIN WITH CSV FREEZE;\n2,b,1\n\\.\nROLLBACK;",
    );
    for freeze in [false, true] {
        write_config(&env, "dim", &format!("{{ plugin = \"copy\", freeze = {freeze} }}"));
        env.dst_psql("DROP SCHEMA IF EXISTS gptransfer CASCADE");
        env.run(&["run"]).assert_success();
        assert_eq!(digest(env.dst, &env.dst_db, "dim"), digest(env.src, &env.db, "dim"), "freeze={freeze}");
        let pages = env.dst_psql("SELECT relpages FROM pg_class WHERE relname = 'dim'");
        let summary = env.dst_psql(frozen);
        if freeze {
            assert_eq!(summary, format!("{pages} {pages}"), "every page all-visible and all-frozen");
        } else {
            assert_eq!(summary, "0 0", "without FREEZE");
        }
    }
}
