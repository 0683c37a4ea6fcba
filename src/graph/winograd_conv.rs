//! 3×3 convolutions of stride 1 by Winograd's minimal filtering, for float32 inference on the CPU.
//!
//! F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes
//! each 4×4 tile of the output from a 6×6 tile of the input with 36 multiplications per channel
//! pair instead of 144, in three steps:
//! - the input tiles transformed, `V = Bᵀ d B` (C++, `winograd_conv.cpp`);
//! - one matrix product per position ξ of the 6×6, `M[ξ] = V[ξ] · U[ξ]` (tiles × C by C × O, one
//!   grouped 1×1 oneDNN convolution), where `U = G g Gᵀ` is the kernel transformed and packed
//!   once for every input size;
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::fused_conv::{image_as_matrix, matrix_as_image, matrix_image_size, onednn_conv, pack_kernel, Geometry};
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
/// against oneDNN's packed kernels (one layer at a time, with the residual add and ReLU,
/// interleaved, medians of 21) on an Intel Xeon, with the products then in MKL's batched GEMM:
/// 0.45–0.66× the time on one image at 64–256 channels (56×56 to 14×14 pixels, 16–196 tiles),
/// 0.48–0.80× at batches of 8 and 32 from 128 channels, 0.81–0.94× at 64 channels; on one 7×7
/// image (4 tiles) 1.1–1.4×, on two (8 tiles) 0.65–1.2×. On an AMD EPYC, with the products as
/// a grouped convolution, in ResNet50 (medians of 20 predicts): 0.5–0.67× at batch 8 from 64
/// channels, 0.5–0.85× at batch 1 for 56×56 to 14×14; one 7×7 image (4 tiles) 1.3×.
const MIN_CHANNELS: i64 = 64;
const MIN_TILES: i64 = 16;
const CHANNEL_CHUNK: i64 = 16;

/// The tiles are transformed, multiplied and transformed back in blocks, so that V and M stay in
/// the cache and their memory is reused: a block holds at most this many of V's (or M's) values,
/// 2 MB, or as many as the transformed kernel, which each block reads again. Measured here (AMD
/// EPYC, batch 8, one layer at a time): 64 channels over 1568 tiles 5.9 ms in blocks of 2 MB
/// against 8.1 ms in one block of 16 MB; 256 channels over 128 tiles 4.8 ms in one block against
/// 7.3 ms in three of 2 MB (the kernel, 9.4 MB, read three times).
const MIN_BLOCK_ELEMENTS: i64 = 1 << 19;

/// The most values of V (or M) a block of tiles holds, for C channels in and O out.
fn block_elements(channels: i64, filters: i64) -> i64 {
    MIN_BLOCK_ELEMENTS.max(ALPHA * ALPHA * channels * filters)
}

/// A 3×3, stride-1 convolution's kernel transformed for Winograd's algorithm: the same for every
/// input size, so the plans for several sizes share it.
pub struct WinogradKernel {
    /// U = G g Gᵀ, one C × O matrix per position ξ of the 6×6 tile, as the kernel of a grouped
    /// 1×1 convolution (36 groups of O × C) packed in oneDNN's layout: the 36 products then run
    /// as one oneDNN call, at the speed of its 1×1 convolutions (on an AMD EPYC, 186–206
    /// GFLOP/s against MKL's batched GEMM's 89–183 on the same products).
    packed: Tensor,
    channels: i64,
    filters: i64,
    bias: Option<Tensor>,
    /// Tells transformed kernels apart (a shallow clone keeps it).
    id: u64,
}

impl WinogradKernel {
    /// `conv`'s kernel transformed, packed for inputs of `size` (N, C, H, W); `conv` must be a
    /// float32 3×3 convolution of stride 1 on the CPU.
    pub fn new(conv: &Conv2D, size: &[i64]) -> Result<WinogradKernel> {
        let config = &conv.config;
        if config.kernel_size != [3, 3] || config.strides != [1, 1] || config.dilation != [1, 1] || conv.kernel.kind() != Kind::Float {
            bail!("Winograd: a float32 3×3 convolution of stride 1 and no dilation, got {config:?}");
        }
        let g = Tensor::from_slice(&matrices().g).view([ALPHA, 3]);
        // U[(a, b), c, o] = Σ G[a, i] G[b, j] g[o, c, i, j]: one matrix product with G ⊗ G
        // (36 × 9), in float64 so that only the result rounds.
        let g_kron_g = (g.view([ALPHA, 1, 3, 1]) * g.view([1, ALPHA, 1, 3])).reshape([ALPHA * ALPHA, 9]);
        let [filters, channels] = [conv.kernel.size()[0], conv.kernel.size()[1]];
        // The taps as (9, O·C), so that the product comes out as (36, O, C): each position's
        // group of a grouped convolution's (36·O, C, 1, 1) kernel.
        let taps = conv.kernel.to_device(tch::Device::Cpu).permute([2, 3, 0, 1]).to_kind(Kind::Double).reshape([9, filters * channels]);
        let grouped = g_kron_g.mm(&taps).to_kind(Kind::Float).view([ALPHA * ALPHA * filters, channels, 1, 1]);
        let block = block_tiles(tile_count(conv, size)?, channels, filters, block_elements(channels, filters));
        // Packed for a block's V, the (tiles, 36·C) matrix the products read as an image.
        let packed = pack_kernel(&grouped, &matrix_image_size(block, ALPHA * ALPHA * channels), Geometry::pointwise(ALPHA * ALPHA))?;
        static KERNELS: AtomicU64 = AtomicU64::new(0);
        let id = KERNELS.fetch_add(1, Ordering::Relaxed);
        Ok(WinogradKernel { packed, channels, filters, bias: conv.bias.as_ref().map(Tensor::shallow_clone), id })
    }

    /// Which transformed kernel this is (plans sharing it share this).
    #[cfg(test)]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The same kernel, sharing its tensors.
    pub fn shallow_clone(&self) -> WinogradKernel {
        WinogradKernel {
            packed: self.packed.shallow_clone(),
            channels: self.channels,
            filters: self.filters,
            bias: self.bias.as_ref().map(Tensor::shallow_clone),
            id: self.id,
        }
    }
}

/// Where `conv`'s output tiles lie on an image of `height` × `width`: the zeros above and before
/// it, the output's height and width, and the tiles down and across.
struct Tiling {
    top_left: [i64; 2],
    output: [i64; 2],
    tiles: [i64; 2],
}

fn tiling(conv: &Conv2D, height: i64, width: i64) -> Tiling {
    let [left, right, top, bottom] = same_pads(conv.config.padding, [height, width], [3, 3], [1, 1]);
    let output = [height + top + bottom - 2, width + left + right - 2];
    Tiling { top_left: [top, left], output, tiles: output.map(|side| ((side + TILE - 1) / TILE).max(0)) }
}

/// The output tiles of `conv` on inputs of `size` (N, C, H, W), over the whole batch.
fn tile_count(conv: &Conv2D, size: &[i64]) -> Result<i64> {
    let &[batch, _, height, width] = size else { bail!("Winograd: a 4-D input, got {size:?}") };
    let [down, across] = tiling(conv, height, width).tiles;
    Ok(batch * down * across)
}

/// How many tiles go through in one block: as even a split of the `count` tiles as blocks of at
/// most `max_block_elements` values of V's or M's allow.
fn block_tiles(count: i64, channels: i64, filters: i64, max_block_elements: i64) -> i64 {
    let most = (max_block_elements / (ALPHA * ALPHA * channels.max(filters))).max(1);
    let blocks = ((count + most - 1) / most).max(1);
    ((count + blocks - 1) / blocks).max(1)
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
        let Tiling { top_left, output: [out_h, out_w], tiles } = tiling(conv, height, width);
        if out_h < 1 || out_w < 1 || kernel.channels != channels {
            bail!("Winograd: kernel {:?} on input {size:?}", conv.kernel.size());
        }
        let output = [out_h, out_w, conv.config.filters];
        Ok(WinogradConv { kernel: kernel.shallow_clone(), top_left, tiles, output })
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
        self.forward_in_blocks(xs, other, relu, block_elements(self.kernel.channels, self.kernel.filters))
    }

    /// [`WinogradConv::forward`], the tiles taken in blocks of at most `max_block_elements`
    /// transformed values.
    fn forward_in_blocks(&self, xs: &Tensor, other: Option<&Tensor>, relu: bool, max_block_elements: i64) -> Result<Tensor> {
        let kernel = &self.kernel;
        let [top, left] = self.top_left;
        let [tiles_down, tiles_across] = self.tiles;
        let [out_h, out_w, filters] = self.output;
        let [batch, channels] = [xs.size()[0], kernel.channels];
        // Channels-last, as the graph holds images.
        let ys = Tensor::empty([batch, out_h, out_w, filters], (Kind::Float, xs.device())).permute([0, 3, 1, 2]);
        let count = batch * tiles_down * tiles_across;
        let block = block_tiles(count, channels, filters, max_block_elements);
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
            // V (tiles, 36, C) is the grouped convolution's channels-last input as it lies.
            let v = matrix_as_image(&transformed.view([tiles, ALPHA * ALPHA * channels]))?;
            let products = onednn_conv(&v, None, &kernel.packed, None, Geometry::pointwise(ALPHA * ALPHA), false)?;
            let products = image_as_matrix(&products).view([tiles, ALPHA * ALPHA, filters]);
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
            let kernel = WinogradKernel::new(&conv, &xs.size()).expect("a 3×3 stride-1 convolution");
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
        let plan = WinogradConv::plan(&WinogradKernel::new(&conv, &xs.size()).unwrap(), &conv, &xs.size()).unwrap();
        assert_eq!(plan.tiles, [3, 2], "6 tiles an image");
        let expected = conv.forward(&[&xs], false);
        let ours = plan.forward_in_blocks(&xs, None, false, ALPHA * ALPHA * 32 * 5).unwrap();
        let difference = (&ours - &expected).abs().max().double_value(&[]);
        assert!(difference < 1e-5 * expected.abs().max().double_value(&[]), "{difference:e}");
    }

    /// Blocks split the tiles evenly, hold at least one tile, and never exceed the limit.
    #[test]
    fn blocks_split_the_tiles_evenly() {
        let per_tile = ALPHA * ALPHA * 64;
        assert_eq!(block_tiles(1568, 64, 64, 227 * per_tile), 224, "7 blocks of 224, not 6 of 227 and one of 206");
        assert_eq!(block_tiles(100, 64, 64, 1000 * per_tile), 100, "one block");
        assert_eq!(block_tiles(5, 64, 64, 1), 1, "at least one tile");
        assert_eq!(block_tiles(0, 64, 64, per_tile), 1, "no tiles");
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
        let plan = WinogradConv::plan(&WinogradKernel::new(&conv, &xs.size()).unwrap(), &conv, &xs.size()).unwrap();
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
        let size = [1, 4, 8, 8];
        assert!(WinogradKernel::new(&conv(3, 2), &size).is_err(), "stride 2");
        assert!(WinogradKernel::new(&conv(1, 1), &size).is_err(), "1×1");
        let bf16 = Conv2D { kernel: conv(3, 1).kernel.to_kind(Kind::BFloat16), ..conv(3, 1) };
        assert!(WinogradKernel::new(&bf16, &size).is_err(), "bfloat16");
    }
}
