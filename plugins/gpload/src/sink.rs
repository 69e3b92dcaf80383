//! The `gpload` sink: data file + control YAML through a [`Runner`], gpload run, summary judged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_postgres::config::Host;

use gptransfer_core::cluster::Session;
use gptransfer_core::config::{ConfigDuration, Mode};
use gptransfer_core::dialect::{quote_ident, sql, QualifiedName};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, LoadDetail, Sink, SinkWindow, StagedFiles, WindowCtx};
use gptransfer_core::rowcount::BatchNumbering;
use gptransfer_core::RoleError;

use crate::apply::{self, staging_name};
use crate::control::{Control, LoadMode};
use crate::gphome::remote_prefix;
use crate::names::check_merge_column;
use crate::runner::{LocalRunner, Runner};
use crate::ssh_runner::SshRunner;
use crate::summary::Summary;
use gptransfer_plugin_ssh::{connect, default_known_hosts, explain_exit, shell_quote, Ssh, SshConfig};

/// Options of the `gpload` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GploadConfig {
    /// The gpload program (on the host the runner runs it on).
    #[serde(default = "default_program")]
    pub gpload: String,
    /// The Greenplum install gpload belongs to (`GPHOME`); by default the parent of the
    /// program's `bin` directory when it holds `greenplum_path.sh`.
    pub gphome: Option<PathBuf>,
    /// `MAX_LINE_LENGTH` for every window; by default each window's longest row decides.
    pub max_line_length: Option<u64>,
    /// Where the data file and control YAML go (default: the system's temporary directory).
    pub work_dir: Option<PathBuf>,
    /// `LOCAL_HOSTNAME`: names of the gpload host as the segments reach it.
    #[serde(default)]
    pub local_hostname: Vec<String>,
    /// gpfdist `PORT`.
    pub port: Option<u16>,
    /// gpfdist `PORT_RANGE`.
    pub port_range: Option<[u16; 2]>,
    /// `ERROR_LIMIT` (single row error isolation; any formatting error still fails the window).
    pub error_limit: Option<u32>,
    /// `LOG_ERRORS` (needs `error_limit`).
    #[serde(default)]
    pub log_errors: bool,
    /// `ENCODING` of the data file.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// gpload `MODE`; by default from the table's mode (merge → merge, others → insert).
    pub mode: Option<LoadMode>,
    /// `MATCH_COLUMNS` (default: the table's key).
    pub match_columns: Option<Vec<String>>,
    /// `UPDATE_COLUMNS` (default: every column not matched on).
    pub update_columns: Option<Vec<String>>,
    /// `UPDATE_CONDITION`.
    pub update_condition: Option<String>,
    /// `MAPPING`: target column → source column or expression.
    #[serde(default)]
    pub mapping: BTreeMap<String, String>,
    /// `PRELOAD: TRUNCATE`.
    #[serde(default)]
    pub preload_truncate: bool,
    /// `PRELOAD: REUSE_TABLES`.
    #[serde(default)]
    pub reuse_tables: bool,
    /// Keep the data file and control file after a successful load.
    #[serde(default)]
    pub keep_files: bool,
    /// CA file on the gpload host for the target's verify-ca / verify-full (`PGSSLROOTCERT`);
    /// by default the cluster's `sslrootcert` when gpload runs here, none on an ETL host.
    pub sslrootcert: Option<PathBuf>,
    /// Behind a `shared-mount` transport, gpload's `FILE` lists the window's `.csv.gz` parts in
    /// place: this is the mount's root as the gpload host sees it (default: the same path).
    pub mount_path: Option<PathBuf>,
    /// The ETL host gpload runs on, over SSH; left out, gpload runs on this machine.
    pub host: Option<String>,
    /// sshd port of `host` (`port` is gpfdist's).
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// SSH user on `host` (needed with `host`).
    pub user: Option<String>,
    /// Private key; left out, ssh-agent's keys are used.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase.
    pub passphrase_env: Option<String>,
    /// known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Trust (and record) a host key missing from known_hosts; a changed key is refused anyway.
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// The longest one gpload run may take; past it gpload and its gpfdist are killed and the
    /// window fails, the target unchanged.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Over SSH: the limit for one SSH operation, and how long the ETL host may go without
    /// answering a keepalive before the connection counts as dead. gpload itself may stay
    /// silent far longer (it prints nothing while it loads): `timeout` bounds it.
    #[serde(default = "default_ssh_read_timeout")]
    pub ssh_read_timeout: ConfigDuration,
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(2 * 3600))
}

fn default_ssh_read_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

/// gpfdist's default and smallest `-m`: 32 KB.
const MIN_LINE: u64 = 32_768;
/// gpfdist's largest `-m`: 256 MB.
const MAX_LINE: u64 = 268_435_456;

/// The `MAX_LINE_LENGTH` a window needs: the option, else room for its longest row (none when
/// gpfdist's default fits it).
fn line_limit(longest_row: u64, option: Option<u64>) -> Result<Option<u64>, String> {
    if let Some(n) = option {
        if longest_row > n {
            return Err(format!(
                "a row of {longest_row} bytes is longer than the sink's max_line_length ({n}): raise it, or leave \
                 it out to follow the data"
            ));
        }
        return Ok(Some(n));
    }
    if longest_row <= MIN_LINE {
        return Ok(None);
    }
    if longest_row > MAX_LINE {
        return Err(format!(
            "a row of {longest_row} bytes is longer than gpfdist can read ({MAX_LINE} bytes): load this table \
             with the copy sink"
        ));
    }
    // A power of two: a little room above the row, never past gpfdist's maximum.
    Ok(Some(longest_row.next_power_of_two().min(MAX_LINE)))
}

fn default_ssh_port() -> u16 {
    22
}

fn default_program() -> String {
    "gpload".into()
}

fn default_encoding() -> String {
    "UTF8".into()
}

impl GploadConfig {
    /// Checks without I/O; names in match/update columns are checked here when given.
    pub fn check(&self) -> Result<(), String> {
        if self.gpload.trim().is_empty() {
            return Err("gpload must name the gpload program".into());
        }
        if self.port.is_some() && self.port_range.is_some() {
            return Err("set port or port_range, not both".into());
        }
        if let Some([a, b]) = self.port_range {
            if a > b {
                return Err(format!("port_range [{a}, {b}] is empty: write [low, high]"));
            }
        }
        if self.log_errors && self.error_limit.is_none() {
            return Err("log_errors needs error_limit (gpload logs errors only in single row error isolation)".into());
        }
        if let Some(n) = self.error_limit {
            if n < 2 {
                return Err(format!("error_limit = {n}: Greenplum's SEGMENT REJECT LIMIT must be at least 2"));
            }
        }
        match (&self.host, &self.user) {
            (Some(h), _) if h.trim().is_empty() => return Err("host must not be empty".into()),
            (Some(_), None) => return Err("host needs user: the SSH user gpload runs as on the ETL host".into()),
            (Some(_), Some(u)) if u.trim().is_empty() => return Err("user must not be empty".into()),
            (None, _)
                if self.user.is_some()
                    || self.key_file.is_some()
                    || self.passphrase_env.is_some()
                    || self.known_hosts.is_some()
                    || self.accept_new_host_keys =>
            {
                return Err(
                    "user, key_file, passphrase_env, known_hosts and accept_new_host_keys need host (the ETL host)"
                        .into(),
                )
            }
            _ => {}
        }
        if self.timeout.0.is_zero() || self.ssh_read_timeout.0.is_zero() {
            return Err("timeout and ssh_read_timeout must be more than zero".into());
        }
        if let Some(n) = self.max_line_length {
            if !(MIN_LINE..=MAX_LINE).contains(&n) {
                return Err(format!(
                    "max_line_length = {n}: gpfdist takes {MIN_LINE} to {MAX_LINE} bytes (32 KB to 256 MB)"
                ));
            }
        }
        if self.encoding.trim().is_empty() {
            return Err("encoding must not be empty".into());
        }
        if self.mode == Some(LoadMode::Insert) {
            if self.match_columns.is_some() || self.update_columns.is_some() || self.update_condition.is_some() {
                return Err("match_columns, update_columns and update_condition need mode merge or update".into());
            }
            return Ok(());
        }
        let mode = self.mode.map_or("merge", LoadMode::as_str);
        for c in self.match_columns.iter().flatten().chain(self.update_columns.iter().flatten()) {
            check_merge_column(c, mode)?;
        }
        if matches!(&self.match_columns, Some(m) if m.is_empty()) {
            return Err("match_columns must name at least one column".into());
        }
        Ok(())
    }
}

/// The `gpload` sink.
pub struct GploadSink {
    config: GploadConfig,
    runner: Arc<dyn Runner>,
}

impl GploadSink {
    /// A sink running gpload through `runner`.
    pub fn new(config: GploadConfig, runner: Arc<dyn Runner>) -> Result<GploadSink, String> {
        config.check()?;
        Ok(GploadSink { config, runner })
    }
}

impl GploadSink {
    /// gpload's `MODE`, `MATCH_COLUMNS` and `UPDATE_COLUMNS` for a table moving `columns`
    /// (none for insert), every name checked against what gpload can merge on.
    fn load_columns(
        &self,
        t: &gptransfer_core::config::TableSpec,
        columns: &[String],
    ) -> Result<(LoadMode, Vec<String>, Vec<String>), String> {
        let c = &self.config;
        let mode = c.mode.unwrap_or(if t.mode == Mode::Merge { LoadMode::Merge } else { LoadMode::Insert });
        if c.preload_truncate && t.mode != Mode::Full {
            return Err(format!(
                "preload_truncate empties the whole target before every window, so only the last window of a {} \
                 table would remain: use mode = \"full\" for a whole-table reload, or leave preload_truncate out",
                t.mode.as_str()
            ));
        }
        if t.mode == Mode::Merge && mode == LoadMode::Insert {
            return Err(
                "a merge table's batch cannot be inserted (sink mode = \"insert\"): each load would add its keys' rows \
                 again; leave the sink's mode out (merge), or set it to \"merge\" or \"update\""
                    .to_string(),
            );
        }
        if mode == LoadMode::Insert {
            return Ok((mode, Vec::new(), Vec::new()));
        }
        let m = c.match_columns.clone().unwrap_or_else(|| t.key.clone());
        let u = c
            .update_columns
            .clone()
            .unwrap_or_else(|| columns.iter().filter(|col| !m.contains(col)).cloned().collect());
        for col in m.iter().chain(&u) {
            check_merge_column(col, mode.as_str())?;
        }
        Ok((mode, m, u))
    }
}

/// Registers `gpload` as a sink (run locally).
pub struct GploadSinkFactory;

impl Factory<dyn Sink> for GploadSinkFactory {
    fn name(&self) -> &'static str {
        "gpload"
    }
    fn describe(&self) -> &'static str {
        "gpload with a generated control file (insert, update, merge), one gpload transaction per window"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<GploadConfig>(options)?.check()
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Sink>, String> {
        let mut config = parse_options::<GploadConfig>(options)?;
        config.check()?;
        if config.ssh().is_none() && config.work_dir.is_none() {
            config.work_dir = Some(crate::workdir::private_default()?);
        }
        // Before the run touches any server, where gpload will run: (host key, login and)
        // `gpload --version` with the environment it will get.
        let runner: Arc<dyn Runner> = match config.ssh() {
            Some(ssh) => {
                let prefix = remote_prefix(&config.gpload, config.gphome.as_deref());
                let session = preflight(&ssh, &config.gpload, &prefix)?;
                if config.work_dir.is_none() {
                    config.work_dir = Some(crate::workdir::remote_private_default(&session)?);
                }
                Arc::new(SshRunner::new(session, prefix, config.timeout.0))
            }
            None => Arc::new(
                LocalRunner::for_program(&config.gpload, config.gphome.as_deref())?.with_timeout(config.timeout.0),
            ),
        };
        Ok(Arc::new(GploadSink::new(config, runner)?))
    }
}

impl GploadConfig {
    /// The SSH session settings, when gpload runs on an ETL host.
    pub fn ssh(&self) -> Option<SshConfig> {
        let host = self.host.clone()?;
        Some(SshConfig {
            host,
            port: self.ssh_port,
            user: self.user.clone().unwrap_or_default(),
            key_file: self.key_file.clone(),
            passphrase_env: self.passphrase_env.clone(),
            known_hosts: self.known_hosts.clone().unwrap_or_else(default_known_hosts),
            accept_new_host_keys: self.accept_new_host_keys,
            read_timeout: self.ssh_read_timeout.0,
            ..SshConfig::default()
        })
    }
}

/// Connects to the ETL host (host key, login) and runs `gpload --version` there behind
/// `prefix` (the GPHOME it will run with), blocking.
pub fn preflight(config: &SshConfig, program: &str, prefix: &str) -> Result<Ssh, String> {
    let ssh = connect(config).map_err(|e| e.0)?;
    let line = format!("{prefix}exec {} --version", shell_quote(program));
    let out = ssh.run_line(&line).map_err(|e| e.0)?;
    // gpload prints its version on stderr.
    if out.code == 0 && format!("{}{}", out.stdout, out.stderr).contains("gpload version") {
        tracing::debug!("ssh {}: {}", ssh.target, out.stderr.trim());
        return Ok(ssh);
    }
    let words = match out.code {
        0 => format!("it printed no gpload version: {}", one_line(&format!("{}{}", out.stdout, out.stderr))),
        code => explain_exit(code, &out.stderr),
    };
    Err(format!(
        "ssh {}: gpload program {program:?} does not run on the ETL host: {words} (set the sink's gpload option \
         to the full path of Greenplum's bin/gpload there, and gphome when its install is not the parent of that \
         bin directory)",
        ssh.target
    ))
}

/// At most one line of 300 characters of a program's output.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// How the staged window reaches the target, in our transaction.
struct ApplyPlan {
    mode: LoadMode,
    /// The window's delete (replace) or TRUNCATE (full, `preload_truncate`), first.
    prelude: Vec<String>,
    /// Target columns filled from the staging table.
    columns: Vec<String>,
    /// Match columns (merge, update).
    key: Vec<String>,
    update_columns: Vec<String>,
    condition: Option<String>,
}

/// One window: gpload fills the staging table, then [`GploadWindow::apply`] moves it into the
/// target in a transaction that the engine commits with the history row and the cursor.
struct GploadWindow {
    session: Session,
    /// Our transaction is open (after a successful apply).
    in_tx: bool,
    /// The staging table holds rows of an earlier attempt in this window (a fallback).
    staging_used: bool,
    target_table: QualifiedName,
    staging: QualifiedName,
    plan: ApplyPlan,
    /// The control file's contents but its files and columns.
    control: Control,
    /// `COLUMNS` of the data: the moved columns and their target types.
    data_columns: Vec<(String, String)>,
    mapping: Vec<(String, String)>,
    max_line_length: Option<u64>,
    data_path: PathBuf,
    control_path: PathBuf,
    program: String,
    password: Option<String>,
    keep_files: bool,
    /// The data file was written by this sink (not staged by the transport).
    wrote_data: bool,
    mount_path: Option<PathBuf>,
    /// `host:port` of the ETL host's sshd when gpload runs there.
    ssh_host: Option<String>,
    runner: Arc<dyn Runner>,
    /// The target cluster's name.
    target: String,
    /// What the load did, for history.
    detail: LoadDetail,
    /// `PGSSLMODE` (and locally `PGSSLROOTCERT`): gpload secures its session as ours are.
    tls_env: Vec<(String, String)>,
}

fn fail(message: String) -> RoleError {
    RoleError::new(message)
}

#[async_trait]
impl Sink for GploadSink {
    fn formats(&self, _mode: Mode) -> Vec<CopyFormat> {
        // FORMAT csv: what the shared mount stages and what gpload reads in place.
        vec![CopyFormat::Csv]
    }

    fn check_table(&self, t: &gptransfer_core::config::TableSpec, columns: &[String]) -> Result<(), String> {
        self.load_columns(t, columns).map(drop)
    }

    fn commits_with_state(&self) -> bool {
        true
    }

    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError> {
        let c = &self.config;
        let t = &ctx.table;
        // With MAPPING gpload fills the mapped target columns; else the moved ones.
        let apply_columns: Vec<String> =
            if c.mapping.is_empty() { ctx.columns.to_vec() } else { c.mapping.keys().cloned().collect() };
        let (mode, match_columns, update_columns) = self.load_columns(t, &apply_columns).map_err(fail)?;
        if mode != LoadMode::Insert && match_columns.is_empty() {
            return Err(fail(format!(
                "gpload {} mode needs match columns: set the table's key or the sink's match_columns",
                mode.as_str()
            )));
        }
        // The table's mode decides what goes before the batch, whatever the sink's `mode` (how
        // gpload applies it): a window loaded again never finds its earlier rows.
        let mut prelude = Vec::new();
        match t.mode {
            Mode::Replace => prelude.push(ctx.delete_window()?),
            Mode::Full => prelude.push(sql::truncate(&t.target_table)),
            Mode::Merge if t.clear_window_first => prelude.push(ctx.delete_window()?),
            Mode::Merge | Mode::Append => {}
        }

        let session = ctx
            .target
            .connect(&ctx.application, t.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        // Column types from the target: gpload's COLUMNS describe the data file.
        let rows = session
            .timed(session.client.query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                &[&t.target_table.quoted()],
            ))
            .await
            .map_err(|e| fail(format!("reading the columns of {} on the target: {}", t.target_table, e.message)))?;
        let types: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut data_columns = Vec::with_capacity(ctx.columns.len());
        for col in ctx.columns.iter() {
            let ty = types
                .get(col)
                .ok_or_else(|| fail(format!("column {col:?} is not in {} on the target", t.target_table)))?;
            data_columns.push((gpload_name(col), ty.clone()));
        }
        let staging = staging_name(&t.job, &t.target_table, &ctx.window.id());
        let create = apply::create_staging(session.flavour, &t.target_table, &staging);
        tracing::debug!(cluster = %ctx.target.name, "{create}");
        session.timed(session.client.batch_execute(&create)).await.map_err(|e| {
            fail(format!(
                "creating the staging table {staging} for gpload on target cluster {:?}: {} (the sink needs CREATE \
                 on schema {:?})",
                ctx.target.name, e.message, t.target_table.schema
            ))
        })?;

        let pg = ctx.target.pg_config();
        let host = match pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let database = pg.get_dbname().unwrap_or_default().to_string();
        let password = pg.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        let dir = c.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let base = format!(
            "{}^{}^{}^{}",
            file_component(&database),
            file_component(&t.target_table.schema),
            file_component(&t.target_table.name),
            ctx.window.id()
        );
        let data_path = dir.join(format!("{base}.csv"));
        let control_path = dir.join(format!("{base}.yml"));
        let control = Control {
            database,
            user: pg.get_user().unwrap_or_default().to_string(),
            host,
            port: pg.get_ports().first().copied().unwrap_or(5432),
            local_hostname: c.local_hostname.clone(),
            gpfdist_port: c.port,
            gpfdist_port_range: c.port_range,
            files: Vec::new(),
            columns: Vec::new(),
            encoding: c.encoding.clone(),
            error_limit: c.error_limit,
            log_errors: c.log_errors,
            max_line_length: None,
            // gpload only fills the staging table; the window's mode is applied by us.
            table: staging.to_string(),
            mode: LoadMode::Insert,
            match_columns: Vec::new(),
            update_columns: Vec::new(),
            update_condition: None,
            mapping: Vec::new(),
            truncate: false,
            reuse_tables: c.reuse_tables,
            before: Vec::new(),
            after: Vec::new(),
        };
        Ok(Box::new(GploadWindow {
            session,
            in_tx: false,
            staging_used: false,
            target_table: t.target_table.clone(),
            staging,
            plan: ApplyPlan {
                mode,
                prelude,
                columns: apply_columns,
                key: match_columns,
                update_columns,
                condition: c.update_condition.clone(),
            },
            control,
            data_columns,
            mapping: c.mapping.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            max_line_length: c.max_line_length,
            data_path,
            control_path,
            program: c.gpload.clone(),
            password,
            keep_files: c.keep_files,
            wrote_data: false,
            mount_path: c.mount_path.clone(),
            ssh_host: c.host.as_ref().map(|h| format!("{h}:{}", c.ssh_port)),
            runner: self.runner.clone(),
            target: ctx.target.name.clone(),
            detail: LoadDetail::default(),
            // A CA path of this host means nothing on the ETL host: there only the sink's own
            // `sslrootcert` is passed.
            tls_env: ctx
                .target
                .libpq_tls_env()
                .into_iter()
                .filter(|(k, _)| k != "PGSSLROOTCERT" || (c.host.is_none() && c.sslrootcert.is_none()))
                .chain(c.sslrootcert.iter().map(|p| ("PGSSLROOTCERT".to_string(), p.display().to_string())))
                .collect(),
        }))
    }
}

/// A column as gpload's `COLUMNS` takes it: plain names as they are, others quoted for SQL.
fn gpload_name(col: &str) -> String {
    if check_merge_column(col, "").is_ok() {
        col.to_string()
    } else {
        quote_ident(col)
    }
}

/// A file name part without `/` or NUL.
fn file_component(s: &str) -> String {
    s.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect()
}

/// Decides a gpload run into the staging table: the rows it loaded, or why the window fails.
pub(crate) fn judge(code: i32, output: &str, delivered: u64) -> Result<u64, String> {
    let s = Summary::parse(output);
    let words = |s: &Summary| {
        if s.errors.is_empty() {
            let tail: Vec<&str> = output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            one_line(&tail.join(" / "))
        } else {
            s.errors.join("; ")
        }
    };
    if code != 0 && code != 1 {
        let what = match code {
            2 => "gpload failed (exit 2)".to_string(),
            126 => "gpload is not executable (exit 126)".to_string(),
            127 => "gpload was not found (exit 127)".to_string(),
            c if c > 128 => format!("gpload was killed by signal {} (exit {c})", c - 128),
            c => format!("gpload exited {c}"),
        };
        return Err(format!("{what}: {}", words(&s)));
    }
    if s.succeeded == Some(false) || !s.errors.is_empty() {
        return Err(format!("gpload failed (exit {code}): {}", words(&s)));
    }
    if let Some(n) = s.format_errors.filter(|n| *n > 0) {
        let mut why = format!("gpload reported {n} data formatting error(s)");
        if !s.warnings.is_empty() {
            why.push_str(": ");
            why.push_str(&s.warnings.join("; "));
        }
        return Err(why);
    }
    let (Some(inserted), Some(true)) = (s.inserted, s.succeeded) else {
        return Err(format!("gpload (exit {code}) printed no complete summary: {}", words(&s)));
    };
    if inserted != delivered {
        return Err(format!("gpload loaded {inserted} rows, but {delivered} rows were delivered"));
    }
    Ok(inserted)
}

/// gpfdist's words when a row is longer than its `-m`.
const LINE_TOO_LONG: &str = "line too long";

impl GploadWindow {
    /// Runs `f` on our session, naming the target when it fails.
    fn target_err(&self, what: &str) -> impl Fn(RoleError) -> RoleError {
        let prefix = format!("{what} of {} on target cluster {:?}", self.target_table, self.target);
        move |e| RoleError { message: format!("{prefix}: {}", e.message), ..e }
    }

    /// Empties the staging table after an attempt that is not used (a fallback).
    async fn reset_staging(&mut self) -> Result<(), RoleError> {
        if self.staging_used {
            let sql = format!("TRUNCATE TABLE {}", self.staging.quoted());
            let s = &self.session;
            s.timed(s.client.batch_execute(&sql)).await.map_err(self.target_err("emptying the staging table"))?;
            self.staging_used = false;
        }
        Ok(())
    }

    /// Writes the control file for `files` with `columns`, runs gpload into the staging
    /// table and judges its summary.
    async fn run_gpload(
        &mut self,
        files: Vec<String>,
        columns: Vec<(String, String)>,
        mapping: Vec<(String, String)>,
        max_line_length: Option<u64>,
        delivered: u64,
    ) -> Result<u64, RoleError> {
        self.reset_staging().await?;
        self.control.files = files;
        self.control.columns = columns;
        self.control.mapping = mapping;
        self.control.max_line_length = max_line_length;
        self.runner.put_file(&self.control_path, self.control.render().as_bytes()).await.map_err(fail)?;
        let args = vec![self.program.clone(), "-f".to_string(), self.control_path.display().to_string()];
        // The password reaches gpload in its environment only (gpload reads PGPASSWORD).
        let mut env: Vec<(String, String)> =
            self.password.iter().map(|p| ("PGPASSWORD".to_string(), p.clone())).collect();
        env.extend(self.tls_env.iter().cloned());
        tracing::debug!(cluster = %self.target, "running {}", args.join(" "));
        self.staging_used = true;
        let out = self.runner.run(&args, &env).await.map_err(|e| {
            fail(format!(
                "loading {} into target cluster {:?}: {e}; the target is unchanged (gpload loads only the staging \
                 table {})",
                self.target_table, self.target, self.staging
            ))
        })?;
        let output = format!("{}\n{}", out.stdout, out.stderr);
        // Nothing reached the target: only gpload's format errors are worth recording.
        self.detail = LoadDetail { format_errors: Summary::parse(&output).format_errors, ..LoadDetail::default() };
        let loaded = judge(out.code, &output, delivered).map_err(|m| {
            fail(format!(
                "loading into target cluster {:?}: {m} (the target is unchanged; control file kept: {})",
                self.target,
                self.control_path.display()
            ))
        })?;
        tracing::debug!(cluster = %self.target, "gpload staged {loaded} rows in {}", self.staging);
        Ok(loaded)
    }

    /// Keys of the staging table held by more than one row: (keys, rows holding them).
    async fn duplicates(&self) -> Result<(u64, u64), RoleError> {
        let s = &self.session;
        let row = s
            .timed(s.client.query_one(apply::duplicate_keys(&self.staging, &self.plan.key).as_str(), &[]))
            .await
            .map_err(self.target_err("counting duplicate keys"))?;
        let count = |i: usize| -> Result<u64, RoleError> {
            let n: i64 =
                row.try_get(i).map_err(|e| fail(format!("counting duplicate keys in {}: {e}", self.staging)))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok((count(0)?, count(1)?))
    }

    /// Opens our transaction and moves the staged rows into the target in the plan's mode;
    /// returns the rows written. Nothing is visible until the engine commits.
    async fn apply(&mut self) -> Result<u64, RoleError> {
        let err = self.target_err("applying the window");
        let s = &self.session;
        let p = &self.plan;
        let (t, stg) = (&self.target_table, &self.staging);
        s.timed(s.client.batch_execute("BEGIN")).await.map_err(&err)?;
        self.in_tx = true;
        for sql in &p.prelude {
            tracing::debug!(cluster = %self.target, "{sql}");
            s.timed(s.client.batch_execute(sql)).await.map_err(&err)?;
        }
        let run = |sql: String| {
            tracing::debug!(cluster = %self.target, "{sql}");
            async move { s.timed(s.client.execute(sql.as_str(), &[])).await }
        };
        let (inserted, updated, duplicates) = match p.mode {
            LoadMode::Insert => (run(apply::insert_all(t, stg, &p.columns)).await.map_err(&err)?, 0, None),
            LoadMode::Update | LoadMode::Merge => {
                let nulls: i64 = s
                    .timed(s.client.query_one(sql::null_key_rows(&stg.quoted(), &p.key).as_str(), &[]))
                    .await
                    .map_err(&err)?
                    .get(0);
                if nulls > 0 {
                    return Err(err(RoleError::new(sql::null_key_message(nulls, &p.key))));
                }
                let (keys, rows) = self.duplicates().await?;
                let folded = rows - keys;
                let updated = run(apply::update(t, stg, &p.columns, &p.key, &p.update_columns, p.condition.as_deref()))
                    .await
                    .map_err(&err)?;
                let inserted = if p.mode == LoadMode::Merge {
                    run(apply::insert_new(t, stg, &p.columns, &p.key)).await.map_err(&err)?
                } else {
                    0
                };
                if folded > 0 {
                    let sql = apply::duplicate_examples(stg, &p.key);
                    let examples = match s.timed(s.client.query(sql.as_str(), &[])).await {
                        Ok(found) => {
                            found.iter().filter_map(|r| r.try_get::<_, String>(0).ok()).collect::<Vec<_>>().join("; ")
                        }
                        Err(e) => e.message,
                    };
                    // Not an error (merge keeps the last row, as the copy sink does), but the source
                    // sent a key twice in one window: worth an operator's look.
                    tracing::warn!(
                        cluster = %self.target,
                        "{keys} key(s) of {t} came {rows} times in the window ({examples}{more}): the last row of each \
                         was kept",
                        more = if keys > 5 { "; …" } else { "" }
                    );
                }
                (inserted, updated, Some(folded))
            }
        };
        self.detail = LoadDetail {
            inserted: Some(inserted),
            updated: Some(updated),
            format_errors: self.detail.format_errors,
            duplicates,
        };
        Ok(inserted + updated)
    }
}

#[async_trait]
impl SinkWindow for GploadWindow {
    async fn load(&mut self, mut rows: ByteStream) -> Result<u64, RoleError> {
        // Each row gets its position in the batch, so a merge keeps the last row of a key.
        let mut numbering = BatchNumbering::for_format(CopyFormat::Csv);
        self.runner.put_file(&self.data_path, b"").await.map_err(fail)?;
        self.wrote_data = true;
        while let Some(chunk) = rows.next().await {
            let chunk = numbering.number(&chunk?);
            self.runner.append_file(&self.data_path, &chunk).await.map_err(fail)?;
        }
        let delivered = numbering.rows();
        let max_line = line_limit(numbering.longest_row(), self.max_line_length)
            .map_err(|m| fail(format!("loading {} with gpload: {m}; the target is unchanged", self.target_table)))?;
        let mut columns = self.data_columns.clone();
        columns.push((apply::SEQ.to_string(), "bigint".to_string()));
        let mut mapping = self.mapping.clone();
        if !mapping.is_empty() {
            mapping.push((apply::SEQ.to_string(), apply::SEQ.to_string()));
        }
        let file = self.data_path.display().to_string();
        self.run_gpload(vec![file], columns, mapping, max_line, delivered).await?;
        self.apply().await
    }

    async fn load_staged(&mut self, staged: &StagedFiles) -> Option<Result<u64, RoleError>> {
        if staged.format != CopyFormat::Csv {
            return None;
        }
        // gpfdist reads the .csv.gz parts where they are: no second copy of the window. A
        // shared mount is reachable from the gpload host (at `mount_path`); files on a remote
        // host only when gpload runs on that very host.
        let root = match &staged.host {
            None => self.mount_path.clone().unwrap_or_else(|| staged.root.clone()),
            Some(host) if self.ssh_host.as_ref() == Some(host) => staged.root.clone(),
            Some(_) => return None,
        };
        let files = staged.files.iter().map(|f| root.join(f).display().to_string()).collect();
        let (columns, mapping) = (self.data_columns.clone(), self.mapping.clone());
        // The manifest measured the rows; older ones did not.
        let limit = match staged.longest_row {
            Some(longest) => match line_limit(longest, self.max_line_length) {
                Ok(limit) => limit,
                Err(m) => {
                    return Some(Err(fail(format!(
                        "loading {} with gpload: {m}; the target is unchanged",
                        self.target_table
                    ))))
                }
            },
            None => self.max_line_length,
        };
        let measured = staged.longest_row.is_some() || self.max_line_length.is_some();
        match self.run_gpload(files, columns, mapping, limit, staged.rows).await {
            Ok(_) => {}
            // Files whose rows were not measured: a row past gpfdist's 32 KB default makes the
            // window stream through `load`, which measures them.
            Err(e) if !measured && e.message.contains(LINE_TOO_LONG) => {
                tracing::info!(cluster = %self.target, "rows longer than 32 KB: loading {} from a measured copy", self.target_table);
                return self.reset_staging().await.err().map(Err);
            }
            Err(e) => return Some(Err(e)),
        }
        if self.plan.mode != LoadMode::Insert {
            // Files loaded in place carry no row positions: with a key twice in the window,
            // which row is the last one is known only from a numbered copy.
            match self.duplicates().await {
                Ok((0, _)) => {}
                Ok((keys, _)) => {
                    tracing::info!(
                        cluster = %self.target,
                        "{keys} duplicate key(s) in the window of {}: loading a numbered copy so the last row wins",
                        self.target_table
                    );
                    return self.reset_staging().await.err().map(Err);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(self.apply().await)
    }

    fn detail(&self) -> LoadDetail {
        self.detail
    }

    fn transaction(&self) -> Option<&tokio_postgres::Client> {
        self.in_tx.then_some(&self.session.client)
    }

    async fn commit(self: Box<Self>) -> Result<(), RoleError> {
        let s = &self.session;
        s.timed(s.client.batch_execute("COMMIT")).await.map_err(self.target_err("committing the window"))?;
        if let Err(e) = s.timed(s.client.batch_execute(&apply::drop_staging(&self.staging))).await {
            tracing::warn!(
                "the window is loaded, but the staging table {} was not dropped: {}",
                self.staging,
                e.message
            );
        }
        if !self.keep_files {
            let data = self.wrote_data.then_some(&self.data_path);
            for p in data.into_iter().chain([&self.control_path]) {
                if let Err(e) = self.runner.remove_file(p).await {
                    tracing::warn!("{e}");
                }
            }
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        // Nothing reached the target outside our transaction: rolling it back leaves the target
        // as it was. The files stay for inspection; the staging table goes (a killed run's is
        // replaced by the next attempt at this window).
        let s = &self.session;
        if self.in_tx {
            let _ = s.timed(s.client.batch_execute("ROLLBACK")).await;
        }
        let _ = s.timed(s.client.batch_execute(&apply::drop_staging(&self.staging))).await;
        tracing::debug!(cluster = %self.target, "gpload window aborted; files kept: {}", self.control_path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::judge;
    use gptransfer_core::registry::Factory;

    #[test]
    fn the_spec_example_sink_options_validate() {
        let f = super::GploadSinkFactory;
        let ok = |t: &str| f.validate(&toml::from_str(t).unwrap());
        assert_eq!(
            ok(r#"host = "etl01"
user = "gpadmin""#),
            Ok(())
        );
        assert!(ok(r#"host = "etl01""#).unwrap_err().contains("host needs user"));
        assert!(ok(r#"user = "gpadmin""#).unwrap_err().contains("need host"));
        assert_eq!(
            ok(r#"host = "etl01"
user = "gpadmin"
ssh_port = 2222
port = 8081
known_hosts = "/etc/ssh/ssh_known_hosts""#),
            Ok(())
        );
    }

    const OK: &str = "2026-11-24 00:18:04|INFO|rows Inserted          = 3\n\
                      2026-11-24 00:18:04|INFO|rows Updated           = 0\n\
                      2026-11-24 00:18:04|INFO|data formatting errors = 0\n\
                      2026-11-24 00:18:04|INFO|gpload succeeded\n";

    #[test]
    fn judges_runs() {
        assert_eq!(judge(0, OK, 3), Ok(3));
        assert!(judge(0, OK, 4).unwrap_err().contains("but 4 rows were delivered"));
        let bad = OK.replace("errors = 0", "errors = 1").replace("succeeded", "succeeded with warnings");
        let bad = format!("2026-11-24 00:18:09|WARN|1 bad row\n{bad}");
        assert_eq!(judge(1, &bad, 3).unwrap_err(), "gpload reported 1 data formatting error(s): 1 bad row");
        let failed = "2026-11-24 00:18:04|ERROR|table public.nope does not exist in database postgres\n\
                      2026-11-24 00:18:04|INFO|gpload failed\n";
        assert_eq!(
            judge(2, failed, 3).unwrap_err(),
            "gpload failed (exit 2): table public.nope does not exist in database postgres"
        );
        assert!(judge(127, "sh: gpload: not found", 3).unwrap_err().starts_with("gpload was not found (exit 127)"));
    }

    #[test]
    fn the_line_limit_follows_the_longest_row() {
        use super::line_limit;
        assert_eq!(line_limit(100, None), Ok(None));
        assert_eq!(line_limit(32_768, None), Ok(None));
        assert_eq!(line_limit(40_001, None), Ok(Some(65_536)));
        assert_eq!(line_limit(268_435_456, None), Ok(Some(268_435_456)));
        assert!(line_limit(268_435_457, None).unwrap_err().contains("longer than gpfdist can read"));
        assert_eq!(line_limit(100, Some(1_048_576)), Ok(Some(1_048_576)));
        assert!(line_limit(2_000_000, Some(1_048_576)).unwrap_err().contains("max_line_length"));
    }
}
