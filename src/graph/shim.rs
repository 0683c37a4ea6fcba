//! Calling the inference path's C++ shims (`fused_conv.cpp`, `winograd_conv.cpp`): tensors go
//! as tch's handles, a result comes back as a new handle, an error as a message in a buffer.

use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, Result};
use tch::Tensor;

/// The size of the buffer a shim writes its error message into.
const ERROR_LEN: usize = 1024;

/// A new tensor from a shim that writes a handle to `out`, or its error message.
pub fn tensor_from_shim(what: &str, call: impl FnOnce(*mut *mut c_void, *mut c_char, usize) -> c_int) -> Result<Tensor> {
    let mut out: *mut c_void = std::ptr::null_mut();
    status_from_shim(what, |error, error_len| call(&mut out, error, error_len))?;
    if out.is_null() {
        bail!("{what} failed: no tensor came back");
    }
    // SAFETY: on success `out` is a new `at::Tensor*` that nothing else owns.
    Ok(unsafe { Tensor::from_ptr(out.cast()) })
}

/// Success, or the error message of a shim that returns a status (0 for success).
pub fn status_from_shim(what: &str, call: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    let mut error = vec![0 as c_char; ERROR_LEN];
    if call(error.as_mut_ptr(), error.len()) != 0 {
        // SAFETY: on failure the C++ side wrote a NUL-terminated message into `error`.
        let message = unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy().into_owned();
        bail!("{what} failed: {message}");
    }
    Ok(())
}

/// The handle a shim takes for `tensor` (borrowed for the call).
pub fn handle(tensor: &Tensor) -> *mut c_void {
    tensor.as_ptr() as *mut c_void
}
