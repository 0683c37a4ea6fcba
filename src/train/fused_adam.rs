//! libtorch's fused Adam kernel (`at::_fused_adam_`, what `torch.optim.Adam(fused=True)` runs),
//! reached through `fused_adam.cpp` because tch does not expose it: one pass per tensor updates
//! the weight and both moments, where the elementwise form takes five.
//!
//! The kernel implements torch's Adam, `p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + ε)`.
//! Keras adds ε to the *uncorrected* sqrt(v): `p ← p − lr·sqrt(1 − β2^t)/(1 − β1^t) · m /
//! (sqrt(v) + ε)`. Multiplying Keras's numerator and denominator by 1/sqrt(1 − β2^t) shows the two
//! are the same update when torch's ε is `ε / sqrt(1 − β2^t)` — a per-step value, which the
//! caller passes. The moments are the same in both (`m ← m + (g − m)(1 − β1)`,
//! `v ← β2·v + (1 − β2)·g²`).

use std::ffi::{c_char, c_int, c_void};

use anyhow::{bail, Result};
use tch::Tensor;

use crate::shim::status_from_shim;

extern "C" {
    fn keras_tch_fused_adam(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        count: usize,
        step: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// The tensors of one fused Adam update: `params[i]`, `grads[i]`, `m[i]` and `v[i]` have the
/// same shape, kind, device and memory layout.
pub struct AdamTensors<'a> {
    pub params: Vec<&'a Tensor>,
    pub grads: Vec<Tensor>,
    pub m: Vec<&'a Tensor>,
    pub v: Vec<&'a Tensor>,
}

/// Keras's Adam step `t` (counting from 1) on all the tensors at once, in place.
pub fn keras_adam_step(tensors: &AdamTensors, t: f64, learning_rate: f64, beta_1: f64, beta_2: f64, epsilon: f64) -> Result<()> {
    let count = tensors.params.len();
    if tensors.grads.len() != count || tensors.m.len() != count || tensors.v.len() != count {
        bail!("fused Adam: {count} weights but {} gradients and {}/{} moments", tensors.grads.len(), tensors.m.len(), tensors.v.len());
    }
    if count == 0 {
        return Ok(());
    }
    let handles = |list: &[&Tensor]| -> Vec<*mut c_void> { list.iter().map(|t| t.as_ptr() as *mut c_void).collect() };
    let (params, m, v) = (handles(&tensors.params), handles(&tensors.m), handles(&tensors.v));
    let grads = handles(&tensors.grads.iter().collect::<Vec<_>>());
    let torch_epsilon = epsilon / (1.0 - beta_2.powf(t)).sqrt();
    status_from_shim("libtorch's fused Adam", |error, error_len| {
        // SAFETY: every handle is a live tch tensor (an `at::Tensor*`) borrowed for this call;
        // the C++ side copies the handles, reports failures through `error`, and never throws
        // into Rust.
        unsafe {
            keras_tch_fused_adam(
                params.as_ptr(),
                grads.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                count,
                t,
                learning_rate,
                beta_1,
                beta_2,
                torch_epsilon,
                error,
                error_len,
            )
        }
    })
}
