//! Hints to the CPU and the kernel, the crate's only uses of `unsafe`. Neither can change
//! what any load or store sees; they only change how soon memory is there.
//!
//! Prefetch: on a pool of 100k blocks the metadata (block array, keys, index) is several
//! MiB, so the interpreter running between two calls evicts it from L2 and each block a call
//! touches costs L3 misses: the next free block's links, an evicted key's index slot, a freed
//! block's reference count. The batched loops know those addresses a few blocks ahead (the
//! ids of a table being freed or registered, the free list's next heads), so they ask for the
//! lines early and the misses overlap instead of queueing one after another.
//!
//! Huge pages: see [`crate::arena`].

/// Ask the CPU to bring the cache line holding `*r` into L1. A hint only: it never faults,
/// never changes what any load or store sees, and compiles to nothing off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `prefetcht0` is a hint that cannot fault or write memory (the address comes
    // from a reference, so it is valid anyway), and SSE, the only feature the intrinsic
    // needs, is part of the x86-64 baseline every x86-64 target enables.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Bytes in a transparent huge page on x86-64 and most aarch64 kernels.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Ask the kernel to back the whole 2 MiB pages inside `v`'s allocation (its capacity, not
/// only its length) with transparent huge pages. A hint only: without THP, or when the
/// kernel has no huge page to give, the memory stays in 4 KiB pages. No-op off Linux.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (lo, hi) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if hi <= lo {
        return;
    }
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: [lo, hi) lies inside `v`'s own allocation, which `v` keeps alive for the call.
    // MADV_HUGEPAGE changes only how the kernel backs those pages (their contents and
    // validity are unchanged), and on failure (no THP in this kernel) nothing happens; the
    // result is ignored for that reason.
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (lo, hi);
}
