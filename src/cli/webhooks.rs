//! `countersign webhooks list|add|remove|deliveries|redeliver`: webhook endpoints for operators.
//!
//! As `user` does: when a server holds the data directory the command asks it through
//! `/api/v1/webhooks` with the bootstrap admin key; when the server is stopped it opens the store
//! itself (queued deliveries go out when the server starts).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::app::webhooks::{NewEndpoint, delivery_view, endpoint_view};
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};

#[derive(clap::Args, Debug)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    /// TOML config file (for data_dir and bind).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Every endpoint: id, URL, events (never the secret).
    List,
    /// Add an endpoint; prints its `whsec_` secret, shown only this once.
    Add {
        /// https:// URL of a public host (http:// and loopback only with --local).
        #[arg(long)]
        url: String,
        /// An event type to send (repeat; `agreement.*` or `*` for several).
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// Allow http:// and loopback/private addresses for this endpoint (recorded in the
        /// security log).
        #[arg(long)]
        local: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove an endpoint with its delivery log.
    Remove { id: String },
    /// An endpoint's delivery log: status, response code, attempts, last error.
    Deliveries { id: String },
    /// Queue one delivery again (same webhook-id and body, attempts reset).
    Redeliver { id: String, delivery: String },
}

pub fn run(args: WebhooksArgs) -> Result<ExitCode, String> {
    let config = Config::load(&Overrides {
        config: args.config.clone(),
        data: args.data.clone(),
        bind: None,
        ..Default::default()
    })?;
    // Only to learn whether a server holds the directory; a store opened here is closed again
    // (dropped) before the offline path opens it for real.
    let running = match super::ops::access(&config.data_dir)? {
        super::ops::Access::Direct(_) => None,
        super::ops::Access::Server(base, key) => Some((base, key)),
    };
    let seg = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let result: Value = match (&args.command, running) {
        (WebhooksCommand::Remove { id }, _) | (WebhooksCommand::Deliveries { id }, _) if !seg(id) => {
            return Err(format!("no endpoint {id}"));
        }
        (WebhooksCommand::Redeliver { id, delivery }, _) if !seg(id) || !seg(delivery) => {
            return Err(format!("no delivery {delivery} of {id}"));
        }
        (command, Some((base, key))) => match command {
            WebhooksCommand::List => call(&base, &key, "GET", "/api/v1/webhooks", None)?,
            WebhooksCommand::Add { url, events, local, description } => {
                let body = json!({"url": url, "events": events, "local": local, "description": description});
                call(&base, &key, "POST", "/api/v1/webhooks", Some(body.to_string()))?
            }
            WebhooksCommand::Remove { id } => call(&base, &key, "DELETE", &format!("/api/v1/webhooks/{id}"), None)?,
            WebhooksCommand::Deliveries { id } => call(&base, &key, "GET", &format!("/api/v1/webhooks/{id}"), None)?,
            WebhooksCommand::Redeliver { id, delivery } => {
                call(&base, &key, "POST", &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"), None)?
            }
        },
        (command, None) => {
            let (state, _, _) = crate::http::state::build_state(config, Arc::new(SystemClock))?;
            let svc = &state.service;
            let e = |e: crate::app::service::ServiceError| match e {
                crate::app::service::ServiceError::NotFound => "not found".to_string(),
                e => e.to_string(),
            };
            match command {
                WebhooksCommand::List => {
                    json!({"items": svc.webhooks().map_err(e)?.iter().map(endpoint_view).collect::<Vec<_>>()})
                }
                WebhooksCommand::Add { url, events, local, description } => {
                    let new = NewEndpoint {
                        url: url.clone(),
                        events: events.clone(),
                        local: *local,
                        description: description.clone(),
                    };
                    let (ep, secret) = svc.create_webhook(new, "cli:webhooks").map_err(e)?;
                    let mut v = endpoint_view(&ep);
                    v["secret"] = Value::String(secret);
                    v
                }
                WebhooksCommand::Remove { id } => endpoint_view(&svc.delete_webhook(id, "cli:webhooks").map_err(e)?),
                WebhooksCommand::Deliveries { id } => {
                    let (ep, log) = svc.webhook(id).map_err(e)?;
                    let mut v = endpoint_view(&ep);
                    v["deliveries"] = log.iter().map(delivery_view).collect();
                    v
                }
                WebhooksCommand::Redeliver { id, delivery } => {
                    delivery_view(&svc.redeliver_webhook(id, delivery).map_err(e)?)
                }
            }
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &Value, k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let events = |v: &Value| {
        v["events"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    match args.command {
        WebhooksCommand::List => {
            let items = result["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no webhook endpoints");
            }
            for e in items {
                let local = if e["local"] == true { " (local)" } else { "" };
                println!("{:<20} {}{local}  [{}]", s(&e, "id"), s(&e, "url"), events(&e));
            }
        }
        WebhooksCommand::Add { .. } => {
            println!("added {} → {} [{}]", s(&result, "id"), s(&result, "url"), events(&result));
            println!("secret (shown only now; verify signatures with it): {}", s(&result, "secret"));
        }
        WebhooksCommand::Remove { .. } => println!("removed {} ({})", s(&result, "id"), s(&result, "url")),
        WebhooksCommand::Deliveries { .. } => {
            let log = result["deliveries"].as_array().cloned().unwrap_or_default();
            if log.is_empty() {
                println!("no deliveries for {}", s(&result, "id"));
            }
            for d in log {
                println!(
                    "{:<40} {:<22} {:<9} {:>4} {:>3} {}",
                    s(&d, "id"),
                    s(&d, "type"),
                    s(&d, "status"),
                    s(&d, "response_code"),
                    s(&d, "attempts"),
                    s(&d, "last_error")
                );
            }
        }
        WebhooksCommand::Redeliver { .. } => println!("{} queued again", s(&result, "id")),
    }
    Ok(ExitCode::SUCCESS)
}

fn call(base: &str, key: &str, method: &str, path: &str, body: Option<String>) -> Result<Value, String> {
    let ct = body.as_ref().map(|_| "application/json");
    let (status, reply) =
        super::client::request(base, method, path, key, ct, body.as_deref().unwrap_or("").as_bytes())?;
    let v: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        Ok(v)
    } else {
        let msg = v["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply).trim().to_string());
        Err(format!("the server answered {status}: {msg}"))
    }
}
