//! Webhook endpoints and their deliveries (issue 15): the narrow [`WebhookStore`] trait, its sled
//! implementation on [`SledStore`] and an in-memory one for [`super::memory::MemoryStore`].
//!
//! One sled tree, `webhooks` (created on first open: a data directory written before it existed
//! opens unchanged and simply has no endpoints), with four kinds of key:
//!
//! * `e/<endpoint id>` → the [`Endpoint`] (its secret sealed by the vault, never in clear);
//! * `d/<delivery id>` → the [`Delivery`] (the exact body sent, status, attempts);
//! * `q/<delivery id>` → empty: present exactly while the delivery is queued (the sender's work);
//! * `p/<endpoint id>/<delivery id>` → empty: the endpoint's delivery log.
//!
//! Deliveries caused by a change are written in the same transaction as the change
//! ([`super::Change::webhooks`], see `SledStore::commit_nowait`), so an event is never lost
//! between the commit and the queue, and never queued for a change that did not happen. The
//! index keys live in the same tree and are written in the same transaction as the delivery, so
//! they never disagree with it; `backup` copies the tree whole.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::StoreError;
use super::sled_store::SledStore;

/// An admin-managed receiver of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `wh_` + 16 hex digits.
    pub id: String,
    pub url: String,
    /// Event types (`agreement.signed`, …) or `*` for all.
    pub events: Vec<String>,
    /// Created with `"local": true`: `http://` and loopback/private addresses allowed.
    #[serde(default)]
    pub local: bool,
    /// The signing key sealed by the vault (context `webhook:<id>`), base64. Never returned.
    pub secret_sealed: String,
    #[serde(default)]
    pub description: String,
    pub created_at: u64,
    pub created_by: String,
}

impl Endpoint {
    /// True when the endpoint wants events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| {
            e == "*"
                || e == event_type
                || e.strip_suffix(".*").is_some_and(|p| event_type.strip_prefix(p).is_some_and(|r| r.starts_with('.')))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Delivered,
    /// Gave up (attempts exhausted, or refused: an address that is not public).
    Failed,
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Time-ordered: `wd_<unix secs hex><seq><random>`; the `webhook-id` header (the same on
    /// every attempt and on redelivery, so receivers can deduplicate).
    pub id: String,
    pub endpoint_id: String,
    /// The event's id (`evt_…`), the same for every endpoint that receives it.
    pub event_id: String,
    pub event_type: String,
    #[serde(default)]
    pub agreement_id: Option<String>,
    /// The exact JSON body, fixed when queued: every attempt sends the same bytes.
    pub body: String,
    pub created_at: u64,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub attempts: u32,
    /// The receiver's HTTP status on the last attempt that got an answer.
    #[serde(default)]
    pub response_code: Option<u16>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub next_attempt_at: Option<u64>,
    #[serde(default)]
    pub last_attempt_at: Option<u64>,
    #[serde(default)]
    pub delivered_at: Option<u64>,
}

/// Storage for webhook endpoints and deliveries.
pub trait WebhookStore: Send + Sync {
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    fn endpoint(&self, id: &str) -> Result<Endpoint, StoreError>;
    /// Creates or replaces an endpoint, durably.
    fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError>;
    /// Removes an endpoint with its delivery log (queued deliveries included), durably.
    fn delete_endpoint(&self, id: &str) -> Result<(), StoreError>;
    fn delivery(&self, id: &str) -> Result<Delivery, StoreError>;
    /// Writes a delivery with its index entries, durably (lease, outcome, redeliver).
    fn put_delivery(&self, d: &Delivery) -> Result<(), StoreError>;
    /// Leases a delivery for one attempt: `lease` sees the stored delivery and returns the copy
    /// to store (or None: nothing to do), and reading and writing are one step against every
    /// other sender. PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` in one transaction (several
    /// instances). Default (one process, the caller holds the service's webhook lock): read,
    /// then [`WebhookStore::put_delivery`].
    fn lease_delivery(
        &self,
        id: &str,
        lease: &mut (dyn FnMut(Delivery) -> Result<Option<Delivery>, StoreError> + Send),
    ) -> Result<Option<Delivery>, StoreError> {
        match lease(self.delivery(id)?)? {
            Some(d) => {
                self.put_delivery(&d)?;
                Ok(Some(d))
            }
            None => Ok(None),
        }
    }
    /// The queued deliveries, oldest first, without reading the log.
    fn queued_deliveries(&self) -> Result<Vec<Delivery>, StoreError>;
    /// One endpoint's deliveries, oldest first.
    fn endpoint_deliveries(&self, endpoint: &str) -> Result<Vec<Delivery>, StoreError>;
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn endpoint_key(id: &str) -> Vec<u8> {
    [b"e/", id.as_bytes()].concat()
}

fn delivery_key(id: &str) -> Vec<u8> {
    [b"d/", id.as_bytes()].concat()
}

fn queued_key(id: &str) -> Vec<u8> {
    [b"q/", id.as_bytes()].concat()
}

fn log_prefix(endpoint: &str) -> Vec<u8> {
    [b"p/", endpoint.as_bytes(), b"/"].concat()
}

/// The `webhooks` tree of a [`SledStore`].
pub struct WebhookTree {
    pub(super) tree: Tree,
}

impl WebhookTree {
    pub(super) fn open(db: &sled::Db) -> Result<WebhookTree, StoreError> {
        Ok(WebhookTree { tree: db.open_tree("webhooks").map_err(io)? })
    }

    /// The tree with its backup name.
    pub(super) fn named(&self) -> (&'static str, &Tree) {
        ("webhooks", &self.tree)
    }
}

/// Writes a delivery and its index entries inside a transaction (the change's, or its own).
pub(super) fn put_delivery_tx<E>(t: &TransactionalTree, d: &Delivery) -> Result<(), ConflictableTransactionError<E>>
where
    E: From<StoreError>,
{
    let bytes = serde_json::to_vec(d).map_err(|e| ConflictableTransactionError::Abort(E::from(io(e))))?;
    t.insert(delivery_key(&d.id), bytes)?;
    t.insert([log_prefix(&d.endpoint_id), d.id.as_bytes().to_vec()].concat(), &[] as &[u8])?;
    if d.status == DeliveryStatus::Queued {
        t.insert(queued_key(&d.id), &[] as &[u8])?;
    } else {
        t.remove(queued_key(&d.id))?;
    }
    Ok(())
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    }
}

fn load_deliveries(tree: &Tree, prefix: &[u8]) -> Result<Vec<Delivery>, StoreError> {
    let n = prefix.len();
    let mut out = Vec::new();
    for k in tree.scan_prefix(prefix).keys() {
        let k = k.map_err(io)?;
        let id = String::from_utf8_lossy(&k[n..]).into_owned();
        if let Some(v) = tree.get(delivery_key(&id)).map_err(io)? {
            out.push(serde_json::from_slice(&v).map_err(io)?);
        }
    }
    Ok(out)
}

impl WebhookStore for SledStore {
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let t = &self.webhook_tree().tree;
        t.scan_prefix(b"e/").values().map(|v| serde_json::from_slice(&v.map_err(io)?).map_err(io)).collect()
    }

    fn endpoint(&self, id: &str) -> Result<Endpoint, StoreError> {
        let v = self.webhook_tree().tree.get(endpoint_key(id)).map_err(io)?.ok_or(StoreError::NotFound)?;
        serde_json::from_slice(&v).map_err(io)
    }

    fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        self.webhook_tree().tree.insert(endpoint_key(&e.id), serde_json::to_vec(e).map_err(io)?).map_err(io)?;
        self.make_durable()
    }

    fn delete_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let t = &self.webhook_tree().tree;
        let ids: Vec<Vec<u8>> = t
            .scan_prefix(log_prefix(id))
            .keys()
            .map(|k| k.map(|k| k[log_prefix(id).len()..].to_vec()).map_err(io))
            .collect::<Result<_, _>>()?;
        // One transaction: the endpoint never outlives its log, nor a queued delivery its endpoint.
        t.transaction(|tx| {
            if tx.remove(endpoint_key(id))?.is_none() {
                return Err(ConflictableTransactionError::Abort(StoreError::NotFound));
            }
            for d in &ids {
                let d = String::from_utf8_lossy(d);
                tx.remove(delivery_key(&d))?;
                tx.remove(queued_key(&d))?;
                tx.remove([log_prefix(id), d.as_bytes().to_vec()].concat())?;
            }
            Ok(())
        })
        .map_err(tx_err)?;
        self.make_durable()
    }

    fn delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        let v = self.webhook_tree().tree.get(delivery_key(id)).map_err(io)?.ok_or(StoreError::NotFound)?;
        serde_json::from_slice(&v).map_err(io)
    }

    fn put_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.webhook_tree().tree.transaction(|t| put_delivery_tx::<StoreError>(t, d)).map_err(tx_err)?;
        self.make_durable()
    }

    fn queued_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        load_deliveries(&self.webhook_tree().tree, b"q/")
    }

    fn endpoint_deliveries(&self, endpoint: &str) -> Result<Vec<Delivery>, StoreError> {
        load_deliveries(&self.webhook_tree().tree, &log_prefix(endpoint))
    }
}

#[derive(Default)]
struct Maps {
    endpoints: BTreeMap<String, Endpoint>,
    deliveries: BTreeMap<String, Delivery>,
}

/// Endpoints and deliveries in memory (unit tests of the application layer). One mutex: every
/// operation is atomic.
#[derive(Default)]
pub struct MemoryWebhooks {
    maps: Mutex<Maps>,
}

impl MemoryWebhooks {
    fn maps(&self) -> MutexGuard<'_, Maps> {
        // Every operation is a single map update: a panic leaves no half change.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues deliveries as part of a [`super::memory::MemoryStore`] commit.
    pub(super) fn queue(&self, ds: Vec<Delivery>) {
        let mut m = self.maps();
        for d in ds {
            m.deliveries.insert(d.id.clone(), d);
        }
    }
}

impl WebhookStore for MemoryWebhooks {
    fn endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        Ok(self.maps().endpoints.values().cloned().collect())
    }

    fn endpoint(&self, id: &str) -> Result<Endpoint, StoreError> {
        self.maps().endpoints.get(id).cloned().ok_or(StoreError::NotFound)
    }

    fn put_endpoint(&self, e: &Endpoint) -> Result<(), StoreError> {
        self.maps().endpoints.insert(e.id.clone(), e.clone());
        Ok(())
    }

    fn delete_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let mut m = self.maps();
        m.endpoints.remove(id).ok_or(StoreError::NotFound)?;
        m.deliveries.retain(|_, d| d.endpoint_id != id);
        Ok(())
    }

    fn delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        self.maps().deliveries.get(id).cloned().ok_or(StoreError::NotFound)
    }

    fn put_delivery(&self, d: &Delivery) -> Result<(), StoreError> {
        self.maps().deliveries.insert(d.id.clone(), d.clone());
        Ok(())
    }

    fn queued_deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.maps().deliveries.values().filter(|d| d.status == DeliveryStatus::Queued).cloned().collect())
    }

    fn endpoint_deliveries(&self, endpoint: &str) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.maps().deliveries.values().filter(|d| d.endpoint_id == endpoint).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(events: &[&str]) -> Endpoint {
        Endpoint {
            id: "wh_1".into(),
            url: "https://example.com/hook".into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            local: false,
            secret_sealed: String::new(),
            description: String::new(),
            created_at: 0,
            created_by: "t".into(),
        }
    }

    #[test]
    fn an_endpoint_wants_its_types_their_family_or_everything() {
        assert!(endpoint(&["agreement.signed"]).wants("agreement.signed"));
        assert!(!endpoint(&["agreement.signed"]).wants("agreement.sent"));
        assert!(endpoint(&["agreement.*"]).wants("agreement.voided"));
        assert!(!endpoint(&["agreement.*"]).wants("agreementx.voided"));
        assert!(!endpoint(&["agreement.*"]).wants("vendor.created"));
        assert!(endpoint(&["*"]).wants("delivery.failed"));
    }

    #[test]
    fn the_sled_tree_keeps_the_queue_and_the_log_with_the_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("opens");
        let w: &dyn WebhookStore = &store;
        w.put_endpoint(&endpoint(&["*"])).expect("put");
        let mut d = Delivery {
            id: "wd_1".into(),
            endpoint_id: "wh_1".into(),
            event_id: "evt_1".into(),
            event_type: "agreement.created".into(),
            agreement_id: None,
            body: "{}".into(),
            created_at: 1,
            status: DeliveryStatus::Queued,
            attempts: 0,
            response_code: None,
            last_error: None,
            next_attempt_at: None,
            last_attempt_at: None,
            delivered_at: None,
        };
        w.put_delivery(&d).expect("put");
        assert_eq!(w.queued_deliveries().expect("queue"), vec![d.clone()]);
        d.status = DeliveryStatus::Delivered;
        w.put_delivery(&d).expect("put");
        assert!(w.queued_deliveries().expect("queue").is_empty(), "a delivered one leaves the queue");
        assert_eq!(w.endpoint_deliveries("wh_1").expect("log"), vec![d.clone()]);
        w.delete_endpoint("wh_1").expect("delete");
        assert!(w.endpoint_deliveries("wh_1").expect("log").is_empty());
        assert!(matches!(w.delivery("wd_1"), Err(StoreError::NotFound)));
        assert!(matches!(w.delete_endpoint("wh_1"), Err(StoreError::NotFound)));
    }
}
