//! Keras's `History`: per-epoch logs (`loss`, `accuracy`, `val_loss`, `val_accuracy`), saved as
//! JSON (`history.history`'s shape) and CSV (`CSVLogger`'s columns), atomically.

use std::path::Path;

use anyhow::Result;
use serde::ser::{Serialize, SerializeMap, Serializer};

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

    /// `history.json`: Keras's `history.history` as `json.dump` writes it, metrics in Keras's
    /// order (a NaN as null: JSON has no NaN).
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_bytes_atomically(path, text.as_bytes())
    }

    /// The values of the `index`-th metric as JSON can hold them: a NaN or infinity as `None`
    /// (null), as `history.json` and checkpoints store them.
    pub fn json_column(&self, index: usize) -> Vec<Option<f64>> {
        self.epochs.iter().map(|row| row[index]).map(|v| v.is_finite().then_some(v)).collect()
    }

    /// `history.csv`: Keras's `CSVLogger` columns.
    pub fn save_csv(&self, path: &Path) -> Result<()> {
        let mut text = format!("epoch,{}\n", self.keys.join(","));
        for (epoch, row) in self.epochs.iter().enumerate() {
            let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            text.push_str(&format!("{epoch},{}\n", values.join(",")));
        }
        write_bytes_atomically(path, text.as_bytes())
    }
}

/// `{"loss": [...], "accuracy": [...], ...}` in the order the metrics were logged.
impl Serialize for History {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.keys.len()))?;
        for (index, key) in self.keys.iter().enumerate() {
            map.serialize_entry(key, &self.json_column(index))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_keras_order_and_writes_nan_as_null() {
        let mut history = History::default();
        history.push(&[("loss", 0.5), ("accuracy", 0.75), ("val_loss", f64::NAN)]);
        assert_eq!(serde_json::to_string(&history).unwrap(), r#"{"loss":[0.5],"accuracy":[0.75],"val_loss":[null]}"#);
    }
}
