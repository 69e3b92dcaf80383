//! GBK/GB18030 bytes decode to the same characters on every path: the master path's decoder
//! (plugins/gp4 `text.rs`) against the servers' own conversion, which the segment path
//! (external tables with ENCODING 'GBK') and `compare` use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use support::{Kind, Pg, Server, TestEnv};

/// Every 2-byte code (lead 0x81–0xFE, trail 0x40–0x7E and 0x80–0xFE) as the server converts
/// it to UTF-8: `code → Some(UTF-8 hex)`, or `None` when the server refuses it. One
/// statement: a function converting each code under its own exception block.
fn server_mapping(pg: &Pg, db: &str, encoding: &str) -> BTreeMap<u16, Result<String, String>> {
    // 8.2 (GP4) has only convert(text) and a byte-wise chr(); later kernels convert bytea.
    let convert = if pg.kind.is_82() {
        "encode(textsend(convert(chr(l) || chr(t), enc, 'UTF8')), 'hex')"
    } else {
        "encode(convert(decode(lpad(to_hex(l * 256 + t), 4, '0'), 'hex'), enc, 'UTF8'), 'hex')"
    };
    let sql = format!(
        "CREATE FUNCTION pg_temp_mapping(enc text) RETURNS SETOF text AS $$
DECLARE l int; t int; r text;
BEGIN
  FOR l IN 129..254 LOOP
    FOR t IN 64..254 LOOP
      IF t <> 127 THEN
        BEGIN
          r := {convert};
        EXCEPTION WHEN OTHERS THEN
          r := 'ERR ' || SQLERRM;
        END;
        RETURN NEXT lpad(to_hex(l * 256 + t), 4, '0') || ' ' || r;
      END IF;
    END LOOP;
  END LOOP;
  RETURN;
END $$ LANGUAGE plpgsql;
SELECT * FROM pg_temp_mapping('{encoding}');
DROP FUNCTION pg_temp_mapping(text);"
    );
    let out = pg.psql(db, &sql);
    out.lines()
        .map(|line| {
            let (code, rest) = line.split_once(' ').unwrap();
            let code = u16::from_str_radix(code, 16).unwrap();
            let v = match rest.strip_prefix("ERR ") {
                Some(e) => Err(e.to_string()),
                None => Ok(rest.to_string()),
            };
            (code, v)
        })
        .collect()
}

fn dump(name: &str, map: &BTreeMap<u16, Result<String, String>>) {
    let text: String = map
        .iter()
        .map(|(c, v)| match v {
            Ok(h) => format!("{c:04x} {h}\n"),
            Err(e) => format!("{c:04x} ERR {e}\n"),
        })
        .collect();
    std::fs::write(format!("/tmp/gbkmap-{name}"), text).unwrap();
}

fn measure(server: Server, name: &str) {
    let env = TestEnv::on(name, server, Server::Pg);
    let db = if env.src.kind == Kind::Pg82 {
        let ascii = format!("{}_ascii", env.db);
        env.src.psql("postgres", &format!("CREATE DATABASE \"{ascii}\" ENCODING 'SQL_ASCII' TEMPLATE template0"));
        let _ = env.src.try_psql(&ascii, "CREATE LANGUAGE plpgsql");
        ascii
    } else {
        let _ = env.src.try_psql(&env.db, "CREATE LANGUAGE plpgsql");
        env.db.clone()
    };
    eprintln!("{name}: server_encoding {}", env.src.psql(&db, "SHOW server_encoding"));
    for enc in ["GBK", "GB18030"] {
        let t = std::time::Instant::now();
        let map = server_mapping(env.src, &db, enc);
        eprintln!("{name} {enc}: {} codes in {:?}", map.len(), t.elapsed());
        dump(&format!("{name}-{enc}"), &map);
    }
}

#[test]
fn measure_pg82() {
    measure(Server::Pg82, "pg82");
}
#[test]
fn measure_gp4() {
    measure(Server::Gp4, "gp4");
}
#[test]
fn measure_gp6() {
    measure(Server::Gp6, "gp6");
}
#[test]
fn measure_gp7() {
    measure(Server::Gp7, "gp7");
}
#[test]
fn measure_pg15() {
    measure(Server::Pg, "pg15");
}

/// Every 2-byte code as the server converts it from a client sending GBK/GB18030 (what psql
/// with `client_encoding` GBK does), one statement per code since a refused code fails its
/// statement: for GP4, whose databases here are all UTF8, so that no SQL_ASCII text can be
/// handed to `convert`.
fn client_mapping(pg: &Pg, db: &str, encoding: &str) -> BTreeMap<u16, Result<String, String>> {
    // Into a table first: textsend() gives the text in the client encoding.
    let mut sql = format!("CREATE TEMP TABLE m (code int, v text);\nSET client_encoding TO '{encoding}';\n").into_bytes();
    for code in codes() {
        let [l, t] = code.to_be_bytes();
        sql.extend_from_slice(format!("INSERT INTO m VALUES ({code}, '").as_bytes());
        sql.extend_from_slice(&[l, t]);
        // A trail byte 0x5c is part of the character, not an escape: psql and the server
        // both cut the text by the client encoding.
        sql.extend_from_slice(b"');\n");
    }
    sql.extend_from_slice(b"SET client_encoding TO 'UTF8';\nSELECT lpad(to_hex(code), 4, '0') || ' ' || encode(textsend(v), 'hex') FROM m;\n");
    let (out, _) = pg.psql_bytes(db, &sql);
    let mut map: BTreeMap<u16, Result<String, String>> = codes().map(|c| (c, Err("refused".into()))).collect();
    for line in out.lines() {
        if let Some((code, hex)) = line.split_once(' ') {
            map.insert(u16::from_str_radix(code, 16).unwrap(), Ok(hex.to_string()));
        }
    }
    map
}

fn codes() -> impl Iterator<Item = u16> {
    (0x81u16..=0xfe).flat_map(|l| (0x40u16..=0xfe).filter(|&t| t != 0x7f).map(move |t| l << 8 | t))
}

#[test]
fn measure_gp4_client() {
    let env = TestEnv::on("gp4c", Server::Gp4, Server::Pg);
    for enc in ["GBK", "GB18030"] {
        let t = std::time::Instant::now();
        let map = client_mapping(env.src, &env.db, enc);
        eprintln!("gp4c {enc}: {} codes in {:?}", map.len(), t.elapsed());
        dump(&format!("gp4c-{enc}"), &map);
    }
    let env = TestEnv::on("pg82c", Server::Pg82, Server::Pg);
    for enc in ["GBK", "GB18030"] {
        let map = client_mapping(env.src, &env.db, enc);
        dump(&format!("pg82c-{enc}"), &map);
    }
}
