//! Values in canonical text that reads the same on every server of the tests (PostgreSQL 8.2,
//! GP4, GP6, GP7, PostgreSQL 15) whatever its output settings: floats as their bits, timestamps
//! to the microsecond in UTC, text by the md5 of its bytes, bytea in hex.

use super::Pg;

/// `id|…` lines of canonical values, ordered by id: floats as their bits, timestamps to the
/// microsecond (infinities as text), on 8.2 and GP6 alike.
pub fn canonical_lines(pg: &Pg, db: &str, table: &str, columns: &[(&str, &str)]) -> Vec<String> {
    let exprs = columns
        .iter()
        .map(|(c, ty)| {
            let e = match *ty {
                "float4" => format!("encode(float4send({c}), 'hex')"),
                // md5 of the stored bytes (8.2 and 9.4 quote literals differently).
                "text" => format!("md5({c})"),
                "bytea" => format!("encode({c}, 'hex')"),
                // 8.2 has no cast from boolean to text.
                "bool" => format!("CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END"),
                "float8" => format!("encode(float8send({c}), 'hex')"),
                "timestamp" => {
                    format!("CASE WHEN isfinite({c}) THEN to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US') ELSE {c}::text END")
                }
                "timestamptz" => format!(
                    "CASE WHEN isfinite({c}) THEN to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE {c}::text END"
                ),
                _ => format!("{c}::text"),
            };
            format!("coalesce({e}, 'NULL')")
        })
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let out = pg.psql(db, &format!("SELECT id || '|' || {exprs} FROM {table} ORDER BY id"));
    // (`table` may carry a WHERE clause.)
    out.lines().map(str::to_string).collect()
}

/// The first lines where two listings differ, for a readable failure.
pub fn assert_same_lines(what: &str, source: &[String], target: &[String]) {
    let differing: Vec<String> = source
        .iter()
        .zip(target)
        .filter(|(a, b)| a != b)
        .take(10)
        .map(|(a, b)| format!("  source {a}\n  target {b}"))
        .collect();
    assert!(
        differing.is_empty() && source.len() == target.len(),
        "{what}: {} source rows, {} target rows; first differences:\n{}",
        source.len(),
        target.len(),
        differing.join("\n")
    );
}
