//! Device selection: `--device auto|cpu|cuda|cuda:N`, as the CLI and the notebook ports accept it.

use anyhow::{bail, Context, Result};
use tch::Device;

/// Parse a device name. `auto` picks the first CUDA device when libtorch sees one, else the CPU;
/// asking for CUDA where there is none is an error rather than a silent fall-back to the CPU.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let cuda_count = || tch::Cuda::device_count();
    match spec.as_str() {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if cuda_count() == 0 {
                bail!("--device cuda: libtorch sees no CUDA device (no GPU here, or a CPU-only libtorch); use --device cpu or auto");
            }
            Ok(Device::Cuda(0))
        }
        other => {
            let Some(index) = other.strip_prefix("cuda:") else {
                bail!("unknown device '{other}': expected auto, cpu, cuda or cuda:N");
            };
            let index: usize = index.parse().with_context(|| format!("device '{other}': '{index}' is not a GPU index"))?;
            let count = cuda_count() as usize;
            if index >= count {
                bail!("--device {other}: libtorch sees {count} CUDA device(s); use --device cpu, auto, or cuda:0..{}", count.max(1) - 1);
            }
            Ok(Device::Cuda(index))
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

    #[test]
    fn cpu_and_auto_resolve_without_a_gpu() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("CPU").unwrap(), Device::Cpu);
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !tch::Cuda::is_available());
    }

    #[test]
    fn bad_names_are_errors_that_say_what_is_accepted() {
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("auto, cpu, cuda or cuda:N"), "{err}");
        let err = parse_device("cuda:x").unwrap_err().to_string();
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
