//! Build your own gptransfer sink: a shared library that gptransfer loads and hands each
//! window's rows to, atomically, window by window.
//!
//! # What a sink is
//!
//! gptransfer moves a table from a source cluster in time windows (an hour of
//! `evt_timestamp`, say). A sink receives one window at a time:
//!
//! 1. [`Sink::begin`] with the window's [`WindowInfo`]: its bounds, the columns with their
//!    types and nullability, the key columns, the load [`Mode`], and a stable
//!    [`slot`](WindowInfo::slot) to keep the window's output under;
//! 2. [`SinkWindow::write`] with chunks of COPY text bytes (a chunk may end anywhere, even
//!    inside a row or a UTF-8 character: feed them to a [`decode::Decoder`]);
//! 3. [`SinkWindow::prepare`]: everything is written and durable but **not visible**; it
//!    returns the rows the sink took. gptransfer checks that count against the rows it read
//!    from the source before going on, so a window that lost rows is never visible;
//! 4. [`SinkWindow::commit`]: the window becomes visible, whole;
//! 5. or, after any failure (an error or a panic in any step, a count that does not match, an
//!    interrupted run), [`SinkWindow::abort`]: nothing of this attempt may stay behind.
//!
//! A window can be loaded again (a re-run after a failure, `compare --repair`, `reload`): a
//! committed re-load **replaces** what the slot held, it never adds to it.
//!
//! # A sink in 60 lines
//!
//! A sink that writes each window as one tab-separated file per slot, through a temporary
//! file renamed into place at commit:
//!
//! ```
//! use std::fs;
//! use std::io::Write;
//! use std::path::PathBuf;
//!
//! use gptransfer_sdk::decode::{Decoder, Format};
//! use gptransfer_sdk::{Mode, Options, PluginError, Sink, SinkWindow, WindowInfo};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     dir: PathBuf,
//! }
//!
//! pub struct Tsv {
//!     dir: PathBuf,
//! }
//!
//! impl Sink for Tsv {
//!     const NAME: &'static str = "tsv";
//!     const DESCRIPTION: &'static str = "each window as a tab-separated file";
//!     const MODES: &'static [Mode] = &[Mode::Replace, Mode::Full];
//!     type Window = TsvWindow;
//!
//!     fn validate(options: &Options) -> Result<(), PluginError> {
//!         options.parse::<Config>().map(drop)
//!     }
//!
//!     fn new(options: &Options) -> Result<Self, PluginError> {
//!         // A relative `dir` is taken from the config file's directory.
//!         Ok(Tsv { dir: options.resolve(options.parse::<Config>()?.dir) })
//!     }
//!
//!     fn begin(&self, window: &WindowInfo) -> Result<TsvWindow, PluginError> {
//!         let dir = self.dir.join(&window.target_table);
//!         fs::create_dir_all(&dir)?;
//!         let path = dir.join(format!("{}.tsv", window.slot));
//!         let tmp = dir.join(format!(".{}.tsv.tmp", window.slot));
//!         let file = fs::File::create(&tmp)?;
//!         let decoder = Decoder::new(Format::Text).with_columns(window.columns.len());
//!         Ok(TsvWindow { decoder, file: Some(file), tmp, path })
//!     }
//! }
//!
//! pub struct TsvWindow {
//!     decoder: Decoder,
//!     file: Option<fs::File>,
//!     tmp: PathBuf,
//!     path: PathBuf,
//! }
//!
//! impl SinkWindow for TsvWindow {
//!     fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
//!         let file = self.file.as_mut().ok_or_else(|| PluginError::fatal("the window is closed"))?;
//!         self.decoder.push(chunk);
//!         while let Some(row) = self.decoder.next_row()? {
//!             let fields: Vec<&str> = row.values().iter().map(|v| v.as_deref().unwrap_or("")).collect();
//!             writeln!(file, "{}", fields.join("\t"))?;
//!         }
//!         Ok(())
//!     }
//!
//!     fn prepare(&mut self) -> Result<u64, PluginError> {
//!         self.decoder.finish()?;
//!         if let Some(file) = self.file.take() {
//!             file.sync_all()?;
//!         }
//!         Ok(self.decoder.rows())
//!     }
//!
//!     fn commit(&mut self) -> Result<(), PluginError> {
//!         Ok(fs::rename(&self.tmp, &self.path)?)
//!     }
//!
//!     fn abort(&mut self) {
//!         self.file = None;
//!         let _ = fs::remove_file(&self.tmp);
//!     }
//! }
//!
//! gptransfer_sdk::export_sink_plugin!(Tsv);
//! ```
//!
//! Its `Cargo.toml` needs nothing from gptransfer's repository:
//!
//! ```toml
//! [package]
//! name = "my-tsv-sink"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # cdylib for gptransfer, rlib for its own tests
//!
//! [dependencies]
//! gptransfer-sdk = "0.2"            # or { path = "…/gptransfer/sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! and a config uses it by name after listing the library:
//!
//! ```toml
//! [plugins]
//! paths = ["/opt/sinks/libmy_tsv_sink.so"]
//!
//! [[jobs.defects.tables]]
//! table = "eda.defect"
//! condition_column = "evt_timestamp"
//! sink = { plugin = "tsv", dir = "export" }
//! ```
//!
//! # Test it before gptransfer ever loads it
//!
//! [`conformance::check_sink`] runs the contract above against your sink in a unit test:
//! decoded values, invisibility before commit, replacement on re-load, cleanup after a failed
//! window and a failed commit, `full` mode's stable slot. See its docs.
//!
//! # What else the SDK gives
//!
//! - [`Options`]: the sink's options from the config, parsed into your own serde type, with
//!   paths resolved against the config file's directory.
//! - [`log`]: lines in gptransfer's own log, at its levels.
//! - [`PluginError::retriable`]: a failure a later attempt may not meet (a full disk being
//!   cleaned, a network hiccup); gptransfer retries the window (`retries`, `retry_delay`).
//! - [`Sink::count`] with [`Sink::COUNTS`]: let `compare` check what your sink holds against
//!   the source (`compare = "sink"`), since there is no target table to compare.
//!
//! # Compatibility
//!
//! This crate's version is the plugin interface version: gptransfer refuses a library built
//! against another one, naming the file and both versions. Every entry point catches panics and
//! turns them into errors: a panicking plugin fails its window, never the process.
#![warn(missing_docs)]

pub mod conformance;
pub mod decode;
pub mod ffi;
mod guard;
pub mod log;
mod options;

use std::fmt;

pub use options::Options;

/// The plugin interface version this SDK speaks.
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plugin's failure: what went wrong, and whether a later attempt may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What failed, in words.
    pub message: String,
    /// True when a later attempt may succeed (a network hiccup, a full disk being cleaned):
    /// gptransfer then retries the window after `retry_delay`.
    pub retriable: bool,
}

impl PluginError {
    /// A failure that will happen again (bad config, bad data).
    pub fn fatal(message: impl Into<String>) -> Self {
        PluginError { message: message.into(), retriable: false }
    }

    /// A failure a later attempt may not meet: a window failing so before `commit` is tried
    /// again in the same run, up to the table's `retries`.
    pub fn retriable(message: impl Into<String>) -> Self {
        PluginError { message: message.into(), retriable: true }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<std::io::Error> for PluginError {
    /// I/O errors other than "not found", "permission denied" and bad data are taken as
    /// retriable: a full disk or a lost mount may be fixed by the next attempt.
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            NotFound | PermissionDenied | InvalidInput | InvalidData | Unsupported => PluginError::fatal(e.to_string()),
            _ => PluginError::retriable(e.to_string()),
        }
    }
}

/// How a window is loaded (the table's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The window's rows replace whatever the slot held.
    Replace,
    /// The window's rows are added to the target. Refused for external sinks: a run that died
    /// between the sink's commit and gptransfer's own bookkeeping would add them twice.
    Append,
    /// Rows replace the rows with the same key (the last row of a key in a window wins).
    Merge,
    /// The whole table in one window, replacing the previous full load (see
    /// [`WindowInfo::slot`]).
    Full,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 4] = [Mode::Replace, Mode::Append, Mode::Merge, Mode::Full];

    /// As written in config files: `replace`, `append`, `merge`, `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Replace => "replace",
            Mode::Append => "append",
            Mode::Merge => "merge",
            Mode::Full => "full",
        }
    }

    /// The mode a config name stands for.
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a column's values are, from its type on the source: enough to write a typed value
/// (a JSON number rather than a string) without knowing every database type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TypeKind {
    /// `boolean`: COPY text `t` or `f`.
    Bool,
    /// `smallint`, `integer`, `bigint`, `oid`: decimal digits.
    Integer,
    /// `real`, `double precision`: may also be `NaN`, `Infinity`, `-Infinity`.
    Float,
    /// `numeric`/`decimal`: exact decimal text (may be `NaN`); keep it as text to stay exact.
    Numeric,
    /// `text`, `varchar`, `char`, `name`, and anything text-like.
    Text,
    /// `date`: `YYYY-MM-DD` (or `infinity`).
    Date,
    /// `time`, `timetz`.
    Time,
    /// `timestamp`: `YYYY-MM-DD HH:MM:SS[.ffffff]` (or `±infinity`).
    Timestamp,
    /// `timestamptz`: as `timestamp` with an offset.
    TimestampTz,
    /// `interval`.
    Interval,
    /// `bytea`: `\x` followed by hex digits.
    Bytes,
    /// `json`, `jsonb`: JSON text.
    Json,
    /// `uuid`.
    Uuid,
    /// Any array type: PostgreSQL's `{…}` text.
    Array,
    /// Anything else: take the text as it is.
    Other,
}

impl TypeKind {
    /// The kind of a PostgreSQL/Greenplum `typname` (`int4`, `_text`, `timestamptz`, …).
    pub fn of(type_name: &str) -> TypeKind {
        match type_name {
            t if t.starts_with('_') => TypeKind::Array,
            "bool" => TypeKind::Bool,
            "int2" | "int4" | "int8" | "oid" => TypeKind::Integer,
            "float4" | "float8" => TypeKind::Float,
            "numeric" => TypeKind::Numeric,
            "text" | "varchar" | "bpchar" | "char" | "name" | "citext" => TypeKind::Text,
            "date" => TypeKind::Date,
            "time" | "timetz" => TypeKind::Time,
            "timestamp" => TypeKind::Timestamp,
            "timestamptz" => TypeKind::TimestampTz,
            "interval" => TypeKind::Interval,
            "bytea" => TypeKind::Bytes,
            "json" | "jsonb" => TypeKind::Json,
            "uuid" => TypeKind::Uuid,
            _ => TypeKind::Other,
        }
    }
}

/// One column of the rows a sink receives, in row order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// The source's `typname` (`int4`, `numeric`, `timestamp`, `_text`, …).
    pub type_name: String,
    /// The source's declared type as SQL shows it (`numeric(12,3)`, `character varying(64)`).
    pub type_text: String,
    /// Its kind, from `type_name`.
    pub kind: TypeKind,
    /// False when the source declares it NOT NULL.
    pub nullable: bool,
}

/// The window a sink is asked to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    /// The job, as the config names it.
    pub job: String,
    /// `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`, as history shows it. In `full` mode it changes every
    /// run (the run's start and end): keep output under [`WindowInfo::slot`] instead.
    pub id: String,
    /// Where this window's output belongs, stable across re-loads: the window id, or `full`
    /// for a `full` load, so each full load replaces the previous one.
    pub slot: String,
    /// Inclusive start, `YYYY-MM-DD HH:MM:SS`.
    pub start: String,
    /// Exclusive end, `YYYY-MM-DD HH:MM:SS`.
    pub end: String,
    /// The source table, `schema.table`.
    pub table: String,
    /// The target table, `schema.table` (its name in the config; no database holds it unless
    /// the sink makes it so).
    pub target_table: String,
    /// The columns of each row, in order.
    pub columns: Vec<Column>,
    /// The key columns (`key` in the config; empty when none), in key order.
    pub key: Vec<String>,
    /// The load mode.
    pub mode: Mode,
}

impl WindowInfo {
    /// The columns' names, in row order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The positions of the key columns in each row, in key order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key.iter().filter_map(|k| self.columns.iter().position(|c| &c.name == k)).collect()
    }
}

/// An external sink: made once per table from its options, then asked for one window at a time.
pub trait Sink: Send + Sync + Sized + 'static {
    /// The name tables use to select it (`sink = "<NAME>"`).
    const NAME: &'static str;
    /// One line for `gptransfer plugins`.
    const DESCRIPTION: &'static str;
    /// The modes it loads; `config check` and `run` refuse a table in another mode. `Append`
    /// is refused by gptransfer for every external sink whatever this says (see [`Mode`]).
    const MODES: &'static [Mode] = &[Mode::Replace, Mode::Merge, Mode::Full];
    /// Whether [`Sink::count`] can say how many rows a window holds (for `compare = "sink"`).
    const COUNTS: bool = false;
    /// What a window in progress is.
    type Window: SinkWindow;

    /// Checks the options without I/O (for `config check` and `plan`).
    fn validate(_options: &Options) -> Result<(), PluginError> {
        Ok(())
    }

    /// Makes the sink from its options.
    fn new(options: &Options) -> Result<Self, PluginError>;

    /// Starts loading one window. Nothing may be visible before the window's `commit`.
    fn begin(&self, window: &WindowInfo) -> Result<Self::Window, PluginError>;

    /// How many rows the window's slot holds now, as a reader would see them (0 when it holds
    /// nothing). Used by `compare` when [`Sink::COUNTS`] is true.
    fn count(&self, _window: &WindowInfo) -> Result<u64, PluginError> {
        Err(PluginError::fatal(format!("sink {:?} cannot count what it holds", Self::NAME)))
    }
}

/// One window being loaded. After any failure gptransfer calls [`SinkWindow::abort`], once,
/// whatever step failed; a committed window is never aborted.
pub trait SinkWindow: Send + 'static {
    /// Takes the next chunk of COPY text bytes (rows end with `\n`; a chunk may end anywhere).
    fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError>;

    /// All rows are written: make them durable but not yet visible, and say how many there are.
    /// gptransfer compares the count with the rows it read before it calls `commit`.
    fn prepare(&mut self) -> Result<u64, PluginError>;

    /// Makes the prepared window visible, replacing what its slot held.
    fn commit(&mut self) -> Result<(), PluginError>;

    /// Throws the attempt away: afterwards nothing of it may be visible or left behind (temp
    /// files included). Called after a failed `write`, `prepare` or `commit` too.
    fn abort(&mut self);
}

/// Exports a [`Sink`] type as this library's gptransfer plugin.
///
/// ```ignore
/// gptransfer_sdk::export_sink_plugin!(MySink);
/// ```
///
/// Every entry point it exports catches panics and reports them as errors.
#[macro_export]
macro_rules! export_sink_plugin {
    ($sink:ty) => {
        #[doc(hidden)]
        pub struct __GptransferSinkPlugin;

        impl $crate::ffi::PluginMeta for __GptransferSinkPlugin {
            type Sink = $sink;
            const VERSION: &'static str = env!("CARGO_PKG_VERSION");
        }

        // The name abi_stable's loader looks up; a test in `ffi` checks it against abi_stable's.
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::ffi::LibHeader =
            $crate::ffi::lib_header::<__GptransferSinkPlugin>();
    };
}
