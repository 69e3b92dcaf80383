//! Which tables a command works on: `--job` and `--table` filters, enabled tables only.

use crate::config::{Config, ConfigError, TableSpec};

/// The enabled tables matching the filters. A filter that matches nothing is an error, so a
/// typo never turns into a silent no-op.
pub fn select_tables(config: &Config, jobs: &[String], tables: &[String]) -> Result<Vec<TableSpec>, ConfigError> {
    for j in jobs {
        if !config.jobs.iter().any(|job| &job.name == j) {
            let known: Vec<_> = config.jobs.iter().map(|j| j.name.as_str()).collect();
            return Err(ConfigError::file(
                &config.path,
                format!("--job {j:?}: no such job; jobs: [{}]", known.join(", ")),
            ));
        }
    }
    let selected: Vec<TableSpec> = config
        .tables()
        .filter(|t| t.enabled)
        .filter(|t| jobs.is_empty() || jobs.contains(&t.job))
        .filter(|t| tables.is_empty() || tables.iter().any(|name| matches_table(t, name)))
        .cloned()
        .collect();
    for name in tables {
        if !selected.iter().any(|t| matches_table(t, name)) {
            // Name what could have been meant: the enabled tables of the selected jobs.
            let mut known: Vec<String> = config
                .tables()
                .filter(|t| t.enabled && (jobs.is_empty() || jobs.contains(&t.job)))
                .map(TableSpec::display_name)
                .collect();
            known.sort();
            known.dedup();
            const SHOWN: usize = 20;
            let more = known.len().saturating_sub(SHOWN);
            known.truncate(SHOWN);
            let mut list = known.join(", ");
            if more > 0 {
                list.push_str(&format!(", … and {more} more (`gptransfer plan` lists them all)"));
            }
            return Err(ConfigError::file(
                &config.path,
                format!("--table {name:?}: no enabled table of the selected jobs has that name; tables: [{list}]"),
            ));
        }
    }
    Ok(selected)
}

/// `--table` names a source table (every entry reading it) or one entry, `source -> target`.
fn matches_table(t: &TableSpec, name: &str) -> bool {
    if let Some((source, target)) = name.split_once("->") {
        let parse = |s: &str| crate::dialect::QualifiedName::parse(s.trim()).ok();
        return parse(source).as_ref() == Some(&t.source_table) && parse(target).as_ref() == Some(&t.target_table);
    }
    let parsed = crate::dialect::QualifiedName::parse(name).ok();
    parsed.as_ref() == Some(&t.source_table) || t.source_table.name == name || t.source_table.to_string() == name
}
