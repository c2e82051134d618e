//! A software prefetch hint, the crate's one use of `unsafe`.
//!
//! On a pool of 100k blocks the metadata (block array, keys, index) is several MiB, so the
//! interpreter running between two calls evicts it from L2 and each block a call touches costs
//! L3 misses: the next free block's links, an evicted key's index slot, a freed block's
//! reference count. The batched loops know those addresses a few blocks ahead (the ids of a
//! table being freed or registered, the free list's next heads), so they ask for the lines
//! early and the misses overlap instead of queueing one after another.

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
