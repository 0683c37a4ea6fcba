//! Data the notebooks use: the course's HDF5 datasets.

pub mod course;
pub mod folders;
pub mod imagenet;
