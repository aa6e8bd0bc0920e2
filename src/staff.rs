//! Staff: API keys and roles.
//!
//! | role             | may                                                                      |
//! |------------------|--------------------------------------------------------------------------|
//! | `sales`          | create and send drafts; see only the agreements it created              |
//! | `legal`          | all drafting, send, void, approve, resend, correct signers, revise      |
//! | `vendor_manager` | archive read, download, export, verify, access log, lifecycle           |
//! | `admin`          | everything, including API keys, disposal and backup                     |
//!
//! Keys look like `csk_<id>_<secret>`; only the SHA-256 of the whole key is stored, and it is
//! shown once, at creation. The bootstrap admin key (`<data>/bootstrap-admin.key`) works until it
//! is revoked, which is allowed once another admin key exists.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::people::NewSecurityEvent;
use crate::store::{ApiKeyRecord, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Sales,
    Legal,
    VendorManager,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Sales, Role::Legal, Role::VendorManager, Role::Admin];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sales => "sales",
            Role::Legal => "legal",
            Role::VendorManager => "vendor_manager",
            Role::Admin => "admin",
        }
    }
}

/// The id under which the bootstrap key's revocation is recorded.
pub const BOOTSTRAP_ID: &str = "bootstrap";

/// An authenticated staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// `admin:bootstrap`, or `key:<id> <name>`.
    pub who: String,
    pub key_id: String,
    pub role: Role,
}

impl Staff {
    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing API key: send Authorization: Bearer <key>")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn ct_eq_hex(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Authenticates a presented key against the bootstrap key and the stored keys.
pub fn authenticate(store: &dyn Store, bootstrap: &str, presented: &str, now: u64) -> Result<Staff, AuthError> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Err(AuthError::Missing);
    }
    let keys = store.api_keys().map_err(|_| AuthError::Invalid)?;
    // Compare against the bootstrap key in constant time whatever the input looks like.
    let is_bootstrap = !bootstrap.is_empty() && ct_eq_hex(&hash(presented), &hash(bootstrap));
    if is_bootstrap {
        if keys.iter().any(|k| k.id == BOOTSTRAP_ID && k.revoked_at.is_some()) {
            return Err(AuthError::Revoked);
        }
        return Ok(Staff { who: "admin:bootstrap".into(), key_id: BOOTSTRAP_ID.into(), role: Role::Admin });
    }
    let id = presented.strip_prefix("csk_").and_then(|rest| rest.split_once('_')).map(|(id, _)| id).unwrap_or("");
    let Some(rec) = keys.into_iter().find(|k| k.id == id && k.id != BOOTSTRAP_ID) else {
        return Err(AuthError::Invalid);
    };
    if !ct_eq_hex(&hash(presented), &rec.hash) {
        return Err(AuthError::Invalid);
    }
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    if rec.expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::Expired);
    }
    let role = Role::parse(&rec.role).ok_or(AuthError::Invalid)?;
    // Only the time of use is written, never the record: a revocation committed meanwhile
    // stays (an earlier version wrote the whole record back and undid revocations).
    let _ = store.touch_api_key(&rec.id, now);
    Ok(Staff { who: format!("key:{} {}", rec.id, rec.name), key_id: rec.id, role })
}

/// A key as listed (never its secret or hash).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used: Option<String>,
}

impl From<&ApiKeyRecord> for KeyInfo {
    fn from(k: &ApiKeyRecord) -> Self {
        use crate::clock::rfc3339;
        KeyInfo {
            id: k.id.clone(),
            name: k.name.clone(),
            role: k.role.clone(),
            created_at: rfc3339(k.created_at),
            created_by: k.created_by.clone(),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            last_used: k.last_used.map(rfc3339),
        }
    }
}

/// Why a key could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The name given for a new key is empty, too long or has control characters.
    #[error("name: 1–100 printable characters")]
    Name,
    #[error("no key {0}")]
    NoSuchKey(String),
    /// A rule forbids it (the bootstrap key is the last active admin key).
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no randomness: {0}")]
    Random(String),
}

/// Stores an API key change together with its entry in the staff security log
/// (`api_key_created`, `api_key_revoked`), under who made it and from where, as one atomic
/// commit ([`Store::put_api_key_logged`]). Every way of changing keys — the API, the admin
/// pages, the command line on a stopped store — goes through [`create`] and [`revoke`], so each
/// change is logged exactly once, and never stored unlogged.
fn save_logged(
    store: &dyn Store,
    rec: &ApiKeyRecord,
    by: &str,
    action: &str,
    detail: String,
    ip: &str,
    now: u64,
) -> Result<(), StoreError> {
    let e = NewSecurityEvent { at: now, who: by.to_string(), action: action.into(), detail, ip: ip.to_string() };
    store.put_api_key_logged(rec, e).map(|_| ())
}

/// Creates a key; returns the key string (shown once) and its record. The change is in the
/// security log under `by` (from `ip`, empty on the command line).
pub fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    expires_at: Option<u64>,
    by: &str,
    ip: &str,
    now: u64,
) -> Result<(String, ApiKeyRecord), ChangeError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ChangeError::Name);
    }
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)
        .and_then(|_| getrandom::fill(&mut secret))
        .map_err(|e| ChangeError::Random(e.to_string()))?;
    let id = format!("k{}", hex::encode(id));
    let key = format!("csk_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let rec = ApiKeyRecord {
        id,
        name: name.to_string(),
        role: role.as_str().into(),
        hash: hash(&key),
        created_at: now,
        created_by: by.to_string(),
        expires_at,
        revoked_at: None,
        last_used: None,
    };
    let detail = format!("{} ({}, {})", rec.name, rec.id, rec.role);
    save_logged(store, &rec, by, "api_key_created", detail, ip, now)?;
    Ok((key, rec))
}

/// Revokes a key. The bootstrap key can be revoked once another active admin key exists. A
/// key that changes is in the security log under `by` (revoking a revoked key changes nothing).
pub fn revoke(store: &dyn Store, id: &str, now: u64, by: &str, ip: &str) -> Result<ApiKeyRecord, ChangeError> {
    let keys = store.api_keys()?;
    if id == BOOTSTRAP_ID {
        let other_admin = keys.iter().any(|k| {
            k.id != BOOTSTRAP_ID && k.role == "admin" && k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now)
        });
        if !other_admin {
            return Err(ChangeError::Refused(
                "the bootstrap key can be revoked only once another active admin key exists",
            ));
        }
        let rec = ApiKeyRecord {
            id: BOOTSTRAP_ID.into(),
            name: "bootstrap admin key".into(),
            role: "admin".into(),
            hash: String::new(),
            created_at: now,
            created_by: by.into(),
            expires_at: None,
            revoked_at: Some(now),
            last_used: None,
        };
        let detail = format!("{} ({})", rec.name, rec.id);
        save_logged(store, &rec, by, "api_key_revoked", detail, ip, now)?;
        return Ok(rec);
    }
    let mut rec = keys.into_iter().find(|k| k.id == id).ok_or_else(|| ChangeError::NoSuchKey(id.to_string()))?;
    if rec.revoked_at.is_none() {
        rec.revoked_at = Some(now);
        let detail = format!("{} ({})", rec.name, rec.id);
        save_logged(store, &rec, by, "api_key_revoked", detail, ip, now)?;
    }
    Ok(rec)
}

pub fn list(store: &dyn Store) -> Result<Vec<KeyInfo>, StoreError> {
    Ok(store.api_keys()?.iter().map(KeyInfo::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled_store::SledStore;

    #[test]
    fn a_use_recorded_after_a_revocation_leaves_the_key_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("store");
        let (key, rec) = create(&store, "sales", Role::Sales, None, "test", "", 100).expect("created");
        // A request authenticated before the revocation records its use after it.
        assert!(authenticate(&store, "", &key, 150).is_ok());
        revoke(&store, &rec.id, 200, "test", "").expect("revoked");
        store.touch_api_key(&rec.id, 201).expect("touched");
        let after = store.api_keys().expect("keys").into_iter().find(|k| k.id == rec.id).expect("key");
        assert_eq!(after.revoked_at, Some(200));
        assert_eq!(after.last_used, Some(201));
        assert!(matches!(authenticate(&store, "", &key, 202), Err(AuthError::Revoked)));
    }

    #[test]
    fn each_key_change_is_stored_with_its_security_log_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("store");
        let (_, rec) = create(&store, "sales", Role::Sales, None, "ann@example.com", "10.0.0.1", 100).expect("created");
        revoke(&store, &rec.id, 200, "bob@example.com", "").expect("revoked");
        // Revoking again changes nothing and logs nothing.
        revoke(&store, &rec.id, 300, "bob@example.com", "").expect("no change");
        let log = store.people().security_log().expect("log");
        let mine: Vec<(&str, &str, u64)> = log
            .iter()
            .filter(|e| e.detail.contains(&rec.id))
            .map(|e| (e.action.as_str(), e.who.as_str(), e.at))
            .collect();
        assert_eq!(mine, [("api_key_created", "ann@example.com", 100), ("api_key_revoked", "bob@example.com", 200)]);
        assert!(crate::store::people::verify_security_log(&log).is_ok());
    }
}
