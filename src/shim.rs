//! Calling the C++ shims (`src/graph/*.cpp`, `src/train/*.cpp`): tensors go as tch's handles,
//! a result comes back as a new handle, an error as a message in a buffer (a C++ exception never
//! crosses into Rust).

use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, Result};
use tch::Tensor;

/// Room for a C++ exception's message.
const ERROR_LEN: usize = 2048;

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
    checked(call).or_else(|message| bail!("{what} failed: {message}"))
}

/// Runs `call` with an error buffer: its message when it returns non-zero.
pub fn checked(call: impl FnOnce(*mut c_char, usize) -> c_int) -> std::result::Result<(), String> {
    let mut error = vec![0 as c_char; ERROR_LEN];
    if call(error.as_mut_ptr(), error.len()) == 0 {
        return Ok(());
    }
    // SAFETY: on failure the C++ side wrote a NUL-terminated message into `error`.
    Err(unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy().into_owned())
}

/// The handle a shim takes for `tensor` (borrowed for the call).
pub fn handle(tensor: &Tensor) -> *mut c_void {
    tensor.as_ptr() as *mut c_void
}
