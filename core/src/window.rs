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
        let fixed_end = [table.end, table.final_end].into_iter().flatten().min();
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
    let fixed_end = [table.end, table.final_end].into_iter().flatten().min();
    if let Some(fixed_end) = fixed_end {
        if start < fixed_end && fixed_end <= to {
            visit(Window { start, end: fixed_end });
        }
    }
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
    fn full_mode_loads_once() {
        let t = table("mode = \"full\"");
        let p = plan(&t, None, ts("2020-04-01 05:10:00"), None);
        assert_eq!(p.windows, vec![Window { start: ts("2020-04-01 00:00:00"), end: ts("2020-04-01 05:00:00") }]);
    }
}
