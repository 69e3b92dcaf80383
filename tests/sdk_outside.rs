//! The SDK is usable outside this repository (issue 15 item 2): a sink crate with no tie to the
//! gptransfer workspace (tests/fixtures/outside-sink: its own `[workspace]`, no inherited
//! settings) and a copy of the SDK beside it build offline into a shared library, and the
//! host loads that library and moves a window through it, whose rows the SDK's decoder reads
//! back exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::TestEnv;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/outside-sink");
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk");
/// The fixture's own path to the SDK (right where it lies in the repository).
const FIXTURE_SDK_PATH: &str = r#"path = "../../../sdk""#;

/// Copies the fixture and the SDK's directory (as a vendored copy or a git subtree holds it)
/// to a temporary directory outside the repository, points the fixture at that copy and
/// builds it offline. Returns the library; the temporary copy goes when the guard drops.
///
/// A path to the SDK inside the repository would not show much: cargo finds the workspace
/// above it and resolves `*.workspace = true` from there. A copy of `sdk/` alone has no
/// workspace above it, which is what an outside team has.
fn build_outside_sink() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = fs::read_to_string(Path::new(FIXTURE).join("Cargo.toml")).unwrap();
    assert!(manifest.contains(FIXTURE_SDK_PATH), "the fixture's Cargo.toml names the SDK as {FIXTURE_SDK_PATH}");
    fs::write(dir.path().join("Cargo.toml"), manifest.replace(FIXTURE_SDK_PATH, r#"path = "gptransfer-sdk""#)).unwrap();
    copy_dir(&Path::new(FIXTURE).join("src"), &dir.path().join("src"));
    copy_dir(Path::new(SDK), &dir.path().join("gptransfer-sdk"));
    // The workspace's lock file: offline, cargo resolves to the versions already downloaded
    // for this workspace (it drops the entries the fixture does not use).
    fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();

    // A target directory of its own that outlives the test, so re-runs only rebuild the
    // fixture and the SDK copy: <target>/outside-sink, beside <target>/debug (the binary's).
    let bin = Path::new(env!("CARGO_BIN_EXE_gptransfer"));
    let target = bin.parent().and_then(Path::parent).unwrap().join("outside-sink");
    let library = target.join("debug/liboutside_sink.so");
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build of the outside sink in {} failed ({}):\n{}",
        dir.path().display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(library.is_file(), "{} was not built", library.display());
    (dir, library)
}

#[test]
fn a_sink_outside_the_workspace_builds_against_the_sdk() {
    let (_dir, library) = build_outside_sink();
    let bytes = fs::read(&library).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is a shared library", library.display());
}

#[test]
fn the_host_runs_a_window_through_a_sink_built_outside() {
    let (_dir, library) = build_outside_sink();
    let env = TestEnv::new("the_host_runs_a_window_through_a_sink_built_outside");
    let ddl = "CREATE TABLE public.ev (id int, ts timestamp, note text)";
    env.src_psql(ddl);
    env.dst_psql(ddl);
    // Every third note NULL, the others with a tab, a backslash, a newline and non-ASCII text.
    env.src_psql(
        "INSERT INTO public.ev SELECT g, timestamp '2024-03-10 00:00:00' + g * interval '7 minutes', \
         CASE WHEN g % 3 = 0 THEN NULL ELSE 'row ' || g || E'\\ttab\\\\back\\n缺陷😀' END \
         FROM generate_series(0, 9) g",
    );
    env.write_config(&format!(
        r#"{{CLUSTERS}}
[plugins]
paths = [{:?}]

[jobs.ev]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 01:00:00"
duration = "1h"

[[jobs.ev.tables]]
table = "public.ev"
condition_column = "ts"
sink = {{ plugin = "outside" }}
"#,
        library.display().to_string()
    ));
    let out = env.run(&["run"]);
    out.assert_success();

    let written = fs::read_to_string(env.dir().join("outside-sink-20240310000000^20240310010000.rows"))
        .unwrap_or_else(|e| panic!("the sink's rows: {e}\n{}", out.render()));
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort_by_key(|l| l.split('"').nth(1).and_then(|id| id.parse::<u32>().ok()));
    let expected: Vec<String> = (0..=8)
        .map(|g: u32| {
            let minutes = g * 7;
            let ts = format!("2024-03-10 00:{minutes:02}:00");
            let note = (g % 3 != 0).then(|| format!("row {g}\ttab\\back\n缺陷😀"));
            format!("{:?}", [Some(g.to_string()), Some(ts), note])
        })
        .collect();
    assert_eq!(lines, expected, "rows 0..=8 fall in the window (row 9 is at 01:03)");
    assert_eq!(
        env.dst_psql("SELECT status || ' ' || rows_written FROM gptransfer.history"),
        "succeeded 9",
        "the host records the rows the sink's decoder counted"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_name() == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}
