//! Finding and reading the config file; every error names file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the config file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Location {
    /// The location of a byte offset in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location { line, column }
    }
}

/// A configuration error: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// Where in it, when known.
    pub location: Option<Location>,
    /// What is wrong and, where there is one, the fix.
    pub message: String,
}

impl ConfigError {
    /// An error at a span of the file.
    pub fn at(path: &Path, text: &str, span: std::ops::Range<usize>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            location: Some(Location::of_offset(text, span.start)),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError { path: path.to_path_buf(), location: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(f, "{}:{}:{}: {}", self.path.display(), l.line, l.column, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `--config`, else `$GPTRANSFER_CONFIG`, else `./gptransfer.toml`.
pub fn find_config_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match std::env::var_os("GPTRANSFER_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("gptransfer.toml"),
    }
}

/// Parses TOML text into the file model, turning toml's error into file:line:column.
pub(crate) fn parse_text(path: &Path, text: &str) -> Result<super::ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        match e.span() {
            Some(span) => ConfigError::at(path, text, span, message),
            None => ConfigError::file(path, message),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_line_and_column() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(Location::of_offset(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of_offset(text, 7), Location { line: 2, column: 2 });
    }
}
