//! `model.compile(...)`'s choices as keras-tch keeps them, and reading them back from Keras's
//! `training_config` (tf.keras HDF5) or `compile_config` (Keras 3 `.keras`).

use anyhow::{Context, Result};
use serde_json::Value;

use super::losses::{CrossEntropyStyle, Loss};

/// The metric Keras's `"accuracy"` resolves to for a loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accuracy {
    Categorical,
    Binary,
    SparseCategorical,
}

impl Accuracy {
    /// Keras resolves `metrics=['accuracy']` from the loss.
    pub fn for_loss(loss: Loss) -> Self {
        match loss {
            Loss::CategoricalCrossentropy => Accuracy::Categorical,
            Loss::BinaryCrossentropy => Accuracy::Binary,
            Loss::SparseCategoricalCrossentropy => Accuracy::SparseCategorical,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompileConfig {
    pub loss: Loss,
    pub accuracy: Option<Accuracy>,
    pub style: CrossEntropyStyle,
}

impl CompileConfig {
    /// Read a tf.keras `training_config` or Keras 3 `compile_config`; files from either compute
    /// the loss the tf.keras way.
    pub fn from_keras(config: &Value) -> Result<Self> {
        let loss = match &config["loss"] {
            Value::String(name) => name.clone(),
            Value::Object(map) => map
                .get("class_name")
                .and_then(Value::as_str)
                .or_else(|| map.get("config").and_then(|c| c["name"].as_str()))
                .unwrap_or_default()
                .to_string(),
            other => anyhow::bail!("training configuration has an unreadable loss: {other}"),
        };
        let loss = Loss::from_keras_name(&loss).context("the file's training configuration")?;
        let wants_accuracy = config["metrics"].to_string().contains("acc");
        Ok(Self { loss, accuracy: wants_accuracy.then(|| Accuracy::for_loss(loss)), style: CrossEntropyStyle::TfKeras })
    }
}
