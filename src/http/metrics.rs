//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics::Metrics`].
//!
//! Who may scrape, in one place ([`may_scrape`]), failing closed:
//! * `metrics_token` set: callers presenting `Authorization: Bearer <token>` (compared in
//!   constant time), from any address;
//! * else `metrics_bind` set: only the separate listener on that address serves it (the main
//!   listener answers 404), to whoever the operator lets reach it;
//! * else: callers on loopback only.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppState, blocking};

/// Which listener a scrape arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Main,
    /// The separate `metrics_bind` listener.
    Metrics,
}

/// The access decision: `Ok` or the status to answer.
pub fn may_scrape(
    token: Option<&str>,
    separate: bool,
    on: Listener,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), StatusCode> {
    if let Some(token) = token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq;
        let (a, b) = (digest(presented), digest(token));
        return if bool::from(a.ct_eq(&b)) { Ok(()) } else { Err(StatusCode::UNAUTHORIZED) };
    }
    match (separate, on) {
        (true, Listener::Metrics) => Ok(()),
        (true, Listener::Main) => Err(StatusCode::NOT_FOUND),
        (false, _) if peer.is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        (false, _) => Err(StatusCode::FORBIDDEN),
    }
}

/// Both sides are hashed first so the comparison's time does not depend on the token's length.
fn digest(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// The main listener's `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(main_scrape))
}

/// The separate listener (`metrics_bind`): `/metrics` only.
pub fn separate_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(separate_scrape)).with_state(state)
}

async fn main_scrape(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    scrape(state, Listener::Main, Some(peer), headers).await
}

async fn separate_scrape(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    scrape(state, Listener::Metrics, Some(peer), headers).await
}

async fn scrape(state: AppState, on: Listener, peer: Option<SocketAddr>, headers: HeaderMap) -> Response {
    let config = &state.service.config;
    let token = config.metrics_token.as_ref().map(|t| t.expose().to_string());
    if let Err(status) = may_scrape(token.as_deref(), config.metrics_bind.is_some(), on, peer, &headers) {
        return (status, "not available to this caller\n").into_response();
    }
    let svc = state.service.clone();
    // The store's size: a stat of sled's few files (bounded), off the async threads.
    let text = blocking(move || {
        svc.metrics.store_size(dir_size(&svc.config.data_dir.join("sled")));
        svc.metrics.encode()
    })
    .await;
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Total bytes of the files under `dir` (sled keeps a handful: conf, db, blobs, snapshots).
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("ip"), 5000))
    }

    #[test]
    fn by_default_only_loopback_callers_may_scrape() {
        let h = HeaderMap::new();
        assert_eq!(may_scrape(None, false, Listener::Main, peer("127.0.0.1"), &h), Ok(()));
        assert_eq!(may_scrape(None, false, Listener::Main, peer("::1"), &h), Ok(()));
        assert_eq!(may_scrape(None, false, Listener::Main, peer("10.0.0.7"), &h), Err(StatusCode::FORBIDDEN));
        assert_eq!(may_scrape(None, false, Listener::Main, None, &h), Err(StatusCode::FORBIDDEN));
    }

    #[test]
    fn a_token_is_required_from_everyone_when_configured() {
        let mut h = HeaderMap::new();
        assert_eq!(
            may_scrape(Some("s3cret"), false, Listener::Main, peer("127.0.0.1"), &h),
            Err(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().expect("h"));
        assert_eq!(
            may_scrape(Some("s3cret"), false, Listener::Main, peer("10.0.0.7"), &h),
            Err(StatusCode::UNAUTHORIZED)
        );
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().expect("h"));
        assert_eq!(may_scrape(Some("s3cret"), false, Listener::Main, peer("10.0.0.7"), &h), Ok(()));
    }

    #[test]
    fn a_separate_listener_takes_metrics_off_the_main_one() {
        let h = HeaderMap::new();
        assert_eq!(may_scrape(None, true, Listener::Main, peer("127.0.0.1"), &h), Err(StatusCode::NOT_FOUND));
        assert_eq!(may_scrape(None, true, Listener::Metrics, peer("10.0.0.7"), &h), Ok(()));
    }
}
