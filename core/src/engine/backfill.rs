//! The windows of one table in a run: oldest first, up to `width` at once (a backfill in
//! replace, merge or full; append keeps one at a time, its windows committing in order with
//! the cursor), each holding one of the run's `--parallel` slots, shared by all tables.
//!
//! A failed window stops the table from starting windows after it; those already running
//! finish. The cursor moves only over the contiguous prefix of committed windows
//! ([`Frontier`]), so a later window that committed is loaded again by the next run.

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::frontier::Frontier;
use super::retry::run_window_retrying;
use super::run::{WindowReport, WindowStatus};
use super::window_run::TableRun;
use crate::config::Mode;
use crate::window::Window;

/// How many windows of a table in `mode` may run at once with `--parallel parallel`, into a
/// sink that does or does not merge in turn ([`crate::roles::Sink::merges_in_turn`]).
pub(super) fn width(mode: Mode, parallel: usize, merges_in_turn: bool) -> usize {
    match mode {
        // An append window inserts only: run twice it doubles rows, so its windows commit one
        // by one, each with the cursor.
        Mode::Append => 1,
        // Merged out of order, a key found in two windows could keep its older row (or, by
        // delete + insert without a unique index, land twice).
        Mode::Merge if !merges_in_turn => 1,
        Mode::Replace | Mode::Merge | Mode::Full => parallel.max(1),
    }
}

/// What stops the windows of a table.
pub(super) struct Stops<'a> {
    /// The whole run stops (`--stop-on-error` saw a window fail).
    pub all: &'a CancellationToken,
    /// A failed window stops every table (`--stop-on-error`).
    pub on_error: bool,
}

/// Runs `windows` (oldest first) of `run.table`; the report of each, in completion order.
pub(super) async fn run_table_windows(
    run: &TableRun<'_>,
    windows: Vec<Window>,
    width: usize,
    slots: &Semaphore,
    stops: Stops<'_>,
) -> Vec<WindowReport> {
    let frontier = run.frontier;
    let all = stops.all;
    let mut done = Vec::new();
    let mut pending = windows.into_iter().peekable();
    let mut running = FuturesUnordered::new();
    // A window of this table failed: no window after it starts.
    let mut halted = false;
    loop {
        let stopping = run.interrupt.signal().is_some() || all.is_cancelled();
        let may_start = !halted && !stopping && running.len() < width && pending.peek().is_some();
        if !may_start && running.is_empty() {
            break;
        }
        tokio::select! {
            permit = slots.acquire(), if may_start => {
                // Closed never (the semaphore lives as long as the run); if it were, no window
                // would start, and those running still finish.
                let Ok(permit) = permit else {
                    halted = true;
                    continue;
                };
                if run.interrupt.signal().is_some() || all.is_cancelled() {
                    continue;
                }
                let Some(window) = pending.next() else { continue };
                running.push(async move {
                    // A retriable failure is retried here; later windows go on meanwhile, but
                    // the cursor waits for this one.
                    let report = run_window_retrying(run, window, all).await;
                    drop(permit);
                    (window, report)
                });
            }
            Some((window, report)) = running.next(), if !running.is_empty() => {
                frontier.ended(&window);
                run.observer.window_finished(&report);
                if report.status == WindowStatus::Succeeded {
                    // Also when the reply to COMMIT was lost but history proves the commit.
                    frontier.committed(&window);
                    move_cursor(run, frontier).await;
                } else {
                    halted = true;
                    if stops.on_error {
                        all.cancel();
                    }
                }
                done.push(report);
            }
        }
    }
    let beyond = frontier.beyond_hole();
    if beyond > 0 {
        tracing::warn!(
            job = %run.table.job,
            table = %run.table.display_name(),
            "{beyond} window(s) committed after a window that did not: the cursor stays at the first window not \
             loaded, and the next run loads them again"
        );
    }
    done
}

/// Moves the stored cursor over the committed prefix, when the windows' own transactions did
/// not. A failure only leaves it behind (the next run re-loads from there): warned, not fatal.
async fn move_cursor(run: &TableRun<'_>, frontier: &Frontier) {
    let Some(end) = frontier.behind() else { return };
    let state = run.state;
    let t = run.table;
    let moved =
        state.within("moving the cursor", state.advance_cursor(state.client(), &t.job, &t.cursor_key(), end)).await;
    match moved {
        Ok(()) => frontier.stored(end),
        Err(e) => tracing::warn!(
            job = %t.job,
            table = %t.display_name(),
            "the cursor could not be moved to {end} ({}); the windows are committed and the next run loads them \
             again",
            e.message
        ),
    }
}
