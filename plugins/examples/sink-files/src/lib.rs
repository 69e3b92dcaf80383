//! An example external sink: each window becomes a directory holding the rows as gzip'd COPY
//! text (`data.txt.gz`) and a `manifest.json` with the rows and bytes. A window is written
//! under a hidden temporary name and renamed into place at commit, so a reader sees a window
//! whole or not at all; a re-run of a window replaces it.
//!
//! ```toml
//! sink = { plugin = "files", dir = "/data/export" }
//! ```
//!
//! Layout: `<dir>/<target schema.table>/<window id>/{data.txt.gz,manifest.json}`.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use flate2::write::GzEncoder;
use flate2::Compression;
use gptransfer_sdk::{PluginError, Sink, SinkWindow, WindowInfo};
use serde::Deserialize;

/// Options of the `files` sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory windows are written under (created when missing).
    pub dir: PathBuf,
}

fn parse(config_toml: &str) -> Result<FilesConfig, PluginError> {
    toml::from_str(config_toml).map_err(|e| PluginError::fatal(e.message().trim().to_string()))
}

/// The `files` sink.
pub struct FilesSink {
    dir: PathBuf,
}

impl Sink for FilesSink {
    const NAME: &'static str = "files";
    const DESCRIPTION: &'static str = "example external sink: each window as gzip COPY text plus a manifest";
    type Window = FilesWindow;

    fn validate(config_toml: &str) -> Result<(), PluginError> {
        parse(config_toml).map(drop)
    }

    fn new(config_toml: &str) -> Result<Self, PluginError> {
        Ok(FilesSink { dir: parse(config_toml)?.dir })
    }

    fn begin(&self, window: &WindowInfo) -> Result<FilesWindow, PluginError> {
        let table_dir = self.dir.join(&window.target_table);
        let tmp = table_dir.join(format!(".tmp-{}-{}", window.id, std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)
            .map_err(|e| PluginError::retriable(format!("cannot create {}: {e}", tmp.display())))?;
        let file = fs::File::create(tmp.join("data.txt.gz"))
            .map_err(|e| PluginError::retriable(format!("cannot create a file in {}: {e}", tmp.display())))?;
        Ok(FilesWindow {
            window: window.clone(),
            final_dir: table_dir.join(&window.id),
            tmp,
            gz: Some(GzEncoder::new(file, Compression::fast())),
            rows: 0,
            bytes: 0,
        })
    }
}

/// One window being written.
pub struct FilesWindow {
    window: WindowInfo,
    tmp: PathBuf,
    final_dir: PathBuf,
    gz: Option<GzEncoder<fs::File>>,
    rows: u64,
    bytes: u64,
}

impl SinkWindow for FilesWindow {
    fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
        let gz = self.gz.as_mut().ok_or_else(|| PluginError::fatal("the window is closed"))?;
        gz.write_all(chunk).map_err(|e| PluginError::retriable(format!("writing {}: {e}", self.tmp.display())))?;
        self.rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    fn commit(mut self) -> Result<u64, PluginError> {
        let io = |what: &str, e: std::io::Error| PluginError::retriable(format!("{what}: {e}"));
        if let Some(gz) = self.gz.take() {
            gz.finish().and_then(|f| f.sync_all()).map_err(|e| io("finishing data.txt.gz", e))?;
        }
        let manifest = serde_json::json!({
            "window": self.window.id,
            "start": self.window.start,
            "end": self.window.end,
            "table": self.window.table,
            "target_table": self.window.target_table,
            "mode": self.window.mode,
            "columns": self.window.columns,
            "rows": self.rows,
            "bytes": self.bytes,
        });
        fs::write(self.tmp.join("manifest.json"), format!("{manifest:#}\n"))
            .map_err(|e| io("writing manifest.json", e))?;
        if self.final_dir.exists() {
            fs::remove_dir_all(&self.final_dir).map_err(|e| io("removing the previous copy of the window", e))?;
        }
        fs::rename(&self.tmp, &self.final_dir).map_err(|e| io("moving the window into place", e))?;
        Ok(self.rows)
    }

    fn abort(mut self) {
        self.gz = None;
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

gptransfer_sdk::export_sink_plugin!(FilesSink);

#[cfg(test)]
mod tests {
    use super::FilesSink;
    use gptransfer_sdk::WindowInfo;

    /// The rows a reader sees for a window: the committed manifest's count, or none.
    fn visible(dir: &std::path::Path, w: &WindowInfo) -> Result<u64, String> {
        let manifest = dir.join(&w.target_table).join(&w.id).join("manifest.json");
        match std::fs::read_to_string(&manifest) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| e.to_string())?
                .get("rows")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("{} has no rows", manifest.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn the_files_sink_conforms() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = format!("dir = {:?}", dir.path().display().to_string());
        let result = gptransfer_sdk::conformance::check_sink::<FilesSink>(&options, |w| visible(dir.path(), w));
        assert_eq!(result, Ok(()));
    }
}
