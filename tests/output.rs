//! Output that fits a terminal or a pipe (issue 12, item 6): colour only at a terminal and never
//! with NO_COLOR, `-q` silent on success, and `config check` listing every problem in one run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};

use support::TestEnv;

/// A job whose one window fails on the target (a CHECK constraint): `run` logs an ERROR line.
fn failing_job(name: &str) -> TestEnv {
    let env = TestEnv::new(name);
    env.src_psql(
        "CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL); INSERT INTO t VALUES (1, '2024-03-10 00:10:00')",
    );
    env.dst_psql("CREATE TABLE t (id int PRIMARY KEY CHECK (id > 1), ts timestamp NOT NULL)");
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 01:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.t"
condition_column = "ts"
"#,
    );
    env
}

/// Runs `args` with stdout and stderr on a pseudo-terminal (util-linux `script`), with
/// `no_color` as NO_COLOR when given; returns what the terminal showed.
fn at_a_terminal(env: &TestEnv, args: &[&str], no_color: Option<&str>) -> String {
    let template = env.command(args);
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line = std::iter::once(template.get_program())
        .chain(template.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]).current_dir(env.dir()).stdin(Stdio::null());
    for (key, value) in template.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run script(1): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An SGR sequence (`ESC [ … m`): colour or emphasis.
fn has_colour(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|r| {
            let params: String = r.chars().take_while(|c| c.is_ascii_digit() || *c == ';').collect();
            r[params.len()..].starts_with('m')
        })
    })
}

#[test]
fn log_lines_are_coloured_only_at_a_terminal_and_never_with_no_color() {
    let env = failing_job("output_colour");
    // `run 2>log`: stderr is a file, NO_COLOR unset.
    let mut cmd = env.command(&["run"]);
    cmd.env_remove("NO_COLOR");
    let out = env.spawn_command(cmd).wait();
    out.assert_code(1);
    assert!(out.stderr.contains("ERROR"), "{}", out.render());
    assert!(!out.stderr.contains('\x1b'), "escape codes in a log file:\n{:?}", out.stderr);
    assert!(!out.stdout.contains('\x1b'), "escape codes in a pipe:\n{:?}", out.stdout);

    // At a terminal: coloured, unless NO_COLOR says not (the progress bar's line clearing,
    // `ESC[2K`, is no colour and stays).
    let shown = at_a_terminal(&env, &["run"], None);
    assert!(shown.contains("ERROR") && has_colour(&shown), "no colour at a terminal:\n{shown:?}");
    let shown = at_a_terminal(&env, &["run"], Some("1"));
    assert!(shown.contains("ERROR") && !has_colour(&shown), "colour despite NO_COLOR:\n{shown:?}");
}

#[test]
fn quiet_prints_nothing_on_success_and_the_error_on_failure() {
    let env = failing_job("output_quiet");
    env.dst_psql("ALTER TABLE t DROP CONSTRAINT t_id_check");
    let check = env.run(&["-q", "config", "check"]);
    check.assert_success();
    assert_eq!((check.stdout.as_str(), check.stderr.as_str()), ("", ""), "{}", check.render());
    let run = env.run(&["-q", "run"]);
    run.assert_success();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""), "{}", run.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM t"), "1");

    // A failure is still said, on stderr.
    env.dst_psql("DELETE FROM t; ALTER TABLE t ADD CHECK (id > 1); DELETE FROM gptransfer.cursors");
    let run = env.run(&["-q", "run"]);
    run.assert_code(1);
    assert!(run.stderr.contains("window(s) failed"), "{}", run.render());
}

/// Three bad tables and a good one: all three named in one run, exit 2, no "ok" for the config.
#[test]
fn config_check_names_every_bad_table_in_one_run() {
    let env = TestEnv::new("output_check_all");
    env.src_psql(
        "CREATE TABLE good (id int PRIMARY KEY, ts timestamp NOT NULL);
         CREATE TABLE no_target (id int PRIMARY KEY, ts timestamp NOT NULL);
         CREATE TABLE wide (id int PRIMARY KEY, ts timestamp NOT NULL, extra text NOT NULL);
         CREATE TABLE by_text (id int PRIMARY KEY, ts text NOT NULL);",
    );
    env.dst_psql(
        "CREATE TABLE good (id int PRIMARY KEY, ts timestamp NOT NULL);
         CREATE TABLE wide (id int PRIMARY KEY, ts timestamp NOT NULL, missing_here int NOT NULL);
         CREATE TABLE by_text (id int PRIMARY KEY, ts text NOT NULL);",
    );
    let mut config = String::from(
        "{CLUSTERS}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-03-10 00:00:00\"\nduration = \"1h\"\n",
    );
    for t in ["good", "no_target", "wide", "by_text"] {
        config.push_str(&format!("\n[[jobs.j.tables]]\ntable = \"public.{t}\"\ncondition_column = \"ts\"\n"));
    }
    env.write_config(&config);
    let out = env.run(&["config", "check"]);
    out.assert_code(2);
    cli_snapshot!(out);
    for bad in ["j / public.no_target", "j / public.wide", "j / public.by_text"] {
        assert!(out.stderr.contains(&format!("error: table {bad}: ")), "{bad} not named:\n{}", out.render());
    }
    assert!(out.stderr.contains("3 problem(s), listed above"), "{}", out.render());
    assert!(out.stdout.contains("table j / public.good: ok"), "{}", out.render());
    assert!(!out.stdout.contains(": ok (1 job(s)"), "ok printed for a config with problems:\n{}", out.render());

    // The same for a script: every cluster and table with its outcome, on stdout; exit 2 still.
    let json = env.run(&["config", "check", "--output", "json"]);
    json.assert_code(2);
    let value: serde_json::Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.render()));
    assert_eq!(value["ok"], false, "{value:#}");
    let outcome = |kind: &str, name: &str| {
        let found = value["checked"].as_array().unwrap().iter().find(|c| c["kind"] == kind && c["name"] == name);
        found.map(|c| c["status"].as_str().unwrap().to_string()).unwrap_or_else(|| panic!("no {name} in {value:#}"))
    };
    assert_eq!(outcome("cluster", "src"), "ok");
    assert_eq!(outcome("cluster", "dst"), "ok");
    assert_eq!(outcome("table", "j / public.good"), "ok");
    for bad in ["j / public.no_target", "j / public.wide", "j / public.by_text"] {
        assert_eq!(outcome("table", bad), "problem");
    }
    assert!(json.stderr.is_empty(), "{}", json.render());
}
