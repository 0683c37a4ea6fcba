//! HDF5 files held in memory (HDF5's "core" driver with no backing store, and file images):
//! a `.keras` archive's `model.weights.h5` is opened straight from the bytes inflated out of the
//! zip, and HDF5 files are built in memory and then written by the one atomic writer. So no
//! temporary file is ever made in `/tmp`, and every write error is the writer's to check
//! (HDF5 writing to disk itself reports a full disk only at close, if at all).

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Result};
use hdf5::plist::FileAccess;
use hdf5_sys::h5f::{H5Fget_file_image, H5Fopen, H5F_ACC_RDONLY};
use hdf5_sys::h5p::H5Pset_file_image;

/// A new, empty HDF5 file in memory (nothing touches the disk).
pub fn create_in_memory() -> Result<hdf5::File> {
    Ok(hdf5::File::with_options().with_fapl(|p| p.core_filebacked(false)).create(unique_name())?)
}

/// The bytes of an HDF5 file, as they would be on disk (flushed first).
pub fn file_image(file: &hdf5::File) -> Result<Vec<u8>> {
    file.flush()?;
    hdf5::sync::sync(|| {
        // SAFETY: `file.id()` is a live file handle; the first call only asks for the size, the
        // second writes at most `bytes.len()` bytes into `bytes`.
        let size = unsafe { H5Fget_file_image(file.id(), std::ptr::null_mut(), 0) };
        if size < 0 {
            bail!("HDF5 could not produce the in-memory file's image");
        }
        let mut bytes = vec![0u8; size as usize];
        let written = unsafe { H5Fget_file_image(file.id(), bytes.as_mut_ptr().cast::<c_void>(), bytes.len()) };
        if written != size {
            bail!("HDF5 wrote {written} of the in-memory file's {size} bytes");
        }
        Ok(bytes)
    })
}

/// Open `bytes` (a whole HDF5 file from a user) read-only, in memory, once its global heap is
/// checked ([`super::global_heap`]). HDF5 keeps its own copy.
pub fn open_image(bytes: &[u8]) -> Result<hdf5::File> {
    if bytes.is_empty() {
        bail!("the HDF5 data is empty (0 bytes)");
    }
    super::global_heap::check_in_memory(bytes)?;
    let access = FileAccess::build().core_filebacked(false).finish()?;
    let name = CString::new(unique_name())?;
    hdf5::sync::sync(|| {
        // SAFETY: `access` is a live property list; HDF5 copies `bytes` before returning, so the
        // pointer is read only during the call (HDF5 never writes through it: the copy is its own).
        let set = unsafe { H5Pset_file_image(access.id(), bytes.as_ptr() as *mut c_void, bytes.len()) };
        if set < 0 {
            bail!("HDF5 refused the in-memory file image");
        }
        // SAFETY: a NUL-terminated name and a live property list; the returned id is owned by
        // the `File` made from it.
        let id = unsafe { H5Fopen(name.as_ptr(), H5F_ACC_RDONLY, access.id()) };
        if id < 0 {
            bail!("not a readable HDF5 file (truncated or another format?)");
        }
        Ok(unsafe { hdf5::from_id::<hdf5::File>(id)? })
    })
}

/// HDF5 refuses to open one name twice at once, even in memory.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("keras-tch-in-memory-{}-{}.h5", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
