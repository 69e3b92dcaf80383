//! The roles a table's chain is made of. Core knows these traits; plugins implement them.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::cluster::ClusterHandle;
use crate::config::TableSpec;
use crate::error::RoleError;
use crate::window::Window;

/// COPY text-format bytes, in chunks that end on row boundaries or not: consumers must not care.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RoleError>> + Send>>;

/// Live counters of one window, read by progress bars.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows seen so far.
    pub rows: AtomicU64,
    /// Bytes seen so far.
    pub bytes: AtomicU64,
}

impl Counters {
    /// Adds a chunk.
    pub fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Current rows and bytes.
    pub fn get(&self) -> (u64, u64) {
        (self.rows.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

/// Everything a plugin needs to move one window of one table.
#[derive(Clone)]
pub struct WindowCtx {
    /// The table and its resolved config.
    pub table: Arc<TableSpec>,
    /// The window (for `full` mode, the run's window; the source reads the whole table).
    pub window: Window,
    /// Columns to move, matched by name between source and target, in source order.
    pub columns: Arc<Vec<String>>,
    /// `typname` of the condition column on the source (`timestamp`, `timestamptz`, `date`).
    pub condition_type: Option<String>,
    /// Source cluster.
    pub source: ClusterHandle,
    /// Target cluster.
    pub target: ClusterHandle,
    /// Live counters.
    pub counters: Arc<Counters>,
    /// Application name for sessions, so a run's sessions can be found on the servers.
    pub application: String,
    /// The COPY format of this window's bytes, chosen by the engine for both ends.
    pub format: CopyFormat,
}

/// COPY's wire format between source and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyFormat {
    /// Text format: portable across every flavour; one raw newline per row.
    Text,
    /// Binary format: no text formatting or parsing on either server; only chosen when both
    /// sides have identical built-in column types, encodings and datetime representation.
    Binary,
}

/// Reads one window from the source cluster.
#[async_trait]
pub trait Source: Send + Sync {
    /// Whether it can produce binary COPY (when the engine finds both sides agree).
    fn supports_binary(&self) -> bool {
        false
    }

    /// Opens the window's rows as COPY text bytes.
    async fn open(&self, ctx: &WindowCtx) -> Result<ByteStream, RoleError>;
}

/// What a transport reports after a delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Rows read from the source.
    pub rows_read: u64,
    /// Bytes carried.
    pub bytes: u64,
    /// Rows the sink says it wrote.
    pub rows_written: u64,
}

/// Carries a source stream to a sink window.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Moves every byte of `rows` into `sink`, counting rows and bytes on the way.
    async fn deliver(
        &self,
        ctx: &WindowCtx,
        rows: ByteStream,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError>;
}

/// Loads windows into the target.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Whether it can load binary COPY in this mode.
    fn supports_binary(&self, _mode: crate::config::Mode) -> bool {
        false
    }

    /// Checks what only this sink cannot handle about a table and the columns it will get
    /// (e.g. gpload's column-name limits), before any data moves. Called by `run` and
    /// `config check` after the columns are matched.
    fn check_table(&self, _table: &TableSpec, _columns: &[String]) -> Result<(), String> {
        Ok(())
    }

    /// Starts the window's transaction (and whatever the mode does first, e.g. the delete).
    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError>;
}

/// One window being loaded: nothing is visible on the target before `commit`; dropping it
/// or calling `abort` rolls everything back.
#[async_trait]
pub trait SinkWindow: Send {
    /// Loads the stream; returns the rows written. Data stays uncommitted.
    async fn load(&mut self, rows: ByteStream) -> Result<u64, RoleError>;

    /// The open transaction on the target, when the sink has one, so the engine can write
    /// history and cursor in the same transaction as the data.
    fn transaction(&self) -> Option<&tokio_postgres::Client>;

    /// Makes the window visible.
    async fn commit(self: Box<Self>) -> Result<(), RoleError>;

    /// Rolls the window back.
    async fn abort(self: Box<Self>);
}
