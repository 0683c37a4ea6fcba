//! Reading batches ahead: worker threads read (decode, resize) the next batches into a bounded
//! queue while libtorch trains on the current one. Memory is bounded by the queue's depth, not
//! by the dataset's size; batches come out in order whatever thread read them, so a run is the
//! same with any number of workers.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use tch::{Device, Tensor};

use super::dataset::Dataset;

/// How batches are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loading {
    /// Threads reading batches (0: read each batch on the training thread when it is needed).
    pub workers: usize,
    /// Batches read ahead at most (being read, or read and waiting).
    pub prefetch: usize,
}

impl Default for Loading {
    /// [`Loading::for_device`] for the CPU.
    fn default() -> Self {
        Self::for_device(Device::Cpu)
    }
}

impl Loading {
    /// The defaults, from measurement (BENCHMARKS.md, `folder-epoch`): training on the CPU, one
    /// worker per core libtorch's threads leave free — on 2 cores, decoding beside libtorch's
    /// two threads made training 3-7% slower than decoding on the training thread; with CUDA,
    /// whose kernels leave the cores free, up to 4. Four batches ahead either way.
    pub fn for_device(device: Device) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = if device.is_cuda() { cores.min(4) } else { cores.saturating_sub(tch::get_num_threads().max(1) as usize) };
        Self { workers, prefetch: 4 }
    }

    pub fn on_this_thread() -> Self {
        Self { workers: 0, prefetch: 0 }
    }
}

type RawBatch = Result<(Tensor, Tensor)>;

struct Queue {
    /// Batches handed to a worker so far.
    claimed: usize,
    /// Batches taken by the consumer so far.
    consumed: usize,
    ready: BTreeMap<usize, RawBatch>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker never panics while holding the lock (reads run unlocked, under catch_unwind).
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The batches of one pass over a dataset, in order: `(inputs, targets)` as the model takes them.
pub struct Batches {
    dataset: Dataset,
    batches: Arc<Vec<Vec<usize>>>,
    next: usize,
    shared: Option<Arc<Shared>>,
    workers: Vec<JoinHandle<()>>,
}

impl Batches {
    pub(crate) fn start(dataset: Dataset, batches: Vec<Vec<usize>>, loading: Loading) -> Self {
        let batches = Arc::new(batches);
        let mut this = Self { dataset, batches, next: 0, shared: None, workers: Vec::new() };
        if loading.workers == 0 || this.batches.len() < 2 {
            return this;
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { claimed: 0, consumed: 0, ready: BTreeMap::new(), stop: false }),
            changed: Condvar::new(),
        });
        let depth = loading.prefetch.max(1);
        for _ in 0..loading.workers {
            let (shared, batches, dataset) = (shared.clone(), this.batches.clone(), this.dataset.clone());
            this.workers.push(std::thread::spawn(move || {
                yield_to_training();
                read_ahead(&shared, &batches, &dataset, depth)
            }));
        }
        this.shared = Some(shared);
        this
    }
}

/// Run this thread only when a core is otherwise idle (Linux's SCHED_IDLE), so decoding takes
/// the time libtorch's threads leave free instead of slowing its parallel kernels (where the
/// cores are shared, a kernel waits for its slowest thread). Elsewhere a no-op.
fn yield_to_training() {
    #[cfg(target_os = "linux")]
    // SAFETY: the parameter struct is initialised; the call changes only this thread's policy.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

/// A worker: claim the next unclaimed batch while fewer than `depth` are ahead of the consumer,
/// read it, queue it.
fn read_ahead(shared: &Shared, batches: &[Vec<usize>], dataset: &Dataset, depth: usize) {
    loop {
        let index = {
            let mut queue = shared.lock();
            while !queue.stop && queue.claimed < batches.len() && queue.claimed >= queue.consumed + depth {
                queue = shared.changed.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if queue.stop || queue.claimed >= batches.len() {
                return;
            }
            queue.claimed += 1;
            queue.claimed - 1
        };
        let batch = read_caught(dataset, &batches[index]);
        shared.lock().ready.insert(index, batch);
        shared.changed.notify_all();
    }
}

/// A panic while decoding (a bug in a decoder) becomes an error instead of a missing batch.
fn read_caught(dataset: &Dataset, indices: &[usize]) -> RawBatch {
    catch_unwind(AssertUnwindSafe(|| dataset.read_raw(indices))).unwrap_or_else(|_| Err(anyhow!("reading a batch panicked")))
}

impl Iterator for Batches {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.batches.len() {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let raw = match &self.shared {
            None => read_caught(&self.dataset, &self.batches[index]),
            Some(shared) => {
                let mut queue = shared.lock();
                let batch = loop {
                    if let Some(batch) = queue.ready.remove(&index) {
                        break batch;
                    }
                    queue = shared.changed.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
                };
                queue.consumed = index + 1;
                drop(queue);
                shared.changed.notify_all();
                batch
            }
        };
        Some(raw.map(|batch| self.dataset.finish(batch)))
    }
}

impl Drop for Batches {
    /// Stop the workers (each finishes the batch it is reading) and wait for them.
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.lock().stop = true;
            shared.changed.notify_all();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
