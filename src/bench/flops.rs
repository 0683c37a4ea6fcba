//! Floating-point work of a forward pass, counted the usual way: 2 FLOPs per multiply-add of
//! the convolutions and Dense layers (the rest — BatchNorm, activations, pooling, adds — is a
//! few percent and left out). A training step is counted as 3× the forward pass (forward, plus
//! the gradients with respect to activations and to weights).

use crate::graph::Model;

/// FLOPs of one forward pass of one example.
pub fn forward_flops(model: &Model) -> f64 {
    model
        .layers()
        .iter()
        .map(|node| {
            let kernel = node.layer.weights().into_iter().find(|w| w.name == "kernel");
            let Some(kernel) = kernel else { return 0.0 };
            let weights = kernel.tensor.numel() as f64;
            match node.layer.class_name() {
                // Each kernel weight is used once per output position.
                "Conv2D" => 2.0 * weights * (node.output_shape[0] * node.output_shape[1]) as f64,
                "Dense" => 2.0 * weights,
                _ => 0.0,
            }
        })
        .sum()
}

/// FLOPs of one training step on one example (forward + backward).
pub fn training_flops(model: &Model) -> f64 {
    3.0 * forward_flops(model)
}
