//! Progress for people: a bar per window on a terminal (rows, MB/s, ETA from the previous
//! window's size), one line per finished window otherwise. A backfill runs several windows of
//! one table at once: each bar names its window and its place in the table's plan (`3/30`).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gptransfer_core::config::TableSpec;
use gptransfer_core::engine::{Observer, WindowReport, WindowStatus};
use gptransfer_core::roles::Counters;
use gptransfer_core::window::Window;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output;

pub struct Reporter {
    human: bool,
    bars: Option<MultiProgress>,
    active: Mutex<Vec<(String, ProgressBar, tokio::task::JoinHandle<()>)>>,
    /// Rows of each table's previous window: the expected size of its next one, for the ETA.
    last_rows: Mutex<std::collections::HashMap<String, u64>>,
    /// The planned window ids of each table, for a bar's place in its plan.
    planned: Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl Reporter {
    pub fn new(human: bool) -> Self {
        let bars = (human && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter {
            human,
            bars,
            active: Mutex::new(Vec::new()),
            last_rows: Mutex::new(Default::default()),
            planned: Mutex::new(Default::default()),
        }
    }

    pub fn finish(&self) {
        if let Ok(mut active) = self.active.lock() {
            for (_, bar, task) in active.drain(..) {
                task.abort();
                bar.finish_and_clear();
            }
        }
    }

    fn key(table: &str, window: &str) -> String {
        format!("{table} {window}")
    }

    /// Removes the bar of a window whose attempt ended.
    fn clear(&self, r: &WindowReport) {
        if let Ok(mut active) = self.active.lock() {
            let key = Self::key(&r.table, &r.window);
            if let Some(pos) = active.iter().position(|(k, _, _)| *k == key) {
                let (_, bar, task) = active.remove(pos);
                task.abort();
                bar.finish_and_clear();
            }
        }
    }
}

impl Observer for Reporter {
    fn planned(&self, table: &TableSpec, windows: &[Window]) {
        if let Ok(mut m) = self.planned.lock() {
            m.insert(table.display_name(), windows.iter().map(Window::id).collect());
        }
    }

    fn window_started(&self, table: &TableSpec, window: &Window, counters: Arc<Counters>) {
        let Some(bars) = &self.bars else { return };
        let expected = self.last_rows.lock().ok().and_then(|m| m.get(&table.display_name()).copied());
        let bar = match expected {
            Some(rows) if rows > 0 => {
                let bar = bars.add(ProgressBar::new(rows));
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} [{bar:25}] {msg} eta {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            }
            _ => {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed_precise}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar
            }
        };
        let id = window.id();
        let place = self.planned.lock().ok().and_then(|m| {
            let ids = m.get(&table.display_name())?;
            let i = ids.iter().position(|x| *x == id)?;
            (ids.len() > 1).then(|| format!(" {}/{}", i + 1, ids.len()))
        });
        bar.set_prefix(format!("{} {id}{}", table.display_name(), place.unwrap_or_default()));
        bar.enable_steady_tick(Duration::from_millis(120));
        let b = bar.clone();
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let (rows, bytes) = counters.get();
                b.set_position(rows);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!("{rows} rows, {}, {:.1} MB/s", output::bytes(bytes), bytes as f64 / secs / 1e6));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        if let Ok(mut active) = self.active.lock() {
            active.push((Self::key(&table.display_name(), &window.id()), bar, task));
        }
    }

    fn window_retrying(&self, r: &WindowReport) {
        // The engine's warning says it; the next attempt draws a bar of its own.
        self.clear(r);
    }

    fn window_finished(&self, r: &WindowReport) {
        if r.status == WindowStatus::Succeeded {
            if let Ok(mut m) = self.last_rows.lock() {
                m.insert(r.table.clone(), r.rows_read);
            }
        }
        self.clear(r);
        if !self.human {
            return;
        }
        let line = match r.status {
            WindowStatus::Succeeded => format!(
                "ok     {} / {} {}: {} rows, {} in {:.2}s",
                r.job,
                r.table,
                r.window,
                r.rows_written,
                output::bytes(r.bytes),
                r.elapsed_seconds
            ),
            WindowStatus::Failed => format!(
                "FAILED {} / {} {}: {}",
                r.job,
                r.table,
                r.window,
                r.error.as_deref().unwrap_or("unknown error")
            ),
            WindowStatus::Planned => return,
        };
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(line);
            }
            None => println!("{line}"),
        }
    }
}
