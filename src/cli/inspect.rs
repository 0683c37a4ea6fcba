//! `keras-tch inspect FILE`: what a Keras file holds — format, Keras version, model, layers,
//! weight shapes and the parameter count — without building a model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use keras_tch::graph::summary::thousands;
use keras_tch::graph::tuple;
use keras_tch::io::load_model::detect;
use keras_tch::io::read_weights;

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
    println!("{:<40} Weights", "Layer");
    for layer in &saved.layers {
        let weights: Vec<String> = layer.weights.iter().map(|w| format!("{} {}", w.name, tuple(&w.shape))).collect();
        total += layer.weights.iter().map(|w| w.numel()).sum::<i64>();
        println!("{:<40} {}", layer.name, if weights.is_empty() { "-".into() } else { weights.join(", ") });
    }
    println!("Layers: {} ({} with weights)", saved.layers.len(), saved.weighted_layers().count());
    println!("Total params: {}", thousands(total));
    Ok(())
}
