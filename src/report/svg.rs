//! Charts as inline SVG: the report must open with no network, so it carries its pictures.

use std::fmt::Write;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 36.0;

/// How values are drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A bar per point (amounts per period).
    Bars,
    /// Dots joined by a line (one value per event).
    Line,
}

/// A chart of `points` (`x` in Unix seconds, `y` ≥ 0) over `x_range`, titled, with its y axis
/// named. `bar_width` is the x span of one bar (e.g. 3600 for hourly sums).
pub fn chart(
    title: &str,
    y_name: &str,
    x_range: (f64, f64),
    points: &[(f64, f64)],
    style: Style,
    bar_width: f64,
) -> String {
    let (x0, x1) = if x_range.1 > x_range.0 { x_range } else { (x_range.0, x_range.0 + 1.0) };
    let y_max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
    let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = write!(svg, r#"<text x="{LEFT}" y="14" class="title">{}</text>"#, escape(title));
    // Axes and four horizontal grid lines with their values.
    for i in 0..=4 {
        let y = y_max * f64::from(i) / 4.0;
        let py = sy(y);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            short(y)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" class="axis" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_name)
    );
    for (x, anchor) in [(x0, "start"), (x1, "end")] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="{anchor}">{}</text>"#,
            sx(x),
            HEIGHT - 12.0,
            date(x)
        );
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="empty" text-anchor="middle">nothing in this period</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    match style {
        Style::Bars => {
            for &(x, y) in points {
                // Clipped to the plot: the current hour's bar ends in the future.
                let left = sx(x).max(LEFT);
                let right = sx(x + bar_width).min(LEFT + plot_w);
                let w = (right - left).max(1.5);
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}"><title>{}: {}</title></rect>"#,
                    left,
                    sy(y),
                    (sy(0.0) - sy(y)).max(0.5),
                    date(x),
                    short(y)
                );
            }
        }
        Style::Line => {
            let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
            if path.len() > 1 {
                let _ = write!(svg, r#"<polyline class="line" points="{}"/>"#, path.join(" "));
            }
            for &(x, y) in points {
                let _ = write!(
                    svg,
                    r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: {}</title></circle>"#,
                    sx(x),
                    sy(y),
                    date(x),
                    short(y)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v` (the y axis' top).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|m| *m >= v).unwrap_or(10.0 * magnitude)
}

/// `1.2k`, `3.4M`, `0.25`.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v if v >= 10.0 || v == 0.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn date(unix: f64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Text for HTML and SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_and_text_is_escaped() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(4800.0), 5000.0);
        let svg = chart("a <b> & c", "rows", (0.0, 7200.0), &[(0.0, 10.0), (3600.0, 30.0)], Style::Bars, 3600.0);
        assert!(svg.contains("a &lt;b&gt; &amp; c") && svg.matches("<rect").count() == 2, "{svg}");
        let svg = chart("t", "s", (0.0, 10.0), &[], Style::Line, 0.0);
        assert!(svg.contains("nothing in this period"));
    }
}
