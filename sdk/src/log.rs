//! Lines in gptransfer's log: a plugin's messages appear among the host's own, at the level
//! the user asked for (`-v`, `-q`, `RUST_LOG`), named by the plugin.
//!
//! ```
//! gptransfer_sdk::log::info(format!("wrote {} rows to {}", 42, "/data/out"));
//! ```
//!
//! Outside gptransfer (a plugin's own unit tests) the lines go to standard error.

use std::sync::OnceLock;

use abi_stable::std_types::RString;

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something is wrong but the work goes on.
    Warn = 2,
    /// What an operator wants to see in a normal run's log.
    Info = 3,
    /// Detail for finding a problem (`-v`).
    Debug = 4,
}

impl Level {
    /// The level a number from the boundary stands for (unknown numbers are debug).
    pub fn from_u8(n: u8) -> Level {
        match n {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// The host's log function, as it crosses the boundary.
#[repr(C)]
#[derive(abi_stable::StableAbi, Clone, Copy)]
pub struct HostLog {
    /// Writes one line at a [`Level`] given as its number.
    pub log: extern "C" fn(level: u8, message: RString),
}

static HOST: OnceLock<HostLog> = OnceLock::new();

/// Called by the host when it loads the library (through the root module).
pub(crate) fn set_host(log: HostLog) {
    let _ = HOST.set(log);
}

/// Writes one line at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    let message = message.as_ref();
    match HOST.get() {
        Some(host) => (host.log)(level as u8, RString::from(message)),
        None => eprintln!("{level:?}: {message}"),
    }
}

/// Writes an error line.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message)
}

/// Writes a warning line.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message)
}

/// Writes an information line.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message)
}

/// Writes a debug line.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message)
}
