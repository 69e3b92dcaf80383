//! What a window's gpfdist log says went wrong, added to the window's error: the servers only
//! see an HTTP error from gpfdist, whose log holds the cause.

use gptransfer_core::RoleError;

/// gpfdist's complaints about a row longer than its `-m`: when a segment writes one (seen with
/// 6.24.3's gpfdist: `500 no complete data row found for writing`), and when it would serve one
/// to a reader (`line too long in file …`).
const ROW_TOO_LONG: &[&str] = &["no complete data row found for writing", "line too long"];

/// Lines that go on with the bytes of the rows, which an error must not carry.
const ECHOES_DATA: &[&str] = &["unexpected data after shutdown"];

/// The other side failing, as gpfdist sees it: not a cause.
const CONSEQUENCES: &[&str] = &["socket closed by peer"];

/// The largest `max_row_bytes` (gpfdist's `-m`).
pub const MAX_ROW_BYTES_LIMIT: u32 = 256 * 1024 * 1024;

/// What one gpfdist logged: all of it (a local one) or its last complaints (one on an ETL
/// host), and where, for the message.
#[derive(Debug, Clone, Default)]
pub struct Logged {
    /// The log's lines.
    pub text: String,
    /// Where they were logged, e.g. "gpfdist log".
    pub place: String,
    /// What to add when the log has no complaint (where to look), if anything.
    pub silent: Option<String>,
}

/// `e` with what gpfdist `logged` of it: a row longer than `max_row_bytes` is named as the
/// cause with what to do; else gpfdist's last warning, without row data.
pub fn explain(e: RoleError, logged: &Logged, max_row_bytes: u32) -> RoleError {
    let message = explain_text(&e.message, logged, max_row_bytes);
    RoleError { message, ..e }
}

fn explain_text(message: &str, logged: &Logged, max_row_bytes: u32) -> String {
    let log = logged.text.as_str();
    if log.lines().any(|l| ROW_TOO_LONG.iter().any(|c| l.contains(c))) {
        return format!(
            "a row of the window is longer than max_row_bytes ({max_row_bytes} bytes) of the gpfdist transport, \
             counting its newline: gpfdist refused it and nothing of the window was loaded; raise max_row_bytes (at \
             most {MAX_ROW_BYTES_LIMIT}) and run again ({message})"
        );
    }
    let complaint = log
        .lines()
        .rev()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("FATAL"))
        .find(|l| !CONSEQUENCES.iter().any(|c| l.contains(c)));
    match (complaint, &logged.silent) {
        (Some(line), _) => format!("{message} ({}: {})", logged.place, without_data(line.trim())),
        (None, Some(place)) => format!("{message} ({place})"),
        (None, None) => message.to_string(),
    }
}

/// `line` cut after a phrase that gpfdist follows with row data.
fn without_data(line: &str) -> &str {
    ECHOES_DATA.iter().find_map(|p| line.find(p).map(|at| &line[..at + p.len()])).unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> Logged {
        Logged { text: text.to_string(), place: "gpfdist log".to_string(), silent: None }
    }

    #[test]
    fn a_row_too_long_is_named_with_what_to_do() {
        // As gpfdist 6.24.3 logs a segment's row longer than -m.
        let log = "2026-12-05 14:53:27 29753 WARN [1:4:0:8] HTTP ERROR: 127.0.0.1 - 500 no complete data row found \
                   for writing\n\n2026-12-05 14:53:27 29753 WARN [1:4:0:8] gpfdist read unexpected data after \
                   shutdown 2024-01-01 00:30:00\tsecret\n";
        let m = explain_text("http response code 500 from gpfdist", &local(log), 32768);
        assert!(m.starts_with("a row of the window is longer than max_row_bytes (32768 bytes)"), "{m}");
        assert!(m.contains("raise max_row_bytes (at most 268435456)"), "{m}");
        assert!(m.ends_with("(http response code 500 from gpfdist)"), "{m}");
        assert!(!m.contains("secret"), "{m}");
    }

    #[test]
    fn the_last_cause_without_row_data() {
        let log = "x WARN a cause\nx WARN gpfdist read unexpected data after shutdown 1\tsecret\n\
                   x WARN do_read_request receive failed. socket closed by peer. errno: 0\n";
        assert_eq!(
            explain_text("failed", &local(log), 32768),
            "failed (gpfdist log: x WARN gpfdist read unexpected data after shutdown)"
        );
        assert_eq!(explain_text("failed", &local("x WARN a cause\n"), 32768), "failed (gpfdist log: x WARN a cause)");
        assert_eq!(explain_text("failed", &local("x INFO fine\nx WARN socket closed by peer\n"), 32768), "failed");
    }
}
