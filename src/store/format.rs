//! The data directory's format version, its migrations, and the key that authenticates the
//! audit chains' heads.
//!
//! * The `meta` tree holds `format_version` (u64, big-endian). A directory without it was
//!   written by a release before versions were recorded: format 1. [`migrate`] runs at every
//!   open: it upgrades an older directory one step at a time, records the new version in the
//!   same transaction as the step's changes (a crash leaves the old version and its data, and
//!   the step runs again), does nothing on a current one, and refuses a directory written by a
//!   newer release.
//! * Format 2 authenticates each chain head (`heads`: agreement id → last seq and hash) with an
//!   HMAC-SHA256 under a key kept *outside* the store, in `<data>/audit-head.key` (mode 0600).
//!   Someone who can rewrite the store's files or a backup can delete events and rewrite the
//!   head to match, but cannot compute its MAC without that file; `audit verify` then checks
//!   every chain against its authenticated head. Backups do not contain the key: the operator
//!   keeps it apart (`restore --head-key`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::StoreError;

/// The format this release writes.
pub const FORMAT_VERSION: u64 = 2;
/// The `meta` key holding the version.
pub const VERSION_KEY: &[u8] = b"format_version";
/// The head key's file name in the data directory.
pub const HEAD_KEY_FILE: &str = "audit-head.key";

/// What [`migrate`] did at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub from: u64,
    pub to: u64,
}

impl Migration {
    /// Nothing to do: the directory was current (or new).
    pub fn is_noop(&self) -> bool {
        self.from == self.to
    }
}

/// The key that authenticates chain heads.
#[derive(Clone)]
pub struct HeadKey(Hmac<Sha256>);

impl std::fmt::Debug for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadKey(…)")
    }
}

impl HeadKey {
    /// MAC over (agreement id, seq, hash), hex.
    pub fn mac(&self, agreement_id: &str, seq: u64, hash: &str) -> String {
        let mut m = self.0.clone();
        m.update(b"countersign audit head v1\0");
        m.update(agreement_id.as_bytes());
        m.update(b"\0");
        m.update(&seq.to_be_bytes());
        m.update(hash.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// Constant-time check of a stored MAC.
    pub fn check(&self, agreement_id: &str, seq: u64, hash: &str, mac: &str) -> bool {
        use subtle::ConstantTimeEq;
        let want = self.mac(agreement_id, seq, hash);
        want.len() == mac.len() && bool::from(want.as_bytes().ct_eq(mac.as_bytes()))
    }
}

pub fn head_key_path(data: &Path) -> PathBuf {
    data.join(HEAD_KEY_FILE)
}

fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

/// Reads the head key. With `create`, a missing file is made (32 random bytes, hex, 0600).
pub fn load_head_key(data: &Path, create: bool) -> Result<Option<HeadKey>, StoreError> {
    let path = head_key_path(data);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| io(&path, e))?;
            let text = hex::encode(raw);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io(&path, e))?;
            f.write_all(format!("{text}\n").as_bytes()).and_then(|_| f.sync_all()).map_err(|e| io(&path, e))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, e)),
    };
    let mode = std::fs::metadata(&path).map_err(|e| io(&path, e))?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(&path, e))?;
    }
    let raw = hex::decode(text.trim()).map_err(|_| io(&path, "not a hex key"))?;
    if raw.len() < 32 {
        return Err(io(&path, "the key must be 32 bytes (64 hex digits)"));
    }
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&raw).map_err(|e| io(&path, e))?;
    Ok(Some(HeadKey(mac)))
}

/// The stored version: `None` for a directory that has never been written (no agreements, no
/// heads, no keys), 1 for one written before versions were recorded.
pub fn stored_version(db: &sled::Db) -> Result<Option<u64>, StoreError> {
    let meta = db.open_tree("meta").map_err(|e| StoreError::Io(e.to_string()))?;
    if let Some(v) = meta.get(VERSION_KEY).map_err(|e| StoreError::Io(e.to_string()))? {
        let bytes: [u8; 8] =
            v.as_ref().try_into().map_err(|_| StoreError::Io("meta/format_version is damaged".into()))?;
        return Ok(Some(u64::from_be_bytes(bytes)));
    }
    for name in ["agreements", "heads", "events", "apikeys", "outbox"] {
        let t = db.open_tree(name).map_err(|e| StoreError::Io(e.to_string()))?;
        if !t.is_empty() {
            return Ok(Some(1));
        }
    }
    Ok(None)
}

/// Brings the directory to [`FORMAT_VERSION`]; see the module comment.
pub fn migrate(db: &sled::Db, data: &Path, key: &HeadKey) -> Result<Migration, StoreError> {
    let err = |e: sled::Error| StoreError::Io(e.to_string());
    let meta = db.open_tree("meta").map_err(err)?;
    let Some(from) = stored_version(db)? else {
        meta.insert(VERSION_KEY, &FORMAT_VERSION.to_be_bytes()).map_err(err)?;
        return Ok(Migration { from: FORMAT_VERSION, to: FORMAT_VERSION });
    };
    if from > FORMAT_VERSION {
        return Err(StoreError::Io(format!(
            "{} was written by a newer Countersign (data format {from}; this release reads formats up to \
             {FORMAT_VERSION}). Run the newer release, or restore a backup made for this one.",
            data.display()
        )));
    }
    let mut version = from;
    while version < FORMAT_VERSION {
        match version {
            1 => v1_to_v2(db, key)?,
            other => return Err(StoreError::Io(format!("no migration from data format {other}"))),
        }
        version += 1;
        tracing::info!(from = version - 1, to = version, dir = %data.display(), "data directory migrated");
    }
    Ok(Migration { from, to: version })
}

/// Format 1 → 2: authenticate every chain head, and record version 2 in the same transaction.
fn v1_to_v2(db: &sled::Db, key: &HeadKey) -> Result<(), StoreError> {
    use sled::Transactional;
    let err = |e: sled::Error| StoreError::Io(e.to_string());
    let heads = db.open_tree("heads").map_err(err)?;
    let meta = db.open_tree("meta").map_err(err)?;
    let mut updated = Vec::new();
    for kv in heads.iter() {
        let (k, v) = kv.map_err(err)?;
        let mut head: serde_json::Value = serde_json::from_slice(&v).map_err(|e| StoreError::Io(e.to_string()))?;
        let id = String::from_utf8_lossy(&k).into_owned();
        let seq = head["seq"].as_u64().unwrap_or_default();
        let hash = head["hash"].as_str().unwrap_or_default().to_string();
        head["mac"] = serde_json::Value::String(key.mac(&id, seq, &hash));
        updated.push((k, serde_json::to_vec(&head).map_err(|e| StoreError::Io(e.to_string()))?));
    }
    (&heads, &meta)
        .transaction(|(h, m)| {
            for (k, v) in &updated {
                h.insert(k.as_ref(), v.as_slice())?;
            }
            m.insert(VERSION_KEY, &2u64.to_be_bytes())?;
            Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
        })
        .map_err(|e| StoreError::Io(format!("migration to format 2: {e:?}")))?;
    db.flush().map_err(err)?;
    Ok(())
}
