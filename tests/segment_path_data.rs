//! Adversarial data and schemas on the `gpfdist` transport (segment to segment, TEXT format
//! through gpfdist): every value arrives byte-exact, or the window fails loudly, naming the
//! table, the window and what to do. Never success with different data.
//!
//! Each test sets up several tables and moves them in one run, under hostile database defaults
//! on both sides (DateStyle, IntervalStyle, extra_float_digits, bytea_output, TimeZone), which
//! the segments must not use: the bytes between them are the sessions' settings only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{gp6_home, table_digest, CmdOutput, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The transport's TOML (a job-level line), gpfdist of the test's GP6 install.
fn transport(first_port: u16, max_row_bytes: u32) -> String {
    format!(
        r#"transport = {{ plugin = "gpfdist", host = "127.0.0.1", port_range = [{first_port}, {}], gpfdist = "{}", work_dir = "{{TEMP_DIR}}/gpfdist", max_row_bytes = {max_row_bytes} }}"#,
        first_port + 39,
        gp6_home().join("bin/gpfdist").display()
    )
}

/// Job `j` (hourly windows from 2024-01-01 00:00, no retries) through the transport, with
/// `tables` (`[[jobs.j.tables]]` entries).
fn job(first_port: u16, max_row_bytes: u32, tables: &str) -> String {
    format!(
        "{{CLUSTERS}}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-01-01 00:00:00\"\nduration = \"1h\"\n\
         retries = 0\n{}\n{tables}",
        transport(first_port, max_row_bytes)
    )
}

/// A windowed table entry: `ts` cuts windows over the first two hours of 2024.
fn windowed(table: &str, column: &str) -> String {
    format!(
        "\n[[jobs.j.tables]]\ntable = {table:?}\ncondition_column = {column:?}\nfinal_end = \"2024-01-01 02:00:00\"\n"
    )
}

fn full(table: &str) -> String {
    format!("\n[[jobs.j.tables]]\ntable = {table:?}\nmode = \"full\"\n")
}

/// Database defaults a segment would print or parse with, were the sessions' settings not
/// what it used.
fn hostile_defaults(env: &TestEnv, source: bool, target: bool) {
    if source {
        let db = &env.db;
        let mut sql = format!(
            "ALTER DATABASE \"{db}\" SET DateStyle = 'SQL, DMY';\n\
             ALTER DATABASE \"{db}\" SET extra_float_digits = -15;\n\
             ALTER DATABASE \"{db}\" SET TimeZone = 'Asia/Kolkata';\n"
        );
        // 8.2 has neither setting.
        if env.src.kind != support::Kind::Gp4 {
            sql.push_str(&format!(
                "ALTER DATABASE \"{db}\" SET IntervalStyle = 'sql_standard';\n\
                 ALTER DATABASE \"{db}\" SET bytea_output = 'escape';"
            ));
        }
        env.src_psql(&sql);
    }
    if target {
        env.dst_psql(&format!(
            "ALTER DATABASE \"{db}\" SET DateStyle = 'German, DMY';\n\
             ALTER DATABASE \"{db}\" SET IntervalStyle = 'sql_standard';\n\
             ALTER DATABASE \"{db}\" SET extra_float_digits = 0;\n\
             ALTER DATABASE \"{db}\" SET TimeZone = 'America/Sao_Paulo';",
            db = env.dst_db
        ));
    }
}

fn assert_no_external_tables_left(env: &TestEnv) {
    for (pg, db) in [(env.src, &env.db), (env.dst, &env.dst_db)] {
        assert_eq!(
            pg.psql(
                db,
                "SELECT count(*) FROM pg_exttable x JOIN pg_class c ON c.oid = x.reloid WHERE c.relname LIKE 'gptransfer%'"
            ),
            "0",
            "external tables left in {db}"
        );
    }
}

fn history(env: &TestEnv, table: &str) -> String {
    env.dst_psql(&format!(
        "SELECT string_agg(window_id || ' ' || status || ' ' || coalesce(rows_written, 0), ',' ORDER BY window_id, id) \
         FROM gptransfer.history WHERE table_name = '{table}'"
    ))
}

fn failed_with(out: &CmdOutput, table: &str, window: &str, needles: &[&str]) {
    let line = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .find(|l| l.contains("FAILED") && l.contains(table) && l.contains(window))
        .unwrap_or_else(|| panic!("no FAILED line for {table} {window}\n{}", out.render()));
    for n in needles {
        assert!(line.contains(n), "{table} {window}: {n:?} not in\n{line}\n{}", out.render());
    }
}

// ---------------------------------------------------------------------------------------------
// Values: every byte and character class, every type with a tricky text form
// ---------------------------------------------------------------------------------------------

const VALS_DDL: &str = "id int NOT NULL, ts timestamp, t text, b bytea, arr text[], arr2 int[], js json, jb jsonb, \
     n numeric, f8 float8, f4 float4, at_ts timestamp, at_tz timestamptz, d date, iv interval, ok bool, \
     u uuid, ip inet, net cidr, mac macaddr, bits varbit, ch char(5), vc varchar(12), m money, tail text";

/// The digest's expressions: floats by their bits, the rest by its text under the digest's
/// fixed settings.
const VALS_COLUMNS: &[&str] = &[
    "id",
    "ts",
    "t",
    "b",
    "arr",
    "array_lower(arr2, 1)",
    "arr2",
    "js",
    "jb",
    "n",
    "encode(float8send(f8), 'hex')",
    "encode(float4send(f4), 'hex')",
    "at_ts",
    "at_tz",
    "d",
    "iv",
    "ok",
    "u",
    "ip",
    "net",
    "mac",
    "bits",
    "ch",
    "octet_length(ch)",
    "vc",
    "m",
    "tail",
];

/// Rows 1..=24 of every class, at 5-minute steps from 00:00 (row 13 at 01:00, a window's
/// first instant), plus rows on and beside the windows' bounds and with NULL `ts`.
const VALS_ROWS: &str = r#"
INSERT INTO vals
SELECT i,
       timestamp '2024-01-01 00:00:00' + (i - 1) * interval '5 minutes',
       CASE i % 12
           WHEN 0 THEN E'tab\there\ttrail\t'
           WHEN 1 THEN E'cr\rlf\ncrlf\r\nend'
           WHEN 2 THEN E'\\N'
           WHEN 3 THEN ''
           WHEN 4 THEN NULL
           WHEN 5 THEN E'\\.'
           WHEN 6 THEN E'trailing backslash\\'
           WHEN 7 THEN '中文 CJK 😀 emoji ' || chr(65279) || chr(8232) || 'é́'
           WHEN 8 THEN (SELECT string_agg(chr(g), '' ORDER BY g) FROM generate_series(1, 127) g)
           WHEN 9 THEN E'\n'
           WHEN 10 THEN E'\\'
           ELSE E'\\\\N \\t \\n \\\\. NULL (1,"a b",) '
       END,
       CASE i % 4
           WHEN 0 THEN (SELECT string_agg(set_byte('\x00'::bytea, 0, g), ''::bytea ORDER BY g) FROM generate_series(0, 255) g)
           WHEN 1 THEN ''::bytea
           WHEN 2 THEN NULL
           ELSE E'\\x5c0a0d09004e'::bytea
       END,
       CASE i % 3
           WHEN 0 THEN ARRAY['a,b', 'q"uote', '{brace}', NULL, 'NULL', '', E'back\\slash', ' sp ', E'tab\t', '中']
           WHEN 1 THEN '{}'::text[]
           ELSE NULL
       END,
       CASE i % 3 WHEN 0 THEN '[0:1][2:3]={{1,2},{3,NULL}}'::int[] WHEN 1 THEN ARRAY[-2147483648, 2147483647] END,
       CASE i % 2
           WHEN 0 THEN E'{"k": "line\\nbreak \\u00e9 \\\\ \\"q\\"", "k": [1, 2.50, null],  "z" : {}}'::json
           ELSE '"\ud83d\ude00"'::json
       END,
       CASE i % 2 WHEN 0 THEN E'{"k": "tab\\t \\u00e9 \\\\", "n": 1.50, "a": [true, null]}'::jsonb ELSE '[]'::jsonb END,
       CASE i % 6
           WHEN 0 THEN 'NaN'::numeric
           WHEN 1 THEN '123456789012345678901234567890.123456789012345678901234567890'::numeric
           WHEN 2 THEN '-0.000000000000000000000000000000000000000001'::numeric
           WHEN 3 THEN 1e100::numeric
           WHEN 4 THEN NULL
           ELSE 0.10::numeric
       END,
       CASE i % 9
           WHEN 0 THEN '-0'::float8
           WHEN 1 THEN 'NaN'::float8
           WHEN 2 THEN 'Infinity'::float8
           WHEN 3 THEN '-Infinity'::float8
           WHEN 4 THEN 5e-324::float8
           WHEN 5 THEN 2.2250738585072009e-308::float8
           WHEN 6 THEN 1.7976931348623157e308::float8
           WHEN 7 THEN 0.1::float8
           ELSE (1 / 3.0)::float8
       END,
       CASE i % 5 WHEN 0 THEN '1e-45'::float4 WHEN 1 THEN '-0'::float4 WHEN 2 THEN 'NaN'::float4
                  WHEN 3 THEN '3.4028235e38'::float4 ELSE (1 / 3.0)::float4 END,
       CASE i % 4
           WHEN 0 THEN timestamp '4713-01-01 00:00:00 BC'
           WHEN 1 THEN 'infinity'::timestamp
           WHEN 2 THEN '-infinity'::timestamp
           ELSE timestamp '2024-02-29 23:59:59.999999'
       END,
       CASE i % 3
           WHEN 0 THEN timestamptz '0044-03-15 12:00:00.000001+00 BC'
           WHEN 1 THEN timestamptz '1900-01-01 00:00:00+05:53:28'
           ELSE timestamptz '2024-03-10 02:30:00-08'
       END,
       CASE i % 3 WHEN 0 THEN date '5874897-12-31' WHEN 1 THEN date '4713-01-01 BC' ELSE date '2024-01-02' END,
       CASE i % 4
           WHEN 0 THEN interval '-1 day +2 hours 3.5 seconds'
           WHEN 1 THEN interval '178000000 years'
           WHEN 2 THEN interval '-00:00:00.000001'
           ELSE interval '1 mon -1 day'
       END,
       CASE i % 3 WHEN 0 THEN true WHEN 1 THEN false END,
       CASE i % 2 WHEN 0 THEN 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid END,
       CASE i % 2 WHEN 0 THEN '::ffff:1.2.3.4/128'::inet ELSE '10.1.2.3/8'::inet END,
       '10.0.0.0/8'::cidr,
       '08:00:2b:01:02:03'::macaddr,
       CASE i % 2 WHEN 0 THEN B'1011' ELSE B'' END,
       CASE i % 2 WHEN 0 THEN 'ab' ELSE E'\\ \t' END,
       CASE i % 2 WHEN 0 THEN 'ünï ' ELSE '  ' END,
       CASE i % 2 WHEN 0 THEN '-92233720368547758.08'::money ELSE '1234.56'::money END,
       CASE i % 3 WHEN 0 THEN E'ends in a backslash\\' WHEN 1 THEN E'\\' ELSE '' END
FROM generate_series(1, 24) AS i;
-- On and beside the windows' bounds; a NULL in the window column is in no window.
INSERT INTO vals (id, ts, t, tail) VALUES
    (100, '2023-12-31 23:59:59.999999', 'before the first window', E'\\'),
    (101, '2024-01-01 00:59:59.999999', 'last instant of the first window', E'\\'),
    (102, '2024-01-01 01:00:00', 'first instant of the second window', E'\\'),
    (103, '2024-01-01 02:00:00', 'the end, excluded', E'\\'),
    (104, NULL, 'NULL window column', E'\\');
"#;

/// Rows of `vals` the windows hold.
const IN_WINDOWS: &str = "ts >= '2024-01-01 00:00:00' AND ts < '2024-01-01 02:00:00'";

/// User-defined types on both sides: enums (one in another schema), a domain, a composite.
const UDT_DDL: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy, "very"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a text, b int[]);
CREATE SCHEMA other;
CREATE TYPE other.color AS ENUM ('red', 'Green');
CREATE TABLE udt (id int, ts timestamp, m mood, p posint, pr pair, c other.color, ms mood[]) DISTRIBUTED BY (id);
"#;

/// The other source tables of [`adversarial_values_and_schemas_arrive_byte_exact`].
const OTHER_SOURCES: &str = r#"
INSERT INTO udt VALUES
    (1, '2024-01-01 00:10:00', 'happy, "very"', 5, ROW(E'x,"y"\\', ARRAY[1, NULL]), 'Green', ARRAY['sad', 'happy, "very"']::mood[]),
    (2, '2024-01-01 01:20:00', NULL, NULL, ROW(NULL, NULL), NULL, NULL),
    (3, '2024-01-01 01:30:00', 'sad', 1, NULL, 'red', '{}');
-- One text column: an empty string is an empty line.
CREATE TABLE one (v text) DISTRIBUTED RANDOMLY;
INSERT INTO one VALUES (''), (''), (NULL), (E'\\N'), (E'\\.'), (E'\\'), (E'\r'), (' '), ('x');
-- Names to quote; a dropped column; the target has its columns in another order.
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Tab""le 'x" (id int, "Event Time" timestamp, "Select" text, "q""uote" text,
    "MixedCase" int, drop_me int, "a b 名'" text) DISTRIBUTED BY ("MixedCase");
ALTER TABLE "My Schema"."Tab""le 'x" DROP COLUMN drop_me;
INSERT INTO "My Schema"."Tab""le 'x"
SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '10 minutes', 's' || g, E'q\\' || g, g % 3,
       CASE WHEN g % 2 = 0 THEN E'ends\\' ELSE E'cr\r' END
FROM generate_series(0, 11) g;
-- Rows up to max_row_bytes (32768) long, newline included: 23 bytes besides `v`.
CREATE TABLE wide (id int, ts timestamp, v text) DISTRIBUTED BY (id);
INSERT INTO wide SELECT g, '2024-01-01 00:30:00', repeat(chr(48 + g), 32736 + g) FROM generate_series(1, 9) g;
-- Into a replicated and a partitioned target.
CREATE TABLE regions (id int, ts timestamp, region text, v text) DISTRIBUTED BY (id);
INSERT INTO regions SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '1 minute',
       (ARRAY['a', 'b', 'c'])[g % 3 + 1], 'v' || g FROM generate_series(0, 119) g;
-- A partitioned source, its partitions cut inside the windows, rows on the cuts.
CREATE TABLE ps (id int, ts timestamp, v text) DISTRIBUTED BY (id)
    PARTITION BY RANGE (ts) (START ('2024-01-01 00:00') END ('2024-01-01 02:00') EVERY (interval '30 minutes'),
                             DEFAULT PARTITION other);
INSERT INTO ps SELECT g, timestamp '2023-12-31 23:00:00' + g * interval '1 minute'
       + CASE WHEN g % 7 = 0 THEN interval '0.999999 second' ELSE interval '0' END, 'v' || g
FROM generate_series(0, 240) g;
INSERT INTO ps VALUES (1000, NULL, 'NULL ts'), (1001, '2024-01-01 00:29:59.999999', 'edge'), (1002, '2024-01-01 00:30:00', 'edge');
-- Windows on a timestamptz column (the source's zone is Asia/Kolkata, the target's America/Sao_Paulo).
CREATE TABLE tz_events (id int, at timestamptz, v text) DISTRIBUTED BY (id);
INSERT INTO tz_events SELECT g, timestamptz '2023-12-31 12:00:00+00' + g * interval '7 minutes', 'v' || g
FROM generate_series(0, 240) g;
"#;

/// GP6 → GP6: values of every class, schemas that differ between the ends, quoted names, a
/// single-column table (empty lines), a replicated and a partitioned target and rows as long
/// as `max_row_bytes` allows, all byte-exact; the values and the one-column table over the
/// masters (`stream`) too.
#[test]
fn adversarial_values_and_schemas_arrive_byte_exact() {
    let env = TestEnv::on("segdata_values", Server::Gp6, Server::Gp6);
    // extra_float_digits = 3: GP6's automatic ANALYZE of the new table reads the sampled float8
    // maximum back through text, which overflows with fewer digits.
    env.src_psql(&format!(
        "SET extra_float_digits = 3;\nCREATE TABLE vals ({VALS_DDL}) DISTRIBUTED BY (id);\n{VALS_ROWS}\n{UDT_DDL}\n{OTHER_SOURCES}"
    ));
    env.dst_psql(&format!(
        "SET ROLE gpt;
         CREATE TABLE vals ({VALS_DDL}) DISTRIBUTED RANDOMLY;
         CREATE TABLE one (v text) DISTRIBUTED BY (v);
         CREATE SCHEMA \"My Schema\";
         CREATE TABLE \"My Schema\".\"Tab\"\"le 'x\" (gone int, \"a b 名'\" text, \"q\"\"uote\" text, added int DEFAULT 42,
             \"Event Time\" timestamp, \"MixedCase\" int, \"Select\" text, id int) DISTRIBUTED BY (\"Select\");
         ALTER TABLE \"My Schema\".\"Tab\"\"le 'x\" DROP COLUMN gone;
         CREATE TABLE wide (id int, ts timestamp, v text) DISTRIBUTED BY (v);
         CREATE TABLE regions (v text, region text, ts timestamp, id int) DISTRIBUTED REPLICATED;
         CREATE SCHEMA parted;
         CREATE TABLE parted.regions (id int, ts timestamp, region text, v text) DISTRIBUTED BY (v)
             PARTITION BY LIST (region) (PARTITION pa VALUES ('a'), PARTITION pb VALUES ('b'), PARTITION pc VALUES ('c'));
         CREATE TABLE ps (id int, ts timestamp, v text) DISTRIBUTED BY (id);
         CREATE TABLE tz_events (id int, at timestamptz, v text) DISTRIBUTED BY (id);
         CREATE SCHEMA master;
         CREATE TABLE master.vals ({VALS_DDL}) DISTRIBUTED BY (id);
         CREATE TABLE master.one (v text) DISTRIBUTED RANDOMLY;
         {UDT_DDL}"
    ));
    let tables = [
        windowed("public.vals", "ts"),
        full("public.one"),
        windowed(r#""My Schema"."Tab""le 'x""#, "Event Time"),
        windowed("public.wide", "ts"),
        windowed("public.regions", "ts"),
        format!("{}target_table = \"parted.regions\"\n", windowed("public.regions", "ts")),
        windowed("public.ps", "ts"),
        windowed("public.tz_events", "at"),
        windowed("public.udt", "ts"),
    ];
    // After the setup: SQL DateStyle cannot even read back its own `LMT BC` timestamps.
    hostile_defaults(&env, true, true);
    // The same values over the masters (job `k`, transport `stream`), for the sibling check.
    let master = "\n[jobs.k]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-01-01 00:00:00\"\nduration = \"1h\"\n\
                  \n[[jobs.k.tables]]\ntable = \"public.vals\"\ntarget_table = \"master.vals\"\ncondition_column = \"ts\"\n\
                  final_end = \"2024-01-01 02:00:00\"\n\
                  \n[[jobs.k.tables]]\ntable = \"public.one\"\ntarget_table = \"master.one\"\nmode = \"full\"\n";
    env.write_config(&format!("{}{master}", job(30100, 32768, &tables.concat())));
    let out = env.run(&["run", "--parallel", "2"]);
    out.assert_success();
    assert!(out.stdout.contains("20 window(s) loaded, 0 failed"), "{}", out.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(DISTINCT job || ' ' || chain, ',') FROM gptransfer.history"),
        // The values in binary COPY, the one-column table in text.
        "j copy > gpfdist > copy,k copy > stream > copy,k copy > stream > copy (binary)"
    );
    // The timestamptz windows again (replace): each deletes on the target the instants it reads.
    env.dst_psql("DELETE FROM gptransfer.cursors WHERE table_name = 'public.tz_events'");
    let again = env.run(&["run"]);
    again.assert_success();
    assert!(again.stdout.contains("2 window(s) loaded, 0 failed"), "{}", again.render());

    let same = |table: &str, target: &str, columns: &[&str], order: &str, filter: &str| {
        let source = table_digest(env.src, &env.db, table, columns, order, filter);
        assert!(!source.starts_with("0 "), "{table}: no source rows");
        assert_eq!(table_digest(env.dst, &env.dst_db, target, columns, order, "true"), source, "{table} → {target}");
    };
    same("vals", "vals", VALS_COLUMNS, "id", IN_WINDOWS);
    assert_eq!(env.dst_psql("SELECT count(*) FROM vals WHERE id >= 100"), "2", "the rows on the bounds");
    same("one", "one", &["v"], "v NULLS FIRST", "true");
    same("vals", "master.vals", VALS_COLUMNS, "id", IN_WINDOWS);
    same("one", "master.one", &["v"], "v NULLS FIRST", "true");
    same(
        r#""My Schema"."Tab""le 'x""#,
        r#""My Schema"."Tab""le 'x""#,
        &["id", r#""Event Time""#, r#""Select""#, r#""q""uote""#, r#""MixedCase""#, r#""a b 名'""#],
        "id",
        r#""Event Time" < '2024-01-01 02:00:00'"#,
    );
    assert_eq!(env.dst_psql(r#"SELECT DISTINCT added FROM "My Schema"."Tab""le 'x""#), "42", "the target's default");
    same("wide", "wide", &["id", "ts", "v"], "id", "true");
    let regions = ["id", "ts", "region", "v"];
    same("regions", "regions", &regions, "id", IN_WINDOWS);
    same("regions", "parted.regions", &regions, "id", IN_WINDOWS);
    assert_eq!(
        env.dst_psql(
            "SELECT string_agg(p, ',' ORDER BY p) FROM (SELECT DISTINCT tableoid::regclass::text || ' ' || region AS p \
             FROM parted.regions) d"
        ),
        "parted.regions_1_prt_pa a,parted.regions_1_prt_pb b,parted.regions_1_prt_pc c"
    );
    same("ps", "ps", &["id", "ts", "v"], "id", IN_WINDOWS);
    same("udt", "udt", &["id", "ts", "m", "p", "pr", "c", "ms"], "id", "true");
    // The windows are the source's zone's hours.
    same(
        "tz_events",
        "tz_events",
        &["id", "at", "v"],
        "id",
        "at >= '2024-01-01 00:00:00+05:30' AND at < '2024-01-01 02:00:00+05:30'",
    );
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) FROM gptransfer.history WHERE status <> 'succeeded' OR rows_read <> rows_written"
        ),
        "0"
    );
    assert_no_external_tables_left(&env);
}

// ---------------------------------------------------------------------------------------------
// What cannot arrive exactly fails its window, loudly, and nothing of it lands
// ---------------------------------------------------------------------------------------------

const FIRST: &str = "20240101000000^20240101010000";
const SECOND: &str = "20240101010000^20240101020000";

/// Into a LATIN1 target database: a row one byte longer than `max_row_bytes` (never skipped:
/// gpfdist has no reject limit here), a row no partition of the target takes, a character
/// LATIN1 cannot hold (never a `?`). Each fails its window with the table, the window and what
/// to do, and nothing of it lands (nor of the table's later windows, which wait for it); the
/// window before loads, byte-exact.
#[test]
fn what_cannot_arrive_exactly_fails_the_window_loudly() {
    let env = TestEnv::on("segdata_refused", Server::Gp6, Server::Gp6);
    env.dst.psql(
        "postgres",
        &format!(
            "DROP DATABASE \"{db}\";\n\
             CREATE DATABASE \"{db}\" ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';",
            db = env.dst_db
        ),
    );
    env.src_psql(
        r#"
        -- The first hour: rows up to the limit and one row (id 5) a byte longer; the second: short rows.
        CREATE TABLE wide (id int, ts timestamp, v text) DISTRIBUTED BY (id);
        INSERT INTO wide SELECT g, '2024-01-01 00:30:00', repeat('Z', 32741 + g) FROM generate_series(1, 5) g;
        INSERT INTO wide SELECT g, '2024-01-01 01:30:00', 'short ' || g FROM generate_series(6, 9) g;
        -- Region 'zz' (first hour) is in no partition of the target.
        CREATE TABLE regions (id int, ts timestamp, region text) DISTRIBUTED BY (id);
        INSERT INTO regions SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '1 minute',
               CASE WHEN g = 30 THEN 'zz' ELSE (ARRAY['a', 'b'])[g % 2 + 1] END FROM generate_series(0, 119) g;
        -- LATIN1 holds the first hour's text, not the second's 中.
        CREATE TABLE enc (id int, ts timestamp, v text) DISTRIBUTED BY (id);
        INSERT INTO enc VALUES (1, '2024-01-01 00:10:00', 'café ÿ ¤'), (2, '2024-01-01 00:20:00', E'\\ \t'),
                               (3, '2024-01-01 01:10:00', 'ok'), (4, '2024-01-01 01:20:00', 'not 中 latin1');
        "#,
    );
    env.dst_psql(
        "SET ROLE gpt;
         CREATE TABLE wide (id int, ts timestamp, v text) DISTRIBUTED BY (id);
         CREATE TABLE regions (id int, ts timestamp, region text) DISTRIBUTED BY (id)
             PARTITION BY LIST (region) (PARTITION pa VALUES ('a'), PARTITION pb VALUES ('b'));
         CREATE TABLE enc (id int, ts timestamp, v text) DISTRIBUTED RANDOMLY;",
    );
    hostile_defaults(&env, true, true);
    let tables = [windowed("public.wide", "ts"), windowed("public.regions", "ts"), windowed("public.enc", "ts")];
    env.write_config(&job(30150, 32768, &tables.concat()));
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stdout.contains("1 window(s) loaded, 3 failed"), "{}", out.render());

    failed_with(&out, "public.wide", FIRST, &["longer than", "max_row_bytes (32768 bytes)", "raise max_row_bytes"]);
    // gpfdist's log echoes the row it could not place: none of it in the error.
    assert!(!out.stdout.contains("ZZZZ") && !out.stderr.contains("ZZZZ"), "row data in the error\n{}", out.render());
    assert_eq!(history(&env, "public.wide"), format!("{FIRST} failed 0"));
    assert_eq!(env.dst_psql("SELECT count(*) FROM wide"), "0");

    failed_with(&out, "public.regions", FIRST, &["target cluster \"dst\"", "no partition for partitioning key"]);
    assert_eq!(history(&env, "public.regions"), format!("{FIRST} failed 0"));
    assert_eq!(env.dst_psql("SELECT count(*) FROM regions"), "0");

    failed_with(&out, "public.enc", SECOND, &["has no equivalent in encoding \"LATIN1\""]);
    assert_eq!(history(&env, "public.enc"), format!("{FIRST} succeeded 2,{SECOND} failed 0"));
    // The same bytes as the source's once read back as UTF-8.
    let enc = ["id", "ts", "convert_to(v, 'UTF8')"];
    assert_eq!(
        table_digest(env.dst, &env.dst_db, "enc", &enc, "id", "true"),
        table_digest(env.src, &env.db, "enc", &enc, "id", "id < 3")
    );
    assert_no_external_tables_left(&env);
}

// ---------------------------------------------------------------------------------------------
// GP4 → GP6: the same classes from a PostgreSQL 8.2 kernel
// ---------------------------------------------------------------------------------------------

const VALS4_DDL: &str =
    "id int NOT NULL, ts timestamp, t text, b bytea, arr text[], arr2 int[], n numeric, f8 float8, \
     f4 float4, at_ts timestamp, at_tz timestamptz, d date, iv interval, ok bool, ip inet, mac macaddr, bits varbit, \
     ch char(5), vc varchar(12), m money, tail text";

/// 8.2's SQL (no string_agg, standard_conforming_strings off, no subnormal floats, 4-byte
/// money): the classes of [`VALS_ROWS`] it has.
const VALS4_ROWS: &str = r#"
SET gp_autostats_mode = none;
INSERT INTO vals4
SELECT i,
       timestamp '2024-01-01 00:00:00' + (i - 1) * interval '5 minutes',
       CASE i % 12
           WHEN 0 THEN E'tab\there\ttrail\t'
           WHEN 1 THEN E'cr\rlf\ncrlf\r\nend'
           WHEN 2 THEN E'\\N'
           WHEN 3 THEN ''
           WHEN 4 THEN NULL
           WHEN 5 THEN E'\\.'
           WHEN 6 THEN E'trailing backslash\\'
           WHEN 7 THEN E'中文 CJK 😀 emoji \xef\xbb\xbf\xe2\x80\xa8é́'
           WHEN 8 THEN array_to_string(ARRAY(SELECT chr(g) FROM generate_series(1, 127) g), '')
           WHEN 9 THEN E'\n'
           WHEN 10 THEN E'\\'
           ELSE E'\\\\N \\t \\n \\\\. NULL (1,"a b",) '
       END,
       CASE i % 4
           WHEN 0 THEN decode(array_to_string(ARRAY(SELECT lpad(to_hex(g), 2, '0') FROM generate_series(0, 255) g), ''), 'hex')
           WHEN 1 THEN E''::bytea
           WHEN 2 THEN NULL
           ELSE decode('5c0a0d09004e', 'hex')
       END,
       CASE i % 3
           WHEN 0 THEN ARRAY[E'a,b', E'q"uote', E'{brace}', NULL, E'NULL', E'', E'back\\slash', E' sp ', E'tab\t', E'中']
           WHEN 1 THEN E'{}'::text[]
           ELSE NULL
       END,
       CASE i % 3 WHEN 0 THEN E'[0:1][2:3]={{1,2},{3,NULL}}'::int[] WHEN 1 THEN ARRAY[-2147483648, 2147483647] END,
       CASE i % 6
           WHEN 0 THEN E'NaN'::numeric
           WHEN 1 THEN E'123456789012345678901234567890.123456789012345678901234567890'::numeric
           WHEN 2 THEN E'-0.000000000000000000000000000000000000000001'::numeric
           WHEN 3 THEN 1e100::numeric
           WHEN 4 THEN NULL
           ELSE 0.10::numeric
       END,
       CASE i % 8
           WHEN 0 THEN E'-0'::float8
           WHEN 1 THEN E'NaN'::float8
           WHEN 2 THEN E'Infinity'::float8
           WHEN 3 THEN E'-Infinity'::float8
           WHEN 4 THEN 2.2250738585072014e-308::float8
           WHEN 5 THEN 1.7976931348623157e308::float8
           WHEN 6 THEN 0.1::float8
           ELSE (1 / 3.0)::float8
       END,
       CASE i % 4 WHEN 0 THEN E'-0'::float4 WHEN 1 THEN E'NaN'::float4 WHEN 2 THEN 0.1::float4 ELSE (1 / 3.0)::float4 END,
       CASE i % 4
           WHEN 0 THEN timestamp '4713-01-01 00:00:00 BC'
           WHEN 1 THEN E'infinity'::timestamp
           WHEN 2 THEN E'-infinity'::timestamp
           ELSE timestamp '2024-02-29 23:59:59.999999'
       END,
       CASE i % 3
           WHEN 0 THEN timestamptz '0044-03-15 12:00:00+00 BC'
           WHEN 1 THEN timestamptz '1900-01-01 00:00:00+05:53:28'
           ELSE timestamptz '2024-03-10 02:30:00.000001-08'
       END,
       CASE i % 2 WHEN 0 THEN date '4713-01-01 BC' ELSE date '2024-01-02' END,
       CASE i % 4
           WHEN 0 THEN interval '-1 day +2 hours 3.5 seconds'
           WHEN 1 THEN interval '1000 years'
           WHEN 2 THEN interval '-00:00:00.000001'
           ELSE interval '1 mon -1 day'
       END,
       CASE i % 3 WHEN 0 THEN true WHEN 1 THEN false END,
       CASE i % 2 WHEN 0 THEN E'::ffff:1.2.3.4/128'::inet ELSE E'10.1.2.3/8'::inet END,
       E'08:00:2b:01:02:03'::macaddr,
       CASE i % 2 WHEN 0 THEN B'1011' ELSE B'' END,
       CASE i % 2 WHEN 0 THEN E'ab' ELSE E'\\ \t' END,
       CASE i % 2 WHEN 0 THEN E'ünï ' ELSE E'  ' END,
       CASE i % 2 WHEN 0 THEN E'-21474836.48'::money ELSE E'1234.56'::money END,
       CASE i % 3 WHEN 0 THEN E'ends in a backslash\\' WHEN 1 THEN E'\\' ELSE E'' END
FROM generate_series(1, 24) AS i;
INSERT INTO vals4 (id, ts, t, tail) VALUES
    (101, E'2024-01-01 00:59:59.999999', E'last instant of the first window', E'\\'),
    (102, E'2024-01-01 01:00:00', E'first instant of the second window', E'\\'),
    (103, E'2024-01-01 02:00:00', E'the end, excluded', E'\\'),
    (104, NULL, E'NULL window column', E'\\');
"#;

/// Rows longer than a segment's write buffer, the longest `max_row_bytes` (262144) long with its
/// newline (id 33: 24 bytes besides `v`), on both segments; and one a byte longer.
const WIDE4_ROWS: &str = r#"
CREATE TABLE wide4 (id int, ts timestamp, v text) DISTRIBUTED BY (id);
INSERT INTO wide4 SELECT g, timestamp '2024-01-01 00:30:00', repeat(chr(65 + g % 26), CASE WHEN g = 33 THEN 262120
       ELSE 40000 + (g % 4) * 70000 END)
FROM generate_series(10, 33) g;
CREATE TABLE wide4_over (id int, ts timestamp, v text) DISTRIBUTED BY (id);
INSERT INTO wide4_over SELECT g, timestamp '2024-01-01 00:30:00', repeat('Z', CASE WHEN g = 33 THEN 262121 ELSE 1000 END)
FROM generate_series(10, 33) g;
"#;

/// Columns whose canonical text is the same on 8.2 and 9.4: text by the md5 of its bytes,
/// floats by their bits, times to the microsecond, bytea in hex.
const VALS4_CANONICAL: &[&str] = &[
    "id",
    "to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US')",
    "md5(t)",
    "encode(b, 'hex')",
    "md5(textin(array_out(arr)))",
    "textin(array_out(arr2))",
    "encode(float8send(f8), 'hex')",
    "encode(float4send(f4), 'hex')",
    "to_char(at_ts, 'YYYY-MM-DD HH24:MI:SS.US BC')",
    "to_char(at_tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC')",
    "to_char(d, 'YYYY-MM-DD BC')",
    "CASE WHEN ok THEN 't' WHEN NOT ok THEN 'f' END",
    "md5(ch::text) || length(ch)",
    "md5(vc)",
    "md5(tail)",
];

/// Every column of `vals4` as GP6 prints it, for the two GP6 copies.
const VALS4_COLUMNS: &[&str] = &[
    "id",
    "ts",
    "t",
    "b",
    "arr",
    "arr2",
    "n",
    "f8",
    "encode(float4send(f4), 'hex')",
    "at_ts",
    "at_tz",
    "d",
    "iv",
    "ok",
    "ip",
    "mac",
    "bits",
    "ch",
    "vc",
    "m",
    "tail",
];

/// GP4 → GP6 through gpfdist under hostile database defaults on both sides: canonical values
/// equal to the source's, and every column equal to what the master path (`stream`) loads
/// into the same target cluster; rows up to `max_row_bytes` whole, a longer one failing its
/// window.
#[test]
fn gp4_to_gp6_adversarial_values_arrive_as_over_the_masters() {
    let env = TestEnv::on("segdata_gp4", Server::Gp4, Server::Gp6);
    env.src_psql(&format!("CREATE TABLE vals4 ({VALS4_DDL}) DISTRIBUTED BY (id);\n{VALS4_ROWS}\n{WIDE4_ROWS}"));
    env.dst_psql(&format!(
        "SET ROLE gpt;
         CREATE TABLE vals4 ({VALS4_DDL}) DISTRIBUTED RANDOMLY;
         CREATE TABLE wide4 (id int, ts timestamp, v text) DISTRIBUTED BY (id);
         CREATE TABLE wide4_over (id int, ts timestamp, v text) DISTRIBUTED BY (id);
         CREATE SCHEMA master;
         CREATE TABLE master.vals4 ({VALS4_DDL}) DISTRIBUTED BY (id);"
    ));
    hostile_defaults(&env, true, true);
    let entry = |job: &str, target: &str| {
        format!(
            "\n[[jobs.{job}.tables]]\ntable = \"public.vals4\"\ntarget_table = \"{target}\"\ncondition_column = \"ts\"\n\
             final_end = \"2024-01-01 02:00:00\"\nsource = {{ plugin = \"gp4\" }}\n"
        )
    };
    let gp4 = |table: &str| format!("{}source = {{ plugin = \"gp4\" }}\n", windowed(table, "ts"));
    let tables = [entry("j", "public.vals4"), gp4("public.wide4"), gp4("public.wide4_over")];
    let config = job(30200, 262_144, &tables.concat());
    env.write_config(&format!(
        "{config}\n[jobs.k]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-01-01 00:00:00\"\nduration = \"1h\"\n{}",
        entry("k", "master.vals4")
    ));
    let out = env.run(&["run"]);
    assert_eq!(out.code, 1, "{}", out.render());
    assert!(out.stdout.contains("6 window(s) loaded, 1 failed"), "{}", out.render());
    failed_with(&out, "public.wide4_over", FIRST, &["max_row_bytes (262144 bytes)", "raise max_row_bytes"]);
    assert!(!out.stdout.contains("ZZZZ") && !out.stderr.contains("ZZZZ"), "row data in the error\n{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM wide4_over"), "0");
    assert_eq!(
        env.dst_psql("SELECT string_agg(DISTINCT job || ' ' || chain, ',') FROM gptransfer.history"),
        "j gp4 > gpfdist > copy,k gp4 > stream > copy"
    );
    // GP4's segments write rows longer than their write buffer, up to the limit, whole.
    let wide = ["id", "to_char(ts, 'YYYY-MM-DD HH24:MI:SS')", "md5(v)", "length(v)"];
    let source = table_digest(env.src, &env.db, "wide4", &wide, "id", "true");
    assert!(source.starts_with("24 "), "{source}");
    assert_eq!(table_digest(env.dst, &env.dst_db, "wide4", &wide, "id", "true"), source);
    let source = table_digest(env.src, &env.db, "vals4", VALS4_CANONICAL, "id", IN_WINDOWS);
    assert!(source.starts_with("26 "), "{source}");
    assert_eq!(table_digest(env.dst, &env.dst_db, "vals4", VALS4_CANONICAL, "id", "true"), source);
    assert_eq!(
        table_digest(env.dst, &env.dst_db, "vals4", VALS4_COLUMNS, "id", "true"),
        table_digest(env.dst, &env.dst_db, "master.vals4", VALS4_COLUMNS, "id", "true"),
        "gpfdist and the master path differ"
    );
    assert_no_external_tables_left(&env);
}

// ---------------------------------------------------------------------------------------------
// GP7 → GP7: external tables are foreign tables there
// ---------------------------------------------------------------------------------------------

/// The values and the one-column table of GP6 → GP6 between GP7 clusters (a 12 kernel, whose
/// external tables are foreign tables of `gp_exttable_fdw`), under the same hostile defaults.
#[test]
fn gp7_to_gp7_adversarial_values_arrive_byte_exact() {
    let env = TestEnv::on("segdata_gp7", Server::Gp7, Server::Gp7);
    env.src_psql(&format!(
        "SET extra_float_digits = 3;\nCREATE TABLE vals ({VALS_DDL}) DISTRIBUTED BY (id);\n{VALS_ROWS}
         CREATE TABLE one (v text) DISTRIBUTED RANDOMLY;
         INSERT INTO one VALUES (''), (''), (NULL), (E'\\\\N'), (E'\\\\.'), (E'\\\\'), (E'\\r'), (' '), ('x');"
    ));
    env.dst_psql(&format!(
        "SET ROLE gpt;
         CREATE TABLE vals ({VALS_DDL}) DISTRIBUTED RANDOMLY;
         CREATE TABLE one (v text) DISTRIBUTED BY (v);"
    ));
    hostile_defaults(&env, true, true);
    env.write_config(&job(30250, 32768, &[windowed("public.vals", "ts"), full("public.one")].concat()));
    let out = env.run(&["run"]);
    out.assert_success();
    assert!(out.stdout.contains("3 window(s) loaded, 0 failed"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > gpfdist > copy");
    let source = table_digest(env.src, &env.db, "vals", VALS_COLUMNS, "id", IN_WINDOWS);
    assert!(source.starts_with("26 "), "{source}");
    assert_eq!(table_digest(env.dst, &env.dst_db, "vals", VALS_COLUMNS, "id", "true"), source);
    assert_eq!(
        table_digest(env.dst, &env.dst_db, "one", &["v"], "v NULLS FIRST", "true"),
        table_digest(env.src, &env.db, "one", &["v"], "v NULLS FIRST", "true")
    );
}
