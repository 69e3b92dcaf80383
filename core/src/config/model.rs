//! The TOML file as written by users (SPEC §6). Every struct rejects unknown keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::duration::ConfigDuration;
use super::plugin_spec::PluginSpec;
use super::preset::PresetConfig;
use super::timestamp::ConfigTimestamp;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Named connections.
    #[serde(default)]
    pub clusters: BTreeMap<String, Spanned<ClusterConfig>>,
    /// Where history, cursors, locks and alarms live.
    pub state: Option<Spanned<StateConfig>>,
    /// Named groups of tables.
    #[serde(default)]
    pub jobs: BTreeMap<String, Spanned<JobConfig>>,
    /// External plugin libraries (loaded by the plugin host).
    #[serde(default)]
    pub plugins: Option<PluginsConfig>,
    /// What `alarm check` prints, and an optional mirror table.
    pub alarm: Option<Spanned<AlarmConfig>>,
}

/// Alarm output and mirroring (the seed's `system_alarm` on another cluster).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmConfig {
    /// First word(s) of `alarm check` when differences are active.
    #[serde(default = "default_abnormal")]
    pub abnormal_message: String,
    /// What `alarm check` prints when nothing is active.
    #[serde(default = "default_normal")]
    pub normal_message: String,
    /// Cluster holding a mirror table that also receives every alarm.
    pub mirror_cluster: Option<String>,
    /// The mirror table: columns `data_name text, evt_timestamp timestamp, message text`.
    pub mirror_table: Option<String>,
}

fn default_abnormal() -> String {
    "ABNORMAL".into()
}

fn default_normal() -> String {
    "NORMAL".into()
}

/// External plugin libraries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Paths of shared libraries built against the `gptransfer-sdk` crate.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
}

/// One cluster: where it is and how to log in. Secrets come from env, a file or `.pgpass`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `postgres://user@host:port/db`; a password written here works but is never printed.
    pub url: Option<String>,
    /// Host, when no url is given (else `$PGHOST`, else localhost).
    pub host: Option<String>,
    /// Port, when no url is given (else `$PGPORT`, else 5432).
    pub port: Option<u16>,
    /// Database, when no url is given (else `$PGDATABASE`, else the user name).
    pub dbname: Option<String>,
    /// User, when no url is given (else `$PGUSER`, else the OS user).
    pub user: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// libpq's `sslmode`: `disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`.
    pub sslmode: Option<SslMode>,
    /// CA certificate(s), PEM, that verify-ca / verify-full check the server against (default:
    /// `~/.postgresql/root.crt`, as libpq).
    pub sslrootcert: Option<PathBuf>,
    /// Skip `version()` detection and use this flavour.
    pub flavor: Option<FlavourName>,
    /// How long connecting may take.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    /// How long any single read from this cluster may stall before the window fails.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: ConfigDuration,
}

fn default_connect_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(10))
}

fn default_read_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(600))
}

/// libpq's sslmode values, with libpq's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, else plain TCP; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, the certificate signed by `sslrootcert`.
    VerifyCa,
    /// TLS, the certificate signed by `sslrootcert` and issued for the host connected to.
    VerifyFull,
}

/// A flavour name written in the config to override detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlavourName {
    /// Greenplum 4 (PostgreSQL 8.2 kernel).
    Gp4,
    /// Greenplum 5 (8.3).
    Gp5,
    /// Greenplum 6 (9.4).
    Gp6,
    /// Greenplum 7 (12).
    Gp7,
    /// Plain PostgreSQL.
    Postgres,
}

/// Where the tool keeps its own tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Cluster name; defaults to the target of the first job.
    pub cluster: Option<String>,
    /// Schema created and owned by the tool.
    #[serde(default = "default_state_schema")]
    pub schema: String,
}

fn default_state_schema() -> String {
    "gptransfer".to_string()
}

/// A table's load mode (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Delete the window on the target, then insert.
    Replace,
    /// Insert only.
    Append,
    /// Upsert by the key columns (staging + delete + insert).
    Merge,
    /// Truncate and reload the whole table.
    Full,
}

impl Mode {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Replace => "replace",
            Mode::Append => "append",
            Mode::Merge => "merge",
            Mode::Full => "full",
        }
    }

    /// The mode a config name stands for.
    pub fn parse(name: &str) -> Option<Mode> {
        [Mode::Replace, Mode::Append, Mode::Merge, Mode::Full].into_iter().find(|m| m.as_str() == name)
    }
}

/// A job: source and target cluster, a cursor start, defaults for its tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Source cluster name.
    pub from: String,
    /// Target cluster name.
    pub to: String,
    /// Where the cursor starts for a table never run before (required unless `reader` sets it).
    pub start: Option<ConfigTimestamp>,
    /// No window ends past this.
    pub end: Option<ConfigTimestamp>,
    /// Default window length (required unless `reader` or the job row supplies it).
    pub duration: Option<ConfigDuration>,
    /// Windows newer than `now - lag` are not due yet.
    pub lag: Option<ConfigDuration>,
    /// Attempts after the first for a window that failed in a way a retry may cure (a dropped
    /// connection, a timeout) before anything of it was committed.
    pub retries: Option<u32>,
    /// Wait before the first retry; doubled after each further attempt.
    pub retry_delay: Option<ConfigDuration>,
    /// Session time zone for both clusters (for timestamptz windows); server default if unset.
    pub timezone: Option<String>,
    /// Default mode of the job's tables.
    pub mode: Option<Mode>,
    /// Create missing target tables from the source's columns (tables may override).
    #[serde(default)]
    pub create_target: bool,
    /// Jobs can be switched off as a whole.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Default source plugin.
    pub source: Option<Spanned<PluginSpec>>,
    /// Default transport plugin.
    pub transport: Option<Spanned<PluginSpec>>,
    /// Default sink plugin.
    pub sink: Option<Spanned<PluginSpec>>,
    /// Default comparator plugin.
    pub compare: Option<Spanned<PluginSpec>>,
    /// A preset filling in the roles the job does not name (`{ name = "gp4-legacy", … }`).
    pub preset: Option<Spanned<PresetConfig>>,
    /// The tables.
    #[serde(default)]
    pub tables: Vec<Spanned<TableConfig>>,
    /// Config reader for the job's window (`{ plugin = "mysql", … }`): the job row is the cursor.
    pub reader: Option<Spanned<PluginSpec>>,
    /// Config reader for the job's table list (`{ plugin = "table-list", … }`).
    pub tables_from: Option<Spanned<PluginSpec>>,
}

fn default_true() -> bool {
    true
}

/// One table entry of a job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Source table, `schema.table` (quote parts with `"` when they hold dots or capitals).
    pub table: String,
    /// Target table; the source name when unset.
    pub target_table: Option<String>,
    /// Timestamp or date column that cuts windows (not needed in `full` mode).
    pub condition_column: Option<String>,
    /// Window length; the job's when unset.
    pub duration: Option<ConfigDuration>,
    /// Backfill bound: no window of this table ends past it.
    pub final_end: Option<ConfigTimestamp>,
    /// Overrides the job's lag.
    pub lag: Option<ConfigDuration>,
    /// Overrides the job's retries.
    pub retries: Option<u32>,
    /// Overrides the job's retry_delay.
    pub retry_delay: Option<ConfigDuration>,
    /// Load mode; the job's, else `replace`.
    pub mode: Option<Mode>,
    /// Key columns (required by `merge`; used by compare).
    #[serde(default)]
    pub key: Vec<String>,
    /// Columns to move; all source columns when unset.
    pub columns: Option<Vec<String>>,
    /// Columns whose target type may round or cut values of the source's type (numeric(10,3)
    /// into numeric(10,1), timestamp into timestamp(0), …): accepted for these columns only;
    /// any other such column is refused before data moves.
    #[serde(default)]
    pub lossy_columns: Vec<String>,
    /// Create a missing target table from the source's columns before the first window; the
    /// job's when unset.
    pub create_target: Option<bool>,
    /// Switch the table off without deleting it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Source plugin and options.
    pub source: Option<Spanned<PluginSpec>>,
    /// Transport plugin and options.
    pub transport: Option<Spanned<PluginSpec>>,
    /// Sink plugin and options.
    pub sink: Option<Spanned<PluginSpec>>,
    /// Comparator plugin and options.
    pub compare: Option<Spanned<PluginSpec>>,
    /// A preset filling in the roles the table does not name (over the job's).
    pub preset: Option<Spanned<PresetConfig>>,
}
