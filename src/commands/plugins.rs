//! `gptransfer plugins`.

use gptransfer_core::registry::Registry;

use crate::output;

pub fn plugins(registry: &Registry) -> anyhow::Result<i32> {
    let mut rows: Vec<Vec<String>> = registry
        .list()
        .into_iter()
        .map(|p| {
            let sdk = p.sdk.unwrap_or_else(|| "-".into());
            vec![p.role.as_str().to_string(), p.name, p.version, sdk, p.origin, p.description]
        })
        .collect();
    // Config readers run before any plugin is built (they make the tables), so they are not in
    // the registry; they are built in.
    rows.extend(gptransfer_config_readers::READERS.iter().map(|(name, description)| {
        let version = env!("CARGO_PKG_VERSION").to_string();
        vec!["reader".into(), name.to_string(), version, "-".into(), "built-in".into(), description.to_string()]
    }));
    println!("{}", output::table(&["ROLE", "NAME", "VERSION", "SDK", "FROM", "DESCRIPTION"], rows));
    Ok(0)
}
