//! A seeded, stable-Rust mutation fuzzer for the parsers of user files (see tests/fuzz.rs).

// Hot ranges are lists of byte ranges, often of one (`vec![0..header]`), not lists of bytes.
#![allow(clippy::single_range_in_vec_init)]

pub mod bytes;
pub mod corpus;
pub mod dice;
pub mod driver;
pub mod hdf5_edit;
pub mod inputs;
pub mod json;
pub mod targets;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use driver::{Limits, Summary};
use targets::Spec;

/// `target/fuzz`, or `FUZZ_DIR`: inputs under test, crashes, slow inputs and scratch files.
/// Every execution writes files there, so on a machine whose disk is busy a tmpfs
/// (`FUZZ_DIR=/dev/shm/keras-tch-fuzz`) is several times faster.
pub fn output_root() -> PathBuf {
    if let Some(folder) = std::env::var_os("FUZZ_DIR") {
        return PathBuf::from(folder);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| crate::common::repo_root().join("target"));
    target.join("fuzz")
}

/// Reproducers of fixed crashes, replayed by `fuzz_regressions`: `regressions/<target>/*`.
pub fn regressions_root() -> PathBuf {
    crate::common::repo_root().join("tests/fuzz_support/regressions")
}

/// Fuzz each target in turn for `seconds`, printing each one's summary line.
pub fn fuzz_targets(specs: &[&'static Spec], seed: u64, seconds: f64) -> Vec<Summary> {
    prepare_process();
    let limits = Limits {
        slow: Duration::from_secs_f64(env_f64("FUZZ_SLOW_SECONDS", 2.0)),
        hang: Duration::from_secs_f64(env_f64("FUZZ_HANG_SECONDS", 10.0)),
    };
    let mut summaries = Vec::new();
    for &spec in specs {
        match driver::fuzz(spec, seed, Duration::from_secs_f64(seconds), &limits) {
            Some(summary) => {
                driver::raw_stderr(&format!("{}\n", summary.line()));
                summaries.push(summary);
            }
            None => driver::raw_stderr(&format!("fuzz {}: skipped, its seed files are missing\n", spec.name)),
        }
    }
    summaries
}

/// What every fuzzing process does first: one libtorch thread (the machine has two cores and
/// the fuzzer is single-threaded), a memory cap, and the scratch folders of finished runs
/// removed.
pub fn prepare_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tch::set_num_threads(1);
        limit_memory(env_f64("FUZZ_MEMORY_MB", 4096.0) as u64);
        // libhdf5 runs in a child stopped at this limit: below the watchdog's, so a file that
        // hangs libhdf5 is the library's error (as for a user), not a fuzzer hang.
        if std::env::var_os("KERAS_TCH_HDF5_SECONDS").is_none() {
            let below_watchdog = (env_f64("FUZZ_HANG_SECONDS", 10.0) / 2.0).max(1.0);
            std::env::set_var("KERAS_TCH_HDF5_SECONDS", below_watchdog.to_string());
        }
        remove_stale_scratch();
    });
}

/// Cap the data segment (heap and anonymous mappings) at its current size plus `budget_mb`,
/// so an input that makes the library allocate without bound fails an allocation (a panic or
/// an abort, both reported with the input) instead of driving the machine out of memory.
fn limit_memory(budget_mb: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(data_kb) =
        status.lines().find_map(|l| l.strip_prefix("VmData:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    else {
        driver::raw_stderr("fuzz: cannot read VmData; running without a memory cap\n");
        return;
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_DATA, &mut limit);
        limit.rlim_cur = (data_kb << 10).saturating_add(budget_mb << 20).min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
            driver::raw_stderr("fuzz: setrlimit(RLIMIT_DATA) failed; running without a memory cap\n");
        }
    }
}

/// Scratch folders are named `<what>-<pid>`; remove those of processes that have ended.
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(output_root().join("scratch")) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        let pid = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.rsplit('-').next()).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text} is not a number")),
        Err(_) => default,
    }
}
