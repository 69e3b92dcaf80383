//! The interface external gptransfer plugins are built against.
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) that implements [`Sink`] and
//! [`SinkWindow`] and exports them with [`export_sink_plugin!`]. The host loads the libraries
//! named in `[plugins] paths`, checks that they were built against this SDK's version, and
//! then drives one window at a time: `begin`, `write` (COPY text bytes, in chunks that need not
//! end on row boundaries), `commit` (returning the rows it wrote) or `abort`.
//!
//! The boundary is synchronous and coarse; only bytes and strings cross it. Every entry point
//! catches panics and turns them into errors, so a panicking plugin fails its window and the
//! host keeps running.
//!
//! This crate's version is the plugin interface version: the host refuses a plugin built
//! against another one, naming the file and both versions.
#![warn(missing_docs)]

pub mod conformance;
pub mod ffi;
mod guard;

use std::fmt;

/// The plugin interface version this SDK speaks.
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plugin's failure: what went wrong, and whether a later run may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What failed, in words.
    pub message: String,
    /// True when a later attempt may succeed (a network hiccup, a full disk being cleaned).
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
    fn from(e: std::io::Error) -> Self {
        PluginError::fatal(e.to_string())
    }
}

/// The window a sink is asked to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    /// `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`, as history shows it.
    pub id: String,
    /// Inclusive start, `YYYY-MM-DD HH:MM:SS`.
    pub start: String,
    /// Exclusive end, `YYYY-MM-DD HH:MM:SS`.
    pub end: String,
    /// The source table, `schema.table`.
    pub table: String,
    /// The target table, `schema.table`.
    pub target_table: String,
    /// The columns of each row, in order.
    pub columns: Vec<String>,
    /// The load mode: `replace`, `append`, `merge` or `full`.
    pub mode: String,
}

/// An external sink: made once per table from its options, then asked for one window at a time.
pub trait Sink: Send + Sync + Sized + 'static {
    /// The name tables use to select it (`sink = "<NAME>"`).
    const NAME: &'static str;
    /// One line for `gptransfer plugins`.
    const DESCRIPTION: &'static str;
    /// What a window in progress is.
    type Window: SinkWindow;

    /// Checks the options (a TOML table, as text) without I/O.
    fn validate(_config_toml: &str) -> Result<(), PluginError> {
        Ok(())
    }

    /// Makes the sink from its options (a TOML table, as text).
    fn new(config_toml: &str) -> Result<Self, PluginError>;

    /// Starts loading one window. Nothing may be visible before the window's `commit`.
    fn begin(&self, window: &WindowInfo) -> Result<Self::Window, PluginError>;
}

/// One window being loaded.
pub trait SinkWindow: Send + 'static {
    /// Takes the next chunk of COPY text bytes (rows end with `\n`; a chunk may end mid-row).
    fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError>;

    /// Makes the window visible; returns the rows written.
    fn commit(self) -> Result<u64, PluginError>;

    /// Throws the window away: afterwards nothing of it may be visible.
    fn abort(self);
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
