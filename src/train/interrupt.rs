//! Ctrl-C during training: the first press asks `fit` to save a checkpoint and stop after the
//! current batch; a second press ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Install the handler (once) and return the flag `fit` polls.
pub fn ctrl_c_flag() -> &'static AtomicBool {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nInterrupted: saving a checkpoint after this batch (Ctrl-C again to quit now)");
        });
    });
    &INTERRUPTED
}
