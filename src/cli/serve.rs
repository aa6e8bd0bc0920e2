//! `countersign serve` and `countersign audit verify`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Overrides};
use crate::http::{AppState, auth, sign};
use crate::render::Renderer;
use crate::signing::service::Service;
use crate::signing::token::KeyRing;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError, audit};

/// The sealing keys: a configured PKCS#12 file (whose certificate signs; the generated CA's
/// certificates still verify older seals), or the private CA generated into `<data>/seal`.
pub fn seal_keys(config: &Config) -> Result<crate::seal::SealKeys, String> {
    let generated =
        crate::seal::SealKeys::load_or_create(&config.data_dir.join("seal")).map_err(|e| format!("seal keys: {e}"))?;
    match &config.seal_pkcs12 {
        None => Ok(generated),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let password = config.seal_pkcs12_password.as_ref().map(|p| p.expose()).unwrap_or("");
            let keys =
                crate::seal::SealKeys::from_pkcs12(&bytes, password).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(keys.also_trust(&generated))
        }
    }
}

/// Everything a server needs, built from configuration (also used by tests).
pub fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<(AppState, String, bool), String> {
    crate::mail::settings::validate(&config)?;
    crate::mail::content::check()?;
    let store = SledStore::open(&config.data_dir).map_err(|e| match e {
        StoreError::Locked(d) => {
            format!("the data directory {d} is in use by another countersign process; stop it or choose --data")
        }
        e => e.to_string(),
    })?;
    let keys = if config.link_keys.is_empty() {
        KeyRing::load_or_create(&config.data_dir.join("link-keys")).map_err(|e| format!("link keys: {e}"))?
    } else {
        let pairs = config
            .link_keys
            .iter()
            .map(|k| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k.secret.expose().trim_end_matches('='))
                    .map(|b| (k.id.clone(), crate::secret::Secret::new(b)))
                    .map_err(|_| format!("link key {}: secret is not base64url", k.id))
            })
            .collect::<Result<Vec<_>, String>>()?;
        KeyRing::new(pairs).map_err(|e| format!("link keys: {e}"))?
    };
    let (admin_key, created) =
        auth::load_or_create_bootstrap(&config.data_dir).map_err(|e| format!("bootstrap admin key: {e}"))?;
    let mut renderer = Renderer::builtin().map_err(|e| e.to_string())?;
    if let Some(p) = &config.policy_file {
        renderer = renderer.with_policy(crate::domain::provisions::Policy::load(p)?);
    }
    let pages = sign::Pages::new()?;
    let seal = seal_keys(&config)?;
    let service = Service::new(Arc::new(store), keys, renderer, config, clock, seal);
    // Messages committed before a crash but not yet written out.
    service.flush_outbox().map_err(|e| e.to_string())?;
    let state = AppState {
        service: Arc::new(service),
        bootstrap: Arc::new(crate::secret::SecretString::new(admin_key.clone())),
        limiter: Arc::new(auth::FailureLimiter::new()),
        public_limiter: Arc::new(auth::RequestLimiter::new()),
        pages: Arc::new(pages),
    };
    Ok((state, admin_key, created))
}

pub fn serve(o: Overrides) -> Result<ExitCode, String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG").unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let config = Config::load(&o)?;
    if config.smtp.is_some() && is_loopback_url(&config.base_url()) {
        let msg = format!(
            "email is configured but links point at {}, a loopback address recipients cannot reach; set public_base_url",
            config.base_url()
        );
        tracing::warn!("{msg}");
        eprintln!("warning: {msg}");
    }
    let bind = config.bind;
    let base = config.base_url();
    let data = config.data_dir.clone();
    let (state, _key, created) = build_state(config, Arc::new(SystemClock))?;
    let key_path = auth::bootstrap_key_path(&data);
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(bind).await.map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // Operator commands find the running server here (the server holds sled's lock).
        let url_file = data.join("server.url");
        let _ = std::fs::write(&url_file, format!("http://{addr}\n"));
        println!("countersign listening on http://{addr} (links use {base})");
        println!("data: {}", data.display());
        println!(
            "bootstrap admin key {}: {} (send it as Authorization: Bearer …)",
            if created { "created" } else { "in" },
            key_path.display()
        );
        let r = crate::http::run(listener, state, shutdown_signal()).await.map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&url_file);
        r
    })?;
    Ok(ExitCode::SUCCESS)
}

/// True when a base URL's host is this machine only (127.0.0.0/8, ::1, localhost).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Walks every chain; `Ok((chains, events))` or the first break as a sentence.
pub fn verify_chains(store: &dyn Store) -> Result<(usize, usize), String> {
    let chains = store.raw_chains().map_err(|e| e.to_string())?;
    let heads: std::collections::HashMap<String, crate::store::ChainHead> =
        store.chain_heads().map_err(|e| e.to_string())?.into_iter().map(|h| (h.agreement_id.clone(), h)).collect();
    let mut events = 0;
    let mut seen = std::collections::HashSet::new();
    for (id, raw) in &chains {
        let n = audit::verify_chain(id, raw)
            .map_err(|b| format!("agreement {}: event #{}: {}", b.agreement_id, b.position, b.reason))?;
        // The chain must end where its authenticated head says: events removed from the end
        // (or the head rewritten) show here.
        let head = heads.get(id).ok_or_else(|| format!("agreement {id}: its chain has no recorded head"))?;
        if !head.authentic {
            return Err(format!(
                "agreement {id}: the chain's head is not authentic (its MAC does not match: rewritten?)"
            ));
        }
        let last = raw.last().and_then(|b| serde_json::from_slice::<audit::Event>(b).ok()).map(|e| e.hash);
        if head.seq != n as u64 || last.as_deref() != Some(head.hash.as_str()) {
            return Err(format!(
                "agreement {id}: the chain has {n} event(s) but its head records {}: events were deleted",
                head.seq
            ));
        }
        seen.insert(id.clone());
        events += n;
    }
    // A head whose chain is gone entirely.
    if let Some(h) = heads.values().find(|h| !seen.contains(&h.agreement_id)) {
        return Err(format!(
            "agreement {}: its head records {} event(s) but the chain is missing",
            h.agreement_id, h.seq
        ));
    }
    // Every agreement has a chain (each begins with `created`).
    let agreements = store.agreements().map_err(|e| e.to_string())?;
    if let Some(a) = agreements.iter().find(|a| !seen.contains(&a.id)) {
        return Err(format!("agreement {}: it has no audit chain (its events were deleted)", a.id));
    }
    Ok((chains.len(), events))
}

pub fn audit_verify(data: &Path) -> Result<ExitCode, String> {
    let store = match SledStore::open(data) {
        Ok(s) => s,
        Err(StoreError::Locked(d)) => {
            return Err(format!(
                "{d} is held by a running countersign server. Stop it first, or ask the server: \
                 curl -H \"Authorization: Bearer $(cat {})\" http://<bind>/api/v1/audit/verify",
                auth::bootstrap_key_path(data).display()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    match verify_chains(&store) {
        Ok((chains, events)) => {
            println!("audit trail intact: {chains} agreement chain(s), {events} event(s)");
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            println!("audit trail BROKEN: {b}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn loopback_base_urls_are_recognised() {
        for u in ["http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:80", "http://127.9.9.9"] {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in ["https://sign.example.com", "http://10.0.0.5:8080", "https://[2001:db8::1]/x"] {
            assert!(!is_loopback_url(u), "{u}");
        }
    }
}
