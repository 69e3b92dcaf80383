//! The SDK is usable outside this repository (issue 15): the `jsonl` example sink
//! (plugins/examples/sink-jsonl: its own `[workspace]`, nothing inherited) and a copy of the
//! SDK beside it build and pass their own tests (conformance included) offline, as a team's
//! crate would; and the host loads that library and moves windows through it with typed values,
//! the key and the mode, no target table, and refuses a mode the sink does not declare.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::TestEnv;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/examples/sink-jsonl");
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk");
/// The example's own path to the SDK (right where it lies in the repository).
const EXAMPLE_SDK_PATH: &str = r#"path = "../../../sdk""#;

/// Copies the example and the SDK's directory (as a vendored copy or a git subtree holds it)
/// to a directory outside the repository, points the example at that copy, runs its tests and
/// builds it offline (once per process). Returns the library.
///
/// A path to the SDK inside the repository would not show much: cargo finds the workspace
/// above it and resolves `*.workspace = true` from there. A copy of `sdk/` alone has no
/// workspace above it, which is what an outside team has.
fn outside_library() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, library) = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = fs::read_to_string(Path::new(EXAMPLE).join("Cargo.toml")).unwrap();
        assert!(manifest.contains(EXAMPLE_SDK_PATH), "the example's Cargo.toml names the SDK as {EXAMPLE_SDK_PATH}");
        fs::write(dir.path().join("Cargo.toml"), manifest.replace(EXAMPLE_SDK_PATH, r#"path = "gptransfer-sdk""#))
            .unwrap();
        copy_dir(&Path::new(EXAMPLE).join("src"), &dir.path().join("src"));
        copy_dir(Path::new(SDK), &dir.path().join("gptransfer-sdk"));
        // The workspace's lock file: offline, cargo resolves to the versions already downloaded
        // for this workspace (it drops the entries the example does not use).
        fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();

        // A target directory of its own that outlives the test, so re-runs only rebuild the
        // example and the SDK copy: <target>/outside-sink, beside <target>/debug. Test processes
        // run at once: one at a time builds, tests and takes its own copy of the library
        // (cargo releases its lock before running doctests, and another copy would rebuild).
        let bin = Path::new(env!("CARGO_BIN_EXE_gptransfer"));
        let target = bin.parent().and_then(Path::parent).unwrap().join("outside-sink");
        fs::create_dir_all(&target).unwrap();
        let library = dir.path().join("libgptransfer_sink_jsonl.so");
        let out = Command::new("flock")
            .arg(target.join(".lock"))
            .args([
                "sh",
                "-c",
                r#"set -e; "$1" test --offline --quiet; "$1" build --offline --quiet; cp "$2" "$3""#,
                "sh",
            ])
            .arg(env!("CARGO"))
            .arg(target.join("debug/libgptransfer_sink_jsonl.so"))
            .arg(&library)
            .current_dir(dir.path())
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo test and build of the jsonl example in {} failed ({}):\n{}\n{}",
            dir.path().display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(library.is_file(), "{} was not built", library.display());
        (dir, library)
    });
    library
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

/// A source table with a value of every kind the sink types, and a job loading it with
/// `jsonl`; `extra` goes into the table entry.
fn jsonl_job(env: &TestEnv, extra: &str) {
    env.src_psql(
        "CREATE TABLE public.ev (id int NOT NULL, site text NOT NULL, ts timestamp, qty bigint, ratio float8, \
         price numeric(20,4), ok boolean, doc jsonb, note text, PRIMARY KEY (id, site))",
    );
    env.src_psql(
        "INSERT INTO public.ev SELECT g, 'S' || (g % 2), timestamp '2024-03-10 00:00:00' + g * interval '7 minutes', \
         g * 1000000000000, g / 4.0, 12345678901234.5678 + g, g % 2 = 0, jsonb_build_object('g', g, 'l', jsonb_build_array(g)), \
         CASE WHEN g % 3 = 0 THEN NULL ELSE 'row ' || g || E'\\ttab\\\\back\\n缺陷😀' END \
         FROM generate_series(0, 9) g",
    );
    env.src_psql("INSERT INTO public.ev VALUES (100, 'S0', '2024-03-10 00:59:59', NULL, 'NaN', NULL, NULL, NULL, '')");
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
key = ["site", "id"]
sink = {{ plugin = "jsonl", dir = "export" }}
{extra}
"#,
        outside_library().display().to_string()
    ));
}

#[test]
fn the_jsonl_example_builds_and_passes_its_own_tests_outside_the_workspace() {
    let bytes = fs::read(outside_library()).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "a shared library");
}

#[test]
fn a_sink_built_outside_gets_typed_values_the_key_and_the_mode() {
    let env = TestEnv::new("a_sink_built_outside_gets_typed_values_the_key_and_the_mode");
    jsonl_job(&env, "");
    env.run(&["config", "check"]).assert_success();
    let out = env.run(&["run"]);
    out.assert_success();
    assert_eq!(env.dst_psql("SELECT to_regclass('public.ev') IS NULL"), "t", "no target table");

    let file = env.dir().join("export/public.ev/20240310000000^20240310010000.jsonl");
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), out.render()));
    let mut rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    rows.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(rows.len(), 10, "rows 0..=8 and 100 fall in the window (row 9 is at 01:03)");
    assert_eq!(
        rows[2],
        serde_json::json!({
            "_id": "S0|2", "id": 2, "site": "S0", "ts": "2024-03-10 00:14:00", "qty": 2_000_000_000_000_i64,
            "ratio": 0.5, "price": "12345678901236.5678", "ok": true, "doc": {"g": 2, "l": [2]},
            "note": "row 2\ttab\\back\n缺陷😀",
        })
    );
    assert_eq!(rows[3]["note"], serde_json::Value::Null, "NULL is null");
    assert_eq!(rows[3]["ok"], serde_json::json!(false));
    assert_eq!(
        rows[9],
        serde_json::json!({
            "_id": "S0|100", "id": 100, "site": "S0", "ts": "2024-03-10 00:59:59", "qty": null, "ratio": "NaN",
            "price": null, "ok": null, "doc": null, "note": "",
        }),
        "NaN has no JSON number; an empty string is not NULL"
    );
    assert_eq!(env.dst_psql("SELECT status || ' ' || rows_written FROM gptransfer.history"), "succeeded 10");

    // Its own count backs compare: equal, then a lost line is found.
    assert_eq!(env.run(&["compare"]).code, 0);
    let kept: Vec<&str> = text.lines().skip(1).collect();
    fs::write(&file, kept.join("\n") + "\n").unwrap();
    let out = env.run(&["compare"]);
    assert_eq!(out.code, 3, "{}", out.render());
}

#[test]
fn a_sink_built_outside_refuses_a_mode_it_does_not_declare_at_config_check() {
    let env = TestEnv::new("a_sink_built_outside_refuses_a_mode_it_does_not_declare_at_config_check");
    jsonl_job(&env, "mode = \"merge\"");
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(
        out.stderr.contains(r#"sink plugin "jsonl" loads replace, full mode only, and this table is in merge mode"#),
        "{}",
        out.render()
    );
}
