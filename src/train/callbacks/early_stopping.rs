//! `keras.callbacks.EarlyStopping`: stop when the monitored value has not improved for
//! `patience` epochs, optionally putting back the weights of the best epoch.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::{is_improvement, monitored, Callback, CallbackContext, Logs, Mode};

/// Keras's arguments and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    pub min_delta: f64,
    pub patience: usize,
    pub verbose: u8,
    pub mode: Mode,
    pub baseline: Option<f64>,
    pub restore_best_weights: bool,
    pub start_from_epoch: usize,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            min_delta: 0.0,
            patience: 0,
            verbose: 0,
            mode: Mode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
        }
    }
}

pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    wait: usize,
    stopped_epoch: usize,
    best: Option<f64>,
    best_epoch: usize,
    best_weights: Option<Vec<Tensor>>,
}

impl EarlyStopping {
    pub fn new(config: EarlyStoppingConfig) -> Self {
        Self { config, wait: 0, stopped_epoch: 0, best: None, best_epoch: 0, best_weights: None }
    }

    fn improves(&self, current: f64, reference: Option<f64>) -> bool {
        is_improvement(current, reference, self.config.min_delta, self.config.mode.maximizes(&self.config.monitor))
    }
}

impl Callback for EarlyStopping {
    fn class_name(&self) -> &'static str {
        "EarlyStopping"
    }

    fn on_train_begin(&mut self, _ctx: &mut CallbackContext) -> Result<()> {
        *self = Self::new(self.config.clone());
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext) -> Result<()> {
        let current = monitored(logs, &self.config.monitor, "EarlyStopping")?;
        if epoch < self.config.start_from_epoch {
            return Ok(());
        }
        if self.config.restore_best_weights && self.best_weights.is_none() {
            // If no epoch ever improves, the first monitored epoch's weights are the best.
            self.best_weights = Some(ctx.model.get_weights());
            self.best_epoch = epoch;
        }
        self.wait += 1;
        if self.improves(current, self.best) {
            self.best = Some(current);
            self.best_epoch = epoch;
            if self.config.restore_best_weights {
                self.best_weights = Some(ctx.model.get_weights());
            }
            // The wait restarts only when the baseline is beaten too.
            if self.config.baseline.is_none_or(|baseline| self.improves(current, Some(baseline))) {
                self.wait = 0;
            }
            return Ok(());
        }
        if self.wait >= self.config.patience && epoch > 0 {
            self.stopped_epoch = epoch;
            ctx.stop_training = true;
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut CallbackContext) -> Result<()> {
        if self.stopped_epoch > 0 && self.config.verbose > 0 {
            println!("Epoch {}: early stopping", self.stopped_epoch + 1);
        }
        if let (true, Some(weights)) = (self.config.restore_best_weights, &self.best_weights) {
            if self.config.verbose > 0 {
                println!("Restoring model weights from the end of the best epoch: {}.", self.best_epoch + 1);
            }
            ctx.model.set_weights(weights)?;
        }
        Ok(())
    }

    fn state(&self) -> Value {
        json!({ "wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best, "best_epoch": self.best_epoch })
    }

    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let weights = self.best_weights.iter().flatten();
        // Safetensors holds contiguous tensors only.
        weights.enumerate().map(|(i, t)| (format!("best_weights/{i:05}"), t.contiguous())).collect()
    }

    fn restore_state(&mut self, state: &Value, tensors: &[(String, Tensor)]) -> Result<()> {
        let count = |key: &str| -> Result<usize> {
            match state[key].as_u64() {
                Some(n) => Ok(n as usize),
                None => bail!("EarlyStopping's saved state has no count '{key}'"),
            }
        };
        self.wait = count("wait")?;
        self.stopped_epoch = count("stopped_epoch")?;
        self.best_epoch = count("best_epoch")?;
        self.best = state["best"].as_f64();
        let mut weights: Vec<&(String, Tensor)> = tensors.iter().filter(|(name, _)| name.starts_with("best_weights/")).collect();
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        self.best_weights = (!weights.is_empty()).then(|| weights.iter().map(|(_, t)| t.shallow_clone()).collect());
        Ok(())
    }
}
