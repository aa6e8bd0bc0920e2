//! Caches of a render's repeated work, bounded by bytes: entries filed by a CRC-32 of what they
//! depend on, found by comparing all of it, and, when the budget is spent, all dropped at once
//! (the next documents refill them).
//!
//! Most of an agreement is the same in every document of a template version (boilerplate
//! clauses do not depend on the intake), so the folding of the check, the line breaks of the
//! layout and the compressed page streams of the PDF are worth keeping. A hit compares the whole
//! key, so it gives exactly what the work would have: the output never depends on what a cache
//! holds. CRC-32 rather than SipHash: it is vectorised, these hash every paragraph of every
//! render, and a hit compares the key anyway.
//!
//! Two kinds, one interface:
//! * [`Shelf`], shared by every thread behind a mutex, for the large entries (page streams): the
//!   server renders on its blocking pool, whose threads come and go, and a copy of a few
//!   megabytes per thread would multiply by them. The lock is held for a lookup or an insert
//!   only; hashing, comparing and the work itself happen outside it.
//! * [`LocalShelf`], one per thread (in a `thread_local!`), for small entries looked up many
//!   times per render (markup sections, folded clause texts, laid-out clauses, wrapped
//!   paragraphs): no lock on the hot path. Each keeps little: the four budgets add up to 5 MB a
//!   thread, counted from the entries' sizes, and a thread's caches go with it (the server's
//!   blocking threads exit after ten idle seconds), so a burst of N concurrent renders can hold
//!   up to 5 MB × N for that long.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

/// Entries by checksum (a bucket holds those whose checksums collide), and the bytes they cost.
type Buckets<P> = (HashMap<u32, Vec<P>>, usize);

/// A cache shared by every thread (see the module documentation).
pub(super) struct Shelf<E> {
    map: Mutex<Buckets<Arc<E>>>,
    budget: usize,
}

impl<E> Shelf<E> {
    pub(super) fn new(budget: usize) -> Shelf<E> {
        Shelf { map: Mutex::new((HashMap::new(), 0)), budget }
    }

    /// The entry filed under `crc` for which `same` holds.
    pub(super) fn find(&self, crc: u32, same: impl Fn(&E) -> bool) -> Option<Arc<E>> {
        // Take the candidates' handles under the lock, compare outside it. A poisoned lock
        // only means another thread panicked holding it; the map is still a valid map.
        let bucket: Vec<Arc<E>> = {
            let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.0.get(&crc)?.clone()
        };
        bucket.into_iter().find(|e| same(e))
    }

    /// Files `entry` under `crc`, counting `cost` bytes against the budget. An entry costing
    /// more than the whole budget is not kept.
    pub(super) fn put(&self, crc: u32, entry: Arc<E>, cost: usize) {
        if cost > self.budget {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.1 + cost > self.budget {
            map.0.clear();
            map.1 = 0;
        }
        map.0.entry(crc).or_default().push(entry);
        map.1 += cost;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.lock().map(|m| m.0.values().map(Vec::len).sum()).unwrap_or(0)
    }
}

/// One thread's cache (see the module documentation): [`Shelf`] without the lock.
pub(super) struct LocalShelf<E> {
    map: RefCell<Buckets<Rc<E>>>,
    budget: usize,
}

impl<E> LocalShelf<E> {
    pub(super) fn new(budget: usize) -> LocalShelf<E> {
        LocalShelf { map: RefCell::new((HashMap::new(), 0)), budget }
    }

    /// The entry filed under `crc` for which `same` holds.
    pub(super) fn find(&self, crc: u32, same: impl Fn(&E) -> bool) -> Option<Rc<E>> {
        self.map.borrow().0.get(&crc)?.iter().find(|e| same(e)).cloned()
    }

    /// Whether an entry costing `cost` is worth keeping: at most a sixteenth of the budget, so
    /// one long paragraph or section (an intake's own exhibit) does not push out the
    /// boilerplate every document shares. Callers ask before building the entry they would keep.
    pub(super) fn keeps(&self, cost: usize) -> bool {
        cost <= self.budget / 16
    }

    /// Files `entry` under `crc`, counting `cost` bytes against the budget. An entry costing
    /// more than the whole budget is not kept.
    pub(super) fn put(&self, crc: u32, entry: E, cost: usize) {
        if cost > self.budget {
            return;
        }
        let (map, bytes) = &mut *self.map.borrow_mut();
        if *bytes + cost > self.budget {
            map.clear();
            *bytes = 0;
        }
        map.entry(crc).or_default().push(Rc::new(entry));
        *bytes += cost;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.borrow().0.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shelf_finds_only_the_entry_whose_key_compares_equal_and_starts_again_when_full() {
        let shared: Shelf<String> = Shelf::new(10);
        let local: LocalShelf<String> = LocalShelf::new(10);
        // Two keys filed under one checksum: the comparison, not the checksum, decides.
        shared.put(7, Arc::new("ab".into()), 4);
        shared.put(7, Arc::new("cd".into()), 4);
        local.put(7, "ab".into(), 4);
        local.put(7, "cd".into(), 4);
        assert_eq!(shared.find(7, |e| e == "cd").as_deref().map(String::as_str), Some("cd"));
        assert_eq!(local.find(7, |e| e == "cd").as_deref().map(String::as_str), Some("cd"));
        assert!(shared.find(7, |e| e == "ef").is_none() && local.find(7, |e| e == "ef").is_none());
        assert!(shared.find(8, |_| true).is_none() && local.find(8, |_| true).is_none());
        // Over the budget, everything goes and the newcomer stays.
        shared.put(9, Arc::new("ef".into()), 4);
        local.put(9, "ef".into(), 4);
        assert_eq!((shared.len(), local.len()), (1, 1));
        assert!(shared.find(7, |_| true).is_none() && local.find(7, |_| true).is_none());
        assert!(shared.find(9, |e| e == "ef").is_some() && local.find(9, |e| e == "ef").is_some());
        // An entry dearer than the whole budget is not kept, and drops nothing.
        assert!(local.keeps(0) && !local.keeps(1), "a sixteenth of 10 bytes is nothing");
        assert!(LocalShelf::<String>::new(160).keeps(10) && !LocalShelf::<String>::new(160).keeps(11));
        shared.put(1, Arc::new("big".into()), 11);
        local.put(1, "big".into(), 11);
        assert_eq!((shared.len(), local.len()), (1, 1));
    }
}
