//! Pre-flight checks of a table against both clusters, before any data moves: the tables
//! exist, columns match by name with compatible types, the condition column is a time.

use crate::cluster::Session;
use crate::config::{Mode, TableSpec};
use crate::dialect::{quote_ident, sql, Flavour, QualifiedName};
use crate::error::Error;

use super::create::target_type;
use super::narrowing::{self, ClockChanges, ColumnType};

/// A column as the catalog describes it.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name.
    pub name: String,
    /// `format_type` text, e.g. `numeric(12,3)`; of the type under it for a domain.
    pub type_text: String,
    /// `typname`, e.g. `numeric`; of the type under it for a domain.
    pub type_name: String,
    /// `atttypmod`, e.g. the precision and scale of a numeric; -1 when the type has none. A
    /// domain's own modifier for a domain.
    pub type_mod: i32,
    /// The domain the column is declared as, when it is one.
    pub domain: Option<String>,
    /// NOT NULL.
    pub not_null: bool,
    /// Has a default.
    pub has_default: bool,
    /// Its collation, when that is nondeterministic (values equal to it may differ in bytes).
    pub nondeterministic: Option<String>,
}

impl Column {
    /// Its type for people: `numeric(10,1)`, or `numeric(10,1) (domain amount)`.
    pub fn declared(&self) -> String {
        let mut text = self.type_text.clone();
        if let Some(d) = &self.domain {
            text.push_str(&format!(" (domain {d})"));
        }
        if let Some(c) = &self.nondeterministic {
            text.push_str(&format!(" (collation {c}, nondeterministic)"));
        }
        text
    }
}

/// What the checks established, for the run.
#[derive(Debug, Clone)]
pub struct TableCheck {
    /// Columns to move, source order.
    pub columns: Vec<String>,
    /// Their `typname`s on the source, same order.
    pub column_types: Vec<String>,
    /// The columns as the source describes them, same order.
    pub described: Vec<Column>,
    /// The target table's columns as the target describes them, table order; empty where the
    /// target was not read (a sink that loads no database, a table still to create).
    pub target_columns: Vec<Column>,
    /// Source `typname` of the condition column.
    pub condition_type: Option<String>,
    /// Binary COPY is safe between these two tables (same built-in types, encodings and
    /// datetime representation on both sides); the plugins still have to support it.
    pub binary: bool,
}

fn check_error(table: &TableSpec, message: String, hint: Option<&str>) -> Error {
    Error::Check { job: table.job.clone(), table: table.display_name(), message, hint: hint.map(str::to_string) }
}

/// Reads a table's columns; an error when it does not exist.
pub async fn columns(
    session: &Session,
    cluster: &str,
    name: &QualifiedName,
    table: &TableSpec,
) -> Result<Vec<Column>, Error> {
    let rows =
        session.timed(session.client.query(sql::TABLE_COLUMNS, &[&name.schema, &name.name])).await.map_err(|e| {
            check_error(table, format!("cannot read the columns of {name} on cluster {cluster:?}: {e}"), None)
        })?;
    if rows.is_empty() {
        let is_target = cluster == table.to && *name == table.target_table;
        return Err(check_error(
            table,
            format!("table {name} does not exist on cluster {cluster:?}"),
            Some(if is_target {
                "create it there, or set create_target = true for gptransfer to create it from the source's columns, \
                 or fix the table name"
            } else {
                "fix the table name, or check that the role gptransfer logs in as can see it"
            }),
        ));
    }
    let mut loose = std::collections::HashMap::new();
    if session.flavour.kernel() >= 120 {
        let rows = session
            .timed(session.client.query(sql::NONDETERMINISTIC_COLUMNS, &[&name.schema, &name.name]))
            .await
            .map_err(|e| {
                check_error(table, format!("cannot read the collations of {name} on cluster {cluster:?}: {e}"), None)
            })?;
        loose = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect();
    }
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            Column {
                nondeterministic: loose.remove(&name),
                name,
                type_text: r.get(1),
                type_name: r.get(2),
                not_null: r.get(3),
                has_default: r.get(4),
                type_mod: r.get(5),
                domain: r.get(6),
            }
        })
        .collect())
}

/// The table's zone (the source's when it sets none, as `run` does) and the years it moves
/// its clocks in.
async fn clock_changes(source: &Session, cluster: &str, table: &TableSpec) -> Result<ClockChanges, Error> {
    let row = source.timed(source.client.query_one(sql::CLOCK_CHANGES, &[&table.timezone])).await.map_err(|e| {
        check_error(table, format!("reading the time zone's clock changes on cluster {cluster:?}: {e}"), None)
    })?;
    let zone = row.try_get(0).map_err(|e| check_error(table, format!("reading the time zone: {e}"), None))?;
    let years: String = row.try_get(1).map_err(|e| check_error(table, format!("reading the time zone: {e}"), None))?;
    let years = years.split(',').filter_map(|y| y.parse().ok()).collect();
    Ok(ClockChanges { zone, years })
}

/// Refuses `append` where a window could be loaded twice: its rows must commit in one
/// transaction with history and cursor, so the state must be on the target cluster and the
/// sink must commit in the transaction it hands the engine. (Replace and merge re-load a
/// window harmlessly.)
pub fn check_append_atomic(t: &TableSpec, state_cluster: &str, sink: &dyn crate::roles::Sink) -> Result<(), Error> {
    if t.mode != Mode::Append {
        return Ok(());
    }
    let why = if state_cluster != t.to {
        format!("the state is on cluster {state_cluster:?}, not on the target cluster {:?}", t.to)
    } else if !sink.commits_with_state() {
        format!("the sink {:?} commits on its own, apart from history and cursor", t.sink.get_ref().plugin)
    } else {
        return Ok(());
    };
    Err(Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message: format!(
            "append mode would insert a window's rows twice if a run died between the target's commit and the \
             state's: {why}"
        ),
        hint: Some(format!(
            "put the state on the target cluster ([state] cluster = {:?}) with the copy or gpload sink, or load in \
             merge mode with a key (a re-load then replaces the window's rows)",
            t.to
        )),
    })
}

/// Why the target's column holds equal values that the source's holds distinct, if it does:
/// two source keys would be one key there.
fn looser_equality(source: &Column, target: &Column) -> Option<String> {
    if target.type_name == "citext" && source.type_name != "citext" {
        return Some("keys that differ only in case are one key there".into());
    }
    match (&source.nondeterministic, &target.nondeterministic) {
        (None, Some(c)) => Some(format!(
            "keys that its collation {c} holds equal (in case or accents, as the collation is defined) are one key there"
        )),
        _ => None,
    }
}

/// Checks one table on both sides.
pub async fn check_table(
    table: &TableSpec,
    source: &Session,
    source_name: &str,
    target: &Session,
    target_name: &str,
) -> Result<TableCheck, Error> {
    let src = columns(source, source_name, &table.source_table, table).await?;
    let dst = columns(target, target_name, &table.target_table, table).await?;
    let find = |cols: &[Column], n: &str| cols.iter().find(|c| c.name == n).cloned();

    let selected = selected_columns(table, &src)?;

    let mut problems = Vec::new();
    let mut lossy = Vec::new();
    let mut clock = None;
    for c in &selected {
        match find(&dst, &c.name) {
            None => problems.push(format!(
                "column {:?} ({}) is missing in target table {}",
                c.name,
                c.declared(),
                table.target_table
            )),
            Some(t) if !compatible(&c.type_name, &t.type_name) => problems.push(format!(
                "column {:?} is {} on the source but {} on the target: incompatible",
                c.name,
                c.declared(),
                t.declared()
            )),
            Some(t) => {
                if table.mode == Mode::Merge && table.key.contains(&c.name) {
                    if let Some(why) = looser_equality(c, &t) {
                        // Merge deletes and keeps by the target's equality.
                        problems.push(format!(
                            "key column {:?} is {} on the source but {} on the target, and merge cannot accept that: \
                             {why}, so merge would keep only one of their rows; make the target's column {}",
                            c.name,
                            c.declared(),
                            t.declared(),
                            c.type_text
                        ));
                    }
                }
                let mut what = narrowing::loss(
                    ColumnType::new(&c.type_name, c.type_mod),
                    ColumnType::new(&t.type_name, t.type_mod),
                );
                if let (None, Some(crossing)) = (&what, narrowing::zone_crossing(&c.type_name, &t.type_name)) {
                    // Both sessions run in the table's zone (the source's when none is set).
                    if clock.is_none() {
                        clock = Some(clock_changes(source, source_name, table).await?);
                    }
                    what = clock.as_ref().and_then(|ch| narrowing::zone_loss(crossing, ch));
                }
                let Some(what) = what else { continue };
                if !table.lossy_columns.contains(&c.name) {
                    lossy.push((c, t, what));
                } else if table.mode == Mode::Merge && table.key.contains(&c.name) {
                    // Accepting changed values is not accepting lost rows: two keys made one,
                    // merge keeps one of their rows.
                    problems.push(format!(
                        "key column {:?} is {} on the source but {} on the target, and merge cannot accept that: \
                         {what}, so distinct keys would become one and merge would keep only one of their rows; \
                         widen the target's column",
                        c.name,
                        c.declared(),
                        t.declared()
                    ));
                }
            }
        }
    }
    for l in &table.lossy_columns {
        if !selected.iter().any(|c| &c.name == l) {
            problems.push(format!("column {l:?} of lossy_columns is not among the columns moved"));
        }
    }
    for t in &dst {
        if t.not_null && !t.has_default && !selected.iter().any(|c| c.name == t.name) {
            problems.push(format!(
                "target column {:?} is NOT NULL without default and gets no value from the source",
                t.name
            ));
        }
    }
    for k in &table.key {
        if !selected.iter().any(|c| &c.name == k) {
            problems.push(format!("key column {k:?} is not among the columns moved"));
        }
    }
    if !problems.is_empty() {
        return Err(check_error(
            table,
            format!("source and target columns do not match:\n  - {}", problems.join("\n  - ")),
            Some("columns are matched by name; align the tables, or list the columns to move in `columns`"),
        ));
    }
    if !lossy.is_empty() {
        return Err(lossy_error(table, target.flavour, &lossy));
    }

    let condition_type = match source_condition(table, &src)? {
        Some(c) => {
            let col = &c.name;
            if table.mode == Mode::Replace && find(&dst, col).is_none() {
                return Err(check_error(
                    table,
                    format!(
                        "condition column {col:?} is missing in target table {}: replace mode deletes windows by it",
                        table.target_table
                    ),
                    None,
                ));
            }
            Some(c.type_name.clone())
        }
        None => None,
    };
    let binary = binary_compatible(table, &selected, &dst, source, target).await;
    Ok(TableCheck {
        column_types: selected.iter().map(|c| c.type_name.clone()).collect(),
        columns: selected.iter().map(|c| c.name.clone()).collect(),
        described: selected,
        target_columns: dst,
        condition_type,
        binary,
    })
}

/// Columns whose target type would change values silently (rows travel as text, and the
/// target's input rounds or cuts them): what happens to each, the ALTER TABLE that widens
/// it, and the option that accepts it.
fn lossy_error(table: &TableSpec, target: Flavour, lossy: &[(&Column, Column, String)]) -> Error {
    let lines: Vec<String> = lossy
        .iter()
        .map(|(c, t, what)| {
            format!("column {:?} is {} on the source but {} on the target: {what}", c.name, c.declared(), t.declared())
        })
        .collect();
    let alters: Vec<String> = lossy
        .iter()
        .map(|(c, _, _)| {
            format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE {};",
                table.target_table.quoted(),
                quote_ident(&c.name),
                target_type(&c.type_text, target)
            )
        })
        .collect();
    let names: Vec<String> = lossy.iter().map(|(c, _, _)| format!("{:?}", c.name)).collect();
    check_error(
        table,
        format!("target table {} would change values silently:\n  - {}", table.target_table, lines.join("\n  - ")),
        Some(&format!(
            "widen the target's column(s) to keep every value:\n  {}\nor accept the change in this table's \
             entry of the config: lossy_columns = [{}]",
            alters.join("\n  "),
            names.join(", ")
        )),
    )
}

/// The source columns to move: all, or those of `columns`, each of which must exist.
fn selected_columns(table: &TableSpec, src: &[Column]) -> Result<Vec<Column>, Error> {
    let Some(names) = &table.columns else { return Ok(src.to_vec()) };
    names
        .iter()
        .map(|n| {
            src.iter().find(|c| &c.name == n).cloned().ok_or_else(|| {
                check_error(
                    table,
                    format!("column {n:?} of `columns` is not in source table {}", table.source_table),
                    None,
                )
            })
        })
        .collect()
}

/// The source's condition column, which must exist and be a time.
fn source_condition<'a>(table: &TableSpec, src: &'a [Column]) -> Result<Option<&'a Column>, Error> {
    let Some(col) = &table.condition_column else { return Ok(None) };
    let c = src.iter().find(|c| &c.name == col).ok_or_else(|| {
        check_error(table, format!("condition column {col:?} is not in source table {}", table.source_table), None)
    })?;
    if !matches!(c.type_name.as_str(), "timestamp" | "timestamptz" | "date") {
        return Err(check_error(
            table,
            format!("condition column {col:?} is {}, not a timestamp or date", c.declared()),
            Some("windows are cut on a timestamp, timestamptz or date column; pick one, or use mode = \"full\""),
        ));
    }
    Ok(Some(c))
}

/// Checks a table against what its sink loads: both sides for a sink that loads the target
/// table ([`check_table`]), the source alone for one that loads no database
/// ([`check_source_for_sink`]).
pub async fn check_for_sink(
    table: &TableSpec,
    sink: &dyn crate::roles::Sink,
    source: &Session,
    source_name: &str,
    target: &Session,
    target_name: &str,
) -> Result<TableCheck, Error> {
    if sink.loads_target() {
        check_table(table, source, source_name, target, target_name).await
    } else {
        check_source_for_sink(table, source, source_name).await
    }
}

/// A table whose sink loads no database: the columns to move are the source's (all, or
/// `columns`, each of which must exist), the key must be among them, the condition column
/// must be a time, and there is nothing to create.
pub async fn check_source_for_sink(
    table: &TableSpec,
    source: &Session,
    source_name: &str,
) -> Result<TableCheck, Error> {
    if table.create_target {
        return Err(check_error(
            table,
            format!(
                "create_target = true, but sink {:?} loads no table on cluster {:?}: there is nothing to create",
                table.sink.get_ref().plugin,
                table.to
            ),
            Some("remove create_target for this table"),
        ));
    }
    let src = columns(source, source_name, &table.source_table, table).await?;
    let selected = selected_columns(table, &src)?;
    if let Some(k) = table.key.iter().find(|k| !selected.iter().any(|c| &c.name == *k)) {
        return Err(check_error(table, format!("key column {k:?} is not among the columns moved"), None));
    }
    let condition_type = source_condition(table, &src)?.map(|c| c.type_name.clone());
    Ok(TableCheck {
        column_types: selected.iter().map(|c| c.type_name.clone()).collect(),
        columns: selected.iter().map(|c| c.name.clone()).collect(),
        described: selected,
        target_columns: Vec::new(),
        condition_type,
        binary: false,
    })
}

/// What a dry run can know of a table whose target `create_target` would create: the source's
/// columns (all, or `columns`) and the condition column's type.
pub async fn source_only_check(table: &TableSpec, source: &Session, source_name: &str) -> Result<TableCheck, Error> {
    let src = columns(source, source_name, &table.source_table, table).await?;
    let selected: Vec<&Column> = match &table.columns {
        Some(names) => src.iter().filter(|c| names.contains(&c.name)).collect(),
        None => src.iter().collect(),
    };
    let condition_type = table
        .condition_column
        .as_ref()
        .and_then(|col| src.iter().find(|c| &c.name == col))
        .map(|c| c.type_name.clone());
    Ok(TableCheck {
        column_types: selected.iter().map(|c| c.type_name.clone()).collect(),
        columns: selected.iter().map(|c| c.name.clone()).collect(),
        described: selected.into_iter().cloned().collect(),
        target_columns: Vec::new(),
        condition_type,
        binary: false,
    })
}

/// Built-in types whose binary form is the same on every server version we talk to.
const BINARY_SAFE: &[&str] = &[
    "bool",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "text",
    "varchar",
    "bpchar",
    "char",
    "name",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "bytea",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "oid",
];

async fn binary_compatible(
    table: &TableSpec,
    selected: &[Column],
    dst: &[Column],
    source: &Session,
    target: &Session,
) -> bool {
    // Merge numbers the rows of a batch in the text stream; 8.x servers may use float datetimes.
    if table.mode == Mode::Merge || source.flavour.kernel() < 90 || target.flavour.kernel() < 90 {
        return false;
    }
    let same_types = selected.iter().all(|c| {
        BINARY_SAFE.contains(&c.type_name.as_str())
            && dst.iter().any(|t| t.name == c.name && t.type_text == c.type_text)
    });
    if !same_types {
        return false;
    }
    for name in ["integer_datetimes", "server_encoding"] {
        let (a, b) = (setting(source, name).await, setting(target, name).await);
        if a.is_none() || a != b {
            return false;
        }
    }
    true
}

async fn setting(session: &Session, name: &str) -> Option<String> {
    session.timed(session.client.query_one("SELECT current_setting($1)", &[&name])).await.ok().map(|r| r.get(0))
}

/// Whether the text form of a source type loads into the target type at all. Widening within
/// a family is fine; narrowing is allowed here when it fails the window (atomically) on
/// overflow, and refused by [`narrowing::loss`] when it would round or cut values instead.
fn compatible(source: &str, target: &str) -> bool {
    fn family(t: &str) -> &str {
        match t {
            "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" | "oid" => "number",
            "text" | "varchar" | "bpchar" | "name" | "char" | "citext" => "text",
            "timestamp" | "timestamptz" | "date" => "time",
            "json" | "jsonb" => "json",
            "time" | "timetz" => "timeofday",
            other => other,
        }
    }
    source == target || family(target) == "text" || family(source) == family(target)
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn type_families() {
        assert!(compatible("int4", "int8"));
        assert!(compatible("float8", "numeric"));
        assert!(compatible("timestamp", "timestamptz"));
        assert!(compatible("int4", "text"));
        assert!(!compatible("text", "int4"));
        assert!(!compatible("timestamp", "int8"));
        assert!(!compatible("bytea", "int4"));
    }
}
