//! `keras-tch plot`: Keras's `plot_model` for a model file or a built-in architecture.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tch::Device;

use keras_tch::graph::plot::{plot_model, PlotOptions};
use keras_tch::io::load_model;
use keras_tch::models::applications::Naming;
use keras_tch::models::{Arch, ArchOptions};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A Keras model file (.h5 from model.save, .keras) to draw
    #[arg(long, conflicts_with = "arch", required_unless_present = "arch")]
    pub model: Option<PathBuf>,
    /// Or a built-in architecture
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Layer naming scheme for --arch resnet50
    #[arg(long, value_enum, default_value = "keras")]
    pub naming: Naming,
    /// Output: .svg or .png (rendered by Graphviz's dot) or .dot (the source)
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Show each layer's input and output shapes (plot_model's show_shapes=True)
    #[arg(long)]
    pub show_shapes: bool,
    /// Draw the layers of models nested as layers (a transfer-learning base) inside a dashed box
    /// named after the model, instead of one node for it (plot_model's expand_nested=True)
    #[arg(long)]
    pub expand_nested: bool,
}

pub fn run(args: &PlotArgs) -> Result<()> {
    let model = match (&args.model, args.arch) {
        (Some(path), _) => load_model(path, Device::Cpu)?,
        (None, Some(arch)) => arch.build(&ArchOptions { naming: args.naming, ..Default::default() }, Device::Cpu)?,
        (None, None) => unreachable!("clap requires --model or --arch"),
    };
    plot_model(&model, &args.to, PlotOptions { show_shapes: args.show_shapes, expand_nested: args.expand_nested })?;
    println!("Drew model '{}' ({} layers) to {}", model.name, model.layers().len(), args.to.display());
    Ok(())
}
