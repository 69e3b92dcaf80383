//! The `shared-mount` transport (issue 4, item 2; SPEC §7, §10): windows go through gzip files
//! and a manifest under `<root>/<db>^<schema>^<table>^<window id>/` and land byte-exact; re-runs
//! are harmless; a mount either side cannot use is refused before any data moves, naming the
//! directory's owner and the uid/gid of each side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::files::{csv_rows, gunzip, names_in};
use support::TestEnv;

const WINDOWS: [&str; 2] = ["20240310000000^20240310030000", "20240310030000^20240310060000"];
const COLUMNS: &[&str] = &["id", "evt_ts", "glass", "qty", "payload"];

/// Same types on both sides: binary COPY would be possible, but the mount prefers CSV files.
const TARGET_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea);
"#;

/// `glass` is varchar on the target: no binary COPY; the files are CSV either way.
const TARGET_SQL_TEXT: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass varchar, qty numeric(12,3), payload bytea);
"#;

fn setup(env: &TestEnv) -> PathBuf {
    setup_with(env, TARGET_SQL)
}

fn setup_with(env: &TestEnv, target_sql: &str) -> PathBuf {
    env.src_psql(&support::defects_source_sql(6000, "3.6 seconds"));
    env.dst_psql(target_sql);
    let mount = env.dir().join("mount");
    fs::create_dir(&mount).unwrap();
    fs::set_permissions(&mount, fs::Permissions::from_mode(0o755)).unwrap();
    mount
}

/// A config moving `eda.defects` in two 3-hour windows through `shared-mount` with `options`.
fn write_config(env: &TestEnv, options: &str) {
    env.write_config(&format!(
        r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
mode = "replace"
transport = {{ plugin = "shared-mount", root = "{{TEMP_DIR}}/mount"{options} }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
"#
    ));
}

fn window_dir(env: &TestEnv, mount: &Path, window: &str) -> PathBuf {
    mount.join(format!("{}^eda^defects^{window}", env.db))
}

/// Rows of a state table, 0 when the state schema was never created.
fn state_rows(env: &TestEnv, table: &str) -> i64 {
    if env.dst_psql(&format!("SELECT to_regclass('gptransfer.{table}') IS NULL")) == "t" {
        return 0;
    }
    env.dst_psql(&format!("SELECT count(*) FROM gptransfer.{table}")).parse().unwrap()
}

#[test]
fn windows_land_byte_exact_through_gzip_files_and_manifest() {
    let env = TestEnv::new("shared_mount_byte_exact");
    let mount = setup_with(&env, TARGET_SQL_TEXT);
    write_config(&env, ", keep_files = true, split_bytes = 65536, compression = 1");
    let source = support::defects_digest(env.src, &env.db);
    assert!(source.starts_with("6000 "), "{source}");

    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "2|6000"
    );

    // Only the two window directories, named <db>^<schema>^<table>^<window id>.
    let expected_dirs: Vec<String> = WINDOWS.iter().map(|w| format!("{}^eda^defects^{w}", env.db)).collect();
    assert_eq!(names_in(&mount), expected_dirs);
    for window in WINDOWS {
        let dir = window_dir(&env, &mount, window);
        let names = names_in(&dir);
        // part-00001.csv.gz … then manifest.json; no temporary file left.
        let parts: Vec<&String> = names.iter().filter(|n| n.starts_with("part-")).collect();
        assert!(parts.len() > 1, "split_bytes = 65536 should give several files: {names:?}");
        let expected: Vec<String> = std::iter::once("manifest.json".to_string())
            .chain((1..=parts.len()).map(|i| format!("part-{i:05}.csv.gz")))
            .collect();
        assert_eq!(names, expected);

        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let (start, end) = window.split_once('^').unwrap();
        let [start, end] = [start, end].map(|t| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
        });
        let rows: u64 = env
            .src_psql(&format!("SELECT count(*) FROM eda.defects WHERE evt_ts >= '{start}' AND evt_ts < '{end}'"))
            .parse()
            .unwrap();
        assert_eq!(rows, 3000);
        assert_eq!(manifest["rows"], rows, "{manifest}");
        assert_eq!(manifest["window"], window);
        assert_eq!(manifest["table"], "eda.defects");
        assert_eq!(manifest["database"], env.db.as_str());
        assert_eq!(manifest["format"], "csv");
        assert_eq!(manifest["columns"], serde_json::json!(COLUMNS));

        // Each file decodes; sizes and totals match; CSV files end at a row end.
        let mut all = Vec::new();
        let mut compressed_total = 0;
        let files = manifest["files"].as_array().unwrap();
        assert_eq!(files.len(), parts.len());
        for (entry, name) in files.iter().zip(&parts) {
            assert_eq!(entry["name"], name.as_str());
            let path = dir.join(name);
            let on_disk = fs::metadata(&path).unwrap().len();
            assert_eq!(entry["compressed_bytes"], on_disk);
            compressed_total += on_disk;
            let sha = entry["sha256"].as_str().unwrap();
            assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
            let bytes = gunzip(&path);
            assert_eq!(entry["bytes"], bytes.len() as u64);
            assert!(bytes.last() == Some(&b'\n') && csv_rows(&bytes) > 0, "{name} does not end at a row end");
            all.extend(bytes);
        }
        assert_eq!(manifest["bytes"], all.len() as u64);
        assert_eq!(manifest["compressed_bytes"], compressed_total);
        assert_eq!(csv_rows(&all), rows, "COPY CSV: one newline outside quotes per row");
    }
}

#[test]
fn files_are_removed_after_load_and_a_rerun_is_harmless() {
    let env = TestEnv::new("shared_mount_rerun");
    let mount = setup(&env);
    write_config(&env, "");
    let source = support::defects_digest(env.src, &env.db);

    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > shared-mount > copy (csv)");
    assert_eq!(names_in(&mount), Vec::<String>::new(), "keep_files = false leaves no window directory");

    // A failed attempt's leftovers (no manifest, a junk part) must not matter to a re-run.
    let stale = window_dir(&env, &mount, WINDOWS[0]);
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("part-00001.csv.gz"), b"not gzip").unwrap();
    fs::write(stale.join(".part-00002.csv.gz.tmp"), b"half").unwrap();

    // Forget the cursor: the same windows run again.
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM (SELECT id FROM eda.defects GROUP BY id HAVING count(*) > 1) d"),
        "0"
    );
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), count(*) FILTER (WHERE attempt = 2) FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "4|2"
    );
    assert_eq!(names_in(&mount), Vec::<String>::new());
}

/// Merge through CSV files: the copy sink numbers each CSV row (a newline inside quotes is not
/// a row end) and a re-run with changed rows updates them, with no duplicate keys.
#[test]
fn merge_through_csv_files_updates_changed_rows() {
    let env = TestEnv::new("shared_mount_merge");
    setup(&env);
    write_config(&env, "");
    let text = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    env.write_config(
        &text
            .replace("mode = \"replace\"", "mode = \"merge\"")
            .replace("condition_column = \"evt_ts\"", "condition_column = \"evt_ts\"\nkey = [\"id\"]"),
    );
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > shared-mount > copy (csv)");

    env.src_psql("UPDATE eda.defects SET glass = E'merged \"' || id || E'\"\\n,x' WHERE id % 3 = 0");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM (SELECT id FROM eda.defects GROUP BY id HAVING count(*) > 1) d"),
        "0"
    );
}

/// `TestEnv::command` run through `setpriv` as `uid:gid`, without supplementary groups.
fn command_as(env: &TestEnv, uid: u32, gid: u32, args: &[&str]) -> Command {
    let inner = env.command(args);
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}")).arg("--clear-groups").arg("--");
    cmd.arg(inner.get_program()).args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(inner.get_current_dir().unwrap()).stdin(Stdio::null());
    cmd
}

fn assert_nothing_moved(env: &TestEnv, mount: &Path) {
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows were loaded");
    assert_eq!(state_rows(env, "cursors"), 0, "the cursor moved");
    assert_eq!(names_in(mount), Vec::<String>::new(), "files were written");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// The seed's Permission denied story: the directory belongs to a uid that is not ours. Run as a
/// non-root user (root ignores permission bits): the test, as root, hands the directory to
/// 4242:4242 and runs gptransfer as nobody (65534:65534). Exit 2: the transport is built, and
/// the mount checked, before the run touches any server, so nothing moves.
#[test]
fn mount_owned_by_another_uid_is_refused_naming_both_uids() {
    let env = TestEnv::new("shared_mount_foreign_owner");
    let mount = setup(&env);
    write_config(&env, "");
    if !is_root() {
        // Without root the test cannot chown nor drop privileges: a read-only directory of our
        // own still shows the refusal (the full scenario runs as root in CI).
        fs::set_permissions(&mount, fs::Permissions::from_mode(0o555)).unwrap();
        let out = env.run(&["run"]);
        out.assert_code(2);
        assert!(out.stderr.contains("not writable by uid"), "{}", out.render());
        assert_nothing_moved(&env, &mount);
        return;
    }
    // nobody must read the config and the test directory; the mount is 4242's, mode 0755.
    fs::set_permissions(env.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(env.dir().join("gptransfer.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&mount, Some(4242), Some(4242)).unwrap();

    let out = env.spawn_command(command_as(&env, 65534, 65534, &["run"])).wait();
    out.assert_code(2);
    for words in [
        "not writable by uid 65534 (gid 65534), which gptransfer runs as",
        "owned by uid 4242, gid 4242, mode 0755",
        "the same user name can have different uids",
    ] {
        assert!(out.stderr.contains(words), "missing {words:?}\n{}", out.render());
    }
    assert_nothing_moved(&env, &mount);
    cli_snapshot!(out);
}

/// The loading side runs as another uid (`sink_uid`/`sink_gid`) that cannot enter the mount:
/// refused before any data moves, naming its ids, ours and the owner's.
#[test]
fn mount_the_sink_uid_cannot_read_is_refused() {
    let env = TestEnv::new("shared_mount_sink_unreadable");
    let mount = setup(&env);
    write_config(&env, ", sink_uid = 4242, sink_gid = 4242");
    fs::set_permissions(&mount, fs::Permissions::from_mode(0o700)).unwrap();
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("not readable (rx) by uid 4242 (gid 4242), which the sink loads as"),
        "{}",
        out.render()
    );
    assert_nothing_moved(&env, &mount);
    if is_root() {
        cli_snapshot!(out);
    }
    // `config check` builds the chain, so it checks the mount the same way.
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    assert!(check.stderr.contains("not readable (rx) by uid 4242 (gid 4242)"), "{}", check.render());
}

/// Issue 10 item 14: shared-mount file I/O had no stall limit. A hard NFS mount whose server is
/// gone (here a FUSE directory that hangs every operation, `support::stallfs`) blocked the
/// window's writer thread for ever, and with it the run, every table after it and the daemon;
/// `config check` hung on the mount check. Now one operation longer than `stall_timeout` fails
/// the window (or the check), saying the mount may be hung, and the other tables go on.
#[test]
fn a_hung_mount_fails_its_window_and_the_other_tables_go_on() {
    let env = TestEnv::new("shared_mount_hung");
    setup(&env);
    env.src_psql("CREATE TABLE eda.plain AS SELECT * FROM eda.defects");
    env.dst_psql("CREATE TABLE eda.plain (LIKE eda.defects)");
    let stallfs = support::stallfs::StallFs::mount(env.dir());
    let config = |mount_options: &str| {
        env.write_config(&format!(
            r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
transport = {{ plugin = "shared-mount", root = "{mnt}"{mount_options} }}

[[jobs.j.tables]]
table = "eda.plain"
condition_column = "evt_ts"
"#,
            mnt = stallfs.mountpoint.display()
        ))
    };
    config(", stall_timeout = \"3s\"");
    env.run(&["config", "check"]).assert_success();

    // The window directories hang; the mount's root still answers (so the chain builds).
    stallfs.hang("^eda^defects^");
    let running = env.spawn(&["run"]);
    // The run reports at once; its process can only end once the blocked thread returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let failed = "SELECT count(*) FROM gptransfer.history WHERE table_name = 'eda.defects' AND status = 'failed'";
    while env.dst.try_psql(&env.dst_db, failed).unwrap_or_default() != "1" {
        assert!(std::time::Instant::now() < deadline, "the window never failed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The other table was not held up.
    while env.dst_psql("SELECT count(*) FROM eda.plain") != "6000" {
        assert!(std::time::Instant::now() < deadline, "eda.plain was held up by the hung mount");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stallfs.release();
    let out = running.wait();
    out.assert_code(1);
    assert!(out.stderr.contains("no answer from") && out.stderr.contains("for 3s while"), "{}", out.render());
    assert!(out.stderr.contains("is the mount hung"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");

    // A mount whose root hangs fails `config check` (exit 2) instead of hanging it.
    stallfs.hang("");
    let running = env.spawn(&["config", "check"]);
    std::thread::sleep(std::time::Duration::from_secs(6));
    stallfs.release();
    let out = running.wait();
    out.assert_code(2);
    assert!(out.stderr.contains("while checking it (stall_timeout)"), "{}", out.render());

    // Mount back: the window loads byte-exact.
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
}

/// Issue 10 item 13: every window directory was 0755 and every file 0644, so all users of the
/// mount could read the window's rows. Now a window is open to the sink and no one else: the
/// same user → 0700/0600; a sink of another uid (`sink_uid`/`sink_gid`) → 0750/0640 with the
/// sink's group, when gptransfer may give it (it is in that group, or root). A sink that
/// shares no group with gptransfer is warned about at build: only then must files be readable
/// by all.
#[test]
fn window_files_are_open_to_the_sink_only() {
    let env = TestEnv::new("shared_mount_private_windows");
    let mount = setup(&env);
    let modes = |path: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).unwrap();
        (m.mode() & 0o7777, m.gid())
    };
    let check_window = |dir_mode: u32, file_mode: u32, gid: u32| {
        for window in WINDOWS {
            let dir = window_dir(&env, &mount, window);
            assert_eq!(modes(&dir), (dir_mode, gid), "{}", dir.display());
            for name in names_in(&dir) {
                assert_eq!(modes(&dir.join(&name)), (file_mode, gid), "{name}");
            }
        }
    };
    let my_gid = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(env.dir().join("gptransfer.toml")).map(|m| m.gid()).unwrap_or(0)
    };
    write_config(&env, ", keep_files = true");
    let out = env.run(&["run"]);
    out.assert_success();
    check_window(0o700, 0o600, my_gid);
    if !is_root() {
        return;
    }
    // A sink of another uid and group: as root, gptransfer gives the window that group.
    env.dst_psql("TRUNCATE eda.defects; DELETE FROM gptransfer.cursors");
    write_config(&env, ", keep_files = true, sink_uid = 65534, sink_gid = 65534");
    let out = env.run(&["run"]);
    out.assert_success();
    check_window(0o750, 0o640, 65534);
    assert!(!out.stderr.contains("readable by all users"), "{}", out.render());
    // The sink's uid reads the files; a third user does not.
    let part = window_dir(&env, &mount, WINDOWS[0]).join("part-00001.csv.gz");
    fs::set_permissions(env.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let read_as = |uid: u32, gid: u32| {
        Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
            .args(["head", "-c", "1"])
            .arg(&part)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(read_as(65534, 65534), "the sink cannot read {}", part.display());
    assert!(!read_as(4242, 4242), "another user can read {}", part.display());
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
}
