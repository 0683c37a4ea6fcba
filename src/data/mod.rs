//! Data: the course's HDF5 datasets, class-per-folder image datasets, ImageNet's labels, and
//! the `Dataset` that `fit` and `evaluate` read batch by batch.

pub mod course;
pub mod course_file;
pub mod dataset;
pub mod folders;
pub mod imagenet;
pub mod loader;

use tch::{Kind, Tensor};

/// Class indices (any integer or integral float kind, any shape) as one-hot float32 rows, N×C:
/// Keras's `to_categorical`, the notebooks' `convert_to_one_hot(Y, C).T`.
pub fn one_hot(labels: &Tensor, classes: usize) -> Tensor {
    labels.flatten(0, -1).to_kind(Kind::Int64).one_hot(classes as i64).to_kind(Kind::Float)
}
