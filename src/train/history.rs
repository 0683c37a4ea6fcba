//! Keras's `History`: per-epoch logs (`loss`, `accuracy`, `val_loss`, `val_accuracy`), saved as
//! JSON (`history.history`'s shape) and CSV (`CSVLogger`'s columns), atomically.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::io::atomic::write_bytes_atomically;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Metric names in Keras's order, and one row of values per epoch.
    pub keys: Vec<String>,
    pub epochs: Vec<Vec<f64>>,
}

impl History {
    pub fn push(&mut self, logs: &[(&str, f64)]) {
        if self.keys.is_empty() {
            self.keys = logs.iter().map(|(k, _)| k.to_string()).collect();
        }
        self.epochs.push(logs.iter().map(|(_, v)| *v).collect());
    }

    /// The values of one metric over the epochs (`history.history["loss"]`).
    pub fn get(&self, key: &str) -> Option<Vec<f64>> {
        let index = self.keys.iter().position(|k| k == key)?;
        Some(self.epochs.iter().map(|row| row[index]).collect())
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for key in &self.keys {
            map.insert(key.clone(), json!(self.get(key).unwrap_or_default()));
        }
        Value::Object(map)
    }

    pub fn from_json(value: &Value) -> Self {
        let mut history = History::default();
        let Some(map) = value.as_object() else { return history };
        history.keys = map.keys().cloned().collect();
        let epochs = map.values().next().and_then(Value::as_array).map_or(0, Vec::len);
        history.epochs = (0..epochs).map(|e| history.keys.iter().map(|k| map[k][e].as_f64().unwrap_or(f64::NAN)).collect()).collect();
        history
    }

    pub fn save_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        write_bytes_atomically(path, text.as_bytes())
    }

    pub fn save_csv(&self, path: &Path) -> Result<()> {
        let mut text = format!("epoch,{}\n", self.keys.join(","));
        for (epoch, row) in self.epochs.iter().enumerate() {
            let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            text.push_str(&format!("{epoch},{}\n", values.join(",")));
        }
        write_bytes_atomically(path, text.as_bytes())
    }
}
