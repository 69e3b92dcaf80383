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

/// COPY bytes in the window's [`CopyFormat`], in chunks that end on row boundaries or not:
/// consumers must not care.
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
    /// The `typname` of each of `columns` on the source, same order.
    pub column_types: Arc<Vec<String>>,
    /// Each of `columns` as the source's catalog describes it (declared type, NOT NULL), same
    /// order: what a sink that creates its own output needs to know of the values.
    pub described: Arc<Vec<crate::engine::Column>>,
    /// The target table's columns as the target's catalog describes them, table order, as the
    /// checks before the run read them; empty where the target was not read (a sink that loads
    /// no database).
    pub target_described: Arc<Vec<crate::engine::Column>>,
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
    /// Waits until every earlier window of the table in this run has ended (see
    /// [`Sink::merges_in_turn`]).
    pub turn: Turn,
}

/// The place of a window among the table's windows of a run that run at once.
#[derive(Clone, Default)]
pub struct Turn(Option<(Arc<crate::engine::Frontier>, Window)>);

impl Turn {
    pub(crate) fn new(frontier: Arc<crate::engine::Frontier>, window: Window) -> Turn {
        Turn(Some((frontier, window)))
    }

    /// Returns once every window planned before this one has committed or failed for good.
    pub async fn wait(&self) {
        if let Some((frontier, window)) = &self.0 {
            frontier.wait_turn(window).await;
        }
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Turn")
    }
}

impl WindowCtx {
    /// `col >= start AND col < end` on the table's condition column: the rows of this window,
    /// as a source reads them and a `replace` sink deletes them. `None` without a condition
    /// column (a `full` table).
    pub fn window_predicate(&self) -> Option<String> {
        let col = self.table.condition_column.as_deref()?;
        let ty = self.condition_type.as_deref().unwrap_or("timestamp");
        Some(crate::dialect::sql::window_predicate(col, ty, self.window.start, self.window.end))
    }

    /// The SELECT list a source reads the columns with from a `flavour` server
    /// ([`crate::dialect::sql::select_list`]: exact floats from every kernel).
    pub fn select_list(&self, flavour: crate::dialect::Flavour) -> String {
        crate::dialect::sql::select_list(flavour, &self.columns, &self.column_types)
    }

    /// The statement that empties this window on the target before a `replace` load.
    pub fn delete_window(&self) -> Result<String, RoleError> {
        let p = self.window_predicate().ok_or_else(|| {
            RoleError::new(format!(
                "replace mode needs a condition column to delete the window of {}",
                self.table.target_table
            ))
        })?;
        Ok(crate::dialect::sql::delete_window(&self.table.target_table, &p))
    }
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
    /// CSV (`WITH CSV`: comma, `"` quote and escape, NULL as an unquoted empty field), the
    /// format gpload and humans read; a row may span lines inside quotes.
    Csv,
}

impl CopyFormat {
    /// Every format, in the order a byte-carrying transport prefers them.
    pub const ALL: [CopyFormat; 3] = [CopyFormat::Binary, CopyFormat::Text, CopyFormat::Csv];

    /// As written in history's chain, manifests and messages.
    pub fn name(self) -> &'static str {
        match self {
            CopyFormat::Text => "text",
            CopyFormat::Binary => "binary",
            CopyFormat::Csv => "csv",
        }
    }
}

/// Picks the window's format: the first of the transport's preferences that the source can
/// produce and the sink can load; binary only when the columns allow it (`binary_ok`).
pub fn negotiate_format(
    source: &[CopyFormat],
    transport: &[CopyFormat],
    sink: &[CopyFormat],
    binary_ok: bool,
) -> Result<CopyFormat, String> {
    transport
        .iter()
        .copied()
        .filter(|f| *f != CopyFormat::Binary || binary_ok)
        .find(|f| source.contains(f) && sink.contains(f))
        .ok_or_else(|| {
            let names = |fs: &[CopyFormat]| fs.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ");
            format!(
                "the chain has no COPY format in common: the source produces {}, the transport carries {}, \
                 the sink loads {}; choose plugins that share one",
                names(source),
                names(transport),
                names(sink)
            )
        })
}

/// Reads one window from the source cluster.
#[async_trait]
pub trait Source: Send + Sync {
    /// The COPY formats it can produce (binary is only used when the engine finds both sides'
    /// columns agree).
    fn formats(&self) -> Vec<CopyFormat> {
        vec![CopyFormat::Text]
    }

    /// PostgreSQL's name of the encoding its text is stored in when the database cannot tell
    /// (GBK bytes in a SQL_ASCII database), so compare can convert it the same way.
    fn stored_text_encoding(&self) -> Option<&'static str> {
        None
    }

    /// The condition it ANDs to every window's predicate (a `filter` option), in the source's
    /// SQL: only rows matching it are moved, so compare reads the source with it too.
    fn row_filter(&self) -> Option<String> {
        None
    }

    /// Opens the window's rows as COPY bytes in `ctx.format`.
    async fn open(&self, ctx: &WindowCtx) -> Result<ByteStream, RoleError>;

    /// Whether it can make the segments of a `flavour` source write a window to an external
    /// location themselves ([`Source::export`]).
    fn exports(&self, _flavour: crate::dialect::Flavour) -> bool {
        false
    }

    /// Has the source's segments write the window's rows to `location` (COPY text, in
    /// `location.encoding`), bypassing the master; returns the rows written. Default: cannot.
    async fn export(&self, ctx: &WindowCtx, _location: &ExternalLocation) -> Result<u64, RoleError> {
        Err(RoleError::new(format!(
            "source {:?} cannot have its segments write a window to an external location",
            ctx.table.source.get_ref().plugin
        )))
    }
}

/// Where a segment-to-segment transport has the source's segments write a window, or the
/// target's segments read it: an external table's location and how its bytes are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLocation {
    /// The URL the segments write to or read from (`gpfdist://host:port/path`).
    pub url: String,
    /// The encoding of the text bytes at the location (an external table's `ENCODING`).
    pub encoding: String,
    /// How long the one statement that writes or reads the whole window may run.
    pub timeout: std::time::Duration,
    /// Fired when the statement is to stop early: the window's other side failed, or its
    /// gpfdist processes ended.
    pub stop: StopSignal,
}

/// Tells a segment-to-segment window's statements to stop (see [`ExternalLocation::stop`]):
/// waiting for them to fail by themselves could take minutes, since Greenplum's segments retry
/// a gpfdist that refuses them for `gpfdist_retry_timeout` (300 s by default).
#[derive(Debug, Clone)]
pub struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    /// A signal, and what fires it (`send(true)`).
    pub fn new() -> (tokio::sync::watch::Sender<bool>, StopSignal) {
        let (fire, signal) = tokio::sync::watch::channel(false);
        (fire, StopSignal(signal))
    }

    /// A signal that never fires.
    pub fn never() -> StopSignal {
        StopSignal::new().1
    }

    /// Returns once the signal fired; never, when nothing can fire it any more.
    pub async fn stopped(&self) {
        let mut signal = self.0.clone();
        if signal.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Signals do not make locations differ.
impl PartialEq for StopSignal {
    fn eq(&self, _: &StopSignal) -> bool {
        true
    }
}

impl Eq for StopSignal {}

/// What a transport reports after a delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Rows read from the source.
    pub rows_read: u64,
    /// Bytes carried.
    pub bytes: u64,
    /// Rows the sink says it wrote.
    pub rows_written: u64,
    /// The sink's own account of the load (set by the engine from [`SinkWindow::detail`]).
    pub detail: LoadDetail,
}

/// Carries a source stream to a sink window.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The formats it carries, preferred first (a byte pipe carries all, fastest first).
    fn formats(&self) -> Vec<CopyFormat> {
        CopyFormat::ALL.to_vec()
    }

    /// Moves every byte of `rows` into `sink`, counting rows and bytes on the way.
    async fn deliver(
        &self,
        ctx: &WindowCtx,
        rows: ByteStream,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError>;

    /// Moves the window itself, given the source and the sink's open window, instead of
    /// carrying a byte stream (the segment-to-segment path: no row passes through this
    /// process). `None` (the default): the engine opens the source and calls
    /// [`Transport::deliver`].
    async fn move_window(
        &self,
        _ctx: &WindowCtx,
        _source: &dyn Source,
        _sink: &mut dyn SinkWindow,
    ) -> Option<Result<Delivered, RoleError>> {
        None
    }

    /// Refuses, before any data moves, a chain it cannot carry: the mode, the source and sink
    /// plugins and the clusters' flavours (`run` and `config check`, after the columns are
    /// matched).
    fn check_chain(&self, _chain: &ChainCheck<'_>) -> Result<(), String> {
        Ok(())
    }

    /// Checks what this transport needs of the two clusters themselves (for a
    /// segment-to-segment transport: the roles' privileges on external tables, and with
    /// `probe`, that every segment reaches it). `run` calls it before any window with `probe`
    /// false (what is cheap); `config check` with `probe` true. Default: nothing to check.
    async fn check_clusters(
        &self,
        _table: &TableSpec,
        _source: &crate::cluster::Session,
        _target: &crate::cluster::Session,
        _probe: bool,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// A table's chain as [`Transport::check_chain`] sees it.
pub struct ChainCheck<'a> {
    /// The table.
    pub table: &'a TableSpec,
    /// Its source plugin.
    pub source: &'a dyn Source,
    /// Its sink plugin.
    pub sink: &'a dyn Sink,
    /// What the source cluster is.
    pub source_flavour: crate::dialect::Flavour,
    /// What the target cluster is.
    pub target_flavour: crate::dialect::Flavour,
}

/// Loads windows into the target.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The COPY formats it can load in this mode.
    fn formats(&self, _mode: crate::config::Mode) -> Vec<CopyFormat> {
        vec![CopyFormat::Text]
    }

    /// Checks what only this sink cannot handle about a table and the columns it will get
    /// (e.g. gpload's column-name limits), before any data moves. Called by `run` and
    /// `config check` after the columns are matched.
    fn check_table(&self, _table: &TableSpec, _columns: &[String]) -> Result<(), String> {
        Ok(())
    }

    /// Whether every window's rows commit in the transaction its window's
    /// [`SinkWindow::transaction`] hands the engine, so history and cursor can commit with them
    /// (when the state is on the target cluster). A sink that commits on its own cannot take
    /// `append` windows safely: a run that dies between its commit and the history's would
    /// load the window again.
    fn commits_with_state(&self) -> bool {
        false
    }

    /// Whether a `merge` window waits for [`WindowCtx::turn`] before it brings its rows into
    /// the target, so windows of a parallel backfill merge in window order (a key found in
    /// several windows keeps its newest row, and never lands twice). A sink that does not
    /// merges its windows one at a time.
    fn merges_in_turn(&self) -> bool {
        false
    }

    /// Whether it loads the target table on the job's `to` cluster. A sink that loads no
    /// database there (files, a queue, another system) returns false: no target table is
    /// needed or checked, its columns are the source's, and `compare` asks the sink itself
    /// ([`Sink::count`]) or compares nothing.
    fn loads_target(&self) -> bool {
        true
    }

    /// Whether [`Sink::count`] can say how many rows a window holds.
    fn counts(&self) -> bool {
        false
    }

    /// How many rows of `window` (`None`: a `full` table's one slot) the sink's output holds
    /// now, as a reader sees them; for `compare = "sink"`.
    async fn count(
        &self,
        table: &TableSpec,
        _window: Option<Window>,
        _columns: &[crate::engine::Column],
    ) -> Result<u64, RoleError> {
        Err(RoleError::new(format!("sink {:?} cannot count what it holds", table.sink.get_ref().plugin)))
    }

    /// Whether its windows can have the segments of a `flavour` target read an external
    /// location themselves ([`SinkWindow::load_external`]).
    fn loads_external(&self, _flavour: crate::dialect::Flavour) -> bool {
        false
    }

    /// Starts the window's transaction (and whatever the mode does first, e.g. the delete).
    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError>;
}

/// What a sink can tell about a load beyond the rows written (gpload's summary lines);
/// recorded in the window's history row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadDetail {
    /// Rows inserted.
    pub inserted: Option<u64>,
    /// Rows updated (merge, update).
    pub updated: Option<u64>,
    /// Rows the loader rejected as badly formatted.
    pub format_errors: Option<u64>,
    /// Rows of a merge batch replaced by a later row with the same key (the last row of the
    /// batch wins); they count as read but not as written.
    pub duplicates: Option<u64>,
}

/// A window's complete files staged by a transport where the sink may reach them itself (a
/// shared mount, or the remote host of the `ssh` transport), so a loader that reads files
/// (gpload) loads them in place.
#[derive(Debug, Clone)]
pub struct StagedFiles {
    /// The transport's root directory, as this process sees it.
    pub root: std::path::PathBuf,
    /// The data files, relative to `root`, in load order (`.gz`: gzip).
    pub files: Vec<std::path::PathBuf>,
    /// Their COPY format.
    pub format: CopyFormat,
    /// Rows in all files, from the manifest.
    pub rows: u64,
    /// The longest row in bytes (newline included), when the manifest says: a loader with a
    /// line limit (gpfdist's 32 KB) sizes it from this.
    pub longest_row: Option<u64>,
    /// `host:port` (its sshd) of the host holding the files, when they are not on a file
    /// system this machine shares (the `ssh` transport): a sink loads them in place only when
    /// it runs there itself.
    pub host: Option<String>,
}

/// One window being loaded: nothing is visible on the target before `commit`; dropping it
/// or calling `abort` rolls everything back.
#[async_trait]
pub trait SinkWindow: Send {
    /// Loads the stream; returns the rows written. Data stays uncommitted.
    async fn load(&mut self, rows: ByteStream) -> Result<u64, RoleError>;

    /// Loads staged files in place instead of a stream, when this sink reads files itself;
    /// `None` (the default) makes the transport stream them through [`SinkWindow::load`].
    async fn load_staged(&mut self, _staged: &StagedFiles) -> Option<Result<u64, RoleError>> {
        None
    }

    /// Has the target's segments read the window's rows from `location` into the target
    /// table, in the window's transaction; returns the rows written. Data stays uncommitted.
    /// Default: cannot.
    async fn load_external(&mut self, _location: &ExternalLocation) -> Result<u64, RoleError> {
        Err(RoleError::new("this sink cannot have the target's segments read an external location"))
    }

    /// What the load reported beyond the row count, after `load`.
    fn detail(&self) -> LoadDetail {
        LoadDetail::default()
    }

    /// The open transaction on the target, when the sink has one, so the engine can write
    /// history and cursor in the same transaction as the data.
    fn transaction(&self) -> Option<&tokio_postgres::Client>;

    /// Makes the window visible.
    async fn commit(self: Box<Self>) -> Result<(), RoleError>;

    /// Rolls the window back.
    async fn abort(self: Box<Self>);
}

#[cfg(test)]
mod tests {
    use super::{negotiate_format, CopyFormat::*};

    #[test]
    fn the_transport_preference_wins_within_what_both_ends_take() {
        // stream + copy → binary when the columns allow, else text.
        assert_eq!(
            negotiate_format(&[Text, Csv, Binary], &[Binary, Text, Csv], &[Text, Csv, Binary], true),
            Ok(Binary)
        );
        assert_eq!(negotiate_format(&[Text, Csv, Binary], &[Binary, Text, Csv], &[Text, Csv, Binary], false), Ok(Text));
        // shared-mount prefers CSV; a sink that loads text only gets text.
        assert_eq!(negotiate_format(&[Text, Csv, Binary], &[Csv, Text, Binary], &[Text], true), Ok(Text));
        // gpload takes CSV whatever the transport.
        assert_eq!(negotiate_format(&[Text, Csv], &[Binary, Text, Csv], &[Csv], true), Ok(Csv));
        let e = negotiate_format(&[Text], &[Binary, Text, Csv], &[Csv], true).unwrap_err();
        assert!(e.contains("source produces text") && e.contains("sink loads csv"), "{e}");
    }
}
