//! Training and evaluation with Keras's semantics: losses and metrics as Keras computes them,
//! and `evaluate`.

pub mod compile;
pub mod evaluate;
pub mod losses;
