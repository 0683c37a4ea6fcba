//! Keras files: reading and writing HDF5 the way Keras lays it out, `.keras` archives,
//! safetensors checkpoints and `.npy` arrays.

pub mod atomic;
pub mod global_heap;
pub mod hdf5_image;
pub mod hdf5_text;
pub mod input;
pub mod isolated;
pub mod limits;
pub mod load_model;
pub mod load_weights;
pub mod model_config;
pub mod nested_weights;
pub mod npy;
pub mod optimizer_weights;
pub mod reading_process;
pub mod safetensors;
pub mod save_h5;
pub mod save_keras;
pub mod saved_weights;
pub mod subclassed_resnet;

pub use load_model::{load_model, load_weights, read_weights};
pub use load_weights::{LoadOptions, LoadReport};
pub use save_h5::{save_model_h5, save_weights_h5};
pub use save_keras::{save_model_keras, save_weights_keras3};
