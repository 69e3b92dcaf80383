//! An example external sink: each window becomes one JSON-lines file, one object per row with
//! typed values (numbers as JSON numbers, booleans as booleans, `json` columns embedded, NULL
//! as `null`), and an `_id` made of the key's values when the table has a key, ready for an
//! indexer's upsert. A window is written to a hidden temporary file and renamed into place at
//! commit: a reader sees a window whole or not at all; a re-load replaces it; each `full` load
//! replaces the last.
//!
//! ```toml
//! sink = { plugin = "jsonl", dir = "export" }           # a relative dir is the config's
//! sink = { plugin = "jsonl", dir = "/data/export", numeric = "number" }
//! ```
//!
//! Layout: `<dir>/<target schema.table>/<slot>.jsonl` (the slot is the window id, or `full`).
//!
//! `numeric` columns are strings by default: a JSON number is a binary float to most readers,
//! and `numeric(38,10)` would lose digits; `numeric = "number"` writes them as numbers anyway.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use gptransfer_sdk::decode::{Decoder, Format, Row};
use gptransfer_sdk::{Column, Mode, Options, PluginError, Sink, SinkWindow, TypeKind, WindowInfo};
use serde::Deserialize;
use serde_json::Value;

/// How `numeric` values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Numeric {
    /// As JSON strings: exact.
    #[default]
    String,
    /// As JSON numbers: what most readers take as a double.
    Number,
}

/// Options of the `jsonl` sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// The directory windows are written under (created when missing).
    pub dir: PathBuf,
    /// How `numeric` values are written.
    #[serde(default)]
    pub numeric: Numeric,
}

/// The `jsonl` sink.
pub struct JsonlSink {
    dir: PathBuf,
    numeric: Numeric,
}

/// Prefix of a window being written; never a slot's file name.
const TMP_PREFIX: &str = ".tmp-";

impl JsonlSink {
    fn path(&self, window: &WindowInfo) -> PathBuf {
        self.dir.join(&window.target_table).join(format!("{}.jsonl", window.slot))
    }
}

impl Sink for JsonlSink {
    const NAME: &'static str = "jsonl";
    const DESCRIPTION: &'static str = "example external sink: each window as JSON lines with typed values";
    // A window's file is replaced whole; merging keys across windows is a database's job.
    const MODES: &'static [Mode] = &[Mode::Replace, Mode::Full];
    const COUNTS: bool = true;
    type Window = JsonlWindow;

    fn validate(options: &Options) -> Result<(), PluginError> {
        options.parse::<JsonlConfig>().map(drop)
    }

    fn new(options: &Options) -> Result<Self, PluginError> {
        let config: JsonlConfig = options.parse()?;
        Ok(JsonlSink { dir: options.resolve(config.dir), numeric: config.numeric })
    }

    fn begin(&self, window: &WindowInfo) -> Result<JsonlWindow, PluginError> {
        let path = self.path(window);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
        fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        let tmp = dir.join(tmp_name(&window.slot));
        let file = fs::File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
        Ok(JsonlWindow {
            decoder: Decoder::new(Format::Text).with_column_names(window.column_names()),
            columns: window.columns.clone(),
            key: window.key_positions(),
            numeric: self.numeric,
            out: Some(BufWriter::new(file)),
            tmp,
            path,
        })
    }

    fn count(&self, window: &WindowInfo) -> Result<u64, PluginError> {
        let path = self.path(window);
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io("cannot read", &path, e)),
        }
    }
}

fn tmp_name(slot: &str) -> String {
    format!("{TMP_PREFIX}{slot}.jsonl-{}", std::process::id())
}

fn io(what: &str, path: &Path, e: std::io::Error) -> PluginError {
    let retriable = PluginError::from(std::io::Error::new(e.kind(), "")).retriable;
    PluginError { message: format!("{what} {}: {e}", path.display()), retriable }
}

/// One window being written.
pub struct JsonlWindow {
    decoder: Decoder,
    columns: Vec<Column>,
    key: Vec<usize>,
    numeric: Numeric,
    out: Option<BufWriter<fs::File>>,
    tmp: PathBuf,
    path: PathBuf,
}

/// A column's text as the JSON value its type calls for; text that does not parse as its type
/// says is kept as a string, never lost.
fn typed(text: &str, kind: TypeKind, numeric: Numeric) -> Value {
    let string = || Value::String(text.to_string());
    match kind {
        TypeKind::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => string(),
        },
        TypeKind::Integer => text.parse::<i64>().map(Value::from).unwrap_or_else(|_| string()),
        // NaN and the infinities have no JSON number.
        TypeKind::Float => {
            text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(string)
        }
        TypeKind::Numeric if numeric == Numeric::Number => {
            text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(string)
        }
        TypeKind::Json => serde_json::from_str(text).unwrap_or_else(|_| string()),
        _ => string(),
    }
}

impl JsonlWindow {
    fn line(&self, row: &Row) -> Result<String, PluginError> {
        let mut object = String::from("{");
        let json = |v: &Value| serde_json::to_string(v).map_err(|e| PluginError::fatal(e.to_string()));
        if !self.key.is_empty() {
            // The key's values joined by `|` (NULL as empty): a stable document id.
            let id: Vec<&str> = self.key.iter().map(|&i| row.get(i).unwrap_or("")).collect();
            object.push_str(&format!("\"_id\":{}", json(&Value::String(id.join("|")))?));
        }
        for (i, column) in self.columns.iter().enumerate() {
            if object.len() > 1 {
                object.push(',');
            }
            let value = row.get(i).map_or(Value::Null, |text| typed(text, column.kind, self.numeric));
            object.push_str(&json(&Value::String(column.name.clone()))?);
            object.push(':');
            object.push_str(&json(&value)?);
        }
        object.push_str("}\n");
        Ok(object)
    }
}

impl SinkWindow for JsonlWindow {
    fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
        self.decoder.push(chunk);
        while let Some(row) = self.decoder.next_row()? {
            let line = self.line(&row)?;
            let out = self.out.as_mut().ok_or_else(|| PluginError::fatal("the window is closed"))?;
            out.write_all(line.as_bytes()).map_err(|e| io("writing", &self.tmp, e))?;
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<u64, PluginError> {
        self.decoder.finish()?;
        if let Some(out) = self.out.take() {
            let file = out.into_inner().map_err(|e| io("writing", &self.tmp, e.into_error()))?;
            file.sync_all().map_err(|e| io("syncing", &self.tmp, e))?;
        }
        gptransfer_sdk::log::debug(format!("{} row(s) ready in {}", self.decoder.rows(), self.tmp.display()));
        Ok(self.decoder.rows())
    }

    fn commit(&mut self) -> Result<(), PluginError> {
        // One rename: a reader sees the old file or the new one, never a mix.
        fs::rename(&self.tmp, &self.path).map_err(|e| io("moving the window into", &self.path, e))
    }

    fn abort(&mut self) {
        self.out = None;
        let _ = fs::remove_file(&self.tmp);
    }
}

gptransfer_sdk::export_sink_plugin!(JsonlSink);

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use gptransfer_sdk::conformance::{check_sink, Observer, Rows};
    use gptransfer_sdk::{Options, TypeKind, WindowInfo};
    use serde_json::{json, Value};

    use super::{tmp_name, typed, JsonlSink, Numeric, TMP_PREFIX};

    /// Reads the slot's file back to text values, as COPY would show them.
    struct Jsonl(PathBuf);

    impl Jsonl {
        fn path(&self, w: &WindowInfo) -> PathBuf {
            self.0.join(&w.target_table).join(format!("{}.jsonl", w.slot))
        }
    }

    impl Observer for Jsonl {
        fn visible(&self, w: &WindowInfo) -> Result<Rows, String> {
            let text = match std::fs::read_to_string(self.path(w)) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.to_string()),
            };
            let mut rows = Vec::new();
            for line in text.lines() {
                let object: serde_json::Map<String, Value> = serde_json::from_str(line).map_err(|e| e.to_string())?;
                let row = w
                    .columns
                    .iter()
                    .map(|c| match object.get(&c.name) {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Bool(b)) => Some(if *b { "t" } else { "f" }.to_string()),
                        Some(other) => Some(other.to_string()),
                    })
                    .collect();
                rows.push(row);
            }
            Ok(rows)
        }

        fn leftovers(&self) -> Result<Vec<String>, String> {
            let mut left = Vec::new();
            for table in std::fs::read_dir(&self.0).map_err(|e| e.to_string())? {
                for entry in std::fs::read_dir(table.map_err(|e| e.to_string())?.path()).map_err(|e| e.to_string())? {
                    let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().to_string();
                    if name.starts_with(TMP_PREFIX) {
                        left.push(name);
                    }
                }
            }
            Ok(left)
        }

        /// A non-empty directory where the slot's file must go: the rename cannot replace it.
        fn break_commit(&self, w: &WindowInfo) -> Result<bool, String> {
            std::fs::create_dir_all(self.path(w).join("blocker")).map_err(|e| e.to_string())?;
            Ok(true)
        }

        fn mend_commit(&self, w: &WindowInfo) -> Result<(), String> {
            std::fs::remove_dir_all(self.path(w)).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn the_jsonl_sink_conforms() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = Options::new("dir = \"out\"", dir.path());
        let checked = check_sink::<JsonlSink>(&options, &Jsonl(dir.path().join("out")))
            .unwrap_or_else(|e| panic!("conformance: {e}"));
        assert!(checked.skipped.is_empty(), "{:?}", checked.skipped);
        assert!(!tmp_name("x").is_empty());
    }

    #[test]
    fn values_take_their_columns_json_type_and_nothing_is_lost() {
        let s = Numeric::String;
        assert_eq!(typed("42", TypeKind::Integer, s), json!(42));
        assert_eq!(typed("-9223372036854775808", TypeKind::Integer, s), json!(i64::MIN));
        assert_eq!(typed("1.5", TypeKind::Float, s), json!(1.5));
        assert_eq!(typed("NaN", TypeKind::Float, s), json!("NaN"));
        assert_eq!(typed("-Infinity", TypeKind::Float, s), json!("-Infinity"));
        assert_eq!(typed("12345678901234567890.123", TypeKind::Numeric, s), json!("12345678901234567890.123"));
        assert_eq!(typed("2.5", TypeKind::Numeric, Numeric::Number), json!(2.5));
        assert_eq!(typed("t", TypeKind::Bool, s), json!(true));
        assert_eq!(typed("{\"a\": [1]}", TypeKind::Json, s), json!({"a": [1]}));
        assert_eq!(typed("2024-03-10 00:00:01", TypeKind::Timestamp, s), json!("2024-03-10 00:00:01"));
    }
}
