//! The application layer: the [`service::Service`] that carries agreements from intake to
//! archive, whatever calls it (the HTTP API, the signer pages, the mail sender, the CLI).
//!
//! * [`service`] — the service object, drafting and the signing ceremony.
//! * [`update`] — one read–modify–commit for every change to an agreement; `combine` applies
//!   concurrent writers' changes in one store commit (one sled transaction) by one of them.
//! * [`lifecycle`] — verify, renewal, termination, return or destruction of PHI, retention.
//! * [`listing`] — archive search and export: the index's ids, the store's entries.
//! * [`access`] — the access log: reads of archived documents, whichever route served them.
//! * [`email_code`] — signer verification: a one-time code emailed to the signer, asked for
//!   before the signature is accepted (when the intake or the policy turns it on).
//! * [`views`] — the first-view rule: later views of a signer link counted in memory.
//! * [`outbox`], [`schedule`], [`sender`] — delivery: the outbox as seen by staff, which
//!   reminders and notices are due, and the background task that sends due mail and writes
//!   the `.eml` copies of what a signature queued; `memory` — freed heap returned to the
//!   system after the sender's start-up passes, each reminder tick and the large listings.
//! * [`seed`] — `countersign bench seed`: many realistic agreements written through the store.
//! * [`webhooks`] — signed webhook events, queued with the change that causes them, and the
//!   task that delivers them.
//!
//! It depends on everything below it (`domain`, `render`, `pdf`, `seal`, `store`, `mail`
//! composition) and on nothing above it (`http`, `cli`).

pub mod access;
mod combine;
pub mod drafting;
pub mod email_code;
pub mod keys;
pub mod lifecycle;
pub mod listing;
pub(crate) mod memory;
pub mod outbox;
pub mod schedule;
pub mod seed;
pub mod sender;
pub mod service;
pub mod snapshot;
pub mod update;
pub mod vendors;
pub mod views;
pub mod webhooks;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::findings::Finding;
use crate::domain::intake::Intake;
use crate::render::Renderer;
use crate::signing::token::KeyRing;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError, audit};
use service::Service;

/// Parses intake JSON into a validated [`Intake`], or the findings (JSON pointer and reason)
/// that say what is wrong. Text the embedded font cannot print is a finding too.
pub fn load_intake(text: &str) -> Result<Intake, Vec<Finding>> {
    crate::domain::parse::parse_intake(text, &crate::render::fonts::printable)
}

/// Why the service cannot be opened from its configuration. Printed by the CLI as it is.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The mail templates do not load.
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("seal keys: {0}")]
    SealKeys(crate::seal::SealError),
    #[error("cannot read {}: {source}", path.display())]
    ReadPkcs12 { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Pkcs12 { path: std::path::PathBuf, source: crate::seal::SealError },
    #[error("link keys: {0}")]
    LinkKeys(crate::signing::token::KeyError),
    #[error("link key {0}: secret is not base64url")]
    LinkKeyEncoding(String),
    #[error(transparent)]
    Templates(#[from] crate::render::RenderError),
    #[error(transparent)]
    Policy(#[from] crate::domain::provisions::PolicyError),
    #[error(transparent)]
    Vault(#[from] crate::secret::vault::VaultError),
    #[error("database: {0}")]
    Database(StoreError),
    #[error("the data directory {0} is in use by another countersign process; stop it or choose --data")]
    Locked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Service(#[from] service::ServiceError),
}

/// The CLI prints it as it is.
impl From<OpenError> for String {
    fn from(e: OpenError) -> String {
        e.to_string()
    }
}

/// The sealing keys: a configured PKCS#12 file (whose certificate signs; the generated CA's
/// certificates still verify older seals), or the private CA generated into `<data>/seal`.
pub fn seal_keys(config: &Config) -> Result<crate::seal::SealKeys, OpenError> {
    let generated =
        crate::seal::SealKeys::load_or_create(&config.data_dir.join("seal")).map_err(OpenError::SealKeys)?;
    match &config.seal_pkcs12 {
        None => Ok(generated),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| OpenError::ReadPkcs12 { path: path.clone(), source })?;
            let password = config.seal_pkcs12_password.as_ref().map(|p| p.expose()).unwrap_or("");
            let keys = crate::seal::SealKeys::from_pkcs12(&bytes, password)
                .map_err(|source| OpenError::Pkcs12 { path: path.clone(), source })?;
            Ok(keys.also_trust(&generated))
        }
    }
}

/// Opens the service a server runs on, from configuration: the store, the link keys, the
/// renderer, the seal; messages committed before a crash but not yet written out are flushed.
pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Service, OpenError> {
    let store = open_store(&config)?;
    open_on(config, store, clock)
}

/// [`open`] over a store already opened (operator commands open it first to learn whether a
/// server holds it).
pub fn open_on(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Service, OpenError> {
    crate::config::mail::validate(&config)?;
    crate::mail::content::check()?;
    let keys = if config.link_keys.is_empty() {
        KeyRing::load_or_create(&config.data_dir.join("link-keys")).map_err(OpenError::LinkKeys)?
    } else {
        let pairs = config
            .link_keys
            .iter()
            .map(|k| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k.secret.expose().trim_end_matches('='))
                    .map(|b| (k.id.clone(), crate::secret::Secret::new(b)))
                    .map_err(|_| OpenError::LinkKeyEncoding(k.id.clone()))
            })
            .collect::<Result<Vec<_>, OpenError>>()?;
        KeyRing::new(pairs).map_err(OpenError::LinkKeys)?
    };
    let mut renderer = Renderer::builtin()?;
    if let Some(p) = &config.policy_file {
        renderer = renderer.with_policy(crate::domain::provisions::Policy::load(p)?);
    }
    let seal = seal_keys(&config)?;
    let vault = crate::secret::vault::Vault::load(&config.vault_key_path(), true)?;
    let service = Service::new(store, keys, renderer, config, clock, seal, vault);
    // Messages committed before a crash but not yet written out.
    service.flush_outbox()?;
    Ok(service)
}

/// This process's resident set in MB (`VmRSS` of `/proc/self/status`), for the start-up log
/// lines; None where there is no such file.
pub(crate) fn rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// Opens the store the configuration chooses: PostgreSQL when `database_url` is set (key files
/// stay in the data directory), else sled in the data directory.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, OpenError> {
    if let Some(url) = &config.database_url {
        let store =
            crate::store::postgres::PgStore::open(url.expose(), &config.data_dir).map_err(OpenError::Database)?;
        return Ok(Arc::new(store));
    }
    let started = std::time::Instant::now();
    let store = SledStore::open(&config.data_dir).map_err(|e| match e {
        StoreError::Locked(d) => OpenError::Locked(d),
        e => OpenError::Store(e),
    })?;
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(ms, rss_mb = rss_mb(), "store opened in {ms} ms");
    Ok(Arc::new(store))
}

/// The first thing wrong with the stored audit trail, as [`verify_chains`] finds it; the
/// text is the sentence `countersign audit verify` prints.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event whose hash or link does not verify.
    #[error("agreement {}: event #{}: {}", .0.agreement_id, .0.position, .0.reason)]
    Broken(audit::Break),
    #[error("agreement {0}: its chain has no recorded head")]
    NoHead(String),
    #[error("agreement {0}: the chain's head is not authentic (its MAC does not match: rewritten?)")]
    HeadNotAuthentic(String),
    #[error("agreement {id}: the chain has {events} event(s) but its head records {head}: events were deleted")]
    Truncated { id: String, events: usize, head: u64 },
    #[error("agreement {id}: its head records {head} event(s) but the chain is missing")]
    ChainMissing { id: String, head: u64 },
    #[error("agreement {0}: it has no audit chain (its events were deleted)")]
    NoChain(String),
}

/// Two answers are the same when they say the same (a store error carries no equality).
impl PartialEq for ChainError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// The CLI prints it as it is.
impl From<ChainError> for String {
    fn from(e: ChainError) -> String {
        e.to_string()
    }
}

/// Walks every chain; `Ok((chains, events))` or the first break.
pub fn verify_chains(store: &dyn Store) -> Result<(usize, usize), ChainError> {
    // One moment's view: on PostgreSQL other instances append while this walks.
    let snapshot = store.audit_snapshot()?;
    let chains = snapshot.chains;
    let heads: std::collections::HashMap<String, crate::store::ChainHead> =
        snapshot.heads.into_iter().map(|h| (h.agreement_id.clone(), h)).collect();
    let mut events = 0;
    let mut seen = std::collections::HashSet::new();
    for (id, raw) in &chains {
        let n = audit::verify_chain(id, raw).map_err(ChainError::Broken)?;
        // The chain must end where its authenticated head says: events removed from the end
        // (or the head rewritten) show here.
        let head = heads.get(id).ok_or_else(|| ChainError::NoHead(id.clone()))?;
        if !head.authentic {
            return Err(ChainError::HeadNotAuthentic(id.clone()));
        }
        let last = raw.last().and_then(|b| serde_json::from_slice::<audit::Event>(b).ok()).map(|e| e.hash);
        if head.seq != n as u64 || last.as_deref() != Some(head.hash.as_str()) {
            return Err(ChainError::Truncated { id: id.clone(), events: n, head: head.seq });
        }
        seen.insert(id.clone());
        events += n;
    }
    // A head whose chain is gone entirely.
    if let Some(h) = heads.values().find(|h| !seen.contains(&h.agreement_id)) {
        return Err(ChainError::ChainMissing { id: h.agreement_id.clone(), head: h.seq });
    }
    // Every agreement has a chain (each begins with `created`).
    if let Some(a) = snapshot.agreement_ids.iter().find(|a| !seen.contains(*a)) {
        return Err(ChainError::NoChain(a.clone()));
    }
    Ok((chains.len(), events))
}
