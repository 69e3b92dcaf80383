//! Windows across daylight-saving transitions, on real servers. The planner cuts windows in
//! naive local time; on a `timestamptz` column each session (in the job's zone) turns a bound
//! into an instant, and a zone's local time skips an hour in spring (those local times do not
//! exist) and repeats one in autumn (those are ambiguous). These tests ask the server itself
//! what it makes of the bounds: consecutive bounds must never go backwards in time (windows tile
//! the instants: no row in two windows, none in none), and a window is due only once the
//! instant its end means has passed (else rows arriving later in it are never loaded).
//! Zones: America/New_York and Europe/Berlin (1-hour shifts, at different local hours) and
//! Australia/Lord_Howe (a 30-minute shift).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, NaiveDateTime};
use gptransfer_core::config::{Config, ConfigDuration, TableSpec};
use gptransfer_core::dialect::sql::bound_literal;
use gptransfer_core::engine::clock::{clock_query, skipped_query};
use gptransfer_core::window::{fixed_end, join_skipped, plan, Window};
use support::{quote_literal, Pg, Server, TestEnv};

/// (zone, local time at which the clocks change) for each transition of 2024 tested.
const TRANSITIONS: &[(&str, &str)] = &[
    ("America/New_York", "2024-03-10 02:00:00"),    // 02:00 → 03:00
    ("America/New_York", "2024-11-03 02:00:00"),    // 02:00 → 01:00
    ("Europe/Berlin", "2024-03-31 02:00:00"),       // 02:00 → 03:00
    ("Europe/Berlin", "2024-10-27 03:00:00"),       // 03:00 → 02:00
    ("Australia/Lord_Howe", "2024-04-07 02:00:00"), // 02:00 → 01:30
    ("Australia/Lord_Howe", "2024-10-06 02:00:00"), // 02:00 → 02:30
];

fn ts(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
}

/// A small deterministic generator (xorshift64*), so a failure names a seed that replays it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// A table of job `j` in `zone` with the given start, whole-second duration and lag.
fn table(zone: &str, start: NaiveDateTime, duration: i64, lag: i64) -> TableSpec {
    let text = format!(
        r#"
[clusters.a]
url = "postgres://u@h/db"
[jobs.j]
from = "a"
to = "a"
start = "{start}"
duration = "{duration}s"
timezone = "{zone}"
[[jobs.j.tables]]
table = "t"
condition_column = "ts"
"#
    );
    let mut t = Config::from_text(Path::new("t.toml"), text).unwrap().jobs[0].tables[0].clone();
    t.lag = ConfigDuration(std::time::Duration::from_secs(lag as u64));
    t
}

/// Durations that put bounds inside a skipped or repeated hour (whole minutes dividing it, odd
/// ones), and any from a minute to three hours.
fn duration(rng: &mut Rng) -> i64 {
    const PICKS: &[i64] = &[300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 420, 3599, 3601];
    if rng.below(3) == 0 {
        60 + rng.below(3 * 3600)
    } else {
        PICKS[rng.below(PICKS.len() as u64) as usize]
    }
}

/// The instant (Unix seconds) `server` in `zone` makes of each bound, read exactly as a window
/// predicate spells it ([`bound_literal`]).
fn instants(
    pg: &Pg,
    db: &str,
    zone: &str,
    bounds: impl IntoIterator<Item = NaiveDateTime>,
) -> BTreeMap<NaiveDateTime, i64> {
    let bounds: Vec<NaiveDateTime> =
        bounds.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut out = BTreeMap::new();
    for chunk in bounds.chunks(500) {
        let values: Vec<String> =
            chunk.iter().enumerate().map(|(i, b)| format!("({i}, {})", bound_literal(*b, "timestamptz"))).collect();
        let sql = format!(
            "SET TimeZone = {};\nSELECT i, extract(epoch FROM b)::bigint FROM (VALUES {}) AS v(i, b) ORDER BY i;",
            quote_literal(zone),
            values.join(", ")
        );
        for line in pg.psql(db, &sql).lines() {
            let (i, epoch) = line.split_once('|').unwrap();
            out.insert(chunk[i.parse::<usize>().unwrap()], epoch.parse().unwrap());
        }
    }
    out
}

/// The windows the engine plans (`clock::plan_in_zone`): the planner's, those ending at a
/// local time the zone skips joined to the next, as the server says with the engine's query.
fn plan_in_zone(pg: &Pg, db: &str, zone: &str, t: &TableSpec, now: NaiveDateTime) -> Vec<Window> {
    let p = plan(t, None, now, None);
    if p.windows.is_empty() {
        return p.windows;
    }
    let ends: Vec<NaiveDateTime> = p.windows.iter().map(|w| w.end).collect();
    let sql = format!("SET TimeZone = {};\n{};", quote_literal(zone), skipped_query(&ends));
    let out = pg.psql(db, &sql);
    let skipped = out.lines().filter(|l| !l.is_empty()).map(ts).collect();
    join_skipped(p.windows, &skipped, fixed_end(t))
}

fn show(w: &Window, at: &BTreeMap<NaiveDateTime, i64>) -> String {
    let utc = |b: &NaiveDateTime| chrono::DateTime::from_timestamp(at[b], 0).unwrap().format("%H:%M:%S UTC");
    format!("{w} = [{}, {})", utc(&w.start), utc(&w.end))
}

/// Windows planned across each transition, any start and duration: the instants the server
/// makes of consecutive bounds never go backwards, so the windows tile the instants. Rows one
/// every 20 s around the transition, each counted in exactly one window by the real predicate.
fn windows_tile_the_instants_across_transitions(server: Server) {
    let env = TestEnv::on("planner_dst_tiling", server, Server::Pg);
    let mut rng = Rng(0x05ee_dd57);
    let mut failures = Vec::new();
    for &(zone, at) in TRANSITIONS {
        let change = ts(at);
        // Rows every 20 seconds over 20 hours of instants around the change.
        let centre = instants(env.src, &env.db, zone, [change])[&change];
        let distributed = if server == Server::Gp6 { " DISTRIBUTED RANDOMLY" } else { "" };
        env.src_psql(&format!(
            "DROP TABLE IF EXISTS r; CREATE TABLE r (ts timestamptz){distributed};\n\
             INSERT INTO r SELECT to_timestamp({} + 20 * i) FROM generate_series(0, 3600) AS i;",
            centre - 36_000
        ));
        for case in 0..12 {
            let step = duration(&mut rng);
            let start = change - Duration::seconds(rng.below(6 * 3600) + 1);
            let now = change + Duration::hours(7);
            let windows = plan_in_zone(env.src, &env.db, zone, &table(zone, start, step, 0), now);
            let at = instants(env.src, &env.db, zone, windows.iter().flat_map(|w| [w.start, w.end]));
            let context = format!("{zone} around {change}, case {case}: {step}s windows from {start}");
            if let Some(pair) = windows.windows(2).find(|pair| at[&pair[1].start] < at[&pair[0].start]) {
                failures.push(format!(
                    "{context}: went back in time: {} then {}",
                    show(&pair[0], &at),
                    show(&pair[1], &at)
                ));
            }
            if let Some(w) = windows.iter().find(|w| at[&w.end] < at[&w.start]) {
                failures.push(format!("{context}: window ends before it starts: {}", show(w, &at)));
            }
            // The real predicate over real rows: every row between the first and last bound is
            // in exactly one window.
            let (first, last) = (windows[0].start, windows[windows.len() - 1].end);
            let values: Vec<String> = windows
                .iter()
                .map(|w| {
                    format!("({}, {})", bound_literal(w.start, "timestamptz"), bound_literal(w.end, "timestamptz"))
                })
                .collect();
            let counts = env.src_psql(&format!(
                "SET TimeZone = {zone};\n\
                 SELECT (SELECT count(*) FROM r WHERE ts >= {first} AND ts < {last}),\n\
                 (SELECT count(*) FROM r JOIN (VALUES {values}) AS w(s, e) ON r.ts >= w.s AND r.ts < w.e);",
                zone = quote_literal(zone),
                first = bound_literal(first, "timestamptz"),
                last = bound_literal(last, "timestamptz"),
                values = values.join(", "),
            ));
            let (range, counted) = counts.split_once('|').unwrap();
            if range != counted {
                failures.push(format!(
                    "{context}: {range} rows between the first and last bound, {counted} counted in windows"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) do not tile:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn windows_tile_the_instants_across_dst_on_postgresql() {
    windows_tile_the_instants_across_transitions(Server::Pg);
}

#[test]
fn windows_tile_the_instants_across_dst_on_gp6() {
    windows_tile_the_instants_across_transitions(Server::Gp6);
}

/// The due rule, with the engine's own clock query pinned at instants every 5 minutes (and a
/// few seconds off) across each transition: every window the planner hands out ends at an
/// instant that has passed (lag 0). Else, in the first pass of a repeated hour, a window whose
/// end the server reads as the second pass is loaded before its rows exist and passed: rows
/// arriving later in it are never loaded. And no window waits longer than the shift.
fn windows_are_due_only_once_their_end_has_passed(server: Server) {
    let env = TestEnv::on("planner_dst_due", server, Server::Pg);
    let mut rng = Rng(0x0d0e_5eed);
    let mut failures = Vec::new();
    for &(zone, at) in TRANSITIONS {
        let change = ts(at);
        let centre = instants(env.src, &env.db, zone, [change])[&change];
        let pinned: Vec<i64> = (-36..=36).map(|i| centre + i * 300 + rng.below(5)).collect();
        let mut sql = format!("SET TimeZone = {};\n", quote_literal(zone));
        for t in &pinned {
            sql.push_str(&clock_query(&format!("to_timestamp({t})")));
            sql.push_str(";\n");
        }
        let clocks: Vec<NaiveDateTime> = env
            .src_psql(&sql)
            .lines()
            .map(|l| NaiveDateTime::parse_from_str(l.split_once('|').unwrap().1, "%Y-%m-%d %H:%M:%S%.f").unwrap())
            .collect();
        assert_eq!(clocks.len(), pinned.len());
        for _ in 0..6 {
            let step = duration(&mut rng);
            let start = change - Duration::seconds(4 * 3600 + rng.below(3600));
            let t = table(zone, start, step, 0);
            // Every window's end up to well past the change, read by the server once.
            let all = plan_in_zone(env.src, &env.db, zone, &t, change + Duration::hours(5));
            let at = instants(env.src, &env.db, zone, all.iter().flat_map(|w| [w.start, w.end]));
            for (&instant, &local_now) in pinned.iter().zip(&clocks) {
                let mut p = plan(&t, None, local_now, None);
                // The engine's windows: those of the whole span, as far as this plan reaches.
                p.windows = all.iter().take_while(|w| w.end <= p.limit).copied().collect();
                let when = chrono::DateTime::from_timestamp(instant, 0).unwrap().format("%Y-%m-%d %H:%M:%S UTC");
                let context = format!("{zone}, {step}s windows from {start}, at {when} (clock says {local_now})");
                if let Some(w) = p.windows.iter().find(|w| at[&w.end] > instant) {
                    failures.push(format!("{context}: due before its end has passed: {}", show(w, &at)));
                }
                // Liveness: windows whose end (and every earlier one's) passed an hour ago are due.
                let settled = all.iter().take_while(|w| at[&w.end] <= instant - 3600).count();
                if p.windows.len() < settled {
                    failures.push(format!(
                        "{context}: {} window(s) due, but {settled} ended over an hour ago ({})",
                        p.windows.len(),
                        show(&all[settled - 1], &at)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s), the first ones of each transition:\n{}",
        failures.len(),
        first_of_each(&failures)
    );
}

/// The first few failures of each zone and transition day (the rest repeat them).
fn first_of_each(failures: &[String]) -> String {
    let mut shown: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in failures {
        let zone = &f[..f.find(',').unwrap_or(f.len())];
        let day = f.find(" at 2024-").map_or("", |i| &f[i + 4..i + 14]);
        let list = shown.entry(format!("{zone} {day}")).or_default();
        if list.len() < 4 {
            list.push(f);
        }
    }
    shown.values().flatten().copied().collect::<Vec<_>>().join("\n")
}

#[test]
fn windows_are_due_only_once_their_end_has_passed_on_postgresql() {
    windows_are_due_only_once_their_end_has_passed(Server::Pg);
}

#[test]
fn windows_are_due_only_once_their_end_has_passed_on_gp6() {
    windows_are_due_only_once_their_end_has_passed(Server::Gp6);
}

/// A zone (POSIX rules: UTC+0, daylight time UTC+1) whose clocks go back from daylight time at
/// the instant `change` (Unix seconds): the real binary is run inside its repeated hour, now.
fn zone_falling_back_at(change: i64) -> String {
    use chrono::{Datelike, Timelike};
    // The rule names the change in local daylight time, the day as Jn (1–365, 29 February
    // never counted).
    let local = chrono::DateTime::from_timestamp(change + 3600, 0).unwrap().naive_utc();
    let leap = chrono::NaiveDate::from_ymd_opt(local.year(), 2, 29).is_some();
    let day = local.ordinal() - u32::from(leap && local.ordinal() > 59);
    let start = if day > 1 { 1 } else { 2 };
    format!("XST0XDT,J{start}/0,J{day}/{:02}:{:02}:{:02}", local.hour(), local.minute(), local.second())
}

/// The silent loss, end to end with the real binary: a job in a zone whose clocks go back 40
/// minutes from now, so that now is 20 minutes into the first pass of the repeated hour. Its
/// source reads the bounds of that hour as the second pass (standard time): a window ending in
/// it means an instant up to an hour from now. The run must not load (and pass) such a window
/// before its end has come: rows arriving later in it would never be loaded.
fn a_window_is_not_passed_before_its_end_in_a_repeated_hour(src: Server) {
    let env = TestEnv::on("dst_repeated_hour", src, Server::Pg);
    let now: i64 = env.src_psql("SELECT extract(epoch FROM now())::bigint").parse().unwrap();
    let zone = zone_falling_back_at(now + 40 * 60);
    // The server sees the zone as meant: daylight time now, standard time from the change.
    assert_eq!(
        env.src_psql(&format!(
            "SET TimeZone = {z};\nSELECT extract(timezone FROM now())::int, \
             extract(timezone FROM to_timestamp({c}))::int, extract(timezone FROM to_timestamp({c} - 1))::int",
            z = quote_literal(&zone),
            c = now + 40 * 60
        )),
        "3600|0|3600",
        "{zone}"
    );
    let start = env.src_psql(&format!(
        "SET TimeZone = {};\nSELECT to_char(date_trunc('hour', LOCALTIMESTAMP) - interval '3 hours', 'YYYY-MM-DD HH24:MI:SS')",
        quote_literal(&zone)
    ));
    let table = "CREATE TABLE public.readings (id int NOT NULL, at timestamptz NOT NULL)";
    let distributed = if src == Server::Gp6 { " DISTRIBUTED BY (id)" } else { "" };
    env.src_psql(&format!("{table}{distributed};"));
    env.dst_psql(&format!("{table};"));
    // A row a minute up to now, from 4 hours back.
    env.src_psql(&format!(
        "INSERT INTO public.readings SELECT i, to_timestamp({now} - 60 * i) FROM generate_series(0, 240) AS i;"
    ));
    env.write_config(&format!(
        "{{CLUSTERS}}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"{start}\"\nduration = \"10m\"\n\
         timezone = \"{zone}\"\n\n[[jobs.j.tables]]\ntable = \"public.readings\"\ncondition_column = \"at\"\n\
         key = [\"id\"]\n"
    ));
    env.run(&["run"]).assert_success();
    // Rows of the next hour arrive (stamped when they happen), and the job runs again.
    env.src_psql(&format!(
        "INSERT INTO public.readings SELECT 1000 + i, to_timestamp({now} + 60 * i) FROM generate_series(1, 70) AS i;"
    ));
    let again = env.run(&["run"]);
    again.assert_success();
    // Every source row from the start to the cursor (the instants the source reads them as) is
    // on the target.
    let cursor = env.dst_psql("SELECT cursor_end FROM gptransfer.cursors WHERE table_name = 'public.readings'");
    let passed = env.src_psql(&format!(
        "SET TimeZone = {z};\nSELECT count(*), coalesce(max(id), 0), extract(epoch FROM {c}::timestamptz)::bigint - {now} \
         FROM public.readings WHERE at >= {s}::timestamptz AND at < {c}::timestamptz",
        z = quote_literal(&zone),
        s = quote_literal(&start),
        c = quote_literal(&cursor),
    ));
    let (count, rest) = passed.split_once('|').unwrap();
    assert!(count.parse::<u32>().unwrap() > 100, "the runs loaded the hours before: {passed}");
    let landed = env.dst_psql("SELECT count(*) FROM public.readings");
    assert_eq!(
        landed,
        count,
        "zone {zone}: the cursor is at {cursor} (newest id there, and how far after the first run it is in seconds: {rest}); \
         every source row before it must have landed:\n{}",
        again.render()
    );
}

#[test]
fn a_window_is_not_passed_before_its_end_in_a_repeated_hour_on_postgresql() {
    a_window_is_not_passed_before_its_end_in_a_repeated_hour(Server::Pg);
}

#[test]
fn a_window_is_not_passed_before_its_end_in_a_repeated_hour_on_gp6() {
    a_window_is_not_passed_before_its_end_in_a_repeated_hour(Server::Gp6);
}

/// Append mode over a spring-forward, end to end: a backfill of 15-minute windows across New
/// York's skipped hour (02:00–03:00 on 2024-03-10), a row every minute. The source read the
/// skipped bounds 02:15, 02:30, 02:45 after 03:00, so the windows from 03:00 loaded the rows of
/// 07:00–07:45 UTC a second time: 45 duplicates. Each row lands once, and compare agrees.
#[test]
fn append_across_a_skipped_hour_loads_each_row_once() {
    let env = TestEnv::new("dst_append_spring");
    let table = "CREATE TABLE public.readings (id int NOT NULL, at timestamptz NOT NULL);";
    env.src_psql(table);
    env.dst_psql(table);
    env.src_psql(
        "INSERT INTO public.readings SELECT i, timestamptz '2024-03-10 04:00:00+00' + i * interval '1 minute' \
         FROM generate_series(0, 359) AS i;",
    );
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-09 23:00:00"
duration = "15m"
timezone = "America/New_York"
mode = "append"

[[jobs.j.tables]]
table = "public.readings"
condition_column = "at"
final_end = "2024-03-10 06:00:00"
"#,
    );
    let run = env.run(&["run"]);
    run.assert_success();
    assert_eq!(
        env.dst_psql("SELECT count(*), count(DISTINCT id) FROM public.readings"),
        env.src_psql("SELECT count(*), count(DISTINCT id) FROM public.readings"),
        "{}",
        run.render()
    );
    // The skipped hour is one window from 01:45 to 03:00 (06:45–07:00 UTC).
    assert_eq!(
        env.dst_psql(
            "SELECT window_id || ' ' || rows_written FROM gptransfer.history \
             WHERE window_id LIKE '20240310014500%' OR window_id LIKE '20240310030000%' ORDER BY window_id"
        ),
        "20240310014500^20240310030000 15\n20240310030000^20240310031500 15"
    );
    let compare = env.run(&["compare"]);
    compare.assert_success();
    assert!(compare.stdout.contains("0 differ"), "{}", compare.render());
}

/// A start the zone skips (02:30 on New York's spring-forward day) is read by the server as
/// 03:30 daylight time: with hourly windows the first one, [02:30, 03:30), was empty and the
/// rows of 03:00–03:30 were in no window, lost with exit 0. Such a start (or cursor, or end) is
/// refused, saying what to write instead; the first time after the jump works. On a naive
/// `timestamp` column the same start is fine.
#[test]
fn a_start_the_zone_skips_is_refused() {
    let env = TestEnv::new("dst_skipped_start");
    let table = "CREATE TABLE public.readings (id int NOT NULL, at timestamptz NOT NULL);";
    env.src_psql(table);
    env.dst_psql(table);
    // A row a minute from 03:00 daylight time (07:00 UTC) for two hours.
    env.src_psql(
        "INSERT INTO public.readings SELECT i, timestamptz '2024-03-10 07:00:00+00' + i * interval '1 minute' \
         FROM generate_series(0, 119) AS i;",
    );
    let config_for = |table: &str, start: &str| {
        env.write_config(&format!(
            "{{CLUSTERS}}\n\n[jobs.j]\nfrom = \"src\"\nto = \"dst\"\nstart = \"{start}\"\nduration = \"1h\"\n\
             timezone = \"America/New_York\"\n\n[[jobs.j.tables]]\ntable = \"{table}\"\n\
             condition_column = \"at\"\nfinal_end = \"2024-03-10 05:00:00\"\nkey = [\"id\"]\n"
        ))
    };
    let config = |start: &str| config_for("public.readings", start);
    // A naive `timestamp` column compares naive bounds: no instant, nothing to refuse.
    let naive = "CREATE TABLE public.local_readings (id int NOT NULL, at timestamp NOT NULL);";
    env.src_psql(naive);
    env.dst_psql(naive);
    env.src_psql(
        "INSERT INTO public.local_readings SELECT id, at AT TIME ZONE 'America/New_York' FROM public.readings;",
    );
    config_for("public.local_readings", "2024-03-10 02:30:00");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.local_readings"), "120");
    config("2024-03-10 02:30:00");
    let run = env.run(&["run"]);
    let landed = env.dst_psql("SELECT count(*) FROM public.readings");
    run.assert_code(2);
    assert!(
        run.stderr.contains("starts at 2024-03-10 02:30:00: it does not exist in time zone America/New_York"),
        "{landed} rows landed: {}",
        run.render()
    );
    assert!(run.stderr.contains("first time after the jump"), "{}", run.render());
    assert_eq!(landed, "0");
    config("2024-03-10 03:00:00");
    env.run(&["run"]).assert_success();
    assert_eq!(env.dst_psql("SELECT count(*) FROM public.readings"), "120");
}
