//! gpload's output: one line per event, `YYYY-MM-DD HH:MM:SS|LEVEL|message`, ending with the
//! counters (`rows Inserted = N`, `rows Updated = N`, `data formatting errors = N`) and
//! `gpload succeeded` / `gpload succeeded with warnings` / `gpload failed`.

/// The parsed summary of one gpload run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `rows Inserted = N`.
    pub inserted: Option<u64>,
    /// `rows Updated = N`.
    pub updated: Option<u64>,
    /// `data formatting errors = N`.
    pub format_errors: Option<u64>,
    /// `Some(true)` on `gpload succeeded…`, `Some(false)` on `gpload failed`.
    pub succeeded: Option<bool>,
    /// Messages of `ERROR` (and `CRITICAL`) lines, in order.
    pub errors: Vec<String>,
    /// Messages of `WARN` lines, in order.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Parses every line of gpload's output that has the `time|LEVEL|message` form.
    pub fn parse(output: &str) -> Summary {
        let mut s = Summary::default();
        for line in output.lines() {
            let mut parts = line.splitn(3, '|');
            let (Some(_time), Some(level), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let message = message.trim();
            match level.trim() {
                "ERROR" | "CRITICAL" => s.errors.push(message.to_string()),
                "WARN" | "WARNING" => s.warnings.push(message.to_string()),
                _ => {}
            }
            if let Some(n) = counter(message, "rows Inserted") {
                s.inserted = Some(n);
            } else if let Some(n) = counter(message, "rows Updated") {
                s.updated = Some(n);
            } else if let Some(n) = counter(message, "data formatting errors") {
                s.format_errors = Some(n);
            } else if message.starts_with("gpload succeeded") {
                s.succeeded = Some(true);
            } else if message.starts_with("gpload failed") {
                s.succeeded = Some(false);
            }
        }
        s
    }
}

fn counter(message: &str, name: &str) -> Option<u64> {
    message.strip_prefix(name)?.trim_start().strip_prefix('=')?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::Summary;

    /// The sample output in GREENPLUM.md.
    const SAMPLE: &str = "\
2026-11-24 00:18:04|INFO|gpload session started 2026-11-24 00:18:04
2026-11-24 00:18:04|INFO|started gpfdist -p 55420 -P 55430 -f \"/data/d.csv.gz\" -t 30
2026-11-24 00:18:09|WARN|1 bad row
2026-11-24 00:18:09|WARN|Please use following query to access the detailed error
2026-11-24 00:18:09|WARN|select * from gp_read_error_log('ext_gpload_reusable_x') where cmdtime > to_timestamp('1')
2026-11-24 00:18:04|INFO|running time: 0.17 seconds
2026-11-24 00:18:04|INFO|rows Inserted          = 1
2026-11-24 00:18:04|INFO|rows Updated           = 1
2026-11-24 00:18:04|INFO|data formatting errors = 0
2026-11-24 00:18:04|INFO|gpload succeeded
";

    #[test]
    fn parses_the_documented_sample() {
        let s = Summary::parse(SAMPLE);
        assert_eq!(s.inserted, Some(1));
        assert_eq!(s.updated, Some(1));
        assert_eq!(s.format_errors, Some(0));
        assert_eq!(s.succeeded, Some(true));
        assert!(s.errors.is_empty());
        assert_eq!(s.warnings.len(), 3);
        assert_eq!(s.warnings[0], "1 bad row");
    }

    #[test]
    fn parses_a_failure() {
        let s = Summary::parse(
            "2026-11-24 00:18:04|INFO|gpload session started 2026-11-24 00:18:04\n\
             2026-11-24 00:18:04|ERROR|table public.nope does not exist in database postgres\n\
             2026-11-24 00:18:04|INFO|rows Inserted          = 0\n\
             2026-11-24 00:18:04|INFO|rows Updated           = 0\n\
             2026-11-24 00:18:04|INFO|data formatting errors = 0\n\
             2026-11-24 00:18:04|INFO|gpload failed\n",
        );
        assert_eq!(s.succeeded, Some(false));
        assert_eq!(s.errors, vec!["table public.nope does not exist in database postgres".to_string()]);
        assert_eq!((s.inserted, s.updated, s.format_errors), (Some(0), Some(0), Some(0)));
    }

    #[test]
    fn ignores_lines_without_the_form() {
        let s = Summary::parse("Traceback (most recent call last):\nrows Inserted = 5\n");
        assert_eq!(s, Summary::default());
    }
}
