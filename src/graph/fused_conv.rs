//! Convolutions fused with what follows them, for inference on the CPU (float32, or bfloat16
//! under `--precision bf16`): libtorch's
//! oneDNN operators (`fused_conv.cpp`) run a convolution with its ReLU as a post-op, or a
//! residual block's last convolution with the `Add` and the `ReLU` after it, in one pass over the
//! activations; the kernel is packed once per input shape into oneDNN's blocked layout (on small
//! images the convolution is one matrix product instead, `matmul_conv`; a float32 3×3 one with
//! enough channels runs Winograd's algorithm, `winograd_conv`), and the activations stay
//! channels-last. Each result is the unfused layers' up to float32 rounding
//! (oneDNN sums in its own order); when an operator fails, the layer computes the same thing
//! unfused instead.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{bail, Result};
use serde_json::Value;
use tch::{Kind, Tensor};

use super::matmul_conv::MatmulConv;
use super::winograd_conv::{WinogradConv, WinogradKernel};
use crate::layers::activation::Activation;
use crate::layers::autocast::for_compute;
use crate::layers::conv::Conv2D;
use crate::layers::{Layer, Shape};
use crate::shim::{handle, tensor_from_shim};

extern "C" {
    fn keras_tch_onednn_conv(
        x: *mut c_void,
        other: *mut c_void,
        weight: *mut c_void,
        bias: *mut c_void,
        padding: *const i64,
        stride: *const i64,
        dilation: *const i64,
        groups: i64,
        relu: c_int,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_onednn_pack_conv_weight(
        weight: *mut c_void,
        padding: *const i64,
        stride: *const i64,
        dilation: *const i64,
        groups: i64,
        input_size: *const i64,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// Where a oneDNN convolution's kernel goes over its input: symmetric padding, stride and
/// dilation, and the groups its channels fall into.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub padding: [i64; 2],
    pub stride: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

impl Geometry {
    /// A 1×1 convolution's: no padding, stride 1, in `groups` groups.
    pub fn pointwise(groups: i64) -> Geometry {
        Geometry { padding: [0, 0], stride: [1, 1], dilation: [1, 1], groups }
    }
}

/// `relu?(conv(xs) + other?)` in one oneDNN call, `kernel` dense (OIHW) or packed by
/// [`pack_kernel`].
pub(super) fn onednn_conv(
    xs: &Tensor,
    other: Option<&Tensor>,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    geometry: Geometry,
    relu: bool,
) -> Result<Tensor> {
    let Geometry { padding, stride, dilation, groups } = geometry;
    tensor_from_shim("oneDNN's convolution", |out, error, error_len| {
        // SAFETY: every handle is a live tch tensor borrowed for this call (null for an absent
        // one), the arrays hold two values each, and the C++ side never throws into Rust.
        unsafe {
            keras_tch_onednn_conv(
                handle(xs),
                other.map_or(std::ptr::null_mut(), handle),
                handle(kernel),
                bias.map_or(std::ptr::null_mut(), handle),
                padding.as_ptr(),
                stride.as_ptr(),
                dilation.as_ptr(),
                groups,
                c_int::from(relu),
                out,
                error,
                error_len,
            )
        }
    })
}

/// `kernel` (OIHW float32) in oneDNN's blocked layout for channels-last inputs of `size`
/// (N, C, H, W; already padded).
pub(super) fn pack_kernel(kernel: &Tensor, size: &[i64], geometry: Geometry) -> Result<Tensor> {
    let Geometry { padding, stride, dilation, groups } = geometry;
    if size.len() != 4 {
        bail!("oneDNN's kernel packing: a 4-D input size, got {size:?}");
    }
    tensor_from_shim("oneDNN's kernel packing", |out, error, error_len| {
        // SAFETY: the kernel is a live tch tensor, the arrays hold two values each (four for
        // the input size, checked above), and the C++ side never throws into Rust.
        unsafe {
            keras_tch_onednn_pack_conv_weight(
                handle(kernel),
                padding.as_ptr(),
                stride.as_ptr(),
                dilation.as_ptr(),
                groups,
                size.as_ptr(),
                out,
                error,
                error_len,
            )
        }
    })
}

/// A (rows, K) matrix, row-major, as one channels-last image of rows × 1 pixels with K channels
/// (1, K, rows, 1 in the graph's NCHW view), without copying: how a matrix product runs as a
/// oneDNN 1×1 convolution over a whole batch at once.
pub(super) fn matrix_as_image(matrix: &Tensor) -> Result<Tensor> {
    let [rows, columns] = matrix.size()[..] else { bail!("a matrix as an image: a 2-D tensor, got {:?}", matrix.size()) };
    Ok(matrix.f_view([1, rows, 1, columns])?.permute([0, 3, 1, 2]))
}

/// The size (N, C, H, W) of [`matrix_as_image`]'s image of a `rows` × `columns` matrix: what a
/// kernel for it is packed for.
pub(super) fn matrix_image_size(rows: i64, columns: i64) -> [i64; 4] {
    [1, columns, rows, 1]
}

/// The other way: channels-last images (N, K, H, W in the graph's NCHW view) as the (N·H·W, K)
/// matrix of their pixels — for one image of rows × 1 pixels, its (rows, K) matrix.
pub(super) fn image_as_matrix(image: &Tensor) -> Tensor {
    let size = image.size();
    image.permute([0, 2, 3, 1]).reshape([size[2] * size[3] * size[0], size[1]])
}

/// How many times a fused layer fell back to the unfused operators, or to an unpacked kernel,
/// because a oneDNN operator failed (in this process; tests check it stays 0).
static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

pub fn fallbacks() -> usize {
    FALLBACKS.load(Ordering::Relaxed)
}

fn fell_back() {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Whether libtorch runs the fused operators here (a CPU build with oneDNN), tried once on a
/// small convolution. `KERAS_TCH_NO_FUSION=1` turns them off (to measure what they bring).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("KERAS_TCH_NO_FUSION").is_some_and(|v| v == "1") {
            return false;
        }
        let options = (Kind::Float, tch::Device::Cpu);
        let (xs, kernel) = (Tensor::ones([1, 2, 3, 3], options), Tensor::ones([2, 2, 1, 1], options));
        let other = Tensor::ones([1, 2, 3, 3], options);
        let fused = onednn_conv(&xs, Some(&other), &kernel, None, Geometry::pointwise(1), true);
        fused.is_ok_and(|ys| ys.size() == [1, 2, 3, 3] && ys.double_value(&[0, 0, 0, 0]) == 3.0)
    })
}

/// How many input shapes a layer keeps a plan (a packed kernel, or a matrix) for.
const MAX_PLANNED_SHAPES: usize = 4;

/// How a fused convolution runs on inputs of one size.
enum Plan {
    /// oneDNN's convolution with this kernel: packed into its blocked layout for the size, or
    /// plain (past [`MAX_PLANNED_SHAPES`], or when packing failed).
    OneDnn(Tensor),
    /// One matrix product (small images, see [`MatmulConv`]).
    Matmul(MatmulConv),
    /// Winograd's algorithm (3×3 convolutions with many channels, see [`WinogradConv`]).
    Winograd(WinogradConv),
    /// Ran once on this size with the plain kernel; planned (for Winograd) if it runs again.
    RanOnce,
}

impl Plan {
    fn shallow_clone(&self) -> Plan {
        match self {
            Plan::OneDnn(kernel) => Plan::OneDnn(kernel.shallow_clone()),
            Plan::Matmul(matmul) => Plan::Matmul(matmul.shallow_clone()),
            Plan::Winograd(winograd) => Plan::Winograd(winograd.shallow_clone()),
            Plan::RanOnce => Plan::RanOnce,
        }
    }
}

/// A `Conv2D` run by oneDNN, with what it is fused with: the ReLU after it, or a residual
/// `Add` (of the convolution and the block's other branch) and the ReLU after that. It takes
/// the place of the last layer it covers in the graph (the `Add`, when there is one), whose
/// inputs it reads.
pub struct FusedConv2D {
    conv: Conv2D,
    /// Which of the layer's inputs the convolution reads (with `add`, the other is added).
    conv_input: usize,
    add: bool,
    relu: bool,
    /// The plan for each input shape it has run on (at most [`MAX_PLANNED_SHAPES`]).
    plans: Mutex<HashMap<Vec<i64>, Plan>>,
    /// Counts the calls run by Winograd's algorithm (shared by a model's layers).
    winograd_runs: Arc<AtomicUsize>,
}

impl FusedConv2D {
    /// `conv` (linear), then nothing else or a ReLU.
    pub fn with_relu(conv: &Conv2D, relu: bool) -> Self {
        Self::new(conv, 0, false, relu)
    }

    /// `conv` on input `conv_input` of an `Add`, plus its other input, then a ReLU or not.
    pub fn with_add(conv: &Conv2D, conv_input: usize, relu: bool) -> Self {
        Self::new(conv, conv_input, true, relu)
    }

    /// `conv`'s own activation must be linear or ReLU (see [`FusedConv2D::fusable`]); a ReLU
    /// of its own becomes the post-op.
    fn new(conv: &Conv2D, conv_input: usize, add: bool, relu: bool) -> Self {
        let relu = relu || conv.config.activation == Activation::Relu;
        let conv = Conv2D {
            config: conv.config.clone().activation(Activation::Linear),
            kernel: conv.kernel.shallow_clone(),
            bias: conv.bias.as_ref().map(Tensor::shallow_clone),
        };
        Self { conv, conv_input, add, relu, plans: Mutex::new(HashMap::new()), winograd_runs: Arc::default() }
    }

    /// The same layer, counting its Winograd calls in `counter`.
    pub fn counting_winograd_runs(self, counter: &Arc<AtomicUsize>) -> Self {
        Self { winograd_runs: Arc::clone(counter), ..self }
    }

    /// Whether `conv` can run fused: a linear convolution, or one ending in its own ReLU (then
    /// nothing more can follow it into the fusion).
    pub fn fusable(conv: &Conv2D) -> bool {
        matches!(conv.config.activation, Activation::Linear | Activation::Relu)
    }

    /// The plan for inputs `xs` (made on first use for their size): a matrix product for small
    /// images, Winograd's algorithm for 3×3 convolutions with enough channels and tiles (from
    /// the second call), else oneDNN's convolution with the kernel packed for the (padded) size,
    /// or the plain kernel when packing fails.
    fn plan_for(&self, xs: &Tensor) -> Plan {
        let size = xs.size();
        let mut plans = self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let ran_once = match plans.get(&size) {
            Some(Plan::RanOnce) => true,
            Some(plan) => return plan.shallow_clone(),
            None => false,
        };
        // Each plan holds a copy of the kernel: past a few input shapes (a last short batch, …),
        // the plain kernel serves, so memory stays bounded whatever the caller's shapes.
        if !ran_once && plans.len() >= MAX_PLANNED_SHAPES {
            return Plan::OneDnn(self.conv.kernel.shallow_clone());
        }
        // A matrix product where it suits (small images), else Winograd's algorithm where it
        // suits, else oneDNN's kernel.
        let matmul = if ran_once { None } else { MatmulConv::plan(&self.conv, &size) };
        let winograd = matmul.is_none() && WinogradConv::suits(&self.conv, &size);
        if winograd && !ran_once {
            // Transforming the kernel costs more than Winograd saves in one call (15 ms for
            // 256 channels, against 0.5 ms saved on one image): a model run once — classifying
            // one photo — never pays for it.
            plans.insert(size, Plan::RanOnce);
            return Plan::OneDnn(self.conv.kernel.shallow_clone());
        }
        let plan = match (matmul, winograd.then(|| self.winograd_plan(&plans, &size)).flatten()) {
            (Some(matmul), _) => Plan::Matmul(matmul),
            (None, Some(winograd)) => Plan::Winograd(winograd),
            (None, None) => {
                let (padded, padding) = self.conv.config.pad_input(xs);
                Plan::OneDnn(pack_kernel(&self.conv.kernel, &padded.size(), self.geometry(padding)).unwrap_or_else(|_| {
                    fell_back();
                    self.conv.kernel.shallow_clone()
                }))
            }
        };
        plans.insert(size, plan.shallow_clone());
        plan
    }

    /// A Winograd plan for inputs of `size`, with the transformed kernel of an earlier size's
    /// plan when there is one (it is 4× the kernel's size).
    fn winograd_plan(&self, plans: &HashMap<Vec<i64>, Plan>, size: &[i64]) -> Option<WinogradConv> {
        let planned = plans.values().find_map(|plan| match plan {
            Plan::Winograd(winograd) => Some(winograd.kernel().shallow_clone()),
            _ => None,
        });
        let kernel = match planned {
            Some(kernel) => kernel,
            None => WinogradKernel::new(&self.conv, size).ok()?,
        };
        WinogradConv::plan(&kernel, &self.conv, size).ok()
    }

    /// Where this convolution's kernel goes over an input with `padding`.
    fn geometry(&self, padding: [i64; 2]) -> Geometry {
        let config = &self.conv.config;
        Geometry { padding, stride: config.strides, dilation: config.dilation, groups: 1 }
    }

    /// The same computation through the unfused layers' operators.
    fn unfused(&self, xs: &Tensor, other: Option<&Tensor>) -> Tensor {
        let mut ys = self.conv.forward(&[xs], false);
        if let Some(other) = other {
            ys += other;
        }
        if self.relu {
            ys.relu()
        } else {
            ys
        }
    }
}

impl Layer for FusedConv2D {
    fn class_name(&self) -> &'static str {
        if self.add {
            "Add"
        } else {
            "Conv2D"
        }
    }

    fn keras_config(&self) -> Value {
        Value::Null
    }

    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape> {
        self.conv.output_shape(&inputs[self.conv_input..=self.conv_input])
    }

    fn forward(&self, inputs: &[&Tensor], _train: bool) -> Tensor {
        // In the compute kind (bfloat16 under `--precision bf16`, where the kernel is too).
        let xs = for_compute(inputs[self.conv_input]);
        let other = self.add.then(|| for_compute(inputs[1 - self.conv_input]));
        let other = other.as_ref();
        let kernel = match self.plan_for(&xs) {
            Plan::Matmul(matmul) => {
                return matmul.forward(&xs, other, self.relu).unwrap_or_else(|_| {
                    fell_back();
                    self.unfused(inputs[self.conv_input], other)
                })
            }
            Plan::Winograd(winograd) => {
                self.winograd_runs.fetch_add(1, Ordering::Relaxed);
                return winograd.forward(&xs, other, self.relu).unwrap_or_else(|_| {
                    fell_back();
                    self.unfused(inputs[self.conv_input], other)
                });
            }
            Plan::OneDnn(kernel) => kernel,
            Plan::RanOnce => self.conv.kernel.shallow_clone(), // plan_for hands out the kernel instead
        };
        let (xs, padding) = self.conv.config.pad_input(&xs);
        onednn_conv(&xs, other, &kernel, self.conv.bias.as_ref(), self.geometry(padding), self.relu).unwrap_or_else(|_| {
            fell_back();
            self.unfused(inputs[self.conv_input], other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::conv::conv2d;
    use crate::layers::padding::Padding;

    fn conv(stride: i64, padding: Padding) -> Conv2D {
        let options = (Kind::Float, tch::Device::Cpu);
        Conv2D {
            config: conv2d(6, 3).strides(stride).padding(padding),
            kernel: Tensor::randn([6, 4, 3, 3], options),
            bias: Some(Tensor::randn([6], options)),
        }
    }

    /// Fused and packed, the convolution gives the unfused layers' result, for a symmetric and
    /// TF's asymmetric 'same' padding, and for two batch sizes (one packed kernel each).
    #[test]
    fn fused_convolutions_equal_the_unfused_layers() {
        assert!(available(), "libtorch's oneDNN operators run here");
        for (stride, padding, relu) in [(1, Padding::Same, true), (2, Padding::Same, false), (1, Padding::Valid, true)] {
            let conv = conv(stride, padding);
            let fused = FusedConv2D::with_add(&conv, 1, relu);
            for batch in [1, 3] {
                let xs = Tensor::randn([batch, 4, 9, 8], (Kind::Float, tch::Device::Cpu));
                let other = conv.forward(&[&xs], false).randn_like();
                let ours = fused.forward(&[&other, &xs], false);
                let expected = fused.unfused(&xs, Some(&other));
                let diff = (&ours - &expected).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "stride {stride}, {padding:?}, batch {batch}: {diff:e}");
            }
            let plans = fused.plans.lock().unwrap();
            assert_eq!(plans.len(), 2, "one packed kernel per input shape");
            let packed = |plan: &Plan| matches!(plan, Plan::OneDnn(kernel) if kernel.is_mkldnn());
            assert!(plans.values().all(packed), "packed in oneDNN's layout, not left plain");
        }
    }

    /// A 3×3 convolution with many channels runs Winograd's algorithm, with the unfused
    /// layers' result (within F(4×4)'s rounding); the plans for two batch sizes share one
    /// transformed kernel.
    #[test]
    fn wide_convolutions_run_winograd_sharing_one_transformed_kernel() {
        let options = (Kind::Float, tch::Device::Cpu);
        let conv = Conv2D {
            config: conv2d(128, 3).padding(Padding::Same),
            kernel: Tensor::randn([128, 128, 3, 3], options) * 0.05,
            bias: Some(Tensor::randn([128], options)),
        };
        let counter = Arc::default();
        let fused = FusedConv2D::with_add(&conv, 0, true).counting_winograd_runs(&counter);
        for batch in [2, 3] {
            let xs = Tensor::randn([batch, 128, 16, 16], options);
            let other = xs.randn_like();
            // The first call on a size runs oneDNN's kernel, the second Winograd's algorithm.
            for call in 1..=2 {
                let ours = fused.forward(&[&xs, &other], false);
                let difference = (&ours - fused.unfused(&xs, Some(&other))).abs().max().double_value(&[]);
                assert!(difference < 1e-4, "batch {batch}, call {call}: {difference:e}");
            }
        }
        assert_eq!(counter.load(Ordering::Relaxed), 2, "the second call on each size");
        let plans = fused.plans.lock().unwrap();
        let kernels: Vec<_> = plans
            .values()
            .map(|plan| match plan {
                Plan::Winograd(winograd) => winograd.kernel().id(),
                _ => panic!("a Winograd plan for 32 and 48 tiles of 128 channels"),
            })
            .collect();
        assert_eq!(kernels.len(), 2);
        assert_eq!(kernels[0], kernels[1], "one transformed kernel");
    }
}
