//! Keras's learning-rate schedules (`keras.optimizers.schedules`), evaluated as Keras evaluates
//! them: in float32, at the optimizer's step count before the update (`optimizer.iterations`,
//! 0 for the first batch).

use anyhow::{bail, Result};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum LearningRateSchedule {
    /// `initial_learning_rate * decay_rate ^ (step / decay_steps)`, the exponent floored when
    /// `staircase`.
    ExponentialDecay { initial_learning_rate: f64, decay_steps: f64, decay_rate: f64, staircase: bool },
    /// `values[0]` up to and including `boundaries[0]`, `values[1]` up to `boundaries[1]`, …,
    /// the last value after the last boundary.
    PiecewiseConstantDecay { boundaries: Vec<f64>, values: Vec<f64> },
    /// Linear warm-up from `initial_learning_rate` to `warmup_target` over `warmup_steps` (when
    /// a target is given), then cosine decay over `decay_steps` to `alpha` × its start.
    CosineDecay { initial_learning_rate: f64, decay_steps: f64, alpha: f64, warmup_target: Option<f64>, warmup_steps: f64 },
}

impl LearningRateSchedule {
    /// Check the arguments as Keras's constructors do.
    pub fn validated(self) -> Result<Self> {
        match &self {
            Self::ExponentialDecay { decay_steps, .. } | Self::CosineDecay { decay_steps, .. } if *decay_steps <= 0.0 => {
                bail!("{}: decay_steps must be positive, got {decay_steps}", self.class_name())
            }
            Self::PiecewiseConstantDecay { boundaries, values } if values.len() != boundaries.len() + 1 || boundaries.is_empty() => {
                bail!(
                    "PiecewiseConstantDecay: the number of values ({}) must be one more than the number of boundaries ({}), and there must be boundaries",
                    values.len(),
                    boundaries.len()
                )
            }
            _ => Ok(self),
        }
    }

    pub fn class_name(&self) -> &'static str {
        match self {
            Self::ExponentialDecay { .. } => "ExponentialDecay",
            Self::PiecewiseConstantDecay { .. } => "PiecewiseConstantDecay",
            Self::CosineDecay { .. } => "CosineDecay",
        }
    }

    /// The learning rate at `step` (float32 arithmetic, as Keras's graph runs it).
    pub fn at(&self, step: i64) -> f64 {
        let step = step as f32;
        let value = match self {
            Self::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let mut p = step / *decay_steps as f32;
                if *staircase {
                    p = p.floor();
                }
                *initial_learning_rate as f32 * (*decay_rate as f32).powf(p)
            }
            Self::PiecewiseConstantDecay { boundaries, values } => {
                let index = boundaries.iter().position(|&b| step <= b as f32).unwrap_or(boundaries.len());
                values[index] as f32
            }
            Self::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps } => {
                let (initial, decay_steps) = (*initial_learning_rate as f32, *decay_steps as f32);
                let decay = |step: f32, from: f32| {
                    let cosine = 0.5 * (1.0 + (std::f32::consts::PI * (step / decay_steps)).cos());
                    from * ((1.0 - *alpha as f32) * cosine + *alpha as f32)
                };
                match warmup_target {
                    None => decay(step.min(decay_steps), initial),
                    Some(target) => {
                        let (target, warmup_steps) = (*target as f32, *warmup_steps as f32);
                        let step = step.min(decay_steps + warmup_steps);
                        if step < warmup_steps {
                            (target - initial) * (step / warmup_steps) + initial
                        } else {
                            decay(step - warmup_steps, target)
                        }
                    }
                }
            }
        };
        f64::from(value)
    }

    /// Keras's serialized form, as `learning_rate` in an optimizer's config.
    pub fn keras_config(&self) -> Value {
        let config = match self {
            Self::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => json!({
                "initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps, "decay_rate": decay_rate,
                "staircase": staircase, "name": "ExponentialDecay"
            }),
            Self::PiecewiseConstantDecay { boundaries, values } => {
                json!({ "boundaries": boundaries, "values": values, "name": "PiecewiseConstant" })
            }
            Self::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps } => json!({
                "initial_learning_rate": initial_learning_rate, "decay_steps": decay_steps, "alpha": alpha,
                "name": "CosineDecay", "warmup_target": warmup_target, "warmup_steps": warmup_steps
            }),
        };
        json!({ "class_name": self.class_name(), "config": config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piecewise_boundaries_belong_to_the_earlier_value() {
        let schedule = LearningRateSchedule::PiecewiseConstantDecay { boundaries: vec![2.0, 4.0], values: vec![1.0, 0.5, 0.25] };
        let rates: Vec<f64> = (0..6).map(|step| schedule.at(step)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]);
        assert!(LearningRateSchedule::PiecewiseConstantDecay { boundaries: vec![1.0], values: vec![1.0] }.validated().is_err());
    }
}
