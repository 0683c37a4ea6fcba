//! `--weights FILE [--naming …]`: where `classify` and `features` get their ImageNet ResNet50.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tch::Device;

use keras_tch::models::applications::{parse_naming_or_auto, NamingOrAuto};
use keras_tch::models::pretrained::{imagenet_resnet50, Head, Pretrained};

#[derive(Args, Debug)]
pub struct PretrainedSource {
    /// Keras file with ImageNet ResNet50 weights: resnet50_weights_tf_dim_ordering_tf_kernels(_notop).h5
    /// (either naming, Keras 1 or 2 layout), a model.save .h5, a Keras 3 .keras or .weights.h5
    #[arg(long)]
    pub weights: PathBuf,
    /// Layer naming to build the model in: auto (the file's own, read from its layer names),
    /// keras-applications (≤ 1.0.8, fchollet's v0.2 files: res2a_branch2a, bn_conv1, fc1000) or
    /// keras (≥ 2.2.5 and Keras 3: conv2_block1_1_conv, conv1_bn, predictions); weights in the
    /// other scheme are mapped
    #[arg(long, value_parser = parse_naming_or_auto, default_value = "auto", value_name = "auto|keras|keras-applications")]
    pub naming: NamingOrAuto,
}

impl PretrainedSource {
    pub fn load(&self, head: Head, input_size: [i64; 2], device: Device) -> Result<Pretrained> {
        let pretrained = imagenet_resnet50(&self.weights, self.naming, head, input_size, device)?;
        eprintln!("{}: {}", self.weights.display(), pretrained.report);
        Ok(pretrained)
    }
}
