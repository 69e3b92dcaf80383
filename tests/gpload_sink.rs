//! The `gpload` sink and the V1 chain with the REAL gpload of Greenplum 6 (`support::gp6_home()`,
//! its gpfdist and Python 2.7) into the run's real GP6 cluster (a master and two segments),
//! locally and on an "ETL host" over SSH (a real sshd on 127.0.0.1, `support::sshd`); gpload's
//! gpfdist listens on 127.0.0.1, which the segments reach.
//!
//! The V1 chain — `gp4` source on a real PostgreSQL 8.2 → gzip CSV on the shared mount → gpload
//! merge into GP6 — lands byte-exact with INS/UPD/ERR in history; a key twice in one batch keeps
//! its last row, as the `copy` sink does, counted truly (rows read = written + folded); a 40 KB
//! row loads; a too-narrow target column fails the window and leaves the target unchanged.
//! The same chain and the `gp4-legacy` preset run from the real GP4 cluster into the real GP7
//! cluster with GP7's own gpload (Python 3).
//! Every run here has no GPHOME in its environment: the sink finds the install from the program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use support::sshd::Sshd;
use support::{CmdOutput, Pg, Server, TestEnv};

/// Greenplum 6's own gpload.
fn gpload() -> PathBuf {
    support::gp6_home().join("bin/gpload")
}

/// Greenplum 7's own gpload (Python 3).
fn gp7_gpload() -> PathBuf {
    support::gp7_home().join("bin/gpload")
}

/// Runs the binary with no Greenplum variables in its environment: the sink must find them.
fn run(env: &TestEnv, args: &[&str]) -> CmdOutput {
    let mut cmd = env.command(args);
    for var in ["GPHOME", "PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH"] {
        cmd.env_remove(var);
    }
    env.spawn_command(cmd).wait()
}

/// Filters for what differs between runs in gpload's and Greenplum's messages.
fn gp_filters(out: CmdOutput) -> CmdOutput {
    out.with_filter(r"\(seg\d+ slice\d+ [^)]*\)", "(seg[N] [SEGMENT])")
        .with_filter(r"ext_gpload_[0-9a-f_]+", "ext_gpload_[ID]")
        .with_filter(r"(gpfdist://[^:/ ]+):\d+", "$1:[GPFDIST_PORT]")
        .with_filter(r"gpt_gpload_[0-9a-f]{16}", "gpt_gpload_[HASH]")
        .with_filter(&support::regex_escape(&support::gp6_home().display().to_string()), "[GP6_HOME]")
}

/// A digest of `eda.defects`-shaped rows that reads the same on 8.2 and GP6 (text by its md5,
/// timestamps to the µs, bytea as hex).
fn digest(pg: &Pg, db: &str, table: &str, columns: &str) -> String {
    pg.psql(
        db,
        &format!(
            "SELECT count(*) || ' ' || md5(array_to_string(ARRAY(SELECT {columns} FROM {table} ORDER BY id), E'\\n')) \
             FROM {table}"
        ),
    )
}

const DEFECTS: &str = "id::text || '|' || to_char(evt_ts, 'YYYY-MM-DD HH24:MI:SS.US') || '|' || \
                       coalesce(md5(glass), '-') || '|' || coalesce(qty::text, '-') || '|' || \
                       coalesce(encode(payload, 'hex'), '-')";
const SIMPLE: &str = "id::text || '|' || to_char(evt_ts, 'YYYY-MM-DD HH24:MI:SS.US') || '|' || coalesce(md5(v), '-')";

fn defects_digest(pg: &Pg, db: &str) -> String {
    digest(pg, db, "eda.defects", DEFECTS)
}

/// The V1 tables on the 8.2 source: `eda.defects` (600 rows, 2 windows of 3 h), `eda.dups`
/// (21 rows, key 7 twice: `first`, then later in the batch `last`), `eda.wide` (a 40 KB row)
/// and `eda.narrow` (a value too long for the target's column, in the first window).
const V1_SOURCE: &str = r#"
CREATE TABLE eda.dups (id bigint NOT NULL, evt_ts timestamp NOT NULL, v text);
INSERT INTO eda.dups SELECT i, timestamp '2024-03-10 00:00:00' + i * interval '1 minute', CASE WHEN i = 7 THEN 'first' ELSE 'r' || i END FROM generate_series(1, 20) AS i;
INSERT INTO eda.dups VALUES (7, '2024-03-10 01:00:00', 'last');
CREATE TABLE eda.wide (id bigint NOT NULL, evt_ts timestamp NOT NULL, v text);
INSERT INTO eda.wide VALUES (1, '2024-03-10 00:10:00', 'small');
INSERT INTO eda.wide VALUES (2, '2024-03-10 00:20:00', repeat('wide-', 8000));
INSERT INTO eda.wide VALUES (3, '2024-03-10 04:00:00', 'small too');
CREATE TABLE eda.narrow (id bigint NOT NULL, evt_ts timestamp NOT NULL, v text);
INSERT INTO eda.narrow VALUES (1, '2024-03-10 00:10:00', 'ok');
INSERT INTO eda.narrow VALUES (2, '2024-03-10 00:20:00', 'much too long for it');
"#;

const V1_TARGET: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass varchar, qty numeric(12,3), payload bytea) DISTRIBUTED BY (id);
CREATE TABLE eda.dups (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);
CREATE TABLE eda.dups_copy (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);
CREATE TABLE eda.wide (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text) DISTRIBUTED BY (id);
CREATE TABLE eda.narrow (id bigint, evt_ts timestamp NOT NULL, v varchar(5)) DISTRIBUTED RANDOMLY;
INSERT INTO eda.narrow VALUES (99, '2024-03-10 00:30:00', 'old');
"#;

/// The V1 chain's job: gp4 source → shared mount → gpload merge, with `sink_extra` options;
/// `eda.dups` a second time through the `copy` sink into `eda.dups_copy`, and `eda.narrow` in
/// replace mode.
fn v1_config(env: &TestEnv, sink_extra: &str) {
    env.write_config(&format!(
        r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"
flavor = "gp4"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
mode = "merge"
source = {{ plugin = "gp4" }}
transport = {{ plugin = "shared-mount", root = "{{TEMP_DIR}}/mount" }}
sink = {{ plugin = "gpload", work_dir = "{{TEMP_DIR}}/gpload", keep_files = true, local_hostname = ["127.0.0.1"]{sink_extra} }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]

[[jobs.j.tables]]
table = "eda.dups"
condition_column = "evt_ts"
key = ["id"]

[[jobs.j.tables]]
table = "eda.dups"
target_table = "eda.dups_copy"
condition_column = "evt_ts"
key = ["id"]
transport = "stream"
sink = "copy"

[[jobs.j.tables]]
table = "eda.wide"
condition_column = "evt_ts"
key = ["id"]

[[jobs.j.tables]]
table = "eda.narrow"
condition_column = "evt_ts"
mode = "replace"
lossy_columns = ["v"]
"#
    ));
}

/// Runs the V1 chain and checks everything the issue asks of it; returns the failed run.
fn v1_chain(env: &TestEnv) -> CmdOutput {
    let check = run(env, &["config", "check"]);
    check.assert_success();
    let out = run(env, &["run"]);
    // eda.narrow fails; every other table lands.
    out.assert_code(1);
    assert!(
        out.stderr.contains("1 key(s) of eda.dups came 2 times in the window (id=7): the last row of each was kept")
            && out.stderr.contains("1 row(s) of eda.dups_copy had a key that came again later in the window"),
        "{}",
        out.render()
    );
    let (src, dst) = (env.src, env.dst);

    // Byte-exact, INS/UPD/ERR in history.
    assert_eq!(defects_digest(dst, &env.dst_db), defects_digest(src, &env.db), "{}", out.render());
    let history = |table: &str, target: &str| {
        env.dst_psql(&format!(
            "SELECT count(*), sum(rows_read), sum(rows_written), sum(rows_inserted), sum(rows_updated), \
             sum(format_errors), sum(duplicates_folded) FROM gptransfer.history \
             WHERE status = 'succeeded' AND table_name = '{table}' AND target_table = '{target}'"
        ))
    };
    assert_eq!(history("eda.defects", "eda.defects"), "2|600|600|600|0|0|0");

    // Key 7 twice in one batch: the last row wins in both sinks, counted truly.
    for target in ["eda.dups", "eda.dups_copy"] {
        assert_eq!(env.dst_psql(&format!("SELECT count(*), count(DISTINCT id) FROM {target}")), "20|20");
        assert_eq!(env.dst_psql(&format!("SELECT v FROM {target} WHERE id = 7")), "last", "{target}");
    }
    assert_eq!(history("eda.dups", "eda.dups"), "2|21|20|20|0|0|1");
    assert_eq!(history("eda.dups", "eda.dups_copy"), "2|21|20||||1");

    // The 40 KB row loads: the shared mount measured it, gpfdist was told, and gpload read the
    // part in place.
    assert_eq!(env.dst_psql("SELECT id, length(v) FROM eda.wide ORDER BY id"), "1|5\n2|40000\n3|9");
    let base = format!("{}^eda^wide^20240310000000^20240310030000", env.dst_db);
    let yaml = fs::read_to_string(env.dir().join("gpload").join(format!("{base}.yml"))).unwrap();
    assert!(yaml.contains("- MAX_LINE_LENGTH: 65536") && yaml.contains("part-00001.csv.gz"), "{yaml}");
    assert_eq!(digest(dst, &env.dst_db, "eda.wide", SIMPLE), digest(src, &env.db, "eda.wide", SIMPLE));

    // The too-narrow column: the window failed, the target is as it was (the replace's delete
    // rolled back with it), the cursor did not move.
    assert_eq!(env.dst_psql("SELECT id, v FROM eda.narrow"), "99|old");
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'succeeded') \
             FROM gptransfer.history WHERE table_name = 'eda.narrow'"
        ),
        "1|0"
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors WHERE table_name = 'eda.narrow'"), "0");
    assert!(
        out.stderr.contains("value too long for type character varying(5)")
            && out.stderr.contains("target is unchanged"),
        "{}",
        out.render()
    );
    // No staging table is left behind.
    assert_eq!(env.dst_psql("SELECT count(*) FROM pg_catalog.pg_class WHERE relname LIKE 'gpt_gpload_%'"), "0");

    // A re-run with changed rows updates them: no duplicate keys, the updates counted.
    env.src_psql("UPDATE eda.defects SET glass = 'changed ' || id, qty = qty + 1 WHERE id % 5 = 0");
    env.dst_psql("DELETE FROM gptransfer.cursors WHERE table_name = 'eda.defects'");
    run(env, &["run", "--table", "eda.defects"]).assert_success();
    assert_eq!(defects_digest(dst, &env.dst_db), defects_digest(src, &env.db));
    assert_eq!(env.dst_psql("SELECT count(*), count(DISTINCT id) FROM eda.defects"), "600|600");
    assert_eq!(
        env.dst_psql(
            "SELECT sum(rows_inserted), sum(rows_updated) FROM (SELECT * FROM gptransfer.history \
             WHERE status = 'succeeded' AND table_name = 'eda.defects' ORDER BY id DESC LIMIT 2) h"
        ),
        "0|600"
    );
    let shown = run(env, &["history", "--table", "eda.defects"]);
    shown.assert_success();
    assert!(shown.stdout.contains("INS/UPD/ERR") && shown.stdout.contains("0/300/0"), "{}", shown.render());
    let folded = run(env, &["history", "--table", "eda.dups", "--output", "json"]);
    assert!(folded.stdout.contains("\"duplicates_folded\": 1"), "{}", folded.render());
    let folded = run(env, &["history", "--table", "eda.dups"]);
    assert!(folded.stdout.contains("FOLDED"), "{}", folded.render());
    out
}

fn v1_env(name: &str) -> TestEnv {
    v1_env_on(name, Server::Pg82, Server::Gp6)
}

fn v1_env_on(name: &str, src: Server, dst: Server) -> TestEnv {
    let env = TestEnv::on(name, src, dst);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.src_psql(V1_SOURCE);
    env.dst_psql(V1_TARGET);
    fs::create_dir(env.dir().join("mount")).unwrap();
    env
}

#[test]
fn the_v1_chain_with_real_gpload_locally() {
    let env = v1_env("gpload_v1_local");
    v1_config(&env, &format!(", gpload = \"{}\"", gpload().display()));
    let out = v1_chain(&env);
    let failed = run(&env, &["history", "--failed", "--errors"]);
    cli_snapshot!("narrow_column_history", gp_filters(failed));
    drop(out);
}

/// The V1 chain as it runs after a migration to Greenplum 7: a real GP4 cluster → the shared
/// mount → GP7's own gpload (Python 3) merging into the real GP7 cluster.
#[test]
fn the_v1_chain_from_gp4_into_gp7_with_gp7s_gpload() {
    let env = v1_env_on("gpload_v1_gp7", Server::Gp4, Server::Gp7);
    v1_config(&env, &format!(", gpload = \"{}\"", gp7_gpload().display()));
    v1_chain(&env);
}

#[test]
fn the_v1_chain_with_real_gpload_over_ssh() {
    let env = v1_env("gpload_v1_ssh");
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    // The ETL host mounts the share elsewhere: gpload's FILE uses its path.
    std::os::unix::fs::symlink(env.dir().join("mount"), env.dir().join("etl-mount")).unwrap();
    let login = format!(
        ", host = \"127.0.0.1\", ssh_port = {port}, user = \"{user}\", key_file = \"{key}\", \
         known_hosts = \"{{TEMP_DIR}}/known_hosts\", mount_path = \"{{TEMP_DIR}}/etl-mount\"",
        port = sshd.port,
        user = sshd.user,
        key = sshd.client_key.display()
    );
    v1_config(&env, &format!(", gpload = \"{}\"{login}", gpload().display()));
    let out = v1_chain(&env);
    assert!(!out.stderr.contains(&env.dst.password));

    // A gpload missing on the ETL host is refused before anything runs, in exit 127's words.
    v1_config(&env, &format!(", gpload = \"/nonexistent/bin/gpload\"{login}"));
    let check = run(&env, &["config", "check"]);
    check.assert_code(2);
    assert!(
        check.stderr.contains("\"/nonexistent/bin/gpload\" does not run on the ETL host: exit 127"),
        "{}",
        check.render()
    );
}

/// The password reaches gpload only in its environment (never argv, never the control file),
/// with the TLS settings of our sessions; `gphome` names the install of a gpload wrapper.
#[test]
fn gpload_gets_the_password_only_in_its_environment() {
    let env = TestEnv::on("gpload_password", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let wrapper = env.write_file(
        "bin/gpload-recording",
        &format!(
            "#!/bin/sh\n\
             [ \"$1\" = --version ] && exec {gpload} \"$@\"\n\
             printf '%s\\n' \"$@\" >> \"{{TEMP_DIR}}/argv.txt\"\n\
             [ -n \"$PGPASSWORD\" ] && echo set >> \"{{TEMP_DIR}}/pgpassword.txt\"\n\
             echo \"$PGSSLMODE $GPHOME\" >> \"{{TEMP_DIR}}/env.txt\"\n\
             exec {gpload} \"$@\"\n",
            gpload = gpload().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    env.write_config(&format!(
        r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
mode = "merge"
sink = {{ plugin = "gpload", gpload = "{wrapper}", gphome = "{home}", work_dir = "{{TEMP_DIR}}/gpload", keep_files = true, local_hostname = ["127.0.0.1"] }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
"#,
        wrapper = wrapper.display(),
        home = support::gp6_home().display()
    ));
    run(&env, &["run"]).assert_success();
    assert_eq!(
        support::defects_digest(env.dst, &env.dst_db),
        support::defects_digest(env.src, &env.db),
        "PostgreSQL 15 → GP6 through gpload"
    );
    let control = env.dir().join(format!("gpload/{}^eda^defects^20240310000000^20240310030000.yml", env.dst_db));
    let yaml = fs::read_to_string(&control).unwrap();
    for words in [
        "VERSION: 1.0.0.1",
        "- MODE: insert",
        "- FORMAT: csv",
        "- \"gpt_batch_seq\": \"bigint\"",
        "- TABLE: \"eda.gpt_gpload_",
    ] {
        assert!(yaml.contains(words), "missing {words:?} in\n{yaml}");
    }
    assert!(!yaml.contains("MAX_LINE_LENGTH"), "short rows need no MAX_LINE_LENGTH\n{yaml}");
    assert!(!yaml.contains(&env.dst.password), "the password is in the control file");
    let argv = fs::read_to_string(env.dir().join("argv.txt")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "-f",
            control.to_str().unwrap(),
            "-f",
            &control.to_str().unwrap().replace("20240310000000^20240310030000", "20240310030000^20240310060000")
        ]
    );
    assert_eq!(fs::read_to_string(env.dir().join("pgpassword.txt")).unwrap(), "set\nset\n");
    let home = support::gp6_home().display().to_string();
    assert_eq!(fs::read_to_string(env.dir().join("env.txt")).unwrap(), format!("prefer {home}\nprefer {home}\n"));
}

/// A gpload that cannot run here — Greenplum's wrapper copied away from its install, so no
/// GPHOME can be found — fails `config check` (and `run`) with exit 2 before anything moves,
/// saying what to set.
#[test]
fn a_gpload_that_cannot_run_here_is_refused_by_config_check() {
    let env = TestEnv::on("gpload_no_gphome", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(10, "36 seconds"));
    env.dst_psql(V1_TARGET);
    fs::create_dir_all(env.dir().join("bin")).unwrap();
    let copy = env.dir().join("bin/gpload");
    fs::copy(gpload(), &copy).unwrap();
    env.write_config(&format!(
        r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
sink = {{ plugin = "gpload", gpload = "{}" }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
"#,
        copy.display()
    ));
    let out = run(&env, &["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("does not run on this machine without GPHOME"), "{}", out.render());
    cli_snapshot!(gp_filters(out));
    let out = run(&env, &["run"]);
    out.assert_code(2);
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");
}

/// Under `error_limit` gpload skips a bad row and exits 1 with `data formatting errors = 1`:
/// the window fails in gpload's words, and — gpload having loaded only the staging table —
/// nothing of it reaches the target.
#[test]
fn a_format_error_fails_the_window_and_nothing_reaches_the_target() {
    let env = TestEnv::on("gpload_format_error", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(V1_TARGET);
    // gpload sees one row it cannot parse: the wrapper appends it to the data file.
    let wrapper = env.write_file(
        "bin/gpload-corrupting",
        &format!(
            "#!/bin/sh\n\
             if [ \"$1\" = -f ]; then\n\
             data=$(sed -n 's/^ *- \"\\(.*\\.csv\\)\"$/\\1/p' \"$2\")\n\
             printf 'a row without commas\\n' >> \"$data\"\n\
             fi\n\
             exec {} \"$@\"\n",
            gpload().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = |extra: &str| {
        env.write_config(&format!(
            r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
mode = "merge"
sink = {{ plugin = "gpload", gpload = "{wrapper}", gphome = "{home}", work_dir = "{{TEMP_DIR}}/gpload", local_hostname = ["127.0.0.1"]{extra} }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
"#,
            wrapper = wrapper.display(),
            home = support::gp6_home().display()
        ))
    };
    config(", error_limit = 5, log_errors = true");
    let out = run(&env, &["run"]);
    out.assert_code(1);
    assert!(out.stderr.contains("gpload reported 1 data formatting error(s): 1 bad row"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows reached the target");
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0", "the cursor moved");
    assert_eq!(
        env.dst_psql(
            "SELECT rows_inserted, rows_updated, format_errors FROM gptransfer.history WHERE status = 'failed'"
        ),
        "||1"
    );

    // Without error_limit the bad row fails gpload itself.
    config("");
    let out = run(&env, &["run"]);
    out.assert_code(1);
    assert!(out.stderr.contains("gpload failed (exit 2)"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows reached the target");
    cli_snapshot!(gp_filters(out));
}

fn merge_config(env: &TestEnv, table: &str, key: &str, sink_extra: &str) {
    job_config(env, "merge", table, key, sink_extra);
}

/// `table` from the source in windows of 3 h, with the table's `mode`, `key` and the gpload
/// sink's `sink_extra` options.
fn job_config(env: &TestEnv, mode: &str, table: &str, key: &str, sink_extra: &str) {
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
sink = {{ plugin = "gpload", gpload = "{gpload}"{sink_extra} }}

[[jobs.j.tables]]
table = "{table}"
condition_column = "evt_ts"
key = [{key}]
"#,
        gpload = gpload().display()
    ));
}

#[test]
fn capitals_and_reserved_words_in_merge_columns_are_refused_at_config_check() {
    let env = TestEnv::on("gpload_bad_names", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(10, "36 seconds"));
    env.dst_psql(V1_TARGET);
    merge_config(&env, "eda.defects", "\"id\"", ", match_columns = [\"GlassId\"]");
    let out = run(&env, &["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"GlassId\" has capital letters"), "{}", out.render());
    cli_snapshot!(gp_filters(out));

    merge_config(&env, "eda.defects", "\"id\"", ", update_columns = [\"order\"]");
    let out = run(&env, &["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"order\" is a reserved word"), "{}", out.render());
}

/// `eda.defects` with the table's `mode` and the gpload sink's `sink_extra` options.
fn mode_config(env: &TestEnv, mode: &str, sink_extra: &str) {
    job_config(env, mode, "eda.defects", "\"id\"", &format!(", local_hostname = [\"127.0.0.1\"]{sink_extra}"));
}

/// The sink's `mode` chooses how gpload applies a batch; the table's mode still decides what
/// goes first. A replace table with `mode = "insert"` deleted nothing, so loading a window again
/// (reload, repair, a retry) doubled its rows in a target without a unique key (seen: 200 for
/// 100). `preload_truncate` empties the whole target before every window, which only a full
/// reload means; and a merge table's batch must be merged or updated, not inserted.
#[test]
fn a_sink_mode_keeps_the_tables_delete_and_truncating_is_for_full_reloads_only() {
    let env = TestEnv::on("gpload_sink_mode", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(100, "3 minutes"));
    env.dst_psql(
        "CREATE SCHEMA eda; CREATE TABLE eda.defects (id bigint, evt_ts timestamp NOT NULL, glass varchar, \
         qty numeric(12,3), payload bytea) DISTRIBUTED BY (id)",
    );
    let count = || env.dst_psql("SELECT count(*) || ' ' || count(DISTINCT id) FROM eda.defects");
    mode_config(&env, "replace", ", mode = \"insert\"");
    run(&env, &["config", "check"]).assert_success();
    run(&env, &["run"]).assert_success();
    assert_eq!(count(), "100 100");
    let reload = ["reload", "--job", "j", "--from", "2024-03-10 00:00:00", "--to", "2024-03-10 06:00:00"];
    run(&env, &reload).assert_success();
    assert_eq!(count(), "100 100", "the reloaded windows were deleted first");

    // Emptying the target before each window would keep only the last one.
    mode_config(&env, "replace", ", preload_truncate = true");
    let check = run(&env, &["config", "check"]);
    check.assert_code(2);
    assert!(
        check.stderr.contains("preload_truncate empties the whole target before every window"),
        "{}",
        check.render()
    );
    run(&env, &reload).assert_code(2);
    assert_eq!(count(), "100 100");

    // A merge table's batch inserted would add a key's row again at every load.
    mode_config(&env, "merge", ", mode = \"insert\"");
    let check = run(&env, &["config", "check"]);
    check.assert_code(2);
    assert!(check.stderr.contains("a merge table's batch cannot be inserted"), "{}", check.render());

    // A full reload may truncate first, as it does anyway.
    mode_config(&env, "full", ", preload_truncate = true");
    run(&env, &["run"]).assert_success();
    assert_eq!(count(), "100 100");
}

/// A key that only the table names (no `match_columns`) is checked with the matched columns:
/// `config check` and `run` refuse it before anything moves.
#[test]
fn a_key_gpload_cannot_merge_on_is_refused_before_any_data_moves() {
    let env = TestEnv::on("gpload_bad_key", Server::Pg, Server::Gp6);
    env.src_psql(r#"CREATE TABLE public.flags ("GlassId" bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text);"#);
    env.src_psql("INSERT INTO public.flags VALUES (1, '2024-03-10 01:00:00', 'a')");
    env.dst_psql(r#"CREATE TABLE public.flags ("GlassId" bigint PRIMARY KEY, evt_ts timestamp NOT NULL, v text) DISTRIBUTED BY ("GlassId");"#);
    merge_config(&env, "public.flags", "\"GlassId\"", "");
    let check = run(&env, &["config", "check"]);
    check.assert_code(2);
    assert!(check.stderr.contains("column \"GlassId\" has capital letters"), "{}", check.render());
    let out = run(&env, &["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains("column \"GlassId\" has capital letters"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0");
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.flags"), "0");
}

/// The `gp4-legacy` preset: one line of TOML gives a V1 table — gp4 source on 8.2 → gzip files on
/// the shared mount → real gpload merge into GP6 — byte-exact; a duplicate key in the files
/// (loaded in place, where rows carry no position) still keeps the last row.
#[test]
fn the_gp4_legacy_preset_with_real_gpload() {
    legacy_preset(&v1_env("gpload_gp4_legacy"), &gpload());
}

/// The `gp4-legacy` preset from the real GP4 cluster into GP7 with GP7's gpload.
#[test]
fn the_gp4_legacy_preset_from_gp4_into_gp7_with_gp7s_gpload() {
    legacy_preset(&v1_env_on("gpload_gp4_legacy_gp7", Server::Gp4, Server::Gp7), &gp7_gpload());
}

/// One line per table (`preset = gp4-legacy`) moves `eda.defects` and `eda.dups` byte-exact,
/// the duplicate key folded, with `gpload`.
fn legacy_preset(env: &TestEnv, gpload: &std::path::Path) {
    env.write_config(&format!(
        r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"
flavor = "gp4"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

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
preset = {{ name = "gp4-legacy", root = "{{TEMP_DIR}}/mount", gpload = "{gpload}" }}

[[jobs.j.tables]]
table = "eda.dups"
condition_column = "evt_ts"
key = ["id"]
preset = {{ name = "gp4-legacy", root = "{{TEMP_DIR}}/mount", gpload = "{gpload}" }}
"#,
        gpload = gpload.display()
    ));
    let plan = run(env, &["plan"]);
    plan.assert_success();
    assert!(plan.stdout.contains("gp4 > shared-mount > gpload"), "{}", plan.render());
    run(env, &["config", "check"]).assert_success();
    let out = run(env, &["run"]);
    out.assert_success();
    assert_eq!(defects_digest(env.dst, &env.dst_db), defects_digest(env.src, &env.db), "{}", out.render());
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), sum(rows_written), bool_and(chain = 'gp4 > shared-mount > gpload (csv)') \
             FROM gptransfer.history WHERE status = 'succeeded' AND table_name = 'eda.defects'"
        ),
        "2|600|t"
    );
    assert_eq!(env.dst_psql("SELECT v FROM eda.dups WHERE id = 7"), "last");
    assert_eq!(
        env.dst_psql(
            "SELECT sum(rows_read), sum(rows_written), sum(duplicates_folded) FROM gptransfer.history \
             WHERE status = 'succeeded' AND table_name = 'eda.dups'"
        ),
        "21|20|1"
    );
}

/// A locked OS account (created without a password; sshd runs with `UsePAM no`) is refused by
/// sshd, which tells the client nothing: the message names both possible causes and where the
/// server's reason is.
#[test]
fn a_locked_account_is_reported_with_both_possible_causes() {
    const USER: &str = "gptlocked";
    let exists = Command::new("id").arg(USER).output().unwrap().status.success();
    if !exists {
        let out = Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", USER]).output().unwrap();
        let race = String::from_utf8_lossy(&out.stderr).contains("already exists");
        assert!(out.status.success() || race, "useradd: {}", String::from_utf8_lossy(&out.stderr));
    }
    let env = TestEnv::on("gpload_locked", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(10, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    merge_config(
        &env,
        "eda.defects",
        "\"id\"",
        &format!(
            ", host = \"127.0.0.1\", ssh_port = {}, user = \"{USER}\", key_file = \"{}\", known_hosts = \"{{TEMP_DIR}}/known_hosts\"",
            sshd.port,
            sshd.client_key.display()
        ),
    );
    let out = run(&env, &["config", "check"]);
    out.assert_code(2);
    assert!(sshd.log().contains("account is locked"), "sshd log:\n{}", sshd.log());
    assert!(out.stderr.contains("the server refused user \"gptlocked\""), "{}", out.render());
    assert!(out.stderr.contains("locked account") && out.stderr.contains("authorized_keys"), "{}", out.render());
    cli_snapshot!(gp_filters(out)
        .with_filter(&format!(r"\b{}\b", sshd.port), "[SSH_PORT]")
        .with_filter(&support::regex_escape(&sshd.dir().display().to_string()), "[SSHD_DIR]"));
}

/// gpload on the "ETL host" over SSH, with its own scripts around it: the data and control
/// files go over SFTP, the password reaches gpload on the channel's stdin (never argv, never a
/// file), the files go after the load. Then a gpload that fails to start there fails the window
/// in exit 127's words with nothing loaded, and an ETL host whose key is not in known_hosts is
/// refused before anything moves, saying how to trust it.
#[test]
fn gpload_over_ssh_gets_the_password_on_stdin_and_checks_the_host_key() {
    let env = TestEnv::on("gpload_ssh_password", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let wrapper = env.write_file(
        "etl/gpload-recording",
        &format!(
            "#!/bin/sh\n\
             [ \"$1\" = --version ] && exec {gpload} \"$@\"\n\
             printf '%s\\n' \"$@\" >> \"{{TEMP_DIR}}/argv.txt\"\n\
             [ -n \"$PGPASSWORD\" ] && echo set >> \"{{TEMP_DIR}}/pgpassword.txt\"\n\
             exec {gpload} \"$@\"\n",
            gpload = gpload().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = |program: &str| {
        merge_config(
            &env,
            "eda.defects",
            "\"id\"",
            &format!(
                ", gphome = \"{home}\", work_dir = \"{{TEMP_DIR}}/gpload\", local_hostname = [\"127.0.0.1\"], \
                 host = \"127.0.0.1\", ssh_port = {port}, user = \"{user}\", key_file = \"{key}\", \
                 known_hosts = \"{{TEMP_DIR}}/known_hosts\"",
                home = support::gp6_home().display(),
                port = sshd.port,
                user = sshd.user,
                key = sshd.client_key.display()
            ),
        );
        let text = fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
        env.write_config(&text.replace(&gpload().display().to_string(), program));
    };
    config(wrapper.to_str().unwrap());
    let out = run(&env, &["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
    let argv = fs::read_to_string(env.dir().join("argv.txt")).unwrap();
    let control = env.dir().join(format!("gpload/{}^eda^defects^20240310000000^20240310030000.yml", env.dst_db));
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

    // The program starts, but what it runs is not there: the remote shell exits 127.
    env.dst_psql("TRUNCATE eda.defects; DELETE FROM gptransfer.cursors");
    let broken = env.write_file(
        "etl/gpload-broken",
        &format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && exec {} \"$@\"\nexec /nonexistent/bin/gpload \"$@\"\n",
            gpload().display()
        ),
    );
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
    config(broken.to_str().unwrap());
    let out = run(&env, &["run"]);
    out.assert_code(1);
    assert!(out.stderr.contains("exit 127: command not found on the remote host"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");

    // An ETL host whose key is not in known_hosts is refused at `config check` and by `run`.
    config(wrapper.to_str().unwrap());
    fs::write(env.dir().join("known_hosts"), "").unwrap();
    for args in [&["config", "check"][..], &["run"]] {
        let out = run(&env, args);
        out.assert_code(2);
        assert!(out.stderr.contains("host key refused") && out.stderr.contains("ssh-keyscan -p"), "{}", out.render());
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");
}

/// Hosts without a shared mount: the `ssh` transport writes the window's parts on the ETL host
/// over SFTP, and gpload, run on that same host over SSH, loads them in place — its `FILE`
/// lists the remote parts and no second data file is written.
#[test]
fn ssh_transport_files_are_loaded_in_place_by_gpload_on_that_host() {
    let env = TestEnv::on("gpload_ssh_in_place", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(V1_TARGET);
    fs::create_dir(env.dir().join("remote")).unwrap();
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
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
sink = {{ plugin = "gpload", gpload = "{gpload}", work_dir = "{{TEMP_DIR}}/gpload", keep_files = true, local_hostname = ["127.0.0.1"], {login}, ssh_port = {port} }}
"#,
        gpload = gpload().display(),
        port = sshd.port,
    ));
    let out = run(&env, &["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql(
            "SELECT count(*), sum(rows_written), sum(rows_inserted) FROM gptransfer.history WHERE status = 'succeeded'"
        ),
        "2|600|600"
    );
    for window in ["20240310000000^20240310030000", "20240310030000^20240310060000"] {
        let base = format!("{}^eda^defects^{window}", env.dst_db);
        let yaml = fs::read_to_string(env.dir().join("gpload").join(format!("{base}.yml"))).unwrap();
        let part = env.dir().join("remote").join(&base).join("part-00001.csv.gz");
        assert!(yaml.contains(&format!("- \"{}\"", part.display())), "{yaml}");
        assert!(!env.dir().join("gpload").join(format!("{base}.csv")).exists(), "a data file was written");
    }
}

/// Two traps of a first load through gpload into GP6. Its INSERT into the (new, empty) staging
/// table set off GP6's automatic ANALYZE, which fails with `value out of range: overflow` on a
/// float8 column holding the largest double beside another value (GREENPLUM.md). And a merge
/// batch with a NULL key (issue 10 item 4) must fail its window, as in the copy sink, instead
/// of duplicating those rows on every re-load.
#[test]
fn gpload_loads_the_largest_double_and_refuses_null_merge_keys() {
    let env = TestEnv::on("gpload_float_max", Server::Pg, Server::Gp6);
    let table = "CREATE TABLE public.floats (id bigint, evt_ts timestamp NOT NULL, f float8)";
    env.src_psql(&format!(
        "{table};
         INSERT INTO public.floats SELECT i, timestamp '2024-03-10 00:00:00' + i * interval '1 minute',
                CASE i % 4 WHEN 0 THEN 1.7976931348623157e308 WHEN 1 THEN 1.5 WHEN 2 THEN -1e300 ELSE NULL END
         FROM generate_series(1, 200) AS i;"
    ));
    env.dst_psql(&format!("{table} DISTRIBUTED BY (id);"));
    merge_config(&env, "public.floats", "\"id\"", "");
    let out = run(&env, &["run"]);
    out.assert_success();
    let bits = |pg: &Pg, db: &str| {
        pg.psql(
            db,
            "SELECT count(*) || ' ' || md5(array_to_string(ARRAY(SELECT id || ':' || coalesce(encode(float8send(f), 'hex'), '-') \
             FROM public.floats ORDER BY id), ','))  FROM public.floats",
        )
    };
    assert_eq!(bits(env.dst, &env.dst_db), bits(env.src, &env.db), "{}", out.render());

    env.src_psql("UPDATE public.floats SET id = NULL WHERE id % 10 = 0");
    env.dst_psql("TRUNCATE public.floats");
    env.dst_psql("TRUNCATE gptransfer.cursors");
    let out = run(&env, &["run"]);
    out.assert_code(1);
    assert!(out.stdout.contains("merge key (id) is NULL in 17 row(s)"), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.floats"), "0", "nothing of the window landed");
}

/// Issue 10 item 13: gpload's work files held the window's rows world-readable, under
/// predictable names in the shared temp directory, where another local user could plant the
/// control file (whose `SQL: BEFORE` runs with the target's credentials). By default they now
/// live in a private directory (`$TMPDIR/gptransfer-<uid>`, 0700), each file created fresh with
/// mode 0600; a directory of that name planted by someone else is refused.
/// A gpload that first appends `stat -c FORMAT` of its work directory, control file and data
/// file to `log`, then runs the real gpload.
fn stat_wrapper(env: &TestEnv, log: &std::path::Path, format: &str) -> PathBuf {
    let wrapper = env.write_file(
        "bin/gpload-stat",
        &format!(
            "#!/bin/sh\n\
             if [ \"$1\" = -f ]; then\n\
             control=$2\n\
             stat -c '{format}' \"$(dirname \"$control\")\" \"$control\" \"${{control%.yml}}.csv\" >> '{log}'\n\
             fi\n\
             exec {gpload} \"$@\"\n",
            log = log.display(),
            gpload = gpload().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

#[test]
fn gpload_work_files_are_private() {
    let env = TestEnv::on("gpload_private_files", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(100, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let log = env.dir().join("modes.log");
    let wrapper = stat_wrapper(&env, &log, "%a %u");
    let tmp = env.dir().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    env.write_config(&format!(
        r#"
{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 03:00:00"
duration = "3h"
mode = "merge"
sink = {{ plugin = "gpload", gpload = "{wrapper}", gphome = "{home}", local_hostname = ["127.0.0.1"] }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]
"#,
        wrapper = wrapper.display(),
        home = support::gp6_home().display()
    ));
    let mut cmd = env.command(&["run"]);
    cmd.env("TMPDIR", &tmp);
    let out = env.spawn_command(cmd).wait();
    out.assert_success();
    let uid = fs::metadata(env.dir()).unwrap().uid().to_string();
    let modes = fs::read_to_string(&log).unwrap();
    assert_eq!(modes, format!("700 {uid}\n600 {uid}\n600 {uid}\n"), "directory, control file, data file");
    assert!(tmp.join(format!("gptransfer-{uid}")).is_dir());

    // A directory of that name that others may write to (planted, or made by hand) is refused.
    let private = tmp.join(format!("gptransfer-{uid}"));
    fs::set_permissions(&private, fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = env.command(&["config", "check"]);
    cmd.env("TMPDIR", &tmp);
    let out = env.spawn_command(cmd).wait();
    out.assert_code(2);
    assert!(out.stderr.contains("is not a directory of this user"), "{}", out.render());
}

/// A gpload wrapper that records its pid (= its process group: the runners start it as a group
/// leader) in `{TEMP_DIR}/NAME.pid`, stays silent for `seconds` — as gpload does while it loads
/// — with a child process (as gpload's gpfdist), then runs the real gpload.
fn silent_gpload(env: &TestEnv, name: &str, seconds: u32) -> PathBuf {
    let wrapper = env.write_file(
        &format!("bin/{name}"),
        &format!(
            "#!/bin/sh\n\
             [ \"$1\" = --version ] && exec {gpload} \"$@\"\n\
             echo $$ > \"{{TEMP_DIR}}/{name}.pid\"\n\
             sleep {seconds}\n\
             exec {gpload} \"$@\"\n",
            gpload = gpload().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

/// The eda.defects merge job with the gpload sink running `program`, `sink_extra` appended.
fn gpload_job(env: &TestEnv, program: &std::path::Path, sink_extra: &str) {
    merge_config(
        env,
        "eda.defects",
        "\"id\"",
        &format!(", gphome = \"{}\", local_hostname = [\"127.0.0.1\"]{sink_extra}", support::gp6_home().display()),
    );
    let text = fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    env.write_config(
        &text.replace(&format!("gpload = \"{}\"", gpload().display()), &format!("gpload = \"{}\"", program.display())),
    );
}

/// The sink options that run gpload on the ETL host `sshd`.
fn over_ssh(sshd: &Sshd) -> String {
    format!(
        ", work_dir = \"{{TEMP_DIR}}/gpload\", host = \"127.0.0.1\", ssh_port = {port}, user = \"{user}\", \
         key_file = \"{key}\", known_hosts = \"{{TEMP_DIR}}/known_hosts\"",
        port = sshd.port,
        user = sshd.user,
        key = sshd.client_key.display()
    )
}

/// The pid a [`silent_gpload`] wrote, once it has.
fn wrapper_pid(env: &TestEnv, name: &str) -> u32 {
    let path = env.dir().join(format!("{name}.pid"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(pid) = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether any process of process group `pgid` still runs (a zombie waiting for its new
/// parent to reap it runs nothing).
fn group_alive(pgid: u32) -> bool {
    let out = Command::new("ps").args(["-o", "stat=", "-g", &pgid.to_string()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|stat| !stat.trim().starts_with('Z'))
}

/// Issue 10 item 8: over SSH a fixed 300 s limit on *output silence* failed every gpload run
/// longer than 5 minutes (gpload prints nothing while it loads), and a run given up was not
/// killed: it went on loading on the ETL host, and after Ctrl+C/SIGTERM the window was
/// reported rolled back while gpload ran on; locally nothing bounded gpload at all. Now
/// silence is fine (keepalives show the host is alive: here a 2 s `ssh_read_timeout` and a
/// gpload silent for 5 s), the whole run is bounded by the sink's `timeout`, and a run stopped
/// by the timeout or a signal has its process group — gpload and all it started — killed
/// before the window is reported, locally and over SSH, with the target unchanged.
#[test]
fn gpload_runs_are_bounded_and_stopped_with_all_they_started() {
    let env = TestEnv::on("gpload_bounded", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(600, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let ssh = over_ssh(&sshd);

    // Silent longer than the SSH read timeout: loads.
    let quiet = silent_gpload(&env, "quiet", 5);
    gpload_job(&env, &quiet, &format!("{ssh}, ssh_read_timeout = \"30s\""));
    let out = run(&env, &["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));

    let reset = || {
        env.dst_psql("TRUNCATE eda.defects; DELETE FROM gptransfer.cursors");
        for name in ["hung", "hung-local"] {
            let _ = fs::remove_file(env.dir().join(format!("{name}.pid")));
        }
    };
    // Past the sink's timeout: stopped, group and all, over SSH and locally.
    let hung = silent_gpload(&env, "hung", 600);
    for (name, extra) in [("hung", ssh.as_str()), ("hung-local", "")] {
        reset();
        let program = if name == "hung" { hung.clone() } else { silent_gpload(&env, name, 600) };
        gpload_job(&env, &program, &format!("{extra}, timeout = \"3s\""));
        let started = std::time::Instant::now();
        let out = run(&env, &["run"]);
        out.assert_code(1);
        assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
        assert!(out.stderr.contains("ran longer than its timeout of 3s"), "{}", out.render());
        assert!(out.stderr.contains("process group"), "{}", out.render());
        assert!(out.stderr.contains("the target is unchanged"), "{}", out.render());
        let pid = wrapper_pid(&env, name);
        assert!(!group_alive(pid), "{name}: process group {pid} outlived the window");
        assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");
    }

    // SIGTERM while gpload runs: exit 143 only once gpload is gone, history says rolled back.
    for (name, extra) in [("hung", ssh.as_str()), ("hung-local", "")] {
        reset();
        let program = env.dir().join(format!("bin/{name}"));
        gpload_job(&env, &program, extra);
        let mut cmd = env.command(&["run"]);
        for var in ["GPHOME", "PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH"] {
            cmd.env_remove(var);
        }
        let running = env.spawn_command(cmd);
        let pid = wrapper_pid(&env, name);
        running.signal("TERM");
        let out = running.wait();
        out.assert_code(143);
        assert!(!group_alive(pid), "{name}: process group {pid} outlived gptransfer");
        assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0");
        assert_eq!(
            env.dst_psql("SELECT status || ': ' || error FROM gptransfer.history ORDER BY id DESC LIMIT 1"),
            "failed: interrupted by SIGTERM; the window was rolled back"
        );
    }
}

/// Issue 10 item 13 over SSH: without a work_dir, gpload's files went to this machine's temp
/// path *on the ETL host* (a shared `/tmp`, predictable names), uploaded with mode 0644 over a
/// file that could already be there. Now they go to `gptransfer-<uid>` in the remote user's
/// `$TMPDIR`, made 0700 and refused when it is not the user's own closed directory, and each
/// file is uploaded as a new 0600 file.
#[test]
fn gpload_work_files_on_the_etl_host_are_private() {
    let env = TestEnv::on("gpload_private_remote", Server::Pg, Server::Gp6);
    env.src_psql(&support::defects_source_sql(100, "36 seconds"));
    env.dst_psql(V1_TARGET);
    let sshd = Sshd::start();
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let log = env.dir().join("modes.log");
    let wrapper = stat_wrapper(&env, &log, "%n %a %u");
    let login = format!(
        ", host = \"127.0.0.1\", ssh_port = {port}, user = \"{user}\", key_file = \"{key}\", \
         known_hosts = \"{{TEMP_DIR}}/known_hosts\", keep_files = true",
        port = sshd.port,
        user = sshd.user,
        key = sshd.client_key.display()
    );
    gpload_job(&env, &wrapper, &login);
    let out = run(&env, &["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
    let uid = fs::metadata(env.dir()).unwrap().uid();
    let private = sshd.dir().join("tmp").join(format!("gptransfer-{uid}"));
    let base = private.join(format!("{}^eda^defects^20240310000000^20240310030000", env.dst_db));
    let first_window: String = fs::read_to_string(&log).unwrap().lines().take(3).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        first_window,
        format!(
            "{dir} 700 {uid}\n{yml} 600 {uid}\n{csv} 600 {uid}\n",
            dir = private.display(),
            yml = base.with_extension("yml").display(),
            csv = base.with_extension("csv").display()
        ),
        "directory, control file, data file"
    );

    // A directory of that name others may write to (planted, or made by hand) is refused.
    fs::set_permissions(&private, fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&env, &["config", "check"]);
    out.assert_code(2);
    assert!(out.stderr.contains("is not a directory of the remote user"), "{}", out.render());
}
