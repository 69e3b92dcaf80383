//! Plugin names to factories, per role. An explicit map: plugins loaded at run time must be
//! able to join it, which link-time registries cannot do.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::compare::Comparator;
use crate::config::{Config, ConfigError, PluginSpec};
use crate::roles::{Sink, Source, Transport};

/// Makes the plugin of one role from its options.
pub trait Factory<R: ?Sized>: Send + Sync {
    /// The name tables use to select it.
    fn name(&self) -> &'static str;
    /// One line for `gptransfer plugins`.
    fn describe(&self) -> &'static str;
    /// Its version.
    fn version(&self) -> String;
    /// Checks the options without I/O (powers `plan` and `config check`).
    fn validate(&self, options: &toml::Table) -> Result<(), String>;
    /// Builds the plugin.
    fn build(&self, options: &toml::Table) -> Result<Arc<R>, String>;
    /// `built-in`, or the library an external plugin was loaded from.
    fn origin(&self) -> String {
        "built-in".into()
    }
    /// The SDK version an external plugin was built against (`None`: built in).
    fn sdk_version(&self) -> Option<String> {
        None
    }
}

/// Reads a plugin's options into its own strict config type.
pub fn parse_options<T: DeserializeOwned>(options: &toml::Table) -> Result<T, String> {
    toml::Value::Table(options.clone()).try_into::<T>().map_err(|e| e.message().trim().to_string())
}

/// A role in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads windows.
    Source,
    /// Carries bytes.
    Transport,
    /// Loads windows.
    Sink,
    /// Compares windows.
    Compare,
}

impl Role {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Transport => "transport",
            Role::Sink => "sink",
            Role::Compare => "compare",
        }
    }
}

/// A plugin as `gptransfer plugins` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// Role.
    pub role: Role,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `built-in` or the library path.
    pub origin: String,
    /// The SDK version an external plugin was built against.
    pub sdk: Option<String>,
    /// What it does.
    pub description: String,
}

/// All known plugins.
#[derive(Default, Clone)]
pub struct Registry {
    sources: BTreeMap<&'static str, Arc<dyn Factory<dyn Source>>>,
    transports: BTreeMap<&'static str, Arc<dyn Factory<dyn Transport>>>,
    sinks: BTreeMap<&'static str, Arc<dyn Factory<dyn Sink>>>,
    comparators: BTreeMap<&'static str, Arc<dyn Factory<dyn Comparator>>>,
}

impl Registry {
    /// Adds a source plugin.
    pub fn add_source(&mut self, f: impl Factory<dyn Source> + 'static) {
        self.sources.insert(f.name(), Arc::new(f));
    }
    /// Adds a transport plugin.
    pub fn add_transport(&mut self, f: impl Factory<dyn Transport> + 'static) {
        self.transports.insert(f.name(), Arc::new(f));
    }
    /// Adds a sink plugin.
    pub fn add_sink(&mut self, f: impl Factory<dyn Sink> + 'static) {
        self.sinks.insert(f.name(), Arc::new(f));
    }

    /// Where the sink of that name comes from, when there is one.
    pub fn sink_origin(&self, name: &str) -> Option<String> {
        self.sinks.get(name).map(|f| f.origin())
    }

    /// Adds a comparator plugin.
    pub fn add_comparator(&mut self, f: impl Factory<dyn Comparator> + 'static) {
        self.comparators.insert(f.name(), Arc::new(f));
    }

    /// Builds the comparator a spec names.
    pub fn comparator(&self, spec: &PluginSpec) -> Result<Arc<dyn Comparator>, String> {
        build(&self.comparators, Role::Compare, spec)
    }

    /// Every plugin, by role and name.
    pub fn list(&self) -> Vec<PluginInfo> {
        fn info<R: ?Sized>(role: Role, f: &Arc<dyn Factory<R>>) -> PluginInfo {
            PluginInfo {
                role,
                name: f.name().to_string(),
                version: f.version(),
                origin: f.origin(),
                sdk: f.sdk_version(),
                description: f.describe().to_string(),
            }
        }
        let mut out: Vec<PluginInfo> = self.sources.values().map(|f| info(Role::Source, f)).collect();
        out.extend(self.transports.values().map(|f| info(Role::Transport, f)));
        out.extend(self.sinks.values().map(|f| info(Role::Sink, f)));
        out.extend(self.comparators.values().map(|f| info(Role::Compare, f)));
        out
    }

    /// Builds the source a spec names.
    pub fn source(&self, spec: &PluginSpec) -> Result<Arc<dyn Source>, String> {
        build(&self.sources, Role::Source, spec)
    }
    /// Builds the transport a spec names.
    pub fn transport(&self, spec: &PluginSpec) -> Result<Arc<dyn Transport>, String> {
        build(&self.transports, Role::Transport, spec)
    }
    /// Builds the sink a spec names.
    pub fn sink(&self, spec: &PluginSpec) -> Result<Arc<dyn Sink>, String> {
        build(&self.sinks, Role::Sink, spec)
    }

    /// Checks every enabled table's plugin names and options; errors point into the file.
    pub fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        for t in config.tables() {
            let checks = [
                (Role::Source, &t.source, check(&self.sources, Role::Source, t.source.get_ref())),
                (Role::Transport, &t.transport, check(&self.transports, Role::Transport, t.transport.get_ref())),
                (Role::Sink, &t.sink, check(&self.sinks, Role::Sink, t.sink.get_ref())),
                (Role::Compare, &t.compare, check(&self.comparators, Role::Compare, t.compare.get_ref())),
            ];
            for (role, spec, result) in checks {
                if let Err(message) = result {
                    let span = if spec.span().is_empty() {
                        // A default plugin: point at the table entry.
                        let loc = t.location;
                        return Err(ConfigError {
                            path: config.path.clone(),
                            location: Some(loc),
                            message: format!("job {:?}, table {}: {} {message}", t.job, t.source_table, role.as_str()),
                        });
                    } else {
                        spec.span()
                    };
                    return Err(config.error_at(
                        span,
                        format!("job {:?}, table {}: {} {message}", t.job, t.source_table, role.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check<R: ?Sized>(
    map: &BTreeMap<&'static str, Arc<dyn Factory<R>>>,
    role: Role,
    spec: &PluginSpec,
) -> Result<(), String> {
    let f = find(map, role, spec)?;
    f.validate(&spec.options).map_err(|e| format!("plugin {:?}: {e}", spec.plugin))
}

fn find<'a, R: ?Sized>(
    map: &'a BTreeMap<&'static str, Arc<dyn Factory<R>>>,
    role: Role,
    spec: &PluginSpec,
) -> Result<&'a Arc<dyn Factory<R>>, String> {
    map.get(spec.plugin.as_str()).ok_or_else(|| {
        let known = map.keys().copied().collect::<Vec<_>>().join(", ");
        format!("plugin {:?} is unknown; {} plugins: {known}", spec.plugin, role.as_str())
    })
}

fn build<R: ?Sized>(
    map: &BTreeMap<&'static str, Arc<dyn Factory<R>>>,
    role: Role,
    spec: &PluginSpec,
) -> Result<Arc<R>, String> {
    find(map, role, spec)?.build(&spec.options)
}
