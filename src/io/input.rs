//! Every file keras-tch reads from a user goes through here first:
//!
//! - only regular files are read: a FIFO would block forever, `/dev/zero` would never end, a
//!   socket or folder is not data; each is refused with an error that says what it is;
//! - the bytes read are capped by the file's size as `stat` reports it, so a file cannot make
//!   the tool read more than it holds;
//! - the file is remembered (device and inode) as an input of this process, so the writer
//!   ([`super::atomic`]) refuses to replace it: an output never destroys an input.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::atomic::describe_file_type;

/// A file this process has read as an input.
#[derive(Debug, Clone)]
pub struct RegisteredInput {
    pub path: PathBuf,
    /// What it is to the command ("the model file", "an input image", …), for messages.
    pub what: String,
    device: u64,
    inode: u64,
}

static INPUTS: Mutex<Vec<RegisteredInput>> = Mutex::new(Vec::new());

/// Check that `path` is a regular file (symlinks followed) and remember it as an input of this
/// process; returns its metadata.
pub fn check_input(path: &Path, what: &str) -> Result<std::fs::Metadata> {
    let meta = check_regular_file(path, what)?;
    let mut inputs = INPUTS.lock().unwrap_or_else(|p| p.into_inner());
    if !inputs.iter().any(|i| i.device == meta.dev() && i.inode == meta.ino()) {
        inputs.push(RegisteredInput { path: path.to_path_buf(), what: what.to_string(), device: meta.dev(), inode: meta.ino() });
    }
    Ok(meta)
}

/// Check that `path` is a regular file, without remembering it (keras-tch's own state files,
/// such as `checkpoint.json`, which are read and then superseded by design).
pub fn check_regular_file(path: &Path, what: &str) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{what} {} is {}, not a regular file; keras-tch reads only regular files",
            path.display(),
            describe_file_type(&meta.file_type())
        );
    }
    Ok(meta)
}

/// Read the whole of an input file (checked and remembered as [`check_input`] does), never more
/// than the size it had when checked.
pub fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = check_input(path, what)?;
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {what} {}", path.display()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(meta.len()).read_to_end(&mut bytes).with_context(|| format!("reading {what} {}", path.display()))?;
    Ok(bytes)
}

/// The input registered at `path`'s device and inode, if `path` exists and is one.
pub fn registered_input_at(path: &Path) -> Option<RegisteredInput> {
    let meta = std::fs::metadata(path).ok()?;
    let inputs = INPUTS.lock().unwrap_or_else(|p| p.into_inner());
    inputs.iter().find(|i| i.device == meta.dev() && i.inode == meta.ino()).cloned()
}
