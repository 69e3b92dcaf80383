//! GBK/GB18030 bytes stored in a SQL_ASCII database become the same characters on every path:
//! the master path's decoder (plugins/gp4 `text.rs`) against the servers' own conversion,
//! which the segment path (external tables declared ENCODING 'GBK') and `compare` use, for
//! every code; and a transfer over `stream` that `compare` then finds equal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use gptransfer_plugin_gp4::SourceEncoding;
use support::{Kind, Pg, Server, TestEnv};

/// How a server converts each code to UTF-8: the UTF-8 bytes, or `None` when it refuses it.
type Mapping = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Every 2-byte code (lead 0x80–0xFF, trail 0x40–0xFE but 0x7F) and every 4-byte code
/// 0x81308130–0x8439FE39 (GB18030's BMP part, which a GBK reader must refuse) as `pg`
/// converts it from `encoding` to UTF-8. One statement: a function converting each code
/// under its own exception block (a refused code fails only its own block).
fn server_mapping(pg: &Pg, db: &str, encoding: &str) -> Mapping {
    // 8.2 has only convert(text) and a byte-wise chr() (in a SQL_ASCII database); later
    // kernels convert bytea.
    let convert = |bytes: &[&str]| {
        if pg.kind.is_82() {
            let text = bytes.iter().map(|b| format!("chr({b})")).collect::<Vec<_>>().join(" || ");
            format!("encode(textsend(convert({text}, enc, 'UTF8')), 'hex')")
        } else {
            let hex = bytes.iter().map(|b| format!("lpad(to_hex({b}), 2, '0')")).collect::<Vec<_>>().join(" || ");
            format!("encode(convert(decode({hex}, 'hex'), enc, 'UTF8'), 'hex')")
        }
    };
    let code =
        |bytes: &[&str]| bytes.iter().map(|b| format!("lpad(to_hex({b}), 2, '0')")).collect::<Vec<_>>().join(" || ");
    let sql = format!(
        "CREATE FUNCTION pg_temp_mapping(enc text) RETURNS SETOF text AS $$
DECLARE a int; b int; c int; d int; r text;
BEGIN
  FOR a IN 128..255 LOOP
    FOR b IN 64..254 LOOP
      IF b <> 127 THEN
        BEGIN
          r := {two};
        EXCEPTION WHEN OTHERS THEN
          r := '-';
        END;
        RETURN NEXT {two_code} || ' ' || r;
      END IF;
    END LOOP;
  END LOOP;
  FOR a IN 129..132 LOOP FOR b IN 48..57 LOOP FOR c IN 129..254 LOOP FOR d IN 48..57 LOOP
    BEGIN
      r := {four};
    EXCEPTION WHEN OTHERS THEN
      r := '-';
    END;
    RETURN NEXT {four_code} || ' ' || r;
  END LOOP; END LOOP; END LOOP; END LOOP;
  RETURN;
END $$ LANGUAGE plpgsql;
SELECT * FROM pg_temp_mapping('{encoding}');
DROP FUNCTION pg_temp_mapping(text);",
        two = convert(&["a", "b"]),
        two_code = code(&["a", "b"]),
        four = convert(&["a", "b", "c", "d"]),
        four_code = code(&["a", "b", "c", "d"]),
    );
    pg.psql(db, &sql)
        .lines()
        .map(|line| {
            let (code, utf8) = line.split_once(' ').unwrap();
            (unhex(code), (utf8 != "-").then(|| unhex(utf8)))
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// The codes where the master path's decoder does not give what the server gives, as
/// `code: server → decoder` lines.
fn disagreements(encoding: SourceEncoding, server: &Mapping) -> Vec<String> {
    let show = |v: &Option<Vec<u8>>| match v {
        Some(utf8) => String::from_utf8_lossy(utf8).chars().map(|c| format!("U+{:04X}", c as u32)).collect(),
        None => "refused".to_string(),
    };
    server
        .iter()
        .filter_map(|(code, want)| {
            let got = encoding.decode(code).ok().map(|text| text.as_bytes().to_vec());
            (&got != want).then(|| {
                let hex: String = code.iter().map(|b| format!("{b:02x}")).collect();
                format!("{hex}: server {} → decoder {}", show(want), show(&got))
            })
        })
        .collect()
}

/// The database a server converts in: 8.2 takes GBK bytes as text only in a SQL_ASCII
/// database (the users' own setup); later kernels convert bytea in any.
fn conversion_db(pg: &Pg, db: &str) -> String {
    if pg.kind != Kind::Pg82 {
        return db.to_string();
    }
    let ascii = format!("{db}_ascii");
    pg.psql("postgres", &format!("CREATE DATABASE \"{ascii}\" ENCODING 'SQL_ASCII' TEMPLATE template0"));
    // 8.2 has no plpgsql in new databases unless template1 had it.
    let _ = pg.try_psql(&ascii, "CREATE LANGUAGE plpgsql");
    ascii
}

/// For every GBK and GB18030 code, the master path's decoder gives exactly the characters the
/// servers' conversion gives, and refuses exactly the codes they refuse: on PostgreSQL 8.2
/// (the SQL_ASCII source users run: compare's conversion), on Greenplum 6 (the target: the
/// segment path's ENCODING 'GBK' external tables) and on PostgreSQL 15 (the other target).
#[test]
fn decoder_matches_the_servers_conversion_for_every_code() {
    let env = TestEnv::on("gbk_every_code", Server::Pg82, Server::Gp6);
    let pg15 = &support::clusters().source;
    let mut failures = Vec::new();
    for (pg, db) in
        [(env.src, conversion_db(env.src, &env.db)), (env.dst, env.dst_db.clone()), (pg15, "postgres".into())]
    {
        for (encoding, name) in [(SourceEncoding::Gbk, "GBK"), (SourceEncoding::Gb18030, "GB18030")] {
            let server = server_mapping(pg, &db, name);
            assert_eq!(server.len(), 128 * 190 + 4 * 10 * 126 * 10, "{}", pg.name);
            let wrong = disagreements(encoding, &server);
            if !wrong.is_empty() {
                failures.push(format!(
                    "{} {name}: {} code(s) differ, e.g.\n  {}",
                    pg.name,
                    wrong.len(),
                    wrong.iter().take(12).cloned().collect::<Vec<_>>().join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
