//! `gptransfer status`: per table entry, where it stands — what a monitor polls (exit 3 when a
//! table is failing or further behind than `--max-lag`).

use gptransfer_core::config::ConfigDuration;
use gptransfer_core::engine::{status_tables, TableStatus};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

use super::{load_config_with_readers, usage};
use crate::cli::{OutputFormat, StatusArgs};
use crate::output;

/// Characters of an error shown in the table.
const ERROR_WIDTH: usize = 48;

pub async fn status(config: Option<&std::path::Path>, registry: &Registry, args: StatusArgs) -> anyhow::Result<i32> {
    let max_lag = match &args.max_lag {
        Some(text) => Some(ConfigDuration::parse(text).map_err(|e| usage("--max-lag", e))?),
        None => None,
    };
    let loaded = load_config_with_readers(config, registry, &args.selection.jobs).await?;
    let config = &loaded.config;
    let tables = loaded.select(&args.selection.jobs, &args.selection.tables)?;
    let found = status_tables(config, &tables).await?;
    let behind =
        |s: &TableStatus| max_lag.is_some_and(|max| u64::try_from(s.lag_seconds).unwrap_or(0) > max.0.as_secs());
    let failing: Vec<&TableStatus> = found.iter().filter(|s| s.failing).collect();
    let lagging: Vec<&TableStatus> = found.iter().filter(|s| behind(s)).collect();
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&found)?),
        OutputFormat::Human => {
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "-".to_string(), output::local_time);
            let rows = found
                .iter()
                .map(|s| {
                    vec![
                        s.job.clone(),
                        s.table.clone(),
                        s.cursor.map_or("never run".to_string(), |c| c.to_string()),
                        output::lag(s.lag_seconds),
                        format!("{}{}", s.due_windows, if s.more { "+" } else { "" }),
                        when(s.last_success),
                        match &s.last_failure {
                            Some(f) if s.failing => {
                                format!("FAILING {}: {}", f.window, output::one_line(&f.error, ERROR_WIDTH))
                            }
                            Some(f) => format!("{} (since succeeded)", when(f.at)),
                            None => "-".to_string(),
                        },
                        s.active_alarms.to_string(),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(
                    &["JOB", "TABLE", "CURSOR", "LAG", "DUE", "LAST SUCCESS", "LAST FAILURE", "ALARMS"],
                    rows
                )
            );
            for s in &lagging {
                println!(
                    "BEHIND {} / {}: {} behind, more than --max-lag {}",
                    s.job,
                    s.table,
                    output::lag(s.lag_seconds),
                    max_lag.map(|m| m.to_string()).unwrap_or_default()
                );
            }
            if failing.is_empty() && lagging.is_empty() {
                println!("{} table(s): none failing{}", found.len(), if max_lag.is_some() { " or behind" } else { "" });
            } else {
                println!("{} table(s): {} failing, {} behind", found.len(), failing.len(), lagging.len());
            }
        }
    }
    if loaded.say_failed("not shown") {
        return Ok(exit::FAILED);
    }
    Ok(if failing.is_empty() && lagging.is_empty() { exit::OK } else { exit::DIFFERENCES })
}
