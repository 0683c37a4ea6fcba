//! `--weights FILE [--naming …]`: where `classify` and `features` get their ImageNet ResNet50.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tch::Device;

use keras_tch::models::applications::Naming;
use keras_tch::models::pretrained::{imagenet_resnet50, Head, Pretrained};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NamingChoice {
    /// The file's own scheme, read from its layer names
    Auto,
    /// keras-applications ≤ 1.0.8 (fchollet's v0.2 files): res2a_branch2a, bn_conv1, fc1000
    #[value(name = "keras-applications")]
    KerasApplications,
    /// Keras ≥ 2.2.5 and Keras 3 (the googleapis files): conv2_block1_1_conv, conv1_bn, predictions
    Keras,
}

#[derive(Args, Debug)]
pub struct PretrainedSource {
    /// Keras file with ImageNet ResNet50 weights: resnet50_weights_tf_dim_ordering_tf_kernels(_notop).h5
    /// (either naming, Keras 1 or 2 layout), a model.save .h5, a Keras 3 .keras or .weights.h5
    #[arg(long)]
    pub weights: PathBuf,
    /// Layer naming to build the model in; weights in the other scheme are mapped
    #[arg(long, value_enum, default_value = "auto")]
    pub naming: NamingChoice,
}

impl PretrainedSource {
    pub fn load(&self, head: Head, input_size: [i64; 2], device: Device) -> Result<Pretrained> {
        let naming = match self.naming {
            NamingChoice::Auto => None,
            NamingChoice::KerasApplications => Some(Naming::KerasApplications),
            NamingChoice::Keras => Some(Naming::Keras),
        };
        let pretrained = imagenet_resnet50(&self.weights, naming, head, input_size, device)?;
        eprintln!("{}: {}", self.weights.display(), pretrained.report);
        Ok(pretrained)
    }
}
