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

/// The kernel's switch for transparent huge pages; `[madvise]` selected means a process gets
/// them only for memory it asks them for.
const HUGE_PAGES_SETTING: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
/// libtorch's own switch (c10's CPU allocator, read once, at its first allocation): buffers of
/// 2 MiB and up are aligned to 2 MiB and asked for huge pages (`madvise(MADV_HUGEPAGE)`).
const LIBTORCH_HUGE_PAGES_VARIABLE: &str = "THP_MEM_ALLOC_ENABLE";

/// Back libtorch's large buffers (2 MiB and up: the weights, the activations) with 2 MiB pages
/// instead of 4 KiB ones, for commands that only run the model forward.
///
/// A ResNet50 forward pass reads its 100 MB of weights once per batch; in 4 KiB pages that is
/// 25,000 translations, most of them missing the CPU's translation cache (a full page-table walk
/// each, dearer still in a virtual machine). Measured on this project's 2-core AMD EPYC
/// (BENCHMARKS.md, sixth run): ImageNet predict 3–4% less time at batch 1, the course
/// ResNet50's float32 predict at batch 32 3–8%; a training step 0–8% *more* (each large
/// allocation then makes a system call), so training commands do not call this.
///
/// Does nothing when the kernel gives huge pages to every process already (`[always]`) or to
/// none (`[never]`, or no such setting), or when the user set `THP_MEM_ALLOC_ENABLE` themselves.
/// Call it first thing in `main`, before any tensor exists and before other threads start: it
/// sets an environment variable, which libtorch reads at its first allocation.
pub fn back_large_buffers_with_huge_pages() {
    if std::env::var_os(LIBTORCH_HUGE_PAGES_VARIABLE).is_some() {
        return;
    }
    let setting = std::fs::read_to_string(HUGE_PAGES_SETTING).unwrap_or_default();
    if huge_pages_only_on_request(&setting) {
        std::env::set_var(LIBTORCH_HUGE_PAGES_VARIABLE, "1");
    }
}

/// Whether the kernel's setting (e.g. `always [madvise] never`) gives huge pages only to memory
/// a process asks them for.
fn huge_pages_only_on_request(setting: &str) -> bool {
    setting.split_whitespace().any(|choice| choice == "[madvise]")
}

#[cfg(test)]
mod tests {
    use super::huge_pages_only_on_request;

    #[test]
    fn huge_pages_are_asked_for_only_where_the_kernel_waits_to_be_asked() {
        assert!(huge_pages_only_on_request("always [madvise] never\n"));
        assert!(!huge_pages_only_on_request("[always] madvise never\n"));
        assert!(!huge_pages_only_on_request("always madvise [never]\n"));
        assert!(!huge_pages_only_on_request(""));
    }
}
