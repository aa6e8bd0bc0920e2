//! A minimal HTTP/1.1 client for operator commands that talk to the running server on this
//! machine (the server holds sled's lock, so `backup`, `verify` and `audit verify` ask it).
//! Plain HTTP to the address the server wrote to `<data>/server.url`; nothing else.

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// Sends a request and returns (status, body).
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let hostport =
        base.strip_prefix("http://").ok_or_else(|| format!("{base}: only http:// on this machine is supported"))?;
    let mut s = TcpStream::connect(hostport).map_err(|e| format!("cannot reach the server at {base}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(300)));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\nContent-Length: {}\r\nUser-Agent: countersign-cli/{}\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).map_err(|e| format!("request failed: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("response failed: {e}"))?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("malformed response")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("malformed status line")?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
