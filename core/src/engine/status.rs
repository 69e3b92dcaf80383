//! `status`: where each table entry stands — cursor, lag, due windows, the last success and
//! failure, active alarms — from the state and each source's clock; moves nothing.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::run::plan_tables;
use crate::config::{Config, TableSpec};
use crate::error::Error;
use crate::state::{EntryHistory, State};

/// One entry's standing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableStatus {
    /// Job.
    pub job: String,
    /// The entry: its source table, and ` -> target` when the target differs.
    pub table: String,
    /// Target table.
    pub target_table: String,
    /// Stored cursor (None: never loaded).
    pub cursor: Option<NaiveDateTime>,
    /// Where windows may end now: `min(now - lag, end, final_end)` in the table's zone.
    pub limit: NaiveDateTime,
    /// Seconds from the cursor (or the start) to `limit`; 0 when caught up.
    pub lag_seconds: i64,
    /// Windows due now (at most a run's worth; `more` says there are others).
    pub due_windows: usize,
    /// More windows are due than a run loads.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    /// The newest attempt failed: the entry stops there until it is fixed.
    pub failing: bool,
    /// When the last window landed.
    pub last_success: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure: Option<LastFailure>,
    /// Alarms compare raised that are not reset.
    pub active_alarms: i64,
}

/// A failed attempt, shortly.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastFailure {
    /// When it ended.
    pub at: Option<DateTime<Utc>>,
    /// Its window.
    pub window: String,
    /// The first line of its error.
    pub error: String,
}

/// The standing of every selected entry.
pub async fn status_tables(config: &Config, tables: &[TableSpec]) -> Result<Vec<TableStatus>, Error> {
    let planned = plan_tables(config, tables, None).await?;
    let handle = super::run::handles(config, [config.state.cluster.clone()])?
        .remove(&config.state.cluster)
        .ok_or_else(|| Error::State { cluster: config.state.cluster.clone(), message: "not configured".into() })?;
    let application = super::run::application_name();
    let state = State::open_existing(handle, &config.state.schema, &application).await?;
    let mut out = Vec::new();
    for (t, p) in tables.iter().zip(planned) {
        let history = match &state {
            Some(s) => s.entry_history(t).await?,
            None => EntryHistory::default(),
        };
        let from = p.cursor.unwrap_or(t.start);
        out.push(TableStatus {
            job: t.job.clone(),
            table: t.display_name(),
            target_table: t.target_table.to_string(),
            cursor: p.cursor,
            limit: p.limit,
            lag_seconds: (p.limit - from).num_seconds().max(0),
            due_windows: p.windows.len(),
            more: p.more,
            failing: history.failing,
            last_success: history.last_success,
            last_failure: history.last_failure.map(|(at, window, error)| LastFailure {
                at,
                window,
                error: error.lines().next().unwrap_or_default().to_string(),
            }),
            active_alarms: history.active_alarms,
        });
    }
    Ok(out)
}
