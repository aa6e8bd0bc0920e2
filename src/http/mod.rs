//! HTTP: axum only. Each module exposes `router()`; [`run`] serves them until `shutdown`.
//!
//! * [`routes`] — who may call each route, one table ([`api::ROUTES`] for the API, [`routes::PAGES`]
//!   for the rest), enforced by one route layer before any handler runs (fail closed).
//! * [`api`] — the staff JSON API under `/api/v1`; handlers get the admitted caller as [`auth::Staff`].
//! * [`sign`] — the signer pages under `/sign/{token}` and `/download/{token}`, behind the
//!   [`sign::SignerLink`] extractor that verifies the HMAC link before a handler runs.
//! * [`error`] — the one error type and its status policy.
//! * one outer layer around every route, `edge`: the request's log span and id, re-shaping
//!   extractors' plain-text 4xx ([`rejection`]), and the security headers.
//! * [`page_cache`] — the signer page's agreement text, kept compressed and sent without a copy.

pub mod account;
pub mod admin_pages;
pub mod agreement_page;
pub mod api;
pub mod archive_pages;
pub mod auth;
pub mod conn;
pub mod drafting;
pub mod error;
pub mod metrics;
pub mod outbox;
pub mod page_cache;
pub mod rejection;
pub mod routes;
pub mod sign;
pub mod state;
pub mod users;
pub mod vendor_forms;
pub mod vendor_pages;
pub mod vendors;
pub mod verify_pages;
pub mod web;
pub mod webhook_pages;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::app::service::{Actor, Service};

/// Shared state for every handler: one `Arc`, so the several clones each request makes (the
/// router, each middleware and the handler take it by value) are one atomic increment each,
/// not one per field (dropping the per-field clones was 3.5 % of the server's samples serving
/// the signer page at 256 connections, the counters' cache lines bouncing between the cores).
/// Fields are read through `Deref` (`state.service`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub service: Arc<Service>,
    /// The bootstrap admin key (a secret: never printed).
    pub bootstrap: Arc<crate::secret::SecretString>,
    pub limiter: Arc<auth::FailureLimiter>,
    /// Budget for the public, unauthenticated `/verify`.
    pub public_limiter: Arc<auth::RequestLimiter>,
    pub pages: Arc<sign::Pages>,
    /// People and web sessions (the application layer the web pages call).
    pub people: Arc<crate::people::Directory>,
    /// The staff web app's templates.
    pub web: Arc<web::WebPages>,
}

/// `ok`, with the store when it is a database server (`ok (postgres)`): a load balancer's
/// health check. 503 when the database does not answer. A store in this process (sled,
/// memory) answers its ping from memory, on this thread: the hand-off to a blocking thread and
/// back cost more than the whole request (14,200–16,000 against 22,900–26,500 requests/s at 256
/// connections, alternating, 2026-12-01), and made this route a poor measure of the HTTP
/// stack's ceiling. A liveness check, not a load gauge (README, *Operating*).
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> (axum::http::StatusCode, String) {
    let store = state.service.store.clone();
    let backend = store.backend();
    let pinged = if store.reads_in_process() {
        Ok(store.ping())
    } else {
        tokio::task::spawn_blocking(move || store.ping()).await
    };
    match pinged {
        Ok(Ok(())) if backend == "sled" => (axum::http::StatusCode::OK, "ok".into()),
        Ok(Ok(())) => (axum::http::StatusCode::OK, format!("ok ({backend})")),
        Ok(Err(e)) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("{backend}: {e}")),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("health check failed: {e}")),
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api::router())
        .merge(sign::router())
        .merge(metrics::router())
        .merge(web::router())
        .merge(vendor_pages::router())
        .merge(vendor_forms::router())
        .merge(drafting::router())
        .merge(agreement_page::router())
        .merge(account::router())
        .merge(admin_pages::router())
        .merge(archive_pages::router())
        .merge(verify_pages::router())
        .merge(webhook_pages::router())
        // Every matched route is authorized from the one table before its handler runs.
        .route_layer(middleware::from_fn_with_state(state.clone(), routes::authorize))
        .fallback(web::not_found)
        // One layer for what every answer gets (a `Router::layer` wraps each route, and each
        // layer costs every request a boxed future and a clone of the route: three layers were
        // ~3 % of the signer page's CPU under load, 2026-12-02).
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

/// Every asset is Countersign's own and no page needs inline script or style: the policy says
/// so, which turns an injected `<script>` or `<style>` into nothing. HSTS only when the public
/// address is https (over plain http it would be ignored, and a loopback test must not pin it).
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The request id: the caller's `X-Request-Id` when it is well-formed (1–64 characters of
/// `A–Z a–z 0–9 . _ -`, so nothing a caller sends can forge log structure), else 32 hex
/// digits: 8 random bytes drawn once per process, then a counter passed through a keyed
/// permutation (a four-round Feistel network on SipHash with the process's random keys), so
/// ids are unique within the process and (but for a 2⁻⁶⁴ chance) across processes and
/// restarts, and do not tell a caller how many requests came between two of theirs; without a
/// `getrandom` call per request (1.7 % of the signer page's CPU under load). An id correlates
/// log lines; it is not a secret.
pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    });
    match given {
        Some(v) => v.to_string(),
        None => {
            use std::hash::BuildHasher;
            static KEYS: std::sync::OnceLock<(u64, std::hash::RandomState)> = std::sync::OnceLock::new();
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let (prefix, keys) = KEYS.get_or_init(|| {
                let mut raw = [0u8; 8];
                // getrandom failing leaves zeros: the id is for correlation, not security.
                let _ = getrandom::fill(&mut raw);
                (u64::from_le_bytes(raw), std::hash::RandomState::new())
            });
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (mut l, mut r) = ((n >> 32) as u32, n as u32);
            for round in 0..4u8 {
                (l, r) = (r, l ^ keys.hash_one((round, r)) as u32);
            }
            format!("{prefix:016x}{l:08x}{r:08x}")
        }
    }
}

/// Around every route and the fallback, in this order: logs each request by its route
/// *pattern* (never the path: signer paths carry tokens) inside a span holding the request id,
/// so every line logged while serving it carries the id, which the response returns as
/// `x-request-id`; re-shapes a 4xx an extractor answered in plain text ([`rejection::shape`]);
/// and adds headers that keep tokens out of referrers and pages out of frames and caches, and
/// the content security policy ([`CSP`]; HSTS when the public address is https). Headers and
/// bodies are never logged.
async fn edge(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let method = req.method().clone();
    // `MatchedPath` is a shared string: cloned, not copied.
    let pattern = req.extensions().get::<MatchedPath>().cloned();
    let route = pattern.as_ref().map_or("(unmatched)", MatchedPath::as_str);
    let api = rejection::is_api(req.uri().path());
    let id = request_id(req.headers());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = std::time::Instant::now();
    let mut resp = async {
        let resp = rejection::shape(&state, api, pattern.as_ref().map(MatchedPath::as_str), next.run(req).await).await;
        let elapsed = started.elapsed();
        tracing::info!(status = resp.status().as_u16(), ms = elapsed.as_millis() as u64, "request");
        state.service.metrics.request(method.as_str(), route, resp.status().as_u16(), elapsed.as_secs_f64());
        resp
    }
    .instrument(span)
    .await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.entry("x-frame-options").or_insert(HeaderValue::from_static("DENY"));
    h.entry("cache-control").or_insert(HeaderValue::from_static("no-store"));
    // A route may set a narrower exception of its own (the inline PDF may be framed by this
    // site, `http::agreement_page`); every other response gets the policy. HSTS only when the
    // public address is https (over plain http it would be ignored, and a loopback test must
    // not pin it).
    h.entry("content-security-policy").or_insert(HeaderValue::from_static(CSP));
    if state.service.config.public_base_url.as_deref().is_some_and(|u| u.starts_with("https://")) {
        h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    resp
}

/// Serves until `shutdown` resolves, then flushes storage. Tests bind `127.0.0.1:0`.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = state.service.clone();
    // The separate metrics listener (`metrics_bind`), stopped with the main one.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = match service.config.metrics_bind {
        Some(addr) => {
            let l = TcpListener::bind(addr).await?;
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let m = metrics::separate_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
            Some(tokio::spawn(async move {
                let _ = axum::serve(l, m)
                    .with_graceful_shutdown(async {
                        let _ = metrics_stopped.await;
                    })
                    .await;
            }))
        }
        None => None,
    };
    let (stop_mail, mail_stopped) = tokio::sync::oneshot::channel::<()>();
    let sender = crate::app::sender::spawn(service.clone(), async {
        let _ = mail_stopped.await;
    });
    let (stop_hooks, hooks_stopped) = tokio::sync::oneshot::channel::<()>();
    let hooks = crate::app::webhooks::spawn(service.clone(), async {
        let _ = hooks_stopped.await;
    });
    let limits = service.config.http.clone();
    conn::serve(listener, app(state), limits, shutdown).await?;
    let _ = stop_mail.send(());
    let _ = stop_hooks.send(());
    let _ = stop_metrics.send(());
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
    if tokio::time::timeout(std::time::Duration::from_secs(30), sender).await.is_err() {
        tracing::warn!("mail sender did not stop in time");
    }
    if tokio::time::timeout(std::time::Duration::from_secs(30), hooks).await.is_err() {
        tracing::warn!("webhook sender did not stop in time");
    }
    // Blocking work a handler started (a render, a commit) may still hold the service after the
    // last connection closed; wait for it, so that the store is ours alone to close.
    let started = std::time::Instant::now();
    while Arc::strong_count(&service) > 1 && started.elapsed() < std::time::Duration::from_secs(60) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Flush, then drop the last reference: the store is closed and its lock released (see
    // `SledStore`) before `run` returns, so a restart on the same directory never finds it busy.
    let closed = tokio::task::spawn_blocking(move || {
        // The search index, for the next start to read instead of building it (see
        // `app::snapshot`); a failure costs only that.
        if let Err(e) = service.save_index_snapshot() {
            tracing::warn!(error = %e, "no index snapshot: the next start builds the index from the store");
        }
        let flushed = service.store.flush();
        drop(service);
        flushed
    })
    .await;
    match closed {
        Ok(Ok(())) => tracing::info!("storage flushed and closed; stopped"),
        Ok(Err(e)) => tracing::error!(error = %e, "flush at shutdown failed"),
        Err(e) => tracing::error!(error = %e, "flush task failed"),
    }
    Ok(())
}

/// A signed-in staff caller (API key or web session) as the application layer sees them: a
/// `sales` caller sees only their own agreements, here and in what the service looks up for
/// them (the DUA cross-reference).
pub fn staff_actor(staff: &crate::staff::Staff, addr: Option<SocketAddr>, headers: &axum::http::HeaderMap) -> Actor {
    Actor { own_only: staff.role == crate::staff::Role::Sales, ..actor(staff.who.clone(), addr, headers) }
}

/// Who is calling, from the connection and headers.
pub fn actor(who: String, addr: Option<SocketAddr>, headers: &axum::http::HeaderMap) -> Actor {
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    Actor { who, ip: addr.map(|a| a.ip().to_string()).unwrap_or_default(), user_agent: ua, own_only: false }
}

/// CPU-bound work of a request (a scan of the whole search index): on the blocking pool like
/// [`blocking`], but at most as many at once as there are cores; the rest wait without a thread.
/// Plain `blocking` would start a thread per request, and 256 concurrent searches were 256
/// threads taking turns on 2 cores.
pub async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, error::ApiError> {
    static GATE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    gated(GATE.get_or_init(|| tokio::sync::Semaphore::new(cores())), f).await
}

/// A signer's short blocking work (applying a signature): on the
/// blocking pool like [`blocking`], at most eight per core at once (part of it waits on the
/// write lock or the disk); the rest wait without a thread. The wait for the disk is not in
/// here (see [`crate::app::service::Service::sign_end_async`]). Why a gate: 256 signers at once
/// were 256 threads, and the one holding the write lock was preempted by the others: the
/// critical section took 1.1 ms of wall clock on average, and the others waited 60 ms for the
/// lock. Why eight: since concurrent signatures are combined into one commit (`app::combine`),
/// writers waiting for the lock sleep on a condvar, and the gate bounds how many changes one
/// commit can take: eight per core gave 724–788 signatures/s against 528–533/s for two per core,
/// alternating in the same minutes (README, *Load test*).
pub async fn signer_work<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, error::ApiError> {
    static GATE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    gated(GATE.get_or_init(|| tokio::sync::Semaphore::new(8 * cores())), f).await
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn gated<T: Send + 'static>(
    gate: &'static tokio::sync::Semaphore,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, error::ApiError> {
    let permit = gate.acquire().await.map_err(|_| error::ApiError::Internal("the work gate is closed".into()))?;
    // The permit goes with the work: a request given up by its client still holds it until the
    // work it started ends.
    blocking(move || {
        let _permit = permit;
        f()
    })
    .await
}

/// Runs blocking service work (rendering, fsync) off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, error::ApiError> {
    // Blocking work logs under the request's span too (its lines carry the request id).
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| error::ApiError::Internal(format!("task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn made_up_request_ids_are_distinct_share_the_process_prefix_and_do_not_count_up() {
        let none = axum::http::HeaderMap::new();
        let ids: Vec<String> = (0..20_000).map(|_| request_id(&none)).collect();
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())), "{}", ids[0]);
        let distinct: std::collections::HashSet<&str> = ids.iter().map(|id| &id[16..]).collect();
        assert_eq!(distinct.len(), ids.len(), "every id is its own");
        assert!(ids.iter().all(|id| id[..16] == ids[0][..16]), "one prefix per process");
        let tails: Vec<u64> = ids.iter().map(|id| u64::from_str_radix(&id[16..], 16).expect("hex")).collect();
        let steps_of_one = tails.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 1).count();
        assert!(steps_of_one < 10, "{steps_of_one} consecutive ids differ by one");
    }
}
