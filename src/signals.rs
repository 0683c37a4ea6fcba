//! Ctrl-C (SIGINT) and SIGTERM, for every command.
//!
//! By default a signal stops the process at once — it removes the temporary files the atomic
//! writer has open (so nothing partial is left; outputs are only ever renamed into place whole)
//! and exits with 128 + the signal's number (130, 143), as a shell reports it. A command with a
//! safe point to reach first (training saves a checkpoint after the current batch) asks for a
//! graceful stop with [`stop_flag`]: the first signal then only raises the flag it polls, and
//! a second one stops at once.
//!
//! The handler itself only writes the signal's number into a pipe (the one thing a signal
//! handler may safely do); a watcher thread does the rest.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Once;

use crate::io::atomic::remove_live_temporaries;

static INSTALL: Once = Once::new();
/// The pipe's write end, for the handler.
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// A command polls this to stop at its next safe point.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Whether the running command handles a first signal itself (see [`stop_flag`]).
static GRACEFUL: AtomicBool = AtomicBool::new(false);
/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Install the handlers for SIGINT and SIGTERM (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() returns.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            eprintln!("warning: Ctrl-C handling is unavailable (pipe: {})", std::io::Error::last_os_error());
            return;
        }
        PIPE_WRITE.store(fds[1], Ordering::SeqCst);
        let read_end = fds[0];
        let spawned = std::thread::Builder::new().name("keras-tch-signals".into()).spawn(move || watch(read_end));
        if spawned.is_err() {
            eprintln!("warning: Ctrl-C handling is unavailable (no watcher thread)");
            return;
        }
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction with a handler that is async-signal-safe (it only
            // calls write(2)); SA_RESTART so interrupted system calls resume.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    });
}

/// Ask for graceful stops: the first Ctrl-C/SIGTERM raises the returned flag (the command
/// stops at its next safe point), the second stops at once.
pub fn stop_flag() -> &'static AtomicBool {
    install();
    GRACEFUL.store(true, Ordering::SeqCst);
    &STOP_REQUESTED
}

/// The exit status a command stopped by a signal should end with (130 after Ctrl-C, 143 after
/// SIGTERM), or `None` if no signal came.
pub fn exit_status() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(128 + signal),
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let byte = signal as u8;
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; one byte from a live local.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

fn watch(read_end: libc::c_int) {
    loop {
        let mut byte = 0u8;
        // SAFETY: reads one byte into a live local from the pipe this thread owns.
        let read = unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) };
        if read != 1 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let signal = i32::from(byte);
        let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        if GRACEFUL.load(Ordering::SeqCst) && !STOP_REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nInterrupted: saving a checkpoint after this batch (Ctrl-C again to quit now)");
            continue;
        }
        stop_now(signal);
    }
}

/// Remove the temporary files being written and exit without running destructors (other
/// threads may be inside libtorch or HDF5).
fn stop_now(signal: i32) -> ! {
    remove_live_temporaries();
    eprintln!("\nInterrupted ({}): stopped; no partial output was left", if signal == libc::SIGTERM { "SIGTERM" } else { "Ctrl-C" });
    // SAFETY: _exit ends the process immediately; nothing after it runs.
    unsafe { libc::_exit(128 + signal) }
}
