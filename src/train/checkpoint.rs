//! Training checkpoints that survive a crash, SIGKILL or Ctrl-C: the weights and the optimizer's
//! slots go to a new `checkpoint-<epoch>-<batch>.safetensors` (written atomically), then
//! `checkpoint.json` — the commit point — is atomically replaced to name it, and only then is
//! the previous file removed. Whatever moment the process dies, `checkpoint.json` names a
//! complete file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::history::History;
use super::optimizer::Optimizer;
use crate::graph::Model;
use crate::io::atomic::write_bytes_atomically;
use crate::io::input::check_regular_file;
use crate::io::limits;
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
pub fn restore(dir: &Path, model: &mut Model, optimizer: &mut Optimizer) -> Result<Option<TrainingState>> {
    let state_path = dir.join(STATE_FILE);
    if !state_path.exists() {
        return Ok(None);
    }
    let bad = |why: String| anyhow::anyhow!("{}: {why}; the checkpoint is corrupt (remove the folder to start over)", state_path.display());
    let record = read_state_file(dir)?;
    let name = record["weights"].as_str().ok_or_else(|| bad("names no weights file".into()))?;
    let weights = dir.join(confined_name(name).map_err(bad)?);
    let count = |key: &str| -> Result<usize> {
        record[key].as_u64().map(|v| v as usize).ok_or_else(|| bad(format!("'{key}' is missing or not a whole number")))
    };
    let epoch = count("epoch")?;
    let history = history_of(&record, epoch).map_err(bad)?;
    // Bounded so the step counter can always go on counting.
    let iterations = record["iterations"]
        .as_i64()
        .filter(|&i| (0..1 << 48).contains(&i))
        .ok_or_else(|| bad("'iterations' is missing, negative or absurdly large".into()))?;
    check_regular_file(&weights, "the checkpoint's weights file")?;
    let (optimizer_state, weight_tensors): (Vec<_>, Vec<_>) =
        read_tensors(&weights)?.into_iter().partition(|(key, _)| key.starts_with("optimizer/"));
    apply_weights(model, &weights_from_tensors(&weights, weight_tensors)?, &LoadOptions::default())
        .with_context(|| format!("resuming from {}", weights.display()))?;
    optimizer.restore(iterations, optimizer_state, model.device())?;
    Ok(Some(TrainingState {
        epoch,
        next_batch: count("next_batch")?,
        loss_sum: record["loss_sum"].as_f64().unwrap_or(0.0),
        correct: record["correct"].as_f64().unwrap_or(0.0),
        seen: count("seen")?,
        history,
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
fn history_of(record: &Value, epochs: usize) -> std::result::Result<History, String> {
    let keys: Vec<String> = match record["keys"].as_array() {
        Some(keys) => {
            keys.iter().map(|k| k.as_str().map(str::to_string).ok_or("'keys' holds a non-string")).collect::<std::result::Result<_, _>>()?
        }
        None => record["history"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default(),
    };
    if keys.is_empty() && epochs > 0 {
        return Err(format!("the history is empty after {epochs} completed epoch(s)"));
    }
    // Every column is checked against the epoch count before anything is allocated for it.
    let mut columns = Vec::with_capacity(keys.len());
    for key in &keys {
        let column = record["history"][key.as_str()].as_array().ok_or_else(|| format!("the history has no '{key}' column"))?;
        if column.len() != epochs {
            return Err(format!("the history's '{key}' has {} value(s) for {epochs} completed epoch(s)", column.len()));
        }
        columns.push(column);
    }
    let rows = (0..epochs).map(|e| columns.iter().map(|c| c[e].as_f64().unwrap_or(f64::NAN)).collect()).collect();
    Ok(History { keys, epochs: rows })
}

fn read_state_file(dir: &Path) -> Result<Value> {
    let path = dir.join(STATE_FILE);
    let meta = check_regular_file(&path, "the checkpoint record")?;
    if meta.len() > limits::MAX_CONFIG_BYTES {
        bail!("{} is {} bytes, more than a checkpoint record can be ({})", path.display(), meta.len(), limits::MAX_CONFIG_BYTES);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
