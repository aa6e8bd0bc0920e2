//! `countersign outbox [list|retry ID]`: the outbox for operators.
//!
//! Server or store as every operator command ([`super::access`]): while a server holds the sled
//! directory, through its API with the bootstrap admin key (give `--server http://HOST:PORT`
//! when it is not at the address in `<data>/server.url`); otherwise, and always on PostgreSQL,
//! on the store itself (a retried message goes out at a running instance's next sender pass,
//! or when a server starts).

use std::process::ExitCode;

use serde_json::Value;

use super::access::{Access, Place, encode};
use crate::app::outbox;
use crate::clock::{Clock, SystemClock};

#[derive(clap::Args, Debug)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    #[command(flatten)]
    pub place: Place,
    /// The running server, e.g. http://127.0.0.1:8080 (default: the address it wrote to
    /// <data>/server.url, else http://<bind>).
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
    let config = args.place.config()?;
    let command = args.command.unwrap_or(OutboxCommand::List { status: None, json: false });
    let backend = super::access::access(&config, args.server.as_deref())?;
    match command {
        OutboxCommand::List { status, json } => {
            if let Some(s) = &status {
                outbox::parse_status(s)?;
            }
            let items: Vec<Value> = match &backend {
                Access::Store(store) => {
                    let st = status.as_deref().map(outbox::parse_status).transpose()?;
                    outbox::list(store.as_ref(), st).map_err(|e| e.to_string())?.iter().map(outbox::view).collect()
                }
                Access::Server(server) => {
                    let path = match &status {
                        Some(s) => format!("/api/v1/outbox?status={s}"),
                        None => "/api/v1/outbox".into(),
                    };
                    let v = server.json("GET", &path, None)?;
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
                    Access::Store(store) => outbox::view(
                        &outbox::retry(store.as_ref(), &id, SystemClock.now(), "cli:outbox").map_err(|e| match e {
                            crate::app::service::ServiceError::NotFound => format!("no message {id}"),
                            e => e.to_string(),
                        })?,
                    ),
                    Access::Server(server) => {
                        server.json("POST", &format!("/api/v1/outbox/{}/retry", encode(&id)), None)?
                    }
                };
            println!(
                "{} queued again ({}){}",
                m["id"].as_str().unwrap_or(&id),
                m["kind"].as_str().unwrap_or(""),
                match backend {
                    Access::Store(_) => format!("; {}", super::access::when_sent(&config)),
                    Access::Server(_) => String::new(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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
