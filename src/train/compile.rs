//! `model.compile(...)`'s choices as keras-tch keeps them, and reading them back from Keras's
//! `training_config` (tf.keras HDF5) or `compile_config` (Keras 3 `.keras`).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Tensor;

use super::losses::{CrossEntropyStyle, Loss};
use super::optimizer::OptimizerConfig;
use crate::data::dataset::LabelMode;
use crate::graph::{KerasVersion, Model};

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
    /// Keras's `from_logits=True`: the model's output is the logits the loss reads (the model
    /// ends without softmax or sigmoid, as Keras's transfer-learning guide builds it). Accuracy
    /// is still computed on the output itself, as Keras's metrics are.
    pub from_logits: bool,
}

impl CompileConfig {
    /// The course notebooks' `model.compile(optimizer='adam', loss='categorical_crossentropy',
    /// metrics=['accuracy'])` as the course ran it, in Keras 2.0: cross-entropy on clipped
    /// probabilities ([`CrossEntropyStyle::Keras20`]) and Adam with Keras's defaults. The demo and
    /// the ported "Residual Networks" notebook both compile through this one choice.
    pub fn as_the_course_ran(model: &Model) -> Result<(Self, OptimizerConfig)> {
        Ok((Self::for_model(model, Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::Keras20)?, OptimizerConfig::adam(1e-3)))
    }

    /// The line the course flows print about that choice.
    pub const COURSE_LOSS_NOTE: &'static str = "Loss computed as Keras 2.0 did when the course ran (clipped probabilities), see README";

    /// `compile(loss=…, metrics=['accuracy'])` for `model`: the loss given, or the one its output
    /// calls for (one sigmoid unit: binary cross-entropy; otherwise categorical).
    pub fn for_model(model: &Model, loss: Option<Loss>, style: CrossEntropyStyle) -> Result<Self> {
        let loss = match loss {
            Some(loss) => loss,
            None => {
                let [output] = model.outputs() else { bail!("model '{}' has several outputs", model.name) };
                match model.node(*output).output_shape.as_slice() {
                    [1] => Loss::BinaryCrossentropy,
                    [_] => Loss::CategoricalCrossentropy,
                    other => bail!("cannot pick a loss for an output of shape {other:?}"),
                }
            }
        };
        Ok(Self { loss, accuracy: Some(Accuracy::for_loss(loss)), style, from_logits: false })
    }

    /// Refuse a model whose output cannot express `classes` classes under this loss (a
    /// one-unit sigmoid on six classes would "train" to a meaningless, negative loss).
    pub fn check_fits(&self, model: &Model, classes: usize) -> Result<()> {
        let [output] = model.outputs() else { bail!("model '{}' has {} outputs; training needs one", model.name, model.outputs().len()) };
        let node = model.node(*output);
        let units = match node.output_shape.as_slice() {
            [units] => *units as usize,
            other => bail!("model '{}' ends in '{}' of shape {other:?}; a classifier's output is (classes,)", model.name, node.name),
        };
        let fits = match self.loss {
            Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy => units == classes,
            Loss::BinaryCrossentropy => units == 1 && classes <= 2,
        };
        if !fits {
            let needs = match self.loss {
                Loss::BinaryCrossentropy => "one sigmoid unit and two classes".to_string(),
                _ => format!("one unit per class ({classes})"),
            };
            bail!(
                "model '{}' ends in '{}' with {units} unit(s) but the data has {classes} classes: {} needs {needs}",
                model.name,
                node.name,
                self.loss.keras_name()
            );
        }
        Ok(())
    }

    /// The targets this loss wants for a course split: one-hot rows for categorical
    /// cross-entropy (`convert_to_one_hot(Y, C).T`), the labels as a column otherwise.
    pub fn targets(&self, split: &crate::data::course::Split, classes: usize) -> tch::Tensor {
        let labels = tch::Tensor::from_slice(split.y.as_slice().expect("contiguous labels"));
        self.label_mode().targets(&labels, classes)
    }

    /// The targets this loss takes, as Keras's `label_mode` names them.
    pub fn label_mode(&self) -> LabelMode {
        match self.loss {
            Loss::CategoricalCrossentropy => LabelMode::Categorical,
            Loss::SparseCategoricalCrossentropy => LabelMode::Int,
            Loss::BinaryCrossentropy => LabelMode::Binary,
        }
    }

    /// tf.keras's `training_config` for this compile and optimizer (saved in `.h5` files).
    pub fn training_config(&self, optimizer: &OptimizerConfig) -> Value {
        json!({
            "loss": self.loss_config(KerasVersion::Keras2),
            "metrics": if self.accuracy.is_some() { json!(["accuracy"]) } else { json!([]) },
            "weighted_metrics": null,
            "loss_weights": null,
            "optimizer_config": optimizer.keras_config(),
        })
    }

    /// The `loss` of a training configuration: its name, or with `from_logits` the loss
    /// object's config, as Keras serializes `SparseCategoricalCrossentropy(from_logits=True)`.
    pub fn loss_config(&self, keras: KerasVersion) -> Value {
        if !self.from_logits {
            return json!(self.loss.keras_name());
        }
        let class_name = self.loss.keras_class_name();
        match keras {
            KerasVersion::Keras2 => json!({
                "class_name": class_name,
                "config": { "name": self.loss.keras_name(), "from_logits": true, "reduction": "auto" },
            }),
            KerasVersion::Keras3 => json!({
                "module": "keras.losses",
                "class_name": class_name,
                "config": { "name": self.loss.keras_name(), "from_logits": true, "reduction": "sum_over_batch_size" },
                "registered_name": null,
            }),
        }
    }

    /// The logits the loss reads: the model's `output` itself with `from_logits`, else what
    /// its last softmax or sigmoid had before it (`pre_activation`).
    pub fn loss_logits(&self, output: &Tensor, pre_activation: Option<Tensor>) -> Option<Tensor> {
        if self.from_logits {
            Some(output.shallow_clone())
        } else {
            pre_activation
        }
    }

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
        let from_logits = config["loss"]["config"]["from_logits"].as_bool().unwrap_or(false);
        let loss = Loss::from_keras_name(&loss).context("the file's training configuration")?;
        let wants_accuracy = asks_for_accuracy(&config["metrics"]);
        Ok(Self { loss, accuracy: wants_accuracy.then(|| Accuracy::for_loss(loss)), style: CrossEntropyStyle::TfKeras, from_logits })
    }
}

/// A model's compile settings as Keras files carry them — tf.keras's `training_config` or Keras
/// 3's `compile_config` — read into types, so each writer puts them in its own dialect.
#[derive(Debug, Clone)]
pub struct TrainingConfig {
    pub compile: CompileConfig,
    pub optimizer: OptimizerConfig,
}

impl TrainingConfig {
    /// Read either dialect: tf.keras keeps the optimizer under `optimizer_config`, Keras 3 under
    /// `optimizer` (a config, or a bare name such as `"adam"`).
    pub fn from_keras(config: &Value) -> Result<Self> {
        let compile = CompileConfig::from_keras(config)?;
        let optimizer = OptimizerConfig::from_keras(&config[optimizer_key(config)]).context("the file's compiled optimizer")?;
        Ok(Self { compile, optimizer })
    }

    /// The dialect a stored configuration is in.
    pub fn dialect(config: &Value) -> KerasVersion {
        match optimizer_key(config) {
            "optimizer_config" => KerasVersion::Keras2,
            _ => KerasVersion::Keras3,
        }
    }

    /// `config` as `keras` writes it: unchanged when it is already in that dialect (so settings
    /// keras-tch does not model survive), else converted through the types.
    pub fn in_dialect(config: &Value, keras: KerasVersion) -> Result<Value> {
        if Self::dialect(config) == keras {
            return Ok(config.clone());
        }
        Ok(Self::from_keras(config).context("converting the model's compile settings")?.keras_config(keras))
    }

    /// tf.keras's `training_config` or Keras 3's `compile_config`.
    pub fn keras_config(&self, keras: KerasVersion) -> Value {
        match keras {
            KerasVersion::Keras2 => self.compile.training_config(&self.optimizer),
            KerasVersion::Keras3 => {
                let mut optimizer = self.optimizer.keras_config();
                // tf.keras's flag; Keras 3 has one kind of optimizer and does not write it.
                optimizer["config"].as_object_mut().map(|config| config.remove("is_legacy_optimizer"));
                optimizer["module"] = json!("keras.optimizers");
                optimizer["registered_name"] = Value::Null;
                json!({
                    "optimizer": optimizer,
                    "loss": self.compile.loss_config(KerasVersion::Keras3),
                    "loss_weights": null,
                    "metrics": if self.compile.accuracy.is_some() { json!(["accuracy"]) } else { json!(null) },
                    "weighted_metrics": null,
                    "run_eagerly": false,
                    "steps_per_execution": 1,
                    "jit_compile": false,
                })
            }
        }
    }
}

/// Whether Keras's `metrics` asks for accuracy: `"accuracy"` or `"acc"`, or an accuracy metric
/// (`categorical_accuracy`, `CategoricalAccuracy`, …) by name or as a serialized metric, at any
/// nesting (tf.keras nests the list per output).
fn asks_for_accuracy(metrics: &Value) -> bool {
    match metrics {
        Value::String(name) => {
            let name = name.to_ascii_lowercase();
            name == "acc" || name.ends_with("accuracy")
        }
        Value::Array(items) => items.iter().any(asks_for_accuracy),
        Value::Object(map) => {
            ["class_name", "name"].iter().any(|key| map.get(*key).is_some_and(asks_for_accuracy))
                || map.get("config").is_some_and(asks_for_accuracy)
        }
        _ => false,
    }
}

fn optimizer_key(config: &Value) -> &'static str {
    if config.get("optimizer_config").is_some() {
        "optimizer_config"
    } else {
        "optimizer"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_is_found_in_every_way_keras_writes_metrics() {
        for metrics in [
            json!(["accuracy"]),
            json!(["acc"]),
            json!([["accuracy"]]),
            json!(["categorical_accuracy"]),
            json!([{"class_name": "CategoricalAccuracy", "config": {"name": "categorical_accuracy"}}]),
            json!([{"module": "keras.metrics", "class_name": "function", "config": "accuracy"}]),
        ] {
            assert!(asks_for_accuracy(&metrics), "{metrics}");
        }
        for metrics in [json!(null), json!([]), json!(["mse"]), json!([{"class_name": "AUC", "config": {"name": "auc"}}])] {
            assert!(!asks_for_accuracy(&metrics), "{metrics}");
        }
    }
}
