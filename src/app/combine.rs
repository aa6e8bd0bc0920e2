//! Combining: concurrent writers' changes applied in one batch by whichever of them holds the
//! write lock (flat combining).
//!
//! Why: under 256 concurrent signers every signature was one sled transaction under the
//! service's write lock, and each sled transaction costs a fixed price however small it is
//! (sled 0.34 takes its global concurrency-control lock for writing and writes its log buffer
//! out around it). Writers that arrive while one holds the lock now queue their jobs; the
//! holder applies the whole queue (at most [`BATCH`] jobs) in one call, hands every writer its
//! own result, and goes on while jobs keep arriving — but at most [`ROUNDS`] batches after
//! the one that answered its own job, so no writer serves the others for long. Then the next
//! waiting writer takes over. A lone writer runs its job at once, as before: nothing waits for
//! company.
//!
//! State: one small mutex over the queue, the results and the `combining` flag, never held
//! while a batch runs; a condvar wakes the writers when results are published or the
//! combiner steps down. Callers are blocking threads (the signer's form runs on the gated
//! blocking pool), never async ones.
//!
//! A batch that panics fails only the writers whose jobs were in it (their result is `None`):
//! the panic is caught where the batch runs, so the combiner goes on serving the queue, and a
//! writer whose own change already landed in an earlier batch is not told it failed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The most jobs applied in one batch (one transaction).
pub(crate) const BATCH: usize = 64;
/// Batches a combiner runs after the one that answered its own job, before it hands over.
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
                let mine_answered = st.results.contains_key(&mine);
                let n = st.queue.len().min(BATCH);
                let (ids, jobs): (Vec<u64>, Vec<J>) = st.queue.drain(..n).unzip();
                drop(st);
                // A panic in the batch (a bug) fails this batch's jobs, not the combiner: its own
                // change may have landed in an earlier batch, and the queue still needs serving.
                // A panic before the store commit writes nothing. One during it (on sled, the
                // batch committed one change at a time after failing as a whole; on PostgreSQL
                // a transaction left open rolls back) or after it (while
                // indexing) can leave changes committed though their writers are told the
                // batch failed: a retry then finds the new state, and the search index and
                // digests miss those changes until the next start rebuilds them from the store.
                // The write lock it held is taken again by `Service::write` despite the poison.
                let results = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch(jobs))) {
                    Ok(results) => results,
                    Err(_) => {
                        tracing::error!(jobs = n, "a batch of changes panicked; its writers are told it failed");
                        Vec::new()
                    }
                };
                st = self.lock();
                let mut results = results.into_iter();
                for id in ids {
                    // A short answer fails the jobs it left out, not the whole batch.
                    st.results.insert(id, results.next());
                }
                self.changed.notify_all();
                if mine_answered {
                    rounds_after_mine += 1;
                }
            }
            st.combining = false;
            // A writer still queued takes over.
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::time::{Duration, Instant};

    const BOUND: Duration = Duration::from_secs(10);

    /// Waits (bounded) until `n` jobs are queued behind the running batch.
    fn wait_queued<J, R>(c: &Combiner<J, R>, n: usize) {
        let deadline = Instant::now() + BOUND;
        while c.lock().queue.len() < n {
            assert!(Instant::now() < deadline, "the writers never queued");
            std::thread::yield_now();
        }
    }

    /// A batch that holds the first writer's job until the test lets it go: it reports that it
    /// started, then waits (bounded) for the go.
    struct Hold {
        started: Sender<()>,
        go: Mutex<Receiver<()>>,
        /// A batch holding this job panics.
        panic_on: Option<u32>,
    }

    /// Writer `job` on a thread of its own, its answer sent to `answers`; every batch it runs is
    /// recorded in `batches`, and a batch of the job `held` alone waits for `hold`'s go.
    fn writer(
        c: &Arc<Combiner<u32, u32>>,
        job: u32,
        batches: &Arc<Mutex<Vec<Vec<u32>>>>,
        hold: &Arc<Hold>,
        answers: &Sender<(u32, Option<u32>)>,
    ) {
        let (c, batches, hold, answers) = (c.clone(), batches.clone(), hold.clone(), answers.clone());
        std::thread::spawn(move || {
            let answer = c.run(job, |jobs| {
                if jobs == [0] {
                    hold.started.send(()).expect("the test listens");
                    hold.go.lock().expect("go").recv_timeout(BOUND).expect("the test lets the batch go");
                }
                batches.lock().expect("batches").push(jobs.clone());
                if hold.panic_on.is_some_and(|p| jobs.contains(&p)) {
                    panic!("a bug in the batch");
                }
                jobs.iter().map(|j| j * 10).collect()
            });
            let _ = answers.send((job, answer));
        });
    }

    /// Every writer's answer (sorted by job), the batches as run, and the combiner.
    type Outcome = (Vec<(u32, Option<u32>)>, Vec<Vec<u32>>, Arc<Combiner<u32, u32>>);

    /// Runs job 0, then `others` writers behind it while its batch is held; returns every
    /// answer (sorted by job) and the batches as run.
    fn scenario(others: u32, panic_on: Option<u32>) -> Outcome {
        let c: Arc<Combiner<u32, u32>> = Arc::default();
        let batches: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let (started, started_rx) = channel();
        let (go, go_rx) = channel();
        let hold = Arc::new(Hold { started, go: Mutex::new(go_rx), panic_on });
        let (answers, answers_rx) = channel();
        writer(&c, 0, &batches, &hold, &answers);
        started_rx.recv_timeout(BOUND).expect("the first batch starts");
        for job in 1..=others {
            writer(&c, job, &batches, &hold, &answers);
        }
        wait_queued(&c, others as usize);
        go.send(()).expect("the batch listens");
        let mut got: Vec<(u32, Option<u32>)> =
            (0..=others).map(|_| answers_rx.recv_timeout(BOUND).expect("every writer is answered")).collect();
        got.sort();
        let batches = batches.lock().expect("batches").clone();
        (got, batches, c)
    }

    #[test]
    fn writers_arriving_while_a_batch_runs_are_served_together_in_one_batch() {
        let (answers, batches, c) = scenario(5, None);
        assert_eq!(answers, (0..=5).map(|j| (j, Some(j * 10))).collect::<Vec<_>>());
        assert_eq!(batches.len(), 2, "{batches:?}");
        let mut second = batches[1].clone();
        second.sort();
        assert_eq!(second, [1, 2, 3, 4, 5]);
        let st = c.lock();
        assert!(st.results.is_empty() && st.queue.is_empty() && !st.combining);
    }

    #[test]
    fn a_combiner_hands_over_after_its_rounds_and_batches_stay_within_their_bound() {
        // 300 writers behind the first: it runs its own batch, then ROUNDS full batches, then
        // steps down, and one of the writers still queued serves the rest.
        let (answers, batches, c) = scenario(300, None);
        assert_eq!(answers, (0..=300).map(|j| (j, Some(j * 10))).collect::<Vec<_>>());
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, BATCH, BATCH, BATCH, BATCH, 300 - ROUNDS * BATCH], "{sizes:?}");
        let st = c.lock();
        assert!(st.results.is_empty() && st.queue.is_empty() && !st.combining);
    }

    #[test]
    fn a_batch_that_panics_fails_only_its_own_writers_and_the_combiner_goes_on() {
        // The batch holding job 13 panics: its writers are told it failed; the combiner's own
        // change, answered in the batch before, stands, and the next batch is served.
        let (answers, batches, c) = scenario(100, Some(13));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [1, 64, 36]);
        let failed = batches.iter().find(|b| b.contains(&13)).expect("the batch that panicked");
        for (job, answer) in &answers {
            assert_eq!(*answer, if failed.contains(job) { None } else { Some(job * 10) }, "job {job}");
        }
        let st = c.lock();
        assert!(st.results.is_empty() && st.queue.is_empty() && !st.combining);
        drop(st);
        assert_eq!(c.run(7, |jobs| jobs), Some(7), "a new writer is served");
    }

    #[test]
    fn a_short_answer_fails_only_the_jobs_it_left_out() {
        let c: Combiner<u32, u32> = Combiner::default();
        assert_eq!(c.run(1, |_| Vec::new()), None);
        assert_eq!(c.run(2, |jobs| jobs), Some(2));
        assert!(c.lock().results.is_empty());
    }
}
