//! The contract the host relies on, as a check a plugin author runs in a unit test, in-process
//! and long before the library is ever loaded by gptransfer:
//!
//! ```ignore
//! #[test]
//! fn conforms() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let options = format!("dir = {:?}", dir.path());
//!     gptransfer_sdk::conformance::check_sink::<MySink>(&options, |w| rows_visible_in(&dir, w)).unwrap();
//! }
//! ```
//!
//! `visible` says how many rows of a window a reader of the target sees right now. The checks,
//! each failing with the step's name:
//! 1. the options validate and make a sink;
//! 2. a window written one byte at a time (rows with escaped newlines, tabs, backslashes, `\N`
//!    NULLs and non-ASCII text) is invisible until `commit`, which returns its row count;
//! 3. an aborted re-load of the window leaves the committed rows as they were;
//! 4. a committed re-load replaces the window (the host re-runs windows after failures);
//! 5. an empty window commits 0 rows and leaves other windows alone.

use crate::{Sink, SinkWindow, WindowInfo};

/// COPY text rows of the checks: 5 rows, with every escape COPY text uses.
const SAMPLE: &[u8] = "1\t2024-03-10 00:00:01\tline1\\nline2\n\
2\t2024-03-10 00:00:02\ttab\\there\n\
3\t2024-03-10 00:00:03\tback\\\\slash\n\
4\t2024-03-10 00:00:04\t\\N\n\
5\t2024-03-10 00:00:05\t缺陷，玻璃\n"
    .as_bytes();

/// Two rows of a re-load.
const RELOAD: &[u8] = b"6\t2024-03-10 00:00:06\tsix\n7\t2024-03-10 00:00:07\tseven\n";

fn window(id: &str, start: &str, end: &str) -> WindowInfo {
    WindowInfo {
        id: id.to_string(),
        start: start.to_string(),
        end: end.to_string(),
        table: "conformance.events".to_string(),
        target_table: "conformance.events".to_string(),
        columns: vec!["id".to_string(), "ts".to_string(), "v".to_string()],
        mode: "replace".to_string(),
    }
}

/// Runs the checks against sink type `S` made from `options_toml`; `visible` reports the rows
/// of a window a reader sees (0 when there is nothing). The target must start empty.
pub fn check_sink<S: Sink>(
    options_toml: &str,
    visible: impl Fn(&WindowInfo) -> Result<u64, String>,
) -> Result<(), String> {
    fn step(name: &'static str) -> impl Fn(crate::PluginError) -> String {
        move |e| format!("{name}: {e}")
    }
    S::validate(options_toml).map_err(step("validate"))?;
    let sink = S::new(options_toml).map_err(step("new"))?;
    let a = window("20240310000000^20240310010000", "2024-03-10 00:00:00", "2024-03-10 01:00:00");
    let b = window("20240310010000^20240310020000", "2024-03-10 01:00:00", "2024-03-10 02:00:00");
    let expect = |what: &str, w: &WindowInfo, want: u64| -> Result<(), String> {
        let got = visible(w).map_err(|e| format!("{what}: reading what is visible: {e}"))?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: window {} shows {got} row(s), expected {want}", w.id))
        }
    };

    expect("before any load", &a, 0)?;
    let mut load = sink.begin(&a).map_err(step("begin"))?;
    for byte in SAMPLE.chunks(1) {
        load.write(byte).map_err(step("write (one byte at a time)"))?;
    }
    expect("after write, before commit (nothing may be visible)", &a, 0)?;
    let rows = load.commit().map_err(step("commit"))?;
    if rows != 5 {
        return Err(format!(
            "commit returned {rows} row(s) for 5 COPY text rows (count raw newlines: escaped ones are inside values)"
        ));
    }
    expect("after commit", &a, 5)?;

    let mut aborted = sink.begin(&a).map_err(step("begin (re-load to abort)"))?;
    aborted.write(RELOAD).map_err(step("write (re-load to abort)"))?;
    aborted.abort();
    expect("after an aborted re-load (the committed rows must stay)", &a, 5)?;

    let mut reload = sink.begin(&a).map_err(step("begin (re-load)"))?;
    let (head, tail) = RELOAD.split_at(RELOAD.len() / 2 + 1);
    reload.write(head).map_err(step("write (re-load)"))?;
    reload.write(tail).map_err(step("write (re-load)"))?;
    expect("during a re-load, before commit (the old rows stay visible)", &a, 5)?;
    let rows = reload.commit().map_err(step("commit (re-load)"))?;
    if rows != 2 {
        return Err(format!("commit of the re-load returned {rows} row(s), expected 2"));
    }
    expect("after a committed re-load (it replaces the window)", &a, 2)?;

    let empty = sink.begin(&b).map_err(step("begin (empty window)"))?;
    let rows = empty.commit().map_err(step("commit (empty window)"))?;
    if rows != 0 {
        return Err(format!("commit of an empty window returned {rows} row(s)"));
    }
    expect("after an empty window", &b, 0)?;
    expect("after another window (windows are independent)", &a, 2)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::check_sink;
    use crate::{PluginError, Sink, SinkWindow, WindowInfo};

    /// Committed rows per window, per sink name: an in-memory target.
    static TARGET: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

    fn visible(w: &WindowInfo) -> Result<u64, String> {
        let guard = TARGET.lock().map_err(|e| e.to_string())?;
        Ok(guard.as_ref().and_then(|t| t.get(&w.id)).copied().unwrap_or(0))
    }

    struct Memory {
        /// A broken sink appends on re-load instead of replacing.
        appends: bool,
    }
    struct MemoryWindow {
        id: String,
        rows: u64,
        appends: bool,
    }

    impl Sink for Memory {
        const NAME: &'static str = "memory";
        const DESCRIPTION: &'static str = "test";
        type Window = MemoryWindow;
        fn new(config_toml: &str) -> Result<Self, PluginError> {
            Ok(Memory { appends: config_toml.contains("appends") })
        }
        fn begin(&self, window: &WindowInfo) -> Result<MemoryWindow, PluginError> {
            Ok(MemoryWindow { id: window.id.clone(), rows: 0, appends: self.appends })
        }
    }

    impl SinkWindow for MemoryWindow {
        fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
            self.rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            Ok(())
        }
        fn commit(self) -> Result<u64, PluginError> {
            let mut guard = TARGET.lock().map_err(|e| PluginError::fatal(e.to_string()))?;
            let target = guard.get_or_insert_with(HashMap::new);
            let entry = target.entry(self.id).or_insert(0);
            *entry = if self.appends { *entry + self.rows } else { self.rows };
            Ok(self.rows)
        }
        fn abort(self) {}
    }

    #[test]
    fn a_conforming_sink_passes_and_an_appending_one_is_named() {
        // One test, so the shared in-memory target is used by one check at a time.
        assert_eq!(check_sink::<Memory>("", visible), Ok(()));
        if let Ok(mut guard) = TARGET.lock() {
            *guard = None;
        }
        let err = check_sink::<Memory>("appends", visible).unwrap_err();
        assert!(err.starts_with("after a committed re-load (it replaces the window)"), "{err}");
    }
}
