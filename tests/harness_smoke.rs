//! The test harness itself: clusters start, databases are isolated, password login works over
//! TCP, the binary runs, snapshot filters hide what changes from run to run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestEnv;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

#[tokio::test]
async fn admin_connection_writes_and_reads_the_source() {
    let env = TestEnv::new("admin_connection");
    let admin = env.src.admin(&env.db).await;
    admin
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, NULL);",
        )
        .await
        .unwrap();

    let rows = admin.query("SELECT id, name FROM items ORDER BY id", &[]).await.unwrap();
    let rows: Vec<(i32, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [(1, Some("one".to_string())), (2, Some("two".to_string())), (3, None)]);

    // psql sees the same rows; the target has the database but not the table.
    assert_eq!(env.src_psql("SELECT id, coalesce(name, '-') FROM items ORDER BY id"), "1|one\n2|two\n3|-");
    assert_eq!(env.dst_psql("SELECT count(*) FROM pg_tables WHERE tablename = 'items'"), "0");
}

#[tokio::test]
async fn environments_do_not_share_databases() {
    let a = TestEnv::new("isolation");
    let b = TestEnv::new("isolation");
    assert_ne!(a.db, b.db);
    a.src_psql("CREATE TABLE only_in_a (x int)");
    assert_eq!(b.src_psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "0");
}

#[tokio::test]
async fn tcp_login_as_gpt_needs_the_right_password() {
    let env = TestEnv::new("tcp_login");
    for pg in [env.src, env.dst] {
        let mut config: tokio_postgres::Config = pg.url(&env.db).parse().unwrap();

        config.password(pg.password.as_str());
        let (client, connection) =
            config.connect(NoTls).await.unwrap_or_else(|e| panic!("{} refused the right password: {e}", pg.name));
        tokio::spawn(connection);
        let row = client.query_one("SELECT current_user::text, current_database()::text", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "gpt");
        assert_eq!(row.get::<_, String>(1), env.db);

        config.password("not-the-password");
        let error =
            config.connect(NoTls).await.err().unwrap_or_else(|| panic!("{} accepted a wrong password", pg.name));
        assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{}: {error}", pg.name);
    }
}

#[test]
fn binary_runs_help() {
    let env = TestEnv::new("binary_help");
    // Only that it runs and exits; the help text is the CLI tests' business.
    env.run(&["--help"]).assert_success();
}

#[test]
fn config_placeholders_are_expanded() {
    let env = TestEnv::new("placeholders");
    let path = env.write_config("src = \"{SRC_URL}\"\ndst = \"{DST_URL}\"\n");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text,
        format!(
            "src = \"postgres://gpt@127.0.0.1:{}/{db}\"\ndst = \"postgres://gpt@127.0.0.1:{}/{db}\"\n",
            env.src.port,
            env.dst.port,
            db = env.db
        )
    );
    assert!(!text.contains(&env.src.password) && !text.contains(&env.dst.password));
}

#[test]
fn snapshot_filters_hide_run_specific_values() {
    let env = TestEnv::new("filters");
    let stdout = format!(
        "config {dir}/gptransfer.toml\n\
         source 127.0.0.1:{src}/{db} target 127.0.0.1:{dst}/{db}\n\
         socket {socket}\n\
         started 2024-05-06 07:08:09.123456+08 finished 2024-05-06T07:08:10Z\n\
         window 20200401000000^20200401010000 done in 1.23s (copy 0.45 s, count 12.5ms)\n\
         duration 90s lag 1h30m\n",
        dir = env.dir().display(),
        src = env.src.port,
        dst = env.dst.port,
        db = env.db,
        socket = env.src.socket_dir.display(),
    );
    cli_snapshot!(env.output(0, &stdout, "warning: at 2024-05-06 07:08:09\n"));
}

#[test]
#[should_panic(expected = "password leaked into stderr")]
fn leaked_password_fails_the_snapshot() {
    let env = TestEnv::new("leak");
    let out = env.output(2, "", &format!("cannot connect with {}", env.dst.password));
    support::assert_no_secret(&out);
}

#[test]
fn signals_reach_a_spawned_process_and_set_the_exit_code() {
    let env = TestEnv::new("signals");
    let mut sleep = std::process::Command::new("sleep");
    sleep.arg("30");
    let running = env.spawn_command(sleep);
    running.signal("TERM");
    assert_eq!(running.wait().code, 128 + 15);
}

#[test]
#[should_panic(expected = "did not finish within")]
fn a_hung_run_is_killed_at_the_timeout() {
    let env = TestEnv::new("timeout");
    let mut sleep = std::process::Command::new("sleep");
    sleep.arg("30");
    env.spawn_command(sleep).wait_timeout(std::time::Duration::from_millis(500));
}

/// The real Greenplum 6 cluster has a master and two primary segments, spreads a distributed
/// table over both, and makes role `gpt` log in with its password (a wrong one is refused).
#[test]
fn greenplum_6_cluster_has_two_segments_and_checks_passwords() {
    let gp6 = support::gp6();
    assert!(gp6.psql("postgres", "SELECT version()").contains("Greenplum Database 6."));
    assert_eq!(
        gp6.psql("postgres", "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0"),
        "2"
    );
    let env = TestEnv::on("gp6_harness", support::Server::Gp6, support::Server::Gp6);
    env.src_psql("CREATE TABLE t (a int) DISTRIBUTED BY (a); INSERT INTO t SELECT generate_series(1, 100);");
    assert_eq!(env.src_psql("SELECT count(DISTINCT gp_segment_id) FROM t"), "2");
    assert_ne!(env.db, env.dst_db, "GP6 → GP6 uses two databases");
    assert_password_checked(gp6);
}

/// The real PostgreSQL 8.2 server answers as 8.2 and checks role `gpt`'s password.
#[test]
fn postgresql_8_2_server_is_real_and_checks_passwords() {
    let pg82 = support::pg82();
    assert!(pg82.psql("postgres", "SELECT version()").starts_with("PostgreSQL 8.2."));
    assert_password_checked(pg82);
}

fn assert_password_checked(pg: &support::Pg) {
    let psql = |password: &str| {
        std::process::Command::new("psql")
            .args(["-X", "-Atc", "SELECT 1", &format!("postgres://gpt@127.0.0.1:{}/postgres", pg.port)])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    assert!(psql(&pg.password).status.success(), "gpt with its password is let in on {}", pg.name);
    let wrong = psql("wrong");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "a wrong password is refused on {}",
        pg.name
    );
}
