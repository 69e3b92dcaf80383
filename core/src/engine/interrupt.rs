//! Ctrl+C and SIGTERM as a cancellation the engine checks at every await of a window.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Shared by the signal handler and the engine.
#[derive(Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// A fresh, untriggered interrupt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the signal and cancels everything in flight.
    pub fn trigger(&self, signal: i32) {
        self.signal.store(signal, Ordering::SeqCst);
        self.token.cancel();
    }

    /// Resolves when triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// The signal, once triggered.
    pub fn signal(&self) -> Option<i32> {
        self.token.is_cancelled().then(|| self.signal.load(Ordering::SeqCst))
    }
}
