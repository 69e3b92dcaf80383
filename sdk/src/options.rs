//! A sink's options, as the config gives them.

use std::path::{Path, PathBuf};

use crate::PluginError;

/// The options of a table's sink: the keys of `sink = { plugin = "…", … }` other than
/// `plugin`, and the directory of the config file they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    toml: String,
    config_dir: PathBuf,
}

impl Options {
    /// Options from TOML text (a table's keys, one per line) and the config file's directory;
    /// what gptransfer builds, and what a test builds to call a sink directly.
    pub fn new(toml: impl Into<String>, config_dir: impl Into<PathBuf>) -> Self {
        Options { toml: toml.into(), config_dir: config_dir.into() }
    }

    /// The options as TOML text.
    pub fn toml(&self) -> &str {
        &self.toml
    }

    /// Parses the options into the sink's own type. The error names the key and what was
    /// wrong; use `#[serde(deny_unknown_fields)]` to refuse misspelt keys.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        toml::from_str(&self.toml).map_err(|e| {
            // The span points into text the user never wrote: say the message only.
            PluginError::fatal(format!("bad sink options: {}", e.message().trim()))
        })
    }

    /// The directory of the config file the options come from.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// A path from the options, as the user meant it: relative paths are taken from the
    /// config file's directory, as every other path in a gptransfer config is.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.config_dir.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Options;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        dir: std::path::PathBuf,
        #[serde(default)]
        gzip: bool,
    }

    #[test]
    fn options_parse_into_the_sinks_type_and_resolve_paths_from_the_config_dir() {
        let o = Options::new("dir = \"out\"\ngzip = true\n", "/etc/gptransfer");
        let c: Config = o.parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(c.gzip);
        assert_eq!(o.resolve(&c.dir), std::path::Path::new("/etc/gptransfer/out"));
        assert_eq!(o.resolve("/abs"), std::path::Path::new("/abs"));
    }

    #[test]
    fn a_bad_option_names_the_key() {
        let e = Options::new("dir = \"out\"\ngzp = true\n", "/").parse::<Config>().unwrap_err();
        assert!(e.message.contains("gzp") && e.message.starts_with("bad sink options:"), "{e}");
        let e = Options::new("gzip = true\n", "/").parse::<Config>().unwrap_err();
        assert!(e.message.contains("missing field `dir`"), "{e}");
    }
}
