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

/// The windows a run should load for a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Oldest first.
    pub windows: Vec<Window>,
    /// The bound windows stop at: `min(now - lag, end, final_end, until)`.
    pub limit: NaiveDateTime,
}

/// Plans from the stored cursor (or the start). No partial last window.
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
    let step = table.duration.as_chrono();
    let mut start = cursor.unwrap_or(table.start);
    let mut windows = Vec::new();
    while let Some(end) = start.checked_add_signed(step) {
        if end > limit || end <= start {
            break;
        }
        windows.push(Window { start, end });
        start = end;
    }
    if table.mode == Mode::Full && windows.len() > 1 {
        let last = windows[windows.len() - 1];
        windows = vec![Window { start: windows[0].start, end: last.end }];
    }
    Plan { windows, limit }
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
    fn full_mode_loads_once() {
        let t = table("mode = \"full\"");
        let p = plan(&t, None, ts("2020-04-01 05:10:00"), None);
        assert_eq!(p.windows, vec![Window { start: ts("2020-04-01 00:00:00"), end: ts("2020-04-01 05:00:00") }]);
    }
}
