//! What the CPU can do at most, from /proc/cpuinfo: cores × clock × fp32 multiply-adds a core
//! completes a cycle × 2 (an FMA is a multiply and an add). The multiply-adds a cycle are not in
//! /proc/cpuinfo: two FMA units of the widest vector are assumed (true of current Intel server
//! cores), except on AMD's Zen 2–4, whose two FMA units are 256 bits wide (Zen 4 runs an AVX-512
//! instruction in two halves); the measured 4096³ matmul beside it shows what is reachable.

use std::time::Instant;

use tch::{Kind, Tensor};

#[derive(Debug, Clone)]
pub struct Machine {
    pub model: String,
    /// `vendor_id` and `cpu family`, which tell the FMA units' width where the flags do not.
    pub vendor: String,
    pub family: u32,
    pub cores: usize,
    pub mhz: f64,
    /// fp32 lanes of the widest vector unit (16 with AVX-512, 8 with AVX2).
    pub lanes: usize,
    pub bf16: bool,
    pub amx: bool,
}

impl Machine {
    pub fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field =
            |name: &str| info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string());
        let flags = field("flags").unwrap_or_default();
        let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
        let cores = field("cpu cores")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        Self {
            model: field("model name").unwrap_or_else(|| "unknown CPU".into()),
            vendor: field("vendor_id").unwrap_or_default(),
            family: field("cpu family").and_then(|f| f.parse().ok()).unwrap_or(0),
            cores,
            mhz: field("cpu MHz").and_then(|m| m.parse().ok()).unwrap_or(0.0),
            lanes: if has("avx512f") {
                16
            } else if has("avx2") {
                8
            } else {
                4
            },
            bf16: has("avx512_bf16") || has("amx_bf16"),
            amx: has("amx_tile"),
        }
    }

    /// fp32 multiply-adds a core completes a cycle, and how that count is made up (see the
    /// module notes).
    pub fn fp32_fmas_per_cycle(&self) -> (usize, &'static str) {
        // Zen 2 to Zen 4 are CPU families 23 and 25.
        if self.vendor == "AuthenticAMD" && (23..=25).contains(&self.family) {
            return (2 * self.lanes.min(8), "two 256-bit FMA units");
        }
        (2 * self.lanes, "two FMA units of the widest vector, assumed")
    }

    /// Theoretical fp32 peak in GFLOP/s at the clock /proc/cpuinfo reports (under a hypervisor
    /// often the base clock: the cores can run faster, and a matmul then beats this "peak").
    pub fn fp32_peak_gflops(&self) -> f64 {
        self.cores as f64 * self.mhz / 1000.0 * self.fp32_fmas_per_cycle().0 as f64 * 2.0
    }

    /// How [`Machine::fp32_peak_gflops`] is reckoned, for a report.
    pub fn fp32_peak_formula(&self) -> String {
        let (fmas, units) = self.fp32_fmas_per_cycle();
        format!("cores × reported clock, which boost may exceed, × {fmas} fp32 FMAs a cycle ({units}) × 2")
    }

    pub fn describe(&self) -> String {
        format!(
            "{}, {} cores at {:.0} MHz, {}-lane fp32 SIMD{}{}",
            self.model,
            self.cores,
            self.mhz,
            self.lanes,
            if self.bf16 { ", bf16" } else { "" },
            if self.amx { ", AMX" } else { "" }
        )
    }
}

/// Measured GFLOP/s of an n×n×n matrix product in `kind` (float32, or bfloat16 — oneDNN's
/// AVX-512-BF16 or AMX kernels where the CPU has them), median of `repeats`: the ceiling a
/// convolution network's GFLOP/s is read against.
pub fn matmul_gflops(n: i64, kind: Kind, repeats: usize) -> f64 {
    let a = Tensor::randn([n, n], (Kind::Float, tch::Device::Cpu)).to_kind(kind);
    let b = Tensor::randn([n, n], (Kind::Float, tch::Device::Cpu)).to_kind(kind);
    let _ = a.matmul(&b);
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let _ = a.matmul(&b);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (n as f64).powi(3) / times[times.len() / 2] / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(vendor: &str, family: u32, lanes: usize) -> Machine {
        Machine { model: "test".into(), vendor: vendor.into(), family, cores: 2, mhz: 2500.0, lanes, bf16: false, amx: false }
    }

    /// Zen 4 runs AVX-512 on two 256-bit FMA units: half the multiply-adds of an Intel core
    /// with two 512-bit ones at the same clock.
    #[test]
    fn the_peak_counts_the_fma_units_width() {
        assert_eq!(machine("AuthenticAMD", 25, 16).fp32_fmas_per_cycle().0, 16, "Zen 4");
        assert_eq!(machine("AuthenticAMD", 25, 8).fp32_fmas_per_cycle().0, 16, "Zen 3, AVX2");
        assert_eq!(machine("GenuineIntel", 6, 16).fp32_fmas_per_cycle().0, 32, "AVX-512, two units");
        assert_eq!(machine("AuthenticAMD", 25, 16).fp32_peak_gflops(), 2.0 * 2.5 * 16.0 * 2.0);
        assert!(machine("AuthenticAMD", 25, 16).fp32_peak_formula().contains("256-bit"));
    }
}
