//! The input generators, one per target: each starts from the target's seed corpus and
//! mixes format-blind byte mutations (`bytes`) with edits that keep enough of the format for
//! the input to get past the first checks: JSON edits (`json`), HDF5 files rewritten through
//! the `hdf5` crate (`hdf5_edit`), zip archives rebuilt around an edited member, `.npy`
//! headers re-assembled, PNG CRCs recomputed, safetensors headers re-prefixed.

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::str::FromStr;

use anyhow::Result;
use hdf5::types::VarLenUnicode;
use zip::write::FileOptions;
use zip::CompressionMethod;

use super::bytes::{self, Seed};
use super::corpus;
use super::dice::Dice;
use super::{hdf5_edit, json};

/// Makes one execution's input from its dice.
pub type Make = Box<dyn FnMut(&mut Dice) -> Vec<u8>>;

/// A target's input generator and the size of the corpus it draws from.
pub struct Inputs {
    pub corpus_files: usize,
    pub make: Make,
}

impl Inputs {
    fn new(corpus_files: usize, make: impl FnMut(&mut Dice) -> Vec<u8> + 'static) -> Self {
        Self { corpus_files, make: Box::new(make) }
    }
}

/// No input grows past this: bigger files only test the disk.
const MAX_INPUT_BYTES: usize = 8 << 20;

/// Raw byte mutations, or a structural edit (see `hdf5_edit`).
pub fn h5_weights(scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::keras_h5()?;
    let staging = scratch.join("staging.h5");
    Some(Inputs::new(seeds.len(), move |dice| {
        if raw_allowed() && dice.chance(60) {
            return raw(dice, &seeds);
        }
        let seed = dice.pick(&seeds);
        hdf5_edit::edit(dice, &seed.bytes, &staging).unwrap_or_else(|_| seed.bytes.clone())
    }))
}

/// Raw byte mutations, a structural edit, or a well-formed file whose `model_config` (or
/// `training_config`) JSON was mutated and written back.
pub fn h5_model(scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::keras_h5_models()?;
    let configs: Vec<[String; 2]> = seeds.iter().map(|s| json_attributes(Path::new(&s.name))).collect();
    let staging = scratch.join("staging.h5");
    Some(Inputs::new(seeds.len(), move |dice| {
        let i = dice.below(seeds.len());
        if raw_allowed() && dice.chance(40) {
            return raw(dice, &seeds);
        }
        if dice.chance(35) {
            return hdf5_edit::edit(dice, &seeds[i].bytes, &staging).unwrap_or_else(|_| seeds[i].bytes.clone());
        }
        let (name, text) = if configs[i][1].is_empty() || dice.chance(75) {
            ("model_config", &configs[i][0])
        } else {
            ("training_config", &configs[i][1])
        };
        let mutated = json::mutate(dice, text);
        with_attribute(&seeds[i].bytes, name, &mutated, &staging).unwrap_or_else(|_| seeds[i].bytes.clone())
    }))
}

/// The `model_config` and `training_config` texts of a full-model file ("" when absent).
fn json_attributes(path: &Path) -> [String; 2] {
    let file = hdf5::File::open(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()));
    ["model_config", "training_config"].map(|name| {
        file.attr(name)
            .ok()
            .and_then(|attr| keras_tch::io::hdf5_text::read_string_list(&attr).ok())
            .and_then(|texts| texts.into_iter().next())
            .unwrap_or_default()
    })
}

/// `bytes` (an HDF5 file) with the string attribute `name` replaced by `text`, written with
/// the `hdf5` crate through a staging file.
fn with_attribute(bytes: &[u8], name: &str, text: &str, staging: &Path) -> Result<Vec<u8>> {
    std::fs::write(staging, bytes)?;
    {
        let file = hdf5::File::open_rw(staging)?;
        file.delete_attr(name)?;
        let value = VarLenUnicode::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        file.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&value)?;
    }
    Ok(std::fs::read(staging)?)
}

/// Raw mutations of the archive, or a rebuilt archive with a mutated `config.json`, a mutated
/// `model.weights.h5` (raw or structural edits; each member's CRC then matches, so the edit
/// reaches the parser), or members dropped, renamed or compressed differently.
pub fn keras_archive(scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::keras_archives()?;
    let staging = scratch.join("staging.h5");
    let members: Vec<Vec<(String, Vec<u8>)>> = seeds.iter().map(|s| unzip(&s.bytes)).collect();
    Some(Inputs::new(seeds.len(), move |dice| {
        let i = dice.below(seeds.len());
        let mut entries = members[i].clone();
        match dice.below(4) {
            0 if raw_allowed() => return raw(dice, &seeds),
            1 => edit_member(&mut entries, "config.json", |bytes| json::mutate(dice, &String::from_utf8_lossy(bytes)).into_bytes()),
            2 => edit_member(&mut entries, "model.weights.h5", |bytes| {
                if !raw_allowed() || dice.chance(50) {
                    return hdf5_edit::edit(dice, bytes, &staging).unwrap_or_else(|_| bytes.to_vec());
                }
                let seed = corpus::hdf5_hot(Seed::new("model.weights.h5", bytes.to_vec()));
                bytes::mutate(dice, &seed, &[], MAX_INPUT_BYTES)
            }),
            _ => edit_member_list(dice, &mut entries),
        }
        zip_members(dice, &entries).unwrap_or_else(|_| seeds[i].bytes.clone())
    }))
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a seed archive");
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).expect("a seed archive's member");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("a seed archive's member");
            (entry.name().to_string(), data)
        })
        .collect()
}

fn edit_member(entries: &mut [(String, Vec<u8>)], name: &str, edit: impl FnOnce(&[u8]) -> Vec<u8>) {
    if let Some((_, data)) = entries.iter_mut().find(|(n, _)| n == name) {
        *data = edit(data);
    }
}

/// Drop a member, rename it (to a path escaping the archive, or onto another member's name),
/// or add a copy under another name.
fn edit_member_list(dice: &mut Dice, entries: &mut Vec<(String, Vec<u8>)>) {
    if entries.is_empty() {
        return;
    }
    let i = dice.below(entries.len());
    let names = ["../config.json", "/config.json", "config.json", "model.weights.h5", "CONFIG.JSON", "config.json/", ""];
    match dice.below(3) {
        0 => drop(entries.remove(i)),
        1 => entries[i].0 = dice.pick(&names).to_string(),
        _ => {
            let copy = (dice.pick(&names).to_string(), entries[i].1.clone());
            entries.push(copy);
        }
    }
}

fn zip_members(dice: &mut Dice, entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        let method = *dice.pick(&[
            CompressionMethod::Stored,
            CompressionMethod::Stored,
            CompressionMethod::Deflated,
            CompressionMethod::Bzip2,
            CompressionMethod::Zstd,
        ]);
        writer.start_file(name, FileOptions::default().compression_method(method))?;
        writer.write_all(data)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// Raw mutations, or a re-assembled file with edited header fields (shape, dtype, order,
/// version, declared header length) and data of another length.
pub fn npy(_scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::npy();
    Some(Inputs::new(seeds.len(), move |dice| {
        if dice.chance(40) {
            return raw(dice, &seeds);
        }
        let seed = &dice.pick(&seeds).bytes;
        let (mut header, mut data) = split_npy(seed);
        for _ in 0..dice.small_len(3) {
            header = edit_npy_header(dice, &header);
        }
        if dice.chance(30) {
            resize(dice, &mut data);
        }
        let version = *dice.pick(&[1u8, 1, 2, 3, 0, 4]);
        let mut bytes = corpus::npy_file(version, &header, &data);
        let length_field = 8 + dice.below(4);
        if dice.chance(10) && length_field < bytes.len() {
            bytes[length_field] = bytes[length_field].wrapping_add(dice.next_u64() as u8);
        }
        bytes
    }))
}

const NPY_SHAPES: &[&str] = &[
    "()",
    "(0,)",
    "(-1,)",
    "(1, -1)",
    "(2, 3)",
    "(3, 2)",
    "(6,)",
    "(18446744073709551615,)",
    "(9223372036854775807, 2)",
    "(4294967296, 4294967296)",
    "(3037000500, 3037000500)",
    "(,)",
    "(1 2)",
    "(0x10,)",
    "(2,3,)",
    "[2, 3]",
    "(2.5,)",
    "",
];
const NPY_DESCRS: &[&str] =
    &["'<f4'", "'<f8'", "'>f4'", "'|u1'", "'<f2'", "'<i8'", "'<c8'", "'f4'", "'<f4", "''", "'<U10'", "'O'", "<f4", "0"];
const NPY_ORDERS: &[&str] = &["False", "True", "0", "None", "'False'", ""];

/// The header text and data of a `.npy` seed (which are well-formed).
fn split_npy(bytes: &[u8]) -> (String, Vec<u8>) {
    let (len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    (String::from_utf8_lossy(&bytes[start..start + len]).into_owned(), bytes[start + len..].to_vec())
}

fn edit_npy_header(dice: &mut Dice, header: &str) -> String {
    let (key, values) = *dice.pick(&[("shape", NPY_SHAPES), ("descr", NPY_DESCRS), ("fortran_order", NPY_ORDERS)]);
    let value = match dice.below(6) {
        0 => return json::mutate(dice, header),
        1 => return header.replacen(&format!("'{key}'"), &format!("'{key}x'"), 1),
        // More dimensions than numpy allows (64).
        2 if key == "shape" => format!("({})", ["1"; 70].join(", ")),
        _ => dice.pick(values).to_string(),
    };
    match header_value_span(header, key) {
        Some(span) => format!("{}{value}{}", &header[..span.start], &header[span.end..]),
        None => header.to_string(),
    }
}

/// The byte span of `key`'s value in a `.npy` header dict (a tuple, a quoted string or a word).
fn header_value_span(header: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let after_key = header.find(&format!("'{key}':"))? + key.len() + 3;
    let start = after_key + header[after_key..].len() - header[after_key..].trim_start().len();
    let rest = &header[start..];
    let len = match rest.chars().next()? {
        '(' => rest.find(')')? + 1,
        '\'' => rest[1..].find('\'')? + 2,
        _ => rest.find([',', '}']).unwrap_or(rest.len()),
    };
    Some(start..start + len)
}

/// Cut `data` short or append to it (so its length disagrees with the declared shape).
fn resize(dice: &mut Dice, data: &mut Vec<u8>) {
    if dice.chance(50) && !data.is_empty() {
        data.truncate(dice.below(data.len()));
    } else {
        data.extend(std::iter::repeat_n(0x3f, dice.small_len(64)));
    }
}

/// Mostly structure-aware edits of `checkpoint.json`, some raw byte edits.
pub fn checkpoint(_scratch: &Path) -> Option<Inputs> {
    let records = corpus::checkpoint_records();
    let seeds: Vec<Seed> = records.iter().map(|r| Seed::new("checkpoint.json", r.clone().into_bytes())).collect();
    Some(Inputs::new(records.len(), move |dice| {
        if dice.chance(20) {
            return raw(dice, &seeds);
        }
        let record = dice.pick(&records);
        json::mutate(dice, record).into_bytes()
    }))
}

/// Raw edits; for PNG, half the time with every chunk's CRC recomputed, so the edit reaches
/// the decoder instead of its CRC check.
pub fn image(_scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::images()?;
    Some(Inputs::new(seeds.len(), move |dice| {
        let mut bytes = raw(dice, &seeds);
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && dice.chance(50) {
            fix_png_crcs(&mut bytes);
        }
        bytes
    }))
}

/// Recompute the CRC of every complete PNG chunk.
fn fix_png_crcs(bytes: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&end| end + 4 <= bytes.len()) else { return };
        let crc = crc32(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// CRC-32 (ISO 3309, as PNG uses), bit by bit: inputs are small.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(!0u32, |crc, &byte| (0..8).fold(crc ^ byte as u32, |crc, _| if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 }))
}

/// Raw edits, or the JSON header mutated and the file re-assembled with its length prefix
/// (sometimes off by a little).
pub fn safetensors(_scratch: &Path) -> Option<Inputs> {
    let seeds = corpus::safetensors();
    Some(Inputs::new(seeds.len(), move |dice| {
        if dice.chance(50) {
            return raw(dice, &seeds);
        }
        let seed = &dice.pick(&seeds).bytes;
        let header_len = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
        let header = json::mutate(dice, &String::from_utf8_lossy(&seed[8..8 + header_len]));
        let mut declared = header.len() as u64;
        if dice.chance(10) {
            declared = declared.wrapping_add(dice.below(17) as u64).wrapping_sub(8);
        }
        [&declared.to_le_bytes(), header.as_bytes(), &seed[8 + header_len..]].concat()
    }))
}

/// False with FUZZ_RAW=0: the HDF5 targets then make only well-formed HDF5 files (structural
/// and JSON edits), to fuzz keras-tch's reading past libhdf5 bugs that raw edits keep hitting.
fn raw_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var("FUZZ_RAW").map_or(true, |v| v != "0"))
}

/// A raw byte mutation of a random seed.
fn raw(dice: &mut Dice, seeds: &[Seed]) -> Vec<u8> {
    let seed = dice.pick(seeds);
    bytes::mutate(dice, seed, seeds, MAX_INPUT_BYTES)
}
