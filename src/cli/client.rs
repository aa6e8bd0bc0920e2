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
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| {
            format!("{base:?}: this client speaks plain HTTP to a server on this machine (http://HOST:PORT)")
        })?
        .trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("cannot reach the server at {base}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(300)));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: {}\r\nUser-Agent: countersign-cli/{}\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).map_err(|e| format!("request to {base}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("reply from {base}: {e}"))?;
    parse_response(&raw)
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
