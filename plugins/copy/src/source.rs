//! `copy` source: the window's rows as COPY text, streamed with a stall timeout per read.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::config::Mode;
use gptransfer_core::dialect::{sql, Flavour};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, Source, WindowCtx};
use gptransfer_core::RoleError;

/// Options of the `copy` source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySourceConfig {
    /// Extra filter ANDed to the window predicate, written in the source's SQL.
    pub filter: Option<String>,
}

/// The `copy` source.
#[derive(Debug, Clone)]
pub struct CopySource {
    config: CopySourceConfig,
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
        Ok(Arc::new(CopySource { config: parse_options(options)? }))
    }
}

impl CopySource {
    /// The statement sent for a window to a `flavour` server.
    pub fn statement(&self, ctx: &WindowCtx, flavour: Flavour) -> String {
        let mut predicate = if ctx.table.mode == Mode::Full { None } else { ctx.window_predicate() };
        if let Some(f) = &self.config.filter {
            predicate = Some(match predicate {
                Some(p) => format!("{p} AND ({f})"),
                None => format!("({f})"),
            });
        }
        sql::copy_out(&ctx.table.source_table, &ctx.select_list(flavour), predicate.as_deref(), ctx.format)
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
        let session = ctx
            .source
            .connect(&ctx.application, ctx.table.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let statement = self.statement(ctx, session.flavour);
        tracing::debug!(cluster = %ctx.source.name, "{statement}");
        session.copy_out_stream(&statement, &ctx.source.name).await
    }
}
