//! `countersign vendors list|show|report`: the vendor register for operators.
//!
//! As `user` and `outbox` do: when a server holds the data directory the command asks it
//! through `/api/v1/vendors` with the bootstrap admin key; when the server is stopped it opens
//! the store itself (read only: these commands change nothing).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use crate::clock::SystemClock;
use crate::config::{Config, Overrides};

#[derive(clap::Args, Debug)]
pub struct VendorsArgs {
    #[command(subcommand)]
    pub command: VendorsCommand,
    /// TOML config file (for data_dir and bind).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
    #[arg(long, global = true)]
    pub data: Option<PathBuf>,
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
    let config = Config::load(&Overrides {
        config: args.config.clone(),
        data: args.data.clone(),
        bind: None,
        ..Default::default()
    })?;
    if let VendorsCommand::Report { format, .. } = &args.command
        && !matches!(format.as_str(), "pdf" | "csv")
    {
        return Err(format!("--format {format}: pdf or csv"));
    }
    // Only to learn whether a server holds the directory; a store opened here is closed again
    // (dropped) before the offline path opens it for real.
    let running = match super::ops::access(&config.data_dir)? {
        super::ops::Access::Direct(_) => None,
        super::ops::Access::Server(base, key) => Some((base, key)),
    };
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    match (&args.command, running) {
        (VendorsCommand::Report { out, format }, Some((base, key))) => {
            let bytes = get(&base, &key, &format!("/api/v1/vendors/report?format={format}"))?;
            write(out, &bytes)
        }
        (command, Some((base, key))) => {
            let path = match command {
                VendorsCommand::List { q: Some(q), .. } => format!("/api/v1/vendors?limit=500&q={}", enc(q)),
                VendorsCommand::Show { id } => format!("/api/v1/vendors/{}", enc(id)),
                _ => "/api/v1/vendors?limit=500".into(),
            };
            let v: Value = serde_json::from_slice(&get(&base, &key, &path)?).map_err(|e| e.to_string())?;
            print(command, v)
        }
        (command, None) => {
            let (state, _, _) = crate::http::state::build_state(config, Arc::new(SystemClock))?;
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

fn get(base: &str, key: &str, path: &str) -> Result<Vec<u8>, String> {
    let (status, body) = super::client::request(base, "GET", path, key, None, b"")?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!("the server answered {status}: {}", String::from_utf8_lossy(&body).trim()))
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
