//! `stream` transport: source bytes flow to the sink through a bounded in-memory queue, in
//! coalesced chunks, counted on the way. Back-pressure: when the sink is slow the queue fills
//! and the source read waits, so memory stays at `chunk_bytes × queue_chunks` per window.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, Delivered, SinkWindow, Transport, WindowCtx};
use gptransfer_core::rowcount::RowCounter;
use gptransfer_core::RoleError;

/// Options of the `stream` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Bytes gathered before a chunk is handed on (COPY sends one message per row).
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// Chunks that may wait between source and sink.
    #[serde(default = "default_queue_chunks")]
    pub queue_chunks: usize,
}

fn default_chunk_bytes() -> usize {
    256 * 1024
}

fn default_queue_chunks() -> usize {
    8
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { chunk_bytes: default_chunk_bytes(), queue_chunks: default_queue_chunks() }
    }
}

/// The `stream` transport.
#[derive(Debug, Clone, Default)]
pub struct StreamTransport {
    config: StreamConfig,
}

/// Registers `stream`.
pub struct StreamFactory;

impl Factory<dyn Transport> for StreamFactory {
    fn name(&self) -> &'static str {
        "stream"
    }
    fn describe(&self) -> &'static str {
        "in-process bounded stream from source to sink (no files)"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        let c: StreamConfig = parse_options(options)?;
        if c.chunk_bytes < 1024 || c.queue_chunks == 0 {
            return Err("chunk_bytes must be at least 1024 and queue_chunks at least 1".into());
        }
        Ok(())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Transport>, String> {
        self.validate(options)?;
        Ok(Arc::new(StreamTransport { config: parse_options(options)? }))
    }
}

#[async_trait]
impl Transport for StreamTransport {
    async fn deliver(
        &self,
        ctx: &WindowCtx,
        mut rows: ByteStream,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        let (tx, rx) = mpsc::channel::<Result<Bytes, RoleError>>(self.config.queue_chunks);
        let chunk_bytes = self.config.chunk_bytes;
        let counters = ctx.counters.clone();
        let mut counter = RowCounter::new(ctx.format);
        // The source runs in its own task so reading and writing overlap on two cores.
        let pump = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(chunk_bytes * 2);
            let (mut total_rows, mut total_bytes) = (0u64, 0u64);
            while let Some(item) = rows.next().await {
                match item {
                    Ok(b) => {
                        let n = counter.count(&b);
                        total_rows += n;
                        total_bytes += b.len() as u64;
                        counters.add(n, b.len() as u64);
                        buf.extend_from_slice(&b);
                        if buf.len() >= chunk_bytes && tx.send(Ok(buf.split().freeze())).await.is_err() {
                            // The sink stopped reading; its error is the one to report.
                            return Ok((total_rows, total_bytes));
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.clone())).await;
                        return Err(e);
                    }
                }
            }
            if !buf.is_empty() {
                let _ = tx.send(Ok(buf.freeze())).await;
            }
            Ok((total_rows, total_bytes))
        });
        let abort = pump.abort_handle();
        let incoming = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let loaded = sink.load(Box::pin(incoming)).await;
        if loaded.is_err() {
            abort.abort();
        }
        let pumped = match pump.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok((0, 0)),
            Err(e) => Err(RoleError::new(format!("the source reader stopped unexpectedly: {e}"))),
        };
        // The source's error is the cause; the sink's is usually its consequence.
        let (rows_read, bytes) = pumped?;
        let rows_written = loaded?;
        Ok(Delivered { rows_read, bytes, rows_written, ..Delivered::default() })
    }
}
