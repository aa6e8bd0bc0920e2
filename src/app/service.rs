//! The signing service: every operation on an agreement, as one read–modify–commit.
//!
//! Concurrency: one process owns the data directory (sled locks it). Every change to an
//! agreement goes through [`Service::update`] (`app/update.rs`): the change is decided without
//! a lock — rendering, sealing and the timestamp authority included — and committed under
//! [`Service::write`], a short mutex around re-check → commit → index update, only if the
//! agreement's revision is unchanged since it was loaded; otherwise it is decided again. So no
//! update is lost between two signers of the same order, and slow work on one agreement never
//! holds up another. Creating an agreement and events-only commits (downloads) take the lock
//! directly: there is nothing to race with.
//!
//! All methods are synchronous and may render PDFs: the HTTP layer calls them through
//! `spawn_blocking`, never on the async threads.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::archive::search::{Entry, Index};
use crate::seal::SealKeys;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, long_date, rfc3339};
use crate::config::Config;
use crate::domain::actions::{Action, Refusal};
use crate::domain::agreement::{
    Agreement, Approval, Facts, Signature, SignerRecord, SignerStatus, Status, Summary, VersionRecord,
};
use crate::domain::findings::Finding;
use crate::domain::intake::{Intake, Side};
use crate::mail;
use crate::pdf::append;
use crate::render::model::Document;
use crate::render::{Mode, Options, Renderer, appendix};
use crate::signing::CONSENT_VERSION;
use crate::signing::token::{Claims, KeyRing, Purpose, TokenError};
use crate::store::{Change, Event, Message, MessageStatus, NewEvent, Store, StoreError, StoredSummary};

/// Who is acting, and from where (recorded in every audit event).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub who: String,
    pub ip: String,
    pub user_agent: String,
    /// The actor may see only agreements it created (a `sales` key): lookups made on its behalf,
    /// such as the automatic DUA cross-reference, consider only those.
    pub own_only: bool,
}

/// Why an operation failed. The HTTP layer maps each variant to one status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The intake is invalid (422): every problem with its pointer.
    #[error("the intake is invalid")]
    Invalid(Vec<Finding>),
    /// Sending is refused because the element check has errors (422).
    #[error("the agreement does not pass its checks")]
    CheckFailed(Vec<Finding>),
    /// Sending is refused until a legal or admin user approves these departures (422).
    #[error("the agreement departs from policy and needs approval")]
    NeedsApproval(Vec<Finding>),
    #[error("not found")]
    NotFound,
    /// The agreement's state does not allow this (409).
    #[error("{0}")]
    State(String),
    /// A request value is wrong (400/422), with a pointer.
    #[error("{1}")]
    Field(String, String),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("storage: {0}")]
    Store(StoreError),
    #[error("internal: {0}")]
    Internal(String),
    /// Over a concurrency cap or a time budget (429): try again later.
    #[error("{0}")]
    Busy(String),
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::State(r.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            e => ServiceError::Store(e),
        }
    }
}

/// Why a signer link does not work, in the order they are checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token at all (404).
    #[error("this link is not valid")]
    Malformed,
    /// Signed with a key this server does not accept (403).
    #[error("this link was not issued by this server")]
    UnknownKey,
    /// Altered (403).
    #[error("this link has been altered")]
    BadTag,
    /// Past its expiry (410): ask the sender for a new link.
    #[error("this link expired on {0}")]
    Expired(String),
    /// The agreement or signer no longer exists (404).
    #[error("this agreement no longer exists")]
    Gone,
    /// A newer link was issued (resend, correction) (410).
    #[error("a newer link was sent to you; use the most recent email")]
    Superseded,
    /// The agreement was voided (410).
    #[error("this agreement was withdrawn by the sender")]
    Voided,
    /// The signer already acted (409): the page shows the outcome.
    #[error("you have already responded to this agreement")]
    AlreadyUsed,
    /// Signing closed for another reason (declined by another signer, expired) (409).
    #[error("signing is closed: the agreement is {0}")]
    Closed(String),
}

/// A verified link: the agreement and signer it opens.
#[derive(Debug, Clone)]
pub struct Link {
    /// Shared: the store may hand out a copy it keeps (see [`Store::agreement_shared`]).
    pub agreement: Arc<Agreement>,
    pub signer: SignerRecord,
    pub purpose: Purpose,
    pub token: String,
}

/// What a signer submits.
#[derive(Debug, Clone)]
pub struct SignForm {
    pub consent: bool,
    pub typed_name: String,
    pub typed_title: String,
}

/// A signer correction.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerPatch {
    pub name: Option<String>,
    pub title: Option<String>,
    pub email: Option<String>,
}

pub struct Service {
    pub store: Arc<dyn Store>,
    /// The link keys; replaceable while serving (`Service::rotate_link_keys`).
    pub keys: crate::signing::live::LiveKeyRing,
    pub renderer: Renderer,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    write_lock: Mutex<()>,
    /// Concurrent agreement updates applied together under the write lock ([`super::combine`]).
    combiner: super::combine::Combiner<Change, Result<Applied, StoreError>>,
    /// Wakes the mail sender after a commit that queued messages (see `mail::sender`).
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// The sealing certificate and key (PAdES seal on every countersigned PDF).
    pub seal: SealKeys,
    /// The archive search index: in memory, built from the store at start (or read from the
    /// last clean stop's snapshot, [`super::snapshot`]), updated after every commit (under the
    /// write lock, so it never runs ahead of what is durable).
    pub index: RwLock<Index>,
    /// Every archived (sent or countersigned) document by SHA-256: agreement id, which copy, and
    /// length. Verification looks files up here instead of reading the archive.
    pub digests: RwLock<Digests>,
    /// Outbox passes the mail sender has finished since start: what tests wait for instead of
    /// sleeping before they check that nothing was sent.
    pub sender_passes: std::sync::atomic::AtomicU64,
    /// Signer-link views after the first, not yet written (the first-view rule, issue 14).
    pub views: super::views::Views,
    /// Prometheus metrics; the agreements-by-status gauges move with the index, on each commit.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Seals secrets at rest (two-factor seeds, webhook secrets) under a key kept outside the
    /// store; see [`crate::secret::vault`].
    pub vault: crate::secret::vault::Vault,
    /// The webhook sender's wake-up, passes and bookkeeping lock (see [`super::webhooks`]).
    pub hooks: super::webhooks::Hooks,
    /// The reminder tick's wake notes (see [`super::schedule::wake_at`]): loaded from the store
    /// by the first tick, then kept here and written back after each tick. Its own mutex, held
    /// by the tick while it chooses its candidates and again while it records what it learned,
    /// never across a store read: the tick is the only user.
    pub(crate) wakes: Mutex<Option<std::collections::HashMap<String, crate::store::ReminderWake>>>,
    /// Agreements the reminder ticks have read since start (out for signature, and executed ones
    /// in a term notice's window): what tests and the tick's log line count, which the wake
    /// notes are there to keep small.
    pub reminder_reads: std::sync::atomic::AtomicU64,
    /// The day the index's renewal dates are for ([`Index::refresh_renewals`]): set where the
    /// index is built or read, moved by [`Service::refresh_renewals`].
    index_day: Mutex<crate::domain::intake::Date>,
    /// True when this start read the index from the last stop's snapshot ([`super::snapshot`]).
    pub index_from_snapshot: std::sync::atomic::AtomicBool,
    /// False while the index is known to lack an agreement (its last build's scan failed, or an
    /// agreement could be read neither from its summary nor its record): such an index is not
    /// written as a snapshot, so the next start builds it again instead of keeping the gap.
    index_complete: std::sync::atomic::AtomicBool,
}

/// SHA-256 (the 32 bytes, see [`digest_key`]) → (agreement id, `sent` or `final`, length in
/// bytes). Kept as bytes, not hex, and the id once per agreement: at 100,000 agreements the map
/// holds ~160,000 documents.
pub type Digests = std::collections::HashMap<[u8; 32], (Arc<str>, &'static str, u64), DigestHash>;

/// Hashes a [`Digests`] key by its first eight bytes, with a random key of the map's own and
/// one multiplication. The map's keys are SHA-256s, already spread evenly, of documents
/// Countersign made (a verifier's upload is only looked up, never inserted): to crowd a bucket
/// someone would have to grind staff-entered intake for documents whose digests collide under
/// a key they do not know. SipHash's work bought nothing here and was a sixth of the start-up
/// indexer's time at 100,000 agreements (`perf`).
#[derive(Debug, Clone, Copy)]
pub struct DigestHash(u64);

impl Default for DigestHash {
    fn default() -> DigestHash {
        use std::hash::BuildHasher;
        DigestHash(std::hash::RandomState::new().hash_one(0u8))
    }
}

impl std::hash::BuildHasher for DigestHash {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(self.0)
    }
}

/// See [`DigestHash`].
#[derive(Debug)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    /// The product's high half, where every input bit and the key count, moved down to the bits
    /// that pick a bucket.
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(32)
    }

    // An array hashes as its length, then its bytes: each write mixes in its first eight bytes.
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(b);
    }
}

/// The [`Digests`] key of a hex SHA-256; None for anything else (which no document has).
pub fn digest_key(hex_sha: &str) -> Option<[u8; 32]> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_sha, &mut k).ok()?;
    Some(k)
}

fn add_digests(d: &mut Digests, a: &Summary) {
    add_documents(d, &a.id, document_keys(a));
}

/// One document of an agreement, as [`Digests`] keeps it less the agreement's id: its SHA-256,
/// which one it is, and its length.
type DocumentKey = ([u8; 32], &'static str, u64);

/// The [`DocumentKey`]s of an agreement's documents: the one sent and the final one.
fn document_keys(a: &Summary) -> [Option<DocumentKey>; 2] {
    let doc = |sha: &Option<String>, len: Option<u64>, which: &'static str| {
        Some((sha.as_deref().and_then(digest_key)?, which, len?))
    };
    [doc(&a.sent_sha256, a.sent_bytes, "sent"), doc(&a.final_sha256, a.final_bytes, "final")]
}

/// Adds `id`'s documents to the digests, the id allocated once for both, on this thread.
fn add_documents(d: &mut Digests, id: &str, docs: [Option<DocumentKey>; 2]) {
    if docs.iter().all(Option::is_none) {
        return;
    }
    let id: Arc<str> = id.into();
    d.extend(docs.into_iter().flatten().map(|(key, which, len)| (key, (id.clone(), which, len))));
}

/// Intake facts kept on the agreement record.
fn facts(intake: &Intake) -> Facts {
    Facts {
        states: intake.states.iter().map(|s| s.code().to_string()).collect(),
        effective_date: intake.effective_date.to_string(),
        term_months: intake.term.months,
        auto_renew: intake.term.auto_renew,
        parent_agreement_id: match &intake.kind {
            crate::domain::intake::Kind::Baa(b) => b.parent_agreement_id.clone(),
            crate::domain::intake::Kind::Dua(_) => None,
        },
        upstream_contact: Some((
            intake.upstream.privacy_contact.name.clone(),
            intake.upstream.privacy_contact.email.as_str().to_string(),
        )),
    }
}

pub use crate::store::ids::{message_id, new_id};

fn sha(bytes: &[u8]) -> String {
    crate::domain::compact::hex_lower(&Sha256::digest(bytes))
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        keys: KeyRing,
        renderer: Renderer,
        config: Config,
        clock: Arc<dyn Clock>,
        seal: SealKeys,
        vault: crate::secret::vault::Vault,
    ) -> Service {
        let service = Service {
            store,
            keys: keys.into(),
            renderer,
            config,
            clock,
            seal,
            write_lock: Mutex::new(()),
            combiner: Default::default(),
            index: RwLock::new(Index::new()),
            digests: RwLock::new(Digests::default()),
            views: Default::default(),
            mail_wake: Default::default(),
            metrics: Default::default(),
            sender_passes: Default::default(),
            vault,
            hooks: Default::default(),
            wakes: Mutex::new(None),
            reminder_reads: Default::default(),
            index_day: Mutex::new(crate::domain::intake::Date::from_unix(0)),
            index_from_snapshot: Default::default(),
            index_complete: std::sync::atomic::AtomicBool::new(true),
        };
        service.load_index();
        // Several instances on one database: their commits wake the sender, which catches up.
        service.store.watch_foreign_changes(service.mail_wake.clone());
        service
    }

    /// The index at start: read from the snapshot the last clean stop wrote when the store
    /// vouches for it, else built from the store (see [`super::snapshot`]).
    fn load_index(&self) {
        let Some(token) = self.store.take_index_token() else { return self.rebuild_index() };
        let started = std::time::Instant::now();
        let path = super::snapshot::path(&self.config.data_dir);
        let read = super::snapshot::read(&path, token);
        // Used or not, it is spent: the store holds its token no more.
        let _ = std::fs::remove_file(&path);
        match read {
            Ok(loaded) => {
                let today = self.today();
                let mut index = loaded.index;
                let moved = if loaded.day == today { 0 } else { index.refresh_renewals(today) };
                let n = index.len();
                self.install_index(index, loaded.digests, today);
                self.index_from_snapshot.store(true, std::sync::atomic::Ordering::Relaxed);
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(
                    agreements = n,
                    ms,
                    renewals_moved = moved,
                    rss_mb = super::rss_mb(),
                    "index read from its snapshot: {n} agreements in {ms} ms"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "the index snapshot was not used; building the index from the store");
                self.rebuild_index();
            }
        }
    }

    /// Puts a built or read index in place, with its digest map and the day its renewal dates
    /// are for, and seeds the status gauges from it.
    fn install_index(&self, index: Index, digests: Digests, day: crate::domain::intake::Date) {
        // Seeded once from the index (in memory), then moved by each commit: never a scan on scrape.
        self.metrics.seed_agreements(index.lives().map(|(e, _)| e.status()));
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        *self.digests.write().unwrap_or_else(|p| p.into_inner()) = digests;
        *self.index_day.lock().unwrap_or_else(|p| p.into_inner()) = day;
    }

    /// Brings the index's renewal dates to today when the day has changed since they were
    /// computed (auto-renewing terms roll forward; see [`Index::refresh_renewals`]). Called by
    /// the reminder tick; cheap on any other call of the day. Returns how many dates moved.
    pub fn refresh_renewals(&self) -> usize {
        let today = self.today();
        if *self.index_day.lock().unwrap_or_else(|p| p.into_inner()) == today {
            return 0;
        }
        // Under the write lock: a commit re-indexes its agreement with its own `today`, and must
        // not fall between this reading a row and writing it back. (The write lock before the
        // day's: the order every holder of both takes them in.)
        let _w = self.write();
        let mut day = self.index_day.lock().unwrap_or_else(|p| p.into_inner());
        let moved = self.index.write().unwrap_or_else(|p| p.into_inner()).refresh_renewals(today);
        *day = today;
        if moved > 0 {
            tracing::info!(moved, "renewal dates brought forward to {today}: {moved}");
        }
        moved
    }

    /// Writes the index snapshot and stores its token (see [`super::snapshot`]): call when the
    /// server stops, after its last request. Holds the write lock throughout, so none of this
    /// service's commits falls between the snapshot and its token (the store removes the token
    /// at any later commit). A server is the one service over its store: sled's lock keeps
    /// other processes out, and `serve` builds one. Answers whether a snapshot was written: not
    /// on a store that keeps no token, after a change panicked while applied, or when the index
    /// lacks agreements it could not read (the next start builds from the store).
    pub fn save_index_snapshot(&self) -> Result<bool, String> {
        if !self.store.keeps_index_token() {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let _w = self.write();
        if self.write_lock.is_poisoned() || self.index.is_poisoned() || self.digests.is_poisoned() {
            tracing::warn!("a change panicked while it was applied: no index snapshot; the next start builds it");
            return Ok(false);
        }
        if !self.index_complete.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("the index lacks agreements it could not read: no index snapshot; the next start builds it");
            return Ok(false);
        }
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| format!("no random token: {e}"))?;
        let day = *self.index_day.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            let digests = self.digests.read().unwrap_or_else(|p| p.into_inner());
            super::snapshot::encode(token, &index, &digests, day)?
        };
        let path = super::snapshot::path(&self.config.data_dir);
        crate::store::perms::write_private(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.store.put_index_token(token).map_err(|e| format!("cannot store the index token: {e}"))?;
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(bytes = bytes.len(), ms, "index snapshot written in {ms} ms");
        Ok(true)
    }

    /// Rebuilds the search index from the store: one pass over the stored agreements, each
    /// decoded as a [`Summary`] and indexed as it is read (no vector of every record).
    pub fn rebuild_index(&self) {
        let started = std::time::Instant::now();
        let today = self.today();
        // Three stages, each on a thread of its own: this one reads the store's summaries and
        // hands them over in batches, undecoded; the preparer decodes each batch and prepares
        // its rows in parallel (rayon: decoding, text folding, the fixed-size facts);
        // the inserter inserts them in order, one batch while the next is prepared (inserting
        // after preparing, on one thread, left the rayon threads idle for a fifth of the build
        // at 100,000 agreements). The order of inserts is the scan's, so the index is the one a
        // single thread would build. Decoding off the reading thread takes it off the path that
        // bounds the build, and each summary's strings are allocated and freed on one thread
        // (freed on another, glibc locks the arena they came from, against the reader
        // allocating there). What the index and the digests keep is allocated by the inserter
        // (the digests' ids too), so the reader's and the preparers' arenas hold none of it
        // once their garbage is freed, and give all of it back to the system (see
        // `app::memory`). (Reading the store in key ranges on two threads gained nothing
        // measurable on two cores once the stages overlapped: the reader is not what bounds
        // it.) Small batches under the unit tests, so their few hundred agreements cross many
        // batches.
        const BATCH: usize = if cfg!(test) { 7 } else { 4096 };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<StoredSummary>>(4);
        // A prepared row, or a summary that did not decode: its id (when the store knows it) and
        // the error.
        type Prepared =
            Result<([Option<DocumentKey>; 2], crate::archive::search::Prepared), (Option<String>, StoreError)>;
        let (index, digests, scan, unread) = std::thread::scope(|s| {
            let (rows_tx, rows_rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(2);
            let inserter = s.spawn(move || {
                let mut index = Index::new();
                let mut digests = Digests::default();
                // Summaries that did not decode: their ids (when the store knows them) and errors.
                let mut unread: Vec<(Option<String>, StoreError)> = Vec::new();
                for rows in rows_rx {
                    for row in rows {
                        match row {
                            Ok((docs, row)) => {
                                add_documents(&mut digests, row.id(), docs);
                                index.upsert_prepared(row);
                            }
                            Err(e) => unread.push(e),
                        }
                    }
                }
                (index, digests, unread)
            });
            let preparer = s.spawn(move || {
                use rayon::prelude::*;
                for batch in rx {
                    let rows: Vec<_> = batch
                        .into_par_iter()
                        .map(|stored| {
                            let a = stored.decode_or_id()?;
                            let docs = if a.disposed_at.is_none() { document_keys(&a) } else { [None, None] };
                            let life = a.life();
                            Ok((docs, Index::prepare(entry(a, &life, today), life)))
                        })
                        .collect();
                    // Fails only when the inserter has panicked: stop preparing (dropping `rx` makes
                    // the reader's sends fail too); the join below raises the panic.
                    if rows_tx.send(rows).is_err() {
                        break;
                    }
                }
            });
            let mut batch = Vec::with_capacity(BATCH);
            let scan = self.store.stored_summaries(&mut |a| {
                batch.push(a);
                if batch.len() == BATCH {
                    // The preparer ends only when this sender is dropped, so a send cannot fail.
                    let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            drop(tx);
            // A panic while indexing is a bug: it goes on as it would have on this thread.
            preparer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let (index, digests, unread) = inserter.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (index, digests, scan, unread)
        });
        if let Err(e) = &scan {
            tracing::error!(error = %e, "could not read agreements to build the search index");
        }
        // The store's pages in memory, most of them the summaries the scan read, are not
        // needed again soon: the index answers from memory, and a page shows a few
        // agreements read then.
        self.shed_store_cache();
        self.install_index(index, digests, today);
        let lost = self.index_unread(unread);
        self.index_complete.store(scan.is_ok() && lost == 0, std::sync::atomic::Ordering::Relaxed);
        let n = self.index.read().unwrap_or_else(|p| p.into_inner()).len();
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(agreements = n, ms, rss_mb = super::rss_mb(), "index built: {n} agreements in {ms} ms");
    }

    /// Lets the store drop the pages it holds in memory (sled: every page, read again when
    /// used; `Store::shed_cache`).
    ///
    /// From a thread of its own: what the store keeps of each page it drops (sled: a small
    /// record of where it is on disk) is allocated there, in that thread's malloc arena, not
    /// among the pages being freed in the arena of the thread that read them, where each
    /// would keep a page of freed memory from going back to the system (RSS idle after
    /// building the index at 100,000 agreements: 70-72 MB shedding on the building thread,
    /// 62-63 from a thread of its own). When no thread can be started, it sheds from this
    /// one: the pages still go.
    fn shed_store_cache(&self) {
        std::thread::scope(|s| {
            match std::thread::Builder::new().name("store-shed".into()).spawn_scoped(s, || self.store.shed_cache()) {
                Ok(shedder) => shedder.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(e) => {
                    tracing::warn!(error = %e, "no thread for the store's shed; shedding from the indexing thread");
                    self.store.shed_cache();
                }
            }
        });
    }

    /// Summaries the index build could not decode: each agreement is read from its record
    /// instead (a summary is derived data; the record is what counts), so one bad summary
    /// leaves no agreement out of search, the listings or the reminders. (A sled summary is
    /// rewritten at its agreement's next commit; until then each start reads the record.)
    /// What cannot be read either way is counted; the first few of each kind are logged by id.
    /// A change committed since the build, already in the index at a later revision, is kept.
    /// Answers how many agreements could not be read either way (a summary left without its
    /// record names no agreement: it is logged, not counted).
    fn index_unread(&self, unread: Vec<(Option<String>, StoreError)>) -> usize {
        const LOGGED: usize = 10;
        let (mut read, mut lost, mut orphans) = (0usize, 0usize, 0usize);
        for (id, e) in &unread {
            match id.as_deref().map(|id| self.store.agreement(id)) {
                Some(Err(StoreError::NotFound)) => {
                    orphans += 1;
                    if orphans <= LOGGED {
                        tracing::warn!(id, error = %e, "a damaged summary has no agreement record behind it; left out");
                    }
                }
                Some(Ok(a)) => {
                    read += 1;
                    if read <= LOGGED {
                        tracing::warn!(id, error = %e, "an agreement summary did not decode; indexed from its record");
                    }
                    let newer = self
                        .index
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_life(&a.id)
                        .is_some_and(|(_, life)| life.revision >= a.revision);
                    if !newer {
                        self.index_agreement(&a);
                    }
                }
                other => {
                    lost += 1;
                    if lost <= LOGGED {
                        let record = other.and_then(Result::err).map(|r| r.to_string());
                        tracing::error!(id, error = %e, record, "an agreement could not be read for the search index");
                    }
                }
            }
        }
        if read > 0 {
            tracing::warn!(read, "{read} agreement summaries did not decode; their records were read instead");
        }
        if lost > 0 {
            tracing::error!(lost, "{lost} agreements could not be read and are not in the search index");
        }
        lost
    }

    /// Today's date (UTC) by the service clock.
    pub fn today(&self) -> crate::domain::intake::Date {
        crate::domain::intake::Date::from_unix(self.clock.now())
    }

    /// Commits a change, brings the search index up to date with it, and wakes the mail sender
    /// when it queued messages. Returns once the change is on disk.
    pub(crate) fn commit(&self, change: Change) -> Result<Vec<Event>, StoreError> {
        let (sealed, ticket, queued) = self.apply(change)?;
        self.durable(Pending { ticket, queued })?;
        Ok(sealed)
    }

    /// The first half of [`Service::commit`]: applies the change atomically and updates the
    /// index, without waiting for the disk. Call it under the write lock, then release the lock
    /// and call [`Service::durable`] before acknowledging anything: concurrent writers then
    /// share one fsync (group commit, see [`crate::store::group`]). The change is visible to
    /// readers a moment before it is durable, as it already was between sled's write and the
    /// fsync; nothing is acknowledged, and no mail is woken, before it is durable.
    pub(crate) fn apply(&self, change: Change) -> Result<Applied, StoreError> {
        self.apply_all(vec![change]).pop().unwrap_or_else(|| Err(no_answer()))
    }

    /// [`Service::apply`] through the [`combine`](super::combine) queue: when other writers are
    /// applying changes at the same moment, one of them applies the whole queue in one store
    /// commit ([`Store::commit_all_nowait`]: one sled batch, or one PostgreSQL transaction and
    /// WAL flush). Takes the write lock itself: call it without. On a store that commits one
    /// change at a time it is [`Service::apply`] under the lock.
    pub(crate) fn apply_combined(&self, change: Change) -> Result<Applied, StoreError> {
        if !self.store.commits_in_batches() {
            let _g = self.write();
            return self.apply(change);
        }
        self.combiner
            .run(change, |changes| {
                let _g = self.write();
                self.apply_all(changes)
            })
            .unwrap_or_else(|| Err(no_answer()))
    }

    /// [`Service::apply`] for several changes in one store commit, each with its own answer (a
    /// stale one answers `Conflict` alone). Call it under the write lock.
    fn apply_all(&self, changes: Vec<Change>) -> Vec<Result<Applied, StoreError>> {
        let mut answers: Vec<Option<Result<Applied, StoreError>>> = Vec::with_capacity(changes.len());
        // What each committed change needs afterwards: its agreement, whether it queued
        // anything, its events' kinds.
        let mut after = Vec::with_capacity(changes.len());
        let mut batch = Vec::with_capacity(changes.len());
        for mut change in changes {
            // Webhook deliveries for the change's events, committed with it (see `app::webhooks`).
            if let Err(e) = self.queue_webhooks(&mut change) {
                answers.push(Some(Err(e)));
                continue;
            }
            let queued = !change.messages.is_empty() || !change.webhooks.is_empty();
            let kinds: Vec<String> = change.events.iter().map(|e| e.kind.clone()).collect();
            after.push((change.agreement.clone(), queued, kinds));
            answers.push(None);
            batch.push(change);
        }
        let (results, ticket) = if batch.is_empty() { (Vec::new(), 0) } else { self.store.commit_all_nowait(batch) };
        let landed = results.iter().filter(|r| r.is_ok()).count();
        if landed > 0 {
            self.metrics.store_commit(landed);
        }
        let committed = results.into_iter().zip(after).map(|(result, (a, queued, kinds))| {
            result.map(|sealed| {
                kinds.iter().for_each(|k| self.metrics.event(k));
                if let Some(a) = a {
                    self.index_agreement(&a);
                }
                (sealed, ticket, queued)
            })
        });
        merge_answers(answers, committed)
    }

    /// Brings the search index and the digests up to date with one agreement as stored.
    fn index_agreement(&self, a: &crate::domain::agreement::Agreement) {
        let summary = Summary::from(a);
        let mut d = self.digests.write().unwrap_or_else(|p| p.into_inner());
        if a.disposed_at.is_some() {
            d.retain(|_, (id, _, _)| **id != *a.id);
        } else {
            add_digests(&mut d, &summary);
        }
        drop(d);
        // The row is prepared (text folded) before the index's lock is taken.
        let life = summary.life();
        let row = Index::prepare(entry(summary, &life, self.today()), life);
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let before = index.get_life(&a.id).map(|(e, _)| e.status().to_string());
        index.upsert_prepared(row);
        self.metrics.agreement_status(before.as_deref(), Some(a.status.as_str()));
    }

    /// Brings the search index up to date with what other instances committed (several
    /// instances on one PostgreSQL database: the store reports their changes and wakes the
    /// mail sender, whose every pass calls this). Nothing to do for a store only this process
    /// writes.
    pub fn catch_up(&self) {
        match self.store.foreign_changes() {
            crate::store::ForeignChanges::Everything => self.rebuild_index(),
            crate::store::ForeignChanges::Agreements(ids) => {
                for id in ids {
                    match self.store.agreement(&id) {
                        Ok(a) => self.index_agreement(&a),
                        Err(StoreError::NotFound) => {}
                        Err(e) => tracing::error!(agreement = %id, error = %e, "could not re-read a changed agreement"),
                    }
                }
            }
        }
    }

    /// The second half of [`Service::commit`]: waits until the pending change is on disk
    /// (sharing the flush with other writers), then wakes the mail sender if it queued mail.
    pub(crate) fn durable(&self, pending: Pending) -> Result<(), StoreError> {
        self.store.sync(pending.ticket)?;
        self.committed(pending);
        Ok(())
    }

    /// [`Service::durable`] on an async thread: the wait holds no thread, so hundreds of
    /// concurrent signers waiting for one fsync are parked futures (see
    /// [`crate::store::Store::sync_async`]).
    pub async fn durable_async(&self, pending: Pending) -> Result<(), StoreError> {
        self.store.clone().sync_async(pending.ticket).await?;
        self.committed(pending);
        Ok(())
    }

    fn committed(&self, pending: Pending) {
        if pending.queued {
            self.mail_wake.notify_one();
            self.hooks.wake.notify_one();
        }
    }

    pub(crate) fn write(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock leaves no half-written store (each commit is one
        // transaction), so a poisoned lock is safe to reuse. (The in-memory search index may
        // then miss a committed change until the next start rebuilds it: see `combine`.)
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn event(
        &self,
        a: &Agreement,
        kind: &str,
        actor: &Actor,
        doc: &str,
        detail: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            agreement_id: a.id.clone(),
            kind: kind.into(),
            at: self.clock.now(),
            actor: actor.who.clone(),
            ip: actor.ip.clone(),
            user_agent: actor.user_agent.clone(),
            document_sha256: doc.into(),
            detail,
        }
    }

    fn parse(&self, text: &str) -> Result<Intake, ServiceError> {
        crate::app::load_intake(text).map_err(ServiceError::Invalid)
    }

    /// Renders a draft version of the intake: its record and the documents to store (the PDF
    /// and the document model, for diffs).
    fn draft_version(&self, intake: &Intake, text: &str, version: u32) -> Result<Draft, ServiceError> {
        let started = std::time::Instant::now();
        let r = self
            .renderer
            .render(intake, Options { mode: Mode::Draft, version })
            .inspect(|_| self.metrics.rendered("draft", started.elapsed().as_secs_f64()))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let model = serde_json::to_vec(&r.document).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let record = VersionRecord {
            version,
            intake: text.to_string(),
            sha256: r.report.sha256.clone(),
            report: serde_json::to_value(&r.report).unwrap_or_default(),
            created_at: self.clock.now(),
            model_sha256: Some(sha(&model)),
        };
        Ok(Draft {
            passes: r.report.errors() == 0,
            needs_approval: !r.report.departures.is_empty(),
            record,
            documents: vec![r.pdf, model],
        })
    }

    /// `draft`, or `awaiting_approval` when the version departs from policy.
    fn draft_status(d: &Draft) -> Status {
        if d.needs_approval { Status::AwaitingApproval } else { Status::Draft }
    }

    /// Signer records for an intake. `after` is the previous round's signers: new links start
    /// at a higher generation so every link of an earlier round stays dead.
    /// `policy_code`: the policy asks every signer for a one-time email code.
    fn signer_records(intake: &Intake, after: &[SignerRecord], policy_code: bool) -> Vec<SignerRecord> {
        let generation = after.iter().map(|s| s.generation).max().unwrap_or(0) + 1;
        intake
            .signers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = if s.side == Side::Upstream { &intake.upstream } else { &intake.downstream };
                SignerRecord {
                    id: format!("s{}", i + 1),
                    index: i as u16,
                    side: s.side,
                    party_label: p.role.label().into(),
                    party_name: p.legal_name.clone(),
                    name: s.name.clone(),
                    title: s.title.clone(),
                    email: s.email.as_str().into(),
                    order: s.order,
                    status: SignerStatus::Waiting,
                    generation,
                    link_expires: None,
                    signature: None,
                    decline_reason: None,
                    email_code: crate::domain::agreement::EmailCode {
                        required: policy_code || s.verify_email_code,
                        ..Default::default()
                    },
                }
            })
            .collect()
    }

    /// Creates a draft from intake JSON.
    pub fn create(&self, text: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let intake = self.with_dua_reference(self.parse(text)?, actor)?;
        let d = self.draft_version(&intake, text, 1)?;
        let now = self.clock.now();
        let a = Agreement {
            id: new_id("ag_", 10),
            kind: match intake.kind {
                crate::domain::intake::Kind::Baa(_) => "baa".into(),
                crate::domain::intake::Kind::Dua(_) => "dua".into(),
            },
            title: crate::render::context::title(&intake).into(),
            upstream_name: intake.upstream.legal_name.clone(),
            downstream_name: intake.downstream.legal_name.clone(),
            status: Self::draft_status(&d),
            version: 1,
            document_sha256: d.record.sha256.clone(),
            check_passes: d.passes,
            needs_approval: d.needs_approval,
            approval: None,
            created_at: now,
            updated_at: now,
            created_by: actor.who.clone(),
            sent_at: None,
            sent_by: None,
            sent_sha256: None,
            executed_at: None,
            final_sha256: None,
            sent_bytes: None,
            final_bytes: None,
            void_reason: None,
            facts: facts(&intake),
            termination: None,
            disposition: None,
            disposed_at: None,
            signers: Self::signer_records(&intake, &[], self.config.signer_email_code),
            revision: 1,
        };
        let ev = self.event(&a, "created", actor, &d.record.sha256, serde_json::json!({"version": 1}));
        let _g = self.write();
        self.commit(Change {
            agreement: Some(a.clone()),
            versions: vec![d.record],
            documents: d.documents,
            events: vec![ev],
            ..Change::default()
        })?;
        Ok(a)
    }

    /// Replaces a draft's intake (a new version).
    pub fn replace(&self, id: &str, text: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let intake = self.with_dua_reference(self.parse(text)?, actor)?;
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Replace)?;
            let version = a.version + 1;
            let d = self.draft_version(&intake, text, version)?;
            a.version = version;
            a.status = Self::draft_status(&d);
            a.document_sha256 = d.record.sha256.clone();
            a.check_passes = d.passes;
            a.needs_approval = d.needs_approval;
            a.approval = None;
            a.title = crate::render::context::title(&intake).into();
            a.upstream_name = intake.upstream.legal_name.clone();
            a.downstream_name = intake.downstream.legal_name.clone();
            a.facts = facts(&intake);
            a.signers = Self::signer_records(&intake, &a.signers, self.config.signer_email_code);
            let ev =
                self.event(a, "version_replaced", actor, &d.record.sha256, serde_json::json!({"version": version}));
            change.versions.push(d.record);
            change.documents.extend(d.documents);
            change.events.push(ev);
            Ok(())
        })?;
        Ok(a)
    }

    pub fn get(&self, id: &str) -> Result<Agreement, ServiceError> {
        let a = self.store.agreement(id)?;
        self.refresh_expiry(a)
    }

    /// Who a staff notice about `a` goes to (comma-separated, each address once, in this
    /// order): `staff_notice_to`, the agreement's creator when the creator is an active person
    /// (an API key's name is no address), and every active person with the `legal` role. Read
    /// from the people store at the moment the notice is queued; a store that cannot be read
    /// leaves `staff_notice_to` alone (the notice is never held up by it).
    pub fn notice_to(&self, a: &Agreement) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut add = |addr: &str| {
            let addr = addr.trim();
            if !addr.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(addr)) {
                out.push(addr.to_string());
            }
        };
        for part in self.config.staff_notice_to.as_deref().unwrap_or("").split(',') {
            add(part);
        }
        match self.store.people().people() {
            Ok(mut people) => {
                people.retain(|p| p.password_hash.is_some() && p.disabled_at.is_none());
                people.sort_by(|x, y| x.email.cmp(&y.email));
                if let Some(creator) = people.iter().find(|p| p.email.eq_ignore_ascii_case(&a.created_by)) {
                    add(&creator.email);
                }
                for p in people.iter().filter(|p| p.role == "legal") {
                    add(&p.email);
                }
            }
            Err(e) => tracing::warn!(error = %e, "staff notice: people not readable; staff_notice_to only"),
        }
        out.join(", ")
    }

    /// Marks an agreement `expired` when every open link has expired unsigned.
    fn refresh_expiry(&self, a: Agreement) -> Result<Agreement, ServiceError> {
        if !a.status.is_out_for_signature() {
            return Ok(a);
        }
        let now = self.clock.now();
        if a.open_links_expire_at().is_none_or(|t| t > now) {
            return Ok(a);
        }
        let _g = self.write();
        let mut a = self.store.agreement(&a.id)?;
        if !a.status.is_out_for_signature() {
            return Ok(a);
        }
        a.status = Status::Expired;
        a.updated_at = now;
        a.revision += 1;
        let doc = a.sent_sha256.clone().unwrap_or_default();
        let ev =
            self.event(&a, "expired", &Actor { who: "system".into(), ..Actor::default() }, &doc, serde_json::json!({}));
        let notice = mail::notices::expired(&self.config, &a, &self.notice_to(&a), now);
        self.commit(Change {
            agreement: Some(a.clone()),
            events: vec![ev],
            messages: vec![notice],
            ..Change::default()
        })?;
        self.mail_wake.notify_one();
        Ok(a)
    }

    pub fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, ServiceError> {
        self.store.agreement(id)?;
        Ok(self.store.versions(id)?)
    }

    pub fn audit(&self, id: &str) -> Result<Vec<Event>, ServiceError> {
        self.store.agreement(id)?;
        Ok(self.store.events(id)?)
    }

    /// The current document (draft, sent or final). Reading an executed agreement's copy is
    /// recorded as `downloaded`.
    pub fn document(&self, id: &str, actor: &Actor) -> Result<(Vec<u8>, String), ServiceError> {
        let a = self.store.agreement(id)?;
        let bytes = self.store.document(&a.document_sha256)?;
        self.record_read(&a, &a.document_sha256, actor, serde_json::json!({}))?;
        Ok((bytes, a.document_sha256))
    }

    fn link_url(&self, token: &str, purpose: Purpose) -> String {
        let path = match purpose {
            Purpose::Sign => "sign",
            Purpose::Download => "download",
        };
        format!("{}/{path}/{token}", self.config.base_url())
    }

    /// Issues a signing link to a signer: bumps nothing, records expiry, queues the message.
    fn issue_link(&self, a: &Agreement, s: &mut SignerRecord, actor: &Actor, change: &mut Change) {
        let now = self.clock.now();
        let expires = now + u64::from(self.config.link_expiry_days) * 86_400;
        let token = self.keys.issue(&a.id, s.index, Purpose::Sign, expires, s.generation);
        s.link_expires = Some(expires);
        s.status = SignerStatus::Notified;
        // A new link unlocks a link locked by wrong codes and forgets any code sent for the old one.
        s.email_code.reset();
        let url = self.link_url(&token, Purpose::Sign);
        let msg = mail::link_message(&self.config, a, s, &url, &long_date(expires), now);
        change.events.push(self.event(
            a,
            "link_issued",
            actor,
            a.sent_sha256.as_deref().unwrap_or_default(),
            serde_json::json!({"signer": s.id, "email": s.email, "generation": s.generation, "expires": rfc3339(expires), "message_id": msg.message_id}),
        ));
        change.messages.push(msg);
    }

    /// Issues links to every waiting signer of the current signing order.
    fn advance(&self, a: &mut Agreement, actor: &Actor, change: &mut Change) {
        let Some(order) = a.current_order() else { return };
        let snapshot = a.clone();
        for s in a.signers.iter_mut().filter(|s| s.order == order && s.status == SignerStatus::Waiting) {
            self.issue_link(&snapshot, s, actor, change);
        }
    }

    /// Freezes the document and sends the first signing order its links.
    pub fn send(&self, id: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Send)?;
            let v = self.store.version(id, a.version)?;
            let intake = self.with_dua_reference(self.parse(&v.intake)?, actor)?;
            let started = std::time::Instant::now();
            let r = self
                .renderer
                .render(&intake, Options { mode: Mode::ForSignature, version: a.version })
                .inspect(|_| self.metrics.rendered("for_signature", started.elapsed().as_secs_f64()))
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            if r.report.errors() > 0 || !a.check_passes {
                let findings = r
                    .report
                    .findings
                    .into_iter()
                    .filter(|f| f.level == crate::domain::findings::Level::Error)
                    .collect();
                return Err(ServiceError::CheckFailed(findings));
            }
            // Departures from policy block sending until this very version is approved.
            let approved = a.approval.as_ref().map(|x| x.version) == Some(a.version);
            if (a.status == Status::AwaitingApproval || !r.report.departures.is_empty()) && !approved {
                return Err(ServiceError::NeedsApproval(r.report.departures));
            }
            let model = serde_json::to_vec(&r.document).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let now = self.clock.now();
            a.status = Status::Sent;
            a.sent_at = Some(now);
            a.sent_by = Some(actor.who.clone());
            a.sent_sha256 = Some(r.report.sha256.clone());
            a.sent_bytes = Some(r.pdf.len() as u64);
            a.document_sha256 = r.report.sha256.clone();
            change.events.push(self.event(
                a,
                "sent",
                actor,
                &r.report.sha256,
                serde_json::json!({"version": a.version, "model_sha256": sha(&model)}),
            ));
            change.documents.extend([r.pdf, model]);
            self.advance(a, actor, change);
            Ok(())
        })?;
        Ok(a)
    }

    /// The document model of the sent copy (for the signer page).
    pub fn sent_model(&self, a: &Agreement) -> Result<Document, ServiceError> {
        let events = self.store.events(&a.id)?;
        let model_sha = events
            .iter()
            .rev()
            .find(|e| e.kind == "sent")
            .and_then(|e| e.detail.get("model_sha256").and_then(|v| v.as_str()).map(String::from))
            .ok_or(ServiceError::NotFound)?;
        let bytes = self.store.document(&model_sha)?;
        serde_json::from_slice(&bytes).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Approves the current version's departures from policy (legal or admin). Recorded in the
    /// audit trail with the reason and the departures approved.
    pub fn approve(&self, id: &str, reason: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ServiceError::Field("/reason".into(), "a reason is required".into()));
        }
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Approve)?;
            let v = self.store.version(id, a.version)?;
            let now = self.clock.now();
            a.approval =
                Some(Approval { version: a.version, by: actor.who.clone(), reason: reason.to_string(), at: now });
            a.status = Status::Draft;
            change.events.push(self.event(
                a,
                "approved",
                actor,
                &a.document_sha256,
                serde_json::json!({"version": a.version, "reason": reason, "departures": v.report.get("departures")}),
            ));
            Ok(())
        })?;
        Ok(a)
    }

    /// The draft PDF of one version.
    pub fn version_document(&self, id: &str, version: u32) -> Result<(Vec<u8>, String), ServiceError> {
        let v = self.store.version(id, version)?;
        Ok((self.store.document(&v.sha256)?, v.sha256))
    }

    fn version_model(&self, id: &str, version: u32) -> Result<Document, ServiceError> {
        let v = self.store.version(id, version)?;
        let bytes = match &v.model_sha256 {
            Some(sha) => self.store.document(sha)?,
            None => return Err(ServiceError::State(format!("version {version} predates clause diffs"))),
        };
        serde_json::from_slice(&bytes).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Clause-level differences between two versions.
    pub fn diff(&self, id: &str, from: u32, to: u32) -> Result<Vec<crate::render::diff::ClauseDiff>, ServiceError> {
        self.store.agreement(id)?;
        let a = self.version_model(id, from)?;
        let b = self.version_model(id, to)?;
        Ok(crate::render::diff::diff(&a, &b))
    }

    /// Fills a BAA's limited-data-set cross-reference with an existing DUA between the same
    /// parties, when the intake asks for the statement but names no DUA. For an actor that sees
    /// only its own agreements, only the DUAs it created: the reference would otherwise tell a
    /// `sales` key of another person's DUA (its id and title land in the document).
    pub(crate) fn with_dua_reference(&self, mut intake: Intake, actor: &Actor) -> Result<Intake, ServiceError> {
        use crate::domain::provisions::Choice;
        let names = [intake.upstream.legal_name.clone(), intake.downstream.legal_name.clone()];
        if let crate::domain::intake::Kind::Baa(b) = &mut intake.kind
            && let Choice::On(lds) = &mut b.provisions.limited_data_set
            && lds.dua_reference.is_none()
        {
            // The search index narrows to DUAs naming the first party; exact names decide.
            let q = crate::archive::search::Query {
                kind: Some("dua".into()),
                counterparty: Some(names[0].clone()),
                created_by: actor.own_only.then(|| actor.who.clone()),
                ..Default::default()
            };
            let found = self.export(&q)?;
            let best = found
                .iter()
                .filter(|e| names.contains(&e.parties[0]) && names.contains(&e.parties[1]) && e.status != "voided")
                .max_by_key(|e| (e.status == "executed", e.updated_at));
            if let Some(dua) = best {
                lds.dua_reference = Some(format!("{} ({})", dua.id, dua.title));
            }
        }
        Ok(intake)
    }

    pub fn void(&self, id: &str, reason: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ServiceError::Field("/reason".into(), "a reason is required".into()));
        }
        let (a, ()) = self.update(id, |a, change| {
            // Void only before execution (the table in `domain::actions` says why).
            a.status.allows(Action::Void)?;
            a.status = Status::Voided;
            a.void_reason = Some(reason.to_string());
            change.events.push(self.event(
                a,
                "voided",
                actor,
                &a.document_sha256,
                serde_json::json!({"reason": reason}),
            ));
            Ok(())
        })?;
        Ok(a)
    }

    /// A new link for one signer; the old one stops working. Brings an expired agreement back.
    pub fn resend(&self, id: &str, signer_id: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Resend)?;
            let snapshot = a.clone();
            let current = a.current_order();
            let s = a.signers.iter_mut().find(|s| s.id == signer_id).ok_or(ServiceError::NotFound)?;
            if matches!(s.status, SignerStatus::Signed | SignerStatus::Declined) {
                return Err(ServiceError::State(format!("signer {signer_id} has already responded")));
            }
            if Some(s.order) != current {
                return Err(ServiceError::State(format!(
                    "signer {signer_id} is not yet due to sign (order {})",
                    s.order
                )));
            }
            s.generation += 1;
            self.issue_link(&snapshot, s, actor, change);
            if a.status == Status::Expired {
                a.status = if a.signers.iter().any(|s| s.status == SignerStatus::Signed) {
                    Status::PartiallySigned
                } else {
                    Status::Sent
                };
            }
            Ok(())
        })?;
        Ok(a)
    }

    /// Corrects or reassigns a signer who has not signed. The old link is revoked; a new one is
    /// sent if it is the signer's turn.
    pub fn update_signer(
        &self,
        id: &str,
        signer_id: &str,
        patch: SignerPatch,
        actor: &Actor,
    ) -> Result<Agreement, ServiceError> {
        let clean = |v: Option<String>, ptr: &str| -> Result<Option<String>, ServiceError> {
            match v {
                None => Ok(None),
                Some(s) => {
                    let s: String = unicode_normalization::UnicodeNormalization::nfc(s.trim()).collect();
                    if s.is_empty() {
                        return Err(ServiceError::Field(ptr.into(), "must not be empty".into()));
                    }
                    // The intake's cap: a correction is no way around it.
                    let n = s.chars().count();
                    if n > crate::domain::parse::MAX_NAME_CHARS {
                        return Err(ServiceError::Field(
                            ptr.into(),
                            format!("must be at most {} characters (has {n})", crate::domain::parse::MAX_NAME_CHARS),
                        ));
                    }
                    if let Some(c) = s.chars().find(|c| !crate::render::fonts::printable(*c)) {
                        return Err(ServiceError::Field(
                            ptr.into(),
                            format!("character {c:?} cannot be printed by the document font"),
                        ));
                    }
                    Ok(Some(s))
                }
            }
        };
        let name = clean(patch.name, "/name")?;
        let title = clean(patch.title, "/title")?;
        let email = match clean(patch.email, "/email")? {
            Some(e) => Some(
                crate::domain::intake::Email::parse(&e)
                    .map_err(|m| ServiceError::Field("/email".into(), m.into()))?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::UpdateSigner)?;
            let current = a.current_order();
            let snapshot = a.clone();
            let s = a.signers.iter_mut().find(|s| s.id == signer_id).ok_or(ServiceError::NotFound)?;
            if s.status == SignerStatus::Signed {
                return Err(ServiceError::State(format!("signer {signer_id} has already signed")));
            }
            let before = serde_json::json!({"name": s.name, "title": s.title, "email": s.email});
            if let Some(n) = &name {
                s.name = n.clone();
            }
            if let Some(t) = &title {
                s.title = t.clone();
            }
            if let Some(e) = &email {
                s.email = e.clone();
            }
            let after = serde_json::json!({"name": s.name, "title": s.title, "email": s.email});
            s.generation += 1;
            let doc = snapshot.document_sha256.clone();
            change.events.push(self.event(
                &snapshot,
                "signer_updated",
                actor,
                &doc,
                serde_json::json!({"signer": signer_id, "before": before, "after": after, "generation": s.generation}),
            ));
            if snapshot.status.is_out_for_signature() && Some(s.order) == current {
                self.issue_link(&snapshot, s, actor, change);
            }
            Ok(())
        })?;
        Ok(a)
    }

    /// After a decline: back to draft as a new version, from the declined version's intake.
    pub fn revise(&self, id: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Revise)?;
            let old = self.store.version(id, a.version)?;
            let intake = self.with_dua_reference(self.parse(&old.intake)?, actor)?;
            let version = a.version + 1;
            let d = self.draft_version(&intake, &old.intake, version)?;
            a.status = Self::draft_status(&d);
            a.version = version;
            a.document_sha256 = d.record.sha256.clone();
            a.check_passes = d.passes;
            a.needs_approval = d.needs_approval;
            a.approval = None;
            a.facts = facts(&intake);
            a.signers = Self::signer_records(&intake, &a.signers, self.config.signer_email_code);
            a.sent_at = None;
            a.sent_by = None;
            a.sent_sha256 = None;
            change.events.push(self.event(
                a,
                "revised",
                actor,
                &d.record.sha256,
                serde_json::json!({"version": version, "from_version": version - 1}),
            ));
            change.versions.push(d.record);
            change.documents.extend(d.documents);
            Ok(())
        })?;
        Ok(a)
    }

    /// Whether [`Service::resolve`] reads only memory in this process (sled's page cache, the
    /// memory store), cheap enough for an async thread; not for a store across a network.
    pub fn reads_in_process(&self) -> bool {
        self.store.reads_in_process()
    }

    /// Verifies a link token and loads what it opens, checking in order: format, key, tag,
    /// expiry, agreement and signer, generation, state.
    pub fn resolve(&self, token: &str, want: Purpose) -> Result<Link, LinkError> {
        let claims = self.claims(token, want)?;
        let a = self.store.agreement_shared(&claims.agreement).map_err(|_| LinkError::Gone)?;
        Self::link_in(a, &claims, token)
    }

    /// The claims of a genuine, unexpired token for `want`.
    fn claims(&self, token: &str, want: Purpose) -> Result<Claims, LinkError> {
        let claims = match self.keys.verify(token, self.clock.now()) {
            Ok(c) => c,
            Err(TokenError::Malformed) => return Err(LinkError::Malformed),
            Err(TokenError::UnknownKey) => return Err(LinkError::UnknownKey),
            Err(TokenError::BadTag) => return Err(LinkError::BadTag),
            Err(TokenError::Expired(c)) => return Err(LinkError::Expired(long_date(c.expires))),
        };
        if claims.purpose != want {
            return Err(LinkError::Malformed);
        }
        Ok(claims)
    }

    /// What a token's claims open in agreement `a`: its signer, if the link is still theirs.
    fn link_in(a: Arc<Agreement>, claims: &Claims, token: &str) -> Result<Link, LinkError> {
        let signer = a.signer_by_index(claims.signer).cloned().ok_or(LinkError::Gone)?;
        if claims.generation != signer.generation {
            return Err(if a.status == Status::Voided { LinkError::Voided } else { LinkError::Superseded });
        }
        if a.status == Status::Voided {
            return Err(LinkError::Voided);
        }
        Ok(Link { agreement: a, signer, purpose: claims.purpose, token: token.to_string() })
    }

    /// A signing link that may still act (not yet used, agreement open).
    pub fn resolve_open(&self, token: &str) -> Result<Link, LinkError> {
        Self::still_open(self.resolve(token, Purpose::Sign)?)
    }

    fn still_open(link: Link) -> Result<Link, LinkError> {
        if matches!(link.signer.status, SignerStatus::Signed | SignerStatus::Declined) {
            return Err(LinkError::AlreadyUsed);
        }
        if link.agreement.status.allows(Action::Sign).is_err() {
            return Err(LinkError::Closed(link.agreement.status.as_str().into()));
        }
        Ok(link)
    }

    /// The open signing link `token` in the freshly loaded agreement `a` (inside an update).
    pub(crate) fn open_link_in(&self, a: &Agreement, token: &str) -> Result<Link, LinkError> {
        let claims = self.claims(token, Purpose::Sign)?;
        if claims.agreement != a.id {
            return Err(LinkError::Gone);
        }
        Self::still_open(Self::link_in(Arc::new(a.clone()), &claims, token)?)
    }

    /// Records the first view of a signer's link (status `opened` and an `opened` event, durably).
    /// A later view, or one that lost the race to another first view, is only counted in memory
    /// and written with the signer's next real event (see [`super::views`]).
    pub fn opened(&self, link: &Link, actor: &Actor) -> Result<(), ServiceError> {
        if link.signer.status != SignerStatus::Notified {
            self.views.bump(&link.agreement.id, &link.signer.id);
            return Ok(());
        }
        let _g = self.write();
        let mut a = self.store.agreement(&link.agreement.id)?;
        let Some(s) = a.signers.iter_mut().find(|s| s.id == link.signer.id) else { return Err(ServiceError::NotFound) };
        // Re-checked under the lock: of two concurrent first views, only one is recorded.
        if s.status != SignerStatus::Notified {
            self.views.bump(&link.agreement.id, &link.signer.id);
            return Ok(());
        }
        s.status = SignerStatus::Opened;
        a.revision += 1;
        let ev = self.event(
            &a,
            "opened",
            actor,
            a.sent_sha256.as_deref().unwrap_or_default(),
            serde_json::json!({"signer": link.signer.id}),
        );
        self.commit(Change { agreement: Some(a), events: vec![ev], ..Change::default() })?;
        Ok(())
    }

    /// Records a signature; when the order completes, the next order's links go out; when every
    /// signer has signed, the final PDF is built and archived.
    pub fn sign(&self, token: &str, form: SignForm, actor: &Actor) -> Result<Agreement, ServiceError> {
        self.sign_with_code(token, form, None, actor)
    }

    /// [`Service::sign`] with the one-time code the signer typed, for signers who must give one
    /// (see `app/email_code.rs`). A wrong code is recorded (and may lock the link) and answered
    /// as a field error on `/code`; nothing is signed.
    pub fn sign_with_code(
        &self,
        token: &str,
        form: SignForm,
        code: Option<&str>,
        actor: &Actor,
    ) -> Result<Agreement, ServiceError> {
        let Signing { agreement, pending, outcome } = self.sign_begin(token, form, code, None, actor)?;
        self.durable(pending)?;
        self.sign_outcome(agreement, outcome)
    }

    /// [`Service::sign_with_code`] on an async thread: the CPU work on the calling (blocking)
    /// thread in [`Service::sign_begin`], then this wait for the disk without a thread.
    ///
    /// The mail the signature queued (the next signer's invitation, or the countersigned
    /// copies) is durable in the outbox when this returns, and the commit has woken the sender,
    /// which writes each `.eml` copy and delivers it. The signer's answer does not wait for
    /// those copies: written here they cost each signature about 0.1 ms more of the server's CPU
    /// at 256 concurrent signers, and the no-SMTP sender wrote and synced each one again anyway
    /// (README, "Load test").
    pub async fn sign_end_async(&self, signing: Signing) -> Result<Agreement, ServiceError> {
        let Signing { agreement, pending, outcome } = signing;
        self.durable_async(pending).await?;
        self.sign_outcome(agreement, outcome)
    }

    /// The answer to a signing once its commit is durable.
    fn sign_outcome(&self, a: Agreement, outcome: Result<(String, u64), String>) -> Result<Agreement, ServiceError> {
        let (signer, later_views) = outcome.map_err(|reason| ServiceError::Field("/code".into(), reason))?;
        self.views.written(&a.id, &signer, later_views);
        Ok(a)
    }

    /// [`Service::sign_with_code`] up to the commit, without waiting for the disk: what it
    /// returns must go to [`Service::sign_end_async`] before anything is acknowledged.
    /// `loaded` is the agreement as the caller read it to resolve the link, if it did: the
    /// first attempt decides on it instead of reading it again (see [`Service::update_nowait`]).
    pub fn sign_begin(
        &self,
        token: &str,
        form: SignForm,
        code: Option<&str>,
        loaded: Option<Agreement>,
        actor: &Actor,
    ) -> Result<Signing, ServiceError> {
        if !form.consent {
            return Err(ServiceError::Field("/consent".into(), "consent to sign electronically is required".into()));
        }
        let typed_name: String = unicode_normalization::UnicodeNormalization::nfc(form.typed_name.trim()).collect();
        let typed_title: String = unicode_normalization::UnicodeNormalization::nfc(form.typed_title.trim()).collect();
        for (ptr, v) in [("/typed_name", &typed_name), ("/typed_title", &typed_title)] {
            if v.is_empty() {
                return Err(ServiceError::Field(ptr.into(), "required".into()));
            }
            if v.chars().count() > 200 {
                return Err(ServiceError::Field(ptr.into(), "at most 200 characters".into()));
            }
            if let Some(c) = v.chars().find(|c| !crate::render::fonts::printable(*c)) {
                return Err(ServiceError::Field(
                    ptr.into(),
                    format!("character {c:?} cannot be printed by the document font"),
                ));
            }
        }
        // The agreement the link names, from its verified claims (the caller has just resolved
        // the link; reading the record once more here cost a decode per signature). The link
        // is checked in full on every attempt of the update, so two submissions of the same link
        // cannot both sign; an agreement that is gone answers as `resolve_open` would.
        let id = self.claims(token, Purpose::Sign)?.agreement;
        let updated = self.update_nowait(&id, loaded, |a, change| {
            let link = self.open_link_in(a, token)?;
            // The one-time code, when this signer needs one: a wrong one is committed (as a
            // counted failure) instead of the signature.
            let verification = match self.check_code(a, &link, code, actor, change)? {
                Ok(v) => v,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let later_views = self.views.peek(&a.id, &link.signer.id);
            let now = self.clock.now();
            let doc = a.sent_sha256.clone().unwrap_or_default();
            let snapshot = a.clone();
            {
                let Some(s) = a.signers.iter_mut().find(|s| s.id == link.signer.id) else {
                    return Err(ServiceError::NotFound);
                };
                s.status = SignerStatus::Signed;
                s.signature = Some(Signature {
                    typed_name: typed_name.clone(),
                    typed_title: typed_title.clone(),
                    signed_at: now,
                    ip: actor.ip.clone(),
                    user_agent: actor.user_agent.clone(),
                    consent_version: CONSENT_VERSION.into(),
                    signature_id: new_id("sig_", 8),
                    verification: verification.into(),
                });
            }
            change.events.push(self.event(
                &snapshot,
                "consented",
                actor,
                &doc,
                serde_json::json!({"signer": link.signer.id, "consent_version": CONSENT_VERSION}),
            ));
            change.events.push(self.event(
                &snapshot,
                "signed",
                actor,
                &doc,
                serde_json::json!({"signer": link.signer.id, "typed_name": typed_name, "typed_title": typed_title,
                    "later_views": later_views, "verification": verification}),
            ));
            a.status = Status::PartiallySigned;
            if a.all_signed() {
                // Rendering, sealing and the timestamp authority run here, outside the lock.
                self.complete(a, change, &doc)?;
            } else {
                self.advance(a, &Actor { who: "system".into(), ..Actor::default() }, change);
            }
            Ok(Ok((link.signer.id, later_views)))
        });
        let (a, outcome, pending) = match updated {
            Err(ServiceError::NotFound) if matches!(self.store.agreement(&id), Err(StoreError::NotFound)) => {
                return Err(LinkError::Gone.into());
            }
            r => r?,
        };
        Ok(Signing { agreement: a, pending, outcome: outcome.map_err(|reason| reason.to_string()) })
    }

    /// Builds the final PDF (sent bytes + executed signature page + certificate of completion,
    /// as an incremental update) and queues completion messages. Part of the last signature's
    /// commit, so the signature and the archive land together.
    fn complete(&self, a: &mut Agreement, change: &mut Change, sent_sha: &str) -> Result<(), ServiceError> {
        let sent = self.store.document(sent_sha)?;
        let mut events = self.store.events(&a.id)?;
        let head = events.last().map(|e| e.seq).unwrap_or(0);
        // Include this commit's events (consent, signature) in the certificate.
        for (i, e) in change.events.iter().enumerate() {
            events.push(Event::seal(e.clone(), head + 1 + i as u64, ""));
        }
        let now = self.clock.now();
        let appendix = appendix::render(a, &events, sent_sha, now, &self.seal.fingerprint());
        let signed = append::append_pages(&sent, &appendix).map_err(|e| ServiceError::Internal(e.to_string()))?;
        // One more incremental update: the PAdES seal over the whole file (sent bytes, executed
        // signature page, certificate of completion).
        // With a timestamp authority configured, B-T; if it fails, B-B and the failure goes into
        // the audit trail (completion must not be lost because the authority is down).
        let sealing = |tsa: Option<crate::seal::Timestamper<'_>>| crate::seal::seal_with(&signed, &self.seal, now, tsa);
        let (sealed, timestamp) = match &self.config.timestamp_url {
            None => (sealing(None), None),
            Some(url) => match sealing(Some(&crate::seal::http_timestamper(url))) {
                Ok(pdf) => (Ok(pdf), Some(serde_json::json!({"status": "added", "url": url}))),
                Err(crate::seal::SealError::Timestamp(e)) => {
                    tracing::warn!(agreement = %a.id, error = %e, "sealing without a timestamp");
                    (sealing(None), Some(serde_json::json!({"status": "failed", "url": url, "error": e})))
                }
                Err(e) => (Err(e), None),
            },
        };
        let final_pdf = sealed.map_err(|e| ServiceError::Internal(format!("seal: {e}")))?;
        let final_sha = sha(&final_pdf);
        a.status = Status::Executed;
        a.executed_at = Some(now);
        a.final_sha256 = Some(final_sha.clone());
        a.final_bytes = Some(final_pdf.len() as u64);
        a.document_sha256 = final_sha.clone();
        let system = Actor { who: "system".into(), ..Actor::default() };
        change.events.push(self.event(
            a,
            "completed",
            &system,
            &final_sha,
            match timestamp {
                Some(t) => serde_json::json!({"sent_sha256": sent_sha, "seal_timestamp": t}),
                None => serde_json::json!({"sent_sha256": sent_sha}),
            },
        ));
        change.events.push(self.event(
            a,
            "archived",
            &system,
            &final_sha,
            serde_json::json!({"bytes": final_pdf.len()}),
        ));
        change.documents.push(final_pdf);
        let expires = now + u64::from(self.config.download_expiry_days) * 86_400;
        for s in &a.signers {
            let token = self.keys.issue(&a.id, s.index, Purpose::Download, expires, s.generation);
            let url = self.link_url(&token, Purpose::Download);
            change.messages.push(mail::completion_message(&self.config, a, s, &url, &long_date(expires), now));
        }
        Ok(())
    }

    pub fn decline(&self, token: &str, reason: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let reason: String = unicode_normalization::UnicodeNormalization::nfc(reason.trim()).collect();
        if reason.is_empty() {
            return Err(ServiceError::Field("/reason".into(), "a reason is required to decline".into()));
        }
        if reason.chars().count() > 2000 {
            return Err(ServiceError::Field("/reason".into(), "at most 2000 characters".into()));
        }
        let id = self.resolve_open(token)?.agreement.id.clone();
        let (a, (signer, later_views)) = self.update(&id, |a, change| {
            let link = self.open_link_in(a, token)?;
            let later_views = self.views.peek(&a.id, &link.signer.id);
            let doc = a.sent_sha256.clone().unwrap_or_default();
            if let Some(s) = a.signers.iter_mut().find(|s| s.id == link.signer.id) {
                s.status = SignerStatus::Declined;
                s.decline_reason = Some(reason.clone());
            }
            a.status = Status::Declined;
            change.events.push(self.event(
                a,
                "declined",
                actor,
                &doc,
                serde_json::json!({"signer": link.signer.id, "reason": reason, "later_views": later_views}),
            ));
            let to = self.notice_to(a);
            change.messages.push(mail::notices::declined(&self.config, a, &link.signer, &to, self.clock.now()));
            Ok((link.signer.id.clone(), later_views))
        })?;
        self.views.written(&a.id, &signer, later_views);
        Ok(a)
    }

    /// The final copy through a download link (recorded as `downloaded`).
    pub fn download(&self, token: &str, actor: &Actor) -> Result<(Vec<u8>, Agreement), ServiceError> {
        let link = self.resolve(token, Purpose::Download)?;
        let a = Arc::unwrap_or_clone(link.agreement);
        let sha = a.final_sha256.clone().ok_or(ServiceError::NotFound)?;
        let bytes = self.store.document(&sha)?;
        let _g = self.write();
        let ev = self.event(&a, "downloaded", actor, &sha, serde_json::json!({"signer": link.signer.id}));
        self.commit(Change { events: vec![ev], ..Change::default() })?;
        Ok((bytes, a))
    }

    /// Messages queued for an agreement (delivery status for staff; bodies stay server-side).
    pub fn deliveries(&self, id: &str) -> Result<Vec<Delivery>, ServiceError> {
        let mut ms: Vec<Message> = self.store.agreement_messages(id)?;
        ms.sort_by(|x, y| (x.created_at, &x.id).cmp(&(y.created_at, &y.id)));
        Ok(ms.iter().map(Delivery::of).collect())
    }

    /// Writes `.eml` copies of queued messages that have none yet (at start-up, so a crash
    /// between a commit and its copies loses nothing).
    pub fn flush_outbox(&self) -> Result<usize, ServiceError> {
        self.write_copies(|| self.store.queued_messages())
    }

    /// [`Service::flush_outbox`] without waking the sender: its own pass when no transport can
    /// deliver (an SMTP configuration that cannot start), so the mail a signature queued still
    /// gets its copy, which nothing else would write before a restart.
    /// Reads only the queue's heads, and the body of a message whose copy is missing; a message
    /// that cannot be read or written is logged and left for the next pass, the rest go on.
    pub(crate) fn copy_queued(&self) -> Result<usize, ServiceError> {
        if !self.config.eml_outbox {
            return Ok(0);
        }
        let dir = self.config.data_dir.join("outbox");
        let mut written = 0;
        for head in self.store.queued_heads()? {
            if head.status != MessageStatus::Queued || mail::eml_path_of(&dir, &head.id).exists() {
                continue;
            }
            let copied = self.store.message(&head.id).map_err(|e| e.to_string()).and_then(|m| {
                mail::write_eml(&dir, &m, &self.config, mail::Durability::Later).map_err(|e| e.to_string())
            });
            match copied {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(message = %head.id, error = %e, "cannot write the .eml copy; next pass"),
            }
        }
        Ok(written)
    }

    /// [`Service::flush_outbox`] for one agreement's messages: what a staff action on that
    /// agreement just queued (the links after sending, a reminder; a signature leaves its copies
    /// to the sender, see [`Service::sign_end_async`]). Read
    /// through the outbox's per-agreement index, so an action's cost does not grow with the
    /// backlog of every other agreement's queued mail (under a burst of signatures the sender
    /// drains that backlog at its own pace; each signature used to decode all of it).
    pub fn flush_outbox_of(&self, agreement: &str) -> Result<usize, ServiceError> {
        self.write_copies(|| self.store.agreement_messages(agreement))
    }

    /// Wakes the mail sender and, with the `.eml` outbox on, writes the copies of the queued
    /// messages among `messages()` (read only when the copies are wanted) that have none yet.
    fn write_copies(&self, messages: impl FnOnce() -> Result<Vec<Message>, StoreError>) -> Result<usize, ServiceError> {
        self.mail_wake.notify_one();
        if !self.config.eml_outbox {
            return Ok(0);
        }
        let dir = self.config.data_dir.join("outbox");
        let mut written = 0;
        for m in messages()? {
            if m.status == MessageStatus::Queued
                && mail::write_eml(&dir, &m, &self.config, mail::Durability::Later)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?
            {
                written += 1;
            }
        }
        Ok(written)
    }
}

/// The search index entry of an agreement, from its [`Summary`] (the record's fields moved, not
/// copied).
pub fn entry(a: Summary, life: &crate::domain::agreement::Life, today: crate::domain::intake::Date) -> Entry {
    let renewal_date =
        if matches!(a.status, Status::Executed) { life.renewal_date(today).map(|d| d.to_string()) } else { None };
    Entry {
        id: a.id,
        kind: a.kind,
        title: a.title,
        parties: [a.upstream_name, a.downstream_name],
        status: a.status.as_str().to_string(),
        states: a.facts.states,
        effective_date: a.facts.effective_date,
        renewal_date,
        executed_at: a.executed_at,
        created_at: a.created_at,
        updated_at: a.updated_at,
        final_sha256: a.final_sha256,
        created_by: a.created_by,
    }
}

/// What [`Service::apply`] answers for a change: its sealed events, the store's ticket for the
/// wait for the disk, and whether it queued mail or webhook deliveries.
pub(crate) type Applied = (Vec<Event>, u64, bool);

/// A store (or a combined batch) that answered fewer results than it was given changes: a bug,
/// reported as a storage failure of the changes left without an answer, never as a conflict
/// (which would have them retried as if another writer had won).
fn no_answer() -> StoreError {
    StoreError::Io("internal: the commit gave no answer for this change".into())
}

/// Hands each change of a batch its answer. `early` has one entry per change, in order: the
/// answer already known for a change refused before the commit, `None` for one that went into
/// it. `committed` answers those, in the same order; a change it leaves out failed.
fn merge_answers<T>(
    early: Vec<Option<Result<T, StoreError>>>,
    committed: impl IntoIterator<Item = Result<T, StoreError>>,
) -> Vec<Result<T, StoreError>> {
    let mut committed = committed.into_iter();
    early.into_iter().map(|a| a.unwrap_or_else(|| committed.next().unwrap_or_else(|| Err(no_answer())))).collect()
}

/// A change applied (visible to readers) but maybe not yet on disk: nothing may be acknowledged
/// until [`Service::durable`] or [`Service::durable_async`] has returned for it.
#[must_use = "a pending commit must be waited for before anything is acknowledged"]
pub struct Pending {
    /// The store's ticket ([`crate::store::Store::sync`]).
    pub(crate) ticket: u64,
    /// The change queued mail or webhook deliveries (their senders are woken once it is durable).
    pub(crate) queued: bool,
}

/// A signing applied but not yet on disk ([`Service::sign_begin`]): the updated agreement, or
/// the refusal of a wrong one-time code (itself committed, as a counted failure).
#[must_use = "a signing must be finished with Service::sign_end_async before it is acknowledged"]
pub struct Signing {
    agreement: Agreement,
    pending: Pending,
    /// The signer and the later views written with the signature, or why the code was refused.
    outcome: Result<(String, u64), String>,
}

/// A rendered draft version, ready to store.
struct Draft {
    record: VersionRecord,
    documents: Vec<Vec<u8>>,
    passes: bool,
    needs_approval: bool,
}

/// Delivery status of one message, as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub kind: String,
    pub to: String,
    pub signer: Option<String>,
    pub status: MessageStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub message_id: String,
    pub sent_at: Option<String>,
    /// The SMTP server's reply (or where the `.eml` copy went).
    pub reply: Option<String>,
    pub next_attempt_at: Option<String>,
}

impl Delivery {
    pub fn of(m: &Message) -> Delivery {
        Delivery {
            id: m.id.clone(),
            kind: m.kind.clone(),
            to: m.to.clone(),
            signer: m.signer_id.clone(),
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error.clone(),
            created_at: rfc3339(m.created_at),
            message_id: m.message_id.clone(),
            sent_at: m.sent_at.map(rfc3339),
            reply: m.reply.clone(),
            next_attempt_at: m.next_attempt_at.filter(|_| m.status == MessageStatus::Queued).map(rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_refused_before_the_commit_keeps_its_error_and_the_others_get_the_commits_answers_in_order() {
        let early = vec![None, Some(Err(StoreError::Io("webhooks unreadable".into()))), None, None];
        let answers = merge_answers(early, [Ok(1), Err(StoreError::Conflict), Ok(3)]);
        assert!(matches!(answers[0], Ok(1)), "{answers:?}");
        assert!(matches!(&answers[1], Err(StoreError::Io(m)) if m == "webhooks unreadable"), "{answers:?}");
        assert!(matches!(answers[2], Err(StoreError::Conflict)), "{answers:?}");
        assert!(matches!(answers[3], Ok(3)), "{answers:?}");
    }

    #[test]
    fn a_commit_that_answers_too_few_changes_fails_the_ones_left_out() {
        let answers = merge_answers(vec![None, None, Some(Err(StoreError::NotFound))], [Ok(1)]);
        assert!(matches!(answers[0], Ok(1)), "{answers:?}");
        assert!(matches!(&answers[1], Err(StoreError::Io(m)) if m.contains("no answer")), "{answers:?}");
        assert!(matches!(answers[2], Err(StoreError::NotFound)), "{answers:?}");
    }
}
