//! `countersign user invite|list`: people who sign in to the web app, for operators.
//!
//! Server or store as every operator command ([`super::access`]): while a server holds the sled
//! directory, through `/api/v1/users` with the bootstrap admin key; otherwise, and always on
//! PostgreSQL, on the store itself (the invitation email is queued and goes out at a running
//! instance's next sender pass, or when a server starts).

use std::process::ExitCode;

use serde_json::{Value, json};

use super::access::{Access, Place};

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub place: Place,
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
    let config = args.place.config()?;
    let result: Value = match super::access::access(&config, None)? {
        Access::Server(server) => match &args.command {
            UserCommand::Invite { email, name, role } => {
                let body = json!({"email": email, "name": name, "role": role});
                server.json("POST", "/api/v1/users", Some(&body))?
            }
            UserCommand::List => server.json("GET", "/api/v1/users", None)?,
        },
        Access::Store(store) => {
            let state = super::access::state(config, store)?;
            let people = &state.people;
            match &args.command {
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
