//! Convolutions on small images as one matrix product, for inference on the CPU.
//!
//! oneDNN's convolution kernels work image by image over each image's pixels; when an image has
//! only a few (a ResNet's last stage on the course's 64×64 photos: 2×2 pixels, or 4×4), they
//! reach a third of what a matrix product reaches on the same arithmetic. Two rewrites give the
//! same numbers (up to the order of the sums) as one matrix product over the whole batch:
//! - a **1×1 convolution** (any stride) is the matrix product of every sampled pixel's channels
//!   with the kernel (C × O);
//! - a convolution whose **input has no more pixels than its kernel has taps** (3×3 on 2×2) is a
//!   linear map of each whole image: a matrix of (H·W·C) × (H'·W'·O) built from the kernel,
//!   zero where a tap falls outside the image (the padding) — no more arithmetic than the
//!   convolution itself, which also multiplies the padding.
//!
//! The product runs as oneDNN's 1×1 convolution over the rows seen as one image of rows × 1
//! pixels ([`matrix_as_image`]), the matrix packed once for the row count, with the bias, the
//! residual addend and the ReLU fused in: on an AMD EPYC (2 threads, PyTorch 2.13's same
//! libraries, medians of 30) the stage-5 whole-image map, 32 rows by 2048 × 2048, took 1.5 ms
//! there against 3.4 ms in MKL's `addmm` (which packs the matrix again on every call), and the
//! 1×1 products of 128–2048 rows 0.7–0.8× `addmm`'s time in float32.
//!
//! Measured on this project's 2-core machine (BENCHMARKS.md): the course ResNet50's stage-5
//! convolutions at batch 32 ran at 80–95 GFLOP/s through oneDNN image by image and 170 GFLOP/s
//! as matrix products. Past 8×8 pixels (ImageNet's 14×14 and more) oneDNN's kernels image by
//! image are as fast as one image of all the rows, so the rewrite stops at
//! [`MAX_POINTWISE_PIXELS`].

use anyhow::{anyhow, Result};
use tch::Tensor;

use super::fused_conv::{image_as_matrix, matrix_as_image, matrix_image_size, onednn_conv, pack_kernel, Geometry};
use crate::layers::conv::Conv2D;
use crate::layers::padding::same_pads;

/// A 1×1 convolution runs as a matrix product up to this many output pixels an image (8×8)...
pub const MAX_POINTWISE_PIXELS: i64 = 64;
/// ... when the batch gives it at least this many rows (one 7×7 ImageNet image, 49 rows, ran
/// 2–7% slower as a matrix product here).
const MIN_POINTWISE_ROWS: i64 = 64;

/// The largest whole-image matrix built (elements; 64 MB in float32).
const MAX_DENSE_ELEMENTS: i64 = 16 << 20;

/// A convolution planned as one matrix product for inputs of one size.
pub struct MatmulConv {
    /// The (K × M) matrix — the kernel (C × O), or the whole-image map (H·W·C × H'·W'·O) — as
    /// a 1×1 convolution's kernel (M, K, 1, 1), packed by oneDNN for this size's rows.
    kernel: Tensor,
    /// The bias for each of the M columns.
    bias: Option<Tensor>,
    /// 1×1: the stride the pixels are sampled with; `None`: the whole-image map.
    pointwise_stride: Option<[i64; 2]>,
    /// The output's height, width and channels.
    output: [i64; 3],
}

impl MatmulConv {
    /// The plan for `conv` on channels-last inputs of `size` (N, C, H, W, as the graph holds
    /// them), when a matrix product suits it (and oneDNN packs its matrix);
    /// `KERAS_TCH_NO_MATMUL_CONV=1` turns it off.
    pub fn plan(conv: &Conv2D, size: &[i64]) -> Option<MatmulConv> {
        if std::env::var_os("KERAS_TCH_NO_MATMUL_CONV").is_some_and(|v| v == "1") {
            return None;
        }
        let config = &conv.config;
        let &[batch, channels, height, width] = size else { return None };
        if config.dilation != [1, 1] || conv.kernel.size()[1] != channels {
            return None;
        }
        let [kh, kw] = config.kernel_size;
        let [left, right, top, bottom] = same_pads(config.padding, [height, width], config.kernel_size, config.strides);
        let out_h = (height + top + bottom - kh) / config.strides[0] + 1;
        let out_w = (width + left + right - kw) / config.strides[1] + 1;
        let filters = config.filters;
        let output = [out_h, out_w, filters];
        if out_h < 1 || out_w < 1 {
            return None;
        }
        let (matrix, bias, pointwise_stride, rows) =
            if [kh, kw] == [1, 1] && out_h * out_w <= MAX_POINTWISE_PIXELS && batch * out_h * out_w >= MIN_POINTWISE_ROWS {
                let matrix = conv.kernel.reshape([filters, channels]).transpose(0, 1);
                (matrix, conv.bias.as_ref().map(Tensor::shallow_clone), Some(config.strides), batch * out_h * out_w)
            } else if height * width <= kh * kw && height * width * channels * out_h * out_w * filters <= MAX_DENSE_ELEMENTS {
                let matrix = whole_image_map(conv, [height, width], [top, left], output).ok()?;
                (matrix, conv.bias.as_ref().map(|bias| bias.repeat([out_h * out_w])), None, batch)
            } else {
                return None;
            };
        let [inner, columns] = [matrix.size()[0], matrix.size()[1]];
        let kernel = matrix.transpose(0, 1).contiguous().view([columns, inner, 1, 1]);
        let kernel = pack_kernel(&kernel, &matrix_image_size(rows, inner), Geometry::pointwise(1)).ok()?;
        Some(MatmulConv { kernel, bias, pointwise_stride, output })
    }

    /// The same plan, sharing its tensors.
    pub fn shallow_clone(&self) -> MatmulConv {
        MatmulConv {
            kernel: self.kernel.shallow_clone(),
            bias: self.bias.as_ref().map(Tensor::shallow_clone),
            pointwise_stride: self.pointwise_stride,
            output: self.output,
        }
    }

    /// `relu?(conv(xs) + other?)`, `xs` and `other` channels-last in the graph's NCHW view; the
    /// result is too.
    pub fn forward(&self, xs: &Tensor, other: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        let batch = xs.size()[0];
        let [out_h, out_w, filters] = self.output;
        // Each row a sampled pixel's channels (1×1), or a whole image (the map); the addend's
        // rows alike.
        let (rows, addend) = match self.pointwise_stride {
            Some(stride) => {
                let sampled =
                    if stride == [1, 1] { xs.shallow_clone() } else { xs.slice(2, 0, None, stride[0]).slice(3, 0, None, stride[1]) };
                (image_as_matrix(&sampled), other.map(image_as_matrix))
            }
            None => (xs.permute([0, 2, 3, 1]).reshape([batch, -1]), other.map(|other| other.permute([0, 2, 3, 1]).reshape([batch, -1]))),
        };
        let addend = addend.as_ref().map(matrix_as_image).transpose()?;
        let ys = onednn_conv(&matrix_as_image(&rows)?, addend.as_ref(), &self.kernel, self.bias.as_ref(), Geometry::pointwise(1), relu)?;
        Ok(image_as_matrix(&ys).view([batch, out_h, out_w, filters]).permute([0, 3, 1, 2]))
    }
}

/// The (H·W·C) × (H'·W'·O) matrix of `conv` on images of `hw` pixels, padded by `top_left`
/// (the rest of the padding only adds zeros): output pixel (i', j') reads input pixel (i, j)
/// through the tap (i − i'·s + top, j − j'·s + left) when that is inside the kernel.
fn whole_image_map(conv: &Conv2D, hw: [i64; 2], top_left: [i64; 2], output: [i64; 3]) -> Result<Tensor> {
    let kernel = &conv.kernel; // (O, C, kh, kw)
    let [filters, channels, kh, kw] = <[i64; 4]>::try_from(kernel.size()).map_err(|_| anyhow!("a 2-D kernel"))?;
    let ([height, width], [top, left], [out_h, out_w, _]) = (hw, top_left, output);
    let [sh, sw] = conv.config.strides;
    let map = Tensor::zeros([height, width, channels, out_h, out_w, filters], (kernel.kind(), kernel.device()));
    for (i, j, oi, oj) in pixel_pairs(height, width, out_h, out_w) {
        let (di, dj) = (i - oi * sh + top, j - oj * sw + left);
        if (0..kh).contains(&di) && (0..kw).contains(&dj) {
            let tap = kernel.select(2, di).select(2, dj).transpose(0, 1); // (C, O)
            map.narrow(0, i, 1).narrow(1, j, 1).narrow(3, oi, 1).narrow(4, oj, 1).copy_(&tap.view([1, 1, channels, 1, 1, filters]));
        }
    }
    Ok(map.reshape([height * width * channels, out_h * out_w * filters]))
}

/// Every (i, j, i', j') of an h × w input and an oh × ow output.
fn pixel_pairs(h: i64, w: i64, oh: i64, ow: i64) -> impl Iterator<Item = (i64, i64, i64, i64)> {
    (0..h).flat_map(move |i| (0..w).flat_map(move |j| (0..oh).flat_map(move |oi| (0..ow).map(move |oj| (i, j, oi, oj)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    use crate::layers::conv::conv2d;
    use crate::layers::padding::Padding;
    use crate::layers::Layer;

    fn conv(kernel: i64, stride: i64, padding: Padding, channels: i64, filters: i64) -> Conv2D {
        let options = (Kind::Float, tch::Device::Cpu);
        Conv2D {
            config: conv2d(filters, kernel).strides(stride).padding(padding),
            kernel: Tensor::randn([filters, channels, kernel, kernel], options),
            bias: Some(Tensor::randn([filters], options)),
        }
    }

    /// Each rewrite gives the convolution's result (plus the other branch, then ReLU): 1×1 at
    /// strides 1 and 2, 3×3 'same' on 2×2 (TF's padding, stride 1 and 2), 3×3 'valid' on 3×3.
    #[test]
    fn matrix_products_equal_the_convolution() {
        let cases = [
            (1, 1, Padding::Valid, 4, true),
            (1, 2, Padding::Same, 4, true),
            (3, 1, Padding::Same, 2, false),
            (3, 2, Padding::Same, 2, false),
            (3, 1, Padding::Valid, 3, false),
        ];
        for (kernel, stride, padding, size, pointwise) in cases {
            let conv = conv(kernel, stride, padding, 5, 7);
            // NHWC seen as NCHW, as the graph holds images.
            let xs = Tensor::randn([16, size, size, 5], (Kind::Float, tch::Device::Cpu)).permute([0, 3, 1, 2]);
            let plan = MatmulConv::plan(&conv, &xs.size()).expect("a matrix product suits it");
            assert_eq!(plan.pointwise_stride.is_some(), pointwise);
            let expected = conv.forward(&[&xs], false);
            let other = expected.randn_like();
            let ours = plan.forward(&xs, Some(&other), true).unwrap();
            let difference = (&ours - (&expected + &other).relu()).abs().max().double_value(&[]);
            assert!(difference < 1e-4, "kernel {kernel}, stride {stride}, {padding:?} on {size}×{size}: {difference:e}");
            assert_eq!(ours.size(), expected.size());
        }
    }

    /// With bfloat16 kernels (`--precision bf16`) the plans are made and run in bfloat16 too:
    /// a 1×1 and a 3×3 on 2×2, against the convolution computed in float32 from the same
    /// bfloat16 values (bfloat16's rounding of the result allowed).
    #[test]
    fn bfloat16_kernels_run_as_bfloat16_products() {
        for (kernel, size) in [(1, 4), (3, 2)] {
            let conv = conv(kernel, 1, Padding::Same, 32, 16);
            let bf16 = |t: &Tensor| t.to_kind(Kind::BFloat16);
            let conv = Conv2D { config: conv.config.clone(), kernel: bf16(&conv.kernel), bias: conv.bias.as_ref().map(bf16) };
            let xs = bf16(&Tensor::randn([16, size, size, 32], (Kind::Float, tch::Device::Cpu))).permute([0, 3, 1, 2]);
            let plan = MatmulConv::plan(&conv, &xs.size()).expect("a bfloat16 matrix packs");
            let ours = plan.forward(&xs, None, false).unwrap();
            assert_eq!(ours.kind(), Kind::BFloat16);
            let float = Conv2D {
                config: conv.config.clone(),
                kernel: conv.kernel.to_kind(Kind::Float),
                bias: conv.bias.as_ref().map(|b| b.to_kind(Kind::Float)),
            };
            let expected = float.forward(&[&xs.to_kind(Kind::Float)], false);
            let scale = expected.abs().max().double_value(&[]);
            let difference = (ours.to_kind(Kind::Float) - &expected).abs().max().double_value(&[]) / scale;
            assert!(difference < 1e-2, "kernel {kernel} on {size}×{size}: {difference:e} of the largest value");
        }
    }

    /// Larger images stay with oneDNN's kernels.
    #[test]
    fn larger_images_are_left_to_the_convolution_kernels() {
        let pointwise = conv(1, 1, Padding::Valid, 4, 4);
        assert!(MatmulConv::plan(&pointwise, &[1, 4, 9, 9]).is_none(), "81 pixels");
        assert!(MatmulConv::plan(&pointwise, &[1, 4, 8, 8]).is_some(), "64 pixels");
        assert!(MatmulConv::plan(&pointwise, &[1, 4, 7, 7]).is_none(), "49 rows in all");
        assert!(MatmulConv::plan(&pointwise, &[2, 4, 7, 7]).is_some(), "98 rows");
        assert!(MatmulConv::plan(&conv(3, 1, Padding::Same, 4, 4), &[1, 4, 4, 4]).is_none(), "16 pixels for 9 taps");
    }
}
