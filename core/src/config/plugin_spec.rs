//! A role key: `"name"` or `{ plugin = "name", …options }`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A plugin chosen for a role, with the options that plugin alone interprets.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// Plugin name as registered (`copy`, `stream`, …).
    pub plugin: String,
    /// Every other key of the inline table, checked by the plugin's own config type.
    pub options: toml::Table,
}

impl PluginSpec {
    /// A spec naming a plugin with no options.
    pub fn named(name: &str) -> Self {
        PluginSpec { plugin: name.to_string(), options: toml::Table::new() }
    }
}

impl<'de> Deserialize<'de> for PluginSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PluginSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a plugin name or a table { plugin = \"name\", … }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PluginSpec, E> {
                Ok(PluginSpec::named(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PluginSpec, A::Error> {
                let mut plugin = None;
                let mut options = toml::Table::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "plugin" {
                        plugin = Some(map.next_value::<String>()?);
                    } else {
                        let value = map.next_value::<toml::Value>()?;
                        options.insert(key, value);
                    }
                }
                let plugin = plugin.ok_or_else(|| de::Error::missing_field("plugin"))?;
                Ok(PluginSpec { plugin, options })
            }
        }
        deserializer.deserialize_any(V)
    }
}
