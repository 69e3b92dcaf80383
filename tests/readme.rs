//! The README's configuration reference lists exactly the keys the parser accepts: for each
//! section, a config with an unknown key makes the parser name every key it knows, and that
//! list must equal the README table's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use gptransfer_core::config::Config;

const BASE: &str = r#"
[clusters.a]
url = "postgres://u@h/db"
{cluster}
[state]
cluster = "a"
{state}
[jobs.j]
from = "a"
to = "a"
start = "2020-04-01"
duration = "1h"
{job}
[[jobs.j.tables]]
table = "t"
condition_column = "ts"
{table}
[alarm]
{alarm}
"#;

/// Keys the parser knows for a section, read from its "expected one of" message.
fn parser_keys(section: &str) -> BTreeSet<String> {
    let mut text = BASE.to_string();
    for s in ["cluster", "state", "job", "table", "alarm"] {
        let value = if s == section { "zzz_unknown = 1" } else { "" };
        text = text.replace(&format!("{{{s}}}"), value);
    }
    let err = Config::from_text(Path::new("t.toml"), text).unwrap_err().to_string();
    // serde says "expected one of `a`, `b`", or "expected `a` or `b`" for two keys.
    let list = err.split("expected").nth(1).unwrap_or_else(|| panic!("{section}: {err}"));
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// Keys in the first column of the README table under `heading`.
fn readme_keys(heading: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find(&format!("### {heading}\n")).unwrap_or_else(|| panic!("README has no section {heading}"));
    let section = &readme[start..];
    let mut keys = BTreeSet::new();
    for line in section.lines().skip(1) {
        if line.starts_with("### ") || line.starts_with("## ") {
            break;
        }
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" |").next()) else {
            continue;
        };
        for key in cell.split(',') {
            let key = key.trim();
            if let Some(k) = key.strip_prefix('`').and_then(|k| k.strip_suffix('`')) {
                keys.insert(k.to_string());
            }
        }
    }
    keys
}

#[test]
fn readme_reference_matches_the_parser() {
    for (section, heading) in [
        ("cluster", "`[clusters.NAME]`"),
        ("state", "`[state]`"),
        ("job", "`[jobs.NAME]`"),
        ("table", "`[[jobs.NAME.tables]]`"),
        ("alarm", "`[alarm]`"),
    ] {
        assert_eq!(readme_keys(heading), parser_keys(section), "README section {heading} vs the parser");
    }
}

/// Keys a config reader knows, read from its "expected one of" message.
fn reader_keys(plugin: &str, nested: Option<&str>) -> BTreeSet<String> {
    let err = gptransfer_config_readers::unknown_option_message(plugin, nested)
        .unwrap_or_else(|| panic!("{plugin}: an unknown key was accepted"));
    let list = err.split("expected").nth(1).unwrap_or_else(|| panic!("{plugin}: {err}"));
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn readme_reference_matches_the_config_readers() {
    for (plugin, nested, heading) in [
        ("mysql", None, "`reader` (mysql)"),
        ("mysql", Some("columns"), "`reader` columns"),
        ("table-list", None, "`tables_from` (table-list)"),
        ("table-list", Some("columns"), "`tables_from` columns"),
    ] {
        // `plugin` itself is taken by the role syntax before the reader sees its options.
        let (readme, parser) = (readme_keys(heading), reader_keys(plugin, nested));
        assert_eq!(readme, parser, "README section {heading} vs the {plugin} reader");
    }
}

/// Every TOML block of the README parses (an inline table spread over several lines did not:
/// `expected '}'`), and the config reader's example is a config the parser takes once the
/// clusters it names exist.
#[test]
fn every_toml_block_in_the_readme_parses() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> =
        readme.split("```toml\n").skip(1).map(|rest| rest.split("\n```").next().unwrap_or_default()).collect();
    assert!(blocks.len() >= 2, "no TOML blocks found");
    for block in &blocks {
        if let Err(e) = block.parse::<toml::Table>() {
            panic!("a README TOML block does not parse: {e}\n{block}");
        }
    }
    let reader = blocks.iter().find(|b| b.contains("[jobs.datatransfer.reader]")).expect("the reader example");
    let config = format!(
        "[clusters.legacy]\nurl = \"postgres://u@h/db\"\n[clusters.gp6]\nurl = \"postgres://u@h/db\"\n\
         [state]\ncluster = \"gp6\"\n{reader}"
    );
    if let Err(e) = Config::from_text(Path::new("README.md"), config) {
        panic!("the README's config reader example is refused: {e}");
    }
}
