//! Webhooks (issue 15): admin-managed endpoints that receive signed JSON events.
//!
//! * **What is sent**: each committed audit event that maps to a public type ([`event_type`])
//!   becomes one event (`evt_…`) with a JSON body — id, type, timestamp and the agreement's
//!   summary ([`summary`]: never a signing link, token, email body or signer address) — and one
//!   [`Delivery`] per endpoint that wants the type.
//! * **When it is queued**: in [`Service::apply`], inside the very change that causes it
//!   ([`Change::webhooks`]), so the delivery is durable exactly when the change is: a crash can
//!   neither lose it nor invent one for a change that did not happen.
//! * **Signing** ([`sign`]): Standard Webhooks — `webhook-id` (the delivery id, the same on
//!   every attempt and on redelivery), `webhook-timestamp` (unix seconds of the attempt) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the bytes
//!   behind the endpoint's `whsec_<base64>` secret. The secret is shown once at creation and
//!   stored only sealed by the vault (context `webhook:<endpoint id>`).
//! * **Where it may go** ([`check_url`], [`forbidden`]): only `https://` to public addresses. A
//!   literal address is checked at creation; every address a name resolves to is checked again
//!   at each attempt, and the connection goes to exactly those checked addresses (a resolver
//!   inside the client, so a DNS answer cannot change between check and connect). An endpoint
//!   created with `"local": true` (admin only, in the security log) may use `http://` and
//!   loopback or private addresses.
//! * **Delivery** ([`spawn`]): a tokio task like the mail sender — lease (attempts + 1 and the
//!   next attempt time made durable first), one POST with a timeout, no redirects, the reply
//!   read at most [`MAX_REPLY`] bytes; 2xx is delivered, anything else retried with the mail
//!   backoff (`[delivery]` settings) until `max_attempts`, then failed. An address refused after
//!   resolution fails at once. Woken after every commit that queued deliveries.
//!
//! Event types of the vendor register (`vendor.*`) belong in [`EVENTS`] and go through
//! [`Service::webhook_event`] the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::app::service::{Service, ServiceError};
use crate::clock::rfc3339;
use crate::domain::agreement::Agreement;
use crate::store::people::NewSecurityEvent;
use crate::store::webhooks::{Delivery, DeliveryStatus, Endpoint};
use crate::store::{Change, NewEvent, StoreError};

/// Every event type an endpoint may ask for (`*` and `agreement.*` also work). The vendor
/// register adds its `vendor.*` types here.
pub const EVENTS: &[&str] = &[
    "agreement.created",
    "agreement.sent",
    "agreement.viewed",
    "agreement.signed",
    "agreement.declined",
    "agreement.executed",
    "agreement.voided",
    "agreement.expired",
    "agreement.terminated",
    "agreement.closed",
    "delivery.failed",
    "vendor.created",
    "vendor.updated",
    "vendor.determined",
];

/// Sent only by `POST /api/v1/webhooks/{id}/test`, to that endpoint.
pub const TEST_EVENT: &str = "webhook.test";

/// The most of a receiver's reply that is read (the rest is ignored).
pub const MAX_REPLY: u64 = 4096;
/// Connecting, and the whole attempt, are bounded.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest URL accepted.
const MAX_URL: usize = 2048;

/// The public type of an audit event, if it has one. `opened` is written only on a link's first
/// view (see [`super::views`]), so `agreement.viewed` comes once per signer link.
pub fn event_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "created" => "agreement.created",
        "sent" => "agreement.sent",
        "opened" => "agreement.viewed",
        "signed" => "agreement.signed",
        "declined" => "agreement.declined",
        "completed" => "agreement.executed",
        "voided" => "agreement.voided",
        "expired" => "agreement.expired",
        "terminated" => "agreement.terminated",
        "phi_disposition_certified" => "agreement.closed",
        "message_failed" => "delivery.failed",
        _ => return None,
    })
}

/// What a receiver learns about an agreement: status, parties, dates and signers' progress.
/// Never a link, token, document, email address or IP address.
pub fn summary(a: &Agreement) -> Value {
    let t = |v: Option<u64>| v.map(rfc3339);
    json!({
        "id": a.id,
        "kind": a.kind,
        "title": a.title,
        "status": a.status.as_str(),
        "version": a.version,
        "parties": {"upstream": a.upstream_name, "downstream": a.downstream_name},
        "effective_date": a.facts.effective_date,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
        "sent_at": t(a.sent_at),
        "executed_at": t(a.executed_at),
        "document_sha256": a.document_sha256,
        "signers": a.signers.iter().map(|s| json!({
            "id": s.id, "party": s.party_label, "name": s.name, "title": s.title, "order": s.order,
            "status": s.status, "signed_at": t(s.signature.as_ref().map(|g| g.signed_at)),
        })).collect::<Vec<_>>(),
    })
}

/// The webhook sender's state on the service: its wake-up, its passes (what tests wait for
/// instead of sleeping), and the bookkeeping lock.
#[derive(Default)]
pub struct Hooks {
    pub wake: tokio::sync::Notify,
    pub passes: AtomicU64,
    /// Serializes lease, outcome and redeliver of deliveries so that one never overwrites
    /// another's write. Its own lock, not the service's write lock: the writes under it wait for
    /// the disk, and agreement changes must not wait behind them.
    lock: Mutex<()>,
}

impl Hooks {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // Each holder writes one record at most: a panic leaves nothing half-done.
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new endpoint, as the API and the CLI take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub description: String,
}

/// Why an address may not receive webhooks, or None for a public one.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "an unspecified (\"this network\") address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address",
        (100, 64..=127, _) => "a carrier-grade NAT (shared) address",
        _ if ip.is_multicast() => "a multicast address",
        _ if ip.is_broadcast() || a >= 240 => "a reserved address",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a reserved or documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.to_ipv4_mapped().is_some() => "an IPv4-mapped address",
        // ::/96 (IPv4-compatible, deprecated) and 64:ff9b::/96 (NAT64) reach IPv4 space.
        _ if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => "an address that embeds IPv4",
        x if x & 0xfe00 == 0xfc00 => "a unique local (private) address",
        x if x & 0xffc0 == 0xfe80 => "a link-local address",
        x if x & 0xffc0 == 0xfec0 => "a site-local address",
        x if x & 0xff00 == 0xff00 => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        // 6to4: the IPv4 address in bits 16..48 decides.
        0x2002 => {
            let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
            forbidden_v4(v4)?
        }
        _ => return None,
    })
}

/// Why an endpoint's URL or event list is refused; the text is the finding's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointRefusal {
    #[error("longer than {} characters", MAX_URL)]
    TooLong,
    #[error("not a URL")]
    NotAUrl,
    #[error("must be https:// (http:// only for an endpoint created with \"local\": true)")]
    PlainHttp,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("has no host")]
    NoHost,
    #[error("must not carry a user name or password")]
    UserInfo,
    /// A literal address [`forbidden`] refuses; the reason says what kind it is.
    #[error("{ip} is {why}; only public addresses receive webhooks (or create the endpoint with \"local\": true)")]
    ForbiddenAddress { ip: IpAddr, why: &'static str },
    #[error("{0} is the loopback host; create the endpoint with \"local\": true to use it")]
    LoopbackHost(String),
    #[error("name at least one event type (or \"*\"): {}", EVENTS.join(", "))]
    NoEvents,
    #[error("unknown event type {0:?}; known: {known}, or \"*\"", known = EVENTS.join(", "))]
    UnknownEvent(String),
}

/// A URL an endpoint may have: `https://` (or `http://` when local) with a host, no user info,
/// and — unless local — not a literal address that [`forbidden`] refuses, nor `localhost`.
/// Names are checked again, after resolution, at every attempt.
pub fn check_url(url: &str, local: bool) -> Result<(), EndpointRefusal> {
    use EndpointRefusal as R;
    if url.len() > MAX_URL {
        return Err(R::TooLong);
    }
    let uri: ureq::http::Uri = url.parse().map_err(|_| R::NotAUrl)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if local => {}
        Some("http") => return Err(R::PlainHttp),
        _ => return Err(R::NotHttps),
    }
    let authority = uri.authority().ok_or(R::NoHost)?;
    if authority.as_str().contains('@') {
        return Err(R::UserInfo);
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(R::NoHost);
    }
    if local {
        return Ok(());
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && let Some(why) = forbidden(ip)
    {
        return Err(R::ForbiddenAddress { ip, why });
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(R::LoopbackHost(host.to_string()));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), EndpointRefusal> {
    if events.is_empty() {
        return Err(EndpointRefusal::NoEvents);
    }
    for e in events {
        let known = e == "*"
            || EVENTS.contains(&e.as_str())
            || e.strip_suffix(".*").is_some_and(|p| EVENTS.iter().any(|t| t.split('.').next() == Some(p)));
        if !known {
            return Err(EndpointRefusal::UnknownEvent(e.clone()));
        }
    }
    Ok(())
}

/// Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this cannot happen.
        unreachable!("HMAC accepts any key length")
    });
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Time-ordered ids (queue order is creation order), unique across processes.
fn ordered_id(prefix: &str, now: u64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{now:012x}{seq:08x}{}", crate::store::ids::new_id("", 4))
}

/// An endpoint as the API shows it: everything but the sealed secret.
pub fn endpoint_view(e: &Endpoint) -> Value {
    json!({
        "id": e.id, "url": e.url, "events": e.events, "local": e.local, "description": e.description,
        "created_at": rfc3339(e.created_at), "created_by": e.created_by,
    })
}

/// A delivery as the log shows it (the body is the summary the receiver got).
pub fn delivery_view(d: &Delivery) -> Value {
    let t = |v: Option<u64>| v.map(rfc3339);
    json!({
        "id": d.id, "endpoint_id": d.endpoint_id, "event_id": d.event_id, "type": d.event_type,
        "agreement_id": d.agreement_id, "status": d.status, "attempts": d.attempts,
        "response_code": d.response_code, "last_error": d.last_error,
        "created_at": rfc3339(d.created_at), "last_attempt_at": t(d.last_attempt_at),
        "next_attempt_at": t(d.next_attempt_at), "delivered_at": t(d.delivered_at),
    })
}

fn field(pointer: &str, reason: impl Into<String>) -> ServiceError {
    ServiceError::Field(pointer.into(), reason.into())
}

impl Service {
    /// Queues, inside `change`, one delivery per interested endpoint for each of its events
    /// that has a public type. Called by [`Service::apply`] on every commit.
    pub(crate) fn queue_webhooks(&self, change: &mut Change) -> Result<(), StoreError> {
        if !change.events.iter().any(|e| event_type(&e.kind).is_some()) {
            return Ok(());
        }
        let endpoints = self.store.webhooks().endpoints()?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let events: Vec<NewEvent> = change.events.clone();
        for ev in &events {
            let Some(kind) = event_type(&ev.kind) else { continue };
            let agreement = match &change.agreement {
                Some(a) if a.id == ev.agreement_id => Some(a.clone()),
                _ => match self.store.agreement(&ev.agreement_id) {
                    Ok(a) => Some(a),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                },
            };
            let mut data = json!({"agreement": agreement.as_ref().map(summary)});
            // What the event is about, beyond the agreement: never reasons typed by people
            // (they may name health information) nor message bodies.
            for k in ["signer", "kind", "attempts"] {
                if let Some(v) = ev.detail.get(k) {
                    data[if k == "kind" { "message_kind" } else { k }] = v.clone();
                }
            }
            let d = self.webhook_deliveries(&endpoints, kind, Some(&ev.agreement_id), ev.at, data);
            change.webhooks.extend(d);
        }
        Ok(())
    }

    /// The deliveries of one event to every endpoint in `endpoints` that wants it. The vendor
    /// register (and anything else with events) queues through here, in its own change.
    pub fn webhook_deliveries(
        &self,
        endpoints: &[Endpoint],
        event_type: &str,
        agreement_id: Option<&str>,
        at: u64,
        data: Value,
    ) -> Vec<Delivery> {
        let wanting: Vec<&Endpoint> = endpoints.iter().filter(|e| e.wants(event_type)).collect();
        if wanting.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        let event_id = ordered_id("evt_", at);
        let body = json!({"id": event_id, "type": event_type, "timestamp": rfc3339(at), "data": data}).to_string();
        wanting
            .into_iter()
            .map(|e| Delivery {
                id: ordered_id("wd_", now),
                endpoint_id: e.id.clone(),
                event_id: event_id.clone(),
                event_type: event_type.to_string(),
                agreement_id: agreement_id.map(String::from),
                body: body.clone(),
                created_at: now,
                status: DeliveryStatus::Queued,
                attempts: 0,
                response_code: None,
                last_error: None,
                next_attempt_at: None,
                last_attempt_at: None,
                delivered_at: None,
            })
            .collect()
    }

    /// Queues an event that comes with no agreement change (e.g. `vendor.*`): the deliveries
    /// are committed with `change`, atomically with whatever else it holds.
    pub fn webhook_event(&self, change: &mut Change, event_type: &str, data: Value) -> Result<(), StoreError> {
        let endpoints = self.store.webhooks().endpoints()?;
        let d = self.webhook_deliveries(&endpoints, event_type, None, self.clock.now(), data);
        change.webhooks.extend(d);
        Ok(())
    }

    /// Creates an endpoint; returns it and its secret (`whsec_…`), which is never shown again.
    pub fn create_webhook(&self, new: NewEndpoint, who: &str) -> Result<(Endpoint, String), ServiceError> {
        let url = new.url.trim().to_string();
        check_url(&url, new.local).map_err(|r| field("/url", r.to_string()))?;
        check_events(&new.events).map_err(|r| field("/events", r.to_string()))?;
        if new.description.chars().count() > 200 {
            return Err(field("/description", "at most 200 characters"));
        }
        let id = crate::store::ids::new_id("wh_", 8);
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret = format!("whsec_{}", b64.encode(key));
        let sealed = self
            .vault
            .seal(&key, &format!("webhook:{id}"))
            .map_err(|e| ServiceError::Internal(format!("sealing the webhook secret: {e}")))?;
        let now = self.clock.now();
        let mut events = new.events.clone();
        events.dedup();
        let e = Endpoint {
            id,
            url,
            events,
            local: new.local,
            secret_sealed: b64.encode(sealed),
            description: new.description.trim().to_string(),
            created_at: now,
            created_by: who.to_string(),
        };
        self.store.webhooks().put_endpoint(&e)?;
        let host = e.url.parse::<ureq::http::Uri>().ok().and_then(|u| u.host().map(String::from)).unwrap_or_default();
        self.store.people().append_security(NewSecurityEvent {
            at: now,
            who: who.to_string(),
            action: if e.local { "webhook_created_local" } else { "webhook_created" }.into(),
            detail: format!(
                "{} to {host} for {}{}",
                e.id,
                e.events.join(", "),
                if e.local { " (local: http and loopback/private addresses allowed)" } else { "" }
            ),
            ip: String::new(),
        })?;
        tracing::info!(endpoint = %e.id, host = %host, local = e.local, "webhook endpoint created");
        Ok((e, secret))
    }

    pub fn webhooks(&self) -> Result<Vec<Endpoint>, ServiceError> {
        let mut all = self.store.webhooks().endpoints()?;
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// An endpoint and its delivery log, oldest first.
    pub fn webhook(&self, id: &str) -> Result<(Endpoint, Vec<Delivery>), ServiceError> {
        let e = self.store.webhooks().endpoint(id)?;
        let mut log = self.store.webhooks().endpoint_deliveries(id)?;
        log.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((e, log))
    }

    /// Deletes an endpoint and its delivery log (queued deliveries are dropped).
    pub fn delete_webhook(&self, id: &str, who: &str) -> Result<Endpoint, ServiceError> {
        let e = {
            let _g = self.hooks.lock();
            let e = self.store.webhooks().endpoint(id)?;
            self.store.webhooks().delete_endpoint(id)?;
            e
        };
        self.store.people().append_security(NewSecurityEvent {
            at: self.clock.now(),
            who: who.to_string(),
            action: "webhook_deleted".into(),
            detail: e.id.clone(),
            ip: String::new(),
        })?;
        Ok(e)
    }

    /// Puts one of an endpoint's deliveries back in the queue, due now, attempts reset: the
    /// same id and body, signed afresh when sent.
    pub fn redeliver_webhook(&self, endpoint: &str, delivery: &str) -> Result<Delivery, ServiceError> {
        let d = {
            let _g = self.hooks.lock();
            let mut d = self.store.webhooks().delivery(delivery)?;
            if d.endpoint_id != endpoint {
                return Err(ServiceError::NotFound);
            }
            d.status = DeliveryStatus::Queued;
            d.attempts = 0;
            d.next_attempt_at = None;
            d.last_error = None;
            self.store.webhooks().put_delivery(&d)?;
            d
        };
        self.hooks.wake.notify_one();
        Ok(d)
    }

    /// Queues a `webhook.test` event to one endpoint.
    pub fn test_webhook(&self, id: &str) -> Result<Delivery, ServiceError> {
        let e = self.store.webhooks().endpoint(id)?;
        let now = self.clock.now();
        let data = json!({"message": "a test event from Countersign", "endpoint_id": e.id});
        let d = self.webhook_deliveries(&[Endpoint { events: vec!["*".into()], ..e }], TEST_EVENT, None, now, data);
        let d = d.into_iter().next().ok_or_else(|| ServiceError::Internal("no test delivery".into()))?;
        self.store.webhooks().put_delivery(&d)?;
        self.hooks.wake.notify_one();
        Ok(d)
    }

    /// The endpoint's signing key, opened from the vault.
    fn webhook_key(&self, e: &Endpoint) -> Result<crate::secret::Secret, SecretRefusal> {
        let sealed =
            base64::engine::general_purpose::STANDARD.decode(&e.secret_sealed).map_err(|_| SecretRefusal::Damaged)?;
        self.vault.open(&sealed, &format!("webhook:{}", e.id)).map_err(SecretRefusal::Vault)
    }
}

/// Why an endpoint's signing key cannot be had: the delivery is refused, not retried.
#[derive(Debug, thiserror::Error)]
enum SecretRefusal {
    #[error("the stored secret is damaged")]
    Damaged,
    #[error("cannot open the secret: {0}")]
    Vault(crate::secret::vault::VaultError),
}

/// The outcome of one attempt.
#[derive(Debug)]
enum Outcome {
    Delivered(u16),
    /// Worth another attempt: the receiver's status (if it answered) and why.
    Retry(Option<u16>, String),
    /// Never worth another attempt (an address that is not public, a damaged secret).
    Refused(String),
}

/// Resolves like ureq's default resolver, then refuses the whole attempt when any address is
/// not public (unless the endpoint is local). The client connects only to what this returns.
#[derive(Debug)]
struct Guarded {
    local: bool,
    refusal: Arc<Mutex<Option<String>>>,
}

impl ureq::unversioned::resolver::Resolver for Guarded {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        use ureq::unversioned::resolver::DefaultResolver;
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if !self.local
            && let Some((ip, why)) = addrs.iter().find_map(|a| forbidden(a.ip()).map(|w| (a.ip(), w)))
        {
            let host = uri.host().unwrap_or("");
            let reason = format!("{host} resolves to {ip}, {why}: refused (only public addresses receive webhooks)");
            *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            return Err(ureq::Error::Io(std::io::Error::other(reason)));
        }
        Ok(addrs)
    }
}

/// One POST of a delivery, signed at `now`. Blocking: run it off the async threads.
fn attempt(url: &str, local: bool, key: &[u8], d: &Delivery, now: u64) -> Outcome {
    let refusal = Arc::new(Mutex::new(None));
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .user_agent(concat!("countersign-webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        Guarded { local, refusal: refusal.clone() },
    );
    let sent = agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sign(key, &d.id, now, &d.body))
        .send(d.body.as_bytes());
    match sent {
        Ok(mut resp) => {
            let code = resp.status().as_u16();
            // Bounded: a receiver cannot make us read (or keep) more than MAX_REPLY bytes.
            let mut reply = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(resp.body_mut().as_reader(), MAX_REPLY),
                &mut reply,
            );
            match code {
                200..=299 => Outcome::Delivered(code),
                300..=399 => {
                    Outcome::Retry(Some(code), format!("the receiver answered {code}: redirects are not followed"))
                }
                _ => {
                    let snippet: String = String::from_utf8_lossy(&reply).chars().take(200).collect();
                    let snippet = snippet.trim();
                    Outcome::Retry(
                        Some(code),
                        if snippet.is_empty() {
                            format!("the receiver answered {code}")
                        } else {
                            format!("the receiver answered {code}: {snippet}")
                        },
                    )
                }
            }
        }
        Err(e) => match refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(reason) => Outcome::Refused(reason),
            None => Outcome::Retry(None, e.to_string()),
        },
    }
}

/// Starts the webhook sender; it stops when `shutdown` resolves (an attempt in flight finishes
/// first, bounded by the attempt timeout).
pub fn spawn(
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        let poll = Duration::from_millis(service.config.delivery.poll_ms.max(10));
        loop {
            let svc = service.clone();
            let next_due = match tokio::task::spawn_blocking(move || deliver_due(&svc)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "webhook pass failed");
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "webhook pass panicked");
                    None
                }
            };
            service.hooks.passes.fetch_add(1, Ordering::SeqCst);
            let mut wait = poll;
            if let Some(at) = next_due {
                wait = wait.min(Duration::from_secs(at.saturating_sub(service.clock.now())));
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = service.hooks.wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
    })
}

/// One pass (blocking): every due delivery, oldest first. Returns when the next one falls due.
/// Deliveries go one at a time: a slow receiver delays the others by at most the attempt timeout.
fn deliver_due(s: &Service) -> Result<Option<u64>, StoreError> {
    let now = s.clock.now();
    let mut due: Vec<Delivery> =
        s.store.webhooks().queued_deliveries()?.into_iter().filter(|d| d.next_attempt_at.unwrap_or(0) <= now).collect();
    due.sort_by(|a, b| a.id.cmp(&b.id));
    for d in due {
        if let Err(e) = deliver(s, &d.id) {
            tracing::error!(delivery = %d.id, error = %e, "webhook bookkeeping failed");
        }
    }
    let pending = s.store.webhooks().queued_deliveries()?;
    s.metrics.webhooks_queued(pending.len());
    Ok(pending.iter().map(|d| d.next_attempt_at.unwrap_or(0)).min())
}

fn deliver(s: &Service, id: &str) -> Result<(), StoreError> {
    // Lease: attempts + 1 and the next attempt time are durable before the attempt, so a crash
    // mid-attempt neither loses the delivery nor retries it in a tight loop.
    let (leased, endpoint) = {
        let _g = s.hooks.lock();
        let now = s.clock.now();
        let mut endpoint = None;
        // One step in the store (`lease_delivery`): with several instances on one database,
        // the one that finds the delivery locked or already leased leaves it.
        let mut decide = |mut d: Delivery| -> Result<Option<Delivery>, StoreError> {
            if d.status != DeliveryStatus::Queued || d.next_attempt_at.unwrap_or(0) > now {
                return Ok(None);
            }
            match s.store.webhooks().endpoint(&d.endpoint_id) {
                Ok(e) => endpoint = Some(e),
                Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e),
            }
            d.attempts += 1;
            d.last_attempt_at = Some(now);
            d.next_attempt_at = Some(now + super::sender::backoff_secs(d.attempts, &s.config.delivery, unit_random()));
            Ok(Some(d))
        };
        let leased = match s.store.webhooks().lease_delivery(id, &mut decide) {
            Ok(Some(d)) => d,
            Ok(None) | Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match endpoint {
            Some(e) => (leased, e),
            None => return Ok(()),
        }
    };
    let outcome = match s.webhook_key(&endpoint) {
        Ok(key) => attempt(&endpoint.url, endpoint.local, key.expose(), &leased, s.clock.now()),
        Err(e) => Outcome::Refused(e.to_string()),
    };
    match &outcome {
        Outcome::Delivered(code) => {
            tracing::info!(delivery = %leased.id, endpoint = %endpoint.id, r#type = %leased.event_type, status = code, "webhook delivered")
        }
        Outcome::Retry(_, e) | Outcome::Refused(e) => {
            tracing::warn!(delivery = %leased.id, endpoint = %endpoint.id, attempt = leased.attempts, error = %e, "webhook attempt failed")
        }
    }
    let _g = s.hooks.lock();
    let mut d = match s.store.webhooks().delivery(id) {
        Ok(d) => d,
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Redelivered meanwhile (attempts reset): that request stands; this outcome is stale.
    if d.attempts != leased.attempts || d.status != DeliveryStatus::Queued {
        return Ok(());
    }
    let now = s.clock.now();
    match outcome {
        Outcome::Delivered(code) => {
            d.status = DeliveryStatus::Delivered;
            d.response_code = Some(code);
            d.delivered_at = Some(now);
            d.last_error = None;
            d.next_attempt_at = None;
            s.metrics.webhook_delivered();
        }
        Outcome::Retry(code, e) if d.attempts < s.config.delivery.max_attempts => {
            d.response_code = code.or(d.response_code);
            d.last_error = Some(e);
            s.metrics.webhook_failure("transient");
        }
        Outcome::Retry(code, e) => {
            d.status = DeliveryStatus::Failed;
            d.response_code = code.or(d.response_code);
            d.last_error = Some(format!("{e} (gave up after {} attempts)", d.attempts));
            d.next_attempt_at = None;
            s.metrics.webhook_failure("final");
        }
        Outcome::Refused(e) => {
            d.status = DeliveryStatus::Failed;
            d.last_error = Some(e);
            d.next_attempt_at = None;
            s.metrics.webhook_failure("final");
        }
    }
    s.store.webhooks().put_delivery(&d)
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_special_addresses_are_refused_and_public_ones_pass() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
        ] {
            assert!(forbidden(bad.parse().expect("ip")).is_some(), "{bad} must be refused");
        }
        for good in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"] {
            assert_eq!(forbidden(good.parse().expect("ip")), None, "{good} is public");
        }
    }

    #[test]
    fn urls_must_be_https_to_public_hosts_unless_local() {
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
        assert!(check_url("https://8.8.8.8:8443/in", false).is_ok());
        for (bad, why) in [
            ("http://hooks.example.com/in", "https"),
            ("ftp://hooks.example.com/in", "https"),
            ("https://127.0.0.1/in", "loopback"),
            ("https://[::1]/in", "loopback"),
            ("https://[::ffff:10.0.0.1]/in", "IPv4-mapped"),
            ("https://192.168.0.10/in", "private"),
            ("https://localhost:8080/in", "loopback host"),
            ("https://user:pw@hooks.example.com/in", "user name"),
            ("not a url", "URL"),
        ] {
            let e = check_url(bad, false).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_url("http://127.0.0.1:9000/in", true).is_ok());
        assert!(check_url("http://localhost:9000/in", true).is_ok());
    }

    #[test]
    fn the_signature_follows_standard_webhooks() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let key = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("b64");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn audit_kinds_map_to_the_public_event_types() {
        // `vendor.*` come from the vendor register's changes (`app::vendors`), not from audit kinds.
        for t in EVENTS.iter().filter(|t| !t.starts_with("vendor.")) {
            assert!(
                [
                    "created",
                    "sent",
                    "opened",
                    "signed",
                    "declined",
                    "completed",
                    "voided",
                    "expired",
                    "terminated",
                    "phi_disposition_certified",
                    "message_failed"
                ]
                .iter()
                .any(|k| event_type(k) == Some(*t)),
                "{t} has a source"
            );
        }
        assert_eq!(event_type("downloaded"), None);
        assert!(check_events(&["agreement.*".into()]).is_ok());
        assert!(check_events(&["vendor.*".into(), "vendor.determined".into()]).is_ok());
        assert!(check_events(&["agreement.sined".into()]).is_err());
        assert!(check_events(&[]).is_err());
    }
}
