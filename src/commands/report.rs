//! `gptransfer report --html FILE [--since D]`.

use gptransfer_core::config::ConfigDuration;
use gptransfer_core::engine::status_tables;
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::state::{HistoryFilter, State};

use super::{load_config_with_readers, state_cluster, usage};
use crate::cli::ReportArgs;
use crate::report::{render, ReportData};

/// History rows a report reads at most.
const MAX_ROWS: i64 = 200_000;

pub async fn report(config: Option<&std::path::Path>, registry: &Registry, args: ReportArgs) -> anyhow::Result<i32> {
    let since = ConfigDuration::parse(&args.since).map_err(|e| usage("--since", e))?;
    let loaded = load_config_with_readers(config, registry, &args.selection.jobs).await?;
    let config = &loaded.config;
    let tables = loaded.select(&args.selection.jobs, &args.selection.tables)?;
    let statuses = status_tables(config, &tables).await?;
    let generated = chrono::Utc::now();
    let since = generated - since.as_chrono();
    let cluster = state_cluster(config)?;
    let application = format!("gptransfer report pid {}", std::process::id());
    let (history, alarms) = match State::open_existing(cluster, &config.state.schema, &application).await? {
        Some(state) => {
            let filter = HistoryFilter { limit: MAX_ROWS, since: Some(since.naive_utc()), ..HistoryFilter::default() };
            let mut rows = state.history(&filter).await?;
            // Only the selected entries.
            rows.retain(|r| tables.iter().any(|t| t.job == r.job && t.target_table.to_string() == r.target_table));
            let mut alarms = state.active_alarms(1000).await?;
            alarms.retain(|a| tables.iter().any(|t| t.job == a.job && t.display_name() == a.table));
            (rows, alarms)
        }
        None => (Vec::new(), Vec::new()),
    };
    let page = render(&ReportData { generated, since, statuses, history, alarms });
    std::fs::write(&args.html, page).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the report to {}: {e}; check that its directory exists and is writable",
            args.html.display()
        )
    })?;
    println!("report written to {}", args.html.display());
    if loaded.say_failed("not in the report") {
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}
