//! Keras's default initializers (`keras/src/initializers/random_initializers.py`):
//! `glorot_uniform` for kernels, zeros for biases, ones/zeros for BatchNorm gamma/beta and
//! zeros/ones for its moving mean/variance. Seed with [`seed`] before building a model.

use tch::nn::Init;

/// `glorot_uniform`: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)), where both fans
/// include the receptive field (kh·kw) for convolutions.
pub fn glorot_uniform(fan_in: i64, fan_out: i64) -> Init {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -limit, up: limit }
}

/// What a new layer's weights start as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialWeights {
    /// Keras's default initializers, drawn from libtorch's global generator (see [`seed`]).
    #[default]
    KerasDefaults,
    /// Zeros, for weights a file is about to overwrite: loading a file draws nothing, so it
    /// leaves libtorch's generator (and a seeded run) as it was.
    ToBeLoaded,
}

impl InitialWeights {
    /// A kernel's initializer: `glorot_uniform` by Keras's default.
    pub fn kernel(self, fan_in: i64, fan_out: i64) -> Init {
        match self {
            InitialWeights::KerasDefaults => glorot_uniform(fan_in, fan_out),
            InitialWeights::ToBeLoaded => Init::Const(0.0),
        }
    }
}

/// Make weight initialisation reproducible (libtorch's global generator).
pub fn seed(seed: u64) {
    tch::manual_seed(seed as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_limit_counts_the_receptive_field() {
        // 3x3 conv, 16 -> 32 channels: fan_in 144, fan_out 288, limit sqrt(6/432).
        match glorot_uniform(3 * 3 * 16, 3 * 3 * 32) {
            Init::Uniform { lo, up } => {
                assert!((up - (6.0f64 / 432.0).sqrt()).abs() < 1e-12);
                assert_eq!(lo, -up);
            }
            _ => panic!("not uniform"),
        }
    }
}
