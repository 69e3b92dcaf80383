//! SQL whose text depends on the flavour, one function per statement kind.

use chrono::NaiveDateTime;

use super::{quote_ident, quote_literal, Flavour, QualifiedName};
use crate::roles::CopyFormat;

/// Session settings that make the text COPY format identical on every flavour, so bytes from
/// any source parse to the same values on any target.
pub fn session_setup(flavour: Flavour, timezone: Option<&str>) -> String {
    let kernel = flavour.kernel();
    let mut sql = vec![
        "SET client_encoding = 'UTF8'".to_string(),
        "SET DateStyle = 'ISO, MDY'".to_string(),
        // 8.2 is off by default (`'a\b'` is an escape); on keeps literals plain everywhere.
        "SET standard_conforming_strings = on".to_string(),
    ];
    if kernel >= 84 {
        sql.push("SET IntervalStyle = 'postgres'".to_string());
    }
    // 8.x accepts at most 2 (17 significant digits); 9.x+ take 3 (exact round trip).
    sql.push(format!("SET extra_float_digits = {}", if kernel >= 90 { 3 } else { 2 }));
    if kernel >= 90 {
        sql.push("SET bytea_output = 'hex'".to_string());
    }
    if let Some(tz) = timezone {
        sql.push(format!("SET TimeZone = {}", quote_literal(tz, false)));
    }
    sql.join(";\n")
}

/// Columns of a table with their type, in table order: name, `format_type`, `typname`, NOT
/// NULL, has a default, `atttypmod` (the same on every flavour from 8.2 on), and the domain's
/// `format_type` or NULL. A column of a domain is described by the type under it (two domains
/// deep at most) with the domain's modifier: that type's input is what the values go through.
pub const TABLE_COLUMNS: &str = "\
SELECT a.attname::text,
       format_type(coalesce(b2.oid, b1.oid, t.oid),
                   CASE WHEN b2.oid IS NOT NULL THEN b1.typtypmod
                        WHEN b1.oid IS NOT NULL THEN t.typtypmod
                        ELSE a.atttypmod END)::text,
       coalesce(b2.typname, b1.typname, t.typname)::text, a.attnotnull,
       (a.atthasdef OR t.typname IN ('serial', 'bigserial')),
       CASE WHEN b2.oid IS NOT NULL THEN b1.typtypmod WHEN b1.oid IS NOT NULL THEN t.typtypmod ELSE a.atttypmod END,
       CASE WHEN b1.oid IS NOT NULL THEN format_type(t.oid, NULL)::text END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type b1 ON t.typtype = 'd' AND b1.oid = t.typbasetype
LEFT JOIN pg_catalog.pg_type b2 ON b1.typtype = 'd' AND b2.oid = b1.typbasetype
WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// A table's columns whose collation is nondeterministic (PostgreSQL 12+, GP7: equal values
/// may differ in their bytes, e.g. in case), with the collation's name. A domain's collation
/// is its column's `attcollation`.
pub const NONDETERMINISTIC_COLUMNS: &str = "\
SELECT a.attname::text, co.collname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND NOT co.collisdeterministic";

/// A zone (`$1`, else the session's TimeZone) and the years in which it moves its clocks
/// (daylight saving time, or a change of its standard offset): its UTC offset compared month by
/// month from 1900 to 2100, comma-separated (8.2 gives NULL for none, and an empty array does
/// not read back from every version); empty for UTC and fixed offsets. No window functions:
/// 8.2 has none.
pub const CLOCK_CHANGES: &str = "\
SELECT z, coalesce(array_to_string(ARRAY(
  SELECT DISTINCT date_part('year', b.i AT TIME ZONE 'UTC')::int4
  FROM (SELECT k, timestamptz '1900-01-01 00:00:00+00' + k * interval '1 month' AS i
        FROM generate_series(0, 2411) k) a
  JOIN (SELECT k, timestamptz '1900-01-01 00:00:00+00' + k * interval '1 month' AS i
        FROM generate_series(0, 2411) k) b ON b.k = a.k + 1
  WHERE (a.i AT TIME ZONE z) - (a.i AT TIME ZONE 'UTC') <> (b.i AT TIME ZONE z) - (b.i AT TIME ZONE 'UTC')
  ORDER BY 1), ','), '')
FROM (SELECT coalesce($1::text, current_setting('TimeZone')) AS z) zone";

/// Whether a relation exists (any flavour).
pub const TABLE_EXISTS: &str = "\
SELECT c.relkind::text FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2";

/// A timestamp literal for a window bound, cast to the condition column's type.
pub fn bound_literal(ts: NaiveDateTime, column_type: &str) -> String {
    let cast = match column_type {
        "date" => "date",
        "timestamptz" => "timestamptz",
        _ => "timestamp",
    };
    format!("'{}'::{cast}", ts.format("%Y-%m-%d %H:%M:%S%.f"))
}

/// `"col" >= start AND "col" < end`.
pub fn window_predicate(column: &str, column_type: &str, start: NaiveDateTime, end: NaiveDateTime) -> String {
    let col = quote_ident(column);
    format!("{col} >= {} AND {col} < {}", bound_literal(start, column_type), bound_literal(end, column_type))
}

/// The column list, quoted and comma separated.
pub fn column_list(columns: &[String]) -> String {
    columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// The SELECT list of a window read from a `flavour` server: the columns, `types` their
/// `typname`s on that server (same order; missing ones are taken as not `real`).
///
/// A `real` (float4) column is read as `float8` where the server cannot print a float4
/// exactly: before 9.0 `extra_float_digits` is at most 2, which gives a float4 8 significant
/// digits where it needs 9 (100.333336 printed as 100.33334 comes back as the next float).
/// float4 → float8 is exact, 17 digits print the float8 exactly, and the target's float4
/// input rounds that text back to the very same float4 (it is one).
pub fn select_list(flavour: Flavour, columns: &[String], types: &[String]) -> String {
    let widen_float4 = flavour.kernel() < 90;
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let col = quote_ident(c);
            match types.get(i).map(String::as_str) {
                Some("float4") if widen_float4 => format!("{col}::float8 AS {col}"),
                // Arrays of real print their elements the same way.
                Some("_float4") if widen_float4 => format!("{col}::float8[] AS {col}"),
                _ => col,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `COPY (SELECT …) TO STDOUT [WITH BINARY | WITH CSV]`. These are the pre-9.0 spellings,
/// the only ones 8.2 (GP4) accepts and still accepted by every later version; never an
/// option list in parentheses. `select` is the SELECT list ([`select_list`]).
pub fn copy_out(table: &QualifiedName, select: &str, predicate: Option<&str>, format: CopyFormat) -> String {
    let mut select = format!("SELECT {select} FROM {}", table.quoted());
    if let Some(p) = predicate {
        select.push_str(" WHERE ");
        select.push_str(p);
    }
    format!("COPY ({select}) TO STDOUT{}", with_format(format))
}

/// `COPY t (cols) FROM STDIN [WITH BINARY | WITH CSV]`.
pub fn copy_in(table: &str, columns: &[String], format: CopyFormat) -> String {
    format!("COPY {table} ({}) FROM STDIN{}", column_list(columns), with_format(format))
}

/// [`copy_in`] with `FREEZE`, for a table truncated earlier in the same transaction: the rows
/// are written frozen (and, from PostgreSQL 14, their pages all-visible), so the first VACUUM
/// or read need not rewrite them. Concurrent sessions with an older snapshot see them at
/// once after the commit — as they already see the TRUNCATE, which is not MVCC-safe either.
pub fn copy_in_frozen(table: &str, columns: &[String], format: CopyFormat) -> String {
    // The pre-9.0 option list takes FREEZE after the format (9.3+ grammar).
    let with = if format == CopyFormat::Text { " WITH".to_string() } else { with_format(format).to_string() };
    format!("COPY {table} ({}) FROM STDIN{with} FREEZE", column_list(columns))
}

/// Whether `COPY … FREEZE` exists and means something: PostgreSQL 9.3+; Greenplum does not
/// take it.
pub fn may_copy_freeze(flavour: Flavour) -> bool {
    !flavour.is_greenplum() && flavour.kernel() >= 93
}

/// COPY's format clause; CSV's defaults (comma, `"`, NULL as an unquoted empty field) are
/// the same on every version, so none is spelled out.
fn with_format(format: CopyFormat) -> &'static str {
    match format {
        CopyFormat::Text => "",
        CopyFormat::Binary => " WITH BINARY",
        CopyFormat::Csv => " WITH CSV",
    }
}

/// Deletes one window from the target (replace mode).
pub fn delete_window(table: &QualifiedName, predicate: &str) -> String {
    format!("DELETE FROM {} WHERE {predicate}", table.quoted())
}

/// Empties the target (full mode). TRUNCATE is transactional on every flavour.
pub fn truncate(table: &QualifiedName) -> String {
    format!("TRUNCATE TABLE {}", table.quoted())
}

/// The staging table of a merge: the target's columns plus `gpt_batch_seq`, the row's
/// position in the batch, written by the sink itself so that "the last row of a batch wins"
/// holds on Greenplum too (a serial column would be filled by segments in any order).
pub fn merge_staging(flavour: Flavour, target: &QualifiedName, staging: &str, columns: &[String]) -> String {
    let mut create = format!(
        "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {}, 0::bigint AS gpt_batch_seq FROM {} WHERE false",
        quote_ident(staging),
        column_list(columns),
        target.quoted()
    );
    if flavour.is_greenplum() {
        // Random distribution: the staging table only feeds the target, and GP would
        // otherwise pick the first column, which may be badly skewed.
        create.push_str(" DISTRIBUTED RANDOMLY");
    }
    create
}

/// Rows of a merge batch with a NULL in a key column. A NULL key matches no target row (`=`
/// is never true for NULL), so a re-load would duplicate such rows, and `DISTINCT ON` would
/// fold distinct NULL-key rows into one: a batch holding any is refused, never merged.
pub fn null_key_rows(staging: &str, key: &[String]) -> String {
    let any_null = key.iter().map(|k| format!("{} IS NULL", quote_ident(k))).collect::<Vec<_>>().join(" OR ");
    format!("SELECT count(*) FROM {} WHERE {any_null}", staging)
}

/// The message for a merge batch holding `rows` rows with a NULL key.
pub fn null_key_message(rows: i64, key: &[String]) -> String {
    format!(
        "merge key ({}) is NULL in {rows} row(s) of this window: a NULL key matches no row, so those rows could \
         neither replace their earlier versions nor be told apart; nothing was loaded. Make the key NOT NULL at \
         the source, choose key columns that hold no NULLs, or load this table in replace mode",
        key.join(", ")
    )
}

/// How a merge batch reaches the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergePath {
    /// Delete the target rows whose key is in the batch, then insert the last row of each key:
    /// works on every flavour and every table.
    DeleteInsert,
    /// `INSERT … ON CONFLICT (key) DO UPDATE` of the last row of each key, on GP7 where
    /// [`ON_CONFLICT_ARBITER`] finds the table allows it.
    OnConflict,
}

/// Whether `INSERT … ON CONFLICT (key) DO UPDATE` can merge into a GP7 table: a unique index
/// on exactly the key columns (`$3`, sorted bytewise) that is immediate, valid, not partial and
/// not on expressions (only such an index can be the arbiter); the table, or every leaf
/// partition of it (`pg_partition_tree` lists none for a table that is not partitioned), a heap
/// (GP7 refuses ON CONFLICT on append-optimized tables: `INSERT ON CONFLICT is not supported
/// for appendoptimized relations`); no distribution-key column outside the key (GP7 cannot
/// update those: `modification of distribution columns in OnConflictUpdate is not
/// supported`; a unique index holds the distribution key, so this is a safeguard). `$1`
/// schema, `$2` table; no row when the table does not exist.
pub const ON_CONFLICT_ARBITER: &str = r#"
SELECT EXISTS (
           SELECT 1 FROM pg_catalog.pg_index i
           WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate AND i.indisvalid
             AND i.indpred IS NULL AND i.indexprs IS NULL
             AND ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[])
                       ORDER BY a.attname::text COLLATE "C") = $3::text[])
       AND NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_class l
           LEFT JOIN pg_catalog.pg_am am ON am.oid = l.relam
           WHERE (l.oid = c.oid OR l.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(c.oid)))
             AND l.relkind <> 'p' AND (l.relkind <> 'r' OR am.amname IS DISTINCT FROM 'heap'))
       AND NOT EXISTS (
           SELECT 1 FROM pg_catalog.gp_distribution_policy d
           JOIN pg_catalog.pg_attribute a ON a.attrelid = d.localoid AND a.attnum = ANY (d.distkey::int2[])
           WHERE d.localoid = c.oid AND a.attname::text <> ALL ($3::text[]))
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2"#;

/// Whether a flavour can merge with `ON CONFLICT` at all (the table decides the rest, see
/// [`ON_CONFLICT_ARBITER`]). Only GP7 for now: PostgreSQL targets keep the delete + insert
/// path every other test runs on; GP6, GP5, GP4 and 9.4 have no `ON CONFLICT`.
pub fn may_merge_on_conflict(flavour: Flavour) -> bool {
    flavour == Flavour::Gp7
}

/// The statements that merge the staged batch into the target; the last one inserts (or
/// upserts) the last row of each key, so its row count is the rows written.
///
/// [`MergePath::DeleteInsert`]: on GP6 and later the batch's keys are first copied to every
/// segment (`DISTRIBUTED REPLICATED`), so that the delete joins each segment's rows locally:
/// joined with the staging table directly, a partitioned target gets a motion, and so a gang
/// of processes on every segment, per partition, and a table with a few dozen partitions runs
/// out of segment connections.
///
/// [`MergePath::OnConflict`] needs at least one column outside the key (with none, `DO
/// NOTHING` would count an unchanged row as not written): callers fall back to the delete.
pub fn merge_apply(
    flavour: Flavour,
    target: &QualifiedName,
    staging: &str,
    columns: &[String],
    key: &[String],
    path: MergePath,
) -> Vec<String> {
    let stg = quote_ident(staging);
    let key_match = key.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    let keys = column_list(key);
    let cols = column_list(columns);
    let last_rows = format!("SELECT DISTINCT ON ({keys}) {cols} FROM {stg} ORDER BY {keys}, gpt_batch_seq DESC");
    let updated: Vec<String> =
        columns.iter().filter(|c| !key.contains(c)).map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c))).collect();
    if path == MergePath::OnConflict && !updated.is_empty() {
        return vec![format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM ({last_rows}) last_rows ON CONFLICT ({keys}) DO UPDATE SET {}",
            target.quoted(),
            updated.join(", ")
        )];
    }
    let mut statements = Vec::new();
    let batch_keys = if flavour.is_greenplum() && flavour.kernel() >= 94 {
        let keys_table = quote_ident(&format!("{staging}_keys"));
        statements.push(format!(
            "CREATE TEMPORARY TABLE {keys_table} ON COMMIT DROP AS SELECT DISTINCT {keys} FROM {stg} DISTRIBUTED REPLICATED"
        ));
        keys_table
    } else {
        format!("(SELECT DISTINCT {keys} FROM {stg})")
    };
    statements.push(format!("DELETE FROM {} t USING {batch_keys} s WHERE {key_match}", target.quoted()));
    statements.push(format!("INSERT INTO {} ({cols}) SELECT {cols} FROM ({last_rows}) last_rows", target.quoted()));
    statements
}

/// `CREATE SCHEMA` that does not fail when it exists (`IF NOT EXISTS` is 9.3+).
pub fn create_schema(flavour: Flavour, schema: &str) -> String {
    if flavour.kernel() >= 93 {
        format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema))
    } else {
        format!("CREATE SCHEMA {}", quote_ident(schema))
    }
}

/// Who holds an advisory lock: pid, user, application, client address, since when.
/// `pg_stat_activity.pid` was `procpid` before 9.2 (GP4, GP5).
pub fn advisory_lock_holder(flavour: Flavour) -> &'static str {
    if flavour.kernel() >= 92 {
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
         coalesce(host(a.client_addr), 'local'), coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), '') \
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.granted \
         AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) LIMIT 1"
    } else {
        // No application_name before 9.0.
        "SELECT a.procpid, coalesce(a.usename::text, ''), ''::text, \
         coalesce(host(a.client_addr), 'local'), coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), '') \
         FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.procpid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.granted \
         AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) LIMIT 1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn copy_out_has_no_option_list() {
        let t = QualifiedName::parse("eda.f").unwrap();
        let p = window_predicate("evt", "timestamp", ts("2020-04-01 00:00:00"), ts("2020-04-01 01:00:00"));
        let sql = copy_out(&t, &column_list(&["a".into(), "B".into()]), Some(&p), CopyFormat::Text);
        assert_eq!(
            sql,
            "COPY (SELECT \"a\", \"B\" FROM \"eda\".\"f\" WHERE \"evt\" >= '2020-04-01 00:00:00'::timestamp AND \"evt\" < '2020-04-01 01:00:00'::timestamp) TO STDOUT"
        );
        assert!(!sql.contains("WITH ("));
    }

    #[test]
    fn copy_freeze_follows_the_format() {
        let cols = ["a".to_string()];
        assert_eq!(copy_in_frozen("t", &cols, CopyFormat::Text), "COPY t (\"a\") FROM STDIN WITH FREEZE");
        assert_eq!(copy_in_frozen("t", &cols, CopyFormat::Binary), "COPY t (\"a\") FROM STDIN WITH BINARY FREEZE");
        assert_eq!(copy_in_frozen("t", &cols, CopyFormat::Csv), "COPY t (\"a\") FROM STDIN WITH CSV FREEZE");
        assert!(may_copy_freeze(Flavour::Postgres { major: 15 }));
        assert!(!may_copy_freeze(Flavour::Gp7));
        assert!(!may_copy_freeze(Flavour::Postgres { major: 92 }));
    }

    #[test]
    fn float4_is_read_as_float8_where_8_digits_are_all_the_server_prints() {
        let cols: Vec<String> = vec!["id".into(), "R".into(), "d".into()];
        let types: Vec<String> = vec!["int4".into(), "float4".into(), "float8".into()];
        assert_eq!(select_list(Flavour::Gp4, &cols, &types), "\"id\", \"R\"::float8 AS \"R\", \"d\"");
        assert_eq!(
            select_list(Flavour::Postgres { major: 82 }, &cols, &types),
            "\"id\", \"R\"::float8 AS \"R\", \"d\""
        );
        assert_eq!(select_list(Flavour::Gp5, &cols, &types), "\"id\", \"R\"::float8 AS \"R\", \"d\"");
        // 9.0+ print a float4 exactly with extra_float_digits 3, and binary COPY must keep the type.
        assert_eq!(select_list(Flavour::Gp6, &cols, &types), "\"id\", \"R\", \"d\"");
        assert_eq!(select_list(Flavour::Postgres { major: 15 }, &cols, &types), "\"id\", \"R\", \"d\"");
        assert_eq!(select_list(Flavour::Gp4, &cols, &[]), "\"id\", \"R\", \"d\"");
        let arrays = vec!["int4".to_string(), "_float4".into(), "_float8".into()];
        assert_eq!(select_list(Flavour::Gp4, &cols, &arrays), "\"id\", \"R\"::float8[] AS \"R\", \"d\"");
    }

    #[test]
    fn old_kernels_get_old_settings() {
        let s = session_setup(Flavour::Gp4, None);
        assert!(s.contains("extra_float_digits = 2"));
        assert!(!s.contains("bytea_output"));
        assert!(!s.contains("IntervalStyle"));
        let s = session_setup(Flavour::Gp6, Some("Asia/Shanghai"));
        assert!(s.contains("extra_float_digits = 3") && s.contains("bytea_output") && s.contains("'Asia/Shanghai'"));
        assert_eq!(create_schema(Flavour::Gp4, "s"), "CREATE SCHEMA \"s\"");
    }

    #[test]
    fn merge_deletes_through_replicated_keys_on_gp6_and_later() {
        let t = QualifiedName::parse("eda.f").unwrap();
        let (cols, key) = (vec!["id".to_string(), "v".to_string()], vec!["id".to_string()]);
        let gp6 = merge_apply(Flavour::Gp6, &t, "stg", &cols, &key, MergePath::DeleteInsert);
        assert_eq!(gp6.len(), 3);
        assert!(gp6[0].ends_with("AS SELECT DISTINCT \"id\" FROM \"stg\" DISTRIBUTED REPLICATED"), "{}", gp6[0]);
        assert_eq!(gp6[1], "DELETE FROM \"eda\".\"f\" t USING \"stg_keys\" s WHERE t.\"id\" = s.\"id\"");
        // GP4/GP5 have no replicated tables; PostgreSQL has no segments.
        for flavour in [Flavour::Gp4, Flavour::Gp5, Flavour::Postgres { major: 15 }] {
            let statements = merge_apply(flavour, &t, "stg", &cols, &key, MergePath::DeleteInsert);
            assert_eq!(statements.len(), 2);
            assert!(statements[0].contains("USING (SELECT DISTINCT \"id\" FROM \"stg\") s"), "{}", statements[0]);
        }
    }

    #[test]
    fn merge_on_conflict_updates_every_column_but_the_key() {
        let t = QualifiedName::parse("eda.f").unwrap();
        let cols = vec!["id".to_string(), "grp".to_string(), "v".to_string()];
        let key = vec!["grp".to_string(), "id".to_string()];
        let statements = merge_apply(Flavour::Gp7, &t, "stg", &cols, &key, MergePath::OnConflict);
        assert_eq!(
            statements,
            ["INSERT INTO \"eda\".\"f\" (\"id\", \"grp\", \"v\") SELECT \"id\", \"grp\", \"v\" FROM (SELECT DISTINCT ON \
              (\"grp\", \"id\") \"id\", \"grp\", \"v\" FROM \"stg\" ORDER BY \"grp\", \"id\", gpt_batch_seq DESC) last_rows \
              ON CONFLICT (\"grp\", \"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""]
        );
        // Every column in the key: nothing to update, so the delete + insert path.
        let all_key = merge_apply(Flavour::Gp7, &t, "stg", &cols[..2], &key, MergePath::OnConflict);
        assert_eq!(all_key.len(), 3, "{all_key:?}");
        assert!(all_key[1].starts_with("DELETE FROM"), "{all_key:?}");
        assert!(may_merge_on_conflict(Flavour::Gp7));
        assert!(!may_merge_on_conflict(Flavour::Gp6) && !may_merge_on_conflict(Flavour::Postgres { major: 15 }));
    }
}
