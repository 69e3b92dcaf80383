//! Dialects: which server we talk to and the SQL that differs between them. Every per-flavour
//! variant lives here, side by side, so a reader sees them at once.

pub mod canonical;
pub mod external;
mod flavour;
mod ident;
pub mod indexes;
pub mod sql;

pub use flavour::Flavour;
pub use ident::{quote_ident, quote_literal, QualifiedName};
