//! Combining: concurrent writers' changes applied in one batch by whichever of them holds the
//! write lock (flat combining).
//!
//! Why: under 256 concurrent signers every signature was one sled transaction under the
//! service's write lock, and each sled transaction costs a fixed price however small it is
//! (sled 0.34 takes its global concurrency-control lock for writing and writes its log buffer
//! out around it). Writers that arrive while one holds the lock now queue their jobs; the
//! holder applies the whole queue (at most [`BATCH`] jobs) in one call, hands every writer its
//! own result, and goes on while jobs keep arriving — but at most [`ROUNDS`] batches once its
//! own job is done, so no writer serves the others for long. Then the next waiting writer
//! takes over. A lone writer runs its job at once, as before: nothing waits for company.
//!
//! State: one small mutex over the queue, the results and the `combining` flag, never held
//! while a batch runs; a condvar wakes the writers when results are published or the
//! combiner steps down. Callers are blocking threads (the signer's form runs on the gated
//! blocking pool), never async ones.
//!
//! A batch that panics fails only the writers whose jobs were in it (their result is `None`)
//! and the combiner's flag is cleared on the way out, so nobody waits for a batch that will
//! never answer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The most jobs applied in one batch (one transaction).
pub(crate) const BATCH: usize = 64;
/// Batches a combiner runs after its own job is done before it hands over.
pub(crate) const ROUNDS: usize = 4;

struct State<J, R> {
    /// The next job's number.
    next: u64,
    /// Jobs waiting for a batch, oldest first.
    queue: VecDeque<(u64, J)>,
    /// Answers not yet collected by their writer; `None`: the job's batch failed.
    results: HashMap<u64, Option<R>>,
    /// A writer is running batches.
    combining: bool,
}

pub(crate) struct Combiner<J, R> {
    state: Mutex<State<J, R>>,
    /// Results published, or the combiner stepped down.
    changed: Condvar,
}

impl<J, R> Default for Combiner<J, R> {
    fn default() -> Self {
        Combiner {
            state: Mutex::new(State { next: 0, queue: VecDeque::new(), results: HashMap::new(), combining: false }),
            changed: Condvar::new(),
        }
    }
}

impl<J, R> Combiner<J, R> {
    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // Never held while a batch runs, so a panic cannot leave it half updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job`, alone or in a batch with other writers' jobs, and returns its result; `None`
    /// when its batch panicked or answered fewer results than it was given jobs. `batch` gets
    /// the jobs in the order they arrived and must answer one result per job, in that order;
    /// it runs on whichever writer's thread is combining, so every caller passes the same
    /// work (it takes the write lock itself).
    pub(crate) fn run(&self, job: J, batch: impl Fn(Vec<J>) -> Vec<R>) -> Option<R> {
        let mut st = self.lock();
        let mine = st.next;
        st.next += 1;
        st.queue.push_back((mine, job));
        loop {
            if let Some(result) = st.results.remove(&mine) {
                return result;
            }
            if st.combining {
                st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.combining = true;
            let mut rounds_after_mine = 0;
            while !st.queue.is_empty() && rounds_after_mine < ROUNDS {
                let n = st.queue.len().min(BATCH);
                let (ids, jobs): (Vec<u64>, Vec<J>) = st.queue.drain(..n).unzip();
                drop(st);
                let publish = Publish { combiner: self, ids, mine, answered: None };
                let results = batch(jobs);
                st = publish.done(results);
                if st.results.contains_key(&mine) {
                    rounds_after_mine += 1;
                }
            }
            st.combining = false;
            // A writer still queued takes over.
            self.changed.notify_all();
        }
    }
}

/// Publishes a batch's results; dropped without [`Publish::done`] (the batch panicked), it
/// answers `None` to the batch's writers and clears the combining flag, so that none of them
/// waits for ever and the next one takes over.
struct Publish<'a, J, R> {
    combiner: &'a Combiner<J, R>,
    ids: Vec<u64>,
    /// The combiner's own job: on a panic its writer is the one unwinding, so no answer is left
    /// for it (nobody would collect it).
    mine: u64,
    answered: Option<()>,
}

impl<'a, J, R> Publish<'a, J, R> {
    fn done(mut self, results: Vec<R>) -> MutexGuard<'a, State<J, R>> {
        let mut st = self.combiner.lock();
        let mut results = results.into_iter();
        for id in self.ids.drain(..) {
            // A short answer fails the jobs it left out, not the whole batch.
            st.results.insert(id, results.next());
        }
        self.answered = Some(());
        self.combiner.changed.notify_all();
        st
    }
}

impl<J, R> Drop for Publish<'_, J, R> {
    fn drop(&mut self) {
        if self.answered.is_some() {
            return;
        }
        let mut st = self.combiner.lock();
        for &id in &self.ids {
            if id != self.mine {
                st.results.insert(id, None);
            }
        }
        // The unwinding combiner's answer from an earlier batch, if any, is collected by nobody.
        st.results.remove(&self.mine);
        st.combining = false;
        self.combiner.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Waits (bounded) until `n` jobs are queued behind the running batch.
    fn wait_queued<J, R>(c: &Combiner<J, R>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.lock().queue.len() < n {
            assert!(Instant::now() < deadline, "the writers never queued");
            std::thread::yield_now();
        }
    }

    #[test]
    fn writers_arriving_while_a_batch_runs_are_served_together_in_one_batch() {
        let c: Arc<Combiner<u32, u32>> = Arc::default();
        let batches: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        // The first writer's batch holds until the other five have queued.
        let gate = Arc::new(std::sync::Barrier::new(2));
        let first = {
            let (c, batches, gate) = (c.clone(), batches.clone(), gate.clone());
            std::thread::spawn(move || {
                c.run(0, |jobs| {
                    if jobs == [0] {
                        gate.wait();
                        gate.wait();
                    }
                    batches.lock().unwrap().push(jobs.clone());
                    jobs.iter().map(|j| j * 10).collect()
                })
            })
        };
        gate.wait();
        let others: Vec<_> = (1..=5)
            .map(|j| {
                let (c, batches) = (c.clone(), batches.clone());
                std::thread::spawn(move || {
                    c.run(j, |jobs| {
                        batches.lock().unwrap().push(jobs.clone());
                        jobs.iter().map(|j| j * 10).collect()
                    })
                })
            })
            .collect();
        wait_queued(&c, 5);
        gate.wait();
        assert_eq!(first.join().unwrap(), Some(0));
        let mut answers: Vec<_> = others.into_iter().map(|t| t.join().unwrap()).collect();
        answers.sort();
        assert_eq!(answers, [Some(10), Some(20), Some(30), Some(40), Some(50)]);
        let batches = batches.lock().unwrap();
        assert_eq!(batches.len(), 2, "{batches:?}");
        let mut second = batches[1].clone();
        second.sort();
        assert_eq!(second, [1, 2, 3, 4, 5]);
        let st = c.lock();
        assert!(st.results.is_empty() && st.queue.is_empty() && !st.combining);
    }

    #[test]
    fn a_batch_that_panics_fails_its_writers_and_the_next_writer_takes_over() {
        let c: Arc<Combiner<u32, u32>> = Arc::default();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let first = {
            let (c, gate) = (c.clone(), gate.clone());
            std::thread::spawn(move || {
                c.run(0, |jobs| {
                    gate.wait();
                    gate.wait();
                    if jobs.contains(&0) {
                        // The first batch (job 0) succeeds; the second, with the others, panics.
                        return jobs;
                    }
                    panic!("a bug in the batch")
                })
            })
        };
        gate.wait();
        let victims: Vec<_> = (1..=3)
            .map(|j| {
                let c = c.clone();
                std::thread::spawn(move || c.run(j, |jobs| jobs))
            })
            .collect();
        wait_queued(&c, 3);
        gate.wait();
        // The first writer's second batch panics: the gate is passed twice more.
        gate.wait();
        gate.wait();
        assert!(first.join().is_err(), "the combiner's own thread unwinds");
        for v in victims {
            assert_eq!(v.join().unwrap(), None, "a writer of the failed batch is told so");
        }
        // Nothing is left behind, and a new writer is served.
        assert!(c.lock().results.is_empty());
        assert_eq!(c.run(7, |jobs| jobs), Some(7));
        assert!(!c.lock().combining);
    }

    #[test]
    fn a_short_answer_fails_only_the_jobs_it_left_out() {
        let c: Combiner<u32, u32> = Combiner::default();
        assert_eq!(c.run(1, |_| Vec::new()), None);
        assert_eq!(c.run(2, |jobs| jobs), Some(2));
        assert!(c.lock().results.is_empty());
    }
}
