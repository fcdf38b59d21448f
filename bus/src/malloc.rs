//! Keeping large buffers out of `mmap`: [`tune_allocator`].
//!
//! A 10 MB value crosses several buffers on its way (encoded, sent,
//! received, decoded). glibc's malloc serves each allocation over its
//! threshold with a fresh `mmap` and returns it with `munmap` when freed, so
//! every buffer is faulted in page by page again: on the development VM a
//! third of a 10 MB push went to page faults. Raising the thresholds keeps
//! such buffers in the heap, where freed memory is reused. The cost is
//! memory kept after a peak: up to the trim threshold per malloc arena.
//!
//! This is a process-wide setting, so the library never applies it by
//! itself: Grid's binaries call it first thing, and a program embedding
//! Grid may. It does nothing on other platforms and C libraries.

/// Buffers up to this size come from the heap rather than their own `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of the heap is returned to the system past this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: usize = 128 << 20;

/// Tunes glibc's malloc for large message bodies (see the module docs);
/// `true` when it applied. Call it early in `main`, before threads start.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator parameters; both values are in
        // range for their options.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
