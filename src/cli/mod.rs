//! The subcommands' arguments and their thin glue over the library.

pub mod convert;
pub mod evaluate;
pub mod inspect;
pub mod model_source;
pub mod predict;
pub mod train;
