//! Errors people meet: each says what failed, where (cluster, table, window) and what to do.

use std::fmt;

use crate::config::ConfigError;

/// Exit codes of SPEC §5.
pub mod exit {
    /// Everything succeeded.
    pub const OK: i32 = 0;
    /// A window or command failed.
    pub const FAILED: i32 = 1;
    /// Usage or configuration error (nothing moved).
    pub const CONFIG: i32 = 2;
    /// Differences found / alarm ABNORMAL.
    pub const DIFFERENCES: i32 = 3;
    /// Another run holds the job's lock.
    pub const LOCKED: i32 = 75;
    /// Ctrl+C.
    pub const SIGINT: i32 = 130;
    /// SIGTERM.
    pub const SIGTERM: i32 = 143;
}

/// A failure of the tool, sorted by what the user must do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A cluster cannot be reached or refuses us.
    #[error("cluster {cluster:?} ({address}): {message}{}", hint_suffix(.hint))]
    Cluster {
        /// Cluster name from the config.
        cluster: String,
        /// `user@host:port/db` — never the password.
        address: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A config reader's table (the MySQL job table) cannot be read, or names no row for the
    /// job: the job it defines cannot run; other jobs can.
    #[error("{reader} at {address}: {message}{}", hint_suffix(.hint))]
    Reader {
        /// What is read, in words: `MySQL job table etl_conf_d`.
        reader: String,
        /// `host:port (database …, user …)` — never the password.
        address: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A table does not fit its config (missing, wrong columns, wrong types).
    #[error("job {job:?}, table {table}: {message}{}", hint_suffix(.hint))]
    Check {
        /// Job name.
        job: String,
        /// Table as shown to people.
        table: String,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// Another process holds the job's lock.
    #[error("job {job:?} is already running: the lock is held by {holder}\nhint: wait for that run to end, or stop it; runs of one job never interleave")]
    Locked {
        /// Job name.
        job: String,
        /// Who holds it.
        holder: String,
    },
    /// The state tables cannot be used.
    #[error("state on cluster {cluster:?}: {message}")]
    State {
        /// State cluster.
        cluster: String,
        /// What failed.
        message: String,
    },
    /// Some windows failed (details were reported per window).
    #[error("{failed} window(s) failed; see the messages above and `gptransfer history --failed`")]
    WindowsFailed {
        /// How many.
        failed: usize,
    },
    /// The run was stopped by a signal; the window in flight was rolled back.
    #[error("interrupted by {}; the window in flight was rolled back", signal_name(*.signal))]
    Interrupted {
        /// 2 (SIGINT) or 15 (SIGTERM).
        signal: i32,
    },
    /// The run was stopped by a signal while it checked and planned, before any window.
    #[error("interrupted by {} before any window moved (while checking and planning); nothing was loaded", signal_name(*.signal))]
    InterruptedBeforeWindows {
        /// 2 (SIGINT) or 15 (SIGTERM).
        signal: i32,
    },
    /// `compare --repair` was stopped by a signal after its repairs, while it compared again.
    #[error("interrupted by {} while comparing the repaired windows again: the repairs that finished are loaded; `gptransfer compare` shows where they stand", signal_name(*.signal))]
    InterruptedAfterRepair {
        /// 2 (SIGINT) or 15 (SIGTERM).
        signal: i32,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        2 => "SIGINT (Ctrl+C)",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

impl Error {
    /// The process exit code for this error (SPEC §5).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::Cluster { .. } | Error::Check { .. } => exit::CONFIG,
            Error::Locked { .. } => exit::LOCKED,
            // Not the file's fault: the job table was unreachable or refused us.
            Error::State { .. } | Error::WindowsFailed { .. } | Error::Reader { .. } => exit::FAILED,
            Error::Interrupted { signal: 15 }
            | Error::InterruptedBeforeWindows { signal: 15 }
            | Error::InterruptedAfterRepair { signal: 15 } => exit::SIGTERM,
            Error::Interrupted { .. }
            | Error::InterruptedBeforeWindows { .. }
            | Error::InterruptedAfterRepair { .. } => exit::SIGINT,
        }
    }
}

/// An error inside a plugin while it moves one window. The engine adds table and window.
#[derive(Debug, Clone)]
pub struct RoleError {
    /// What failed, in words.
    pub message: String,
    /// A connection problem that a later run may not meet (SQLSTATE class 08, I/O).
    pub retriable: bool,
}

impl RoleError {
    /// A plain failure.
    pub fn new(message: impl Into<String>) -> Self {
        RoleError { message: message.into(), retriable: false }
    }

    /// A failure a retry may cure.
    pub fn retriable(message: impl Into<String>) -> Self {
        RoleError { message: message.into(), retriable: true }
    }

    /// From a database error, with the server's message, detail and hint.
    pub fn from_pg(context: &str, e: &tokio_postgres::Error) -> Self {
        let retriable = is_connection_error(e);
        RoleError { message: format!("{context}: {}", pg_message(e)), retriable }
    }
}

impl fmt::Display for RoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RoleError {}

/// A database error in words: the server's message with detail, hint and SQLSTATE; or the
/// connection problem behind a client error.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        if let Some(w) = db.where_() {
            s.push_str(&format!("; where: {}", w.lines().next().unwrap_or(w)));
        }
        return s;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let s = inner.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = inner.source();
    }
    if e.is_closed() && !text.contains("closed") {
        text.push_str(" (connection closed)");
    }
    text
}

/// SQLSTATE class 08 or a transport error: the connection, not the data, failed.
pub fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        None => true,
    }
}
