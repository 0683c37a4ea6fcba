//! 3×3 convolutions of stride 1 by Winograd's minimal filtering, for float32 inference on the CPU.
//!
//! F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes
//! each m×m tile of the output from an (m+2)×(m+2) tile of the input with (m+2)² multiplications
//! per channel pair instead of 9·m²: 2.25× fewer for F(2×2), 4× fewer for F(4×4). The work splits
//! into three matrix products, each run by libtorch's GEMM:
//! - the input tiles transformed, `V = (Bᵀ ⊗ Bᵀ) · tiles`, one (m+2)² × (m+2)² matrix applied
//!   to every tile and channel;
//! - one product per tile position, `M[ξ] = V[ξ] · U[ξ]` (tiles × C by C × O), where
//!   `U = G g Gᵀ` is the kernel transformed once when the plan is made;
//! - the output tiles transformed back, `Y = (Aᵀ ⊗ Aᵀ) · M`.
//!
//! The convolutions of an ImageNet ResNet50's last two stages (14×14 and 7×7 pixels, 256 and
//! 512 channels) run at 80–90% of the machine's matmul ceiling through oneDNN (BENCHMARKS.md):
//! only fewer multiplications make them faster. F(4×4) rounds more than the direct sum (its
//! transforms hold 4s, 5s and 1/24ths): on the ImageNet fixture's photos the largest difference
//! from Keras's 7×7×2048 features grew from 6.4e-5 to 8.2e-5 of their largest value, within the
//! 1e-4 the parity tests (which run this path) allow. `KERAS_TCH_NO_WINOGRAD=1` keeps the direct
//! convolutions.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::layers::conv::Conv2D;
use crate::layers::padding::same_pads;

/// The output tile's side, m in F(m×m, 3×3), and the input tile's, m + 2.
const TILE: i64 = 4;
const ALPHA: i64 = TILE + 2;

/// Bᵀ, G and Aᵀ of F(4×4, 3×3) (Lavin & Gray), row by row: 6×6, 6×3, 4×6.
#[rustfmt::skip]
const F4_B_T: [f64; 36] = [
    4., 0., -5., 0., 1., 0.,
    0., -4., -4., 1., 1., 0.,
    0., 4., -4., -1., 1., 0.,
    0., -2., -1., 2., 1., 0.,
    0., 2., -1., -2., 1., 0.,
    0., 4., 0., -5., 0., 1.,
];
#[rustfmt::skip]
const F4_G: [f64; 18] = [
    1. / 4., 0., 0.,
    -1. / 6., -1. / 6., -1. / 6.,
    -1. / 6., 1. / 6., -1. / 6.,
    1. / 24., 1. / 12., 1. / 6.,
    1. / 24., -1. / 12., 1. / 6.,
    0., 0., 1.,
];
#[rustfmt::skip]
const F4_A_T: [f64; 24] = [
    1., 1., 1., 1., 1., 0.,
    0., 1., -1., 2., -2., 0.,
    0., 1., 1., 4., 4., 0.,
    0., 1., -1., 8., -8., 1.,
];

/// The smallest input and output channels, and tiles in a batch, Winograd runs with: below them
/// the transforms, or products of few rows, cost more than the multiplications saved. Measured
/// here against oneDNN's packed kernels (F(4×4), one layer at a time, ReLU fused): 0.63–0.68× the
/// time at 128–512 channels on 7×7 to 28×28 images in batches of 8 (32–392 tiles), 0.75× on one
/// 28×28 image (49 tiles); 1.0× on one 14×14 (16 tiles), 1.6× on one 7×7 (4 tiles), and 1.2–1.4×
/// at 64 channels whatever the batch.
const MIN_CHANNELS: i64 = 128;
const MIN_TILES: i64 = 32;

/// A 3×3, stride-1 convolution's kernel transformed for Winograd's algorithm: the same for every
/// input size, so the plans for several sizes share it.
pub struct WinogradKernel {
    /// U: the kernel transformed, ((m+2)², C, O).
    transformed: Tensor,
    bias: Option<Tensor>,
    /// Bᵀ ⊗ Bᵀ, ((m+2)², (m+2)²), and Aᵀ ⊗ Aᵀ, (m², (m+2)²).
    input_transform: Tensor,
    output_transform: Tensor,
}

impl WinogradKernel {
    /// `conv`'s kernel transformed; `conv` must be a float32 3×3 convolution of stride 1.
    pub fn new(conv: &Conv2D) -> Result<WinogradKernel> {
        let config = &conv.config;
        if config.kernel_size != [3, 3] || config.strides != [1, 1] || config.dilation != [1, 1] || conv.kernel.kind() != Kind::Float {
            bail!("Winograd: a float32 3×3 convolution of stride 1 and no dilation, got {config:?}");
        }
        let (m, alpha) = (TILE, ALPHA);
        let b_t = Tensor::from_slice(&F4_B_T).view([alpha, alpha]);
        let g = Tensor::from_slice(&F4_G).view([alpha, 3]);
        let a_t = Tensor::from_slice(&F4_A_T).view([m, alpha]);
        let device = conv.kernel.device();
        let as_float = |t: Tensor| t.to_kind(Kind::Float).to_device(device).contiguous();
        // U[a, b, c, o] = Σ G[a, i] g[o, c, i, j] G[b, j], in float64 so only the products round.
        let kernel = conv.kernel.to_kind(Kind::Double).to_device(tch::Device::Cpu);
        let transformed = Tensor::einsum("ai,ocij,bj->abco", &[&g, &kernel, &g], None::<i64>);
        let [filters, channels] = [kernel.size()[0], kernel.size()[1]];
        Ok(WinogradKernel {
            transformed: as_float(transformed.reshape([alpha * alpha, channels, filters])),
            bias: conv.bias.as_ref().map(Tensor::shallow_clone),
            input_transform: as_float(kronecker(&b_t, &b_t)),
            output_transform: as_float(kronecker(&a_t, &a_t)),
        })
    }

    /// Where the transformed kernel's data is (plans sharing it share this).
    #[cfg(test)]
    pub(crate) fn data_ptr(&self) -> *mut std::ffi::c_void {
        self.transformed.data_ptr()
    }

    /// The same kernel, sharing its tensors.
    pub fn shallow_clone(&self) -> WinogradKernel {
        WinogradKernel {
            transformed: self.transformed.shallow_clone(),
            bias: self.bias.as_ref().map(Tensor::shallow_clone),
            input_transform: self.input_transform.shallow_clone(),
            output_transform: self.output_transform.shallow_clone(),
        }
    }
}

/// A convolution planned for Winograd's algorithm on inputs of one size.
pub struct WinogradConv {
    kernel: WinogradKernel,
    /// Zeros before the first column and after the last, above the first row and below the
    /// last (up to whole tiles).
    pads: [i64; 4],
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
        shaped && large && conv.kernel.kind() == Kind::Float
    }

    /// The plan for `kernel` (of `conv`) on channels-last inputs of `size`.
    pub fn plan(kernel: &WinogradKernel, conv: &Conv2D, size: &[i64]) -> Result<WinogradConv> {
        let &[_, channels, height, width] = size else { bail!("Winograd: a 4-D input, got {size:?}") };
        let [left, right, top, bottom] = same_pads(conv.config.padding, [height, width], [3, 3], [1, 1]);
        let (out_h, out_w) = (height + top + bottom - 2, width + left + right - 2);
        if out_h < 1 || out_w < 1 || kernel.transformed.size()[1] != channels {
            bail!("Winograd: kernel {:?} on input {size:?}", conv.kernel.size());
        }
        let m = TILE;
        let tiles = [(out_h + m - 1) / m, (out_w + m - 1) / m];
        // The last tiles read (and compute) past the output; the zeros they read are padding.
        let pads = [left, tiles[1] * m + 2 - width - left, top, tiles[0] * m + 2 - height - top];
        Ok(WinogradConv { kernel: kernel.shallow_clone(), pads, tiles, output: [out_h, out_w, conv.config.filters] })
    }

    /// The transformed kernel, for the plans of other sizes.
    pub fn kernel(&self) -> &WinogradKernel {
        &self.kernel
    }

    /// The same plan, sharing its tensors.
    pub fn shallow_clone(&self) -> WinogradConv {
        WinogradConv { kernel: self.kernel.shallow_clone(), pads: self.pads, tiles: self.tiles, output: self.output }
    }

    /// `relu?(conv(xs) + other?)`, `xs` and `other` channels-last in the graph's NCHW view; the
    /// result is too.
    pub fn forward(&self, xs: &Tensor, other: Option<&Tensor>, relu: bool) -> Tensor {
        let kernel = &self.kernel;
        let (m, alpha) = (TILE, ALPHA);
        let [tiles_down, tiles_across] = self.tiles;
        let [out_h, out_w, filters] = self.output;
        let batch = xs.size()[0];
        let channels = kernel.transformed.size()[1];
        let [left, right, top, bottom] = self.pads;
        // (N, H, W, C) padded; pads are given last dimension first.
        let padded = xs.permute([0, 2, 3, 1]).constant_pad_nd([0, 0, left, right, top, bottom]);
        // Every input tile, overlapping by 2: (α, α, N, tiles down, tiles across, C).
        let [s_n, s_h, s_w, s_c] = <[i64; 4]>::try_from(padded.stride()).expect("a 4-D tensor");
        let tiles = padded
            .as_strided([batch, tiles_down, tiles_across, alpha, alpha, channels], [s_n, m * s_h, m * s_w, s_h, s_w, s_c], None)
            .permute([3, 4, 0, 1, 2, 5])
            .contiguous();
        let count = batch * tiles_down * tiles_across;
        let transformed = kernel.input_transform.mm(&tiles.view([alpha * alpha, count * channels]));
        let products = transformed.view([alpha * alpha, count, channels]).bmm(&kernel.transformed);
        let ys = kernel.output_transform.mm(&products.view([alpha * alpha, count * filters]));
        // (m, m, N, tiles down, tiles across, O) → (N, H', W', O), cropped to the output.
        let ys = ys.view([m, m, batch, tiles_down, tiles_across, filters]).permute([2, 3, 0, 4, 1, 5]);
        let ys = ys.reshape([batch, tiles_down * m, tiles_across * m, filters]).narrow(1, 0, out_h).narrow(2, 0, out_w);
        let mut ys = match &kernel.bias {
            Some(bias) => ys + bias,
            None => ys.contiguous(),
        };
        if let Some(other) = other {
            ys += other.permute([0, 2, 3, 1]);
        }
        if relu {
            let _ = ys.relu_();
        }
        ys.permute([0, 3, 1, 2])
    }
}

/// a ⊗ b: entry (i·rows(b) + k, j·cols(b) + l) is a[i, j]·b[k, l].
fn kronecker(a: &Tensor, b: &Tensor) -> Tensor {
    let ([ra, ca], [rb, cb]) = (two_dims(a), two_dims(b));
    (a.view([ra, 1, ca, 1]) * b.view([1, rb, 1, cb])).reshape([ra * rb, ca * cb])
}

fn two_dims(t: &Tensor) -> [i64; 2] {
    let size = t.size();
    [size[0], size[1]]
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
                config: conv2d(7, 3).padding(padding),
                kernel: Tensor::randn([7, 5, 3, 3], options),
                bias: Some(Tensor::randn([7], options)),
            };
            let xs = Tensor::randn([3, height, width, 5], options).permute([0, 3, 1, 2]);
            let kernel = WinogradKernel::new(&conv).expect("a 3×3 stride-1 convolution");
            let plan = WinogradConv::plan(&kernel, &conv, &xs.size()).expect("its input");
            let expected = conv.forward(&[&xs], false);
            let other = expected.randn_like();
            let ours = plan.forward(&xs, Some(&other), true);
            assert_eq!(ours.size(), expected.size());
            let difference = (&ours - (&expected + &other).relu()).abs().max().double_value(&[]);
            assert!(difference < 1e-4, "{padding:?} on {height}×{width}: {difference:e}");
        }
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
        assert!(WinogradConv::suits(&conv(128, 3, 1), &[1, 128, 28, 28]), "49 tiles");
        assert!(!WinogradConv::suits(&conv(256, 3, 1), &[1, 256, 14, 14]), "16 tiles");
        assert!(!WinogradConv::suits(&conv(64, 3, 1), &[8, 64, 56, 56]), "64 channels");
        assert!(!WinogradConv::suits(&conv(256, 3, 2), &[8, 256, 14, 14]), "stride 2");
        assert!(!WinogradConv::suits(&conv(256, 1, 1), &[8, 256, 14, 14]), "1×1");
        let bf16 = Conv2D { kernel: conv(256, 3, 1).kernel.to_kind(Kind::BFloat16), ..conv(256, 3, 1) };
        assert!(!WinogradConv::suits(&bf16, &[8, 256, 14, 14]), "bfloat16");
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
