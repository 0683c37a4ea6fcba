//! Training checkpoints that survive a crash, SIGKILL or Ctrl-C: the weights and the optimizer's
//! slots go to a new `checkpoint-<epoch>-<batch>.safetensors` (written atomically), then
//! `checkpoint.json` — the commit point — is atomically replaced to name it, and only then is
//! the previous file removed. Whatever moment the process dies, `checkpoint.json` names a
//! complete file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::history::History;
use super::optimizer::Optimizer;
use crate::graph::Model;
use crate::io::atomic::write_atomically;
use crate::io::load_weights::{apply_weights, LoadOptions};
use crate::io::safetensors::{model_tensors, read_tensors, weights_from_tensors, write_tensors};

const STATE_FILE: &str = "checkpoint.json";

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
}

pub fn save(dir: &Path, model: &Model, optimizer: &Optimizer, state: &TrainingState) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating checkpoint directory {}", dir.display()))?;
    let previous = read_state_file(dir).ok().and_then(|s| s["weights"].as_str().map(str::to_string));
    let name = format!("checkpoint-{:03}-{:05}.safetensors", state.epoch, state.next_batch);
    let mut tensors = model_tensors(model);
    tensors.extend(optimizer.state());
    write_tensors(&tensors, &dir.join(&name))?;
    let record = json!({
        "weights": name,
        "epoch": state.epoch,
        "next_batch": state.next_batch,
        "loss_sum": state.loss_sum,
        "correct": state.correct,
        "seen": state.seen,
        "iterations": optimizer.iterations,
        "history": state.history.to_json(),
        "keys": state.history.keys,
    });
    let text = serde_json::to_string_pretty(&record)?;
    write_atomically(&dir.join(STATE_FILE), |temp| Ok(std::fs::write(temp, &text)?))?;
    if let Some(previous) = previous.filter(|p| *p != name) {
        let _ = std::fs::remove_file(dir.join(previous));
    }
    Ok(dir.join(name))
}

/// Restore the model and optimizer from `dir`'s checkpoint; `None` if there is none yet.
pub fn restore(dir: &Path, model: &mut Model, optimizer: &mut Optimizer) -> Result<Option<TrainingState>> {
    if !dir.join(STATE_FILE).exists() {
        return Ok(None);
    }
    let record = read_state_file(dir)?;
    let weights = dir.join(record["weights"].as_str().context("checkpoint.json names no weights file")?);
    let (optimizer_state, weight_tensors): (Vec<_>, Vec<_>) =
        read_tensors(&weights)?.into_iter().partition(|(key, _)| key.starts_with("optimizer/"));
    apply_weights(model, &weights_from_tensors(&weights, weight_tensors)?, &LoadOptions::default())
        .with_context(|| format!("resuming from {}", weights.display()))?;
    optimizer.restore(record["iterations"].as_i64().unwrap_or(0), optimizer_state, model.device())?;
    let mut history = History::from_json(&record["history"]);
    if let Some(keys) = record["keys"].as_array() {
        // Keep Keras's column order (JSON objects here are sorted).
        let ordered: Vec<String> = keys.iter().filter_map(|k| k.as_str().map(str::to_string)).collect();
        let epochs = history.epochs.len();
        let columns: Vec<Vec<f64>> = ordered.iter().map(|k| history.get(k).unwrap_or_default()).collect();
        history = History { keys: ordered, epochs: (0..epochs).map(|e| columns.iter().map(|c| c[e]).collect()).collect() };
    }
    let count = |key: &str| record[key].as_u64().unwrap_or(0) as usize;
    Ok(Some(TrainingState {
        epoch: count("epoch"),
        next_batch: count("next_batch"),
        loss_sum: record["loss_sum"].as_f64().unwrap_or(0.0),
        correct: record["correct"].as_f64().unwrap_or(0.0),
        seen: count("seen"),
        history,
    }))
}

fn read_state_file(dir: &Path) -> Result<Value> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
