//! What every training command (`train`, `transfer`) takes besides its data and model: the
//! seed, how much to print, the precision, the device, a limit on the training images, how
//! folder images are read, Keras's callbacks and class weights, and the evaluation report.
//! (`transfer` gives the callbacks to both of its phases, as a Keras user passes them to two
//! `fit` calls, and refuses `--lr-schedule`: it has its two rates, `--lr` and `--fine-tune-lr`.)

use clap::Args;

use super::device_arg::DeviceArg;
use keras_tch::layers::autocast::Precision;

#[derive(Args, Debug)]
pub struct TrainingRunArgs {
    /// Seed of weight initialisation, shuffling, the validation split and augmentation
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// 0 silent, 1 progress bar, 2 one line per epoch
    #[arg(long, default_value_t = 1)]
    pub verbose: u8,
    /// Precision of convolutions and matrix multiplies in training steps: fp32 (Keras's
    /// default) or bf16 (torch-autocast-style mixed precision: float32 weights, optimizer,
    /// softmax and loss; faster on CPUs with AVX-512-BF16 or AMX, and on CUDA). Cached
    /// bottleneck features stay float32
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Use only the first N training images (after the validation split; for a quick trial)
    #[arg(long, value_parser = super::value_parsers::at_least_one_i64)]
    pub limit: Option<i64>,
    /// How folder images are read
    #[command(flatten)]
    pub folders: super::folder_args::FolderArgs,
    #[command(flatten)]
    pub callbacks: super::callback_args::CallbackArgs,
    #[command(flatten)]
    pub class_weight: super::class_weight_arg::ClassWeightArg,
    /// The evaluation report on the validation data, after training
    #[command(flatten)]
    pub report: super::report_args::ReportArgs,
}
