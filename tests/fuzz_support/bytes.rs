//! Format-blind byte mutations, in the spirit of AFL's havoc stage: flip bits, write
//! "interesting" integers, nudge integers, delete / duplicate / insert chunks, truncate, and
//! splice two corpus files. Each seed may name hot ranges (headers, metadata) that receive
//! most of the edits, because that is where a parser decides how much to read and where.

use std::ops::Range;

use super::dice::Dice;

/// A corpus file and the byte ranges of it worth most attention.
pub struct Seed {
    pub name: String,
    pub bytes: Vec<u8>,
    pub hot: Vec<Range<usize>>,
}

impl Seed {
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self { name: name.into(), bytes, hot: Vec::new() }
    }

    pub fn with_hot(mut self, hot: Vec<Range<usize>>) -> Self {
        self.hot = hot;
        self
    }
}

/// The first `head` bytes, and `window` bytes from every occurrence of each marker (an HDF5
/// attribute name, a PNG chunk type, a zip record signature, …).
pub fn hot_spots(bytes: &[u8], head: usize, markers: &[&[u8]], window: usize) -> Vec<Range<usize>> {
    let mut hot = vec![0..head.min(bytes.len())];
    for marker in markers {
        let starts = bytes.windows(marker.len()).enumerate().filter(|(_, w)| w == marker).map(|(i, _)| i);
        hot.extend(starts.map(|start| start..(start + window).min(bytes.len())));
    }
    hot
}

/// 1 to 8 stacked edits of `seed` (splicing with files of `corpus`), at most `max_len` bytes.
pub fn mutate(dice: &mut Dice, seed: &Seed, corpus: &[Seed], max_len: usize) -> Vec<u8> {
    let mut bytes = seed.bytes.clone();
    for _ in 0..dice.small_len(8) {
        edit(dice, &mut bytes, &seed.hot, corpus);
        bytes.truncate(max_len);
    }
    bytes
}

/// Integers that sit at the edges parsers mishandle: zero, one, sign boundaries, all ones
/// (HDF5's "undefined address"), and powers of two that overflow 32-bit size arithmetic.
const INTERESTING_8: &[u64] = &[0, 1, 0x10, 0x40, 0x7f, 0x80, 0xff];
const INTERESTING_16: &[u64] = &[0, 1, 0x100, 0x1000, 0x7fff, 0x8000, 0xffff];
const INTERESTING_32: &[u64] = &[0, 1, 0x1_0000, 0x100_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];
const INTERESTING_64: &[u64] = &[0, 1, 1 << 32, 1 << 40, 1 << 48, i64::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX];

fn edit(dice: &mut Dice, bytes: &mut Vec<u8>, hot: &[Range<usize>], corpus: &[Seed]) {
    if bytes.is_empty() {
        bytes.extend(random_bytes(dice, 16));
        return;
    }
    let at = position(dice, bytes.len(), hot);
    match dice.below(11) {
        0 | 1 => bytes[at] ^= 1 << dice.below(8),
        2 | 3 => overwrite(bytes, at, &interesting_integer(dice)),
        4 => nudge_integer(dice, bytes, at),
        5 => bytes[at] = dice.next_u64() as u8,
        6 => {
            let end = (at + dice.small_len(bytes.len() - at)).min(bytes.len());
            bytes.drain(at..end);
        }
        7 => {
            let end = (at + dice.small_len(4096)).min(bytes.len());
            let chunk = bytes[at..end].repeat(dice.small_len(16));
            bytes.splice(at..at, chunk);
        }
        8 => {
            let chunk = foreign_chunk(dice, bytes, corpus);
            bytes.splice(at..at, chunk);
        }
        9 => bytes.truncate(at),
        _ => splice(dice, bytes, corpus),
    }
}

/// A position, inside a hot range 60% of the time.
fn position(dice: &mut Dice, len: usize, hot: &[Range<usize>]) -> usize {
    if !hot.is_empty() && dice.chance(60) {
        let range = dice.pick(hot).clone();
        let (start, end) = (range.start.min(len - 1), range.end.min(len));
        if start < end {
            return start + dice.below(end - start);
        }
    }
    dice.below(len)
}

/// One interesting integer of 1, 2, 4 or 8 bytes, little- or big-endian (HDF5 and npy are
/// little-endian, PNG, JPEG and zip's neighbours big-endian).
fn interesting_integer(dice: &mut Dice) -> Vec<u8> {
    let (table, width) = *dice.pick(&[(INTERESTING_8, 1), (INTERESTING_16, 2), (INTERESTING_32, 4), (INTERESTING_64, 8)]);
    let value = *dice.pick(table);
    let little = value.to_le_bytes()[..width].to_vec();
    if dice.chance(50) {
        little
    } else {
        little.into_iter().rev().collect()
    }
}

/// Add or subtract a small amount to the little-endian integer at `at` (off-by-one lengths
/// and offsets).
fn nudge_integer(dice: &mut Dice, bytes: &mut [u8], at: usize) {
    let width = (*dice.pick(&[1usize, 2, 4, 8])).min(bytes.len() - at);
    let mut field = [0u8; 8];
    field[..width].copy_from_slice(&bytes[at..at + width]);
    let delta = 1 + dice.below(35) as u64;
    let value = u64::from_le_bytes(field);
    let value = if dice.chance(50) { value.wrapping_add(delta) } else { value.wrapping_sub(delta) };
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

fn overwrite(bytes: &mut [u8], at: usize, value: &[u8]) {
    let end = (at + value.len()).min(bytes.len());
    bytes[at..end].copy_from_slice(&value[..end - at]);
}

/// Random bytes, or a chunk of this file or of another corpus file (valid structures in the
/// wrong place reach deeper than noise).
fn foreign_chunk(dice: &mut Dice, bytes: &[u8], corpus: &[Seed]) -> Vec<u8> {
    let source: &[u8] = match dice.below(3) {
        0 => {
            let len = dice.small_len(256);
            return random_bytes(dice, len);
        }
        1 if !corpus.is_empty() => &dice.pick(corpus).bytes,
        _ => bytes,
    };
    if source.is_empty() {
        return Vec::new();
    }
    let start = dice.below(source.len());
    let end = (start + dice.small_len(1024)).min(source.len());
    source[start..end].to_vec()
}

/// This file's head joined to another corpus file's tail.
fn splice(dice: &mut Dice, bytes: &mut Vec<u8>, corpus: &[Seed]) {
    if corpus.is_empty() {
        return;
    }
    let other = &dice.pick(corpus).bytes;
    let cut = dice.below(bytes.len());
    let other_cut = dice.below(other.len());
    bytes.truncate(cut);
    bytes.extend_from_slice(&other[other_cut..]);
}

fn random_bytes(dice: &mut Dice, len: usize) -> Vec<u8> {
    (0..len).map(|_| dice.next_u64() as u8).collect()
}
