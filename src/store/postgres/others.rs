//! The PostgreSQL store's people, vendor and webhook tables, and its backup format: [`dump`]
//! writes the sled store's JSON lines (tree, base64 key, base64 value) so that a backup of
//! either store restores into the other, and [`restore`] reads them.

use base64::Engine;
use postgres::Client;
use sha2::{Digest, Sha256};

use super::pool::pg_err;
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
            tx.commit().map_err(pg_err)
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
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SECLOG_LOCK]).map_err(pg_err)?;
            let last: Option<SecurityEvent> =
                match tx.query_opt("SELECT body FROM seclog ORDER BY seq DESC LIMIT 1", &[]).map_err(pg_err)? {
                    Some(r) => Some(json(&r.get::<_, Vec<u8>>(0))?),
                    None => None,
                };
            let ev = SecurityEvent::next(last.as_ref(), e);
            tx.execute("INSERT INTO seclog (seq, body) VALUES ($1, $2)", &[&(ev.seq as i64), &to_json(&ev)?])
                .map_err(pg_err)?;
            tx.commit().map_err(pg_err)?;
            Ok(ev)
        })
    }

    fn security_log(&self) -> Result<Vec<SecurityEvent>, StoreError> {
        self.all("SELECT body FROM seclog ORDER BY seq")
    }
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
            tx.commit().map_err(pg_err)?;
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
            tx.commit().map_err(pg_err)
        })
    }

    fn delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        json(&self.query_body("SELECT body FROM webhook_deliveries WHERE id = $1", &[&id])?)
    }

    fn put_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.pool.with(|c| {
            let mut tx = c.transaction().map_err(pg_err)?;
            put_delivery_tx(&mut tx, d)?;
            tx.commit().map_err(pg_err)
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

/// Every row as the sled store's backup lines, from one snapshot.
pub(super) fn dump(c: &mut Client) -> Result<Vec<String>, StoreError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut tx = snapshot(c)?;
    let mut lines = Vec::new();
    let mut line = |tree: &str, k: &[u8], v: &[u8]| {
        lines.push(serde_json::json!({"tree": tree, "key": b64.encode(k), "value": b64.encode(v)}).to_string());
    };
    let mut q = |sql: &str| tx.query(sql, &[]).map_err(pg_err);
    for r in q("SELECT id, body FROM agreements ORDER BY id")? {
        line("agreements", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    for r in q("SELECT agreement_id, version, body FROM versions ORDER BY agreement_id, version")? {
        line("versions", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u32).to_be_bytes()), r.get(2));
    }
    for r in q("SELECT sha256, bytes FROM documents ORDER BY sha256")? {
        line("documents", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    for r in q("SELECT agreement_id, seq, body FROM events ORDER BY agreement_id, seq")? {
        line("events", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u64).to_be_bytes()), r.get(2));
    }
    for r in q("SELECT agreement_id, seq, hash, mac FROM heads ORDER BY agreement_id")? {
        let h = Head { seq: r.get::<_, i64>(1) as u64, hash: r.get(2), mac: r.get(3) };
        line("heads", r.get::<_, &str>(0).as_bytes(), &to_json(&h)?);
    }
    for r in q("SELECT id, body FROM outbox ORDER BY id")? {
        line("outbox", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    for r in q("SELECT id, body FROM apikeys ORDER BY id")? {
        line("apikeys", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    for r in q("SELECT id, at FROM apikey_last_used ORDER BY id")? {
        line("apikey_last_used", r.get::<_, &str>(0).as_bytes(), &(r.get::<_, i64>(1) as u64).to_be_bytes());
    }
    // The format the rows are in (a restore into sled then runs no migration).
    line("meta", crate::store::format::VERSION_KEY, &crate::store::format::FORMAT_VERSION.to_be_bytes());
    for (tree, sql) in [
        ("people", "SELECT id, body FROM people ORDER BY id"),
        ("invites", "SELECT hash, body FROM invites ORDER BY hash"),
        ("sessions", "SELECT hash, body FROM sessions ORDER BY hash"),
    ] {
        for r in q(sql)? {
            line(tree, r.get::<_, &str>(0).as_bytes(), r.get(1));
        }
    }
    for r in q("SELECT seq, body FROM seclog ORDER BY seq")? {
        line("seclog", &(r.get::<_, i64>(0) as u64).to_be_bytes(), r.get(1));
    }
    for r in q("SELECT id, body FROM vendors ORDER BY id")? {
        line("vendors", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    for r in q("SELECT vendor_id, seq, body FROM vendor_events ORDER BY vendor_id, seq")? {
        line("vendor_events", &slash_key(r.get(0), &(r.get::<_, i64>(1) as u64).to_be_bytes()), r.get(2));
    }
    for r in q("SELECT sha256, bytes FROM vendor_documents ORDER BY sha256")? {
        line("vendor_documents", r.get::<_, &str>(0).as_bytes(), r.get(1));
    }
    // The sled `webhooks` tree: d/, e/, p/, q/ keys in byte order.
    let deliveries = q("SELECT id, endpoint_id, queued, body FROM webhook_deliveries ORDER BY id")?;
    let endpoints = q("SELECT id, body FROM webhook_endpoints ORDER BY id")?;
    let mut hooks: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for r in &deliveries {
        let (id, ep, queued, body): (&str, &str, bool, Vec<u8>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        hooks.push(([b"d/", id.as_bytes()].concat(), body));
        hooks.push(([b"p/", ep.as_bytes(), b"/", id.as_bytes()].concat(), Vec::new()));
        if queued {
            hooks.push(([b"q/", id.as_bytes()].concat(), Vec::new()));
        }
    }
    for r in &endpoints {
        hooks.push(([b"e/", r.get::<_, &str>(0).as_bytes()].concat(), r.get(1)));
    }
    hooks.sort();
    for (k, v) in hooks {
        line("webhooks", &k, &v);
    }
    tx.commit().map_err(pg_err)?;
    Ok(lines)
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

/// Loads backup lines (either store's) in one transaction.
pub(super) fn restore(c: &mut Client, lines: &[String]) -> Result<usize, StoreError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut tx = c.transaction().map_err(pg_err)?;
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| StoreError::Io(format!("backup line {}: {what}", i + 1));
        let v: serde_json::Value = serde_json::from_str(line).map_err(|_| bad("not JSON"))?;
        let tree = v["tree"].as_str().ok_or_else(|| bad("no tree"))?;
        let key = b64.decode(v["key"].as_str().ok_or_else(|| bad("no key"))?).map_err(|_| bad("bad key"))?;
        let value = b64.decode(v["value"].as_str().ok_or_else(|| bad("no value"))?).map_err(|_| bad("bad value"))?;
        let text = || String::from_utf8(key.clone()).map_err(|_| bad("key is not text"));
        let mut x = |sql: &str, p: &[&(dyn postgres::types::ToSql + Sync)]| tx.execute(sql, p).map_err(pg_err);
        match tree {
            "agreements" => {
                let a: crate::domain::agreement::Agreement = json(&value)?;
                x(
                    "INSERT INTO agreements (id, revision, body) VALUES ($1, $2, $3)",
                    &[&text()?, &(a.revision as i64), &value],
                )?
            }
            "versions" => {
                let (id, ver) = split_key(&key, 4).ok_or_else(|| bad("bad version key"))?;
                x(
                    "INSERT INTO versions (agreement_id, version, body) VALUES ($1, $2, $3)",
                    &[&id, &(ver as i64), &value],
                )?
            }
            "documents" => x("INSERT INTO documents (sha256, bytes) VALUES ($1, $2)", &[&text()?, &value])?,
            "events" => {
                let (id, seq) = split_key(&key, 8).ok_or_else(|| bad("bad event key"))?;
                x("INSERT INTO events (agreement_id, seq, body) VALUES ($1, $2, $3)", &[&id, &(seq as i64), &value])?
            }
            "heads" => {
                let h: Head = json(&value)?;
                x(
                    "INSERT INTO heads (agreement_id, seq, hash, mac) VALUES ($1, $2, $3, $4)",
                    &[&text()?, &(h.seq as i64), &h.hash, &h.mac],
                )?
            }
            "outbox" => {
                let m: crate::store::Message = json(&value)?;
                let queued = m.status == crate::store::MessageStatus::Queued;
                x(
                    "INSERT INTO outbox (id, agreement_id, queued, body) VALUES ($1, $2, $3, $4)",
                    &[&text()?, &m.agreement_id, &queued, &value],
                )?
            }
            "apikeys" => x("INSERT INTO apikeys (id, body) VALUES ($1, $2)", &[&text()?, &value])?,
            "apikey_last_used" => {
                let at = u64::from_be_bytes(value.as_slice().try_into().map_err(|_| bad("bad time"))?);
                x("INSERT INTO apikey_last_used (id, at) VALUES ($1, $2)", &[&text()?, &(at as i64)])?
            }
            "meta" => {
                // Only the current format is loaded (an older backup: restore it into sled
                // first, which upgrades it, then migrate).
                if key == crate::store::format::VERSION_KEY {
                    let ver = u64::from_be_bytes(value.as_slice().try_into().map_err(|_| bad("bad version"))?);
                    if ver != crate::store::format::FORMAT_VERSION {
                        return Err(bad("the backup is in an older format: restore it into a data directory first"));
                    }
                }
                continue;
            }
            "people" => x("INSERT INTO people (id, body) VALUES ($1, $2)", &[&text()?, &value])?,
            "invites" => x("INSERT INTO invites (hash, body) VALUES ($1, $2)", &[&text()?, &value])?,
            "sessions" => {
                let s: SessionRecord = json(&value)?;
                x(
                    "INSERT INTO sessions (hash, person_id, body) VALUES ($1, $2, $3)",
                    &[&text()?, &s.person_id, &value],
                )?
            }
            "seclog" => {
                let seq = u64::from_be_bytes(key.as_slice().try_into().map_err(|_| bad("bad seq"))?);
                x("INSERT INTO seclog (seq, body) VALUES ($1, $2)", &[&(seq as i64), &value])?
            }
            "vendors" => {
                let v: Vendor = json(&value)?;
                x(
                    "INSERT INTO vendors (id, revision, body) VALUES ($1, $2, $3)",
                    &[&text()?, &(v.revision as i64), &value],
                )?
            }
            "vendor_events" => {
                let (id, seq) = split_key(&key, 8).ok_or_else(|| bad("bad vendor event key"))?;
                x(
                    "INSERT INTO vendor_events (vendor_id, seq, body) VALUES ($1, $2, $3)",
                    &[&id, &(seq as i64), &value],
                )?
            }
            "vendor_documents" => {
                x("INSERT INTO vendor_documents (sha256, bytes) VALUES ($1, $2)", &[&text()?, &value])?
            }
            "webhooks" => match key.get(..2) {
                Some(b"e/") => {
                    let id = String::from_utf8(key[2..].to_vec()).map_err(|_| bad("key is not text"))?;
                    x("INSERT INTO webhook_endpoints (id, body) VALUES ($1, $2)", &[&id, &value])?
                }
                Some(b"d/") => {
                    let d: Delivery = json(&value)?;
                    let queued = d.status == crate::store::webhooks::DeliveryStatus::Queued;
                    x(
                        "INSERT INTO webhook_deliveries (id, endpoint_id, queued, body) VALUES ($1, $2, $3, $4)",
                        &[&d.id, &d.endpoint_id, &queued, &value],
                    )?
                }
                // The queue and log keys are derived from the delivery itself.
                _ => continue,
            },
            _ => return Err(bad("unknown tree")),
        };
        n += 1;
    }
    tx.commit().map_err(pg_err)?;
    Ok(n)
}
