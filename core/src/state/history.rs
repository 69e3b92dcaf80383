//! One history row per window attempt: written `running` before any data moves, finished
//! `succeeded` in the load's own transaction, or `failed` after the rollback.

use chrono::{DateTime, NaiveDateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::{Bounded, State};
use crate::config::TableSpec;
use crate::error::Error;
use crate::roles::Delivered;
use crate::window::Window;

const TEXT: Type = Type::TEXT;
const INT4: Type = Type::INT4;
const INT8: Type = Type::INT8;
const FLOAT8: Type = Type::FLOAT8;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Landed.
    Succeeded,
    /// Rolled back.
    Failed,
}

/// A history row as `gptransfer history` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    /// Row id.
    pub id: i64,
    /// Job.
    pub job: String,
    /// Source table.
    pub table: String,
    /// Target table.
    pub target_table: String,
    /// `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`.
    pub window_id: String,
    /// Window start.
    pub window_start: NaiveDateTime,
    /// Window end.
    pub window_end: NaiveDateTime,
    /// Mode.
    pub mode: String,
    /// Plugin chain.
    pub chain: String,
    /// Rows read from the source.
    pub rows_read: Option<i64>,
    /// Rows written to the target.
    pub rows_written: Option<i64>,
    /// Of those, rows inserted, when the sink says (gpload's summary).
    pub rows_inserted: Option<i64>,
    /// Of those, rows updated, when the sink says (gpload merge/update).
    pub rows_updated: Option<i64>,
    /// Rows the loader rejected as badly formatted, when the sink says (gpload).
    pub format_errors: Option<i64>,
    /// Rows of a merge batch that a later row with the same key replaced (the last row of the
    /// batch wins): rows read = rows written + duplicates folded.
    pub duplicates_folded: Option<i64>,
    /// Bytes carried.
    pub bytes: Option<i64>,
    /// Start of the attempt.
    pub started_at: DateTime<Utc>,
    /// End of the attempt.
    pub finished_at: Option<DateTime<Utc>>,
    /// Elapsed seconds, two decimals.
    pub elapsed_seconds: Option<String>,
    /// running, succeeded, failed; `cursor set` for a cursor moved by hand.
    pub status: String,
    /// The error of a failed attempt.
    pub error: Option<String>,
    /// 1 for the first attempt of this window.
    pub attempt: i32,
    /// Host that ran it.
    pub host: String,
    /// Process id that ran it.
    pub pid: i32,
    /// Why it ran when not by a plain run: `repair`, `reload`; for a `cursor set` row, the
    /// cursor it replaced.
    pub reason: Option<String>,
}

/// Which rows `history` lists.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only this job.
    pub job: Option<String>,
    /// Only this table (source name).
    pub table: Option<String>,
    /// Only this target table (one entry of a source loaded into several targets).
    pub target_table: Option<String>,
    /// Only failed attempts.
    pub failed_only: bool,
    /// At most this many, newest first.
    pub limit: i64,
    /// Only attempts started at or after this instant (UTC).
    pub since: Option<NaiveDateTime>,
}

impl State {
    /// Records the start of an attempt; returns the row id.
    pub async fn history_start(
        &self,
        table: &TableSpec,
        window: &Window,
        chain: &str,
        host: &str,
        reason: Option<&str>,
    ) -> Result<i64, Error> {
        let t = self.table("history");
        let name = table.source_table.to_string();
        let target = table.target_table.to_string();
        let window_id = window.id();
        // The id is drawn first and inserted, not read back with RETURNING: on Greenplum 6 an
        // INSERT … RETURNING into a distributed table takes ~280 ms (~20 ms without), which
        // dominated every small window with the state on GP6. pg_get_serial_sequence exists
        // from 8.0 on. The id and the attempt's number are asked for at once (pipelined), and
        // every statement goes with its parameter types: one round trip each, nothing to
        // prepare.
        let count = format!(
            "SELECT count(*) FROM {t} WHERE job = $1 AND table_name = $2 AND target_table = $3 AND window_id = $4"
        );
        let (attempt, id) = futures_util::future::try_join(
            self.client()
                .query_typed_one(&count, &[(&table.job, TEXT), (&name, TEXT), (&target, TEXT), (&window_id, TEXT)]),
            self.client().query_typed_one("SELECT nextval(pg_get_serial_sequence($1, 'id'))", &[(&t, TEXT)]),
        )
        .bounded(self, "drawing a history id")
        .await?;
        let id: i64 = id.get(0);
        let attempt: i64 = attempt.get(0);
        let attempt = i32::try_from(attempt + 1).unwrap_or(i32::MAX);
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let sql = format!(
            "INSERT INTO {t} (id, job, table_name, target_table, window_id, window_start, window_end, mode, chain, \
             started_at, status, attempt, host, pid, reason) \
             VALUES ($1, $2, $3, $4, $5, $6::text::timestamp, $7::text::timestamp, $8, $9, now(), 'running', $10, $11, $12, $13)"
        );
        self.client()
            .execute_typed(
                &sql,
                &[
                    (&id, INT8),
                    (&table.job, TEXT),
                    (&name, TEXT),
                    (&target, TEXT),
                    (&window_id, TEXT),
                    (&super::ts_text(window.start), TEXT),
                    (&super::ts_text(window.end), TEXT),
                    (&table.mode.as_str(), TEXT),
                    (&chain, TEXT),
                    (&attempt, INT4),
                    (&host, TEXT),
                    (&pid, INT4),
                    (&reason, TEXT),
                ],
            )
            .bounded(self, "writing history")
            .await?;
        Ok(id)
    }

    /// Finishes an attempt on `client` (the sink's transaction for a success when the state
    /// lives on the target, else the state session). Only a `running` row is finished: a
    /// failure recorded after a commit whose reply was lost must not overwrite the `succeeded`
    /// that commit wrote. Returns the rows updated (0: the row was no longer running).
    pub async fn history_finish(
        &self,
        client: &Client,
        id: i64,
        outcome: Outcome,
        delivered: Delivered,
        elapsed_seconds: f64,
        error: Option<&str>,
    ) -> Result<u64, tokio_postgres::Error> {
        let status = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        };
        let sql = format!(
            "UPDATE {} SET rows_read = $2, rows_written = $3, bytes = $4, finished_at = clock_timestamp(), \
             elapsed_seconds = round($5::float8::numeric, 2), status = $6, error = $7, \
             rows_inserted = $8, rows_updated = $9, format_errors = $10, duplicates_folded = $11 \
             WHERE id = $1 AND status = 'running'",
            self.table("history")
        );
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // With its parameter types: one round trip, no statement to prepare.
        client
            .execute_typed(
                &sql,
                &[
                    (&id, INT8),
                    (&as_i64(delivered.rows_read), INT8),
                    (&as_i64(delivered.rows_written), INT8),
                    (&as_i64(delivered.bytes), INT8),
                    (&elapsed_seconds, FLOAT8),
                    (&status, TEXT),
                    (&error, TEXT),
                    (&delivered.detail.inserted.map(as_i64), INT8),
                    (&delivered.detail.updated.map(as_i64), INT8),
                    (&delivered.detail.format_errors.map(as_i64), INT8),
                    (&delivered.detail.duplicates.map(as_i64), INT8),
                ],
            )
            .await
    }

    /// The status of one attempt (`running`, `succeeded`, `failed`), None when there is no such row.
    pub async fn history_status(&self, id: i64) -> Result<Option<String>, Error> {
        let sql = format!("SELECT status FROM {} WHERE id = $1", self.table("history"));
        let row = self.client().query_opt(&sql, &[&id]).bounded(self, "reading history").await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// History rows, newest first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryRow>, Error> {
        let sql = format!(
            "SELECT id, job, table_name, target_table, window_id, window_start::text, window_end::text, mode, chain, \
             rows_read, rows_written, bytes, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
             to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), elapsed_seconds::text, status, error, \
             attempt, host, pid, rows_inserted, rows_updated, format_errors, duplicates_folded, reason FROM {} \
             WHERE ($1::text IS NULL OR job = $1) AND ($2::text IS NULL OR table_name = $2) \
             AND (NOT $3 OR status = 'failed') \
             AND ($5::text IS NULL OR started_at >= $5::text::timestamp AT TIME ZONE 'UTC') \
             AND ($6::text IS NULL OR target_table = $6) ORDER BY id DESC LIMIT $4",
            self.table("history")
        );
        let rows = self
            .client()
            .query(
                &sql,
                &[
                    &filter.job,
                    &filter.table,
                    &filter.failed_only,
                    &filter.limit,
                    &filter.since.map(super::ts_text),
                    &filter.target_table,
                ],
            )
            .bounded(self, "reading history")
            .await?;
        // Timestamps as text (see `ts_text`); the instants in UTC.
        let utc = |text: Option<String>, what: &str| -> Result<Option<DateTime<Utc>>, Error> {
            text.map(|t| self.timestamp(t, what).map(|t| t.and_utc())).transpose()
        };
        rows.iter()
            .map(|r| -> Result<HistoryRow, Error> {
                Ok(HistoryRow {
                    id: r.get(0),
                    job: r.get(1),
                    table: r.get(2),
                    target_table: r.get(3),
                    window_id: r.get(4),
                    window_start: self.timestamp(r.get(5), "history's window_start")?,
                    window_end: self.timestamp(r.get(6), "history's window_end")?,
                    mode: r.get(7),
                    chain: r.get(8),
                    rows_read: r.get(9),
                    rows_written: r.get(10),
                    rows_inserted: r.get(20),
                    rows_updated: r.get(21),
                    format_errors: r.get(22),
                    duplicates_folded: r.get(23),
                    bytes: r.get(11),
                    started_at: utc(r.get(12), "history's started_at")?.unwrap_or_default(),
                    finished_at: utc(r.get(13), "history's finished_at")?,
                    elapsed_seconds: r.get(14),
                    status: r.get(15),
                    error: r.get(16),
                    attempt: r.get(17),
                    host: r.get(18),
                    pid: r.get(19),
                    reason: r.get(24),
                })
            })
            .collect()
    }

    /// What history and the alarms say of one entry, for `status`.
    pub async fn entry_history(&self, t: &TableSpec) -> Result<EntryHistory, Error> {
        let h = self.table("history");
        let source = t.source_table.to_string();
        let target = t.target_table.to_string();
        let utc = "to_char(coalesce(finished_at, started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";
        let entry = "job = $1 AND table_name = $2 AND target_table = $3";
        let latest = format!(
            "SELECT status FROM {h} WHERE {entry} AND status IN ('succeeded', 'failed') ORDER BY id DESC LIMIT 1"
        );
        let success = format!("SELECT {utc} FROM {h} WHERE {entry} AND status = 'succeeded' ORDER BY id DESC LIMIT 1");
        let failure = format!(
            "SELECT {utc}, window_id, coalesce(error, '') FROM {h} WHERE {entry} AND status = 'failed' \
             ORDER BY id DESC LIMIT 1"
        );
        let alarms = format!(
            "SELECT count(*) FROM {} WHERE data_name = 'GPTRANSFER' AND diff > 0 AND job = $1 AND table_name = $2",
            self.table("alarms")
        );
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&t.job, &source, &target];
        let status: Option<String> =
            self.client().query_opt(&latest, &args).bounded(self, "reading history").await?.map(|r| r.get(0));
        let at = |text: Option<String>| -> Result<Option<DateTime<Utc>>, Error> {
            text.map(|t| self.timestamp(t, "history's finished_at").map(|t| t.and_utc())).transpose()
        };
        let last_success = match self.client().query_opt(&success, &args).bounded(self, "reading history").await? {
            Some(r) => at(r.get(0))?,
            None => None,
        };
        let last_failure = match self.client().query_opt(&failure, &args).bounded(self, "reading history").await? {
            Some(r) => Some((at(r.get(0))?, r.get(1), r.get(2))),
            None => None,
        };
        let active_alarms: i64 = self
            .client()
            .query_one(&alarms, &[&t.job, &t.display_name()])
            .bounded(self, "reading alarms")
            .await?
            .get(0);
        Ok(EntryHistory { failing: status.as_deref() == Some("failed"), last_success, last_failure, active_alarms })
    }
}

/// One entry's history and alarms, summed up ([`State::entry_history`]).
#[derive(Debug, Clone, Default)]
pub struct EntryHistory {
    /// Its newest attempt failed.
    pub failing: bool,
    /// When its last window landed.
    pub last_success: Option<DateTime<Utc>>,
    /// Its last failed attempt: when, which window, the error.
    pub last_failure: Option<(Option<DateTime<Utc>>, String, String)>,
    /// Alarms not reset.
    pub active_alarms: i64,
}

/// An alarm compare raised and nobody reset yet.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActiveAlarm {
    /// Job.
    pub job: String,
    /// The entry.
    pub table: String,
    /// The window compared.
    pub window: String,
    /// `missing`, `extra`, `changed`, a count difference, or `error`.
    pub kind: String,
    /// The key (`id=10`) or what the alarm says.
    pub key: Option<String>,
    /// When compare found it (UTC).
    pub detected_at: DateTime<Utc>,
}

impl State {
    /// Active alarms, newest first, at most `limit`.
    pub async fn active_alarms(&self, limit: i64) -> Result<Vec<ActiveAlarm>, Error> {
        let sql = format!(
            "SELECT job, table_name, window_id, kind, key, \
             to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM {} \
             WHERE data_name = 'GPTRANSFER' AND diff > 0 ORDER BY id DESC LIMIT $1",
            self.table("alarms")
        );
        let rows = self.client().query(&sql, &[&limit]).bounded(self, "reading alarms").await?;
        rows.iter()
            .map(|r| {
                Ok(ActiveAlarm {
                    job: r.get(0),
                    table: r.get(1),
                    window: r.get(2),
                    kind: r.get(3),
                    key: r.get(4),
                    detected_at: self.timestamp(r.get(5), "alarms' detected_at")?.and_utc(),
                })
            })
            .collect()
    }
}
