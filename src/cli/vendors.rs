//! `countersign vendors list|show|report`: the vendor register for operators.
//!
//! Server or store as every operator command ([`super::access`]): while a server holds the sled
//! directory, through `/api/v1/vendors` with the bootstrap admin key; otherwise, and always on
//! PostgreSQL, on the store itself (read only: these commands change nothing).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::access::{Access, Place, encode};

#[derive(clap::Args, Debug)]
pub struct VendorsArgs {
    #[command(subcommand)]
    pub command: VendorsCommand,
    #[command(flatten)]
    pub place: Place,
}

#[derive(clap::Subcommand, Debug)]
pub enum VendorsCommand {
    /// Every vendor: determination, risk tier, BAA status, next reassessment, flags.
    List {
        /// Only vendors whose names contain these words (accent-insensitive).
        #[arg(long)]
        q: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One vendor's record and standing, as JSON.
    Show { id: String },
    /// The executive report, written to FILE.
    Report {
        #[arg(long)]
        out: PathBuf,
        /// pdf (default) or csv.
        #[arg(long, default_value = "pdf")]
        format: String,
    },
}

pub fn run(args: VendorsArgs) -> Result<ExitCode, String> {
    let config = args.place.config()?;
    if let VendorsCommand::Report { format, .. } = &args.command
        && !matches!(format.as_str(), "pdf" | "csv")
    {
        return Err(format!("--format {format}: pdf or csv"));
    }
    match (&args.command, super::access::access(&config, None)?) {
        (VendorsCommand::Report { out, format }, Access::Server(server)) => {
            write(out, &server.call("GET", &format!("/api/v1/vendors/report?format={format}"), None)?)
        }
        (command, Access::Server(server)) => {
            let path = match command {
                VendorsCommand::List { q: Some(q), .. } => format!("/api/v1/vendors?limit=500&q={}", encode(q)),
                VendorsCommand::Show { id } => format!("/api/v1/vendors/{}", encode(id)),
                _ => "/api/v1/vendors?limit=500".into(),
            };
            print(command, server.json("GET", &path, None)?)
        }
        (command, Access::Store(store)) => {
            let state = super::access::state(config, store)?;
            let svc = &state.service;
            match command {
                VendorsCommand::Report { out, format } => {
                    let bytes = if format == "csv" {
                        svc.vendor_report().map_err(|e| e.to_string())?.to_csv().into_bytes()
                    } else {
                        svc.vendor_report_pdf().map_err(|e| e.to_string())?
                    };
                    write(out, &bytes)
                }
                VendorsCommand::List { q, .. } => {
                    let query =
                        crate::app::vendors::VendorQuery { q: q.clone(), limit: Some(500), ..Default::default() };
                    let page = svc.list_vendors(&query).map_err(|e| e.to_string())?;
                    print(command, serde_json::to_value(page).unwrap_or_default())
                }
                VendorsCommand::Show { id } => {
                    let v = svc.vendor(id).map_err(|e| match e {
                        crate::app::service::ServiceError::NotFound => format!("no vendor {id}"),
                        e => e.to_string(),
                    })?;
                    print(command, serde_json::to_value(v).unwrap_or_default())
                }
            }
        }
    }
}

fn write(out: &std::path::Path, bytes: &[u8]) -> Result<ExitCode, String> {
    std::fs::write(out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(ExitCode::SUCCESS)
}

fn print(command: &VendorsCommand, v: Value) -> Result<ExitCode, String> {
    match command {
        VendorsCommand::List { json: false, .. } => {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no vendors");
            }
            let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
            for x in &items {
                let flags: Vec<&str> = x["standing"]["flags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["code"].as_str())
                    .collect();
                println!(
                    "{:<18} {:<32} {:<22} {:<6} {:<12} {:<10} {}",
                    s(x, "id"),
                    s(x, "legal_name"),
                    x["determination"]["role"].as_str().unwrap_or("undetermined"),
                    s(&x["standing"], "tier"),
                    s(&x["standing"], "baa_status"),
                    s(&x["standing"], "next_reassessment"),
                    flags.join(",")
                );
            }
            println!("{} vendor(s)", v["total"].as_u64().unwrap_or(items.len() as u64));
        }
        _ => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
    }
    Ok(ExitCode::SUCCESS)
}
