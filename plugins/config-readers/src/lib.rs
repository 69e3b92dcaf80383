//! Config readers (SPEC §6): a job's window from a MySQL/MariaDB job table (the seed's
//! `etl_conf_d`) and its table list from a table kept in a cluster (the seed's
//! `sor.schemaName`), joined to the job rows.
//!
//! `[jobs.NAME] reader = { plugin = "mysql", … }` makes the job row the job's cursor: every
//! table's windows run from `RUN_START_TIMESTAMP` to at most `RUN_END_TIMESTAMP` (the state
//! cursor does not move the start), and after the windows committed the row moves on by as far
//! as every table of the row got. A crash between the target commit and the MySQL update leaves
//! the row behind: the next run re-loads that span, which replace and merge make harmless, and
//! then moves the row. Append mode is refused under a reader for that reason.
//!
//! `tables_from = { plugin = "table-list", … }` reads `schema, table` rows flagged valid from a
//! cluster table; `join` names the columns that pick each row's job row (seed: `opera_type`,
//! `duration`, `job_group`). Names read from either table are never spliced into SQL: table
//! names go through `QualifiedName` and `quote_ident`, values are bound. A row with an invalid
//! value is reported (a warning naming the row) and skipped.

mod mysql;
mod options;
mod table_list;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use gptransfer_core::config::{
    ClusterConfig, Config, ConfigDuration, ConfigError, JobSpec, Mode, PluginSpec, TableSpec,
};
use gptransfer_core::dialect::QualifiedName;
use gptransfer_core::Error;
use toml::Spanned;

pub use mysql::MysqlCursor;
use options::{MysqlOptions, TableListOptions};

/// Names of the config reader plugins, for `gptransfer plugins`-style listings.
pub const READERS: &[(&str, &str)] = &[
    ("mysql", "job window from a MySQL/MariaDB job table (etl_conf_d), advanced after each run"),
    ("table-list", "table list from a table in a cluster (sor.schemaName), joined to the job rows"),
];

/// What the readers did besides filling in the jobs they read.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Jobs skipped on purpose (their job row switched off), with why: not a failure.
    pub skipped: Vec<(String, String)>,
    /// Jobs that cannot run (their job table or table list unreachable, refusing us, or naming
    /// no usable row), with the error. They have no tables this run; the other jobs are whole.
    pub failed: Vec<(String, Error)>,
}

/// Runs the config readers of the enabled jobs that `wanted` selects (by job name): fills in the
/// jobs' tables and windows and registers the MySQL job rows as external cursors. A job switched
/// off in the file, or not selected, is never read (nothing is contacted for it) and gets no
/// tables. A mistake in the file (a reader's options) is an error whatever the selection; a job
/// table that cannot be read fails only its job ([`Outcome::failed`]). A no-op for a config
/// without readers.
pub async fn load(config: &mut Config, wanted: &dyn Fn(&str) -> bool) -> Result<Outcome, Error> {
    let mut outcome = Outcome::default();
    if config.readers_loaded {
        return Ok(outcome);
    }
    let mut jobs = std::mem::take(&mut config.jobs);
    let result = async {
        // The file's part of every reader first, so that a mistake there is said whichever jobs run.
        let mut prepared = Vec::new();
        for (i, job) in jobs.iter().enumerate().filter(|(_, j)| j.has_readers()) {
            prepared.push((i, prepare(config, job)?));
        }
        for (i, p) in prepared {
            let job = &mut jobs[i];
            if !job.enabled || !wanted(&job.name) {
                // Without its reader the job's window is unknown: it must not run from the file's.
                job.tables.clear();
                continue;
            }
            match load_job(config, job, p).await {
                Ok(None) => {}
                Ok(Some(note)) => {
                    job.tables.clear();
                    outcome.skipped.push((job.name.clone(), note));
                }
                Err(e) => {
                    job.tables.clear();
                    outcome.failed.push((job.name.clone(), e));
                }
            }
        }
        Ok(())
    }
    .await;
    config.jobs = jobs;
    config.readers_loaded = true;
    result.map(|()| outcome)
}

/// A reader's options, checked; errors point at the reader in the file.
fn options<T: serde::de::DeserializeOwned>(
    config: &Config,
    job: &str,
    key: &str,
    spec: &Spanned<PluginSpec>,
    plugin: &str,
) -> Result<T, Error> {
    let at = |message: String| Error::Config(config.error_at(spec.span(), format!("job {job:?}, {key}: {message}")));
    if spec.get_ref().plugin != plugin {
        let known: Vec<_> = READERS.iter().map(|(n, _)| *n).collect();
        return Err(at(format!(
            "plugin {:?} is not a {key} reader here; use {plugin:?} (config readers: {})",
            spec.get_ref().plugin,
            known.join(", ")
        )));
    }
    toml::Value::Table(spec.get_ref().options.clone()).try_into::<T>().map_err(|e| at(e.message().to_string()))
}

/// A job's readers as the file sets them, checked without I/O.
struct Prepared {
    list: Option<(TableListOptions, ClusterConfig, QualifiedName)>,
    reader: Option<MysqlOptions>,
    join: Vec<String>,
}

fn prepare(config: &Config, job: &JobSpec) -> Result<Prepared, Error> {
    let name = &job.name;
    let config_error =
        |message: String| Error::Config(ConfigError::file(&config.path, format!("job {name:?}: {message}")));
    let list_options = match &job.tables_from {
        Some(spec) => Some(options::<TableListOptions>(config, name, "tables_from", spec, "table-list")?),
        None => None,
    };
    let reader = match &job.reader {
        Some(spec) => Some(options::<MysqlOptions>(config, name, "reader", spec, "mysql")?),
        None => None,
    };
    let join: Vec<String> = list_options.as_ref().map(|o| o.join.clone()).unwrap_or_default();
    if reader.is_none() && !join.is_empty() {
        return Err(config_error("tables_from.join needs reader = { plugin = \"mysql\", … } to join to".into()));
    }
    if let (Some(o), Some(spec)) = (&reader, &job.reader) {
        mysql::check(o, &join)
            .map_err(|e| Error::Config(config.error_at(spec.span(), format!("job {name:?}, reader: {e}"))))?;
    }
    let mode = job.defaults.mode.unwrap_or(Mode::Replace);
    if reader.is_some() {
        let append = job.tables.iter().find(|t| t.mode == Mode::Append).map(|t| t.source_table.to_string());
        if mode == Mode::Append || append.is_some() {
            return Err(config_error(format!(
                "{}append mode cannot re-load a window harmlessly, which a job under a reader must be able to \
                 do (a crash between the target commit and the job row update re-loads it); use replace or merge",
                append.map(|t| format!("table {t}: ")).unwrap_or_default()
            )));
        }
    }
    let list = match list_options {
        Some(lo) => {
            let cluster = config.clusters.get(&lo.cluster).cloned().ok_or_else(|| {
                let known: Vec<_> = config.clusters.keys().cloned().collect();
                config_error(format!(
                    "tables_from.cluster = {:?} names no cluster; defined clusters: [{}]",
                    lo.cluster,
                    known.join(", ")
                ))
            })?;
            let list_table =
                QualifiedName::parse(&lo.table).map_err(|e| config_error(format!("tables_from.table: {e}")))?;
            Some((lo, cluster, list_table))
        }
        None => None,
    };
    Ok(Prepared { list, reader, join })
}

/// Reads one job's readers and completes the job: `Ok(Some(note))` when its job row is switched
/// off (the job is skipped), `Err` when it cannot run.
async fn load_job(config: &mut Config, job: &mut JobSpec, p: Prepared) -> Result<Option<String>, Error> {
    let name = job.name.clone();
    let Prepared { list, reader: reader_options, join } = p;
    let config_error =
        |message: String| Error::Config(ConfigError::file(&config.path, format!("job {name:?}: {message}")));

    // The job rows: one per join value set (one row in all without a join).
    let rows = match &reader_options {
        Some(o) => {
            let job_name = o.job_name.clone().unwrap_or_else(|| name.clone());
            let found = mysql::read_rows(o, &job_name, &join).await?;
            if let Some(problem) = no_usable_row(o, &job_name, &join, &found) {
                // The refused rows' reasons are in the job's error: said once, not warned too.
                return problem;
            }
            for r in &found.refused {
                tracing::warn!(job = %name, "{}: skipped: {}", r.row, r.problem);
            }
            let rows = found.usable;
            if join.is_empty() && rows.len() > 1 {
                return Err(mysql::table_error(
                    o,
                    format!("{} rows are valid for {} = {job_name:?}", rows.len(), o.columns.job_name),
                    "set tables_from.join to the columns that tell them apart, or keep one row valid".into(),
                ));
            }
            Some((o, job_name, rows))
        }
        None => None,
    };
    // The tables: from the list, else the file's.
    let mut tables: Vec<(TableSpec, Option<usize>)> = Vec::new();
    match &list {
        Some((lo, cluster, list_table)) => {
            let entries = table_list::read(lo, &lo.cluster, cluster, list_table, &name).await?;
            let mut seen = BTreeMap::new();
            for entry in entries {
                let row_index = match &rows {
                    Some((_, _, rows)) => match rows.iter().position(|r| r.join_values == entry.join_values) {
                        Some(i) => Some(i),
                        None => {
                            tracing::warn!(
                                job = %name,
                                "table list {list_table}, row {}: skipped: no valid job row has {}",
                                entry.describe(),
                                describe_join(&join, &entry.join_values)
                            );
                            continue;
                        }
                    },
                    None => None,
                };
                if let Some(previous) = seen.insert(entry.name.clone(), entry.describe()) {
                    tracing::warn!(
                        job = %name,
                        "table list {list_table}, row {}: skipped: table {} is already listed by row {previous}",
                        entry.describe(),
                        entry.name
                    );
                    continue;
                }
                let mut t = job.default_table(entry.name.clone());
                t.condition_column = lo.condition_column.clone();
                t.location = job.defaults.location;
                tables.push((t, row_index));
            }
        }
        None => {
            for t in std::mem::take(&mut job.tables) {
                tables.push((t, Some(0).filter(|_| rows.is_some())));
            }
        }
    }

    // Per-table values from the job row, then the checks the file's tables get at load time.
    let mut out = Vec::new();
    let mut row_tables: Vec<Vec<String>> = vec![Vec::new(); rows.as_ref().map_or(0, |(_, _, r)| r.len())];
    for (mut t, row_index) in tables {
        let from_list = list.is_some();
        if let (Some((_, _, rows)), Some(i)) = (&rows, row_index) {
            let row = &rows[i];
            t.start = row.start;
            t.end = Some(t.end.map_or(row.end, |e| e.min(row.end)));
            t.cursor_external = true;
            if let Some(d) = row.duration {
                if from_list || t.duration.0.is_zero() {
                    t.duration = d;
                }
            }
            if let Some(c) = &row.condition_column {
                if from_list || t.condition_column.is_none() {
                    t.condition_column = Some(c.clone());
                }
            }
            if row.final_end.is_some() && (from_list || t.final_end.is_none()) {
                t.final_end = row.final_end;
            }
        }
        let problem = if t.duration.0.is_zero() {
            Some("no window length: set duration in the file or name the job row's duration column".to_string())
        } else if t.mode != Mode::Full && t.condition_column.is_none() {
            Some(format!(
                "no condition column in {} mode: set tables_from.condition_column or the job row's condition column",
                t.mode.as_str()
            ))
        } else if t.mode == Mode::Merge && t.key.is_empty() {
            Some("merge mode needs key columns, which a table list does not give; use replace".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            if from_list {
                tracing::warn!(job = %name, "table {}: skipped: {problem}", t.source_table);
                continue;
            }
            return Err(config_error(format!("table {}: {problem}", t.source_table)));
        }
        if let Some(i) = row_index.filter(|_| rows.is_some()) {
            row_tables[i].push(t.source_table.to_string());
        }
        out.push(t);
    }
    if out.is_empty() {
        tracing::warn!(job = %name, "the config readers gave no usable table; the job has nothing to run");
    }
    if let Some((o, job_name, rows)) = rows {
        let cursor = MysqlCursor::new(o, name.clone(), job_name, join, rows, row_tables)?;
        config.external_cursors.0.push(Arc::new(cursor));
    }
    job.tables = out;
    Ok(None)
}

/// Why the job has no row to run from: a row switched off is the operator's choice (a note, the
/// job is skipped); no row at all is most likely a misspelt name (the job fails); rows in use
/// whose values are all refused fail it too, each reason said.
fn no_usable_row(
    o: &MysqlOptions,
    job_name: &str,
    join: &[String],
    found: &mysql::Found,
) -> Option<Result<Option<String>, Error>> {
    if !found.usable.is_empty() {
        return None;
    }
    let c = &o.columns;
    if !found.refused.is_empty() {
        return Some(Err(mysql::table_error(
            o,
            format!(
                "no usable row where {} = {job_name:?}: {}",
                c.job_name,
                found
                    .refused
                    .iter()
                    .map(|r| if join.is_empty() {
                        r.problem.clone()
                    } else {
                        format!("row {}: {}", describe_join(join, &r.join_values), r.problem)
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!(
                "correct the row (or set {} to another value than {:?} to switch the job off)",
                c.valid_flag, o.valid_value
            ),
        )));
    }
    if !found.switched_off.is_empty() {
        let mut flags: Vec<String> =
            found.switched_off.iter().map(|f| f.as_ref().map_or("NULL".to_string(), |f| format!("{f:?}"))).collect();
        flags.sort();
        flags.dedup();
        let (its, has) = if found.switched_off.len() == 1 { ("its row", "has") } else { ("its rows", "have") };
        return Some(Ok(Some(format!(
            "{its} in {} {has} {} = {} (the job runs when it is {:?})",
            o.table,
            c.valid_flag,
            flags.join(", "),
            o.valid_value
        ))));
    }
    Some(Err(mysql::table_error(
        o,
        format!("no row where {} = {job_name:?}", c.job_name),
        "check the name: the job's name is looked up unless the reader sets job_name; insert the row, or set \
         enabled = false on the job to stop it"
            .into(),
    )))
}

fn describe_join(columns: &[String], values: &[Option<String>]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| match v {
            Some(v) => format!("{c} = {v:?}"),
            None => format!("{c} = NULL"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a duration cell: a number in `unit`, or a duration text (`30m`, `1h`).
fn parse_duration(text: &str, unit: options::DurationUnit) -> Result<ConfigDuration, String> {
    let t = text.trim();
    let d = match t.parse::<f64>() {
        // try_: a huge cell (1e300 minutes) must be refused, not panic.
        Ok(n) if n.is_finite() && n > 0.0 => std::time::Duration::try_from_secs_f64(n * unit.seconds())
            .map(ConfigDuration)
            .map_err(|_| format!("duration {t:?} is too large"))?,
        Ok(_) => return Err(format!("duration {t:?} is not positive")),
        Err(_) => ConfigDuration::parse(t)?,
    };
    if let Some(problem) = d.window_problem() {
        return Err(format!("duration {t:?}: {problem}"));
    }
    Ok(d)
}

fn format_ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

/// The parser's message for an unknown key in a reader's options (`plugin` = `mysql` or
/// `table-list`; `nested` = `Some("columns")` for the column names): it names every key the
/// reader knows, which the README's reference is checked against.
pub fn unknown_option_message(plugin: &str, nested: Option<&str>) -> Option<String> {
    let mut unknown = toml::Table::new();
    unknown.insert("zzz_unknown".into(), toml::Value::Integer(1));
    let value = match nested {
        None => toml::Value::Table(unknown),
        Some(key) => {
            // The required keys first, so that only the nested table is wrong.
            let mut outer = toml::Table::new();
            let required: &[&str] = if plugin == "mysql" { &["url"] } else { &["cluster", "table"] };
            for k in required {
                outer.insert((*k).into(), toml::Value::String("x".into()));
            }
            outer.insert(key.into(), toml::Value::Table(unknown));
            toml::Value::Table(outer)
        }
    };
    let err = match plugin {
        "mysql" => value.try_into::<MysqlOptions>().err(),
        "table-list" => value.try_into::<TableListOptions>().err(),
        _ => None,
    };
    err.map(|e| e.message().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_cells_too_large_or_sub_second_are_refused_not_panics() {
        let err = parse_duration("1e300", options::DurationUnit::Minutes).unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = parse_duration("0.5", options::DurationUnit::Seconds).unwrap_err();
        assert!(err.contains("whole number of seconds"), "{err}");
        let err = parse_duration("15M", options::DurationUnit::Minutes).unwrap_err();
        assert!(err.contains("months"), "{err}");
        assert_eq!(parse_duration("60", options::DurationUnit::Minutes).unwrap().0.as_secs(), 3600);
    }
}
