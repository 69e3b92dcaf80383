//! `gptransfer alarm check | reset`: for a monitor that polls every 15 minutes.

use gptransfer_core::config::{find_config_path, Config, ConfigError};
use gptransfer_core::error::exit;
use gptransfer_core::state::State;

use super::{parse_ts, state_cluster};
use crate::cli::{AlarmCommand, OutputFormat};

pub async fn alarm(config: Option<&std::path::Path>, command: AlarmCommand) -> anyhow::Result<i32> {
    let config = Config::load(&find_config_path(config)).map_err(gptransfer_core::Error::Config)?;
    let cluster = state_cluster(&config)?;
    let app = format!("gptransfer alarm pid {}", std::process::id());
    // The schema is created here too, so a monitor polling before the first compare sees NORMAL.
    let state = State::open(cluster, &config.state.schema, &app).await?;
    match command {
        AlarmCommand::Check { hours, output } => {
            let status = state.alarm_status(hours).await?;
            let normal = status.differences == 0 && status.errors == 0;
            let line = if normal {
                config.alarm.normal_message.clone()
            } else {
                // Windows that could not be compared are named apart: they are not known to differ.
                let mut parts = Vec::new();
                if status.differences > 0 {
                    parts.push(format!("{} differences in {}", status.differences, status.tables.join(", ")));
                }
                if status.errors > 0 {
                    parts.push(format!(
                        "{} window(s) could not be compared in {}",
                        status.errors,
                        status.error_tables.join(", ")
                    ));
                }
                format!("{} {}", config.alarm.abnormal_message, parts.join("; "))
            };
            match output {
                OutputFormat::Human => println!("{line}"),
                OutputFormat::Json => {
                    #[derive(serde::Serialize)]
                    struct Checked<'a> {
                        normal: bool,
                        message: &'a str,
                        hours: f64,
                        #[serde(flatten)]
                        status: &'a gptransfer_core::state::AlarmStatus,
                    }
                    let checked = Checked { normal, message: &line, hours, status: &status };
                    println!("{}", serde_json::to_string_pretty(&checked)?);
                }
            }
            Ok(if normal { exit::OK } else { exit::DIFFERENCES })
        }
        AlarmCommand::Reset { table, before } => {
            let before = parse_ts("--before", before.as_deref())?;
            // `schema.table`: every entry reading it; `source -> target`: that entry, named as
            // compare names it.
            let parse = |t: &str| {
                gptransfer_core::dialect::QualifiedName::parse(t.trim())
                    .map_err(|e| gptransfer_core::Error::Config(ConfigError::file(std::path::Path::new("--table"), e)))
            };
            let (table, every_target) = match table.as_deref().map(|t| (t, t.split_once("->"))) {
                None => (None, false),
                Some((_, Some((source, target)))) => {
                    let (source, target) = (parse(source)?, parse(target)?);
                    let entry = if source == target { source.to_string() } else { format!("{source} -> {target}") };
                    (Some(entry), false)
                }
                Some((t, None)) => (Some(parse(t)?.to_string()), true),
            };
            let n = state.alarm_reset(table.as_deref(), every_target, before).await?;
            println!("{n} alarm(s) reset");
            Ok(exit::OK)
        }
    }
}
