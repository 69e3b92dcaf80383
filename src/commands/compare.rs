//! `gptransfer compare [--repair]`: a report per table and window; exit 3 on differences.

use std::collections::BTreeMap;
use std::sync::Arc;

use gptransfer_core::compare::WindowComparison;
use gptransfer_core::config::{Config, Mode, TableSpec};
use gptransfer_core::engine::{self, compare_tables, table_key, CompareOptions, RunOptions};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::window::Window;

use super::{load_config_with_readers, now, parse_ts};
use crate::cli::{CompareArgs, OutputFormat};
use crate::{progress, signals};

#[derive(serde::Serialize)]
struct CompareOutput<'a> {
    windows: &'a [WindowComparison],
    #[serde(skip_serializing_if = "Option::is_none")]
    after_repair: Option<&'a [WindowComparison]>,
}

pub async fn compare(config: Option<&std::path::Path>, registry: &Registry, args: CompareArgs) -> anyhow::Result<i32> {
    let loaded = load_config_with_readers(config, registry, &args.selection.jobs).await?;
    let config = &loaded.config;
    let tables = loaded.select(&args.selection.jobs, &args.selection.tables)?;
    let options = CompareOptions {
        from: parse_ts("--from", args.from.as_deref())?,
        to: parse_ts("--to", args.to.as_deref())?,
        max_keys: super::MAX_ALARM_KEYS,
        windows: None,
        record_alarms: true,
    };
    let mut before = compare_tables(config, registry, &tables, &options).await?;
    let mut after = if args.repair { repair(config, registry, &tables, &before).await? } else { None };
    // Every difference is alarmed; the report lists the first `--show` of each window.
    for c in before.iter_mut().chain(after.iter_mut().flatten()) {
        c.differences.truncate(args.show);
    }

    match args.output {
        OutputFormat::Json => {
            let out = CompareOutput { windows: &before, after_repair: after.as_deref() };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Human => {
            print!("{}", render(&before, args.show));
            if let Some(after) = &after {
                println!("\nafter repair:");
                print!("{}", render(after, args.show));
            }
        }
    }
    let last = after.as_deref().unwrap_or(&before);
    if loaded.say_failed("not compared") {
        return Ok(exit::FAILED);
    }
    Ok(outcome(last))
}

/// 0 all equal, 3 differences, 1 a window could not be compared.
pub fn outcome(found: &[WindowComparison]) -> i32 {
    if found.iter().any(|c| c.error.is_some()) {
        exit::FAILED
    } else if found.iter().any(WindowComparison::differs) {
        exit::DIFFERENCES
    } else {
        exit::OK
    }
}

/// Re-transfers the differing windows with the table's chain, then compares them again. An
/// append entry's window is replaced (appending cannot remove extra rows), unless another entry
/// loads the same target: the delete would take its rows too, so that entry is not repaired and
/// its windows stay as found. A merge entry's window is deleted, then merged with the source's
/// rows of the window that no later row of their key supersedes: a replace would bring back a
/// key's older row beside its newer one (in another window), and a merge alone would not
/// remove extra rows.
async fn repair(
    config: &Config,
    registry: &Registry,
    tables: &[TableSpec],
    found: &[WindowComparison],
) -> anyhow::Result<Option<Vec<WindowComparison>>> {
    let mut windows: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    let mut repaired: Vec<TableSpec> = Vec::new();
    // Compared again as they were compared first (a merge entry's repair reads its source
    // through a filter the comparison does not use).
    let mut compared: Vec<TableSpec> = Vec::new();
    let mut kept: Vec<WindowComparison> = Vec::new();
    for t in tables {
        let name = t.display_name();
        let bad: Vec<Window> = found
            .iter()
            // Only windows found to differ: one that could not be compared is not known to.
            .filter(|c| c.job == t.job && c.table == name && c.differs())
            .filter_map(|c| parse_window(&c.window).or(if c.window == "full" { Some(full_window()) } else { None }))
            .collect();
        if bad.is_empty() {
            continue;
        }
        let mut spec = t.clone();
        match spec.mode {
            Mode::Append => {
                if let Some(other) = super::another_entry_loading(config, t) {
                    eprintln!(
                        "not repaired: {} / {name} appends into {} together with {} / {}: a repair replaces the window, \
                         and nothing in the target tells one entry's rows from the other's, so it would delete both; \
                         delete the window's rows of this entry from the target yourself, then `reload` it",
                        t.job,
                        t.target_table,
                        other.job,
                        other.display_name()
                    );
                    kept.extend(found.iter().filter(|c| c.job == t.job && c.table == name && c.differs()).cloned());
                    continue;
                }
                spec.mode = Mode::Replace;
            }
            Mode::Merge => {
                spec.clear_window_first = true;
                newest_rows_only(&mut spec)?;
            }
            Mode::Replace | Mode::Full => {}
        }
        windows.insert(table_key(&spec), bad);
        repaired.push(spec);
        compared.push(t.clone());
    }
    if repaired.is_empty() {
        return Ok((!kept.is_empty()).then_some(kept));
    }
    let options = RunOptions {
        jobs: Vec::new(),
        tables: Vec::new(),
        until: None,
        parallel: 1,
        dry_run: false,
        now: now(),
        stop_on_error: false,
        windows: Some(windows.clone()),
        reason: Some("repair"),
    };
    let observer = Arc::new(progress::Reporter::new(false));
    let interrupt = signals::install();
    let report = engine::run(config, registry, repaired.clone(), &options, observer, interrupt.clone()).await?;
    for w in report.windows.iter().filter(|w| w.error.is_some()) {
        eprintln!("repair of {} {} failed: {}", w.table, w.window, w.error.as_deref().unwrap_or(""));
    }
    let again = CompareOptions {
        from: None,
        to: None,
        max_keys: super::MAX_ALARM_KEYS,
        windows: Some(windows),
        record_alarms: true,
    };
    // The handler installed for the repair keeps the process alive on Ctrl+C: a server that
    // does not answer must not hold the signal up.
    let mut after = tokio::select! {
        biased;
        () = interrupt.triggered() => {
            let signal = interrupt.signal().unwrap_or(2);
            return Err(gptransfer_core::Error::InterruptedAfterRepair { signal }.into());
        }
        after = compare_tables(config, registry, &compared, &again) => after?,
    };
    after.extend(kept);
    Ok(Some(after))
}

/// Restricts a merge entry's source to the rows no later row of their key supersedes (by the
/// condition column), ANDed to its `filter`: what a merge of every window in turn leaves in the
/// target. Written for the source's own SQL, with the table unaliased as every source reads it.
fn newest_rows_only(spec: &mut TableSpec) -> anyhow::Result<()> {
    let Some(condition) = spec.condition_column.as_deref() else { return Ok(()) };
    let table = spec.source_table.quoted();
    let later = "gpt_later";
    let mut conditions: Vec<String> = spec
        .key
        .iter()
        .map(|k| {
            let k = gptransfer_core::dialect::quote_ident(k);
            format!("{later}.{k} = {table}.{k}")
        })
        .collect();
    let c = gptransfer_core::dialect::quote_ident(condition);
    conditions.push(format!("{later}.{c} > {table}.{c}"));
    let newest = format!("NOT EXISTS (SELECT 1 FROM {table} {later} WHERE {})", conditions.join(" AND "));
    let options = &mut spec.source.get_mut().options;
    let filter = match options.get("filter").map(|f| f.as_str()) {
        None => newest,
        Some(Some(f)) => format!("({f}) AND {newest}"),
        Some(None) => anyhow::bail!("the source's filter of {} is not a string", spec.display_name()),
    };
    options.insert("filter".into(), filter.into());
    Ok(())
}

fn parse_window(id: &str) -> Option<Window> {
    let (a, b) = id.split_once('^')?;
    let p = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok();
    Some(Window { start: p(a)?, end: p(b)? })
}

fn full_window() -> Window {
    let t = now();
    Window { start: t, end: t }
}

/// The report for people: one block per window that differs, one line per equal table.
pub fn render(found: &[WindowComparison], show: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut equal_per_table: BTreeMap<(String, String), (usize, i64)> = BTreeMap::new();
    for c in found {
        if c.equal {
            let e = equal_per_table.entry((c.job.clone(), c.table.clone())).or_default();
            e.0 += 1;
            e.1 += c.source_count;
            continue;
        }
        if let Some(e) = &c.error {
            // Not a difference: the counts were never read, so none are shown.
            let _ = writeln!(out, "ERROR {} / {} window {}: could not be compared", c.job, c.table, c.window);
            let _ = writeln!(out, "  error: {e}");
            let _ = writeln!(
                out,
                "  fix the cause and compare again (--from/--to this window); nothing is known about its rows"
            );
            continue;
        }
        let _ = writeln!(
            out,
            "DIFFERENT {} / {} window {}: source {} rows, target {} rows",
            c.job, c.table, c.window, c.source_count, c.target_count
        );
        if c.levels.is_empty() {
            // Counted by the sink (compare = "sink"): no rows were read on its side, no keys.
            let _ = writeln!(
                out,
                "  the sink's output holds {} rows of the window; it cannot name keys: `compare --repair` re-loads it",
                c.target_count
            );
            continue;
        }
        if c.total_differences > 0 {
            let _ = writeln!(
                out,
                "  {} differing key(s){}:",
                c.total_differences,
                if c.total_differences > c.differences.len().min(show) {
                    format!(", first {}", c.differences.len().min(show))
                } else {
                    String::new()
                }
            );
            for d in c.differences.iter().take(show) {
                let rows = if d.rows > 1 { format!(" ×{}", d.rows) } else { String::new() };
                let bucket = if d.bucket.is_empty() { String::new() } else { format!("  [{}]", d.bucket) };
                let _ = writeln!(out, "    {:<8} {}{rows}{bucket}", d.kind.as_str(), d.key);
            }
        }
        let levels: Vec<String> =
            c.levels.iter().map(|l| format!("{} {}/{} differ", l.level, l.differing, l.buckets)).collect();
        let _ = writeln!(out, "  drill-down: {}", levels.join(", "));
    }
    for ((job, table), (windows, rows)) in &equal_per_table {
        let _ = writeln!(out, "equal     {job} / {table}: {windows} window(s), {rows} rows");
    }
    let differing = found.iter().filter(|c| c.differs()).count();
    let errors = found.iter().filter(|c| c.error.is_some()).count();
    if errors > 0 {
        let _ = writeln!(
            out,
            "{} window(s) compared, {differing} differ, {errors} could not be compared (errors above)",
            found.len()
        );
    } else {
        let _ = writeln!(out, "{} window(s) compared, {differing} differ", found.len());
    }
    out
}
