//! `countersign outbox [list|retry ID]`: the outbox for operators.
//!
//! When no server holds the data directory the store is opened directly (a retried message goes
//! out when the server next starts). When a server runs (sled is locked) the command asks it
//! through its API, with the bootstrap admin key from the data directory, over a minimal
//! HTTP/1.1 client on plain TCP (the server listens on loopback behind a TLS proxy; give
//! `--server http://HOST:PORT` when it is not at the configured `bind`).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use crate::app::outbox;
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
    let config = Config::load(&Overrides {
        config: args.config.clone(),
        data: args.data.clone(),
        bind: None,
        ..Default::default()
    })?;
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
                            crate::app::service::ServiceError::NotFound => format!("no message {id}"),
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

/// One request to the running server (the shared loopback client), body as text.
pub fn request(base: &str, key: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    let (status, body) = crate::cli::client::request(base, method, path, key, None, &[])?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("reminder:ag_1:s1"), "reminder%3Aag_1%3As1");
    }
}
