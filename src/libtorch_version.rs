//! Which libtorch and tch this binary runs: the version libtorch reports at run time (its
//! build settings' `TORCH_VERSION`, through `src/libtorch_version.cpp`) and the tch crate's
//! version from Cargo.lock (set by build.rs).

use std::ffi::c_char;

extern "C" {
    fn keras_tch_libtorch_config(out: *mut c_char, capacity: usize) -> usize;
}

/// The tch crate this binary was built with, e.g. `0.26.0`.
pub const TCH_VERSION: &str = env!("KERAS_TCH_TCH_VERSION");

/// libtorch's `show_config()` text (`torch.__config__.show()`).
pub fn libtorch_config() -> String {
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        // SAFETY: the callee writes at most `buffer.len()` bytes into it.
        let length = unsafe { keras_tch_libtorch_config(buffer.as_mut_ptr().cast(), buffer.len()) };
        if length <= buffer.len() {
            buffer.truncate(length);
            return String::from_utf8_lossy(&buffer).into_owned();
        }
        buffer.resize(length, 0);
    }
}

/// The version of the libtorch library loaded in this process (`2.13.0`), if it says.
pub fn libtorch_version() -> Option<String> {
    let config = libtorch_config();
    let start = config.find("TORCH_VERSION=")? + "TORCH_VERSION=".len();
    let version = config[start..].split([',', '\n', ' ']).next()?.trim();
    (!version.is_empty()).then(|| version.to_string())
}
