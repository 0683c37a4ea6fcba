//! What the CPU can do at most, from /proc/cpuinfo: cores × clock × SIMD lanes × 2 (an FMA is a
//! multiply and an add) × FMA units per core. The FMA-unit count is not in /proc/cpuinfo: two
//! is assumed (true of current server cores with AVX2/AVX-512), and the measured 4096³ matmul
//! beside it shows what is reachable.

use std::time::Instant;

use tch::{Kind, Tensor};

#[derive(Debug, Clone)]
pub struct Machine {
    pub model: String,
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

    /// Theoretical fp32 peak in GFLOP/s (see the module notes for the assumption).
    pub fn fp32_peak_gflops(&self) -> f64 {
        const FMA_UNITS: f64 = 2.0;
        self.cores as f64 * self.mhz / 1000.0 * self.lanes as f64 * 2.0 * FMA_UNITS
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
