//! Training as one process of a job `torchrun` (or SLURM, or Kubernetes' PyTorchJob) launched:
//! the launcher's variables say which rank this is; without them (or with `WORLD_SIZE=1`)
//! training runs in this one process, as before.

use anyhow::{Context, Result};
use clap::Args;
use tch::Device;

use keras_tch::graph::Model;
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::distributed::{LaunchEnv, ProcessGroup, DEFAULT_TIMEOUT};

#[derive(Args, Debug)]
pub struct DistributedArgs {
    /// Under torchrun: how long (seconds) a process waits for the others, at the rendezvous and
    /// at each step, before it fails (torch.distributed's default: 1800). A process that dies
    /// makes the others fail at once
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs(), value_name = "SECONDS")]
    pub distributed_timeout: u64,
}

impl DistributedArgs {
    /// This process's part in the job its launcher describes (`None`: a single process), and the
    /// device it trains on: with CUDA, the GPU of its `LOCAL_RANK`. Ranks other than 0 print
    /// nothing: their standard output goes to /dev/null (errors still reach standard error).
    pub fn join(&self, device: Device) -> Result<(Option<DataParallel>, Device)> {
        let Some(env) = LaunchEnv::from_env()? else { return Ok((None, device)) };
        // main() restores SIGPIPE's default (so that `| head` ends the output quietly); a peer
        // that goes away must be an error of the next collective, not a silent death by
        // SIGPIPE. (Python, and so torch.distributed, ignores SIGPIPE too.)
        // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let timeout = std::time::Duration::from_secs(self.distributed_timeout.max(1));
        // As torch.distributed: Gloo on the CPU, NCCL between GPUs, one GPU a process.
        let (group, device) = if device.is_cuda() {
            (ProcessGroup::join_nccl(&env, timeout, env.local_rank), Device::Cuda(env.local_rank))
        } else {
            (ProcessGroup::join(&env, timeout), device)
        };
        let group = group.context("joining the torchrun job (--distributed-timeout sets how long to wait)")?;
        let parallel = DataParallel::new(group);
        if !parallel.is_chief() {
            silence_stdout()?;
        }
        Ok((Some(parallel), device))
    }
}

/// The training commands' part in a torchrun job.
#[derive(Args, Debug)]
pub struct DistributedTrainingArgs {
    #[command(flatten)]
    pub job: DistributedArgs,
    /// Under torchrun: every BatchNormalization normalises with the statistics of the whole
    /// global batch, summed across the processes (Keras's `BatchNormalization(synchronized=True)`,
    /// torch's SyncBatchNorm). By default each process uses its own share's, as Keras does
    #[arg(long)]
    pub sync_batch_norm: bool,
}

impl DistributedTrainingArgs {
    /// As [`DistributedArgs::join`].
    pub fn join(&self, device: Device) -> Result<(Option<DataParallel>, Device)> {
        self.job.join(device)
    }

    /// Marks the model's BatchNormalization layers synchronized when asked.
    pub fn prepare(&self, model: &mut Model) {
        if self.sync_batch_norm {
            model.set_batch_norm_synchronized(true);
        }
    }
}

/// Standard output to /dev/null: every rank runs the same command, and rank 0 speaks for them.
fn silence_stdout() -> Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").context("opening /dev/null")?;
    let _ = std::io::stdout().flush();
    // SAFETY: both descriptors are open; dup2 replaces descriptor 1 atomically.
    if unsafe { libc::dup2(null.as_raw_fd(), 1) } < 0 {
        return Err(std::io::Error::last_os_error()).context("redirecting standard output to /dev/null");
    }
    Ok(())
}
