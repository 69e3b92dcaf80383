//! `gptransfer plugins`.

use gptransfer_core::registry::Registry;

use crate::output;

pub fn plugins(registry: &Registry) -> anyhow::Result<i32> {
    let rows: Vec<Vec<String>> = registry
        .list()
        .into_iter()
        .map(|p| vec![p.role.as_str().to_string(), p.name, p.version, p.origin, p.description])
        .collect();
    println!("{}", output::table(&["ROLE", "NAME", "VERSION", "FROM", "DESCRIPTION"], rows));
    Ok(0)
}
