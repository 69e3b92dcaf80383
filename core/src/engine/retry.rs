//! A window that failed in a way another attempt may cure — a dropped connection, a timeout —
//! before anything of it was committed is tried again in the same run, after a wait that
//! doubles with each attempt. The table's later windows wait for it: the cursor must stay
//! contiguous. A signal, or `--stop-on-error` seeing another table fail, ends the wait at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::run::WindowReport;
use super::window_run::{run_window, Attempt, TableRun};
use crate::config::{ConfigDuration, MAX_RETRY_DELAY};
use crate::window::Window;

/// The wait before retry number `retry` (1 for the first): `first`, doubled for each retry
/// before it, at most [`MAX_RETRY_DELAY`] (or `first`, when that is set longer).
pub(super) fn delay_before(first: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(MAX_RETRY_DELAY.max(first))
}

/// Runs `window` until it lands, fails for good, or its attempts (1 + the table's `retries`)
/// are spent; the report of the last attempt.
pub(super) async fn run_window_retrying(run: &TableRun<'_>, window: Window, stop: &CancellationToken) -> WindowReport {
    let table = run.table;
    let of = table.retries.saturating_add(1);
    let mut number = 1;
    loop {
        let attempted = run_window(run, window, Attempt { number, of }).await;
        let mut report = attempted.report;
        if !attempted.retry {
            return report;
        }
        let delay = delay_before(table.retry_delay.0, number);
        tracing::warn!(
            job = %table.job, table = %table.display_name(), window = %window.id(),
            "retrying window {} of {} in {} (attempt {} of {of}): {}",
            window.id(),
            table.display_name(),
            ConfigDuration(delay),
            number + 1,
            report.error.as_deref().unwrap_or("unknown error"),
        );
        run.observer.window_retrying(&report);
        let given_up = tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            _ = run.interrupt.triggered() => Some("interrupted"),
            _ = stop.cancelled() => Some("the run stops at the first failed window (--stop-on-error)"),
        };
        if let Some(why) = given_up {
            if let Some(error) = &mut report.error {
                error.push_str(&format!(" (not retried: {why})"));
                tracing::error!(
                    job = %table.job, table = %table.source_table, window = %window.id(),
                    "window failed: {error}"
                );
            }
            return report;
        }
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_up_to_five_minutes() {
        let s = Duration::from_secs;
        let waits: Vec<Duration> = (1..=9).map(|r| delay_before(s(5), r)).collect();
        assert_eq!(waits, [s(5), s(10), s(20), s(40), s(80), s(160), s(300), s(300), s(300)]);
        assert_eq!(delay_before(Duration::from_millis(200), 2), Duration::from_millis(400));
        // No overflow however many retries.
        assert_eq!(delay_before(s(5), u32::MAX), s(300));
        assert_eq!(delay_before(s(0), 3), s(0));
    }

    #[test]
    fn a_first_delay_longer_than_the_cap_is_kept() {
        let s = Duration::from_secs;
        assert_eq!(delay_before(s(600), 1), s(600));
        assert_eq!(delay_before(s(600), 4), s(600));
    }
}
