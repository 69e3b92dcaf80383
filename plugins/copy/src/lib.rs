//! The `copy` source and sink: `COPY (SELECT … WHERE window) TO STDOUT` from GP5/6/7 and
//! PostgreSQL, and `COPY … FROM STDIN` into the target in one transaction per window.

mod indexes;
mod sink;
mod source;

pub use sink::{CopySink, CopySinkConfig, CopySinkFactory};
pub use source::{CopySource, CopySourceConfig, CopySourceFactory};
