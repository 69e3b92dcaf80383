//! `gptransfer config check`: the file, every cluster, every enabled table.

use std::collections::BTreeMap;

use gptransfer_core::cluster::ClusterHandle;
use gptransfer_core::engine::check_table;
use gptransfer_core::registry::Registry;
use gptransfer_core::roles::negotiate_format;

use super::load_config_with_readers;

pub async fn check(config: Option<&std::path::Path>, registry: &Registry) -> anyhow::Result<i32> {
    let config = load_config_with_readers(config, registry).await?;
    println!(
        "config {}: ok ({} job(s), {} table(s))",
        config.path.display(),
        config.jobs.len(),
        config.tables().count()
    );
    let app = format!("gptransfer check pid {}", std::process::id());
    let mut sessions = BTreeMap::new();
    for (name, cfg) in &config.clusters {
        let handle = ClusterHandle::new(name, cfg)?;
        let session = handle.connect(&app, None).await?;
        println!("cluster {name} ({}): reachable, {}", handle.address, session.flavour);
        sessions.insert(name.clone(), session);
    }
    for t in config.tables().filter(|t| t.enabled) {
        let (Some(src), Some(dst)) = (sessions.get(&t.from), sessions.get(&t.to)) else {
            continue;
        };
        // Building the chain runs each plugin's own checks (a shared mount's permissions).
        let chain_error = |role: &str, message: String| gptransfer_core::Error::Check {
            job: t.job.clone(),
            table: t.display_name(),
            message: format!("{role}: {message}"),
            hint: None,
        };
        let source = registry.source(t.source.get_ref()).map_err(|e| chain_error("source", e))?;
        let transport = registry.transport(t.transport.get_ref()).map_err(|e| chain_error("transport", e))?;
        let sink = registry.sink(t.sink.get_ref()).map_err(|e| chain_error("sink", e))?;
        let c = check_table(t, src, &t.from, dst, &t.to).await?;
        sink.check_table(t, &c.columns).map_err(|e| chain_error("sink", e))?;
        gptransfer_core::engine::check_append_atomic(t, &config.state.cluster, sink.as_ref())?;
        let format = negotiate_format(&source.formats(), &transport.formats(), &sink.formats(t.mode), c.binary)
            .map_err(|e| chain_error("chain", e))?;
        println!(
            "table {} / {}: ok, {} column(s), chain {}, {} COPY",
            t.job,
            t.display_name(),
            c.columns.len(),
            t.chain(),
            format.name()
        );
    }
    Ok(0)
}
