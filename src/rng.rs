//! A small seeded random generator (SplitMix64) for what must repeat exactly for a seed on every
//! machine and not disturb libtorch's global generator: dataset splits and augmentation draws.

pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one (seed, a, b) combination, e.g. (seed, epoch, batch).
    pub fn for_parts(seed: u64, parts: &[u64]) -> Self {
        let mut rng = Self::new(seed);
        for &part in parts {
            rng.state ^= part.wrapping_mul(0xd6e8_feb8_6659_fd93);
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        low + (high - low) * unit
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// numpy's legacy `RandomState` (MT19937 with `np.random.seed(n)`, `randn` by the polar
/// method), so the notebooks' `np.random.seed(1); X = np.random.randn(3, 4, 4, 6)` gives the
/// same X here.
pub struct NumpyRandomState {
    key: [u32; 624],
    pos: usize,
    gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `np.random.seed(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; 624];
        key[0] = seed;
        for i in 1..624 {
            key[i] = 1_812_433_253u32.wrapping_mul(key[i - 1] ^ (key[i - 1] >> 30)).wrapping_add(i as u32);
        }
        Self { key, pos: 624, gauss: None }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos == 624 {
            for i in 0..624 {
                let y = (self.key[i] & 0x8000_0000) | (self.key[(i + 1) % 624] & 0x7fff_ffff);
                self.key[i] = self.key[(i + 397) % 624] ^ (y >> 1) ^ if y & 1 == 1 { 0x9908_b0df } else { 0 };
            }
            self.pos = 0;
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random_sample()`: 53 random bits in [0, 1).
    pub fn random_double(&mut self) -> f64 {
        let (a, b) = ((self.next_u32() >> 5) as f64, (self.next_u32() >> 6) as f64);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// One standard normal draw (numpy's `legacy_gauss`).
    pub fn gauss(&mut self) -> f64 {
        if let Some(value) = self.gauss.take() {
            return value;
        }
        loop {
            let x1 = 2.0 * self.random_double() - 1.0;
            let x2 = 2.0 * self.random_double() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `shuffle(x)` of a list or 1-d array: Fisher-Yates from the end, each index drawn by
    /// numpy's `random_interval` (masked 32-bit draws, rejected above the bound).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.random_interval(i as u64) as usize);
        }
    }

    /// Uniform in 0..=max, as numpy's `random_interval` draws it.
    fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        loop {
            let value = if max <= u64::from(u32::MAX) {
                u64::from(self.next_u32()) & mask
            } else {
                ((u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())) & mask
            };
            if value <= max {
                return value;
            }
        }
    }

    /// `np.random.randn(*shape)`, in C order.
    pub fn randn(&mut self, count: usize) -> Vec<f64> {
        (0..count).map(|_| self.gauss()).collect()
    }
}
