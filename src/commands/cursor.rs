//! `gptransfer cursor set`: moves one table entry's stored cursor, backwards (the next run
//! re-loads from there) or forwards (it skips what lies between), under the job's lock, with a
//! history row that keeps the cursor it replaced.

use gptransfer_core::config::TableSpec;
use gptransfer_core::engine::select_tables;
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::state::State;

use super::{load_config_with_readers, parse_ts, state_cluster, usage};
use crate::cli::{CursorSetArgs, OutputFormat};

#[derive(serde::Serialize)]
struct CursorMove {
    job: String,
    table: String,
    target_table: String,
    old: Option<chrono::NaiveDateTime>,
    new: chrono::NaiveDateTime,
}

pub async fn set(config: Option<&std::path::Path>, registry: &Registry, args: CursorSetArgs) -> anyhow::Result<i32> {
    let config = load_config_with_readers(config, registry, std::slice::from_ref(&args.job)).await?.strict()?;
    let to = parse_ts("TS", Some(&args.cursor))?.ok_or_else(|| usage("TS", "a timestamp is required"))?;
    let tables = select_tables(&config, std::slice::from_ref(&args.job), std::slice::from_ref(&args.table))
        .map_err(gptransfer_core::Error::Config)?;
    // A bare source name that is also one entry's own name (target = source) names that entry.
    let exact: Vec<&TableSpec> = tables.iter().filter(|t| t.display_name() == args.table).collect();
    let t: &TableSpec = match (tables.as_slice(), exact.as_slice()) {
        ([one], _) => one,
        (_, [one]) => one,
        (many, _) => {
            let names: Vec<String> =
                many.iter().map(|t| format!("\"{} -> {}\"", t.source_table, t.target_table)).collect();
            return Err(usage(
                "--table",
                format!(
                    "{:?} names {} entries of job {:?} ({}): name one as \"source -> target\"",
                    args.table,
                    many.len(),
                    args.job,
                    names.join(", ")
                ),
            ));
        }
    };
    if t.cursor_external {
        return Err(usage(
            "--job",
            format!(
                "job {:?} takes its windows from its config reader's job row, not from a stored cursor: move that \
                 row (its start time) instead",
                t.job
            ),
        ));
    }
    let cluster = state_cluster(&config)?;
    let application = format!("gptransfer pid {} host {}", std::process::id(), gptransfer_core::host_name());
    let state = State::open(cluster, &config.state.schema, &application).await?;
    // Under the job's lock: a run in progress would move the cursor again when its window commits.
    let lock = state.lock_job(&t.job).await?;
    let moved = state.set_cursor(t, to, &gptransfer_core::host_name()).await;
    state.release(lock).await;
    let old = moved?;
    let report = CursorMove {
        job: t.job.clone(),
        table: t.display_name(),
        target_table: t.target_table.to_string(),
        old,
        new: to,
    };
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Human => {
            let shown = old.map_or_else(|| format!("none (start {})", t.start), |c| c.to_string());
            println!("cursor of {} / {}: {shown} -> {to}", t.job, t.display_name());
            let next = if old.is_some_and(|o| o > to) { "re-loads" } else { "loads" };
            println!("the next run {next} windows from {to}");
        }
    }
    Ok(exit::OK)
}
