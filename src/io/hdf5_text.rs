//! Lists of strings in HDF5 attributes and datasets, in every form Keras files use: fixed-length
//! null-padded ASCII (Keras 2.0-era `layer_names`, the course's `list_classes`), variable-length
//! strings (tf.keras 2.x, Keras 3), and the empty float64 array Keras writes for a weightless
//! layer's `weight_names`.

use anyhow::{bail, Context, Result};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::Container;

/// Longest fixed-length string read; HDF5 converts shorter fixed strings up to this size.
const MAX_FIXED_LEN: usize = 1024;
/// Most strings in one list (Keras's longest, `layer_names` of a large model, has a few
/// thousand): a corrupt header cannot make us allocate gigabytes of strings.
const MAX_LIST_LEN: usize = 1 << 16;

/// Read a 0- or 1-dimensional string attribute or dataset as a list of Rust strings.
pub fn read_string_list(container: &Container) -> Result<Vec<String>> {
    if container.size() > MAX_LIST_LEN {
        bail!("a list of {} strings exceeds the {MAX_LIST_LEN}-entry limit", container.size());
    }
    let descriptor = container.dtype()?.to_descriptor()?;
    // HDF5 stores bytes: a string is only taken once they are checked to be UTF-8 (the crate's
    // `as_str` would trust them).
    let text = |bytes: &[u8]| -> Result<String> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| anyhow::anyhow!("a string is not valid UTF-8: {:?}", String::from_utf8_lossy(bytes)))
    };
    let strings: Vec<String> = match descriptor {
        TypeDescriptor::FixedAscii(len) | TypeDescriptor::FixedUnicode(len) if len > MAX_FIXED_LEN => {
            bail!("strings of {len} bytes exceed the {MAX_FIXED_LEN}-byte limit")
        }
        TypeDescriptor::FixedAscii(_) => {
            container.read_raw::<FixedAscii<MAX_FIXED_LEN>>()?.iter().map(|s| text(s.as_bytes())).collect::<Result<_>>()?
        }
        TypeDescriptor::FixedUnicode(_) => {
            container.read_raw::<FixedUnicode<MAX_FIXED_LEN>>()?.iter().map(|s| text(s.as_bytes())).collect::<Result<_>>()?
        }
        TypeDescriptor::VarLenAscii => container.read_raw::<VarLenAscii>()?.iter().map(|s| text(s.as_bytes())).collect::<Result<_>>()?,
        TypeDescriptor::VarLenUnicode => {
            container.read_raw::<VarLenUnicode>()?.iter().map(|s| text(s.as_bytes())).collect::<Result<_>>()?
        }
        // Keras writes `np.array([])` (float64, size 0) for a layer without weights.
        TypeDescriptor::Float(_) if container.size() == 0 => Vec::new(),
        other => bail!("expected strings, found elements of type {other}"),
    };
    Ok(strings.into_iter().map(|s| s.trim_end_matches('\0').to_owned()).collect())
}

/// Read an integer list as strings (`list_classes` may be integers), or a string list as is.
pub fn read_labels(container: &Container) -> Result<Vec<String>> {
    match container.dtype()?.to_descriptor()? {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) if container.size() > MAX_LIST_LEN => {
            bail!("a list of {} labels exceeds the {MAX_LIST_LEN}-entry limit", container.size())
        }
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            Ok(container.read_raw::<i64>()?.iter().map(|c| c.to_string()).collect())
        }
        _ => read_string_list(container).context("reading labels"),
    }
}
