//! Mixed precision as torch's CPU/CUDA autocast does it, for the two layers where it pays:
//! inside [`autocast`]`(Precision::Bf16, ..)`, `Conv2D` and `Dense` compute in bfloat16 (their
//! inputs and weights cast on the way in), the layers between them (BatchNorm, ReLU, Add,
//! pooling) run on the bfloat16 activations they receive, and `Dense` hands float32 to its
//! activation so softmax and sigmoid — and the loss after them — stay float32.
//!
//! Weights stay float32 (the master copy training updates; gradients flow back through the
//! casts as float32). The model's outputs are float32.

use std::cell::Cell;

use clap::ValueEnum;
use tch::{Kind, Tensor};

/// Numeric precision of convolutions and matrix multiplies (`--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Precision {
    /// float32 everywhere, as Keras computes by default.
    #[default]
    #[value(name = "fp32")]
    Fp32,
    /// bfloat16 convolutions and matrix multiplies (fast on CPUs with AVX-512-BF16 or AMX,
    /// and on CUDA), float32 weights, softmax and loss: torch's autocast.
    #[value(name = "bf16")]
    Bf16,
}

impl Precision {
    /// The `--precision` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

thread_local! {
    static ACTIVE: Cell<Precision> = const { Cell::new(Precision::Fp32) };
}

/// Run `f` with convolutions and matrix multiplies in `precision` (on this thread), restoring
/// the previous setting afterwards, also when `f` panics.
pub fn autocast<T>(precision: Precision, f: impl FnOnce() -> T) -> T {
    struct Restore(Precision);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|active| active.set(self.0));
        }
    }
    let _restore = Restore(ACTIVE.with(|active| active.replace(precision)));
    f()
}

/// The kind convolutions and matrix multiplies compute in here and now.
pub fn compute_kind() -> Kind {
    match ACTIVE.with(Cell::get) {
        Precision::Fp32 => Kind::Float,
        Precision::Bf16 => Kind::BFloat16,
    }
}

/// `t` in the compute kind (a no-op when it already is).
pub fn for_compute(t: &Tensor) -> Tensor {
    let kind = compute_kind();
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}

/// Float32 again, for what must not run in bfloat16 (activations after a Dense, outputs).
pub fn to_float(t: Tensor) -> Tensor {
    if t.kind() == Kind::Float {
        t
    } else {
        t.to_kind(Kind::Float)
    }
}
