//! An example external sink: each window becomes a directory holding the rows as gzip'd COPY
//! text (`data.txt.gz`) and a `manifest.json` with the columns, rows and bytes. A window is
//! written under a hidden temporary name and moved into place at commit, so a reader sees a
//! window whole or not at all; a re-load of a window replaces it, and each `full` load
//! replaces the previous one.
//!
//! ```toml
//! sink = { plugin = "files", dir = "/data/export" }   # a relative dir is from the config's
//! ```
//!
//! Layout: `<dir>/<target schema.table>/<slot>/{data.txt.gz,manifest.json}`, where the slot is
//! the window id (`full` for a full load).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use gptransfer_sdk::decode::{Decoder, Format};
use gptransfer_sdk::{Mode, Options, PluginError, Sink, SinkWindow, WindowInfo};
use serde::Deserialize;

/// Options of the `files` sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory windows are written under (created when missing).
    pub dir: PathBuf,
}

/// The `files` sink.
pub struct FilesSink {
    dir: PathBuf,
}

impl FilesSink {
    fn slot_dir(&self, window: &WindowInfo) -> PathBuf {
        self.dir.join(&window.target_table).join(&window.slot)
    }
}

/// Prefix of a window being written; never a slot name (slots are digits, `^` and `full`).
const TMP_PREFIX: &str = ".tmp-";

impl Sink for FilesSink {
    const NAME: &'static str = "files";
    const DESCRIPTION: &'static str = "example external sink: each window as gzip COPY text plus a manifest";
    // A window's directory is replaced whole: there is no key to merge on in a directory.
    const MODES: &'static [Mode] = &[Mode::Replace, Mode::Full];
    const COUNTS: bool = true;
    type Window = FilesWindow;

    fn validate(options: &Options) -> Result<(), PluginError> {
        options.parse::<FilesConfig>().map(drop)
    }

    fn new(options: &Options) -> Result<Self, PluginError> {
        Ok(FilesSink { dir: options.resolve(options.parse::<FilesConfig>()?.dir) })
    }

    fn begin(&self, window: &WindowInfo) -> Result<FilesWindow, PluginError> {
        let final_dir = self.slot_dir(window);
        let table_dir = final_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
        let tmp = table_dir.join(tmp_name(&window.slot, ""));
        let old = table_dir.join(tmp_name(&window.slot, ".old"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| with_path("cannot create", &tmp, e))?;
        let file =
            fs::File::create(tmp.join("data.txt.gz")).map_err(|e| with_path("cannot create a file in", &tmp, e))?;
        Ok(FilesWindow {
            window: window.clone(),
            decoder: Decoder::new(Format::Text).with_columns(window.columns.len()),
            final_dir,
            tmp,
            old,
            gz: Some(GzEncoder::new(file, Compression::fast())),
            bytes: 0,
        })
    }

    fn count(&self, window: &WindowInfo) -> Result<u64, PluginError> {
        let manifest = self.slot_dir(window).join("manifest.json");
        match fs::read_to_string(&manifest) {
            Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|m| m.get("rows").and_then(serde_json::Value::as_u64))
                .ok_or_else(|| PluginError::fatal(format!("{} has no row count", manifest.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(with_path("cannot read", &manifest, e)),
        }
    }
}

/// A window's temporary directory (`suffix` ""), or where the previous copy waits (".old").
fn tmp_name(slot: &str, suffix: &str) -> String {
    format!("{TMP_PREFIX}{slot}-{}{suffix}", std::process::id())
}

fn with_path(what: &str, path: &Path, e: std::io::Error) -> PluginError {
    let retriable = PluginError::from(std::io::Error::new(e.kind(), "")).retriable;
    PluginError { message: format!("{what} {}: {e}", path.display()), retriable }
}

/// One window being written.
pub struct FilesWindow {
    window: WindowInfo,
    decoder: Decoder,
    tmp: PathBuf,
    old: PathBuf,
    final_dir: PathBuf,
    gz: Option<GzEncoder<fs::File>>,
    bytes: u64,
}

impl SinkWindow for FilesWindow {
    fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
        let gz = self.gz.as_mut().ok_or_else(|| PluginError::fatal("the window is closed"))?;
        gz.write_all(chunk).map_err(|e| with_path("writing", &self.tmp, e))?;
        // Decoded only to count and check the rows: the file keeps COPY text as it came.
        self.decoder.push(chunk);
        while self.decoder.next_row()?.is_some() {}
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    fn prepare(&mut self) -> Result<u64, PluginError> {
        self.decoder.finish()?;
        if let Some(gz) = self.gz.take() {
            gz.finish().and_then(|f| f.sync_all()).map_err(|e| with_path("finishing data.txt.gz in", &self.tmp, e))?;
        }
        let w = &self.window;
        let manifest = serde_json::json!({
            "window": w.id,
            "slot": w.slot,
            "start": w.start,
            "end": w.end,
            "table": w.table,
            "target_table": w.target_table,
            "mode": w.mode.as_str(),
            "key": w.key,
            "columns": w.columns.iter().map(|c| serde_json::json!({
                "name": c.name, "type": c.type_text, "nullable": c.nullable,
            })).collect::<Vec<_>>(),
            "rows": self.decoder.rows(),
            "bytes": self.bytes,
        });
        fs::write(self.tmp.join("manifest.json"), format!("{manifest:#}\n"))
            .map_err(|e| with_path("writing manifest.json in", &self.tmp, e))?;
        Ok(self.decoder.rows())
    }

    fn commit(&mut self) -> Result<(), PluginError> {
        // The previous copy is moved aside, not deleted first: a failure leaves it in place.
        let old = &self.old;
        let had_old = self.final_dir.exists();
        if had_old {
            fs::rename(&self.final_dir, old).map_err(|e| with_path("moving aside", &self.final_dir, e))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &self.final_dir) {
            if had_old {
                let _ = fs::rename(old, &self.final_dir);
            }
            return Err(with_path("moving the window into", &self.final_dir, e));
        }
        if had_old {
            let _ = fs::remove_dir_all(old);
        }
        Ok(())
    }

    fn abort(&mut self) {
        self.gz = None;
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

gptransfer_sdk::export_sink_plugin!(FilesSink);

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use gptransfer_sdk::conformance::{check_sink, Observer, Rows};
    use gptransfer_sdk::decode::{Decoder, Format};
    use gptransfer_sdk::{Options, WindowInfo};

    use super::{tmp_name, FilesSink, TMP_PREFIX};

    struct Files(PathBuf);

    impl Files {
        fn slot(&self, w: &WindowInfo) -> PathBuf {
            self.0.join(&w.target_table).join(&w.slot)
        }
    }

    impl Observer for Files {
        /// The committed data file of the slot, decoded.
        fn visible(&self, w: &WindowInfo) -> Result<Rows, String> {
            let file = self.slot(w).join("data.txt.gz");
            let gz = match std::fs::File::open(&file) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(format!("{}: {e}", file.display())),
            };
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            let mut decoder = Decoder::new(Format::Text);
            decoder.push(&bytes);
            let mut rows = Vec::new();
            while let Some(row) = decoder.next_row().map_err(|e| e.to_string())? {
                rows.push(row.into_values());
            }
            decoder.finish().map_err(|e| e.to_string())?;
            Ok(rows)
        }

        fn leftovers(&self) -> Result<Vec<String>, String> {
            let mut left = Vec::new();
            for table in std::fs::read_dir(&self.0).map_err(|e| e.to_string())? {
                let table = table.map_err(|e| e.to_string())?.path();
                for entry in std::fs::read_dir(&table).map_err(|e| e.to_string())? {
                    let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().to_string();
                    if name.starts_with(TMP_PREFIX) {
                        left.push(name);
                    }
                }
            }
            Ok(left)
        }

        /// The slot exists (so the commit moves it aside first) and its aside name is taken by
        /// a non-empty directory: that move fails.
        fn break_commit(&self, w: &WindowInfo) -> Result<bool, String> {
            let slot = self.slot(w);
            let aside = slot.parent().unwrap_or(Path::new("/")).join(tmp_name(&w.slot, ".old"));
            std::fs::create_dir_all(&slot).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(aside.join("blocker")).map_err(|e| e.to_string())?;
            Ok(true)
        }

        fn mend_commit(&self, w: &WindowInfo) -> Result<(), String> {
            let slot = self.slot(w);
            let aside = slot.parent().unwrap_or(Path::new("/")).join(tmp_name(&w.slot, ".old"));
            std::fs::remove_dir_all(&aside).map_err(|e| e.to_string())?;
            std::fs::remove_dir_all(&slot).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn the_files_sink_conforms() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let options = Options::new("dir = \"out\"", dir.path());
        let checked = check_sink::<FilesSink>(&options, &Files(dir.path().join("out")))
            .unwrap_or_else(|e| panic!("conformance: {e}"));
        assert!(checked.skipped.is_empty(), "{:?}", checked.skipped);
    }
}
