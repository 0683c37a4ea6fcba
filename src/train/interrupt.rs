//! Ctrl-C during training: the first press asks `fit` to save a checkpoint and stop after the
//! current batch; a second press ends the process at once (see [`crate::signals`]).

use std::sync::atomic::AtomicBool;

/// Install the handler (once) and return the flag `fit` polls.
pub fn ctrl_c_flag() -> &'static AtomicBool {
    crate::signals::stop_flag()
}
