//! Data: the course's HDF5 datasets, class-per-folder image datasets, ImageNet's labels, and
//! the `Dataset` that `fit` and `evaluate` read batch by batch.

pub mod course;
pub mod course_file;
pub mod dataset;
pub mod folders;
pub mod imagenet;
pub mod loader;
