//! Keras's callbacks (`keras.callbacks`), with Keras's names, arguments and semantics: the
//! `Callback` trait has Keras's hooks, `fit` calls them, and each built-in callback is a config
//! (Keras's `get_config`) that `fit` builds. A callback's state (best value, wait counter,
//! best weights) goes into training checkpoints, so a resumed run behaves as an uninterrupted one.
//!
//! Where tf.keras and Keras 3 differ, Keras 3 is followed: a first monitored value always counts
//! as an improvement. `mode="auto"` maximises a monitor whose name ends in `acc`, `accuracy` or
//! `auc` and minimises any other (tf.keras's rule; Keras 3 asks the metric). A monitored value
//! missing from the logs is an error naming the logs there are (Keras warns and skips).

pub mod early_stopping;
pub mod model_checkpoint;
pub mod reduce_lr_on_plateau;

use anyhow::{bail, Result};
use serde_json::Value;
use tch::Tensor;

pub use early_stopping::{EarlyStopping, EarlyStoppingConfig};
pub use model_checkpoint::{ModelCheckpoint, ModelCheckpointConfig};
pub use reduce_lr_on_plateau::{ReduceLROnPlateau, ReduceLROnPlateauConfig};

use super::compile::CompileConfig;
use super::optimizer::Optimizer;
use crate::graph::Model;

/// An epoch's (or batch's) logs in Keras's order: `loss`, `accuracy`, `val_loss`, … .
pub type Logs = Vec<(&'static str, f64)>;

/// What a callback may read and change while `fit` runs.
pub struct CallbackContext<'a> {
    pub model: &'a mut Model,
    pub optimizer: &'a mut Optimizer,
    pub compile: &'a CompileConfig,
    /// Keras's `model.stop_training`: set to end training after this epoch.
    pub stop_training: bool,
    /// This process writes files (Keras's chief worker): always, except on ranks other than 0
    /// of a data-parallel job.
    pub chief: bool,
}

impl<'a> CallbackContext<'a> {
    pub fn new(model: &'a mut Model, optimizer: &'a mut Optimizer, compile: &'a CompileConfig) -> Self {
        Self { model, optimizer, compile, stop_training: false, chief: true }
    }
}

/// Keras's `Callback` hooks. Every hook defaults to doing nothing.
pub trait Callback {
    /// Keras's class name (keys the callback's state in checkpoints).
    fn class_name(&self) -> &'static str;

    fn on_train_begin(&mut self, _ctx: &mut CallbackContext) -> Result<()> {
        Ok(())
    }

    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut CallbackContext) -> Result<()> {
        Ok(())
    }

    fn on_train_batch_end(&mut self, _batch: usize, _logs: &Logs, _ctx: &mut CallbackContext) -> Result<()> {
        Ok(())
    }

    /// `epoch` counts from 0, as in Keras; a callback may add to the logs (e.g. the learning rate).
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &mut Logs, _ctx: &mut CallbackContext) -> Result<()> {
        Ok(())
    }

    fn on_train_end(&mut self, _ctx: &mut CallbackContext) -> Result<()> {
        Ok(())
    }

    /// What a resumed run needs to continue exactly (JSON).
    fn state(&self) -> Value {
        Value::Null
    }

    /// Tensors of that state (e.g. the best weights), by name.
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Take back what `state` and `state_tensors` gave (after `on_train_begin`).
    fn restore_state(&mut self, _state: &Value, _tensors: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }
}

/// The built-in callbacks as data, built by `fit`.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackConfig {
    EarlyStopping(EarlyStoppingConfig),
    ModelCheckpoint(ModelCheckpointConfig),
    ReduceLROnPlateau(ReduceLROnPlateauConfig),
}

impl CallbackConfig {
    pub fn build(&self) -> Result<Box<dyn Callback>> {
        Ok(match self {
            Self::EarlyStopping(config) => Box::new(EarlyStopping::new(config.clone())),
            Self::ModelCheckpoint(config) => Box::new(ModelCheckpoint::new(config.clone())?),
            Self::ReduceLROnPlateau(config) => Box::new(ReduceLROnPlateau::new(config.clone())?),
        })
    }
}

/// Callbacks called in order, as Keras's `CallbackList`.
#[derive(Default)]
pub struct CallbackList {
    callbacks: Vec<Box<dyn Callback>>,
}

impl CallbackList {
    pub fn from_configs(configs: &[CallbackConfig]) -> Result<Self> {
        Ok(Self { callbacks: configs.iter().map(CallbackConfig::build).collect::<Result<_>>()? })
    }

    pub fn push(&mut self, callback: Box<dyn Callback>) {
        self.callbacks.push(callback);
    }

    pub fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    pub fn class_names(&self) -> Vec<&'static str> {
        self.callbacks.iter().map(|c| c.class_name()).collect()
    }

    pub fn on_train_begin(&mut self, ctx: &mut CallbackContext) -> Result<()> {
        self.callbacks.iter_mut().try_for_each(|c| c.on_train_begin(ctx))
    }

    pub fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut CallbackContext) -> Result<()> {
        self.callbacks.iter_mut().try_for_each(|c| c.on_epoch_begin(epoch, ctx))
    }

    pub fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut CallbackContext) -> Result<()> {
        self.callbacks.iter_mut().try_for_each(|c| c.on_train_batch_end(batch, logs, ctx))
    }

    pub fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext) -> Result<()> {
        self.callbacks.iter_mut().try_for_each(|c| c.on_epoch_end(epoch, logs, ctx))
    }

    pub fn on_train_end(&mut self, ctx: &mut CallbackContext) -> Result<()> {
        self.callbacks.iter_mut().try_for_each(|c| c.on_train_end(ctx))
    }

    /// Each callback's (class name, state), in order.
    pub fn states(&self) -> Vec<Value> {
        self.callbacks.iter().map(|c| serde_json::json!({ "class_name": c.class_name(), "state": c.state() })).collect()
    }

    /// Every callback's state tensors, named `callbacks/<index>/<name>`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::new();
        for (index, callback) in self.callbacks.iter().enumerate() {
            tensors.extend(callback.state_tensors().into_iter().map(|(name, tensor)| (format!("callbacks/{index}/{name}"), tensor)));
        }
        tensors
    }

    /// Restore what [`states`](Self::states) and [`state_tensors`](Self::state_tensors) saved;
    /// the callbacks must be the same kinds in the same order.
    pub fn restore(&mut self, states: &[Value], tensors: Vec<(String, Tensor)>) -> Result<()> {
        let saved: Vec<&str> = states.iter().map(|s| s["class_name"].as_str().unwrap_or("?")).collect();
        if saved != self.class_names() {
            bail!(
                "the checkpoint was written with the callbacks {saved:?}, this run has {:?}: resume with the same ones",
                self.class_names()
            );
        }
        for (index, (callback, state)) in self.callbacks.iter_mut().zip(states).enumerate() {
            let prefix = format!("callbacks/{index}/");
            let own: Vec<(String, Tensor)> = tensors
                .iter()
                .filter_map(|(name, t)| name.strip_prefix(&prefix).map(|rest| (rest.to_string(), t.shallow_clone())))
                .collect();
            callback.restore_state(&state["state"], &own)?;
        }
        Ok(())
    }
}

/// Keras's `mode`: which direction of a monitored value is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Auto,
    Min,
    Max,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "auto" => Self::Auto,
            "min" => Self::Min,
            "max" => Self::Max,
            other => bail!("mode must be auto, min or max, got '{other}'"),
        })
    }

    /// Whether larger values of `monitor` are better.
    pub fn maximizes(self, monitor: &str) -> bool {
        match self {
            Self::Min => false,
            Self::Max => true,
            Self::Auto => ["acc", "accuracy", "auc"].iter().any(|end| monitor.ends_with(end)),
        }
    }
}

/// `monitor`'s value in `logs`, or an error naming the logs there are.
pub fn monitored(logs: &Logs, monitor: &str, callback: &str) -> Result<f64> {
    match logs.iter().find(|(key, _)| *key == monitor) {
        Some((_, value)) => Ok(*value),
        None => {
            let keys: Vec<&str> = logs.iter().map(|(key, _)| *key).collect();
            let hint = if monitor.starts_with("val_") { " (is there validation data?)" } else { "" };
            bail!("{callback} monitors '{monitor}', which the logs do not have{hint}; they have: {}", keys.join(", "))
        }
    }
}

/// Keras's `_is_improvement`: `current` beats `reference` by more than `min_delta` in the
/// monitor's direction; anything beats no reference yet.
pub fn is_improvement(current: f64, reference: Option<f64>, min_delta: f64, maximize: bool) -> bool {
    match reference {
        None => true,
        Some(reference) if maximize => current - min_delta.abs() > reference,
        Some(reference) => current + min_delta.abs() < reference,
    }
}
