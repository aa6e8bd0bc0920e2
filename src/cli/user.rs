//! `countersign user invite|list`: people who sign in to the web app, for operators.
//!
//! As `outbox` does: when a server holds the data directory the command asks it through
//! `/api/v1/users` with the bootstrap admin key; when the server is stopped it opens the store
//! itself (the invitation email is queued and goes out when the server starts).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::SystemClock;
use crate::config::{Config, Overrides};

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// TOML config file (for data_dir and bind).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Invite a person: prints the one-time link (72 hours) and queues the invitation email.
    Invite {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// sales, legal, vendor_manager or admin.
        #[arg(long)]
        role: String,
    },
    /// Everyone with their role and status.
    List,
}

pub fn run(args: UserArgs) -> Result<ExitCode, String> {
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
    let result: Value = match (&args.command, running) {
        (UserCommand::Invite { email, name, role }, Some((base, key))) => {
            let body = json!({"email": email, "name": name, "role": role}).to_string();
            call(&base, &key, "POST", "/api/v1/users", Some(body))?
        }
        (UserCommand::List, Some((base, key))) => call(&base, &key, "GET", "/api/v1/users", None)?,
        (command, None) => {
            let (state, _, _) = crate::http::state::build_state(config, Arc::new(SystemClock))?;
            let people = &state.people;
            match command {
                UserCommand::Invite { email, name, role } => {
                    let (p, url) = people.invite("cli:user", "", email, name, role).map_err(|e| e.to_string())?;
                    json!({"id": p.id, "invite_url": url, "person": p})
                }
                UserCommand::List => json!({"items": people.people().map_err(|e| e.to_string())?}),
            }
        }
    };
    match args.command {
        UserCommand::Invite { .. } => {
            println!(
                "invited {} ({})",
                result["person"]["email"].as_str().unwrap_or(""),
                result["id"].as_str().unwrap_or("")
            );
            println!("one-time link (72 hours; also emailed): {}", result["invite_url"].as_str().unwrap_or(""));
        }
        UserCommand::List => {
            let items = result["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no people yet");
            }
            let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
            for p in items {
                println!(
                    "{:<20} {:<36} {:<16} {:<9} {}",
                    s(&p, "id"),
                    s(&p, "email"),
                    s(&p, "role"),
                    s(&p, "status"),
                    s(&p, "name")
                );
            }
        }
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
