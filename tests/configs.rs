//! Every config shipped under `configs/` is a valid gptransfer config, parsed by the core crate
//! itself (no servers needed). The SPEC §6 example is part of the contract: it must parse as
//! written and mean what it says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gptransfer_core::config::{Config, Mode};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// Every `*.toml` under `configs/`, recursively, sorted.
fn config_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&configs_dir(), &mut files);
    files.sort();
    files
}

fn ts(text: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

#[test]
fn every_shipped_config_loads() {
    let files = config_files();
    assert!(
        files.iter().any(|f| f.ends_with("example-gp4-to-gp6.toml")),
        "configs/example-gp4-to-gp6.toml (the SPEC §6 example) is missing; found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        match Config::load(file) {
            Ok(config) => {
                assert!(!config.jobs.is_empty(), "{} defines no job", file.display());
                assert!(config.tables().count() > 0, "{} defines no table", file.display());
                assert!(
                    config.clusters.contains_key(&config.state.cluster),
                    "{}: state cluster {:?} is not a defined cluster",
                    file.display(),
                    config.state.cluster
                );
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "configs that do not load:\n{}", failures.join("\n"));
}

#[test]
fn spec_example_parses_as_written() {
    let path = configs_dir().join("example-gp4-to-gp6.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(config.clusters.keys().collect::<Vec<_>>(), ["gp6", "legacy"]);
    assert_eq!(config.clusters["legacy"].password_env.as_deref(), Some("GP4_PASSWORD"));
    assert_eq!(config.state.cluster, "gp6");
    assert_eq!(config.state.schema, "gptransfer");

    assert_eq!(config.jobs.len(), 1);
    let job = &config.jobs[0];
    assert_eq!(job.name, "datatransfer");
    assert_eq!((job.from.as_str(), job.to.as_str()), ("legacy", "gp6"));
    assert_eq!(job.tables.len(), 1);

    let t = &job.tables[0];
    assert_eq!(t.source_table.to_string(), "eda.wpp_fdefect_f_n");
    assert_eq!(t.target_table, t.source_table, "the target table defaults to the source table");
    assert_eq!(t.condition_column.as_deref(), Some("evt_timestamp"));
    // The table's duration overrides the job's 1h; lag comes from the job.
    assert_eq!(t.duration.0, std::time::Duration::from_secs(30 * 60));
    assert_eq!(t.lag.0, std::time::Duration::from_secs(10 * 60));
    assert_eq!(t.start, ts("2020-04-01 00:00:00"));
    assert_eq!(t.final_end, Some(ts("2020-05-01 00:00:00")));
    assert_eq!(t.mode, Mode::Merge);
    assert_eq!(t.key, ["glass_id", "defect_code"]);
    assert!(t.enabled);

    // Every role as written, with its options kept for the plugin.
    assert_eq!(t.source.get_ref().plugin, "gp4");
    assert!(t.source.get_ref().options.is_empty());
    let transport = t.transport.get_ref();
    assert_eq!(transport.plugin, "shared-mount");
    assert_eq!(transport.options.get("root").and_then(|v| v.as_str()), Some("/mnt/dataTransfer/file2GP"));
    let sink = t.sink.get_ref();
    assert_eq!(sink.plugin, "gpload");
    assert_eq!(sink.options.get("host").and_then(|v| v.as_str()), Some("etl01"));
    assert_eq!(sink.options.get("user").and_then(|v| v.as_str()), Some("gpadmin"));
    let compare = t.compare.get_ref();
    assert_eq!(compare.plugin, "hash");
    assert_eq!(compare.options.get("group_by").and_then(|v| v.as_str()), Some("site"));
}

/// The TOML block of SPEC.md §6, verbatim.
const SPEC_EXAMPLE: &str = r#"[clusters.legacy]               # GP4
url = "postgres://gpadmin@gp4-master:5432/qms"
password_env = "GP4_PASSWORD"

[clusters.gp6]
url = "postgres://gpadmin@gp6-master:5432/qms"
sslmode = "prefer"

[state]                          # history, cursors, alarms
cluster = "gp6"
schema = "gptransfer"

[jobs.datatransfer]
from = "legacy"                  # source cluster
to = "gp6"                       # target cluster
start = "2020-04-01 00:00:00"
duration = "1h"
lag = "10m"

[[jobs.datatransfer.tables]]
table = "eda.wpp_fdefect_f_n"    # source table; the target table is the same unless target_table is set
condition_column = "evt_timestamp"
duration = "30m"
final_end = "2020-05-01 00:00:00"
mode = "merge"
key = ["glass_id", "defect_code"]
source = { plugin = "gp4" }      # optional: by default chosen from the source cluster's flavour
transport = { plugin = "shared-mount", root = "/mnt/dataTransfer/file2GP" }
sink = { plugin = "gpload", host = "etl01", user = "gpadmin" }
compare = { plugin = "hash", group_by = "site" }
"#;

#[test]
fn spec_example_text_parses_and_the_shipped_file_is_it() {
    // The spec's own text parses, not only our copy of it.
    let from_spec = Config::from_text(Path::new("SPEC.md"), SPEC_EXAMPLE.to_string()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_spec.jobs[0].tables[0].source_table.to_string(), "eda.wpp_fdefect_f_n");
    // And configs/example-gp4-to-gp6.toml is that text (trailing blanks aside).
    let file = std::fs::read_to_string(configs_dir().join("example-gp4-to-gp6.toml")).unwrap();
    let normalize = |s: &str| s.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n");
    assert_eq!(normalize(&file), normalize(SPEC_EXAMPLE));
}
