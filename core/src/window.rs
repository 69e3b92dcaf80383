//! Windows and the planner (SPEC §4.3): every due window from the cursor, oldest first.

use std::fmt;

use chrono::NaiveDateTime;

use crate::config::{Mode, TableSpec};

/// A half-open span `[start, end)` of the condition column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Inclusive start.
    pub start: NaiveDateTime,
    /// Exclusive end.
    pub end: NaiveDateTime,
}

impl Window {
    /// `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`, the id history and the seed use.
    pub fn id(&self) -> String {
        format!("{}^{}", self.start.format("%Y%m%d%H%M%S"), self.end.format("%Y%m%d%H%M%S"))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// At most this many windows of a table are planned for one run: 1s windows from years back
/// would otherwise fill memory before the first one loads. The next run goes on from the cursor.
pub const MAX_WINDOWS_PER_RUN: usize = 10_000;

/// The windows a run should load for a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Oldest first.
    pub windows: Vec<Window>,
    /// The bound windows stop at: `min(now - lag, end, final_end, until)`.
    pub limit: NaiveDateTime,
    /// More windows are due after these ([`MAX_WINDOWS_PER_RUN`]).
    pub more: bool,
}

/// Plans from the stored cursor (or the start). No partial last window — except at the table's
/// fixed end (`end` / `final_end`), where the last window is cut short so the rows between the
/// last whole window and that end are loaded too.
/// In `full` mode only the newest due window is kept: one reload covers them all.
pub fn plan(
    table: &TableSpec,
    cursor: Option<NaiveDateTime>,
    now: NaiveDateTime,
    until: Option<NaiveDateTime>,
) -> Plan {
    let mut limit = now - table.lag.as_chrono();
    for bound in [table.end, table.final_end, until].into_iter().flatten() {
        limit = limit.min(bound);
    }
    let from = cursor.unwrap_or(table.start);
    if table.mode == Mode::Full {
        // One reload up to the newest due window's end, counted rather than walked (windows
        // and their bounds are whole seconds).
        let step = table.duration.as_chrono().num_seconds().max(1);
        let whole = (limit - from).num_seconds().max(0) / step;
        let mut end = from.checked_add_signed(chrono::Duration::seconds(whole.saturating_mul(step))).unwrap_or(from);
        let fixed_end = fixed_end(table);
        if let Some(fixed_end) = fixed_end {
            if end < fixed_end && fixed_end <= limit {
                end = fixed_end;
            }
        }
        let windows = (end > from).then_some(Window { start: from, end }).into_iter().collect();
        return Plan { windows, limit, more: false };
    }
    let mut windows = Vec::new();
    let mut more = false;
    walk(table, from, limit, |w| {
        if windows.len() == MAX_WINDOWS_PER_RUN {
            more = true;
            return false;
        }
        windows.push(w);
        true
    });
    Plan { windows, limit, more }
}

/// The windows of `table` that tile `[from, to)`: whole windows of its duration, then — only
/// when `to` reaches the table's fixed end (`end` / `final_end`) — the short window up to that
/// end. A bound that moves (now − lag, `--until`) never cuts a window: its rest is loaded whole
/// by a later run. Used by the planner and by `compare`, so both see the same windows.
pub fn tile(table: &TableSpec, from: NaiveDateTime, to: NaiveDateTime) -> Vec<Window> {
    let mut windows = Vec::new();
    walk(table, from, to, |w| {
        windows.push(w);
        true
    });
    windows
}

/// Hands each window of [`tile`] to `visit`, oldest first, until it returns false.
fn walk(table: &TableSpec, from: NaiveDateTime, to: NaiveDateTime, mut visit: impl FnMut(Window) -> bool) {
    let step = table.duration.as_chrono();
    let mut start = from;
    while let Some(end) = start.checked_add_signed(step) {
        if end > to || end <= start {
            break;
        }
        if !visit(Window { start, end }) {
            return;
        }
        start = end;
    }
    let fixed_end = fixed_end(table);
    if let Some(fixed_end) = fixed_end {
        if start < fixed_end && fixed_end <= to {
            visit(Window { start, end: fixed_end });
        }
    }
}

/// Joins each window that ends at a local time the table's zone skips (the clocks jumped over
/// it in spring) to the next one. A server reads such a time as if the clocks had not jumped:
/// `02:30` in New York on the spring-forward day is read as 03:30 daylight time, after `03:00`,
/// so the windows around it went back in time and overlapped (rows loaded twice in append
/// mode, windows passed before their end). Bounds that exist are read in order, so the joined
/// windows tile the instants. A last window ending at a skipped time is left for the run that
/// plans past it — unless that is the table's fixed end (`end` / `final_end`), which stays.
pub fn join_skipped(
    windows: Vec<Window>,
    skipped: &std::collections::BTreeSet<NaiveDateTime>,
    fixed_end: Option<NaiveDateTime>,
) -> Vec<Window> {
    let mut out = Vec::with_capacity(windows.len());
    let mut open: Option<NaiveDateTime> = None;
    for w in windows {
        let start = open.take().unwrap_or(w.start);
        if skipped.contains(&w.end) && Some(w.end) != fixed_end {
            open = Some(start);
        } else {
            out.push(Window { start, end: w.end });
        }
    }
    out
}

/// The table's fixed end: the earlier of `end` and `final_end`.
pub fn fixed_end(table: &TableSpec) -> Option<NaiveDateTime> {
    [table.end, table.final_end].into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn table(extra: &str) -> TableSpec {
        let text = format!(
            r#"
[clusters.a]
url = "postgres://u@h/db"
[jobs.j]
from = "a"
to = "a"
start = "2020-04-01 00:00:00"
duration = "1h"
[[jobs.j.tables]]
table = "t"
condition_column = "ts"
{extra}
"#
        );
        Config::from_text(Path::new("t.toml"), text).unwrap().jobs[0].tables[0].clone()
    }

    #[test]
    fn due_windows_without_partial_last() {
        let p = plan(&table(""), None, ts("2020-04-01 03:30:00"), None);
        assert_eq!(p.windows.len(), 3);
        assert_eq!(p.windows[0].id(), "20200401000000^20200401010000");
        assert_eq!(p.windows[2].end, ts("2020-04-01 03:00:00"));
    }

    #[test]
    fn lag_holds_back_the_newest() {
        let p = plan(&table("lag = \"45m\""), None, ts("2020-04-01 03:30:00"), None);
        assert_eq!(p.windows.len(), 2);
    }

    #[test]
    fn final_end_and_cursor_bound_the_plan() {
        let t = table("final_end = \"2020-05-01 00:00:00\"\nduration = \"30m\"");
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), None);
        assert_eq!(p.windows.len(), 30 * 48);
        let p = plan(&t, Some(ts("2020-05-01 00:00:00")), ts("2026-01-01 00:00:00"), None);
        assert!(p.windows.is_empty());
    }

    #[test]
    fn final_end_off_the_grid_ends_with_a_short_window() {
        // 7-day windows, final_end 9 days on: one whole window, then 2 days up to final_end.
        let t = table("final_end = \"2020-04-10 00:00:00\"\nduration = \"7d\"");
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), None);
        assert_eq!(
            p.windows,
            vec![
                Window { start: ts("2020-04-01 00:00:00"), end: ts("2020-04-08 00:00:00") },
                Window { start: ts("2020-04-08 00:00:00"), end: ts("2020-04-10 00:00:00") },
            ]
        );
        // Not before final_end has passed (now - lag): the short window is not due yet.
        let p = plan(&t, None, ts("2020-04-09 12:00:00"), None);
        assert_eq!(p.windows.len(), 1);
        // --until before final_end does not cut a window either.
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), Some(ts("2020-04-09 00:00:00")));
        assert_eq!(p.windows.len(), 1);
        // After it, nothing is left.
        let p = plan(&t, Some(ts("2020-04-10 00:00:00")), ts("2026-01-01 00:00:00"), None);
        assert!(p.windows.is_empty());
        // The job's `end` is a fixed end too.
        let text = r#"
[clusters.a]
url = "postgres://u@h/db"
[jobs.j]
from = "a"
to = "a"
start = "2020-04-01 00:00:00"
end = "2020-04-01 02:30:00"
duration = "1h"
[[jobs.j.tables]]
table = "t"
condition_column = "ts"
"#;
        let t = Config::from_text(Path::new("t.toml"), text.to_string()).unwrap().jobs[0].tables[0].clone();
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), None);
        assert_eq!(p.windows.last().map(|w| w.id()), Some("20200401020000^20200401023000".to_string()));
    }

    #[test]
    fn one_second_windows_from_years_back_are_planned_a_run_at_a_time() {
        let t = table("duration = \"1s\"");
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), None);
        assert_eq!(p.windows.len(), MAX_WINDOWS_PER_RUN);
        assert!(p.more);
        let next = plan(&t, Some(p.windows[MAX_WINDOWS_PER_RUN - 1].end), ts("2026-01-01 00:00:00"), None);
        assert_eq!(next.windows[0].start, ts("2020-04-01 02:46:40"));
        // Full mode keeps one window reaching the newest due end, whatever the count.
        let t = table("duration = \"1s\"\nmode = \"full\"");
        let p = plan(&t, None, ts("2026-01-01 00:00:00"), None);
        assert_eq!(p.windows, vec![Window { start: ts("2020-04-01 00:00:00"), end: ts("2026-01-01 00:00:00") }]);
        assert!(!p.more);
    }

    #[test]
    fn windows_ending_at_a_skipped_time_join_the_next() {
        // 15-minute windows over New York's spring-forward: 02:00–03:00 does not exist.
        let t = table("duration = \"15m\"");
        let windows = tile(&t, ts("2020-04-01 01:45:00"), ts("2020-04-01 03:30:00"));
        let skipped = ["02:00:00", "02:15:00", "02:30:00", "02:45:00"].map(|h| ts(&format!("2020-04-01 {h}"))).into();
        let joined = join_skipped(windows, &skipped, None);
        let ids: Vec<String> = joined.iter().map(Window::id).collect();
        assert_eq!(
            ids,
            ["20200401014500^20200401030000", "20200401030000^20200401031500", "20200401031500^20200401033000"]
        );
        // A plan stopping inside the gap leaves its last windows to the run that gets past it.
        let windows = tile(&t, ts("2020-04-01 01:45:00"), ts("2020-04-01 02:30:00"));
        assert!(join_skipped(windows.clone(), &skipped, None).is_empty());
        // Unless that is the table's fixed end.
        let kept = join_skipped(windows, &skipped, Some(ts("2020-04-01 02:30:00")));
        assert_eq!(kept, vec![Window { start: ts("2020-04-01 01:45:00"), end: ts("2020-04-01 02:30:00") }]);
    }

    #[test]
    fn full_mode_loads_once() {
        let t = table("mode = \"full\"");
        let p = plan(&t, None, ts("2020-04-01 05:10:00"), None);
        assert_eq!(p.windows, vec![Window { start: ts("2020-04-01 00:00:00"), end: ts("2020-04-01 05:00:00") }]);
    }
}

/// Properties of the planner over any start, duration, lag, end, final_end, cursor, now and
/// `--until`, checked against an independent model: the windows a table has are `from + i·step`
/// up to the bound, then the short one up to its fixed end (DST is checked against a real server
/// in `tests/planner_dst.rs`: the planner itself is naive local time).
#[cfg(test)]
mod properties {
    use super::*;
    use crate::config::{Config, ConfigDuration};
    use chrono::{Duration, NaiveDate};
    use proptest::prelude::*;
    use std::path::Path;

    const DAY: i64 = 86_400;

    fn base() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap()
    }

    fn template() -> TableSpec {
        let text = r#"
[clusters.a]
url = "postgres://u@h/db"
[jobs.j]
from = "a"
to = "a"
start = "2020-04-01 00:00:00"
duration = "1h"
[[jobs.j.tables]]
table = "t"
condition_column = "ts"
"#;
        Config::from_text(Path::new("t.toml"), text.to_string()).unwrap().jobs[0].tables[0].clone()
    }

    /// A point relative to `start`: on the window grid (`k` whole steps), or anywhere.
    #[derive(Debug, Clone, Copy)]
    enum Point {
        Grid(i64),
        Off(i64),
    }

    impl Point {
        fn at(self, start: NaiveDateTime, step: i64) -> NaiveDateTime {
            match self {
                Point::Grid(k) => start + Duration::seconds(k * step),
                Point::Off(s) => start + Duration::seconds(s),
            }
        }
    }

    fn point(max_steps: i64, max_secs: i64) -> impl Strategy<Value = Point> {
        prop_oneof![(0..=max_steps).prop_map(Point::Grid), (0..=max_secs).prop_map(Point::Off)]
    }

    #[derive(Debug, Clone)]
    struct Case {
        start: NaiveDateTime,
        step: i64,
        lag: i64,
        end: Option<Point>,
        final_end: Option<Point>,
        cursor: Option<Point>,
        now: i64,
        until: Option<Point>,
        full: bool,
    }

    impl Case {
        fn table(&self) -> TableSpec {
            let mut t = template();
            t.start = self.start;
            t.duration = ConfigDuration(std::time::Duration::from_secs(self.step as u64));
            t.lag = ConfigDuration(std::time::Duration::from_secs(self.lag as u64));
            t.end = self.end.map(|p| p.at(self.start, self.step));
            t.final_end = self.final_end.map(|p| p.at(self.start, self.step));
            t.mode = if self.full { Mode::Full } else { t.mode };
            t
        }
        fn now(&self) -> NaiveDateTime {
            self.start + Duration::seconds(self.now)
        }
        fn cursor(&self) -> Option<NaiveDateTime> {
            self.cursor.map(|p| p.at(self.start, self.step))
        }
        fn until(&self) -> Option<NaiveDateTime> {
            self.until.map(|p| p.at(self.start, self.step))
        }
    }

    /// Whole-second steps from 1 s to 40 days, weighted towards short ones (the cap matters
    /// there) and long ones (ends off the grid matter there).
    fn step() -> impl Strategy<Value = i64> {
        prop_oneof![1i64..=120, 60i64..=3 * 3600, 3600i64..=40 * DAY]
    }

    fn case() -> impl Strategy<Value = Case> {
        (0i64..=30 * 365 * DAY, step(), prop_oneof![Just(0i64), 0i64..=40 * DAY], any::<bool>())
            .prop_flat_map(|(offset, step, lag, full)| {
                // Points reach ~25,000 steps (beyond the per-run cap) and up to ~5 years.
                let max_steps = 25_000i64.min(6 * 365 * DAY / step);
                let p = move || point(max_steps, 6 * 365 * DAY);
                (
                    Just(base() + Duration::seconds(offset)),
                    Just(step),
                    Just(lag),
                    proptest::option::of(p()),
                    proptest::option::of(p()),
                    proptest::option::of(p()),
                    -DAY..=(max_steps * step).min(6 * 365 * DAY) + 2 * step + lag,
                    proptest::option::of(p()),
                    Just(full),
                )
            })
            .prop_map(|(start, step, lag, end, final_end, cursor, now, until, full)| Case {
                start,
                step,
                lag,
                end,
                final_end,
                cursor,
                now,
                until,
                full,
            })
    }

    /// The model: the `i`-th window from `from`, or None past the last one due before `limit`.
    fn model_window(
        from: NaiveDateTime,
        step: i64,
        fixed_end: Option<NaiveDateTime>,
        limit: NaiveDateTime,
        i: i64,
    ) -> Option<Window> {
        let whole = ((limit - from).num_seconds().max(0)) / step;
        if i < whole {
            return Some(Window {
                start: from + Duration::seconds(i * step),
                end: from + Duration::seconds((i + 1) * step),
            });
        }
        let last = from + Duration::seconds(whole * step);
        match fixed_end {
            Some(f) if i == whole && last < f && f <= limit => Some(Window { start: last, end: f }),
            _ => None,
        }
    }

    fn model_count(from: NaiveDateTime, step: i64, fixed_end: Option<NaiveDateTime>, limit: NaiveDateTime) -> i64 {
        let whole = ((limit - from).num_seconds().max(0)) / step;
        whole + i64::from(model_window(from, step, fixed_end, limit, whole).is_some())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        /// Joining windows over skipped ends keeps a tiling: same start, contiguous, every end
        /// one of the planner's and none skipped (but the fixed end), nothing past the last end
        /// that is not skipped, and a tail ending at a skipped time left for the next run.
        #[test]
        fn joining_over_skipped_ends_keeps_the_tiling(
            c in case(),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let t = c.table();
            let windows = plan(&t, c.cursor(), c.now(), c.until()).windows;
            let fixed = fixed_end(&t);
            let skipped: std::collections::BTreeSet<NaiveDateTime> = if windows.is_empty() {
                Default::default()
            } else {
                picks.iter().map(|i| windows[i.index(windows.len())].end).collect()
            };
            let joined = join_skipped(windows.clone(), &skipped, fixed);
            let kept_end = windows.iter().rev().map(|w| w.end).find(|e| !skipped.contains(e) || Some(*e) == fixed);
            prop_assert_eq!(joined.last().map(|w| w.end), kept_end);
            if let (Some(first), Some(joined_first)) = (windows.first(), joined.first()) {
                prop_assert_eq!(joined_first.start, first.start);
            }
            for pair in joined.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
            let ends: std::collections::BTreeSet<NaiveDateTime> = windows.iter().map(|w| w.end).collect();
            for w in &joined {
                prop_assert!(ends.contains(&w.end));
                prop_assert!(!skipped.contains(&w.end) || Some(w.end) == fixed);
            }
            // Nothing is joined where no end is skipped.
            if skipped.is_empty() {
                prop_assert_eq!(joined, windows);
            }
        }

        #[test]
        fn windows_tile_the_due_range(c in case()) {
            let t = c.table();
            let (now, cursor, until) = (c.now(), c.cursor(), c.until());
            let p = plan(&t, cursor, now, until);
            let step = c.step;
            let from = cursor.unwrap_or(t.start);
            let fixed_end = [t.end, t.final_end].into_iter().flatten().min();
            let mut limit = now - Duration::seconds(c.lag);
            for b in [t.end, t.final_end, until].into_iter().flatten() {
                limit = limit.min(b);
            }
            prop_assert_eq!(p.limit, limit);
            let expected = model_count(from, step, fixed_end, limit);

            if c.full {
                prop_assert!(!p.more);
                prop_assert!(p.windows.len() <= 1);
                // One window from the cursor to the end of the last window a tiling would load.
                let last = (expected > 0).then(|| model_window(from, step, fixed_end, limit, expected - 1)).flatten();
                let want = last.map(|w| Window { start: from, end: w.end });
                prop_assert_eq!(p.windows.first().copied(), want);
                return Ok(());
            }

            prop_assert!(p.windows.len() <= MAX_WINDOWS_PER_RUN);
            prop_assert_eq!(p.more, expected > MAX_WINDOWS_PER_RUN as i64, "expected {} windows", expected);
            prop_assert_eq!(p.windows.len() as i64, expected.min(MAX_WINDOWS_PER_RUN as i64));
            if let Some(first) = p.windows.first() {
                prop_assert_eq!(first.start, from);
            }
            for (i, w) in p.windows.iter().enumerate() {
                prop_assert_eq!(Some(*w), model_window(from, step, fixed_end, limit, i as i64));
                prop_assert!(w.start < w.end, "empty window {}", w);
                let len = (w.end - w.start).num_seconds();
                prop_assert!(len <= step, "window {} longer than {}s", w, step);
                prop_assert!(w.end <= limit, "window {} past the limit {}", w, limit);
                if len < step {
                    // Short only as the last window, and only at the fixed end.
                    prop_assert_eq!(i + 1, p.windows.len());
                    prop_assert_eq!(Some(w.end), fixed_end);
                }
                if let Some(next) = p.windows.get(i + 1) {
                    prop_assert_eq!(w.end, next.start, "gap or overlap after {}", w);
                }
            }

            // Planning again from where this run ended goes on with the same tiling: two runs
            // are one run, and nothing due is left once a run says there is no more.
            let resume = p.windows.last().map_or(from, |w| w.end);
            let again = plan(&t, Some(resume), now, until);
            if !p.more {
                prop_assert!(again.windows.is_empty(), "left behind: {:?}", again.windows.first());
            } else {
                let n = p.windows.len() as i64;
                for (i, w) in again.windows.iter().enumerate() {
                    prop_assert_eq!(Some(*w), model_window(from, step, fixed_end, limit, n + i as i64));
                }
                prop_assert_eq!(again.windows.len() as i64, (expected - n).min(MAX_WINDOWS_PER_RUN as i64));
            }
            // The same windows tile() gives for compare, over the range this run covered.
            if p.windows.len() <= 2_000 {
                prop_assert_eq!(tile(&t, from, resume), p.windows.clone());
            }
        }
    }
}
