//! Ctrl+C and SIGTERM cancel the window in flight (it rolls back) and end the run.

use gptransfer_core::engine::Interrupt;
use tokio::signal::unix::{signal, SignalKind};

pub fn install() -> Interrupt {
    let interrupt = Interrupt::new();
    let handle = interrupt.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; Ctrl+C will kill the process (windows still roll back)");
            return;
        };
        let sig = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        handle.trigger(sig);
    });
    interrupt
}
