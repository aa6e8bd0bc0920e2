//! The vendor register's storage: the narrow [`VendorStore`] trait, its sled implementation on
//! [`SledStore`] and the in-memory one for unit tests ([`MemoryVendors`]).
//!
//! Trees (created on first open, so a data directory written before they existed opens
//! unchanged with an empty register; all three are in `backup`/`restore`): `vendors` (vendor id
//! → JSON), `vendor_events` (vendor id / seq big-endian → JSON, each event hash-chained to the
//! previous one of its vendor), `vendor_documents` (SHA-256 → bytes: due-diligence files and
//! vendor-paper agreements, content-addressed, written once, re-checked on every read). They are
//! kept apart from the agreements' `documents` tree so that nothing that verifies executed
//! agreements can ever mistake a vendor's upload for one.
//!
//! Each change is one sled transaction over the three trees (record, its audit event, the
//! uploaded file), made durable before it returns; the record's `revision` must be one more
//! than the stored one, so two concurrent edits cannot overwrite each other.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::Transactional;
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::sled_store::SledStore;
use super::{StoreError, audit::GENESIS};
use crate::domain::vendor::Vendor;

/// One entry of a vendor's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorEvent {
    pub vendor_id: String,
    pub seq: u64,
    pub at: u64,
    /// The person (email) or key (`key:<id> <name>`) who made the change.
    pub who: String,
    /// `created`, `updated`, `questionnaire_answered`, `document_uploaded`, …
    pub action: String,
    pub detail: serde_json::Value,
    pub prev: String,
    pub hash: String,
}

impl VendorEvent {
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "vendor_id": self.vendor_id, "seq": self.seq, "at": self.at, "who": self.who,
            "action": self.action, "detail": self.detail, "prev": self.prev,
        });
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    }
}

/// One change: the record as it is after it, what happened, and an uploaded file (if any).
#[derive(Debug, Clone)]
pub struct VendorChange {
    pub vendor: Vendor,
    pub at: u64,
    pub who: String,
    pub action: String,
    pub detail: serde_json::Value,
    pub document: Option<Vec<u8>>,
    /// `vendor.*` webhook deliveries, committed with the change (see [`crate::app::webhooks`]).
    pub webhooks: Vec<super::webhooks::Delivery>,
}

/// Storage for the vendor register.
pub trait VendorStore: Send + Sync {
    fn vendors(&self) -> Result<Vec<Vendor>, StoreError>;
    fn vendor(&self, id: &str) -> Result<Vendor, StoreError>;
    /// Commits the record, its audit event and the file atomically and durably; `Conflict` if
    /// the record's revision is not the stored one plus one.
    fn commit_vendor(&self, c: VendorChange) -> Result<VendorEvent, StoreError>;
    /// A stored file's bytes, re-checked against their SHA-256.
    fn vendor_document(&self, sha256: &str) -> Result<Vec<u8>, StoreError>;
    fn vendor_events(&self, id: &str) -> Result<Vec<VendorEvent>, StoreError>;
}

/// Checks one vendor's audit chain: `Ok(events)` or the first broken sequence number.
pub fn verify_vendor_events(events: &[VendorEvent]) -> Result<usize, u64> {
    let mut prev = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 + 1 || e.prev != prev || e.compute_hash() != e.hash {
            return Err(e.seq);
        }
        prev = e.hash.clone();
    }
    Ok(events.len())
}

/// The event of change `c` as number `seq` of its vendor's chain, after `prev`.
pub(crate) fn seal_event(c: &VendorChange, seq: u64, prev: String) -> VendorEvent {
    let mut ev = VendorEvent {
        vendor_id: c.vendor.id.clone(),
        seq,
        at: c.at,
        who: c.who.clone(),
        action: c.action.clone(),
        detail: c.detail.clone(),
        prev,
        hash: String::new(),
    };
    ev.hash = ev.compute_hash();
    ev
}

/// The vendor trees of a [`SledStore`].
pub struct VendorTrees {
    vendors: Tree,
    events: Tree,
    documents: Tree,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(b'/');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl VendorTrees {
    pub(super) fn open(db: &sled::Db) -> Result<VendorTrees, StoreError> {
        let tree = |n: &str| db.open_tree(n).map_err(io);
        Ok(VendorTrees {
            vendors: tree("vendors")?,
            events: tree("vendor_events")?,
            documents: tree("vendor_documents")?,
        })
    }

    /// The trees with their backup names.
    pub(super) fn named(&self) -> [(&'static str, &Tree); 3] {
        [("vendors", &self.vendors), ("vendor_events", &self.events), ("vendor_documents", &self.documents)]
    }
}

fn check_sha(sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != sha256 {
        tracing::error!(expected = sha256, actual = %actual, "stored vendor document failed its SHA-256 check");
        return Err(StoreError::Corrupt(sha256.to_string()));
    }
    Ok(())
}

impl VendorStore for SledStore {
    fn vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        let t = &self.vendor_trees().vendors;
        t.iter().values().map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io)).collect()
    }

    fn vendor(&self, id: &str) -> Result<Vendor, StoreError> {
        let bytes = self.vendor_trees().vendors.get(id.as_bytes()).map_err(io)?.ok_or(StoreError::NotFound)?;
        serde_json::from_slice(&bytes).map_err(io)
    }

    fn commit_vendor(&self, c: VendorChange) -> Result<VendorEvent, StoreError> {
        let t = self.vendor_trees();
        let record = serde_json::to_vec(&c.vendor).map_err(io)?;
        let doc = c.document.as_ref().map(|d| (hex::encode(Sha256::digest(d)), d));
        let mut prefix = c.vendor.id.as_bytes().to_vec();
        prefix.push(b'/');
        // The chain's head, read outside the transaction (sled transactions cannot scan); the
        // revision check inside makes a concurrent change abort, so the head cannot move.
        let (seq, prev) = match t.events.scan_prefix(&prefix).values().next_back() {
            Some(v) => {
                let last: VendorEvent = serde_json::from_slice(&v.map_err(io)?).map_err(io)?;
                (last.seq + 1, last.hash)
            }
            None => (1, GENESIS.to_string()),
        };
        let ev = seal_event(&c, seq, prev);
        let ev_bytes = serde_json::to_vec(&ev).map_err(io)?;
        let hooks = &self.webhook_tree().tree;
        let r = (&t.vendors, &t.events, &t.documents, hooks).transaction(|(vendors, events, documents, hooks)| {
            let stored = match vendors.get(c.vendor.id.as_bytes())? {
                Some(b) => {
                    serde_json::from_slice::<Vendor>(&b)
                        .map_err(|e| ConflictableTransactionError::Abort(io(e)))?
                        .revision
                }
                None => 0,
            };
            if c.vendor.revision != stored + 1 || events.get(event_key(&c.vendor.id, seq))?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
            }
            vendors.insert(c.vendor.id.as_bytes(), record.as_slice())?;
            events.insert(event_key(&c.vendor.id, seq), ev_bytes.as_slice())?;
            if let Some((sha, bytes)) = &doc {
                // Content-addressed and immutable: an existing file is never overwritten.
                if documents.get(sha.as_bytes())?.is_none() {
                    documents.insert(sha.as_bytes(), bytes.as_slice())?;
                }
            }
            for d in &c.webhooks {
                super::webhooks::put_delivery_tx::<StoreError>(hooks, d)?;
            }
            Ok(())
        });
        r.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => io(e),
        })?;
        self.make_durable()?;
        Ok(ev)
    }

    fn vendor_document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.vendor_trees().documents.get(sha256.as_bytes()).map_err(io)?.ok_or(StoreError::NotFound)?;
        check_sha(sha256, &bytes)?;
        Ok(bytes.to_vec())
    }

    fn vendor_events(&self, id: &str) -> Result<Vec<VendorEvent>, StoreError> {
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(b'/');
        self.vendor_trees()
            .events
            .scan_prefix(prefix)
            .values()
            .map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io))
            .collect()
    }
}

#[derive(Default)]
struct Maps {
    vendors: BTreeMap<String, Vendor>,
    events: BTreeMap<String, Vec<VendorEvent>>,
    documents: BTreeMap<String, Vec<u8>>,
}

/// The vendor register in memory, with the sled store's rules. One mutex: every operation is
/// atomic.
#[derive(Default)]
pub struct MemoryVendors {
    maps: Mutex<Maps>,
}

impl MemoryVendors {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        // Every operation checks before it writes, so a panic leaves no half change.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl VendorStore for MemoryVendors {
    fn vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        Ok(self.maps().vendors.values().cloned().collect())
    }

    fn vendor(&self, id: &str) -> Result<Vendor, StoreError> {
        self.maps().vendors.get(id).cloned().ok_or(StoreError::NotFound)
    }

    fn commit_vendor(&self, c: VendorChange) -> Result<VendorEvent, StoreError> {
        let mut m = self.maps();
        let stored = m.vendors.get(&c.vendor.id).map_or(0, |v| v.revision);
        if c.vendor.revision != stored + 1 {
            return Err(StoreError::Conflict);
        }
        let (seq, prev) = match m.events.get(&c.vendor.id).and_then(|e| e.last()) {
            Some(last) => (last.seq + 1, last.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let ev = seal_event(&c, seq, prev);
        if let Some(d) = c.document {
            m.documents.entry(hex::encode(Sha256::digest(&d))).or_insert(d);
        }
        m.events.entry(c.vendor.id.clone()).or_default().push(ev.clone());
        m.vendors.insert(c.vendor.id.clone(), c.vendor);
        Ok(ev)
    }

    fn vendor_document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.maps().documents.get(sha256).cloned().ok_or(StoreError::NotFound)?;
        check_sha(sha256, &bytes)?;
        Ok(bytes)
    }

    fn vendor_events(&self, id: &str) -> Result<Vec<VendorEvent>, StoreError> {
        Ok(self.maps().events.get(id).cloned().unwrap_or_default())
    }
}
