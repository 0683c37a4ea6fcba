//! Data augmentation for training on images (the lecture's mirroring, random cropping and
//! colour shifting, plus small rotations), each switchable, drawn from a seed per (epoch, batch)
//! so a run repeats exactly. Geometry is one affine resampling per image (bilinear, edges
//! repeated like Keras's `fill_mode='nearest'`); colour shifts add a per-channel offset as
//! Keras's `channel_shift_range` does.

use tch::{Kind, Tensor};

use crate::rng::SplitMix64;

#[derive(Debug, Clone, Default)]
pub struct Augmentation {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Crop a random square-ish window of (1 - crop)..1 of each side and resize it back.
    pub crop: f64,
    /// Rotate by up to ± this many degrees.
    pub rotation_degrees: f64,
    /// Add a per-channel offset of up to ± this many input units (pixel levels × the
    /// preprocessing's scale).
    pub channel_shift: f64,
    pub seed: u64,
}

impl Augmentation {
    pub fn is_active(&self) -> bool {
        self.flip || self.crop > 0.0 || self.rotation_degrees > 0.0 || self.channel_shift > 0.0
    }

    /// Augment a batch of NHWC images (already preprocessed) for (epoch, batch).
    pub fn apply(&self, x: &Tensor, epoch: usize, batch: usize) -> Tensor {
        if !self.is_active() {
            return x.shallow_clone();
        }
        let size = x.size();
        let (n, h, w, c) = (size[0], size[1], size[2], size[3]);
        let mut rng = SplitMix64::for_parts(self.seed, &[epoch as u64, batch as u64]);
        let mut thetas = Vec::with_capacity(6 * n as usize);
        let mut shifts = Vec::with_capacity((n * c) as usize);
        for _ in 0..n {
            let mirror = if self.flip && rng.uniform(0.0, 1.0) < 0.5 { -1.0 } else { 1.0 };
            let scale = 1.0 - rng.uniform(0.0, self.crop.clamp(0.0, 0.9));
            let angle = rng.uniform(-self.rotation_degrees, self.rotation_degrees).to_radians();
            // The window may sit anywhere inside the image.
            let (tx, ty) = (rng.uniform(-(1.0 - scale), 1.0 - scale), rng.uniform(-(1.0 - scale), 1.0 - scale));
            let (cos, sin) = (angle.cos(), angle.sin());
            let aspect = h as f64 / w as f64;
            // Output (x, y) in [-1, 1] samples the input at A·(x, y) + t; the aspect factors
            // keep the rotation rigid on non-square images.
            thetas.extend(
                [scale * cos * mirror, -scale * sin * aspect, tx, scale * sin * mirror / aspect, scale * cos, ty].map(|v| v as f32),
            );
            shifts.extend((0..c).map(|_| rng.uniform(-self.channel_shift, self.channel_shift) as f32));
        }
        let device = x.device();
        let theta = Tensor::from_slice(&thetas).view([n, 2, 3]).to_device(device);
        let images = x.to_kind(Kind::Float).permute([0, 3, 1, 2]);
        let grid = Tensor::affine_grid_generator(&theta, [n, c, h, w], false);
        // interpolation 0 = bilinear, padding 1 = border (repeat the edge).
        let moved = images.grid_sampler(&grid, 0, 1, false).permute([0, 2, 3, 1]);
        moved + Tensor::from_slice(&shifts).view([n, 1, 1, c]).to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_off_and_repeatable_when_on() {
        let x = Tensor::rand([2, 8, 6, 3], (Kind::Float, tch::Device::Cpu));
        assert!(Augmentation::default().apply(&x, 0, 0).equal(&x));
        let augmentation = Augmentation { flip: true, crop: 0.2, rotation_degrees: 10.0, channel_shift: 0.1, seed: 7 };
        let a = augmentation.apply(&x, 1, 2);
        assert!(a.equal(&augmentation.apply(&x, 1, 2)), "same seed, epoch and batch: same result");
        assert!(!a.equal(&augmentation.apply(&x, 1, 3)), "another batch: other draws");
        assert_eq!(a.size(), x.size());
    }

    #[test]
    fn a_pure_flip_mirrors_exactly() {
        let x = Tensor::rand([64, 5, 4, 3], (Kind::Float, tch::Device::Cpu));
        let flipped = Augmentation { flip: true, seed: 3, ..Default::default() }.apply(&x, 0, 0);
        let mirrored = x.flip([2]);
        let mut flips = 0;
        for i in 0..64 {
            let (out, same, mirror) = (flipped.get(i), x.get(i), mirrored.get(i));
            let is_same = (&out - &same).abs().max().double_value(&[]) < 1e-5;
            let is_mirror = (&out - &mirror).abs().max().double_value(&[]) < 1e-5;
            assert!(is_same || is_mirror, "image {i} is neither itself nor its mirror");
            flips += is_mirror as i32;
        }
        assert!((16..=48).contains(&flips), "about half flipped: {flips}");
    }
}
