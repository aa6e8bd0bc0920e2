//! `countersign webhooks list|add|remove|deliveries|redeliver`: webhook endpoints for operators.
//!
//! Server or store as every operator command ([`super::access`]): while a server holds the sled
//! directory, through `/api/v1/webhooks` with the bootstrap admin key; otherwise, and always on
//! PostgreSQL, on the store itself (queued deliveries go out at a running instance's next
//! sender pass, or when a server starts).

use std::process::ExitCode;

use serde_json::{Value, json};

use super::access::{Access, Place};
use crate::app::webhooks::{NewEndpoint, delivery_view, endpoint_view};

#[derive(clap::Args, Debug)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    #[command(flatten)]
    pub place: Place,
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
    let config = args.place.config()?;
    let seg = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match &args.command {
        WebhooksCommand::Remove { id } | WebhooksCommand::Deliveries { id } if !seg(id) => {
            return Err(format!("no endpoint {id}"));
        }
        WebhooksCommand::Redeliver { id, delivery } if !seg(id) || !seg(delivery) => {
            return Err(format!("no delivery {delivery} of {id}"));
        }
        _ => {}
    }
    let result: Value = match (&args.command, super::access::access(&config, None)?) {
        (command, Access::Server(server)) => match command {
            WebhooksCommand::List => server.json("GET", "/api/v1/webhooks", None)?,
            WebhooksCommand::Add { url, events, local, description } => {
                let body = json!({"url": url, "events": events, "local": local, "description": description});
                server.json("POST", "/api/v1/webhooks", Some(&body))?
            }
            WebhooksCommand::Remove { id } => server.json("DELETE", &format!("/api/v1/webhooks/{id}"), None)?,
            WebhooksCommand::Deliveries { id } => server.json("GET", &format!("/api/v1/webhooks/{id}"), None)?,
            WebhooksCommand::Redeliver { id, delivery } => {
                server.json("POST", &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"), None)?
            }
        },
        (command, Access::Store(store)) => {
            let state = super::access::state(config, store)?;
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
