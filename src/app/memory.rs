//! Giving freed heap back to the system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena for its next
//! allocations, and returns it to the system only from the top of the main heap. The start-up
//! scan (records decoded on every core to build the search index), the first reminder tick and
//! large listings free far more than the idle server keeps: on PostgreSQL at 100,000
//! agreements the idle process held 189 MB of RSS with 62 MB of heap in use, and
//! `malloc_trim(0)` took it to 114 MB (README, *Scaling out*, "Re-run on 2026-12-02"). The mail sender calls
//! [`return_freed`] after the start-up passes and after each reminder tick (every five minutes
//! by default): a walk over the arenas, a few milliseconds, off the async threads. A listing
//! that reads many agreements from the store (`app::listing`: an export, `renewal-due`) asks
//! for the same a second after it ([`return_freed_soon`]), once its answer has been sent.

/// Fixes glibc's mmap threshold — the size from which it serves an allocation with a mapping of
/// its own, returned to the system when freed — at 256 KiB, unless the operator set it
/// (`MALLOC_MMAP_THRESHOLD_`, or `mmap_threshold` in `GLIBC_TUNABLES`, which then rule).
/// Called once by `serve`, before the server starts; nothing on other C libraries.
///
/// Left alone, glibc raises the threshold to the size of any mapped block freed that is larger
/// than it (up to 32 MiB), so once the start-up build has freed its batches, later large blocks
/// — a listing's rows, an export, a rendered PDF — are carved from the arenas and stay with the
/// process. At 100,000 agreements, after one round of searches and listings, RSS was 205–233
/// MB on sled (135–137 idle) and 151 MB on PostgreSQL (81–86 idle); with the threshold fixed
/// (and the titles packed as one byte, ~3 MB), 128–188 and 95–134 MB (124–126 and 73–75 idle;
/// README, *Heap after the listings*): the growth is smaller, and what remains is not yet
/// explained. Setting it also stops glibc from raising its trim threshold (that stays at its
/// default, 128 KiB). Blocks this large are few per request (a page of results, a PDF), and
/// the load test did not move.
pub(crate) fn bound_large_allocations() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
    if tuned || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers; glibc applies the setting under the main arena's
    // lock, and it is called before the server's threads start.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Gives each thread the server starts with a malloc arena of its own, unless the operator
/// set a limit (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`, which then rules): at
/// least 32 arenas, or 8 per core the process may use when higher. glibc's own limit is 8 per
/// online core: this raises it on a machine of fewer than 4 cores, and lowers it where a CPU
/// quota or affinity mask leaves the process fewer cores than the machine has (a container
/// with 2 of 64: 32 rather than 512; more arenas than threads that run at once only hold
/// memory). Called once by `serve`, before the server starts; nothing on other C libraries.
///
/// Past its limit, glibc hands a new thread an arena already in use, in turn, the main
/// thread's included. On two cores the limit is 16 and the server starts ~20 threads (sled's
/// I/O pool keeps 7 waiting), so which thread shared the main thread's arena changed from one
/// start to the next. When one did while the main thread built the index from the store, its
/// long-lived blocks were left among the build's freed pages, and `malloc_trim` could not
/// return them: idle RSS at 100,000 agreements was 63-64 MB after some starts and 69-70 after
/// others; with an arena per thread, 62-65 after sixteen starts of seventeen, 72 after one
/// (README, *Idle after a crash*).
///
/// The cost is under load, where threads that shared now each keep an arena: RSS right after
/// 3,000 signatures was 218-238 MB with 32 arenas, 244-284 with 64 and 195-212 with 16.
pub(crate) fn arena_per_thread() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if tuned || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let arenas = i32::try_from(cores.saturating_mul(8).max(32)).unwrap_or(i32::MAX);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `bound_large_allocations`: no pointers, before the server's threads start.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

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

/// [`return_freed`] a second from now, on the blocking pool, once however many callers ask in
/// that second: for the large listings, whose freed rows and answer are gone by then (the
/// answer is sent, or being sent from blocks large enough to be mapped on their own). Nothing
/// outside a tokio runtime.
///
/// At 100,000 agreements on sled, one `renewal-due` (19,752 agreements), `retention` and full
/// `export.csv` left RSS at 282 MB, 135 MB over idle; `malloc_trim(0)` then took it to 201
/// (README, *The entries out of the index*).
pub(crate) fn return_freed_soon() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static PENDING: AtomicBool = AtomicBool::new(false);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    // Cleared however the task ends (a runtime shutting down drops it mid-sleep), so a later
    // listing can ask again.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            PENDING.store(false, Ordering::Release);
        }
    }
    runtime.spawn(async {
        let clear = Clear;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        drop(clear);
        if let Err(e) = tokio::task::spawn_blocking(return_freed).await {
            tracing::warn!(error = %e, "returning freed memory failed");
        }
    });
}
