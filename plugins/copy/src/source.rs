//! `copy` source: the window's rows as COPY text, streamed with a stall timeout per read.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::cluster::{export_window, IdleSessions, Session};
use gptransfer_core::config::Mode;
use gptransfer_core::dialect::{sql, Flavour};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, ExternalLocation, Source, WindowCtx};
use gptransfer_core::RoleError;

/// Options of the `copy` source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySourceConfig {
    /// Extra filter ANDed to the window predicate, written in the source's SQL.
    pub filter: Option<String>,
}

/// The `copy` source. Built per run and table: its idle source session serves the table's
/// next window, and goes with the run.
#[derive(Debug, Clone)]
pub struct CopySource {
    config: CopySourceConfig,
    idle: Arc<IdleSessions>,
}

/// Registers `copy` as a source.
pub struct CopySourceFactory;

impl Factory<dyn Source> for CopySourceFactory {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn describe(&self) -> &'static str {
        "COPY (SELECT … WHERE window) TO STDOUT from GP5/6/7 or PostgreSQL"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<CopySourceConfig>(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Source>, String> {
        Ok(Arc::new(CopySource { config: parse_options(options)?, idle: Arc::default() }))
    }
}

impl CopySource {
    /// The statement sent for a window to a `flavour` server.
    pub fn statement(&self, ctx: &WindowCtx, flavour: Flavour) -> String {
        sql::copy_out(&ctx.table.source_table, &ctx.select_list(flavour), self.predicate(ctx).as_deref(), ctx.format)
    }

    /// The window's rows: its predicate (none in `full` mode) and the `filter`.
    fn predicate(&self, ctx: &WindowCtx) -> Option<String> {
        let predicate = if ctx.table.mode == Mode::Full { None } else { ctx.window_predicate() };
        match (predicate, &self.config.filter) {
            (Some(p), Some(f)) => Some(format!("{p} AND ({f})")),
            (None, Some(f)) => Some(format!("({f})")),
            (p, None) => p,
        }
    }
}

#[async_trait]
impl Source for CopySource {
    fn formats(&self) -> Vec<CopyFormat> {
        CopyFormat::ALL.to_vec()
    }

    fn row_filter(&self) -> Option<String> {
        self.config.filter.clone()
    }

    async fn open(&self, ctx: &WindowCtx) -> Result<ByteStream, RoleError> {
        let timezone = ctx.table.timezone.clone();
        let start = |session: Session| async move {
            let statement = self.statement(ctx, session.flavour);
            tracing::debug!(cluster = %ctx.source.name, "{statement}");
            let started = session.start_copy_out(&statement, &ctx.source.name).await;
            (session, started)
        };
        let (session, copy) =
            self.idle.first_statement(&ctx.source, &ctx.application, timezone.as_deref(), start).await?;
        // Read to its end, the session serves the table's next window.
        let (idle, cluster, application) = (self.idle.clone(), ctx.source.clone(), ctx.application.clone());
        let done = Box::new(move |s: Session| idle.put(&cluster, &application, timezone.as_deref(), s));
        Ok(session.stream_copy_out(copy, &ctx.source.name, done))
    }

    /// GP5/6/7; GP4 has the `gp4` source for it.
    fn exports(&self, flavour: Flavour) -> bool {
        flavour.is_greenplum() && flavour != Flavour::Gp4
    }

    async fn export(&self, ctx: &WindowCtx, location: &ExternalLocation) -> Result<u64, RoleError> {
        let timezone = ctx.table.timezone.as_deref();
        let taken = self
            .idle
            .take(&ctx.source, &ctx.application, timezone)
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let session = taken.session;
        let exported =
            export_window(&session, ctx, location, &ctx.select_list(session.flavour), self.predicate(ctx)).await?;
        // Its external table dropped, the session serves the table's next window.
        self.idle.put(&ctx.source, &ctx.application, timezone, session);
        Ok(exported)
    }
}
