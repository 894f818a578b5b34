//! The binary's allocator: mimalloc that keeps freed memory for reuse, with heap accounting for
//! benchmarks (a resettable peak).
//!
//! The `genolm` binary installs [`CountingAlloc`] as its global allocator, so `genolm bench
//! models` can report the peak heap bytes of a forward + backward pass. In a program that does not
//! install it (the library's tests, other binaries) [`installed`] is false and the counters stay 0.
//!
//! Why not the system allocator: a training step frees and reallocates the same large tensors
//! every pass. glibc serves each buffer over 32 MB with a fresh `mmap` and returns it on free, so
//! every pass faults in its pages again (at 32k tokens about a third of a Mamba pass was kernel
//! time). mimalloc with purging off ([`keep_freed_memory`]) reuses them: the process holds its
//! high-water mark, as PyTorch's caching allocator does on GPU.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc 3 header that `libmimalloc-sys` 0.1.49 builds
/// (`include/mimalloc.h`, `mi_option_e`); default 1000 (ms, `src/options.c`), -1 never purges.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS (mimalloc's purge delay -1), so large buffers freed by one
/// training step are reused by the next without page faults. Call once at program start.
pub fn keep_freed_memory() {
    // SAFETY: sets a process-wide option; mimalloc reads it on its next purge decision.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// mimalloc's current purge delay in milliseconds (-1: never purge).
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads a process-wide option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) as i64 }
}

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// mimalloc, counting live bytes and their high-water mark.
pub struct CountingAlloc;

impl CountingAlloc {
    fn add(n: usize) {
        let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `MiMalloc`; only counters are updated besides.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            Self::add(layout.size());
            INSTALLED.store(true, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::add(layout.size());
            INSTALLED.store(true, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                Self::add(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// True when [`CountingAlloc`] is this program's global allocator (it has seen an allocation).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Live heap bytes now.
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Highest live heap bytes since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Start a new peak measurement from the current live bytes.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_is_the_one_we_set() {
        // The purge delay defaults to 1000 ms in this mimalloc; the option right after it
        // (`use_numa_nodes`) defaults to 0, so a shifted enum would show here.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1000);
        }
        // SAFETY: reads a process-wide option.
        let numa = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY + 1) };
        if std::env::var_os("MIMALLOC_USE_NUMA_NODES").is_none() {
            assert_eq!(numa, 0);
        }
        keep_freed_memory();
        assert_eq!(purge_delay_ms(), -1);
    }
}
