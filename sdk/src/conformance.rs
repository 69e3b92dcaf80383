//! The contract gptransfer relies on, as a check a plugin author runs in a unit test,
//! in-process and long before gptransfer ever loads the library:
//!
//! ```ignore
//! #[test]
//! fn conforms() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let options = Options::new(format!("dir = {:?}", dir.path()), dir.path());
//!     let checked = gptransfer_sdk::conformance::check_sink::<MySink>(&options, &MyObserver(&dir)).unwrap();
//!     assert!(checked.skipped.is_empty(), "{:?}", checked.skipped);
//! }
//! ```
//!
//! An [`Observer`] says what a reader of the sink's output sees: the rows of a window's
//! [`slot`](WindowInfo::slot), decoded back to COPY's text form, and anything left behind.
//! The checks, each failing with the step's name:
//! 1. the options validate and make a sink;
//! 2. a window written one byte at a time (escaped newlines and tabs, backslashes, NULLs,
//!    non-ASCII text) is invisible until `commit`, even after `prepare`, which returns its row
//!    count; after `commit` a reader sees exactly the values sent;
//! 3. an aborted re-load, and a prepared re-load the host refuses (its count did not match),
//!    leave the committed rows as they were and nothing behind;
//! 4. a committed re-load replaces the window (the host re-runs windows after failures);
//! 5. an empty window commits 0 rows and leaves other windows alone;
//! 6. a malformed row fails `write` or `prepare` (or is ignored), and the abort that follows
//!    leaves nothing behind;
//! 7. a commit that fails (the observer breaks the target, see [`Observer::break_commit`])
//!    returns an error, and the abort that follows leaves nothing visible or behind;
//! 8. with `Mode::Full` in [`Sink::MODES`]: two full loads (different window ids, one slot)
//!    leave only the second;
//! 9. every mode in [`Sink::MODES`] loads a window;
//! 10. with [`Sink::COUNTS`]: `count` agrees with what a reader sees.

use crate::{Column, Mode, Options, PluginError, Sink, SinkWindow, TypeKind, WindowInfo};

/// Rows as a reader sees them: each value in COPY's text form, `None` for NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// How the checks see the sink's output.
pub trait Observer {
    /// The rows a reader sees now for `window`'s slot (empty when it holds nothing), in any
    /// order, each value turned back into its text form (a JSON number `1` is `"1"`).
    fn visible(&self, window: &WindowInfo) -> Result<Rows, String>;

    /// What the sink left behind that no reader should see (temporary files), by name.
    fn leftovers(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    /// Makes the next commit of `window` fail (e.g. puts a file where its directory must go);
    /// false when there is no way to (the check is then reported as skipped).
    fn break_commit(&self, _window: &WindowInfo) -> Result<bool, String> {
        Ok(false)
    }

    /// Undoes [`Observer::break_commit`].
    fn mend_commit(&self, _window: &WindowInfo) -> Result<(), String> {
        Ok(())
    }
}

/// What the checks could not check, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Checks skipped, each a sentence.
    pub skipped: Vec<String>,
}

/// COPY text rows of the checks: 5 rows, with every escape COPY text uses.
const SAMPLE: &[u8] = "1\t2024-03-10 00:00:01\tline1\\nline2\n\
2\t2024-03-10 00:00:02\ttab\\there\n\
3\t2024-03-10 00:00:03\tback\\\\slash \\\\N\n\
4\t2024-03-10 00:00:04\t\\N\n\
5\t2024-03-10 00:00:05\t缺陷，玻璃 😀\n"
    .as_bytes();

fn sample_values() -> Rows {
    let row =
        |id: &str, ts: &str, v: Option<&str>| vec![Some(id.to_string()), Some(ts.to_string()), v.map(str::to_string)];
    vec![
        row("1", "2024-03-10 00:00:01", Some("line1\nline2")),
        row("2", "2024-03-10 00:00:02", Some("tab\there")),
        row("3", "2024-03-10 00:00:03", Some("back\\slash \\N")),
        row("4", "2024-03-10 00:00:04", None),
        row("5", "2024-03-10 00:00:05", Some("缺陷，玻璃 😀")),
    ]
}

/// Two rows of a re-load.
const RELOAD: &[u8] = b"6\t2024-03-10 00:00:06\tsix\n7\t2024-03-10 00:00:07\tseven\n";

fn reload_values() -> Rows {
    vec![
        vec![Some("6".into()), Some("2024-03-10 00:00:06".into()), Some("six".into())],
        vec![Some("7".into()), Some("2024-03-10 00:00:07".into()), Some("seven".into())],
    ]
}

fn column(name: &str, type_name: &str, type_text: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        type_name: type_name.into(),
        type_text: type_text.into(),
        kind: TypeKind::of(type_name),
        nullable,
    }
}

fn window(id: &str, start: &str, end: &str, mode: Mode) -> WindowInfo {
    WindowInfo {
        job: "conformance".into(),
        id: id.into(),
        slot: if mode == Mode::Full { "full".into() } else { id.into() },
        start: start.into(),
        end: end.into(),
        table: "conformance.events".into(),
        target_table: "conformance.events".into(),
        columns: vec![
            column("id", "int4", "integer", false),
            column("ts", "timestamp", "timestamp without time zone", true),
            column("v", "text", "text", true),
        ],
        key: vec!["id".into()],
        mode,
    }
}

fn step(name: &'static str) -> impl Fn(PluginError) -> String {
    move |e| format!("{name}: {e}")
}

fn sorted(mut rows: Rows) -> Rows {
    rows.sort();
    rows
}

/// Loads `bytes` into `window` in `chunk`-byte pieces and commits; returns prepare's count.
fn load<S: Sink>(sink: &S, window: &WindowInfo, bytes: &[u8], chunk: usize, what: &'static str) -> Result<u64, String> {
    let mut w = sink.begin(window).map_err(step(what))?;
    for piece in bytes.chunks(chunk.max(1)) {
        if let Err(e) = w.write(piece) {
            w.abort();
            return Err(format!("{what}: write: {e}"));
        }
    }
    let rows = match w.prepare() {
        Ok(rows) => rows,
        Err(e) => {
            w.abort();
            return Err(format!("{what}: prepare: {e}"));
        }
    };
    if let Err(e) = w.commit() {
        w.abort();
        return Err(format!("{what}: commit: {e}"));
    }
    Ok(rows)
}

/// Runs the checks against sink type `S` made from `options`; the target must start empty.
pub fn check_sink<S: Sink>(options: &Options, observer: &impl Observer) -> Result<Checked, String> {
    let mut checked = Checked::default();
    S::validate(options).map_err(step("validate"))?;
    let sink = S::new(options).map_err(step("new"))?;
    let a = window("20240310000000^20240310010000", "2024-03-10 00:00:00", "2024-03-10 01:00:00", Mode::Replace);
    let b = window("20240310010000^20240310020000", "2024-03-10 01:00:00", "2024-03-10 02:00:00", Mode::Replace);
    let c = window("20240310020000^20240310030000", "2024-03-10 02:00:00", "2024-03-10 03:00:00", Mode::Replace);
    let expect = |what: &str, w: &WindowInfo, want: &Rows| -> Result<(), String> {
        let got = sorted(observer.visible(w).map_err(|e| format!("{what}: reading what is visible: {e}"))?);
        if &got == want {
            Ok(())
        } else {
            Err(format!("{what}: slot {} shows {got:?}, expected {want:?}", w.slot))
        }
    };
    let clean = |what: &str| -> Result<(), String> {
        let left = observer.leftovers().map_err(|e| format!("{what}: listing leftovers: {e}"))?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: left behind: {}", left.join(", ")))
        }
    };
    let none: Rows = Vec::new();

    // 2. Invisible until commit; exactly the values sent after it.
    expect("before any load", &a, &none)?;
    let mut load_a = sink.begin(&a).map_err(step("begin"))?;
    for byte in SAMPLE.chunks(1) {
        load_a.write(byte).map_err(step("write (one byte at a time)"))?;
    }
    expect("after write, before commit (nothing may be visible)", &a, &none)?;
    let rows = load_a.prepare().map_err(step("prepare"))?;
    if rows != 5 {
        return Err(format!(
            "prepare returned {rows} row(s) for 5 COPY text rows (escaped newlines are inside values)"
        ));
    }
    expect("after prepare, before commit (nothing may be visible)", &a, &none)?;
    load_a.commit().map_err(step("commit"))?;
    expect("after commit (the values sent, decoded)", &a, &sorted(sample_values()))?;

    // 3. Aborted, and refused after prepare: the committed rows stay, nothing is left.
    let mut aborted = sink.begin(&a).map_err(step("begin (re-load to abort)"))?;
    aborted.write(RELOAD).map_err(step("write (re-load to abort)"))?;
    aborted.abort();
    expect("after an aborted re-load (the committed rows must stay)", &a, &sorted(sample_values()))?;
    clean("after an aborted re-load")?;
    let mut refused = sink.begin(&a).map_err(step("begin (re-load the host refuses)"))?;
    refused.write(RELOAD).map_err(step("write (re-load the host refuses)"))?;
    refused.prepare().map_err(step("prepare (re-load the host refuses)"))?;
    refused.abort();
    expect("after a prepared re-load was aborted (a count mismatch)", &a, &sorted(sample_values()))?;
    clean("after a prepared re-load was aborted")?;

    // 4. A committed re-load replaces the window.
    let rows = load(&sink, &a, RELOAD, RELOAD.len() / 2 + 1, "re-load")?;
    if rows != 2 {
        return Err(format!("prepare of the re-load returned {rows} row(s), expected 2"));
    }
    expect("after a committed re-load (it replaces the window)", &a, &sorted(reload_values()))?;

    // 5. An empty window.
    let rows = load(&sink, &b, b"", 1, "empty window")?;
    if rows != 0 {
        return Err(format!("prepare of an empty window returned {rows} row(s)"));
    }
    expect("after an empty window", &b, &none)?;
    expect("after another window (windows are independent)", &a, &sorted(reload_values()))?;

    // 6. A malformed row (two fields for three columns): the failure is cleaned up.
    let mut bad = sink.begin(&c).map_err(step("begin (a malformed row)"))?;
    let failed = bad.write(b"8\tonly two fields\n").is_err() || bad.prepare().is_err();
    bad.abort();
    if !failed {
        checked.skipped.push("a malformed row was taken without an error (the sink does not decode rows)".into());
    }
    expect("after a window with a malformed row was aborted", &c, &none)?;
    clean("after a window with a malformed row was aborted")?;

    // 7. A failed commit, then the abort the host calls.
    if observer.break_commit(&c).map_err(|e| format!("breaking the target: {e}"))? {
        let mut w = sink.begin(&c).map_err(step("begin (a commit that fails)"))?;
        w.write(SAMPLE).map_err(step("write (a commit that fails)"))?;
        w.prepare().map_err(step("prepare (a commit that fails)"))?;
        let committed = w.commit();
        w.abort();
        observer.mend_commit(&c).map_err(|e| format!("mending the target: {e}"))?;
        if committed.is_ok() {
            return Err("commit succeeded on a target the observer broke".into());
        }
        expect("after a failed commit and its abort", &c, &none)?;
        clean("after a failed commit and its abort")?;
    } else {
        checked.skipped.push("a failed commit (the observer cannot make a commit fail)".into());
    }

    // 8. Full loads share one slot.
    if S::MODES.contains(&Mode::Full) {
        let first = window("20240310000000^20240311000000", "2024-03-10 00:00:00", "2024-03-11 00:00:00", Mode::Full);
        let second = window("20240310000000^20240312000000", "2024-03-10 00:00:00", "2024-03-12 00:00:00", Mode::Full);
        load(&sink, &first, SAMPLE, 7, "full load")?;
        expect("after a full load", &first, &sorted(sample_values()))?;
        load(&sink, &second, RELOAD, 7, "second full load")?;
        expect("after a second full load (it replaces the first: one slot)", &second, &sorted(reload_values()))?;
        clean("after two full loads")?;
    }

    // 9. Every declared mode loads.
    for mode in S::MODES.iter().copied().filter(|m| *m != Mode::Full) {
        let w = window("20240310030000^20240310040000", "2024-03-10 03:00:00", "2024-03-10 04:00:00", mode);
        load(&sink, &w, RELOAD, 4096, "a window in every declared mode").map_err(|e| format!("mode {mode}: {e}"))?;
        expect(&format!("after a {mode} window"), &w, &sorted(reload_values()))?;
    }

    // 10. count agrees with what a reader sees.
    if S::COUNTS {
        for w in [&a, &b, &c] {
            let counted = sink.count(w).map_err(step("count"))?;
            let seen = observer.visible(w).map_err(|e| format!("count: reading what is visible: {e}"))?.len() as u64;
            if counted != seen {
                return Err(format!("count: slot {} counts {counted} row(s) but a reader sees {seen}", w.slot));
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{check_sink, Observer, Rows};
    use crate::decode::{Decoder, Format};
    use crate::{Options, PluginError, Sink, SinkWindow, WindowInfo};

    /// Committed rows per slot, per test: an in-memory target.
    static TARGET: Mutex<Option<HashMap<String, Rows>>> = Mutex::new(None);

    struct Memory;
    impl Observer for Memory {
        fn visible(&self, w: &WindowInfo) -> Result<Rows, String> {
            let guard = TARGET.lock().map_err(|e| e.to_string())?;
            Ok(guard.as_ref().and_then(|t| t.get(&w.slot)).cloned().unwrap_or_default())
        }
    }

    /// A sink keeping rows in memory; a broken one appends on re-load instead of replacing.
    struct MemorySink {
        appends: bool,
    }
    struct MemoryWindow {
        slot: String,
        decoder: Decoder,
        rows: Rows,
        appends: bool,
    }

    impl Sink for MemorySink {
        const NAME: &'static str = "memory";
        const DESCRIPTION: &'static str = "test";
        const COUNTS: bool = true;
        type Window = MemoryWindow;
        fn new(options: &Options) -> Result<Self, PluginError> {
            Ok(MemorySink { appends: options.toml().contains("appends") })
        }
        fn begin(&self, w: &WindowInfo) -> Result<MemoryWindow, PluginError> {
            Ok(MemoryWindow {
                slot: w.slot.clone(),
                decoder: Decoder::new(Format::Text).with_columns(w.columns.len()),
                rows: Vec::new(),
                appends: self.appends,
            })
        }
        fn count(&self, w: &WindowInfo) -> Result<u64, PluginError> {
            Memory.visible(w).map(|r| r.len() as u64).map_err(PluginError::fatal)
        }
    }

    impl SinkWindow for MemoryWindow {
        fn write(&mut self, chunk: &[u8]) -> Result<(), PluginError> {
            self.decoder.push(chunk);
            while let Some(row) = self.decoder.next_row()? {
                self.rows.push(row.into_values());
            }
            Ok(())
        }
        fn prepare(&mut self) -> Result<u64, PluginError> {
            self.decoder.finish()?;
            Ok(self.rows.len() as u64)
        }
        fn commit(&mut self) -> Result<(), PluginError> {
            let mut guard = TARGET.lock().map_err(|e| PluginError::fatal(e.to_string()))?;
            let target = guard.get_or_insert_with(HashMap::new);
            let entry = target.entry(self.slot.clone()).or_default();
            if !self.appends {
                entry.clear();
            }
            entry.append(&mut self.rows);
            Ok(())
        }
        fn abort(&mut self) {}
    }

    #[test]
    fn a_conforming_sink_passes_and_an_appending_one_is_named() {
        // One test, so the shared in-memory target is used by one check at a time.
        let checked = check_sink::<MemorySink>(&Options::new("", "/"), &Memory).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checked.skipped, vec!["a failed commit (the observer cannot make a commit fail)".to_string()]);
        if let Ok(mut guard) = TARGET.lock() {
            *guard = None;
        }
        let err = check_sink::<MemorySink>(&Options::new("appends = true", "/"), &Memory).unwrap_err();
        assert!(err.starts_with("after a committed re-load (it replaces the window)"), "{err}");
    }
}
