//! Where a command's model comes from: a Keras file that describes its own architecture
//! (full-model `.h5`, `.keras`), or a built-in architecture (`--arch`) with weights from any
//! supported file (weights-only `.h5`, ImageNet checkpoints, `.weights.h5`, safetensors).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use tch::Device;

use keras_tch::error::Error;
use keras_tch::graph::Model;
use keras_tch::io::{load_model, load_weights, LoadOptions};
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::applications::Naming;
use keras_tch::models::{Arch, ArchOptions};

#[derive(Args, Debug)]
pub struct ModelSource {
    /// A Keras file: full model (.h5 from model.save, .keras), or weights (with --arch)
    #[arg(long)]
    pub model: PathBuf,
    /// Build this architecture and load --model's weights onto it (needed for weights-only files)
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Layer naming scheme for --arch resnet50 (weights in the other scheme are mapped)
    #[arg(long, value_enum, default_value = "keras")]
    pub naming: Naming,
    /// Keep the classifier on top (--arch resnet50); false gives the feature extractor
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub include_top: bool,
    /// Global pooling after the last block when --include-top false
    #[arg(long, value_enum)]
    pub pooling: Option<PoolKind>,
    /// Classes of the top layer (default: the architecture's)
    #[arg(long)]
    pub classes: Option<i64>,
    /// Load the layers that match and report the others (Keras's skip_mismatch=True)
    #[arg(long)]
    pub skip_mismatch: bool,
}

impl ModelSource {
    /// Load the model; `input_shape` (H, W, C) sizes a built architecture.
    pub fn load(&self, input_shape: Option<[i64; 3]>, device: Device) -> Result<Model> {
        let Some(arch) = self.arch else {
            return load_model(&self.model, device).map_err(|error| match error.downcast_ref::<Error>() {
                Some(Error::WeightsOnly { .. }) => {
                    error.context(format!("name the architecture to load it onto, e.g. --arch resnet50 --model {}", self.model.display()))
                }
                _ => error,
            });
        };
        let pooling = self.pooling;
        if self.pooling.is_some() && self.include_top {
            bail!("--pooling applies with --include-top false");
        }
        let options = ArchOptions { input_shape, classes: self.classes, naming: self.naming, include_top: self.include_top, pooling };
        let mut model = arch.build(&options, device)?;
        // Without the top, the file's classifier is expected to be left over.
        let options = LoadOptions { skip_mismatch: self.skip_mismatch, ignore_extra_layers: !self.include_top };
        let report = load_weights(&mut model, &self.model, &options)?;
        eprintln!("{}: {report}", self.model.display());
        Ok(model)
    }
}
