//! Decoded agreements kept beside sled's page cache, for the read that repeats: every view of
//! a signer page and every form posted verifies its link by reading the agreement
//! ([`super::Store::agreement_shared`]). Reading the record from sled's page cache is cheap;
//! decoding its ~2.6 KB of JSON into an `Agreement` was the larger part of the signer page's
//! cost in the store (9.4 % of the page's CPU against ~3 % for the read, perf, 2026-12-02).
//!
//! The cache needs no invalidation and cannot serve a stale agreement: each entry keeps the
//! record's bytes it was decoded from, every lookup reads the record from the store first, and
//! an entry is used only when its bytes equal what the store holds now (a `memcmp` of ~2.6 KB).
//! A write by any path (a commit, a migration, a restore in another process before this one
//! opened) changes the bytes, and the next read decodes again. Two readers racing on different
//! revisions can only replace each other's entry: a hit rate question, never a correctness one.
//!
//! Bounded: at most [`CAPACITY`] entries and [`BUDGET`] bytes of records, split evenly over
//! [`SHARDS`] shards (each entry also holds its decoded copy, about twice its record: ~7 KB
//! for the example's 2.6 KB, so ~28 MB when full of such, and at most ~50 MB whatever records
//! hold); a record over [`MAX_RECORD`] is decoded every time and not kept. A full shard drops
//! arbitrary entries of its own. Only links that are verified (a genuine MAC) reach it, so an
//! attacker cannot fill it with made-up ids. Shards, each behind its own mutex, so the async
//! workers that verify links do not queue on one lock; a lock is held for a hash lookup and a
//! compare, never for a decode.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use crate::domain::agreement::Agreement;

/// Agreements kept at most (the agreements whose signers are reading or signing now).
pub const CAPACITY: usize = 4096;
/// Bytes of records kept at most.
pub const BUDGET: usize = 16 << 20;
/// A record longer than this (an agreement with very many signers) is not kept.
pub const MAX_RECORD: usize = 64 << 10;
const SHARDS: usize = 16;

/// A kept agreement: the record's bytes it was decoded from, and the decoded copy.
type Entry = (Box<[u8]>, Arc<Agreement>);

#[derive(Default)]
struct Shard {
    map: HashMap<Box<str>, Entry>,
    /// The record bytes the map holds.
    bytes: usize,
}

pub struct DecodedCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for DecodedCache {
    fn default() -> Self {
        DecodedCache { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl DecodedCache {
    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, Shard> {
        // A poisoned shard (a panic while held: only map operations, the byte count updated
        // with them) is still a valid shard.
        self.shards[self.hasher.hash_one(id) as usize % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agreement the record `raw` (read from the store just now, for `id`) holds: the kept
    /// copy when it was decoded from these very bytes, else decoded now and kept.
    pub fn decode(&self, id: &str, raw: &[u8]) -> Result<Arc<Agreement>, serde_json::Error> {
        if let Some((bytes, a)) = self.shard(id).map.get(id)
            && **bytes == *raw
        {
            return Ok(a.clone());
        }
        let a: Arc<Agreement> = Arc::new(serde_json::from_slice(raw)?);
        if raw.len() > MAX_RECORD {
            return Ok(a);
        }
        let mut shard = self.shard(id);
        if let Some((old, _)) = shard.map.remove(id) {
            shard.bytes -= old.len();
        }
        while shard.map.len() >= CAPACITY / SHARDS || shard.bytes + raw.len() > BUDGET / SHARDS {
            let Some(victim) = shard.map.keys().next().cloned() else { break };
            if let Some((old, _)) = shard.map.remove(&victim) {
                shard.bytes -= old.len();
            }
        }
        shard.bytes += raw.len();
        shard.map.insert(id.into(), (raw.into(), a.clone()));
        Ok(a)
    }

    /// Entries held now (for tests and the bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len()).sum()
    }

    /// Record bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, title: &str, revision: u64) -> Vec<u8> {
        let a = serde_json::json!({
            "id": id, "kind": "baa", "title": title, "upstream_name": "Up", "downstream_name": "Down",
            "status": "draft", "version": 1, "document_sha256": "", "check_passes": true, "created_at": 1,
            "updated_at": 1, "created_by": "test", "sent_at": null, "sent_by": null, "sent_sha256": null,
            "executed_at": null, "final_sha256": null, "void_reason": null, "signers": [], "revision": revision
        });
        serde_json::to_vec(&a).expect("encodes")
    }

    #[test]
    fn the_same_bytes_give_the_kept_copy_and_changed_bytes_a_fresh_decode() {
        let cache = DecodedCache::default();
        let first = cache.decode("ag_1", &record("ag_1", "Before", 1)).expect("decodes");
        let again = cache.decode("ag_1", &record("ag_1", "Before", 1)).expect("decodes");
        assert!(Arc::ptr_eq(&first, &again), "unchanged bytes: the kept copy");
        let changed = cache.decode("ag_1", &record("ag_1", "After", 2)).expect("decodes");
        assert_eq!((changed.title.as_str(), changed.revision), ("After", 2));
        assert_eq!(cache.len(), 1);
        // Back to the earlier bytes (a reader that raced a write): decoded again, never the newer copy.
        let earlier = cache.decode("ag_1", &record("ag_1", "Before", 1)).expect("decodes");
        assert_eq!((earlier.title.as_str(), earlier.revision), ("Before", 1));
    }

    #[test]
    fn a_record_that_does_not_decode_is_an_error_and_leaves_the_kept_copy_alone() {
        let cache = DecodedCache::default();
        cache.decode("ag_1", &record("ag_1", "Kept", 1)).expect("decodes");
        assert!(cache.decode("ag_1", b"{not json").is_err());
        let kept = cache.decode("ag_1", &record("ag_1", "Kept", 1)).expect("decodes");
        assert_eq!(kept.title, "Kept");
    }

    #[test]
    fn a_record_over_the_limit_is_decoded_every_time_and_not_kept() {
        let cache = DecodedCache::default();
        let long = record("ag_1", &"x".repeat(MAX_RECORD), 1);
        let a = cache.decode("ag_1", &long).expect("decodes");
        let b = cache.decode("ag_1", &long).expect("decodes");
        assert_eq!(a.title.len(), MAX_RECORD);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = DecodedCache::default();
        for i in 0..CAPACITY * 2 {
            let id = format!("ag_{i}");
            cache.decode(&id, &record(&id, "T", 1)).expect("decodes");
        }
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
        assert!(cache.len() >= CAPACITY / 2, "full shards keep their entries: {}", cache.len());
    }

    #[test]
    fn the_cache_never_holds_more_record_bytes_than_its_budget() {
        let cache = DecodedCache::default();
        let title = "x".repeat(MAX_RECORD - 1024);
        for i in 0..BUDGET / (MAX_RECORD / 2) {
            let id = format!("ag_{i}");
            cache.decode(&id, &record(&id, &title, 1)).expect("decodes");
            assert!(cache.bytes() <= BUDGET, "{} bytes", cache.bytes());
        }
        assert!(cache.bytes() >= BUDGET / 2, "full shards keep their entries: {} bytes", cache.bytes());
        // Replacing an entry counts the new record instead of the old one.
        let id = "ag_0";
        cache.decode(id, &record(id, "short", 2)).expect("decodes");
        let before = cache.bytes();
        cache.decode(id, &record(id, "short", 3)).expect("decodes");
        assert_eq!(cache.bytes(), before, "a record of the same length replaced");
    }
}
