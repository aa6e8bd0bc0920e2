//! Giving freed heap back to the system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for its next
//! allocations, and returns it to the system only from the top of the main heap. The start-up
//! scan (records decoded on every core to build the search index), the first reminder tick and
//! large listings free far more than the idle server keeps: on PostgreSQL at 100,000
//! agreements the idle process held 189 MB of RSS with 62 MB of heap in use, and
//! `malloc_trim(0)` took it to 114 MB (README, *Scaling out*, "Re-run on 2026-12-02"). The mail sender calls
//! [`return_freed`] after the start-up passes and after each reminder tick (every five minutes
//! by default): a walk over the arenas, a few milliseconds, off the async threads.

/// Returns the free pages of every malloc arena to the system (glibc's `malloc_trim(0)`);
/// nothing on other C libraries, whose allocators return memory by their own rules.
pub(crate) fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only releases free memory the allocator holds,
    // under the allocator's own locks, and glibc makes it safe to call from any thread (not
    // from a signal handler, which this is never called from).
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
