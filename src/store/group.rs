//! Group commit: many writers, one flush + fsync.
//!
//! A writer applies its transaction (in sled's memory and log buffers), takes a ticket, and
//! waits until a flush that *started after* its ticket was issued has finished. The first
//! waiter to find no flush running becomes the flusher: it notes the highest ticket issued so
//! far, flushes and fsyncs, marks everything up to that ticket durable and wakes all waiters.
//! Writers that arrive during a flush wait for the next one, which covers all of them at once.
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
    /// A flush is running (its waiters sleep on the condvar).
    flushing: bool,
    /// Flushes performed (for tests and the bench: how many commits shared each fsync).
    flushes: u64,
}

#[derive(Default)]
pub struct GroupCommit {
    // One small mutex for the bookkeeping only; it is never held during the flush itself.
    state: Mutex<State>,
    done: Condvar,
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

    /// Returns once the write behind `ticket` is durable, running `flush` (flush + fsync of the
    /// whole store) if no other thread is running one.
    pub fn wait(&self, ticket: u64, flush: impl Fn() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut s = self.lock();
        loop {
            if s.durable >= ticket {
                return Ok(());
            }
            if s.flushing {
                s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.flushing = true;
            let target = s.issued;
            drop(s);
            let result = flush();
            s = self.lock();
            s.flushing = false;
            if result.is_ok() {
                s.durable = s.durable.max(target);
                s.flushes += 1;
            }
            self.done.notify_all();
            result?;
        }
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
