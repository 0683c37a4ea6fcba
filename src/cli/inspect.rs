//! `keras-tch inspect FILE`: what a Keras file holds — format, Keras version, model, layers,
//! weight shapes and the parameter count — without building a model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use keras_tch::graph::summary::thousands;
use keras_tch::graph::tuple;
use keras_tch::io::load_model::detect;
use keras_tch::io::read_weights;
use keras_tch::io::saved_weights::SavedLayer;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A Keras file (.h5, .weights.h5, .keras) or a keras-tch .safetensors checkpoint
    pub file: PathBuf,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let kind = detect(&args.file)?;
    let saved = read_weights(&args.file)?;
    println!("File: {}", args.file.display());
    println!("Container: {kind:?}, layout: {:?}", saved.layout);
    if let Some(version) = &saved.keras_version {
        println!("Keras version: {version}");
    }
    let mut total = 0i64;
    // A layer nested in a Keras 3 file (a subclassed model's) is named by its path: the `name`
    // Keras gives it alone (`batch_normalization_1`) does not say where it is.
    let name_of = |layer: &SavedLayer| match layer.keras3_group.as_deref() {
        Some(path) if path.strip_prefix("layers/").is_none_or(|rest| rest.contains('/')) => path.to_string(),
        _ => layer.name.clone(),
    };
    let width = saved.layers.iter().map(|l| name_of(l).chars().count() + 1).max().unwrap_or(0).max(40);
    println!("{:<width$} Weights", "Layer");
    for layer in &saved.layers {
        let weights: Vec<String> = layer.weights.iter().map(|w| format!("{} {}", w.name, tuple(&w.shape))).collect();
        total += layer.weights.iter().map(|w| w.numel()).sum::<i64>();
        println!("{:<width$} {}", name_of(layer), if weights.is_empty() { "-".into() } else { weights.join(", ") });
    }
    println!("Layers: {} ({} with weights)", saved.layers.len(), saved.weighted_layers().count());
    println!("Total params: {}", thousands(total));
    Ok(())
}
