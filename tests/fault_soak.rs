//! Fault soak (issue 10, "then hunt"): the real binary moves four tables — one per mode,
//! replace, merge, append and full — from the source cluster to the target through fault
//! -injecting proxies ([`support::proxy`]) that cut, stall and slow connections at random
//! bytes and at chosen statements (COMMIT, COPY, the history and cursor writes…), round after
//! round, while the source gets new rows (and late rows into windows already loaded, for
//! replace and merge). After every round, and at the end with the faults off, the target must
//! hold exactly what the source has where it was loaded: no duplicate, no hole, history telling
//! the truth. Also the proxy's own tests.
//!
//! The seed is printed; `GPT_SOAK_SEED=<n>` replays a soak (the byte positions of the faults
//! follow from it; which connection they hit depends on timing, so a replay is close, not
//! exact). `GPT_SOAK_FAULTS` raises or lowers the number of faults to inject.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::proxy::{Action, Dir, Fault, Injected, Plan, Proxy, RandomFaults, Rng, StatementRule, Timing, Trigger};
use support::{CmdOutput, TestEnv};

// ---------------------------------------------------------------------------------------------
// The proxy itself
// ---------------------------------------------------------------------------------------------

/// A server that echoes every byte back, one thread per connection.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Reads until EOF, an error, or `limit` passes; returns what came.
fn read_all(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    out
}

fn pseudo_random_bytes(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(7);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn proxy_passes_every_byte_unchanged_even_when_slowed() {
    let port = echo_server();
    let slowed = Fault { action: Action::Slow, trigger: Trigger::Byte { dir: Dir::Down, offset: 1000 } };
    let proxy = Proxy::start("echo", port, Plan::Script(VecDeque::from([vec![], vec![slowed]])));
    let data = pseudo_random_bytes(1 << 20);
    for _ in 0..2 {
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        let writer = {
            let mut client = client.try_clone().unwrap();
            let data = data.clone();
            thread::spawn(move || client.write_all(&data).unwrap())
        };
        let mut echoed = Vec::new();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 65536];
        while echoed.len() < data.len() {
            let n = client.read(&mut buf).unwrap();
            assert!(n > 0, "EOF after {} bytes", echoed.len());
            echoed.extend_from_slice(&buf[..n]);
        }
        writer.join().unwrap();
        assert!(echoed == data, "the echoed bytes differ");
    }
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert_eq!((injected[0].action, injected[0].dir, injected[0].offset), (Action::Slow, Dir::Down, 1000));
}

/// A server that sends `greeting` on every connection and hands what it received, once the
/// client side is closed, to the returned channel.
fn talking_server(greeting: Vec<u8>) -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (tx, greeting) = (tx.clone(), greeting.clone());
            thread::spawn(move || {
                let _ = stream.write_all(&greeting);
                let _ = tx.send(read_all(&mut stream, Duration::from_secs(30)));
            });
        }
    });
    (port, rx)
}

#[test]
fn proxy_cuts_and_stalls_at_the_byte_asked() {
    let data = pseudo_random_bytes(5000);
    let (port, received) = talking_server(data.clone());
    let cut_up = Fault { action: Action::Cut, trigger: Trigger::Byte { dir: Dir::Up, offset: 1000 } };
    let cut_down = Fault { action: Action::Cut, trigger: Trigger::Byte { dir: Dir::Down, offset: 700 } };
    let stall = Fault { action: Action::Stall, trigger: Trigger::Byte { dir: Dir::Down, offset: 300 } };
    let plan = Plan::Script(VecDeque::from([vec![cut_up], vec![cut_down], vec![stall]]));
    let proxy = Proxy::start("talker", port, plan);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(30), ..Timing::default() });
    let limit = Duration::from_secs(10);

    // Cut after 1,000 bytes up: the server gets exactly those, then EOF.
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let _ = client.write_all(&data);
    read_all(&mut client, limit);
    let got = received.recv_timeout(limit).unwrap();
    assert!(got == data[..1000], "the server got {} bytes, not the first 1000", got.len());

    // Cut after 700 bytes down: the client gets exactly those, then EOF.
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let got = read_all(&mut client, limit);
    assert!(got == data[..700], "the client got {} bytes, not the first 700", got.len());
    received.recv_timeout(limit).unwrap();

    // Stall after 300 bytes down: those come, then nothing; the client giving up ends it, and
    // the server sees the end at once.
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let got = read_all(&mut client, Duration::from_millis(1500));
    assert!(got == data[..300], "{} bytes came through the stall, not the first 300", got.len());
    drop(client);
    received.recv_timeout(limit).unwrap();
    let deadline = Instant::now() + limit;
    while proxy.injected().get(2).and_then(|i| i.held).is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let injected = proxy.injected();
    assert_eq!(injected.len(), 3, "{injected:?}");
    let at = |i: &Injected| (i.action, i.dir, i.offset);
    assert_eq!(at(&injected[0]), (Action::Cut, Dir::Up, 1000));
    assert_eq!(at(&injected[1]), (Action::Cut, Dir::Down, 700));
    assert_eq!(at(&injected[2]), (Action::Stall, Dir::Down, 300));
    let held = injected[2].held.expect("the stall ended when the client closed");
    assert!(held >= Duration::from_millis(1400) && !injected[2].stall_timed_out, "{}", injected[2]);
}

/// Statement faults against the real target server: a COMMIT stopped before the server gets
/// it rolls back; a COMMIT whose reply is cut commits although the client only sees an error
/// (the lost-reply case the soak aims at).
#[tokio::test(flavor = "multi_thread")]
async fn proxy_cuts_before_a_statement_or_its_reply() {
    let env = TestEnv::new("proxy_statement");
    env.dst_psql("CREATE TABLE t (x int)");
    let commit_before =
        Fault { action: Action::Cut, trigger: Trigger::Statement { pattern: "COMMIT".into(), reply: false } };
    let commit_reply =
        Fault { action: Action::Cut, trigger: Trigger::Statement { pattern: "COMMIT".into(), reply: true } };
    let proxy =
        Proxy::start("target", env.dst.port, Plan::Script(VecDeque::from([vec![commit_before], vec![commit_reply]])));
    for x in [1, 2] {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(proxy.port)
            .user("gpt")
            .password(&env.dst.password)
            .dbname(&env.dst_db)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({x})")).await.unwrap();
        let commit = client.batch_execute("COMMIT").await;
        assert!(commit.is_err(), "the COMMIT of {x} answered");
    }
    assert_eq!(env.dst_psql("SELECT string_agg(x::text, ',') FROM t"), "2", "only the COMMIT whose reply was cut ran");
    let injected = proxy.injected();
    assert_eq!(injected.len(), 2, "{injected:?}");
    assert!(injected.iter().all(|i| i.statement.as_deref() == Some("COMMIT")), "{injected:?}");
    assert_eq!((injected[0].dir, injected[1].dir), (Dir::Up, Dir::Down));
}

// ---------------------------------------------------------------------------------------------
// Found by the soak
// ---------------------------------------------------------------------------------------------

/// 180 rows, one a minute over three hours from 2024-03-01.
const THREE_HOURS_SQL: &str = r#"
CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);
INSERT INTO public.events
SELECT i, timestamp '2024-03-01 00:00:00' + (i - 1) * interval '1 minute', 'v' || i
FROM generate_series(1, 180) AS i;
"#;

/// The target through `proxy`; job `j` moves `public.events` in 1h windows up to `end`.
fn proxied_events_job(env: &TestEnv, proxy: &Proxy, mode: &str, end: &str) -> String {
    format!(
        r#"[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:{port}/{dst_db}"
password_env = "GPT_DST_PASSWORD"
sslmode = "disable"

[state]
cluster = "dst"

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "{end}"
duration = "1h"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
mode = "{mode}"
key = ["id"]
"#,
        port = proxy.port,
        dst_db = env.dst_db,
    )
}

/// The soak's first find (seed 1, round 3): the target committed a window — rows, history
/// `succeeded` and cursor in one transaction — but the reply to COMMIT was lost. The run then
/// recorded the attempt `failed` over the committed `succeeded` (0 rows written, "connection
/// closed") and stopped the table: the rows and the cursor were there, history said the window
/// never landed. Now the failure is recorded only over a row still `running`; a row the
/// commit made `succeeded` proves the window landed, and the run says so and goes on.
#[test]
fn a_window_whose_commit_reply_is_lost_is_recorded_as_landed() {
    let env = TestEnv::new("commit_reply_lost");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let proxy = Proxy::start("target", env.dst.port, Plan::Pass);
    // A first run with nothing due creates the state schema, so the window's COMMIT is the
    // first one the next run sends.
    env.write_config(&proxied_events_job(&env, &proxy, "append", "2024-03-01 00:00:00"));
    env.run(&["run"]).assert_success();
    let lost = Fault { action: Action::Cut, trigger: Trigger::Statement { pattern: "COMMIT".into(), reply: true } };
    proxy.set_plan(Plan::Once(vec![lost]));
    env.write_config(&proxied_events_job(&env, &proxy, "append", "2024-03-01 03:00:00"));

    let run = env.run(&["run"]);
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert_eq!((injected[0].statement.as_deref(), injected[0].dir), (Some("COMMIT"), Dir::Down));
    run.assert_success();
    assert!(run.stdout.contains("3 window(s) loaded, 0 failed; 180 rows"), "{}", run.render());
    assert!(run.stderr.contains("but the window is committed"), "{}", run.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(window_id || ' ' || status || ' ' || rows_written, E'\\n' ORDER BY id) FROM gptransfer.history"),
        "20240301000000^20240301010000 succeeded 60\n\
         20240301010000^20240301020000 succeeded 60\n\
         20240301020000^20240301030000 succeeded 60"
    );
    let digest =
        |pg: &support::Pg, db: &str| support::table_digest(pg, db, "public.events", &["id", "ts", "v"], "id", "true");
    assert_eq!(digest(env.dst, &env.dst_db), digest(env.src, &env.db));
}

/// The soak's second find (seed 2): a server that accepts the TCP connection but stalls in
/// the startup handshake (authentication, parameter status) hung the run: `connect_timeout`
/// only bounded the TCP connect, and keepalives never fire while the peer's TCP answers. The
/// runs waited until the proxy gave up (6 s); a real stalled server or middlebox is waited for
/// forever. Now connecting as a whole — TCP, TLS, startup, authentication — is bounded by
/// `connect_timeout`, as libpq bounds it.
#[test]
fn a_server_stalling_in_the_startup_handshake_fails_within_connect_timeout() {
    let env = TestEnv::new("startup_stall");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let proxy = Proxy::start("target", env.dst.port, Plan::Pass);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(60), ..Timing::default() });
    let config = proxied_events_job(&env, &proxy, "replace", "2024-03-01 03:00:00")
        .replace("sslmode = \"disable\"", "sslmode = \"disable\"\nconnect_timeout = \"2s\"");
    env.write_config(&config);
    // The server's first bytes (the authentication request), then the client's answer to it.
    for (dir, offset) in [(Dir::Down, 0), (Dir::Up, 20)] {
        let stall = Fault { action: Action::Stall, trigger: Trigger::Byte { dir, offset } };
        proxy.set_plan(Plan::Script(VecDeque::from([vec![stall]])));
        let began = Instant::now();
        let run = env.run(&["run"]);
        let took = began.elapsed();
        run.assert_code(2);
        assert!(
            took < Duration::from_secs(10),
            "{dir:?} stall at byte {offset}: the run took {took:?}\n{}",
            run.render()
        );
        assert!(run.stderr.contains("within 2s (connect_timeout)"), "{}", run.render());
    }
    assert_eq!(proxy.injected().len(), 2, "{:?}", proxy.injected());
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "180");
}

/// The soak's third find (seed 3): the state session's statements — the job lock, history,
/// cursors — had no client-side limit (the server's statement_timeout never sees a stalled
/// network), so a stall there hung the run until the proxy gave up, and forever behind a
/// middlebox that keeps answering keepalives. Now each ends within read_timeout and the run
/// fails the window instead; the next run loads it.
#[test]
fn a_state_session_stalling_fails_the_window_within_read_timeout() {
    let env = TestEnv::new("state_stall");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let proxy = Proxy::start("target", env.dst.port, Plan::Pass);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(60), ..Timing::default() });
    let config = proxied_events_job(&env, &proxy, "replace", "2024-03-01 03:00:00")
        .replace("sslmode = \"disable\"", "sslmode = \"disable\"\nread_timeout = \"2s\"");
    env.write_config(&config);
    env.run(&["config", "check"]).assert_success();
    let stall = Fault {
        action: Action::Stall,
        trigger: Trigger::Statement { pattern: "INSERT INTO \"gptransfer\".\"history\"".into(), reply: false },
    };
    proxy.set_plan(Plan::Once(vec![stall]));
    let began = Instant::now();
    let run = env.run(&["run"]);
    let took = began.elapsed();
    assert!(took < Duration::from_secs(15), "the run took {took:?}\n{}", run.render());
    run.assert_code(1);
    assert!(run.stdout.contains("no answer from the server within 2s (read_timeout)"), "{}", run.render());
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert!(!injected[0].stall_timed_out && injected[0].held.is_some(), "{}", injected[0]);
    env.run(&["run"]).assert_success();
    let digest =
        |pg: &support::Pg, db: &str| support::table_digest(pg, db, "public.events", &["id", "ts", "v"], "id", "true");
    assert_eq!(digest(env.dst, &env.dst_db), digest(env.src, &env.db));
}

/// Seed 1795864179688962075 (CI): the state schema's migrations ran unbounded — a stall on
/// `CREATE TABLE "gptransfer"."history"` of a first run held the run past any read_timeout.
/// Now each migration step is bounded like every other state statement, and rolled back.
#[test]
fn a_stall_while_creating_the_state_schema_fails_within_read_timeout() {
    let env = TestEnv::new("state_migration_stall");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let proxy = Proxy::start("target", env.dst.port, Plan::Pass);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(60), ..Timing::default() });
    let config = proxied_events_job(&env, &proxy, "replace", "2024-03-01 03:00:00")
        .replace("sslmode = \"disable\"", "sslmode = \"disable\"\nread_timeout = \"2s\"");
    env.write_config(&config);
    let stall = Fault {
        action: Action::Stall,
        trigger: Trigger::Statement { pattern: "CREATE TABLE \"gptransfer\".\"history\"".into(), reply: false },
    };
    proxy.set_plan(Plan::Once(vec![stall]));
    let began = Instant::now();
    let run = env.run(&["run"]);
    let took = began.elapsed();
    assert!(took < Duration::from_secs(15), "the run took {took:?}\n{}", run.render());
    assert_ne!(run.code, 0, "{}", run.render());
    assert!(run.stderr.contains("within 2s (read_timeout)"), "{}", run.render());
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    assert!(!injected[0].stall_timed_out && injected[0].held.is_some(), "{}", injected[0]);
    // Nothing of the half-made schema is left in the way: the next run creates it and loads.
    env.run(&["run"]).assert_success();
    let digest =
        |pg: &support::Pg, db: &str| support::table_digest(pg, db, "public.events", &["id", "ts", "v"], "id", "true");
    assert_eq!(digest(env.dst, &env.dst_db), digest(env.src, &env.db));
}

/// Also seed 3: compare kept using a target session after one of its statements got no
/// answer; every later window's statements queued behind it and waited out their own
/// read_timeout (18 windows: 18 timeouts), and the stalled connection stayed open to the end.
/// Now a session whose statement timed out is closed at once: the other windows fail fast
/// ("could not be compared") and the server's session goes away.
#[test]
fn compare_gives_up_a_stalled_session_at_once() {
    let env = TestEnv::new("compare_stall");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let proxy = Proxy::start("target", env.dst.port, Plan::Pass);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(60), ..Timing::default() });
    let config = proxied_events_job(&env, &proxy, "replace", "2024-03-01 03:00:00")
        .replace("duration = \"1h\"", "duration = \"10m\"")
        .replace("sslmode = \"disable\"", "sslmode = \"disable\"\nread_timeout = \"1s\"");
    env.write_config(&config);
    env.run(&["run"]).assert_success();
    let stall = Fault {
        action: Action::Stall,
        trigger: Trigger::Statement { pattern: "FROM \"public\".\"events\"".into(), reply: false },
    };
    proxy.set_plan(Plan::Once(vec![stall]));
    let began = Instant::now();
    let compare = env.run(&["compare"]);
    let took = began.elapsed();
    compare.assert_code(1);
    assert!(compare.stdout.contains("could not be compared"), "{}", compare.render());
    assert!(took < Duration::from_secs(8), "compare of 18 windows took {took:?}\n{}", compare.render());
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}");
    let held = injected[0].held.expect("the stall ended");
    assert!(held < Duration::from_secs(4), "the stalled session stayed open {held:?}");
}

/// A sibling of the lost COMMIT reply, found by reading the fix rather than by the soak: the
/// job lock lives on the state session, so when that session dies mid-window (a network cut,
/// a terminated backend) the lock goes with it while the window's own transaction goes on.
/// A second run then took the lock, closed the first one's attempt as abandoned and loaded the
/// same window; the first still committed its copy with the cursor: in append mode, every row
/// of the window twice (240 of 180). Now a window commits only over its own `running` history
/// row: one closed meanwhile by the run that took over rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_lock_with_its_state_session_does_not_commit_a_window_twice() {
    use support::runs::{wait_for_row, Guard};
    let env = TestEnv::new("lost_lock");
    env.src_psql(THREE_HOURS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-01 03:00:00"
duration = "1h"
mode = "append"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
"#,
    );
    let dst = env.dst.admin(&env.dst_db).await;
    // The first run's first window waits in its COPY behind this lock.
    let locker = env.dst.admin(&env.dst_db).await;
    locker.batch_execute("BEGIN; LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let first = Guard(Some(env.spawn(&["run"])));
    let in_copy = format!(
        "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer pid {} %' AND query LIKE 'COPY%' AND wait_event_type = 'Lock'",
        first.pid()
    );
    wait_for_row(&dst, "the first run's COPY to wait for the lock", &in_copy).await;
    // Its state session (the one not copying) dies, and the job lock with it.
    let state_backend = wait_for_row(
        &dst,
        "the first run's state session",
        &format!(
            "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'gptransfer pid {} %' AND query NOT LIKE 'COPY%'",
            first.pid()
        ),
    )
    .await;
    dst.execute("SELECT pg_terminate_backend(($1::bigint)::int)", &[&state_backend]).await.unwrap();
    // A second run takes the job over and waits behind the same lock.
    let second = Guard(Some(env.spawn(&["run"])));
    wait_for_row(
        &dst,
        "the second run's COPY to wait for the lock",
        &format!(
            "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'gptransfer pid {} %' AND query LIKE 'COPY%' AND wait_event_type = 'Lock'",
            second.pid()
        ),
    )
    .await;
    locker.batch_execute("COMMIT").await.unwrap();
    let (first, second) = (first.wait(), second.wait());
    let digest =
        |pg: &support::Pg, db: &str| support::table_digest(pg, db, "public.events", &["id", "ts", "v"], "id", "true");
    assert_eq!(digest(env.dst, &env.dst_db), digest(env.src, &env.db), "each row once\n{}", first.render());
    second.assert_success();
    assert_eq!(first.code, 1, "{}", first.render());
    assert!(first.stdout.contains("no longer running"), "{}", first.render());
    assert_eq!(
        env.dst_psql("SELECT string_agg(window_id || ' ' || status, E'\\n' ORDER BY id) FROM gptransfer.history"),
        "20240301000000^20240301010000 failed\n\
         20240301000000^20240301010000 succeeded\n\
         20240301010000^20240301020000 succeeded\n\
         20240301020000^20240301030000 succeeded"
    );
}

/// Found by the SSH soak: a connection that stopped answering in the middle of an upload was
/// given up only after four read_timeouts (8 s at 2 s; 20 minutes at the default 5 m): after the
/// write timed out, closing the remote file, the SFTP channel and the session each waited out
/// one more. Now a timeout closes the socket under libssh2 and the rest fails at once.
#[test]
fn an_ssh_connection_stalling_mid_upload_fails_the_window_soon() {
    let sshd = support::sshd::Sshd::start();
    let proxy = Proxy::start("sshd", sshd.port, Plan::Pass);
    proxy.set_timing(Timing { stall_max: Duration::from_secs(60), ..Timing::default() });
    let env = TestEnv::new("ssh_stall");
    env.src_psql(&support::defects_source_sql(6000, "3.6 seconds"));
    env.dst_psql(
        "CREATE SCHEMA eda; CREATE TABLE eda.defects (id bigint, evt_ts timestamp NOT NULL, glass text, \
         qty numeric(12,3), payload bytea);",
    );
    let line = sshd.known_hosts_line().replace(&format!("]:{} ", sshd.port), &format!("]:{} ", proxy.port));
    std::fs::write(env.dir().join("known_hosts"), line).unwrap();
    std::fs::create_dir(env.dir().join("remote")).unwrap();
    env.write_config(&format!(
        r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "3h"
transport = {{ plugin = "ssh", host = "127.0.0.1", port = {port}, user = "{user}", key_file = "{key}", known_hosts = "{{TEMP_DIR}}/known_hosts", root = "{{TEMP_DIR}}/remote", connect_timeout = "2s", read_timeout = "2s" }}

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
"#,
        port = proxy.port,
        user = sshd.user,
        key = sshd.client_key.display(),
    ));
    let stall = Fault { action: Action::Stall, trigger: Trigger::Byte { dir: Dir::Up, offset: 40_000 } };
    proxy.set_plan(Plan::Once(vec![stall]));
    let began = Instant::now();
    let run = env.run(&["run"]);
    let took = began.elapsed();
    let injected = proxy.injected();
    assert_eq!(injected.len(), 1, "{injected:?}\n{}", run.render());
    run.assert_code(1);
    let held = injected[0].held.expect("the stall ended");
    assert!(held < Duration::from_secs(4), "the stalled SSH connection was given up after {held:?}\n{}", run.render());
    assert!(took < Duration::from_secs(10), "the run took {took:?}\n{}", run.render());
    env.run(&["run"]).assert_success();
    assert_eq!(support::defects_digest(env.dst, &env.dst_db), support::defects_digest(env.src, &env.db));
}

// ---------------------------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------------------------

const START: &str = "2024-01-01 00:00:00";
/// Faults to inject before the faults are turned off.
const FAULTS: usize = 220;
/// The faulty part stops here even when fewer faults were injected (then the test fails).
const FAULTY_BUDGET: Duration = Duration::from_secs(120);
/// One run of the binary; a hang is a failure.
const RUN_LIMIT: Duration = Duration::from_secs(45);
/// The clusters' timeouts while faults are on: a stall must turn into a failure quickly.
const READ_TIMEOUT: &str = "700ms";
/// A stall no side gave up on within this is a hang (read_timeout is 700ms).
const STALL_MAX: Duration = Duration::from_secs(6);
/// The same over SSH, whose read_timeout is 2s.
const SSH_STALL_MAX: Duration = Duration::from_secs(10);

/// The four tables, one per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum T {
    Replace,
    Merge,
    Append,
    Full,
}

impl T {
    const ALL: [T; 4] = [T::Replace, T::Merge, T::Append, T::Full];
    const WINDOWED: [T; 3] = [T::Replace, T::Merge, T::Append];

    fn name(self) -> &'static str {
        match self {
            T::Replace => "soak.rep",
            T::Merge => "soak.mer",
            T::Append => "soak.app",
            T::Full => "soak.dim",
        }
    }

    fn mode(self) -> &'static str {
        match self {
            T::Replace => "replace",
            T::Merge => "merge",
            T::Append => "append",
            T::Full => "full",
        }
    }
}

/// Admin sessions on both sides, kept open: a psql process per check would cost the soak
/// more than its rounds.
struct Admin {
    rt: tokio::runtime::Runtime,
    src: tokio_postgres::Client,
    dst: tokio_postgres::Client,
}

impl Admin {
    fn new(env: &TestEnv) -> Admin {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (src, dst) = rt.block_on(async { (env.src.admin(&env.db).await, env.dst.admin(&env.dst_db).await) });
        Admin { rt, src, dst }
    }

    /// Runs `sql` (any number of statements); the rows as `psql -At` prints them.
    fn query(&self, client: &tokio_postgres::Client, sql: &str) -> String {
        let messages = self.rt.block_on(client.simple_query(sql)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let rows: Vec<String> = messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).unwrap_or("")).collect::<Vec<_>>().join("|"))
                }
                _ => None,
            })
            .collect();
        rows.join("\n")
    }

    fn src(&self, sql: &str) -> String {
        self.query(&self.src, sql)
    }

    fn dst(&self, sql: &str) -> String {
        self.query(&self.dst, sql)
    }
}

/// What the test knows about the source and the rounds so far.
struct Soak<'a> {
    env: &'a TestEnv,
    db: Admin,
    seed: u64,
    rng: Rng,
    /// In front of the source, the target, and (the SSH soak) the sshd.
    proxies: Vec<Proxy>,
    /// The job's `transport` line, when not the default.
    transport: Option<String>,
    next_id: i64,
    /// Windows (hours from START) are due up to here: the job's `end`.
    end_hour: i64,
    /// Rows were written up to this hour (exclusive).
    data_hour: i64,
    /// Per windowed table: hour → when (target clock, epoch seconds) rows of that already
    /// loaded window last changed on the source: until a load after that, it may differ.
    dirty: BTreeMap<T, BTreeMap<i64, f64>>,
    /// When the full table's source last changed.
    full_dirty: f64,
    cursors: BTreeMap<T, i64>,
    round: usize,
    exits: BTreeMap<String, usize>,
}

fn faults_wanted() -> usize {
    std::env::var("GPT_SOAK_FAULTS").ok().and_then(|v| v.parse().ok()).unwrap_or(FAULTS)
}

/// The soak's faults; `scale` multiplies every chance (a loaded machine runs fewer rounds in
/// the time, so it gets more faults a round).
fn random_plan(seed: u64, scale: f64) -> Plan {
    let rule = |pattern: &str, probability: f64| StatementRule {
        pattern: pattern.to_string(),
        probability: probability * scale,
    };
    Plan::Random(RandomFaults {
        seed,
        per_connection: 0.25 * scale,
        max_offset: 256 * 1024,
        // cut, stall, slow
        weights: [60, 8, 32],
        statement_stall: 0.1,
        statements: vec![
            // The window's commit: before it (rolled back), or its reply lost (committed).
            rule("COMMIT", 0.16),
            rule("COPY", 0.08),
            rule("\"history\"", 0.03),
            rule("\"cursors\"", 0.05),
            rule("DELETE FROM", 0.07),
            rule("TRUNCATE", 0.07),
            rule("pg_try_advisory_lock", 0.05),
        ],
    })
}

fn config(env: &TestEnv, src_port: u16, dst_port: u16, end_hour: i64, timeouts: (&str, &str)) -> String {
    let (connect, read) = timeouts;
    // Retries stay on (they meet the faults too), with waits short enough for RUN_LIMIT.
    let mut toml = format!(
        r#"[clusters.src]
url = "postgres://gpt@127.0.0.1:{src_port}/{db}"
password_env = "GPT_SRC_PASSWORD"
sslmode = "disable"
connect_timeout = "{connect}"
read_timeout = "{read}"

[clusters.dst]
url = "postgres://gpt@127.0.0.1:{dst_port}/{dst_db}"
password_env = "GPT_DST_PASSWORD"
sslmode = "disable"
connect_timeout = "{connect}"
read_timeout = "{read}"

[state]
cluster = "dst"

[jobs.soak]
from = "src"
to = "dst"
start = "{START}"
end = "{end}"
duration = "1h"
retry_delay = "100ms"
"#,
        db = env.db,
        dst_db = env.dst_db,
        end = hour_ts(end_hour),
    );
    for t in T::ALL {
        toml.push_str(&format!(
            "\n[[jobs.soak.tables]]\ntable = \"{}\"\nmode = \"{}\"\nkey = [\"id\"]\n",
            t.name(),
            t.mode()
        ));
        if t != T::Full {
            toml.push_str("condition_column = \"ts\"\n");
        }
    }
    toml
}

fn hour_ts(hour: i64) -> String {
    let start = chrono::NaiveDateTime::parse_from_str(START, "%Y-%m-%d %H:%M:%S").unwrap();
    (start + chrono::Duration::hours(hour)).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A row's text: varied lengths and the characters COPY escapes.
const PAYLOAD: &str = "md5(g::text) || CASE g % 5 WHEN 0 THEN E'\\ttab\\\\back\\nline' WHEN 1 THEN '' \
                       WHEN 2 THEN '缺陷' ELSE repeat('x', (g % 97)::int) END";

impl Soak<'_> {
    fn ctx(&self) -> String {
        format!("seed {} (GPT_SOAK_SEED={} to replay), round {}", self.seed, self.seed, self.round)
    }

    fn faults(&self) -> Vec<Injected> {
        self.proxies.iter().flat_map(Proxy::injected).collect()
    }

    fn target_clock(&self) -> f64 {
        self.db.dst("SELECT extract(epoch FROM clock_timestamp())").parse().unwrap()
    }

    /// New rows ahead of every cursor, late rows into loaded windows of replace and merge,
    /// changes to the full table; the end moves on by 1–2 windows.
    fn mutate(&mut self) {
        let mut sql = String::new();
        let ahead_from = self.data_hour;
        let ahead_to = self.end_hour + 4;
        for t in T::WINDOWED {
            // New rows: only at or after the job's end so far, so never behind any cursor (the
            // append table must not get rows in windows it has loaded).
            let n = 20 + self.rng.below(60) as i64;
            let (a, b) = (self.next_id, self.next_id + n - 1);
            self.next_id += n;
            let span = ahead_to - ahead_from.max(self.end_hour);
            let first = ahead_from.max(self.end_hour);
            sql.push_str(&format!(
                "INSERT INTO {} SELECT g, timestamp '{START}' + ({first} + (g * 7919) % {span}) * interval '1 hour' \
                 + ((g * 31) % 3600) * interval '1 second', {PAYLOAD} FROM generate_series({a}, {b}) g;\n",
                t.name()
            ));
        }
        let mut late: Vec<(T, i64)> = Vec::new();
        for t in [T::Replace, T::Merge] {
            let cursor = self.cursors[&t];
            if cursor == 0 {
                continue;
            }
            for _ in 0..1 + self.rng.below(3) {
                let hour = self.rng.below(cursor as u64) as i64;
                let (from, to) = (hour_ts(hour), hour_ts(hour + 1));
                match self.rng.below(3) {
                    0 => {
                        let n = 1 + self.rng.below(5) as i64;
                        let (a, b) = (self.next_id, self.next_id + n - 1);
                        self.next_id += n;
                        sql.push_str(&format!(
                            "INSERT INTO {} SELECT g, timestamp '{from}' + ((g * 53) % 3600) * interval '1 second', \
                             {PAYLOAD} || ' late' FROM generate_series({a}, {b}) g;\n",
                            t.name()
                        ));
                    }
                    1 => sql.push_str(&format!(
                        "UPDATE {n} SET v = v || ' changed' WHERE id IN (SELECT id FROM {n} WHERE ts >= '{from}' \
                         AND ts < '{to}' ORDER BY id LIMIT 3);\n",
                        n = t.name()
                    )),
                    _ => sql.push_str(&format!(
                        "DELETE FROM {n} WHERE id IN (SELECT id FROM {n} WHERE ts >= '{from}' AND ts < '{to}' \
                         ORDER BY id DESC LIMIT 2);\n",
                        n = t.name()
                    )),
                }
                late.push((t, hour));
            }
        }
        // The full table: a few new rows, changes and deletions every round.
        let (a, b) = (self.next_id, self.next_id + 4);
        self.next_id += 5;
        let k = self.rng.below(1000);
        sql.push_str(&format!(
            "INSERT INTO soak.dim SELECT g, timestamp '{START}' + g * interval '1 minute', {PAYLOAD} \
             FROM generate_series({a}, {b}) g;\n\
             UPDATE soak.dim SET v = v || ' r{round}' WHERE id % 1000 = {k} OR id % 997 = {k};\n\
             DELETE FROM soak.dim WHERE id IN (SELECT id FROM soak.dim ORDER BY md5(id::text || '{k}') LIMIT 1);\n",
            round = self.round
        ));
        self.db.src(&sql);
        let now = self.target_clock();
        for (t, hour) in late {
            self.dirty.get_mut(&t).unwrap().insert(hour, now);
        }
        self.full_dirty = now;
        self.data_hour = ahead_to;
        self.end_hour += 1 + self.rng.below(2) as i64;
    }

    fn write_config(&self, timeouts: (&str, &str)) {
        let mut toml = config(self.env, self.proxies[0].port, self.proxies[1].port, self.end_hour, timeouts);
        if let Some(transport) = &self.transport {
            toml = toml.replace("duration = \"1h\"\n", &format!("duration = \"1h\"\n{transport}\n"));
        }
        self.env.write_config(&toml);
    }

    /// Runs the binary; never a panic, a signal or a hang, whatever the faults.
    fn run(&mut self, args: &[&str], allowed: &[i32]) -> CmdOutput {
        self.run_together(&[args], Duration::ZERO, allowed).pop().unwrap()
    }

    /// Runs each command line, the next one `stagger` after the one before, all at once;
    /// never a panic, a signal or a hang, whatever the faults.
    fn run_together(&mut self, commands: &[&[&str]], stagger: Duration, allowed: &[i32]) -> Vec<CmdOutput> {
        let began = Instant::now();
        let faults_before: Vec<usize> = self.proxies.iter().map(|p| p.injected().len()).collect();
        let mut running = Vec::new();
        for (i, args) in commands.iter().enumerate() {
            if i > 0 {
                thread::sleep(stagger);
            }
            running.push(self.env.spawn(args));
        }
        let outs: Vec<CmdOutput> = running.into_iter().map(|r| r.wait_timeout(RUN_LIMIT)).collect();
        let verbose = std::env::var_os("GPT_SOAK_VERBOSE").is_some();
        if verbose {
            let codes: Vec<i32> = outs.iter().map(|o| o.code).collect();
            eprintln!("round {} {commands:?} exit {codes:?} in {:.2}s", self.round, began.elapsed().as_secs_f64());
            for (proxy, before) in self.proxies.iter().zip(&faults_before) {
                for f in &proxy.injected()[*before..] {
                    eprintln!("    {f}");
                }
            }
        }
        let ctx = self.ctx();
        for (args, out) in commands.iter().zip(&outs) {
            if verbose && began.elapsed() > Duration::from_secs(4) {
                eprintln!("{}", out.stderr);
            }
            *self.exits.entry(format!("{} → {}", args[0], out.code)).or_default() += 1;
            assert!(!out.stderr.contains("panicked"), "{ctx}: gptransfer {args:?} panicked\n{}", out.render());
            assert!(allowed.contains(&out.code), "{ctx}: gptransfer {args:?} exit {}\n{}", out.code, out.render());
        }
        outs
    }

    /// What the daemon or a cron would run, chosen at random; sometimes two at once (one job
    /// lock: the second waits its turn by exiting 75, or takes over a run that lost its lock).
    fn one_round_of_work(&mut self) {
        let parallel = if self.rng.chance(0.5) { "2" } else { "1" };
        let run: &[&str] = &["run", "--parallel", parallel];
        let daemon: &[&str] = &["daemon", "--rounds", "2", "--interval", "200ms", "--parallel", parallel];
        let allowed = [0, 1, 2, 75];
        match self.rng.below(100) {
            0..=44 => {
                self.run(run, &allowed);
            }
            45..=79 => {
                self.run(daemon, &allowed);
            }
            _ => {
                let stagger = Duration::from_millis(self.rng.below(1500));
                self.run_together(&[run, daemon], stagger, &allowed);
            }
        }
        if self.rng.chance(0.3) {
            // Late rows reach loaded windows only by a re-load: compare --repair. Only replace
            // and merge get late rows; a repair of append or full would hide a loss.
            self.run(&["compare", "--repair", "--table", "soak.rep", "--table", "soak.mer"], &[0, 1, 2, 3, 75]);
        }
    }

    fn read_cursors(&mut self) {
        let exists = self.db.dst("SELECT to_regclass('gptransfer.cursors') IS NOT NULL");
        if exists != "t" {
            return;
        }
        let text = self.db.dst(&format!(
            "SELECT table_name || '|' || extract(epoch FROM cursor_end - timestamp '{START}')::bigint / 3600 \
             FROM gptransfer.cursors WHERE job = 'soak'"
        ));
        for line in text.lines() {
            let (name, hour) = line.split_once('|').unwrap();
            let t = *T::ALL.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("cursor of {name}?"));
            let hour: i64 = hour.parse().unwrap();
            let before = self.cursors[&t];
            assert!(hour >= before, "{}: the cursor of {name} went back from hour {before} to {hour}", self.ctx());
            assert!(hour <= self.end_hour, "{}: the cursor of {name} is past the end", self.ctx());
            self.cursors.insert(t, hour);
        }
    }

    /// Per hour below `cursor`: count and md5 of the rows, in id order.
    fn hour_digests(&self, source: bool, t: T, cursor: i64) -> BTreeMap<i64, String> {
        let sql = format!(
            "SELECT h || '|' || count(*) || ' ' || md5(string_agg(concat_ws('|', id, ts, quote_nullable(v)), E'\\n' \
             ORDER BY id)) FROM (SELECT *, (extract(epoch FROM date_trunc('hour', ts) - timestamp '{START}') / 3600)::bigint \
             AS h FROM {} WHERE ts < timestamp '{START}' + {cursor} * interval '1 hour') r GROUP BY h",
            t.name()
        );
        let text = if source { self.db.src(&sql) } else { self.db.dst(&sql) };
        text.lines()
            .map(|l| {
                let (h, d) = l.split_once('|').unwrap();
                (h.parse().unwrap(), d.to_string())
            })
            .collect()
    }

    /// A table's history, for a failure message.
    fn history_dump(&self, t: T) -> String {
        self.db.dst(&format!(
            "SELECT id || ' ' || window_id || ' ' || mode || ' ' || status || ' ' || coalesce(rows_written::text, '-') \
             || ' pid ' || pid || ' ' || coalesce(error, '') FROM gptransfer.history WHERE table_name = '{}' ORDER BY id",
            t.name()
        ))
    }

    /// What must hold after any round, faults or not.
    fn check(&mut self) {
        self.read_cursors();
        let ctx = self.ctx();
        let env = self.env;
        let history_exists = self.db.dst("SELECT to_regclass('gptransfer.history') IS NOT NULL") == "t";
        for t in T::ALL {
            let dups = self.db.dst(&format!("SELECT count(*) - count(DISTINCT id) FROM {}", t.name()));
            assert_eq!(dups, "0", "{ctx}: {} has duplicate keys on the target", t.name());
        }
        if !history_exists {
            return;
        }
        for t in T::WINDOWED {
            let cursor = self.cursors[&t];
            // The hours holding rows past the cursor.
            let beyond: BTreeSet<i64> = self
                .db
                .dst(&format!(
                    "SELECT DISTINCT floor(extract(epoch FROM ts - timestamp '{START}') / 3600)::bigint FROM {} \
                     WHERE ts >= timestamp '{START}' + {cursor} * interval '1 hour'",
                    t.name()
                ))
                .lines()
                .map(|l| l.parse().unwrap())
                .collect();
            if t == T::Append {
                assert!(beyond.is_empty(), "{ctx}: {} has rows past its cursor (hour {cursor})", t.name());
            }
            // Per window: the succeeded attempts, the newest one's start and rows written.
            let history: BTreeMap<i64, (usize, f64, i64)> = self
                .db
                .dst(&format!(
                    "SELECT (extract(epoch FROM window_start - timestamp '{START}') / 3600)::bigint || '|' || \
                     extract(epoch FROM window_end - window_start)::bigint || '|' || count(*) OVER w || '|' || \
                     extract(epoch FROM started_at) || '|' || rows_written \
                     FROM gptransfer.history WHERE job = 'soak' AND table_name = '{}' AND status = 'succeeded' \
                     WINDOW w AS (PARTITION BY window_id) ORDER BY id",
                    t.name()
                ))
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('|').collect();
                    assert_eq!(f[1], "3600", "{ctx}: {} window of another length: {l}", t.name());
                    (f[0].parse().unwrap(), (f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap()))
                })
                .collect(); // the newest attempt of each window last, so it stays
            let loaded: BTreeSet<i64> = history.keys().copied().collect();
            let expected: BTreeSet<i64> = (0..cursor).collect();
            if t == T::Append {
                assert_eq!(
                    loaded,
                    expected,
                    "{ctx}: {}: the windows history says succeeded are not exactly those below the cursor (hour \
                     {cursor})\n{}",
                    t.name(),
                    self.history_dump(t)
                );
            } else {
                // No hole below the cursor; past it, only windows that committed beyond a failed
                // one (a parallel backfill) hold rows, and history says they succeeded.
                assert!(
                    expected.is_subset(&loaded),
                    "{ctx}: {}: a window below the cursor (hour {cursor}) has no success in history\n{}",
                    t.name(),
                    self.history_dump(t)
                );
                assert!(
                    beyond.is_subset(&loaded),
                    "{ctx}: {} has rows past its cursor (hour {cursor}) in hours {beyond:?} that history does not \
                     say loaded\n{}",
                    t.name(),
                    self.history_dump(t)
                );
            }
            let src = self.hour_digests(true, t, cursor);
            let dst = self.hour_digests(false, t, cursor);
            let counts = |d: Option<&String>| d.map_or(0, |d| d.split(' ').next().unwrap().parse::<i64>().unwrap());
            for hour in 0..cursor {
                let (successes, last_start, written) = history[&hour];
                if t == T::Append {
                    assert_eq!(successes, 1, "{ctx}: append window {} loaded {successes} times", hour_ts(hour));
                }
                let clean = !matches!(self.dirty[&t].get(&hour), Some(&changed) if last_start <= changed);
                if !clean {
                    continue;
                }
                assert_eq!(
                    dst.get(&hour),
                    src.get(&hour),
                    "{ctx}: {} window {} differs from the source (count md5)",
                    t.name(),
                    hour_ts(hour)
                );
                assert_eq!(
                    written,
                    counts(dst.get(&hour)),
                    "{ctx}: {} window {}: history's rows written differ from the target's rows",
                    t.name(),
                    hour_ts(hour)
                );
            }
        }
        // The full table: equal to the source whenever its last load came after the last change.
        let last = self.db.dst(
            "SELECT extract(epoch FROM started_at) || '|' || rows_written FROM gptransfer.history \
             WHERE job = 'soak' AND table_name = 'soak.dim' AND status = 'succeeded' ORDER BY id DESC LIMIT 1",
        );
        if let Some((started, written)) = last.split_once('|') {
            if started.parse::<f64>().unwrap() > self.full_dirty {
                let digest = |pg: &support::Pg, db: &str| {
                    support::table_digest(pg, db, "soak.dim", &["id", "ts", "v"], "id", "true")
                };
                let dst = digest(env.dst, &env.dst_db);
                assert_eq!(dst, digest(env.src, &env.db), "{ctx}: soak.dim differs from the source after its reload");
                assert_eq!(written, dst.split(' ').next().unwrap(), "{ctx}: soak.dim rows written");
            }
        }
    }
}

#[test]
fn fault_soak_every_table_equal_no_duplicate_no_hole() {
    soak("fault_soak", None, faults_wanted(), FAULTY_BUDGET);
}

/// The SSH hop of the `ssh` transport: its proxy, the server, and its faults' plan.
struct SshHop {
    sshd: support::sshd::Sshd,
    proxy: Proxy,
}

/// The same soak with every window carried over SSH (gzip CSV parts written and read back over
/// SFTP) through a proxy in front of the sshd that cuts, stalls and slows the SSH connection
/// at random bytes; the clusters' proxies pass everything.
#[test]
fn fault_soak_through_ssh() {
    let sshd = support::sshd::Sshd::start();
    let proxy = Proxy::start("sshd", sshd.port, Plan::Pass);
    soak("fault_soak_ssh", Some(SshHop { sshd, proxy }), 40, Duration::from_secs(60));
}

/// Runs the soak: rounds with faults until `wanted` faults (at most `budget`), then without.
fn soak(name: &str, ssh: Option<SshHop>, wanted: usize, budget: Duration) {
    let started = Instant::now();
    let seed = std::env::var("GPT_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("{name}: seed {seed} (GPT_SOAK_SEED={seed} replays it)");
    let env = TestEnv::new(name);
    let table_sql = |pk: &str| {
        let mut sql = String::from("CREATE SCHEMA soak;\n");
        for t in T::ALL {
            sql.push_str(&format!("CREATE TABLE {} (id bigint{pk}, ts timestamp NOT NULL, v text);\n", t.name()));
        }
        sql
    };
    env.src_psql(&table_sql(" PRIMARY KEY"));
    // No key on the target: a duplicate must be visible, not refused.
    env.dst_psql(&table_sql(""));
    env.src_psql(&format!(
        "INSERT INTO soak.dim SELECT g, timestamp '{START}' + g * interval '1 minute', {PAYLOAD} \
         FROM generate_series(1, 300) g"
    ));

    let mut proxies =
        vec![Proxy::start("source", env.src.port, Plan::Pass), Proxy::start("target", env.dst.port, Plan::Pass)];
    let mut transport = None;
    let mut sshd = None;
    if let Some(hop) = ssh {
        // Trusted under the proxy's port, which is where the tool connects.
        let line =
            hop.sshd.known_hosts_line().replace(&format!("]:{} ", hop.sshd.port), &format!("]:{} ", hop.proxy.port));
        std::fs::write(env.dir().join("known_hosts"), line).unwrap();
        std::fs::create_dir(env.dir().join("remote")).unwrap();
        transport = Some(format!(
            "transport = {{ plugin = \"ssh\", host = \"127.0.0.1\", port = {}, user = \"{}\", key_file = \"{}\", \
             known_hosts = \"{dir}/known_hosts\", root = \"{dir}/remote\", connect_timeout = \"2s\", read_timeout = \"2s\" }}",
            hop.proxy.port,
            hop.sshd.user,
            hop.sshd.client_key.display(),
            dir = env.dir().display()
        ));
        proxies.push(hop.proxy);
        sshd = Some(hop.sshd);
    }
    // Over SSH the read_timeout is 2s.
    let stall_max = if sshd.is_some() { SSH_STALL_MAX } else { STALL_MAX };
    let timing = Timing { stall_max, slow_delay: Duration::from_millis(3), slow_budget: Duration::from_millis(150) };
    for p in &proxies {
        p.set_timing(timing);
    }
    let mut soak = Soak {
        env: &env,
        db: Admin::new(&env),
        seed,
        rng: Rng::new(seed),
        proxies,
        transport,
        next_id: 1000,
        end_hour: 0,
        data_hour: 0,
        dirty: T::ALL.iter().map(|&t| (t, BTreeMap::new())).collect(),
        full_dirty: 0.0,
        cursors: T::ALL.iter().map(|&t| (t, 0)).collect(),
        round: 0,
        exits: BTreeMap::new(),
    };

    let faulty = Instant::now();
    while soak.faults().len() < wanted && faulty.elapsed() < budget {
        // Behind the pace that reaches `wanted` in 70% of the budget: more faults a round.
        let pace = wanted as f64 * faulty.elapsed().as_secs_f64() / (0.7 * budget.as_secs_f64());
        let scale = (pace / soak.faults().len().max(1) as f64).clamp(1.0, 2.5);
        if sshd.is_some() {
            // Only the SSH connection is faulty: its bytes are opaque, so no statements.
            soak.proxies[2].set_plan(Plan::Random(RandomFaults {
                seed,
                per_connection: 0.3 * scale,
                max_offset: 256 * 1024,
                weights: [60, 10, 30],
                statement_stall: 0.0,
                statements: Vec::new(),
            }));
        } else {
            soak.proxies[0].set_plan(random_plan(seed, scale));
            soak.proxies[1].set_plan(random_plan(seed.rotate_left(17), scale));
        }
        soak.round += 1;
        soak.mutate();
        soak.write_config(("1s", READ_TIMEOUT));
        soak.one_round_of_work();
        soak.check();
    }
    let faults = soak.faults();
    let faulty_time = faulty.elapsed();
    let progress =
        format!("cursors at hours {:?} of {} under faults", soak.cursors.values().collect::<Vec<_>>(), soak.end_hour);

    // Faults off: everything is loaded and re-loaded, then all must be equal.
    for p in &soak.proxies {
        p.set_plan(Plan::Pass);
    }
    soak.round += 1;
    soak.end_hour = soak.data_hour;
    soak.write_config(("10s", "30s"));
    let mut clean_run = false;
    for _ in 0..4 {
        let out = soak.run(&["run"], &[0, 1, 75]);
        soak.check();
        if out.code == 0 && T::ALL.iter().all(|t| soak.cursors[t] == soak.end_hour) {
            clean_run = true;
            break;
        }
        thread::sleep(Duration::from_millis(300));
    }
    assert!(clean_run, "{}: without faults, runs did not bring every cursor to the end", soak.ctx());
    soak.run(&["compare", "--repair", "--table", "soak.rep", "--table", "soak.mer"], &[0]);
    // Every window is now loaded after its last change: check() holds each one to the source.
    for t in [T::Replace, T::Merge] {
        soak.dirty.get_mut(&t).unwrap().clear();
    }
    soak.check();
    let compare = soak.run(&["compare"], &[0]);
    assert!(compare.stdout.contains("0 differ"), "{}", compare.render());
    for t in T::ALL {
        let digest =
            |pg: &support::Pg, db: &str| support::table_digest(pg, db, t.name(), &["id", "ts", "v"], "id", "true");
        assert_eq!(
            digest(env.dst, &env.dst_db),
            digest(env.src, &env.db),
            "{}: {} differs at the end",
            soak.ctx(),
            t.name()
        );
    }
    assert_eq!(
        env.dst_psql("SELECT count(*) FROM gptransfer.history WHERE status = 'running'"),
        "0",
        "{}: attempts left running",
        soak.ctx()
    );

    let by_kind = |f: &dyn Fn(&Injected) -> bool| faults.iter().filter(|i| f(i)).count();
    let stalls: Vec<&Injected> = faults.iter().filter(|i| i.action == Action::Stall).collect();
    let per_proxy: Vec<String> = soak
        .proxies
        .iter()
        .map(|p| format!("{}: {} faults in {} connections", p.name(), p.injected().len(), p.connections()))
        .collect();
    eprintln!(
        "{name}: seed {seed}, {} rounds, {} faults in {:.1}s ({} cut, {} stall, {} slow; {} at a statement; {}); \
         {progress}; exits {:?}; {:.1}s in all",
        soak.round,
        faults.len(),
        faulty_time.as_secs_f64(),
        by_kind(&|i| i.action == Action::Cut),
        stalls.len(),
        by_kind(&|i| i.action == Action::Slow),
        by_kind(&|i| i.statement.is_some()),
        per_proxy.join(", "),
        soak.exits,
        started.elapsed().as_secs_f64()
    );
    assert!(faults.len() >= wanted, "{}: only {} faults injected in {budget:?}", soak.ctx(), faults.len());
    // Nothing hangs: every stall ended because the tool gave up on it (read_timeout 700ms).
    let hung: Vec<String> = stalls.iter().filter(|i| i.stall_timed_out).map(|i| i.to_string()).collect();
    assert!(hung.is_empty(), "{}: stalls nobody gave up on within {stall_max:?}:\n{}", soak.ctx(), hung.join("\n"));
}
