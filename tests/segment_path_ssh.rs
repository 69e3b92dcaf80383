//! The `gpfdist` transport with its gpfdist processes on an ETL host reached over SSH (the
//! transport's `ssh` option): against real GP6 clusters and a real OpenSSH server on 127.0.0.1
//! (`support::sshd`), a window moves segment to segment byte-exact and counted; the remote
//! gpfdist processes are children of sshd's session (not of gptransfer) and never outlive the
//! window — gone after a run, a failing window, a window past `timeout`, and a SIGKILL of
//! gptransfer (the SSH session ends, the remote shell sees EOF and cleans up); bad SSH settings
//! are refused by `config check` and `run` before any data moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::fact::{fact_jobs, fact_source_sql, DAY, FACT, FACT_COLUMNS, FACT_COLUMNS_DDL};
use support::runs::{wait_for_row, wait_until_gone, Guard};
use support::sshd::Sshd;
use support::{gp6_home, table_digest, CmdOutput, Kind, Server, TestEnv};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The remote work_dir: only the remote shell uses it (gptransfer's own side makes nothing).
fn remote_dir(env: &TestEnv) -> std::path::PathBuf {
    env.dir().join("remote-gpfdist")
}

/// The transport's TOML: gpfdist over SSH to `sshd`, with `extra` options in the `ssh` table
/// and `gpfdist` as the remote program.
fn transport_with(first_port: u16, sshd: &Sshd, key: &Path, gpfdist: &str, extra: &str) -> String {
    format!(
        r#"transport = {{ plugin = "gpfdist", host = "127.0.0.1", port_range = [{first_port}, {}], gpfdist = "{gpfdist}", work_dir = "{{TEMP_DIR}}/remote-gpfdist", ssh = {{ host = "127.0.0.1", port = {}, user = "{}", key_file = "{}", known_hosts = "{{TEMP_DIR}}/known_hosts", connect_timeout = "5s", read_timeout = "30s"{extra} }} }}"#,
        first_port + 39,
        sshd.port,
        sshd.user,
        key.display(),
    )
}

fn transport(first_port: u16, sshd: &Sshd) -> String {
    transport_with(first_port, sshd, &sshd.client_key, &gp6_home().join("bin/gpfdist").display().to_string(), "")
}

/// Every gpfdist process alive (not a zombie) serving a directory under `dir`: (pid, cmdline).
fn gpfdists_under(dir: &Path) -> Vec<(u32, String)> {
    processes_naming(dir)
        .into_iter()
        .filter(|(_, cmdline)| cmdline.split(' ').next().unwrap_or("").ends_with("/gpfdist"))
        .collect()
}

/// Every process alive (not a zombie) whose command line names `dir`: the remote gpfdist
/// processes, and the remote shell that started them (its script names the work_dir).
fn processes_naming(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(&needle) {
            continue;
        }
        let state = stat_fields(pid).map(|(state, _)| state).unwrap_or('?');
        if state != 'Z' && state != 'X' {
            found.push((pid, cmdline));
        }
    }
    found
}

/// A process's state and parent pid, from /proc/<pid>/stat.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The command names of `pid`'s ancestors, nearest first.
fn ancestors(pid: u32) -> Vec<(u32, String)> {
    let mut chain = Vec::new();
    let mut at = pid;
    while let Some((_, ppid)) = stat_fields(at) {
        if ppid <= 1 {
            break;
        }
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default().trim().to_string();
        chain.push((ppid, comm));
        at = ppid;
    }
    chain
}

/// Waits (a little) until no gpfdist serves under the remote work_dir and the window
/// directories are gone; fails naming what is left.
fn assert_nothing_left(env: &TestEnv, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_naming(&remote_dir(env));
        let dirs = support::files::names_in(&remote_dir(env));
        if left.is_empty() && dirs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left {when}: processes {left:?}, window directories {dirs:?} in {}",
            remote_dir(env).display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn prepare(env: &TestEnv, sshd: &Sshd) {
    sshd.write_known_hosts(&env.dir().join("known_hosts"));
    std::fs::create_dir_all(remote_dir(env)).unwrap();
}

const BIG_ROWS: i32 = 60_000;

/// GP6 source `big` (rows of the first hour of 2024 on both segments) and an empty target `big`.
fn big_tables(env: &TestEnv, sshd: &Sshd, first_port: u16, filter: &str) {
    env.src_psql(&format!(
        "CREATE TABLE big (id integer, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);
         INSERT INTO big SELECT g, timestamp '2024-01-01 00:00:00' + (g % 3600) * interval '1 second',
                rpad(g::text, 100, 'x') FROM generate_series(1, {BIG_ROWS}) g;"
    ));
    env.dst_psql(
        "SET ROLE gpt;
         CREATE TABLE big (id integer PRIMARY KEY, ts timestamp NOT NULL, payload text) DISTRIBUTED BY (id);",
    );
    big_config(env, &transport(first_port, sshd), filter);
}

fn big_config(env: &TestEnv, transport: &str, filter: &str) {
    let source = if filter.is_empty() {
        String::new()
    } else {
        format!("source = {{ plugin = \"copy\", filter = {filter:?} }}\n")
    };
    env.write_config(&format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-01-01 00:00:00"
duration = "1h"
retries = 0
{transport}

[[jobs.j.tables]]
table = "public.big"
condition_column = "ts"
final_end = "2024-01-01 01:00:00"
{source}"#
    ));
}

/// The target's `payload varchar(100)` from the source's text would cut trailing spaces
/// silently: accepted for that column (the only entry, last in the file), so a longer value
/// fails loudly on the target.
fn accept_narrow_payload(env: &TestEnv) {
    let path = env.dir().join("gptransfer.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    env.write_config(&format!("{text}lossy_columns = [\"payload\"]\n"));
}

/// One source segment sleeps at row 50 000: the window is provably mid-way until the test acts.
const HOLD: &str = "id <> 50000 OR pg_sleep(40) IS NOT NULL";

async fn wait_until_mid_window(dst: &tokio_postgres::Client) {
    wait_for_row(
        dst,
        "the target's INSERT from the readable external table",
        "SELECT 0::bigint FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer %' AND query LIKE 'INSERT INTO%gptransfer_in%'",
    )
    .await;
}

fn big_digest(env: &TestEnv, on_target: bool) -> String {
    let (pg, db) = if on_target { (env.dst, &env.dst_db) } else { (env.src, &env.db) };
    table_digest(pg, db, "big", &["id", "ts", "payload"], "id", "true")
}

fn big_count(env: &TestEnv) -> String {
    env.dst_psql("SELECT count(*) FROM big")
}

fn history_count(env: &TestEnv) -> String {
    if env.dst_psql("SELECT to_regclass('gptransfer.history') IS NULL") == "t" {
        return "0".into();
    }
    env.dst_psql("SELECT count(*) FROM gptransfer.history")
}

fn run_code(out: &CmdOutput, code: i32) {
    assert_eq!(out.code, code, "{}", out.render());
}

// ---------------------------------------------------------------------------------------------
// 1. GP6 → GP6 through gpfdist on the ETL host over SSH
// ---------------------------------------------------------------------------------------------

const BY_KEY: &str = "eda.by_key";

#[test]
fn gp6_to_gp6_through_gpfdist_over_ssh_is_byte_exact_and_counted() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_gp6_gp6", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    env.src_psql(&format!("SET extra_float_digits = 3;\n{}", fact_source_sql(Kind::Gp6)));
    env.dst_psql(&format!(
        "SET ROLE gpt;\nCREATE SCHEMA eda;\n\
         CREATE TABLE {BY_KEY} ({FACT_COLUMNS_DDL}, PRIMARY KEY (id)) DISTRIBUTED BY (id);"
    ));
    // The remote gpfdist is a wrapper that notes its arguments and its ancestors' names.
    let calls = env.dir().join("gpfdist-calls.txt");
    let wrapper = env.dir().join("etl-bin/gpfdist");
    std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\np=$PPID; chain=\nwhile [ \"$p\" -gt 1 ]; do chain=\"$chain $(cat /proc/$p/comm)\"; \
             p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done\n\
             echo \"$* |$chain\" >> {}\nexec {} \"$@\"\n",
            calls.display(),
            gp6_home().join("bin/gpfdist").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let transport = transport_with(31200, &sshd, &sshd.client_key, &wrapper.display().to_string(), "");
    let config = fact_jobs(&[("replace", BY_KEY)], "6h", false);
    env.write_config(&config.replace("mode = \"", &format!("{transport}\nmode = \"")));
    let day = table_digest(env.src, &env.db, FACT, FACT_COLUMNS, "id", DAY);

    // config check: every segment of both clusters reaches a probe gpfdist on the ETL host.
    let out = env.run(&["config", "check"]);
    run_code(&out, 0);
    let noted = std::fs::read_to_string(&calls).unwrap_or_default();
    let probes: Vec<&str> = noted.lines().filter(|l| l.contains(" -V")).collect();
    assert_eq!(probes.len(), 4, "a probe gpfdist per end of the range and side:\n{noted}");
    let through_sshd = |l: &&str| {
        let chain = l.rsplit_once('|').map_or("", |(_, c)| c);
        chain.contains(" sshd") && !chain.split(' ').any(|c| c == "gptransfer")
    };
    assert!(probes.iter().all(through_sshd), "probe gpfdist not started through sshd:\n{noted}");
    assert_nothing_left(&env, "after config check");
    std::fs::write(&calls, "").unwrap();

    let out = env.run(&["run"]);
    run_code(&out, 0);
    assert!(out.stdout.contains("4 window(s) loaded, 0 failed"), "{}", out.render());
    assert_eq!(table_digest(env.dst, &env.dst_db, BY_KEY, FACT_COLUMNS, "id", "true"), day);
    assert_eq!(
        env.dst_psql(
            "SELECT count(*) || ' ' || sum(rows_read) || ' ' || sum(rows_written) FROM gptransfer.history \
             WHERE status = 'succeeded' AND rows_read = rows_written"
        ),
        format!("4 {0} {0}", day.split(' ').next().unwrap())
    );
    assert_eq!(env.dst_psql("SELECT DISTINCT chain FROM gptransfer.history"), "copy > gpfdist > copy");
    // The bytes recorded are the text the source's segments wrote, counted on the ETL host
    // (the wrapper's own writes before it runs gpfdist are not).
    let text =
        env.src_psql(&format!("SET extra_float_digits = 3;\n\\copy (SELECT * FROM {FACT} WHERE {DAY}) to stdout"));
    assert_eq!(env.dst_psql("SELECT sum(bytes) FROM gptransfer.history"), (text.len() + 1).to_string());
    // Each window's two gpfdist processes were started through sshd, in the remote work_dir.
    let noted = std::fs::read_to_string(&calls).unwrap();
    let started: Vec<&str> = noted.lines().filter(|l| l.contains(" -m ")).collect();
    assert_eq!(started.len(), 8, "two gpfdist per window:\n{noted}");
    let remote = remote_dir(&env).display().to_string();
    assert!(started.iter().all(|l| through_sshd(l) && l.contains(&remote)), "{noted}");
    assert_nothing_left(&env, "after the run");
}

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL of gptransfer mid-window
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_window_leaves_no_remote_gpfdist_and_the_target_unchanged() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_sigkill", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    big_tables(&env, &sshd, 31300, HOLD);
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&dst).await;
    let running = gpfdists_under(&remote_dir(&env));
    assert_eq!(running.len(), 2, "the window's two gpfdist processes: {running:?}");
    // Started through SSH: sshd is among their ancestors, gptransfer is not.
    for (pid, cmdline) in &running {
        let chain = ancestors(*pid);
        assert!(chain.iter().any(|(_, c)| c.starts_with("sshd")), "{cmdline}: not under sshd: {chain:?}");
        assert!(!chain.iter().any(|(p, _)| *p == run.pid()), "{cmdline}: a child of gptransfer: {chain:?}");
    }
    run.signal("KILL");
    let out = run.wait();
    assert_eq!(out.code, 128 + 9, "{}", out.render());
    // The SSH session ends with the process: the remote shell sees EOF and cleans up.
    assert_nothing_left(&env, "after gptransfer was killed");
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0", "rows of the killed window are visible");

    big_config(&env, &transport(31300, &sshd), "");
    let out = env.run(&["run"]);
    run_code(&out, 0);
    assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {BIG_ROWS} rows")), "{}", out.render());
    assert_eq!(big_digest(&env, true), big_digest(&env, false));
    assert_nothing_left(&env, "after the next run");
}

/// The remote shell itself SIGKILLed mid-window (an administrator's `kill -9`, the OOM killer):
/// its gpfdist processes and the FIFO's holder die with it (the kernel's parent-death signal,
/// set through `setpriv`), not at their watchdog an hour later; the window fails, the target is
/// unchanged, and the next window's shell removes the dead one's directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_remote_shell_takes_its_gpfdist_along() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_shellkill", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    big_tables(&env, &sshd, 31700, HOLD);
    let dst = env.dst.admin(&env.dst_db).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&dst).await;
    let running = gpfdists_under(&remote_dir(&env));
    assert_eq!(running.len(), 2, "the window's two gpfdist processes: {running:?}");
    let parent = |pid: u32| stat_fields(pid).map(|(_, ppid)| ppid);
    let shell = parent(running[0].0).unwrap();
    assert_eq!(parent(running[1].0), Some(shell), "{running:?}");
    let killed = std::process::Command::new("kill").args(["-KILL", &shell.to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_naming(&remote_dir(&env)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "alive 5 s after their shell was killed: {:?}",
            processes_naming(&remote_dir(&env))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The window fails at once, naming what ended, instead of waiting out the segments'
    // retries of a gpfdist that is gone (300 s).
    let started = Instant::now();
    let out = run.wait();
    run_code(&out, 1);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(out.stderr.contains("the remote shell holding the window's gpfdist processes"), "{}", out.render());
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0", "rows of the failed window are visible");
    assert_eq!(support::files::names_in(&remote_dir(&env)).len(), 1, "the dead shell's directory");

    // Its directory is older than a minute: the next window's shell takes it away.
    let dir = remote_dir(&env).join(&support::files::names_in(&remote_dir(&env))[0]);
    let old = std::time::SystemTime::now() - Duration::from_secs(300);
    std::fs::File::open(&dir).unwrap().set_modified(old).unwrap();
    big_config(&env, &transport(31700, &sshd), "");
    let out = env.run(&["run"]);
    run_code(&out, 0);
    assert_eq!(big_digest(&env, true), big_digest(&env, false));
    assert_nothing_left(&env, "after the next run");
}

// ---------------------------------------------------------------------------------------------
// 3. A failing window, a window past `timeout`, SIGTERM
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_window_a_timed_out_one_and_sigterm_leave_no_remote_gpfdist() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_failures", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    big_tables(&env, &sshd, 31400, "");
    // A row the target refuses.
    env.dst_psql(
        "SET ROLE gpt; DROP TABLE big; \
         CREATE TABLE big (id integer, ts timestamp NOT NULL, payload varchar(100)) DISTRIBUTED BY (id);",
    );
    accept_narrow_payload(&env);
    env.src_psql("UPDATE big SET payload = repeat('y', 200) WHERE id = 50000");
    let out = env.run_with_timeout(&["run"], Duration::from_secs(90));
    run_code(&out, 1);
    assert!(out.stderr.contains("target cluster \"dst\""), "{}", out.render());
    assert!(out.stderr.contains("value too long"), "{}", out.render());
    let etl = format!("on the ETL host {}@127.0.0.1:{}", sshd.user, sshd.port);
    assert!(out.stderr.contains(&etl), "{}", out.render());
    assert_nothing_left(&env, "after the target failed");
    assert_eq!(big_count(&env), "0");

    // Past the timeout: the window fails, its remote gpfdist processes are ended.
    env.src_psql("UPDATE big SET payload = rpad(id::text, 100, 'x') WHERE id = 50000");
    let slow = transport(31400, &sshd).replace("work_dir =", "timeout = \"3s\", work_dir =");
    big_config(&env, &slow, HOLD);
    accept_narrow_payload(&env);
    let started = Instant::now();
    let out = env.run_with_timeout(&["run"], Duration::from_secs(90));
    run_code(&out, 1);
    assert!(out.stderr.contains("did not finish within the gpfdist transport's timeout (3s)"), "{}", out.render());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_nothing_left(&env, "after the timeout");
    assert_eq!(big_count(&env), "0");

    // SIGTERM mid-window (as Ctrl+C): the run stops, the remote gpfdist processes with it.
    big_config(&env, &transport(31400, &sshd), HOLD);
    accept_narrow_payload(&env);
    let dst = env.dst.admin(&env.dst_db).await;
    // The timed-out run's sessions are gone first: the next INSERT seen is this run's.
    wait_until_gone(&dst).await;
    let run = Guard(Some(env.spawn(&["run"])));
    wait_until_mid_window(&dst).await;
    assert_eq!(gpfdists_under(&remote_dir(&env)).len(), 2, "the window's two remote gpfdist processes");
    let signalled = Instant::now();
    run.signal("TERM");
    let out = run.wait();
    assert_eq!(out.code, 143, "{}", out.render());
    assert!(signalled.elapsed() < Duration::from_secs(15), "took {:?} to stop", signalled.elapsed());
    assert_nothing_left(&env, "after SIGTERM");
    wait_until_gone(&dst).await;
    assert_eq!(big_count(&env), "0");
}

// ---------------------------------------------------------------------------------------------
// 4. Bad SSH settings are refused before any data moves
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_ssh_settings_are_refused_by_config_check_and_run() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_refused", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    big_tables(&env, &sshd, 31500, "");
    let gpfdist = gp6_home().join("bin/gpfdist").display().to_string();
    let known_hosts = env.dir().join("known_hosts");

    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown host key",
            transport(31500, &sshd),
            vec!["host key refused".into(), "ssh-keyscan".into(), "127.0.0.1".into()],
        ),
        (
            "wrong client key",
            transport_with(31500, &sshd, &sshd.stranger_key(), &gpfdist, ""),
            vec![format!("the server refused user \"{}\"", sshd.user), "authorized_keys".into()],
        ),
        (
            "remote gpfdist missing",
            transport_with(31500, &sshd, &sshd.client_key, "/nonexistent/greenplum/bin/gpfdist", ""),
            vec!["/nonexistent/greenplum/bin/gpfdist".into(), "127.0.0.1".into(), "gpfdist =".into()],
        ),
    ];
    for (what, transport, words) in cases {
        if what == "unknown host key" {
            std::fs::write(&known_hosts, "").unwrap();
        } else {
            sshd.write_known_hosts(&known_hosts);
        }
        big_config(&env, &transport, "");
        for args in [&["config", "check"][..], &["run"][..]] {
            let out = env.run(args);
            assert_eq!(out.code, 2, "{what}: {args:?}: {}", out.render());
            for w in &words {
                assert!(out.stderr.contains(w.as_str()), "{what}: {args:?}: missing {w:?}\n{}", out.render());
            }
            assert_eq!(big_count(&env), "0", "{what}: rows moved");
            assert_eq!(history_count(&env), "0", "{what}: a window ran");
        }
    }
    // `host` without `ssh` keeps the local meaning; `ssh` with a relative remote path is refused.
    let relative = transport_with(31500, &sshd, &sshd.client_key, "bin/gpfdist", "");
    big_config(&env, &relative, "");
    let out = env.run(&["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.render());
    assert!(out.stderr.contains("absolute path on the ETL host"), "{}", out.render());
    assert_nothing_left(&env, "after the refusals");
}

// ---------------------------------------------------------------------------------------------
// 5. The remote FIFO's EOF comes only after the source is done
// ---------------------------------------------------------------------------------------------

/// One source segment starts writing seconds after the other has written all its rows and
/// said it is done (the writing gpfdist then closes the FIFO): all rows of both still arrive,
/// since the remote shell holds the FIFO's write end until gptransfer releases it. An empty
/// window (released before the reading gpfdist opens the FIFO) and a one-row window complete
/// at once.
#[test]
fn a_late_segment_still_arrives_over_ssh_and_empty_windows_complete() {
    let sshd = Sshd::start();
    let env = TestEnv::on("segssh_late_segment", Server::Gp6, Server::Gp6);
    prepare(&env, &sshd);
    // Row 1 is the first row of its segment: that segment sleeps before its first row.
    big_tables(&env, &sshd, 31600, "id > 1 OR pg_sleep(4) IS NOT NULL");
    let out = env.run(&["run"]);
    run_code(&out, 0);
    assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {BIG_ROWS} rows")), "{}", out.render());
    assert_eq!(big_digest(&env, true), big_digest(&env, false));

    for (filter, rows) in [("id < 0", 0), ("id = 7", 1)] {
        env.dst_psql("DELETE FROM gptransfer.cursors");
        big_config(&env, &transport(31600, &sshd), filter);
        let started = Instant::now();
        let out = env.run_with_timeout(&["run"], Duration::from_secs(60));
        run_code(&out, 0);
        assert!(out.stdout.contains(&format!("1 window(s) loaded, 0 failed; {rows} rows")), "{}", out.render());
        assert!(started.elapsed() < Duration::from_secs(30), "{filter}: took {:?}", started.elapsed());
    }
    assert_eq!(big_count(&env), "1");
    assert_nothing_left(&env, "after the runs");
}
