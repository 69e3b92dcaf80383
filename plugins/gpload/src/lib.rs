//! The `gpload` sink (issue 4, item 4): each window is written as a COPY text data file plus a
//! gpload control YAML into `work_dir`, and gpload runs them through a [`Runner`] — locally for
//! now; an SSH runner (ETL host) plugs into the same trait. gpload commits by itself: its whole
//! load, `SQL: BEFORE`/`AFTER` included, is one transaction, so `replace` puts the window's
//! DELETE in `BEFORE`. Its summary lines are parsed; a data formatting error, a failed run or a
//! row count different from the rows delivered fails the window, in gpload's own words.

mod control;
mod names;
mod runner;
mod sink;
mod summary;

pub use control::{yaml_quote, Control, LoadMode};
pub use names::check_merge_column;
pub use runner::{LocalRunner, RunOutput, Runner};
pub use sink::{GploadConfig, GploadSink, GploadSinkFactory};
pub use summary::Summary;
