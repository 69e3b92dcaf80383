//! Panics stop at the boundary: every entry point runs inside [`catch`].

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::PluginError;

thread_local! {
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that stays silent for panics inside [`catch`] (they become
/// errors carrying the location) and defers to the previous hook for all others.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if INSIDE.with(Cell::get) {
                let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LOCATION.with(|cell| *cell.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one entry point of the plugin; a panic becomes a fatal error (the host names the entry
/// point when it reports it).
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    install_hook();
    let was_inside = INSIDE.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|c| c.set(was_inside));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic payload".to_string());
            let location = LOCATION.with(|cell| cell.borrow_mut().take());
            let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
            Err(PluginError::fatal(format!("panicked: {text}{at}")))
        }
    }
}
