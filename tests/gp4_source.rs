//! The `gp4` source on a real PostgreSQL 8.2 server (GP4's SQL kernel: float timestamps,
//! `extra_float_digits` at most 2, `standard_conforming_strings` off) into a real Greenplum 6
//! cluster: a day of varied data arrives byte-exact, floats and timestamps by their bits; GBK
//! and GB18030 bytes stored in a SQL_ASCII database land as UTF-8; bad bytes fail the window
//! naming the row, or go to the reject file within `error_limit`; compare 8.2 ↔ GP6.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::canonical::{assert_same_lines, canonical_lines};
use support::{Pg, Server, TestEnv};

fn cursor(env: &TestEnv, table: &str) -> Option<String> {
    let out = env.dst_psql(&format!("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = '{table}'"));
    (!out.is_empty()).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// 1. A day of varied data from 8.2, byte-exact
// ---------------------------------------------------------------------------------------------

const FACT: &str = "eda.wpp_fdefect_f_n";
const DAY: &str = "evt_timestamp >= '2024-03-10' AND evt_timestamp < '2024-03-11'";

/// tests/transfer.rs's value patterns in 8.2's SQL, 30000 rows over one day (one every 2.88 s).
/// (8.2's text input refuses subnormal floats: those are covered by
/// `pg82_to_gp6_floats_and_timestamps_arrive_bit_exact`, which loads them in binary.)
const FACT_SOURCE_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.wpp_fdefect_f_n (
    id bigint PRIMARY KEY, evt_timestamp timestamp NOT NULL, glass_id text, defect_code int,
    defect_qty numeric(14,4), ratio float8, ratio4 float4, evt_tz timestamptz, evt_date date,
    is_ok boolean, payload bytea, note text
);
INSERT INTO eda.wpp_fdefect_f_n
SELECT i,
       timestamp '2024-03-10 00:00:00' + (i - 1) * interval '2880 milliseconds'
           + CASE WHEN i % 7 = 3 THEN (i % 1000) * interval '1 microsecond' ELSE interval '0' END,
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
           WHEN 11 THEN E'mix,"q"\t\\\n缺陷 ' || i
           ELSE 'G' || lpad(i::text, 8, '0')
       END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE (i % 500) - 250 END,
       CASE WHEN i % 19 = 0 THEN NULL ELSE round(i * 1.23456 - 100000, 4) END,
       CASE i % 11
           WHEN 0 THEN 0.1::float8
           WHEN 1 THEN 1e-300::float8
           WHEN 2 THEN (1 / 3.0)::float8
           WHEN 3 THEN '-0'::float8
           WHEN 4 THEN NULL
           WHEN 5 THEN 1::float8 / 3
           WHEN 6 THEN 'Infinity'::float8
           WHEN 7 THEN 1.7976931348623157e308::float8
           WHEN 8 THEN -i * 0.000001::float8
           WHEN 9 THEN 2.2250738585072014e-308::float8
           ELSE i::float8 / 7
       END,
       CASE i % 23 WHEN 0 THEN NULL WHEN 1 THEN '-0'::float4 WHEN 2 THEN 0.1::float4 ELSE (i * 0.1)::float4 END,
       CASE WHEN i % 29 = 0 THEN NULL
            ELSE (timestamp '2024-03-10' + i * interval '1.000001 seconds') AT TIME ZONE 'Asia/Shanghai'
       END,
       CASE i % 31 WHEN 0 THEN NULL WHEN 1 THEN date '0044-03-15 BC' ELSE date '2024-03-10' - (i % 4000) END,
       CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END,
       CASE i % 37
           WHEN 0 THEN NULL
           WHEN 1 THEN ''::bytea
           ELSE decode(md5(i::text), 'hex') || decode('00ff5c0a09', 'hex')
       END,
       CASE WHEN i % 41 = 0 THEN NULL
            WHEN i % 10007 = 5 THEN repeat('长', 5000)
            ELSE repeat('x', i % 50) || ' 中文 €'
       END
FROM generate_series(1, 30000) AS i;
INSERT INTO eda.wpp_fdefect_f_n (id, evt_timestamp, glass_id)
VALUES (1000001, '2024-03-09 23:59:59.999999', 'before'), (1000002, '2024-03-11 00:00:00', 'after');
"#;

const FACT_TARGET_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.wpp_fdefect_f_n (
    note text, payload bytea, is_ok boolean, evt_date date, evt_tz timestamptz, ratio4 float4,
    ratio float8, defect_qty numeric(14,4), defect_code int, glass_id text,
    evt_timestamp timestamp NOT NULL, id bigint PRIMARY KEY
) DISTRIBUTED BY (id);
"#;

/// The fact table's columns with their types, for [`canonical_lines`].
const FACT_TYPED: &[(&str, &str)] = &[
    ("evt_timestamp", "timestamp"),
    ("glass_id", "text"),
    ("defect_code", "int4"),
    ("defect_qty", "numeric"),
    ("ratio", "float8"),
    ("ratio4", "float4"),
    ("evt_tz", "timestamptz"),
    ("evt_date", "date"),
    ("is_ok", "bool"),
    ("payload", "bytea"),
    ("note", "text"),
];

/// A real 8.2 server named `gp4` by the config (its own `version()` says plain PostgreSQL
/// 8.2): the `gp4` source is the default, and a day moves into GP6 byte-exact.
#[test]
fn gp4_flavour_moves_a_day_byte_exact() {
    let env = TestEnv::on("gp4_flavour_byte_exact", Server::Pg82, Server::Gp6);
    env.src_psql(FACT_SOURCE_SQL);
    env.dst_psql(FACT_TARGET_SQL);
    env.write_config(
        r#"
[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"
flavor = "gp4"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.legacy]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "6h"

[[jobs.legacy.tables]]
table = "eda.wpp_fdefect_f_n"
condition_column = "evt_timestamp"
"#,
    );
    let source = canonical_lines(env.src, &env.db, &format!("{FACT} WHERE {DAY}"), FACT_TYPED);
    assert_eq!(source.len(), 30000);
    let check = env.run(&["config", "check"]);
    check.assert_success();
    // No source written: the gp4 flavour's own source is the default (SPEC §6).
    let plan = env.run(&["plan"]);
    plan.assert_success();
    assert!(plan.stdout.contains("gp4 > stream > copy"), "{}", plan.render());

    let run = env.run(&["run"]);
    run.assert_success();
    assert!(run.stdout.contains("4 window(s) loaded, 0 failed; 30000 rows"), "{}", run.render());
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), bool_and(status = 'succeeded' AND rows_read = rows_written), sum(rows_written), \
             bool_and(chain LIKE 'gp4%') FROM gptransfer.history"
        ),
        "4|t|30000|t"
    );
    assert_same_lines(FACT, &source, &canonical_lines(env.dst, &env.dst_db, FACT, FACT_TYPED));
    assert_eq!(
        env.dst_psql(&format!(
            "SELECT encode(float8send(ratio), 'hex') FROM {FACT} WHERE id IN (1, 2, 3, 6, 7, 9, 22) ORDER BY id"
        )),
        "01a56e1fc2f8f359\n3fd5555555555555\n8000000000000000\n7ff0000000000000\n7fefffffffffffff\n0010000000000000\n3fb999999999999a"
    );
    assert_eq!(cursor(&env, FACT).as_deref(), Some("2024-03-11 00:00:00"));
    // compare 8.2 ↔ GP6 (no key: rows as a multiset) finds the day equal.
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    assert!(out.stdout.contains("4 window(s) compared, 0 differ"), "{}", out.render());
}

// ---------------------------------------------------------------------------------------------
// 2-4. GBK bytes in a SQL_ASCII database
// ---------------------------------------------------------------------------------------------

/// A SQL_ASCII database on the source cluster next to the test's own, dropped with the guard.
struct AsciiDb<'a> {
    pg: &'a Pg,
    name: String,
}

impl<'a> AsciiDb<'a> {
    fn new(env: &'a TestEnv) -> Self {
        Self::with_encoding(env, "SQL_ASCII")
    }

    /// A source database with this server encoding.
    fn with_encoding(env: &'a TestEnv, encoding: &str) -> Self {
        let name = format!("{}_{}", env.db, encoding.to_ascii_lowercase());
        // 8.2 has no per-database LC_COLLATE; template0 takes any encoding.
        env.src.psql("postgres", &format!("CREATE DATABASE \"{name}\" ENCODING '{encoding}' TEMPLATE template0"));
        AsciiDb { pg: env.src, name }
    }

    fn psql(&self, sql: &str) -> String {
        self.pg.psql(&self.name, sql)
    }
}

impl Drop for AsciiDb<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.pg.try_drop_db(&self.name);
        }
    }
}

const GBK_DDL: &str = "CREATE TABLE gbk_t (id int PRIMARY KEY, ts timestamp NOT NULL, name text, note text)";

/// `(id, hex of the stored bytes or NULL, expected UTF-8 text)`; the stored bytes are GBK.
/// `e7 5c` and `95 5c` are GBK characters whose second byte is a backslash.
const GBK_ROWS: &[(i32, Option<&str>, Option<&str>)] = &[
    (1, Some("d6d0cec4"), Some("中文")),
    (2, Some("c8b1cfdd2cb2a3c1a7"), Some("缺陷,玻璃")),
    (3, Some("e75c"), Some("鏫")),
    (4, Some("e75c5c955c6e"), Some("鏫\\昞n")),
    (5, Some("d6d009cec40ae75c0d0a"), Some("中\t文\n鏫\r\n")),
    (6, None, None),
    (7, Some("5c4e"), Some("\\N")),
    (8, Some("61736369692d6f6e6c79"), Some("ascii-only")),
    // (Not a2e3: WHATWG reads it as €, but the servers' GBK table refuses it.)
    (9, Some("a1e3"), Some("°")),
    (10, Some(""), Some("")),
];

fn insert_gbk(db: &AsciiDb<'_>, rows: &[(i32, Option<&str>)], hour: u32) {
    let values = rows
        .iter()
        .map(|(id, hex)| {
            let v = match hex {
                // 8.2 has no convert_from and no cast from bytea to text: an escape string of
                // `\xNN` bytes, which a SQL_ASCII database stores as they are.
                Some(h) => raw_bytes_literal(h),
                None => "NULL".into(),
            };
            format!("({id}, timestamp '2024-03-10 {hour:02}:00:00' + {id} * interval '1 second', {v}, 'n' || {id})")
        })
        .collect::<Vec<_>>()
        .join(",\n");
    db.psql(&format!("INSERT INTO gbk_t (id, ts, name, note) VALUES {values}"));
}

/// `E'\xd6\xd0…'`: the bytes of `hex` as a string literal (valid on 8.2, whatever
/// `standard_conforming_strings` says).
fn raw_bytes_literal(hex: &str) -> String {
    let escaped: String = hex.as_bytes().chunks(2).map(|b| format!("\\x{}", String::from_utf8_lossy(b))).collect();
    format!("E'{escaped}'")
}

fn gbk_config(env: &TestEnv, db: &AsciiDb<'_>, source_options: &str) {
    gbk_config_with(env, db, source_options, "");
}

/// [`gbk_config`] with more lines for the table (e.g. its transport).
fn gbk_config_with(env: &TestEnv, db: &AsciiDb<'_>, source_options: &str, table_lines: &str) {
    env.write_config(&format!(
        r#"
[clusters.src]
url = "postgres://gpt@127.0.0.1:{{SRC_PORT}}/{ascii}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.gbk]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 02:00:00"
duration = "1h"

[[jobs.gbk.tables]]
table = "gbk_t"
condition_column = "ts"
source = {{ plugin = "gp4", {source_options} }}
{table_lines}
"#,
        ascii = db.name
    ));
}

const CSV_MOUNT: &str = r#"transport = { plugin = "shared-mount", root = "{TEMP_DIR}/mount", keep_files = true }"#;

/// The same GBK rows, plus one with quotes and a comma, through gzip CSV files on a shared mount
/// (`gp4` reads `COPY … TO STDOUT WITH CSV`): CSV escapes nothing byte-wise, so each whole row
/// decodes; quoted commas, newlines, CR and quotes survive, and NULL stays apart from ''.
#[test]
fn gbk_in_sql_ascii_lands_as_utf8_through_csv_files() {
    let env = TestEnv::on("gbk_csv_files", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    let mut rows: Vec<(i32, Option<&str>)> = GBK_ROWS.iter().map(|(id, hex, _)| (*id, *hex)).collect();
    rows.push((11, Some("d6d022cec42c22")));
    insert_gbk(&db, &rows, 0);
    std::fs::create_dir(env.dir().join("mount")).unwrap();
    gbk_config_with(&env, &db, r#"source_encoding = "gbk""#, CSV_MOUNT);

    let run = env.run(&["run"]);
    run.assert_success();
    assert_eq!(
        env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history WHERE rows_written > 0"),
        "gp4 > shared-mount > copy (csv)"
    );
    let mut expected: Vec<(i32, Option<&str>)> = GBK_ROWS.iter().map(|(id, _, text)| (*id, *text)).collect();
    expected.push((11, Some("中\"文,\"")));
    for (id, text) in expected {
        let got = env.dst_psql(&format!(
            "SELECT coalesce(encode(convert_to(name, 'UTF8'), 'hex'), 'NULL') FROM gbk_t WHERE id = {id}"
        ));
        let want = text.map_or("NULL".to_string(), |t| t.bytes().map(|b| format!("{b:02x}")).collect());
        assert_eq!(got, want, "row {id}");
    }
    // The file on the mount is UTF-8 CSV, the quote doubled inside a quoted field.
    let dir = env.dir().join("mount").join(format!("{}^public^gbk_t^20240310000000^20240310010000", db.name));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(dir.join("part-00001.csv.gz")).unwrap()),
        &mut text,
    )
    .unwrap();
    assert!(text.contains("11,2024-03-10 00:00:11,\"中\"\"文,\"\"\",n11\n"), "{text}");
}

/// In CSV too, a bad byte fails the window naming the row (its first bytes: `3,`).
#[test]
fn invalid_gbk_in_csv_fails_the_window_naming_the_row() {
    bad_gbk_fails_naming_the_row("invalid_gbk_csv", CSV_MOUNT, "33 2c");
}

/// Row 3 of the first window holds a cut GBK character (lead byte d6, then a space): the run
/// fails naming the row, its column and first bytes (`row_head`), and nothing lands.
fn bad_gbk_fails_naming_the_row(name: &str, table_lines: &str, row_head: &str) -> support::CmdOutput {
    let env = TestEnv::on(name, Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    insert_gbk(&db, &[(1, Some("d6d0")), (2, Some("cec4")), (3, Some("41d6d0d620")), (4, Some("d6d0"))], 0);
    std::fs::create_dir(env.dir().join("mount")).unwrap();
    gbk_config_with(&env, &db, r#"source_encoding = "gbk""#, table_lines);

    let run = env.run(&["run"]);
    run.assert_code(1);
    let error = env.dst_psql("SELECT status || ': ' || error FROM gptransfer.history ORDER BY id LIMIT 1");
    assert!(error.starts_with("failed: "), "{error}");
    assert!(error.contains("row 3 of the window"), "{error}");
    assert!(error.contains("column \"name\""), "{error}");
    assert!(error.contains("not valid GBK"), "{error}");
    assert!(error.contains(row_head), "the row's first bytes in hex: {error}");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gbk_t"), "0");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0");
    run
}

#[test]
fn gbk_in_sql_ascii_lands_as_utf8() {
    let env = TestEnv::on("gbk_in_sql_ascii", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    let rows: Vec<(i32, Option<&str>)> = GBK_ROWS.iter().map(|(id, hex, _)| (*id, *hex)).collect();
    insert_gbk(&db, &rows, 0);
    assert_eq!(db.psql("SHOW server_encoding"), "SQL_ASCII");
    // What the server sends for a GBK character ending in 0x5C: the backslash escaped like any
    // other (`e7 5c 5c`), which is why the source unescapes before decoding.
    assert_eq!(db.psql("SELECT encode(textsend(name), 'hex') FROM gbk_t WHERE id = 3"), "e75c");
    // (psql's output is read lossily: e7 shows as U+FFFD.)
    let copied = db.psql("COPY (SELECT name FROM gbk_t WHERE id = 3) TO STDOUT");
    assert_eq!(copied, "\u{fffd}\\\\");
    gbk_config(&env, &db, r#"source_encoding = "gbk""#);

    let run = env.run(&["run"]);
    run.assert_success();
    assert!(run.stdout.contains("2 window(s) loaded, 0 failed; 10 rows"), "{}", run.render());
    assert_eq!(env.dst_psql("SELECT sum(rows_read), sum(rows_written) FROM gptransfer.history"), "10|10");
    let got = env.dst_psql("SELECT coalesce(quote_literal(name), 'NULL') || ' ' || note FROM gbk_t ORDER BY id");
    let want = GBK_ROWS
        .iter()
        .map(|(id, _, text)| {
            let lit = match text {
                None => "NULL".to_string(),
                // quote_literal's own escaping, for a readable comparison of control characters.
                Some(t) if t.contains('\\') => format!("E'{}'", t.replace('\\', "\\\\").replace('\'', "''")),
                Some(t) => format!("'{}'", t.replace('\'', "''")),
            };
            format!("{lit} n{id}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(got, want);
    // And byte for byte: the UTF-8 encoding of the expected text.
    for (id, _, text) in GBK_ROWS {
        if let Some(t) = text {
            let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                env.dst_psql(&format!("SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM gbk_t WHERE id = {id}")),
                hex,
                "row {id}"
            );
        }
    }
}

#[test]
fn invalid_gbk_fails_the_window_naming_the_row() {
    let run = bad_gbk_fails_naming_the_row("invalid_gbk_fails", "", "33 09");
    cli_snapshot!(run);
}

#[test]
fn error_limit_sends_bad_rows_to_the_reject_file() {
    let env = TestEnv::on("gbk_reject_file", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    insert_gbk(&db, &[(1, Some("d6d0")), (2, Some("ff")), (3, Some("cec4")), (4, Some("d6")), (5, Some("e75c"))], 0);
    insert_gbk(&db, &[(11, Some("d6d0cec4"))], 1);
    gbk_config(
        &env,
        &db,
        r#"source_encoding = "gbk", error_limit = 2, reject_file = "{TEMP_DIR}/rejects-{window}.txt""#,
    );

    let run = env.run(&["run"]);
    run.assert_success();
    assert_eq!(env.dst_psql("SELECT id || ' ' || name FROM gbk_t ORDER BY id"), "1 中\n3 文\n5 鏫\n11 中文");
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || rows_read || ' ' || rows_written FROM gptransfer.history ORDER BY window_id"
        ),
        "20240310000000^20240310010000 3 3\n20240310010000^20240310020000 1 1"
    );
    let file = env.dir().join("rejects-20240310000000^20240310010000.txt");
    let rejects = std::fs::read(&file).unwrap();
    assert_eq!(rejects, b"2\t2024-03-10 00:00:02\t\xff\tn2\n4\t2024-03-10 00:00:04\t\xd6\tn4\n");
    assert!(!env.dir().join("rejects-20240310010000^20240310020000.txt").exists(), "a clean window has no file");
    assert_eq!(cursor(&env, "public.gbk_t").as_deref(), Some("2024-03-10 02:00:00"));
    // The window again (cursor forgotten, a replace): its reject file is rewritten, not appended.
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(std::fs::read(&file).unwrap(), rejects);
    assert_eq!(env.dst_psql("SELECT id || ' ' || name FROM gbk_t ORDER BY id"), "1 中\n3 文\n5 鏫\n11 中文");
}

/// `compare` reads the GBK source as the transfer did, converted to UTF-8 inside the SQL_ASCII
/// database: equal rows hash equal to their UTF-8 copy, and a changed Chinese value on the
/// target is named by its key.
#[test]
fn compare_converts_gbk_in_sql_ascii_like_the_transfer() {
    let env = TestEnv::on("gbk_compare", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    let rows: Vec<(i32, Option<&str>)> = GBK_ROWS.iter().map(|(id, hex, _)| (*id, *hex)).collect();
    insert_gbk(&db, &rows, 0);
    gbk_config_with(&env, &db, r#"source_encoding = "gbk""#, r#"key = ["id"]"#);
    env.run(&["run"]).assert_success();

    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    env.dst_psql("UPDATE gbk_t SET name = '中文!' WHERE id = 1");
    let out = env.run(&["compare"]);
    out.assert_code(3);
    assert!(out.stdout.contains("changed  id=1 "), "{}", out.render());
    assert!(out.stdout.contains("1 differing key(s)"), "{}", out.render());
}

/// A source database in EUC_CN (a real server encoding other than UTF8): the server converts
/// for the transfer, and `compare` hashes each side's UTF-8 form, so the copy compares equal
/// and a changed Chinese value is named by its key.
#[test]
fn compare_hashes_an_euc_cn_source_as_its_utf8_copy() {
    let env = TestEnv::on("euc_cn_compare", Server::Pg82, Server::Gp6);
    let db = AsciiDb::with_encoding(&env, "EUC_CN");
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    db.psql(
        "SET client_encoding = 'UTF8'; INSERT INTO gbk_t VALUES (1, '2024-03-10 00:00:01', '中文', 'n1'), (2, '2024-03-10 00:00:02', '缺陷,玻璃', 'n2'), \
         (3, '2024-03-10 00:00:03', NULL, 'n3'), (4, '2024-03-10 00:00:04', '', 'n4')",
    );
    assert_eq!(db.psql("SHOW server_encoding"), "EUC_CN");
    gbk_config_with(&env, &db, r#"source_encoding = "utf8""#, r#"key = ["id"]"#);
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT string_agg(name, '/' ORDER BY id) FROM gbk_t"), "中文/缺陷,玻璃/");

    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    env.dst_psql("UPDATE gbk_t SET name = '缺陷,玻璃!' WHERE id = 2");
    let out = env.run(&["compare"]);
    out.assert_code(3);
    assert!(out.stdout.contains("changed  id=2 "), "{}", out.render());
    assert!(out.stdout.contains("1 differing key(s)"), "{}", out.render());
}

// ---------------------------------------------------------------------------------------------
// 8.2 → GP6: every float and timestamp by its bits
// ---------------------------------------------------------------------------------------------

/// A superuser session on `pg` over its socket, without `application_name` (8.2 refuses that
/// startup parameter, so the harness's `Pg::admin` cannot be used there).
async fn superuser_session(pg: &Pg, db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(&pg.socket_dir)
        .port(pg.port)
        .user(pg.admin_user())
        .dbname(db)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("superuser connection to {} db {db}: {e}", pg.name));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Loads `(id, real bits, double bits)` rows into `table (id, r, d)` with a binary COPY: the
/// only way to put every bit pattern into 8.2, whose text input refuses subnormals.
fn binary_copy_floats(pg: &Pg, db: &str, table: &str, rows: &[(i32, u32, u64)]) {
    use futures_util::SinkExt;
    let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
    data.extend_from_slice(&0i32.to_be_bytes());
    data.extend_from_slice(&0i32.to_be_bytes());
    for (id, r, d) in rows {
        data.extend_from_slice(&3i16.to_be_bytes());
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(&id.to_be_bytes());
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(&r.to_be_bytes());
        data.extend_from_slice(&8i32.to_be_bytes());
        data.extend_from_slice(&d.to_be_bytes());
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = superuser_session(pg, db).await;
        if pg.kind == support::Kind::Gp6 {
            // GP6 analyzes a table loaded while empty (gp_autostats_mode on_no_stats) through
            // the values' text, which with the default 15 digits overflows on 1.797…e308.
            client.batch_execute("SET extra_float_digits = 3").await.unwrap();
        }
        let sink = client
            .copy_in::<_, bytes::Bytes>(&format!("COPY {table} (id, r, d) FROM STDIN WITH BINARY"))
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data)).await.unwrap();
        sink.finish().await.unwrap();
    });
}

/// Float bit patterns: the special values, the extremes, subnormals, values such as
/// 100.333336 whose last bit 8 digits lose, and pseudo-random patterns over the whole range
/// (NaNs as the canonical NaN: every NaN prints as `NaN` and comes back as that one).
fn float_rows(n: i32) -> Vec<(i32, u32, u64)> {
    let specials: &[(u32, u64)] = &[
        (0.0f32.to_bits(), 0.0f64.to_bits()),
        ((-0.0f32).to_bits(), (-0.0f64).to_bits()),
        (f32::INFINITY.to_bits(), f64::INFINITY.to_bits()),
        (f32::NEG_INFINITY.to_bits(), f64::NEG_INFINITY.to_bits()),
        (f32::NAN.to_bits(), f64::NAN.to_bits()),
        (f32::MAX.to_bits(), f64::MAX.to_bits()),
        (f32::MIN.to_bits(), f64::MIN.to_bits()),
        (f32::MIN_POSITIVE.to_bits(), f64::MIN_POSITIVE.to_bits()),
        (1, 1),
        (0x8000_0001, 0x8000_0000_0000_0001),
        (0x007f_ffff, 0x000f_ffff_ffff_ffff),
        (100.333_336f32.to_bits(), 100.333_336f64.to_bits()),
        (0.1f32.to_bits(), 0.1f64.to_bits()),
        ((1.0f32 / 3.0).to_bits(), (1.0f64 / 3.0).to_bits()),
        (16_777_217.0f32.to_bits(), 9_007_199_254_740_993.0f64.to_bits()),
        (3.402_823_5e38f32.to_bits(), 1.797_693_134_862_315_7e308f64.to_bits()),
    ];
    let mut rows: Vec<(i32, u32, u64)> =
        specials.iter().enumerate().map(|(i, (r, d))| (i as i32 + 1, *r, *d)).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for id in rows.len() as i32 + 1..=n {
        let mut r = next() as u32;
        let mut d = next();
        if f32::from_bits(r).is_nan() {
            r = f32::NAN.to_bits();
        }
        if f64::from_bits(d).is_nan() {
            d = f64::NAN.to_bits();
        }
        // Every fourth value near 1..1000, where real data lives.
        if id % 4 == 0 {
            r = (f32::from_bits(r & 0x007f_ffff | 0x3f80_0000) * (id % 1000) as f32).to_bits();
            d = (f64::from_bits(d & 0x000f_ffff_ffff_ffff | 0x3ff0_0000_0000_0000) * f64::from(id % 1000)).to_bits();
        }
        rows.push((id, r, d));
    }
    rows
}

const FLOATS_DDL: &str = "CREATE TABLE fl (id int PRIMARY KEY, ts timestamp, r real, d double precision)";
const TIMES_DDL: &str = "CREATE TABLE tsx (id int PRIMARY KEY, ts timestamp NOT NULL, t timestamp, tz timestamptz)";

/// Timestamps with every kind of fraction (`.20`, `.999999`, `.000001`), over decades, and
/// ±infinity; 8.2 stores them as float seconds and prints `43.20`.
fn timestamp_rows(n: i32) -> String {
    format!(
        "INSERT INTO tsx SELECT i, timestamp '2024-03-10 00:00:00' + i * interval '1 second', \
           CASE i % 9 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::timestamp WHEN 2 THEN '-infinity'::timestamp \
             WHEN 3 THEN timestamp '2024-03-10 00:00:43.2' WHEN 4 THEN timestamp '1999-12-31 23:59:59.999999' \
             WHEN 5 THEN timestamp '2000-01-01 00:00:00.000001' \
             ELSE timestamp '1970-01-01' + (i * 7919 % 2000000000) * interval '1 second' + (i * 104729 % 1000000) * interval '1 microsecond' END, \
           CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::timestamptz WHEN 2 THEN '-infinity'::timestamptz \
             ELSE timestamptz '1990-06-01 00:00:00+08' + (i::bigint * 15485863 % 1500000000) * interval '1 second' + (i * 7 % 1000000) * interval '1 microsecond' END \
         FROM generate_series(1, {n}) AS i"
    )
}

/// 8.2 → GP6: `real`, `double precision` (every bit pattern 8.2 can hold, subnormals, ±0,
/// ±Infinity, NaN, the extremes) and float timestamps (µs fractions, ±infinity) arrive with
/// the same bits, through the `copy` source (a plain 8.2) and the `gp4` source.
#[test]
fn pg82_to_gp6_floats_and_timestamps_arrive_bit_exact() {
    let env = TestEnv::on("pg82_floats_bit_exact", Server::Pg82, Server::Gp6);
    assert_eq!(env.src_psql("SHOW integer_datetimes"), "off", "8.2 is built with float timestamps");
    env.src_psql(FLOATS_DDL);
    env.src_psql(TIMES_DDL);
    let rows = float_rows(3000);
    binary_copy_floats(env.src, &env.db, "fl", &rows);
    // And an array of real, whose elements print like a real (-NaN would come back as NaN,
    // like any NaN: text has one NaN).
    env.src_psql("ALTER TABLE fl ADD COLUMN ra real[]");
    env.src_psql("UPDATE fl SET ts = timestamp '2024-03-10 00:00:00' + id * interval '1 second', ra = ARRAY[r, CASE WHEN r = 'NaN' THEN r ELSE -r END]");
    env.src_psql(&timestamp_rows(3000));
    env.dst_psql(&format!("{FLOATS_DDL} DISTRIBUTED BY (id); ALTER TABLE fl ADD COLUMN ra real[]"));
    env.dst_psql("CREATE TABLE fl_gp4 (LIKE fl) DISTRIBUTED BY (id)");
    env.dst_psql(&format!("{TIMES_DDL} DISTRIBUTED BY (id)"));
    env.dst_psql("CREATE TABLE tsx_gp4 (LIKE tsx) DISTRIBUTED BY (id)");
    env.write_config(
        r#"
{CLUSTERS}

[jobs.plain]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 02:00:00"
duration = "1h"

[[jobs.plain.tables]]
table = "fl"
condition_column = "ts"
key = ["id"]

[[jobs.plain.tables]]
table = "tsx"
condition_column = "ts"
key = ["id"]

[jobs.legacy]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 02:00:00"
duration = "1h"
source = { plugin = "gp4" }

[[jobs.legacy.tables]]
table = "fl"
target_table = "fl_gp4"
condition_column = "ts"
key = ["id"]

[[jobs.legacy.tables]]
table = "tsx"
target_table = "tsx_gp4"
condition_column = "ts"
key = ["id"]
"#,
    );
    let run = env.run(&["run"]);
    run.assert_success();
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written), bool_and(status = 'succeeded') FROM gptransfer.history"),
        "8|12000|t",
        "{}",
        run.render()
    );
    assert_eq!(
        env.dst_psql("SELECT DISTINCT split_part(chain, ' ', 1) FROM gptransfer.history ORDER BY 1"),
        "copy\ngp4"
    );
    let float_cols = [("r", "float4"), ("d", "float8"), ("ra[1]", "float4"), ("ra[2]", "float4")];
    let source = canonical_lines(env.src, &env.db, "fl", &float_cols);
    assert_eq!(source.len(), 3000);
    assert!(source.iter().any(|l| l.contains("|00000001|0000000000000001|")), "subnormals are in the source");
    for target in ["fl", "fl_gp4"] {
        assert_same_lines(target, &source, &canonical_lines(env.dst, &env.dst_db, target, &float_cols));
    }
    let time_cols = [("ts", "timestamp"), ("t", "timestamp"), ("tz", "timestamptz")];
    let source = canonical_lines(env.src, &env.db, "tsx", &time_cols);
    assert!(source.iter().any(|l| l.contains("|2024-03-10 00:00:43.200000|")), "{:?}", &source[..9]);
    assert!(source.iter().any(|l| l.contains("|-infinity|")) && source.iter().any(|l| l.ends_with("|infinity")));
    for target in ["tsx", "tsx_gp4"] {
        assert_same_lines(target, &source, &canonical_lines(env.dst, &env.dst_db, target, &time_cols));
    }

    // compare 8.2 ↔ GP6 agrees, then finds exactly a float's last bit, a microsecond and a
    // lost row.
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    assert!(out.stdout.contains("8 window(s) compared, 0 differ"), "{}", out.render());
    env.dst_psql(
        "UPDATE fl SET r = 100.33334 WHERE id = 12; \
         UPDATE tsx_gp4 SET t = t + interval '1 microsecond' WHERE id = 6; \
         DELETE FROM tsx WHERE id = 2999",
    );
    assert_eq!(env.dst_psql("SELECT encode(float4send(r), 'hex') FROM fl WHERE id = 12"), "42c8aaac");
    let out = env.run(&["compare"]);
    out.assert_code(3);
    for line in ["changed  id=12 ", "changed  id=6 ", "missing  id=2999 "] {
        assert!(out.stdout.contains(line), "{line}: {}", out.render());
    }
    assert_eq!(out.stdout.matches("1 differing key(s)").count(), 3, "{}", out.render());
    assert!(out.stdout.contains("8 window(s) compared, 3 differ"), "{}", out.render());
}

// ---------------------------------------------------------------------------------------------
// State on 8.2: schema, history, the job lock
// ---------------------------------------------------------------------------------------------

/// The state schema lives on the 8.2 source (`[state] cluster = "src"`): a run creates it and
/// records history and cursors there, `history` reads it, and while a run holds the job's
/// advisory lock on 8.2 a second run exits 75 at once, naming the holder; the first run then
/// finishes. The holder is named even before it has written any history (CI once caught a
/// second run in that moment, when the holder was found through its window in flight).
#[test]
fn state_on_pg82_keeps_history_and_the_job_lock() {
    let env = TestEnv::on("state_on_pg82", Server::Pg82, Server::Gp6);
    env.src_psql(GBK_DDL);
    env.src_psql(
        "INSERT INTO gbk_t SELECT i, timestamp '2024-03-10 00:00:00' + i * interval '1 minute', 'n' || i, NULL \
         FROM generate_series(0, 239) AS i",
    );
    env.dst_psql(GBK_DDL);
    env.write_config(
        r#"
[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "src"

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 04:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "gbk_t"
condition_column = "ts"
"#,
    );
    let check = env.run(&["config", "check"]);
    check.assert_success();
    assert!(check.stdout.contains("postgres 8.2"), "the flavour is named: {}", check.render());
    let run = env.run(&["run", "--until", "2024-03-10 02:00:00"]);
    run.assert_success();
    assert_eq!(
        env.src_psql(
            "SELECT window_id || ' ' || status || ' ' || rows_read || ' ' || rows_written FROM gptransfer.history ORDER BY id"
        ),
        "20240310000000^20240310010000 succeeded 60 60\n20240310010000^20240310020000 succeeded 60 60"
    );
    assert_eq!(env.src_psql("SELECT cursor_end FROM gptransfer.cursors"), "2024-03-10 02:00:00");
    assert_eq!(env.dst_psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'gptransfer'"), "0");
    let history = env.run(&["history"]);
    history.assert_success();
    assert_eq!(history.stdout.matches("succeeded").count(), 2, "{}", history.render());
    // Timestamps cross to 8.2 as text: binary ones would be read as float seconds (2000-01-01).
    let json = env.run(&["history", "--output", "json"]);
    json.assert_success();
    assert!(json.stdout.contains("\"window_start\": \"2024-03-10T01:00:00\""), "{}", json.render());
    assert!(!json.stdout.contains("2000-01-01"), "{}", json.render());

    // A session on 8.2 holds the history table: the next run takes the job lock, then waits
    // before it has written any history (closing abandoned rows is its first write there).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let blocker = runtime.block_on(async {
        let c = env.src.admin(&env.db).await;
        c.batch_execute("BEGIN; LOCK TABLE gptransfer.history IN ACCESS EXCLUSIVE MODE").await.unwrap();
        c
    });
    let first = env.spawn(&["run"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while env.src_psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") != "1" {
        assert!(std::time::Instant::now() < deadline, "the first run never took the job lock on 8.2");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let started = std::time::Instant::now();
    let second = env.run(&["run"]);
    assert_eq!(second.code, 75, "{}", second.render());
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the second run waited for the lock");
    // 8.2 has no application_name: the holder is named by what it recorded on taking the lock.
    let holder = format!("the lock is held by gptransfer pid {} host ", first.pid());
    assert!(second.stderr.contains(&holder), "the holder is named: {}", second.stderr);
    assert!(second.stderr.contains("server pid"), "{}", second.stderr);
    runtime.block_on(async { blocker.batch_execute("COMMIT").await.unwrap() });
    let out = first.wait();
    out.assert_success();
    assert_eq!(
        env.src_psql("SELECT count(*), sum(rows_written), bool_and(status = 'succeeded') FROM gptransfer.history"),
        "4|240|t"
    );
    assert_eq!(env.src_psql("SELECT cursor_end FROM gptransfer.cursors"), "2024-03-10 04:00:00");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gbk_t"), "240");
}

// ---------------------------------------------------------------------------------------------
// GB18030 with 4-byte characters: load and compare 8.2 ↔ GP6
// ---------------------------------------------------------------------------------------------

/// `(id, GB18030 bytes as hex, the text)`: 2-byte characters, 4-byte ones in the BMP
/// (`81308130` is U+0080) and above it (U+10000, U+20000 𠀀, U+1F600, U+10FFFF), a
/// backslash as a second byte, control characters.
const GB18030_ROWS: &[(i32, &str, &str)] = &[
    (1, "d6d0cec4", "中文"),
    (2, "95328236", "𠀀"),
    (3, "d6d09532823661e75c", "中𠀀a鏫"),
    (4, "9439fc3609313090308130", "😀\t10\u{10000}"),
    (5, "e3329a35a2e381308130", "\u{10ffff}€\u{80}"),
    (6, "5c4e0a", "\\N\n"),
    (7, "", ""),
    (8, "9532823695328236", "𠀀𠀀"),
];

/// GB18030 codes where GB18030-2005 (WHATWG, encoding_rs) and the servers' GB18030-2000
/// table disagree (a8bc: U+1E3F or U+E7C7, a6d9: U+FE10 or U+E78D, fe59, a3a0, 8135f437),
/// next to ordinary ones.
const GB18030_WHATWG_DIFFERS: &[(i32, &str)] = &[
    (1, "a8bc"),
    (2, "a6d9a6daa6dba6dca6dda6dea6dfa6eca6eda6f3"),
    (3, "fe59fe61fe66fe67fe6dfe7efe90fea0"),
    (4, "a3a0"),
    (5, "8135f437"),
    (6, "d6d0a8bce75ccec4"),
    (7, "d6d0cec4"),
];

/// The colleague's case: 8.2 → GP6 over `stream` (the master path, decoding in Rust) used to
/// load GB18030's 2005 characters while `compare` (the source server's conversion) hashed the
/// 2000 ones: a window differing after a clean load. Now every row arrives as the source
/// server converts it, and compare finds the windows equal.
#[test]
fn gb18030_codes_where_whatwg_differs_arrive_as_the_servers_convert_them() {
    gb18030_whatwg_differs_round(Server::Gp6);
}

/// The same into PostgreSQL 15.
#[test]
fn gb18030_codes_where_whatwg_differs_arrive_in_pg15_as_the_servers_convert_them() {
    gb18030_whatwg_differs_round(Server::Pg);
}

fn gb18030_whatwg_differs_round(target: Server) {
    let env = TestEnv::on("gb18030_whatwg_differs", Server::Pg82, target);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    let rows: Vec<(i32, Option<&str>)> = GB18030_WHATWG_DIFFERS.iter().map(|(id, hex)| (*id, Some(*hex))).collect();
    insert_gbk(&db, &rows, 0);
    gbk_config_with(&env, &db, r#"source_encoding = "gb18030""#, r#"key = ["id"]"#);
    let plan = env.run(&["plan"]);
    assert!(plan.stdout.contains("gp4 > stream > copy"), "{}", plan.render());

    env.run(&["run"]).assert_success();
    for (id, _) in GB18030_WHATWG_DIFFERS {
        let server = db.psql(&format!(
            "SELECT encode(textsend(convert(name, 'GB18030', 'UTF8')), 'hex') FROM gbk_t WHERE id = {id}"
        ));
        let landed =
            env.dst_psql(&format!("SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM gbk_t WHERE id = {id}"));
        assert_eq!(landed, server, "row {id}");
    }
    // U+E7C7 U+E78D U+E81E U+E5E5 U+1E3F, as GB18030-2000 has them.
    assert_eq!(
        env.dst_psql("SELECT encode(convert_to(string_agg(substr(name, 1, 1), '' ORDER BY id), 'UTF8'), 'hex') FROM gbk_t WHERE id <= 5"),
        "ee9f87ee9e8deea09eee97a5e1b8bf"
    );

    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    assert!(out.stdout.contains("2 window(s) compared, 0 differ"), "{}", out.render());
}

/// GBK codes the servers' GBK table has no character for (a8bc, which only GB18030 assigns;
/// a2e3, which WHATWG reads as €) fail the window over `stream` as they would on the segment
/// path and in compare, naming the row and the bytes: never loaded as WHATWG's characters.
#[test]
fn gbk_codes_the_servers_refuse_fail_the_window() {
    let env = TestEnv::on("gbk_servers_refuse", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    insert_gbk(&db, &[(1, Some("d6d0")), (2, Some("41a8bc")), (3, Some("a2e3")), (4, Some("cec4"))], 0);
    // What the source server itself says about them.
    for id in [2, 3] {
        let refused =
            db.pg.try_psql(&db.name, &format!("SELECT convert(name, 'GBK', 'UTF8') FROM gbk_t WHERE id = {id}"));
        assert!(refused.as_ref().is_err_and(|e| e.contains("has no equivalent")), "{refused:?}");
    }
    gbk_config(&env, &db, r#"source_encoding = "gbk""#);

    env.run(&["run"]).assert_code(1);
    let error = env.dst_psql("SELECT status || ': ' || error FROM gptransfer.history ORDER BY id LIMIT 1");
    assert!(error.starts_with("failed: "), "{error}");
    assert!(error.contains("row 2 of the window"), "{error}");
    assert!(error.contains("not valid GBK: bytes a8 bc at byte 2"), "{error}");
    assert!(error.contains("source_encoding"), "says what to do: {error}");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gbk_t"), "0");
}

/// GB18030 in a SQL_ASCII 8.2 database, characters above U+FFFF included, lands in GP6 as
/// UTF-8; `compare` finds both sides equal (8.2's own conversion has no mapping above
/// U+FFFF), then names exactly the keys damaged on the target.
#[test]
fn gb18030_above_the_bmp_lands_as_utf8_and_compares_8_2_with_gp6() {
    gb18030_above_the_bmp_round(Server::Pg82);
}

/// The same from a SQL_ASCII database on PostgreSQL 15: compare's SQL for kernels from 8.3 on
/// (`convert(bytea, …)`, not 8.2's `convert(text, …)`; GP5 is one, and GP6, which has no
/// SQL_ASCII databases, would be). 9.4 has no mapping above U+FFFF either.
#[test]
fn gb18030_above_the_bmp_compares_from_a_sql_ascii_pg15_database() {
    gb18030_above_the_bmp_round(Server::Pg);
}

fn gb18030_above_the_bmp_round(source: Server) {
    let env = TestEnv::on("gb18030_non_bmp", source, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    let rows: Vec<(i32, Option<&str>)> = GB18030_ROWS.iter().map(|(id, hex, _)| (*id, Some(*hex))).collect();
    insert_gbk(&db, &rows, 0);
    insert_gbk(&db, &[(11, Some("95328236")), (12, Some("d6d0")), (13, None)], 1);
    if source == Server::Pg82 {
        // What 8.2 itself cannot do.
        let refused = db.pg.try_psql(&db.name, "SELECT convert(name, 'GB18030', 'UTF8') FROM gbk_t WHERE id = 2");
        assert!(refused.as_ref().is_err_and(|e| e.contains("has no equivalent")), "{refused:?}");
    }
    gbk_config_with(&env, &db, r#"source_encoding = "gb18030""#, r#"key = ["id"]"#);

    env.run(&["run"]).assert_success();
    for (id, _, text) in GB18030_ROWS {
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            env.dst_psql(&format!("SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM gbk_t WHERE id = {id}")),
            hex,
            "row {id}"
        );
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM gbk_t"), "11");

    let out = env.run(&["compare"]);
    assert_eq!(out.code, 0, "{}", out.render());
    assert!(out.stdout.contains("2 window(s) compared, 0 differ"), "{}", out.render());

    // Damage: a changed 4-byte character, a changed BMP value, a lost row, an extra row.
    env.dst_psql(
        "UPDATE gbk_t SET name = '𠀁' WHERE id = 2; UPDATE gbk_t SET name = '中文!' WHERE id = 12; \
         DELETE FROM gbk_t WHERE id = 8; \
         INSERT INTO gbk_t VALUES (99, '2024-03-10 00:30:00', '😀', 'extra')",
    );
    let out = env.run(&["compare"]);
    out.assert_code(3);
    let mut named: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            ["changed ", "missing ", "extra "].iter().any(|k| l.starts_with(k)).then_some(l)
        })
        .collect();
    named.sort();
    let keys: Vec<String> = named.iter().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(keys, ["changed id=12", "changed id=2", "extra id=99", "missing id=8"], "{}", out.render());
    assert!(out.stdout.contains("2 window(s) compared, 2 differ"), "{}", out.render());
}

/// A window whose compare fails (here: a byte that is not GB18030, set aside at load by
/// `error_limit`, which the source cannot convert for hashing) is reported as an error, never
/// as a difference: its own block says so and which side failed, the summary counts it apart,
/// the exit code is 1, and `--repair` does not reload it; the other window compares equal.
#[test]
fn a_window_compare_cannot_read_is_an_error_not_a_difference() {
    let env = TestEnv::on("compare_error_window", Server::Pg82, Server::Gp6);
    let db = AsciiDb::new(&env);
    db.psql(GBK_DDL);
    env.dst_psql(GBK_DDL);
    insert_gbk(&db, &[(1, Some("d6d0")), (2, Some("ff")), (3, Some("95328236"))], 0);
    insert_gbk(&db, &[(11, Some("d6d0cec4"))], 1);
    gbk_config_with(
        &env,
        &db,
        r#"source_encoding = "gb18030", error_limit = 1, reject_file = "{TEMP_DIR}/rejects-{window}.txt""#,
        r#"key = ["id"]"#,
    );
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM gbk_t"), "3");

    for args in [&["compare"][..], &["compare", "--repair"][..]] {
        let out = env.run(args);
        out.assert_code(1);
        assert!(
            out.stdout.contains("ERROR gbk / public.gbk_t window 20240310000000^20240310010000: could not be compared"),
            "{}",
            out.render()
        );
        assert!(out.stdout.contains("error: on the source: "), "{}", out.render());
        assert!(out.stdout.contains("GB18030"), "{}", out.render());
        assert!(!out.stdout.contains("DIFFERENT"), "{}", out.render());
        assert!(
            out.stdout.contains("2 window(s) compared, 0 differ, 1 could not be compared (errors above)"),
            "{}",
            out.render()
        );
        assert!(!out.stdout.contains("after repair"), "nothing to repair: {}", out.render());
    }
    // The repair did not run a load.
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history"), "2");
    // The monitor hears of it, as a window that could not be compared, not as differences.
    let check = env.run(&["alarm", "check"]);
    check.assert_code(3);
    assert_eq!(check.stdout.trim(), "ABNORMAL 1 window(s) could not be compared in public.gbk_t", "{}", check.render());
}

// ---------------------------------------------------------------------------------------------
// GP6 (9.4) as a source: floats in binary, text and CSV
// ---------------------------------------------------------------------------------------------

/// From GP6 (kernel 9.4, `extra_float_digits` 3: 9 digits for a float4, 18 for a float8)
/// every float bit pattern arrives exact, in binary COPY (stream) and in CSV (files on a
/// shared mount), so no cast is needed there.
#[test]
fn gp6_to_gp6_floats_arrive_bit_exact_in_binary_and_csv() {
    let env = TestEnv::on("gp6_floats_bit_exact", Server::Gp6, Server::Gp6);
    env.src_psql(&format!("{FLOATS_DDL} DISTRIBUTED BY (id)"));
    binary_copy_floats(env.src, &env.db, "fl", &float_rows(3000));
    env.src_psql("UPDATE fl SET ts = timestamp '2024-03-10 00:00:00' + id * interval '1 second'");
    env.dst_psql(&format!("{FLOATS_DDL} DISTRIBUTED BY (id)"));
    env.dst_psql("CREATE TABLE fl_csv (LIKE fl) DISTRIBUTED BY (id)");
    std::fs::create_dir(env.dir().join("mount")).unwrap();
    env.write_config(
        r#"
{CLUSTERS}

[jobs.stream]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 01:00:00"
duration = "1h"

[[jobs.stream.tables]]
table = "fl"
condition_column = "ts"

[jobs.files]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 01:00:00"
duration = "1h"
transport = { plugin = "shared-mount", root = "{TEMP_DIR}/mount" }

[[jobs.files.tables]]
table = "fl"
target_table = "fl_csv"
condition_column = "ts"
"#,
    );
    env.run(&["run"]).assert_success();
    assert_eq!(
        env.dst_psql("SELECT chain || ' ' || rows_written FROM gptransfer.history ORDER BY chain"),
        "copy > shared-mount > copy (csv) 3000\ncopy > stream > copy (binary) 3000"
    );
    let cols = [("r", "float4"), ("d", "float8")];
    let source = canonical_lines(env.src, &env.db, "fl", &cols);
    assert!(source.iter().any(|l| l.ends_with("|00000001|0000000000000001")), "subnormals are in the source");
    for target in ["fl", "fl_csv"] {
        assert_same_lines(target, &source, &canonical_lines(env.dst, &env.dst_db, target, &cols));
    }
}
