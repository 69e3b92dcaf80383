//! One module per command; each returns the process exit code.

mod alarm;
mod check;
mod compare;
mod daemon;
mod history;
mod plan;
mod plugins;
mod run;

use gptransfer_core::config::{find_config_path, Config, ConfigTimestamp};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

use crate::cli::{Cli, Command, ConfigCommand};

pub async fn dispatch(cli: Cli, registry: Registry) -> i32 {
    let result = match cli.command {
        Command::Plugins => plugins::plugins(&registry),
        Command::Compare(args) => compare::compare(cli.config.as_deref(), &registry, args).await,
        Command::Alarm { command } => alarm::alarm(cli.config.as_deref(), command).await,
        Command::Daemon(args) => daemon::daemon(cli.config.as_deref(), &registry, args).await,
        Command::Run(args) => run::run(cli.config.as_deref(), &registry, args).await,
        Command::Plan(args) => plan::plan(cli.config.as_deref(), &registry, args).await,
        Command::History(args) => history::history(cli.config.as_deref(), args).await,
        Command::Config { command: ConfigCommand::Check } => check::check(cli.config.as_deref(), &registry).await,
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
    Ok(config)
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

/// The clock of a run: local wall time, as the condition columns of the seed's tables hold it.
pub fn now() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}
