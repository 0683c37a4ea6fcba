//! The subcommands' arguments and their thin glue over the library.

pub mod bench;
pub mod callback_args;
pub mod class_weight_arg;
pub mod classify;
pub mod convert;
pub mod device_arg;
pub mod distributed_args;
pub mod evaluate;
pub mod features;
pub mod flag_hints;
pub mod folder_args;
pub mod freeze_args;
pub mod image_inputs;
pub mod inspect;
pub mod model_source;
pub mod plot;
pub mod precision_arg;
pub mod predict;
pub mod pretrained_source;
pub mod report_args;
pub mod train;
pub mod training_run_args;
pub mod transfer;
pub mod value_parsers;
