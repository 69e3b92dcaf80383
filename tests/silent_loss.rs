//! Configurations that used to lose rows with exit 0 (issue 10), each shown on real servers:
//! the test moves the source's rows of every window exactly, or the configuration is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Server, TestEnv};

/// 1,296 rows, one every 10 minutes over 9 days from 2024-03-01.
const NINE_DAYS_SQL: &str = r#"
CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);
INSERT INTO public.events
SELECT i, timestamp '2024-03-01 00:00:00' + (i - 1) * interval '10 minutes', 'v' || i
FROM generate_series(1, 1296) AS i;
"#;

fn events_digest(pg: &support::Pg, db: &str) -> String {
    support::table_digest(pg, db, "public.events", &["id", "ts", "v"], "id", "true")
}

/// `{CLUSTERS}` and job `j` (from `src` to `dst`) with `job_lines`, moving `public.events`
/// windowed on `ts`, with `table_lines`.
fn events_job(job_lines: &str, table_lines: &str) -> String {
    format!(
        "{{CLUSTERS}}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\n{job_lines}\n\n[[jobs.j.tables]]\n\
         table = \"public.events\"\ncondition_column = \"ts\"\n{table_lines}\n"
    )
}

/// Item 5: 7-day windows with `final_end` 9 days on. The last 2 days used to be never planned
/// (1,008 of 1,296 rows, exit 0) and never compared. Now the last window is cut short at
/// `final_end`: every row lands, compare covers it, and nothing is due afterwards.
fn final_end_off_the_window_grid_loads_the_short_last_window(dst: Server) {
    let env = TestEnv::on("final_end_off_grid", Server::Pg, dst);
    env.src_psql(NINE_DAYS_SQL);
    let distributed = if dst == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    env.dst_psql(&format!("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text){distributed};"));
    env.write_config(&events_job(
        r#"start = "2024-03-01 00:00:00"
duration = "7d""#,
        r#"final_end = "2024-03-10 00:00:00"
key = ["id"]"#,
    ));
    let run = env.run(&["run"]);
    run.assert_success();
    assert!(run.stdout.contains("2 window(s) loaded, 0 failed; 1296 rows"), "{}", run.render());
    assert_eq!(events_digest(env.dst, &env.dst_db), events_digest(env.src, &env.db));
    assert_eq!(
        env.dst_psql("SELECT window_id || ' ' || rows_written FROM gptransfer.history ORDER BY window_id"),
        "20240301000000^20240308000000 1008\n20240308000000^20240310000000 288"
    );
    assert_eq!(
        env.dst_psql("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = 'public.events'"),
        "2024-03-10 00:00:00"
    );

    let again = env.run(&["run"]);
    again.assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM gptransfer.history"), "2", "{}", again.render());

    let compare = env.run(&["compare"]);
    compare.assert_success();
    assert!(compare.stdout.contains("2 window(s) compared, 0 differ"), "{}", compare.render());
    // A row damaged in the short window is found there.
    env.dst_psql("UPDATE public.events SET v = 'damaged' WHERE id = 1200");
    let compare = env.run(&["compare"]);
    compare.assert_code(3);
    assert!(compare.stdout.contains("20240308000000^20240310000000"), "{}", compare.render());
}

#[test]
fn final_end_off_the_window_grid_loads_the_short_last_window_on_postgresql() {
    final_end_off_the_window_grid_loads_the_short_last_window(Server::Pg);
}

#[test]
fn final_end_off_the_window_grid_loads_the_short_last_window_on_gp6() {
    final_end_off_the_window_grid_loads_the_short_last_window(Server::Gp6);
}

/// Item 11: configurations that used to run and lose or duplicate rows are refused before
/// anything moves, saying what to write instead: `15M` (humantime's months: 15 × 30.44 days),
/// sub-second windows (ids, history and compare are to the second, so `250ms` windows
/// collided), a fractional window bound, and replace mode whose `columns` leave out the
/// condition column (the target's window delete matched nothing: every re-run duplicated).
#[test]
fn configurations_that_lost_or_duplicated_rows_are_refused() {
    let env = TestEnv::new("refused_configurations");
    env.src_psql(NINE_DAYS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp, v text);");
    let config = |job_extra: &str, table_extra: &str| {
        env.write_config(&events_job(&format!("start = \"2024-03-01 00:00:00\"\n{job_extra}"), table_extra));
    };
    let cases = [
        ("duration = \"15M\"", "", "\"M\" would mean months"),
        ("duration = \"1 month\"", "", "no fixed length"),
        ("duration = \"250ms\"", "", "not a whole number of seconds"),
        ("duration = \"1h\"", "duration = \"1s500ms\"", "not a whole number of seconds"),
        ("duration = \"1h\"\nend = \"2024-03-02 00:00:00.5\"", "", "fraction of a second"),
        ("duration = \"1h\"", "columns = [\"id\", \"v\"]", "condition_column \"ts\" is not in columns"),
    ];
    for (job_extra, table_extra, says) in cases {
        config(job_extra, table_extra);
        for command in [&["config", "check"][..], &["run"][..]] {
            let out = env.run(command);
            out.assert_code(2);
            assert!(out.stderr.contains(says), "{job_extra} / {table_extra}: {}", out.render());
        }
        assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "0", "nothing moved");
        if job_extra.contains("15M") {
            cli_snapshot!("duration_in_months_is_refused", env.run(&["config", "check"]));
        }
    }
    // Append and merge need no condition column on the target: a column list without it passes.
    config("duration = \"1d\"\nmode = \"append\"", "columns = [\"id\", \"v\"]");
    env.run(&["config", "check"]).assert_success();
}

/// A day of one row a minute in a `timestamptz` column, from 2024-03-10 00:00 UTC.
const DAY_TZ_SQL: &str = r#"
CREATE TABLE public.readings (id int NOT NULL, at timestamptz NOT NULL, v text);
INSERT INTO public.readings
SELECT i, timestamptz '2024-03-10 00:00:00+00' + (i - 1) * interval '1 minute', 'r' || i
FROM generate_series(1, 1440) AS i;
"#;

/// Item 3: source in UTC, target in Asia/Shanghai, no job `timezone`. Window bounds used to be
/// read in each server's own zone, so the target deleted other instants than the source read:
/// 480 of 1,440 rows after one run. Now both sides read them in one zone (the source's).
fn timestamptz_windows_mean_the_same_instants_on_both_sides(dst: Server) {
    let env = TestEnv::on("tz_differs", Server::Pg, dst);
    env.src.psql("postgres", &format!("ALTER DATABASE {} SET TimeZone = 'UTC'", support::quote_ident(&env.db)));
    env.dst.psql(
        "postgres",
        &format!("ALTER DATABASE {} SET TimeZone = 'Asia/Shanghai'", support::quote_ident(&env.dst_db)),
    );
    env.src_psql(DAY_TZ_SQL);
    let distributed = if dst == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    env.dst_psql(&format!(
        "CREATE TABLE public.readings (id int NOT NULL, at timestamptz NOT NULL, v text){distributed};"
    ));
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-11 00:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "public.readings"
condition_column = "at"
key = ["id"]
"#,
    );
    let digest = |pg: &support::Pg, db: &str| {
        support::table_digest(
            pg,
            db,
            "public.readings",
            &["id", "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')", "v"],
            "id",
            "true",
        )
    };
    env.run(&["run"]).assert_success();
    assert_eq!(digest(env.dst, &env.dst_db), digest(env.src, &env.db));
    assert!(digest(env.dst, &env.dst_db).starts_with("1440 "));
    // compare reads the windows in the same zone on both sides too.
    let compare = env.run(&["compare"]);
    compare.assert_success();
    assert!(compare.stdout.contains("24 window(s) compared, 0 differ"), "{}", compare.render());
}

#[test]
fn timestamptz_windows_mean_the_same_instants_on_both_sides_on_postgresql() {
    timestamptz_windows_mean_the_same_instants_on_both_sides(Server::Pg);
}

#[test]
fn timestamptz_windows_mean_the_same_instants_on_both_sides_on_gp6() {
    timestamptz_windows_mean_the_same_instants_on_both_sides(Server::Gp6);
}

/// Item 3, the clock: the planner used the ETL host's clock (UTC here), 7–8 hours ahead of a
/// source in America/Los_Angeles: windows of the data's future were loaded empty and passed,
/// and their rows never came. Windows now end by the table's zone's now, with or without a
/// job `timezone`.
#[test]
fn windows_are_due_by_the_clock_of_the_tables_zone() {
    let env = TestEnv::new("zone_clock");
    env.src.psql(
        "postgres",
        &format!("ALTER DATABASE {} SET TimeZone = 'America/Los_Angeles'", support::quote_ident(&env.db)),
    );
    env.src_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let la_now = || env.src_psql("SELECT to_char(LOCALTIMESTAMP, 'YYYY-MM-DD HH24:MI:SS')");
    let start =
        env.src_psql("SELECT to_char(date_trunc('hour', LOCALTIMESTAMP) - interval '1 day', 'YYYY-MM-DD HH24:MI:SS')");
    for timezone in ["", "timezone = \"America/Los_Angeles\""] {
        env.write_config(&events_job(&format!("start = \"{start}\"\nduration = \"1h\"\n{timezone}"), ""));
        let before = la_now();
        let out = env.run(&["plan", "--output", "json"]);
        out.assert_success();
        let after = la_now();
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let last = plan[0]["windows"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
        let end = chrono::NaiveDateTime::parse_from_str(last.split('^').nth(1).unwrap(), "%Y%m%d%H%M%S").unwrap();
        let parse = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap();
        assert!(end <= parse(&after), "{timezone}: window {last} ends after now in Los Angeles ({after})");
        assert!(end > parse(&before) - chrono::Duration::hours(1), "{timezone}: {last} vs {before}");
    }
}

/// Item 10: `compare --repair --to` beyond the cursor re-loaded only the differing windows
/// there, and the cursor jumped over the windows between (equal because still empty: their
/// late rows were never loaded) and past `now - lag`. Now the table catches up as a run would:
/// contiguous windows from the cursor, only as far as is due.
#[test]
fn repair_beyond_the_cursor_never_moves_it_past_what_is_due() {
    let env = TestEnv::new("repair_beyond_cursor");
    let start = env
        .src_psql("SELECT to_char(date_trunc('hour', LOCALTIMESTAMP) - interval '6 hours', 'YYYY-MM-DD HH24:MI:SS')");
    env.src_psql(&format!(
        "CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);
         INSERT INTO public.events SELECT i, timestamp '{start}' + (i - 1) * interval '10 minutes', 'v' || i
         FROM generate_series(1, 48) AS i;"
    ));
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.write_config(&events_job(&format!("start = \"{start}\"\nduration = \"1h\"\nlag = \"2h\""), "key = [\"id\"]"));
    env.run(&["run"]).assert_success();
    let cursor = || env.dst_psql("SELECT cursor_end FROM gptransfer.cursors");
    let after_run = cursor();
    let due_by = env.src_psql("SELECT to_char(LOCALTIMESTAMP - interval '2 hours', 'YYYY-MM-DD HH24:MI:SS')");
    assert!(after_run <= due_by, "{after_run} vs {due_by}");

    let to =
        env.src_psql(&format!("SELECT to_char(timestamp '{start}' + interval '8 hours', 'YYYY-MM-DD HH24:MI:SS')"));
    let repair = env.run(&["compare", "--to", &to, "--repair"]);
    // The windows within the lag still differ (not loaded yet): exit 3, and they are named.
    repair.assert_code(3);
    assert!(repair.stderr.contains("not due yet"), "{}", repair.render());
    assert_eq!(cursor(), after_run, "the cursor did not move past what is due\n{}", repair.render());
    assert_eq!(
        env.dst_psql(&format!("SELECT count(*) FROM gptransfer.history WHERE split_part(window_id, '^', 2) > to_char(timestamp '{after_run}', 'YYYYMMDDHH24MISS')")),
        "0"
    );
}

/// Item 4: merge on a key column holding NULLs. `DELETE … WHERE t.k = s.k` never matches a NULL
/// and `DISTINCT ON` folded distinct NULL-key rows into one: 550 of 599 rows landed, exit 0.
/// Now such a window fails naming the key and the count, and nothing of it lands.
fn merge_refuses_a_batch_with_null_keys(dst: Server) {
    let env = TestEnv::on("merge_null_keys", Server::Pg, dst);
    env.src_psql(
        "CREATE TABLE public.events (id int, ts timestamp NOT NULL, v text);
         INSERT INTO public.events
         SELECT CASE WHEN i % 12 = 0 THEN NULL ELSE i END, timestamp '2024-03-01 00:00:00' + i * interval '1 minute', 'v' || i
         FROM generate_series(1, 599) AS i;",
    );
    let distributed = if dst == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    env.dst_psql(&format!("CREATE TABLE public.events (id int, ts timestamp NOT NULL, v text){distributed};"));
    env.write_config(&events_job(
        r#"start = "2024-03-01 00:00:00"
end = "2024-03-01 12:00:00"
duration = "12h"
mode = "merge""#,
        r#"key = ["id"]"#,
    ));
    let run = env.run(&["run"]);
    run.assert_code(1);
    assert!(run.stdout.contains("merge key (id) is NULL in 49 row(s)"), "{}", run.render());
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "0", "nothing of the window landed");
    assert_eq!(env.dst_psql("SELECT status FROM gptransfer.history"), "failed");
    // With the NULL keys gone at the source, the window merges every row.
    env.src_psql("DELETE FROM public.events WHERE id IS NULL");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "550");
}

#[test]
fn merge_refuses_a_batch_with_null_keys_on_postgresql() {
    merge_refuses_a_batch_with_null_keys(Server::Pg);
}

#[test]
fn merge_refuses_a_batch_with_null_keys_on_gp6() {
    merge_refuses_a_batch_with_null_keys(Server::Gp6);
}

/// Item 12: history's `finished_at` and the cursor's `updated_at` were `now()`, the start of
/// the sink's transaction: a window of 8.78 s showed 0.279 s. Now they are the time of the
/// statement. The source is a view that sleeps 1.5 s in the window's read.
fn history_times_span_the_whole_window(dst: Server) {
    let env = TestEnv::on("history_times", Server::Pg, dst);
    env.src_psql(
        "CREATE TABLE public.events_base (id int NOT NULL, ts timestamp NOT NULL, v text);
         INSERT INTO public.events_base SELECT i, timestamp '2024-03-01 00:00:00' + i * interval '1 minute', 'v' || i
         FROM generate_series(1, 50) AS i;
         CREATE VIEW public.events AS SELECT e.* FROM public.events_base e, (SELECT pg_sleep(1.5)) s;",
    );
    let distributed = if dst == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    env.dst_psql(&format!("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text){distributed};"));
    env.write_config(&events_job(
        r#"start = "2024-03-01 00:00:00"
end = "2024-03-01 02:00:00"
duration = "2h""#,
        "",
    ));
    env.run(&["run"]).assert_success();
    let spans = env.dst_psql(
        "SELECT elapsed_seconds >= 1.5, extract(epoch FROM finished_at - started_at) >= 1.5 FROM gptransfer.history",
    );
    assert_eq!(spans, "t|t", "elapsed and finished_at - started_at both cover the 1.5 s read");
    assert_eq!(
        env.dst_psql("SELECT c.updated_at >= h.finished_at - interval '1 second' FROM gptransfer.cursors c, gptransfer.history h"),
        "t"
    );
}

#[test]
fn history_times_span_the_whole_window_on_postgresql() {
    history_times_span_the_whole_window(Server::Pg);
}

#[test]
fn history_times_span_the_whole_window_on_gp6() {
    history_times_span_the_whole_window(Server::Gp6);
}

/// Item 6: compare ignored the source's `filter`: a filtered table differed in every window
/// forever, the daemon alarmed every round and `--repair` could not fix it. Compare now reads
/// the source with the filter the transfer used.
#[test]
fn compare_reads_the_source_with_its_filter() {
    let env = TestEnv::new("compare_filter");
    env.src_psql(NINE_DAYS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.write_config(&events_job(
        r#"start = "2024-03-01 00:00:00"
end = "2024-03-02 00:00:00"
duration = "6h""#,
        r#"key = ["id"]
source = { plugin = "copy", filter = "id % 3 <> 0" }"#,
    ));
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "96");
    let compare = env.run(&["compare"]);
    compare.assert_success();
    assert!(compare.stdout.contains("4 window(s) compared, 0 differ"), "{}", compare.render());
    env.dst_psql("UPDATE public.events SET v = 'damaged' WHERE id = 10");
    let compare = env.run(&["compare"]);
    compare.assert_code(3);
    assert!(compare.stdout.contains("1 differ"), "{}", compare.render());
}

/// Runs `command`, which must exit 2 saying every one of `said` on stderr.
fn refused(env: &TestEnv, command: &[&str], said: &[&str]) {
    let out = env.run(command);
    out.assert_code(2);
    for words in said {
        assert!(out.stderr.contains(words), "{words}\n{}", out.render());
    }
}

/// `public.site_a` and `public.site_b` on the source (600 rows each over the first day of
/// March), `public.all_sites` on the target to consolidate them into.
fn two_sites(env: &TestEnv) {
    for site in ["a", "b"] {
        env.src_psql(&format!(
            "CREATE TABLE public.site_{site} (id int NOT NULL, ts timestamp NOT NULL, site text);
             INSERT INTO public.site_{site} SELECT i, timestamp '2024-03-01 00:00:00' + i * interval '2 minutes', '{site}'
             FROM generate_series(1, 600) AS i;"
        ));
    }
    env.dst_psql("CREATE TABLE public.all_sites (id int NOT NULL, ts timestamp NOT NULL, site text);");
}

/// Item 2: two entries into one target table (per-site tables consolidated) in replace mode
/// deleted each other's windows: 599 of 1,200 rows kept. Such a configuration is now refused
/// before anything moves, naming both entries; in append mode both sites land.
#[test]
fn two_entries_replacing_windows_of_one_target_are_refused() {
    let env = TestEnv::new("shared_target");
    two_sites(&env);
    let config = |mode: &str| {
        env.write_config(&format!(
            r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-02 00:00:00"
duration = "1h"
mode = "{mode}"

[[jobs.j.tables]]
table = "public.site_a"
target_table = "public.all_sites"
condition_column = "ts"

[[jobs.j.tables]]
table = "public.site_b"
target_table = "public.all_sites"
condition_column = "ts"
"#
        ));
    };
    for mode in ["replace", "full"] {
        config(mode);
        for command in [&["config", "check"][..], &["run"][..]] {
            refused(
                &env,
                command,
                &["job \"j\", table public.site_a and job \"j\", table public.site_b both load public.all_sites"],
            );
        }
    }
    cli_snapshot!("shared_target_refused", env.run(&["config", "check"]));
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.all_sites"), "0");
    config("append");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT site, count(*) FROM public.all_sites GROUP BY site ORDER BY site"), "a|600\nb|600");
}

/// The same through two cluster entries naming one database (written once as a url, once as
/// host, port and dbname, as two teams' jobs would): the check compared cluster names only, so
/// both jobs ran and deleted each other's windows (seen: config check said ok). Entries whose
/// clusters name the same host, port and database are one target.
#[test]
fn two_entries_replacing_one_target_through_two_cluster_names_are_refused() {
    let env = TestEnv::new("shared_target_two_names");
    two_sites(&env);
    env.write_config(
        r#"{CLUSTERS}

[clusters.dst_b]
host = "127.0.0.1"
port = {DST_PORT}
dbname = "{DST_DB}"
user = "gpt"
password_env = "GPT_DST_PASSWORD"

[jobs.a]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-02 00:00:00"
duration = "1h"

[[jobs.a.tables]]
table = "public.site_a"
target_table = "public.all_sites"
condition_column = "ts"

[jobs.b]
from = "src"
to = "dst_b"
start = "2024-03-01 00:00:00"
end = "2024-03-02 00:00:00"
duration = "1h"

[[jobs.b.tables]]
table = "public.site_b"
target_table = "public.all_sites"
condition_column = "ts"
"#,
    );
    for command in [&["config", "check"][..], &["run", "--job", "b"][..]] {
        refused(
            &env,
            command,
            &[
                "job \"a\", table public.site_a and job \"b\", table public.site_b both load public.all_sites",
                "clusters \"dst\" and \"dst_b\" are one database",
            ],
        );
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.all_sites"), "0");
}

/// A row whose condition column is NULL is in no window: never moved, never compared. Not
/// refused (many such columns never hold NULL), but `config check` says so where the source's
/// column can hold NULL (it said nothing).
#[test]
fn config_check_says_what_a_nullable_condition_column_leaves_behind() {
    let env = TestEnv::new("nullable_condition");
    env.src_psql(
        "CREATE TABLE public.events (id int NOT NULL, ts timestamp, v text);
         INSERT INTO public.events VALUES (1, '2024-03-01 01:00', 'a'), (2, NULL, 'never moved');",
    );
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp, v text);");
    env.write_config(&events_job(
        "start = \"2024-03-01 00:00:00\"\nend = \"2024-03-02 00:00:00\"\nduration = \"1d\"",
        "",
    ));
    let check = env.run(&["config", "check"]);
    check.assert_success();
    assert!(check.stdout.contains("condition column \"ts\" can hold NULL"), "{}", check.render());
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "1");
    env.src_psql("DELETE FROM public.events WHERE ts IS NULL; ALTER TABLE public.events ALTER COLUMN ts SET NOT NULL");
    let check = env.run(&["config", "check"]);
    check.assert_success();
    assert!(!check.stdout.contains("can hold NULL"), "{}", check.render());
}

/// Item 7: append mode where the window's rows commit apart from history and cursor (state on
/// another cluster than the target — the default state cluster is the first job's target — or
/// a sink committing on its own): a run dying between the two commits loaded the window again.
/// Such a table is refused before anything moves; with the state on the target it runs.
#[test]
fn append_apart_from_the_state_is_refused() {
    let env = TestEnv::new("append_state_apart");
    env.src_psql(NINE_DAYS_SQL);
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    let config = |state: &str| {
        env.write_config(&format!(
            r#"[clusters.src]
url = "{{SRC_URL}}"
password_env = "GPT_SRC_PASSWORD"

[clusters.dst]
url = "{{DST_URL}}"
password_env = "GPT_DST_PASSWORD"

[state]
cluster = "{state}"

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
end = "2024-03-02 00:00:00"
duration = "6h"
mode = "append"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
"#
        ));
    };
    config("src");
    for command in [&["config", "check"][..], &["run"][..]] {
        let out = env.run(command);
        out.assert_code(2);
        assert!(out.stderr.contains("append mode would insert a window's rows twice"), "{}", out.render());
        assert!(
            out.stderr.contains("the state is on cluster \"src\", not on the target cluster \"dst\""),
            "{}",
            out.render()
        );
    }
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "0");
    config("dst");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.events"), "144");
}

/// Item 11, the planner's memory: `1s` windows from years back were all built in memory before
/// the first one loaded (exhausting it). A run now plans at most 10,000 windows of a table and
/// says more are due; the next run goes on from the cursor.
#[test]
fn one_second_windows_from_years_back_are_planned_a_run_at_a_time() {
    let env = TestEnv::new("plan_capped");
    env.src_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.dst_psql("CREATE TABLE public.events (id int NOT NULL, ts timestamp NOT NULL, v text);");
    env.write_config(&events_job(
        r#"start = "2020-01-01 00:00:00"
duration = "1s""#,
        "",
    ));
    let out = env.run_with_timeout(&["plan"], std::time::Duration::from_secs(30));
    out.assert_success();
    assert!(out.stdout.contains("10000 due window(s): 20200101000000^20200101000001"), "{}", out.render());
    assert!(out.stdout.contains("more windows are due after these"), "{}", out.render());
    let json = env.run(&["plan", "--output", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["more"], serde_json::Value::Bool(true));
    assert_eq!(value[0]["windows"].as_array().unwrap().len(), 10_000);
}

/// Item 1: one source table into several targets. Each entry has its own cursor (and
/// attempts, see `gp6::two_targets_of_one_source_keep_their_own_cursors`); this covers the
/// rest: a target added later was never loaded ("nothing due": it took the cursor kept under
/// the source's name, which was its sibling's); `compare --repair` never repaired a target
/// named apart from its source (its differing windows were looked up under the source's name);
/// and run output, `--table` and alarms now name the entry, `source -> target`.
fn every_target_of_one_source_is_loaded_compared_and_repaired_on_its_own(dst: Server) {
    let env = TestEnv::on("one_source_many_targets", Server::Pg, dst);
    env.src_psql(NINE_DAYS_SQL);
    let distributed = if dst == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    let ddl = format!("(id int NOT NULL, ts timestamp NOT NULL, v text){distributed}");
    env.dst_psql(&format!("CREATE TABLE public.events {ddl}; CREATE TABLE public.events_b {ddl};"));
    let job = "start = \"2024-03-01 00:00:00\"\nend = \"2024-03-10 00:00:00\"\nduration = \"1d\"";
    env.write_config(&events_job(job, "key = [\"id\"]"));
    env.run(&["run"]).assert_success();

    // A second target of the same source, added later: all of its windows are due.
    let second =
        "\n[[jobs.j.tables]]\ntable = \"public.events\"\ntarget_table = \"public.events_b\"\ncondition_column = \"ts\"\nkey = [\"id\"]\n";
    let text = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
    env.write_config(&format!("{text}{second}"));
    let plan = env.run(&["plan", "--table", "public.events -> public.events_b"]);
    plan.assert_success();
    assert!(plan.stdout.contains("9 due window(s) in 1 table(s)"), "{}", plan.render());
    let out = env.run(&["run"]);
    out.assert_success();
    assert!(out.stdout.contains("9 window(s) loaded, 0 failed; 1296 rows"), "{}", out.render());
    let digest = |table: &str| support::table_digest(env.dst, &env.dst_db, table, &["id", "ts", "v"], "id", "true");
    assert_eq!(digest("public.events_b"), events_digest(env.src, &env.db));

    // Damage in the second target only: compare, the alarm and the repair name that entry.
    env.dst_psql("UPDATE public.events_b SET v = 'damaged' WHERE id = 700");
    let compare = env.run(&["compare"]);
    compare.assert_code(3);
    assert!(compare.stdout.contains("public.events -> public.events_b"), "{}", compare.render());
    let alarm = env.run(&["alarm", "check"]);
    alarm.assert_code(3);
    assert!(alarm.stdout.contains("public.events -> public.events_b"), "{}", alarm.render());
    // `history` and `alarm reset` take the entry too (history showed every target of the
    // source; alarm reset refused the name, and the source's name alone matched nothing).
    let entry = "public.events -> public.events_b";
    let history = env.run(&["history", "--table", entry, "--output", "json"]);
    history.assert_success();
    let rows: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let targets: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["target_table"].as_str().unwrap()).collect();
    assert_eq!(targets, vec!["public.events_b"; 9], "{}", history.render());
    let human = env.run(&["history", "--table", entry]);
    assert_eq!(human.stdout.matches(entry).count(), 9, "{}", human.render());
    let reset = env.run(&["alarm", "reset", "--table", entry]);
    reset.assert_success();
    assert_eq!(reset.stdout.trim(), "1 alarm(s) reset", "{}", reset.render());
    env.run(&["alarm", "check"]).assert_success();
    env.run(&["compare"]).assert_code(3);
    let reset = env.run(&["alarm", "reset", "--table", "public.events"]);
    assert_eq!(reset.stdout.trim(), "1 alarm(s) reset", "every entry reading it: {}", reset.render());
    let repair = env.run(&["compare", "--repair"]);
    repair.assert_success();
    assert_eq!(digest("public.events_b"), events_digest(env.src, &env.db), "{}", repair.render());
    env.run(&["alarm", "check"]).assert_success();
    assert_eq!(digest("public.events"), events_digest(env.src, &env.db));
}

#[test]
fn every_target_of_one_source_is_loaded_compared_and_repaired_on_its_own_on_postgresql() {
    every_target_of_one_source_is_loaded_compared_and_repaired_on_its_own(Server::Pg);
}

#[test]
fn every_target_of_one_source_is_loaded_compared_and_repaired_on_its_own_on_gp6() {
    every_target_of_one_source_is_loaded_compared_and_repaired_on_its_own(Server::Gp6);
}

/// Item 2, its second half: the shared mount's window directories are named after the source
/// table only (`<db>^<schema>^<table>^<window>`, SPEC §7), so two entries reading one source
/// table through one root — two targets of one job, or two jobs — wrote, replaced and loaded
/// each other's files. Refused before anything moves (exit 2), naming both; a root of each's
/// own passes.
#[test]
fn two_entries_staging_one_source_through_one_mount_are_refused() {
    let env = TestEnv::new("one_mount_two_entries");
    env.src_psql(NINE_DAYS_SQL);
    let ddl = "(id int NOT NULL, ts timestamp NOT NULL, v text)";
    env.dst_psql(&format!("CREATE TABLE public.events {ddl}; CREATE TABLE public.events_b {ddl};"));
    for root in ["mount_a", "mount_b"] {
        std::fs::create_dir(env.dir().join(root)).unwrap();
    }
    let config = |second_root: &str, second_job: &str| {
        env.write_config(&format!(
            r#"{{CLUSTERS}}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
duration = "1d"

[[jobs.j.tables]]
table = "public.events"
condition_column = "ts"
transport = {{ plugin = "shared-mount", root = "{{TEMP_DIR}}/mount_a" }}

[jobs.{second_job}]
from = "src"
to = "dst"
start = "2024-03-01 00:00:00"
duration = "1d"

[[jobs.{second_job}.tables]]
table = "public.events"
target_table = "public.events_b"
condition_column = "ts"
transport = {{ plugin = "shared-mount", root = "{{TEMP_DIR}}/{second_root}/" }}
"#
        ))
    };
    for job in ["k", "j"] {
        // `j` twice would be one job: write the second entry into it instead.
        if job == "j" {
            let text = std::fs::read_to_string(env.dir().join("gptransfer.toml")).unwrap();
            let one_job = text.replace("[jobs.k]\nfrom = \"src\"\nto = \"dst\"\nstart = \"2024-03-01 00:00:00\"\nduration = \"1d\"\n\n[[jobs.k.tables]]", "[[jobs.j.tables]]");
            assert!(!one_job.contains("[jobs.k]"), "{one_job}");
            env.write_config(&one_job);
        } else {
            config("mount_a", job);
        }
        for command in [&["config", "check"][..], &["run"][..]] {
            let out = env.run(command);
            out.assert_code(2);
            assert!(out.stderr.contains("both stage public.events through the shared-mount root"), "{}", out.render());
            assert!(out.stderr.contains("Give each entry a transport root of its own"), "{}", out.render());
        }
        assert_eq!(env.dst_psql("SELECT count(*) FROM public.events_b"), "0", "nothing moved");
    }
    config("mount_b", "k");
    env.run(&["config", "check"]).assert_success();
}
