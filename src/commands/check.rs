//! `gptransfer config check`: the file, every cluster, every enabled table. Checks everything
//! and lists every problem in one run (exit 2 with all of them); "ok" only when all pass.

use std::collections::BTreeMap;

use gptransfer_core::cluster::{ClusterHandle, Session};
use gptransfer_core::config::{Config, PluginSpec, TableSpec};
use gptransfer_core::dialect::Flavour;
use gptransfer_core::engine::{check_for_sink, target_ddl, target_exists};
use gptransfer_core::error::exit;
use gptransfer_core::registry::Registry;
use gptransfer_core::roles::{negotiate_format, ChainCheck};

use super::load_config_with_readers;
use crate::cli::OutputFormat;

/// One cluster's or table's outcome, for `--output json`.
#[derive(serde::Serialize)]
struct Checked {
    /// `cluster` or `table`.
    kind: &'static str,
    /// The cluster's name, or `job / entry`.
    name: String,
    /// `ok`, `problem`, or `unchecked` (a cluster it needs is not reachable).
    status: &'static str,
    /// What was found (the human line's text after the name).
    detail: String,
}

#[derive(serde::Serialize)]
struct CheckOutput<'a> {
    ok: bool,
    config: String,
    checked: &'a [Checked],
    /// Problems of whole jobs (a job table that cannot be read).
    job_problems: &'a [String],
}

pub async fn check(
    config: Option<&std::path::Path>,
    registry: &Registry,
    quiet: bool,
    output: OutputFormat,
) -> anyhow::Result<i32> {
    let loaded = load_config_with_readers(config, registry, &[]).await?;
    let config = &loaded.config;
    let json = output == OutputFormat::Json;
    let say = |line: String| {
        if !quiet && !json {
            println!("{line}");
        }
    };
    let mut checked: Vec<Checked> = Vec::new();
    let mut record = |kind, name: String, status, detail: String| checked.push(Checked { kind, name, status, detail });
    // A job whose job table or table list cannot be read is that job's problem, among the others.
    let job_problems: Vec<String> = loaded.failed.iter().map(|(job, e)| format!("job {job:?}: {e}")).collect();
    let mut problems = job_problems.clone();
    // Tables a problem above kept from being checked: said, but not counted again.
    let mut unchecked: Vec<String> = Vec::new();
    let app = format!("gptransfer check pid {}", std::process::id());
    let mut sessions = BTreeMap::new();
    for (name, cfg) in &config.clusters {
        let connected = match ClusterHandle::new(name, cfg) {
            Ok(handle) => handle.connect(&app, None).await.map(|s| (handle, s)),
            Err(e) => Err(e),
        };
        match connected {
            Ok((handle, session)) => {
                let detail = format!("reachable, {}", session.flavour);
                say(format!("cluster {name} ({}): {detail}", handle.address));
                record("cluster", name.clone(), "ok", format!("{}: {detail}", handle.address));
                sessions.insert(name.clone(), session);
            }
            // The error names the cluster and its address.
            Err(e) => {
                record("cluster", name.clone(), "problem", format!("{e:#}"));
                problems.push(format!("{e:#}"));
            }
        }
    }
    for t in config.tables().filter(|t| t.enabled) {
        let entry = format!("{} / {}", t.job, t.display_name());
        let (Some(src), Some(dst)) = (sessions.get(&t.from), sessions.get(&t.to)) else {
            let down: Vec<&str> =
                [&t.from, &t.to].into_iter().filter(|c| !sessions.contains_key(*c)).map(String::as_str).collect();
            let why = format!("not checked: cluster {} is not reachable", down.join(", "));
            unchecked.push(format!("table {entry}: {why}"));
            record("table", entry, "unchecked", why);
            continue;
        };
        match check_entry(config, registry, t, src, dst).await {
            Ok(line) => {
                say(format!("table {entry}: ok, {line}"));
                record("table", entry, "ok", line);
            }
            Err(e) => {
                problems.push(format!("table {entry}: {e}"));
                record("table", entry, "problem", e);
            }
        }
    }
    let code = if problems.is_empty() { exit::OK } else { exit::CONFIG };
    if json {
        let out = CheckOutput {
            ok: problems.is_empty(),
            config: config.path.display().to_string(),
            checked: &checked,
            job_problems: &job_problems,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(code);
    }
    if problems.is_empty() {
        say(format!(
            "config {}: ok ({} job(s), {} table(s))",
            config.path.display(),
            config.jobs.len(),
            config.tables().filter(|t| t.enabled).count()
        ));
        return Ok(code);
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    for u in &unchecked {
        eprintln!("note: {u}");
    }
    // One `error:` line per problem; the count after them.
    eprintln!("config {}: {} problem(s), listed above", config.path.display(), problems.len());
    Ok(code)
}

async fn check_entry(
    config: &Config,
    registry: &Registry,
    t: &TableSpec,
    src: &Session,
    dst: &Session,
) -> Result<String, String> {
    // A GP4 source's default is the 8.2 dialect's own plugin, as `run` picks it (SPEC §6).
    let source = if t.source_is_default() && src.flavour == Flavour::Gp4 && t.source.get_ref().plugin == "copy" {
        registry.source(&PluginSpec::named("gp4"))
    } else {
        registry.source(t.source.get_ref())
    }
    .map_err(|e| format!("source: {e}"))?;
    let transport = registry.transport(t.transport.get_ref()).map_err(|e| format!("transport: {e}"))?;
    let sink = registry.sink(t.sink.get_ref()).map_err(|e| format!("sink: {e}"))?;
    gptransfer_core::engine::comparator_for(registry, t, sink.as_ref()).map_err(|e| format!("compare: {e}"))?;
    transport
        .check_chain(&ChainCheck {
            table: t,
            source: source.as_ref(),
            sink: sink.as_ref(),
            source_flavour: src.flavour,
            target_flavour: dst.flavour,
        })
        .map_err(|e| format!("transport: {e}"))?;
    if t.create_target
        && sink.loads_target()
        && !target_exists(dst, t).await.map_err(|e| strip_entry(&e.to_string(), t))?
    {
        // What the first run will create; its columns then match by construction.
        let statements = target_ddl(src, dst, t).await.map_err(|e| strip_entry(&e.to_string(), t))?;
        let create = statements.last().map(|s| s.replace('\n', " ")).unwrap_or_default();
        return Ok(format!("target missing: the first run creates it: {create}"));
    }
    let c =
        check_for_sink(t, sink.as_ref(), src, &t.from, dst, &t.to).await.map_err(|e| strip_entry(&e.to_string(), t))?;
    sink.check_table(t, &c.columns).map_err(|e| format!("sink: {e}"))?;
    gptransfer_core::engine::check_append_atomic(t, &config.state.cluster, sink.as_ref())
        .map_err(|e| strip_entry(&e.to_string(), t))?;
    // What the transport needs of the clusters themselves (a segment path: every segment
    // reaches its host and ports, the role may use external tables).
    transport.check_clusters(t, src, dst, true).await.map_err(|e| format!("transport: {e}"))?;
    let format = negotiate_format(&source.formats(), &transport.formats(), &sink.formats(t.mode), c.binary)
        .map_err(|e| format!("chain: {e}"))?;
    let mut line = format!("{} column(s), chain {}, {} COPY", c.columns.len(), t.chain(), format.name());
    // Not an error (many such columns never hold NULL), but what it would lose is said.
    if let Some(col) =
        t.condition_column.as_ref().filter(|col| c.described.iter().any(|d| &d.name == *col && !d.not_null))
    {
        line.push_str(&format!(
            "; note: condition column {col:?} can hold NULL, and a row where it is NULL is in no window: it is never \
             moved nor compared (make the column NOT NULL on the source, or keep such rows out knowingly)"
        ));
    }
    Ok(line)
}

/// An engine error already names the job and table; the line names them once.
fn strip_entry(message: &str, t: &TableSpec) -> String {
    let prefix = format!("job {:?}, table {}: ", t.job, t.display_name());
    message.strip_prefix(&prefix).unwrap_or(message).to_string()
}
