//! Rendering for people: tables, sizes, shortened lists.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};

/// A table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Disabled).set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// An instant in the machine's local time, to the second, as every table shows it.
pub fn local_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A lag in seconds for people: `2h 30m`, `0s` when caught up.
pub fn lag(seconds: i64) -> String {
    gptransfer_core::config::ConfigDuration(std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
        .to_string()
}

/// `12.3 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// First line of a message, cut to `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_string()
    }
}

/// `a, b, c … (and N more), z`.
pub fn abbreviate(items: &[String], keep: usize) -> String {
    if items.len() <= keep {
        return items.join(", ");
    }
    let head = &items[..keep - 1];
    format!("{}, … ({} more), {}", head.join(", "), items.len() - keep, items[items.len() - 1])
}
