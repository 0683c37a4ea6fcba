//! The fuzzer's dice: the project's seeded SplitMix64, with the draws a mutator needs.
//! Every execution gets its own generator from (seed, target, execution number), so any one
//! input can be regenerated without replaying the executions before it.

use keras_tch::rng::SplitMix64;

pub struct Dice(SplitMix64);

impl Dice {
    pub fn for_exec(seed: u64, target: &str, exec: u64) -> Self {
        Self(SplitMix64::for_parts(seed, &[name_hash(target), exec]))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 when `n` is 0, so callers need not special-case empty inputs).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.0.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.0.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length in `1..=max`, skewed toward small values: most edits touch a few bytes, a few
    /// touch whole structures.
    pub fn small_len(&mut self, max: usize) -> usize {
        let bits = (usize::BITS - max.max(1).leading_zeros()) as usize;
        let scale = 1usize << self.below(bits); // at most the highest power of two ≤ max
        1 + self.below(scale)
    }
}

/// FNV-1a, so each target draws a different stream from the same seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3))
}
