//! `gptransfer plan`: due windows and the plugin chain, nothing moved.

use gptransfer_core::engine::plan_tables;
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;

use super::{load_config_with_readers, parse_until};
use crate::cli::{OutputFormat, PlanArgs};
use crate::output;

pub async fn plan(config: Option<&std::path::Path>, registry: &Registry, args: PlanArgs) -> anyhow::Result<i32> {
    let loaded = load_config_with_readers(config, registry, &args.selection.jobs).await?;
    let config = &loaded.config;
    let tables = loaded.select(&args.selection.jobs, &args.selection.tables)?;
    let until = parse_until(args.until.as_deref())?;
    let planned = plan_tables(config, &tables, until).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&planned)?),
        OutputFormat::Human => {
            let mut due = 0;
            for p in &planned {
                due += p.windows.len();
                println!("{} / {}  [{} mode, {}]", p.job, p.table, p.mode, p.chain);
                if p.target_table != p.table {
                    println!("  target: {}", p.target_table);
                }
                if let Some(statements) = &p.creates_target {
                    println!("  target {} is missing: the first run creates it (create_target):", p.target_table);
                    for s in statements {
                        for line in s.lines() {
                            println!("    {line}");
                        }
                    }
                }
                let cursor = p.cursor.map_or("never run".to_string(), |c| c.format("%Y-%m-%d %H:%M:%S").to_string());
                println!("  cursor: {cursor}; windows end by {}", p.limit.format("%Y-%m-%d %H:%M:%S"));
                match p.windows.len() {
                    0 => println!("  no due window"),
                    n => {
                        let shown = output::abbreviate(&p.windows, 10);
                        println!("  {n} due window(s): {shown}");
                        if p.more {
                            println!(
                                "  more windows are due after these: a run loads at most {} windows of a table, \
                                 the next run goes on",
                                gptransfer_core::window::MAX_WINDOWS_PER_RUN
                            );
                        }
                    }
                }
            }
            println!("{due} due window(s) in {} table(s)", planned.len());
        }
    }
    if loaded.say_failed("not planned") {
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}
