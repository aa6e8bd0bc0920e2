//! The `countersign` command line.
//!
//! Exit codes: 0 success; 1 the intake or the agreement has errors (printed as findings);
//! 2 usage or I/O problems (unreadable file, unwritable output).

pub mod access;
pub mod client;
pub mod db;
pub mod ops;
pub mod outbox;
pub mod serve;
mod syncfs;
#[cfg(test)]
mod tests;
pub mod user;
pub mod vendors;
pub mod webhooks;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use rayon::prelude::*;

use crate::app::load_intake;
use crate::domain::addenda::Catalog;
use crate::domain::findings::{Finding, Level};
use crate::render::check::Status;
use crate::render::context::Templates;
use crate::render::{Mode, Options, Renderer, Report};

#[derive(Parser, Debug)]
#[command(
    name = "countersign",
    version,
    about = "HIPAA Business Associate and Data Use Agreements, from intake to countersigned archive",
    long_about = "Countersign fills the BAA, DUA and state-addendum templates from an intake file, checks every \
clause the regulations require (45 CFR 164.504(e), 164.314(a), 164.514(e)), and renders a PDF.\n\n\
The templates are drafts for review by counsel; every draft PDF says so."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Render an intake to a PDF and print the element report and SHA-256.
    ///
    /// Nothing is written when the intake is invalid or a required element is missing.
    Render {
        /// The intake JSON file.
        #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
        intake: Option<PathBuf>,
        /// Where to write the PDF (default: the intake's name with .pdf, in the current directory).
        #[arg(long, conflicts_with = "batch")]
        out: Option<PathBuf>,
        /// Render many intakes, one JSON object per line, on all cores.
        #[arg(long)]
        batch: Option<PathBuf>,
        /// Directory for batch output (created if missing); files are named line-000001.pdf, …
        #[arg(long, requires = "batch")]
        out_dir: Option<PathBuf>,
        /// Render the copy sent for signature (no DRAFT mark, no counsel notice).
        #[arg(long)]
        for_signature: bool,
        /// Directory of template overrides (files named like those in templates/).
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Negotiation policy file (default: the shipped policy/default.toml).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Validate an intake and check element coverage; exits non-zero when anything is wrong.
    Check {
        #[arg(long)]
        intake: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Directory of template overrides.
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Negotiation policy file (default: the shipped policy/default.toml).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Run the signing service (HTTP API and signer pages) on the embedded sled store, or on
    /// PostgreSQL with --database-url.
    ///
    /// With no configuration: data in ./countersign-data, listening on 127.0.0.1:8080, link keys
    /// and the bootstrap admin key created on first start.
    Serve {
        /// TOML config file (see countersign.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides config and COUNTERSIGN_DATA_DIR).
        #[arg(long)]
        data: Option<PathBuf>,
        /// A PostgreSQL database shared by several instances instead of sled
        /// (postgres://user:password@host:port/dbname; overrides config and
        /// COUNTERSIGN_DATABASE_URL). The data directory then holds the key files only.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Address to listen on (overrides config and COUNTERSIGN_BIND).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Log lines as `text` or `json` (one object a line, with each request's id; overrides
        /// config and COUNTERSIGN_LOG_FORMAT).
        #[arg(long, value_name = "text|json")]
        log_format: Option<crate::config::LogFormat>,
    },
    /// Is FILE byte-for-byte an archived document? Exit 0 only on a match.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Staff API keys (shown once at creation; stored only as hashes).
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Retention: what is past its six-year retention date.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Write a consistent snapshot of the store (asks the running server if one holds the sled
    /// directory; on PostgreSQL, one snapshot of the database).
    /// The snapshot holds live signing links: `--encrypt` seals it under a passphrase.
    Backup {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Encrypt the snapshot (argon2id + XChaCha20-Poly1305) under the passphrase read from
        /// --passphrase-file or COUNTERSIGN_BACKUP_PASSPHRASE (at least 12 characters).
        #[arg(long)]
        encrypt: bool,
        /// A file whose first line is the passphrase (never give it on the command line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Load a backup into an empty data directory (or, with --database-url, an empty PostgreSQL
    /// database; the directory then gets the key files), then verify every audit chain.
    Restore {
        #[arg(long)]
        from: PathBuf,
        /// Your copy of the data directory's audit-head.key (backups do not hold it).
        #[arg(long)]
        head_key: Option<PathBuf>,
        /// For an encrypted backup: a file whose first line is the passphrase (or set
        /// COUNTERSIGN_BACKUP_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Your copy of the data directory's vault.key (backups do not hold it): without it,
        /// two-factor seeds do not open and people with two-factor sign-in need a reset.
        #[arg(long)]
        vault_key: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Link keys: `keys rotate` adds a new signing key to `<data>/link-keys`; links signed
    /// with the older keys keep working until they expire. A running server picks the new key
    /// up when restarted.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The mail outbox: each message's delivery (queued, sent, failed with the reason,
    /// attempts), and retrying one. Works while the server runs (through its API; on
    /// PostgreSQL on the shared database).
    Outbox(crate::cli::outbox::OutboxArgs),
    /// People who sign in to the web app: invite one (prints the one-time link and emails it),
    /// or list everyone. Works while the server runs (through its API; on PostgreSQL on the
    /// shared database).
    User(user::UserArgs),
    /// The vendor register: list vendors, show one, or write the executive report
    /// (`report --out FILE [--format pdf|csv]`). Works while the server runs (through its API;
    /// on PostgreSQL on the shared database).
    Vendors(vendors::VendorsArgs),
    /// Webhook endpoints: list, add (prints the secret once), remove, a delivery log, redeliver.
    /// Works while the server runs (through its API; on PostgreSQL on the shared database).
    Webhooks(webhooks::WebhooksArgs),
    /// The sealing certificates: print or export the CA certificate (add it to Acrobat's or
    /// NSS's trusted list to validate sealed PDFs), or rotate the sealing certificate.
    SealCert {
        #[command(subcommand)]
        command: SealCertCommand,
    },
    /// The PostgreSQL database (with --database-url or COUNTERSIGN_DATABASE_URL).
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Copy everything from a sled data directory to an empty PostgreSQL database, or back,
    /// then check the copy: every record byte for byte, every document against its SHA-256,
    /// every audit chain against its authenticated head. Refuses a non-empty target.
    Migrate {
        /// A data directory or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// A postgres:// URL or a new data directory.
        #[arg(long)]
        to: String,
        /// Where the key files are: the data directory the PostgreSQL instances run with
        /// (required when --to is a directory; default when --from is one: that directory).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Audit-trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Clause-level differences between two intakes' agreements (added, removed, changed clauses
    /// and the changed words).
    Diff {
        /// The old intake, then the new one: `--intake A.json --intake B.json`.
        #[arg(long, num_args = 1, required = true)]
        intake: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Benchmarking aids: `bench seed` fills a data directory with many realistic agreements.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// List the supported state-law addenda with their citations and "as of" dates.
    Addenda {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Write N realistic agreements (varied counterparties, kinds, states, statuses, dates, audit
    /// chains and sent messages) into a data directory or a PostgreSQL database through the store, for measuring search,
    /// start-up, memory and size at scale. Two of them are carried through the real service
    /// (rendered, sent, signed, sealed); the others reuse those PDFs, content-addressed.
    Seed {
        /// The data directory (created if missing; on sled a server must not be running on
        /// it), or with --database-url the PostgreSQL database to fill.
        #[command(flatten)]
        store: StoreArgs,
        /// How many agreements (at least 2: the two templates).
        #[arg(long, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
        count: u64,
        /// Seed of the generator: the same seed gives the same records (ids and dates of the two
        /// templates and message ids excepted).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Apply the schema migrations not applied yet (a server also does at start), then exit.
    Migrate {
        /// postgres://user:password@host:port/dbname (default: COUNTERSIGN_DATABASE_URL).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk every agreement's hash chain and report the first break (exit 1 if any).
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create a key and print it once.
    Create {
        #[arg(long, value_parser = ["sales", "legal", "vendor_manager", "admin"])]
        role: String,
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id (`bootstrap` for the bootstrap key, once another admin exists).
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SealCertCommand {
    /// Print the CA certificate (PEM) and the current sealing certificate's fingerprint.
    Show {
        #[arg(long, default_value = "countersign-data")]
        data: PathBuf,
    },
    /// Write the CA certificate (PEM) to a file.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "countersign-data")]
        data: PathBuf,
    },
    /// Issue a new sealing certificate from the same CA; older ones still verify old seals.
    /// On sled, refused while a server holds the directory; on PostgreSQL, running instances
    /// seal with it once restarted.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Add a new link-signing key; new links use it, old links still verify.
    Rotate {
        #[arg(long, default_value = "countersign-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// List agreements past their retention date.
    Report {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where an operator command's store is: `--data DIR` (sled and the key files), or with
/// `--database-url` / `COUNTERSIGN_DATABASE_URL` PostgreSQL (the directory then holds the key
/// files only). See [`access`] for what runs while servers do.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory (sled and the key files; with a database URL, the key files only).
    #[arg(long, default_value = "countersign-data")]
    pub data: PathBuf,
    /// A PostgreSQL database the instances share (postgres://user:password@host:port/dbname;
    /// default: COUNTERSIGN_DATABASE_URL): the command works on it directly, servers running
    /// or not.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn config(&self) -> Result<crate::config::Config, String> {
        access::config_for(&self.data, self.database_url.as_deref())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Entry point for the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn renderer(templates: Option<&Path>, policy: Option<&Path>) -> Result<Renderer, String> {
    let t = match templates {
        Some(dir) => Templates::with_overrides(dir),
        None => Templates::builtin(),
    }
    .map_err(|e| e.to_string())?;
    let r = Renderer::with_templates(t);
    Ok(match policy {
        Some(p) => r.with_policy(crate::domain::provisions::Policy::load(p)?),
        None => r,
    })
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Render { intake: Some(path), out, for_signature, templates, policy, .. } => {
            let r = renderer(templates.as_deref(), policy.as_deref())?;
            let text = read(&path)?;
            let intake = match load_intake(&text) {
                Ok(i) => i,
                Err(findings) => return Ok(print_findings(&path, &findings)),
            };
            let mode = if for_signature { Mode::ForSignature } else { Mode::Draft };
            let rendered = r.render(&intake, Options { mode, version: 1 }).map_err(|e| e.to_string())?;
            let out = out.unwrap_or_else(|| default_out(&path));
            print_report(&rendered.report);
            if rendered.report.errors() > 0 {
                eprintln!("{}: not written: the agreement has errors", out.display());
                return Ok(ExitCode::from(1));
            }
            write_atomic(&out, &rendered.pdf)?;
            println!("wrote {} ({} pages, {} bytes)", out.display(), rendered.report.pages, rendered.report.bytes);
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { batch: Some(batch), out_dir, for_signature, templates, policy, .. } => {
            let r = renderer(templates.as_deref(), policy.as_deref())?;
            let dir = out_dir.unwrap_or_else(|| PathBuf::from("."));
            render_batch(&r, &batch, &dir, for_signature)
        }
        Command::Render { .. } => Err("give --intake FILE or --batch FILE.jsonl".into()),
        Command::Check { intake: path, format, templates, policy } => {
            let r = renderer(templates.as_deref(), policy.as_deref())?;
            let text = read(&path)?;
            let intake = match load_intake(&text) {
                Ok(i) => i,
                Err(findings) => {
                    if format == Format::Json {
                        let body = serde_json::json!({"valid": false, "findings": findings});
                        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
                        return Ok(ExitCode::from(1));
                    }
                    return Ok(print_findings(&path, &findings));
                }
            };
            let rendered = r.render(&intake, Options::default()).map_err(|e| e.to_string())?;
            let ok = rendered.report.errors() == 0;
            match format {
                Format::Json => {
                    let mut v = serde_json::to_value(&rendered.report).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("valid".into(), serde_json::Value::Bool(ok));
                    }
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                Format::Text => print_report(&rendered.report),
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Serve { config, data, database_url, bind, log_format } => {
            serve::serve(crate::config::Overrides { config, data, database_url, bind, log_format })
        }
        Command::Db { command: DbCommand::Migrate { database_url } } => {
            db::db_migrate(&db::database_url(database_url)?)
        }
        Command::Migrate { from, to, data } => db::migrate_command(&from, &to, data.as_deref()),
        Command::Audit { command: AuditCommand::Verify { store } } => serve::audit_verify(&store.config()?),
        Command::Verify { file, store } => ops::verify(&file, &store.config()?),
        Command::SealCert { command } => ops::seal_cert(command),
        Command::Keys { command: KeysCommand::Rotate { data } } => {
            let path = data.join("link-keys");
            let ring = crate::signing::token::KeyRing::rotate(&path).map_err(|e| e.to_string())?;
            println!(
                "link keys in {}: {} (new links use the last; links signed with the others keep working until they expire; restart a running server to use it)",
                path.display(),
                ring.key_ids().collect::<Vec<_>>().join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { command: BenchCommand::Seed { store, count, seed } } => {
            ops::bench_seed(&store.config()?, count, seed)
        }
        Command::Apikey { command } => ops::apikey(command),
        Command::Retention { command: RetentionCommand::Report { store } } => ops::retention(&store.config()?),
        Command::Backup { out, store, encrypt, passphrase_file } => {
            let passphrase = if encrypt { Some(ops::passphrase(passphrase_file.as_deref())?) } else { None };
            ops::backup(&out, &store.config()?, passphrase.as_ref())
        }
        Command::Restore { from, head_key, vault_key, store, passphrase_file } => {
            ops::restore(&from, &store.config()?, head_key.as_deref(), vault_key.as_deref(), passphrase_file.as_deref())
        }
        Command::Outbox(args) => crate::cli::outbox::run(args),
        Command::User(args) => user::run(args),
        Command::Vendors(args) => vendors::run(args),
        Command::Webhooks(args) => webhooks::run(args),
        Command::Diff { intake, format } => {
            let [a, b] = intake.as_slice() else {
                return Err("give exactly two intakes: --intake OLD.json --intake NEW.json".into());
            };
            let r = renderer(None, None)?;
            let mut docs = Vec::new();
            for path in [a, b] {
                let i = match load_intake(&read(path)?) {
                    Ok(i) => i,
                    Err(findings) => return Ok(print_findings(path, &findings)),
                };
                docs.push(r.document(&i, Options::default()).map_err(|e| e.to_string())?.0);
            }
            let changes = crate::render::diff::diff(&docs[0], &docs[1]);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&changes).unwrap_or_default()),
                Format::Text => {
                    if changes.is_empty() {
                        println!("no differences");
                    }
                    for c in &changes {
                        let num = c.to_number.clone().or_else(|| c.from_number.clone()).unwrap_or_default();
                        println!("{:?} {num} {}", c.change, c.clause);
                        if !c.inline.is_empty() {
                            println!("    {}", c.inline);
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Addenda { format } => {
            let catalog = Catalog::embedded();
            match format {
                Format::Json => {
                    let all: Vec<_> = catalog.supported().collect();
                    println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
                }
                Format::Text => {
                    for s in catalog.supported() {
                        println!("{} {} (as of {})", s.code, s.name, s.as_of);
                        for c in &s.citations {
                            println!("    {} {} — {}", c.status.symbol(), c.cite, c.subject);
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_out(intake: &Path) -> PathBuf {
    let stem = intake.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "agreement".into());
    PathBuf::from(format!("{stem}.pdf"))
}

/// Writes through a temporary file and a rename, so a crash never leaves half a PDF.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// A new directory `.batch-<pid>-<nanoseconds>-<try>` inside `dir`, private to one batch run:
/// `create_dir` fails when the name exists, so two runs never share one (not even two
/// processes with the same pid in different containers on one volume).
fn make_staging(dir: &Path) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut last = None;
    for attempt in 0..16 {
        let path = dir.join(format!(".batch-{}-{nanos}-{attempt}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(format!("cannot create a staging directory in {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "cannot create a staging directory in {}: {}",
        dir.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Writes `bytes` to `tmp` (a new file in the staging directory), without syncing; returns
/// (staged, final) for [`render_batch`] to sync and rename.
fn write_staged(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(PathBuf, PathBuf), String> {
    let written =
        std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).and_then(|mut f| f.write_all(bytes));
    match written {
        Ok(()) => Ok((tmp.to_path_buf(), path.to_path_buf())),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(format!("cannot write {}: {e}", path.display()))
        }
    }
}

/// Makes the staged files durable: one syncfs(2) of their filesystem (one flush for the whole
/// batch), an fsync per file where syncfs is missing or refused.
fn sync_staged(staging: &std::fs::File, files: &[&(PathBuf, PathBuf)]) -> std::io::Result<()> {
    if syncfs::sync_filesystem(staging)? {
        return Ok(());
    }
    for (tmp, _) in files {
        std::fs::File::open(tmp)?.sync_all()?;
    }
    Ok(())
}

fn print_findings(path: &Path, findings: &[Finding]) -> ExitCode {
    eprintln!("{}: {} problem(s); nothing written", path.display(), findings.len());
    for f in findings {
        eprintln!("  {f}");
    }
    ExitCode::from(1)
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::NeedsApproval => "needs approval",
        Level::Advisory => "advisory",
    }
}

fn print_report(r: &Report) {
    println!("{} — version {}, {} pages, {} bytes", r.title, r.version, r.pages, r.bytes);
    println!("sha256 {}", r.sha256);
    println!("breach notice: {}", r.breach_clock.text);
    println!("  {}", r.breach_clock.explanation);
    if !r.addenda.is_empty() {
        println!("addenda: {}", r.addenda.join(", "));
    }
    println!("required elements:");
    for e in &r.elements {
        let (mark, clause) = match e.status {
            Status::Satisfied => ("✓", e.clause.clone().unwrap_or_default()),
            Status::Off => ("-", "(option off)".into()),
            Status::Missing => ("✗", "MISSING".into()),
            Status::Incomplete => ("✗", format!("INCOMPLETE: {}", e.clause.clone().unwrap_or_default())),
        };
        println!("  {mark} {:<8} {:<48} {}", e.id, clause, e.citation);
    }
    if !r.provisions.is_empty() {
        println!("negotiated provisions:");
        for p in &r.provisions {
            let (mark, clause) =
                if p.enabled { ("✓", p.clause.clone().unwrap_or_default()) } else { ("-", "(off)".into()) };
            println!("  {mark} {:<12} {:<36} {clause}", p.tag, p.name);
        }
    }
    if !r.departures.is_empty() {
        println!("departures from policy (need approval before sending):");
        for f in &r.departures {
            println!("  {f} [{}]", f.element.clone().unwrap_or_default());
        }
    }
    if !r.findings.is_empty() {
        println!("findings:");
        for f in &r.findings {
            println!("  {}: {f}", level_word(f.level));
        }
    }
}

fn render_batch(r: &Renderer, batch: &Path, dir: &Path, for_signature: bool) -> Result<ExitCode, String> {
    let text = read(batch)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l)).collect();
    let bar = indicatif::ProgressBar::new(lines.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mode = if for_signature { Mode::ForSignature } else { Mode::Draft };
    let start = Instant::now();
    // Each PDF goes unsynced into a staging directory private to this run; once all are
    // written, one syncfs makes them durable together, and only then are they renamed into
    // place. So a crash never leaves a final name with partial bytes (as before), without an
    // fsync per document: fsyncs were most of a batch's wall clock once rendering got fast
    // (issue 14). The staging directory is opened before anything is written, so syncfs on it
    // reports every write-back error since.
    let staging = make_staging(dir)?;
    let staging_dir = std::fs::File::open(&staging).map_err(|e| format!("cannot open {}: {e}", staging.display()))?;
    let outcomes: Vec<Result<(PathBuf, PathBuf), String>> = lines
        .par_iter()
        .map(|&(n, line)| {
            let result = match load_intake(line) {
                Err(findings) => Err(findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")),
                Ok(intake) => match r.render(&intake, Options { mode, version: 1 }) {
                    Err(e) => Err(e.to_string()),
                    Ok(rendered) if rendered.report.errors() > 0 => Err(rendered
                        .report
                        .findings
                        .iter()
                        .filter(|f| f.level == Level::Error)
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")),
                    Ok(rendered) => {
                        let name = format!("line-{n:06}.pdf");
                        write_staged(&staging.join(&name), &dir.join(&name), &rendered.pdf)
                    }
                },
            };
            bar.inc(1);
            result.map_err(|e| format!("line {n}: {e}"))
        })
        .collect();
    bar.finish_and_clear();
    let written: Vec<&(PathBuf, PathBuf)> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let mut failures: Vec<String> = outcomes.iter().filter_map(|o| o.as_ref().err().cloned()).collect();
    failures.sort();
    for f in &failures {
        eprintln!("{f}");
    }
    if let Err(e) = sync_staged(&staging_dir, &written) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!("cannot make the batch's PDFs durable: {e}; none was moved into {}", dir.display()));
    }
    let mut moved = Vec::new();
    for (tmp, path) in &written {
        match std::fs::rename(tmp, path) {
            Ok(()) => moved.push(path),
            Err(e) => {
                let line = format!("cannot write {}: {e}", path.display());
                eprintln!("{line}");
                failures.push(line);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        return Err(format!(
            "{} PDFs were moved into {} but the directory could not be synced: {e}",
            moved.len(),
            dir.display()
        ));
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = lines.len() - failures.len();
    println!(
        "rendered {ok} of {} documents, {} failed, in {secs:.2} s ({:.0} documents/s on {} threads)",
        lines.len(),
        failures.len(),
        lines.len() as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
