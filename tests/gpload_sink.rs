//! The `gpload` sink (issue 4, item 4), run locally against the gpload stand-in in
//! `tests/fixtures/gpload-standin/gpload` (real gpload cannot be installed here; the stand-in
//! plays its documented control keys, merge/update/insert semantics and summary on PostgreSQL).
//! Windows land byte-exact in merge mode and a re-run updates instead of duplicating; replace
//! mode's window delete shares gpload's transaction; a gpload failure fails the window in
//! gpload's words with the target unchanged; column names gpload cannot merge are refused at
//! `config check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use support::TestEnv;

/// `glass` is varchar on the target: the engine moves COPY text, which gpload reads.
const TARGET_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass varchar(200), qty numeric(12,3), payload bytea);
"#;

/// The stand-in as the "ETL host" runs it over SSH: a wrapper that restores this PATH, since
/// the remote login shell starts with its own.
fn etl_gpload(env: &TestEnv) -> PathBuf {
    let wrapper = env.write_file(
        "etl/gpload",
        &format!(
            "#!/bin/sh\nPATH='{path}'; export PATH\nexec {standin} \"$@\"\n",
            path = std::env::var("PATH").unwrap(),
            standin = standin().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// A gp4-flavoured source, the target, and job `j`: two 3-hour windows. Tables follow.
const GP4_JOB: &str = r#"[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"
flavor = "gp4"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h""#;

fn standin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpload-standin/gpload")
}

/// Two 3-hour windows of `eda.defects` through `stream` into the `gpload` sink.
fn write_config(env: &TestEnv, mode: &str, sink_options: &str, program: &str) {
    env.write_config(&format!(
        r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
mode = "{mode}"
transport = {{ plugin = "stream" }}
sink = {{ plugin = "gpload", gpload = "{program}", work_dir = "{{TEMP_DIR}}/gpload"{sink_options} }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
"#
    ));
}

fn setup(env: &TestEnv) {
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(TARGET_SQL);
}

fn duplicate_keys(env: &TestEnv) -> String {
    env.dst_psql("SELECT count(*) FROM (SELECT id FROM eda.defects GROUP BY id HAVING count(*) > 1) d")
}

#[test]
fn merge_lands_byte_exact_and_a_rerun_updates_changed_rows() {
    let env = TestEnv::new("gpload_merge");
    setup(&env);
    // A wrapper notes how gpload was called: its arguments, whether PGPASSWORD is set, and the
    // TLS settings it got.
    let wrapper = env.write_file(
        "gpload-recording",
        &format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" >> \"{{TEMP_DIR}}/argv.txt\"\n\
             [ -n \"$PGPASSWORD\" ] && echo set >> \"{{TEMP_DIR}}/pgpassword.txt\"\n\
             echo \"$PGSSLMODE $PGSSLROOTCERT\" >> \"{{TEMP_DIR}}/tls.txt\"\n\
             exec {} \"$@\"\n",
            standin().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let ca = env.dst.socket_dir.join("root.crt");
    write_config(
        &env,
        "merge",
        &format!(", keep_files = true, sslrootcert = \"{}\"", ca.display()),
        wrapper.to_str().unwrap(),
    );
    let source = support::defects_digest(env.src, &env.db);
    assert!(source.starts_with("600 "), "{source}");

    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "2|600"
    );
    // The control file says what gpload was told, and never the password.
    let control = env.dir().join(format!("gpload/{}^eda^defects^20240310000000^20240310030000.yml", env.db));
    let yaml = fs::read_to_string(&control).unwrap();
    for words in ["VERSION: 1.0.0.1", "- MODE: merge", "- MATCH_COLUMNS:\n           - \"id\"", "- FORMAT: csv"] {
        assert!(yaml.contains(words), "missing {words:?} in\n{yaml}");
    }
    assert!(!yaml.contains(&env.dst.password), "the password is in the control file");
    // gpload's summary lines are in history, beside the row count.
    assert_eq!(
        env.dst_psql(
            "SELECT sum(rows_inserted), sum(rows_updated), sum(format_errors) FROM gptransfer.history \
             WHERE status = 'succeeded'"
        ),
        "600|0|0"
    );
    // `gpload -f <control>` per window; the password only in its environment.
    let argv = fs::read_to_string(env.dir().join("argv.txt")).unwrap();
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines.len(), 4, "{argv}");
    assert_eq!(lines[0], "-f");
    assert_eq!(lines[1], control.to_str().unwrap());
    assert!(!argv.contains(&env.dst.password), "the password is in gpload's arguments");
    assert_eq!(fs::read_to_string(env.dir().join("pgpassword.txt")).unwrap(), "set\nset\n");
    // gpload secures its session as ours are (sslmode prefer by default), with the sink's CA.
    assert_eq!(
        fs::read_to_string(env.dir().join("tls.txt")).unwrap(),
        format!("prefer {0}\nprefer {0}\n", ca.display())
    );

    // Changed source rows are updated, not duplicated.
    env.src_psql("UPDATE eda.defects SET glass = 'changed ' || id, qty = qty + 1 WHERE id % 5 = 0");
    let changed = support::defects_digest(env.src, &env.db);
    assert_ne!(changed, source);
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), changed);
    assert_eq!(duplicate_keys(&env), "0");
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "4|1200"
    );
    // The second run updated every row it delivered and inserted none.
    assert_eq!(
        env.dst_psql(
            "SELECT sum(rows_inserted), sum(rows_updated) FROM (SELECT * FROM gptransfer.history \
             WHERE status = 'succeeded' ORDER BY id DESC LIMIT 2) h"
        ),
        "0|600"
    );
    let history = env.run(&["history"]);
    history.assert_success();
    assert!(history.stdout.contains("INS/UPD/ERR") && history.stdout.contains("0/300/0"), "{}", history.render());
}

#[test]
fn replace_window_delete_shares_the_gpload_transaction() {
    let env = TestEnv::new("gpload_replace");
    setup(&env);
    let program = standin();
    write_config(&env, "replace", "", program.to_str().unwrap());
    let before = support::defects_digest(env.src, &env.db);
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), before);

    // The source changes, and this time gpload fails after its BEFORE delete and the insert.
    env.src_psql("UPDATE eda.defects SET glass = 'changed' WHERE id <= 10");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    let mut cmd = env.command(&["run"]);
    cmd.env("GPLOAD_STANDIN_EXIT", "2");
    let out = env.spawn_command(cmd).wait();
    out.assert_code(1);
    assert!(out.stderr.contains("gpload failed (exit 2): error when connecting to gpfdist"), "{}", out.render());
    // The window's old rows are all still there: the delete was rolled back with the load.
    assert_eq!(support::defects_digest(env.dst, &env.db), before);

    // Without the failure, the re-run replaces the windows.
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(duplicate_keys(&env), "0");
}

#[test]
fn a_format_error_fails_the_window_in_gploads_words_target_unchanged() {
    let env = TestEnv::new("gpload_format_error");
    setup(&env);
    // gpload sees one row it cannot parse: the wrapper appends it to the data file.
    let wrapper = env.write_file(
        "gpload-corrupting",
        &format!(
            "#!/bin/sh\n\
             data=$(sed -n 's/^ *- \"\\(.*\\.csv\\)\"$/\\1/p' \"$2\")\n\
             printf 'a row without commas\\n' >> \"$data\"\n\
             exec {} \"$@\"\n",
            standin().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    write_config(&env, "merge", "", wrapper.to_str().unwrap());
    let out = env.run(&["run"]);
    out.assert_code(1);
    assert!(out.stderr.contains("gpload failed (exit 2): extra data after last expected column"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows were loaded");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE status = 'succeeded'"), "0");
    cli_snapshot!(out);
}

#[test]
fn capitals_and_reserved_words_in_merge_columns_are_refused_at_config_check() {
    let env = TestEnv::new("gpload_bad_names");
    setup(&env);
    let program = standin();
    write_config(&env, "merge", ", match_columns = [\"GlassId\"]", program.to_str().unwrap());
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"GlassId\" has capital letters"), "{}", out.render());
    cli_snapshot!(out.with_filter(&support::regex_escape(program.to_str().unwrap()), "[GPLOAD]"));

    write_config(&env, "merge", ", update_columns = [\"order\"]", program.to_str().unwrap());
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"order\" is a reserved word"), "{}", out.render());
}

/// A key that only the table names (no `match_columns`): the sink cannot see it at `config
/// check`, so it refuses before gpload runs, and nothing is loaded.
#[test]
fn a_key_gpload_cannot_merge_on_is_refused_before_any_data_moves() {
    let env = TestEnv::new("gpload_bad_key");
    let ddl = r#"CREATE TABLE public.flags ("GlassId" bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text);"#;
    env.src_psql(ddl);
    env.src_psql("INSERT INTO public.flags VALUES (1, '2024-03-10 01:00:00', 'a')");
    env.dst_psql(ddl);
    let program = standin();
    write_config(&env, "merge", "", program.to_str().unwrap());
    let text = fs::read_to_string(env.dir().join("gptransfer.toml"))
        .unwrap()
        .replace("table = \"eda.defects\"", "table = \"public.flags\"")
        .replace("key = [\"id\"]", "key = [\"GlassId\"]");
    env.write_config(&text);
    // A key taken from the table (not the sink's options) is checked with the matched columns:
    // `config check` and `run` refuse it before anything moves.
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    assert!(check.stderr.contains("column \"GlassId\" has capital letters"), "{}", check.render());
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"GlassId\" has capital letters"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0");
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.flags"), "0");
    assert!(!env.dir().join("gpload").exists(), "files were written for a refused window");
}

/// Under `error_limit` gpload skips a bad row, commits the others and exits 1 with
/// `data formatting errors = 1`: the window still fails, in gpload's words.
#[test]
fn a_format_error_under_error_limit_still_fails_the_window() {
    let env = TestEnv::new("gpload_error_limit");
    setup(&env);
    let wrapper = env.write_file(
        "gpload-corrupting",
        &format!(
            "#!/bin/sh\n\
             data=$(sed -n 's/^ *- \"\\(.*\\.csv\\)\"$/\\1/p' \"$2\")\n\
             printf 'a row without commas\\n' >> \"$data\"\n\
             exec {} \"$@\"\n",
            standin().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    write_config(&env, "merge", ", error_limit = 5, log_errors = true", wrapper.to_str().unwrap());
    let out = env.run(&["run"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("gpload reported 1 data formatting error(s): 1 bad row; Please use following query"),
        "{}",
        out.render()
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE status = 'succeeded'"), "0");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0", "the cursor moved");
    // The failed attempt records what gpload said: the rows it committed and the bad one.
    assert_eq!(
        env.dst_psql(
            "SELECT rows_inserted, rows_updated, format_errors FROM gptransfer.history WHERE status = 'failed'"
        ),
        "300|0|1"
    );
}

/// gpload on the "ETL host" over SSH (a real sshd on 127.0.0.1 from `support::sshd`): the data
/// and control files go over SFTP, `gpload -f` runs through the remote shell, the password
/// reaches it on the channel's stdin (never in argv, never in a file), and merge lands
/// byte-exact. Then a gpload that the remote host cannot find: the window fails with the words
/// for exit 127 and nothing is loaded; and `config check` refuses a missing program (exit 2).
#[test]
fn gpload_runs_over_ssh_on_the_etl_host() {
    let env = TestEnv::new("gpload_ssh");
    setup(&env);
    let sshd = support::sshd::Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    // The remote "gpload": the stand-in, under sshd's clean environment given our PATH; it
    // notes its arguments and whether PGPASSWORD is set.
    let wrapper = env.write_file(
        "etl/gpload",
        &format!(
            "#!/bin/sh\n\
             PATH='{path}'; export PATH\n\
             printf '%s\\n' \"$@\" >> \"{{TEMP_DIR}}/argv.txt\"\n\
             [ -n \"$PGPASSWORD\" ] && echo set >> \"{{TEMP_DIR}}/pgpassword.txt\"\n\
             exec {standin} \"$@\"\n",
            path = std::env::var("PATH").unwrap(),
            standin = standin().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let ssh_options = |program: &str| {
        format!(
            ", host = \"127.0.0.1\", ssh_port = {port}, user = \"{user}\", key_file = \"{key}\", \
             known_hosts = \"{{TEMP_DIR}}/known_hosts\", gpload = \"{program}\"",
            port = sshd.port,
            user = sshd.user,
            key = sshd.client_key.display()
        )
    };
    // `gpload` appears twice in the sink table otherwise: write_config's one is replaced.
    let config_with = |program: &str| {
        write_config(&env, "merge", &ssh_options(program), "PLACEHOLDER");
        let text =
            fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap().replace("gpload = \"PLACEHOLDER\", ", "");
        env.write_config(&text);
    };
    config_with(wrapper.to_str().unwrap());
    let source = support::defects_digest(env.src, &env.db);

    let out = env.run(&["config", "check"]);
    out.assert_success();
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(duplicate_keys(&env), "0");
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "2|600"
    );
    let argv = fs::read_to_string(env.dir().join("argv.txt")).unwrap();
    let control = env.dir().join(format!("gpload/{}^eda^defects^20240310000000^20240310030000.yml", env.db));
    assert_eq!(argv.lines().take(2).collect::<Vec<_>>(), ["-f", control.to_str().unwrap()], "{argv}");
    assert_eq!(fs::read_to_string(env.dir().join("pgpassword.txt")).unwrap(), "set\nset\n");
    assert!(!argv.contains(&env.dst.password), "password in gpload's arguments: {argv}");
    // Files removed after the load (keep_files = false), and no file anywhere holds the password.
    let left: Vec<_> = fs::read_dir(env.dir().join("gpload")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                files(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut all = Vec::new();
    files(env.dir(), &mut all);
    for f in all {
        let bytes = fs::read(&f).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(&env.dst.password), "password in {}", f.display());
    }

    // Changed rows merge; no duplicates.
    env.src_psql("UPDATE eda.defects SET glass = 'changed ' || id WHERE id % 5 = 0");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(duplicate_keys(&env), "0");

    // The program exists but what it runs does not: the remote shell exits 127.
    env.dst_psql("TRUNCATE eda.defects; DELETE FROM gptransfer.cursors; DELETE FROM gptransfer.history");
    let broken = env.write_file("etl/gpload-broken", "#!/bin/sh\nexec /nonexistent/bin/gpload \"$@\"\n");
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
    config_with(broken.to_str().unwrap());
    let out = env.run(&["run"]);
    out.assert_code(1);
    assert!(out.stderr.contains("exit 127: command not found on the remote host"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");

    // A program missing on the ETL host is refused before anything runs.
    config_with("/nonexistent/bin/gpload");
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("\"/nonexistent/bin/gpload\": exit 127: command not found"), "{}", out.render());

    // An ETL host whose key is not in known_hosts is refused at `config check` and by `run`,
    // saying how to trust it; nothing is loaded.
    config_with(wrapper.to_str().unwrap());
    fs::write(env.dir().join("known_hosts"), "").unwrap();
    for args in [&["config", "check"][..], &["run"]] {
        let out = env.run(args);
        out.assert_code(2);
        assert!(out.stderr.contains("host key refused"), "{}", out.render());
        assert!(out.stderr.contains("ssh-keyscan -p"), "{}", out.render());
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");
}

/// The `gp4-legacy` preset: one line of TOML gives a V1 table gp4 source → gzip files on the
/// shared mount → gpload merge, and it moves byte-exact (gpload here runs locally, the stand-in).
#[test]
fn the_gp4_legacy_preset_moves_a_v1_table_with_one_line() {
    let env = TestEnv::new("gpload_gp4_legacy");
    setup(&env);
    fs::create_dir(env.dir().join("mount")).unwrap();
    env.write_config(&format!(
        r#"
{GP4_JOB}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
preset = {{ name = "gp4-legacy", root = "{{TEMP_DIR}}/mount", gpload = "{}" }}
"#,
        standin().display()
    ));
    let plan = env.run(&["plan"]);
    plan.assert_success();
    assert!(plan.stdout.contains("gp4 > shared-mount > gpload"), "{}", plan.render());
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), sum(rows_written), bool_and(chain = 'gp4 > shared-mount > gpload (csv)') \
             FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "2|600|t"
    );
    // A re-run with changed rows merges them: no duplicate keys.
    env.src_psql("UPDATE eda.defects SET glass = 'changed ' || id WHERE id % 3 = 0");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(duplicate_keys(&env), "0");
}

/// Issue 4's whole production chain: gp4 source → gzip files on the shared mount (kept, so the
/// names can be checked) → gpload merge run over SSH on the "ETL host" (sshd on 127.0.0.1, the
/// stand-in as gpload) → target, byte-exact; a re-run with changed rows merges them.
#[test]
fn gp4_to_shared_mount_to_gpload_over_ssh_is_byte_exact() {
    let env = TestEnv::new("gpload_full_chain");
    setup(&env);
    fs::create_dir(env.dir().join("mount")).unwrap();
    // The ETL host mounts the share elsewhere: gpload's FILE must use its path.
    std::os::unix::fs::symlink(env.dir().join("mount"), env.dir().join("etl-mount")).unwrap();
    let sshd = support::sshd::Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let wrapper = etl_gpload(&env);
    env.write_config(&format!(
        r#"
{GP4_JOB}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
mode = "merge"
source = {{ plugin = "gp4" }}
transport = {{ plugin = "shared-mount", root = "{{TEMP_DIR}}/mount", keep_files = true }}
sink = {{ plugin = "gpload", gpload = "{program}", work_dir = "{{TEMP_DIR}}/gpload", keep_files = true, mount_path = "{{TEMP_DIR}}/etl-mount", host = "127.0.0.1", ssh_port = {port}, user = "{user}", key_file = "{key}", known_hosts = "{{TEMP_DIR}}/known_hosts" }}
"#,
        program = wrapper.display(),
        port = sshd.port,
        user = sshd.user,
        key = sshd.client_key.display()
    ));
    env.run(&["config", "check"]).assert_success();
    let out = env.run(&["run"]);
    out.assert_success();
    assert_eq!(
        support::defects_digest(env.dst, &env.db),
        support::defects_digest(env.src, &env.db),
        "{}",
        out.render()
    );
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), sum(rows_written), bool_and(chain = 'gp4 > shared-mount > gpload (csv)') \
             FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "2|600|t"
    );
    // V1's layout with the slash fixed: <root>/<db>^<schema>^<table>^<window id>/, gzip parts
    // and the manifest.
    for window in ["20240310000000^20240310030000", "20240310030000^20240310060000"] {
        let dir = env.dir().join("mount").join(format!("{}^eda^defects^{window}", env.db));
        assert!(dir.join("manifest.json").is_file(), "{}", dir.display());
        assert!(dir.join("part-00001.csv.gz").is_file(), "{}", dir.display());
        let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"rows\": 300") || manifest.contains("\"rows\":300"), "{manifest}");
        assert!(manifest.contains("\"format\": \"csv\""), "{manifest}");
        // gpload read the gzip CSV parts in place, through the ETL host's mount path: no
        // second copy of the window was written for it.
        let base = format!("{}^eda^defects^{window}", env.db);
        let yaml = fs::read_to_string(env.dir().join("gpload").join(format!("{base}.yml"))).unwrap();
        let part = env.dir().join("etl-mount").join(&base).join("part-00001.csv.gz");
        assert!(yaml.contains(&format!("- \"{}\"", part.display())), "{yaml}");
        assert!(yaml.contains("- FORMAT: csv"), "{yaml}");
        assert!(!env.dir().join("gpload").join(format!("{base}.csv")).exists(), "a data file was written");
    }
    assert_eq!(
        env.dst_psql(
            "SELECT sum(rows_inserted), sum(rows_updated), sum(format_errors) FROM gptransfer.history \
             WHERE status = 'succeeded'"
        ),
        "600|0|0"
    );
    // Changed source rows are merged on a re-run: updated, no duplicate keys.
    env.src_psql("UPDATE eda.defects SET glass = 'changed ' || id WHERE id % 4 = 0");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(duplicate_keys(&env), "0");
}

/// Hosts without a shared mount: the `ssh` transport writes the window's parts on the ETL host
/// over SFTP, and gpload, run on that same host over SSH, loads them in place — its `FILE`
/// lists the remote parts, nothing comes back over SFTP and no second data file is written.
#[test]
fn ssh_transport_files_are_loaded_in_place_by_gpload_on_that_host() {
    let env = TestEnv::new("gpload_ssh_in_place");
    setup(&env);
    fs::create_dir(env.dir().join("remote")).unwrap();
    let sshd = support::sshd::Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let wrapper = etl_gpload(&env);
    let login = format!(
        "host = \"127.0.0.1\", user = \"{user}\", key_file = \"{key}\", known_hosts = \"{{TEMP_DIR}}/known_hosts\"",
        user = sshd.user,
        key = sshd.client_key.display()
    );
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
key = ["id"]
mode = "merge"
transport = {{ plugin = "ssh", {login}, port = {port}, root = "{{TEMP_DIR}}/remote", keep_files = true }}
sink = {{ plugin = "gpload", gpload = "{program}", work_dir = "{{TEMP_DIR}}/gpload", keep_files = true, {login}, ssh_port = {port} }}
"#,
        program = wrapper.display(),
        port = sshd.port,
    ));
    let out = env.run(&["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), sum(rows_written), sum(rows_inserted) FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "2|600|600"
    );
    for window in ["20240310000000^20240310030000", "20240310030000^20240310060000"] {
        let base = format!("{}^eda^defects^{window}", env.db);
        let yaml = fs::read_to_string(env.dir().join("gpload").join(format!("{base}.yml"))).unwrap();
        let part = env.dir().join("remote").join(&base).join("part-00001.csv.gz");
        assert!(yaml.contains(&format!("- \"{}\"", part.display())), "{yaml}");
        assert!(!env.dir().join("gpload").join(format!("{base}.csv")).exists(), "a data file was written");
    }
}
