//! Greenplum external tables for the segment-to-segment path: the source's segments write a
//! window through a writable external table, the target's segments read it through a readable
//! one. Both in the text format with COPY's defaults (tab, `\N`, backslash escapes), so the
//! bytes between them are exactly what `COPY … TO STDOUT` would send.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{quote_ident, quote_literal, Flavour, QualifiedName};

/// A name for a session's external table, unique within this process.
pub fn table_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether the flavour has `CREATE [WRITABLE] EXTERNAL TEMP TABLE`: a temporary external
/// table needs no CREATE privilege on a schema and goes with the session. (Seen on GP 4.3.99
/// and 6.24: both take it, readable and writable.)
pub fn has_temp_external(flavour: Flavour) -> bool {
    flavour.is_greenplum()
}

/// The columns of the writable table a `flavour` source writes the window through, in the
/// order and types its SELECT list ([`super::sql::select_list`]) produces them: the source's
/// declared types, with `real` widened to `double precision` where the list widens it.
pub fn export_columns(flavour: Flavour, columns: &[(String, String, String)]) -> Vec<(String, String)> {
    let widen_float4 = flavour.kernel() < 90;
    columns
        .iter()
        .map(|(name, type_name, type_text)| {
            let ty = match type_name.as_str() {
                "float4" if widen_float4 => "double precision".to_string(),
                "_float4" if widen_float4 => "double precision[]".to_string(),
                _ => type_text.clone(),
            };
            (name.clone(), ty)
        })
        .collect()
}

fn column_defs(columns: &[(String, String)]) -> String {
    columns.iter().map(|(n, t)| format!("{} {t}", quote_ident(n))).collect::<Vec<_>>().join(", ")
}

fn temp(flavour: Flavour) -> &'static str {
    if has_temp_external(flavour) {
        " TEMP"
    } else {
        ""
    }
}

/// Each segment's buffer for a writable external table, in KiB: a segment POSTs to gpfdist
/// whenever it fills. The default of 64 KiB makes thousands of requests of a big window, each
/// answered only once gpfdist has written it into the FIFO; 4 MiB costs 4 MiB per segment.
/// GP 4.3, 6 and 7 all have the setting.
pub const WRITE_BUFFER_KIB: u32 = 4096;

/// The session setting the source's segments write with (see [`WRITE_BUFFER_KIB`]).
pub fn writer_settings() -> String {
    format!("SET writable_external_table_bufsize = {WRITE_BUFFER_KIB}")
}

/// `CREATE WRITABLE EXTERNAL [TEMP] TABLE name (…) LOCATION (url) FORMAT 'TEXT' ENCODING …
/// DISTRIBUTED RANDOMLY`: each segment writes its own rows, with no motion between segments.
pub fn create_writable(
    flavour: Flavour,
    name: &str,
    columns: &[(String, String)],
    url: &str,
    encoding: &str,
) -> String {
    format!(
        "CREATE WRITABLE EXTERNAL{} TABLE {} ({}) LOCATION ({}) FORMAT 'TEXT' ENCODING {} DISTRIBUTED RANDOMLY",
        temp(flavour),
        quote_ident(name),
        column_defs(columns),
        quote_literal(url, false),
        quote_literal(encoding, false)
    )
}

/// `CREATE EXTERNAL [TEMP] TABLE name (…) LOCATION (url) FORMAT 'TEXT' ENCODING …`, its
/// columns in the order the rows come and with the target table's types, so each value is
/// parsed straight into its target type as `COPY … FROM` would.
pub fn create_readable(
    flavour: Flavour,
    name: &str,
    columns: &[(String, String)],
    url: &str,
    encoding: &str,
) -> String {
    format!(
        "CREATE EXTERNAL{} TABLE {} ({}) LOCATION ({}) FORMAT 'TEXT' ENCODING {}",
        temp(flavour),
        quote_ident(name),
        column_defs(columns),
        quote_literal(url, false),
        quote_literal(encoding, false)
    )
}

/// `INSERT INTO name SELECT list FROM table [WHERE predicate]`: the source's segments write.
pub fn export_rows(name: &str, table: &QualifiedName, select: &str, predicate: Option<&str>) -> String {
    let mut sql = format!("INSERT INTO {} SELECT {select} FROM {}", quote_ident(name), table.quoted());
    if let Some(p) = predicate {
        sql.push_str(" WHERE ");
        sql.push_str(p);
    }
    sql
}

/// `INSERT INTO target (cols) SELECT cols FROM name`: the target's segments read.
pub fn import_rows(target: &QualifiedName, columns: &[String], name: &str) -> String {
    let cols = super::sql::column_list(columns);
    format!("INSERT INTO {} ({cols}) SELECT {cols} FROM {}", target.quoted(), quote_ident(name))
}

/// Drops a session's external table (it would otherwise stay until the session ends, and a
/// pooled session serves many windows).
pub fn drop_table(name: &str) -> String {
    format!("DROP EXTERNAL TABLE IF EXISTS {}", quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let cols = vec![("id".to_string(), "integer".to_string()), ("r".to_string(), "real".to_string())];
        assert_eq!(
            create_writable(Flavour::Gp6, "x", &cols, "gpfdist://h:1/f", "UTF8"),
            "CREATE WRITABLE EXTERNAL TEMP TABLE \"x\" (\"id\" integer, \"r\" real) LOCATION ('gpfdist://h:1/f') \
             FORMAT 'TEXT' ENCODING 'UTF8' DISTRIBUTED RANDOMLY"
        );
        assert_eq!(
            create_readable(Flavour::Gp4, "x", &cols, "gpfdist://h:1/f", "GB18030"),
            "CREATE EXTERNAL TEMP TABLE \"x\" (\"id\" integer, \"r\" real) LOCATION ('gpfdist://h:1/f') \
             FORMAT 'TEXT' ENCODING 'GB18030'"
        );
        let widened = export_columns(
            Flavour::Gp4,
            &[("r".into(), "float4".into(), "real".into()), ("t".into(), "text".into(), "text".into())],
        );
        assert_eq!(widened, vec![("r".into(), "double precision".into()), ("t".into(), "text".into())]);
    }
}
