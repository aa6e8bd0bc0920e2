//! The HTTP client of operator commands that talk to the running server on this machine (the
//! server holds sled's lock, so `backup`, `verify`, `audit verify` and `outbox` ask it): ureq,
//! plain HTTP to the address the server wrote to `<data>/server.url`, no proxy, no redirects.

use std::path::Path;
use std::time::Duration;

/// The running server's base URL and the bootstrap key, from the data directory.
pub fn server(data: &Path) -> Result<(String, String), String> {
    let url = std::fs::read_to_string(data.join("server.url"))
        .map_err(|_| format!("{} is in use but names no server address (server.url)", data.display()))?;
    let key = std::fs::read_to_string(crate::http::auth::bootstrap_key_path(data))
        .map_err(|e| format!("cannot read the bootstrap admin key: {e}"))?;
    Ok((url.trim().trim_end_matches('/').to_string(), key.trim().to_string()))
}

/// The largest reply accepted (a backup of the whole store comes this way).
const MAX_REPLY: u64 = 64 * 1024 * 1024 * 1024;

/// Sends a request and returns (status, body); any status is a reply, not an error.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(Duration::from_secs(300)))
        .timeout_per_write(Some(Duration::from_secs(300)))
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let url = format!("{base}{path}");
    let builder = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "application/json");
    let builder = match content_type {
        Some(t) => builder.header("Content-Type", t),
        None => builder,
    };
    let req = builder.body(body.to_vec()).map_err(|e| format!("{url}: {e}"))?;
    let mut resp = agent.run(req).map_err(|e| match e {
        e @ (ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound) => {
            format!("cannot reach the server at {base}: {e}")
        }
        e => format!("request to {base}: {e}"),
    })?;
    let status = resp.status().as_u16();
    let body =
        resp.body_mut().with_config().limit(MAX_REPLY).read_to_vec().map_err(|e| format!("reply from {base}: {e}"))?;
    Ok((status, body))
}
