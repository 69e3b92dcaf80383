//! The command line (SPEC §5), parsed first and checked second.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keeps tables flowing between Greenplum clusters and PostgreSQL, window by window.
#[derive(Debug, Parser)]
#[command(name = "gptransfer", version, about, long_about = None, disable_help_subcommand = true)]
#[command(after_help = "Exit codes: 0 success, 1 a window or command failed, 2 usage or configuration error, \
3 differences found, 75 another run holds the job's lock, 130/143 interrupted.")]
pub struct Cli {
    /// Config file [default: $GPTRANSFER_CONFIG, else ./gptransfer.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More detail (-v: debug, -vv: trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log line format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output formats of commands that report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people.
    Human,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Move every due window of the selected tables
    Run(RunArgs),
    /// Show the due windows and the plugin chain; runs nothing
    Plan(PlanArgs),
    /// Show past window attempts, newest first
    History(HistoryArgs),
    /// Validate the config file
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List built-in and loaded plugins
    Plugins,
    /// Compare source and target window by window, down to the differing keys
    Compare(CompareArgs),
    /// Poll or acknowledge the alarms compare raised
    Alarm {
        #[command(subcommand)]
        command: AlarmCommand,
    },
    /// Run due transfers, then compare what was loaded, on a schedule
    Daemon(DaemonArgs),
    /// Where each table stands: cursor, lag, failures, alarms; exit 3 when one is failing
    Status(StatusArgs),
    /// Write an HTML page: table status, rows and durations as charts, differences, failures
    Report(ReportArgs),
    /// Re-load the windows of a range now (replace; merge tables merge)
    Reload(ReloadArgs),
    /// Move a table's stored cursor
    Cursor {
        #[command(subcommand)]
        command: CursorCommand,
    },
    /// Print a shell completion script
    Completions {
        /// The shell (e.g. `gptransfer completions bash > /etc/bash_completion.d/gptransfer`)
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// The page to write (self-contained: opens with no network)
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// The period the charts, differences and failures cover
    #[arg(long, value_name = "D", default_value = "7d")]
    pub since: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Exit 3 when a table's cursor is further than this behind where windows may end (e.g. 2h)
    #[arg(long, value_name = "D")]
    pub max_lag: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The job
    #[arg(long, value_name = "J")]
    pub job: String,
    /// Only this table, schema.table (every entry reading it), or one entry: "source -> target" (repeatable)
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
    /// First window's start (a window boundary)
    #[arg(long, value_name = "TS")]
    pub from: String,
    /// Last window's end (a window boundary)
    #[arg(long, value_name = "TS")]
    pub to: String,
    /// Check and list the windows, move nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum CursorCommand {
    /// Set a table entry's cursor (the end of its last loaded window), backwards or forwards
    Set(CursorSetArgs),
}

#[derive(Debug, Args)]
pub struct CursorSetArgs {
    /// The job
    #[arg(long, value_name = "J")]
    pub job: String,
    /// The table entry: schema.table, or "source -> target" when the source feeds several
    #[arg(long, value_name = "T")]
    pub table: String,
    /// The new cursor: the next run loads from here
    #[arg(value_name = "TS")]
    pub cursor: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// First window start [default: the job start]
    #[arg(long, value_name = "TS")]
    pub from: Option<String>,
    /// No window ends after this [default: the table's cursor]
    #[arg(long, value_name = "TS")]
    pub to: Option<String>,
    /// Re-transfer the differing windows, then compare them again
    #[arg(long)]
    pub repair: bool,
    /// Differing keys shown per window (all are counted and alarmed)
    #[arg(long, default_value_t = 20)]
    pub show: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// Print NORMAL or ABNORMAL for a monitor (exit 0 or 3)
    Check {
        /// Look back this many hours
        #[arg(long, default_value_t = 72.0)]
        hours: f64,
        /// Output format (json: the status line's parts, for a monitor that parses them)
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
    /// Acknowledge active alarms (diff set to 0, reset time kept)
    Reset {
        /// Only this table, schema.table (every entry reading it), or one entry: "source -> target"
        #[arg(long, value_name = "T")]
        table: Option<String>,
        /// Only alarms detected before this timestamp
        #[arg(long, value_name = "TS")]
        before: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Time between rounds
    #[arg(long, default_value = "15m")]
    pub interval: String,
    /// Windows moved at the same time, in all tables (several of one table in a backfill; append: one)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Stop after this many rounds (0: until SIGTERM)
    #[arg(long, default_value_t = 0)]
    pub rounds: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9187)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the file, reach every cluster, check every enabled table
    Check {
        /// Output format (json: every cluster and table with its outcome, on stdout)
        #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
        output: OutputFormat,
    },
}

#[derive(Debug, Args)]
pub struct Selection {
    /// Only this job (repeatable)
    #[arg(long = "job", value_name = "J")]
    pub jobs: Vec<String>,
    /// Only this table, schema.table (every entry reading it), or one entry: "source -> target" (repeatable)
    #[arg(long = "table", value_name = "T")]
    pub tables: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// No window ends after this timestamp
    #[arg(long, value_name = "TS")]
    pub until: Option<String>,
    /// Windows moved at the same time, in all tables (several of one table in a backfill; append: one)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// Check and plan, move nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop all tables at the first failed window
    #[arg(long)]
    pub stop_on_error: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// No window ends after this timestamp
    #[arg(long, value_name = "TS")]
    pub until: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this job
    #[arg(long, value_name = "J")]
    pub job: Option<String>,
    /// Only this table, schema.table
    #[arg(long, value_name = "T")]
    pub table: Option<String>,
    /// Only failed attempts
    #[arg(long)]
    pub failed: bool,
    /// At most this many rows
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Print each failed attempt's whole error below the table (the table cuts them)
    #[arg(long)]
    pub errors: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}
