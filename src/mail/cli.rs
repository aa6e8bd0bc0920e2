//! `countersign outbox [list|retry ID]`: the outbox for operators.
//!
//! When no server holds the data directory the store is opened directly (a retried message goes
//! out when the server next starts). When a server runs (sled is locked) the command asks it
//! through its API, with the bootstrap admin key from the data directory, over a minimal
//! HTTP/1.1 client on plain TCP (the server listens on loopback behind a TLS proxy; give
//! `--server http://HOST:PORT` when it is not at the configured `bind`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::outbox;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Overrides};
use crate::store::StoreError;
use crate::store::sled_store::SledStore;

#[derive(clap::Args, Debug)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    /// TOML config file (for data_dir and bind).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// The running server, e.g. http://127.0.0.1:8080 (default: http://<bind>).
    #[arg(long, global = true)]
    pub server: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum OutboxCommand {
    /// Every message with its delivery status (the default).
    List {
        /// Only messages in this state: queued, sent, failed or skipped.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a failed or skipped message back in the queue (attempts reset), or make a queued one
    /// due now.
    Retry { id: String },
}

pub fn run(args: OutboxArgs) -> Result<ExitCode, String> {
    let config = Config::load(&Overrides { config: args.config.clone(), data: args.data.clone(), bind: None })?;
    let command = args.command.unwrap_or(OutboxCommand::List { status: None, json: false });
    let backend = match SledStore::open(&config.data_dir) {
        Ok(store) => Backend::Store(Box::new(store)),
        Err(StoreError::Locked(_)) => {
            let key_path = crate::http::auth::bootstrap_key_path(&config.data_dir);
            let key = std::fs::read_to_string(&key_path)
                .map_err(|e| {
                    format!(
                        "a server holds {}; cannot read its key {}: {e}",
                        config.data_dir.display(),
                        key_path.display()
                    )
                })?
                .trim()
                .to_string();
            let base = args.server.clone().unwrap_or_else(|| format!("http://{}", config.bind));
            Backend::Server { base, key }
        }
        Err(e) => return Err(e.to_string()),
    };
    match command {
        OutboxCommand::List { status, json } => {
            if let Some(s) = &status {
                outbox::parse_status(s)?;
            }
            let items: Vec<Value> = match &backend {
                Backend::Store(store) => {
                    let st = status.as_deref().map(outbox::parse_status).transpose()?;
                    outbox::list(store.as_ref(), st).map_err(|e| e.to_string())?.iter().map(outbox::view).collect()
                }
                Backend::Server { base, key } => {
                    let path = match &status {
                        Some(s) => format!("/api/v1/outbox?status={s}"),
                        None => "/api/v1/outbox".into(),
                    };
                    let v = api(base, key, "GET", &path)?;
                    v.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
            } else {
                print_table(&items);
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Retry { id } => {
            let m =
                match &backend {
                    Backend::Store(store) => outbox::view(
                        &outbox::retry(store.as_ref(), &id, SystemClock.now(), "cli:outbox").map_err(|e| match e {
                            crate::signing::service::ServiceError::NotFound => format!("no message {id}"),
                            e => e.to_string(),
                        })?,
                    ),
                    Backend::Server { base, key } => {
                        api(base, key, "POST", &format!("/api/v1/outbox/{}/retry", encode(&id)))?
                    }
                };
            println!(
                "{} queued again ({}){}",
                m["id"].as_str().unwrap_or(&id),
                m["kind"].as_str().unwrap_or(""),
                if matches!(backend, Backend::Store(_)) { "; it goes out when the server starts" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

enum Backend {
    Store(Box<SledStore>),
    Server { base: String, key: String },
}

fn print_table(items: &[Value]) {
    if items.is_empty() {
        println!("the outbox is empty");
        return;
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    println!("{:<44} {:<16} {:<8} {:>3} {:<32} {:<20} detail", "id", "kind", "status", "try", "to", "created");
    for m in items {
        let detail = match s(m, "status").as_str() {
            "sent" => s(m, "reply"),
            "queued" => {
                let next = s(m, "next_attempt_at");
                let err = s(m, "last_error");
                match (next.is_empty(), err.is_empty()) {
                    (true, true) => String::new(),
                    (false, true) => format!("next attempt {next}"),
                    (_, false) => format!("{err}; next attempt {next}"),
                }
            }
            _ => s(m, "last_error"),
        };
        println!(
            "{:<44} {:<16} {:<8} {:>3} {:<32} {:<20} {}",
            s(m, "id"),
            s(m, "kind"),
            s(m, "status"),
            m.get("attempts").and_then(Value::as_u64).unwrap_or(0),
            s(m, "to"),
            s(m, "created_at"),
            detail
        );
    }
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One API call; the JSON body on 2xx, else the API's error message.
fn api(base: &str, key: &str, method: &str, path: &str) -> Result<Value, String> {
    let (status, body) = request(base, key, method, path)?;
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Ok(v)
    } else {
        let msg = v["error"]["message"].as_str().map(String::from).unwrap_or_else(|| body.trim().to_string());
        Err(format!("the server answered {status}: {msg}"))
    }
}

/// A minimal HTTP/1.1 request over plain TCP (`Connection: close`, optional chunked reply).
pub fn request(base: &str, key: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("--server must be http://HOST:PORT (this client speaks plain HTTP), not {base:?}"))?
        .trim_end_matches('/');
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("cannot reach the server at {base}: {e} (give --server http://HOST:PORT)"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {key}\r\nUser-Agent: countersign-cli\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).map_err(|e| format!("request to {base}: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("reply from {base}: {e}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("malformed HTTP reply")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or("malformed chunked reply")?;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
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
        assert_eq!(parse_response(plain).expect("ok"), (200, "{}".to_string()));
        let chunked =
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).expect("ok"), (409, "{\"a\":1}".to_string()));
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(encode("reminder:ag_1:s1"), "reminder%3Aag_1%3As1");
    }
}
