//! HDF5 files held in memory (HDF5's "core" driver with no backing store, and file images):
//! a `.keras` archive's `model.weights.h5` is opened straight from the bytes inflated out of the
//! zip (in place, in a reading process), and HDF5 files are built in memory and then written by the one atomic writer. So no
//! temporary file is ever made in `/tmp`, and every write error is the writer's to check
//! (HDF5 writing to disk itself reports a full disk only at close, if at all).

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Result};
use hdf5::plist::FileAccess;
use hdf5_sys::h5::herr_t;
use hdf5_sys::h5f::{H5Fget_file_image, H5Fopen, H5F_ACC_RDONLY};
use hdf5_sys::h5fd::{H5FD_file_image_callbacks_t, H5FD_file_image_op_t};
use hdf5_sys::h5p::{H5Pset_file_image, H5Pset_file_image_callbacks};

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

/// Open `bytes` (a whole HDF5 file) read-only, in memory and in place: HDF5's file-image
/// callbacks hand it `bytes` themselves instead of its own copy (read-only, so HDF5 never writes
/// or resizes them). This is how a reading process opens a `.keras` archive's 100 MB
/// `model.weights.h5` without another 100 MB copy. The caller checks the bytes first
/// ([`super::saved_weights::H5Source::memory`]).
///
/// # Safety
/// `bytes` must outlive the file and every object opened from it (HDF5 handles keep a file
/// open after its `File` is dropped).
pub unsafe fn open_image_in_place(bytes: &[u8]) -> Result<hdf5::File> {
    if bytes.is_empty() {
        bail!("the HDF5 data is empty (0 bytes)");
    }
    let access = FileAccess::build().core_filebacked(false).finish()?;
    let name = CString::new(unique_name())?;
    let view = Box::into_raw(Box::new(ImageView { pointer: bytes.as_ptr() as *mut c_void, len: bytes.len() }));
    let mut callbacks = H5FD_file_image_callbacks_t {
        image_malloc: Some(image_malloc),
        image_memcpy: Some(image_memcpy),
        image_realloc: Some(image_realloc),
        image_free: Some(image_free),
        udata_copy: Some(view_copy),
        udata_free: Some(view_free),
        udata: view.cast(),
    };
    hdf5::sync::sync(|| {
        // SAFETY: a live property list and callbacks that only ever hand out `bytes`; HDF5 copies
        // the struct and owns `view` from here (freeing it through `view_free`).
        if unsafe { H5Pset_file_image_callbacks(access.id(), &mut callbacks) } < 0 {
            // SAFETY: HDF5 did not take `view`.
            drop(unsafe { Box::from_raw(view) });
            bail!("HDF5 refused the in-memory file image callbacks");
        }
        // SAFETY: the callbacks above make HDF5 use `bytes` in place, read-only.
        if unsafe { H5Pset_file_image(access.id(), bytes.as_ptr() as *mut c_void, bytes.len()) } < 0 {
            bail!("HDF5 refused the in-memory file image");
        }
        // SAFETY: a NUL-terminated name and a live property list; the id is owned by the File.
        let id = unsafe { H5Fopen(name.as_ptr(), H5F_ACC_RDONLY, access.id()) };
        if id < 0 {
            bail!("not a readable HDF5 file (truncated or another format?)");
        }
        Ok(unsafe { hdf5::from_id::<hdf5::File>(id)? })
    })
}

/// The caller's bytes, as the file-image callbacks hand them to HDF5.
#[derive(Clone, Copy)]
struct ImageView {
    pointer: *mut c_void,
    len: usize,
}

extern "C" fn image_malloc(size: usize, _op: H5FD_file_image_op_t, udata: *mut c_void) -> *mut c_void {
    // SAFETY: `udata` is the `ImageView` HDF5 was given (or a copy from `view_copy`).
    let view = unsafe { *udata.cast::<ImageView>() };
    if size == view.len {
        view.pointer
    } else {
        std::ptr::null_mut()
    }
}

extern "C" fn image_memcpy(
    dest: *mut c_void,
    src: *const c_void,
    _size: usize,
    _op: H5FD_file_image_op_t,
    _udata: *mut c_void,
) -> *mut c_void {
    // Every "buffer" is the caller's own: there is nothing to copy.
    if dest.cast_const() == src {
        dest
    } else {
        std::ptr::null_mut()
    }
}

extern "C" fn image_realloc(_pointer: *mut c_void, _size: usize, _op: H5FD_file_image_op_t, _udata: *mut c_void) -> *mut c_void {
    std::ptr::null_mut() // read-only: the image never grows
}

extern "C" fn image_free(_pointer: *mut c_void, _op: H5FD_file_image_op_t, _udata: *mut c_void) -> herr_t {
    0 // the bytes are the caller's
}

unsafe extern "C" fn view_copy(udata: *mut c_void) -> *mut c_void {
    // SAFETY: `udata` is a live `ImageView`.
    Box::into_raw(Box::new(unsafe { *udata.cast::<ImageView>() })).cast()
}

unsafe extern "C" fn view_free(udata: *mut c_void) -> herr_t {
    // SAFETY: every `udata` HDF5 frees came from `Box::into_raw` above, and is freed once.
    drop(unsafe { Box::from_raw(udata.cast::<ImageView>()) });
    0
}

/// HDF5 refuses to open one name twice at once, even in memory.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("keras-tch-in-memory-{}-{}.h5", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
