//! Helpers shared by the integration tests: where Keras's fixtures and the course data live,
//! and the rule for when they are missing (fail under CI=true, skip with a note elsewhere).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A resource the test needs: `Some(path)` when present; when absent, a panic under CI=true
/// (a missing fixture must never pass) and `None` otherwise, with a `SKIPPED <test>: …` line
/// that shows even when the test passes.
fn require(path: PathBuf, what: &str, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if in_ci() {
        panic!("{what} is missing: {} ({how})", path.display());
    }
    skipped(&format!("{what} is missing ({})", path.display()), how);
    None
}

/// Say that the running test checks nothing, why, and how to make it check: a `SKIPPED <test>:
/// <why>; <how>` line past libtest's capture (which hides a passing test's output), so a green
/// run that checked nothing says so.
pub fn skipped(why: &str, how: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}; {how}");
}

/// A folder written by scripts/keras_fixtures.py (real Keras), e.g. `keras_fixture("conv2d_valid")`.
pub fn keras_fixture(name: &str) -> Option<PathBuf> {
    require(repo_root().join("tests/keras-fixtures").join(name), &format!("Keras fixture '{name}'"), "run scripts/setup.sh --fixtures")
}

/// A file of the course data in ../shared/data (never copied into this repository).
pub fn shared_data(file: &str) -> Option<PathBuf> {
    let folder = std::env::var_os("KERAS_TCH_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/data"));
    require(folder.join(file), &format!("course data file {file}"), "expected in ../shared/data")
}

/// A fresh, empty scratch folder for one test, removed when the test is done with it — kept
/// when the test fails, to look at. (Left behind, the suite's files filled the disk.)
pub fn scratch_dir(test: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!("keras-tch-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ScratchDir(dir)
}

pub struct ScratchDir(PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Read a float32 dataset of a fixture's io.h5 as (flat values, shape).
pub fn read_f32(file: &Path, dataset: &str) -> (Vec<f32>, Vec<usize>) {
    let file = hdf5::File::open(file).unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
    let ds = file.dataset(dataset).unwrap_or_else(|e| panic!("dataset {dataset}: {e}"));
    (ds.read_raw::<f32>().unwrap(), ds.shape())
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
/// The Keras venv's python (next to the fixtures in the cache), to run scripts/keras_check.py.
pub fn keras_python() -> Option<PathBuf> {
    let fixtures = std::fs::canonicalize(repo_root().join("tests/keras-fixtures")).ok()?;
    let python = fixtures.parent()?.parent()?.join("venv/bin/python");
    if python.exists() {
        Some(python)
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the Keras venv's python is missing at {} (run scripts/setup.sh --fixtures)", python.display());
    } else {
        None
    }
}

pub mod keras_check_server;
pub mod parity;
