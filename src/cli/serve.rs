//! `countersign serve` and `countersign audit verify`.

use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::http::auth;

pub fn serve(o: Overrides) -> Result<ExitCode, String> {
    let started = std::time::Instant::now();
    crate::app::memory::bound_large_allocations();
    crate::app::memory::arena_per_thread();
    let config = Config::load(&o)?;
    let filter = || tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG").unwrap_or_else(|_| "info".into());
    // JSON: one object a line; each line logged during a request carries the request span's
    // fields (`span.request_id`), so a shipper can join them with the `x-request-id` header.
    let _ = match config.log_format {
        crate::config::LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter()).try_init(),
        crate::config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter())
            .try_init(),
    };
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
    let (state, _key, created) = crate::http::state::build_state(config, Arc::new(SystemClock))?;
    // A fresh machine: nobody can sign in to the web app yet, so print a one-time link that
    // creates the first administrator (a new link each start until someone exists).
    let setup = state.people.setup_link().map_err(|e| format!("first-admin link: {e}"))?;
    let key_path = auth::bootstrap_key_path(&data);
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(bind).await.map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(ms, rss_mb = crate::app::rss_mb(), "serving {ms} ms after start");
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
        if let Some(url) = &setup {
            println!("no one can sign in yet: create the first administrator at {url} (works once, for 72 hours)");
        }
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

/// `countersign audit verify`: on sled, refused while a server holds the directory (its
/// `/api/v1/audit/verify` answers then); on PostgreSQL, on the shared database.
pub fn audit_verify(config: &Config) -> Result<ExitCode, String> {
    let api = format!(
        "GET /api/v1/audit/verify (curl -H \"Authorization: Bearer $(cat {})\" http://<bind>/api/v1/audit/verify)",
        auth::bootstrap_key_path(&config.data_dir).display()
    );
    let store = super::access::open_store(config, &api)?;
    match crate::app::verify_chains(store.as_ref()) {
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
