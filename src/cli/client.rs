//! A minimal HTTP/1.1 client for operator commands that talk to the running server on this
//! machine (the server holds sled's lock, so `backup`, `verify` and `audit verify` ask it).
//! Plain HTTP to the address the server wrote to `<data>/server.url`; nothing else.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
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

/// Sends a request and returns (status, body). Plain HTTP/1.1 with `Connection: close`; a
/// chunked reply is decoded.
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("Authorization", auth.as_str()), ("Accept", "application/json")];
    if let Some(t) = content_type {
        headers.push(("Content-Type", t));
    }
    let limits = Limits { connect: Duration::from_secs(10), io: Duration::from_secs(300), max_reply: u64::MAX };
    send(base, method, path, &headers, body, &limits).map_err(|e| match e {
        SendError::Connect(e) => format!("cannot reach the server at {base}: {e}"),
        SendError::Other(e) => e,
    })
}

/// Timeouts and the largest reply [`send`] accepts.
pub struct Limits {
    pub connect: Duration,
    /// Read and write timeout of each socket operation.
    pub io: Duration,
    pub max_reply: u64,
}

/// Why [`send`] failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection (refused, unreachable, timed out).
    Connect(String),
    /// A malformed base URL, an I/O error or timeout during the exchange, or a malformed reply.
    Other(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) | SendError::Other(e) => f.write_str(e),
        }
    }
}

/// Sends `method path` to `base` (`http://HOST[:PORT]`, port 80 by default) with `headers`
/// and returns (status, body). Plain HTTP/1.1 with `Connection: close`; a chunked reply is
/// decoded.
pub fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limits: &Limits,
) -> Result<(u16, Vec<u8>), SendError> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| SendError::Other(format!("{base:?}: this client speaks plain HTTP (http://HOST:PORT)")))?
        .trim_end_matches('/');
    let with_port = if hostport.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !hostport.ends_with(']')
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| SendError::Connect(format!("{hostport}: {e}")))?
        .next()
        .ok_or_else(|| SendError::Connect(format!("{hostport}: no address")))?;
    let mut s = TcpStream::connect_timeout(&addr, limits.connect).map_err(|e| SendError::Connect(e.to_string()))?;
    let _ = s.set_read_timeout(Some(limits.io));
    let _ = s.set_write_timeout(Some(limits.io));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\nUser-Agent: countersign/{}\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| SendError::Other(format!("request to {base}: {e}")))?;
    let mut raw = Vec::new();
    (&mut s)
        .take(limits.max_reply)
        .read_to_end(&mut raw)
        .map_err(|e| SendError::Other(format!("reply from {base}: {e}")))?;
    parse_response(&raw).map_err(SendError::Other)
}

/// Splits a raw HTTP/1.1 reply into status and body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("malformed HTTP reply")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let mut body = raw[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or("malformed chunked reply")?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).expect("ok"), (200, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).expect("ok"), (409, b"{\"a\":1}".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }
}
