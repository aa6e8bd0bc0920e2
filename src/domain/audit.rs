//! The tamper-evident audit trail: one hash chain per agreement.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the event's own canonical
//! JSON (every field but `hash`, in declaration order). Changing any byte of any stored event,
//! removing one or reordering them breaks the chain at that event, which
//! `countersign audit verify` reports.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first event's `prev`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as the service records it (the store assigns seq, prev and hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub agreement_id: String,
    /// `created`, `version_replaced`, `sent`, `link_issued`, `opened`, `consented`, `signed`,
    /// `declined`, `voided`, `completed`, `archived`, `downloaded`, `signer_updated`, …
    pub kind: String,
    /// Unix seconds (UTC).
    pub at: u64,
    /// `admin:bootstrap`, `signer:s1 <email>`, `system`.
    pub actor: String,
    pub ip: String,
    pub user_agent: String,
    /// The document the event concerns.
    pub document_sha256: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub agreement_id: String,
    pub kind: String,
    pub at: u64,
    /// RFC 3339 UTC, for people.
    pub time: String,
    pub actor: String,
    pub ip: String,
    pub user_agent: String,
    pub document_sha256: String,
    pub detail: serde_json::Value,
    pub prev: String,
    pub hash: String,
}

/// The hashed part of an event: everything but `hash`.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    agreement_id: &'a str,
    kind: &'a str,
    at: u64,
    time: &'a str,
    actor: &'a str,
    ip: &'a str,
    user_agent: &'a str,
    document_sha256: &'a str,
    detail: &'a serde_json::Value,
    prev: &'a str,
}

impl Event {
    pub fn compute_hash(&self) -> String {
        let body = Body {
            seq: self.seq,
            agreement_id: &self.agreement_id,
            kind: &self.kind,
            at: self.at,
            time: &self.time,
            actor: &self.actor,
            ip: &self.ip,
            user_agent: &self.user_agent,
            document_sha256: &self.document_sha256,
            detail: &self.detail,
            prev: &self.prev,
        };
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(serde_json::to_vec(&body).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// Seals a new event onto a chain whose head is (`seq`, `prev`).
    pub fn seal(e: NewEvent, seq: u64, prev: &str) -> Event {
        let mut ev = Event {
            seq,
            time: super::time::rfc3339(e.at),
            agreement_id: e.agreement_id,
            kind: e.kind,
            at: e.at,
            actor: e.actor,
            ip: e.ip,
            user_agent: e.user_agent,
            document_sha256: e.document_sha256,
            detail: e.detail,
            prev: prev.to_string(),
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        ev
    }
}

/// The first break in one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub agreement_id: String,
    /// 1-based position in the chain.
    pub position: usize,
    pub reason: String,
}

/// Verifies one agreement's chain from its raw stored bytes.
pub fn verify_chain(agreement_id: &str, raw: &[Vec<u8>]) -> Result<usize, Break> {
    let mut prev = GENESIS.to_string();
    for (i, bytes) in raw.iter().enumerate() {
        let brk = |reason: String| Break { agreement_id: agreement_id.to_string(), position: i + 1, reason };
        let ev: Event = serde_json::from_slice(bytes).map_err(|e| brk(format!("event is unreadable ({e})")))?;
        if ev.seq != i as u64 + 1 {
            return Err(brk(format!("event {} is out of sequence (seq {})", ev.kind, ev.seq)));
        }
        if ev.agreement_id != agreement_id {
            return Err(brk(format!("event {} belongs to another agreement", ev.kind)));
        }
        if ev.prev != prev {
            return Err(brk(format!("event {} does not link to the event before it", ev.kind)));
        }
        if ev.compute_hash() != ev.hash {
            return Err(brk(format!("event {} (seq {}) was changed after it was recorded", ev.kind, ev.seq)));
        }
        prev = ev.hash;
    }
    Ok(raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: &str) -> NewEvent {
        NewEvent {
            agreement_id: "ag_1".into(),
            kind: kind.into(),
            at: 1_800_000_000,
            actor: "system".into(),
            ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            document_sha256: "ab".into(),
            detail: serde_json::json!({"n": 1}),
        }
    }

    fn chain() -> Vec<Vec<u8>> {
        let a = Event::seal(new("created"), 1, GENESIS);
        let b = Event::seal(new("sent"), 2, &a.hash);
        let c = Event::seal(new("signed"), 3, &b.hash);
        [a, b, c].iter().map(|e| serde_json::to_vec(e).expect("json")).collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify_chain("ag_1", &chain()), Ok(3));
    }

    #[test]
    fn any_changed_byte_breaks_the_chain_at_that_event() {
        let good = chain();
        for (i, ev) in good.iter().enumerate() {
            for pos in 0..ev.len() {
                let mut raw = good.clone();
                raw[i][pos] ^= 0x01;
                let r = verify_chain("ag_1", &raw);
                assert!(r.is_err(), "event {i} byte {pos} changed but chain verified");
                assert_eq!(r.err().map(|b| b.position), Some(i + 1));
            }
        }
    }

    #[test]
    fn a_removed_event_breaks_the_chain() {
        let mut raw = chain();
        raw.remove(1);
        assert_eq!(verify_chain("ag_1", &raw).err().map(|b| b.position), Some(2));
    }
}
