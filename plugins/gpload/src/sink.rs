//! The `gpload` sink: data file + control YAML through a [`Runner`], gpload run, summary judged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_postgres::config::Host;

use gptransfer_core::config::Mode;
use gptransfer_core::dialect::{quote_ident, sql};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, LoadDetail, Sink, SinkWindow, StagedFiles, WindowCtx};
use gptransfer_core::rowcount::RowCounter;
use gptransfer_core::RoleError;

use crate::control::{Control, LoadMode};
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
        let config = parse_options::<GploadConfig>(options)?;
        config.check()?;
        let runner: Arc<dyn Runner> = match config.ssh() {
            // Before the run touches any server: host key, login and the gpload program.
            Some(ssh) => Arc::new(SshRunner::new(preflight(&ssh, &config.gpload)?)),
            None => Arc::new(LocalRunner),
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
            ..SshConfig::default()
        })
    }
}

/// Connects to the ETL host (host key, login) and checks that `program` is there (blocking).
pub fn preflight(config: &SshConfig, program: &str) -> Result<Ssh, String> {
    let ssh = connect(config).map_err(|e| e.0)?;
    let line = format!("command -v {}", shell_quote(program));
    let out = ssh.run_line(&line).map_err(|e| e.0)?;
    match out.code {
        0 => Ok(ssh),
        // `command -v` prints nothing and exits 1 for a missing command: that is exit 127's case.
        1 => Err(format!(
            "ssh {}: gpload program {program:?}: {} (set the sink's gpload option to its full path)",
            ssh.target,
            explain_exit(127, &out.stderr)
        )),
        code => Err(format!("ssh {}: `{line}`: {}", ssh.target, explain_exit(code, &out.stderr))),
    }
}

/// A window prepared for gpload: the control file's contents but its files.
struct GploadWindow {
    control: Control,
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
    target: String,
    /// gpload's counters of the last run, for history.
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

    async fn begin(&self, ctx: &WindowCtx) -> Result<Box<dyn SinkWindow>, RoleError> {
        let c = &self.config;
        let t = &ctx.table;
        let (mode, match_columns, update_columns) = self.load_columns(t, &ctx.columns).map_err(fail)?;
        if mode != LoadMode::Insert && match_columns.is_empty() {
            return Err(fail(format!(
                "gpload {} mode needs match columns: set the table's key or the sink's match_columns",
                mode.as_str()
            )));
        }

        let mut before = Vec::new();
        if c.mode.is_none() {
            match t.mode {
                // In BEFORE, the delete shares gpload's transaction: a failed load keeps the old rows.
                Mode::Replace => before.push(ctx.delete_window()?),
                Mode::Full => before.push(sql::truncate(&t.target_table)),
                Mode::Merge | Mode::Append => {}
            }
        }

        // Column types from the target: gpload's COLUMNS describe the data file.
        let session = ctx
            .target
            .connect(&ctx.application, t.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let rows = session
            .timed(session.client.query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                &[&t.target_table.quoted()],
            ))
            .await
            .map_err(|e| fail(format!("reading the columns of {} on the target: {}", t.target_table, e.message)))?;
        drop(session);
        let types: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut columns = Vec::with_capacity(ctx.columns.len());
        for col in ctx.columns.iter() {
            let ty = types
                .get(col)
                .ok_or_else(|| fail(format!("column {col:?} is not in {} on the target", t.target_table)))?;
            let name = if check_merge_column(col, "").is_ok() { col.clone() } else { quote_ident(col) };
            columns.push((name, ty.clone()));
        }

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
            files: vec![data_path.display().to_string()],
            columns,
            encoding: c.encoding.clone(),
            error_limit: c.error_limit,
            log_errors: c.log_errors,
            // Plain parts unquoted, as gpload's reference writes `schema.table_name`.
            table: t.target_table.to_string(),
            mode,
            match_columns,
            update_columns,
            update_condition: c.update_condition.clone(),
            mapping: c.mapping.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            truncate: c.preload_truncate,
            reuse_tables: c.reuse_tables,
            before,
            after: Vec::new(),
        };
        Ok(Box::new(GploadWindow {
            control,
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

/// A file name part without `/` or NUL.
fn file_component(s: &str) -> String {
    s.chars().map(|c| if c == '/' || c == '\0' { '_' } else { c }).collect()
}

/// gpload's counters, for history.
fn detail_of(output: &str) -> LoadDetail {
    let s = Summary::parse(output);
    LoadDetail { inserted: s.inserted, updated: s.updated, format_errors: s.format_errors }
}

/// Decides a run: the rows gpload wrote, or why the window fails.
pub(crate) fn judge(code: i32, output: &str, delivered: u64) -> Result<u64, String> {
    let s = Summary::parse(output);
    let words = |s: &Summary| {
        if s.errors.is_empty() {
            let tail: Vec<&str> = output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            tail.join(" / ")
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
        if s.succeeded == Some(true) {
            // Under ERROR_LIMIT gpload skips the bad rows and commits the others.
            why.push_str(" — gpload committed the other rows; the window stays failed and runs again");
        }
        return Err(why);
    }
    let (Some(inserted), Some(updated), Some(true)) = (s.inserted, s.updated, s.succeeded) else {
        return Err(format!("gpload (exit {code}) printed no complete summary: {}", words(&s)));
    };
    if inserted + updated != delivered {
        return Err(format!(
            "gpload wrote {inserted} inserted + {updated} updated rows, but {delivered} rows were delivered"
        ));
    }
    Ok(inserted + updated)
}

impl GploadWindow {
    /// Writes the control file listing `files`, runs gpload and judges its summary.
    async fn run_gpload(&mut self, files: Vec<String>, delivered: u64) -> Result<u64, RoleError> {
        self.control.files = files;
        self.runner.put_file(&self.control_path, self.control.render().as_bytes()).await.map_err(fail)?;
        let args = vec![self.program.clone(), "-f".to_string(), self.control_path.display().to_string()];
        // The password reaches gpload in its environment only (gpload reads PGPASSWORD).
        let mut env: Vec<(String, String)> =
            self.password.iter().map(|p| ("PGPASSWORD".to_string(), p.clone())).collect();
        env.extend(self.tls_env.iter().cloned());
        tracing::debug!(cluster = %self.target, "running {}", args.join(" "));
        let out = self.runner.run(&args, &env).await.map_err(fail)?;
        let output = format!("{}\n{}", out.stdout, out.stderr);
        self.detail = detail_of(&output);
        let written = judge(out.code, &output, delivered).map_err(|m| {
            fail(format!(
                "loading into target cluster {:?}: {m} (control file kept: {})",
                self.target,
                self.control_path.display()
            ))
        })?;
        tracing::debug!(cluster = %self.target, "gpload wrote {written} rows");
        Ok(written)
    }
}

#[async_trait]
impl SinkWindow for GploadWindow {
    async fn load(&mut self, mut rows: ByteStream) -> Result<u64, RoleError> {
        let mut delivered = 0u64;
        let mut counter = RowCounter::new(CopyFormat::Csv);
        self.runner.put_file(&self.data_path, b"").await.map_err(fail)?;
        self.wrote_data = true;
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            delivered += counter.count(&chunk);
            self.runner.append_file(&self.data_path, &chunk).await.map_err(fail)?;
        }
        let file = self.data_path.display().to_string();
        self.run_gpload(vec![file], delivered).await
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
        Some(self.run_gpload(files, staged.rows).await)
    }

    fn detail(&self) -> LoadDetail {
        self.detail
    }

    fn transaction(&self) -> Option<&tokio_postgres::Client> {
        // gpload committed its own transaction: history and cursor follow in the engine's.
        None
    }

    async fn commit(self: Box<Self>) -> Result<(), RoleError> {
        // Already committed by gpload; only the files remain.
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
        // The engine aborts only before commit: either gpload did not run or it failed (and
        // rolled back), or it succeeded and a later step failed — then the rows stay loaded,
        // and a re-run of the window (merge, replace) puts the same rows again. The files stay
        // for inspection.
        tracing::debug!(cluster = %self.target, "gpload window aborted; files kept: {}", self.data_path.display());
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

    const OK: &str = "2026-11-24 00:18:04|INFO|rows Inserted          = 2\n\
                      2026-11-24 00:18:04|INFO|rows Updated           = 1\n\
                      2026-11-24 00:18:04|INFO|data formatting errors = 0\n\
                      2026-11-24 00:18:04|INFO|gpload succeeded\n";

    #[test]
    fn judges_runs() {
        assert_eq!(judge(0, OK, 3), Ok(3));
        assert!(judge(0, OK, 4).unwrap_err().contains("but 4 rows were delivered"));
        let bad = OK.replace("errors = 0", "errors = 1").replace("succeeded", "succeeded with warnings");
        let bad = format!("2026-11-24 00:18:09|WARN|1 bad row\n{bad}");
        assert!(judge(1, &bad, 3).unwrap_err().starts_with("gpload reported 1 data formatting error(s): 1 bad row — "));
        let failed = "2026-11-24 00:18:04|ERROR|table public.nope does not exist in database postgres\n\
                      2026-11-24 00:18:04|INFO|gpload failed\n";
        assert_eq!(
            judge(2, failed, 3).unwrap_err(),
            "gpload failed (exit 2): table public.nope does not exist in database postgres"
        );
        assert!(judge(127, "sh: gpload: not found", 3).unwrap_err().starts_with("gpload was not found (exit 127)"));
    }
}
