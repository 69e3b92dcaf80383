//! gpload loads each window into a staging table of its own; the window then reaches the
//! target in ONE transaction of ours, the history row and the cursor included: the target never
//! sees a window that later fails (gpload's own merge commits by itself, keeps an arbitrary row
//! of a duplicate key and, under `ERROR_LIMIT`, commits a part of the window).
//!
//! The staging table has every target column plus `gpt_batch_seq`, each row's position in the
//! batch, which the sink writes into the data file; merge keeps the row with the highest, the
//! last row of its key, exactly as the `copy` sink does.

use std::hash::{Hash, Hasher};

use gptransfer_core::dialect::{quote_ident, quote_literal, sql::column_list, Flavour, QualifiedName};

/// The batch position column, as in the `copy` sink's staging table.
pub const SEQ: &str = "gpt_batch_seq";

/// The staging table of one window of one table entry: in the target table's schema (gpload's
/// session must see it), named after a hash of the entry and window so that a table left by a
/// killed run is replaced by the next attempt at the same window.
pub fn staging_name(job: &str, target: &QualifiedName, window_id: &str) -> QualifiedName {
    // SipHash with fixed keys: the same name for the same window in every run.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    (job, &target.schema, &target.name, window_id).hash(&mut h);
    QualifiedName { schema: target.schema.clone(), name: format!("gpt_gpload_{:016x}", h.finish()) }
}

/// Replaces any staging table of a killed attempt, then creates an empty one: every target
/// column (same types, so gpload fails on a value the target would refuse) plus the position.
pub fn create_staging(flavour: Flavour, target: &QualifiedName, staging: &QualifiedName) -> String {
    let distributed = if flavour.is_greenplum() { " DISTRIBUTED RANDOMLY" } else { "" };
    format!(
        "DROP TABLE IF EXISTS {stg}; CREATE TABLE {stg} AS SELECT t.*, NULL::bigint AS {seq} FROM {target} t WHERE false{distributed}",
        stg = staging.quoted(),
        seq = quote_ident(SEQ),
        target = target.quoted()
    )
}

/// Drops the staging table.
pub fn drop_staging(staging: &QualifiedName) -> String {
    format!("DROP TABLE IF EXISTS {}", staging.quoted())
}

/// Keys that occur more than once in the staging table, and how many rows they hold in all.
pub fn duplicate_keys(staging: &QualifiedName, key: &[String]) -> String {
    let keys = column_list(key);
    format!(
        "SELECT count(*)::bigint, coalesce(sum(n), 0)::bigint FROM (SELECT count(*) AS n FROM {} GROUP BY {keys} HAVING count(*) > 1) d",
        staging.quoted()
    )
}

/// Up to five keys held by more than one staged row, as `col=value, …` (for the log).
pub fn duplicate_examples(staging: &QualifiedName, key: &[String]) -> String {
    let shown = key
        .iter()
        .map(|k| format!("{} || coalesce({}::text, 'NULL')", quote_literal(&format!("{k}="), true), quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" || ', ' || ");
    format!(
        "SELECT {shown} FROM {} GROUP BY {keys} HAVING count(*) > 1 ORDER BY 1 LIMIT 5",
        staging.quoted(),
        keys = column_list(key)
    )
}

/// The one row of each key that wins: the last of the batch.
fn last_rows(staging: &QualifiedName, columns: &[String], key: &[String]) -> String {
    let keys = column_list(key);
    format!(
        "(SELECT DISTINCT ON ({keys}) {cols} FROM {stg} ORDER BY {keys}, {seq} DESC)",
        cols = column_list(columns),
        stg = staging.quoted(),
        seq = quote_ident(SEQ)
    )
}

/// Every staged row into the target (insert, replace, full).
pub fn insert_all(target: &QualifiedName, staging: &QualifiedName, columns: &[String]) -> String {
    let cols = column_list(columns);
    format!("INSERT INTO {} ({cols}) SELECT {cols} FROM {}", target.quoted(), staging.quoted())
}

/// gpload's update: the target rows matching a key take `update_columns` from the last row of
/// that key; `condition` (gpload's `UPDATE_CONDITION`) may name the target row `into_table` and
/// the batch row `from_table`, as in gpload's own SQL.
pub fn update(
    target: &QualifiedName,
    staging: &QualifiedName,
    columns: &[String],
    key: &[String],
    update_columns: &[String],
    condition: Option<&str>,
) -> String {
    let set = update_columns.iter().map(|c| format!("{0} = from_table.{0}", quote_ident(c))).collect::<Vec<_>>();
    let mut on = key.iter().map(|k| format!("into_table.{0} = from_table.{0}", quote_ident(k))).collect::<Vec<_>>();
    if let Some(c) = condition {
        on.push(format!("({c})"));
    }
    format!(
        "UPDATE {} AS into_table SET {} FROM {} AS from_table WHERE {}",
        target.quoted(),
        set.join(", "),
        last_rows(staging, columns, key),
        on.join(" AND ")
    )
}

/// gpload's merge, second half: the last row of each key that has no target row yet.
pub fn insert_new(target: &QualifiedName, staging: &QualifiedName, columns: &[String], key: &[String]) -> String {
    let cols = column_list(columns);
    let on = key.iter().map(|k| format!("into_table.{0} = from_table.{0}", quote_ident(k))).collect::<Vec<_>>();
    format!(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM {rows} AS from_table \
         WHERE NOT EXISTS (SELECT 1 FROM {t} AS into_table WHERE {on})",
        t = target.quoted(),
        rows = last_rows(staging, columns, key),
        on = on.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> QualifiedName {
        QualifiedName { schema: "eda".into(), name: "Defects".into() }
    }

    #[test]
    fn the_staging_name_is_stable_and_short() {
        let a = staging_name("j", &t(), "20240310000000^20240310030000");
        assert_eq!(a, staging_name("j", &t(), "20240310000000^20240310030000"));
        assert_ne!(a, staging_name("j", &t(), "20240310030000^20240310060000"));
        assert_ne!(a, staging_name("k", &t(), "20240310000000^20240310030000"));
        assert_eq!(a.schema, "eda");
        assert!(a.name.len() < 63, "{}", a.name);
    }

    #[test]
    fn merge_keeps_the_last_row_of_each_key() {
        let s = QualifiedName { schema: "eda".into(), name: "gpt_gpload_1".into() };
        let cols = vec!["id".to_string(), "v".to_string()];
        let key = vec!["id".to_string()];
        assert_eq!(
            update(&t(), &s, &cols, &key, &["v".to_string()], Some("into_table.v <> from_table.v")),
            "UPDATE \"eda\".\"Defects\" AS into_table SET \"v\" = from_table.\"v\" FROM (SELECT DISTINCT ON (\"id\") \
             \"id\", \"v\" FROM \"eda\".\"gpt_gpload_1\" ORDER BY \"id\", \"gpt_batch_seq\" DESC) AS from_table \
             WHERE into_table.\"id\" = from_table.\"id\" AND (into_table.v <> from_table.v)"
        );
        assert!(insert_new(&t(), &s, &cols, &key).contains("WHERE NOT EXISTS (SELECT 1 FROM \"eda\".\"Defects\" AS into_table WHERE into_table.\"id\" = from_table.\"id\")"));
    }
}
