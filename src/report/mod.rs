//! `gptransfer report --html FILE`: one self-contained page for people who do not run the
//! tool — where each table stands, rows per hour and window durations as charts, what compare
//! found, what failed and why. No script and no network at view time: the charts are inline SVG.

pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use gptransfer_core::engine::TableStatus;
use gptransfer_core::state::{ActiveAlarm, HistoryRow};

use svg::{chart, escape, Style};

/// Everything the page shows.
pub struct ReportData {
    pub generated: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub statuses: Vec<TableStatus>,
    pub history: Vec<HistoryRow>,
    pub alarms: Vec<ActiveAlarm>,
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#1c2430}h1{font-size:20px}\
h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}\
td,th{border-bottom:1px solid #dde2ea;padding:4px 10px;text-align:left;vertical-align:top}\
th{background:#f2f4f8}.bad{color:#b3261e;font-weight:600}.ok{color:#1e7a34}.charts{display:flex;gap:16px;flex-wrap:wrap}\
svg.chart{background:#fbfcfe;border:1px solid #dde2ea}svg .title{font-size:12px;font-weight:600}\
svg .tick,svg .axis,svg .empty{font-size:10px;fill:#5b6574}svg .grid{stroke:#e6e9ef}svg .bar{fill:#3b78c2}\
svg .line{fill:none;stroke:#c2733b;stroke-width:1.5}svg .dot{fill:#c2733b}pre{white-space:pre-wrap;margin:0}";

/// The page.
pub fn render(data: &ReportData) -> String {
    let mut html = String::new();
    let when = crate::output::local_time;
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gptransfer report</title>\
         <style>{STYLE}</style></head><body><h1>gptransfer report</h1>\
         <p>Generated {} for the period since {}.</p>",
        when(data.generated),
        when(data.since)
    );
    // Where each table stands.
    html.push_str(
        "<h2>Tables</h2><table id=\"tables\"><tr><th>Job</th><th>Table</th><th>Cursor</th><th>Lag</th>\
         <th>Due windows</th><th>Last success</th><th>Status</th><th>Active alarms</th></tr>",
    );
    for s in &data.statuses {
        let status = match &s.last_failure {
            Some(f) if s.failing => {
                format!("<span class=\"bad\">FAILING</span> at {}: {}", escape(&f.window), escape(&f.error))
            }
            _ => "<span class=\"ok\">ok</span>".to_string(),
        };
        let lag = crate::output::lag(s.lag_seconds);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{lag}</td><td>{}</td><td>{}</td><td>{status}</td><td>{}</td></tr>",
            escape(&s.job),
            escape(&s.table),
            s.cursor.map_or("never run".to_string(), |c| c.to_string()),
            s.due_windows,
            s.last_success.map_or("-".to_string(), when),
            if s.active_alarms > 0 { format!("<span class=\"bad\">{}</span>", s.active_alarms) } else { "0".into() }
        );
    }
    html.push_str("</table>");

    // Per entry: rows landed per hour and each window's duration.
    let range = (data.since.timestamp() as f64, data.generated.timestamp() as f64);
    html.push_str("<h2>Rows and window durations</h2>");
    for s in &data.statuses {
        let rows: Vec<&HistoryRow> = data
            .history
            .iter()
            .filter(|r| r.job == s.job && r.target_table == s.target_table && entry_of(r) == s.table)
            .collect();
        let mut per_hour: BTreeMap<i64, f64> = BTreeMap::new();
        let mut durations = Vec::new();
        for r in &rows {
            let at = r.finished_at.unwrap_or(r.started_at).timestamp();
            if r.status == "succeeded" {
                *per_hour.entry(at - at.rem_euclid(3600)).or_default() += r.rows_written.unwrap_or(0) as f64;
            }
            if let Some(secs) = r.elapsed_seconds.as_deref().and_then(|e| e.parse::<f64>().ok()) {
                durations.push((r.started_at.timestamp() as f64, secs));
            }
        }
        durations.sort_by(|a, b| a.0.total_cmp(&b.0));
        let hourly: Vec<(f64, f64)> = per_hour.into_iter().map(|(h, n)| (h as f64, n)).collect();
        let _ = write!(
            html,
            "<h3>{} / {}</h3><div class=\"charts\">{}{}</div>",
            escape(&s.job),
            escape(&s.table),
            chart("Rows loaded per hour", "rows", range, &hourly, Style::Bars, 3600.0),
            chart("Seconds per window", "seconds", range, &durations, Style::Line, 0.0)
        );
    }

    // What compare found.
    html.push_str("<h2>Differences found by compare</h2>");
    if data.alarms.is_empty() {
        html.push_str("<p>No active alarm: every compared window was equal, or its alarm was reset.</p>");
    } else {
        html.push_str(
            "<table id=\"differences\"><tr><th>Detected</th><th>Job</th><th>Table</th><th>Window</th><th>Kind</th><th>Key</th></tr>",
        );
        for a in &data.alarms {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(a.detected_at),
                escape(&a.job),
                escape(&a.table),
                escape(&a.window),
                escape(&a.kind),
                escape(a.key.as_deref().unwrap_or("-"))
            );
        }
        html.push_str("</table>");
    }

    // Failures, newest first, with their whole error.
    let failures: Vec<&HistoryRow> = data.history.iter().filter(|r| r.status == "failed").collect();
    html.push_str("<h2>Failures</h2>");
    if failures.is_empty() {
        html.push_str("<p>No window failed in this period.</p>");
    } else {
        html.push_str(
            "<table id=\"failures\"><tr><th>Started</th><th>Job</th><th>Table</th><th>Window</th><th>Error</th></tr>",
        );
        for r in failures {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                when(r.started_at),
                escape(&r.job),
                escape(&entry_of(r)),
                escape(&r.window_id),
                escape(r.error.as_deref().unwrap_or(""))
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>\n");
    html
}

/// A history row's entry name: the source, and ` -> target` when that differs.
fn entry_of(r: &HistoryRow) -> String {
    if r.table == r.target_table {
        r.table.clone()
    } else {
        format!("{} -> {}", r.table, r.target_table)
    }
}
