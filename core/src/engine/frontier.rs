//! How far a table's cursor may move while several of its windows run at once: only over the
//! contiguous prefix of committed windows of this run, so that a failed or unfinished window
//! is never passed. Windows that commit beyond a hole stay committed (and in history) but
//! uncovered: the next run loads them again, which replace and merge make harmless.
//!
//! What is known here is known only after a commit returned, so a crash can leave the stored
//! cursor behind the truth, never ahead of it.
//!
//! It is also the order of a parallel merge: a merge window brings its rows into the target
//! only once every earlier window has ended ([`Frontier::wait_turn`]), so a key found in several
//! windows ends with its newest row, as one window after the other would leave it.

use std::sync::Mutex;

use tokio::sync::Notify;

use chrono::NaiveDateTime;

use crate::window::Window;

#[derive(Debug, Default)]
struct Inner {
    /// Which of the run's windows (in plan order) have committed.
    committed: Vec<bool>,
    /// Which have ended, committed or failed for good.
    ended: Vec<bool>,
    /// The furthest end this run has written to the stored cursor.
    stored: Option<NaiveDateTime>,
}

/// The committed windows of one table in one run.
#[derive(Debug)]
pub struct Frontier {
    windows: Vec<Window>,
    inner: Mutex<Inner>,
    /// Told each time a window ends.
    ended: Notify,
}

impl Frontier {
    /// The run's windows of the table, in the order they were planned (oldest first).
    pub(crate) fn new(windows: &[Window]) -> Frontier {
        Frontier {
            windows: windows.to_vec(),
            inner: Mutex::new(Inner {
                committed: vec![false; windows.len()],
                ended: vec![false; windows.len()],
                stored: None,
            }),
            ended: Notify::new(),
        }
    }

    fn position(&self, w: &Window) -> Option<usize> {
        self.windows.iter().position(|x| x == w)
    }

    /// Every window planned before `w` has committed: `w`'s own transaction may move the
    /// cursor to its end. Asked just before `w` commits.
    pub(crate) fn is_next(&self, w: &Window) -> bool {
        let (Some(i), Ok(inner)) = (self.position(w), self.inner.lock()) else { return false };
        inner.committed[..i].iter().all(|&c| c)
    }

    /// `w` has committed (idempotent).
    pub(crate) fn committed(&self, w: &Window) {
        if let (Some(i), Ok(mut inner)) = (self.position(w), self.inner.lock()) {
            inner.committed[i] = true;
        }
    }

    /// `w` has ended, committed or failed for good: the windows after it may take their turn.
    pub(crate) fn ended(&self, w: &Window) {
        if let (Some(i), Ok(mut inner)) = (self.position(w), self.inner.lock()) {
            inner.ended[i] = true;
        }
        self.ended.notify_waiters();
    }

    fn earlier_ended(&self, w: &Window) -> bool {
        let (Some(i), Ok(inner)) = (self.position(w), self.inner.lock()) else { return true };
        inner.ended[..i].iter().all(|&e| e)
    }

    /// Returns once every window planned before `w` has ended. Windows start oldest first, so
    /// every earlier window is running or over: the wait ends.
    pub(crate) async fn wait_turn(&self, w: &Window) {
        loop {
            // Registered before the check, so an end between the two is not missed.
            let notified = self.ended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.earlier_ended(w) {
                return;
            }
            notified.await;
        }
    }

    /// The stored cursor now reads at least `end` (written by a window's transaction, or by
    /// [`Frontier::behind`]'s caller).
    pub(crate) fn stored(&self, end: NaiveDateTime) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.stored = inner.stored.max(Some(end));
        }
    }

    /// The end of the contiguous prefix of committed windows, when the stored cursor has not
    /// been moved there yet by this run: where the caller moves it.
    pub(crate) fn behind(&self) -> Option<NaiveDateTime> {
        let inner = self.inner.lock().ok()?;
        let reached = self.windows.iter().zip(&inner.committed).take_while(|(_, &c)| c).map(|(w, _)| w.end).last()?;
        (inner.stored < Some(reached)).then_some(reached)
    }

    /// How many windows of this run have committed beyond the contiguous prefix (after a hole).
    pub(crate) fn beyond_hole(&self) -> usize {
        let Ok(inner) = self.inner.lock() else { return 0 };
        inner.committed.iter().skip_while(|&&c| c).filter(|&&c| c).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> Window {
        let at = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2024, 3, d).and_then(|x| x.and_hms_opt(0, 0, 0)).unwrap_or_default()
        };
        Window { start: at(d), end: at(d + 1) }
    }

    #[test]
    fn the_cursor_moves_only_over_the_committed_prefix() {
        let windows: Vec<Window> = (1..=5).map(day).collect();
        let f = Frontier::new(&windows);
        assert!(f.is_next(&day(1)));
        assert!(!f.is_next(&day(2)));
        // Window 3 commits first: nothing to move, 1 and 2 are not in.
        f.committed(&day(3));
        assert_eq!(f.behind(), None);
        assert_eq!(f.beyond_hole(), 1);
        // Window 1 commits, having moved the cursor in its own transaction.
        assert!(f.is_next(&day(1)));
        f.committed(&day(1));
        f.stored(day(1).end);
        assert_eq!(f.behind(), None);
        assert!(f.is_next(&day(2)));
        // Window 2 commits without moving it (it asked before 1 was in): 1–3 are now covered.
        f.committed(&day(2));
        assert_eq!(f.behind(), Some(day(3).end));
        f.stored(day(3).end);
        assert_eq!(f.behind(), None);
        assert_eq!(f.beyond_hole(), 0);
        assert!(f.is_next(&day(4)));
    }

    #[test]
    fn a_hole_holds_the_cursor_for_good() {
        let windows: Vec<Window> = (1..=4).map(day).collect();
        let f = Frontier::new(&windows);
        f.committed(&day(1));
        // Window 2 failed: 3 and 4 commit but are never covered.
        f.committed(&day(3));
        f.committed(&day(4));
        assert_eq!(f.behind(), Some(day(1).end));
        f.stored(day(1).end);
        assert_eq!(f.behind(), None);
        assert!(!f.is_next(&day(3)));
        assert_eq!(f.beyond_hole(), 2);
    }

    #[tokio::test]
    async fn a_window_waits_for_its_turn_until_every_earlier_one_ended() {
        let windows: Vec<Window> = (1..=3).map(day).collect();
        let f = std::sync::Arc::new(Frontier::new(&windows));
        f.wait_turn(&day(1)).await;
        let waiting = tokio::spawn({
            let f = f.clone();
            async move { f.wait_turn(&day(3)).await }
        });
        f.ended(&day(2));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "window 3 went before window 1 ended");
        // Failed for good counts as ended.
        f.ended(&day(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }

    #[test]
    fn a_window_not_planned_is_never_next() {
        let f = Frontier::new(&[day(1)]);
        assert!(!f.is_next(&day(7)));
        f.committed(&day(7));
        assert_eq!(f.behind(), None);
    }
}
