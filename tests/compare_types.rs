//! compare's canonical row form across flavours (issue 11): a table holding every common type
//! with its edge values, written with the same literals on PostgreSQL 15 and on GP6, GP7,
//! PostgreSQL 8.2 (float datetimes) or GP4.3 (each type where the server has it), compares
//! equal; three damaged rows on the target (a float's sign bit, a microsecond, an empty string
//! against NULL) are named exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use support::compared::{assert_all_equal, compare_json, differences};
use support::{Server, TestEnv};

/// `(column, type, one literal per row of ROWS)`; `None` is NULL. A column is created when
/// the target has its type (`typname`, the second field's base name).
type Column = (&'static str, &'static str, &'static str, [Option<&'static str>; ROWS]);

const ROWS: usize = 8;

/// Rows 7 and 8 hold values 8.2 does not have (infinite dates): written on newer servers only.
const MODERN_ROWS: usize = 2;

#[rustfmt::skip]
const COLUMNS: &[Column] = &[
    ("i2", "int2", "int2", [Some("0"), Some("-32768"), Some("32767"), None, Some("1"), Some("-1"), Some("7"), Some("8")]),
    ("i4", "int4", "int4", [Some("-2147483648"), Some("2147483647"), Some("0"), None, Some("1"), Some("-1"), Some("7"), Some("8")]),
    ("i8", "int8", "int8", [Some("-9223372036854775808"), Some("9223372036854775807"), Some("0"), None, Some("1"), Some("-1"), Some("7"), Some("8")]),
    ("n", "numeric", "numeric", [Some("0"), Some("-0.00"), Some("123456789012345678901234567890.123456789"), Some("NaN"), Some("1e-20"), None, Some("-1.5"), Some("100")]),
    ("n3", "numeric(12,3)", "numeric", [Some("1.5"), Some("0"), Some("-999999999.999"), None, Some("0.001"), Some("2"), Some("3"), Some("4")]),
    ("f4", "real", "float4", [Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("-0"), Some("0"), Some("1e-37"), Some("3.4028235e38"), None]),
    ("f8", "double precision", "float8", [Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("-0"), Some("0.1"), Some("2.2250738585072014e-308"), Some("1.7976931348623157e308"), None]),
    ("t", "text", "text", [Some(""), None, Some("N"), Some("a|b"), Some("中文, \"quoted\" 'single'"), Some("tab\there"), Some("line\none"), Some("\\N")]),
    ("vc", "varchar(20)", "varchar", [Some(""), Some("x"), None, Some("-1"), Some("中"), Some(" "), Some("a"), Some("b")]),
    ("c", "char(5)", "bpchar", [Some("ab"), Some(""), None, Some("abcde"), Some(" a"), Some("x"), Some("y"), Some("z")]),
    ("by", "bytea", "bytea", [Some(""), Some("00ff5c41"), None, Some("5c"), Some("00"), Some("ff"), Some("61"), Some("62")]),
    ("b", "boolean", "bool", [Some("true"), Some("false"), None, Some("true"), Some("false"), Some("true"), Some("false"), Some("true")]),
    ("d", "date", "date", [Some("2024-02-29"), Some("0044-03-15 BC"), Some("9999-12-31"), None, Some("2000-01-01"), Some("1999-12-31"), Some("infinity"), Some("-infinity")]),
    ("t2", "timestamp", "timestamp", [Some("2024-01-01 12:00:00.123456"), Some("0044-03-15 12:00:00 BC"), Some("1999-12-31 23:59:59.999999"), Some("2000-01-01 00:00:00.000001"), Some("1900-02-28 01:02:03.4"), None, Some("infinity"), Some("-infinity")]),
    ("tz", "timestamptz", "timestamptz", [Some("2024-01-01 12:00:00.5+08"), Some("0044-03-15 12:00:00+00 BC"), Some("1969-07-20 20:17:40+00"), None, Some("2038-01-19 03:14:08.000001+00"), Some("2000-01-01 00:00:00+14"), Some("infinity"), Some("-infinity")]),
    ("tm", "time", "time", [Some("00:00:00"), Some("23:59:59.999999"), Some("24:00:00"), Some("12:34:56.789"), None, Some("00:00:00.000001"), Some("01:00"), Some("02:00")]),
    ("iv", "interval", "interval", [Some("1 day 02:03:04.5"), Some("-1 day +02:03:04.5"), Some("3 years 2 mons"), Some("-00:00:00.000001"), Some("1000 hours"), Some("0"), None, Some("1 year -1 mon -00:00:01.25")]),
    ("u", "uuid", "uuid", [Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Some("00000000-0000-0000-0000-000000000000"), None, Some("ffffffff-ffff-ffff-ffff-ffffffffffff"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15")]),
    ("j", "json", "json", [Some("{\"a\": 1, \"b\": [1, 2]}"), Some("null"), Some("[]"), None, Some("\"中\""), Some("{}"), Some("1.50"), Some("true")]),
    ("jb", "jsonb", "jsonb", [Some("{\"b\": 2, \"a\": [1, \"x\"]}"), Some("null"), Some("[]"), None, Some("\"中\""), Some("{}"), Some("1.50"), Some("true")]),
    ("ai", "int4[]", "_int4", [Some("{1,2,NULL}"), Some("{}"), Some("{{1,2},{3,4}}"), None, Some("{-1}"), Some("{NULL}"), Some("{7}"), Some("{8}")]),
    ("at", "text[]", "_text", [Some("{\"a b\",\"c,d\",NULL,\"\"}"), Some("{}"), None, Some("{\"N\"}"), Some("{中}"), Some("{\"\\\\\"}"), Some("{x}"), Some("{y}")]),
    ("af", "float8[]", "_float8", [Some("{1.5,NaN,-Infinity}"), Some("{}"), None, Some("{-0}"), Some("{0.1}"), Some("{NULL}"), Some("{7}"), Some("{8}")]),
];

/// The damage on the target, one row each: a float's sign bit (-0 → 0), a microsecond,
/// '' → NULL.
const DAMAGE: [(&str, &str); 3] = [
    ("UPDATE types SET f8 = 0 WHERE id = 4", "id=4"),
    ("UPDATE types SET t2 = timestamp '1999-12-31 23:59:59.999998' WHERE id = 3", "id=3"),
    ("UPDATE types SET t = NULL WHERE id = 1", "id=1"),
];

/// A literal as 8.2 and newer read it alike (no backslash escapes in standard strings; bytea as
/// hex through `decode`, which 8.2 has).
fn literal(ty: &str, v: &str) -> String {
    if ty == "bytea" {
        return format!("decode('{v}', 'hex')");
    }
    let quoted = v.replace('\'', "''");
    if quoted.contains('\\') || quoted.contains('\n') || quoted.contains('\t') {
        let escaped = quoted.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t");
        return format!("E'{escaped}'::{ty}");
    }
    format!("'{quoted}'::{ty}")
}

/// The columns the target has, and the rows to write on it.
fn columns_of(env: &TestEnv) -> Vec<&'static Column> {
    let have = env.dst_psql(
        "SELECT typname FROM pg_type WHERE typname IN ('uuid', 'json', 'jsonb', '_int4', '_text', '_float8')",
    );
    let have: BTreeSet<&str> = have.lines().collect();
    COLUMNS
        .iter()
        .filter(|(_, _, typname, _)| {
            !matches!(*typname, "uuid" | "json" | "jsonb" | "_int4" | "_text" | "_float8") || have.contains(typname)
        })
        .collect()
}

fn same_table_on_both(env: &TestEnv, greenplum_target: bool, rows: usize) {
    let columns = columns_of(env);
    let defs: Vec<String> = columns.iter().map(|(name, ty, _, _)| format!("{name} {ty}")).collect();
    let ddl = format!("CREATE TABLE types (id int NOT NULL, ts timestamp NOT NULL, {})", defs.join(", "));
    env.src_psql(&ddl);
    env.dst_psql(&format!("{ddl}{}", if greenplum_target { " DISTRIBUTED BY (id)" } else { "" }));
    for row in 0..rows {
        let values: Vec<String> = columns
            .iter()
            .map(|(_, ty, _, values)| values[row].map_or("NULL".to_string(), |v| literal(ty, v)))
            .collect();
        let insert = format!(
            "INSERT INTO types VALUES ({}, timestamp '2024-01-01 00:00:00' + interval '{row} hour', {})",
            row + 1,
            values.join(", ")
        );
        env.src_psql(&insert);
        env.dst_psql(&insert);
    }
}

/// PostgreSQL 15 → `target`: equal, then exactly the damaged keys.
fn every_type_compares_across(name: &str, target: Server, greenplum: bool, float_datetimes: bool) {
    let env = TestEnv::on(name, Server::Pg, target);
    assert_eq!(env.dst_psql("SHOW integer_datetimes"), if float_datetimes { "off" } else { "on" });
    let rows = if matches!(target, Server::Pg82 | Server::Gp4) { ROWS - MODERN_ROWS } else { ROWS };
    same_table_on_both(&env, greenplum, rows);
    env.write_config(
        r#"{CLUSTERS}
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "types"
condition_column = "ts"
key = ["id"]
"#,
    );
    let range = ["--to", "2024-01-02 00:00:00"];
    let (out, value) = compare_json(&env, &range);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), rows as i64, "{}", out.render());
    for (damage, _) in DAMAGE {
        env.dst_psql(damage);
    }
    let (out, value) = compare_json(&env, &range);
    assert_eq!(out.code, 3, "{}", out.render());
    let expected: BTreeSet<(String, String)> =
        DAMAGE.iter().map(|(_, k)| ("changed".to_string(), k.to_string())).collect();
    assert_eq!(differences(&value), expected, "{}", out.render());
}

#[test]
fn every_type_compares_between_pg15_and_gp6() {
    every_type_compares_across("types_gp6", Server::Gp6, true, false);
}

#[test]
fn every_type_compares_between_pg15_and_gp7() {
    every_type_compares_across("types_gp7", Server::Gp7, true, false);
}

#[test]
fn every_type_compares_between_pg15_and_pg82_float_datetimes() {
    every_type_compares_across("types_pg82", Server::Pg82, false, true);
}

#[test]
fn every_type_compares_between_pg15_and_gp4() {
    let gp4_datetimes = support::gp4().psql("postgres", "SHOW integer_datetimes") == "off";
    every_type_compares_across("types_gp4", Server::Gp4, true, gp4_datetimes);
}

/// A target column of another type than the source's, which the transfer loads through the
/// value's text (an int into numeric, a number or a date into text, a varchar into text, an
/// int2 into int8): after a transfer, compare finds the two sides equal, and still names a
/// damaged row.
#[test]
fn a_column_loaded_into_a_wider_type_compares_equal_after_the_transfer() {
    let env = TestEnv::new("types_widened");
    env.src_psql(
        "CREATE TABLE w (id int NOT NULL, ts timestamp NOT NULL, a int4, b int2, c float8, d date, e varchar(10), \
         f numeric(6,2), g bool)",
    );
    env.dst_psql(
        "CREATE TABLE w (id int NOT NULL, ts timestamp NOT NULL, a numeric, b int8, c text, d text, e text, \
         f text, g text)",
    );
    env.src_psql(
        "INSERT INTO w VALUES \
         (1, '2024-01-01 01:00', 5, 7, 0.1, '2024-02-29', 'x', 1.50, true), \
         (2, '2024-01-01 02:00', -2147483648, -32768, -0.0, '0044-03-15 BC', '', -0.25, false), \
         (3, '2024-01-01 03:00', NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    );
    env.write_config(
        r#"{CLUSTERS}
[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "w"
condition_column = "ts"
key = ["id"]
"#,
    );
    env.run(&["run", "--until", "2024-01-02 00:00:00"]).assert_success();
    let range = ["--to", "2024-01-02 00:00:00"];
    let (out, value) = compare_json(&env, &range);
    out.assert_success();
    assert_eq!(assert_all_equal(&value), 3, "{}", out.render());
    env.dst_psql("UPDATE w SET a = 6 WHERE id = 1");
    let (out, value) = compare_json(&env, &range);
    assert_eq!(out.code, 3, "{}", out.render());
    let expected: BTreeSet<(String, String)> = [("changed".to_string(), "id=1".to_string())].into();
    assert_eq!(differences(&value), expected, "{}", out.render());
}
