//! The PostgreSQL store's people, vendor and webhook tables, and its backup format: [`dump`]
//! writes the sled store's JSON lines (tree, base64 key, base64 value) so that a backup of
//! either store restores into the other, and [`restore`] reads them.

use base64::Engine;
use postgres::Client;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use sha2::{Digest, Sha256};

use super::pool::{commit, pg_err};
use super::{PgStore, check_sha, json, lease_row, put_delivery_tx, snapshot, to_json};
use crate::domain::vendor::Vendor;
use crate::store::StoreError;
use crate::store::audit::GENESIS;
use crate::store::people::{InviteRecord, NewSecurityEvent, PeopleStore, PersonRecord, SecurityEvent, SessionRecord};
use crate::store::vendors::{VendorChange, VendorEvent, VendorStore};
use crate::store::webhooks::{Delivery, Endpoint, WebhookStore};

/// Every table that holds data (the `migrate` target must have none of them filled).
pub(super) const TABLES: &[&str] = &[
    "agreements",
    "versions",
    "documents",
    "events",
    "heads",
    "outbox",
    "apikeys",
    "apikey_last_used",
    "people",
    "invites",
    "sessions",
    "seclog",
    "vendors",
    "vendor_events",
    "vendor_documents",
    "webhook_endpoints",
    "webhook_deliveries",
];

/// Serializes appends to the security log (an arbitrary constant).
const SECLOG_LOCK: i64 = 0x636f_756e_7465_7202;

fn exec(c: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<u64, StoreError> {
    c.execute(sql, params).map_err(pg_err)
}

impl PeopleStore for PgStore {
    fn people(&self) -> Result<Vec<PersonRecord>, StoreError> {
        self.all("SELECT body FROM people ORDER BY id")
    }

    fn person(&self, id: &str) -> Result<PersonRecord, StoreError> {
        json(&self.query_body("SELECT body FROM people WHERE id = $1", &[&id])?)
    }

    fn put_person(&self, p: &PersonRecord) -> Result<(), StoreError> {
        let body = to_json(p)?;
        self.pool.with(|c| {
            exec(
                c,
                "INSERT INTO people (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&p.id, &body],
            )
            .map(|_| ())
        })
    }

    fn invite(&self, hash: &str) -> Result<InviteRecord, StoreError> {
        json(&self.query_body("SELECT body FROM invites WHERE hash = $1", &[&hash])?)
    }

    fn put_invite(&self, i: &InviteRecord) -> Result<(), StoreError> {
        let body = to_json(i)?;
        self.pool.with(|c| {
            exec(
                c,
                "INSERT INTO invites (hash, body) VALUES ($1, $2) ON CONFLICT (hash) DO UPDATE SET body = excluded.body",
                &[&i.hash, &body],
            )
            .map(|_| ())
        })
    }

    fn accept_invite(&self, i: &InviteRecord, p: &PersonRecord) -> Result<(), StoreError> {
        let (iv, pv) = (to_json(i)?, to_json(p)?);
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            // Used meanwhile by another request (on any instance): refuse, so it works once.
            if let Some(row) =
                tx.query_opt("SELECT body FROM invites WHERE hash = $1 FOR UPDATE", &[&i.hash]).map_err(pg_err)?
            {
                let cur: InviteRecord = json(&row.get::<_, Vec<u8>>(0))?;
                if cur.used_at.is_some() {
                    return Err(StoreError::Conflict);
                }
            }
            tx.execute(
                "INSERT INTO invites (hash, body) VALUES ($1, $2) ON CONFLICT (hash) DO UPDATE SET body = excluded.body",
                &[&i.hash, &iv],
            )
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO people (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&p.id, &pv],
            )
            .map_err(pg_err)?;
            commit(tx)
        })
    }

    fn session(&self, hash: &str) -> Result<SessionRecord, StoreError> {
        json(&self.query_body("SELECT body FROM sessions WHERE hash = $1", &[&hash])?)
    }

    fn put_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        let body = to_json(s)?;
        self.pool.with(|c| {
            exec(
                c,
                "INSERT INTO sessions (hash, person_id, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (hash) DO UPDATE SET person_id = excluded.person_id, body = excluded.body",
                &[&s.hash, &s.person_id, &body],
            )
            .map(|_| ())
        })
    }

    fn touch_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        // Only an existing session is touched: a touch never brings back a signed-out one.
        let body = to_json(s)?;
        self.pool.with(|c| exec(c, "UPDATE sessions SET body = $2 WHERE hash = $1", &[&s.hash, &body]).map(|_| ()))
    }

    fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.pool.with(|c| exec(c, "DELETE FROM sessions WHERE hash = $1", &[&hash]).map(|_| ()))
    }

    fn delete_sessions_of(&self, person_id: &str) -> Result<usize, StoreError> {
        self.pool.with(|c| exec(c, "DELETE FROM sessions WHERE person_id = $1", &[&person_id]).map(|n| n as usize))
    }

    fn append_security(&self, e: NewSecurityEvent) -> Result<SecurityEvent, StoreError> {
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            let ev = append_security_tx(&mut tx, e.clone())?;
            commit(tx)?;
            Ok(ev)
        })
    }

    fn security_log(&self) -> Result<Vec<SecurityEvent>, StoreError> {
        self.all("SELECT body FROM seclog ORDER BY seq")
    }
}

/// Appends to the security log inside `tx` (its advisory lock serializes appends until the
/// commit).
pub(super) fn append_security_tx(
    tx: &mut postgres::Transaction<'_>,
    e: NewSecurityEvent,
) -> Result<SecurityEvent, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SECLOG_LOCK]).map_err(pg_err)?;
    let last: Option<SecurityEvent> =
        match tx.query_opt("SELECT body FROM seclog ORDER BY seq DESC LIMIT 1", &[]).map_err(pg_err)? {
            Some(r) => Some(json(&r.get::<_, Vec<u8>>(0))?),
            None => None,
        };
    let ev = SecurityEvent::next(last.as_ref(), e);
    tx.execute("INSERT INTO seclog (seq, body) VALUES ($1, $2)", &[&(ev.seq as i64), &to_json(&ev)?])
        .map_err(pg_err)?;
    Ok(ev)
}

impl VendorStore for PgStore {
    fn vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        self.all("SELECT body FROM vendors ORDER BY id")
    }

    fn vendor(&self, id: &str) -> Result<Vendor, StoreError> {
        json(&self.query_body("SELECT body FROM vendors WHERE id = $1", &[&id])?)
    }

    fn commit_vendor(&self, c: VendorChange) -> Result<VendorEvent, StoreError> {
        let record = to_json(&c.vendor)?;
        let doc = c.document.as_ref().map(|d| (hex::encode(Sha256::digest(d)), d));
        self.pool.with(|client| {
            let mut tx = client.transaction().map_err(pg_err)?;
            let rev = c.vendor.revision as i64;
            // The revision check in SQL; the row stays locked until the commit, so the chain's
            // head read below cannot move.
            let n = if c.vendor.revision == 1 {
                tx.execute(
                    "INSERT INTO vendors (id, revision, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    &[&c.vendor.id, &rev, &record],
                )
            } else {
                tx.execute(
                    "UPDATE vendors SET revision = $2, body = $3 WHERE id = $1 AND revision = $4",
                    &[&c.vendor.id, &rev, &record, &(rev - 1)],
                )
            }
            .map_err(pg_err)?;
            if n != 1 {
                return Err(StoreError::Conflict);
            }
            let (seq, prev) = match tx
                .query_opt(
                    "SELECT body FROM vendor_events WHERE vendor_id = $1 ORDER BY seq DESC LIMIT 1",
                    &[&c.vendor.id],
                )
                .map_err(pg_err)?
            {
                Some(r) => {
                    let last: VendorEvent = json(&r.get::<_, Vec<u8>>(0))?;
                    (last.seq + 1, last.hash)
                }
                None => (1, GENESIS.to_string()),
            };
            let ev = crate::store::vendors::seal_event(&c, seq, prev);
            tx.execute(
                "INSERT INTO vendor_events (vendor_id, seq, body) VALUES ($1, $2, $3)",
                &[&c.vendor.id, &(seq as i64), &to_json(&ev)?],
            )
            .map_err(pg_err)?;
            if let Some((sha, bytes)) = &doc {
                tx.execute(
                    "INSERT INTO vendor_documents (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
                    &[sha, &bytes.as_slice()],
                )
                .map_err(pg_err)?;
            }
            for d in &c.webhooks {
                put_delivery_tx(&mut tx, d)?;
            }
            commit(tx)?;
            Ok(ev)
        })
    }

    fn vendor_document(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.query_body("SELECT bytes FROM vendor_documents WHERE sha256 = $1", &[&sha256])?;
        check_sha(sha256, &bytes)?;
        Ok(bytes)
    }

    fn vendor_events(&self, id: &str) -> Result<Vec<VendorEvent>, StoreError> {
        let rows = self.query_bodies("SELECT body FROM vendor_events WHERE vendor_id = $1 ORDER BY seq", &[&id])?;
        rows.iter().map(|b| json(b)).collect()
    }
}

impl WebhookStore for PgStore {
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.all("SELECT body FROM webhook_endpoints ORDER BY id")
    }

    fn endpoint(&self, id: &str) -> Result<Endpoint, StoreError> {
        json(&self.query_body("SELECT body FROM webhook_endpoints WHERE id = $1", &[&id])?)
    }

    fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        let body = to_json(e)?;
        self.pool.with(|c| {
            exec(
                c,
                "INSERT INTO webhook_endpoints (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&e.id, &body],
            )
            .map(|_| ())
        })
    }

    fn delete_endpoint(&self, id: &str) -> Result<(), StoreError> {
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            // One transaction: the endpoint never outlives its log, nor a queued delivery it.
            if tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id]).map_err(pg_err)? == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = $1", &[&id]).map_err(pg_err)?;
            commit(tx)
        })
    }

    fn delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        json(&self.query_body("SELECT body FROM webhook_deliveries WHERE id = $1", &[&id])?)
    }

    fn put_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            put_delivery_tx(&mut tx, d)?;
            commit(tx)
        })
    }

    fn lease_delivery(
        &self,
        id: &str,
        lease: &mut (dyn FnMut(Delivery) -> Result<Option<Delivery>, StoreError> + Send),
    ) -> Result<Option<Delivery>, StoreError> {
        self.pool.with(|c| {
            lease_row(
                c,
                "SELECT body FROM webhook_deliveries WHERE id = $1 FOR UPDATE SKIP LOCKED",
                id,
                lease,
                put_delivery_tx,
            )
        })
    }

    fn queued_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        self.all("SELECT body FROM webhook_deliveries WHERE queued ORDER BY id")
    }

    fn endpoint_deliveries(&self, endpoint: &str) -> Result<Vec<Delivery>, StoreError> {
        let rows =
            self.query_bodies("SELECT body FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", &[&endpoint])?;
        rows.iter().map(|b| json(b)).collect()
    }
}

fn slash_key(id: &str, n: &[u8]) -> Vec<u8> {
    [id.as_bytes(), b"/", n].concat()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    #[serde(default)]
    mac: String,
}

/// Rows fetched per round trip by [`dump`] (a document row is ~40 KB: a few MB at most in flight).
const FETCH_ROWS: i32 = 64;

/// Runs `sql` through a portal, [`FETCH_ROWS`] rows at a time, calling `f` on each row: the
/// result is never held whole.
fn each_row(
    tx: &mut postgres::Transaction<'_>,
    sql: &str,
    mut f: impl FnMut(&postgres::Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let portal = tx.bind(sql, &[]).map_err(pg_err)?;
    loop {
        let rows = tx.query_portal(&portal, FETCH_ROWS).map_err(pg_err)?;
        for r in &rows {
            f(r)?;
        }
        if rows.len() < FETCH_ROWS as usize {
            return Ok(());
        }
    }
}

/// Every row as the sled store's backup lines, from one snapshot (REPEATABLE READ, read only),
/// each line written to `out` as its row is read: memory stays bounded whatever the size.
pub(super) fn dump(c: &mut Client, out: &mut (dyn std::io::Write + Send)) -> Result<usize, StoreError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut tx = snapshot(c)?;
    let mut n = 0usize;
    let mut line = |tree: &str, k: &[u8], v: &[u8]| -> Result<(), StoreError> {
        let l = serde_json::json!({"tree": tree, "key": b64.encode(k), "value": b64.encode(v)});
        writeln!(out, "{l}").map_err(|e| StoreError::Io(format!("writing the dump: {e}")))?;
        n += 1;
        Ok(())
    };
    let text = |r: &postgres::Row, i: usize| -> Vec<u8> { r.get::<_, &str>(i).as_bytes().to_vec() };
    let t = &mut tx;
    each_row(t, "SELECT id, body FROM agreements ORDER BY id", |r| line("agreements", &text(r, 0), r.get(1)))?;
    each_row(t, "SELECT agreement_id, version, body FROM versions ORDER BY agreement_id, version", |r| {
        line("versions", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u32).to_be_bytes()), r.get(2))
    })?;
    each_row(t, "SELECT sha256, bytes FROM documents ORDER BY sha256", |r| line("documents", &text(r, 0), r.get(1)))?;
    each_row(t, "SELECT agreement_id, seq, body FROM events ORDER BY agreement_id, seq", |r| {
        line("events", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u64).to_be_bytes()), r.get(2))
    })?;
    each_row(t, "SELECT agreement_id, seq, hash, mac FROM heads ORDER BY agreement_id", |r| {
        let h = Head { seq: r.get::<_, i64>(1) as u64, hash: r.get(2), mac: r.get(3) };
        line("heads", &text(r, 0), &to_json(&h)?)
    })?;
    each_row(t, "SELECT id, body FROM outbox ORDER BY id", |r| line("outbox", &text(r, 0), r.get(1)))?;
    each_row(t, "SELECT id, body FROM apikeys ORDER BY id", |r| line("apikeys", &text(r, 0), r.get(1)))?;
    each_row(t, "SELECT id, at FROM apikey_last_used ORDER BY id", |r| {
        line("apikey_last_used", &text(r, 0), &(r.get::<_, i64>(1) as u64).to_be_bytes())
    })?;
    // The format the rows are in (a restore into sled then runs no migration).
    line("meta", crate::store::format::VERSION_KEY, &crate::store::format::FORMAT_VERSION.to_be_bytes())?;
    for (tree, sql) in [
        ("people", "SELECT id, body FROM people ORDER BY id"),
        ("invites", "SELECT hash, body FROM invites ORDER BY hash"),
        ("sessions", "SELECT hash, body FROM sessions ORDER BY hash"),
    ] {
        each_row(t, sql, |r| line(tree, &text(r, 0), r.get(1)))?;
    }
    each_row(t, "SELECT seq, body FROM seclog ORDER BY seq", |r| {
        line("seclog", &(r.get::<_, i64>(0) as u64).to_be_bytes(), r.get(1))
    })?;
    each_row(t, "SELECT id, body FROM vendors ORDER BY id", |r| line("vendors", &text(r, 0), r.get(1)))?;
    each_row(t, "SELECT vendor_id, seq, body FROM vendor_events ORDER BY vendor_id, seq", |r| {
        line("vendor_events", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u64).to_be_bytes()), r.get(2))
    })?;
    each_row(t, "SELECT sha256, bytes FROM vendor_documents ORDER BY sha256", |r| {
        line("vendor_documents", &text(r, 0), r.get(1))
    })?;
    // The sled `webhooks` tree: its d/, e/, p/ and q/ keys in byte order (the id columns are
    // COLLATE "C", which is byte order), one pass each.
    let hook = |prefix: &[u8], r: &postgres::Row| [prefix, r.get::<_, &str>(0).as_bytes()].concat();
    each_row(t, "SELECT id, body FROM webhook_deliveries ORDER BY id", |r| {
        line("webhooks", &hook(b"d/", r), r.get(1))
    })?;
    each_row(t, "SELECT id, body FROM webhook_endpoints ORDER BY id", |r| line("webhooks", &hook(b"e/", r), r.get(1)))?;
    each_row(
        t,
        "SELECT endpoint_id || '/' || id FROM webhook_deliveries ORDER BY (endpoint_id || '/' || id) COLLATE \"C\"",
        |r| line("webhooks", &hook(b"p/", r), &[]),
    )?;
    each_row(t, "SELECT id FROM webhook_deliveries WHERE queued ORDER BY id", |r| {
        line("webhooks", &hook(b"q/", r), &[])
    })?;
    tx.commit().map_err(pg_err)?;
    Ok(n)
}

/// Splits `id/<n big-endian bytes>`.
fn split_key(k: &[u8], n: usize) -> Option<(String, u64)> {
    if k.len() < n + 1 || k[k.len() - n - 1] != b'/' {
        return None;
    }
    let id = String::from_utf8(k[..k.len() - n - 1].to_vec()).ok()?;
    let mut buf = [0u8; 8];
    buf[8 - n..].copy_from_slice(&k[k.len() - n..]);
    Some((id, u64::from_be_bytes(buf)))
}

/// Where one backup line goes: a binary `COPY … FROM STDIN` and its column types.
struct CopyInto {
    sql: &'static str,
    types: &'static [Type],
}

/// `copy!("table (columns)" TYPE, …)`.
macro_rules! copy {
    ($spec:literal $($ty:ident),+) => {
        &CopyInto { sql: concat!("COPY ", $spec, " FROM STDIN BINARY"), types: &[$(Type::$ty),+] }
    };
}

/// One decoded backup line: its table and the row's values.
type CopyRow = (&'static CopyInto, Vec<Box<dyn ToSql + Sync>>);

/// Decodes one backup line into its row (None: nothing to load, like the `meta` version or the
/// webhook queue and log keys, which are derived from the delivery itself).
fn decode(line: &str, number: usize) -> Result<Option<CopyRow>, StoreError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |what: &str| StoreError::Io(format!("backup line {number}: {what}"));
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        tree: Option<&'a str>,
        key: Option<&'a str>,
        value: Option<&'a str>,
    }
    let v: Line<'_> = serde_json::from_str(line).map_err(|_| bad("not JSON"))?;
    let tree = v.tree.ok_or_else(|| bad("no tree"))?;
    let key = b64.decode(v.key.ok_or_else(|| bad("no key"))?).map_err(|_| bad("bad key"))?;
    let value = b64.decode(v.value.ok_or_else(|| bad("no value"))?).map_err(|_| bad("bad value"))?;
    let text = |k: &[u8]| String::from_utf8(k.to_vec()).map_err(|_| bad("key is not text"));
    let b = |v: Box<dyn ToSql + Sync>| v;
    let row: CopyRow = match tree {
        "agreements" => {
            let a: crate::domain::agreement::Agreement = json(&value)?;
            (
                copy!("agreements (id, revision, body)" TEXT, INT8, BYTEA),
                vec![b(Box::new(text(&key)?)), b(Box::new(a.revision as i64)), b(Box::new(value))],
            )
        }
        "versions" => {
            let (id, ver) = split_key(&key, 4).ok_or_else(|| bad("bad version key"))?;
            (
                copy!("versions (agreement_id, version, body)" TEXT, INT8, BYTEA),
                vec![b(Box::new(id)), b(Box::new(ver as i64)), b(Box::new(value))],
            )
        }
        "documents" => {
            (copy!("documents (sha256, bytes)" TEXT, BYTEA), vec![b(Box::new(text(&key)?)), b(Box::new(value))])
        }
        "events" => {
            let (id, seq) = split_key(&key, 8).ok_or_else(|| bad("bad event key"))?;
            (
                copy!("events (agreement_id, seq, body)" TEXT, INT8, BYTEA),
                vec![b(Box::new(id)), b(Box::new(seq as i64)), b(Box::new(value))],
            )
        }
        "heads" => {
            let h: Head = json(&value)?;
            (
                copy!("heads (agreement_id, seq, hash, mac)" TEXT, INT8, TEXT, TEXT),
                vec![b(Box::new(text(&key)?)), b(Box::new(h.seq as i64)), b(Box::new(h.hash)), b(Box::new(h.mac))],
            )
        }
        "outbox" => {
            let m: crate::store::Message = json(&value)?;
            let queued = m.status == crate::store::MessageStatus::Queued;
            (
                copy!("outbox (id, agreement_id, queued, body)" TEXT, TEXT, BOOL, BYTEA),
                vec![b(Box::new(text(&key)?)), b(Box::new(m.agreement_id)), b(Box::new(queued)), b(Box::new(value))],
            )
        }
        "apikeys" => (copy!("apikeys (id, body)" TEXT, BYTEA), vec![b(Box::new(text(&key)?)), b(Box::new(value))]),
        "apikey_last_used" => {
            let at = u64::from_be_bytes(value.as_slice().try_into().map_err(|_| bad("bad time"))?);
            (copy!("apikey_last_used (id, at)" TEXT, INT8), vec![b(Box::new(text(&key)?)), b(Box::new(at as i64))])
        }
        "meta" => {
            // Only the current format is loaded (an older backup: restore it into sled first,
            // which upgrades it, then migrate).
            if key == crate::store::format::VERSION_KEY {
                let ver = u64::from_be_bytes(value.as_slice().try_into().map_err(|_| bad("bad version"))?);
                if ver != crate::store::format::FORMAT_VERSION {
                    return Err(bad("the backup is in an older format: restore it into a data directory first"));
                }
            }
            return Ok(None);
        }
        "people" => (copy!("people (id, body)" TEXT, BYTEA), vec![b(Box::new(text(&key)?)), b(Box::new(value))]),
        "invites" => (copy!("invites (hash, body)" TEXT, BYTEA), vec![b(Box::new(text(&key)?)), b(Box::new(value))]),
        "sessions" => {
            let s: SessionRecord = json(&value)?;
            (
                copy!("sessions (hash, person_id, body)" TEXT, TEXT, BYTEA),
                vec![b(Box::new(text(&key)?)), b(Box::new(s.person_id)), b(Box::new(value))],
            )
        }
        "seclog" => {
            let seq = u64::from_be_bytes(key.as_slice().try_into().map_err(|_| bad("bad seq"))?);
            (copy!("seclog (seq, body)" INT8, BYTEA), vec![b(Box::new(seq as i64)), b(Box::new(value))])
        }
        "vendors" => {
            let v: Vendor = json(&value)?;
            (
                copy!("vendors (id, revision, body)" TEXT, INT8, BYTEA),
                vec![b(Box::new(text(&key)?)), b(Box::new(v.revision as i64)), b(Box::new(value))],
            )
        }
        "vendor_events" => {
            let (id, seq) = split_key(&key, 8).ok_or_else(|| bad("bad vendor event key"))?;
            (
                copy!("vendor_events (vendor_id, seq, body)" TEXT, INT8, BYTEA),
                vec![b(Box::new(id)), b(Box::new(seq as i64)), b(Box::new(value))],
            )
        }
        "vendor_documents" => {
            (copy!("vendor_documents (sha256, bytes)" TEXT, BYTEA), vec![b(Box::new(text(&key)?)), b(Box::new(value))])
        }
        "webhooks" => match key.get(..2) {
            Some(b"e/") => (
                copy!("webhook_endpoints (id, body)" TEXT, BYTEA),
                vec![b(Box::new(text(&key[2..])?)), b(Box::new(value))],
            ),
            Some(b"d/") => {
                let d: Delivery = json(&value)?;
                let queued = d.status == crate::store::webhooks::DeliveryStatus::Queued;
                (
                    copy!("webhook_deliveries (id, endpoint_id, queued, body)" TEXT, TEXT, BOOL, BYTEA),
                    vec![b(Box::new(d.id)), b(Box::new(d.endpoint_id)), b(Box::new(queued)), b(Box::new(value))],
                )
            }
            _ => return Ok(None),
        },
        _ => return Err(bad("unknown tree")),
    };
    Ok(Some(row))
}

/// Loads backup lines (either store's) in one transaction, reading them one at a time: each
/// run of lines for one table is one binary `COPY` (a dump writes table by table, so a restore
/// is one `COPY` per table). Any error leaves nothing: the transaction rolls back.
pub(super) fn restore(c: &mut Client, input: &mut dyn std::io::BufRead) -> Result<usize, StoreError> {
    let mut number = 0usize;
    let mut buf = String::new();
    let mut next = || -> Result<Option<CopyRow>, StoreError> {
        loop {
            buf.clear();
            if input.read_line(&mut buf).map_err(|e| StoreError::Io(format!("reading the backup: {e}")))? == 0 {
                return Ok(None);
            }
            number += 1;
            let line = buf.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(row) = decode(line, number)? {
                return Ok(Some(row));
            }
        }
    };
    let write = |w: &mut BinaryCopyInWriter<'_>, vals: &[Box<dyn ToSql + Sync>]| {
        let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v.as_ref()).collect();
        w.write(&refs).map_err(pg_err)
    };
    let mut tx = c.transaction().map_err(pg_err)?;
    let mut n = 0;
    let mut pending = next()?;
    while let Some((copy, vals)) = pending.take() {
        let mut w = BinaryCopyInWriter::new(tx.copy_in(copy.sql).map_err(pg_err)?, copy.types);
        write(&mut w, &vals)?;
        n += 1;
        loop {
            match next()? {
                Some((c2, v2)) if c2.sql == copy.sql => {
                    write(&mut w, &v2)?;
                    n += 1;
                }
                other => {
                    pending = other;
                    break;
                }
            }
        }
        w.finish().map_err(pg_err)?;
    }
    commit(tx)?;
    Ok(n)
}
