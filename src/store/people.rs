//! Staff people, their invitations and web sessions, and the staff security log: the narrow
//! [`PeopleStore`] trait and its sled implementation on [`SledStore`].
//!
//! Trees (created on first open, so a data directory written before they existed opens
//! unchanged and simply has no people): `people` (person id → JSON), `invites` (SHA-256 of the
//! invitation token → JSON), `sessions` (SHA-256 of the session id → JSON), `seclog` (sequence
//! number, big-endian → JSON, hash-chained). Only hashes of tokens and session ids are stored:
//! a copy of the store lets nobody sign in.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::StoreError;
use super::sled_store::SledStore;

/// A member of staff who signs in to the web app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// `p` + 16 hex digits.
    pub id: String,
    /// Lower-cased.
    pub email: String,
    pub name: String,
    /// `sales`, `legal`, `vendor_manager`, `admin`.
    pub role: String,
    /// argon2id PHC string; None until the invitation is accepted.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub created_at: u64,
    pub created_by: String,
    #[serde(default)]
    pub disabled_at: Option<u64>,
    /// SHA-256 of the one invitation token that still works (a re-invite replaces it).
    #[serde(default)]
    pub invite_hash: Option<String>,
    /// Two-factor sign-in, once started (absent in records written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpRecord>,
    /// A forgotten-password link that still works (one at a time; a new one replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetRecord>,
}

impl PersonRecord {
    /// True when sign-in asks this person for a second factor.
    pub fn has_totp(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed_at.is_some())
    }
}

/// A person's TOTP enrolment. The seed is never stored in clear: it is sealed by the vault
/// (key outside the store) under the context `totp:<person id>`, so a copy of the store
/// alone cannot produce codes, and a seed moved to another person does not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpRecord {
    /// Base64 of the vault's sealed seed.
    pub sealed_seed: String,
    pub created_at: u64,
    /// None while enrolment waits for its first code.
    #[serde(default)]
    pub confirmed_at: Option<u64>,
    /// The last step a code was accepted for: later codes only (no replay).
    #[serde(default)]
    pub last_step: u64,
    /// SHA-256 of each recovery code not used yet.
    #[serde(default)]
    pub recovery: Vec<String>,
}

/// A one-time forgotten-password link, stored as the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRecord {
    pub hash: String,
    pub expires_at: u64,
}

/// A one-time invitation (or first-admin setup) link, stored by the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub hash: String,
    /// The invited person; None for the first-admin setup link.
    pub person_id: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(default)]
    pub used_at: Option<u64>,
}

/// A signed-in browser, stored by the SHA-256 of the cookie's session id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub hash: String,
    pub person_id: String,
    pub created_at: u64,
    pub last_seen: u64,
    /// The CSRF token every state-changing form of this session carries.
    pub csrf: String,
    #[serde(default)]
    pub ip: String,
}

pub use crate::domain::security_log::{NewSecurityEvent, SecurityEvent, verify_security_log};

/// Storage for people, invitations, sessions and the security log.
pub trait PeopleStore: Send + Sync {
    fn people(&self) -> Result<Vec<PersonRecord>, StoreError>;
    fn person(&self, id: &str) -> Result<PersonRecord, StoreError>;
    /// Creates or replaces a person, durably.
    fn put_person(&self, p: &PersonRecord) -> Result<(), StoreError>;
    fn invite(&self, hash: &str) -> Result<InviteRecord, StoreError>;
    fn put_invite(&self, i: &InviteRecord) -> Result<(), StoreError>;
    /// Accepting an invitation: the person (with their password) and the used invitation are
    /// written in one transaction, so a link never works twice and never half-works.
    fn accept_invite(&self, i: &InviteRecord, p: &PersonRecord) -> Result<(), StoreError>;
    fn session(&self, hash: &str) -> Result<SessionRecord, StoreError>;
    fn put_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    /// Records activity without waiting for the disk (a lost touch only shortens a session).
    fn touch_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    fn delete_session(&self, hash: &str) -> Result<(), StoreError>;
    /// Ends every session of a person (disable, role change); returns how many.
    fn delete_sessions_of(&self, person_id: &str) -> Result<usize, StoreError>;
    /// Appends to the hash chain, durably.
    fn append_security(&self, e: NewSecurityEvent) -> Result<SecurityEvent, StoreError>;
    fn security_log(&self) -> Result<Vec<SecurityEvent>, StoreError>;
}

/// The people trees of a [`SledStore`].
pub struct PeopleTrees {
    pub(super) people: Tree,
    pub(super) invites: Tree,
    pub(super) sessions: Tree,
    pub(super) seclog: Tree,
    /// Appends to the security log are read-head-then-write; this keeps two from taking the
    /// same sequence number (the transaction would also catch it; the lock avoids retries).
    pub(super) append: std::sync::Mutex<()>,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl PeopleTrees {
    pub(super) fn open(db: &sled::Db) -> Result<PeopleTrees, StoreError> {
        let tree = |n: &str| db.open_tree(n).map_err(io);
        Ok(PeopleTrees {
            people: tree("people")?,
            invites: tree("invites")?,
            sessions: tree("sessions")?,
            seclog: tree("seclog")?,
            append: std::sync::Mutex::new(()),
        })
    }

    /// The trees with their backup names.
    pub(super) fn named(&self) -> [(&'static str, &Tree); 4] {
        [("people", &self.people), ("invites", &self.invites), ("sessions", &self.sessions), ("seclog", &self.seclog)]
    }
}

fn get<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<T, StoreError> {
    let bytes = tree.get(key).map_err(io)?.ok_or(StoreError::NotFound)?;
    serde_json::from_slice(&bytes).map_err(io)
}

fn all<T: serde::de::DeserializeOwned>(tree: &Tree) -> Result<Vec<T>, StoreError> {
    tree.iter().values().map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io)).collect()
}

fn put<T: Serialize>(tree: &Tree, key: &[u8], v: &T) -> Result<(), StoreError> {
    tree.insert(key, serde_json::to_vec(v).map_err(io)?).map_err(io)?;
    Ok(())
}

impl PeopleStore for SledStore {
    fn people(&self) -> Result<Vec<PersonRecord>, StoreError> {
        all(&self.people_trees().people)
    }

    fn person(&self, id: &str) -> Result<PersonRecord, StoreError> {
        get(&self.people_trees().people, id.as_bytes())
    }

    fn put_person(&self, p: &PersonRecord) -> Result<(), StoreError> {
        put(&self.people_trees().people, p.id.as_bytes(), p)?;
        self.make_durable()
    }

    fn invite(&self, hash: &str) -> Result<InviteRecord, StoreError> {
        get(&self.people_trees().invites, hash.as_bytes())
    }

    fn put_invite(&self, i: &InviteRecord) -> Result<(), StoreError> {
        put(&self.people_trees().invites, i.hash.as_bytes(), i)?;
        self.make_durable()
    }

    fn accept_invite(&self, i: &InviteRecord, p: &PersonRecord) -> Result<(), StoreError> {
        let t = self.people_trees();
        let iv = serde_json::to_vec(i).map_err(io)?;
        let pv = serde_json::to_vec(p).map_err(io)?;
        let r = (&t.invites, &t.people).transaction(|(invites, people)| {
            // Used meanwhile by another request: refuse, so the link works exactly once.
            if let Some(cur) = invites.get(i.hash.as_bytes())? {
                let cur: InviteRecord =
                    serde_json::from_slice(&cur).map_err(|e| ConflictableTransactionError::Abort(io(e)))?;
                if cur.used_at.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
            }
            invites.insert(i.hash.as_bytes(), iv.clone())?;
            people.insert(p.id.as_bytes(), pv.clone())?;
            Ok(())
        });
        r.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => io(e),
        })?;
        self.make_durable()
    }

    fn session(&self, hash: &str) -> Result<SessionRecord, StoreError> {
        get(&self.people_trees().sessions, hash.as_bytes())
    }

    fn put_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        put(&self.people_trees().sessions, s.hash.as_bytes(), s)?;
        self.make_durable()
    }

    fn touch_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        put(&self.people_trees().sessions, s.hash.as_bytes(), s)
    }

    fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.people_trees().sessions.remove(hash.as_bytes()).map_err(io)?;
        self.make_durable()
    }

    fn delete_sessions_of(&self, person_id: &str) -> Result<usize, StoreError> {
        let t = &self.people_trees().sessions;
        let mut n = 0;
        for s in all::<SessionRecord>(t)? {
            if s.person_id == person_id {
                t.remove(s.hash.as_bytes()).map_err(io)?;
                n += 1;
            }
        }
        self.make_durable()?;
        Ok(n)
    }

    fn append_security(&self, e: NewSecurityEvent) -> Result<SecurityEvent, StoreError> {
        let t = self.people_trees();
        let _one = t.append.lock().unwrap_or_else(|p| p.into_inner());
        let last: Option<SecurityEvent> = match t.seclog.last().map_err(io)? {
            Some((_, v)) => Some(serde_json::from_slice(&v).map_err(io)?),
            None => None,
        };
        let ev = SecurityEvent::next(last.as_ref(), e);
        put(&t.seclog, &ev.seq.to_be_bytes(), &ev)?;
        self.make_durable()?;
        Ok(ev)
    }

    fn security_log(&self) -> Result<Vec<SecurityEvent>, StoreError> {
        all(&self.people_trees().seclog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str) -> NewSecurityEvent {
        NewSecurityEvent {
            at: 1,
            who: "a@example.com".into(),
            action: action.into(),
            detail: String::new(),
            ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn the_security_log_is_a_hash_chain_that_shows_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        for a in ["signed_in", "invited", "disabled"] {
            store.append_security(ev(a)).expect("appended");
        }
        let mut log = store.security_log().expect("log");
        assert_eq!(verify_security_log(&log), Ok(3));
        log[1].detail = "nothing happened".into();
        assert_eq!(verify_security_log(&log), Err(2));
    }

    #[test]
    fn an_invitation_is_accepted_once_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        let inv = InviteRecord { hash: "h".into(), person_id: None, created_at: 1, expires_at: 9, used_at: None };
        store.put_invite(&inv).expect("stored");
        let p = PersonRecord {
            id: "p1".into(),
            email: "a@example.com".into(),
            name: "A".into(),
            role: "admin".into(),
            password_hash: Some("x".into()),
            created_at: 1,
            created_by: "setup".into(),
            disabled_at: None,
            invite_hash: None,
            totp: None,
            reset: None,
        };
        let used = InviteRecord { used_at: Some(2), ..inv };
        store.accept_invite(&used, &p).expect("first acceptance");
        assert!(matches!(store.accept_invite(&used, &p), Err(StoreError::Conflict)));
        assert_eq!(store.people().expect("people").len(), 1);
    }
}
