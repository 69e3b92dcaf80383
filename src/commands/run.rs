//! `gptransfer run`.

use std::sync::Arc;

use gptransfer_core::engine::{self, RunOptions, WindowStatus};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

use super::{load_config_with_readers, now, parse_until};
use crate::cli::{OutputFormat, RunArgs};
use crate::{output, progress, signals};

pub async fn run(
    config: Option<&std::path::Path>,
    registry: &Registry,
    args: RunArgs,
    quiet: bool,
) -> anyhow::Result<i32> {
    let loaded = load_config_with_readers(config, registry, &args.selection.jobs).await?;
    let config = &loaded.config;
    let tables = loaded.select(&args.selection.jobs, &args.selection.tables)?;
    let options = RunOptions {
        jobs: args.selection.jobs.clone(),
        tables: args.selection.tables.clone(),
        until: parse_until(args.until.as_deref())?,
        parallel: usize::from(args.parallel),
        dry_run: args.dry_run,
        now: now(),
        stop_on_error: args.stop_on_error,
        windows: None,
        reason: None,
    };
    let interrupt = signals::install();
    // `-q`: only errors, so no per-window lines, bars or summary.
    let human = args.output == OutputFormat::Human && !quiet;
    let observer = Arc::new(progress::Reporter::new(human));
    let report = engine::run(config, registry, tables, &options, observer.clone(), interrupt).await?;
    observer.finish();

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        // `-q`: nothing on success; failures still reach stderr below.
        OutputFormat::Human if quiet => {}
        OutputFormat::Human => {
            let ok = report.windows.iter().filter(|w| w.status == WindowStatus::Succeeded).count();
            let planned = report.windows.iter().filter(|w| w.status == WindowStatus::Planned).count();
            let rows: u64 = report.windows.iter().map(|w| w.rows_written).sum();
            let bytes: u64 =
                report.windows.iter().filter(|w| w.status == WindowStatus::Succeeded).map(|w| w.bytes).sum();
            if planned > 0 {
                println!("dry run: {planned} window(s) due, nothing moved");
            } else if report.windows.is_empty() && loaded.failed.is_empty() {
                println!("nothing due: every table is up to date");
            } else if report.windows.is_empty() {
                println!("nothing due: every table that ran is up to date");
            } else {
                println!("{ok} window(s) loaded, {} failed; {rows} rows, {}", report.failed(), output::bytes(bytes));
            }
        }
    }
    for c in &report.external_cursors {
        match (&c.message, &c.error) {
            (_, Some(e)) => eprintln!("error: job {:?}: {}: not advanced: {e}", c.job, c.cursor),
            (Some(m), None) if human => {
                for line in m.lines() {
                    println!("job {}: {line}", c.job);
                }
            }
            _ => {}
        }
    }
    // Last, where an operator looks: the jobs that did not run at all.
    let jobs_failed = loaded.say_failed("not run");
    if let Some(code) = interrupted_or_failed(&report) {
        return Ok(code);
    }
    if jobs_failed || report.external_cursor_errors().next().is_some() {
        // The windows landed; the cursor kept elsewhere did not move: the next run re-loads them.
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}

/// The exit of a run that was interrupted (SIGINT/SIGTERM) or had failed windows, said on
/// stderr; `None` when neither.
pub(super) fn interrupted_or_failed(report: &gptransfer_core::engine::RunReport) -> Option<i32> {
    if let Some(sig) = report.interrupted_by {
        eprintln!("error: {}", gptransfer_core::Error::Interrupted { signal: sig });
        return Some(if sig == 15 { exit::SIGTERM } else { exit::SIGINT });
    }
    if report.failed() > 0 {
        eprintln!("error: {}", gptransfer_core::Error::WindowsFailed { failed: report.failed() });
        return Some(exit::FAILED);
    }
    None
}
