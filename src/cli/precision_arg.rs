//! `--precision` for the inference commands (predict, classify, features).

use clap::Args;
use keras_tch::graph::inference::InferenceModel;
use keras_tch::graph::Model;
use keras_tch::layers::autocast::Precision;

#[derive(Args, Debug)]
pub struct PrecisionArg {
    /// Precision of convolutions and matrix multiplies: fp32 (Keras's numbers, within 1e-4) or
    /// bf16 (about 2× faster on CPUs with AVX-512-BF16 or AMX; probabilities moved by up to 0.02
    /// on the test photos, see BENCHMARKS.md). BatchNorm is folded into its convolution either way.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
}

impl PrecisionArg {
    /// `model` rewritten for inference in the chosen precision.
    pub fn prepare<'a>(&self, model: &'a Model) -> InferenceModel<'a> {
        model.for_inference(self.precision)
    }
}
