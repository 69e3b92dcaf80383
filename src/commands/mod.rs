//! One module per command; each returns the process exit code.

mod alarm;
mod check;
mod compare;
mod cursor;
mod daemon;
mod docs;
mod history;
mod plan;
mod plugins;
mod reload;
mod report;
mod run;
mod status;

use gptransfer_core::config::{find_config_path, Config, ConfigTimestamp, TableSpec};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

use crate::cli::{Cli, Command, ConfigCommand, CursorCommand};

pub async fn dispatch(cli: Cli, mut registry: Registry) -> i32 {
    let uses_plugins = !matches!(
        cli.command,
        Command::Alarm { .. }
            | Command::History(_)
            | Command::Cursor { .. }
            | Command::Completions { .. }
            | Command::Man
    );
    let loaded = if uses_plugins {
        load_external_plugins(cli.config.as_deref(), matches!(cli.command, Command::Plugins), &mut registry)
    } else {
        Ok(())
    };
    let result = match loaded.map(|()| cli.command) {
        Err(e) => Err(e),
        Ok(command) => match command {
            Command::Plugins => plugins::plugins(&registry),
            Command::Compare(args) => compare::compare(cli.config.as_deref(), &registry, args).await,
            Command::Alarm { command } => alarm::alarm(cli.config.as_deref(), command).await,
            Command::Daemon(args) => daemon::daemon(cli.config.as_deref(), &registry, args).await,
            Command::Run(args) => run::run(cli.config.as_deref(), &registry, args, cli.quiet).await,
            Command::Plan(args) => plan::plan(cli.config.as_deref(), &registry, args).await,
            Command::History(args) => history::history(cli.config.as_deref(), args).await,
            Command::Config { command: ConfigCommand::Check { output } } => {
                check::check(cli.config.as_deref(), &registry, cli.quiet, output).await
            }
            Command::Completions { shell } => docs::completions(shell),
            Command::Man => docs::man(),
            Command::Report(args) => report::report(cli.config.as_deref(), &registry, args).await,
            Command::Status(args) => status::status(cli.config.as_deref(), &registry, args).await,
            Command::Reload(args) => reload::reload(cli.config.as_deref(), &registry, args, cli.quiet).await,
            Command::Cursor { command: CursorCommand::Set(args) } => {
                cursor::set(cli.config.as_deref(), &registry, args).await
            }
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<gptransfer_core::Error>().map_or(exit::FAILED, |e| e.exit_code());
            let code =
                if e.downcast_ref::<gptransfer_core::config::ConfigError>().is_some() { exit::CONFIG } else { code };
            eprintln!("error: {e:#}");
            code
        }
    }
}

/// Loads the config and checks plugin names and options against the registry.
pub fn load_config(path: Option<&std::path::Path>, registry: &Registry) -> anyhow::Result<Config> {
    let path = find_config_path(path);
    let config = Config::load(&path).map_err(gptransfer_core::Error::Config)?;
    registry.validate(&config).map_err(gptransfer_core::Error::Config)?;
    config.check_shared_targets().map_err(gptransfer_core::Error::Config)?;
    config.check_shared_mount_dirs().map_err(gptransfer_core::Error::Config)?;
    Ok(config)
}

/// Loads the external plugins of `[plugins] paths` into the registry. A config that is missing
/// or does not parse is left for the command to report, except for `plugins` given one
/// explicitly.
fn load_external_plugins(
    explicit: Option<&std::path::Path>,
    strict: bool,
    registry: &mut Registry,
) -> anyhow::Result<()> {
    let path = find_config_path(explicit);
    let required = strict && explicit.is_some();
    if !required && !path.exists() {
        return Ok(());
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) if strict => return Err(gptransfer_core::Error::Config(e).into()),
        Err(_) => return Ok(()),
    };
    // A ConfigError alone (not wrapped) is printed once and exits with the config code.
    gptransfer_plugin_external::load_into(registry, &config.path, &config.plugin_paths)?;
    Ok(())
}

/// A config with its config readers run, and the jobs whose readers could not be read.
pub struct Loaded {
    pub config: Config,
    /// Jobs that cannot run this time (job table unreachable, no row for the job, …), each with
    /// its error; they have no tables, the other jobs are whole.
    pub failed: Vec<(String, gptransfer_core::Error)>,
}

impl Loaded {
    /// For a command on named jobs that cannot go on without them: the first failed job is the
    /// command's error.
    pub fn strict(mut self) -> anyhow::Result<Config> {
        match self.failed.drain(..).next() {
            Some((job, e)) => Err(anyhow::Error::new(e).context(format!("job {job:?}"))),
            None => Ok(self.config),
        }
    }

    /// The tables `--job`/`--table` select. A `--table` not found while some job could not be
    /// read may be one of that job's: its failure is said first, and the error says so.
    pub fn select(
        &self,
        jobs: &[String],
        tables: &[String],
    ) -> anyhow::Result<Vec<gptransfer_core::config::TableSpec>> {
        gptransfer_core::engine::select_tables(&self.config, jobs, tables).map_err(|mut e| {
            if !self.failed.is_empty() && !tables.is_empty() {
                self.say_failed("not read");
                let names: Vec<String> = self.failed.iter().map(|(j, _)| format!("{j:?}")).collect();
                e.message.push_str(&format!(
                    "; the tables of job {} are not known this time: its config reader could not be read (above)",
                    names.join(", ")
                ));
            }
            gptransfer_core::Error::Config(e).into()
        })
    }

    /// One `error:` line per job that cannot run (`job "x": {verb}: …`); whether there was any.
    pub fn say_failed(&self, verb: &str) -> bool {
        for (job, e) in &self.failed {
            eprintln!("error: job {job:?}: {verb}: {e}");
        }
        !self.failed.is_empty()
    }
}

/// Loads the config, then runs the config readers (a MySQL job table, a table list in a
/// cluster) of the enabled jobs among `jobs` (all when empty), so that their tables and windows
/// are complete, and checks the plugins again. A job whose job row is switched off is skipped
/// with a note; a job whose reader cannot be read is in [`Loaded::failed`], not an error of the
/// whole command: the other jobs go on.
pub async fn load_config_with_readers(
    path: Option<&std::path::Path>,
    registry: &Registry,
    jobs: &[String],
) -> anyhow::Result<Loaded> {
    let mut config = load_config(path, registry)?;
    let mut failed = Vec::new();
    if config.needs_readers() {
        let wanted = |name: &str| jobs.is_empty() || jobs.iter().any(|j| j == name);
        let outcome = gptransfer_config_readers::load(&mut config, &wanted).await?;
        for (job, note) in &outcome.skipped {
            eprintln!("note: job {job:?}: skipped: {note}");
        }
        failed = outcome.failed;
        registry.validate(&config).map_err(gptransfer_core::Error::Config)?;
        config.check_shared_targets().map_err(gptransfer_core::Error::Config)?;
        config.check_shared_mount_dirs().map_err(gptransfer_core::Error::Config)?;
    }
    Ok(Loaded { config, failed })
}

/// Differences kept per window for alarms (`compare` and the daemon's compare): a cap against
/// a runaway (a wrong table pairing).
pub const MAX_ALARM_KEYS: usize = 100_000;

/// Another enabled entry that loads the same target table as `t`, if one does: replacing a
/// window of `t` would delete that entry's rows too.
pub fn another_entry_loading<'c>(config: &'c Config, t: &TableSpec) -> Option<&'c TableSpec> {
    config
        .tables()
        .filter(|o| o.enabled && config.same_target(o, t))
        .find(|o| !(o.job == t.job && o.display_name() == t.display_name()))
}

/// Parses `--until`.
pub fn parse_until(text: Option<&str>) -> anyhow::Result<Option<chrono::NaiveDateTime>> {
    parse_ts("--until", text)
}

/// Parses a timestamp option; a bad one is a usage error naming the option.
pub fn parse_ts(option: &str, text: Option<&str>) -> anyhow::Result<Option<chrono::NaiveDateTime>> {
    match text {
        None => Ok(None),
        Some(t) => ConfigTimestamp::parse(t).map(|ts| Some(ts.0)).map_err(|e| {
            gptransfer_core::Error::Config(gptransfer_core::config::ConfigError::file(std::path::Path::new(option), e))
                .into()
        }),
    }
}

/// The ETL host's wall time. Windows are planned by each table's own clock (its zone's now, read
/// from the source: core's engine::clock); this one stamps what only the host knows.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// The state cluster's handle (the `[state]` cluster must be one of `[clusters]`).
pub fn state_cluster(config: &Config) -> anyhow::Result<gptransfer_core::cluster::ClusterHandle> {
    let cfg = config.clusters.get(&config.state.cluster).ok_or_else(|| {
        gptransfer_core::Error::Config(gptransfer_core::config::ConfigError::file(
            &config.path,
            "the state cluster is not defined",
        ))
    })?;
    Ok(gptransfer_core::cluster::ClusterHandle::new(&config.state.cluster, cfg)?)
}

/// A usage error naming the option: exit 2 with the message.
pub fn usage(option: &str, message: impl Into<String>) -> anyhow::Error {
    gptransfer_core::Error::Config(gptransfer_core::config::ConfigError::file(std::path::Path::new(option), message))
        .into()
}
