//! `create_target`: a target table that does not exist yet is created from the source's columns
//! before its first window, so a new table needs no DDL written by hand on the target.
//!
//! Columns keep their source types (as `format_type` prints them), mapped where the target
//! lacks one (PostgreSQL 12 and GP7 dropped `abstime`, `reltime` and `tinterval`), and their NOT
//! NULL. The key becomes the primary key where the target allows it. On a Greenplum target the
//! table is distributed by the source's distribution key when the source is Greenplum and
//! distributed by one, else by the key, else randomly; a Greenplum primary key must hold the
//! distribution key, so it is left out where it would not.

use crate::cluster::Session;
use crate::config::TableSpec;
use crate::dialect::{quote_ident, sql, Flavour};
use crate::error::Error;

use super::check::{columns, Column};

fn create_error(t: &TableSpec, message: String) -> Error {
    Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message,
        hint: Some("create the target table yourself, or fix the source table".into()),
    }
}

/// Whether the target table exists.
pub async fn target_exists(dst: &Session, t: &TableSpec) -> Result<bool, Error> {
    let row = dst
        .timed(dst.client.query_opt(sql::TABLE_EXISTS, &[&t.target_table.schema, &t.target_table.name]))
        .await
        .map_err(|e| {
            create_error(t, format!("cannot look for target table {} on cluster {:?}: {e}", t.target_table, t.to))
        })?;
    Ok(row.is_some())
}

/// The statements that create the target: its schema when missing, then the table.
pub async fn target_ddl(src: &Session, dst: &Session, t: &TableSpec) -> Result<Vec<String>, Error> {
    let source_columns = columns(src, &t.from, &t.source_table, t).await?;
    let selected: Vec<&Column> = match &t.columns {
        Some(names) => names
            .iter()
            .map(|n| {
                source_columns.iter().find(|c| &c.name == n).ok_or_else(|| {
                    create_error(t, format!("column {n:?} of `columns` is not in source table {}", t.source_table))
                })
            })
            .collect::<Result<_, _>>()?,
        None => source_columns.iter().collect(),
    };
    let mut lines = Vec::new();
    for c in &selected {
        let ty = target_type(&c.type_text, dst.flavour);
        lines.push(format!("{} {ty}{}", quote_ident(&c.name), if c.not_null { " NOT NULL" } else { "" }));
    }
    let names: Vec<&str> = selected.iter().map(|c| c.name.as_str()).collect();
    let key_ok = !t.key.is_empty() && t.key.iter().all(|k| names.contains(&k.as_str()));
    let distribution = if dst.flavour.is_greenplum() {
        let from_source = source_distribution(src, t).await?;
        Some(match from_source {
            Some(d) if !d.is_empty() && d.iter().all(|c| names.contains(&c.as_str())) => d,
            _ if key_ok => t.key.clone(),
            _ => Vec::new(),
        })
    } else {
        None
    };
    // A Greenplum primary key must hold the whole distribution key.
    let primary_key = key_ok
        && match &distribution {
            Some(d) => !d.is_empty() && d.iter().all(|c| t.key.contains(c)),
            None => true,
        };
    if primary_key {
        lines.push(format!("PRIMARY KEY ({})", sql::column_list(&t.key)));
    }
    let mut create = format!("CREATE TABLE {} (\n    {}\n)", t.target_table.quoted(), lines.join(",\n    "));
    match distribution {
        Some(d) if d.is_empty() => create.push_str(" DISTRIBUTED RANDOMLY"),
        Some(d) => create.push_str(&format!(" DISTRIBUTED BY ({})", sql::column_list(&d))),
        None => {}
    }
    let mut statements = Vec::new();
    let schema_exists = dst
        .timed(
            dst.client.query_opt("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", &[&t.target_table.schema]),
        )
        .await
        .map_err(|e| {
            create_error(t, format!("cannot look for schema {} on cluster {:?}: {e}", t.target_table.schema, t.to))
        })?
        .is_some();
    if !schema_exists {
        statements.push(sql::create_schema(dst.flavour, &t.target_table.schema));
    }
    statements.push(create);
    Ok(statements)
}

/// Creates the target when `create_target` is set and it is missing; returns the statements run.
pub async fn ensure_target(src: &Session, dst: &Session, t: &TableSpec) -> Result<Option<Vec<String>>, Error> {
    if !t.create_target || target_exists(dst, t).await? {
        return Ok(None);
    }
    let statements = target_ddl(src, dst, t).await?;
    let script = format!("BEGIN;\n{};\nCOMMIT", statements.join(";\n"));
    if let Err(e) = dst.timed(dst.client.batch_execute(&script)).await {
        let _ = dst.timed(dst.client.batch_execute("ROLLBACK")).await;
        return Err(create_error(
            t,
            format!("cannot create target table {} on cluster {:?}: {e}", t.target_table, t.to),
        ));
    }
    tracing::info!(job = %t.job, table = %t.display_name(), "created target table {} on cluster {:?}", t.target_table, t.to);
    Ok(Some(statements))
}

/// The type to create on a `target` server for a source column's `format_type` text.
pub fn target_type(source: &str, target: Flavour) -> String {
    // PostgreSQL 12 (and so GP7) removed the old time types; their values read as these.
    let dropped = target.kernel() >= 120;
    let (base, array) = match source.strip_suffix("[]") {
        Some(b) => (b, "[]"),
        None => (source, ""),
    };
    let mapped = match base {
        "abstime" if dropped => "timestamp with time zone",
        "reltime" if dropped => "interval",
        "tinterval" if dropped => "text",
        other => other,
    };
    format!("{mapped}{array}")
}

/// The source table's distribution key on Greenplum (column names in key order); None when
/// the source is not Greenplum or has no key (distributed randomly or replicated).
async fn source_distribution(src: &Session, t: &TableSpec) -> Result<Option<Vec<String>>, Error> {
    if !src.flavour.is_greenplum() {
        return Ok(None);
    }
    // GP4/GP5 keep the key as `attrnums` (int2[]), GP6 and GP7 as `distkey` (int2vector); both
    // read as text give their numbers in key order.
    // 8.2 has no cast from an array to text.
    let column = if src.flavour.kernel() >= 94 { "p.distkey::text" } else { "array_to_string(p.attrnums, ',')" };
    let policy = format!(
        "SELECT {column} FROM gp_distribution_policy p JOIN pg_catalog.pg_class c ON c.oid = p.localoid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2"
    );
    let read_error = |e: crate::RoleError| {
        create_error(t, format!("cannot read the distribution key of {} on cluster {:?}: {e}", t.source_table, t.from))
    };
    let row = src
        .timed(src.client.query_opt(policy.as_str(), &[&t.source_table.schema, &t.source_table.name]))
        .await
        .map_err(read_error)?;
    let Some(text) = row.and_then(|r| r.get::<_, Option<String>>(0)) else { return Ok(None) };
    let numbers: Vec<i16> = text.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    if numbers.is_empty() {
        return Ok(None);
    }
    let names = "SELECT a.attnum, a.attname::text FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c \
                 ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0";
    let rows = src
        .timed(src.client.query(names, &[&t.source_table.schema, &t.source_table.name]))
        .await
        .map_err(read_error)?;
    let by_number: Vec<(i16, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let key = numbers
        .iter()
        .map(|n| by_number.iter().find(|(num, _)| num == n).map(|(_, name)| name.clone()))
        .collect::<Option<Vec<_>>>();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_time_types_are_mapped_where_the_target_dropped_them() {
        assert_eq!(target_type("abstime", Flavour::Gp7), "timestamp with time zone");
        assert_eq!(target_type("reltime[]", Flavour::Postgres { major: 15 }), "interval[]");
        assert_eq!(target_type("abstime", Flavour::Gp6), "abstime");
        assert_eq!(target_type("numeric(14,4)", Flavour::Gp7), "numeric(14,4)");
        assert_eq!(target_type("character varying(20)[]", Flavour::Gp6), "character varying(20)[]");
    }
}
