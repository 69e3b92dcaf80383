//! Config readers (issue 5 items 1-2, SPEC §6) against a real MariaDB and the two PostgreSQL
//! test clusters: a job defined by a MariaDB `etl_conf_d` row and a table list kept in a
//! PostgreSQL table runs and advances the row; a crash between the target commit and the MariaDB
//! update only re-loads the window, harmlessly; names read from the config tables are quoted or
//! refused, never executed.
//!
//! MariaDB must run on 127.0.0.1:3306 with the account of `scripts/mariadb.sh` (which
//! `scripts/test.sh` runs); without it these tests fail, they never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};

use support::{CmdOutput, TestEnv};

const MYSQL_PASSWORD_ENV: &str = "GPT_MYSQL_PASSWORD";
const FAILPOINT: &str = "after-commit-before-external-cursor";

/// One test's MariaDB database (named like the test's PostgreSQL databases), dropped at the end.
struct Maria {
    db: String,
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Maria {
    fn new(db: &str) -> Maria {
        // mysql://user:password@host:port, for machines where the account differs.
        let (user, password, host, port) = match std::env::var("GPT_TEST_MYSQL_URL") {
            Ok(url) => {
                let rest = url.strip_prefix("mysql://").expect("GPT_TEST_MYSQL_URL starts with mysql://");
                let (cred, addr) = rest.split_once('@').expect("GPT_TEST_MYSQL_URL has user:password@");
                let (user, password) = cred.split_once(':').unwrap_or((cred, ""));
                let (host, port) = addr.trim_end_matches('/').split_once(':').unwrap_or((addr, "3306"));
                (user.to_string(), password.to_string(), host.to_string(), port.to_string())
            }
            Err(_) => ("gpt_test".into(), "gpt_test".into(), "127.0.0.1".into(), "3306".into()),
        };
        let m = Maria { db: db.to_string(), host, port, user, password };
        m.sql_in("", &format!("DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}`"));
        m
    }

    fn sql_in(&self, db: &str, sql: &str) -> String {
        let client = ["mariadb", "mysql"]
            .into_iter()
            .find(|c| Command::new(c).arg("--version").stdout(Stdio::null()).status().is_ok())
            .expect("no mariadb/mysql client: install mariadb-server (scripts/setup.sh)");
        let mut cmd = Command::new(client);
        cmd.args(["--protocol=tcp", "-h", &self.host, "-P", &self.port, "-u", &self.user, "-N", "-B", "-e", sql])
            .env("MYSQL_PWD", &self.password);
        if !db.is_empty() {
            cmd.arg(db);
        }
        let out = cmd.output().expect("cannot run the mariadb client");
        assert!(
            out.status.success(),
            "MariaDB at {}:{} as {} failed (is it running? run scripts/mariadb.sh):\n{}\n--- sql\n{sql}",
            self.host,
            self.port,
            self.user,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    fn sql(&self, sql: &str) -> String {
        self.sql_in(&self.db, sql)
    }

    fn url(&self) -> String {
        format!("mysql://{}@{}:{}/{}", self.user, self.host, self.port, self.db)
    }

    /// `start | end` of the job rows, in `ORDER BY`.
    fn windows(&self, filter: &str) -> String {
        self.sql(&format!(
            "SELECT CONCAT(RUN_START_TIMESTAMP, ' | ', RUN_END_TIMESTAMP) FROM etl_conf_d WHERE {filter} ORDER BY job_group"
        ))
    }
}

impl Drop for Maria {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.sql_in("", &format!("DROP DATABASE IF EXISTS `{}`", self.db));
        }
    }
}

/// The seed's job table, with the per-row columns the table list joins on.
const ETL_CONF_D: &str = "CREATE TABLE etl_conf_d (
    JOB_NAME varchar(50) NOT NULL,
    RUN_START_TIMESTAMP datetime,
    RUN_END_TIMESTAMP datetime,
    VALID_FLG char(1),
    opera_type varchar(10),
    duration int,
    job_group varchar(20),
    query_condition_column varchar(64),
    dbtimestamp datetime
)";

fn clusters_config(maria: &Maria, job: &str) -> String {
    format!(
        r#"
[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "dst"

{job}
"#
    )
    .replace("{MYSQL_URL}", &maria.url())
}

/// Runs the binary with the MariaDB password in its environment (and a failpoint when asked).
fn run(env: &TestEnv, maria: &Maria, args: &[&str], failpoint: Option<&str>) -> CmdOutput {
    let mut cmd = env.command(args);
    cmd.env(MYSQL_PASSWORD_ENV, &maria.password);
    if let Some(f) = failpoint {
        cmd.env("GPTRANSFER_FAILPOINT", f);
    }
    env.spawn_command(cmd).wait()
}

/// A source table of 36 rows, one every 10 minutes from 2020-04-01 00:00, and its empty target.
fn fact_table(env: &TestEnv, quoted_name: &str) {
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {quoted_name} (id int PRIMARY KEY, evt_timestamp timestamp NOT NULL, v text)"
    );
    env.src_psql(&format!(
        "CREATE SCHEMA IF NOT EXISTS eda; {ddl}; INSERT INTO {quoted_name} \
         SELECT i, timestamp '2020-04-01' + (i - 1) * interval '10 minutes', 'v' || i FROM generate_series(1, 36) i"
    ));
    env.dst_psql(&format!("CREATE SCHEMA IF NOT EXISTS eda; {ddl}"));
}

fn count(env: &TestEnv, table: &str) -> i64 {
    env.dst_psql(&format!("SELECT count(*) FROM {table}")).parse().unwrap()
}

fn succeeded_windows(env: &TestEnv, table: &str) -> Vec<String> {
    env.dst_psql(&format!(
        "SELECT window_id FROM gptransfer.history WHERE table_name = '{table}' AND status = 'succeeded' ORDER BY id"
    ))
    .lines()
    .map(str::to_string)
    .collect()
}

/// One job row spanning 2020-04-01 00:00-02:00 whose two tables come from the file: fact_a
/// (replace) and fact_m (merge on id), 1h windows.
fn two_tables_of_one_job_row(env: &TestEnv, maria: &Maria) {
    maria.sql(&format!(
        "{ETL_CONF_D};
         INSERT INTO etl_conf_d (JOB_NAME, RUN_START_TIMESTAMP, RUN_END_TIMESTAMP, VALID_FLG, job_group)
         VALUES ('datatransfer', '2020-04-01 00:00:00', '2020-04-01 02:00:00', 'Y', 'g1')"
    ));
    fact_table(env, "eda.fact_a");
    fact_table(env, "eda.fact_m");
    env.write_config(&clusters_config(
        maria,
        r#"
[jobs.datatransfer]
from = "src"
to = "dst"
duration = "1h"
reader = { plugin = "mysql", url = "{MYSQL_URL}", password_env = "GPT_MYSQL_PASSWORD", table = "etl_conf_d" }

[[jobs.datatransfer.tables]]
table = "eda.fact_a"
condition_column = "evt_timestamp"

[[jobs.datatransfer.tables]]
table = "eda.fact_m"
condition_column = "evt_timestamp"
mode = "merge"
key = ["id"]
"#,
    ));
}

// ---------------------------------------------------------------------------------------------

#[test]
fn job_from_mariadb_and_table_list_from_postgres_runs_and_advances_the_job_rows() {
    let env = TestEnv::new("config_readers_job_and_list");
    let maria = Maria::new(&env.db);
    maria.sql(&format!(
        "{ETL_CONF_D};
         INSERT INTO etl_conf_d VALUES
           ('datatransfer', '2020-04-01 00:00:00', '2020-04-01 04:00:00', 'Y', 'T', 60, 'g1', 'evt_timestamp', NULL),
           ('datatransfer', '2020-04-01 00:00:00', '2020-04-01 04:00:00', 'Y', 'T', 30, 'g2', 'evt_timestamp', NULL),
           ('datatransfer', '2019-01-01 00:00:00', '2019-01-01 04:00:00', 'N', 'T', 60, 'g3', 'evt_timestamp', NULL),
           ('datatransfer', '2020-04-01 04:00:00', '2020-04-01 00:00:00', 'Y', 'T', 60, 'g4', 'evt_timestamp', NULL),
           ('compare',      '2019-01-01 00:00:00', '2019-01-01 04:00:00', 'Y', 'T', 60, 'g1', 'evt_timestamp', NULL)"
    ));
    // The seed's list table, created unquoted (so `sor.schemaname`), plus the join columns.
    env.src_psql(
        "CREATE SCHEMA sor;
         CREATE TABLE sor.schemaName (schemaName varchar(10), tableName varchar(100), valid_flag varchar(1),
                                      dbtimestamp timestamp NOT NULL DEFAULT now(),
                                      opera_type varchar(10), duration int, job_group varchar(20));
         INSERT INTO sor.schemaName (schemaName, tableName, valid_flag, opera_type, duration, job_group) VALUES
           ('eda', 'fact_a', 'Y', 'T', 60, 'g1'),
           ('eda', 'fact_b', 'Y', 'T', 30, 'g2'),
           ('eda', 'fact_off', 'N', 'T', 60, 'g1'),
           ('eda', 'fact_orphan', 'Y', 'T', 99, 'gX'),
           (NULL, 'fact_null', 'Y', 'T', 60, 'g1')",
    );
    fact_table(&env, "eda.fact_a");
    fact_table(&env, "eda.fact_b");
    env.write_config(&clusters_config(
        &maria,
        r#"
[jobs.datatransfer]
from = "src"
to = "dst"
reader = { plugin = "mysql", url = "{MYSQL_URL}", password_env = "GPT_MYSQL_PASSWORD", columns = { duration = "duration", condition_column = "query_condition_column" }, dbtimestamp_column = "dbtimestamp" }
tables_from = { plugin = "table-list", cluster = "src", table = "sor.schemaName", join = ["opera_type", "duration", "job_group"] }
"#,
    ));

    // `--until` stands in for the clock: the source holds data up to 06:00.
    let first = run(&env, &maria, &["run", "--until", "2020-04-01 04:00:00"], None);
    first.assert_success();
    assert_eq!(count(&env, "eda.fact_a"), 24, "{}", first.render());
    assert_eq!(count(&env, "eda.fact_b"), 24, "{}", first.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.fact_a WHERE evt_timestamp >= '2020-04-01 04:00'"), "0");
    // Per-table durations from the joined job rows: 4 hourly windows, 8 half-hour windows.
    assert_eq!(succeeded_windows(&env, "eda.fact_a").len(), 4);
    assert_eq!(succeeded_windows(&env, "eda.fact_b").len(), 8);
    assert_eq!(succeeded_windows(&env, "eda.fact_b")[0], "20200401000000^20200401003000");
    // Both valid rows moved by their span; the others are untouched; dbtimestamp is stamped.
    assert_eq!(
        maria.windows("JOB_NAME = 'datatransfer' AND job_group IN ('g1', 'g2')"),
        "2020-04-01 04:00:00 | 2020-04-01 08:00:00\n2020-04-01 04:00:00 | 2020-04-01 08:00:00"
    );
    assert_eq!(maria.windows("job_group = 'g3'"), "2019-01-01 00:00:00 | 2019-01-01 04:00:00");
    assert_eq!(maria.windows("JOB_NAME = 'compare'"), "2019-01-01 00:00:00 | 2019-01-01 04:00:00");
    assert_eq!(maria.sql("SELECT count(*) FROM etl_conf_d WHERE dbtimestamp IS NOT NULL"), "2");
    // Rows with invalid values are reported by name, never skipped silently.
    for expected in [
        "job_group = \"g4\": skipped: RUN_END_TIMESTAMP 2020-04-01 00:00:00 is not after",
        "row (schema \"eda\", table \"fact_orphan\"): skipped: no valid job row",
        "row (schema NULL, table \"fact_null\"): skipped: schema and table must not be NULL",
    ] {
        assert!(first.stderr.contains(expected), "missing warning {expected:?}\n{}", first.render());
    }
    assert!(!first.stderr.contains("fact_off"), "{}", first.render());
    cli_snapshot!("first_run", first);

    // Nothing new is due: no window, no row moved.
    let second = run(&env, &maria, &["run", "--until", "2020-04-01 04:00:00"], None);
    second.assert_success();
    assert!(second.stdout.contains("nothing due"), "{}", second.render());
    assert_eq!(count(&env, "eda.fact_a") + count(&env, "eda.fact_b"), 48);
    assert_eq!(succeeded_windows(&env, "eda.fact_a").len() + succeeded_windows(&env, "eda.fact_b").len(), 12);
    assert_eq!(
        maria.windows("JOB_NAME = 'datatransfer' AND job_group IN ('g1', 'g2')"),
        "2020-04-01 04:00:00 | 2020-04-01 08:00:00\n2020-04-01 04:00:00 | 2020-04-01 08:00:00"
    );

    // `plan` shows the job row as the cursor and the next span's windows once they are due.
    let plan = run(&env, &maria, &["plan", "--until", "2020-04-01 06:00:00"], None);
    plan.assert_success();
    assert!(plan.stdout.contains("6 due window(s) in 2 table(s)"), "{}", plan.render());
}

#[test]
fn crash_after_target_commit_before_mariadb_update_reloads_harmlessly_and_advances() {
    let env = TestEnv::new("config_readers_crash");
    let maria = Maria::new(&env.db);
    // Tables from the file this time; replace and merge both re-load harmlessly.
    two_tables_of_one_job_row(&env, &maria);

    let crashed = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], Some(FAILPOINT));
    assert_eq!(crashed.code, 128 + 6, "expected SIGABRT from the failpoint\n{}", crashed.render());
    // The windows committed (state cursor with them), the job row did not move.
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert_eq!(count(&env, t), 12, "{t}\n{}", crashed.render());
        assert_eq!(succeeded_windows(&env, t).len(), 2, "{t}");
    }
    assert_eq!(
        env.dst_psql("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = 'eda.fact_a'"),
        "2020-04-01 02:00:00"
    );
    assert_eq!(maria.windows("TRUE"), "2020-04-01 00:00:00 | 2020-04-01 02:00:00");

    // The next run re-loads the span the row still names, without duplicates, then moves it.
    let rerun = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None);
    rerun.assert_success();
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert_eq!(count(&env, t), 12, "{t}\n{}", rerun.render());
        assert_eq!(env.dst_psql(&format!("SELECT count(DISTINCT id) FROM {t}")), "12");
        assert_eq!(
            succeeded_windows(&env, t),
            [
                "20200401000000^20200401010000",
                "20200401010000^20200401020000",
                "20200401000000^20200401010000",
                "20200401010000^20200401020000"
            ],
            "{t}"
        );
    }
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00");
    assert!(
        rerun.stdout.contains("2020-04-01 00:00:00 / 2020-04-01 02:00:00 -> 2020-04-01 02:00:00 / 2020-04-01 04:00:00"),
        "{}",
        rerun.render()
    );

    // And the run after that goes on from the moved row.
    let next = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None);
    next.assert_success();
    assert_eq!(count(&env, "eda.fact_a"), 24);
    assert_eq!(maria.windows("TRUE"), "2020-04-01 04:00:00 | 2020-04-01 06:00:00");
}

#[test]
fn table_names_from_the_config_tables_are_quoted_or_refused_never_executed() {
    let env = TestEnv::new("config_readers_names");
    let maria = Maria::new(&env.db);
    // The job name is a bound value: a quote in it is just a character.
    maria.sql(&format!(
        "{ETL_CONF_D};
         INSERT INTO etl_conf_d (JOB_NAME, RUN_START_TIMESTAMP, RUN_END_TIMESTAMP, VALID_FLG)
         VALUES ('it''s a job', '2020-04-01 00:00:00', '2020-04-01 01:00:00', 'Y')"
    ));
    env.dst_psql(
        "CREATE SCHEMA ops;
         CREATE TABLE ops.tablelist (schema_nm text, table_nm text, flag text);
         INSERT INTO ops.tablelist VALUES
           ('eda', 'Fact_Caps', '1'),
           ('eda', 'fact.dotted', '1'),
           ('eda', 'it\"s', '1'),
           ('eda', 'victim; DROP TABLE eda.victim; --', '1'),
           ('eda', 'victim\" WHERE false; DROP TABLE eda.victim; --', '1'),
           ('eda', 'fact_a', '0')",
    );
    for name in [r#"eda."Fact_Caps""#, r#"eda."fact.dotted""#, r#"eda."it""s""#, "eda.victim"] {
        fact_table(&env, name);
    }
    env.write_config(&clusters_config(
        &maria,
        r#"
[jobs.names]
from = "src"
to = "dst"
duration = "30m"
reader = { plugin = "mysql", url = "{MYSQL_URL}", password_env = "GPT_MYSQL_PASSWORD", job_name = "it's a job" }
tables_from = { plugin = "table-list", cluster = "dst", table = "ops.tablelist", columns = { schema = "schema_nm", table = "table_nm", valid_flag = "flag" }, valid_value = "1", condition_column = "evt_timestamp" }
"#,
    ));
    let out = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None);
    out.assert_success();
    for name in [r#"eda."Fact_Caps""#, r#"eda."fact.dotted""#, r#"eda."it""s""#] {
        assert_eq!(count(&env, name), 6, "{name}\n{}", out.render());
    }
    // The fragments were refused by name, and nothing ran them: the victim is intact everywhere.
    assert!(out.stderr.contains("table \"victim; DROP TABLE eda.victim; --\"): skipped"), "{}", out.render());
    assert!(out.stderr.contains("looks like SQL rather than a name"), "{}", out.render());
    assert_eq!(env.src_psql("SELECT count(*) FROM eda.victim"), "36");
    assert_eq!(count(&env, "eda.victim"), 0);
    assert_eq!(maria.windows("TRUE"), "2020-04-01 01:00:00 | 2020-04-01 02:00:00");
    cli_snapshot!("names_run", out);

    // Names of the job table's columns come from the file and reach SQL too: refused, not run.
    env.write_config(&clusters_config(
        &maria,
        r#"
[jobs.names]
from = "src"
to = "dst"
duration = "30m"
reader = { plugin = "mysql", url = "{MYSQL_URL}", password_env = "GPT_MYSQL_PASSWORD", columns = { run_start = "RUN_START_TIMESTAMP`; DROP TABLE etl_conf_d; --" } }
[[jobs.names.tables]]
table = "eda.victim"
condition_column = "evt_timestamp"
"#,
    ));
    let refused = run(&env, &maria, &["run"], None);
    refused.assert_code(2);
    assert!(refused.stderr.contains("a MySQL name holds letters, digits, _ and $ only"), "{}", refused.render());
    assert_eq!(maria.sql("SELECT count(*) FROM etl_conf_d"), "1");
    cli_snapshot!("refused_column_name", refused);
}

/// Issue 10 item 9: an operator rewinds the job row (V1's way to re-run a span) and runs one
/// table with `--table`. The row used to move on as far as that table got, judged for the
/// other tables by their state cursors — still ahead from before the rewind — so the rewound
/// span was never re-loaded for them (here: fact_m kept the rows the operator wanted
/// replaced). Now a table that did not load the row's span in this run holds the row.
#[test]
fn a_rewound_job_row_moves_only_once_every_table_reloaded_its_span() {
    let env = TestEnv::new("config_readers_rewind");
    let maria = Maria::new(&env.db);
    two_tables_of_one_job_row(&env, &maria);
    let until = ["--until", "2020-04-01 06:00:00"];
    run(&env, &maria, &[&["run"][..], &until].concat(), None).assert_success();
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00");

    // Upstream fixed rows of the first span; the operator rewinds the row to re-run it.
    env.src_psql("UPDATE eda.fact_a SET v = 'fixed' WHERE id <= 12; UPDATE eda.fact_m SET v = 'fixed' WHERE id <= 12");
    maria.sql(
        "UPDATE etl_conf_d SET RUN_START_TIMESTAMP = '2020-04-01 00:00:00', RUN_END_TIMESTAMP = '2020-04-01 02:00:00'",
    );
    let one = run(&env, &maria, &[&["run", "--table", "eda.fact_a"][..], &until].concat(), None);
    one.assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM eda.fact_a WHERE v = 'fixed'"), "12", "{}", one.render());
    assert_eq!(maria.windows("TRUE"), "2020-04-01 00:00:00 | 2020-04-01 02:00:00", "{}", one.render());
    assert!(one.stdout.contains("not moved, eda.fact_m is still at 2020-04-01 00:00:00"), "{}", one.render());

    // The whole job re-loads the span, then the row moves on.
    let all = run(&env, &maria, &[&["run"][..], &until].concat(), None);
    all.assert_success();
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM {t} WHERE v = 'fixed'")), "12", "{t}\n{}", all.render());
        assert_eq!(env.dst_psql(&format!("SELECT count(*), count(DISTINCT id) FROM {t}")), "12|12", "{t}");
    }
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00", "{}", all.render());
}

/// Issue 10 item 14: the table-list query had no time limit. A transaction that edits the list
/// and is left open (here: an ACCESS EXCLUSIVE lock held by another session) blocked
/// `config check`, `run` and the daemon forever. Now the read is given up after the list
/// cluster's `read_timeout`, naming the list, the lock and what to look at: `config check` exits 2, `run`
/// fails that job (exit 1; issue 15 item 9: a reader that cannot be read fails only its job).
#[test]
fn a_locked_table_list_fails_the_read_instead_of_hanging() {
    let env = TestEnv::new("config_readers_locked_list");
    env.src_psql(
        "CREATE SCHEMA sor;
         CREATE TABLE sor.tables (schemaname text, tablename text, valid_flag text);
         INSERT INTO sor.tables VALUES ('eda', 'fact_a', 'Y');",
    );
    fact_table(&env, "eda.fact_a");
    env.write_config(
        r#"
[clusters.src]
url = "{SRC_URL}"
password_env = "GPT_SRC_PASSWORD"
read_timeout = "3s"

[clusters.dst]
url = "{DST_URL}"
password_env = "GPT_DST_PASSWORD"

[jobs.j]
from = "src"
to = "dst"
start = "2020-04-01 00:00:00"
duration = "1h"
tables_from = { plugin = "table-list", cluster = "src", table = "sor.tables", condition_column = "evt_timestamp" }
"#,
    );
    env.run(&["config", "check"]).assert_success();

    // Someone edits the list and leaves the transaction open.
    let mut holder = Command::new("psql")
        .args(["-X", "-q", "-h"])
        .arg(&env.src.socket_dir)
        .args(["-p", &env.src.port.to_string(), "-U", env.src.admin_user(), "-d", &env.db, "-c"])
        .arg("BEGIN; LOCK TABLE sor.tables IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE c.relname = 'tables' AND l.granted AND l.mode = 'AccessExclusiveLock'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.src.psql(&env.db, held) != "1" {
        assert!(std::time::Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // `config check` lists it as a problem (exit 2); `run` fails the job (exit 1, as a failed window).
    for (args, code) in [(&["config", "check"][..], 2), (&["run", "--until", "2020-04-01 02:00:00"], 1)] {
        let started = std::time::Instant::now();
        let out = env.run_with_timeout(args, std::time::Duration::from_secs(40));
        out.assert_code(code);
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
        assert!(out.stderr.contains("cannot read the table list sor.tables"), "{}", out.render());
        assert!(out.stderr.contains("no answer from the server within 3s"), "{}", out.render());
        assert!(out.stderr.contains("is the list locked"), "{}", out.render());
    }
    // The holder's backend sleeps on without its client: end it, then the lock is gone.
    let _ = holder.kill();
    let _ = holder.wait();
    env.src.psql(
        &env.db,
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 'tables' AND l.mode = 'AccessExclusiveLock'",
    );
    while env.src.psql(&env.db, held) != "0" {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(60), "the lock stayed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Once the lock is gone, the job runs.
    env.run(&["run", "--until", "2020-04-01 02:00:00"]).assert_success();
    assert_eq!(count(&env, "eda.fact_a"), 12);
}

/// Issue 12 item 1 under a MySQL job row: `reload` re-loads a span the row has passed and says
/// the row is not changed (it stays where the runs left it); `cursor set` is refused, naming the
/// row as what to move.
#[test]
fn reload_leaves_the_job_row_and_cursor_set_names_it() {
    let env = TestEnv::new("config_readers_reload");
    let maria = Maria::new(&env.db);
    two_tables_of_one_job_row(&env, &maria);
    run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None).assert_success();
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00");

    env.src_psql("UPDATE eda.fact_a SET v = 'fixed' WHERE id <= 12; UPDATE eda.fact_m SET v = 'fixed' WHERE id <= 12");
    let out = run(
        &env,
        &maria,
        &["reload", "--job", "datatransfer", "--from", "2020-04-01 00:00:00", "--to", "2020-04-01 02:00:00"],
        None,
    );
    out.assert_success();
    assert!(out.stdout.contains("4 window(s) re-loaded, 0 failed"), "{}", out.render());
    assert!(out.stdout.contains("job datatransfer: its config reader's job row was not changed"), "{}", out.render());
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert_eq!(env.dst_psql(&format!("SELECT count(*) FROM {t} WHERE v = 'fixed'")), "12", "{t}");
        assert_eq!(env.dst_psql(&format!("SELECT count(*), count(DISTINCT id) FROM {t}")), "12|12", "{t}");
    }
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00", "{}", out.render());

    let set = run(
        &env,
        &maria,
        &["cursor", "set", "--job", "datatransfer", "--table", "eda.fact_a", "2020-04-01 00:00:00"],
        None,
    );
    set.assert_code(2);
    assert!(set.stderr.contains("job row, not from a stored cursor: move that row"), "{}", set.render());
}

/// Issue 15 item 10: an operator moves the job row forward past rows never loaded. Before, the
/// gap was skipped without a word (a row at 03:00 never arrived, exit 0). Now each table warns,
/// naming the gap and the `reload` that loads it, and history keeps a `gap skipped` row; the
/// named reload then loads exactly the gap.
#[test]
fn a_job_row_moved_forward_past_unloaded_rows_is_said_and_recorded() {
    let env = TestEnv::new("config_readers_gap");
    let maria = Maria::new(&env.db);
    two_tables_of_one_job_row(&env, &maria);
    run(&env, &maria, &["run", "--until", "2020-04-01 02:00:00"], None).assert_success();
    assert_eq!(maria.windows("TRUE"), "2020-04-01 02:00:00 | 2020-04-01 04:00:00");
    // 02:00–04:00 is skipped by hand: the row now says 04:00–06:00.
    maria.sql(
        "UPDATE etl_conf_d SET RUN_START_TIMESTAMP = '2020-04-01 04:00:00', RUN_END_TIMESTAMP = '2020-04-01 06:00:00'",
    );
    let out = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None);
    out.assert_success();
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert!(
            out.stderr.contains(&format!(
                "this table was loaded up to 2020-04-01 02:00:00: rows from 2020-04-01 02:00:00 to 2020-04-01 04:00:00 \
                 were never loaded; load them with `gptransfer reload --job datatransfer --table \"{t}\""
            )),
            "{t} not warned:\n{}",
            out.render()
        );
    }
    assert_eq!(
        env.dst_psql(
            "SELECT table_name || ' ' || window_start || ' ' || window_end FROM gptransfer.history \
             WHERE status = 'gap skipped' ORDER BY table_name"
        ),
        "eda.fact_a 2020-04-01 02:00:00 2020-04-01 04:00:00\neda.fact_m 2020-04-01 02:00:00 2020-04-01 04:00:00"
    );
    // 12 rows of 02:00–04:00 are missing from each target; the next run does not warn again.
    assert_eq!(count(&env, "eda.fact_a"), 24);
    let again = run(&env, &maria, &["run", "--until", "2020-04-01 06:00:00"], None);
    again.assert_success();
    assert!(!again.stderr.contains("never loaded"), "{}", again.render());

    // The reload the warning names loads exactly the gap.
    let reload = run(
        &env,
        &maria,
        &["reload", "--job", "datatransfer", "--from", "2020-04-01 02:00:00", "--to", "2020-04-01 04:00:00"],
        None,
    );
    reload.assert_success();
    for t in ["eda.fact_a", "eda.fact_m"] {
        assert_eq!(env.dst_psql(&format!("SELECT count(*), count(DISTINCT id) FROM {t}")), "36|36", "{t}");
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go): connecting is refused.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two jobs: `datatransfer` takes its window from the job table at `mysql_url` (table
/// eda.fact_a, `extra` appended to its section), `other` is written in the file (eda.fact_b,
/// 1h windows from 2020-04-01 00:00 to 04:00).
fn reader_job_and_file_job(env: &TestEnv, maria: &Maria, mysql_url: &str, extra: &str) {
    fact_table(env, "eda.fact_a");
    fact_table(env, "eda.fact_b");
    env.write_config(
        &clusters_config(
            maria,
            &format!(
                r#"
[jobs.datatransfer]
from = "src"
to = "dst"
duration = "1h"
reader = {{ plugin = "mysql", url = "{mysql_url}", password_env = "GPT_MYSQL_PASSWORD", table = "etl_conf_d" }}
{extra}

[[jobs.datatransfer.tables]]
table = "eda.fact_a"
condition_column = "evt_timestamp"

[jobs.other]
from = "src"
to = "dst"
start = "2020-04-01 00:00:00"
end = "2020-04-01 04:00:00"
duration = "1h"

[[jobs.other.tables]]
table = "eda.fact_b"
condition_column = "evt_timestamp"
"#
            ),
        )
        .replace("{MYSQL_URL}", &maria.url()),
    );
}

/// The MariaDB address and account (`GPT_TEST_MYSQL_URL` may name others) out of a snapshot.
fn maria_filtered(out: CmdOutput, maria: &Maria) -> CmdOutput {
    out.with_filter(&format!(r"\b{}:{}\b", maria.host.replace('.', r"\."), maria.port), "[MYSQL_HOST]:[MYSQL_PORT]")
        .with_filter(&format!(r"\buser {}\b", maria.user), "user [MYSQL_USER]")
        .with_filter(&format!(r"'{}'@'[^']*'", maria.user), "'[MYSQL_USER]'@'[MYSQL_HOST]'")
}

/// No error text says the same thing twice (mysql_async's `Input/output error: Input/output
/// error:`), and the job table is never called a cluster.
fn assert_reader_wording(out: &CmdOutput) {
    assert!(!out.stderr.contains("Input/output error: Input/output error"), "doubled error text\n{}", out.render());
    assert!(!out.stderr.contains("cluster \"mysql"), "the job table called a cluster\n{}", out.render());
    assert!(!out.stderr.contains("warnings above"), "refers to warnings\n{}", out.render());
}

/// Issue 15 item 9: `VALID_FLG = 'N'` on the job's row stopped every job with exit 2 and "see
/// the warnings above" (none were printed). A row switched off is a deliberate disable: that job
/// is skipped with a note naming the table and the flag seen; the others run. A job with no row
/// at all (a typo in the name, most likely) fails, alone, naming what was looked for.
#[test]
fn a_job_row_switched_off_skips_that_job_with_a_note_and_the_others_run() {
    let env = TestEnv::new("config_readers_valid_n");
    let maria = Maria::new(&env.db);
    maria.sql(&format!(
        "{ETL_CONF_D};
         INSERT INTO etl_conf_d (JOB_NAME, RUN_START_TIMESTAMP, RUN_END_TIMESTAMP, VALID_FLG)
         VALUES ('datatransfer', '2020-04-01 00:00:00', '2020-04-01 02:00:00', 'N')"
    ));
    reader_job_and_file_job(&env, &maria, "{MYSQL_URL}", "");
    let out = run(&env, &maria, &["run", "--until", "2020-04-01 02:00:00"], None);
    out.assert_success();
    assert_eq!(count(&env, "eda.fact_b"), 12, "{}", out.render());
    assert_eq!(count(&env, "eda.fact_a"), 0, "{}", out.render());
    assert!(
        out.stderr.contains("note: job \"datatransfer\": skipped: its row in etl_conf_d has VALID_FLG = \"N\""),
        "{}",
        out.render()
    );
    assert_reader_wording(&out);
    assert_eq!(maria.windows("TRUE"), "2020-04-01 00:00:00 | 2020-04-01 02:00:00");
    cli_snapshot!("valid_n_run", out);

    // `plan` and `config check` say the same and go on.
    let plan = run(&env, &maria, &["plan", "--until", "2020-04-01 04:00:00"], None);
    plan.assert_success();
    assert!(plan.stdout.contains("other / eda.fact_b"), "{}", plan.render());
    assert!(plan.stderr.contains("note: job \"datatransfer\": skipped"), "{}", plan.render());
    let check = run(&env, &maria, &["config", "check"], None);
    check.assert_success();
    assert!(check.stderr.contains("note: job \"datatransfer\": skipped"), "{}", check.render());

    // Its row switched on but unusable: the job fails, saying why (no "warnings above").
    maria.sql("UPDATE etl_conf_d SET VALID_FLG = 'Y', RUN_END_TIMESTAMP = '2020-03-01 00:00:00'");
    let bad = run(&env, &maria, &["run", "--until", "2020-04-01 02:00:00"], None);
    bad.assert_code(1);
    assert!(bad.stderr.contains("error: job \"datatransfer\": not run:"), "{}", bad.render());
    assert!(bad.stderr.contains("no usable row where JOB_NAME = \"datatransfer\""), "{}", bad.render());
    assert!(bad.stderr.contains("RUN_END_TIMESTAMP 2020-03-01 00:00:00 is not after"), "{}", bad.render());
    assert!(!bad.stderr.contains("WARN"), "the reason is said once, in the error\n{}", bad.render());
    assert_reader_wording(&bad);
    cli_snapshot!("unusable_row_run", maria_filtered(bad, &maria));

    // No row at all for the job's name: that job fails, naming what was looked for; the other runs.
    maria.sql("DELETE FROM etl_conf_d");
    let out = run(&env, &maria, &["run", "--until", "2020-04-01 04:00:00"], None);
    out.assert_code(1);
    assert_eq!(count(&env, "eda.fact_b"), 24, "{}", out.render());
    assert!(
        out.stderr.contains("error: job \"datatransfer\": not run: MySQL job table etl_conf_d at 127.0.0.1:"),
        "{}",
        out.render()
    );
    assert!(out.stderr.contains("no row where JOB_NAME = \"datatransfer\""), "{}", out.render());
    assert_reader_wording(&out);
    cli_snapshot!("no_job_row_run", maria_filtered(out, &maria));
}

/// Issue 15 item 9: a job switched off in the file never contacts its job table: with its MariaDB
/// unreachable, the other job runs and nothing mentions the reader.
#[test]
fn a_disabled_job_never_contacts_its_job_table() {
    let env = TestEnv::new("config_readers_disabled_job");
    let maria = Maria::new(&env.db);
    let url = format!("mysql://{}@127.0.0.1:{}/{}", maria.user, closed_port(), maria.db);
    reader_job_and_file_job(&env, &maria, &url, "enabled = false");
    for args in [&["run", "--until", "2020-04-01 02:00:00"][..], &["plan", "--until", "2020-04-01 02:00:00"]] {
        let out = run(&env, &maria, args, None);
        out.assert_success();
        assert!(!out.stderr.contains("datatransfer"), "{}", out.render());
        assert!(!out.stderr.to_lowercase().contains("mysql"), "{}", out.render());
    }
    assert_eq!(count(&env, "eda.fact_b"), 12);
    let check = run(&env, &maria, &["config", "check"], None);
    check.assert_success();
    assert!(!check.stderr.to_lowercase().contains("mysql"), "{}", check.render());
}

/// Issue 15 item 9: `run --job other` read the job table of every job first, so an unreachable
/// MariaDB stopped a job that does not use it. Unselected jobs' readers are not read.
#[test]
fn run_job_other_never_reads_the_job_table_of_an_unselected_job() {
    let env = TestEnv::new("config_readers_select_other");
    let maria = Maria::new(&env.db);
    let url = format!("mysql://{}@127.0.0.1:{}/{}", maria.user, closed_port(), maria.db);
    reader_job_and_file_job(&env, &maria, &url, "");
    for args in [
        &["run", "--job", "other", "--until", "2020-04-01 02:00:00"][..],
        &["plan", "--job", "other", "--until", "2020-04-01 02:00:00"],
        &["status", "--job", "other"],
        &["compare", "--job", "other", "--to", "2020-04-01 02:00:00"],
    ] {
        let out = run(&env, &maria, args, None);
        out.assert_success();
        assert!(!out.stderr.to_lowercase().contains("mysql"), "{args:?}\n{}", out.render());
    }
    assert_eq!(count(&env, "eda.fact_b"), 12);
}

/// Issue 15 items 9 and 11: an unreachable MariaDB stopped every job with exit 2 and
/// `cluster "mysql reader" (…): … Input/output error: Input/output error: Connection refused`.
/// Now only the job that uses it fails — named, with the job table's host:port and what to do —
/// the other job loads, and the run exits 1 at the end. `config check` lists it as that job's
/// problem among the others.
#[test]
fn an_unreachable_job_table_fails_only_its_job() {
    let env = TestEnv::new("config_readers_unreachable");
    let maria = Maria::new(&env.db);
    let port = closed_port();
    let url = format!("mysql://{}@127.0.0.1:{port}/{}", maria.user, maria.db);
    reader_job_and_file_job(&env, &maria, &url, "");
    let port_filter = format!(r"\b{port}\b");
    let out = run(&env, &maria, &["run", "--until", "2020-04-01 02:00:00"], None);
    let out = maria_filtered(out.with_filter(&port_filter, "[MYSQL_PORT]"), &maria);
    out.assert_code(1);
    assert_eq!(count(&env, "eda.fact_b"), 12, "{}", out.render());
    assert_eq!(succeeded_windows(&env, "eda.fact_b").len(), 2);
    assert!(out.stderr.contains("error: job \"datatransfer\": not run:"), "{}", out.render());
    assert!(out.stderr.contains(&format!("MySQL job table etl_conf_d at 127.0.0.1:{port}")), "{}", out.render());
    assert!(out.stderr.contains("Connection refused"), "{}", out.render());
    assert!(out.stderr.contains("hint:"), "{}", out.render());
    assert_reader_wording(&out);
    cli_snapshot!("unreachable_run", out);

    // plan: the other job's windows, the failed job named, exit 1.
    let plan = run(&env, &maria, &["plan", "--until", "2020-04-01 04:00:00"], None);
    plan.assert_code(1);
    assert!(plan.stdout.contains("other / eda.fact_b"), "{}", plan.render());
    assert!(plan.stderr.contains("error: job \"datatransfer\": not planned:"), "{}", plan.render());
    assert_reader_wording(&plan);

    // `--table` of the job not read: not found, and why it may not be.
    let table = run(&env, &maria, &["run", "--table", "eda.fact_a", "--until", "2020-04-01 02:00:00"], None);
    table.assert_code(2);
    assert!(table.stderr.contains("error: job \"datatransfer\": not read: MySQL job table"), "{}", table.render());
    assert!(table.stderr.contains("the tables of job \"datatransfer\" are not known this time"), "{}", table.render());
    assert_reader_wording(&table);

    // The daemon's round: the other job loads, the reader's job is logged as not run, exit 1.
    let daemon = run(&env, &maria, &["daemon", "--rounds", "1", "--interval", "1s"], None);
    daemon.assert_code(1);
    assert_eq!(count(&env, "eda.fact_b"), 24, "{}", daemon.render());
    assert!(daemon.stderr.contains("job \"datatransfer\": not run: MySQL job table etl_conf_d"), "{}", daemon.render());
    assert_reader_wording(&daemon);

    // A command on that one job cannot go on without its job row: it stops with the error, exit 1.
    let reload = run(
        &env,
        &maria,
        &["reload", "--job", "datatransfer", "--from", "2020-04-01 00:00:00", "--to", "2020-04-01 01:00:00"],
        None,
    );
    reload.assert_code(1);
    assert!(
        reload.stderr.contains("error: job \"datatransfer\": MySQL job table etl_conf_d at"),
        "{}",
        reload.render()
    );
    assert_reader_wording(&reload);

    // config check: the job's problem among the others (a missing table of the other job).
    env.src_psql("DROP TABLE eda.fact_b");
    let check = run(&env, &maria, &["config", "check"], None);
    let check = maria_filtered(check.with_filter(&port_filter, "[MYSQL_PORT]"), &maria);
    check.assert_code(2);
    assert!(check.stderr.contains("error: job \"datatransfer\":"), "{}", check.render());
    assert!(check.stderr.contains(&format!("127.0.0.1:{port}")), "{}", check.render());
    assert!(check.stderr.contains("error: table other / eda.fact_b:"), "{}", check.render());
    assert!(check.stderr.contains("2 problem(s)"), "{}", check.render());
    assert_reader_wording(&check);
    cli_snapshot!("unreachable_check", check);
}

/// A wrong password for the job table fails that job alone, said once, with what to check.
#[test]
fn a_refused_password_for_the_job_table_fails_only_its_job() {
    let env = TestEnv::new("config_readers_bad_password");
    let maria = Maria::new(&env.db);
    maria.sql(&format!(
        "{ETL_CONF_D};
         INSERT INTO etl_conf_d (JOB_NAME, RUN_START_TIMESTAMP, RUN_END_TIMESTAMP, VALID_FLG)
         VALUES ('datatransfer', '2020-04-01 00:00:00', '2020-04-01 02:00:00', 'Y')"
    ));
    reader_job_and_file_job(&env, &maria, "{MYSQL_URL}", "");
    let mut cmd = env.command(&["run", "--until", "2020-04-01 02:00:00"]);
    cmd.env(MYSQL_PASSWORD_ENV, "not-the-password");
    let out = env.spawn_command(cmd).wait();
    out.assert_code(1);
    assert_eq!(count(&env, "eda.fact_b"), 12, "{}", out.render());
    assert!(out.stderr.contains("error: job \"datatransfer\": not run:"), "{}", out.render());
    assert!(out.stderr.contains("Access denied"), "{}", out.render());
    assert!(!out.stderr.contains("not-the-password"), "{}", out.render());
    assert_reader_wording(&out);
    cli_snapshot!("bad_password_run", maria_filtered(out, &maria));
}
