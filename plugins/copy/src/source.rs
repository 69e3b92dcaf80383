//! `copy` source: the window's rows as COPY text, streamed with a stall timeout per read.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;

use gptransfer_core::config::Mode;
use gptransfer_core::dialect::sql;
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
    /// The statement sent for a window.
    pub fn statement(&self, ctx: &WindowCtx) -> String {
        let mut predicate = match (&ctx.table.condition_column, ctx.table.mode) {
            (Some(col), m) if m != Mode::Full => Some(sql::window_predicate(
                col,
                ctx.condition_type.as_deref().unwrap_or("timestamp"),
                ctx.window.start,
                ctx.window.end,
            )),
            _ => None,
        };
        if let Some(f) = &self.config.filter {
            predicate = Some(match predicate {
                Some(p) => format!("{p} AND ({f})"),
                None => format!("({f})"),
            });
        }
        sql::copy_out(&ctx.table.source_table, &ctx.columns, predicate.as_deref(), ctx.format)
    }
}

#[async_trait]
impl Source for CopySource {
    fn formats(&self) -> Vec<CopyFormat> {
        CopyFormat::ALL.to_vec()
    }

    async fn open(&self, ctx: &WindowCtx) -> Result<ByteStream, RoleError> {
        let session = ctx
            .source
            .connect(&ctx.application, ctx.table.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let statement = self.statement(ctx);
        tracing::debug!(cluster = %ctx.source.name, "{statement}");
        let stream = session.timed(session.client.copy_out(statement.as_str())).await.map_err(|e| RoleError {
            message: format!("reading from source cluster {:?}: {}", ctx.source.name, e.message),
            ..e
        })?;
        let timeout = session.read_timeout;
        let cluster = ctx.source.name.clone();
        // The session moves into the stream: the connection lives exactly as long as the read.
        let rows = futures_util::stream::unfold(
            (Box::pin(stream), session, cluster),
            move |(mut stream, session, cluster)| async move {
                // Most rows are already buffered: only arm a timer when we would wait.
                let next = match stream.next().now_or_never() {
                    Some(item) => Ok(item),
                    None => tokio::time::timeout(timeout, stream.next()).await,
                };
                match next {
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), (stream, session, cluster))),
                    Ok(Some(Err(e))) => Some((
                        Err(RoleError::from_pg(&format!("reading from source cluster {cluster:?}"), &e)),
                        (stream, session, cluster),
                    )),
                    Ok(None) => None,
                    Err(_) => Some((
                        Err(RoleError::retriable(format!(
                            "source cluster {cluster:?} sent nothing for {}s (read_timeout): stalled stream",
                            timeout.as_secs()
                        ))),
                        (stream, session, cluster),
                    )),
                }
            },
        );
        // After an error the stream must end, or a consumer could poll a dead connection forever.
        let mut failed = false;
        let rows = rows.take_while(move |item| {
            let go = !failed;
            failed = item.is_err();
            std::future::ready(go)
        });
        Ok(Box::pin(rows))
    }
}
