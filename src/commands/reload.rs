//! `gptransfer reload`: re-loads every window of a range now, after something was fixed upstream.
//!
//! Each window is loaded as a replace of the window (a merge table merges; a full table is
//! reloaded whole), under the job's lock, recorded in history with reason `reload`. Windows
//! the cursor has passed do not move it; windows beyond it are loaded the way a run would —
//! from the cursor, contiguous, only as far as is due — so the cursor only moves forwards, over
//! windows that all landed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use gptransfer_core::config::{Config, Mode, TableSpec};
use gptransfer_core::engine::{self, select_tables, table_key, RunOptions, WindowStatus};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::window::{tile, Window};

use super::{load_config_with_readers, now, parse_ts, usage};
use crate::cli::{OutputFormat, ReloadArgs};
use crate::{output, progress, signals};

pub async fn reload(
    config: Option<&std::path::Path>,
    registry: &Registry,
    args: ReloadArgs,
    quiet: bool,
) -> anyhow::Result<i32> {
    let config = load_config_with_readers(config, registry, std::slice::from_ref(&args.job)).await?.strict()?;
    let from = parse_ts("--from", Some(&args.from))?.ok_or_else(|| usage("--from", "a timestamp is required"))?;
    let to = parse_ts("--to", Some(&args.to))?.ok_or_else(|| usage("--to", "a timestamp is required"))?;
    if from >= to {
        return Err(usage("--from", format!("{from} is not before --to {to}: the range holds no window")));
    }
    let tables = select_tables(&config, std::slice::from_ref(&args.job), &args.tables)
        .map_err(gptransfer_core::Error::Config)?;
    let mut windows: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    let mut specs = Vec::new();
    for t in tables {
        let spec = reload_spec(&config, t)?;
        windows.insert(table_key(&spec), range_windows(&spec, from, to)?);
        specs.push(spec);
    }
    let options = RunOptions {
        jobs: vec![args.job.clone()],
        tables: args.tables.clone(),
        until: None,
        parallel: 1,
        dry_run: args.dry_run,
        now: now(),
        stop_on_error: false,
        windows: Some(windows),
        reason: Some("reload"),
    };
    let human = args.output == OutputFormat::Human && !quiet;
    let observer = Arc::new(progress::Reporter::new(human));
    let external: Vec<String> = specs.iter().filter(|t| t.cursor_external).map(|t| t.job.clone()).collect();
    let report = engine::run(&config, registry, specs, &options, observer.clone(), signals::install()).await?;
    observer.finish();

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Human if !quiet || report.failed() > 0 => {
            if args.dry_run {
                for w in &report.windows {
                    println!("would reload {} / {} window {}", w.job, w.table, w.window);
                }
                println!("dry run: {} window(s) would be re-loaded, nothing moved", report.windows.len());
            } else {
                let ok = report.windows.iter().filter(|w| w.status == WindowStatus::Succeeded).count();
                let rows: u64 = report.windows.iter().map(|w| w.rows_written).sum();
                let bytes: u64 =
                    report.windows.iter().filter(|w| w.status == WindowStatus::Succeeded).map(|w| w.bytes).sum();
                println!("{ok} window(s) re-loaded, {} failed; {rows} rows, {}", report.failed(), output::bytes(bytes));
            }
            if let Some(job) = external.first() {
                println!(
                    "job {job}: its config reader's job row was not changed (a reload moves no job row; \
                     the next run goes on from the row as it is)"
                );
            }
        }
        OutputFormat::Human => {}
    }
    if let Some(code) = super::run::interrupted_or_failed(&report) {
        return Ok(code);
    }
    Ok(exit::OK)
}

/// The entry as a reload loads it: replace, except merge (merges) and full (reloads whole). An
/// append entry is re-loaded as a replace of its window — unless another entry loads the same
/// target table, whose rows of the window the delete would take too.
fn reload_spec(config: &Config, mut t: TableSpec) -> anyhow::Result<TableSpec> {
    if t.mode == Mode::Append {
        if let Some(other) = super::another_entry_loading(config, &t) {
            return Err(usage(
                "--table",
                format!(
                    "{} / {} appends into {} together with {} / {}: a reload replaces each window, and nothing in \
                     the target tells one entry's rows from the other's, so it would delete both; to load the range \
                     again, delete its rows from the target, `cursor set` both entries back to its start, and `run`",
                    t.job,
                    t.display_name(),
                    t.target_table,
                    other.job,
                    other.display_name()
                ),
            ));
        }
        t.mode = Mode::Replace;
    }
    Ok(t)
}

/// The windows of `[from, to)` on the table's grid; both bounds must be window boundaries.
fn range_windows(t: &TableSpec, from: NaiveDateTime, to: NaiveDateTime) -> anyhow::Result<Vec<Window>> {
    if t.mode == Mode::Full {
        // One reload of the whole table (the engine takes any window of a full table as that).
        return Ok(vec![Window { start: from, end: to }]);
    }
    let step = t.duration.as_chrono().num_seconds().max(1);
    for (option, ts) in [("--from", from), ("--to", to)] {
        // Before the start too: a config reader's row moves the start on after every run.
        let offset = (ts - t.start).num_seconds();
        if offset.rem_euclid(step) != 0 {
            let below = ts - chrono::Duration::seconds(offset.rem_euclid(step));
            return Err(usage(
                option,
                format!(
                    "{ts} is not a window boundary of {} / {} (windows of {} from {}): use {below} or {}",
                    t.job,
                    t.display_name(),
                    t.duration,
                    t.start,
                    below + chrono::Duration::seconds(step)
                ),
            ));
        }
    }
    Ok(tile(t, from, to))
}
