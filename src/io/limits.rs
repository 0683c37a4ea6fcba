//! The resource limits that keep a hostile or broken file from taking the machine down. Each is
//! far above anything a real Keras file of this project's kind needs (ResNet50: 98 MB of
//! weights, a 0.1 MB config) and is named in the error a file that exceeds it gets.

/// The largest model built from a `model_config` or `config.json`: its weights as float32.
pub const MAX_PARAMETER_BYTES: u64 = 16 << 30;

/// The largest size of any one dimension, kernel, stride, dilation, padding, filter or unit
/// count in a model configuration: far above any real model, and small enough that shape
/// arithmetic on three of them cannot overflow.
pub const MAX_DIMENSION: i64 = 1 << 20;

/// The largest configuration text (`model_config`, `config.json`, `checkpoint.json`).
pub const MAX_CONFIG_BYTES: u64 = 256 << 20;

/// A zip entry may inflate to at most this many times its compressed size (real `.keras`
/// weights are stored or barely compressible: ratio ≈ 1) …
pub const MAX_INFLATION_RATIO: u64 = 100;
/// … or to this much, whichever is larger (small entries such as `config.json`).
pub const MIN_INFLATION_ALLOWANCE: u64 = 64 << 20;

/// A compressed HDF5 dataset may declare at most this many times the file's size (deflate's
/// best ratio is about 1032:1).
pub const MAX_HDF5_COMPRESSION_RATIO: u64 = 1100;

/// The bytes an HDF5 dataset of `dims` × `element_bytes` declares, if a file of `file_size`
/// bytes can hold them (uncompressed: at most the file; compressed: at most
/// [`MAX_HDF5_COMPRESSION_RATIO`] times it). Checked before anything is allocated, so a small
/// file declaring a huge dataset is an error, not an allocation failure.
pub fn check_declared_size(dims: &[usize], element_bytes: usize, compressed: bool, file_size: u64) -> Result<u64, String> {
    let declared = dims
        .iter()
        .try_fold(element_bytes as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| format!("it declares an impossible shape {dims:?}"))?;
    let allowed = if compressed { file_size.saturating_mul(MAX_HDF5_COMPRESSION_RATIO) } else { file_size };
    if declared > allowed {
        return Err(format!(
            "it declares shape {dims:?} ({declared} bytes), but the file is only {file_size} bytes{}: the file is truncated or corrupt",
            if compressed { " (even compressed)" } else { "" }
        ));
    }
    Ok(declared)
}
