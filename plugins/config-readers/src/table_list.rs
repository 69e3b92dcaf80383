//! `tables_from = { plugin = "table-list", … }`: the table list kept in a cluster table.

use gptransfer_core::cluster::ClusterHandle;
use gptransfer_core::config::ClusterConfig;
use gptransfer_core::dialect::{quote_ident, QualifiedName};
use gptransfer_core::Error;

use crate::options::{NameStyle, TableListOptions};

/// One usable row of the list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The table it names.
    pub name: QualifiedName,
    /// Its join column values, in `join` order.
    pub join_values: Vec<Option<String>>,
    schema_cell: String,
    table_cell: String,
}

impl Entry {
    /// The row as people find it in the list: `(schema "eda", table "Foo")`.
    pub fn describe(&self) -> String {
        format!("(schema {:?}, table {:?})", self.schema_cell, self.table_cell)
    }
}

/// Reads the valid rows; rows with an unusable name are reported and skipped.
pub async fn read(
    options: &TableListOptions,
    cluster_name: &str,
    cluster: &ClusterConfig,
    list: &QualifiedName,
    job: &str,
) -> Result<Vec<Entry>, Error> {
    let handle = ClusterHandle::new(cluster_name, cluster)?;
    let session = handle.connect(&format!("gptransfer config reader pid {}", std::process::id()), None).await?;
    let c = &options.columns;
    let mut select = vec![text(&c.schema), text(&c.table)];
    select.extend(options.join.iter().map(|j| text(j)));
    let sql =
        format!("SELECT {} FROM {} WHERE {} = $1 ORDER BY 1, 2", select.join(", "), list.quoted(), text(&c.valid_flag));
    // Under the cluster's read_timeout: a lock on the list (someone editing it in an open
    // transaction) must fail this job's read, not block every command and the daemon.
    let rows = session.timed(session.client.query(&sql, &[&options.valid_value])).await.map_err(|e| {
        let hint = if e.retriable {
            format!(
                "is the list locked (a transaction editing {list} left open: see pg_locks on cluster \
                 {cluster_name:?}) or the cluster unreachable? The read is given up after the cluster's read_timeout"
            )
        } else {
            format!(
                "tables_from.columns names the list's columns (now schema = {:?}, table = {:?}, valid_flag = {:?}{})",
                c.schema,
                c.table,
                c.valid_flag,
                options.join.iter().map(|j| format!(", join {j:?}")).collect::<String>()
            )
        };
        Error::Cluster {
            cluster: cluster_name.to_string(),
            address: handle.address.clone(),
            // The job is named by whoever reports this (its job's failure).
            message: format!("cannot read the table list {list}: {}", e.message),
            hint: Some(hint),
        }
    })?;
    let mut out = Vec::new();
    for row in rows {
        let schema_cell: Option<String> = row.get(0);
        let table_cell: Option<String> = row.get(1);
        let join_values: Vec<Option<String>> = (0..options.join.len())
            .map(|i| row.get::<_, Option<String>>(i + 2).map(|v| v.trim().to_string()))
            .collect();
        let (Some(schema_cell), Some(table_cell)) = (schema_cell.clone(), table_cell.clone()) else {
            let show = |c: &Option<String>| c.as_ref().map_or("NULL".to_string(), |c| format!("{c:?}"));
            tracing::warn!(
                job = %job,
                "table list {list}, row (schema {}, table {}): skipped: schema and table must not be NULL",
                show(&schema_cell),
                show(&table_cell)
            );
            continue;
        };
        match table_name(&schema_cell, &table_cell, options.names) {
            Ok(name) => out.push(Entry { name, join_values, schema_cell, table_cell }),
            Err(e) => tracing::warn!(
                job = %job,
                "table list {list}, row (schema {schema_cell:?}, table {table_cell:?}): skipped: {e}"
            ),
        }
    }
    Ok(out)
}

/// `CAST("col" AS text)`: every cell is read as text and parsed here, whatever its type.
fn text(column: &str) -> String {
    format!("CAST({} AS text)", quote_ident(column))
}

/// The table a row names. Capitals, dots and quotes are kept and quoted; anything that looks
/// like SQL rather than a name is refused.
pub fn table_name(schema: &str, table: &str, style: NameStyle) -> Result<QualifiedName, String> {
    match style {
        NameStyle::Exact => {
            for (what, part) in [("schema", schema), ("table", table)] {
                check_part(what, part)?;
            }
            // Quoted, the parts come back from the parser exactly as written.
            QualifiedName::parse(&format!("{}.{}", quote_ident(schema), quote_ident(table)))
        }
        NameStyle::Sql => {
            let name = QualifiedName::parse(&format!("{}.{}", schema.trim(), table.trim()))?;
            check_part("schema", &name.schema)?;
            check_part("table", &name.name)?;
            Ok(name)
        }
    }
}

fn check_part(what: &str, part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("the {what} name is empty"));
    }
    if part.len() > 63 {
        return Err(format!("the {what} name is longer than 63 bytes, which the server would cut short"));
    }
    if let Some(c) = part.chars().find(|c| c.is_control() || c.is_whitespace() || *c == ';') {
        return Err(format!("the {what} name holds {c:?}, which looks like SQL rather than a name"));
    }
    for fragment in ["--", "/*", "*/"] {
        if part.contains(fragment) {
            return Err(format!("the {what} name holds {fragment:?}, which looks like SQL rather than a name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exact_names_keep_capitals_dots_and_quotes() {
        let n = table_name("Eda", "Fact.V2", NameStyle::Exact).unwrap();
        assert_eq!(n.quoted(), "\"Eda\".\"Fact.V2\"");
        let n = table_name("eda", "it\"s", NameStyle::Exact).unwrap();
        assert_eq!(n.quoted(), "\"eda\".\"it\"\"s\"");
    }

    #[test]
    fn sql_fragments_are_refused() {
        for bad in ["t; drop table x", "t--", "a/*b", "t\nx", "", "x y"] {
            assert!(table_name("eda", bad, NameStyle::Exact).is_err(), "{bad:?}");
        }
        assert!(table_name("eda", "t; drop table x", NameStyle::Sql).is_err());
        assert_eq!(table_name("EDA", "Fact", NameStyle::Sql).unwrap().quoted(), "\"eda\".\"fact\"");
        assert!(table_name("eda", "a.b", NameStyle::Sql).is_err());
    }
}
