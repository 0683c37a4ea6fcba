//! Optimizers with Keras's update rules and defaults (tf.keras 2.x `optimizers/`, Keras 3
//! `keras/src/optimizers/`), not torch's.
//!
//! Adam, as Keras (every version) applies it: with t the step number,
//! `α = lr·sqrt(1 − β2^t)/(1 − β1^t)`, `m ← m + (g − m)(1 − β1)`, `v ← v + (g² − v)(1 − β2)`,
//! `p ← p − α·m/(sqrt(v) + ε)` — ε is added to the *uncorrected* sqrt(v). torch's Adam adds a
//! constant ε to the bias-corrected one, so its fused kernel runs here with ε/sqrt(1 − β2^t),
//! a per-step value that makes the two updates the same (see `fused_adam`). Keras's default ε is
//! 1e-7; Keras ≤ 2.1.2 used 1e-8, as does the course's explicit `Adam(epsilon=1e-08)`.

use std::collections::HashMap;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{no_grad, Tensor};

use super::fused_adam::{keras_adam_step, AdamTensors};
use super::schedules::LearningRateSchedule;
use crate::graph::optimizer_state::OptimizerState;

/// The optimizers keras-tch implements, by Keras's names (`compile(optimizer="adam")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerKind {
    Adam,
    Sgd,
    Rmsprop,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    Adam { learning_rate: f64, beta_1: f64, beta_2: f64, epsilon: f64 },
    Sgd { learning_rate: f64, momentum: f64, nesterov: bool },
    RmsProp { learning_rate: f64, rho: f64, epsilon: f64 },
}

impl OptimizerConfig {
    /// `Adam()` with today's Keras defaults.
    pub fn adam(learning_rate: f64) -> Self {
        OptimizerConfig::Adam { learning_rate, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }

    /// `SGD()` defaults: lr 0.01, no momentum.
    pub fn sgd(learning_rate: f64) -> Self {
        OptimizerConfig::Sgd { learning_rate, momentum: 0.0, nesterov: false }
    }

    /// `RMSprop()` defaults: lr 0.001, rho 0.9, epsilon 1e-7.
    pub fn rmsprop(learning_rate: f64) -> Self {
        OptimizerConfig::RmsProp { learning_rate, rho: 0.9, epsilon: 1e-7 }
    }

    /// `kind` with Keras's defaults, at `learning_rate` or Keras's default rate for it.
    pub fn with_defaults(kind: OptimizerKind, learning_rate: Option<f64>) -> Self {
        match kind {
            OptimizerKind::Adam => Self::adam(learning_rate.unwrap_or(1e-3)),
            OptimizerKind::Sgd => Self::sgd(learning_rate.unwrap_or(0.01)),
            OptimizerKind::Rmsprop => Self::rmsprop(learning_rate.unwrap_or(1e-3)),
        }
    }

    /// Keras's name (`"adam"`, any case) with Keras's defaults.
    pub fn by_name(name: &str, learning_rate: Option<f64>) -> Result<Self> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "adam" => OptimizerKind::Adam,
            "sgd" => OptimizerKind::Sgd,
            "rmsprop" => OptimizerKind::Rmsprop,
            other => bail!("optimizer '{other}' is not supported (adam, sgd, rmsprop)"),
        };
        Ok(Self::with_defaults(kind, learning_rate))
    }

    /// From a tf.keras `optimizer_config` / Keras 3 `compile_config.optimizer`
    /// (`{"class_name": "Adam" | "Custom>Adam", "config": {...}}`) or a bare name.
    pub fn from_keras(config: &Value) -> Result<Self> {
        if let Some(name) = config.as_str() {
            return Self::by_name(name, None);
        }
        let class = config["class_name"].as_str().unwrap_or_default();
        let class = class.rsplit('>').next().unwrap_or(class);
        let c = &config["config"];
        let lr = c["learning_rate"].as_f64().or(c["lr"].as_f64());
        let f = |key: &str, default: f64| c[key].as_f64().unwrap_or(default);
        Ok(match class.to_ascii_lowercase().as_str() {
            "adam" => OptimizerConfig::Adam {
                learning_rate: lr.unwrap_or(1e-3),
                beta_1: f("beta_1", 0.9),
                beta_2: f("beta_2", 0.999),
                epsilon: f("epsilon", 1e-7),
            },
            "sgd" => OptimizerConfig::Sgd {
                learning_rate: lr.unwrap_or(0.01),
                momentum: f("momentum", 0.0),
                nesterov: c["nesterov"].as_bool().unwrap_or(false),
            },
            "rmsprop" => OptimizerConfig::RmsProp { learning_rate: lr.unwrap_or(1e-3), rho: f("rho", 0.9), epsilon: f("epsilon", 1e-7) },
            other => bail!("optimizer '{other}' is not supported (Adam, SGD, RMSprop)"),
        })
    }

    /// The learning rate (the current one, when a schedule or a callback changes it).
    pub fn learning_rate(&self) -> f64 {
        match *self {
            Self::Adam { learning_rate, .. } | Self::Sgd { learning_rate, .. } | Self::RmsProp { learning_rate, .. } => learning_rate,
        }
    }

    pub fn set_learning_rate(&mut self, rate: f64) {
        match self {
            Self::Adam { learning_rate, .. } | Self::Sgd { learning_rate, .. } | Self::RmsProp { learning_rate, .. } => {
                *learning_rate = rate
            }
        }
    }

    /// Keras's class name (`Adam`, `SGD`, `RMSprop`).
    pub fn keras_class(&self) -> &'static str {
        match self {
            Self::Adam { .. } => "Adam",
            Self::Sgd { .. } => "SGD",
            Self::RmsProp { .. } => "RMSprop",
        }
    }

    /// tf.keras's `optimizer_config` for `training_config`. `is_legacy_optimizer: false`, as
    /// tf.keras ≥ 2.11 writes it: without it tf.keras rebuilds a legacy optimizer, which cannot
    /// take the saved `optimizer_weights`.
    pub fn keras_config(&self) -> Value {
        let mut config = match *self {
            OptimizerConfig::Adam { learning_rate, beta_1, beta_2, epsilon } => json!({
                "class_name": "Adam",
                "config": { "name": "Adam", "learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon, "amsgrad": false }
            }),
            OptimizerConfig::Sgd { learning_rate, momentum, nesterov } => json!({
                "class_name": "SGD",
                "config": { "name": "SGD", "learning_rate": learning_rate, "momentum": momentum, "nesterov": nesterov }
            }),
            OptimizerConfig::RmsProp { learning_rate, rho, epsilon } => json!({
                "class_name": "RMSprop",
                "config": { "name": "RMSprop", "learning_rate": learning_rate, "rho": rho, "epsilon": epsilon, "momentum": 0.0, "centered": false }
            }),
        };
        config["config"]["is_legacy_optimizer"] = json!(false);
        config
    }
}

/// An optimizer with its per-variable slots (Adam's m and v, SGD's momentum, RMSprop's mean
/// square), keyed by the variable's Keras name (`conv1/kernel`), and its step count.
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub iterations: i64,
    /// Sets the learning rate before each update from the step count, as Keras's
    /// `learning_rate=<schedule>` does.
    pub schedule: Option<LearningRateSchedule>,
    slots: HashMap<String, Vec<Tensor>>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Self { config, iterations: 0, schedule: None, slots: HashMap::new() }
    }

    /// An optimizer whose learning rate follows `schedule` (Keras's `Adam(learning_rate=schedule)`).
    pub fn with_schedule(config: OptimizerConfig, schedule: LearningRateSchedule) -> Self {
        Self { schedule: Some(schedule), ..Self::new(config) }
    }

    /// Apply one update to every variable from its gradient (`grads[i]` belongs to
    /// `variables[i]`; an undefined gradient leaves its variable alone).
    ///
    /// Adam runs as one call to libtorch's fused kernel over all variables (see `fused_adam`);
    /// SGD and RMSprop as in-place elementwise updates per variable.
    pub fn apply(&mut self, variables: &[(String, Tensor)], grads: &[Tensor]) -> Result<()> {
        if variables.len() != grads.len() {
            bail!("optimizer: {} variables but {} gradients", variables.len(), grads.len());
        }
        if let Some(schedule) = &self.schedule {
            self.config.set_learning_rate(schedule.at(self.iterations));
        }
        self.iterations += 1;
        let t = self.iterations as f64;
        let updated: Vec<(&String, &Tensor, &Tensor)> =
            variables.iter().zip(grads).filter(|(_, grad)| grad.defined()).map(|((name, variable), grad)| (name, variable, grad)).collect();
        for (name, variable, _) in &updated {
            let slots = self.slots.entry((*name).clone()).or_insert_with(|| match self.config {
                OptimizerConfig::Adam { .. } => vec![variable.zeros_like(), variable.zeros_like()],
                OptimizerConfig::Sgd { .. } | OptimizerConfig::RmsProp { .. } => vec![variable.zeros_like()],
            });
            // The fused kernel walks each tensor's memory flat, so slots restored from a
            // checkpoint take their variable's layout.
            for slot in slots.iter_mut() {
                if slot.stride() != variable.stride() {
                    *slot = no_grad(|| in_layout_of(slot, variable));
                }
            }
        }
        no_grad(|| match self.config {
            OptimizerConfig::Adam { learning_rate, beta_1, beta_2, epsilon } => {
                let tensors = AdamTensors {
                    params: updated.iter().map(|(_, variable, _)| *variable).collect(),
                    // A convolution's gradient can come back channels-last; match the weight's layout.
                    grads: updated.iter().map(|(_, variable, grad)| in_layout_of(grad, variable)).collect(),
                    m: updated.iter().map(|(name, _, _)| &self.slots[*name][0]).collect(),
                    v: updated.iter().map(|(name, _, _)| &self.slots[*name][1]).collect(),
                };
                keras_adam_step(&tensors, t, learning_rate, beta_1, beta_2, epsilon)
            }
            OptimizerConfig::Sgd { learning_rate, momentum, nesterov } => {
                for (name, variable, grad) in &updated {
                    let mut p = variable.shallow_clone();
                    if momentum == 0.0 {
                        let _ = p.g_sub_(&(*grad * learning_rate));
                    } else {
                        let m = &self.slots[*name][0];
                        let _ = m.shallow_clone().g_mul_scalar_(momentum).g_sub_(&(*grad * learning_rate));
                        if nesterov {
                            let _ = p.g_add_(&(m * momentum - *grad * learning_rate));
                        } else {
                            let _ = p.g_add_(m);
                        }
                    }
                }
                Ok(())
            }
            OptimizerConfig::RmsProp { learning_rate, rho, epsilon } => {
                for (name, variable, grad) in &updated {
                    // Keras 3 / tf.keras ≥ 2.11: ε inside the square root.
                    let v = &self.slots[*name][0];
                    let _ = v.shallow_clone().g_mul_scalar_(rho).g_add_(&(grad.square() * (1.0 - rho)));
                    let _ = variable.shallow_clone().g_sub_(&(*grad * learning_rate / (v + epsilon).sqrt()));
                }
                Ok(())
            }
        })
    }

    /// Slots as (name, tensor) pairs for checkpoints: `optimizer/<variable>/<slot index>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut state: Vec<(String, Tensor)> = self
            .slots
            .iter()
            .flat_map(|(name, slots)| {
                // Contiguous for the checkpoint file (slots share their variable's layout).
                slots.iter().enumerate().map(move |(i, t)| (format!("optimizer/{name}/{i}"), t.to_device(tch::Device::Cpu).contiguous()))
            })
            .collect();
        state.sort_by(|a, b| a.0.cmp(&b.0));
        state
    }

    /// Continue from the state a Keras file saved with its model (as `load_model` then `fit`
    /// do): its step count, which drives Adam's bias correction, and every variable's slots
    /// (`load_model` checked them against the model). Refused when the state is another
    /// optimizer class's.
    pub fn restore_saved(&mut self, state: &OptimizerState, device: tch::Device) -> Result<()> {
        let class = self.config.keras_class();
        if state.class != class {
            bail!("the file's optimizer state is {}'s, but training uses {class}", state.class);
        }
        self.slots = state.slots.iter().map(|(name, slots)| (name.clone(), slots.iter().map(|t| t.to_device(device)).collect())).collect();
        self.iterations = state.iterations;
        Ok(())
    }

    /// A snapshot of the state, to save with the model (`model.save` writes it; see
    /// [`Optimizer::restore_saved`]).
    pub fn saved_state(&self) -> OptimizerState {
        let mut slots: Vec<(String, Vec<Tensor>)> =
            self.slots.iter().map(|(name, slots)| (name.clone(), slots.iter().map(Tensor::copy).collect())).collect();
        slots.sort_by(|a, b| a.0.cmp(&b.0));
        OptimizerState { class: self.config.keras_class().to_string(), iterations: self.iterations, slots }
    }

    /// Restore slots written by [`Optimizer::state`].
    pub fn restore(&mut self, iterations: i64, state: Vec<(String, Tensor)>, device: tch::Device) -> Result<()> {
        let mut slots: HashMap<String, Vec<(usize, Tensor)>> = HashMap::new();
        for (key, tensor) in state {
            let Some(rest) = key.strip_prefix("optimizer/") else { continue };
            let Some((name, index)) = rest.rsplit_once('/') else { bail!("bad optimizer slot key '{key}'") };
            let index: usize = index.parse().map_err(|_| anyhow::anyhow!("bad optimizer slot key '{key}'"))?;
            slots.entry(name.to_string()).or_default().push((index, tensor.to_device(device)));
        }
        self.slots = slots
            .into_iter()
            .map(|(name, mut list)| {
                list.sort_by_key(|(i, _)| *i);
                (name, list.into_iter().map(|(_, t)| t).collect())
            })
            .collect();
        self.iterations = iterations;
        Ok(())
    }
}

/// `tensor` with `like`'s memory layout (itself when they already match).
fn in_layout_of(tensor: &Tensor, like: &Tensor) -> Tensor {
    if tensor.stride() == like.stride() {
        tensor.shallow_clone()
    } else {
        let mut copy = like.empty_like();
        copy.copy_(tensor);
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Two Adam steps on p = [1, -2] with gradient 2p, computed by hand with Keras's rule.
    #[test]
    fn adam_adds_epsilon_to_the_uncorrected_root() {
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Optimizer::new(OptimizerConfig::Adam { learning_rate: 0.1, beta_1: 0.9, beta_2: 0.999, epsilon: 0.5 });
        let (mut m, mut v, mut expected) = ([0.0f64; 2], [0.0f64; 2], [1.0f64, -2.0]);
        for t in 1..=2 {
            let grads = Tensor::run_backward(&[(&p * &p).sum(Kind::Double)], &[&p], false, false);
            opt.apply(&[("p".into(), p.shallow_clone())], &grads).unwrap();
            let alpha = 0.1 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
            for i in 0..2 {
                let g = 2.0 * expected[i];
                m[i] += (g - m[i]) * 0.1;
                v[i] += (g * g - v[i]) * 0.001;
                expected[i] -= alpha * m[i] / (v[i].sqrt() + 0.5);
            }
        }
        for (i, expected) in expected.iter().enumerate() {
            assert!((p.double_value(&[i as i64]) - expected).abs() < 1e-12);
        }
    }

    #[test]
    fn keras_optimizer_configs_are_read() {
        let config = serde_json::json!({"class_name": "Custom>Adam", "config": {"learning_rate": 0.002, "epsilon": 1e-8}});
        assert_eq!(
            OptimizerConfig::from_keras(&config).unwrap(),
            OptimizerConfig::Adam { learning_rate: 0.002, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8 }
        );
        assert!(OptimizerConfig::by_name("adagrad", None).is_err());
    }
}
