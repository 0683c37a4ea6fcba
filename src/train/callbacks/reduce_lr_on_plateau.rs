//! `keras.callbacks.ReduceLROnPlateau`: multiply the learning rate by `factor` when the
//! monitored value has not improved for `patience` epochs, then wait `cooldown` epochs. The
//! rate is a float32 in Keras, and so it is kept here; it is added to the logs as
//! `learning_rate` (Keras 3's name), the rate of the epoch that just ended.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{is_improvement, monitored, Callback, CallbackContext, Logs, Mode};

/// Keras's arguments and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceLROnPlateauConfig {
    pub monitor: String,
    pub factor: f64,
    pub patience: usize,
    pub verbose: u8,
    pub mode: Mode,
    pub min_delta: f64,
    pub cooldown: usize,
    pub min_lr: f64,
}

impl Default for ReduceLROnPlateauConfig {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            factor: 0.1,
            patience: 10,
            verbose: 0,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
        }
    }
}

pub struct ReduceLROnPlateau {
    config: ReduceLROnPlateauConfig,
    best: Option<f64>,
    wait: usize,
    cooldown_counter: usize,
}

impl ReduceLROnPlateau {
    pub fn new(config: ReduceLROnPlateauConfig) -> Result<Self> {
        if config.factor.is_nan() || config.factor >= 1.0 {
            bail!("ReduceLROnPlateau does not support a factor >= 1.0, got {}", config.factor);
        }
        Ok(Self { config, best: None, wait: 0, cooldown_counter: 0 })
    }
}

impl Callback for ReduceLROnPlateau {
    fn class_name(&self) -> &'static str {
        "ReduceLROnPlateau"
    }

    fn on_train_begin(&mut self, ctx: &mut CallbackContext) -> Result<()> {
        if ctx.optimizer.schedule.is_some() {
            bail!("ReduceLROnPlateau cannot change the learning rate of an optimizer that follows a learning-rate schedule");
        }
        (self.best, self.wait, self.cooldown_counter) = (None, 0, 0);
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext) -> Result<()> {
        let old_lr = ctx.optimizer.config.learning_rate();
        logs.push(("learning_rate", old_lr));
        let current = monitored(logs, &self.config.monitor, "ReduceLROnPlateau")?;
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if is_improvement(current, self.best, self.config.min_delta, self.config.mode.maximizes(&self.config.monitor)) {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.config.patience && old_lr > f64::from(self.config.min_lr as f32) {
                // Keras computes in float64 from the float32 variable and stores float32.
                let new_lr = f64::from((old_lr * self.config.factor).max(self.config.min_lr) as f32);
                ctx.optimizer.config.set_learning_rate(new_lr);
                if self.config.verbose > 0 {
                    println!("\nEpoch {}: ReduceLROnPlateau reducing learning rate to {new_lr}.", epoch + 1);
                }
                self.cooldown_counter = self.config.cooldown;
                self.wait = 0;
            }
        }
        Ok(())
    }

    fn state(&self) -> Value {
        json!({ "best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter })
    }

    fn restore_state(&mut self, state: &Value, _tensors: &[(String, tch::Tensor)]) -> Result<()> {
        let count = |key: &str| state[key].as_u64().map(|n| n as usize);
        match (count("wait"), count("cooldown_counter")) {
            (Some(wait), Some(cooldown)) => (self.wait, self.cooldown_counter) = (wait, cooldown),
            _ => bail!("ReduceLROnPlateau's saved state lacks 'wait' or 'cooldown_counter'"),
        }
        self.best = state["best"].as_f64();
        Ok(())
    }
}
