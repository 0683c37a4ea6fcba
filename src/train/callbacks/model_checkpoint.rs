//! `keras.callbacks.ModelCheckpoint`: save the model (or its weights) after each epoch, to a
//! path formatted from the epoch and the logs as Python formats it (`w.{epoch:02d}-{val_loss:.2f}.h5`),
//! every epoch or only when the monitored value improves.
//!
//! The file kind follows the path as in Keras: `.keras` a Keras 3 archive, `.h5` a tf.keras
//! HDF5 model; with `save_weights_only`, `.weights.h5` Keras 3's weights layout and `.h5`
//! tf.keras's. Every save is atomic and never replaces an input of the run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{is_improvement, monitored, Callback, CallbackContext, Logs, Mode};
use crate::graph::optimizer_state::SavedOptimizerState;
use crate::io::atomic::check_destination;
use crate::io::{save_model_h5, save_model_keras, save_weights_h5, save_weights_keras3};
use crate::pyfmt::{format_template, FormatValue};

/// Keras's arguments and defaults (`save_freq="epoch"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCheckpointConfig {
    pub filepath: String,
    pub monitor: String,
    pub verbose: u8,
    pub save_best_only: bool,
    pub save_weights_only: bool,
    pub mode: Mode,
    pub initial_value_threshold: Option<f64>,
}

impl ModelCheckpointConfig {
    pub fn new(filepath: &str) -> Self {
        Self {
            filepath: filepath.into(),
            monitor: "val_loss".into(),
            verbose: 0,
            save_best_only: false,
            save_weights_only: false,
            mode: Mode::Auto,
            initial_value_threshold: None,
        }
    }
}

pub struct ModelCheckpoint {
    config: ModelCheckpointConfig,
    best: Option<f64>,
}

impl ModelCheckpoint {
    /// Refuses a path whose extension names no file kind, as Keras's constructor does.
    pub fn new(config: ModelCheckpointConfig) -> Result<Self> {
        let path = &config.filepath;
        let known = if config.save_weights_only { path.ends_with(".h5") } else { path.ends_with(".keras") || path.ends_with(".h5") };
        if !known {
            let kinds = if config.save_weights_only { "'.weights.h5' (Keras 3) or '.h5' (tf.keras)" } else { "'.keras' or '.h5'" };
            bail!("ModelCheckpoint: the file path '{path}' must end in {kinds}");
        }
        Ok(Self { best: config.initial_value_threshold, config })
    }

    fn save(&self, path: &Path, ctx: &mut CallbackContext) -> Result<()> {
        check_destination(path)?;
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
        }
        let name = path.to_string_lossy();
        if self.config.save_weights_only {
            return if name.ends_with(".weights.h5") { save_weights_keras3(ctx.model, path) } else { save_weights_h5(ctx.model, path) };
        }
        // A saved model carries its compile and its optimizer's state, as Keras's `model.save`
        // does (so that training can go on from it, here or in Keras).
        let previous = ctx.model.training_config.replace(ctx.compile.training_config(&ctx.optimizer.config));
        let previous_state =
            std::mem::replace(&mut ctx.model.optimizer_state, SavedOptimizerState::Restorable(ctx.optimizer.saved_state()));
        let saved = if name.ends_with(".keras") { save_model_keras(ctx.model, path) } else { save_model_h5(ctx.model, path) };
        ctx.model.training_config = previous;
        ctx.model.optimizer_state = previous_state;
        saved
    }
}

impl Callback for ModelCheckpoint {
    fn class_name(&self) -> &'static str {
        "ModelCheckpoint"
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, ctx: &mut CallbackContext) -> Result<()> {
        // The ranks of a data-parallel job hold the same model: the chief alone saves it (the
        // others keep the best value in step, for their checkpoints).
        let verbose = if ctx.chief { self.config.verbose } else { 0 };
        let mut values = vec![("epoch", FormatValue::Int(epoch as i64 + 1))];
        values.extend(logs.iter().map(|(key, value)| (*key, FormatValue::Float(*value))));
        let path = PathBuf::from(format_template(&self.config.filepath, &values).map_err(|why| anyhow::anyhow!("ModelCheckpoint: {why}"))?);
        if self.config.save_best_only {
            let monitor = &self.config.monitor;
            let current = monitored(logs, monitor, "ModelCheckpoint")?;
            let best_text = self.best.map_or("None".to_string(), |b| format!("{b:.5}"));
            if !is_improvement(current, self.best, 0.0, self.config.mode.maximizes(monitor)) {
                if verbose > 0 {
                    println!("\nEpoch {}: {monitor} did not improve from {best_text}", epoch + 1);
                }
                return Ok(());
            }
            if verbose > 0 {
                println!("\nEpoch {}: {monitor} improved from {best_text} to {current:.5}, saving model to {}", epoch + 1, path.display());
            }
            self.best = Some(current);
        } else if verbose > 0 {
            println!("\nEpoch {}: saving model to {}", epoch + 1, path.display());
        }
        if !ctx.chief {
            return Ok(());
        }
        self.save(&path, ctx)
    }

    fn state(&self) -> Value {
        json!({ "best": self.best })
    }

    fn restore_state(&mut self, state: &Value, _tensors: &[(String, tch::Tensor)]) -> Result<()> {
        self.best = state["best"].as_f64().or(self.config.initial_value_threshold);
        Ok(())
    }
}
