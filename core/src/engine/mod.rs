//! The run engine: select tables, lock jobs, check, plan, and move each window atomically.

mod backfill;
mod check;
pub mod clock;
mod compare_run;
mod create;
mod frontier;
mod interrupt;
mod narrowing;
mod retry;
mod run;
mod select;
mod status;
mod window_run;

pub use check::{
    check_append_atomic, check_for_sink, check_source_for_sink, check_table, source_only_check, Column, TableCheck,
};
pub use compare_run::{comparator_for, compare_tables, CompareOptions};
pub use create::{ensure_target, target_ddl, target_exists, target_type};
pub use frontier::Frontier;
pub use interrupt::Interrupt;
pub use run::{
    plan_tables, run, table_key, ExternalCursorReport, Observer, PlannedTable, RunOptions, RunReport, WindowReport,
    WindowStatus,
};
pub use select::select_tables;
pub use status::{status_tables, LastFailure, TableStatus};
