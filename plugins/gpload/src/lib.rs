//! The `gpload` sink: each window is written as a CSV data file (every row numbered) plus a
//! gpload control YAML into `work_dir` — or, behind a shared mount, gpload reads the window's
//! parts in place — and gpload runs them through a [`Runner`], locally ([`LocalRunner`], with
//! the `GPHOME` of its install) or on the ETL host over SSH ([`SshRunner`]). gpload only fills a
//! staging table; the window reaches the target in one transaction of ours, with the history row
//! and the cursor: a failed window leaves the target unchanged, and a merge keeps
//! the last row of each key, as the `copy` sink does. Its summary lines are parsed; a data
//! formatting error, a failed run or a row count different from the rows delivered fails the
//! window, in gpload's own words.

mod apply;
mod control;
mod gphome;
mod group;
mod names;
mod runner;
mod sink;
mod ssh_runner;
mod summary;
mod workdir;

pub use control::{yaml_quote, Control, LoadMode};
pub use gphome::{local_env, local_gphome, remote_prefix};
pub use names::check_merge_column;
pub use runner::{LocalRunner, RunOutput, Runner};
pub use sink::{preflight, GploadConfig, GploadSink, GploadSinkFactory};
pub use ssh_runner::SshRunner;
pub use summary::Summary;
