//! `gptransfer history`.

use gptransfer_core::config::{find_config_path, Config};
use gptransfer_core::engine::select_tables;
use gptransfer_core::state::{HistoryFilter, State};

use crate::cli::{HistoryArgs, OutputFormat};
use crate::output;

/// Characters of an error shown in the table.
const ERROR_WIDTH: usize = 80;

pub async fn history(config: Option<&std::path::Path>, args: HistoryArgs) -> anyhow::Result<i32> {
    let config = Config::load(&find_config_path(config)).map_err(gptransfer_core::Error::Config)?;
    // `schema.table`: every entry reading it; `source -> target`: that entry only.
    let (table, target_table) = match &args.table {
        Some(t) => {
            let jobs: Vec<String> = args.job.iter().cloned().collect();
            let found =
                select_tables(&config, &jobs, std::slice::from_ref(t)).map_err(gptransfer_core::Error::Config)?;
            let one_entry = t.contains("->");
            (
                found.first().map(|e| e.source_table.to_string()),
                found.first().filter(|_| one_entry).map(|e| e.target_table.to_string()),
            )
        }
        None => (None, None),
    };
    let cluster = super::state_cluster(&config)?;
    let app = format!("gptransfer history pid {}", std::process::id());
    let filter = HistoryFilter {
        job: args.job.clone(),
        table,
        target_table,
        failed_only: args.failed,
        limit: args.limit.max(1),
        since: None,
    };
    let rows = match State::open_existing(cluster, &config.state.schema, &app).await? {
        Some(state) => state.history(&filter).await?,
        None => Vec::new(),
    };
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Human => {
            if rows.is_empty() {
                println!("no history yet");
                return Ok(0);
            }
            // Only loaders that report more than a count (gpload) fill these; a column for them
            // appears when some row has them.
            let loader_counts = rows.iter().any(|r| r.rows_inserted.is_some() || r.format_errors.is_some());
            // Duplicate keys folded by a merge (the last row of a batch wins): a column when any
            // row folded some.
            let folded = rows.iter().any(|r| r.duplicates_folded.unwrap_or(0) > 0);
            let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            let body = rows
                .iter()
                .map(|r| {
                    let mut row = vec![
                        output::local_time(r.started_at),
                        r.job.clone(),
                        // The entry, as every other output names it: `source -> target` where they differ.
                        if r.target_table == r.table {
                            r.table.clone()
                        } else {
                            format!("{} -> {}", r.table, r.target_table)
                        },
                        // A cursor moved by hand shows where it went; its reason, where it was.
                        if r.status == "cursor set" {
                            format!("cursor -> {}", r.window_end)
                        } else {
                            r.window_id.clone()
                        },
                        r.mode.clone(),
                        match &r.reason {
                            Some(reason) => format!("{} ({reason})", r.status),
                            None => r.status.clone(),
                        },
                        r.rows_read.map_or(String::new(), |v| v.to_string()),
                        r.rows_written.map_or(String::new(), |v| v.to_string()),
                    ];
                    if loader_counts {
                        row.push(format!("{}/{}/{}", opt(r.rows_inserted), opt(r.rows_updated), opt(r.format_errors)));
                    }
                    if folded {
                        row.push(opt(r.duplicates_folded));
                    }
                    row.extend([
                        r.bytes.map_or(String::new(), |b| output::bytes(b.max(0) as u64)),
                        r.elapsed_seconds.clone().map(|s| format!("{s}s")).unwrap_or_default(),
                        r.attempt.to_string(),
                        r.error.clone().map(|e| output::one_line(&e, ERROR_WIDTH)).unwrap_or_default(),
                    ]);
                    row
                })
                .collect();
            let mut head =
                vec!["STARTED", "JOB", "TABLE", "WINDOW", "MODE", "STATUS", "READ", "WRITTEN", "BYTES", "ELAPSED"];
            if loader_counts {
                head.insert(8, "INS/UPD/ERR");
            }
            if folded {
                head.insert(if loader_counts { 9 } else { 8 }, "FOLDED");
            }
            head.extend(["TRY", "ERROR"]);
            println!("{}", output::table(&head, body));
            let failed: Vec<_> = rows.iter().filter_map(|r| r.error.as_ref().map(|e| (r, e))).collect();
            if args.errors {
                for (r, e) in &failed {
                    println!("\n{} / {} {} (attempt {}):\n{e}", r.job, r.table, r.window_id, r.attempt);
                }
            } else if failed.iter().any(|(_, e)| output::one_line(e, ERROR_WIDTH) != **e) {
                println!("(errors are cut to one line of {ERROR_WIDTH} characters: `--errors` prints them whole)");
            }
        }
    }
    Ok(0)
}
