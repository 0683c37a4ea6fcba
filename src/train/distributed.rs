//! Communication for data-parallel training, on PyTorch's own distributed engine: c10d's
//! `TCPStore` rendezvous and its Gloo process group, reached through `distributed.cpp` because
//! tch does not expose them. The processes are launched as `torchrun` launches them (or SLURM,
//! or Kubernetes' PyTorchJob, which set the same variables): [`LaunchEnv::from_env`] reads
//! `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT` and torchrun's
//! `TORCHELASTIC_*`, and [`ProcessGroup::join`] connects to the others.
//!
//! Under torchrun the agent hosts the store and the workers connect to it under the key prefix
//! `/worker/attempt_<restart count>`, as `torch.distributed`'s rendezvous does; without an agent's
//! store, rank 0 hosts it.

use std::ffi::{c_char, c_int, c_void, CString};
use std::net::TcpListener;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use anyhow::Result;
use tch::Tensor;

use crate::shim::checked;
use crate::Error;

/// Whether this build has c10d's NCCL backend (built against a CUDA libtorch with NCCL's and
/// CUDA's headers at hand; see build.rs).
pub const NCCL_BUILT: bool = cfg!(keras_tch_nccl);

/// torch.distributed's default for a process group's collectives (`default_pg_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

extern "C" {
    fn keras_tch_store_server_new(
        listen_fd: c_int,
        port: u16,
        timeout_ms: i64,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_store_server_free(server: *mut c_void);
    #[allow(clippy::too_many_arguments)]
    fn keras_tch_process_group_new(
        host: *const c_char,
        port: u16,
        rank: c_int,
        world_size: c_int,
        host_store: c_int,
        prefix: *const c_char,
        interface: *const c_char,
        cuda_device: c_int,
        timeout_ms: i64,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_process_group_free(group: *mut c_void);
    fn keras_tch_all_reduce_sum(
        group: *mut c_void,
        tensors: *const *mut c_void,
        count: usize,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_cross_replica_sum(
        group: *mut c_void,
        input: *mut c_void,
        out: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_broadcast(
        group: *mut c_void,
        tensors: *const *mut c_void,
        count: usize,
        root: c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn keras_tch_barrier(group: *mut c_void, error: *mut c_char, error_len: usize) -> c_int;
}

/// Where the rendezvous store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHost {
    /// torchrun's agent serves it (`TORCHELASTIC_USE_AGENT_STORE=True`); keys live under
    /// `prefix`.
    Agent { prefix: String },
    /// Rank 0 serves it at `MASTER_ADDR:MASTER_PORT`.
    RankZero,
}

/// This process's place in a job, as its launcher describes it in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The rank among the processes of this machine (`LOCAL_RANK`): picks the GPU.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    pub store: StoreHost,
    /// The network interface Gloo uses (`GLOO_SOCKET_IFNAME`, as in torch.distributed); by
    /// default the address the host name resolves to.
    pub interface: Option<String>,
}

impl LaunchEnv {
    /// The launch described by this process's environment; `None` when `WORLD_SIZE` is unset or
    /// 1 (a single process: nothing to communicate).
    pub fn from_env() -> Result<Option<LaunchEnv>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`LaunchEnv::from_env`], reading the variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>> {
        let world_size: usize = match var("WORLD_SIZE") {
            None => return Ok(None),
            Some(value) => parse("WORLD_SIZE", &value)?,
        };
        if world_size == 0 {
            return Err(launch_error("WORLD_SIZE", "0", "must be at least 1").into());
        }
        if world_size == 1 {
            return Ok(None);
        }
        let required = |name: &'static str| var(name).ok_or_else(|| launch_error(name, "", "is not set (torchrun sets it)"));
        let rank: usize = parse("RANK", &required("RANK")?)?;
        if rank >= world_size {
            return Err(launch_error("RANK", &rank.to_string(), &format!("is not below WORLD_SIZE={world_size}")).into());
        }
        let local_rank = match var("LOCAL_RANK") {
            Some(value) => parse("LOCAL_RANK", &value)?,
            None => 0,
        };
        let master_addr = required("MASTER_ADDR")?;
        let master_port: u16 = parse("MASTER_PORT", &required("MASTER_PORT")?)?;
        let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|value| value.eq_ignore_ascii_case("true"));
        let store = if agent_store {
            let attempt: usize = match var("TORCHELASTIC_RESTART_COUNT") {
                Some(value) => parse("TORCHELASTIC_RESTART_COUNT", &value)?,
                None => 0,
            };
            StoreHost::Agent { prefix: format!("/worker/attempt_{attempt}") }
        } else {
            StoreHost::RankZero
        };
        let interface = var("GLOO_SOCKET_IFNAME").filter(|name| !name.is_empty());
        Ok(Some(LaunchEnv { rank, world_size, local_rank, master_addr, master_port, store, interface }))
    }
}

fn parse<T: std::str::FromStr>(variable: &'static str, value: &str) -> Result<T, Error> {
    value.trim().parse().map_err(|_| launch_error(variable, value, "is not a non-negative integer of the expected range"))
}

fn launch_error(variable: &'static str, value: &str, problem: &str) -> Error {
    Error::LaunchVariable { variable, value: value.to_string(), problem: problem.to_string() }
}

fn c_string(value: &str) -> CString {
    CString::new(value.replace('\0', "")).expect("NULs removed")
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
}

/// One process's membership of the job's Gloo process group. Collectives block until every
/// rank has made the same call, or fail after the group's timeout (or sooner, when a rank's
/// connection closes).
pub struct ProcessGroup {
    handle: *mut c_void,
    rank: usize,
    world_size: usize,
    local_rank: usize,
}

impl ProcessGroup {
    /// Joins the group `env` describes, on Gloo (the CPU's backend), waiting up to `timeout` for
    /// the others (and for each later collective).
    pub fn join(env: &LaunchEnv, timeout: Duration) -> Result<ProcessGroup> {
        Self::connect(env, timeout, None)
    }

    /// As [`ProcessGroup::join`], on NCCL with this rank's GPU `cuda_device` (torch.distributed's
    /// backend for CUDA; the collectives then sum CUDA tensors). Fails with a message when this
    /// build has no NCCL ([`NCCL_BUILT`]).
    pub fn join_nccl(env: &LaunchEnv, timeout: Duration, cuda_device: usize) -> Result<ProcessGroup> {
        Self::connect(env, timeout, Some(cuda_device))
    }

    fn connect(env: &LaunchEnv, timeout: Duration, cuda_device: Option<usize>) -> Result<ProcessGroup> {
        let (host_store, prefix) = match &env.store {
            StoreHost::Agent { prefix } => (false, prefix.as_str()),
            StoreHost::RankZero => (env.rank == 0, ""),
        };
        let (host, prefix) = (c_string(&env.master_addr), c_string(prefix));
        let interface = c_string(env.interface.as_deref().unwrap_or(""));
        let mut handle = std::ptr::null_mut();
        // SAFETY: the strings live through the call; on success `handle` is a new group this
        // value owns and frees in `drop`.
        checked(|error, error_len| unsafe {
            keras_tch_process_group_new(
                host.as_ptr(),
                env.master_port,
                env.rank as c_int,
                env.world_size as c_int,
                c_int::from(host_store),
                prefix.as_ptr(),
                interface.as_ptr(),
                cuda_device.map_or(-1, |device| device as c_int),
                millis(timeout),
                &mut handle,
                error,
                error_len,
            )
        })
        .map_err(|message| Error::Collective {
            rank: env.rank,
            world_size: env.world_size,
            operation: "joining the process group",
            message: format!("{message} (store at {}:{})", env.master_addr, env.master_port),
        })?;
        Ok(ProcessGroup { handle, rank: env.rank, world_size: env.world_size, local_rank: env.local_rank })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Replaces each tensor by its sum over the ranks (every rank passes the same shapes and
    /// kinds, in the same order).
    pub fn all_reduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        let handles = handles(tensors);
        // SAFETY: the handles are live tch tensors borrowed for this call.
        self.check("all-reduce", |error, len| unsafe { keras_tch_all_reduce_sum(self.handle, handles.as_ptr(), handles.len(), error, len) })
    }

    /// A new tensor: `tensor` summed over the ranks, differentiably — backward, the gradient
    /// reaching each rank's `tensor` is the sum of every rank's gradient of the result (so a
    /// loss on any rank reaches the inputs of all). Every rank must make the same calls, in
    /// forward and in backward.
    pub fn cross_replica_sum(&self, tensor: &Tensor) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        // SAFETY: `tensor` is a live tch tensor borrowed for this call; on success `out` is a
        // new `at::Tensor` whose ownership passes to the returned value. The group outlives the
        // graph the result joins: training holds it for the whole run.
        self.check("all-reduce of the BatchNorm statistics", |error, len| unsafe {
            keras_tch_cross_replica_sum(self.handle, tensor.as_ptr() as *mut c_void, &mut out, error, len)
        })?;
        // SAFETY: as above.
        Ok(unsafe { Tensor::from_ptr(out.cast()) })
    }

    /// Copies each tensor of rank `root` into the same tensor of every other rank.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let handles = handles(tensors);
        // SAFETY: as in `all_reduce_sum`.
        self.check("broadcast", |error, len| unsafe {
            keras_tch_broadcast(self.handle, handles.as_ptr(), handles.len(), root as c_int, error, len)
        })
    }

    /// Returns once every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the group is live until `drop`.
        self.check("barrier", |error, len| unsafe { keras_tch_barrier(self.handle, error, len) })
    }

    fn check(&self, operation: &'static str, call: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
        checked(call).map_err(|message| Error::Collective { rank: self.rank, world_size: self.world_size, operation, message }.into())
    }
}

// SAFETY: c10d's ProcessGroupGloo is made to be called from several threads (each collective
// is queued under the group's mutex and run by its worker threads; DDP's reducer calls it from
// autograd's threads); the handle is only freed in `drop`.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `handle` came from keras_tch_process_group_new and is freed once.
        unsafe { keras_tch_process_group_free(self.handle) }
    }
}

fn handles(tensors: &[&Tensor]) -> Vec<*mut c_void> {
    tensors.iter().map(|tensor| tensor.as_ptr() as *mut c_void).collect()
}

/// A rendezvous store hosted by this process, as torchrun's agent hosts one for its workers
/// (which then find it through `TORCHELASTIC_USE_AGENT_STORE=True`): for launching ranks without
/// torchrun, e.g. in tests. It serves until dropped.
pub struct StoreServer {
    handle: *mut c_void,
}

impl StoreServer {
    /// Serves on `listener` (already bound, so no other process can take its port meanwhile).
    pub fn serve(listener: TcpListener, timeout: Duration) -> Result<StoreServer> {
        let port = listener.local_addr()?.port();
        let fd = listener.into_raw_fd();
        let mut handle = std::ptr::null_mut();
        // SAFETY: the store takes the listening socket over; on success `handle` is owned here.
        checked(|error, len| unsafe { keras_tch_store_server_new(fd, port, millis(timeout), &mut handle, error, len) })
            .map_err(|message| Error::Collective { rank: 0, world_size: 0, operation: "hosting the rendezvous store", message })?;
        Ok(StoreServer { handle })
    }
}

// SAFETY: the store server runs on its own thread; the handle is only freed in `drop`.
unsafe impl Send for StoreServer {}

impl Drop for StoreServer {
    fn drop(&mut self) {
        // SAFETY: `handle` came from keras_tch_store_server_new and is freed once.
        unsafe { keras_tch_store_server_free(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> Result<Option<LaunchEnv>> {
        LaunchEnv::from_vars(|name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()))
    }

    #[test]
    fn torchrun_variables_are_read_as_torch_reads_them() {
        assert_eq!(env_of(&[]).unwrap(), None);
        assert_eq!(env_of(&[("WORLD_SIZE", "1"), ("RANK", "0")]).unwrap(), None);
        let torchrun = [
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ];
        let env = env_of(&torchrun).unwrap().unwrap();
        assert_eq!((env.rank, env.world_size, env.local_rank, env.master_port), (3, 4, 1, 29500));
        assert_eq!(env.store, StoreHost::Agent { prefix: "/worker/attempt_2".into() });
        let plain = env_of(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1234")]).unwrap().unwrap();
        assert_eq!(plain.store, StoreHost::RankZero);
    }

    #[test]
    fn bad_launch_variables_are_named() {
        let message = |vars: &[(&str, &str)]| env_of(vars).unwrap_err().to_string();
        assert!(message(&[("WORLD_SIZE", "two")]).contains("WORLD_SIZE=\"two\""));
        assert!(message(&[("WORLD_SIZE", "2")]).contains("RANK"));
        assert!(message(&[("WORLD_SIZE", "2"), ("RANK", "2")]).contains("not below WORLD_SIZE=2"));
        let no_port = [("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "70000")];
        assert!(message(&no_port).contains("MASTER_PORT=\"70000\""));
    }
}
