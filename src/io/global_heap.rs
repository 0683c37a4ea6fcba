//! A guard in front of libhdf5 for the one file structure it cannot parse safely: the global heap,
//! where HDF5 keeps variable-length strings (Keras's `model_config`, `layer_names`,
//! `weight_names`, `keras_version`).
//!
//! libhdf5 (1.10.8, the Debian library keras-tch links, and still 2.0, checked with h5py) walks a
//! global heap collection object by object, advancing by each object's declared size. A corrupt
//! collection whose free-space object declares size 0 never advances: `H5Aread` loops forever.
//! One whose object declares more bytes than the collection holds makes 1.10.8 read past its
//! buffer (SIGSEGV in `H5HG_read`). So before HDF5 opens a file from a user, every collection in
//! it is walked here with the bounds checks libhdf5 lacks, and a file that would hang or crash it
//! is refused with an error naming the byte offset.
//!
//! Collections are found by their signature (`GCOL`, version 1) anywhere in the file, as HDF5
//! itself recognises them. Bytes of weights that happen to spell it are not mistaken for a
//! corrupt collection: only a collection that lies wholly inside the file is walked (HDF5 refuses
//! the others cleanly, with a read past its end of file).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

const SUPERBLOCK_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
const COLLECTION_SIGNATURE: &[u8; 5] = b"GCOL\x01";
/// HDF5 aligns every global heap object (and the collection header) to 8 bytes.
const ALIGNMENT: u64 = 8;
/// How much of a file on disk is scanned at a time.
const SCAN_CHUNK: usize = 8 << 20;

/// What the guard found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptCollection {
    /// Byte offset of the collection's signature in the file.
    pub offset: u64,
    pub problem: String,
}

impl std::fmt::Display for CorruptCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "corrupt HDF5 global heap (where variable-length strings such as model_config are stored) at byte {}: {}; \
             libhdf5 would hang or crash reading it, so the file is refused",
            self.offset, self.problem
        )
    }
}

/// Random access to the bytes of an HDF5 file, in memory or on disk.
trait Bytes {
    fn len(&self) -> u64;
    /// Fill `buf` from `offset`; `false` if the bytes are not all there.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool>;
}

impl Bytes for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
        let Some(end) = offset.checked_add(buf.len() as u64).filter(|&end| end <= Bytes::len(self)) else {
            return Ok(false);
        };
        buf.copy_from_slice(&self[offset as usize..end as usize]);
        Ok(true)
    }
}

/// A file on disk, of the size it had when it was checked.
struct SizedFile<'a> {
    file: &'a File,
    size: u64,
}

impl Bytes for SizedFile<'_> {
    fn len(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.size) {
            return Ok(false);
        }
        match FileExt::read_exact_at(self.file, buf, offset) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Check the global heap of the HDF5 file held in `bytes`.
pub fn check_in_memory(bytes: &[u8]) -> Result<()> {
    let mut offsets = Vec::new();
    find_in(bytes, 0, &mut offsets);
    check_collections(bytes, &offsets).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Check the global heap of the HDF5 file at `path`, `size` bytes long as checked by
/// [`super::input::check_input`] (nothing past it is read).
pub fn check_file(path: &Path, size: u64) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let sized = SizedFile { file: &file, size };
    let offsets = find_signatures(&sized).with_context(|| format!("cannot read {}", path.display()))?;
    check_collections(&sized, &offsets).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Every offset of a collection signature in a file on disk, read a chunk at a time (chunks
/// overlap by the signature's length less one, so none is missed at a boundary).
fn find_signatures(bytes: &SizedFile) -> std::io::Result<Vec<u64>> {
    let overlap = COLLECTION_SIGNATURE.len() as u64 - 1;
    let mut buffer = vec![0u8; SCAN_CHUNK];
    let mut offsets = Vec::new();
    let mut start = 0u64;
    while start < bytes.size {
        let wanted = (bytes.size - start).min(SCAN_CHUNK as u64) as usize;
        let chunk = &mut buffer[..wanted];
        if !bytes.read_exact_at(chunk, start)? {
            break; // the file shrank since it was checked: HDF5 will say so
        }
        find_in(chunk, start, &mut offsets);
        if start + wanted as u64 >= bytes.size {
            break;
        }
        start += wanted as u64 - overlap;
    }
    Ok(offsets)
}

/// The offsets (plus `base`) of every collection signature in `bytes`. A loop over
/// `memmem::find` rather than its iterator: `find` runs as compiled in memchr (optimised even in
/// a debug build), the iterator as compiled here.
fn find_in(bytes: &[u8], base: u64, offsets: &mut Vec<u64>) {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&bytes[from..], COLLECTION_SIGNATURE) {
        offsets.push(base + (from + at) as u64);
        from += at + 1;
    }
}

enum CheckError {
    Corrupt(CorruptCollection),
    Io(std::io::Error),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Corrupt(corrupt) => corrupt.fmt(f),
            CheckError::Io(io) => write!(f, "read error while checking its global heap: {io}"),
        }
    }
}

fn check_collections<B: Bytes + ?Sized>(bytes: &B, offsets: &[u64]) -> Result<(), CheckError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let Some(length_size) = size_of_lengths(bytes).map_err(CheckError::Io)? else {
        return Ok(()); // no superblock: HDF5 refuses the file itself
    };
    for &offset in offsets {
        walk_collection(bytes, offset, length_size)?;
    }
    Ok(())
}

/// The superblock's "size of lengths" (how many bytes encode a collection's and an object's
/// size), or `None` when the file has no superblock. HDF5 looks for it at 0, 512, 1024, 2048, …
fn size_of_lengths<B: Bytes + ?Sized>(bytes: &B) -> std::io::Result<Option<u64>> {
    let mut at = 0u64;
    while at < bytes.len() {
        let mut head = [0u8; 16];
        if bytes.read_exact_at(&mut head, at)? && &head[..8] == SUPERBLOCK_SIGNATURE {
            // Versions 0 and 1 keep the size of lengths at byte 14, versions 2 and 3 at byte 10.
            let size = if head[8] <= 1 { head[14] } else { head[10] };
            return Ok(Some(u64::from(size)));
        }
        at = if at == 0 { 512 } else { at * 2 };
    }
    Ok(None)
}

fn aligned(n: u64) -> Option<u64> {
    n.checked_add(ALIGNMENT - 1).map(|n| n / ALIGNMENT * ALIGNMENT)
}

fn decode_length(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b))
}

/// Walk the collection at `offset` as libhdf5 does, with the checks it lacks.
fn walk_collection<B: Bytes + ?Sized>(bytes: &B, offset: u64, length_size: u64) -> Result<(), CheckError> {
    let corrupt = |problem: String| CheckError::Corrupt(CorruptCollection { offset, problem });
    if !matches!(length_size, 2 | 4 | 8) {
        return Err(corrupt(format!("the superblock declares {length_size}-byte lengths (HDF5 writes 2, 4 or 8)")));
    }
    let header_size = aligned(8 + length_size).unwrap_or(u64::MAX);
    let object_header_size = header_size; // index 2 + references 2 + reserved 4 + size
    let mut field = [0u8; 8];
    let length_field = &mut field[..length_size as usize];
    if !bytes.read_exact_at(length_field, offset + 8).map_err(CheckError::Io)? {
        return Ok(()); // cut off by the end of the file: HDF5 cannot read it either
    }
    let collection_size = decode_length(length_field);
    if offset.checked_add(collection_size).is_none_or(|end| end > bytes.len()) {
        return Ok(()); // reaches past the end of the file: HDF5 refuses to read it
    }
    if collection_size < header_size {
        return Err(corrupt(format!("the collection declares {collection_size} bytes, less than its own header")));
    }
    let mut position = header_size;
    let mut object = vec![0u8; (8 + length_size) as usize];
    while position < collection_size {
        if position + object_header_size > collection_size {
            break; // too small for an object header: free space, as HDF5 reads it
        }
        if !bytes.read_exact_at(&mut object, offset + position).map_err(CheckError::Io)? {
            return Ok(());
        }
        let index = u16::from_le_bytes([object[0], object[1]]);
        let declared = decode_length(&object[8..]);
        // An object's size excludes its header and is padded to the alignment; the free-space
        // object (index 0) declares its whole extent, header included.
        let extent = if index > 0 { aligned(declared).and_then(|d| d.checked_add(object_header_size)) } else { Some(declared) };
        let remaining = collection_size - position;
        match extent {
            Some(extent) if extent < object_header_size => {
                return Err(corrupt(format!(
                    "object {index} at collection byte {position} declares {declared} bytes, less than an object header"
                )));
            }
            Some(extent) if extent <= remaining => position += extent,
            _ => {
                return Err(corrupt(format!(
                    "object {index} at collection byte {position} declares {declared} bytes, but only {remaining} remain in the collection"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-0 superblock declaring 8-byte lengths, padded to 64 bytes.
    fn superblock() -> Vec<u8> {
        let mut bytes = SUPERBLOCK_SIGNATURE.to_vec();
        bytes.extend([0, 0, 0, 0, 0, 8, 8]); // versions, reserved, size of offsets, size of lengths
        bytes.resize(64, 0);
        bytes
    }

    fn collection(objects: &[(u16, u64)], size: u64) -> Vec<u8> {
        let mut bytes = COLLECTION_SIGNATURE.to_vec();
        bytes.extend([0, 0, 0]);
        bytes.extend(size.to_le_bytes());
        for &(index, declared) in objects {
            bytes.extend(index.to_le_bytes());
            bytes.extend([1, 0, 0, 0, 0, 0]);
            bytes.extend(declared.to_le_bytes());
            let body = if index > 0 { aligned(declared).unwrap() } else { declared.saturating_sub(16) };
            bytes.resize(bytes.len() + body.min(4096) as usize, b'x');
        }
        bytes
    }

    fn file_with(objects: &[(u16, u64)]) -> Vec<u8> {
        let mut bytes = superblock();
        bytes.extend(collection(objects, 4096));
        bytes.resize(64 + 4096 + 100, 0);
        bytes
    }

    #[test]
    fn a_well_formed_collection_passes() {
        // 16 header + (16 + 8) + (16 + 16) + free space 4096 - 72.
        assert!(check_in_memory(&file_with(&[(1, 6), (2, 10), (0, 4096 - 72)])).is_ok());
    }

    #[test]
    fn a_zero_sized_free_space_object_is_refused() {
        let error = check_in_memory(&file_with(&[(1, 6), (0, 0)])).unwrap_err().to_string();
        assert!(error.contains("at byte 64") && error.contains("object 0") && error.contains("less than an object header"), "{error}");
    }

    #[test]
    fn an_object_larger_than_its_collection_is_refused() {
        let error = check_in_memory(&file_with(&[(1, 6), (3, 3_328_723_074_580_217_856)])).unwrap_err().to_string();
        assert!(error.contains("object 3") && error.contains("remain in the collection"), "{error}");
    }

    #[test]
    fn a_signature_whose_collection_would_pass_the_end_of_file_is_left_to_hdf5() {
        let mut bytes = superblock();
        bytes.extend(collection(&[(0, 0)], 1 << 40));
        assert!(check_in_memory(&bytes).is_ok());
    }
}
