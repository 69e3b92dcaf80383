//! The readers' options, as written in the job's `reader = { … }` and `tables_from = { … }`.

use std::path::PathBuf;

use gptransfer_core::config::ConfigDuration;
use serde::Deserialize;

/// `reader = { plugin = "mysql", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlOptions {
    /// `mysql://user@host:port/database`; a password written here works but is never printed.
    pub url: String,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// The job table, `table` or `database.table`.
    #[serde(default = "default_job_table")]
    pub table: String,
    /// The job row's name; the TOML job's name when unset.
    pub job_name: Option<String>,
    /// Column names of the job table.
    #[serde(default)]
    pub columns: JobColumns,
    /// Value of the valid-flag column that marks a row in use.
    #[serde(default = "default_valid")]
    pub valid_value: String,
    /// Column set to the server's `NOW()` whenever the row is advanced.
    pub dbtimestamp_column: Option<String>,
    /// Unit of a numeric duration cell.
    #[serde(default)]
    pub duration_unit: DurationUnit,
    /// How long connecting and each statement may take.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

/// Column names of the job table (`etl_conf_d`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobColumns {
    /// The job's name.
    #[serde(default = "c_job_name")]
    pub job_name: String,
    /// Start of the span due (the job's cursor).
    #[serde(default = "c_run_start")]
    pub run_start: String,
    /// End of the span due.
    #[serde(default = "c_run_end")]
    pub run_end: String,
    /// The valid flag.
    #[serde(default = "c_valid")]
    pub valid_flag: String,
    /// Per-row window length (a number in `duration_unit`, or `30m`-style text).
    pub duration: Option<String>,
    /// Per-row condition column of the tables.
    pub condition_column: Option<String>,
    /// Per-row backfill bound.
    pub final_end: Option<String>,
}

impl Default for JobColumns {
    fn default() -> Self {
        JobColumns {
            job_name: c_job_name(),
            run_start: c_run_start(),
            run_end: c_run_end(),
            valid_flag: c_valid(),
            duration: None,
            condition_column: None,
            final_end: None,
        }
    }
}

/// The unit of a numeric duration cell.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationUnit {
    /// Seconds.
    Seconds,
    /// Minutes (the default).
    #[default]
    Minutes,
    /// Hours.
    Hours,
    /// Days.
    Days,
}

impl DurationUnit {
    pub fn seconds(self) -> f64 {
        match self {
            DurationUnit::Seconds => 1.0,
            DurationUnit::Minutes => 60.0,
            DurationUnit::Hours => 3600.0,
            DurationUnit::Days => 86400.0,
        }
    }
}

/// `tables_from = { plugin = "table-list", … }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableListOptions {
    /// Cluster holding the list.
    pub cluster: String,
    /// The list table, `schema.table` (unquoted parts fold to lower case).
    pub table: String,
    /// Its column names, as the catalog spells them.
    #[serde(default)]
    pub columns: ListColumns,
    /// Value of the valid-flag column that marks a row in use.
    #[serde(default = "default_valid")]
    pub valid_value: String,
    /// Columns present in both the list and the job table that pick each table's job row
    /// (the seed: `["opera_type", "duration", "job_group"]`).
    #[serde(default)]
    pub join: Vec<String>,
    /// `exact` (default): the cells are names as the catalog spells them, quoted as they are;
    /// `sql`: the cells are SQL identifiers, folded to lower case unless double-quoted.
    #[serde(default)]
    pub names: NameStyle,
    /// Condition column of the listed tables, unless the job row names one.
    pub condition_column: Option<String>,
}

/// Column names of the table list (`sor.schemaName`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListColumns {
    /// Schema of a listed table.
    #[serde(default = "c_schema")]
    pub schema: String,
    /// Name of a listed table.
    #[serde(default = "c_table")]
    pub table: String,
    /// The valid flag.
    #[serde(default = "c_list_valid")]
    pub valid_flag: String,
}

impl Default for ListColumns {
    fn default() -> Self {
        ListColumns { schema: c_schema(), table: c_table(), valid_flag: c_list_valid() }
    }
}

/// How the list's cells spell table names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameStyle {
    /// As the catalog spells them.
    #[default]
    Exact,
    /// As SQL identifiers.
    Sql,
}

fn default_job_table() -> String {
    "etl_conf_d".into()
}
fn default_valid() -> String {
    "Y".into()
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(30))
}
fn c_job_name() -> String {
    "JOB_NAME".into()
}
fn c_run_start() -> String {
    "RUN_START_TIMESTAMP".into()
}
fn c_run_end() -> String {
    "RUN_END_TIMESTAMP".into()
}
fn c_valid() -> String {
    "VALID_FLG".into()
}
fn c_schema() -> String {
    "schemaname".into()
}
fn c_table() -> String {
    "tablename".into()
}
fn c_list_valid() -> String {
    "valid_flag".into()
}
