//! Fuzzing the parsers of files users hand to keras-tch (issue 14): Keras HDF5 (full models
//! and weights only), `.keras` archives, `.npy`, `checkpoint.json`, images and safetensors.
//! Stable Rust, no coverage instrumentation: a seeded mutation loop over a corpus of real Keras
//! files (tests/fuzz_support/). A library `Err` is the right answer to a broken file; a panic,
//! an abort, a signal or a hang is a bug.
//!
//! - `fuzz_smoke` (in `cargo test`, so in CI): every target for `FUZZ_SMOKE_SECONDS` (2)
//!   with a fixed seed, about 15 s in all; fails on any crash.
//! - `fuzz_campaign` (ignored): the long runs, `scripts/fuzz.sh TARGET SECONDS [SEED]`, or
//!   `FUZZ_TARGET=npy|…|all FUZZ_SECONDS=600 FUZZ_SEED=7 cargo test --release --test fuzz
//!   fuzz_campaign -- --ignored --nocapture`.
//! - `fuzz_regressions`: every file of tests/fuzz_support/regressions/<target>/ (a crash once
//!   found) must run without a panic, a signal or a hang, each in its own process so that one
//!   abort does not hide the others.
//! - `fuzz_replay` (ignored): one file, `FUZZ_REPLAY_TARGET=… FUZZ_REPLAY_FILE=…`, printing
//!   the library's error or the panic; what `fuzz_regressions` runs, and what to debug.
//!
//! Output goes to target/fuzz/<target>/ (or `$FUZZ_DIR/<target>/`): `current-input.<ext>`,
//! written before each run, so it is the reproducer when the process dies; `crash-<n>.<ext>`
//! with `crash-<n>.txt` (message, backtrace); `slow-<n>.<ext>`; `hang-<n>.<ext>`.
//!
//! Settings: `FUZZ_SLOW_SECONDS` (2) and `FUZZ_HANG_SECONDS` (10, then the process ends);
//! `FUZZ_MEMORY_MB` (4096, a cap above the process's size at start); `FUZZ_DIR` (a tmpfs is
//! much faster when the disk is busy); `FUZZ_ERRORS=N` (print the N most frequent library
//! errors: where the inputs are stopped); `FUZZ_RAW=0` (HDF5 targets make well-formed files
//! only: structural and JSON edits, no raw byte edits).

mod common;
mod fuzz_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fuzz_support::driver::{run_caught, Summary};
use fuzz_support::targets::{spec, Spec, TARGETS};
use fuzz_support::{env_f64, fuzz_targets, prepare_process, regressions_root};

/// The smoke pass's seed: the same inputs on every CI run.
const SMOKE_SEED: u64 = 14;

#[test]
fn fuzz_smoke() {
    let specs: Vec<&'static Spec> = TARGETS.iter().collect();
    let summaries = fuzz_targets(&specs, SMOKE_SEED, env_f64("FUZZ_SMOKE_SECONDS", 2.0));
    assert_no_crashes(&summaries);
}

#[test]
#[ignore = "a long fuzzing run: scripts/fuzz.sh TARGET SECONDS [SEED]"]
fn fuzz_campaign() {
    let target = std::env::var("FUZZ_TARGET").unwrap_or_else(|_| "all".into());
    let specs: Vec<&'static Spec> = if target == "all" {
        TARGETS.iter().collect()
    } else {
        vec![spec(&target).unwrap_or_else(|| panic!("no fuzz target '{target}'; the targets are {}, or all", target_names()))]
    };
    let seed: u64 = std::env::var("FUZZ_SEED").map_or(1, |s| s.parse().unwrap_or_else(|_| panic!("FUZZ_SEED={s} is not a whole number")));
    let summaries = fuzz_targets(&specs, seed, env_f64("FUZZ_SECONDS", 60.0) / specs.len() as f64);
    assert_no_crashes(&summaries);
}

#[test]
fn fuzz_regressions() {
    let files = regression_files();
    let failures: Vec<String> = files.iter().filter_map(|(target, file)| replay_in_child(target, file).err()).collect();
    assert!(failures.is_empty(), "{} of {} fuzz regressions fail:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// Replay one file in a child process (`fuzz_replay`), so a signal or a hang is reported for
/// that file alone; the child is killed after the hang limit.
fn replay_in_child(target: &str, file: &Path) -> Result<(), String> {
    let log = fuzz_support::corpus::scratch("replay").join("stderr.txt");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["fuzz_replay", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("FUZZ_REPLAY_TARGET", target)
        .env("FUZZ_REPLAY_FILE", file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("running the replay");
    let limit = Duration::from_secs_f64(env_f64("FUZZ_HANG_SECONDS", 10.0));
    let started = Instant::now();
    let failure = loop {
        match child.try_wait().unwrap() {
            Some(status) if status.success() => return Ok(()),
            Some(status) => break status.to_string(),
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("still running after {} s (a hang), killed", limit.as_secs());
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    Err(format!("{target} {}: {failure}\n{stderr}", file.display()))
}

#[test]
#[ignore = "replays one file: FUZZ_REPLAY_TARGET=… FUZZ_REPLAY_FILE=…"]
fn fuzz_replay() {
    let (Ok(target), Some(file)) = (std::env::var("FUZZ_REPLAY_TARGET"), std::env::var_os("FUZZ_REPLAY_FILE")) else {
        eprintln!("fuzz_replay: set FUZZ_REPLAY_TARGET and FUZZ_REPLAY_FILE");
        return;
    };
    prepare_process();
    let spec = spec(&target).unwrap_or_else(|| panic!("no fuzz target '{target}'; the targets are {}", target_names()));
    match run_caught(spec.run, Path::new(&file)) {
        Ok(Ok(())) => eprintln!("{target}: the library accepted the file"),
        Ok(Err(error)) => eprintln!("{target}: the library refused the file: {error:#}"),
        Err(panic) => panic!("{target}: PANIC: {}\n{}", panic.message, panic.backtrace.map(|b| b.to_string()).unwrap_or_default()),
    }
}

fn assert_no_crashes(summaries: &[Summary]) {
    let crashes: Vec<String> = summaries
        .iter()
        .flat_map(|s| {
            s.crashes.iter().map(move |c| format!("{}: {} (×{})\n  reproducer: {}", s.target, c.message, c.hits, c.reproducer.display()))
        })
        .collect();
    assert!(crashes.is_empty(), "the fuzzer found {} distinct crash(es):\n{}", crashes.len(), crashes.join("\n"));
}

/// (target, file) for every file of `regressions/<target>/` with the target's extension
/// (notes beside them are skipped), sorted.
fn regression_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for target in TARGETS {
        let Ok(entries) = std::fs::read_dir(regressions_root().join(target.name)) else { continue };
        files.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == target.extension))
                .map(|p| (target.name.to_string(), p)),
        );
    }
    files.sort();
    files
}

fn target_names() -> String {
    TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}
