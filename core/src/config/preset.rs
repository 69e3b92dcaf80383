//! Presets: one name that fills in a whole chain (SPEC §6: `gp4-legacy` keeps V1's behaviour).
//!
//! `preset = { name = "gp4-legacy", root = "/mnt/dataTransfer/file2GP", host = "etl01", user = "gpadmin" }`
//! on a job or a table gives its roles these defaults — any role written out wins:
//!
//! * source `gp4`;
//! * transport `shared-mount` under `root` (V1's layout `<root>/<db>^<schema>^<table>^<window id>/`);
//! * sink `gpload` (on `host` over SSH as `user` when given, else locally; `gpload` names the
//!   program), and the table mode `merge` unless a mode is set.

use serde::Deserialize;
use toml::Spanned;

use super::model::Mode;
use super::plugin_spec::PluginSpec;

/// The names a preset can have.
pub const PRESETS: &[&str] = &["gp4-legacy"];

/// A `preset = { name = "…", … }` key as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetConfig {
    /// Which preset.
    pub name: String,
    /// `gp4-legacy`: the shared mount's root directory.
    pub root: Option<String>,
    /// `gp4-legacy`: the ETL host gpload runs on over SSH (left out: locally).
    pub host: Option<String>,
    /// `gp4-legacy`: the SSH user on `host`.
    pub user: Option<String>,
    /// `gp4-legacy`: the gpload program.
    pub gpload: Option<String>,
}

/// The roles and mode a preset stands for.
#[derive(Debug, Clone)]
pub struct PresetRoles {
    pub source: Spanned<PluginSpec>,
    pub transport: Spanned<PluginSpec>,
    pub sink: Spanned<PluginSpec>,
    pub mode: Mode,
}

impl PresetConfig {
    /// Expands the preset; `span` is where it is written (role errors point there).
    pub fn expand(&self, span: std::ops::Range<usize>) -> Result<PresetRoles, String> {
        match self.name.as_str() {
            "gp4-legacy" => {
                let root = self.root.as_deref().filter(|r| !r.is_empty()).ok_or_else(|| {
                    "preset \"gp4-legacy\" needs root = \"/the/shared/mount\" (V1's file2GP directory)".to_string()
                })?;
                let mut transport = PluginSpec::named("shared-mount");
                transport.options.insert("root".into(), root.into());
                let mut sink = PluginSpec::named("gpload");
                for (key, value) in [("host", &self.host), ("user", &self.user), ("gpload", &self.gpload)] {
                    if let Some(v) = value {
                        sink.options.insert(key.into(), v.as_str().into());
                    }
                }
                Ok(PresetRoles {
                    source: Spanned::new(span.clone(), PluginSpec::named("gp4")),
                    transport: Spanned::new(span.clone(), transport),
                    sink: Spanned::new(span, sink),
                    mode: Mode::Merge,
                })
            }
            other => Err(format!("preset {other:?} is unknown; presets: {}", PRESETS.join(", "))),
        }
    }
}
