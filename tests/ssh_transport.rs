//! The `ssh` transport and the SSH layer (issue 4, items 1 and 3): against a real OpenSSH
//! server on 127.0.0.1 started by the harness (`support::sshd`) with generated keys, a window
//! goes source → gzip parts + manifest written on the "remote" host over SFTP → read back and
//! verified → `copy` sink, byte-exact; unknown and changed host keys and a wrong client key are
//! refused before any data moves (exit 2) with words saying what to do; remote exit codes are
//! explained and arguments arrive intact; without `key_file` a real ssh-agent holds the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gptransfer_plugin_ssh::{connect, explain_exit, SshConfig};
use support::files::{csv_rows, gunzip, names_in};
use support::sshd::Sshd;
use support::{CmdOutput, TestEnv};

const WINDOWS: [&str; 2] = ["20240310000000^20240310030000", "20240310030000^20240310060000"];
const COLUMNS: &[&str] = &["id", "evt_ts", "glass", "qty", "payload"];

/// `glass` is varchar on the target: text COPY, the format remote loaders read.
const TARGET_SQL: &str = r#"
CREATE SCHEMA eda;
CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass varchar, qty numeric(12,3), payload bytea);
"#;

/// Source and target tables, and the remote root directory (`<TEMP_DIR>/remote`).
fn setup(env: &TestEnv) -> PathBuf {
    env.src_psql(&support::defects_source_sql(6000, "3.6 seconds"));
    env.dst_psql(TARGET_SQL);
    let remote = env.dir().join("remote");
    fs::create_dir(&remote).unwrap();
    remote
}

/// A config moving `eda.defects` in two 3-hour windows through `ssh` to `sshd`, with `options`
/// added to the transport table.
fn write_config(env: &TestEnv, sshd: &Sshd, key: &Path, options: &str) {
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
transport = {{ plugin = "ssh", host = "127.0.0.1", port = {port}, user = "{user}", key_file = "{key}", known_hosts = "{{TEMP_DIR}}/known_hosts", root = "{{TEMP_DIR}}/remote", connect_timeout = "5s", read_timeout = "60s"{options} }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
"#,
        port = sshd.port,
        user = sshd.user,
        key = key.display(),
    ));
}

/// Nothing loaded, no cursor, no remote files.
fn assert_nothing_moved(env: &TestEnv, remote: &Path) {
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows were loaded");
    if env.dst_psql("SELECT to_regclass('gptransfer.cursors') IS NULL") == "f" {
        assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.cursors"), "0", "the cursor moved");
    }
    assert_eq!(names_in(remote), Vec::<String>::new(), "files were written");
}

/// Port and host-key fingerprint change with every server.
fn ssh_filters(out: CmdOutput, sshd: &Sshd) -> CmdOutput {
    out.with_filter(&format!(r"\b{}\b", sshd.port), "[SSH_PORT]")
        .with_filter(r"SHA256:[A-Za-z0-9+/]+", "SHA256:[FINGERPRINT]")
        .with_filter(&support::regex_escape(&sshd.dir().display().to_string()), "[SSHD_DIR]")
        .with_filter(&format!(r"\b{}@", support::regex_escape(&sshd.user)), "[USER]@")
        .with_filter(&format!(r#"user = "{}""#, support::regex_escape(&sshd.user)), r#"user = "[USER]""#)
        .with_filter(&format!(r#""{}""#, support::regex_escape(&sshd.user)), r#""[USER]""#)
}

#[test]
fn a_table_lands_byte_exact_through_sftp_files_and_the_copy_sink() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_byte_exact");
    let remote = setup(&env);
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    write_config(&env, &sshd, &sshd.client_key, ", keep_files = true, compression = 1");
    let source = support::defects_digest(env.src, &env.db);
    assert!(source.starts_with("6000 "), "{source}");

    let out = env.run(&["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > ssh > copy (csv)");
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "2|6000"
    );

    // The remote directory holds shared-mount's layout: <db>^<schema>^<table>^<window id>/
    // with part-00001.csv.gz and manifest.json, no temporary name left behind.
    let expected_dirs: Vec<String> = WINDOWS.iter().map(|w| format!("{}^eda^defects^{w}", env.db)).collect();
    assert_eq!(names_in(&remote), expected_dirs);
    for window in WINDOWS {
        let dir = remote.join(format!("{}^eda^defects^{window}", env.db));
        assert_eq!(names_in(&dir), ["manifest.json", "part-00001.csv.gz"]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["rows"], 3000, "{manifest}");
        assert_eq!(manifest["window"], window);
        assert_eq!(manifest["table"], "eda.defects");
        assert_eq!(manifest["database"], env.db.as_str());
        assert_eq!(manifest["format"], "csv");
        assert_eq!(manifest["columns"], serde_json::json!(COLUMNS));
        let entry = &manifest["files"][0];
        assert_eq!(entry["name"], "part-00001.csv.gz");
        let path = dir.join("part-00001.csv.gz");
        assert_eq!(entry["compressed_bytes"], fs::metadata(&path).unwrap().len());
        let bytes = gunzip(&path);
        assert_eq!(entry["bytes"], bytes.len() as u64);
        assert_eq!(manifest["bytes"], bytes.len() as u64);
        assert_eq!(csv_rows(&bytes), 3000, "COPY CSV: one newline outside quotes per row");
    }

    // A re-run of the same windows (cursor forgotten; files without keep_files) is harmless,
    // and removes the remote files after loading, stale ones included.
    write_config(&env, &sshd, &sshd.client_key, "");
    env.dst_psql("DELETE FROM gptransfer.cursors");
    let out = env.run(&["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.db), source);
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM (SELECT id FROM eda.defects GROUP BY id HAVING count(*) > 1) d"),
        "0"
    );
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE status = 'succeeded'"), "4");
    assert_eq!(names_in(&remote), Vec::<String>::new(), "keep_files = false leaves no remote window directory");
}

/// Exit 2: the host key is checked when the transport is built, before the run touches any
/// server. The message names the host and the key's fingerprint and says how to trust it; with
/// `accept_new_host_keys = true` the key is recorded and the run goes through.
#[test]
fn an_unknown_host_key_is_refused_saying_how_to_trust_it() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_unknown_host");
    let remote = setup(&env);
    let known_hosts = env.dir().join("known_hosts");
    write_config(&env, &sshd, &sshd.client_key, "");

    let out = env.run(&["run"]);
    out.assert_code(2);
    for words in [
        format!("[127.0.0.1]:{} is not in", sshd.port),
        "fingerprint SHA256:".to_string(),
        format!("ssh-keyscan -p {} 127.0.0.1 >> {}", sshd.port, known_hosts.display()),
        "accept_new_host_keys = true".to_string(),
    ] {
        assert!(out.stderr.contains(&words), "missing {words:?}\n{}", out.render());
    }
    assert_nothing_moved(&env, &remote);
    assert!(!known_hosts.exists(), "a refused key must not be recorded");
    cli_snapshot!(ssh_filters(out, &sshd));

    // Trusting it the documented way works: ssh-keyscan's line, appended.
    write_config(&env, &sshd, &sshd.client_key, ", accept_new_host_keys = true");
    let out = env.run(&["run"]);
    assert_eq!(out.code, 0, "{}", out.render());
    let recorded = fs::read_to_string(&known_hosts).unwrap();
    let key = sshd.known_hosts_line();
    let key = key.split_whitespace().nth(2).unwrap();
    assert!(recorded.contains(key), "known_hosts does not hold the server's key:\n{recorded}");
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "6000");
}

/// known_hosts holds another key for `[127.0.0.1]:port`: refused, even with
/// `accept_new_host_keys = true` (that option only covers hosts never seen).
#[test]
fn a_changed_host_key_is_refused() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_changed_host_key");
    let remote = setup(&env);
    let other = env.dir().join("other_host_key");
    support::sshd::keygen(&other);
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut parts = other_pub.split_whitespace();
    let line = format!("[127.0.0.1]:{} {} {}\n", sshd.port, parts.next().unwrap(), parts.next().unwrap());
    fs::write(env.dir().join("known_hosts"), &line).unwrap();

    for options in ["", ", accept_new_host_keys = true"] {
        write_config(&env, &sshd, &sshd.client_key, options);
        let out = env.run(&["run"]);
        out.assert_code(2);
        for words in ["host key refused", "does not match the one in", "ssh-keygen -R"] {
            assert!(out.stderr.contains(words), "missing {words:?}\n{}", out.render());
        }
        assert_nothing_moved(&env, &remote);
        assert_eq!(fs::read_to_string(env.dir().join("known_hosts")).unwrap(), line, "known_hosts was changed");
        if options.is_empty() {
            cli_snapshot!(ssh_filters(out, &sshd));
        }
    }
}

/// A client key the server does not know: refused at login, naming the key.
#[test]
fn a_wrong_client_key_is_refused() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_wrong_key");
    let remote = setup(&env);
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    let stranger = sshd.stranger_key();
    write_config(&env, &sshd, &stranger, "");
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!("the server refused user \"{}\" with key {}", sshd.user, stranger.display())),
        "{}",
        out.render()
    );
    assert!(out.stderr.contains("authorized_keys") && out.stderr.contains("locked account"), "{}", out.render());
    assert_nothing_moved(&env, &remote);
    cli_snapshot!(ssh_filters(out, &sshd));
}

/// An ssh-agent in the foreground on a socket of the test's own, killed when dropped.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is needed for the agent test");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(socket.exists(), "ssh-agent did not create {}", socket.display());
        Agent { child, socket }
    }

    fn add(&self, key: &Path) {
        let out = std::process::Command::new("ssh-add").arg(key).env("SSH_AUTH_SOCK", &self.socket).output().unwrap();
        assert!(out.status.success(), "ssh-add: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Without `key_file` the login goes through ssh-agent: with the key added to a real agent the
/// table lands byte-exact; an agent without the key, or no agent at all, is refused before any
/// data moves, in words.
#[test]
fn without_a_key_file_ssh_agent_logs_in() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_agent");
    let remote = setup(&env);
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    write_config(&env, &sshd, &sshd.client_key, "");
    let text = fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    let without_key = text.replace(&format!("key_file = \"{}\", ", sshd.client_key.display()), "");
    assert_ne!(text, without_key, "the config should have named the key");
    env.write_config(&without_key);
    let agent_dir = tempfile::Builder::new().prefix("agent-").tempdir().unwrap();
    let agent = Agent::start(agent_dir.path());
    let with_agent = |args: &[&str]| {
        let mut cmd = env.command(args);
        cmd.env("SSH_AUTH_SOCK", &agent.socket);
        env.spawn_command(cmd).wait()
    };

    // No agent in the environment.
    let mut cmd = env.command(&["run"]);
    cmd.env_remove("SSH_AUTH_SOCK");
    let out = env.spawn_command(cmd).wait();
    out.assert_code(2);
    assert!(out.stderr.contains("no ssh-agent is reachable (SSH_AUTH_SOCK is not set)"), "{}", out.render());
    // An agent that holds no key the server accepts.
    let out = with_agent(&["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains("authentication failed with the keys of ssh-agent"), "{}", out.render());
    assert_nothing_moved(&env, &remote);

    agent.add(&sshd.client_key);
    with_agent(&["config", "check"]).assert_success();
    let out = with_agent(&["run"]);
    assert_eq!(out.code, 0, "{}\nsshd log:\n{}", out.render(), sshd.log());
    assert_eq!(support::defects_digest(env.dst, &env.db), support::defects_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql("SELECT count(*), sum(rows_written) FROM gptransfer.history WHERE status = 'succeeded'"),
        "2|6000"
    );
}

/// A key with a passphrase read from `passphrase_env`; an unset variable is named.
#[test]
fn a_key_with_a_passphrase_from_the_environment_logs_in() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("locked_ed25519");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "pass phrase; 'x'", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut authorized = fs::read_to_string(sshd.dir().join("authorized_keys")).unwrap();
    authorized.push_str(&fs::read_to_string(key.with_extension("pub")).unwrap());
    fs::write(sshd.dir().join("authorized_keys"), authorized).unwrap();
    let known_hosts = dir.path().join("known_hosts");
    sshd.write_known_hosts(&known_hosts);
    let config = SshConfig {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        key_file: Some(key),
        passphrase_env: Some("GPT_TEST_KEY_PASSPHRASE".into()),
        known_hosts,
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
    };
    let err = connect(&config).unwrap_err().to_string();
    assert!(err.contains("passphrase_env names GPT_TEST_KEY_PASSPHRASE, which is not set"), "{err}");
    // Each nextest test runs in its own process: setting a variable here touches no other test.
    std::env::set_var("GPT_TEST_KEY_PASSPHRASE", "pass phrase; 'x'");
    let ssh = connect(&config).unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert_eq!(ssh.run(&["echo", "in"]).unwrap().stdout, "in\n");
}

/// The SSH layer itself: exit codes in words, arguments passed whole, SFTP put/get.
#[test]
fn remote_commands_explain_exit_codes_and_keep_arguments_whole() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    sshd.write_known_hosts(&known_hosts);
    let ssh = connect(&SshConfig {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: sshd.user.clone(),
        key_file: Some(sshd.client_key.clone()),
        passphrase_env: None,
        known_hosts,
        accept_new_host_keys: false,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(30),
    })
    .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));

    let out = ssh.run(&["gptransfer-no-such-command", "x"]).unwrap();
    assert_eq!(out.code, 127, "{out:?}");
    let words = out.explain();
    assert!(words.contains("command not found") && words.contains("exit 127"), "{words}");
    assert!(words.contains("gptransfer-no-such-command"), "the remote stderr is quoted: {words}");

    let out = ssh.run(&["sh", "-c", "exit 126"]).unwrap();
    assert_eq!(out.code, 126);
    assert!(out.explain().contains("not executable"), "{}", out.explain());

    let out = ssh.run(&["sh", "-c", "kill -9 $$"]).unwrap();
    assert_eq!(out.code, 137, "{out:?}");
    assert!(out.explain().contains("killed by signal 9"), "{}", out.explain());

    let out = ssh.run(&["sh", "-c", "echo oops >&2; exit 1"]).unwrap();
    assert_eq!(out.code, 1);
    assert_eq!(out.explain(), "exit 1: failed: oops");
    assert_eq!(explain_exit(255, ""), "exit 255: SSH failure (connection, authentication or the remote sshd)");

    // Spaces, quotes, `;`, `$`, backticks and an empty argument arrive as they were sent.
    let tricky = ["a b", "it's", "x; touch /tmp/gptransfer-injected", "$HOME", "`id`", "", "\"q\"", "*"];
    let mut args = vec!["printf", "<%s>\\n"];
    args.extend(tricky);
    let out = ssh.run(&args).unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let expected: String = tricky.iter().map(|a| format!("<{a}>\n")).collect();
    assert_eq!(out.stdout, expected);
    assert!(!Path::new("/tmp/gptransfer-injected").exists(), "an argument was run as a command");

    // Much stderr before any stdout must not stall the channel (both streams are drained).
    let out = ssh.run(&["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done"]).unwrap();
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.len()), (0, "done\n", 3_000_000));

    // SFTP put and get.
    let local = dir.path().join("local file.txt");
    fs::write(&local, b"hello over sftp\n").unwrap();
    let remote = dir.path().join("remote copy.txt");
    assert_eq!(ssh.put(&local, &remote).unwrap(), 16);
    let back = dir.path().join("back.txt");
    assert_eq!(ssh.get(&remote, &back).unwrap(), 16);
    assert_eq!(fs::read(&back).unwrap(), b"hello over sftp\n");
}

/// A remote `root` that does not exist is found at the pre-flight, before any data moves.
#[test]
fn a_missing_remote_root_is_refused_before_any_data_moves() {
    let sshd = Sshd::start();
    let env = TestEnv::new("ssh_transport_missing_root");
    let remote = setup(&env);
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    write_config(&env, &sshd, &sshd.client_key, "");
    fs::remove_dir(&remote).unwrap();
    let out = env.run(&["run"]);
    out.assert_code(2);
    assert!(out.stderr.contains(&format!("root {} cannot be used", remote.display())), "{}", out.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.defects"), "0", "rows were loaded");
    assert!(!remote.exists());
}
