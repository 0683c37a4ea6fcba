//! Every architecture of the seed notebooks, built on the functional graph with Keras's names.
//! Variants come from spec tables and one builder each.

pub mod applications;
pub mod classic;
pub mod course;
pub mod happy;
pub mod names;
pub mod pretrained;
pub mod resnet_basic;
pub mod transfer;

use anyhow::Result;
use tch::Device;

use crate::graph::Model;

/// The architectures `keras-tch summary --arch` (and the other commands) know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// The course's ResNet50 (64×64×3, 6 classes, `fc6`)
    #[value(name = "resnet50-course")]
    Resnet50Course,
    /// The second seed's variant: 224×224×3, Flatten, Dropout(0.2), `fc1000`
    #[value(name = "resnet50-dropout")]
    Resnet50Dropout,
    /// keras.applications ResNet50 (choose the naming scheme with --naming)
    #[value(name = "resnet50")]
    Resnet50,
    /// The TF2 tutorial's ResNet18
    #[value(name = "resnet18")]
    Resnet18,
    /// The TF2 tutorial's ResNet34
    #[value(name = "resnet34")]
    Resnet34,
    /// The Happy House HappyModel
    #[value(name = "happy")]
    Happy,
    /// Case study: LeNet-5 (32×32×1, tanh, average pooling)
    #[value(name = "lenet5")]
    Lenet5,
    /// Case study: AlexNet (227×227×3)
    #[value(name = "alexnet")]
    Alexnet,
    /// Case study: Keras's VGG16 with top (138,357,544 parameters)
    #[value(name = "vgg16")]
    Vgg16,
    /// Case study: the lecture's Inception module on 28×28×192
    #[value(name = "inception-module")]
    InceptionModule,
    /// Case study: GoogLeNet built from Inception modules
    #[value(name = "googlenet")]
    Googlenet,
}

/// What a user may override when building an architecture by name.
#[derive(Debug, Clone)]
pub struct ArchOptions {
    pub input_shape: Option<[i64; 3]>,
    pub classes: Option<i64>,
    pub naming: applications::Naming,
    /// keras.applications' `include_top` and `pooling` (ResNet50 only).
    pub include_top: bool,
    pub pooling: applications::Pooling,
}

impl Default for ArchOptions {
    fn default() -> Self {
        Self { input_shape: None, classes: None, naming: applications::Naming::Keras, include_top: true, pooling: None }
    }
}

impl Arch {
    /// Build the architecture with the seed's defaults, overridden by `options`.
    pub fn build(self, options: &ArchOptions, device: Device) -> Result<Model> {
        let shape = options.input_shape;
        if (!options.include_top || options.pooling.is_some()) && self != Arch::Resnet50 {
            anyhow::bail!("include_top=False and pooling are available for resnet50 only");
        }
        match self {
            Arch::Resnet50Course => course::resnet50(shape.unwrap_or([64, 64, 3]), options.classes.unwrap_or(6), None, device),
            Arch::Resnet50Dropout => course::resnet50(shape.unwrap_or([224, 224, 3]), options.classes.unwrap_or(1000), Some(0.2), device),
            Arch::Resnet50 => applications::resnet50(
                &applications::Config {
                    naming: options.naming,
                    include_top: options.include_top,
                    pooling: options.pooling,
                    classes: options.classes.unwrap_or(1000),
                    input_shape: shape.unwrap_or([224, 224, 3]),
                },
                device,
            ),
            Arch::Resnet18 | Arch::Resnet34 => resnet_basic::resnet(
                if self == Arch::Resnet18 { resnet_basic::Depth::Resnet18 } else { resnet_basic::Depth::Resnet34 },
                shape.unwrap_or([224, 224, 3]),
                options.classes.unwrap_or(1000),
                device,
            ),
            Arch::Happy => happy::happy_model(shape.unwrap_or([64, 64, 3]), device),
            Arch::Lenet5 | Arch::Alexnet | Arch::Vgg16 | Arch::InceptionModule | Arch::Googlenet => {
                if shape.is_some() || options.classes.is_some() {
                    anyhow::bail!("the case-study networks have the lecture's fixed input shape and classes");
                }
                match self {
                    Arch::Lenet5 => classic::lenet5(device),
                    Arch::Alexnet => classic::alexnet(device),
                    Arch::Vgg16 => classic::vgg16(device),
                    Arch::InceptionModule => classic::inception_module_model(device),
                    _ => classic::googlenet(device),
                }
            }
        }
    }
}
