//! 3×3 convolutions of stride 1 by Winograd's minimal filtering, for float32 inference on the CPU.
//!
//! F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes
//! each 4×4 tile of the output from a 6×6 tile of the input with 36 multiplications per channel
//! pair instead of 144, in three steps:
//! - the input tiles transformed, `V = Bᵀ d B` (C++, `winograd_conv.cpp`);
//! - one matrix product per position ξ of the 6×6, `M[ξ] = V[ξ] · U[ξ]` (tiles × C by C × O, one
//!   batched GEMM), where `U = G g Gᵀ` is the kernel transformed once for every input size;
//! - the output tiles transformed back, `Y = Aᵀ M A`, with the bias, the residual addend and the
//!   ReLU (C++).
//!
//! oneDNN's direct convolutions already run at 80–90% of the machine's matmul ceiling
//! (BENCHMARKS.md): only fewer multiplications make them faster. The cost is rounding: the
//! transforms mix values of different sizes. The interpolation points (see
//! [`toom_cook`](super::toom_cook)) were chosen for float32 accuracy: on the ImageNet fixture's
//! photos, with every 3×3 convolution of ResNet50 through here, the largest difference from
//! Keras's 7×7×2048 features is 7.5e-5 of their largest value (6.4e-5 without Winograd, 9.4e-5
//! with Lavin & Gray's points), within the 1e-4 the parity tests (which run this path) allow.
//! `KERAS_TCH_NO_WINOGRAD=1` keeps the direct convolutions.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::toom_cook::{transforms, Transforms, POINTS};
use crate::layers::conv::Conv2D;
use crate::layers::padding::same_pads;
use crate::shim::{handle, status_from_shim, tensor_from_shim};

extern "C" {
    fn keras_tch_winograd_input(
        x: *mut c_void,
        b_t: *const f32,
        top: i64,
        left: i64,
        tiles_down: i64,
        tiles_across: i64,
        first: i64,
        count: i64,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_winograd_output(
        m: *mut c_void,
        a_t: *const f32,
        bias: *mut c_void,
        other: *mut c_void,
        relu: c_int,
        y: *mut c_void,
        tiles_down: i64,
        tiles_across: i64,
        first: i64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// The output tile's side, m in F(m×m, 3×3), and the input tile's, m + 2.
const TILE: i64 = 4;
const ALPHA: i64 = TILE + 2;

/// Bᵀ, G and Aᵀ (see [`toom_cook`](super::toom_cook)), made once: G in float64 for the kernels'
/// transform, Bᵀ and Aᵀ in float32 for the C++ transforms, row by row.
struct Matrices {
    g: [f64; 18],
    b_t: [f32; 36],
    a_t: [f32; 24],
}

fn matrices() -> &'static Matrices {
    static MATRICES: OnceLock<Matrices> = OnceLock::new();
    MATRICES.get_or_init(|| {
        let Transforms { b_t, g, a_t } = transforms(&POINTS);
        let flat = |rows: &[[f64; 6]]| rows.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>();
        Matrices {
            g: g.as_flattened().try_into().expect("6×3"),
            b_t: flat(&b_t).try_into().expect("6×6"),
            a_t: flat(&a_t).try_into().expect("4×6"),
        }
    })
}

/// The smallest input and output channels, and tiles in a batch, Winograd runs with: below them
/// the transforms, or products of few rows, cost more than the multiplications saved. Measured
/// here against oneDNN's packed kernels (one layer at a time, with the residual add and ReLU,
/// interleaved, medians of 21): 0.45–0.66× the time on one image at 64–256 channels (56×56 to
/// 14×14 pixels, 16–196 tiles), 0.48–0.80× at batches of 8 and 32 from 128 channels,
/// 0.81–0.94× at 64 channels; on one 7×7 image (4 tiles) 1.1–1.4×, on two (8 tiles) 0.65–1.2×.
const MIN_CHANNELS: i64 = 64;
const MIN_TILES: i64 = 16;
const CHANNEL_CHUNK: i64 = 16;

/// The tiles are transformed, multiplied and transformed back in blocks of at most this many
/// transformed values (V's and M's), so that those stay in the cache and their memory is reused:
/// a whole batch's at once (58 MB at batch 32 on 56×56×64) ran 2.6× slower than oneDNN here.
const MAX_BLOCK_ELEMENTS: i64 = 1 << 22;

/// A 3×3, stride-1 convolution's kernel transformed for Winograd's algorithm: the same for every
/// input size, so the plans for several sizes share it.
pub struct WinogradKernel {
    /// U: the kernel transformed, ((m+2)², C, O).
    transformed: Tensor,
    bias: Option<Tensor>,
}

impl WinogradKernel {
    /// `conv`'s kernel transformed; `conv` must be a float32 3×3 convolution of stride 1.
    pub fn new(conv: &Conv2D) -> Result<WinogradKernel> {
        let config = &conv.config;
        if config.kernel_size != [3, 3] || config.strides != [1, 1] || config.dilation != [1, 1] || conv.kernel.kind() != Kind::Float {
            bail!("Winograd: a float32 3×3 convolution of stride 1 and no dilation, got {config:?}");
        }
        let g = Tensor::from_slice(&matrices().g).view([ALPHA, 3]);
        // U[(a, b), c, o] = Σ G[a, i] G[b, j] g[o, c, i, j]: one matrix product with G ⊗ G
        // (36 × 9), in float64 so that only the result rounds.
        let g_kron_g = (g.view([ALPHA, 1, 3, 1]) * g.view([1, ALPHA, 1, 3])).reshape([ALPHA * ALPHA, 9]);
        let [filters, channels] = [conv.kernel.size()[0], conv.kernel.size()[1]];
        // The taps as (9, C·O), so that the product comes out as (36, C, O).
        let taps = conv.kernel.to_device(tch::Device::Cpu).permute([2, 3, 1, 0]).to_kind(Kind::Double).reshape([9, channels * filters]);
        let transformed = g_kron_g.mm(&taps).to_kind(Kind::Float).view([ALPHA * ALPHA, channels, filters]);
        Ok(WinogradKernel { transformed: transformed.to_device(conv.kernel.device()), bias: conv.bias.as_ref().map(Tensor::shallow_clone) })
    }

    /// Where the transformed kernel's data is (plans sharing it share this).
    #[cfg(test)]
    pub(crate) fn data_ptr(&self) -> *mut std::ffi::c_void {
        self.transformed.data_ptr()
    }

    /// The same kernel, sharing its tensors.
    pub fn shallow_clone(&self) -> WinogradKernel {
        WinogradKernel { transformed: self.transformed.shallow_clone(), bias: self.bias.as_ref().map(Tensor::shallow_clone) }
    }
}

/// A convolution planned for Winograd's algorithm on inputs of one size.
pub struct WinogradConv {
    kernel: WinogradKernel,
    /// The zeros above the first row and before the first column (the rest of the padding, and
    /// what the last tiles read past it, are zeros too).
    top_left: [i64; 2],
    /// Tiles down and across.
    tiles: [i64; 2],
    /// The output's height, width and channels.
    output: [i64; 3],
}

impl WinogradConv {
    /// Whether Winograd's algorithm runs `conv` on channels-last inputs of `size` (N, C, H, W,
    /// as the graph holds them) faster than oneDNN's kernels; `KERAS_TCH_NO_WINOGRAD=1` says
    /// never.
    pub fn suits(conv: &Conv2D, size: &[i64]) -> bool {
        if std::env::var_os("KERAS_TCH_NO_WINOGRAD").is_some_and(|v| v == "1") {
            return false;
        }
        let config = &conv.config;
        let &[batch, channels, height, width] = size else { return false };
        let shaped = config.kernel_size == [3, 3] && config.strides == [1, 1] && config.dilation == [1, 1];
        let tiles = batch * ((height + TILE - 1) / TILE) * ((width + TILE - 1) / TILE);
        let large = channels.min(config.filters) >= MIN_CHANNELS && tiles >= MIN_TILES;
        // The transforms take channels 16 at a time (one AVX-512 register of float32).
        let whole_chunks = channels % CHANNEL_CHUNK == 0 && config.filters % CHANNEL_CHUNK == 0;
        shaped && large && whole_chunks && conv.kernel.kind() == Kind::Float
    }

    /// The plan for `kernel` (of `conv`) on channels-last inputs of `size`.
    pub fn plan(kernel: &WinogradKernel, conv: &Conv2D, size: &[i64]) -> Result<WinogradConv> {
        let &[_, channels, height, width] = size else { bail!("Winograd: a 4-D input, got {size:?}") };
        let [left, right, top, bottom] = same_pads(conv.config.padding, [height, width], [3, 3], [1, 1]);
        let (out_h, out_w) = (height + top + bottom - 2, width + left + right - 2);
        if out_h < 1 || out_w < 1 || kernel.transformed.size()[1] != channels {
            bail!("Winograd: kernel {:?} on input {size:?}", conv.kernel.size());
        }
        let tiles = [(out_h + TILE - 1) / TILE, (out_w + TILE - 1) / TILE];
        let output = [out_h, out_w, conv.config.filters];
        Ok(WinogradConv { kernel: kernel.shallow_clone(), top_left: [top, left], tiles, output })
    }

    /// The transformed kernel, for the plans of other sizes.
    pub fn kernel(&self) -> &WinogradKernel {
        &self.kernel
    }

    /// The same plan, sharing its tensors.
    pub fn shallow_clone(&self) -> WinogradConv {
        WinogradConv { kernel: self.kernel.shallow_clone(), top_left: self.top_left, tiles: self.tiles, output: self.output }
    }

    /// `relu?(conv(xs) + other?)`, `xs` and `other` channels-last in the graph's NCHW view; the
    /// result is too.
    pub fn forward(&self, xs: &Tensor, other: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        self.forward_in_blocks(xs, other, relu, MAX_BLOCK_ELEMENTS)
    }

    /// [`WinogradConv::forward`], the tiles taken in blocks of at most `max_block_elements`
    /// transformed values.
    fn forward_in_blocks(&self, xs: &Tensor, other: Option<&Tensor>, relu: bool, max_block_elements: i64) -> Result<Tensor> {
        let kernel = &self.kernel;
        let [top, left] = self.top_left;
        let [tiles_down, tiles_across] = self.tiles;
        let [out_h, out_w, filters] = self.output;
        let [batch, channels] = [xs.size()[0], kernel.transformed.size()[1]];
        // Channels-last, as the graph holds images.
        let ys = Tensor::empty([batch, out_h, out_w, filters], (Kind::Float, xs.device())).permute([0, 3, 1, 2]);
        let count = batch * tiles_down * tiles_across;
        let block = (max_block_elements / (ALPHA * ALPHA * channels.max(filters))).max(1);
        let null = std::ptr::null_mut();
        let matrices = matrices();
        for first in (0..count).step_by(block as usize) {
            let tiles = block.min(count - first);
            let transformed = tensor_from_shim("Winograd's input transform", |out, error, error_len| {
                // SAFETY: `xs` is a live tch tensor borrowed for the call; the C++ side checks
                // its shape and kind and the tile range, and never throws into Rust.
                unsafe {
                    keras_tch_winograd_input(
                        handle(xs),
                        matrices.b_t.as_ptr(),
                        top,
                        left,
                        tiles_down,
                        tiles_across,
                        first,
                        tiles,
                        out,
                        error,
                        error_len,
                    )
                }
            })?;
            let products = transformed.bmm(&kernel.transformed);
            status_from_shim("Winograd's output transform", |error, error_len| {
                // SAFETY: as above; an absent bias or addend is a null handle; `ys` is written
                // in place, each block its own tiles.
                unsafe {
                    keras_tch_winograd_output(
                        handle(&products),
                        matrices.a_t.as_ptr(),
                        kernel.bias.as_ref().map_or(null, handle),
                        other.map_or(null, handle),
                        c_int::from(relu),
                        handle(&ys),
                        tiles_down,
                        tiles_across,
                        first,
                        error,
                        error_len,
                    )
                }
            })?;
        }
        Ok(ys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layers::conv::conv2d;
    use crate::layers::padding::Padding;
    use crate::layers::Layer;

    /// It gives the convolution's result (plus the other branch, then ReLU), for
    /// 'same' and 'valid' padding, on sizes that are and are not whole tiles.
    #[test]
    fn winograd_equals_the_convolution() {
        let options = (Kind::Float, tch::Device::Cpu);
        for (padding, height, width) in [(Padding::Same, 8, 8), (Padding::Same, 7, 9), (Padding::Valid, 9, 6), (Padding::Same, 1, 1)] {
            let conv = Conv2D {
                config: conv2d(32, 3).padding(padding),
                kernel: Tensor::randn([32, 16, 3, 3], options),
                bias: Some(Tensor::randn([32], options)),
            };
            let xs = Tensor::randn([3, height, width, 16], options).permute([0, 3, 1, 2]);
            let kernel = WinogradKernel::new(&conv).expect("a 3×3 stride-1 convolution");
            let plan = WinogradConv::plan(&kernel, &conv, &xs.size()).expect("its input");
            let expected = conv.forward(&[&xs], false);
            let other = expected.randn_like();
            let ours = plan.forward(&xs, Some(&other), true).unwrap();
            assert_eq!(ours.size(), expected.size());
            let expected = (&expected + &other).relu();
            let difference = (&ours - &expected).abs().max().double_value(&[]);
            // F(4×4)'s rounding, relative to the largest output.
            let scale = expected.abs().max().double_value(&[]);
            assert!(difference < 1e-5 * scale, "{padding:?} on {height}×{width}: {difference:e} of {scale}");
        }
    }

    /// Taken in blocks of tiles (here 5, 5, 5 and 3 of the 18), the result is the same.
    #[test]
    fn blocks_of_tiles_give_the_whole_result() {
        let options = (Kind::Float, tch::Device::Cpu);
        let conv = Conv2D {
            config: conv2d(32, 3).padding(Padding::Same),
            kernel: Tensor::randn([32, 16, 3, 3], options),
            bias: Some(Tensor::randn([32], options)),
        };
        let xs = Tensor::randn([3, 9, 7, 16], options).permute([0, 3, 1, 2]);
        let plan = WinogradConv::plan(&WinogradKernel::new(&conv).unwrap(), &conv, &xs.size()).unwrap();
        assert_eq!(plan.tiles, [3, 2], "6 tiles an image");
        let expected = conv.forward(&[&xs], false);
        let ours = plan.forward_in_blocks(&xs, None, false, ALPHA * ALPHA * 32 * 5).unwrap();
        let difference = (&ours - &expected).abs().max().double_value(&[]);
        assert!(difference < 1e-5 * expected.abs().max().double_value(&[]), "{difference:e}");
    }

    /// It runs where it measured faster: many channels and tiles, float32, 3×3 of stride 1.
    #[test]
    fn it_runs_on_large_enough_convolutions() {
        let options = (Kind::Float, tch::Device::Cpu);
        let conv = |channels: i64, kernel, stride| Conv2D {
            config: conv2d(channels, kernel).strides(stride).padding(Padding::Same),
            kernel: Tensor::zeros([channels, channels, kernel, kernel], options),
            bias: None,
        };
        assert!(WinogradConv::suits(&conv(256, 3, 1), &[8, 256, 14, 14]), "128 tiles of 256 channels");
        assert!(WinogradConv::suits(&conv(256, 3, 1), &[1, 256, 14, 14]), "16 tiles");
        assert!(WinogradConv::suits(&conv(64, 3, 1), &[1, 64, 56, 56]), "64 channels");
        assert!(!WinogradConv::suits(&conv(512, 3, 1), &[2, 512, 7, 7]), "8 tiles");
        assert!(!WinogradConv::suits(&conv(32, 3, 1), &[8, 32, 56, 56]), "32 channels");
        assert!(!WinogradConv::suits(&conv(136, 3, 1), &[8, 136, 14, 14]), "channels not in 16s");
        assert!(!WinogradConv::suits(&conv(256, 3, 2), &[8, 256, 14, 14]), "stride 2");
        assert!(!WinogradConv::suits(&conv(256, 1, 1), &[8, 256, 14, 14]), "1×1");
        let bf16 = Conv2D { kernel: conv(256, 3, 1).kernel.to_kind(Kind::BFloat16), ..conv(256, 3, 1) };
        assert!(!WinogradConv::suits(&bf16, &[8, 256, 14, 14]), "bfloat16");
    }

    /// Channels the transforms cannot take are an error, not a wrong number.
    #[test]
    fn channels_not_in_sixteens_are_an_error() {
        let options = (Kind::Float, tch::Device::Cpu);
        let conv = Conv2D { config: conv2d(16, 3), kernel: Tensor::randn([16, 5, 3, 3], options), bias: None };
        let xs = Tensor::randn([1, 8, 8, 5], options).permute([0, 3, 1, 2]);
        let plan = WinogradConv::plan(&WinogradKernel::new(&conv).unwrap(), &conv, &xs.size()).unwrap();
        let error = plan.forward(&xs, None, false).unwrap_err().to_string();
        assert!(error.contains("multiples of 16, got 5"), "{error}");
    }

    #[test]
    fn other_convolutions_are_refused() {
        let options = (Kind::Float, tch::Device::Cpu);
        let conv = |kernel, stride| Conv2D {
            config: conv2d(4, kernel).strides(stride),
            kernel: Tensor::randn([4, 4, kernel, kernel], options),
            bias: None,
        };
        assert!(WinogradKernel::new(&conv(3, 2)).is_err(), "stride 2");
        assert!(WinogradKernel::new(&conv(1, 1)).is_err(), "1×1");
        let bf16 = Conv2D { kernel: conv(3, 1).kernel.to_kind(Kind::BFloat16), ..conv(3, 1) };
        assert!(WinogradKernel::new(&bf16).is_err(), "bfloat16");
    }
}
