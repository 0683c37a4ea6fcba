//! NumPy `.npy` files (format version 1.0/2.0) for `keras-tch predict`: float32 (or float64,
//! converted) C-order arrays in, float32 out.
//!
//! Hand-written rather than tch's `Tensor::read_npy` / `write_npy`, which open the path as
//! given and read to its end (a FIFO blocks, a link to `/dev/zero` fills memory, no size is
//! checked against the header before the read) and write in place, where an interrupted write
//! leaves a truncated file. Here the input is checked first (`io::input`: a regular file, within
//! the limits), the declared shape is compared with the bytes really there, and the output goes
//! through the atomic writer.

use std::path::Path;

use anyhow::Result;
use tch::{Kind, Tensor};

use super::atomic::write_bytes_atomically;
use super::input::read_input;
use crate::graph::tuple;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Read a little-endian float32/float64 C-order array as a float32 tensor.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let bytes = read_input(path, "the .npy file")?;
    let fail = |why: String| anyhow::anyhow!("{} is not a usable .npy file: {why}", path.display());
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(fail("missing the \\x93NUMPY magic".into()));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(fail(format!("unsupported format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes.get(header_start..data_start).ok_or_else(|| fail("truncated header".into()))?;
    let header = String::from_utf8_lossy(header);
    let descr = header_value(&header, "descr").ok_or_else(|| fail(format!("no 'descr' in header {header}")))?;
    if header_value(&header, "fortran_order").as_deref() == Some("True") {
        return Err(fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into()));
    }
    let shape_text = header_value(&header, "shape").ok_or_else(|| fail(format!("no 'shape' in header {header}")))?;
    let shape: Vec<i64> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse::<i64>().map_err(|_| fail(format!("bad shape {shape_text}"))))
        .collect::<Result<_>>()?;
    let (kind, size) = match descr.trim_matches('\'') {
        "<f4" => (Kind::Float, 4),
        "<f8" => (Kind::Double, 8),
        other => return Err(fail(format!("dtype {other}; expected float32 ('<f4') or float64 ('<f8')"))),
    };
    if let Some(negative) = shape.iter().find(|&&d| d < 0) {
        return Err(fail(format!("shape {shape_text} has a negative dimension {negative}")));
    }
    let needed = shape
        .iter()
        .try_fold(size, |acc: i64, &d| acc.checked_mul(d))
        .ok_or_else(|| fail(format!("shape {shape_text} is too large to exist")))?;
    let data = &bytes[data_start..];
    if data.len() as i64 != needed {
        return Err(fail(format!("shape {shape:?} needs {needed} bytes of data, found {}", data.len())));
    }
    let tensor = Tensor::from_data_size(data, &shape, kind);
    Ok(tensor.to_kind(Kind::Float))
}

/// Write a tensor as a little-endian float32 C-order `.npy`, atomically.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<()> {
    let tensor = tensor.to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous();
    let shape = tensor.size();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", tuple(&shape));
    // Pad so the data starts on a 64-byte boundary, header ending in '\n' (as numpy does).
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let values = Vec::<f32>::try_from(tensor.flatten(0, -1))?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + values.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    write_bytes_atomically(path, &bytes)
}

/// The text of `'key': value` in a numpy header dict (value up to the next top-level comma).
fn header_value(header: &str, key: &str) -> Option<String> {
    let start = header.find(&format!("'{key}':"))? + key.len() + 3;
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find(',').unwrap_or(rest.len()) };
    Some(rest[..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shape_and_values() {
        let dir = std::env::temp_dir().join(format!("keras-tch-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let x = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).reshape([2, 3, 4]) / 7.0;
        write_npy(&path, &x).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0, "data aligned to 64 bytes");
        assert!(read_npy(&path).unwrap().equal(&x));
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(read_npy(&path).unwrap_err().to_string().contains("magic"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
