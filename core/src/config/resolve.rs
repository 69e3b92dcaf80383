//! From the file model to what the engine runs: job defaults applied, names parsed,
//! references checked. Pure: no I/O besides reading the file itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use toml::Spanned;

use super::load::{parse_text, ConfigError, Location};
use super::model::{ClusterConfig, ConfigFile, Mode, SslMode};
use super::{ConfigDuration, ExternalCursors, PluginSpec};
use crate::dialect::QualifiedName;

/// A loaded, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Named clusters.
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// State location.
    pub state: StateSpec,
    /// Jobs, in name order.
    pub jobs: Vec<JobSpec>,
    /// External plugin libraries.
    pub plugin_paths: Vec<PathBuf>,
    /// Alarm output and mirror.
    pub alarm: AlarmSpec,
    /// Cursors kept outside the state schema, registered by the config readers.
    pub external_cursors: ExternalCursors,
    /// Whether the config readers have run (jobs with `reader`/`tables_from` need them).
    pub readers_loaded: bool,
    text: String,
}

/// Alarm settings, checked.
#[derive(Debug, Clone)]
pub struct AlarmSpec {
    /// Printed when differences are active.
    pub abnormal_message: String,
    /// Printed when none are.
    pub normal_message: String,
    /// Mirror: cluster name and table.
    pub mirror: Option<(String, QualifiedName)>,
}

/// Where state lives.
#[derive(Debug, Clone)]
pub struct StateSpec {
    /// Cluster name.
    pub cluster: String,
    /// Schema name.
    pub schema: String,
}

/// A job with its tables resolved.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job name.
    pub name: String,
    /// Source cluster name.
    pub from: String,
    /// Target cluster name.
    pub to: String,
    /// Session time zone, when set.
    pub timezone: Option<String>,
    /// Whether the job runs.
    pub enabled: bool,
    /// Its tables.
    pub tables: Vec<TableSpec>,
    /// Config reader of the job's window (the job row), when set.
    pub reader: Option<Spanned<PluginSpec>>,
    /// Config reader of the job's table list, when set.
    pub tables_from: Option<Spanned<PluginSpec>>,
    /// The job's defaults, for the tables a reader adds.
    pub defaults: JobDefaults,
}

/// A job's settings that its tables inherit.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    /// Cursor start (None when a reader supplies it).
    pub start: Option<NaiveDateTime>,
    /// End bound.
    pub end: Option<NaiveDateTime>,
    /// Window length (None when a reader supplies it).
    pub duration: Option<ConfigDuration>,
    /// Hold-back from now.
    pub lag: ConfigDuration,
    /// Retries of a window that failed retriably.
    pub retries: u32,
    /// Wait before the first retry.
    pub retry_delay: ConfigDuration,
    /// Load mode.
    pub mode: Option<Mode>,
    /// Create missing targets.
    pub create_target: bool,
    /// Source plugin.
    pub source: Option<Spanned<PluginSpec>>,
    /// Transport plugin.
    pub transport: Option<Spanned<PluginSpec>>,
    /// Sink plugin.
    pub sink: Option<Spanned<PluginSpec>>,
    /// Comparator plugin.
    pub compare: Option<Spanned<PluginSpec>>,
    /// Where the job is in the file.
    pub location: Location,
}

impl JobSpec {
    /// Whether a config reader defines part of this job.
    pub fn has_readers(&self) -> bool {
        self.reader.is_some() || self.tables_from.is_some()
    }

    /// A table of this job with only the job's defaults applied (for tables a reader adds):
    /// no condition column, the job's duration (zero when unset), start and mode.
    pub fn default_table(&self, source_table: QualifiedName) -> TableSpec {
        let d = &self.defaults;
        TableSpec {
            job: self.name.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            target_table: source_table.clone(),
            source_table,
            condition_column: None,
            duration: d.duration.unwrap_or(ConfigDuration(std::time::Duration::ZERO)),
            start: d.start.unwrap_or_default(),
            end: d.end,
            final_end: None,
            lag: d.lag,
            retries: d.retries,
            retry_delay: d.retry_delay,
            mode: d.mode.unwrap_or(Mode::Replace),
            key: Vec::new(),
            columns: None,
            lossy_columns: Vec::new(),
            create_target: d.create_target,
            enabled: self.enabled,
            timezone: self.timezone.clone(),
            source: d.source.clone().unwrap_or_else(|| spanned_default("copy")),
            transport: d.transport.clone().unwrap_or_else(|| spanned_default("stream")),
            sink: d.sink.clone().unwrap_or_else(|| spanned_default("copy")),
            compare: d.compare.clone().unwrap_or_else(|| spanned_default("hash")),
            location: d.location,
            cursor_external: self.reader.is_some(),
            clear_window_first: false,
        }
    }
}

/// Everything the engine needs about one table, defaults applied.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Owning job.
    pub job: String,
    /// Source cluster name.
    pub from: String,
    /// Target cluster name.
    pub to: String,
    /// Source table.
    pub source_table: QualifiedName,
    /// Target table.
    pub target_table: QualifiedName,
    /// Window column (None only in `full` mode).
    pub condition_column: Option<String>,
    /// Window length.
    pub duration: ConfigDuration,
    /// Cursor start when never run.
    pub start: NaiveDateTime,
    /// Job end bound.
    pub end: Option<NaiveDateTime>,
    /// Backfill bound.
    pub final_end: Option<NaiveDateTime>,
    /// Hold-back from now.
    pub lag: ConfigDuration,
    /// Attempts after the first for a window that failed retriably before its commit began.
    pub retries: u32,
    /// Wait before the first retry; doubled after each further attempt (at most
    /// [`MAX_RETRY_DELAY`]).
    pub retry_delay: ConfigDuration,
    /// Load mode.
    pub mode: Mode,
    /// Key columns.
    pub key: Vec<String>,
    /// Explicit column list.
    pub columns: Option<Vec<String>>,
    /// Columns allowed to load into a target type that rounds or cuts their values.
    pub lossy_columns: Vec<String>,
    /// Create the target from the source's columns when it is missing.
    pub create_target: bool,
    /// Whether the table runs.
    pub enabled: bool,
    /// Session time zone, when set.
    pub timezone: Option<String>,
    /// Source plugin.
    pub source: Spanned<PluginSpec>,
    /// Transport plugin.
    pub transport: Spanned<PluginSpec>,
    /// Sink plugin.
    pub sink: Spanned<PluginSpec>,
    /// Comparator plugin.
    pub compare: Spanned<PluginSpec>,
    /// Where the entry is in the file.
    pub location: Location,
    /// The windows start from a config reader's job row (its `start`), not from the state
    /// cursor: the job row is the authority, and re-loading behind the state cursor is harmless.
    pub cursor_external: bool,
    /// Merge only (a repair): the window's rows on the target are deleted before the batch is
    /// merged, so rows the source no longer has in the window go too, and no key is left twice.
    pub clear_window_first: bool,
}

impl TableSpec {
    /// Whether the source plugin was not written anywhere (table, job, preset) and is the
    /// default, so the source cluster's detected flavour may choose it.
    pub fn source_is_default(&self) -> bool {
        self.source.span() == (0..0)
    }

    /// Whether the compare plugin is the default one (nothing set in the file).
    pub fn compare_is_default(&self) -> bool {
        self.compare.span() == (0..0)
    }

    /// The name people see: the source table, and the target when it differs.
    pub fn display_name(&self) -> String {
        if self.source_table == self.target_table {
            self.source_table.to_string()
        } else {
            format!("{} -> {}", self.source_table, self.target_table)
        }
    }

    /// The name of its cursor in the state's `cursors` table: the source table, and ` -> target`
    /// when the target differs ([`TableSpec::display_name`]), so that every target of one
    /// source table has its own cursor (a shared one let a target that failed a window skip
    /// the rest once another target of the same source had gone on).
    pub fn cursor_key(&self) -> String {
        self.display_name()
    }

    /// The plugin chain as history records it: `source > transport > sink`.
    pub fn chain(&self) -> String {
        format!(
            "{} > {} > {}",
            self.source.get_ref().plugin,
            self.transport.get_ref().plugin,
            self.sink.get_ref().plugin
        )
    }
}

/// Retries of a window that failed retriably, unless the job or table says otherwise.
pub const DEFAULT_RETRIES: u32 = 2;
/// The wait before the first retry, unless the job or table says otherwise.
pub const DEFAULT_RETRY_DELAY: ConfigDuration = ConfigDuration(std::time::Duration::from_secs(5));
/// The longest wait between two attempts, however often the delay has doubled.
pub const MAX_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(300);

fn spanned_default(name: &str) -> Spanned<PluginSpec> {
    Spanned::new(0..0, PluginSpec::named(name))
}

/// The source a table gets when none is written: the flavour's (SPEC §6), as far as the config
/// says it (`flavor`); a flavour detected at run time switches a defaulted `copy` too
/// ([`TableSpec::source_is_default`]).
fn default_source(cluster: Option<&ClusterConfig>) -> &'static str {
    match cluster.and_then(|c| c.flavor) {
        Some(super::model::FlavourName::Gp4) => "gp4",
        _ => "copy",
    }
}

impl Config {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::file(
                path,
                format!(
                    "cannot read the config file: {e}; pass --config FILE, set $GPTRANSFER_CONFIG, or create ./gptransfer.toml"
                ),
            )
        })?;
        Config::from_text(path, text)
    }

    /// Checks config text; `path` only labels errors.
    pub fn from_text(path: &Path, text: String) -> Result<Config, ConfigError> {
        let file = parse_text(path, &text)?;
        resolve(path, text, file)
    }

    /// The file location of a span, for errors raised after loading (plugin options).
    pub fn location_of(&self, span: std::ops::Range<usize>) -> Location {
        Location::of_offset(&self.text, span.start)
    }

    /// An error pointing at a span of this config.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.path, &self.text, span, message)
    }

    /// Whether some job needs its config readers run before its tables are complete.
    pub fn needs_readers(&self) -> bool {
        !self.readers_loaded && self.jobs.iter().any(JobSpec::has_readers)
    }

    /// All tables of all jobs.
    pub fn tables(&self) -> impl Iterator<Item = &TableSpec> {
        self.jobs.iter().flat_map(|j| j.tables.iter())
    }

    /// Refuses two enabled entries loading one target table when either replaces windows or
    /// reloads the table: each window's delete (or the truncate) removes the other entry's rows
    /// too — per-site tables consolidated into one kept half their rows. Run after config
    /// readers have added their tables.
    pub fn check_shared_targets(&self) -> Result<(), ConfigError> {
        let enabled: Vec<&TableSpec> = self.tables().filter(|t| t.enabled).collect();
        for (i, a) in enabled.iter().enumerate() {
            for b in &enabled[i + 1..] {
                let same_target = self.same_target(a, b);
                let destructive = |t: &TableSpec| matches!(t.mode, Mode::Replace | Mode::Full);
                if same_target && (destructive(a) || destructive(b)) {
                    let mode = if destructive(b) { b.mode } else { a.mode };
                    return Err(ConfigError {
                        path: self.path.clone(),
                        location: Some(b.location),
                        message: format!(
                            "job {:?}, table {} and job {:?}, table {} both load {} on cluster {:?}{}, in {} mode: {} \
                             removes the other entry's rows too. Load both in merge mode with key columns \
                             that tell their rows apart, or in append mode, or move them as one entry",
                            a.job,
                            a.source_table,
                            b.job,
                            b.source_table,
                            b.target_table,
                            b.to,
                            if a.to == b.to {
                                String::new()
                            } else {
                                format!(" (clusters {:?} and {:?} are one database)", a.to, b.to)
                            },
                            mode.as_str(),
                            if mode == Mode::Full { "each reload's truncate" } else { "each window's delete" }
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether both entries load the same table of one database: the same cluster, or two
    /// clusters naming the same host, port and database.
    pub fn same_target(&self, a: &TableSpec, b: &TableSpec) -> bool {
        if a.target_table != b.target_table {
            return false;
        }
        if a.to == b.to {
            return true;
        }
        let address = |name: &str| self.clusters.get(name).and_then(crate::cluster::database_address);
        matches!((address(&a.to), address(&b.to)), (Some(x), Some(y)) if x == y)
    }

    /// Refuses two enabled entries whose window directories on a shared mount would be the
    /// same: the layout `<root>/<db>^<schema>^<table>^<window>` (SPEC §7) names the source
    /// only, so two entries reading one source table (two targets, or two jobs) through one
    /// root write, replace and load each other's files. Give each a root of its own.
    pub fn check_shared_mount_dirs(&self) -> Result<(), ConfigError> {
        let staged: Vec<(&TableSpec, String)> = self
            .tables()
            .filter(|t| t.enabled)
            .filter_map(|t| {
                let spec = t.transport.get_ref();
                let root = spec.options.get("root")?.as_str()?;
                let host = match spec.plugin.as_str() {
                    "shared-mount" => String::new(),
                    "ssh" => spec.options.get("host")?.as_str()?.to_string(),
                    _ => return None,
                };
                Some((t, format!("{host}:{}", root.trim_end_matches('/'))))
            })
            .collect();
        for (i, (a, root_a)) in staged.iter().enumerate() {
            for (b, root_b) in &staged[i + 1..] {
                let same_source = a.source_table == b.source_table && self.same_database(&a.from, &b.from);
                if root_a == root_b && same_source {
                    return Err(ConfigError {
                        path: self.path.clone(),
                        location: Some(b.location),
                        message: format!(
                            "job {:?}, table {} and job {:?}, table {} both stage {} through the {} root {:?}: \
                             their window directories ({}^…^<window>) are the same, so each would replace and load \
                             the other's files. Give each entry a transport root of its own",
                            a.job,
                            a.display_name(),
                            b.job,
                            b.display_name(),
                            b.source_table,
                            b.transport.get_ref().plugin,
                            root_b.trim_start_matches(':'),
                            b.source_table.to_string().replace('.', "^")
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether two clusters may name the same database (the directory layout holds only its
    /// name): the same cluster, or the same database name where both are written.
    fn same_database(&self, a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let db = |name: &str| {
            let c = self.clusters.get(name)?;
            match (&c.url, &c.dbname) {
                (Some(url), _) => {
                    let path = url.split('?').next()?.rsplit_once('/')?.1;
                    (!path.is_empty() && !path.contains('@')).then(|| path.to_string())
                }
                (None, Some(db)) => Some(db.clone()),
                (None, None) => None,
            }
        };
        match (db(a), db(b)) {
            (Some(x), Some(y)) => x == y,
            // Unknown here (from the environment): assume they may be.
            _ => true,
        }
    }
}

fn resolve(path: &Path, text: String, file: ConfigFile) -> Result<Config, ConfigError> {
    let err = |span: std::ops::Range<usize>, msg: String| ConfigError::at(path, &text, span, msg);

    let mut clusters = BTreeMap::new();
    for (name, c) in &file.clusters {
        let span = c.span();
        let c = c.get_ref();
        if c.sslrootcert.is_some() && !matches!(c.sslmode, Some(SslMode::VerifyCa | SslMode::VerifyFull)) {
            return Err(err(
                span,
                format!(
                    "cluster {name:?}: sslrootcert is only used with sslmode = \"verify-ca\" or \"verify-full\"; \
                     set one of them, or remove sslrootcert"
                ),
            ));
        }
        if c.password_env.is_some() && c.password_file.is_some() {
            return Err(err(span, format!("cluster {name:?}: set password_env or password_file, not both")));
        }
        clusters.insert(name.clone(), c.clone());
    }

    let known = |name: &str| clusters.contains_key(name);
    let cluster_list = || clusters.keys().cloned().collect::<Vec<_>>().join(", ");

    let mut jobs = Vec::new();
    for (job_name, job) in &file.jobs {
        let job_span = job.span();
        let job_span_start = job_span.start;
        let job = job.get_ref();
        for (role, name) in [("from", &job.from), ("to", &job.to)] {
            if !known(name) {
                return Err(err(
                    job_span.clone(),
                    format!(
                        "job {job_name:?}: {role} = {name:?} names no cluster; defined clusters: [{}]",
                        cluster_list()
                    ),
                ));
            }
        }
        let has_reader = job.reader.is_some();
        if job.start.is_none() && !has_reader {
            return Err(err(
                job_span.clone(),
                format!(
                    "job {job_name:?}: start is required (unless reader = {{ plugin = \"mysql\", … }} supplies it)"
                ),
            ));
        }
        if job.duration.is_none() && !has_reader {
            return Err(err(
                job_span.clone(),
                format!(
                    "job {job_name:?}: duration is required (unless reader = {{ plugin = \"mysql\", … }} supplies it)"
                ),
            ));
        }
        if let Some(problem) = job.duration.and_then(|d| d.window_problem()) {
            return Err(err(job_span, format!("job {job_name:?}: {problem}")));
        }
        // Windows are named to the second (ids, history, files, compare): their bounds must be.
        for (key, bound) in [("start", job.start), ("end", job.end)] {
            if let Some(problem) = bound.and_then(|b| fractional_second(key, b.0)) {
                return Err(err(job_span, format!("job {job_name:?}: {problem}")));
            }
        }
        let job_preset = match &job.preset {
            Some(p) => Some(p.get_ref().expand(p.span()).map_err(|m| err(p.span(), format!("job {job_name:?}: {m}")))?),
            None => None,
        };
        // Roles as the job gives them to its tables: written ones, else the preset's.
        let job_source = job.source.clone().or_else(|| job_preset.as_ref().map(|p| p.source.clone()));
        let job_transport = job.transport.clone().or_else(|| job_preset.as_ref().map(|p| p.transport.clone()));
        let job_sink = job.sink.clone().or_else(|| job_preset.as_ref().map(|p| p.sink.clone()));
        let job_mode = job.mode.or(job_preset.as_ref().map(|p| p.mode));
        let mut tables = Vec::new();
        for entry in &job.tables {
            let span = entry.span();
            let t = entry.get_ref();
            let here = |msg: String| err(span.clone(), format!("job {job_name:?}, table {:?}: {msg}", t.table));
            let preset = match &t.preset {
                Some(p) => Some(p.get_ref().expand(p.span()).map_err(&here)?),
                None => None,
            };
            let source_table = QualifiedName::parse(&t.table).map_err(&here)?;
            let target_table = match &t.target_table {
                Some(name) => QualifiedName::parse(name).map_err(&here)?,
                None => source_table.clone(),
            };
            let mode = t.mode.or(preset.as_ref().map(|p| p.mode)).or(job_mode).unwrap_or(Mode::Replace);
            // Zero only under a reader, which fills it from the job row (or refuses the table).
            let duration = t.duration.or(job.duration).unwrap_or(ConfigDuration(std::time::Duration::ZERO));
            if !(duration.0.is_zero() && has_reader) {
                if let Some(problem) = duration.window_problem() {
                    return Err(here(problem));
                }
            }
            if let Some(problem) = t.final_end.and_then(|b| fractional_second("final_end", b.0)) {
                return Err(here(problem));
            }
            if mode != Mode::Full && t.condition_column.is_none() {
                return Err(here(format!(
                    "condition_column is required in {} mode (the timestamp column that cuts windows)",
                    mode.as_str()
                )));
            }
            if mode == Mode::Merge && t.key.is_empty() {
                return Err(here("merge mode needs key = [\"column\", …] to match rows".into()));
            }
            for col in t.key.iter().chain(t.columns.iter().flatten()).chain(&t.lossy_columns) {
                if col.is_empty() {
                    return Err(here("an empty column name in key, columns or lossy_columns".into()));
                }
            }
            if let Some(cols) = &t.columns {
                if let Some(k) = t.key.iter().find(|k| !cols.contains(k)) {
                    return Err(here(format!("key column {k:?} is not in columns")));
                }
                if let Some(l) = t.lossy_columns.iter().find(|l| !cols.contains(l)) {
                    return Err(here(format!("column {l:?} of lossy_columns is not in columns")));
                }
                // Replace finds the window's rows on the target by the condition column: left
                // out of the copied columns, it is NULL there, the delete matches nothing and
                // every re-run duplicates the window.
                if let (Mode::Replace, Some(c)) = (mode, &t.condition_column) {
                    if !cols.contains(c) {
                        return Err(here(format!(
                            "condition_column {c:?} is not in columns: replace mode finds the window's rows on the \
                             target by it, so without it every re-run would duplicate the window; add it to columns"
                        )));
                    }
                }
            }
            if let (Some(fe), Some(start)) = (t.final_end, job.start) {
                if fe.0 <= start.0 {
                    return Err(here(format!("final_end {fe} is not after the job start {start}")));
                }
            }
            tables.push(TableSpec {
                job: job_name.clone(),
                from: job.from.clone(),
                to: job.to.clone(),
                source_table,
                target_table,
                condition_column: t.condition_column.clone(),
                duration,
                start: job.start.map(|s| s.0).unwrap_or_default(),
                end: job.end.map(|e| e.0),
                final_end: t.final_end.map(|e| e.0),
                lag: t.lag.or(job.lag).unwrap_or(ConfigDuration(std::time::Duration::ZERO)),
                retries: t.retries.or(job.retries).unwrap_or(DEFAULT_RETRIES),
                retry_delay: t.retry_delay.or(job.retry_delay).unwrap_or(DEFAULT_RETRY_DELAY),
                mode,
                key: t.key.clone(),
                columns: t.columns.clone(),
                lossy_columns: t.lossy_columns.clone(),
                create_target: t.create_target.unwrap_or(job.create_target),
                enabled: t.enabled && job.enabled,
                timezone: job.timezone.clone(),
                source: t
                    .source
                    .clone()
                    .or_else(|| preset.as_ref().map(|p| p.source.clone()))
                    .or_else(|| job_source.clone())
                    .unwrap_or_else(|| spanned_default(default_source(clusters.get(&job.from)))),
                transport: t
                    .transport
                    .clone()
                    .or_else(|| preset.as_ref().map(|p| p.transport.clone()))
                    .or_else(|| job_transport.clone())
                    .unwrap_or_else(|| spanned_default("stream")),
                sink: t
                    .sink
                    .clone()
                    .or_else(|| preset.as_ref().map(|p| p.sink.clone()))
                    .or_else(|| job_sink.clone())
                    .unwrap_or_else(|| spanned_default("copy")),
                compare: t.compare.clone().or_else(|| job.compare.clone()).unwrap_or_else(|| spanned_default("hash")),
                location: Location::of_offset(&text, span.start),
                cursor_external: has_reader,
                clear_window_first: false,
            });
        }
        jobs.push(JobSpec {
            name: job_name.clone(),
            from: job.from.clone(),
            to: job.to.clone(),
            timezone: job.timezone.clone(),
            enabled: job.enabled,
            tables,
            reader: job.reader.clone(),
            tables_from: job.tables_from.clone(),
            defaults: JobDefaults {
                start: job.start.map(|s| s.0),
                end: job.end.map(|e| e.0),
                duration: job.duration,
                lag: job.lag.unwrap_or(ConfigDuration(std::time::Duration::ZERO)),
                retries: job.retries.unwrap_or(DEFAULT_RETRIES),
                retry_delay: job.retry_delay.unwrap_or(DEFAULT_RETRY_DELAY),
                mode: job_mode,
                create_target: job.create_target,
                source: job_source,
                transport: job_transport,
                sink: job_sink,
                compare: job.compare.clone(),
                location: Location::of_offset(&text, job_span_start),
            },
        });
    }

    let state = match &file.state {
        Some(s) => {
            let span = s.span();
            let s = s.get_ref();
            let cluster = match &s.cluster {
                Some(c) if known(c) => c.clone(),
                Some(c) => {
                    return Err(err(
                        span,
                        format!("state.cluster = {c:?} names no cluster; defined clusters: [{}]", cluster_list()),
                    ))
                }
                None => default_state_cluster(&jobs).ok_or_else(|| {
                    ConfigError::file(path, "state.cluster is not set and there is no job to take a target from")
                })?,
            };
            StateSpec { cluster, schema: s.schema.clone() }
        }
        None => StateSpec { cluster: default_state_cluster(&jobs).unwrap_or_default(), schema: "gptransfer".into() },
    };

    let alarm = match &file.alarm {
        None => AlarmSpec { abnormal_message: "ABNORMAL".into(), normal_message: "NORMAL".into(), mirror: None },
        Some(a) => {
            let span = a.span();
            let a = a.get_ref();
            let mirror = match (&a.mirror_cluster, &a.mirror_table) {
                (None, None) => None,
                (Some(c), Some(t)) => {
                    if !known(c) {
                        return Err(err(
                            span,
                            format!(
                                "alarm.mirror_cluster = {c:?} names no cluster; defined clusters: [{}]",
                                cluster_list()
                            ),
                        ));
                    }
                    Some((
                        c.to_string(),
                        QualifiedName::parse(t).map_err(|e| err(span.clone(), format!("alarm.mirror_table: {e}")))?,
                    ))
                }
                _ => return Err(err(span, "alarm: set both mirror_cluster and mirror_table, or neither".into())),
            };
            AlarmSpec { abnormal_message: a.abnormal_message.clone(), normal_message: a.normal_message.clone(), mirror }
        }
    };

    Ok(Config {
        alarm,
        path: path.to_path_buf(),
        clusters,
        state,
        jobs,
        plugin_paths: file.plugins.map(|p| p.paths).unwrap_or_default(),
        external_cursors: ExternalCursors::default(),
        readers_loaded: false,
        text,
    })
}

fn default_state_cluster(jobs: &[JobSpec]) -> Option<String> {
    jobs.first().map(|j| j.to.clone())
}

/// A window bound with a fraction of a second: windows are named to the second.
fn fractional_second(key: &str, bound: NaiveDateTime) -> Option<String> {
    use chrono::Timelike;
    (bound.nanosecond() != 0).then(|| {
        format!("{key} {bound} has a fraction of a second: window bounds are whole seconds (windows are named to the second)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(Path::new("t.toml"), text.to_string())
    }

    const BASE: &str = r#"
[clusters.a]
url = "postgres://u@h/db"
[clusters.b]
url = "postgres://u@h2/db"
[jobs.j]
from = "a"
to = "b"
start = "2020-04-01 00:00:00"
duration = "1h"
"#;

    #[test]
    fn defaults_apply() {
        let c = load(&format!("{BASE}[[jobs.j.tables]]\ntable = \"eda.t\"\ncondition_column = \"ts\"\n")).unwrap();
        let t = &c.jobs[0].tables[0];
        assert_eq!(t.mode, Mode::Replace);
        assert_eq!(t.chain(), "copy > stream > copy");
        assert_eq!(c.state.cluster, "b");
        assert_eq!(t.location.line, 11);
    }

    #[test]
    fn lossy_columns_are_per_table_and_among_the_columns() {
        let table = "[[jobs.j.tables]]\ntable = \"eda.t\"\ncondition_column = \"ts\"\n";
        let c = load(&format!("{BASE}{table}lossy_columns = [\"qty\"]\n")).unwrap();
        assert_eq!(c.jobs[0].tables[0].lossy_columns, ["qty"]);
        let c = load(&format!("{BASE}{table}")).unwrap();
        assert!(c.jobs[0].tables[0].lossy_columns.is_empty());
        let e = load(&format!("{BASE}{table}columns = [\"ts\", \"id\"]\nlossy_columns = [\"qty\"]\n")).unwrap_err();
        assert!(e.to_string().contains("column \"qty\" of lossy_columns is not in columns"), "{e}");
        let e = load(&format!("{BASE}{table}lossy_columns = [\"\"]\n")).unwrap_err();
        assert!(e.to_string().contains("an empty column name"), "{e}");
    }

    #[test]
    fn the_gp4_legacy_preset_selects_the_v1_chain() {
        let preset =
            r#"preset = { name = "gp4-legacy", root = "/mnt/dataTransfer/file2GP", host = "etl01", user = "gpadmin" }"#;
        let table = "[[jobs.j.tables]]\ntable = \"eda.t\"\ncondition_column = \"ts\"\nkey = [\"id\"]\n";
        let c = load(&format!("{BASE}{table}{preset}\n")).unwrap();
        let t = &c.jobs[0].tables[0];
        assert_eq!(t.chain(), "gp4 > shared-mount > gpload");
        assert_eq!(t.mode, Mode::Merge);
        let options = |s: &Spanned<PluginSpec>| toml::Value::Table(s.get_ref().options.clone()).to_string();
        assert_eq!(options(&t.transport), "{ root = \"/mnt/dataTransfer/file2GP\" }");
        assert_eq!(options(&t.sink), "{ host = \"etl01\", user = \"gpadmin\" }");

        // On the job, for all its tables; a role written out wins over the preset's.
        let c = load(&format!("{BASE}{preset}\nsink = \"copy\"\n{table}")).unwrap();
        assert_eq!(c.jobs[0].tables[0].chain(), "gp4 > shared-mount > copy");
        assert_eq!(c.jobs[0].tables[0].mode, Mode::Merge);

        // Merge needs the key; the preset needs root; unknown names are listed.
        let e = load(&format!("{BASE}[[jobs.j.tables]]\ntable = \"eda.t\"\ncondition_column = \"ts\"\n{preset}\n"));
        assert!(e.unwrap_err().to_string().contains("merge mode needs key"));
        let e = load(&format!("{BASE}{table}preset = {{ name = \"gp4-legacy\" }}\n")).unwrap_err().to_string();
        assert!(e.contains("preset \"gp4-legacy\" needs root"), "{e}");
        let e = load(&format!("{BASE}{table}preset = {{ name = \"v2\", root = \"/x\" }}\n")).unwrap_err().to_string();
        assert!(e.contains("preset \"v2\" is unknown; presets: gp4-legacy"), "{e}");
    }

    #[test]
    fn retries_default_and_are_overridden_by_job_then_table() {
        let table = "[[jobs.j.tables]]\ntable = \"eda.t\"\ncondition_column = \"ts\"\n";
        let c = load(&format!("{BASE}{table}")).unwrap();
        let t = &c.jobs[0].tables[0];
        assert_eq!((t.retries, t.retry_delay), (DEFAULT_RETRIES, DEFAULT_RETRY_DELAY));
        assert_eq!((t.retries, t.retry_delay.to_string().as_str()), (2, "5s"));

        let job = format!("{BASE}retries = 5\nretry_delay = \"200ms\"\n");
        let c = load(&format!("{job}{table}")).unwrap();
        let t = &c.jobs[0].tables[0];
        assert_eq!((t.retries, t.retry_delay.to_string().as_str()), (5, "200ms"));
        // A reader's tables get the job's too.
        let t = c.jobs[0].default_table(QualifiedName::parse("eda.u").unwrap());
        assert_eq!((t.retries, t.retry_delay.to_string().as_str()), (5, "200ms"));

        let c = load(&format!("{job}{table}retries = 0\nretry_delay = \"1m\"\n")).unwrap();
        let t = &c.jobs[0].tables[0];
        assert_eq!((t.retries, t.retry_delay.to_string().as_str()), (0, "1m"));

        let e = load(&format!("{BASE}retries = -1\n{table}")).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:11:11: invalid value: integer `-1`"), "{e}");
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let e = load(&format!("{BASE}[[jobs.j.tables]]\ntable = \"eda.t\"\nconditon_column = \"ts\"\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("t.toml:13:1: unknown field `conditon_column`"), "{s}");
    }

    #[test]
    fn merge_needs_key() {
        let e = load(&format!("{BASE}[[jobs.j.tables]]\ntable = \"t\"\ncondition_column = \"ts\"\nmode = \"merge\"\n"))
            .unwrap_err();
        assert!(e.message.contains("merge mode needs key"), "{e}");
    }
}
