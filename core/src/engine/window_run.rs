//! One window, atomically: history `running` → sink begins its transaction → source streams
//! through the transport into the sink → counts checked → history `succeeded` and cursor
//! advanced in the sink's transaction (when state lives on the target and every earlier window
//! of the run has committed, see [`Frontier`]) → commit. Any error, a signal, or a dropped
//! connection rolls the whole window back.

use std::sync::Arc;
use std::time::Instant;

use super::check::TableCheck;
use super::frontier::Frontier;
use super::interrupt::Interrupt;
use super::run::{Observer, WindowReport, WindowStatus};
use crate::cluster::ClusterHandle;
use crate::config::TableSpec;
use crate::error::RoleError;
use crate::roles::{
    negotiate_format, CopyFormat, Counters, Delivered, LoadDetail, Sink, SinkWindow, Source, Transport, Turn, WindowCtx,
};
use crate::state::{Outcome, State};
use crate::window::Window;

/// The built plugins of a table's chain.
pub(super) struct WindowPlugins {
    pub source: Arc<dyn Source>,
    pub transport: Arc<dyn Transport>,
    pub sink: Arc<dyn Sink>,
    /// The COPY format of the table's windows, negotiated once before any window runs.
    pub format: CopyFormat,
}

impl WindowPlugins {
    /// The COPY format the three plugins agree on for this table (see [`negotiate_format`]).
    pub fn negotiate(&self, table: &TableSpec, check: &TableCheck) -> Result<CopyFormat, String> {
        negotiate_format(
            &self.source.formats(),
            &self.transport.formats(),
            &self.sink.formats(table.mode),
            check.binary,
        )
    }
}

enum Failure {
    Role(RoleError),
    Interrupted(i32),
}

/// What every window of one table is run with.
pub(super) struct TableRun<'a> {
    pub state: &'a State,
    pub table: &'a Arc<TableSpec>,
    pub check: &'a TableCheck,
    pub plugins: &'a WindowPlugins,
    pub source: &'a ClusterHandle,
    pub target: &'a ClusterHandle,
    pub application: &'a str,
    pub observer: &'a dyn Observer,
    pub interrupt: &'a Interrupt,
    /// Why the windows run when not by a plain run (`repair`, `reload`): kept in history.
    pub reason: Option<&'a str>,
    /// The table's committed windows of this run: how far its cursor may move.
    pub frontier: &'a Arc<Frontier>,
}

/// Which attempt of a window this is: the `number`-th of at most `of`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    pub number: u32,
    pub of: u32,
}

/// How one attempt of a window ended.
pub(super) struct Attempted {
    pub report: WindowReport,
    /// It failed before its commit began (nothing of it is visible), in a way another attempt
    /// may cure (a dropped connection, a timeout), and attempts are left: the caller waits and
    /// tries again. Its failure was recorded in history but not yet reported as final.
    pub retry: bool,
}

/// One attempt of `window`: its own history row, its own transaction on the target.
pub(super) async fn run_window(run: &TableRun<'_>, window: Window, attempt: Attempt) -> Attempted {
    let TableRun { state, table, check, plugins, source, target, application, observer, interrupt, reason, frontier } =
        *run;
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    let mut report = WindowReport {
        job: table.job.clone(),
        table: table.display_name(),
        target_table: table.target_table.to_string(),
        window: window.id(),
        status: WindowStatus::Failed,
        rows_read: 0,
        rows_written: 0,
        bytes: 0,
        elapsed_seconds: 0.0,
        error: None,
    };
    let format = plugins.format;
    let chain = match format {
        CopyFormat::Text => table.chain(),
        f => format!("{} ({})", table.chain(), f.name()),
    };
    let history_id = match state.history_start(table, &window, &chain, &crate::host_name(), reason).await {
        Ok(id) => id,
        Err(e) => {
            // Not retried: the state session holds the job's lock, and a state that cannot be
            // written is not a fault of this window.
            report.error = Some(format!("cannot record the window in history: {e}"));
            return Attempted { report, retry: false };
        }
    };
    observer.window_started(table, &window, counters.clone());
    let ctx = WindowCtx {
        table: table.clone(),
        window,
        columns: Arc::new(check.columns.clone()),
        column_types: Arc::new(check.column_types.clone()),
        described: Arc::new(check.described.clone()),
        target_described: Arc::new(check.target_columns.clone()),
        condition_type: check.condition_type.clone(),
        source: source.clone(),
        target: target.clone(),
        counters: counters.clone(),
        application: application.to_string(),
        format,
        turn: Turn::new(frontier.clone(), window),
    };
    let state_on_target = state.cluster.name == target.name;

    // Loading can be interrupted at any await; once the rows are in and counted, the
    // commit (with history and cursor) runs to its end, so a signal can never leave a
    // committed window recorded as failed.
    let load = async {
        let mut sink = plugins.sink.begin(&ctx).await.map_err(|e| (e, LoadDetail::default()))?;
        let result = async {
            // A transport that moves the window itself (segment to segment) gets the source and
            // the open sink window; any other carries the source's bytes.
            let moved = plugins.transport.move_window(&ctx, plugins.source.as_ref(), sink.as_mut()).await;
            let mut delivered = match moved {
                Some(result) => result?,
                None => {
                    let rows = plugins.source.open(&ctx).await?;
                    plugins.transport.deliver(&ctx, rows, sink.as_mut()).await?
                }
            };
            delivered.detail = sink.detail();
            // A merge folds a batch's duplicate keys into their last row: those rows were read
            // but, truly, not written.
            let folded = delivered.detail.duplicates.unwrap_or(0);
            if delivered.rows_read != delivered.rows_written + folded {
                let folded = if folded > 0 { format!(" (+ {folded} duplicate keys folded)") } else { String::new() };
                return Err(RoleError::new(format!(
                    "{} rows read from the source but {} written to the target{folded}; the window was rolled back",
                    delivered.rows_read, delivered.rows_written
                )));
            }
            Ok(delivered)
        }
        .await;
        match result {
            Ok(d) => Ok((sink, d)),
            Err(e) => {
                // What the loader reported (gpload's format errors) goes into the failed row too.
                let detail = sink.detail();
                sink.abort().await;
                Err((e, detail))
            }
        }
    };
    let loaded = tokio::select! {
        r = load => r.map_err(|(e, detail)| (Failure::Role(e), detail)),
        _ = interrupt.triggered() => {
            Err((Failure::Interrupted(interrupt.signal().unwrap_or(2)), LoadDetail::default()))
        }
    };
    // A failure while committing leaves what was delivered: the commit may have gone through.
    let outcome = match loaded {
        Ok((sink, delivered)) => {
            finish(state, table, history_id, window, delivered, started, sink, state_on_target, frontier)
                .await
                .map(|()| delivered)
                .map_err(|e| (Failure::Role(e), delivered.detail, Some(delivered)))
        }
        Err((f, detail)) => Err((f, detail, None)),
    };
    let elapsed = started.elapsed().as_secs_f64();
    report.elapsed_seconds = (elapsed * 100.0).round() / 100.0;
    match outcome {
        Ok(d) => {
            report.status = WindowStatus::Succeeded;
            report.rows_read = d.rows_read;
            report.rows_written = d.rows_written;
            report.bytes = d.bytes;
        }
        Err((f, detail, committing)) => {
            let (rows, bytes) = counters.get();
            report.rows_read = rows;
            report.bytes = bytes;
            // Only a failure before the commit began: one during or after it may have landed.
            let mut retry = committing.is_none()
                && matches!(&f, Failure::Role(e) if e.retriable)
                && attempt.number < attempt.of
                && interrupt.signal().is_none();
            let mut message = match f {
                Failure::Role(e) => e.message,
                Failure::Interrupted(sig) => format!(
                    "interrupted by {}; the window was rolled back",
                    if sig == 15 { "SIGTERM" } else { "SIGINT" }
                ),
            };
            if !retry && attempt.number > 1 {
                message.push_str(&format!(" ({} attempts made)", attempt.number));
            }
            let partial = Delivered { rows_read: rows, bytes, rows_written: 0, detail };
            // Recorded over a `running` row only: one the commit made `succeeded` is left as it
            // is, and proves the window landed.
            let recorded = state
                .within(
                    "recording the failure",
                    state.history_finish(state.client(), history_id, Outcome::Failed, partial, elapsed, Some(&message)),
                )
                .await;
            // Another attempt only while this run still owns the window: the state session
            // answered (it holds the job's lock) and the attempt's row was still its own.
            if retry && !matches!(recorded, Ok(n) if n > 0) {
                retry = false;
                if attempt.number > 1 {
                    message.push_str(&format!(" ({} attempts made)", attempt.number));
                }
            }
            match recorded {
                Ok(0) => {
                    if let Some(delivered) = committing {
                        if landed(state, history_id).await {
                            tracing::warn!(
                                job = %table.job, table = %table.display_name(), window = %window.id(),
                                "{message}; but the window is committed: its history row, written with its rows, \
                                 says succeeded (the reply to COMMIT was lost)"
                            );
                            report.status = WindowStatus::Succeeded;
                            report.rows_read = delivered.rows_read;
                            report.rows_written = delivered.rows_written;
                            report.bytes = delivered.bytes;
                            return Attempted { report, retry: false };
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("could not record the failure in history: {}", e.message),
            }
            if !retry {
                tracing::error!(
                    job = %table.job, table = %table.source_table, window = %window.id(),
                    "window failed: {message}"
                );
            }
            report.error = Some(message);
            return Attempted { report, retry };
        }
    }
    Attempted { report, retry: false }
}

/// Whether the attempt's history row says `succeeded`: it is written in the window's own
/// transaction (state on the target) or after the window's commit (elsewhere), so it is there
/// only when the rows are, whatever the client heard of the commit.
async fn landed(state: &State, history_id: i64) -> bool {
    match state.history_status(history_id).await {
        Ok(status) => status.as_deref() == Some("succeeded"),
        Err(e) => {
            tracing::warn!("could not read back history row {history_id}: {e}");
            false
        }
    }
}

/// History and cursor, then commit: inside the load's transaction when the state lives on
/// the target; else right after the commit (a crash between the two only re-runs the window,
/// which replace and merge make harmless). The cursor moves in the window's transaction only
/// when every earlier window of the run has committed; otherwise the run moves it over the
/// committed prefix after the commit ([`Frontier`]).
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &State,
    table: &TableSpec,
    history_id: i64,
    window: Window,
    delivered: Delivered,
    started: Instant,
    sink: Box<dyn SinkWindow>,
    state_on_target: bool,
    frontier: &Frontier,
) -> Result<(), RoleError> {
    let elapsed = started.elapsed().as_secs_f64();
    let name = table.cursor_key();
    // Bounded like every statement: the state's read_timeout is the target's here.
    let what = "recording the window in state";
    match sink.transaction() {
        Some(tx) if state_on_target => {
            // The cursor moves here only when every earlier window of the run has committed.
            let next = frontier.is_next(&window);
            // Both in flight at once on the transaction (pipelined): one round trip for the two.
            // A history row no longer running is what to report, whatever the cursor's
            // statement met meanwhile (the run that closed the row may have written the cursor).
            let finished = state
                .within(what, async {
                    let advance = async {
                        if next {
                            state.advance_cursor(tx, &table.job, &name, window.end).await
                        } else {
                            Ok(())
                        }
                    };
                    let (finished, cursor) = futures_util::future::join(
                        state.history_finish(tx, history_id, Outcome::Succeeded, delivered, elapsed, None),
                        advance,
                    )
                    .await;
                    match finished? {
                        0 => Ok(0),
                        n => cursor.map(|()| n),
                    }
                })
                .await?;
            if finished == 0 {
                return Err(RoleError::new(format!(
                    "history row {history_id} of this attempt is no longer running (closed by another process?); \
                     the window was rolled back"
                )));
            }
            sink.commit().await?;
            frontier.committed(&window);
            if next {
                frontier.stored(window.end);
            }
            Ok(())
        }
        _ => {
            sink.commit().await?;
            frontier.committed(&window);
            state
                .within(
                    what,
                    state.history_finish(state.client(), history_id, Outcome::Succeeded, delivered, elapsed, None),
                )
                .await
                .map(|_| ())
        }
    }
}
