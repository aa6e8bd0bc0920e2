//! Staff authentication by API key: the bootstrap admin key, which `serve` writes on first start
//! to `<data>/bootstrap-admin.key` (mode 0600), and the keys staff create with a role. Only a
//! key's SHA-256 is kept; comparison is constant-time. Which role a route needs is the route
//! table's business ([`super::routes`]).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::AppState;
use super::error::ApiError;
use crate::staff::AuthError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;

/// Failed authentication attempts per source address and per presented key id: after `LIMIT`
/// failures within `WINDOW` seconds, further *failures* from that source (or against that key
/// id) are answered 429 until the window has passed. A valid key is never refused: the key is
/// checked first, so nobody can lock staff out by failing from a shared (proxy) address.
pub struct FailureLimiter {
    seen: std::sync::Mutex<std::collections::HashMap<String, (u32, u64)>>,
}

impl FailureLimiter {
    pub const LIMIT: u32 = 20;
    pub const WINDOW: u64 = 60;

    pub fn new() -> FailureLimiter {
        FailureLimiter { seen: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    fn blocked(&self, who: &str, now: u64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(who).is_some_and(|&(n, start)| n >= Self::LIMIT && now < start + Self::WINDOW)
    }

    fn fail(&self, who: &str, now: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, &mut (_, start)| now < start + Self::WINDOW);
        }
        let e = seen.entry(who.to_string()).or_insert((0, now));
        if now >= e.1 + Self::WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }
}

/// A plain per-source request budget (public endpoints): `LIMIT` requests per `WINDOW` seconds.
pub struct RequestLimiter(FailureLimiter);

impl RequestLimiter {
    pub fn new() -> RequestLimiter {
        RequestLimiter(FailureLimiter::new())
    }

    /// Counts a request; true when this source is over its budget.
    pub fn hit(&self, ip: std::net::IpAddr, now: u64) -> bool {
        let ip = ip.to_string();
        if self.0.blocked(&ip, now) {
            return true;
        }
        self.0.fail(&ip, now);
        false
    }
}

impl Default for RequestLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new()
    }
}

/// The bootstrap key file's path.
pub fn bootstrap_key_path(data: &Path) -> PathBuf {
    data.join("bootstrap-admin.key")
}

/// Reads the bootstrap admin key, creating it (mode 0600) on first start. Returns the key and
/// whether it was created.
pub fn load_or_create_bootstrap(data: &Path) -> std::io::Result<(String, bool)> {
    let path = bootstrap_key_path(data);
    if path.exists() {
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{} must not be readable by group or others (chmod 600)",
                path.display()
            )));
        }
        let key = std::fs::read_to_string(&path)?.trim().to_string();
        return Ok((key, false));
    }
    std::fs::create_dir_all(data)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let key = format!("csk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    f.write_all(key.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok((key, true))
}

/// A verified staff caller, authorized for the route by [`super::routes::authorize`] before the
/// handler runs (the layer hands it over in the request's extensions).
pub struct Staff(pub crate::staff::Staff);

impl std::ops::Deref for Staff {
    type Target = crate::staff::Staff;
    fn deref(&self) -> &crate::staff::Staff {
        &self.0
    }
}

impl Staff {
    /// The key presented with the request, checked: valid, unrevoked, unexpired. Failures count
    /// against the source address and the key id ([`FailureLimiter`]).
    pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<crate::staff::Staff, ApiError> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        // Behind a trusted reverse proxy, the client named in X-Forwarded-For.
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let ip = state.service.config.http.client_ip(ip, forwarded);
        let now = state.service.clock.now();
        let presented = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => String::new(),
            Some(v) => v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("\u{0}").to_string(),
        };
        // The key id a failure is counted against (`csk_<id>_…`), before `presented` moves.
        let key_id = format!(
            "key:{}",
            presented.strip_prefix("csk_").and_then(|r| r.split_once('_')).map(|(id, _)| id).unwrap_or("bootstrap")
        );
        let svc = state.service.clone();
        let bootstrap = state.bootstrap.clone();
        let result = super::blocking(move || {
            crate::staff::authenticate(svc.store.as_ref(), bootstrap.expose(), &presented, now)
        })
        .await?;
        match result {
            Ok(s) => Ok(s),
            Err(e) => {
                let ip = format!("ip:{ip}");
                let blocked = state.limiter.blocked(&ip, now) || state.limiter.blocked(&key_id, now);
                state.limiter.fail(&ip, now);
                state.limiter.fail(&key_id, now);
                if blocked {
                    return Err(ApiError::TooManyRequests);
                }
                Err(ApiError::Unauthorized(match e {
                    AuthError::Missing => "missing API key: send Authorization: Bearer <key>",
                    AuthError::Invalid => "invalid API key",
                    AuthError::Revoked => "this API key has been revoked",
                    AuthError::Expired => "this API key has expired",
                }))
            }
        }
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    /// The caller the route layer admitted. A handler taking `Staff` on a route whose row does
    /// not ask for a key has no such caller: refused (fail closed), and logged as the bug it is.
    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<crate::staff::Staff>() {
            Some(s) => Ok(Staff(s.clone())),
            None => {
                tracing::error!("a handler asked for a staff key on a route the route table does not guard with one");
                Err(ApiError::Forbidden)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_key_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k1, created) = load_or_create_bootstrap(dir.path()).expect("created");
        assert!(created && k1.starts_with("csk_"));
        let mode = std::fs::metadata(bootstrap_key_path(dir.path())).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (k2, created) = load_or_create_bootstrap(dir.path()).expect("reloaded");
        assert!(!created);
        assert_eq!(k1, k2);
    }
}
