//! Training and evaluation with Keras's semantics: optimizers with Keras's update rules, losses
//! and metrics as Keras computes them, `fit` / `evaluate`, progress, history, checkpoints.

pub mod augment;
pub mod bottleneck;
pub mod callbacks;
pub mod checkpoint;
pub mod compile;
pub mod curves;
pub mod data_parallel;
pub mod distributed;
pub mod evaluate;
pub mod fit;
pub mod freeze;
pub mod fused_adam;
pub mod history;
pub mod interrupt;
pub mod job;
pub mod losses;
pub mod optimizer;
pub mod progress;
pub mod report;
pub mod schedules;
pub mod transfer;
pub mod transfer_job;
