//! The embedded store on sled 0.34.
//!
//! Trees: `agreements` (id → JSON), `versions` (id / version → JSON), `documents` (SHA-256 →
//! bytes, content-addressed, written once), `events` (id / seq → JSON), `heads` (id → last seq
//! and hash of its chain), `outbox` (message id → JSON); derived, not backed up: `outbox_index`
//! ([`super::outbox_index`]) and `agreement_summaries` (id → the agreement's summary, compact
//! binary, [`super::summary_index`]: what start-up reads instead of every record) and
//! `reminder_wakes` (id → the reminder tick's [`ReminderWake`]: 21 bytes, see
//! [`SledStore::reminder_wakes`]).
//!
//! Durability: sled's `flush()` ends in `sync_file_range`, which survives a process crash but not
//! a power cut (it neither syncs file metadata nor guarantees the drive cache is flushed). After
//! each commit we therefore flush sled and then `fsync` its data file through a separate handle;
//! fsync acts on the inode, so this makes everything sled wrote durable before we acknowledge.
//! Concurrent commits share that flush + fsync (group commit, [`super::group`]): a commit returns
//! only after a flush that started after its transaction has finished.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use super::audit::{Event, GENESIS};
use super::format::{self, HeadKey, Migration};
use super::{ApiKeyRecord, ChainHead, Change, Message, RawChain, ReminderWake, Store, StoreError};
use crate::domain::agreement::{Agreement, Summary, VersionRecord};

fn encode_wake(w: &ReminderWake) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[0] = 1;
    b[1..9].copy_from_slice(&w.revision.to_le_bytes());
    b[9..13].copy_from_slice(&w.settings.to_le_bytes());
    b[13..21].copy_from_slice(&w.at.to_le_bytes());
    b
}

/// `meta` key of the index token ([`Store::put_index_token`]): 16 random bytes, stored when a
/// server stops cleanly and taken out by the next open. Not backed up.
const INDEX_TOKEN_KEY: &[u8] = b"index_token";

fn decode_wake(b: &[u8]) -> Option<ReminderWake> {
    let b: &[u8; 21] = b.try_into().ok()?;
    (b[0] == 1).then(|| ReminderWake {
        revision: u64::from_le_bytes(b[1..9].try_into().unwrap_or_default()),
        settings: u32::from_le_bytes(b[9..13].try_into().unwrap_or_default()),
        at: u64::from_le_bytes(b[13..21].try_into().unwrap_or_default()),
    })
}

pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
    agreements: Tree,
    versions: Tree,
    documents: Tree,
    events: Tree,
    heads: Tree,
    outbox: Tree,
    apikeys: Tree,
    /// Key id → last use (u64 big-endian), apart from `apikeys` (see `touch_api_key`).
    key_last_used: Tree,
    /// `format_version` (see [`format`]) and, between a clean stop and the next open, the index
    /// token ([`INDEX_TOKEN_KEY`]).
    meta: Tree,
    /// Authenticates chain heads; read from a file outside sled (see [`format`]).
    head_key: HeadKey,
    /// What the open's migration did.
    migration: Migration,
    /// Queued messages and messages per agreement ([`super::outbox_index`]; derived, not backed up).
    outbox_index: Tree,
    /// Agreement id → its [`Summary`] ([`super::summary_index`]; derived, not backed up).
    summaries: Tree,
    /// Summaries this open built from the records (0: the tree was already built, or no records).
    summaries_built: usize,
    /// Agreement id → the reminder tick's wake note (derived, advisory, not backed up).
    wakes: Tree,
    /// Shares flushes between concurrent commits (group commit, see [`super::group`]).
    group: super::group::GroupCommit,
    /// Agreements decoded for link checks, each kept with the bytes it came from
    /// ([`super::decoded`]; in memory only).
    decoded: super::decoded::DecodedCache,
    /// The index token this open found and took out of `meta` ([`Store::take_index_token`]).
    index_token: std::sync::Mutex<Option<[u8; 16]>>,
    /// The index token stored by [`Store::put_index_token`] and not removed since: to be sealed
    /// when the store closes (shared with `_released`, which writes the seal). Held through each
    /// commit, which removes a stored token first, and through `put_index_token`: so no commit
    /// falls between a token and its removal, whoever commits (sled serialises its
    /// transactions process-wide already, so this adds no waiting).
    sealing: Arc<std::sync::Mutex<Option<[u8; 16]>>>,
    /// People, invitations, sessions, security log (see [`super::people`]).
    people: super::people::PeopleTrees,
    /// Vendors, their audit trails and files (see [`super::vendors`]).
    vendors: super::vendors::VendorTrees,
    /// Webhook endpoints, deliveries and their queue (see [`super::webhooks`]).
    webhooks: super::webhooks::WebhookTree,
    /// Declared last, so dropped last: waits until sled has let go of its file lock.
    _released: LockReleased,
}

/// Dropping a sled `Db` signals its background threads but returns before they have all let go
/// of the data file, and with it the exclusive lock. A process that stops a server and reopens
/// the same directory (a restart, an operator command) would then find it "in use". Dropping a
/// [`SledStore`] therefore waits until the lock can be taken — the event itself, not a delay —
/// so that once the store is dropped, the directory is free. Then, when an index token is still
/// stored, it writes the token's seal (see [`SEAL_FILE`]).
struct LockReleased {
    /// sled's data file, which it locks.
    db_file: PathBuf,
    /// The index token stored and not removed since ([`Store::put_index_token`]).
    sealing: Arc<std::sync::Mutex<Option<[u8; 16]>>>,
    /// Where its seal goes.
    seal_file: PathBuf,
}

impl Drop for LockReleased {
    fn drop(&mut self) {
        let started = std::time::Instant::now();
        let locked = loop {
            let Ok(f) = File::open(&self.db_file) else { return }; // the file is gone: free
            match f.try_lock() {
                // Taken (and released again when `f` closes): free.
                Ok(()) => break f,
                // A file system without these locks (flock emulated where a read-only file
                // cannot take it): nothing to wait for, and nothing to seal under.
                Err(std::fs::TryLockError::Error(e)) => {
                    tracing::debug!(error = %e, "sled's data file cannot be locked here: no index seal");
                    return;
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() > std::time::Duration::from_secs(30) => {
                    tracing::warn!(path = %self.db_file.display(), "sled still holds its lock 30 s after closing");
                    return;
                }
                Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        };
        // The seal, while the lock is still ours: nothing writes the file between its stamp and
        // the lock's release.
        let token = self.sealing.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(token), Some(stamp)) = (token, file_stamp(&self.db_file)) {
            let seal = [&token[..], &stamp[..]].concat();
            if let Err(e) = super::perms::write_private(&self.seal_file, &seal) {
                tracing::warn!(error = %e, "the index token's seal was not written: the next start builds the index");
            }
        }
        drop(locked);
    }
}

/// The index token's seal, in the data directory: the token and the [`file_stamp`] of sled's
/// data file, taken once this process has closed the store after storing the token. The token
/// in `meta` says nothing has changed *through a release that knows about it*; the seal says
/// nothing has written to the file since, whatever wrote (an earlier release, run after this
/// one, would not take the token out). An open hands the token over only when both hold.
const SEAL_FILE: &str = "index-token.seal";

/// A file as the file system describes it: inode, length, and modification and change times to
/// the nanosecond. Any write changes the times; a copy is another inode.
fn file_stamp(path: &Path) -> Option<[u8; 48]> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let mut b = [0u8; 48];
    for (i, v) in [m.ino(), m.len(), m.mtime() as u64, m.mtime_nsec() as u64, m.ctime() as u64, m.ctime_nsec() as u64]
        .into_iter()
        .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    Some(b)
}

/// sled's page cache when `COUNTERSIGN_SLED_CACHE_MB` is not set, in MiB. sled's own default
/// (1 GiB) kept what the start-up scan read: several hundred MB at 100,000 agreements. Reads
/// past the cache come from the operating system's file cache; the search index never reads
/// the store.
pub const DEFAULT_CACHE_MB: u64 = 32;

/// sled's page cache, from `COUNTERSIGN_SLED_CACHE_MB` (whole MiB, at least 1), else
/// [`DEFAULT_CACHE_MB`]. The cache holds decoded pages of every tree, so it bounds how much of
/// the store stays in memory after start-up has read every agreement.
pub fn cache_capacity() -> u64 {
    let set = std::env::var("COUNTERSIGN_SLED_CACHE_MB").ok().and_then(|v| v.trim().parse::<u64>().ok());
    let mb = set.filter(|&mb| mb >= 1).unwrap_or(DEFAULT_CACHE_MB);
    mb * 1024 * 1024
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn version_key(id: &str, v: u32) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(b'/');
    k.extend_from_slice(&v.to_be_bytes());
    k
}

fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(b'/');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn prefix(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(b'/');
    k
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    /// HMAC of (agreement id, seq, hash) under the head key; empty in format 1.
    #[serde(default)]
    mac: String,
}

impl SledStore {
    /// Writes `changes` in one sled transaction, each with its own revision check: a change whose
    /// agreement revision is stale answers `Conflict` and writes nothing, the others commit.
    /// Reads inside the transaction see its own earlier writes, so two changes to one agreement
    /// (revisions n+1 and n+2) or one chain in a batch follow each other. One sealed-event list
    /// per change, in order; `Err` when the transaction as a whole failed (nothing written).
    pub(crate) fn commit_batch(&self, changes: &[Change]) -> Result<Vec<Result<Vec<Event>, StoreError>>, StoreError> {
        // An index token stored since the last commit goes first: sled's log is written in
        // order, so the flush that makes this commit durable makes the removal durable too.
        // (Taken out of `sealing` even if the removal fails: unsealed, the token is refused.)
        let mut sealing = self.sealing.lock().unwrap_or_else(|p| p.into_inner());
        if sealing.take().is_some() {
            self.meta.remove(INDEX_TOKEN_KEY).map_err(io)?;
        }
        // Hashed before the transaction, which sled may run more than once.
        let docs: Vec<Vec<(String, &Vec<u8>)>> =
            changes.iter().map(|c| c.documents.iter().map(|d| (hex::encode(Sha256::digest(d)), d)).collect()).collect();
        let trees = (
            &self.agreements,
            &self.versions,
            &self.documents,
            &self.events,
            &self.heads,
            &self.outbox,
            &self.outbox_index,
            &self.webhooks.tree,
            &self.summaries,
        );
        let result = trees.transaction(
            |(agreements, versions, documents, events, heads, outbox, outbox_index, wh, summaries)| {
                let mut results = Vec::with_capacity(changes.len());
                for (change, docs) in changes.iter().zip(&docs) {
                    if let Some(a) = &change.agreement {
                        let stored_rev = match agreements.get(a.id.as_bytes())? {
                            // Only the revision is read: the record's other fields are skipped, not built.
                            Some(bytes) => {
                                serde_json::from_slice::<Revision>(&bytes).map_err(|e| abort(io(e)))?.revision
                            }
                            None => 0,
                        };
                        if a.revision != stored_rev + 1 {
                            results.push(Err(StoreError::Conflict));
                            continue;
                        }
                        put_json(agreements, a.id.as_bytes(), a)?;
                        // Its summary, from the record itself and in the same transaction.
                        super::summary_index::index_tx(summaries, &Summary::from(a))?;
                    }
                    for v in &change.versions {
                        let id = change.agreement.as_ref().map(|a| a.id.as_str()).unwrap_or_default();
                        put_json(versions, &version_key(id, v.version), v)?;
                    }
                    for (sha, bytes) in docs {
                        // Content-addressed and immutable: an existing document is never overwritten.
                        if documents.get(sha.as_bytes())?.is_none() {
                            documents.insert(sha.as_bytes(), bytes.as_slice())?;
                        }
                    }
                    let mut sealed = Vec::with_capacity(change.events.len());
                    for e in &change.events {
                        let head = match heads.get(e.agreement_id.as_bytes())? {
                            Some(b) => serde_json::from_slice::<Head>(&b).map_err(|e| abort(io(e)))?,
                            None => Head { seq: 0, hash: GENESIS.to_string(), mac: String::new() },
                        };
                        let ev = Event::seal(e.clone(), head.seq + 1, &head.hash);
                        put_json(events, &event_key(&ev.agreement_id, ev.seq), &ev)?;
                        let mac = self.head_key.mac(&ev.agreement_id, ev.seq, &ev.hash);
                        put_json(heads, ev.agreement_id.as_bytes(), &Head { seq: ev.seq, hash: ev.hash.clone(), mac })?;
                        sealed.push(ev);
                    }
                    for m in &change.messages {
                        put_json(outbox, m.id.as_bytes(), m)?;
                        super::outbox_index::index_tx(outbox_index, m)?;
                    }
                    for sha in &change.delete_documents {
                        documents.remove(sha.as_bytes())?;
                    }
                    for d in &change.webhooks {
                        super::webhooks::put_delivery_tx(wh, d)?;
                    }
                    results.push(Ok(sealed));
                }
                Ok(results)
            },
        );
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => io(e),
        })
    }

    /// Opens (or creates) the store in `dir`. A directory held by a running server fails with
    /// [`StoreError::Locked`].
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // umask 077 and 0700/0600 before anything is written (see `perms`).
        super::perms::secure_data_dir(dir).map_err(io)?;
        // The data file as the last close left it, before sled touches it (see `SEAL_FILE`),
        // taken under its lock (held by another process, the open below fails anyway).
        let db_file = dir.join("sled").join("db");
        let stamp_before = File::open(&db_file).ok().filter(|f| f.try_lock().is_ok()).and_then(|locked| {
            let stamp = file_stamp(&db_file);
            drop(locked);
            stamp
        });
        let config = sled::Config::new().path(dir.join("sled")).cache_capacity(cache_capacity());
        let db = config.open().map_err(|e| {
            let msg = e.to_string();
            if msg.contains("lock") || msg.contains("WouldBlock") || msg.contains("temporarily unavailable") {
                StoreError::Locked(dir.display().to_string())
            } else {
                io(msg)
            }
        })?;
        let tree = |n: &str| db.open_tree(n).map_err(io);
        // A current directory that holds chains must come with its head key: a new key would
        // make every head look forged. Anything else (new, or older and about to be migrated)
        // gets a key made now.
        let current_with_chains = format::stored_version(&db)?.is_some_and(|v| v >= 2) && !tree("heads")?.is_empty();
        let head_key = match format::load_head_key(dir, !current_with_chains)? {
            Some(k) => k,
            None => {
                return Err(StoreError::Io(format!(
                    "{} is missing: it authenticates the audit trail and is kept outside the store and its \
                     backups. Copy it back from where you keep it (countersign restore --head-key).",
                    format::head_key_path(dir).display()
                )));
            }
        };
        let migration = format::migrate(&db, dir, &head_key)?;
        let sealing: Arc<std::sync::Mutex<Option<[u8; 16]>>> = Default::default();
        let mut store = SledStore {
            outbox_index: tree("outbox_index")?,
            summaries: tree("agreement_summaries")?,
            summaries_built: 0,
            wakes: tree("reminder_wakes")?,
            agreements: tree("agreements")?,
            versions: tree("versions")?,
            documents: tree("documents")?,
            events: tree("events")?,
            heads: tree("heads")?,
            outbox: tree("outbox")?,
            apikeys: tree("apikeys")?,
            key_last_used: tree("apikey_last_used")?,
            meta: tree("meta")?,
            head_key,
            migration,
            group: Default::default(),
            decoded: Default::default(),
            index_token: Default::default(),
            sealing: sealing.clone(),
            people: super::people::PeopleTrees::open(&db)?,
            vendors: super::vendors::VendorTrees::open(&db)?,
            webhooks: super::webhooks::WebhookTree::open(&db)?,
            dir: dir.join("sled"),
            _released: LockReleased { db_file: dir.join("sled").join("db"), sealing, seal_file: dir.join(SEAL_FILE) },
            db,
        };
        super::outbox_index::ensure_built(&store.outbox, &store.outbox_index)?;
        store.summaries_built = super::summary_index::ensure_built(&store.agreements, &store.summaries)?;
        // The index token is taken out whoever opens the store (a server, an operator command):
        // whatever this open goes on to write, the snapshot no longer vouches for it. It is
        // handed over only when the open itself changed nothing the index reads (no migration,
        // no summaries built) and its seal matches the data file as this open found it.
        let token = store.meta.remove(INDEX_TOKEN_KEY).map_err(io)?;
        if store.summaries_built > 0 || token.is_some() {
            // Built now (a directory from a release before the tree): on disk before serving,
            // so the next start reads the summaries and not the records again. A token taken
            // out: gone from the disk before the token is handed over or anything committed.
            store.durable()?;
        }
        // The seal is spent with the token, whatever it says.
        let seal_path = dir.join(SEAL_FILE);
        let seal = std::fs::read(&seal_path).ok();
        if seal.is_some() {
            let _ = std::fs::remove_file(&seal_path);
        }
        let sealed = |t: &[u8]| {
            let stamp = stamp_before.as_ref().map(|s| &s[..]);
            seal.as_deref().is_some_and(|seal| seal.len() == 64 && &seal[..16] == t && Some(&seal[16..]) == stamp)
        };
        if store.migration.is_noop() && store.summaries_built == 0 {
            *store.index_token.get_mut().unwrap_or_else(|p| p.into_inner()) =
                token.filter(|t| sealed(t)).and_then(|t| <[u8; 16]>::try_from(t.as_ref()).ok());
        }
        Ok(store)
    }

    /// Makes every write applied so far durable, sharing the flush with concurrent callers.
    fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.group.ticket();
        self.group.wait(ticket, || self.flush_files())
    }

    /// Flushes performed so far (group commit: fewer than commits under concurrency).
    pub fn flushes(&self) -> u64 {
        self.group.flushes()
    }

    /// Flush sled, then fsync its files (see the module comment for why both).
    fn flush_files(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(io)?;
        for name in ["db", "conf"] {
            let p = self.dir.join(name);
            if p.exists() {
                File::open(&p).and_then(|f| f.sync_all()).map_err(io)?;
            }
        }
        Ok(())
    }

    fn get_json<T: serde::de::DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<T, StoreError> {
        let bytes = tree.get(key).map_err(io)?.ok_or(StoreError::NotFound)?;
        serde_json::from_slice(&bytes).map_err(io)
    }
}

type Tx = ConflictableTransactionError<StoreError>;

/// The one field of a stored agreement record the commit's revision check needs.
#[derive(serde::Deserialize)]
struct Revision {
    revision: u64,
}

fn abort(e: StoreError) -> Tx {
    ConflictableTransactionError::Abort(e)
}

fn put_json<T: serde::Serialize>(t: &TransactionalTree, key: &[u8], v: &T) -> Result<(), Tx> {
    let bytes = serde_json::to_vec(v).map_err(|e| abort(io(e)))?;
    t.insert(key, bytes)?;
    Ok(())
}

impl Store for SledStore {
    fn agreement(&self, id: &str) -> Result<Agreement, StoreError> {
        Self::get_json(&self.agreements, id.as_bytes())
    }

    fn agreement_shared(&self, id: &str) -> Result<Arc<Agreement>, StoreError> {
        let bytes = self.agreements.get(id.as_bytes()).map_err(io)?.ok_or(StoreError::NotFound)?;
        self.decoded.decode(id, &bytes).map_err(io)
    }

    fn agreements(&self) -> Result<Vec<Agreement>, StoreError> {
        self.agreements.iter().values().map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io)).collect()
    }

    fn agreement_summaries(&self, f: &mut (dyn FnMut(Summary) + Send)) -> Result<(), StoreError> {
        super::decode_each(self, f)
    }

    fn stored_summaries(&self, f: &mut (dyn FnMut(super::StoredSummary) + Send)) -> Result<(), StoreError> {
        // The small derived tree, not the records (~2.6 KB each; see `summary_index`).
        super::summary_index::scan_stored(&self.summaries, f)
    }

    fn summaries(&self, ids: &[String]) -> Result<Vec<Option<Summary>>, StoreError> {
        // The summary tree (~250 bytes a value, no JSON); a value that does not decode (which
        // start-up reports too) is answered from the record.
        ids.iter()
            .map(|id| {
                let Some(v) = self.summaries.get(id.as_bytes()).map_err(io)? else { return Ok(None) };
                match super::summary_index::decode_entry(id.as_bytes(), &v) {
                    Ok(s) => Ok(Some(s)),
                    Err(_) => match self.agreement(id) {
                        Ok(a) => Ok(Some(Summary::from(&a))),
                        Err(StoreError::NotFound) => Ok(None),
                        Err(e) => Err(e),
                    },
                }
            })
            .collect()
    }

    fn version(&self, id: &str, version: u32) -> Result<VersionRecord, StoreError> {
        Self::get_json(&self.versions, &version_key(id, version))
    }

    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        self.versions
            .scan_prefix(prefix(id))
            .values()
            .map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io))
            .collect()
    }

    fn document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.documents.get(sha256.as_bytes()).map_err(io)?.ok_or(StoreError::NotFound)?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256 {
            tracing::error!(expected = sha256, actual = %actual, "stored document failed its SHA-256 check; refusing to serve it");
            return Err(StoreError::Corrupt(sha256.to_string()));
        }
        Ok(bytes.to_vec())
    }

    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        self.events
            .scan_prefix(prefix(id))
            .values()
            .map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io))
            .collect()
    }

    fn commit(&self, change: Change) -> Result<Vec<Event>, StoreError> {
        let (sealed, ticket) = self.commit_nowait(change)?;
        self.sync(ticket)?;
        Ok(sealed)
    }

    fn reads_in_process(&self) -> bool {
        true
    }

    /// Encoding: a version byte (1), then the revision (u64), the settings' fingerprint (u32)
    /// and the time (u64), little-endian. A value that does not decode is left out (read again).
    /// Written with no wait for the disk: sled recovers a prefix of its log, so a note that
    /// survives a crash was written after the record revision it names, which survives too.
    fn reminder_wakes(&self) -> Result<Vec<(String, ReminderWake)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.wakes.iter() {
            let (k, v) = kv.map_err(io)?;
            let (Ok(id), Some(w)) = (std::str::from_utf8(&k), decode_wake(&v)) else { continue };
            out.push((id.to_string(), w));
        }
        Ok(out)
    }

    fn put_reminder_wakes(&self, put: &[(String, ReminderWake)], remove: &[String]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in remove {
            batch.remove(id.as_bytes());
        }
        for (id, w) in put {
            batch.insert(id.as_bytes(), encode_wake(w).to_vec());
        }
        self.wakes.apply_batch(batch).map_err(io)
    }

    fn commits_in_batches(&self) -> bool {
        true
    }

    fn sync(&self, ticket: u64) -> Result<(), StoreError> {
        self.group.wait(ticket, || self.flush_files())
    }

    fn sync_async(
        self: Arc<Self>,
        ticket: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>> {
        Box::pin(super::group::wait_async(self, |s| &s.group, ticket, SledStore::flush_files))
    }

    fn commit_nowait(&self, change: Change) -> Result<(Vec<Event>, u64), StoreError> {
        let mut results = self.commit_batch(std::slice::from_ref(&change))?;
        let sealed = results.pop().unwrap_or_else(|| Err(io("the batch answered no result for the change")))?;
        // Issued after the transaction returned: any flush that starts from here covers it.
        Ok((sealed, self.group.ticket()))
    }

    fn commit_all_nowait(&self, changes: Vec<Change>) -> (Vec<Result<Vec<Event>, StoreError>>, u64) {
        match self.commit_batch(&changes) {
            // Issued after the transaction returned: any flush that starts from here covers it.
            Ok(results) => (results, self.group.ticket()),
            // The batch failed as a whole (a record that does not decode, a storage error): one
            // by one, so that each change gets its own answer and the others still commit.
            // A batch of one has nothing to separate: its error is its answer.
            Err(e) if changes.len() == 1 => (vec![Err(e)], 0),
            Err(e) => {
                tracing::warn!(error = %e, changes = changes.len(), "a batch of changes failed; committing them one by one");
                super::commit_each(self, changes)
            }
        }
    }

    fn messages(&self) -> Result<Vec<Message>, StoreError> {
        self.outbox.iter().values().map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io)).collect()
    }

    fn message(&self, id: &str) -> Result<Message, StoreError> {
        Self::get_json(&self.outbox, id.as_bytes())
    }

    fn put_message(&self, m: &Message) -> Result<(), StoreError> {
        let ticket = self.put_messages_nowait(std::slice::from_ref(m))?;
        self.sync(ticket)
    }

    fn put_messages_nowait(&self, ms: &[Message]) -> Result<u64, StoreError> {
        if ms.is_empty() {
            return Ok(0);
        }
        let bodies: Vec<Vec<u8>> = ms.iter().map(serde_json::to_vec).collect::<Result<_, _>>().map_err(io)?;
        // One transaction for the batch: each sled transaction writes the log buffer out twice
        // (sled's `pin_log`), so a transaction per message cost the sender two disk writes each.
        (&self.outbox, &self.outbox_index)
            .transaction(|(outbox, index)| {
                for (m, body) in ms.iter().zip(&bodies) {
                    outbox.insert(m.id.as_bytes(), body.as_slice())?;
                    super::outbox_index::index_tx::<StoreError>(index, m)?;
                }
                Ok(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => io(e),
            })?;
        // Issued after the transaction returned: any flush that starts from here covers it.
        Ok(self.group.ticket())
    }

    fn lease_messages_nowait(
        &self,
        ids: &[String],
        lease: &mut (dyn FnMut(Message) -> Result<Option<Message>, StoreError> + Send),
    ) -> Result<(Vec<Message>, u64), StoreError> {
        // One process holds this store: the caller's write lock makes reads and write one step.
        let mut leased = Vec::with_capacity(ids.len());
        for id in ids {
            match self.message(id) {
                Ok(m) => leased.extend(lease(m)?),
                Err(StoreError::NotFound) => {}
                // One unreadable message does not hold up the rest of the batch.
                Err(e) => tracing::error!(message = %id, error = %e, "cannot read the message to lease it"),
            }
        }
        let ticket = self.put_messages_nowait(&leased)?;
        Ok((leased, ticket))
    }

    fn queued_messages(&self) -> Result<Vec<Message>, StoreError> {
        super::outbox_index::queued(&self.outbox, &self.outbox_index)
    }

    fn queued_heads(&self) -> Result<Vec<super::QueuedHead>, StoreError> {
        super::outbox_index::queued(&self.outbox, &self.outbox_index)
    }

    fn agreement_messages(&self, agreement: &str) -> Result<Vec<Message>, StoreError> {
        super::outbox_index::of_agreement(&self.outbox, &self.outbox_index, agreement)
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.apikeys
            .iter()
            .values()
            .map(|v| {
                let mut k: ApiKeyRecord = serde_json::from_slice(&v.map_err(io)?).map_err(io)?;
                // A record written by an earlier release may carry its own `last_used`.
                if let Some(at) = self.key_last_used.get(k.id.as_bytes()).map_err(io)? {
                    let at = u64::from_be_bytes(at.as_ref().try_into().unwrap_or_default());
                    k.last_used = k.last_used.max(Some(at));
                }
                Ok(k)
            })
            .collect()
    }

    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.apikeys.insert(k.id.as_bytes(), serde_json::to_vec(k).map_err(io)?).map_err(io)?;
        self.durable()
    }

    fn put_api_key_logged(
        &self,
        k: &ApiKeyRecord,
        log: super::people::NewSecurityEvent,
    ) -> Result<super::people::SecurityEvent, StoreError> {
        let key = serde_json::to_vec(k).map_err(io)?;
        let t = self.people_trees();
        // The security log's append lock: no other append takes the next number meanwhile.
        let _one = t.append.lock().unwrap_or_else(|p| p.into_inner());
        let last: Option<super::people::SecurityEvent> = match t.seclog.last().map_err(io)? {
            Some((_, v)) => Some(serde_json::from_slice(&v).map_err(io)?),
            None => None,
        };
        let ev = super::people::SecurityEvent::next(last.as_ref(), log);
        let entry = serde_json::to_vec(&ev).map_err(io)?;
        // One transaction over both trees: both land or neither.
        (&self.apikeys, &t.seclog)
            .transaction(|(apikeys, seclog)| {
                apikeys.insert(k.id.as_bytes(), key.clone())?;
                seclog.insert(&ev.seq.to_be_bytes(), entry.clone())?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => io(e),
            })?;
        self.durable()?;
        Ok(ev)
    }

    fn touch_api_key(&self, id: &str, at: u64) -> Result<(), StoreError> {
        // Its own tree: the key record (and with it `revoked_at`) is never rewritten here.
        self.key_last_used.insert(id.as_bytes(), &at.to_be_bytes()).map_err(io)?;
        Ok(())
    }

    fn dump(&self, out: &mut (dyn std::io::Write + Send)) -> Result<usize, StoreError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut n = 0;
        for (name, tree) in self.named_trees() {
            for kv in tree.iter() {
                let (k, v) = kv.map_err(io)?;
                // The index token vouches for this directory's snapshot, not for a copy.
                if name == "meta" && k.as_ref() == INDEX_TOKEN_KEY {
                    continue;
                }
                let line = serde_json::json!({"tree": name, "key": b64.encode(&k), "value": b64.encode(&v)});
                writeln!(out, "{line}").map_err(io)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn raw_chains(&self) -> Result<Vec<RawChain>, StoreError> {
        let mut out: Vec<RawChain> = Vec::new();
        for kv in self.events.iter() {
            let (k, v) = kv.map_err(io)?;
            let id = k
                .iter()
                .position(|&b| b == b'/')
                .map(|i| String::from_utf8_lossy(&k[..i]).into_owned())
                .unwrap_or_default();
            match out.last_mut() {
                Some((last, chain)) if *last == id => chain.push(v.to_vec()),
                _ => out.push((id, vec![v.to_vec()])),
            }
        }
        Ok(out)
    }

    fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        self.heads
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                let id = String::from_utf8_lossy(&k).into_owned();
                let h: Head = serde_json::from_slice(&v).map_err(io)?;
                let authentic = self.head_key.check(&id, h.seq, &h.hash, &h.mac);
                Ok(ChainHead { agreement_id: id, seq: h.seq, hash: h.hash, authentic })
            })
            .collect()
    }

    fn take_index_token(&self) -> Option<[u8; 16]> {
        self.index_token.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// sled's LRU queues accesses per shard (256) in blocks of 64 and applies them only when a
    /// block overflows: the ~1,600 leaves of summaries an index build reads at 100,000
    /// agreements (~22 MB in memory) add ~6 accesses to each shard, and stayed while the
    /// server idled, with `COUNTERSIGN_SLED_CACHE_MB=2` as with 32 (vendored sled,
    /// `Db::shed_cache`).
    fn shed_cache(&self) {
        let started = std::time::Instant::now();
        let shed = self.db.shed_cache();
        let ms = started.elapsed().as_millis() as u64;
        match shed {
            Ok(sled::Shed { pages, freed: true }) => {
                tracing::debug!(pages, ms, "sled's pages in memory dropped and freed in {ms} ms")
            }
            // Worth seeing: the start waited sled's bound (a tenth of a second) for nothing,
            // and the pages' memory is freed later, perhaps after it was handed back.
            Ok(sled::Shed { pages, freed: false }) => tracing::info!(
                pages,
                ms,
                "sled's pages in memory dropped; another thread kept some from being freed for {ms} ms"
            ),
            Err(e) => tracing::warn!(error = %e, "could not drop sled's pages in memory"),
        }
    }

    fn keeps_index_token(&self) -> bool {
        true
    }

    fn put_index_token(&self, token: [u8; 16]) -> Result<(), StoreError> {
        let mut sealing = self.sealing.lock().unwrap_or_else(|p| p.into_inner());
        self.meta.insert(INDEX_TOKEN_KEY, &token).map_err(io)?;
        self.durable()?;
        *sealing = Some(token);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }

    fn people(&self) -> &dyn super::people::PeopleStore {
        self
    }

    fn vendors(&self) -> &dyn super::vendors::VendorStore {
        self
    }

    fn webhooks(&self) -> &dyn super::webhooks::WebhookStore {
        self
    }
}

impl SledStore {
    pub(super) fn people_trees(&self) -> &super::people::PeopleTrees {
        &self.people
    }

    pub(super) fn vendor_trees(&self) -> &super::vendors::VendorTrees {
        &self.vendors
    }

    pub(super) fn webhook_tree(&self) -> &super::webhooks::WebhookTree {
        &self.webhooks
    }

    /// Makes everything written so far durable (see [`SledStore::durable`]).
    pub(super) fn make_durable(&self) -> Result<(), StoreError> {
        self.durable()
    }

    /// What opening this directory migrated (`from == to`: nothing).
    pub fn migration(&self) -> Migration {
        self.migration
    }

    fn named_trees(&self) -> Vec<(&'static str, &Tree)> {
        let mut trees = vec![
            ("agreements", &self.agreements),
            ("versions", &self.versions),
            ("documents", &self.documents),
            ("events", &self.events),
            ("heads", &self.heads),
            ("outbox", &self.outbox),
            ("apikeys", &self.apikeys),
            ("apikey_last_used", &self.key_last_used),
            ("meta", &self.meta),
        ];
        trees.extend(self.people.named());
        trees.extend(self.vendors.named());
        trees.push(self.webhooks.named());
        trees
    }

    /// Loads a `dump` into this (empty) store; refuses a store that already holds data.
    pub fn restore(&self, input: impl std::io::BufRead) -> Result<usize, StoreError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        // `meta` holds only the version a new directory was stamped with at open.
        if self.named_trees().iter().any(|(n, t)| *n != "meta" && !t.is_empty()) {
            return Err(StoreError::Io("restore needs an empty data directory".into()));
        }
        // The backup's own version (or none: format 1) decides what migration runs after.
        self.meta.remove(format::VERSION_KEY).map_err(io)?;
        let mut n = 0;
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| StoreError::Io(format!("backup line {}: {what}", i + 1));
            let v: serde_json::Value = serde_json::from_str(&line).map_err(|_| bad("not JSON"))?;
            let tree = v["tree"].as_str().ok_or_else(|| bad("no tree"))?;
            let key = b64.decode(v["key"].as_str().ok_or_else(|| bad("no key"))?).map_err(|_| bad("bad key"))?;
            let value =
                b64.decode(v["value"].as_str().ok_or_else(|| bad("no value"))?).map_err(|_| bad("bad value"))?;
            let (_, t) = self.named_trees().into_iter().find(|(n, _)| *n == tree).ok_or_else(|| bad("unknown tree"))?;
            if tree == "meta" && key == INDEX_TOKEN_KEY {
                continue;
            }
            t.insert(key, value).map_err(io)?;
            n += 1;
        }
        // A backup from an earlier format is upgraded like a directory would be at open.
        format::migrate(&self.db, &self.dir, &self.head_key)?;
        super::outbox_index::rebuild(&self.outbox, &self.outbox_index)?;
        super::summary_index::rebuild(&self.agreements, &self.summaries)?;
        self.wakes.clear().map_err(io)?;
        self.durable()?;
        Ok(n)
    }

    /// Test and repair hook: overwrite one stored event's bytes (used to prove `audit verify`
    /// catches tampering). Not used by the service.
    pub fn tamper_event(&self, id: &str, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.events.insert(event_key(id, seq), bytes).map_err(io)?;
        self.durable()
    }

    /// How many agreement summaries this open built from the records: 0 when the derived tree
    /// was already built or there are no agreements (see [`super::summary_index`]).
    pub fn summaries_built(&self) -> usize {
        self.summaries_built
    }

    /// Test hook: empties the derived summary tree, its marker included, as in a directory
    /// written by the release before it. The next open builds it again. Not used by the service.
    pub fn drop_summaries(&self) -> Result<(), StoreError> {
        self.summaries.clear().map_err(io)?;
        self.durable()
    }

    #[cfg(test)]
    pub(super) fn summary_tree(&self) -> &Tree {
        &self.summaries
    }

    /// Overwrites an agreement's summary with `bytes` (tests: a damaged derived tree).
    #[cfg(test)]
    pub(crate) fn put_raw_summary(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.summaries.insert(id.as_bytes(), bytes).map_err(|e| StoreError::Io(e.to_string()))?;
        self.summaries.flush().map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(())
    }

    /// Overwrites an agreement's record with `bytes` (tests: a record that does not decode).
    #[cfg(test)]
    pub(crate) fn put_raw_agreement(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.agreements.insert(id.as_bytes(), bytes).map_err(io)?;
        self.agreements.flush().map_err(io)?;
        Ok(())
    }

    /// Raw bytes of one event.
    pub fn raw_event(&self, id: &str, seq: u64) -> Result<Vec<u8>, StoreError> {
        Ok(self.events.get(event_key(id, seq)).map_err(io)?.ok_or(StoreError::NotFound)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn agreement(id: &str, revision: u64) -> Agreement {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "baa", "title": "Batch", "upstream_name": "Up", "downstream_name": "Down",
            "status": "draft", "version": 1, "document_sha256": "", "check_passes": true, "created_at": 1,
            "updated_at": 1, "created_by": "test", "sent_at": null, "sent_by": null, "sent_sha256": null,
            "executed_at": null, "final_sha256": null, "void_reason": null, "signers": [], "revision": revision
        }))
        .expect("an agreement")
    }

    #[test]
    fn a_batch_that_fails_as_a_whole_is_committed_one_by_one_so_only_the_bad_change_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        // A record that does not decode: any change to it aborts the whole transaction.
        store.agreements.insert("broken", b"{not json".as_slice()).expect("inserts");
        let changes = vec![
            Change { agreement: Some(agreement("good", 1)), ..Change::default() },
            Change { agreement: Some(agreement("broken", 2)), ..Change::default() },
            Change { agreement: Some(agreement("also_good", 1)), ..Change::default() },
        ];
        assert!(store.commit_batch(&changes).is_err(), "the transaction fails as a whole");
        let (results, ticket) = store.commit_all_nowait(changes);
        store.sync(ticket).expect("durable");
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(StoreError::Io(_))), "{:?}", results[1]);
        assert_eq!(store.agreement("good").expect("stored").revision, 1);
        assert_eq!(store.agreement("also_good").expect("stored").revision, 1);
        // A batch of one answers its own error, without a second attempt.
        let (one, _) =
            store.commit_all_nowait(vec![Change { agreement: Some(agreement("broken", 2)), ..Change::default() }]);
        assert!(matches!(one.as_slice(), [Err(StoreError::Io(_))]), "{one:?}");
    }

    #[test]
    fn a_shared_agreement_is_the_kept_copy_until_a_commit_changes_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        store.commit(Change { agreement: Some(agreement("ag_1", 1)), ..Change::default() }).expect("commits");
        let first = store.agreement_shared("ag_1").expect("reads");
        let again = store.agreement_shared("ag_1").expect("reads");
        assert!(Arc::ptr_eq(&first, &again), "the same record: the same decoded copy");
        let mut changed = agreement("ag_1", 2);
        changed.title = "Corrected".into();
        store.commit(Change { agreement: Some(changed), ..Change::default() }).expect("commits");
        let now = store.agreement_shared("ag_1").expect("reads");
        assert_eq!((now.title.as_str(), now.revision), ("Corrected", 2));
        // A write that bypasses the service (as a restore or an earlier release would): seen too.
        store.put_raw_agreement("ag_1", &serde_json::to_vec(&agreement("ag_1", 3)).expect("encodes")).expect("writes");
        assert_eq!(store.agreement_shared("ag_1").expect("reads").revision, 3);
        assert!(matches!(store.agreement_shared("ag_2"), Err(StoreError::NotFound)));
    }

    #[test]
    fn a_document_too_large_for_the_log_is_a_blob_file_that_reads_back_after_reopening() {
        // sled writes an item larger than a quarter of a segment (128 KiB) to a file of its own,
        // which the vendored sled syncs before logging its pointer (vendor/README.md, change 1):
        // this is the path that change is on.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let doc: Vec<u8> = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let sha = hex::encode(Sha256::digest(&doc));
        {
            let store = SledStore::open(dir.path()).expect("opens");
            let change =
                Change { agreement: Some(agreement("ag_1", 1)), documents: vec![doc.clone()], ..Change::default() };
            let (results, ticket) = store.commit_all_nowait(vec![change]);
            assert!(results[0].is_ok(), "{results:?}");
            store.sync(ticket).expect("durable");
        }
        // The document's bytes are in a file of `sled/blobs`, not in the log. (That the file and
        // its directory were synced is not visible here: `strace -f -e trace=openat,fsync` on
        // this test shows it, README "sled's page table".)
        let blobs: Vec<Vec<u8>> = std::fs::read_dir(dir.path().join("sled").join("blobs"))
            .expect("the blob directory")
            .map(|e| std::fs::read(e.expect("an entry").path()).expect("a blob file"))
            .collect();
        assert!(
            blobs.iter().any(|b| b.windows(doc.len()).any(|w| w == doc.as_slice())),
            "a blob file holds the document ({} files)",
            blobs.len()
        );
        let store = SledStore::open(dir.path()).expect("reopens");
        assert!(store.document(&sha).expect("reads") == doc, "the same bytes after reopening");
    }

    #[test]
    fn after_sled_lets_go_of_its_cached_pages_every_record_reads_back_and_writes_go_on() {
        // `shed_cache` pages out every page in memory (vendored sled, vendor/README.md,
        // change 6): what it dropped is read again from the log, before and after a reopen.
        let dir = tempfile::tempdir().expect("tempdir");
        let ids: Vec<String> = (0..300).map(|i| format!("ag_{i:04}")).collect();
        let more: Vec<String> = (0..200).map(|i| format!("ag_w{i:03}")).collect();
        let summaries = |store: &SledStore| {
            let mut seen = Vec::new();
            store.stored_summaries(&mut |s| seen.push(s.decode().expect("decodes").id)).expect("scans");
            seen.sort();
            seen
        };
        {
            let store = SledStore::open(dir.path()).expect("opens");
            let changes: Vec<Change> =
                ids.iter().map(|id| Change { agreement: Some(agreement(id, 1)), ..Change::default() }).collect();
            let (results, ticket) = store.commit_all_nowait(changes);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            store.sync(ticket).expect("durable");
            assert_eq!(summaries(&store), ids, "every summary, before");
            // What another thread queued to be freed before the pages were dropped has been
            // taken for freeing by the time `shed_cache` says so: a probe deferred there, and
            // queued (`flush`), before the call.
            let probe = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            std::thread::scope(|s| {
                s.spawn(|| {
                    let guard = sled::pin();
                    let probe = probe.clone();
                    guard.defer(move || probe.store(true, std::sync::atomic::Ordering::Release));
                    guard.flush();
                });
            });
            let shed = store.db.shed_cache().expect("sheds");
            assert!(shed.pages > 0, "the scan's pages were in memory");
            // Not freed only while another thread stays pinned a tenth of a second (sled's, or
            // another test's: the epoch is the process's): then a later call frees what waits.
            let mut freed = shed.freed;
            for _ in 0..20 {
                if freed {
                    break;
                }
                freed = store.db.shed_cache().expect("sheds").freed;
            }
            assert!(freed, "what waited was freed");
            // Taken, then run by whichever thread took it: waited for, within a bound.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !probe.load(std::sync::atomic::Ordering::Acquire) && std::time::Instant::now() < deadline {
                std::thread::yield_now();
            }
            assert!(probe.load(std::sync::atomic::Ordering::Acquire), "the probe queued before it ran");
            assert_eq!(store.db.shed_cache().expect("sheds").pages, 0, "and no page is in memory now");
            assert_eq!(summaries(&store), ids, "every summary, read again");
            for id in &ids {
                assert_eq!(store.agreement(id).expect("reads").id, *id);
            }
            // Shedding while another thread writes loses nothing.
            std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    for id in &more {
                        let (results, ticket) = store
                            .commit_all_nowait(vec![Change { agreement: Some(agreement(id, 1)), ..Change::default() }]);
                        assert!(results[0].is_ok(), "{results:?}");
                        store.sync(ticket).expect("durable");
                    }
                });
                while !writer.is_finished() {
                    store.shed_cache();
                }
            });
            for id in &more {
                assert_eq!(store.agreement(id).expect("reads").id, *id);
            }
            store.shed_cache();
            let (results, ticket) =
                store.commit_all_nowait(vec![Change { agreement: Some(agreement("ag_9999", 1)), ..Change::default() }]);
            assert!(results[0].is_ok(), "{results:?}");
            store.sync(ticket).expect("durable");
        }
        let store = SledStore::open(dir.path()).expect("reopens");
        let mut all: Vec<String> = ids.iter().chain(&more).cloned().collect();
        all.push("ag_9999".into());
        all.sort();
        assert_eq!(summaries(&store), all, "every summary after reopening");
    }
}

#[cfg(test)]
mod wake_tests {
    use super::{ReminderWake, decode_wake, encode_wake};

    #[test]
    fn a_wake_note_round_trips_and_a_value_of_another_shape_is_ignored() {
        let w = ReminderWake { revision: 7, settings: 0xdead_beef, at: u64::MAX };
        assert_eq!(decode_wake(&encode_wake(&w)), Some(w));
        let mut other_version = encode_wake(&w);
        other_version[0] = 2;
        assert_eq!(decode_wake(&other_version), None);
        assert_eq!(decode_wake(&encode_wake(&w)[..20]), None, "cut short");
        assert_eq!(decode_wake(&[encode_wake(&w).as_slice(), &[0]].concat()), None, "too long");
    }
}
