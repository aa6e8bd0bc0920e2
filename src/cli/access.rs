//! Where an operator command finds the data, written once for every command that reads or
//! changes the store: the store the configuration names (sled in the data directory, or
//! PostgreSQL with `--database-url` / `COUNTERSIGN_DATABASE_URL`), or the running server that
//! holds it.
//!
//! sled: one process at a time holds the directory (sled's lock). When a server holds it,
//! commands that must work then ask that server through its API (address from `--server`, else
//! `<data>/server.url`, else `http://<bind>`; the bootstrap admin key from the directory); the
//! others refuse plainly and name the API route to use instead.
//!
//! PostgreSQL: the database is shared by design: instances on several machines use it at once,
//! and every change is a transaction with the same checks a server makes (revision checks,
//! row-locked audit chains, `SKIP LOCKED` claims of outbox work). So the command opens the
//! database itself whether or not servers run, and a running instance sees the change at its
//! next read (API keys are checked against the store on every request; a queued message goes
//! out at an instance's next sender pass). Only what lives in an instance's memory or files
//! waits for its restart: a rotated sealing certificate or link key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::config::{Config, Overrides};
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError};

/// `--config`, `--data` and `--database-url` of the operator commands with subcommands
/// (`outbox`, `user`, `vendors`, `webhooks`), with the same precedence as `serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Place {
    /// TOML config file (for data_dir, database_url and bind).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// The PostgreSQL database the instances share (overrides config and
    /// COUNTERSIGN_DATABASE_URL): the command then works on it directly, servers running or not.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

impl Place {
    pub fn config(&self) -> Result<Config, String> {
        Config::load(&Overrides {
            config: self.config.clone(),
            data: self.data.clone(),
            database_url: self.database_url.clone(),
            ..Default::default()
        })
        .map_err(String::from)
    }
}

/// The configuration of a command that takes `--data DIR` (and `--database-url`): the
/// environment as `serve` reads it (so `COUNTERSIGN_DATABASE_URL` chooses PostgreSQL), then the
/// flags.
pub fn config_for(data: &Path, database_url: Option<&str>) -> Result<Config, String> {
    Config::load(&Overrides {
        data: Some(data.to_path_buf()),
        database_url: database_url.map(str::to_string),
        ..Default::default()
    })
    .map_err(String::from)
}

/// The store the configuration names, opened for an offline command. On sled, when a server
/// holds the directory: an error naming `api`, the route to use instead.
pub fn open_store(config: &Config, api: &str) -> Result<Arc<dyn Store>, String> {
    if config.database_url.is_some() {
        return crate::app::open_store(config).map_err(String::from);
    }
    match SledStore::open(&config.data_dir) {
        Ok(s) => Ok(Arc::new(s)),
        Err(StoreError::Locked(d)) => Err(format!(
            "{d} is held by a running countersign server; refusing to open it. Use the API instead: {api} (with an admin key)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The running server a command asks instead of opening the store.
pub struct Remote {
    pub base: String,
    key: String,
}

impl Remote {
    /// One request; the body on 2xx, else the API's error message.
    pub fn call(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Result<Vec<u8>, String> {
        let (ct, bytes) = body.map_or((None, &[][..]), |(ct, b)| (Some(ct), b));
        let (status, reply) = super::client::request(&self.base, method, path, &self.key, ct, bytes)?;
        if (200..300).contains(&status) {
            return Ok(reply);
        }
        let v: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
        let msg = v["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply).trim().to_string());
        Err(format!("the server answered {status}: {msg}"))
    }

    /// [`Remote::call`] with a JSON body and reply.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let text = body.map(Value::to_string);
        let reply = self.call(method, path, text.as_deref().map(|t| ("application/json", t.as_bytes())))?;
        Ok(serde_json::from_slice(&reply).unwrap_or(Value::Null))
    }
}

/// Server or store: what an operator command works on.
pub enum Access {
    /// No server holds the data (sled), or the data is in PostgreSQL: the store itself.
    Store(Arc<dyn Store>),
    /// A server holds the sled directory: ask it.
    Server(Remote),
}

/// Opens the store the configuration names; on sled, when a server holds the directory, finds
/// that server instead (`server`: the `--server` flag, if the command has one).
pub fn access(config: &Config, server: Option<&str>) -> Result<Access, String> {
    if config.database_url.is_some() {
        return crate::app::open_store(config).map(Access::Store).map_err(String::from);
    }
    match SledStore::open(&config.data_dir) {
        Ok(s) => Ok(Access::Store(Arc::new(s))),
        Err(StoreError::Locked(_)) => remote(config, server).map(Access::Server),
        Err(e) => Err(e.to_string()),
    }
}

/// The server holding `config.data_dir`: its address and the bootstrap admin key.
fn remote(config: &Config, server: Option<&str>) -> Result<Remote, String> {
    let data = &config.data_dir;
    let key_path = crate::http::auth::bootstrap_key_path(data);
    let key = std::fs::read_to_string(&key_path)
        .map_err(|e| format!("a server holds {}; cannot read its key {}: {e}", data.display(), key_path.display()))?;
    let base = match server {
        Some(s) => s.to_string(),
        None => std::fs::read_to_string(data.join("server.url"))
            .map(|u| u.trim().to_string())
            .unwrap_or_else(|_| format!("http://{}", config.bind)),
    };
    Ok(Remote { base: base.trim_end_matches('/').to_string(), key: key.trim().to_string() })
}

/// The application state over a store opened by [`access`] or [`open_store`], for commands
/// that need the service's logic (no HTTP server, no sender: what they queue goes out at a
/// running instance's next sender pass, or when a server starts).
pub fn state(config: Config, store: Arc<dyn Store>) -> Result<crate::http::AppState, String> {
    let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
    crate::http::state::build_state_on(config, store, clock).map(|(s, _, _)| s).map_err(String::from)
}

/// Where a change made offline takes effect, for the command's last line.
pub fn when_sent(config: &Config) -> &'static str {
    if config.database_url.is_some() {
        "a running instance sends it at its next sender pass, else it goes out when the server starts"
    } else {
        "it goes out when the server starts"
    }
}

/// Percent-encodes a path segment.
pub fn encode(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode("reminder:ag_1:s1"), "reminder%3Aag_1%3As1");
    }
}
