//! Storage: agreements, versions, documents, the audit chain and the outbox, behind one narrow
//! trait. [`sled_store::SledStore`] is the embedded default; [`postgres::PgStore`] serves several
//! instances sharing one PostgreSQL database (`database_url`).
//!
//! Every state change is one [`Change`], committed atomically across all trees and made durable
//! before `commit` returns: a client is told "done" only for what survives a crash.

pub use crate::domain::audit;
mod decoded;
pub mod format;
pub mod group;
pub mod ids;
pub mod memory;
pub mod memory_people;
mod outbox_index;
pub mod people;
pub mod perms;
pub mod postgres;
pub mod sled_store;
mod summary_index;

/// An agreement's summary as the sled store keeps it (tests that write the store as another
/// release would).
#[cfg(test)]
pub(crate) fn summary_bytes(a: &crate::domain::agreement::Agreement) -> Vec<u8> {
    summary_index::encode(&crate::domain::agreement::Summary::from(a))
}
pub mod vendors;
pub mod webhooks;

use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::agreement::{Agreement, Summary, VersionRecord};
pub use crate::domain::audit::{Event, NewEvent};

/// The reminder tick's note about one agreement out for signature or executed (see
/// `app::schedule::wake_at`): nothing falls due for it before `at` (`u64::MAX`: not until its
/// record changes) while its record stays at `revision` and the reminder rules and settings are
/// those whose fingerprint is `settings`. Derived and advisory: a lost or stale one only means the
/// agreement is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderWake {
    pub revision: u64,
    pub settings: u32,
    pub at: u64,
}

/// An outgoing message, queued in the same transaction as the change that causes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Time-ordered id: `m<unix secs hex><random hex>`.
    pub id: String,
    pub agreement_id: String,
    /// `link`, `completion`, `reminder`, …
    pub kind: String,
    pub to_name: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
    /// Stable RFC 5322 Message-ID (without angle brackets).
    pub message_id: String,
    pub created_at: u64,
    pub status: MessageStatus,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub sent_at: Option<u64>,
    /// Signer id for link messages (delivery status per signer).
    #[serde(default)]
    pub signer_id: Option<String>,
    /// Reply-To for this message (the person or party behind it); None: the configured one.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Not before this time (unix seconds): the retry backoff. None: at once.
    #[serde(default)]
    pub next_attempt_at: Option<u64>,
    #[serde(default)]
    pub last_attempt_at: Option<u64>,
    /// The SMTP server's reply on acceptance (or where the `.eml` copy was written).
    #[serde(default)]
    pub reply: Option<String>,
}

impl Message {
    /// A message queued at `now`, not tried yet, to `(name, address)`; `message_id` is its
    /// RFC 5322 Message-ID (the mail module's `message_id_for`). No agreement, HTML part, signer
    /// or Reply-To: a caller that has them sets them.
    pub fn queued(
        id: String,
        message_id: String,
        kind: &str,
        (to_name, to): (String, String),
        subject: String,
        text: String,
        now: u64,
    ) -> Message {
        Message {
            id,
            agreement_id: String::new(),
            kind: kind.into(),
            to_name,
            to,
            subject,
            text,
            html: None,
            message_id,
            created_at: now,
            status: MessageStatus::Queued,
            attempts: 0,
            last_error: None,
            sent_at: None,
            signer_id: None,
            reply_to: None,
            next_attempt_at: None,
            last_attempt_at: None,
            reply: None,
        }
    }
}

/// The fields of a stored [`Message`] the mail sender's queue needs, decoded from the same
/// bytes with the rest skipped ([`Store::queued_heads`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QueuedHead {
    pub id: String,
    pub created_at: u64,
    pub status: MessageStatus,
    #[serde(default)]
    pub next_attempt_at: Option<u64>,
}

impl QueuedHead {
    pub fn of(m: &Message) -> QueuedHead {
        QueuedHead { id: m.id.clone(), created_at: m.created_at, status: m.status, next_attempt_at: m.next_attempt_at }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sent,
    Failed,
    /// Not delivered on purpose: a staff notice with no `staff_notice_to`, or a reminder that
    /// was no longer needed when its turn came (the reason is in `last_error`).
    Skipped,
}

/// One atomic change.
#[derive(Debug, Default)]
pub struct Change {
    /// The agreement as it is after the change. Its `revision` must be one more than the stored
    /// one (or 1 for a new agreement); otherwise the commit fails with `Conflict`.
    pub agreement: Option<Agreement>,
    pub versions: Vec<VersionRecord>,
    /// Document bytes, stored content-addressed by SHA-256.
    pub documents: Vec<Vec<u8>>,
    pub events: Vec<NewEvent>,
    pub messages: Vec<Message>,
    /// Documents to delete (retention disposal), by SHA-256.
    pub delete_documents: Vec<String>,
    /// Webhook deliveries the change causes, queued in the same transaction (see [`webhooks`]).
    pub webhooks: Vec<webhooks::Delivery>,
}

/// A staff API key. Only the SHA-256 of its secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `k` + 8 hex digits; the key itself is `csk_<id>_<secret>`.
    pub id: String,
    pub name: String,
    /// `sales`, `legal`, `vendor_manager`, `admin`.
    pub role: String,
    /// Hex SHA-256 of the whole key string.
    pub hash: String,
    pub created_at: u64,
    pub created_by: String,
    pub expires_at: Option<u64>,
    pub revoked_at: Option<u64>,
    #[serde(default)]
    pub last_used: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Someone else changed the agreement first; reload and retry.
    #[error("concurrent change")]
    Conflict,
    /// A stored document no longer matches its SHA-256.
    #[error("document {0} failed its integrity check")]
    Corrupt(String),
    #[error("the data directory {0} is in use by another process (a running server?)")]
    Locked(String),
    #[error("storage: {0}")]
    Io(String),
    /// The database connection was lost before anything was committed: nothing took effect.
    /// The PostgreSQL pool runs the call again once on a fresh connection; seen by a caller only
    /// when that failed too.
    #[error("the database connection was lost: {0}")]
    ConnectionLost(String),
    /// The database connection was lost while COMMIT was in flight: whether the change took
    /// effect is unknown, so it is never repeated blindly (HTTP: 503, reload and look).
    #[error("the database connection was lost while committing; the outcome is unknown ({0})")]
    OutcomeUnknown(String),
}

/// One agreement's audit chain as stored: (agreement id, each event's raw bytes in order).
pub type RawChain = (String, Vec<Vec<u8>>);

/// What `audit verify` walks, as of one moment ([`Store::audit_snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct AuditSnapshot {
    pub chains: Vec<RawChain>,
    pub heads: Vec<ChainHead>,
    pub agreement_ids: Vec<String>,
}

/// A chain's stored head: its last event's seq and hash, and whether the head's MAC (under the
/// key kept outside the store, see [`format`]) checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub agreement_id: String,
    pub seq: u64,
    pub hash: String,
    pub authentic: bool,
}

/// A [`Summary`] as [`Store::stored_summaries`] read it, not yet decoded.
#[derive(Debug)]
pub struct StoredSummary(Stored);

#[derive(Debug)]
enum Stored {
    /// sled's summary tree: the key (the id) and the value in its encoding (`summary_index`).
    Sled(sled::IVec, sled::IVec),
    /// An agreement's id and record JSON (PostgreSQL's `agreements.body`), read as a [`Summary`].
    Json(String, Vec<u8>),
    /// Boxed: the encoded variant is the one read at 100,000 agreements, and moves in batches.
    Decoded(Box<Summary>),
}

impl StoredSummary {
    pub fn decode(self) -> Result<Summary, StoreError> {
        self.decode_or_id().map_err(|(_, e)| e)
    }

    /// [`StoredSummary::decode`]; when it fails, the agreement's id too (None: a key that is
    /// not UTF-8), so the caller can read the record instead.
    pub fn decode_or_id(self) -> Result<Summary, (Option<String>, StoreError)> {
        let io = |e: serde_json::Error| StoreError::Io(e.to_string());
        match self.0 {
            Stored::Sled(k, v) => {
                summary_index::decode_entry(&k, &v).map_err(|e| (std::str::from_utf8(&k).ok().map(str::to_string), e))
            }
            Stored::Json(id, body) => serde_json::from_slice(&body).map_err(|e| (Some(id), io(e))),
            Stored::Decoded(s) => Ok(*s),
        }
    }
}

/// [`Store::agreement_summaries`] from [`Store::stored_summaries`]: each decoded as read; the
/// first that does not decode is the answer (unless reading fails later), and `f` is called
/// for none after it. For stores that override `stored_summaries` (else the two defaults
/// would call each other).
fn decode_each(store: &dyn Store, f: &mut (dyn FnMut(Summary) + Send)) -> Result<(), StoreError> {
    let mut bad = None;
    store.stored_summaries(&mut |s| {
        if bad.is_none() {
            match s.decode() {
                Ok(s) => f(s),
                Err(e) => bad = Some(e),
            }
        }
    })?;
    bad.map_or(Ok(()), Err)
}

/// The storage interface the service uses.
pub trait Store: Send + Sync + 'static {
    fn agreement(&self, id: &str) -> Result<Agreement, StoreError>;
    /// [`Store::agreement`], shared: for the reads that repeat (verifying a signer's link). sled
    /// hands out a decoded copy it keeps while the record's bytes are unchanged
    /// (`store/decoded.rs`); the default decodes every time.
    fn agreement_shared(&self, id: &str) -> Result<std::sync::Arc<Agreement>, StoreError> {
        self.agreement(id).map(std::sync::Arc::new)
    }
    fn agreements(&self) -> Result<Vec<Agreement>, StoreError>;
    /// Every agreement's [`Summary`] (what the archive index needs), handed to `f` one at a
    /// time as the store reads them, in no particular order: no vector of every record, no
    /// signer decoded. `f` must not call the store. (The start-up index build reads
    /// [`Store::stored_summaries`] instead.)
    fn agreement_summaries(&self, f: &mut (dyn FnMut(Summary) + Send)) -> Result<(), StoreError>;
    /// [`Store::agreement_summaries`] with each summary handed over as read, to be decoded by
    /// the receiver ([`StoredSummary::decode`]): the start-up index build decodes on other
    /// threads than the one reading the store. The default decodes as it reads.
    fn stored_summaries(&self, f: &mut (dyn FnMut(StoredSummary) + Send)) -> Result<(), StoreError> {
        self.agreement_summaries(&mut |s| f(StoredSummary(Stored::Decoded(Box::new(s)))))
    }
    /// The [`Summary`] of each agreement named, one per id in the order given, `None` for an
    /// id no agreement has: what a search page and the lifecycle listings show (the archive
    /// index keeps what it filters and sorts on, not the entries). The default reads each
    /// record.
    fn summaries(&self, ids: &[String]) -> Result<Vec<Option<Summary>>, StoreError> {
        ids.iter()
            .map(|id| match self.agreement(id) {
                Ok(a) => Ok(Some(Summary::from(&a))),
                Err(StoreError::NotFound) => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }
    fn version(&self, id: &str, version: u32) -> Result<VersionRecord, StoreError>;
    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError>;
    /// The document's bytes, re-checked against their SHA-256 on every read.
    fn document(&self, sha256: &str) -> Result<Vec<u8>, StoreError>;
    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError>;
    /// Commits atomically and durably.
    fn commit(&self, change: Change) -> Result<Vec<Event>, StoreError>;
    /// Commits atomically but returns before the disk, with a ticket for [`Store::sync`]: nothing
    /// may be acknowledged until `sync(ticket)` returns. Lets concurrent writers share one fsync
    /// (group commit). The default commits durably at once.
    fn commit_nowait(&self, change: Change) -> Result<(Vec<Event>, u64), StoreError> {
        Ok((self.commit(change)?, 0))
    }
    /// Commits several changes at once without waiting for the disk, each atomically and with
    /// its own revision check: one change's `Conflict` (or other refusal) is its own answer and
    /// writes nothing of it, and the others still commit (unless the batch fails as a whole: on
    /// PostgreSQL a lost connection or a failed COMMIT is every change's answer). Answers one result per change, in
    /// order, and one ticket for [`Store::sync`] that covers them all. Lets the service apply
    /// concurrent writers' changes in one step (see `app::combine`). The default commits them
    /// one by one ([`commit_each`]); sled writes the batch in one transaction, and PostgreSQL
    /// in one transaction with a savepoint per change.
    fn commit_all_nowait(&self, changes: Vec<Change>) -> (Vec<Result<Vec<Event>, StoreError>>, u64) {
        commit_each(self, changes)
    }
    /// Whether [`Store::commit_all_nowait`] commits a batch in one step (sled, PostgreSQL), so that
    /// combining concurrent writers' changes saves work. `false` (the default): the service
    /// applies each change on its own, and no writer commits others' changes one by one.
    fn commits_in_batches(&self) -> bool {
        false
    }
    /// The reminder tick's wake notes kept across restarts ([`ReminderWake`]). Default: none
    /// kept (the tick keeps them in memory only, and reads every candidate after a start).
    fn reminder_wakes(&self) -> Result<Vec<(String, ReminderWake)>, StoreError> {
        Ok(Vec::new())
    }
    /// Keeps `put` and forgets `remove` (advisory: no wait for the disk; see [`ReminderWake`]).
    fn put_reminder_wakes(&self, _put: &[(String, ReminderWake)], _remove: &[String]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether a read of one record is local memory work (a page cache in this process), cheap
    /// enough to run on an async thread. `false` (the default) for a store across a network:
    /// its reads go to the blocking pool.
    fn reads_in_process(&self) -> bool {
        false
    }
    /// Waits until the commit behind `ticket` is durable.
    fn sync(&self, _ticket: u64) -> Result<(), StoreError> {
        Ok(())
    }
    /// [`Store::sync`] for async callers, without holding a thread while it waits (the HTTP
    /// signing path: hundreds of signers waiting for one fsync). The default is for stores
    /// whose `sync` returns at once.
    fn sync_async(
        self: Arc<Self>,
        ticket: u64,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>> {
        Box::pin(std::future::ready(self.sync(ticket)))
    }
    fn messages(&self) -> Result<Vec<Message>, StoreError>;
    /// One outbox message by id.
    fn message(&self, id: &str) -> Result<Message, StoreError> {
        self.messages()?.into_iter().find(|m| m.id == id).ok_or(StoreError::NotFound)
    }
    fn put_message(&self, m: &Message) -> Result<(), StoreError>;
    /// Leases a message for one attempt: `lease` sees the stored message and returns the copy to
    /// store (or None: nothing to do); reading and writing are one step against every other
    /// sender. PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` in one transaction, so an instance
    /// never attempts a message another one holds. Default (one process, the caller holds the
    /// service's write lock): read, then [`Store::put_message`].
    fn lease_message(
        &self,
        id: &str,
        lease: &mut (dyn FnMut(Message) -> Result<Option<Message>, StoreError> + Send),
    ) -> Result<Option<Message>, StoreError> {
        match lease(self.message(id)?)? {
            Some(m) => {
                self.put_message(&m)?;
                Ok(Some(m))
            }
            None => Ok(None),
        }
    }
    /// Stores a batch of messages without waiting for the disk: returns a ticket for
    /// [`Store::sync`]. The sender records a batch's outcomes this way, in one commit, and waits
    /// once, outside the service's write lock. The default writes each durably at once.
    fn put_messages_nowait(&self, ms: &[Message]) -> Result<u64, StoreError> {
        ms.iter().try_for_each(|m| self.put_message(m)).map(|()| 0)
    }
    /// [`Store::lease_message`] for a batch, without waiting for the disk: returns the copies
    /// `lease` returned, as stored, and a ticket for [`Store::sync`]; no attempt may be made until
    /// `sync(ticket)` has returned. Ids not found are left out, and so is a message that cannot be
    /// read or leased (logged): one bad message does not hold up the rest. The default leases
    /// each message in a step of its own, durably at once (PostgreSQL: each row's transaction is
    /// its lease, and rows another instance holds are left to it).
    fn lease_messages_nowait(
        &self,
        ids: &[String],
        lease: &mut (dyn FnMut(Message) -> Result<Option<Message>, StoreError> + Send),
    ) -> Result<(Vec<Message>, u64), StoreError> {
        let mut leased = Vec::with_capacity(ids.len());
        for id in ids {
            match self.lease_message(id, lease) {
                Ok(m) => leased.extend(m),
                Err(StoreError::NotFound) => {}
                Err(e) => tracing::error!(message = %id, error = %e, "cannot lease the message"),
            }
        }
        Ok((leased, 0))
    }
    /// The queued messages (the sender's work), without reading the rest of the outbox.
    fn queued_messages(&self) -> Result<Vec<Message>, StoreError> {
        Ok(self.messages()?.into_iter().filter(|m| m.status == MessageStatus::Queued).collect())
    }
    /// [`Store::queued_messages`] without their bodies: what the mail sender orders its queue by
    /// and times its next pass with, read on every pass (a message's text and HTML are most of
    /// its bytes; sled and PostgreSQL skip them while decoding).
    fn queued_heads(&self) -> Result<Vec<QueuedHead>, StoreError> {
        Ok(self.queued_messages()?.iter().map(QueuedHead::of).collect())
    }
    /// One agreement's messages, without reading the rest of the outbox.
    fn agreement_messages(&self, agreement: &str) -> Result<Vec<Message>, StoreError> {
        Ok(self.messages()?.into_iter().filter(|m| m.agreement_id == agreement).collect())
    }
    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Stores a key record durably (creation, revocation).
    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Stores a key record and appends `log` to the staff security log as one atomic, durable
    /// commit: a key change is never stored without its log entry, nor logged without the
    /// change. The default writes one after the other (the memory store of the tests).
    fn put_api_key_logged(
        &self,
        k: &ApiKeyRecord,
        log: people::NewSecurityEvent,
    ) -> Result<people::SecurityEvent, StoreError> {
        self.put_api_key(k)?;
        self.people().append_security(log)
    }
    /// Records a key's last use without waiting for the disk (informational only). Kept apart
    /// from the key record, so it can never write back a record a revocation has replaced.
    fn touch_api_key(&self, id: &str, at: u64) -> Result<(), StoreError>;
    /// Writes every tree as JSON lines: a consistent snapshot (`backup`).
    fn dump(&self, out: &mut (dyn std::io::Write + Send)) -> Result<usize, StoreError>;
    /// Every agreement's raw event chain, for `audit verify`.
    fn raw_chains(&self) -> Result<Vec<RawChain>, StoreError>;
    /// Every chain's head, its MAC checked, for `audit verify`.
    fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError>;
    /// Every chain, every head and every agreement's id as of one moment, for `audit verify`
    /// while others write (read apart, a chain appended to between the reads would look cut).
    /// By default read one after the other: right where a single writer holds the store.
    fn audit_snapshot(&self) -> Result<AuditSnapshot, StoreError> {
        Ok(AuditSnapshot {
            chains: self.raw_chains()?,
            heads: self.chain_heads()?,
            agreement_ids: self.agreements()?.into_iter().map(|a| a.id).collect(),
        })
    }
    /// Flushes everything to stable storage (shutdown).
    fn flush(&self) -> Result<(), StoreError>;
    /// The token [`Store::put_index_token`] stored before this store was last closed, when
    /// nothing has changed the agreements since: then the index snapshot written with it
    /// (`app::snapshot`) is the index of what this store holds. Opening the store took the token
    /// out of it, durably, so it is handed over once, and a crash, another open or any change
    /// after this one leaves no token. On sled the token is also sealed with its data file's
    /// stamp at close, so an earlier release that wrote the store since (a rollback, which
    /// would not take the token out) voids it too. None on stores that keep none (PostgreSQL:
    /// other instances write it; the memory store: nothing outlives it).
    fn take_index_token(&self) -> Option<[u8; 16]> {
        None
    }
    /// Lets go of the store's pages held in memory, after a pass over many records (the
    /// index build) whose pages will not be needed soon. Nothing where the store keeps no
    /// pages in this process.
    fn shed_cache(&self) {}
    /// Whether [`Store::put_index_token`] keeps tokens here (so a snapshot is worth writing).
    fn keeps_index_token(&self) -> bool {
        false
    }
    /// Stores `token` durably, saying "the index snapshot with this token is the index of the
    /// agreements as they are now". Call it with no commit in flight (the server holds its write
    /// lock). The next commit removes it, before or with its own write. Does nothing where
    /// tokens are not kept ([`Store::keeps_index_token`]).
    fn put_index_token(&self, _token: [u8; 16]) -> Result<(), StoreError> {
        Ok(())
    }
    /// People, sessions and the staff security log (the web app), in the same store.
    fn people(&self) -> &dyn people::PeopleStore;
    /// The vendor register (issue 16), in the same store.
    fn vendors(&self) -> &dyn vendors::VendorStore;
    /// Webhook endpoints and their deliveries, in the same store.
    fn webhooks(&self) -> &dyn webhooks::WebhookStore;
    /// `sled`, `postgres` or `memory` (`/healthz`).
    fn backend(&self) -> &'static str {
        "sled"
    }
    /// Checks the store answers (`/healthz`): a database round trip; embedded stores always do.
    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Asks to be woken through `wake` when another process changed agreements (several
    /// instances on one database); stores only this process writes never call it.
    fn watch_foreign_changes(&self, _wake: std::sync::Arc<tokio::sync::Notify>) {}
    /// The agreements other processes changed since the last call.
    fn foreign_changes(&self) -> ForeignChanges {
        ForeignChanges::Agreements(Vec::new())
    }
}

/// [`Store::commit_all_nowait`] one change at a time: each [`Store::commit_nowait`] on its own,
/// and the latest ticket (tickets only grow, so it covers the earlier ones).
pub fn commit_each<S: Store + ?Sized>(store: &S, changes: Vec<Change>) -> (Vec<Result<Vec<Event>, StoreError>>, u64) {
    let mut ticket = 0;
    let results = changes
        .into_iter()
        .map(|c| {
            store.commit_nowait(c).map(|(sealed, t)| {
                ticket = ticket.max(t);
                sealed
            })
        })
        .collect();
    (results, ticket)
}

/// What [`Store::foreign_changes`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignChanges {
    /// These agreements (ids) changed.
    Agreements(Vec<String>),
    /// Anything may have changed (the change feed was interrupted): read everything again.
    Everything,
}
