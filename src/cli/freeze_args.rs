//! `--freeze-until`, `--freeze`, `--trainable-from`, `--freeze-stages`: freezing by Keras layer
//! name, shared by `train` and `transfer`.

use anyhow::{Context, Result};
use clap::Args;

use keras_tch::graph::summary::thousands;
use keras_tch::graph::Model;
use keras_tch::train::freeze::{freeze, FreezeSpec};

/// Which layers keep their weights (`layer.trainable = False`); the options add up.
#[derive(Args, Debug)]
pub struct FreezeArgs {
    /// Freeze every layer up to and including LAYER (model.layers order, as `summary` lists them)
    #[arg(long, value_name = "LAYER")]
    pub freeze_until: Option<String>,
    /// Freeze the layers whose names match (glob like 'res2*' or 'conv4_block*'; no wildcard = prefix); repeatable
    #[arg(long, value_name = "PATTERN")]
    pub freeze: Vec<String>,
    /// Freeze every layer before LAYER; LAYER and the layers after it train
    #[arg(long, value_name = "LAYER")]
    pub trainable_from: Option<String>,
    /// ResNets: freeze the stem (stage 1) and stages 2..=N
    #[arg(long, value_name = "N")]
    pub freeze_stages: Option<usize>,
    /// Freeze every BatchNormalization layer: it keeps its pretrained statistics (inference mode)
    /// while the layers around it train, as Keras's fine-tuning guide advises
    #[arg(long)]
    pub freeze_batch_norm: bool,
}

impl FreezeArgs {
    pub fn spec(&self) -> FreezeSpec {
        FreezeSpec {
            until: self.freeze_until.clone(),
            trainable_from: self.trainable_from.clone(),
            patterns: self.freeze.clone(),
            stages: self.freeze_stages,
            batch_norm: self.freeze_batch_norm,
        }
    }
}

/// Freeze what `spec` selects and print the result with the parameter counts.
pub fn apply(model: &mut Model, spec: &FreezeSpec) -> Result<()> {
    let frozen = freeze(model, spec).context("the freezing flags (--freeze, --freeze-until, --trainable-from, --freeze-stages)")?;
    print_frozen(model, &frozen);
    Ok(())
}

/// `Frozen N layer(s), 'first' … 'last': trainable params …, non-trainable params …`.
pub fn print_frozen(model: &Model, frozen: &[String]) {
    let (_, trainable, non_trainable) = model.param_counts();
    println!(
        "Frozen {} layer(s), '{}' … '{}': trainable params {}, non-trainable params {}",
        frozen.len(),
        frozen.first().map_or("", String::as_str),
        frozen.last().map_or("", String::as_str),
        thousands(trainable),
        thousands(non_trainable)
    );
}
