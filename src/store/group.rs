//! Group commit: many writers, one flush + fsync.
//!
//! A writer applies its transaction (in sled's memory and log buffers), takes a ticket, and
//! waits until a flush that *started after* its ticket was issued has finished. The first
//! waiter to find no flush running becomes the flusher: it notes the highest ticket issued so
//! far, flushes and fsyncs, marks everything up to that ticket durable and wakes all waiters.
//! Writers that arrive during a flush wait for the next one, which covers all of them at once.
//! A writer on an async thread waits the same way without holding a thread ([`wait_async`]):
//! the flush it may have to run goes to the blocking pool, and waiters are woken by a notify.
//!
//! Why this is safe: a ticket is issued only after the writer's transaction has returned, so any
//! flush that starts afterwards writes it out (sled's flush covers every write reserved before
//! the call). A writer is released only when `durable >= ticket`, i.e. after such a flush
//! succeeded; a failed flush releases nobody (each waiter then tries to flush itself and sees
//! the error). Nothing is acknowledged before its fsync — the guarantee is the one a per-commit
//! fsync gives, only shared.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::StoreError;

#[derive(Default)]
struct State {
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// A flush is running (its waiters sleep on the condvar, or await the notify).
    flushing: bool,
    /// Flushes performed (for tests and the bench: how many commits shared each fsync).
    flushes: u64,
}

/// What a waiter should do next ([`GroupCommit::begin`]).
pub enum Next {
    /// Its write is on disk.
    Durable,
    /// Another flush is running: wait for it to finish, then ask again.
    Wait,
    /// No flush is running: run one (flush + fsync of the whole store), then report it with
    /// [`GroupCommit::finish`] and this target.
    Flush(u64),
}

/// Where a ticket stands ([`GroupCommit::peek`]).
pub enum Peek {
    Durable,
    /// A flush is running.
    Flushing,
    /// No flush is running: someone must start one.
    Idle,
}

#[derive(Default)]
pub struct GroupCommit {
    // One small mutex for the bookkeeping only; it is never held during the flush itself.
    state: Mutex<State>,
    /// Wakes the threads waiting in [`GroupCommit::wait`].
    done: Condvar,
    /// Wakes the tasks waiting without a thread (see `SledStore::sync_async`): 256 signers
    /// waiting for one fsync are then 256 parked futures, not 256 blocked threads that the
    /// kernel must wake one by one.
    notify: tokio::sync::Notify,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters updated together; a panic elsewhere cannot corrupt them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for a write that has been applied (call after the write returned).
    pub fn ticket(&self) -> u64 {
        let mut s = self.lock();
        s.issued += 1;
        s.issued
    }

    /// How many flushes have run so far.
    pub fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// One step of waiting for `ticket`: whether it is durable, a flush is running, or the caller
    /// is to flush (it must then call [`GroupCommit::finish`] whatever happens).
    pub fn begin(&self, ticket: u64) -> Next {
        Self::step(&mut self.lock(), ticket)
    }

    /// Where `ticket` stands, without claiming a flush.
    pub fn peek(&self, ticket: u64) -> Peek {
        let s = self.lock();
        if s.durable >= ticket {
            Peek::Durable
        } else if s.flushing {
            Peek::Flushing
        } else {
            Peek::Idle
        }
    }

    fn step(s: &mut State, ticket: u64) -> Next {
        if s.durable >= ticket {
            Next::Durable
        } else if s.flushing {
            Next::Wait
        } else {
            s.flushing = true;
            Next::Flush(s.issued)
        }
    }

    /// Reports the flush [`Next::Flush`] asked for: on success everything up to `target` is
    /// durable. Either way the flush is over and every waiter, thread or task, is woken.
    pub fn finish(&self, target: u64, ok: bool) {
        let mut s = self.lock();
        s.flushing = false;
        if ok {
            s.durable = s.durable.max(target);
            s.flushes += 1;
        }
        drop(s);
        self.done.notify_all();
        self.notify.notify_waiters();
    }

    /// Returns once the write behind `ticket` is durable, running `flush` (flush + fsync of the
    /// whole store) if no other thread is running one.
    pub fn wait(&self, ticket: u64, flush: impl Fn() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut s = self.lock();
        loop {
            match Self::step(&mut s, ticket) {
                Next::Durable => return Ok(()),
                Next::Wait => s = self.done.wait(s).unwrap_or_else(|p| p.into_inner()),
                Next::Flush(target) => {
                    drop(s);
                    let mut report = Finish { group: self, target, ok: false };
                    let result = flush();
                    report.ok = result.is_ok();
                    drop(report);
                    result?;
                    s = self.lock();
                }
            }
        }
    }
}

/// [`GroupCommit::wait`] for async callers: waits without a thread (a parked future woken by
/// [`GroupCommit::finish`]). When no flush is running, it asks the blocking pool to run one; the
/// flush is claimed there, on the thread that runs it, and reported there (also when it panics),
/// so the bookkeeping ends even if this future is dropped. Claiming it on the async thread and
/// then queueing it could deadlock: threads of a saturated pool waiting in
/// [`GroupCommit::wait`] for a flush marked running that no thread is left to run. Like `wait`,
/// a failed flush releases nobody, and the waiter that ran it gets its error.
pub async fn wait_async<S: Send + Sync + 'static>(
    owner: std::sync::Arc<S>,
    group: fn(&S) -> &GroupCommit,
    ticket: u64,
    flush: fn(&S) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    loop {
        // Registered before the state is read, so a flush finishing in between still wakes it.
        let finished = group(&owner).notify.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        match group(&owner).peek(ticket) {
            Peek::Durable => return Ok(()),
            Peek::Flushing => finished.await,
            Peek::Idle => {
                let owner = owner.clone();
                let flushed = tokio::task::spawn_blocking(move || match group(&owner).begin(ticket) {
                    // Made durable, or another flush started, meanwhile: the loop sees which.
                    Next::Durable | Next::Wait => Ok(()),
                    Next::Flush(target) => {
                        let mut report = Finish { group: group(&owner), target, ok: false };
                        let result = flush(&owner);
                        report.ok = result.is_ok();
                        result
                    }
                })
                .await;
                flushed.map_err(|e| StoreError::Io(format!("the flush failed: {e}")))??;
            }
        }
    }
}

/// Reports a flush to its group when dropped, so that a flush that panics still ends (as
/// failed) and its waiters go on.
pub struct Finish<'a> {
    pub group: &'a GroupCommit,
    pub target: u64,
    pub ok: bool,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.group.finish(self.target, self.ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_writers_share_flushes_and_each_is_released_only_after_a_flush_covering_it() {
        let g = Arc::new(GroupCommit::default());
        // `written` is what a flush makes durable: the highest write applied when it started.
        let applied = Arc::new(AtomicU64::new(0));
        let on_disk = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (g, applied, on_disk) = (g.clone(), applied.clone(), on_disk.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mine = applied.fetch_add(1, Ordering::SeqCst) + 1;
                        let t = g.ticket();
                        g.wait(t, || {
                            let upto = applied.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(1));
                            on_disk.fetch_max(upto, Ordering::SeqCst);
                            Ok(())
                        })
                        .expect("flush");
                        assert!(on_disk.load(Ordering::SeqCst) >= mine, "released before its write was on disk");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let flushes = g.flushes();
        assert!(flushes >= 1);
        assert!(flushes < 800, "800 commits from 16 threads shared no flush ({flushes} flushes)");
    }

    /// A store stand-in: what its flush makes durable is the highest write applied when it started.
    #[derive(Default)]
    struct Disk {
        group: GroupCommit,
        applied: AtomicU64,
        on_disk: AtomicU64,
        fail: std::sync::atomic::AtomicBool,
    }

    fn disk_flush(d: &Disk) -> Result<(), StoreError> {
        let upto = d.applied.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(1));
        if d.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk full".into()));
        }
        d.on_disk.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    #[test]
    fn async_and_thread_waiters_share_flushes_and_each_is_released_only_after_a_flush_covering_it() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let disk = Arc::new(Disk::default());
        rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..64 {
                let disk = disk.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..20 {
                        let mine = disk.applied.fetch_add(1, Ordering::SeqCst) + 1;
                        let t = disk.group.ticket();
                        wait_async(disk.clone(), |d| &d.group, t, disk_flush).await.expect("flush");
                        assert!(disk.on_disk.load(Ordering::SeqCst) >= mine, "released before its write was on disk");
                    }
                }));
            }
            // Threads waiting the blocking way at the same time, on the same group.
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let disk = disk.clone();
                    std::thread::spawn(move || {
                        for _ in 0..20 {
                            let mine = disk.applied.fetch_add(1, Ordering::SeqCst) + 1;
                            let t = disk.group.ticket();
                            disk.group.wait(t, || disk_flush(&disk)).expect("flush");
                            assert!(
                                disk.on_disk.load(Ordering::SeqCst) >= mine,
                                "released before its write was on disk"
                            );
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("waiter task");
            }
            for t in threads {
                t.join().expect("waiter thread");
            }
        });
        let flushes = disk.group.flushes();
        assert!(flushes >= 1);
        assert!(flushes < 1360, "1,360 commits from 68 waiters shared no flush ({flushes} flushes)");
    }

    #[test]
    fn an_async_waiter_whose_flush_fails_gets_the_error_and_a_later_one_flushes_again() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let disk = Arc::new(Disk::default());
        rt.block_on(async {
            disk.applied.store(1, Ordering::SeqCst);
            let t = disk.group.ticket();
            disk.fail.store(true, Ordering::SeqCst);
            let err = wait_async(disk.clone(), |d| &d.group, t, disk_flush).await;
            assert!(matches!(err, Err(StoreError::Io(_))), "{err:?}");
            assert_eq!((disk.group.flushes(), disk.on_disk.load(Ordering::SeqCst)), (0, 0));
            // The failed flush left no flush running: the next waiter flushes, and is released.
            disk.fail.store(false, Ordering::SeqCst);
            wait_async(disk.clone(), |d| &d.group, t, disk_flush).await.expect("second flush");
            assert_eq!((disk.group.flushes(), disk.on_disk.load(Ordering::SeqCst)), (1, 1));
        });
    }

    #[test]
    fn a_flush_that_panics_ends_as_failed_and_the_next_waiter_flushes_again() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let disk = Arc::new(Disk::default());
        rt.block_on(async {
            let t = disk.group.ticket();
            let err = wait_async(disk.clone(), |d| &d.group, t, |_| panic!("flush panicked")).await;
            assert!(matches!(err, Err(StoreError::Io(_))), "{err:?}");
            wait_async(disk.clone(), |d| &d.group, t, disk_flush).await.expect("next flush");
            assert_eq!(disk.group.flushes(), 1);
        });
    }

    #[test]
    fn an_async_waiter_never_leaves_a_flush_claimed_that_no_thread_runs() {
        // A blocking pool of one thread, busy when the async waiter asks for its flush. The
        // flush waits in the pool's queue unclaimed, so when the busy thread then waits the
        // blocking way on the same group it flushes itself, instead of waiting forever for a
        // flush marked running that no thread is left to run.
        let rt = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let disk = Arc::new(Disk::default());
        let outcome = rt.block_on(async {
            let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let d = disk.clone();
            let holder = tokio::task::spawn_blocking(move || {
                held_tx.send(()).expect("held");
                release_rx.recv().expect("release");
                let t = d.group.ticket();
                d.group.wait(t, || disk_flush(&d))
            });
            held_rx.recv().expect("the pool's thread is busy");
            let t = disk.group.ticket();
            let waiter = tokio::spawn(wait_async(disk.clone(), |d| &d.group, t, disk_flush));
            // One turn of this single-threaded runtime: the waiter runs up to its queued flush.
            tokio::task::yield_now().await;
            release_tx.send(()).expect("release");
            let both = async { (holder.await.expect("holder"), waiter.await.expect("waiter")) };
            tokio::pin!(both);
            match tokio::time::timeout(std::time::Duration::from_secs(30), &mut both).await {
                Ok(done) => Ok(done),
                Err(_) => {
                    // Deadlocked: end the claimed flush so the threads can finish, then fail.
                    disk.group.finish(0, false);
                    let _ = both.await;
                    Err("the thread waited for a flush claimed by a task that no thread could run")
                }
            }
        });
        let (holder, waiter) = outcome.expect("no deadlock between the two kinds of waiter");
        holder.expect("the thread's flush");
        waiter.expect("the task's wait");
        assert!(disk.group.flushes() >= 1);
        rt.shutdown_timeout(std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_failed_flush_releases_nobody_and_the_next_waiter_flushes_again() {
        let g = GroupCommit::default();
        let t = g.ticket();
        let err = g.wait(t, || Err(StoreError::Io("disk full".into())));
        assert!(matches!(err, Err(StoreError::Io(_))));
        assert_eq!(g.flushes(), 0);
        g.wait(t, || Ok(())).expect("second flush");
        assert_eq!(g.flushes(), 1);
        // Already durable: no further flush.
        g.wait(t, || panic!("no flush needed")).expect("durable");
    }
}
