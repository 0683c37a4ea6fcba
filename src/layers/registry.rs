//! The Keras layer classes keras-tch can rebuild from a model configuration (Keras's
//! `serialization_lib` registry): one line per class. Reading a `model_config` or `config.json`
//! looks each layer's `class_name` up here; the list of supported classes in error messages is
//! this table. Adding a Keras layer is its file (with `Layer` and [`FromKerasConfig`]) and one
//! line below.

use anyhow::Result;
use tch::nn;

use super::activation::Activation;
use super::affine_augmentation::{RandomRotation, RandomTranslation, RandomZoom};
use super::augmentation::{RandomContrast, RandomFlip};
use super::batch_norm::BatchNormConfig;
use super::conv::Conv2DConfig;
use super::dense::DenseConfig;
use super::init::InitialWeights;
use super::input::InputLayer;
use super::keras_config::KerasConfig;
use super::merge::{Add, Concatenate};
use super::normalization::NormalizationConfig;
use super::padding::ZeroPadding2D;
use super::pooling::{GlobalPool2D, Pool2D};
use super::relu::{LeakyReLU, ReLU};
use super::rescaling::Rescaling;
use super::reshape::{Dropout, Flatten};
use super::resizing::{CenterCrop, Resizing};
use super::softmax::Softmax;
use super::{Layer, Shape};

/// The classes, in the order the error message lists them.
pub const LAYER_CLASSES: &[LayerClass] = &[
    LayerClass::new("InputLayer", input::<InputLayer>),
    LayerClass::new("Conv2D", with_weights::<Conv2DConfig>),
    LayerClass::new("BatchNormalization", with_weights::<BatchNormConfig>),
    LayerClass::new("Dense", with_weights::<DenseConfig>),
    LayerClass::new("Activation", without_weights::<Activation>),
    LayerClass::new("ReLU", without_weights::<ReLU>),
    LayerClass::new("LeakyReLU", without_weights::<LeakyReLU>),
    LayerClass::new("Softmax", without_weights::<Softmax>),
    LayerClass::new("ZeroPadding2D", without_weights::<ZeroPadding2D>),
    LayerClass::new("MaxPooling2D", without_weights::<Pool2D>),
    LayerClass::new("AveragePooling2D", without_weights::<Pool2D>),
    LayerClass::new("GlobalAveragePooling2D", without_weights::<GlobalPool2D>),
    LayerClass::new("GlobalMaxPooling2D", without_weights::<GlobalPool2D>),
    LayerClass::new("Flatten", without_weights::<Flatten>),
    LayerClass::new("Dropout", without_weights::<Dropout>),
    LayerClass::new("Rescaling", without_weights::<Rescaling>),
    LayerClass::new("Normalization", with_weights::<NormalizationConfig>),
    LayerClass::new("Resizing", without_weights::<Resizing>),
    LayerClass::new("CenterCrop", without_weights::<CenterCrop>),
    LayerClass::new("RandomFlip", without_weights::<RandomFlip>),
    LayerClass::new("RandomRotation", without_weights::<RandomRotation>),
    LayerClass::new("RandomZoom", without_weights::<RandomZoom>),
    LayerClass::new("RandomTranslation", without_weights::<RandomTranslation>),
    LayerClass::new("RandomContrast", without_weights::<RandomContrast>),
    LayerClass::new("Add", without_weights::<Add>),
    LayerClass::new("Concatenate", without_weights::<Concatenate>),
];

/// Keras's `from_config`: a layer (or, for layers with weights, the configuration that creates
/// them) from its `config` object. `config.class_name` tells classes sharing a type apart
/// (`MaxPooling2D` and `AveragePooling2D` are both [`Pool2D`]).
pub trait FromKerasConfig: Sized {
    fn from_keras_config(config: &KerasConfig) -> Result<Self>;
}

/// The configuration of a layer with weights (`Conv2DConfig`, …): the graph builder creates
/// its variables.
pub trait BuildLayer {
    fn class_name(&self) -> &'static str;
    /// How many weights the layer will create on these inputs, known before any is allocated
    /// (so a config asking for 10^12 filters is refused, not attempted).
    fn parameter_count(&self, inputs: &[Shape]) -> u128;
    /// Create the variables under `path`, starting as `initial` says, and the layer holding them.
    fn build_layer(self: Box<Self>, path: &nn::Path, inputs: &[Shape], initial: InitialWeights) -> Result<Box<dyn Layer>>;
}

/// What a configuration rebuilds into.
pub enum FromConfig {
    /// An `InputLayer` of this shape (no batch axis).
    Input(Shape),
    Layer(Box<dyn Layer>),
    WithWeights(Box<dyn BuildLayer>),
}

/// One registered Keras class.
pub struct LayerClass {
    pub class_name: &'static str,
    pub from_keras_config: fn(&KerasConfig) -> Result<FromConfig>,
}

impl LayerClass {
    const fn new(class_name: &'static str, from_keras_config: fn(&KerasConfig) -> Result<FromConfig>) -> Self {
        Self { class_name, from_keras_config }
    }
}

/// The registered class called `class_name`.
pub fn layer_class(class_name: &str) -> Option<&'static LayerClass> {
    LAYER_CLASSES.iter().find(|class| class.class_name == class_name)
}

/// Every registered class name, for messages.
pub fn supported_class_names() -> Vec<&'static str> {
    LAYER_CLASSES.iter().map(|class| class.class_name).collect()
}

fn input<L: FromKerasConfig + Into<Shape>>(config: &KerasConfig) -> Result<FromConfig> {
    Ok(FromConfig::Input(L::from_keras_config(config)?.into()))
}

fn without_weights<L: Layer + FromKerasConfig + 'static>(config: &KerasConfig) -> Result<FromConfig> {
    Ok(FromConfig::Layer(Box::new(L::from_keras_config(config)?)))
}

fn with_weights<B: BuildLayer + FromKerasConfig + 'static>(config: &KerasConfig) -> Result<FromConfig> {
    Ok(FromConfig::WithWeights(Box::new(B::from_keras_config(config)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_is_registered_once_and_names_its_own_layer() {
        let names = supported_class_names();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[..i].contains(name), "{name} registered twice");
        }
        // A class rebuilt from a minimal config reports the class it was registered under.
        let minimal = serde_json::json!({ "units": 2, "filters": 2, "kernel_size": 1, "rate": 0.5, "pool_size": 2, "factor": 0.1, "height_factor": 0.1, "width_factor": 0.1,
                                          "height": 2, "width": 2,
                                          "batch_input_shape": [null, 4, 4, 3] });
        for class in LAYER_CLASSES {
            let built = (class.from_keras_config)(&KerasConfig::new(class.class_name, &minimal)).unwrap();
            let reported = match &built {
                FromConfig::Input(_) => "InputLayer",
                FromConfig::Layer(layer) => layer.class_name(),
                FromConfig::WithWeights(config) => config.class_name(),
            };
            assert_eq!(reported, class.class_name);
        }
    }
}
