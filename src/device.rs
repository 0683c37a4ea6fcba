//! Device selection: `auto`, `cpu`, `cuda` or `cuda:N`, as the CLI (`--device`) and the notebook
//! ports name a device. Parsing checks the spelling; [`DeviceChoice::resolve`] checks that
//! libtorch can use the device.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tch::Device;

/// Where to compute, as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The first CUDA device when libtorch sees one, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// CUDA device N (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        let spec = spec.trim().to_ascii_lowercase();
        match spec.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            other => {
                let Some(index) = other.strip_prefix("cuda:") else {
                    bail!("unknown device '{other}': expected auto, cpu, cuda or cuda:N");
                };
                let index = index.parse().with_context(|| format!("device '{other}': '{index}' is not a GPU index"))?;
                Ok(DeviceChoice::Cuda(index))
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl DeviceChoice {
    /// The libtorch device. Asking for CUDA where libtorch sees none is an error rather than a
    /// silent fall-back to the CPU.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(index) => {
                let count = tch::Cuda::device_count().max(0) as usize;
                match count {
                    0 => bail!("{self}: libtorch sees no CUDA device (no GPU here, or a CPU-only libtorch)"),
                    _ if index >= count => bail!("{self}: libtorch sees {count} CUDA device(s), cuda:0 to cuda:{}", count - 1),
                    _ => Ok(Device::Cuda(index)),
                }
            }
        }
    }
}

/// Whether libtorch can use CUDA here, for messages. libtorch answers "no" both for a CPU-only
/// build and for a CUDA build on a machine without a GPU, so the text says just that.
pub fn cuda_status() -> &'static str {
    if tch::utils::has_cuda() {
        "CUDA available"
    } else {
        "no CUDA device"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_device(spec: &str) -> Result<Device> {
        spec.parse::<DeviceChoice>()?.resolve()
    }

    #[test]
    fn cpu_and_auto_resolve_without_a_gpu() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("CPU").unwrap(), Device::Cpu);
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !tch::Cuda::is_available());
    }

    #[test]
    fn names_round_trip() {
        for (name, choice) in [("auto", DeviceChoice::Auto), ("cpu", DeviceChoice::Cpu), ("cuda:1", DeviceChoice::Cuda(1))] {
            assert_eq!(name.parse::<DeviceChoice>().unwrap(), choice);
            assert_eq!(choice.to_string(), name);
        }
        assert_eq!("cuda".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
    }

    #[test]
    fn bad_names_are_errors_that_say_what_is_accepted() {
        let err = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("auto, cpu, cuda or cuda:N"), "{err}");
        let err = "cuda:x".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("not a GPU index"), "{err}");
    }

    #[test]
    fn a_missing_gpu_is_an_error_not_a_fallback() {
        if tch::Cuda::device_count() == 0 {
            assert!(parse_device("cuda").is_err());
            assert!(parse_device("cuda:0").is_err());
        }
        let err = parse_device("cuda:99").unwrap_err().to_string();
        assert!(err.contains("CUDA device"), "{err}");
    }
}
