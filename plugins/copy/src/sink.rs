//! `copy` sink: one transaction per window on the target. The mode decides what happens
//! before the COPY (delete the window, truncate) and after it (merge from staging).

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use gptransfer_core::cluster::{IdleSessions, Session};
use gptransfer_core::config::Mode;
use gptransfer_core::dialect::{external, quote_ident, sql, Flavour};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, ExternalLocation, LoadDetail, Sink, SinkWindow, WindowCtx};
use gptransfer_core::rowcount::BatchNumbering;
use gptransfer_core::RoleError;

use crate::indexes;

/// Options of the `copy` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopySinkConfig {
    /// `full` mode: drop the target's indexes after the TRUNCATE and build them again after
    /// the COPY, in the window's transaction.
    pub rebuild_indexes: bool,
    /// `SET LOCAL maintenance_work_mem` for those builds; the server's setting when absent.
    pub maintenance_work_mem: Option<String>,
    /// `full` mode on PostgreSQL: `COPY … FREEZE` (the TRUNCATE in the same transaction allows
    /// it): rows written frozen and all-visible, so no later VACUUM rewrites the table.
    pub freeze: bool,
}

impl Default for CopySinkConfig {
    fn default() -> Self {
        CopySinkConfig { rebuild_indexes: true, maintenance_work_mem: None, freeze: false }
    }
}

/// The `copy` sink. Built per run and table: its idle target session serves the table's next
/// window, and goes with the run.
#[derive(Debug, Clone, Default)]
pub struct CopySink {
    idle: Arc<IdleSessions>,
    config: Arc<CopySinkConfig>,
}

/// Registers `copy` as a sink.
pub struct CopySinkFactory;

impl Factory<dyn Sink> for CopySinkFactory {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn describe(&self) -> &'static str {
        "COPY FROM STDIN into the target, one transaction per window (replace, append, merge, full)"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<CopySinkConfig>(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Sink>, String> {
        let config = parse_options::<CopySinkConfig>(options)?;
        Ok(Arc::new(CopySink { idle: Arc::default(), config: Arc::new(config) }))
    }
}

const STAGING: &str = "gptransfer_merge_staging";

struct CopyWindow {
    session: Session,
    ctx: WindowCtx,
    /// Where the session goes once the window committed.
    idle: Arc<IdleSessions>,
    /// Merge: rows of the batch replaced by a later row with the same key.
    duplicates: Option<u64>,
    /// Full: the indexes dropped after the TRUNCATE, built again after the COPY.
    dropped: Option<indexes::Dropped>,
    config: Arc<CopySinkConfig>,
}

fn target_err(ctx: &WindowCtx, what: &str) -> impl Fn(RoleError) -> RoleError {
    let prefix = format!("{what} on target cluster {:?}", ctx.target.name);
    move |e| RoleError { message: format!("{prefix}: {}", e.message), ..e }
}

#[async_trait]
impl Sink for CopySink {
    fn formats(&self, mode: Mode) -> Vec<CopyFormat> {
        if mode == Mode::Merge {
            // Merge appends a batch position to each row, which binary COPY cannot take.
            vec![CopyFormat::Text, CopyFormat::Csv]
        } else {
            CopyFormat::ALL.to_vec()
        }
    }

    fn commits_with_state(&self) -> bool {
        true
    }

    fn merges_in_turn(&self) -> bool {
        true
    }

    /// GP5/6/7 targets (a GP4 target is not tried).
    fn loads_external(&self, flavour: Flavour) -> bool {
        flavour.is_greenplum() && flavour != Flavour::Gp4
    }

    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError> {
        let t = &ctx.table;
        let delete = match t.mode {
            Mode::Replace => Some(ctx.delete_window()?),
            Mode::Merge if t.clear_window_first => Some(ctx.delete_window()?),
            _ => None,
        };
        // One round trip: BEGIN and what the mode does first, as one batch (nothing of it is
        // done when it fails: the session is dropped, which rolls back).
        let first = |session: Session| {
            let mut statements = vec!["BEGIN".to_string()];
            match t.mode {
                Mode::Replace => statements.extend(delete.clone()),
                Mode::Full => statements.push(sql::truncate(&t.target_table)),
                Mode::Merge => {
                    statements.extend(delete.clone());
                    statements.push(sql::merge_staging(session.flavour, &t.target_table, STAGING, &ctx.columns))
                }
                Mode::Append => {}
            }
            async move {
                for s in &statements {
                    tracing::debug!(cluster = %ctx.target.name, "{s}");
                }
                let result = session
                    .timed(session.client.batch_execute(&statements.join(";\n")))
                    .await
                    .map_err(target_err(ctx, "preparing the window"));
                (session, result)
            }
        };
        let (session, ()) =
            self.idle.first_statement(&ctx.target, &ctx.application, t.timezone.as_deref(), first).await?;
        // Only `full`: the TRUNCATE already holds the table exclusively and empties it. A
        // replace or append window into an empty table would gain too, but knowing that it is
        // empty costs a query per window, and dropping an index takes the exclusive lock those
        // windows never take (parallel windows of one table, readers of the target).
        let dropped = if t.mode == Mode::Full && self.config.rebuild_indexes {
            Some(indexes::drop_for_load(&session, ctx).await?)
        } else {
            None
        };
        Ok(Box::new(CopyWindow {
            session,
            ctx: ctx.clone(),
            idle: self.idle.clone(),
            duplicates: None,
            dropped,
            config: self.config.clone(),
        }))
    }
}

/// [`sql::MergePath::OnConflict`] where the flavour and the target table allow it.
async fn merge_path(session: &Session, ctx: &WindowCtx) -> Result<sql::MergePath, RoleError> {
    if !sql::may_merge_on_conflict(session.flavour) {
        return Ok(sql::MergePath::DeleteInsert);
    }
    let target = &ctx.table.target_table;
    let mut key = ctx.table.key.clone();
    key.sort();
    let row = session
        .timed(session.client.query_opt(sql::ON_CONFLICT_ARBITER, &[&target.schema, &target.name, &key]))
        .await
        .map_err(target_err(ctx, "reading the target's unique indexes"))?;
    let arbiter = row.map(|r| r.try_get::<_, bool>(0)).transpose().map_err(|e| {
        RoleError::new(format!("reading the target's unique indexes on target cluster {:?}: {e}", ctx.target.name))
    })?;
    Ok(if arbiter == Some(true) { sql::MergePath::OnConflict } else { sql::MergePath::DeleteInsert })
}

#[async_trait]
impl SinkWindow for CopyWindow {
    async fn load(&mut self, mut rows: ByteStream) -> Result<u64, RoleError> {
        let ctx = &self.ctx;
        let t = &ctx.table;
        let into = if t.mode == Mode::Merge { quote_ident(STAGING) } else { t.target_table.quoted() };
        let merge = t.mode == Mode::Merge;
        let statement = if merge {
            let mut cols = ctx.columns.as_ref().clone();
            cols.push("gpt_batch_seq".into());
            sql::copy_in(&into, &cols, ctx.format)
        } else if t.mode == Mode::Full && self.config.freeze && sql::may_copy_freeze(self.session.flavour) {
            sql::copy_in_frozen(&into, &ctx.columns, ctx.format)
        } else {
            sql::copy_in(&into, &ctx.columns, ctx.format)
        };
        let mut numbering = BatchNumbering::for_format(ctx.format);
        let session = &self.session;
        let sink = session
            .timed(session.client.copy_in::<_, bytes::Bytes>(statement.as_str()))
            .await
            .map_err(target_err(ctx, "starting COPY"))?;
        let mut sink = Box::pin(sink);
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            let chunk = if merge { numbering.number(&chunk) } else { chunk };
            session.timed(sink.feed(chunk)).await.map_err(target_err(ctx, "writing rows"))?;
        }
        let copied = session.timed(sink.as_mut().finish()).await.map_err(target_err(ctx, "finishing COPY"))?;
        if let Some(dropped) = &self.dropped {
            dropped.rebuild(session, ctx, self.config.maintenance_work_mem.as_deref()).await?;
        }
        if !merge {
            return Ok(copied);
        }
        let nulls: i64 = session
            .timed(session.client.query_one(sql::null_key_rows(&quote_ident(STAGING), &t.key).as_str(), &[]))
            .await
            .map_err(target_err(ctx, "checking the merge key"))?
            .get(0);
        if nulls > 0 {
            return Err(RoleError::new(sql::null_key_message(nulls, &t.key)));
        }
        // The staging table is loaded; the windows before this one of a parallel backfill
        // merge first, so that the newest row of a key is the one that stays.
        ctx.turn.wait().await;
        // The last row of each key lands: rows written are the rows inserted, and the batch's
        // earlier rows of a key are counted as folded, not as written.
        let path = merge_path(session, ctx).await?;
        let mut statements = sql::merge_apply(session.flavour, &t.target_table, STAGING, &ctx.columns, &t.key, path);
        // The last statement inserts the last row of each key: its count is the rows written.
        let insert = statements.pop().unwrap_or_default();
        for s in &statements {
            tracing::debug!(cluster = %ctx.target.name, "{s}");
            session.timed(session.client.batch_execute(s)).await.map_err(target_err(ctx, "merging"))?;
        }
        tracing::debug!(cluster = %ctx.target.name, "{insert}");
        let written =
            session.timed(session.client.execute(insert.as_str(), &[])).await.map_err(target_err(ctx, "merging"))?;
        let folded = copied.saturating_sub(written);
        if folded > 0 {
            tracing::warn!(
                cluster = %ctx.target.name,
                "{folded} row(s) of {} had a key that came again later in the window: the last row of each key was kept",
                t.target_table
            );
        }
        self.duplicates = Some(folded);
        Ok(written)
    }

    async fn load_external(&mut self, location: &ExternalLocation) -> Result<u64, RoleError> {
        let ctx = &self.ctx;
        let t = &ctx.table;
        if t.mode == Mode::Merge {
            // Checked before any data moves (the transport refuses merge); never reached.
            return Err(RoleError::new("merge cannot load from an external location: the last row of a key is lost"));
        }
        let session = &self.session;
        // The target's own types, in the order the rows come: each value parsed straight into
        // its column's type, as COPY FROM would. The run's checks read them already; read here
        // only when they did not.
        let target_types: Vec<(String, String)> = if ctx.target_described.is_empty() {
            let rows = session
                .timed(session.client.query(sql::TABLE_COLUMNS, &[&t.target_table.schema, &t.target_table.name]))
                .await
                .map_err(target_err(ctx, "reading the target's columns"))?;
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        } else {
            ctx.target_described.iter().map(|c| (c.name.clone(), c.type_text.clone())).collect()
        };
        let columns = ctx
            .columns
            .iter()
            .map(|c| {
                target_types.iter().find(|(n, _)| n == c).map(|(n, ty)| (n.clone(), ty.clone())).ok_or_else(|| {
                    RoleError::new(format!("column {c:?} is missing in target table {}", t.target_table))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = external::table_name("gptransfer_in");
        let create = external::create_readable(session.flavour, &name, &columns, &location.url, &location.encoding);
        tracing::debug!(cluster = %ctx.target.name, "{create}");
        session
            .timed(session.client.batch_execute(&create))
            .await
            .map_err(target_err(ctx, "creating the readable external table"))?;
        let insert = external::import_rows(&t.target_table, &ctx.columns, &name);
        tracing::debug!(cluster = %ctx.target.name, "{insert}");
        let what = format!("reading the window from gpfdist on target cluster {:?}", ctx.target.name);
        let written = gptransfer_core::cluster::external_statement(session, &insert, location, &what).await?;
        session
            .timed(session.client.batch_execute(&external::drop_table(&name)))
            .await
            .map_err(target_err(ctx, "dropping the readable external table"))?;
        if let Some(dropped) = &self.dropped {
            dropped.rebuild(session, ctx, self.config.maintenance_work_mem.as_deref()).await?;
        }
        Ok(written)
    }

    fn detail(&self) -> LoadDetail {
        LoadDetail { duplicates: self.duplicates, ..LoadDetail::default() }
    }

    fn transaction(&self) -> Option<&tokio_postgres::Client> {
        Some(&self.session.client)
    }

    async fn commit(self: Box<Self>) -> Result<(), RoleError> {
        let ctx = &self.ctx;
        self.session.timed(self.session.client.batch_execute("COMMIT")).await.map_err(target_err(ctx, "committing"))?;
        // Committed: the session holds nothing open and serves the next window.
        self.idle.put(&ctx.target, &ctx.application, ctx.table.timezone.as_deref(), self.session);
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        // Closing the connection rolls back on the server, whatever state the protocol is in
        // (a ROLLBACK sent in the middle of COPY IN would not be).
        drop(self.session);
    }
}
