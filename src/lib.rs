//! keras-tch: the Keras residual-network notebooks on libtorch, with Keras's semantics carried
//! explicitly (names, padding, BatchNorm, channels-last, optimizers, losses).

pub mod bench;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod graph;
pub mod imaging;
pub mod io;
pub mod layers;
pub mod libtorch_version;
pub mod models;
pub mod pyfmt;
pub mod rng;
pub mod runtime;
mod shim;
pub mod signals;
pub mod train;

pub use error::Error;
