//! `create_target` (issue 12, item 5): a missing target is created from the source's columns
//! before the first window — from PostgreSQL 15, 8.2 and a real GP4 cluster into PostgreSQL and
//! a real GP6 cluster — and the created table loads byte-exact; on GP6 it is distributed by the
//! source's distribution key (else the key, else randomly).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::canonical::{assert_same_lines, canonical_lines};
use support::fact::{fact_lines, fact_source_sql, DAY, FACT};
use support::{defects_digest, defects_source_sql, Server, TestEnv};

fn job(table: &str, key: &str, extra: &str) -> String {
    format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "6h"
create_target = true
{extra}
[[jobs.j.tables]]
table = "{table}"
condition_column = "evt_ts"
key = {key}
"#
    )
}

/// The target's distribution policy on Greenplum: the key's columns, or `randomly`.
fn distribution(env: &TestEnv, table: &str) -> String {
    let key = env.dst_psql(&format!(
        "SELECT coalesce(array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a, \
         unnest(p.distkey::int2[]) WITH ORDINALITY k(n, o) WHERE a.attrelid = p.localoid AND a.attnum = k.n ORDER BY k.o), ','), '') \
         FROM gp_distribution_policy p WHERE p.localoid = '{table}'::regclass"
    ));
    if key.is_empty() {
        "randomly".into()
    } else {
        key
    }
}

/// The primary key's columns, or "" when there is none.
fn primary_key(env: &TestEnv, table: &str) -> String {
    env.dst_psql(&format!(
        "SELECT array_to_string(ARRAY(SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid \
         AND a.attnum = ANY (c.conkey) WHERE c.conrelid = '{table}'::regclass AND c.contype = 'p' ORDER BY a.attnum), ',')"
    ))
}

#[test]
fn from_postgresql_into_postgresql_the_plan_shows_it_and_the_first_run_creates_it() {
    let env = TestEnv::new("create_pg_pg");
    env.src_psql(&defects_source_sql(600, "36 seconds"));
    env.write_config(&job("eda.defects", r#"["id"]"#, ""));
    let plan = env.run(&["plan"]);
    plan.assert_success();
    cli_snapshot!("create_target_plan", plan);
    let check = env.run(&["config", "check"]);
    check.assert_success();
    assert!(check.stdout.contains("target missing: the first run creates it: CREATE TABLE"), "{}", check.render());
    // A dry run creates nothing.
    env.run(&["run", "--dry-run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'eda'"), "0");

    let out = env.run(&["run"]);
    out.assert_success();
    assert_eq!(defects_digest(env.dst, &env.dst_db), defects_digest(env.src, &env.db));
    assert_eq!(primary_key(&env, "eda.defects"), "id");
    assert_eq!(
        env.dst_psql(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = 'eda.defects'::regclass AND attnum > 0"
        ),
        "id bigint not null, evt_ts timestamp without time zone not null, glass text, qty numeric(12,3), payload bytea"
    );
    // The next run finds it and goes on; the plan no longer offers to create it.
    let plan = env.run(&["plan", "--output", "json"]);
    assert!(!plan.stdout.contains("creates_target"), "{}", plan.render());
}

#[test]
fn from_8_2_into_gp6_distributed_by_the_key() {
    let env = TestEnv::on("create_pg82_gp6", Server::Pg82, Server::Gp6);
    env.src_psql(&fact_source_sql(env.src.kind));
    env.write_config(&job(FACT, r#"["id"]"#, ""));
    env.run(&["run"]).assert_success();
    assert_same_lines(FACT, &fact_lines(env.src, &env.db, FACT, DAY), &fact_lines(env.dst, &env.dst_db, FACT, "true"));
    // 8.2 has no distribution: the key distributes it, and is its primary key.
    assert_eq!(distribution(&env, FACT), "id");
    assert_eq!(primary_key(&env, FACT), "id");
    assert_eq!(env.dst_psql(&format!("SELECT count(DISTINCT gp_segment_id) FROM {FACT}")), "2");
}

/// A real GP4 table distributed by `grp`, keyed by `id`: GP6 gets the source's distribution,
/// and no primary key (one must hold the distribution key, and `grp` is not in the key).
#[test]
fn from_gp4_into_gp6_distributed_like_the_source() {
    let env = TestEnv::on("create_gp4_gp6", Server::Gp4, Server::Gp6);
    env.src_psql(
        "CREATE SCHEMA eda;
         CREATE TABLE eda.events (id bigint NOT NULL, grp int, evt_ts timestamp NOT NULL, v varchar(30),
                                  amount numeric(12,2), r real, d double precision) DISTRIBUTED BY (grp);
         INSERT INTO eda.events SELECT i, i % 5, timestamp '2024-03-10 00:00:00' + i * interval '7 seconds',
                'v' || i, i * 1.25, i * 0.1, i / 3.0 FROM generate_series(1, 5000) AS i;",
    );
    env.write_config(&job("eda.events", r#"["id"]"#, ""));
    env.run(&["run"]).assert_success();
    let columns = &[
        ("grp", "int4"),
        ("evt_ts", "timestamp"),
        ("v", "text"),
        ("amount", "numeric"),
        ("r", "float4"),
        ("d", "float8"),
    ];
    let filter = "eda.events WHERE evt_ts < '2024-03-11'";
    assert_same_lines(
        "eda.events",
        &canonical_lines(env.src, &env.db, filter, columns),
        &canonical_lines(env.dst, &env.dst_db, "eda.events", columns),
    );
    assert_eq!(distribution(&env, "eda.events"), "grp");
    assert_eq!(primary_key(&env, "eda.events"), "");
    assert_eq!(
        env.dst_psql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'eda.events'::regclass AND attname = 'v'"),
        "character varying(30)"
    );
}

/// From PostgreSQL with no key into GP6: randomly. A target that exists with other columns is
/// checked as always: refused, nothing created or changed.
#[test]
fn without_a_key_randomly_and_an_existing_target_is_never_replaced() {
    let env = TestEnv::on("create_pg_gp6_random", Server::Pg, Server::Gp6);
    env.src_psql(&defects_source_sql(600, "36 seconds"));
    env.write_config(&job("eda.defects", "[]", ""));
    env.run(&["run"]).assert_success();
    assert_eq!(distribution(&env, "eda.defects"), "randomly");
    assert_eq!(defects_digest(env.dst, &env.dst_db), defects_digest(env.src, &env.db));

    env.dst_psql("DROP TABLE eda.defects; CREATE TABLE eda.defects (id bigint, other text) DISTRIBUTED BY (id)");
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains("source and target columns do not match"), "{}", out.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'eda.defects'::regclass AND attnum > 0"),
        "id,other"
    );
}

#[test]
fn from_8_2_into_postgresql() {
    let env = TestEnv::on("create_pg82_pg15", Server::Pg82, Server::Pg);
    env.src_psql(&fact_source_sql(env.src.kind));
    env.write_config(&job(FACT, r#"["id"]"#, ""));
    env.run(&["run"]).assert_success();
    assert_same_lines(FACT, &fact_lines(env.src, &env.db, FACT, DAY), &fact_lines(env.dst, &env.dst_db, FACT, "true"));
    assert_eq!(primary_key(&env, FACT), "id");
}
