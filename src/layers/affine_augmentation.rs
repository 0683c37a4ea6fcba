//! Keras's geometric augmentation layers (`keras/src/layers/preprocessing/random_rotation.py`,
//! `random_zoom.py`, `random_translation.py`): the identity at inference; in training, each
//! image moved by a random affine transform about its centre and resampled as Keras does
//! (bilinear or nearest; outside the image, `reflect`, `nearest` or `constant` `fill_value`). The draws
//! come from libtorch's generator (see [`super::augmentation`]); the geometry is Keras's (tested
//! at fixed factors against tf.keras and Keras 3, pixel for pixel).

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{Kind, Tensor};

use super::augmentation::{factor_range, per_image_uniform, Augmentation};
use super::keras_config::{invalid, KerasConfig};
use super::registry::FromKerasConfig;

/// How a geometric augmentation resamples: Keras's `interpolation`, `fill_mode` and `seed`.
#[derive(Debug, Clone)]
struct Resampling {
    nearest: bool,
    /// grid_sample's padding mode: 0 zeros (`constant`), 1 border (`nearest`), 2 reflection
    /// (`reflect`, Keras's `d c b a | a b c d | d c b a`).
    padding_mode: i64,
    /// `constant`'s value outside the image.
    fill_value: f64,
    seed: Value,
}

impl Resampling {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let padding_mode = match config.get("fill_mode").as_str().unwrap_or("reflect") {
            "reflect" => 2,
            "nearest" => 1,
            "constant" => 0,
            other => bail!("{}'s fill_mode '{other}' is not supported here (reflect, nearest, constant)", config.class_name),
        };
        let fill_value = config.f64_or("fill_value", 0.0)?;
        if !fill_value.is_finite() {
            return Err(invalid("fill_value", format!("{}'s fill_value must be finite, got {fill_value}", config.class_name)));
        }
        let nearest = match config.get("interpolation").as_str().unwrap_or("bilinear") {
            "bilinear" => false,
            "nearest" => true,
            other => {
                return Err(invalid(
                    "interpolation",
                    format!("{}'s interpolation must be bilinear or nearest, got '{other}'", config.class_name),
                ))
            }
        };
        Ok(Self { nearest, padding_mode, fill_value, seed: config.get("seed").clone() })
    }

    /// Its part of the layer's Keras config.
    fn add_to(&self, mut config: Value) -> Value {
        config["fill_mode"] = json!(["constant", "nearest", "reflect"][self.padding_mode as usize]);
        config["fill_value"] = json!(self.fill_value);
        config["interpolation"] = json!(if self.nearest { "nearest" } else { "bilinear" });
        config["seed"] = self.seed.clone();
        config
    }

    /// `xs` (NCHW) resampled so that output pixel p takes the input at `theta`·p, `theta` the
    /// (N, 2, 3) affine map in grid_sample's coordinates (-1 to 1 across width and height).
    fn apply(&self, xs: &Tensor, theta: &Tensor) -> Tensor {
        let grid = Tensor::affine_grid_generator(theta, xs.size().as_slice(), false);
        // Zeros padding reads 0 outside the image: sampling x − v and adding v back reads v
        // there, and blends it into the edge pixels as Keras's constant fill does.
        let shift = if self.padding_mode == 0 { self.fill_value } else { 0.0 };
        Tensor::grid_sampler(&(xs.to_kind(Kind::Float) - shift), &grid, if self.nearest { 1 } else { 0 }, self.padding_mode, false) + shift
    }
}

/// (N, 2, 3) affine maps from their entries, each (N,).
fn affine(rows: [[&Tensor; 3]; 2]) -> Tensor {
    Tensor::stack(&rows.map(|row| Tensor::stack(&row, 1)), 1)
}

/// One draw per image in `range`, shaped (N,).
fn draws(xs: &Tensor, range: (f64, f64)) -> Tensor {
    per_image_uniform(xs, range).reshape([xs.size()[0]])
}

/// `RandomRotation(factor)`: in training, each image rotated about its centre by an angle drawn
/// uniformly from `factor × 2π` (counter-clockwise for positive angles).
#[derive(Debug, Clone)]
pub struct RandomRotation {
    pub range: (f64, f64),
    resampling: Resampling,
}

impl FromKerasConfig for RandomRotation {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        Ok(Self { range: factor_range(config, "factor")?, resampling: Resampling::from_keras_config(config)? })
    }
}

impl Augmentation for RandomRotation {
    const CLASS_NAME: &'static str = "RandomRotation";

    fn tf_keras_config(&self) -> Value {
        self.resampling.add_to(json!({ "factor": [self.range.0, self.range.1] }))
    }

    fn transform(&self, xs: &Tensor) -> Tensor {
        let size = xs.size();
        let (height, width) = (size[2] as f64, size[3] as f64);
        let angle = draws(xs, (self.range.0 * std::f64::consts::TAU, self.range.1 * std::f64::consts::TAU));
        let (cos, sin, zero) = (angle.cos(), angle.sin(), angle.zeros_like());
        // Output pixel p samples the input at R(-angle)·p in pixels (y pointing down).
        let theta = affine([[&cos, &(-&sin * (height / width)), &zero], [&(&sin * (width / height)), &cos, &zero]]);
        self.resampling.apply(xs, &theta)
    }
}

/// A factor's range, lower and upper.
type Range = (f64, f64);

/// Keras's `height_factor` / `width_factor` pair of a zoom or translation; `width_factor`
/// `None` means "as the height" for a zoom.
fn axis_factors(config: &KerasConfig) -> Result<(Range, Option<Range>)> {
    let height = factor_range(config, "height_factor")?;
    let width = match config.get("width_factor") {
        Value::Null => None,
        _ => Some(factor_range(config, "width_factor")?),
    };
    Ok((height, width))
}

fn pair_or_null(range: Option<(f64, f64)>) -> Value {
    range.map_or(Value::Null, |(lower, upper)| json!([lower, upper]))
}

/// `RandomZoom(height_factor, width_factor)`: in training, each image zoomed about its centre by
/// `1 + z`, `z` drawn per axis (positive zooms out, as Keras's); without `width_factor`, the
/// width takes the height's draw (the aspect ratio kept).
#[derive(Debug, Clone)]
pub struct RandomZoom {
    pub height: (f64, f64),
    pub width: Option<(f64, f64)>,
    resampling: Resampling,
}

impl FromKerasConfig for RandomZoom {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let (height, width) = axis_factors(config)?;
        Ok(Self { height, width, resampling: Resampling::from_keras_config(config)? })
    }
}

impl Augmentation for RandomZoom {
    const CLASS_NAME: &'static str = "RandomZoom";

    fn tf_keras_config(&self) -> Value {
        let factors = json!({ "height_factor": [self.height.0, self.height.1], "width_factor": pair_or_null(self.width) });
        self.resampling.add_to(factors)
    }

    fn transform(&self, xs: &Tensor) -> Tensor {
        let zoom_y = draws(xs, self.height) + 1.0;
        let zoom_x = self.width.map_or_else(|| zoom_y.shallow_clone(), |width| draws(xs, width) + 1.0);
        let zero = zoom_y.zeros_like();
        self.resampling.apply(xs, &affine([[&zoom_x, &zero, &zero], [&zero, &zoom_y, &zero]]))
    }
}

/// `RandomTranslation(height_factor, width_factor)`: in training, each image shifted by a
/// fraction of its height and width drawn per axis (positive: down and right, as Keras's).
#[derive(Debug, Clone)]
pub struct RandomTranslation {
    pub height: (f64, f64),
    pub width: (f64, f64),
    resampling: Resampling,
}

impl FromKerasConfig for RandomTranslation {
    fn from_keras_config(config: &KerasConfig) -> Result<Self> {
        let (height, width) = axis_factors(config)?;
        let width = width.ok_or_else(|| invalid("width_factor", "RandomTranslation needs a width_factor".to_string()))?;
        Ok(Self { height, width, resampling: Resampling::from_keras_config(config)? })
    }
}

impl Augmentation for RandomTranslation {
    const CLASS_NAME: &'static str = "RandomTranslation";

    fn tf_keras_config(&self) -> Value {
        let factors = json!({ "height_factor": [self.height.0, self.height.1], "width_factor": [self.width.0, self.width.1] });
        self.resampling.add_to(factors)
    }

    fn transform(&self, xs: &Tensor) -> Tensor {
        // A shift of f × size pixels is 2f in grid_sample's coordinates; the output at p reads
        // the input at p − shift.
        let (dy, dx) = (draws(xs, self.height) * -2.0, draws(xs, self.width) * -2.0);
        let (one, zero) = (dy.ones_like(), dy.zeros_like());
        self.resampling.apply(xs, &affine([[&one, &zero, &dx], [&zero, &one, &dy]]))
    }
}
