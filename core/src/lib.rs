//! gptransfer's core: configuration, windows, roles and their registry, the run engine with
//! its atomic windows, state (history, cursors, locks) and the per-flavour SQL.
#![warn(missing_docs)]

pub mod cluster;
pub mod compare;
pub mod config;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod registry;
pub mod roles;
pub mod rowcount;
pub mod state;
pub mod window;

pub use error::{Error, RoleError};

/// This machine's name, for history rows and session names.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}
