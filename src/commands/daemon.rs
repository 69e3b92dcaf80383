//! `gptransfer daemon`: run the due transfers, compare the windows just loaded, sleep, again.
//! Each table runs on its own so one bad table never stops the others; SIGTERM ends the loop
//! after rolling back the window in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

use gptransfer_core::config::ConfigDuration;
use gptransfer_core::engine::{
    self, compare_tables, select_tables, status_tables, table_key, CompareOptions, RunOptions, WindowStatus,
};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::window::Window;

use super::{load_config_with_readers, now};
use crate::cli::DaemonArgs;
use crate::metrics::{self, Metrics, Observed};
use crate::{progress, signals};

pub async fn daemon(
    config_path: Option<&std::path::Path>,
    registry: &Registry,
    args: DaemonArgs,
) -> anyhow::Result<i32> {
    let interval = ConfigDuration::parse(&args.interval).map_err(|e| {
        gptransfer_core::Error::Config(gptransfer_core::config::ConfigError::file(
            std::path::Path::new("--interval"),
            e,
        ))
    })?;
    // Bound before the first round: a taken port is a configuration error, said at once.
    let metrics = match &args.metrics_listen {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            let m = Arc::new(Metrics::new());
            metrics::serve(listener, m.clone());
            Some(m)
        }
        None => None,
    };
    let interrupt = signals::install();
    let mut round = 0u64;
    loop {
        round += 1;
        let started = std::time::Instant::now();
        // Worst outcome of this round: 0 fine, 3 differences, 1 a table failed.
        let mut worst = exit::OK;
        // The config is read again every round, so edits apply without a restart.
        match load_config_with_readers(config_path, registry, &args.selection.jobs).await {
            Ok(loaded) => match select_tables(&loaded.config, &args.selection.jobs, &args.selection.tables) {
                Ok(tables) => {
                    // A job whose job table cannot be read fails this round alone; the others run.
                    for (job, e) in &loaded.failed {
                        tracing::error!("round {round}: job {job:?}: not run: {e}");
                        worst = exit::FAILED;
                    }
                    for t in tables.iter().cloned() {
                        if interrupt.signal().is_some() {
                            break;
                        }
                        let code = one_table(&loaded.config, registry, t, &args, &interrupt, metrics.as_ref()).await;
                        if code == exit::FAILED || (code == exit::DIFFERENCES && worst == exit::OK) {
                            worst = code;
                        }
                    }
                    if let Some(m) = &metrics {
                        // Lag and failing per entry, as `status` shows them.
                        match status_tables(&loaded.config, &tables).await {
                            Ok(found) => m.standing(&found),
                            Err(e) => tracing::warn!("round {round}: metrics: cannot read where the tables stand: {e}"),
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("round {round}: {e}");
                    worst = exit::FAILED;
                }
            },
            Err(e) => {
                tracing::error!("round {round}: {e:#}");
                worst = exit::FAILED;
            }
        }
        if let Some(m) = &metrics {
            m.round(started.elapsed().as_secs_f64());
        }
        if let Some(sig) = interrupt.signal() {
            return Ok(if sig == 15 { exit::SIGTERM } else { exit::SIGINT });
        }
        if args.rounds > 0 && round >= args.rounds {
            // A bounded run (cron) reports its last round like `run` and `compare` would.
            return Ok(worst);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval.0) => {}
            _ = interrupt.triggered() => {}
        }
        if let Some(sig) = interrupt.signal() {
            return Ok(if sig == 15 { exit::SIGTERM } else { exit::SIGINT });
        }
    }
}

async fn one_table(
    config: &gptransfer_core::config::Config,
    registry: &Registry,
    table: gptransfer_core::config::TableSpec,
    args: &DaemonArgs,
    interrupt: &engine::Interrupt,
    metrics: Option<&Arc<Metrics>>,
) -> i32 {
    let name = format!("{} / {}", table.job, table.display_name());
    let options = RunOptions {
        jobs: Vec::new(),
        tables: Vec::new(),
        until: None,
        parallel: usize::from(args.parallel),
        dry_run: false,
        now: now(),
        stop_on_error: false,
        windows: None,
        reason: None,
    };
    let observer = Arc::new(Observed { reporter: progress::Reporter::new(true), metrics: metrics.cloned() });
    let report = match engine::run(config, registry, vec![table.clone()], &options, observer, interrupt.clone()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{name}: {e}");
            return exit::FAILED;
        }
    };
    let failed = report.failed() > 0;
    let loaded: Vec<Window> = report
        .windows
        .iter()
        .filter(|w| w.status == WindowStatus::Succeeded)
        .filter_map(|w| {
            let (a, b) = w.window.split_once('^')?;
            let p = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok();
            Some(Window { start: p(a)?, end: p(b)? })
        })
        .collect();
    if loaded.is_empty() || interrupt.signal().is_some() {
        return if failed { exit::FAILED } else { exit::OK };
    }
    let windows = BTreeMap::from([(table_key(&table), loaded)]);
    let options = CompareOptions {
        from: None,
        to: None,
        max_keys: super::MAX_ALARM_KEYS,
        windows: Some(windows),
        record_alarms: true,
    };
    // A server that does not answer must not hold up Ctrl+C or SIGTERM: the round ends, and
    // the loop with the signal's code.
    let compared = tokio::select! {
        biased;
        () = interrupt.triggered() => return if failed { exit::FAILED } else { exit::OK },
        compared = compare_tables(config, registry, std::slice::from_ref(&table), &options) => compared,
    };
    match compared {
        Ok(found) => {
            if let Some(m) = metrics {
                m.compared(&found);
            }
            let differing = found.iter().filter(|c| c.differs()).count();
            for c in found.iter().filter(|c| c.error.is_some()) {
                tracing::error!(
                    "{name}: window {} could not be compared: {}",
                    c.window,
                    c.error.as_deref().unwrap_or("")
                );
            }
            if differing > 0 {
                tracing::warn!("{name}: {differing} window(s) differ after loading; alarms raised");
            } else if found.iter().any(|c| c.error.is_some()) {
                tracing::warn!("{name}: the loaded windows that could be compared are equal");
            } else if found.is_empty() {
                // Not compared (compare = "none"): the compare said so.
            } else {
                tracing::info!("{name}: {} window(s) loaded and equal", found.len());
            }
            if failed || found.iter().any(|c| c.error.is_some()) {
                exit::FAILED
            } else if differing > 0 {
                exit::DIFFERENCES
            } else {
                exit::OK
            }
        }
        Err(e) => {
            tracing::error!("{name}: compare failed: {e}");
            exit::FAILED
        }
    }
}
