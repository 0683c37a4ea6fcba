//! `--class-weight`, Keras's `class_weight` on the command line (`train` and `transfer`).

use anyhow::{bail, Result};
use clap::Args;

use keras_tch::data::dataset::Dataset;
use keras_tch::train::fit::balanced_class_weights;

#[derive(Args, Debug)]
pub struct ClassWeightArg {
    /// Keras's class_weight: 'balanced' (scikit-learn's compute_class_weight: n_samples /
    /// (n_classes * count)) or CLASS:WEIGHT pairs, e.g. 0:1.0,1:3.5 (unlisted classes: 1.0).
    /// Weights the training loss, as Keras does; not the accuracy, not the validation
    #[arg(long, value_name = "balanced|C:W,...")]
    pub class_weight: Option<String>,
}

impl ClassWeightArg {
    /// The weight of each class, from `train`'s labels for 'balanced'; `None` when not asked.
    pub fn table(&self, train: &Dataset) -> Result<Option<Vec<f64>>> {
        self.class_weight.as_deref().map(|text| table(text, train)).transpose()
    }
}

fn table(text: &str, train: &Dataset) -> Result<Vec<f64>> {
    if text == "balanced" {
        let labels: Vec<i64> = Vec::try_from(train.labels()?.to_kind(tch::Kind::Int64).flatten(0, -1))?;
        let table = balanced_class_weights(&labels)?;
        println!(
            "Class weights (balanced): {}",
            table.iter().enumerate().map(|(c, w)| format!("{c}: {w:.4}")).collect::<Vec<_>>().join(", ")
        );
        return Ok(table);
    }
    let mut table = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once(':').and_then(|(c, w)| Some((c.trim().parse::<usize>().ok()?, w.trim().parse::<f64>().ok()?)));
        let Some((class, weight)) = parsed.filter(|(_, w)| w.is_finite() && *w >= 0.0) else {
            bail!("--class-weight: '{pair}' is not CLASS:WEIGHT (a class index and a weight of at least 0)");
        };
        if class >= table.len() {
            table.resize(class + 1, 1.0);
        }
        table[class] = weight;
    }
    Ok(table)
}
