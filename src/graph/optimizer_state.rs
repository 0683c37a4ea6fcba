//! An optimizer's state as a Keras file saved it with the model (`model.save` writes it beside
//! the weights, `load_model` restores it, so `fit` continues where it stopped).

use tch::Tensor;

/// The step count and each trainable variable's slots — Adam's m and v, SGD's momentum,
/// RMSprop's mean square — under the variable's Keras name (`conv1/kernel`), in slot order.
#[derive(Debug)]
pub struct OptimizerState {
    /// The optimizer class that made the state (`Adam`, `SGD`, `RMSprop`).
    pub class: String,
    pub iterations: i64,
    pub slots: Vec<(String, Vec<Tensor>)>,
}

/// What a loaded model file says about its optimizer's state.
#[derive(Debug, Default)]
pub enum SavedOptimizerState {
    /// The file holds none (weights only, an uncompiled model, or one never trained).
    #[default]
    Absent,
    /// Read, and checked against the model's trainable variables.
    Restorable(OptimizerState),
    /// Present, but not usable, and why (it is never applied in part).
    Unusable(String),
}
