//! The `gpload` sink (issue 4, item 4): each window is written as a COPY text data file plus a
//! gpload control YAML into `work_dir`, and gpload runs them through a [`Runner`] — locally
//! ([`LocalRunner`]) or, with `host`, on the ETL host over SSH ([`SshRunner`]). gpload commits
//! by itself: its whole load, `SQL: BEFORE`/`AFTER` included, is one transaction, so `replace`
//! puts the window's DELETE in `BEFORE`. Its summary lines are parsed; a data formatting error, a failed run or a
//! row count different from the rows delivered fails the window, in gpload's own words.

mod control;
mod names;
mod runner;
mod sink;
mod ssh_runner;
mod summary;

pub use control::{yaml_quote, Control, LoadMode};
pub use names::check_merge_column;
pub use runner::{LocalRunner, RunOutput, Runner};
pub use sink::{preflight, GploadConfig, GploadSink, GploadSinkFactory};
pub use ssh_runner::SshRunner;
pub use summary::Summary;
