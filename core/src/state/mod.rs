//! The tool's own tables: history (one row per window attempt), cursors (per job and table),
//! and the advisory lock per job. DDL and queries are valid from 8.2 (GP4) on.

mod alarms;
mod history;
mod lock;
mod schema;

pub use alarms::AlarmStatus;
pub use history::{ActiveAlarm, EntryHistory, HistoryFilter, HistoryRow, Outcome};
pub use lock::JobLock;

use chrono::NaiveDateTime;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::cluster::{ClusterHandle, Session};
use crate::config::TableSpec;
use crate::dialect::quote_ident;
use crate::error::{pg_message, Error};

/// The state schema on its cluster.
pub struct State {
    /// The cluster holding it.
    pub cluster: ClusterHandle,
    /// A session of its own (autocommit), also holding the job locks.
    pub session: Session,
    schema: String,
}

/// The state session: every statement on it ends within `read_timeout`, on the server
/// (statement_timeout) and on the client ([`Bounded`]: a network that stops answering is not
/// seen by the server's timeout, and keepalives are answered by anything in between), so
/// bookkeeping can never hang a run.
async fn connect(cluster: &ClusterHandle, application: &str) -> Result<Session, Error> {
    let session = cluster.connect(application, None).await?;
    let ms = session.read_timeout.as_millis().min(i32::MAX as u128);
    crate::cluster::timed(session.read_timeout, session.client.batch_execute(&format!("SET statement_timeout = {ms}")))
        .await
        .map_err(|e| cluster.error(format!("cannot set statement_timeout: {}", e.message), None))?;
    Ok(session)
}

/// A statement on the state session, bounded by its `read_timeout` and its error in words.
pub(crate) trait Bounded<T>: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Sized {
    async fn bounded(self, state: &State, what: &str) -> Result<T, Error> {
        match tokio::time::timeout(state.session.read_timeout, self).await {
            Ok(result) => result.map_err(|e| state.error(what, &e)),
            Err(_) => {
                state.session.close();
                Err(Error::State { cluster: state.cluster.name.clone(), message: state.stalled(what) })
            }
        }
    }
}

impl<T, F: std::future::Future<Output = Result<T, tokio_postgres::Error>>> Bounded<T> for F {}

impl State {
    /// Connects and creates or migrates the schema.
    pub async fn open(cluster: ClusterHandle, schema: &str, application: &str) -> Result<State, Error> {
        let session = connect(&cluster, application).await?;
        let state = State { cluster, session, schema: schema.to_string() };
        schema::migrate(&state).await?;
        Ok(state)
    }

    /// Connects without creating a schema that is not there (read-only commands); one made by
    /// an older gptransfer is brought to this version, so its reads find every column.
    pub async fn open_existing(
        cluster: ClusterHandle,
        schema: &str,
        application: &str,
    ) -> Result<Option<State>, Error> {
        let session = connect(&cluster, application).await?;
        let state = State { cluster, session, schema: schema.to_string() };
        if !schema::exists(&state).await? {
            return Ok(None);
        }
        schema::migrate(&state).await?;
        Ok(Some(state))
    }

    /// `"schema".name`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(name))
    }

    /// The client of the state session.
    pub fn client(&self) -> &Client {
        &self.session.client
    }

    /// What a statement that got no answer within `read_timeout` says.
    pub(crate) fn stalled(&self, what: &str) -> String {
        format!("{what}: no answer from the server within {:?} (read_timeout)", self.session.read_timeout)
    }

    /// Runs `fut` (a statement on the state session or on the window's own transaction)
    /// within `read_timeout`: a timeout is reported as a connection error would be.
    pub async fn within<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, crate::error::RoleError> {
        // Not the state session's own `timed`: `fut` may run on the window's transaction, whose
        // failure closes that session; the state session stays for recording it.
        crate::cluster::timed(self.session.read_timeout, fut)
            .await
            .map_err(|e| crate::error::RoleError { message: format!("{what}: {}", e.message), ..e })
    }

    pub(crate) fn error(&self, what: &str, e: &tokio_postgres::Error) -> Error {
        Error::State { cluster: self.cluster.name.clone(), message: format!("{what}: {}", pg_message(e)) }
    }

    /// The cursor of a table: the end of its last loaded window.
    pub async fn cursor(&self, job: &str, table: &str) -> Result<Option<NaiveDateTime>, Error> {
        let sql = format!("SELECT cursor_end::text FROM {} WHERE job = $1 AND table_name = $2", self.table("cursors"));
        let row = self.client().query_opt(&sql, &[&job, &table]).bounded(self, "reading the cursor").await?;
        row.map(|r| self.timestamp(r.get(0), "the cursor")).transpose()
    }

    /// A timestamp read as text ([`ts_text`]).
    pub(crate) fn timestamp(&self, text: String, what: &str) -> Result<NaiveDateTime, Error> {
        NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").map_err(|e| Error::State {
            cluster: self.cluster.name.clone(),
            message: format!("{what} reads {text:?}, not a timestamp: {e}"),
        })
    }

    /// The cursor of a table entry (see [`TableSpec::cursor_key`]). An entry whose target
    /// differs from its source and has no cursor of its own yet takes the one kept under the
    /// source table's name before cursors were kept per target — but only when that target was
    /// loaded under it (history says so): a target added later starts from the start, where a
    /// sibling's cursor would have said its whole past was done.
    pub async fn table_cursor(&self, t: &TableSpec) -> Result<Option<NaiveDateTime>, Error> {
        let key = t.cursor_key();
        let source = t.source_table.to_string();
        match self.cursor(&t.job, &key).await? {
            None if key != source && self.loaded_before(t).await? => self.cursor(&t.job, &source).await,
            found => Ok(found),
        }
    }

    /// Whether history holds a committed window of this entry's target.
    async fn loaded_before(&self, t: &TableSpec) -> Result<bool, Error> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE job = $1 AND table_name = $2 AND target_table = $3 AND status = 'succeeded'",
            self.table("history")
        );
        let source = t.source_table.to_string();
        let n: i64 = self
            .client()
            .query_one(&sql, &[&t.job, &source, &t.target_table.to_string()])
            .await
            .map_err(|e| self.error("reading history", &e))?
            .get(0);
        Ok(n > 0)
    }

    /// Moves a table's cursor, on `client`, which may be the sink's open transaction so the
    /// cursor moves exactly when the data lands.
    pub async fn advance_cursor(
        &self,
        client: &Client,
        job: &str,
        table: &str,
        end: NaiveDateTime,
    ) -> Result<(), tokio_postgres::Error> {
        // No upsert: GP6 and 8.2 have no ON CONFLICT; the job lock makes this race-free.
        let update = format!(
            "UPDATE {} SET cursor_end = greatest(cursor_end, $3::text::timestamp), updated_at = clock_timestamp() \
             WHERE job = $1 AND table_name = $2",
            self.table("cursors")
        );
        let end = ts_text(end);
        // With their parameter types: one round trip each, no statement to prepare.
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] =
            [(&job, Type::TEXT), (&table, Type::TEXT), (&end, Type::TEXT)];
        if client.execute_typed(&update, &params).await? == 0 {
            let insert = format!(
                "INSERT INTO {} (job, table_name, cursor_end, updated_at) VALUES ($1, $2, $3::text::timestamp, clock_timestamp())",
                self.table("cursors")
            );
            client.execute_typed(&insert, &params).await?;
        }
        Ok(())
    }
}

impl State {
    /// Moves a table entry's cursor to `to`, backwards or forwards, and records the move in
    /// history — a `cursor set` row whose `reason` names the cursor it replaced — in one
    /// transaction. The caller holds the job's lock. Returns the cursor replaced.
    pub async fn set_cursor(
        &self,
        t: &TableSpec,
        to: NaiveDateTime,
        host: &str,
    ) -> Result<Option<NaiveDateTime>, Error> {
        let old = self.table_cursor(t).await?;
        let key = t.cursor_key();
        let reason = match old {
            Some(c) => format!("cursor was {}", ts_text(c).trim_end_matches(".000000")),
            None => "no cursor before: windows started at the table's start".to_string(),
        };
        let history = self.table("history");
        let id: i64 = self
            .client()
            .query_one("SELECT nextval(pg_get_serial_sequence($1, 'id'))", &[&history])
            .bounded(self, "drawing a history id")
            .await?
            .get(0);
        let moved = async {
            self.client().batch_execute("BEGIN").await?;
            let update = format!(
                "UPDATE {} SET cursor_end = $3::text::timestamp, updated_at = clock_timestamp() \
                 WHERE job = $1 AND table_name = $2",
                self.table("cursors")
            );
            let end = ts_text(to);
            if self.client().execute(&update, &[&t.job, &key, &end]).await? == 0 {
                let insert = format!(
                    "INSERT INTO {} (job, table_name, cursor_end, updated_at) \
                     VALUES ($1, $2, $3::text::timestamp, clock_timestamp())",
                    self.table("cursors")
                );
                self.client().execute(&insert, &[&t.job, &key, &end]).await?;
            }
            self.insert_note(id, t, "cursor set", (old.unwrap_or(t.start), to), host, &reason).await?;
            self.client().batch_execute("COMMIT").await
        };
        if let Err(e) = moved.bounded(self, "moving the cursor").await {
            let _ = self.client().batch_execute("ROLLBACK").bounded(self, "rolling back the cursor move").await;
            return Err(e);
        }
        Ok(old)
    }

    /// A history row that is no window attempt but something an operator must see in history:
    /// `status` `cursor set` or `gap skipped`, over `[start, end)`, with `reason`.
    async fn insert_note(
        &self,
        id: i64,
        t: &TableSpec,
        status: &str,
        (start, end): (NaiveDateTime, NaiveDateTime),
        host: &str,
        reason: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        let row = format!(
            "INSERT INTO {} (id, job, table_name, target_table, window_id, window_start, window_end, mode, \
             chain, started_at, finished_at, status, attempt, host, pid, reason) \
             VALUES ($1, $2, $3, $4, $5, $6::text::timestamp, $7::text::timestamp, $8, '-', now(), now(), \
             $5, 0, $9, $10, $11)",
            self.table("history")
        );
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        self.client()
            .execute(
                &row,
                &[
                    &id,
                    &t.job,
                    &t.source_table.to_string(),
                    &t.target_table.to_string(),
                    &status,
                    &ts_text(start),
                    &ts_text(end),
                    &t.mode.as_str(),
                    &host,
                    &pid,
                    &reason,
                ],
            )
            .await
    }

    /// Records in history that a table's windows now start after where its loads stopped: a
    /// config reader's job row moved forward past rows never loaded. Says nothing else; the
    /// caller warns.
    pub async fn record_gap(
        &self,
        t: &TableSpec,
        gap: (NaiveDateTime, NaiveDateTime),
        reason: &str,
    ) -> Result<(), Error> {
        let id: i64 = self
            .client()
            .query_one("SELECT nextval(pg_get_serial_sequence($1, 'id'))", &[&self.table("history")])
            .bounded(self, "drawing a history id")
            .await?
            .get(0);
        self.insert_note(id, t, "gap skipped", gap, &crate::host_name(), reason)
            .bounded(self, "recording a skipped gap in history")
            .await?;
        Ok(())
    }
}

/// A timestamp as it crosses the state session: as text, bound as `$n::text::timestamp` and
/// read as `col::text`. tokio-postgres's binary timestamps are integer microseconds, which an
/// 8.2 server built with float datetimes (GP4's kernel) takes for a float8: a cursor written
/// that way reads back as 2000-01-01 00:00:00.
pub(crate) fn ts_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}
