//! The interface external gptransfer plugins are built against.
//!
//! Its crate version is the plugin interface version: the host refuses a plugin built
//! against another one. The sink interface itself arrives with the external-plugin work;
//! until then this crate only publishes the version.
#![warn(missing_docs)]

/// The plugin interface version this SDK speaks.
pub const INTERFACE_VERSION: &str = env!("CARGO_PKG_VERSION");
