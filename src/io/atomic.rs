//! Writing files so that a crash or Ctrl-C never leaves a half-written one: write a temporary
//! file next to the target, fsync it, rename it over the target, fsync the directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Write `path` through `write`, which receives a temporary path in the same directory to fill
/// (the temporary file is removed if `write` fails).
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    // Like `mkdir -p` before writing: `--save runs/new/model.h5` should just work.
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the folder {}", dir.display()))?;
    // The name keeps its extension last: some writers pick the format from it.
    let temp = dir.join(format!(".tmp-{}-{}", std::process::id(), file_name.to_string_lossy()));
    let result = write(&temp).and_then(|()| {
        File::open(&temp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
        // The rename itself is durable only once the directory is synced.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}
