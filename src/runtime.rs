//! Process-wide settings that make libtorch's CPU work fast here.
//!
//! glibc's malloc, left to itself, gives the activation buffers of every step back to the
//! kernel when they are freed (large blocks are `mmap`ed, and the heap top is trimmed), so the
//! next step takes a page fault for every 4 KiB it touches again. Measured with
//! `keras-tch bench` on this project's 2-core machine, that cost the HappyModel epoch half its
//! time (0.95 s → 0.45 s) and the course ResNet50 train step 15% (0.50 s → 0.43 s). Keeping
//! freed memory in the process — what TensorFlow's and CUDA's caching allocators do — removes
//! it; the peak resident memory is unchanged, the memory just is not returned between steps.

use std::sync::Once;

/// Blocks up to glibc's ceiling for `M_MMAP_THRESHOLD` (32 MiB on 64-bit) come from the heap.
const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Trim the heap top only when more than this is free at once.
const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;

/// Give the memory freed so far back to the kernel (glibc's `malloc_trim`): between phases of
/// work (after an epoch, after the bottleneck features), so memory kept for speed within a phase
/// does not pile up across a long run over many files. A no-op where the C library is not glibc.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keep freed memory in the process instead of returning it to the kernel after each step
/// (once per process; a no-op where the C library is not glibc).
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator tunables; it is called once, before the
        // process's heavy allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
        }
    });
}
