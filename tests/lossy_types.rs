//! A target column of a narrower type than the source's must never change data silently:
//! every pair whose target input would round or cut a value of the source type is refused by
//! `config check` and `run` (exit 2, no data moved, no history row), naming table, column,
//! both types, what would happen and the ALTER TABLE that widens it; `lossy_columns` accepts
//! it, and the run then loads the values as the target's input changes them. Pairs that keep
//! every value, or fail loudly on the ones they cannot hold, pass as before. PostgreSQL 15 →
//! PostgreSQL 15 through the master, GP6 → GP6 through gpfdist (the segment path); GP4.3 and
//! PostgreSQL 8.2 sources and GP7 read their modifiers alike; and `create_target` creates the
//! source's types exactly, so what it creates passes the check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{gp6_home, Server, TestEnv};

/// `(column, source type, target type, source literal, predicate true on the target after an
/// accepted load)`.
type Pair = (&'static str, &'static str, &'static str, &'static str, &'static str);

#[rustfmt::skip]
const LOSSY: &[Pair] = &[
    ("n_scale", "numeric(10,3)", "numeric(10,1)", "1.234", "n_scale = 1.2"),
    ("n_free", "numeric", "numeric(12,2)", "1.005", "n_free = 1.01"),
    ("n_f8", "numeric", "float8", "0.12345678901234567890123", "n_f8 = '0.12345678901234568'::float8"),
    ("n_arr", "numeric(10,3)[]", "numeric(10,1)[]", "{1.234}", "n_arr = '{1.2}'"),
    ("f8_f4", "float8", "real", "16777217", "f8_f4::float8 = 16777216"),
    ("f8_n", "float8", "numeric(10,2)", "0.125", "f8_n = 0.13"),
    ("i4_f4", "int4", "real", "16777217", "i4_f4::float8 = 16777216"),
    ("i8_f8", "int8", "float8", "9007199254740993", "i8_f8 = 9007199254740992::float8"),
    ("i4_oid", "int4", "oid", "-1", "i4_oid::text = '4294967295'"),
    ("vc_vc", "varchar(10)", "varchar(2)", "ab   ", "vc_vc = 'ab'"),
    ("t_vc", "text", "varchar(3)", "abc  ", "t_vc = 'abc'"),
    ("vc_bpc", "varchar(5)", "char(5)", "ab ", "vc_bpc::text = 'ab'"),
    ("t_name", "text", "name", "0123456789012345678901234567890123456789012345678901234567890123456789", "length(t_name) = 63"),
    ("t_char", "text", "\"char\"", "abc", "t_char = 'a'"),
    ("ts0", "timestamp", "timestamp(0)", "2024-01-01 00:00:00.6", "ts0 = '2024-01-01 00:00:01'"),
    ("tstz2", "timestamptz", "timestamptz(2)", "2024-01-01 00:00:00.123456+00", "tstz2 = '2024-01-01 00:00:00.12+00'"),
    ("ts_date", "timestamp", "date", "2024-01-01 23:00:00", "ts_date = '2024-01-01'"),
    ("tm0", "time", "time(0)", "12:00:00.6", "tm0 = '12:00:01'"),
    ("tmtz1", "timetz", "timetz(1)", "12:00:00.66+08", "tmtz1 = '12:00:00.7+08'"),
    ("tmtz_tm", "timetz", "time", "12:00:00+08", "tmtz_tm = '12:00:00'"),
    ("iv_ym", "interval", "interval year to month", "1 year 2 mons 3 days 04:05:06", "iv_ym = '1 year 2 mons'"),
    ("iv0", "interval", "interval(0)", "00:00:01.6", "iv0 = '00:00:02'"),
    ("js_jb", "json", "jsonb", "{\"a\": 1, \"a\": 2}", "js_jb = '{\"a\": 2}'"),
];

/// Pairs that keep every value (or refuse loudly the ones the target cannot hold).
#[rustfmt::skip]
const LOSSLESS: &[Pair] = &[
    ("n_wider", "numeric(10,1)", "numeric(10,3)", "1.2", "n_wider::text = '1.200'"),
    ("n_free", "numeric(10,2)", "numeric", "1.25", "n_free::text = '1.25'"),
    ("n_prec", "numeric(12,2)", "numeric(8,2)", "123456.78", "n_prec::text = '123456.78'"),
    ("n_f8", "numeric(15,3)", "float8", "123456789012.345", "n_f8 = 123456789012.345::float8"),
    ("i4_n", "int4", "numeric(12,2)", "2147483647", "i4_n::text = '2147483647.00'"),
    ("i2_i8", "int2", "int8", "-32768", "i2_i8 = -32768"),
    ("i8_i4", "int8", "int4", "2147483647", "i8_i4 = 2147483647"),
    ("i4_f8", "int4", "float8", "2147483647", "i4_f8 = 2147483647"),
    ("f4_f8", "real", "float8", "1.5", "f4_f8 = 1.5"),
    ("f8_n", "float8", "numeric", "0.1", "f8_n::float8 = 0.1::float8"),
    ("f8_t", "float8", "text", "0.1", "f8_t::float8 = 0.1::float8"),
    ("i4_t", "int4", "text", "-7", "i4_t = '-7'"),
    ("vc_vc", "varchar(5)", "varchar(10)", "ab  ", "vc_vc = 'ab  '"),
    ("vc_t", "varchar(5)", "text", "ab ", "vc_t = 'ab '"),
    ("t_vc", "text", "varchar", "ab ", "t_vc = 'ab '"),
    ("bpc_bpc", "char(5)", "char(3)", "ab", "bpc_bpc = 'ab'"),
    ("bpc_vc", "char(5)", "varchar(2)", "ab", "bpc_vc = 'ab'"),
    ("i4_bpc", "int4", "char(4)", "12", "trim(i4_bpc) = '12'"),
    ("ts_ts", "timestamp(0)", "timestamp(3)", "2024-01-01 00:00:01", "ts_ts = '2024-01-01 00:00:01'"),
    ("ts_tstz", "timestamp", "timestamptz", "2024-01-01 00:00:00.5", "ts_tstz = '2024-01-01 00:00:00.5'"),
    ("d_ts", "date", "timestamp(0)", "2024-02-29", "d_ts = '2024-02-29 00:00:00'"),
    ("tm_tm", "time(2)", "time", "12:00:00.25", "tm_tm = '12:00:00.25'"),
    ("iv_iv", "interval year to month", "interval", "1 year 2 mons", "iv_iv = '1 year 2 mons'"),
    ("iv_p", "interval(2)", "interval day to second(3)", "1 day 00:00:01.25", "iv_p = '1 day 00:00:01.25'"),
    ("b_b", "bit(3)", "bit(4)", "101", "b_b IS NULL"),
    ("vb_vb", "varbit(5)", "varbit(3)", "101", "vb_vb = B'101'"),
    ("jb_js", "jsonb", "json", "{\"a\": 2}", "jb_js::text = '{\"a\": 2}'"),
    ("tmtz_t", "timetz", "text", "12:00:00+08", "tmtz_t = '12:00:00+08'"),
];

fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// One table `name` of `pairs` on both sides (source types on the source, target types on the
/// target), one row in the day's window; `null` columns get NULL (a value the target refuses).
fn tables(env: &TestEnv, name: &str, pairs: &[Pair], greenplum: bool, null: &[&str]) {
    let ddl = |side: fn(&Pair) -> &str| {
        let cols: Vec<String> = pairs.iter().map(|p| format!("{} {}", p.0, side(p))).collect();
        let distributed = if greenplum { " DISTRIBUTED BY (id)" } else { "" };
        format!("CREATE TABLE {name} (id int NOT NULL, ts timestamp NOT NULL, {}){distributed}", cols.join(", "))
    };
    env.src_psql(&ddl(|p| p.1));
    env.dst_psql(&ddl(|p| p.2));
    let values: Vec<String> =
        pairs.iter().map(|p| if null.contains(&p.0) { "NULL".into() } else { literal(p.3) }).collect();
    env.src_psql(&format!("INSERT INTO {name} VALUES (1, '2024-01-01 01:00:00', {})", values.join(", ")));
}

fn config(env: &TestEnv, table: &str, extra: &str, transport: &str) {
    support::day_job::write(env, table, extra, transport);
}

/// History rows, 0 when the state was never created.
fn history_rows(env: &TestEnv) -> String {
    let exists = env.dst_psql("SELECT to_regclass('gptransfer.history') IS NOT NULL");
    if exists == "t" {
        env.dst_psql("SELECT count(*) FROM gptransfer.history")
    } else {
        "0".into()
    }
}

fn lossy_list() -> String {
    let names: Vec<String> = LOSSY.iter().map(|p| format!("{:?}", p.0)).collect();
    format!("lossy_columns = [{}]", names.join(", "))
}

/// Every lossy pair refused by `config check` and `run`, each column named with both types;
/// nothing moved, no history row. Accepted with `lossy_columns`, the rows land changed as the
/// target's input changes them.
fn lossy_pairs_refused_then_accepted(env: &TestEnv, greenplum: bool, transport: &str) -> support::CmdOutput {
    tables(env, "lossy", LOSSY, greenplum, &[]);
    config(env, "lossy", "", transport);
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    for (col, _, _, _, _) in LOSSY {
        assert!(check.stderr.contains(&format!("column {col:?} is ")), "{col}: {}", check.render());
        assert!(check.stderr.contains(&format!("ALTER COLUMN \"{col}\" TYPE")), "{col}: {}", check.render());
    }
    let run = env.run(&["run"]);
    run.assert_code(2);
    assert!(run.stderr.contains("would change values silently"), "{}", run.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM lossy"), "0");
    assert_eq!(history_rows(env), "0");

    // One column left out of the list: still refused, naming only it.
    let mut names: Vec<&str> = LOSSY.iter().map(|p| p.0).collect();
    names.retain(|n| *n != "ts0");
    let partial =
        format!("lossy_columns = [{}]", names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "));
    config(env, "lossy", &partial, transport);
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"ts0\" is timestamp without time zone on the source"), "{}", out.render());
    assert!(!out.stderr.contains("column \"n_scale\""), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM lossy"), "0");

    config(env, "lossy", &lossy_list(), transport);
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM lossy"), "1");
    for (col, _, _, _, accepted) in LOSSY {
        assert_eq!(env.dst_psql(&format!("SELECT {accepted} FROM lossy")), "t", "{col}: {accepted}");
    }
    assert_eq!(history_rows(env), "1");
    // compare holds the target to what the accepted load makes of the source: no false alarm.
    let compared = env.run(&["compare"]);
    assert_eq!(compared.code, 0, "{}", compared.render());
    check
}

fn lossless_pairs_pass(env: &TestEnv, greenplum: bool, transport: &str) {
    // bit(3) into bit(4) refuses its value loudly; a NULL passes.
    tables(env, "lossless", LOSSLESS, greenplum, &["b_b"]);
    config(env, "lossless", "", transport);
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    for (col, _, _, _, expected) in LOSSLESS {
        assert_eq!(env.dst_psql(&format!("SELECT {expected} FROM lossless")), "t", "{col}: {expected}");
    }
    let compared = env.run(&["compare"]);
    assert_eq!(compared.code, 0, "{}", compared.render());
}

#[test]
fn postgresql_lossy_pairs_are_refused_until_accepted() {
    let env = TestEnv::new("lossy_pg");
    let check = lossy_pairs_refused_then_accepted(&env, false, "");
    cli_snapshot!("lossy_pairs__check", check);
}

#[test]
fn postgresql_run_refusal_names_table_column_types_and_fix() {
    let env = TestEnv::new("lossy_pg_run");
    let pairs = &LOSSY[..1];
    tables(&env, "lossy", pairs, false, &[]);
    config(&env, "lossy", "", "");
    let out = env.run(&["run"]);
    out.assert_code(2);
    cli_snapshot!("lossy_one_column__run", out);
    assert_eq!(history_rows(&env), "0");
}

#[test]
fn postgresql_lossless_pairs_pass() {
    let env = TestEnv::new("lossless_pg");
    lossless_pairs_pass(&env, false, "");
}

/// The gpfdist transport of the test's GP6 install (the segment path).
fn gpfdist(first_port: u16) -> String {
    format!(
        r#"transport = {{ plugin = "gpfdist", host = "127.0.0.1", port_range = [{first_port}, {}], gpfdist = "{}", work_dir = "{{TEMP_DIR}}/gpfdist" }}"#,
        first_port + 19,
        gp6_home().join("bin/gpfdist").display()
    )
}

#[test]
fn gp6_lossy_pairs_are_refused_until_accepted_through_gpfdist() {
    let env = TestEnv::on("lossy_gp6", Server::Gp6, Server::Gp6);
    lossy_pairs_refused_then_accepted(&env, true, &gpfdist(31600));
}

#[test]
fn gp6_lossless_pairs_pass_through_gpfdist() {
    let env = TestEnv::on("lossless_gp6", Server::Gp6, Server::Gp6);
    lossless_pairs_pass(&env, true, &gpfdist(31650));
}

/// `create_target` creates every column with the source's very type and modifier, so the
/// created table keeps every value and passes the check.
#[test]
fn create_target_creates_the_source_types_exactly() {
    for (name, dst) in [("create_exact_pg", Server::Pg), ("create_exact_gp6", Server::Gp6)] {
        let env = TestEnv::on(name, Server::Pg, dst);
        tables(&env, "lossy", LOSSY, false, &[]);
        env.dst_psql("DROP TABLE lossy");
        config(&env, "lossy", "create_target = true", "");
        env.run(&["run"]).assert_success();
        let types = "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                     FROM pg_attribute WHERE attrelid = 'lossy'::regclass AND attnum > 0";
        assert_eq!(env.dst_psql(types), env.src_psql(types), "{name}");
        env.run(&["config", "check"]).assert_success();
        // GP6 prints floats with fewer digits: the rows are compared on PostgreSQL 15 alone.
        if dst == Server::Pg {
            let all = "SELECT md5(string_agg(l::text, '')) FROM lossy l";
            assert_eq!(env.dst_psql(all), env.src_psql(all), "{name}");
        }
    }
}

/// The modifiers read the same from every flavour: a GP4.3 and a PostgreSQL 8.2 source into
/// PostgreSQL 15, GP7 into GP7 — refused when narrower, accepted when wider.
#[test]
fn every_flavour_gives_its_modifiers() {
    for (name, src, dst) in [
        ("mods_gp4_pg", Server::Gp4, Server::Pg),
        ("mods_pg82_pg", Server::Pg82, Server::Pg),
        ("mods_gp7_gp7", Server::Gp7, Server::Gp7),
    ] {
        let env = TestEnv::on(name, src, dst);
        let distributed =
            |server: Server| if server == Server::Pg82 || server == Server::Pg { "" } else { " DISTRIBUTED BY (id)" };
        env.src_psql(&format!(
            "CREATE DOMAIN amount AS numeric(10,3);\n\
             CREATE TABLE m (id int NOT NULL, ts timestamp NOT NULL, n numeric(10,3), t timestamp, v varchar(10), \
             a amount, z timestamptz){}",
            distributed(src)
        ));
        env.dst_psql(&format!(
            "CREATE TABLE m (id int NOT NULL, ts timestamp NOT NULL, n numeric(10,1), t timestamp(0), v varchar(2), \
             a numeric(10,2), z timestamp){}",
            distributed(dst)
        ));
        config(&env, "m", "", "timezone = \"Europe/Paris\"");
        let out = env.run(&["config", "check"]);
        out.assert_code(2);
        for line in [
            "column \"n\" is numeric(10,3) on the source but numeric(10,1) on the target",
            "column \"t\" is timestamp without time zone on the source but timestamp(0) without time zone on the target",
            "column \"v\" is character varying(10) on the source but character varying(2) on the target",
            // A domain's modifier, read from every flavour.
            "column \"a\" is numeric(10,3) (domain amount) on the source but numeric(10,2) on the target",
            // The zone's clock changes, read from every flavour.
            "column \"z\" is timestamp with time zone on the source but timestamp without time zone on the target: \
             each value becomes its wall-clock time in the session's TimeZone \"Europe/Paris\"",
        ] {
            assert!(out.stderr.contains(line), "{name}: {line}\n{}", out.render());
        }
        env.dst_psql(&format!(
            "DROP TABLE m; CREATE TABLE m (id int NOT NULL, ts timestamp NOT NULL, n numeric(12,4), t timestamp(6), \
             v varchar(10), a numeric(12,3), z timestamp){}",
            distributed(dst)
        ));
        config(&env, "m", "", "timezone = \"UTC\"");
        env.run(&["config", "check"]).assert_success();
    }
}

/// A key column the target declares in another type (`date` into `timestamp`, `int4` into
/// `numeric(12,2)`): compare names a changed row by its key once, as `changed`, not as a
/// `missing` key on one side and an `extra` one on the other.
#[test]
fn a_key_of_another_type_names_a_changed_row_once() {
    let env = TestEnv::new("lossy_key_types");
    env.src_psql(
        "CREATE TABLE kt (d date NOT NULL, n int4 NOT NULL, ts timestamp NOT NULL, v text);\n\
         INSERT INTO kt SELECT date '2024-01-01' + (i % 3), i, timestamp '2024-01-01 00:00:00' + i * interval '1 minute', \
         'v' || i FROM generate_series(1, 100) i;",
    );
    env.dst_psql("CREATE TABLE kt (d timestamp NOT NULL, n numeric(12,2) NOT NULL, ts timestamp NOT NULL, v text)");
    config(&env, "kt", "key = [\"d\", \"n\"]", "");
    env.run(&["run"]).assert_success();
    let same = env.run(&["compare"]);
    assert_eq!(same.code, 0, "{}", same.render());
    env.dst_psql("UPDATE kt SET v = 'changed' WHERE n = 7");
    let (out, report) = support::compared::compare_json(&env, &[]);
    assert_eq!(out.code, 3, "{}", out.render());
    let differences: Vec<(String, String)> = support::compared::differences(&report).into_iter().collect();
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert_eq!(differences[0].0, "changed", "{differences:?}");
    assert!(differences[0].1.contains("n=7"), "{differences:?}");
}

/// `timestamptz` into `timestamp` keeps each instant's wall-clock time in the session's zone,
/// and `timestamp` into `timestamptz` reads each value as one: in a zone that moves its clocks,
/// the hour they go back holds two instants that become one value, and a time in the hour they
/// skip becomes the instant of the next hour's. Refused there, naming the zone; accepted with
/// `lossy_columns`, and compare then agrees; in UTC both keep every value.
#[test]
fn zone_conversions_are_refused_where_the_clocks_move() {
    let source = "CREATE TABLE z (id int NOT NULL, ts timestamp NOT NULL, tz_ts timestamptz, ts_tz timestamp, t time);\n\
                  INSERT INTO z VALUES (1, '2024-01-01 01:00', '2024-11-03 05:30:00+00', '2024-03-10 02:30:00', '10:00'), \
                  (2, '2024-01-01 02:00', '2024-11-03 06:30:00+00', '2024-03-10 03:30:00', '11:00')";
    let target =
        "CREATE TABLE z (id int NOT NULL, ts timestamp NOT NULL, tz_ts timestamp, ts_tz timestamptz, t timetz)";

    let utc = TestEnv::new("lossy_zone_utc");
    utc.src_psql(source);
    utc.dst_psql(target);
    config(&utc, "z", "", "timezone = \"UTC\"");
    utc.run(&["config", "check"]).assert_success();
    utc.run(&["run"]).assert_success();
    assert_eq!(utc.dst_psql("SELECT count(DISTINCT tz_ts) || ' ' || count(DISTINCT ts_tz) FROM z"), "2 2");

    let ny = TestEnv::new("lossy_zone_ny");
    ny.src_psql(source);
    ny.dst_psql(target);
    config(&ny, "z", "", "timezone = \"America/New_York\"");
    let check = ny.run(&["config", "check"]);
    check.assert_code(2);
    for line in [
        "column \"tz_ts\" is timestamp with time zone on the source but timestamp without time zone on the target: \
         each value becomes its wall-clock time in the session's TimeZone \"America/New_York\"",
        "column \"ts_tz\" is timestamp without time zone on the source but timestamp with time zone on the target: \
         each value is read as wall-clock time in the session's TimeZone \"America/New_York\"",
        // The offset of the load's day: another in summer than in winter.
        "column \"t\" is time without time zone on the source but time with time zone on the target: \
         each value gets the UTC offset the session's TimeZone \"America/New_York\" has on the day it is loaded",
    ] {
        assert!(check.stderr.contains(line), "{line}\n{}", check.render());
    }
    ny.run(&["run"]).assert_code(2);
    assert_eq!(ny.dst_psql("SELECT count(*) FROM z"), "0");
    config(&ny, "z", "lossy_columns = [\"tz_ts\", \"ts_tz\", \"t\"]", "timezone = \"America/New_York\"");
    ny.run(&["run"]).assert_success();
    // The loss the check foretold: two values each became one.
    assert_eq!(ny.dst_psql("SELECT count(DISTINCT tz_ts) || ' ' || count(DISTINCT ts_tz) FROM z"), "1 1");
    let compared = ny.run(&["compare"]);
    assert_eq!(compared.code, 0, "{}", compared.render());
}

/// Accepting a key column's rounding is not accepting lost rows: in merge mode two source keys
/// that become one target key would keep one of their rows, so a lossy key is refused there
/// even when listed in `lossy_columns`; other modes keep every row (a unique key on the target
/// refuses the duplicates loudly).
#[test]
fn merge_refuses_a_key_whose_values_would_merge() {
    let env = TestEnv::new("lossy_merge_key");
    env.src_psql(
        "CREATE TABLE mk (k numeric(10,3) NOT NULL, ts timestamp NOT NULL, v text);\n\
         INSERT INTO mk VALUES (1.21, '2024-01-01 01:00', 'a'), (1.24, '2024-01-01 02:00', 'b')",
    );
    env.dst_psql("CREATE TABLE mk (k numeric(10,1) NOT NULL, ts timestamp NOT NULL, v text)");
    config(&env, "mk", "mode = \"merge\"\nkey = [\"k\"]\nlossy_columns = [\"k\"]", "");
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    assert!(
        check.stderr.contains("key column \"k\" is numeric(10,3) on the source but numeric(10,1) on the target, and merge cannot accept that"),
        "{}",
        check.render()
    );
    env.run(&["run"]).assert_code(2);
    assert_eq!(env.dst_psql("SELECT count(*) FROM mk"), "0");
    // In replace mode the rounding alone is accepted: both rows arrive.
    config(&env, "mk", "key = [\"k\"]\nlossy_columns = [\"k\"]", "");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT string_agg(k::text || v, ' ' ORDER BY v) FROM mk"), "1.2a 1.2b");
}

/// A merge key whose target type equals more values than the source's (`citext` from `text`):
/// two source keys that differ in case are one key on the target, and merge deletes and keeps
/// by the target's equality, so one of their rows would go. Refused in merge, naming the key.
#[test]
fn merge_refuses_a_key_the_target_compares_more_loosely() {
    let env = TestEnv::new("lossy_merge_citext");
    env.src_psql(
        "CREATE TABLE ck (k text NOT NULL, ts timestamp NOT NULL, v text);\n\
         INSERT INTO ck VALUES ('A', '2024-01-01 01:00', 'upper'), ('a', '2024-01-01 02:00', 'lower')",
    );
    env.dst_psql("CREATE EXTENSION citext; CREATE TABLE ck (k citext NOT NULL, ts timestamp NOT NULL, v text)");
    config(&env, "ck", "mode = \"merge\"\nkey = [\"k\"]", "");
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    assert!(
        check.stderr.contains("key column \"k\" is text on the source but citext on the target"),
        "{}",
        check.render()
    );
    env.run(&["run"]).assert_code(2);
    assert_eq!(env.dst_psql("SELECT count(*) FROM ck"), "0");
    // In replace mode no key decides which rows stay: both arrive.
    config(&env, "ck", "key = [\"k\"]", "");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT string_agg(k || v, ' ' ORDER BY v) FROM ck"), "alower Aupper");
}

/// The same through a nondeterministic collation (PostgreSQL 12+, GP7): a target key column
/// whose collation holds 'A' and 'a' equal merges them like citext does, directly or through a
/// domain that carries the collation. Refused in merge, naming the collation; a source key
/// with a nondeterministic collation of its own already treats them as one key.
#[test]
fn merge_refuses_a_key_whose_target_collation_is_nondeterministic() {
    let env = TestEnv::new("lossy_merge_collation");
    let collation = "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);";
    env.src_psql(
        "CREATE TABLE ck (k text NOT NULL, ts timestamp NOT NULL, v text);\n\
         INSERT INTO ck VALUES ('A', '2024-01-01 01:00', 'upper'), ('a', '2024-01-01 02:00', 'lower')",
    );
    env.dst_psql(&format!("{collation} CREATE TABLE ck (k text COLLATE ci NOT NULL, ts timestamp NOT NULL, v text)"));
    config(&env, "ck", "mode = \"merge\"\nkey = [\"k\"]", "");
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    assert!(
        check
            .stderr
            .contains("key column \"k\" is text on the source but text (collation ci, nondeterministic) on the target"),
        "{}",
        check.render()
    );
    env.run(&["run"]).assert_code(2);
    assert_eq!(env.dst_psql("SELECT count(*) FROM ck"), "0");
    // Through a domain that carries the collation.
    env.dst_psql(
        "DROP TABLE ck; CREATE DOMAIN ci_text AS text COLLATE ci; \
                  CREATE TABLE ck (k ci_text NOT NULL, ts timestamp NOT NULL, v text)",
    );
    env.run(&["config", "check"]).assert_code(2);
    // A source key as loose as the target's: the source already holds them one key.
    env.src_psql(&format!("{collation} ALTER TABLE ck ALTER COLUMN k TYPE text COLLATE ci"));
    env.run(&["config", "check"]).assert_success();
    // In replace mode no key decides which rows stay: both arrive.
    env.src_psql("ALTER TABLE ck ALTER COLUMN k TYPE text COLLATE \"C\"");
    config(&env, "ck", "key = [\"k\"]", "");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT string_agg(k || v, ' ' ORDER BY v) FROM ck"), "alower Aupper");
}
