//! `--device auto|cpu|cuda|cuda:N`: one argument for every command that computes.

use anyhow::{Context, Result};
use clap::Args;
use tch::Device;

use keras_tch::device::DeviceChoice;

#[derive(Args, Debug, Clone)]
pub struct DeviceArg {
    /// Where to compute: auto (CUDA when libtorch sees a device, else the CPU), cpu, cuda or cuda:N
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

impl DeviceArg {
    /// The libtorch device, or an error that says which flags would work here.
    pub fn resolve(&self) -> Result<Device> {
        resolve(self.device)
    }
}

/// `choice` resolved, its error naming the flag.
pub fn resolve(choice: DeviceChoice) -> Result<Device> {
    choice.resolve().with_context(|| format!("--device {choice}: not usable here; use --device cpu or auto"))
}
