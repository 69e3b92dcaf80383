//! SPEC §10: bad input gets one clear message, exit code 2, and loses nothing.
//!
//! Every case starts from the same world: a source table with four hours of rows, a target
//! table pre-loaded with rows of its own, and a good run that loaded the first hour (so the
//! cursor exists). Then the config or the tables are broken in one way, the command runs with
//! three more windows due, and must refuse: exit 2, one `error:` message (snapshot), the target
//! table byte-identical (count + md5), the cursor row and the history untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{CmdOutput, TestEnv};

const GOOD_CONFIG: &str = r#"
[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
final_end = "2024-01-01 01:00:00"
"#;

/// What must not change: the target table's rows, the cursors, the history.
#[derive(Debug, PartialEq, Eq)]
struct World {
    target_rows: String,
    cursors: String,
    history: String,
}

struct Scenario {
    env: TestEnv,
}

impl Scenario {
    /// Tables on both sides, the target pre-loaded, the first window loaded by a good run.
    fn new(name: &str) -> Scenario {
        let env = TestEnv::new(name);
        let ddl = "CREATE TABLE events (id integer PRIMARY KEY, ts timestamp NOT NULL, note text, qty numeric(10,2));";
        env.src_psql(ddl);
        env.dst_psql(ddl);
        // Four hours, ten rows an hour.
        env.src_psql(
            "INSERT INTO events SELECT g, timestamp '2024-01-01 00:00:00' + g * interval '6 minutes', \
             'note ' || g, g * 1.5 FROM generate_series(0, 39) g",
        );
        // The target's own rows, outside every window of the job.
        env.dst_psql(
            "INSERT INTO events SELECT 1000 + g, timestamp '2023-12-31 12:00:00' + g * interval '1 hour', \
             'kept ' || g, g FROM generate_series(0, 4) g",
        );
        env.write_config(GOOD_CONFIG);
        env.run(&["run"]).assert_success();
        let scenario = Scenario { env };
        let world = scenario.world();
        assert!(world.target_rows.starts_with("15 "), "{world:?}");
        assert!(world.cursors.contains("2024-01-01 01:00:00"), "{world:?}");
        scenario
    }

    fn world(&self) -> World {
        let env = &self.env;
        World {
            target_rows: env.dst_psql(
                "SELECT count(*) || ' ' || md5(coalesce(string_agg(e::text, E'\\n' ORDER BY id), '')) FROM events e",
            ),
            cursors: env.dst_psql(
                "SELECT coalesce(string_agg(job || ' ' || table_name || ' ' || cursor_end || ' ' || updated_at, ',' ORDER BY job, table_name), '') FROM gptransfer.cursors",
            ),
            history: env.dst_psql(
                "SELECT count(*) || ' ' || coalesce(string_agg(window_id || ' ' || status, ',' ORDER BY id), '') FROM gptransfer.history",
            ),
        }
    }

    /// The good config with `from` replaced by `to` (which must occur), and three more windows due.
    fn break_config(&self, from: &str, to: &str) {
        assert!(GOOD_CONFIG.contains(from), "{from:?} is not in the config");
        let text = GOOD_CONFIG
            .replace("final_end = \"2024-01-01 01:00:00\"", "final_end = \"2024-01-01 04:00:00\"")
            .replace(from, to);
        self.env.write_config(&text);
    }

    /// Runs `args` and checks the refusal: exit 2, one message, nothing changed.
    fn refused(&self, args: &[&str]) -> CmdOutput {
        self.refused_command(self.env.command(args))
    }

    fn refused_command(&self, command: Command) -> CmdOutput {
        let before = self.world();
        let out = self.env.spawn_command(command).wait();
        out.assert_code(2);
        assert_eq!(
            out.stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "exactly one error message expected\n{}",
            out.render()
        );
        assert!(
            !out.stderr.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("ERROR") || l.starts_with("WARN")
            }),
            "no log lines besides the message\n{}",
            out.render()
        );
        assert_said_once(&out);
        assert_eq!(self.world(), before, "bad input changed the target or the state\n{}", out.render());
        out
    }
}

/// The message must not be said twice (`error: A: A`), as an error and again as its own cause.
fn assert_said_once(out: &CmdOutput) {
    let start = out.stderr.find("error: ").expect("an error message") + "error: ".len();
    let message = out.stderr[start..].trim_end();
    let n = message.len();
    if n > 2 && (n - 2) % 2 == 0 {
        let half = (n - 2) / 2;
        let repeated = message.is_char_boundary(half)
            && message.is_char_boundary(half + 2)
            && message[..half] == message[half + 2..]
            && &message[half..half + 2] == ": ";
        assert!(!repeated, "the message is printed twice:\n{}", out.render());
    }
}

/// A TCP port nothing listens on (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let s = Scenario::new("unknown_key");
    s.break_config("condition_column = \"ts\"", "conditon_column = \"ts\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("gptransfer.toml:21:1:"), "{}", out.stderr);
    cli_snapshot!(out);
    let check = s.refused(&["config", "check"]);
    assert_eq!(check.stderr, out.stderr);
    cli_snapshot!("unknown_key_names_file_line_and_column__check", check);
}

#[test]
fn bad_duration() {
    let s = Scenario::new("bad_duration");
    s.break_config("condition_column = \"ts\"", "condition_column = \"ts\"\nduration = \"1x\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("1x"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn unknown_plugin_name() {
    let s = Scenario::new("unknown_plugin");
    s.break_config("condition_column = \"ts\"", "condition_column = \"ts\"\nsink = \"gpfdist-turbo\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("gpfdist-turbo"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn unknown_plugin_option() {
    let s = Scenario::new("unknown_option");
    s.break_config(
        "condition_column = \"ts\"",
        "condition_column = \"ts\"\ntransport = { plugin = \"stream\", chunk_size = 1024 }",
    );
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("chunk_size"), "{}", out.stderr);
    cli_snapshot!(out);
    let check = s.refused(&["config", "check"]);
    cli_snapshot!("unknown_plugin_option__check", check);
}

#[test]
fn merge_without_key() {
    let s = Scenario::new("merge_without_key");
    s.break_config("condition_column = \"ts\"", "condition_column = \"ts\"\nmode = \"merge\"");
    let out = s.refused(&["run"]);
    cli_snapshot!(out);
}

#[test]
fn unknown_job() {
    let s = Scenario::new("unknown_job");
    s.break_config("[jobs.j]", "[jobs.j]");
    let out = s.refused(&["run", "--job", "nope"]);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn unreachable_cluster() {
    let s = Scenario::new("unreachable");
    let port = free_port();
    s.break_config(
        "url = \"{SRC_URL}\"",
        &format!("url = \"postgres://gpt@127.0.0.1:{port}/{{DB}}\"\nconnect_timeout = \"5s\""),
    );
    let out = s.refused(&["run"]);
    let port_filter = format!(r"\b{port}\b");
    cli_snapshot!(out.clone().with_filter(&port_filter, "[FREE_PORT]"));
    let check = s.refused(&["config", "check"]);
    cli_snapshot!("unreachable_cluster__check", check.with_filter(&port_filter, "[FREE_PORT]"));
}

#[test]
fn wrong_password() {
    let s = Scenario::new("wrong_password");
    s.break_config("[jobs.j]", "[jobs.j]");
    let mut cmd = s.env.command(&["run"]);
    cmd.env(support::SRC_PASSWORD_ENV, "not-the-password");
    let out = s.refused_command(cmd);
    assert!(out.stderr.contains("password"), "{}", out.stderr);
    assert!(!out.stderr.contains("not-the-password"), "the wrong password is printed too");
    cli_snapshot!(out);
    let mut cmd = s.env.command(&["config", "check"]);
    cmd.env(support::SRC_PASSWORD_ENV, "not-the-password");
    let check = s.refused_command(cmd);
    cli_snapshot!("wrong_password__check", check);
}

#[test]
fn wrong_password_for_the_state_cluster() {
    let s = Scenario::new("wrong_password_state");
    s.break_config("[jobs.j]", "[jobs.j]");
    let mut cmd = s.env.command(&["run"]);
    cmd.env(support::DST_PASSWORD_ENV, "not-the-password");
    let out = s.refused_command(cmd);
    cli_snapshot!(out);
}

#[test]
fn password_env_not_set() {
    let s = Scenario::new("password_env_unset");
    s.break_config("password_env = \"GPT_SRC_PASSWORD\"", "password_env = \"GPT_NOT_SET_PASSWORD\"");
    let mut cmd = s.env.command(&["run"]);
    cmd.env_remove("GPT_NOT_SET_PASSWORD");
    let out = s.refused_command(cmd);
    assert!(out.stderr.contains("GPT_NOT_SET_PASSWORD"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn missing_source_table() {
    let s = Scenario::new("missing_source_table");
    s.break_config("table = \"public.events\"", "table = \"public.no_such_events\"\ntarget_table = \"public.events\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("no_such_events"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn missing_target_table() {
    let s = Scenario::new("missing_target_table");
    s.break_config("table = \"public.events\"", "table = \"public.events\"\ntarget_table = \"public.no_such_events\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("no_such_events"), "{}", out.stderr);
    cli_snapshot!(out);
    let check = s.refused(&["config", "check"]);
    cli_snapshot!("missing_target_table__check", check);
}

#[test]
fn missing_column_on_target() {
    let s = Scenario::new("missing_column");
    s.env.src_psql("ALTER TABLE events ADD COLUMN site text");
    s.break_config("[jobs.j]", "[jobs.j]");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("site"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn column_type_mismatch() {
    let s = Scenario::new("type_mismatch");
    s.env.src_psql("ALTER TABLE events ADD COLUMN site text");
    s.env.dst_psql("ALTER TABLE events ADD COLUMN site integer");
    s.break_config("[jobs.j]", "[jobs.j]");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("site"), "{}", out.stderr);
    cli_snapshot!(out);
    let check = s.refused(&["config", "check"]);
    cli_snapshot!("column_type_mismatch__check", check);
}

#[test]
fn condition_column_not_a_timestamp() {
    let s = Scenario::new("condition_not_time");
    s.break_config("condition_column = \"ts\"", "condition_column = \"id\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("\"id\""), "{}", out.stderr);
    cli_snapshot!(out);
    let check = s.refused(&["config", "check"]);
    cli_snapshot!("condition_column_not_a_timestamp__check", check);
}

#[test]
fn missing_condition_column() {
    let s = Scenario::new("condition_missing");
    s.break_config("condition_column = \"ts\"", "condition_column = \"evt_timestamp\"");
    let out = s.refused(&["run"]);
    assert!(out.stderr.contains("evt_timestamp"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn unknown_table() {
    let s = Scenario::new("unknown_table");
    s.break_config("[jobs.j]", "[jobs.j]");
    let out = s.refused(&["run", "--table", "public.nope"]);
    assert!(out.stderr.contains("public.nope"), "{}", out.stderr);
    cli_snapshot!(out);
}

#[test]
fn bad_until_timestamp() {
    let s = Scenario::new("bad_until");
    s.break_config("[jobs.j]", "[jobs.j]");
    let out = s.refused(&["run", "--until", "yesterday"]);
    assert!(out.stderr.contains("yesterday"), "{}", out.stderr);
    cli_snapshot!(out);
}
