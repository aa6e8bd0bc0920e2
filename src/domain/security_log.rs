//! The staff security log: who signed in, invited, changed a role or a key, and when — one hash
//! chain like the audit trail's ([`super::audit`]), stored through `store::people`. Each event's
//! `hash` is SHA-256 over its other fields, `prev` (the previous event's hash) included.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::GENESIS;

/// One entry of the staff security log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub seq: u64,
    pub at: u64,
    /// Who acted (an email, `key:<id> <name>`, or `anonymous`).
    pub who: String,
    /// `signed_in`, `sign_in_failed`, `invited`, `role_changed`, `disabled`, …
    pub action: String,
    pub detail: String,
    pub ip: String,
    pub prev: String,
    /// SHA-256 of `prev` and this event's other fields (see [`SecurityEvent::compute_hash`]).
    pub hash: String,
}

/// What a caller records; the store numbers and chains it.
#[derive(Debug, Clone, Default)]
pub struct NewSecurityEvent {
    pub at: u64,
    pub who: String,
    pub action: String,
    pub detail: String,
    pub ip: String,
}

impl SecurityEvent {
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq, "at": self.at, "who": self.who, "action": self.action,
            "detail": self.detail, "ip": self.ip, "prev": self.prev,
        });
        hex::encode(Sha256::digest(body.to_string().as_bytes()))
    }

    /// The event that follows `last` (the log's head; `None` when the log is empty): numbered
    /// one more, chained to its hash, hashed. Every store appends what this returns.
    pub fn next(last: Option<&SecurityEvent>, e: NewSecurityEvent) -> SecurityEvent {
        let (seq, prev) = last.map_or((1, GENESIS.to_string()), |l| (l.seq + 1, l.hash.clone()));
        let mut ev = SecurityEvent {
            seq,
            at: e.at,
            who: e.who,
            action: e.action,
            detail: e.detail,
            ip: e.ip,
            prev,
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        ev
    }
}

/// Checks the security log's chain: `Ok(events)` or the first broken sequence number.
pub fn verify_security_log(events: &[SecurityEvent]) -> Result<usize, u64> {
    let mut prev = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        if e.seq != i as u64 + 1 || e.prev != prev || e.compute_hash() != e.hash {
            return Err(e.seq);
        }
        prev = e.hash.clone();
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_follows_the_head_it_was_given() {
        let new = |action: &str| NewSecurityEvent {
            at: 7,
            who: "a@example.com".into(),
            action: action.into(),
            ..Default::default()
        };
        let first = SecurityEvent::next(None, new("signed_in"));
        assert_eq!((first.seq, first.prev.as_str()), (1, GENESIS));
        let second = SecurityEvent::next(Some(&first), new("invited"));
        assert_eq!((second.seq, &second.prev), (2, &first.hash));
        assert_eq!(second.hash, second.compute_hash());
        assert_eq!(verify_security_log(&[first.clone(), second.clone()]), Ok(2));
        assert_eq!(verify_security_log(&[second, first]), Err(2));
    }
}
