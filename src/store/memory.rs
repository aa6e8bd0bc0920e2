//! A [`Store`] in memory: the same rules as the sled store (revision check, content-addressed
//! documents, sealed event chains), nothing on disk. For unit tests of the application layer
//! without a data directory; the server always runs on [`super::sled_store::SledStore`].
//!
//! Concurrency: one mutex around all maps, so a commit is atomic like a sled transaction.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::audit::{Event, GENESIS};
use super::{ApiKeyRecord, Change, Message, RawChain, Store, StoreError};
use crate::domain::agreement::{Agreement, Summary, VersionRecord};

#[derive(Default)]
struct Maps {
    agreements: BTreeMap<String, Agreement>,
    versions: BTreeMap<(String, u32), VersionRecord>,
    documents: BTreeMap<String, Vec<u8>>,
    events: BTreeMap<String, Vec<Event>>,
    outbox: BTreeMap<String, Message>,
    api_keys: BTreeMap<String, ApiKeyRecord>,
    /// Last use per key, apart from the record (as in the sled store: a revocation stays).
    key_last_used: BTreeMap<String, u64>,
}

/// See the module documentation.
#[derive(Default)]
pub struct MemoryStore {
    maps: Mutex<Maps>,
    people: super::memory_people::MemoryPeople,
    vendors: super::vendors::MemoryVendors,
    webhooks: super::webhooks::MemoryWebhooks,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // Every commit finishes its checks before it writes, so a panic leaves no half change.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn found<T: Clone>(v: Option<&T>) -> Result<T, StoreError> {
    v.cloned().ok_or(StoreError::NotFound)
}

impl Store for MemoryStore {
    fn reads_in_process(&self) -> bool {
        true
    }

    fn agreement(&self, id: &str) -> Result<Agreement, StoreError> {
        found(self.maps().agreements.get(id))
    }

    fn agreements(&self) -> Result<Vec<Agreement>, StoreError> {
        Ok(self.maps().agreements.values().cloned().collect())
    }

    fn agreement_summaries(&self, f: &mut (dyn FnMut(Summary) + Send)) -> Result<(), StoreError> {
        // Taken out of the lock first, so `f` never runs under it.
        let all: Vec<Summary> = self.maps().agreements.values().map(Summary::from).collect();
        all.into_iter().for_each(f);
        Ok(())
    }

    fn version(&self, id: &str, version: u32) -> Result<VersionRecord, StoreError> {
        found(self.maps().versions.get(&(id.to_string(), version)))
    }

    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        Ok(self.maps().versions.iter().filter(|((a, _), _)| a == id).map(|(_, v)| v.clone()).collect())
    }

    fn document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        found(self.maps().documents.get(sha256))
    }

    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        Ok(self.maps().events.get(id).cloned().unwrap_or_default())
    }

    fn commit(&self, change: Change) -> Result<Vec<Event>, StoreError> {
        let mut m = self.maps();
        if let Some(a) = &change.agreement {
            let stored = m.agreements.get(&a.id).map_or(0, |s| s.revision);
            if a.revision != stored + 1 {
                return Err(StoreError::Conflict);
            }
        }
        let id = change.agreement.as_ref().map(|a| a.id.clone()).unwrap_or_default();
        if let Some(a) = change.agreement {
            m.agreements.insert(a.id.clone(), a);
        }
        for v in change.versions {
            m.versions.insert((id.clone(), v.version), v);
        }
        for d in change.documents {
            m.documents.entry(hex::encode(Sha256::digest(&d))).or_insert(d);
        }
        let mut sealed = Vec::with_capacity(change.events.len());
        for e in change.events {
            let chain = m.events.entry(e.agreement_id.clone()).or_default();
            let (seq, prev) = chain.last().map_or((0, GENESIS.to_string()), |l| (l.seq, l.hash.clone()));
            let ev = Event::seal(e, seq + 1, &prev);
            chain.push(ev.clone());
            sealed.push(ev);
        }
        for msg in change.messages {
            m.outbox.insert(msg.id.clone(), msg);
        }
        for sha in change.delete_documents {
            m.documents.remove(&sha);
        }
        // Under the maps lock: the deliveries land with the rest of the change.
        self.webhooks.queue(change.webhooks);
        Ok(sealed)
    }

    fn messages(&self) -> Result<Vec<Message>, StoreError> {
        Ok(self.maps().outbox.values().cloned().collect())
    }

    fn put_message(&self, msg: &Message) -> Result<(), StoreError> {
        self.maps().outbox.insert(msg.id.clone(), msg.clone());
        Ok(())
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let m = self.maps();
        Ok(m.api_keys
            .values()
            .map(|k| {
                let mut k = k.clone();
                k.last_used = k.last_used.max(m.key_last_used.get(&k.id).copied());
                k
            })
            .collect())
    }

    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.maps().api_keys.insert(k.id.clone(), k.clone());
        Ok(())
    }

    fn touch_api_key(&self, id: &str, at: u64) -> Result<(), StoreError> {
        self.maps().key_last_used.insert(id.to_string(), at);
        Ok(())
    }

    fn dump(&self, out: &mut (dyn std::io::Write + Send)) -> Result<usize, StoreError> {
        let m = self.maps();
        let mut lines: Vec<serde_json::Value> = Vec::new();
        lines.extend(m.agreements.iter().map(|(k, v)| serde_json::json!({"tree": "agreements", "key": k, "value": v})));
        lines.extend(
            m.versions
                .iter()
                .map(|((a, n), v)| serde_json::json!({"tree": "versions", "key": format!("{a}/{n}"), "value": v})),
        );
        lines.extend(
            m.documents.iter().map(|(k, v)| serde_json::json!({"tree": "documents", "key": k, "hex": hex::encode(v)})),
        );
        lines.extend(m.events.values().flatten().map(|e| serde_json::json!({"tree": "events", "value": e})));
        lines.extend(m.outbox.iter().map(|(k, v)| serde_json::json!({"tree": "outbox", "key": k, "value": v})));
        lines.extend(m.api_keys.iter().map(|(k, v)| serde_json::json!({"tree": "apikeys", "key": k, "value": v})));
        for line in &lines {
            writeln!(out, "{line}").map_err(|e| StoreError::Io(e.to_string()))?;
        }
        Ok(lines.len())
    }

    fn raw_chains(&self) -> Result<Vec<RawChain>, StoreError> {
        let m = self.maps();
        m.events
            .iter()
            .map(|(id, chain)| {
                let raw = chain.iter().map(serde_json::to_vec).collect::<Result<Vec<_>, _>>();
                raw.map(|r| (id.clone(), r)).map_err(|e| StoreError::Io(e.to_string()))
            })
            .collect()
    }

    fn chain_heads(&self) -> Result<Vec<super::ChainHead>, StoreError> {
        // Nothing outside this process can rewrite the maps: every head is authentic.
        Ok(self
            .maps()
            .events
            .iter()
            .filter_map(|(id, chain)| chain.last().map(|e| (id, e)))
            .map(|(id, e)| super::ChainHead {
                agreement_id: id.clone(),
                seq: e.seq,
                hash: e.hash.clone(),
                authentic: true,
            })
            .collect())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn people(&self) -> &dyn super::people::PeopleStore {
        &self.people
    }

    fn vendors(&self) -> &dyn super::vendors::VendorStore {
        self
    }

    fn webhooks(&self) -> &dyn super::webhooks::WebhookStore {
        &self.webhooks
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// The vendor register of the in-memory store: its own maps, plus the `vendor.*` deliveries of a
/// change queued with the webhooks (nothing here is durable, so the two locks are enough).
impl super::vendors::VendorStore for MemoryStore {
    fn vendors(&self) -> Result<Vec<crate::domain::vendor::Vendor>, StoreError> {
        self.vendors.vendors()
    }

    fn vendor(&self, id: &str) -> Result<crate::domain::vendor::Vendor, StoreError> {
        self.vendors.vendor(id)
    }

    fn commit_vendor(&self, mut c: super::vendors::VendorChange) -> Result<super::vendors::VendorEvent, StoreError> {
        let hooks = std::mem::take(&mut c.webhooks);
        let ev = self.vendors.commit_vendor(c)?;
        self.webhooks.queue(hooks);
        Ok(ev)
    }

    fn vendor_document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        self.vendors.vendor_document(sha256)
    }

    fn vendor_events(&self, id: &str) -> Result<Vec<super::vendors::VendorEvent>, StoreError> {
        self.vendors.vendor_events(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreement(id: &str) -> Agreement {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "dua", "title": "Scan", "upstream_name": "Up", "downstream_name": "Down",
            "status": "sent", "version": 1, "document_sha256": "", "check_passes": true, "created_at": 1,
            "updated_at": 2, "created_by": "test", "sent_at": 2, "sent_by": "test", "sent_sha256": "s",
            "sent_bytes": 9, "executed_at": null, "final_sha256": null, "void_reason": null, "signers": [],
            "revision": 1
        }))
        .expect("an agreement")
    }

    #[test]
    fn the_summary_scan_hands_over_every_agreement_once_as_stored() {
        let store = MemoryStore::new();
        for id in ["b", "a", "c"] {
            store.commit(Change { agreement: Some(agreement(id)), ..Default::default() }).expect("commit");
        }
        let mut seen = Vec::new();
        store.agreement_summaries(&mut |s| seen.push(s)).expect("scan");
        seen.sort_by(|x, y| x.id.cmp(&y.id));
        let expected: Vec<Summary> = ["a", "b", "c"].iter().map(|id| Summary::from(&agreement(id))).collect();
        assert_eq!(seen, expected);
        assert_eq!(seen[0].sent_bytes, Some(9));
    }
}
