//! Training checkpoints that survive a crash, SIGKILL or Ctrl-C: the weights and the optimizer's
//! slots go to a new `checkpoint-<epoch>-<batch>.safetensors` (written atomically), then
//! `checkpoint.json` — the commit point — is atomically replaced to name it, and only then is
//! the previous file removed. Whatever moment the process dies, `checkpoint.json` names a
//! complete file.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::callbacks::CallbackList;
use super::history::History;
use super::optimizer::Optimizer;
use crate::graph::Model;
use crate::io::atomic::write_bytes_atomically;
use crate::io::input::check_regular_file;
use crate::io::limits;
use crate::io::load_weights::{apply_weights, LoadOptions};
use crate::io::safetensors::{model_tensors, read_tensors, weights_from_tensors, write_tensors};

const STATE_FILE: &str = "checkpoint.json";

/// `checkpoint.json`, as written and as read back (every field required: a record missing one
/// is corrupt, not a run at zero).
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointRecord {
    /// The weights file, a `checkpoint-*.safetensors` of the same folder.
    weights: String,
    epoch: usize,
    next_batch: usize,
    loss_sum: f64,
    correct: f64,
    seen: usize,
    /// The optimizer's step count.
    iterations: i64,
    /// Keras's `history.history` (a NaN is stored as null).
    history: BTreeMap<String, Vec<Option<f64>>>,
    /// The history's columns in Keras's order.
    keys: Vec<String>,
    /// A callback ended training (Keras's `model.stop_training`). Absent in records written
    /// before callbacks existed, as are the next two.
    #[serde(default)]
    stop_training: bool,
    /// The learning rate when saved (a callback may have lowered it).
    #[serde(default)]
    learning_rate: Option<f64>,
    /// Each callback's class name and state, in order (their tensors are in the weights file).
    #[serde(default)]
    callbacks: Vec<serde_json::Value>,
}

/// Where training stands: epochs done, the next batch of the current epoch and its running
/// sums (so a run interrupted mid-epoch reports the same epoch averages).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingState {
    pub epoch: usize,
    pub next_batch: usize,
    pub loss_sum: f64,
    pub correct: f64,
    pub seen: usize,
    pub history: History,
    /// A callback ended training.
    pub stop_training: bool,
}

pub fn save(dir: &Path, model: &Model, optimizer: &Optimizer, state: &TrainingState, callbacks: &CallbackList) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating checkpoint directory {}", dir.display()))?;
    let previous = read_state_file(dir).ok().map(|record| record.weights);
    let name = format!("checkpoint-{:03}-{:05}.safetensors", state.epoch, state.next_batch);
    let mut tensors = model_tensors(model);
    tensors.extend(optimizer.state());
    tensors.extend(callbacks.state_tensors());
    write_tensors(&tensors, &dir.join(&name))?;
    let history = state.history.keys.iter().enumerate().map(|(index, key)| (key.clone(), state.history.json_column(index))).collect();
    let record = CheckpointRecord {
        weights: name.clone(),
        epoch: state.epoch,
        next_batch: state.next_batch,
        loss_sum: state.loss_sum,
        correct: state.correct,
        seen: state.seen,
        iterations: optimizer.iterations,
        history,
        keys: state.history.keys.clone(),
        stop_training: state.stop_training,
        learning_rate: Some(optimizer.config.learning_rate()),
        callbacks: callbacks.states(),
    };
    let text = serde_json::to_string_pretty(&record)?;
    write_bytes_atomically(&dir.join(STATE_FILE), text.as_bytes())?;
    // Only ever a file of this folder that a checkpoint wrote (a hand-edited record cannot
    // make training delete anything else).
    if let Some(previous) = previous.filter(|p| *p != name && confined_name(p).is_ok()) {
        let _ = std::fs::remove_file(dir.join(previous));
    }
    Ok(dir.join(name))
}

/// Restore the model and optimizer from `dir`'s checkpoint; `None` if there is none yet.
/// `checkpoint.json` is checked as the untrusted input it is: the weights file it names must be
/// a plain file name inside `dir`, and every count must be consistent.
pub fn restore(dir: &Path, model: &mut Model, optimizer: &mut Optimizer, callbacks: &mut CallbackList) -> Result<Option<TrainingState>> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Ok(None);
    }
    let bad = |why: String| anyhow::anyhow!("{}: {why}; the checkpoint is corrupt (remove the folder to start over)", state_path.display());
    let record = read_state_file(dir)?;
    let weights = dir.join(confined_name(&record.weights).map_err(bad)?);
    let history = history_of(&record).map_err(bad)?;
    // Bounded so the step counter can always go on counting.
    if !(0..1 << 48).contains(&record.iterations) {
        return Err(bad(format!("'iterations' is {}: negative or absurdly large", record.iterations)));
    }
    check_regular_file(&weights, "the checkpoint's weights file")?;
    let (callback_tensors, tensors): (Vec<_>, Vec<_>) =
        read_tensors(&weights)?.into_iter().partition(|(key, _)| key.starts_with("callbacks/"));
    let (optimizer_state, weight_tensors): (Vec<_>, Vec<_>) = tensors.into_iter().partition(|(key, _)| key.starts_with("optimizer/"));
    apply_weights(model, &weights_from_tensors(&weights, weight_tensors)?, &LoadOptions::default())
        .with_context(|| format!("resuming from {}", weights.display()))?;
    optimizer.restore(record.iterations, optimizer_state, model.device())?;
    match record.learning_rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => optimizer.config.set_learning_rate(rate),
        Some(rate) => return Err(bad(format!("'learning_rate' is {rate}, not a positive number"))),
        None => {}
    }
    callbacks.restore(&record.callbacks, callback_tensors).with_context(|| format!("resuming from {}", state_path.display()))?;
    Ok(Some(TrainingState {
        epoch: record.epoch,
        next_batch: record.next_batch,
        loss_sum: record.loss_sum,
        correct: record.correct,
        seen: record.seen,
        history,
        stop_training: record.stop_training,
    }))
}

/// `name` if it is a plain file name of this folder's checkpoints (no folder, no `..`, not
/// absolute): a checkpoint folder can never make training read or delete a file elsewhere.
fn confined_name(name: &str) -> std::result::Result<&str, String> {
    let plain = Path::new(name).file_name().is_some_and(|f| f == name);
    if plain && name.starts_with("checkpoint-") && name.ends_with(".safetensors") {
        Ok(name)
    } else {
        Err(format!("names the weights file '{name}', which is not a checkpoint-*.safetensors file of this folder"))
    }
}

/// The History of a checkpoint: one row per completed epoch, columns in Keras's order.
fn history_of(record: &CheckpointRecord) -> std::result::Result<History, String> {
    let epochs = record.epoch;
    if record.keys.is_empty() && epochs > 0 {
        return Err(format!("the history is empty after {epochs} completed epoch(s)"));
    }
    // Every column is checked against the epoch count before anything is allocated for it.
    let mut columns = Vec::with_capacity(record.keys.len());
    for key in &record.keys {
        let column = record.history.get(key).ok_or_else(|| format!("the history has no '{key}' column"))?;
        if column.len() != epochs {
            return Err(format!("the history's '{key}' has {} value(s) for {epochs} completed epoch(s)", column.len()));
        }
        columns.push(column);
    }
    let rows = (0..epochs).map(|e| columns.iter().map(|c| c[e].unwrap_or(f64::NAN)).collect()).collect();
    Ok(History { keys: record.keys.clone(), epochs: rows })
}

fn read_state_file(dir: &Path) -> Result<CheckpointRecord> {
    let path = dir.join(STATE_FILE);
    let meta = check_regular_file(&path, "the checkpoint record")?;
    if meta.len() > limits::MAX_CONFIG_BYTES {
        bail!("{} is {} bytes, more than a checkpoint record can be ({})", path.display(), meta.len(), limits::MAX_CONFIG_BYTES);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint record (corrupt: remove the folder to start over)", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record missing a running sum is corrupt, not a run that restarts its sums at zero.
    #[test]
    fn records_need_every_field_and_keep_nan_history_values() {
        let complete = r#"{"weights": "checkpoint-001-00000.safetensors", "epoch": 1, "next_batch": 0, "loss_sum": 0.5,
                           "correct": 3.0, "seen": 4, "iterations": 2, "history": {"loss": [null]}, "keys": ["loss"]}"#;
        let record: CheckpointRecord = serde_json::from_str(complete).unwrap();
        let history = history_of(&record).unwrap();
        assert!(history.get("loss").unwrap()[0].is_nan());
        let missing = complete.replace(r#""loss_sum": 0.5,"#, "");
        let error = serde_json::from_str::<CheckpointRecord>(&missing).unwrap_err().to_string();
        assert!(error.contains("loss_sum"), "{error}");
    }
}
