//! `gptransfer report --html` (issue 12, item 4): one self-contained page, opened in headless
//! Chromium (Debian's `chromium`), where the charts are drawn with a size and their bars and dots
//! are there; the tables name the failing table, the differing keys and the failure's error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{defects_source_sql, TestEnv};

/// Headless Chromium on `url` with `args`; its stdout.
fn chromium(env: &TestEnv, args: &[&str], url: &str) -> String {
    let profile = env.dir().join("chromium-profile");
    let out = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("HOME", env.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium (scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Per chart of the page at `report`, as Chromium lays it out: `(width, height, bars drawn
/// with a size, dots drawn with a size)`. A page beside it frames the report and measures it.
fn measured_charts(env: &TestEnv, report: &Path) -> Vec<(f64, f64, usize, usize)> {
    let probe = env.write_file(
        "probe.html",
        &format!(
            r#"<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="{}" width="1400" height="4000"></iframe>
<script>
document.getElementById('f').onload = function () {{
  var doc = this.contentDocument, out = [];
  var drawn = function (list) {{
    var n = 0;
    list.forEach(function (e) {{ var r = e.getBoundingClientRect(); if (r.width > 0 && r.height > 0) n++; }});
    return n;
  }};
  doc.querySelectorAll('svg.chart').forEach(function (s) {{
    var r = s.getBoundingClientRect();
    out.push([r.width, r.height, drawn(s.querySelectorAll('rect.bar')), drawn(s.querySelectorAll('circle.dot'))].join(','));
  }});
  document.getElementById('out').textContent = 'charts:' + out.join(';');
}};
</script></body></html>"#,
            report.file_name().unwrap().to_string_lossy()
        ),
    );
    let dom = chromium(
        env,
        &["--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom"],
        &format!("file://{}", probe.display()),
    );
    let found = dom
        .split("charts:")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("the probe measured nothing:\n{dom}"));
    found
        .split(';')
        .filter(|c| !c.is_empty())
        .map(|c| {
            let v: Vec<f64> = c.split(',').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1], v[2] as usize, v[3] as usize)
        })
        .collect()
}

#[test]
fn the_report_opens_in_chromium_with_its_charts_drawn() {
    let env = TestEnv::new("report_html");
    env.src_psql(&defects_source_sql(600, "36 seconds"));
    env.dst_psql(
        "CREATE SCHEMA eda;
         CREATE TABLE eda.defects (id bigint PRIMARY KEY, evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea);
         CREATE TABLE eda.refusing (id bigint PRIMARY KEY CHECK (id <> 250), evt_ts timestamp NOT NULL, glass text, qty numeric(12,3), payload bytea);",
    );
    env.write_config(
        r#"{CLUSTERS}

[jobs.j]
from = "src"
to = "dst"
start = "2024-03-10 00:00:00"
end = "2024-03-10 06:00:00"
duration = "1h"

[[jobs.j.tables]]
table = "eda.defects"
condition_column = "evt_ts"
key = ["id"]

[[jobs.j.tables]]
table = "eda.defects"
target_table = "eda.refusing"
condition_column = "evt_ts"
key = ["id"]
"#,
    );
    env.run(&["run"]).assert_code(1);
    env.dst_psql("DELETE FROM eda.defects WHERE id = 42");
    env.run(&["compare", "--table", "eda.defects -> eda.defects"]).assert_code(3);

    let report = env.dir().join("report.html");
    let out = env.run(&["report", "--html", report.to_str().unwrap(), "--since", "2h"]);
    out.assert_success();
    let page = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing fetched at view time (the SVG namespace is a name, not a fetch).
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"), "external parts");
    assert_eq!(page.matches("http").count(), page.matches("http://www.w3.org/2000/svg").count(), "a network address");
    assert!(page.contains("FAILING</span> at 20240310020000^20240310030000"), "the failing table is not named");
    assert!(page.contains("no_250") || page.contains("refusing_id_check"), "the failure's error is missing");
    assert!(page.contains("<td>id=42</td>"), "the differing key is missing");

    // Two entries, two charts each, every one laid out with a size; rows per hour as bars
    // (this hour's windows), each window's duration as a dot.
    let charts = measured_charts(&env, &report);
    assert_eq!(charts.len(), 4, "{charts:?}");
    for (w, h, _, _) in &charts {
        assert!(*w > 100.0 && *h > 50.0, "a chart without a size: {charts:?}");
    }
    assert!(charts[0].2 >= 1, "no bar drawn for eda.defects: {charts:?}");
    assert_eq!(charts[1].3, 6, "eda.defects loaded six windows: {charts:?}");
    assert_eq!(charts[3].3, 3, "eda.refusing: two windows, then the failed one: {charts:?}");

    // A screenshot for people: Chromium draws the page.
    let png = env.dir().join("report.png");
    chromium(
        &env,
        &[&format!("--screenshot={}", png.display()), "--window-size=1280,1600"],
        &format!("file://{}", report.display()),
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot is {size} bytes");
    if let Ok(dir) = std::env::var("GPT_REPORT_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&png, Path::new(&dir).join("report.png"));
    }
}
