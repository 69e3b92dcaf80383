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
        // An ERROR message goes on over the next lines (the server's CONTEXT: which external
        // table line and column), until the next `time|LEVEL|` line.
        let mut in_error = false;
        for line in output.lines() {
            let mut parts = line.splitn(3, '|');
            let (Some(_time), Some(level), Some(message)) = (parts.next(), parts.next(), parts.next()) else {
                let context = line.trim().strip_prefix("CONTEXT:").map(str::trim);
                if let (true, Some(context), Some(last)) = (in_error, context, s.errors.last_mut()) {
                    // gpload then repeats the whole statement it ran: not worth a reader's time.
                    let context = context.split(" encountered while running").next().unwrap_or(context);
                    last.push_str(" (");
                    last.push_str(&cut(context));
                    last.push(')');
                }
                continue;
            };
            let message = message.trim();
            in_error = false;
            match level.trim() {
                "ERROR" | "CRITICAL" => {
                    let message = message.split(" encountered while running").next().unwrap_or(message);
                    s.errors.push(cut(message));
                    in_error = true;
                }
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

/// At most 400 characters: a server error may quote a whole value (a 40 KB row).
fn cut(text: &str) -> String {
    match text.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
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
    fn an_error_keeps_its_context_but_not_the_statement_nor_a_whole_value() {
        let long = "1".repeat(5000);
        let s = Summary::parse(&format!(
            "2026-11-28 06:35:47|ERROR|ERROR:  value too long for type character varying(5)  (seg1 slice1 127.0.0.1:51893 pid=28900)\n\
             CONTEXT:  External table ext_gpload_f1, line 1 of gpfdist://vm:8000//tmp/d.csv, column v\n \
             encountered while running INSERT INTO \"public\".\"stg\" (\"id\") SELECT \"id\" FROM ext_gpload_f1\n\
             2026-11-28 06:35:47|ERROR|ERROR:  value \"{long}\" is out of range for type bigint\n\
             2026-11-28 06:35:47|INFO|gpload failed\n"
        ));
        assert_eq!(
            s.errors[0],
            "ERROR:  value too long for type character varying(5)  (seg1 slice1 127.0.0.1:51893 pid=28900) \
             (External table ext_gpload_f1, line 1 of gpfdist://vm:8000//tmp/d.csv, column v)"
        );
        assert!(s.errors[1].ends_with('…') && s.errors[1].chars().count() == 401, "{}", s.errors[1]);
    }

    #[test]
    fn ignores_lines_without_the_form() {
        let s = Summary::parse("Traceback (most recent call last):\nrows Inserted = 5\n");
        assert_eq!(s, Summary::default());
    }
}
