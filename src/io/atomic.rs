//! The one way keras-tch writes a file, so that a full disk, a crash, Ctrl-C or a hostile path
//! never costs the user a file:
//!
//! 1. the destination is checked first: it must not be a file this process read as an input
//!    (compared by device and inode, so links and `./x` spellings are caught), and if it exists
//!    it must be a regular file — a device such as `/dev/null`, a FIFO or a folder is refused,
//!    never renamed over;
//! 2. the data goes to a new temporary file created exclusively (`O_EXCL`, random name, so a
//!    planted file or symlink is never opened) in the destination's own folder;
//! 3. every write error is checked, the file is fsynced (which also reports write-back errors
//!    such as ENOSPC), renamed over the destination, and the folder is fsynced;
//! 4. the temporary file is removed on every failure path, and registered so that the signal
//!    watcher ([`crate::signals`]) removes it if the process is stopped mid-write.
//!
//! A `kill -9` in the middle of a write can still leave a `.keras-tch-*` file next to the
//! destination (nothing runs on SIGKILL); the destination itself is never touched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::input;

/// Temporary files being written right now, removed by the signal watcher on Ctrl-C/SIGTERM.
static LIVE_TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Write `bytes` to `path`, atomically (see the module docs).
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file, _| {
        file.write_all(bytes)?;
        Ok(())
    })
}

/// Write `path` through `write`, which receives the path of a fresh temporary file in the same
/// folder to fill (for writers that open paths themselves; its extension is the destination's).
/// The temporary file is removed if `write` fails.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    write_atomically_with(path, |_, temp| write(temp))
}

fn write_atomically_with(path: &Path, write: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
    check_destination(path)?;
    let dir = folder_of(path);
    // Like `mkdir -p` before writing: `--save runs/new/model.h5` should just work.
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the folder {}", dir.display()))?;
    let (mut file, temp) = create_temporary(&dir, path)?;
    let guard = TemporaryGuard::register(temp.clone());
    let result = write(&mut file, &temp)
        .and_then(|()| {
            // Reopened: a writer that took the path may have replaced the file we created.
            drop(file);
            File::open(&temp).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", temp.display()))?;
            std::fs::rename(&temp, path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
            guard.renamed();
            sync_folder(&dir)
        })
        .with_context(|| format!("writing {}", path.display()));
    drop(guard);
    result
}

/// Refuse a destination that is an input of this command, or that exists and is not a regular
/// file. Called by the writer, and by commands that want to refuse before doing their work.
pub fn check_destination(path: &Path) -> Result<()> {
    if let Some(input) = input::registered_input_at(path) {
        bail!(
            "refusing to write {}: it is {} this command reads ({}); choose another output path",
            path.display(),
            input.what,
            input.path.display()
        );
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => bail!(
            "refusing to write {}: it exists and is {}, not a regular file; keras-tch only replaces regular files",
            path.display(),
            describe_file_type(&meta.file_type())
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot check the output path {}", path.display())),
    }
}

/// Whether two paths name the same file, including a file that does not exist yet (same
/// canonical folder and name); for outputs that must differ from each other.
pub fn same_destination(a: &Path, b: &Path) -> bool {
    let resolve = |path: &Path| -> Option<PathBuf> {
        if let Ok(real) = std::fs::canonicalize(path) {
            return Some(real);
        }
        Some(std::fs::canonicalize(folder_of(path)).ok()?.join(path.file_name()?))
    };
    match (resolve(a), resolve(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// "a FIFO", "a character device", … for messages.
pub fn describe_file_type(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Remove every temporary file still being written (the signal watcher, before exiting).
pub fn remove_live_temporaries() {
    // A poisoned lock still holds the list; the process is about to exit either way.
    let live = LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner());
    for temp in live.iter() {
        let _ = std::fs::remove_file(temp);
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new file `.keras-tch-<random>-<name>` in `dir`, created with `O_EXCL` (it never opens
/// an existing file or follows a symlink); the name keeps the destination's extension last,
/// since some writers pick the format from it.
fn create_temporary(dir: &Path, destination: &Path) -> Result<(File, PathBuf)> {
    let name = destination.file_name().with_context(|| format!("{} is not a file path", destination.display()))?;
    for _ in 0..16 {
        let temp = dir.join(format!(".keras-tch-{:016x}-{}", random_u64(), name.to_string_lossy()));
        match OpenOptions::new().write(true).create_new(true).mode(0o666).open(&temp) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating a temporary file in {}", dir.display())),
        }
    }
    bail!("could not create a temporary file in {} (16 names taken)", dir.display())
}

/// Unpredictable enough for temporary names: std's per-process random hash keys, mixed with
/// the time and a counter.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A rename is durable only once its folder is synced. Filesystems that cannot sync a folder
/// (EINVAL) have nothing more to do.
fn sync_folder(dir: &Path) -> Result<()> {
    let folder = File::open(dir).with_context(|| format!("opening the folder {} to sync it", dir.display()))?;
    match folder.sync_all() {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other.with_context(|| format!("syncing the folder {}", dir.display())),
    }
}

/// Keeps a temporary file in [`LIVE_TEMPORARIES`] while it is written; removes it on drop
/// unless it was renamed into place.
struct TemporaryGuard {
    path: PathBuf,
    renamed: std::cell::Cell<bool>,
}

impl TemporaryGuard {
    fn register(path: PathBuf) -> Self {
        LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner()).push(path.clone());
        Self { path, renamed: std::cell::Cell::new(false) }
    }

    fn renamed(&self) {
        self.renamed.set(true);
    }
}

impl Drop for TemporaryGuard {
    fn drop(&mut self) {
        let mut live = LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|p| p != &self.path);
        if !self.renamed.get() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A folder of this process's own in the system's temporary folder: created with a random
/// name and mode 0700 (so nobody else can plant files in it or read them), removed with its
/// contents on drop.
pub struct PrivateFolder {
    path: PathBuf,
}

impl PrivateFolder {
    pub fn new(purpose: &str) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let path = base.join(format!("keras-tch-{purpose}-{:016x}", random_u64()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating a private folder in {}", base.display())),
            }
        }
        bail!("could not create a private folder in {} (16 names taken)", base.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
