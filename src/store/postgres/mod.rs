//! The [`Store`] on PostgreSQL (issue 17), for several Countersign instances sharing one
//! database. Chosen by `database_url`; unset, the embedded sled store stays the default.
//!
//! * Records are the same JSON bytes the sled store keeps, one row each, keyed like the sled
//!   trees (schema: `migrations/postgres/`, applied at open in one transaction, versions in
//!   `schema_version`).
//! * [`Store::commit`] is one transaction: the agreement, its versions, documents, audit events
//!   with the chain head, outbox messages and webhook deliveries commit together, and only a
//!   committed change is acknowledged (PostgreSQL's `synchronous_commit` keeps it durable).
//!   Concurrent writers' changes are combined ([`Store::commit_all_nowait`]): one transaction,
//!   a savepoint per change (a refused change rolls back alone), one WAL flush for all.
//! * The optimistic revision check is in SQL: `UPDATE … WHERE revision = <old>`; no row updated
//!   is a [`StoreError::Conflict`], which the application decides again (and finally answers 409).
//! * Audit chains: each append locks the chain's head row (`SELECT … FOR UPDATE`), so two
//!   instances appending to one agreement's chain queue behind each other and never fork it.
//!   The head's MAC is computed under the head key kept outside the database, in `--data`.
//! * Documents are content-addressed by SHA-256 and re-checked on every read.
//! * Sending: [`Store::lease_message`] and the webhook store's `lease_delivery` read the row with
//!   `SELECT … FOR UPDATE SKIP LOCKED` and write the lease in the same transaction: an instance
//!   that finds a message locked or already leased leaves it, so each message is attempted by
//!   one instance once per lease.
//! * Search: each instance keeps its in-memory index; commits send `NOTIFY countersign_changes`
//!   with the agreement id, and a listener thread per instance collects the ids other instances
//!   changed ([`Store::foreign_changes`]) and wakes the service to re-read them.

mod others;
pub mod pool;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use postgres::Client;
use sha2::{Digest, Sha256};

use super::audit::{Event, GENESIS};
use super::format::{self, HeadKey};
use super::webhooks::{Delivery, DeliveryStatus};
use super::{ApiKeyRecord, ChainHead, Change, ForeignChanges, Message, MessageStatus, RawChain, Store, StoreError};
use crate::domain::agreement::{Agreement, Summary, VersionRecord};
use pool::{Conn, Pool, blocking, commit, pg_err};

/// The schema migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../../migrations/postgres/0001_init.sql"))];

/// The channel commits notify on.
const CHANNEL: &str = "countersign_changes";

/// Serializes schema migrations of concurrent starts (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x636f_756e_7465_7201;

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(io)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(io)
}

/// What [`migrate`] did: the schema version before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaMigration {
    pub from: i64,
    pub to: i64,
}

/// Applies the schema migrations not applied yet, in one transaction (concurrent starts wait
/// for each other on an advisory lock). Refuses a database written by a newer release.
pub fn migrate(c: &mut Client) -> Result<SchemaMigration, StoreError> {
    let mut tx = c.transaction().map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg_err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        .map_err(pg_err)?;
    let from: i64 = tx.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[]).map_err(pg_err)?.get(0);
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if from > latest {
        return Err(StoreError::Io(format!(
            "the database has schema version {from}, newer than this release knows ({latest}): upgrade Countersign"
        )));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.batch_execute(sql).map_err(|e| StoreError::Io(format!("schema migration {v}: {}", pg_err(e))))?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[v]).map_err(pg_err)?;
    }
    commit(tx)?;
    Ok(SchemaMigration { from, to: latest })
}

/// Connects to `url` and applies the migrations (`countersign db migrate`).
pub fn migrate_url(url: &str) -> Result<SchemaMigration, StoreError> {
    let pool = Pool::new(url)?;
    pool.with(migrate)
}

/// Changes other instances made, collected by the listener thread.
#[derive(Default)]
struct Feed {
    pending: Mutex<Pending>,
    wake: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

#[derive(Default)]
struct Pending {
    ids: BTreeSet<String>,
    /// The feed was (re)connected: anything may have changed meanwhile.
    everything: bool,
}

impl Feed {
    fn push(&self, f: impl FnOnce(&mut Pending)) {
        f(&mut self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(w) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            w.notify_one();
        }
    }
}

/// See the module documentation.
pub struct PgStore {
    pool: Pool,
    head_key: HeadKey,
    /// Tells this instance's own notifications from the others'.
    nonce: String,
    feed: Arc<Feed>,
    migration: SchemaMigration,
}

impl PgStore {
    /// Connects, applies the schema migrations and starts the change listener. The head key is
    /// read from `data` (made there when the database holds no chain yet).
    pub fn open(url: &str, data: &Path) -> Result<PgStore, StoreError> {
        let pool = Pool::new(url)?;
        let migration = pool.with(migrate)?;
        let has_heads = pool
            .with(|c| Ok(c.query_one("SELECT EXISTS (SELECT 1 FROM heads)", &[]).map_err(pg_err)?.get::<_, bool>(0)))?;
        if !has_heads {
            std::fs::create_dir_all(data).map_err(|e| StoreError::Io(format!("{}: {e}", data.display())))?;
        }
        let head_key = match format::load_head_key(data, !has_heads)? {
            Some(k) => k,
            None => {
                return Err(StoreError::Io(format!(
                    "{} is missing: it authenticates the audit trail held in the database. Copy it from \
                     the data directory of another instance (every instance shares the key files).",
                    format::head_key_path(data).display()
                )));
            }
        };
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(io)?;
        let feed = Arc::new(Feed::default());
        let store = PgStore { pool, head_key, nonce: hex::encode(raw), feed, migration };
        store.listen(url)?;
        Ok(store)
    }

    /// What opening applied to the schema.
    pub fn migration(&self) -> SchemaMigration {
        self.migration
    }

    /// Starts the thread that LISTENs for other instances' commits. It ends by itself once the
    /// store is dropped (it holds only a weak reference).
    fn listen(&self, url: &str) -> Result<(), StoreError> {
        let pool = Pool::new(url)?;
        let feed: Weak<Feed> = Arc::downgrade(&self.feed);
        let nonce = self.nonce.clone();
        std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listen_loop(pool, feed, nonce))
            .map_err(io)?;
        Ok(())
    }

    fn query_bodies(
        &self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.pool.with_conn(|c| {
            let s = c.statements.get(&mut c.client, sql)?;
            Ok(c.client.query(&s, params).map_err(pg_err)?.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect())
        })
    }

    fn query_body(
        &self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<u8>, StoreError> {
        self.pool.with_conn(|c| {
            let s = c.statements.get(&mut c.client, sql)?;
            c.client.query_opt(&s, params).map_err(pg_err)?.map(|r| r.get::<_, Vec<u8>>(0)).ok_or(StoreError::NotFound)
        })
    }

    fn all<T: serde::de::DeserializeOwned>(&self, sql: &'static str) -> Result<Vec<T>, StoreError> {
        self.query_bodies(sql, &[])?.iter().map(|b| json(b)).collect()
    }

    /// Test and repair hook: overwrite one stored event's bytes (proves `audit verify` catches
    /// tampering). Not used by the service.
    pub fn tamper_event(&self, id: &str, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.pool.with(|c| {
            c.execute("UPDATE events SET body = $3 WHERE agreement_id = $1 AND seq = $2", &[&id, &(seq as i64), &bytes])
                .map_err(pg_err)
                .map(|_| ())
        })
    }

    /// True when no table holds a row (a `migrate` target must be empty).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.pool.with(|c| {
            for t in others::TABLES {
                let q = format!("SELECT EXISTS (SELECT 1 FROM {t})");
                if c.query_one(&q, &[]).map_err(pg_err)?.get::<_, bool>(0) {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Loads a `backup` (the JSON lines [`Store::dump`] writes, from either store) into this
    /// empty database, in one transaction, reading the lines as they come (binary `COPY`).
    pub fn restore(&self, input: impl std::io::BufRead + Send) -> Result<usize, StoreError> {
        if !self.is_empty()? {
            return Err(StoreError::Io(
                "the target database is not empty: restore and migrate need an empty one".into(),
            ));
        }
        let mut input = input;
        self.pool.with_once(|c| others::restore(c, &mut input))
    }
}

fn listen_loop(pool: Pool, feed: Weak<Feed>, nonce: String) {
    use postgres::fallible_iterator::FallibleIterator;
    let mut failures = 0u32;
    loop {
        let mut client = match pool.connect() {
            Ok(c) => c,
            Err(e) => {
                if feed.upgrade().is_none() {
                    return;
                }
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, "cannot listen for other instances' changes; retrying");
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            std::thread::sleep(std::time::Duration::from_secs(1));
            continue;
        }
        failures = 0;
        // Anything may have changed while nobody listened.
        match feed.upgrade() {
            Some(f) => f.push(|p| p.everything = true),
            None => return,
        }
        loop {
            let next = client.notifications().timeout_iter(std::time::Duration::from_millis(250)).next();
            let Some(f) = feed.upgrade() else { return };
            match next {
                Ok(Some(n)) => {
                    if let Some((from, id)) = n.payload().split_once(':')
                        && from != nonce
                    {
                        f.push(|p| {
                            p.ids.insert(id.to_string());
                        });
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "lost the change listener's connection; reconnecting");
                    break;
                }
            }
        }
    }
}

/// A change's documents with their SHA-256, computed before any connection is taken.
type Docs<'a> = Vec<(String, &'a Vec<u8>)>;

fn docs_of(change: &Change) -> Docs<'_> {
    change.documents.iter().map(|d| (hex::encode(Sha256::digest(d)), d)).collect()
}

/// The commit transaction (see the module documentation).
fn commit_tx(
    conn: &mut Conn,
    change: &Change,
    key: &HeadKey,
    nonce: &str,
    docs: &[(String, &Vec<u8>)],
) -> Result<Vec<Event>, StoreError> {
    let Conn { client, statements: st } = conn;
    let mut tx = client.transaction().map_err(pg_err)?;
    let sealed = apply_tx(&mut tx, st, change, key, nonce, docs)?;
    commit(tx)?;
    Ok(sealed)
}

/// Most changes in one transaction: each savepoint that writes takes a subtransaction id, and
/// PostgreSQL caches 64 per backend; beyond that every other session's snapshots must look
/// transactions up on disk. (The combiner's batches are at most this size already.)
const MAX_BATCH: usize = 64;

/// Several changes in one transaction ([`Store::commit_all_nowait`]): each inside a savepoint
/// of its own, so a change refused by its revision check (or any other statement of its own)
/// is rolled back alone and answered alone, and the others commit together, with one WAL flush
/// for all of them. A failure of the connection or of the COMMIT is every change's answer.
fn commit_all_tx(
    conn: &mut Conn,
    changes: &[(&Change, Docs<'_>)],
    key: &HeadKey,
    nonce: &str,
) -> Result<Vec<Result<Vec<Event>, StoreError>>, StoreError> {
    let Conn { client, statements: st } = conn;
    let mut tx = client.transaction().map_err(pg_err)?;
    let mut answers = Vec::with_capacity(changes.len());
    for (change, docs) in changes {
        let mut sp = tx.savepoint("change").map_err(pg_err)?;
        match apply_tx(&mut sp, st, change, key, nonce, docs) {
            Ok(sealed) => {
                sp.commit().map_err(pg_err)?; // RELEASE SAVEPOINT
                answers.push(Ok(sealed));
            }
            Err(e) => {
                // ROLLBACK TO the savepoint, which stays open: released too, so savepoints do
                // not nest one level deeper for each refused change. An error taken for a lost
                // connection (a client-side one is too) is the change's own if the connection
                // still answers this; if not, it is every change's.
                let lost = matches!(e, StoreError::ConnectionLost(_) | StoreError::OutcomeUnknown(_));
                let rolled = sp.rollback().and_then(|()| tx.batch_execute("RELEASE SAVEPOINT change"));
                match rolled {
                    Ok(()) => answers.push(Err(e)),
                    Err(_) if lost => return Err(e),
                    Err(r) => return Err(pg_err(r)),
                }
            }
        }
    }
    commit(tx)?;
    Ok(answers)
}

/// Writes one change in `tx` (a transaction, or a savepoint of one), without committing. Every
/// statement is prepared once per connection ([`pool::Statements`]), and a chain's head is
/// locked and written once per change however many events the change appends to it: a change
/// costs a dozen round trips, not one parse and one execute per row.
fn apply_tx(
    tx: &mut postgres::Transaction<'_>,
    st: &mut pool::Statements,
    change: &Change,
    key: &HeadKey,
    nonce: &str,
    docs: &[(String, &Vec<u8>)],
) -> Result<Vec<Event>, StoreError> {
    if let Some(a) = &change.agreement {
        let body = to_json(a)?;
        let rev = a.revision as i64;
        let n = if a.revision == 1 {
            let s = st.get(
                tx,
                "INSERT INTO agreements (id, revision, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )?;
            tx.execute(&s, &[&a.id, &rev, &body])
        } else {
            let s = st.get(tx, "UPDATE agreements SET revision = $2, body = $3 WHERE id = $1 AND revision = $4")?;
            tx.execute(&s, &[&a.id, &rev, &body, &(rev - 1)])
        }
        .map_err(pg_err)?;
        if n != 1 {
            return Err(StoreError::Conflict);
        }
        let s = st.get(tx, "SELECT pg_notify($1, $2)")?;
        tx.execute(&s, &[&CHANNEL, &format!("{nonce}:{}", a.id)]).map_err(pg_err)?;
    }
    let id = change.agreement.as_ref().map(|a| a.id.as_str()).unwrap_or_default();
    for v in &change.versions {
        let s = st.get(
            tx,
            "INSERT INTO versions (agreement_id, version, body) VALUES ($1, $2, $3) \
             ON CONFLICT (agreement_id, version) DO UPDATE SET body = excluded.body",
        )?;
        tx.execute(&s, &[&id, &(v.version as i64), &to_json(v)?]).map_err(pg_err)?;
    }
    for (sha, bytes) in docs {
        // Content-addressed and immutable: an existing document is never overwritten.
        let s = st.get(tx, "INSERT INTO documents (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING")?;
        tx.execute(&s, &[sha, &bytes.as_slice()]).map_err(pg_err)?;
    }
    // The chains this change appends to: each head row locked (`FOR UPDATE`) at its first
    // event, until the commit, so concurrent appends to one chain queue here and never fork it.
    let mut heads: Vec<(&str, u64, String)> = Vec::new();
    let mut sealed = Vec::with_capacity(change.events.len());
    for e in &change.events {
        let at = match heads.iter().position(|(id, _, _)| *id == e.agreement_id) {
            Some(i) => i,
            None => {
                let s = st.get(
                    tx,
                    "INSERT INTO heads (agreement_id, seq, hash, mac) VALUES ($1, 0, $2, '') ON CONFLICT (agreement_id) DO NOTHING",
                )?;
                tx.execute(&s, &[&e.agreement_id, &GENESIS]).map_err(pg_err)?;
                let s = st.get(tx, "SELECT seq, hash FROM heads WHERE agreement_id = $1 FOR UPDATE")?;
                let row = tx.query_one(&s, &[&e.agreement_id]).map_err(pg_err)?;
                heads.push((e.agreement_id.as_str(), row.get::<_, i64>(0) as u64, row.get(1)));
                heads.len() - 1
            }
        };
        let (_, seq, hash) = &mut heads[at];
        let ev = Event::seal(e.clone(), *seq + 1, hash);
        (*seq, *hash) = (ev.seq, ev.hash.clone());
        sealed.push(ev);
    }
    if !sealed.is_empty() {
        let ids: Vec<&str> = sealed.iter().map(|e| e.agreement_id.as_str()).collect();
        let seqs: Vec<i64> = sealed.iter().map(|e| e.seq as i64).collect();
        let bodies = sealed.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
        let s = st.get(
            tx,
            "INSERT INTO events (agreement_id, seq, body) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])",
        )?;
        tx.execute(&s, &[&ids, &seqs, &bodies]).map_err(pg_err)?;
    }
    for (id, seq, hash) in &heads {
        let mac = key.mac(id, *seq, hash);
        let s = st.get(tx, "UPDATE heads SET seq = $2, hash = $3, mac = $4 WHERE agreement_id = $1")?;
        tx.execute(&s, &[id, &(*seq as i64), hash, &mac]).map_err(pg_err)?;
    }
    for m in &change.messages {
        put_message_tx(tx, m)?;
    }
    for sha in &change.delete_documents {
        tx.execute("DELETE FROM documents WHERE sha256 = $1", &[sha]).map_err(pg_err)?;
    }
    for d in &change.webhooks {
        put_delivery_tx(tx, d)?;
    }
    Ok(sealed)
}

/// Leases one outbox message or webhook delivery: `select` locks its row `FOR UPDATE SKIP
/// LOCKED` (a row another instance holds is being taken care of there: `None`), `lease`
/// decides on it, and `put` writes the leased body in the same transaction.
fn lease_row<T: serde::de::DeserializeOwned>(
    c: &mut Client,
    select: &str,
    id: &str,
    lease: &mut (dyn FnMut(T) -> Result<Option<T>, StoreError> + Send),
    put: fn(&mut postgres::Transaction<'_>, &T) -> Result<(), StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut tx = c.transaction().map_err(pg_err)?;
    let Some(row) = tx.query_opt(select, &[&id]).map_err(pg_err)? else { return Ok(None) };
    let Some(leased) = lease(json(&row.get::<_, Vec<u8>>(0))?)? else { return Ok(None) };
    put(&mut tx, &leased)?;
    commit(tx)?;
    Ok(Some(leased))
}

/// A read-only REPEATABLE READ transaction: one moment's view while other instances write.
fn snapshot(c: &mut Client) -> Result<postgres::Transaction<'_>, StoreError> {
    c.build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_err)
}

fn put_message_tx(tx: &mut postgres::Transaction<'_>, m: &Message) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (id, agreement_id, queued, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET agreement_id = excluded.agreement_id, queued = excluded.queued, body = excluded.body",
        &[&m.id, &m.agreement_id, &(m.status == MessageStatus::Queued), &to_json(m)?],
    )
    .map_err(pg_err)?;
    Ok(())
}

pub(crate) fn put_delivery_tx(tx: &mut postgres::Transaction<'_>, d: &Delivery) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, queued, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET endpoint_id = excluded.endpoint_id, queued = excluded.queued, body = excluded.body",
        &[&d.id, &d.endpoint_id, &(d.status == DeliveryStatus::Queued), &to_json(d)?],
    )
    .map_err(pg_err)?;
    Ok(())
}

fn check_sha(sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != sha256 {
        tracing::error!(expected = sha256, actual = %actual, "stored document failed its SHA-256 check; refusing to serve it");
        return Err(StoreError::Corrupt(sha256.to_string()));
    }
    Ok(())
}

impl Store for PgStore {
    fn agreement(&self, id: &str) -> Result<Agreement, StoreError> {
        json(&self.query_body("SELECT body FROM agreements WHERE id = $1", &[&id])?)
    }

    fn agreements(&self) -> Result<Vec<Agreement>, StoreError> {
        self.all("SELECT body FROM agreements ORDER BY id")
    }

    fn agreement_summaries(&self, f: &mut (dyn FnMut(Summary) + Send)) -> Result<(), StoreError> {
        super::decode_each(self, f)
    }

    fn stored_summaries(&self, f: &mut (dyn FnMut(super::StoredSummary) + Send)) -> Result<(), StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        // Row by row as they arrive (no vector of every record), the JSON decoded by the
        // receiver (on its threads).
        self.pool.with(|c| {
            let none: [&(dyn postgres::types::ToSql + Sync); 0] = [];
            let mut rows = c.query_raw("SELECT id, body FROM agreements", none).map_err(pg_err)?;
            while let Some(row) = rows.next().map_err(pg_err)? {
                let (id, body) = (row.get::<_, String>(0), row.get::<_, &[u8]>(1).to_vec());
                f(super::StoredSummary(super::Stored::Json(id, body)));
            }
            Ok(())
        })
    }

    fn summaries(&self, ids: &[String]) -> Result<Vec<Option<Summary>>, StoreError> {
        // One round trip for the lot, put back in the order asked.
        let rows: Vec<(String, Vec<u8>)> = self.pool.with_conn(|c| {
            let s = c.statements.get(&mut c.client, "SELECT id, body FROM agreements WHERE id = ANY($1)")?;
            Ok(c.client.query(&s, &[&ids]).map_err(pg_err)?.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let bodies: std::collections::HashMap<String, Vec<u8>> = rows.into_iter().collect();
        ids.iter().map(|id| bodies.get(id).map(|b| json::<Summary>(b)).transpose()).collect()
    }

    fn version(&self, id: &str, version: u32) -> Result<VersionRecord, StoreError> {
        json(&self.query_body(
            "SELECT body FROM versions WHERE agreement_id = $1 AND version = $2",
            &[&id, &(version as i64)],
        )?)
    }

    fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let rows = self.query_bodies("SELECT body FROM versions WHERE agreement_id = $1 ORDER BY version", &[&id])?;
        rows.iter().map(|b| json(b)).collect()
    }

    fn document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.query_body("SELECT bytes FROM documents WHERE sha256 = $1", &[&sha256])?;
        check_sha(sha256, &bytes)?;
        Ok(bytes)
    }

    fn events(&self, id: &str) -> Result<Vec<Event>, StoreError> {
        let rows = self.query_bodies("SELECT body FROM events WHERE agreement_id = $1 ORDER BY seq", &[&id])?;
        rows.iter().map(|b| json(b)).collect()
    }

    fn commit(&self, change: Change) -> Result<Vec<Event>, StoreError> {
        let docs = docs_of(&change);
        let (key, nonce) = (&self.head_key, self.nonce.as_str());
        self.pool.with_conn(|c| commit_tx(c, &change, key, nonce, &docs))
    }

    /// One transaction for the batch ([`commit_all_tx`]); durable when it answers
    /// (`synchronous_commit`), so the ticket is 0 and [`Store::sync`] has nothing to wait for.
    fn commit_all_nowait(&self, mut changes: Vec<Change>) -> (Vec<Result<Vec<Event>, StoreError>>, u64) {
        if changes.len() == 1
            && let Some(change) = changes.pop()
        {
            // Alone: no savepoint needed (two round trips fewer).
            return (vec![self.commit(change)], 0);
        }
        let (key, nonce) = (&self.head_key, self.nonce.as_str());
        let mut answers = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(MAX_BATCH) {
            let batch: Vec<(&Change, Docs<'_>)> = chunk.iter().map(|c| (c, docs_of(c))).collect();
            match self.pool.with_conn(|c| commit_all_tx(c, &batch, key, nonce)) {
                Ok(a) => answers.extend(a),
                Err(e) => answers.extend(chunk.iter().map(|_| Err(e.clone()))),
            }
        }
        (answers, 0)
    }

    /// Concurrent writers' changes share one transaction and one WAL flush (see
    /// [`Service::apply_combined`](crate::app::service::Service)).
    fn commits_in_batches(&self) -> bool {
        true
    }

    fn messages(&self) -> Result<Vec<Message>, StoreError> {
        self.all("SELECT body FROM outbox ORDER BY id")
    }

    fn message(&self, id: &str) -> Result<Message, StoreError> {
        json(&self.query_body("SELECT body FROM outbox WHERE id = $1", &[&id])?)
    }

    fn put_message(&self, m: &Message) -> Result<(), StoreError> {
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            put_message_tx(&mut tx, m)?;
            commit(tx)
        })
    }

    fn lease_message(
        &self,
        id: &str,
        lease: &mut (dyn FnMut(Message) -> Result<Option<Message>, StoreError> + Send),
    ) -> Result<Option<Message>, StoreError> {
        self.pool.with(|c| {
            lease_row(c, "SELECT body FROM outbox WHERE id = $1 FOR UPDATE SKIP LOCKED", id, lease, put_message_tx)
        })
    }

    fn queued_messages(&self) -> Result<Vec<Message>, StoreError> {
        self.all("SELECT body FROM outbox WHERE queued ORDER BY id")
    }

    fn queued_heads(&self) -> Result<Vec<crate::store::QueuedHead>, StoreError> {
        self.all("SELECT body FROM outbox WHERE queued ORDER BY id")
    }

    fn agreement_messages(&self, agreement: &str) -> Result<Vec<Message>, StoreError> {
        let rows = self.query_bodies("SELECT body FROM outbox WHERE agreement_id = $1 ORDER BY id", &[&agreement])?;
        rows.iter().map(|b| json(b)).collect()
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.pool.with(|c| {
            let rows = c
                .query(
                    "SELECT k.body, u.at FROM apikeys k LEFT JOIN apikey_last_used u ON u.id = k.id ORDER BY k.id",
                    &[],
                )
                .map_err(pg_err)?;
            rows.iter()
                .map(|r| {
                    let mut k: ApiKeyRecord = json(&r.get::<_, Vec<u8>>(0))?;
                    let at: Option<i64> = r.get(1);
                    k.last_used = k.last_used.max(at.map(|a| a as u64));
                    Ok(k)
                })
                .collect()
        })
    }

    fn put_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let body = to_json(k)?;
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO apikeys (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&k.id, &body],
            )
            .map_err(pg_err)
            .map(|_| ())
        })
    }

    fn put_api_key_logged(
        &self,
        k: &ApiKeyRecord,
        log: super::people::NewSecurityEvent,
    ) -> Result<super::people::SecurityEvent, StoreError> {
        let body = to_json(k)?;
        self.pool.with(|c| {
            // One transaction: the key and its security-log entry commit together.
            let mut tx = c.transaction().map_err(pg_err)?;
            tx.execute(
                "INSERT INTO apikeys (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&k.id, &body],
            )
            .map_err(pg_err)?;
            let ev = others::append_security_tx(&mut tx, log.clone())?;
            commit(tx)?;
            Ok(ev)
        })
    }

    fn touch_api_key(&self, id: &str, at: u64) -> Result<(), StoreError> {
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO apikey_last_used (id, at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET at = greatest(apikey_last_used.at, excluded.at)",
                &[&id, &(at as i64)],
            )
            .map_err(pg_err)
            .map(|_| ())
        })
    }

    fn dump(&self, out: &mut (dyn std::io::Write + Send)) -> Result<usize, StoreError> {
        // One snapshot (REPEATABLE READ), written in the sled store's backup format as it is
        // read.
        self.pool.with_once(move |c| others::dump(c, out))
    }

    fn raw_chains(&self) -> Result<Vec<RawChain>, StoreError> {
        self.pool.with(|c| {
            let rows =
                c.query("SELECT agreement_id, body FROM events ORDER BY agreement_id, seq", &[]).map_err(pg_err)?;
            let mut out: Vec<RawChain> = Vec::new();
            for r in rows {
                let (id, body): (String, Vec<u8>) = (r.get(0), r.get(1));
                match out.last_mut() {
                    Some((last, chain)) if *last == id => chain.push(body),
                    _ => out.push((id, vec![body])),
                }
            }
            Ok(out)
        })
    }

    fn audit_snapshot(&self) -> Result<super::AuditSnapshot, StoreError> {
        // One REPEATABLE READ snapshot: other instances keep appending while this reads, and
        // no chain may look longer or shorter than its head.
        let (chains, heads, agreement_ids) = self.pool.with(|c| {
            let mut tx = snapshot(c)?;
            let mut chains: Vec<RawChain> = Vec::new();
            for r in
                tx.query("SELECT agreement_id, body FROM events ORDER BY agreement_id, seq", &[]).map_err(pg_err)?
            {
                let (id, body): (String, Vec<u8>) = (r.get(0), r.get(1));
                match chains.last_mut() {
                    Some((last, chain)) if *last == id => chain.push(body),
                    _ => chains.push((id, vec![body])),
                }
            }
            let heads: Vec<(String, i64, String, String)> = tx
                .query("SELECT agreement_id, seq, hash, mac FROM heads ORDER BY agreement_id", &[])
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            let ids: Vec<String> = tx
                .query("SELECT id FROM agreements ORDER BY id", &[])
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().map_err(pg_err)?;
            Ok((chains, heads, ids))
        })?;
        let heads = heads
            .into_iter()
            .map(|(id, seq, hash, mac)| {
                let authentic = self.head_key.check(&id, seq as u64, &hash, &mac);
                ChainHead { agreement_id: id, seq: seq as u64, hash, authentic }
            })
            .collect();
        Ok(super::AuditSnapshot { chains, heads, agreement_ids })
    }

    fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        let rows = self.pool.with(|c| {
            let rows =
                c.query("SELECT agreement_id, seq, hash, mac FROM heads ORDER BY agreement_id", &[]).map_err(pg_err)?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, String>(2), r.get::<_, String>(3)))
                .collect::<Vec<_>>())
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, seq, hash, mac)| {
                let authentic = self.head_key.check(&id, seq as u64, &hash, &mac);
                ChainHead { agreement_id: id, seq: seq as u64, hash, authentic }
            })
            .collect())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every transaction is durable when it commits.
        Ok(())
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

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.pool.with(|c| c.simple_query("SELECT 1").map(|_| ()).map_err(pg_err))
    }

    fn watch_foreign_changes(&self, wake: Arc<tokio::sync::Notify>) {
        *self.feed.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
    }

    fn foreign_changes(&self) -> ForeignChanges {
        let mut p = self.feed.pending.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *p);
        if taken.everything {
            ForeignChanges::Everything
        } else {
            ForeignChanges::Agreements(taken.ids.into_iter().collect())
        }
    }
}

/// Runs `f` where blocking is allowed (re-exported for the CLI's migrate).
pub fn run_blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    blocking(f)
}
