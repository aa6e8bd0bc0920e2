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
//! Bounded: [`CAPACITY`] entries in [`SHARDS`] shards, so at most ~7 KB (bytes and decoded
//! copy) × 4,096 ≈ 28 MB; a full shard drops an arbitrary entry of its own. Only links that are
//! verified (a genuine MAC) reach it, so an attacker cannot fill it with made-up ids. Shards,
//! each behind its own mutex, so the async workers that verify links do not queue on one
//! lock; a lock is held for a hash lookup and a compare, never for a decode.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use crate::domain::agreement::Agreement;

/// Agreements kept at most (the agreements whose signers are reading or signing now).
pub const CAPACITY: usize = 4096;
const SHARDS: usize = 16;

type Shard = HashMap<Box<str>, (Box<[u8]>, Arc<Agreement>)>;

pub struct DecodedCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Default for DecodedCache {
    fn default() -> Self {
        DecodedCache { shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(), hasher: RandomState::new() }
    }
}

impl DecodedCache {
    fn shard(&self, id: &str) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    /// The agreement the record `raw` (read from the store just now, for `id`) holds: the kept
    /// copy when it was decoded from these very bytes, else decoded now and kept.
    pub fn decode(&self, id: &str, raw: &[u8]) -> Result<Arc<Agreement>, serde_json::Error> {
        let shard = self.shard(id);
        // A poisoned shard (a panic while held: only a HashMap operation) is still a valid map.
        if let Some((bytes, a)) = shard.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && **bytes == *raw
        {
            return Ok(a.clone());
        }
        let a: Arc<Agreement> = Arc::new(serde_json::from_slice(raw)?);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY / SHARDS
            && !map.contains_key(id)
            && let Some(victim) = map.keys().next().cloned()
        {
            map.remove(&victim);
        }
        map.insert(id.into(), (raw.into(), a.clone()));
        Ok(a)
    }

    /// Entries held now (for tests and the bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
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
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = DecodedCache::default();
        for i in 0..CAPACITY * 2 {
            let id = format!("ag_{i}");
            cache.decode(&id, &record(&id, "T", 1)).expect("decodes");
        }
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
        assert!(cache.len() >= CAPACITY / 2, "full shards keep their entries: {}", cache.len());
    }
}
