//! Operator commands on the data: verify, API keys, retention, backup and restore.
//!
//! Each works on the store the configuration names ([`super::access`]). On sled, when a server
//! holds the directory, the ones that must work then (`verify`, `backup`) ask it over loopback
//! HTTP; the others refuse plainly and name the API route to use instead. On PostgreSQL they
//! work on the shared database, servers running or not.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::access::{Access, open_store};
use super::{ApikeyCommand, SealCertCommand};
use crate::config::Config;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError};

fn now() -> u64 {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

/// A service over a directly opened store, for commands that need its logic.
fn service(store: Arc<dyn Store>, config: &Config) -> Result<crate::app::service::Service, String> {
    let keys = crate::signing::token::KeyRing::load_or_create(&config.data_dir.join("link-keys"))
        .map_err(|e| e.to_string())?;
    let seal = crate::app::seal_keys(config)?;
    let vault = crate::secret::vault::Vault::load(&config.vault_key_path(), true).map_err(|e| e.to_string())?;
    Ok(crate::app::service::Service::new(
        store,
        keys,
        crate::render::Renderer::builtin().map_err(|e| e.to_string())?,
        config.clone(),
        std::sync::Arc::new(crate::clock::SystemClock),
        seal,
        vault,
    ))
}

pub fn verify(file: &Path, config: &Config) -> Result<ExitCode, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let v: serde_json::Value = match super::access::access(config, None)? {
        Access::Store(store) => {
            let svc = service(store, config)?;
            serde_json::to_value(svc.verify(&bytes, true).map_err(|e| e.to_string())?).unwrap_or_default()
        }
        Access::Server(server) => {
            let body = server.call("POST", "/api/v1/verify", Some(("application/pdf", &bytes)))?;
            serde_json::from_slice(&body).map_err(|e| e.to_string())?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    let seal = &v["seal"];
    if seal["sealed"] == true {
        println!(
            "seal: {} — {}",
            if seal["valid"] == true && seal["modified_after_seal"] == false { "valid" } else { "NOT VALID" },
            seal["detail"].as_str().unwrap_or("")
        );
    } else {
        println!("seal: none");
    }
    if v["match"] == true {
        println!(
            "MATCH: {} is the archived {} copy of agreement {}",
            file.display(),
            v["copy"].as_str().unwrap_or(""),
            v["agreement_id"].as_str().unwrap_or("")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        match v["near_miss"].as_str() {
            Some(n) => println!("NO MATCH: {n}"),
            None => println!("NO MATCH: {} is not an archived document", file.display()),
        }
        Ok(ExitCode::from(1))
    }
}

/// Who changes keys from the command line, as the security log records it: `cli:<login>`
/// (the operating-system user that ran it, when the environment names one).
fn cli_actor() -> String {
    match std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        Ok(u) if !u.trim().is_empty() => format!("cli:{}", u.trim().chars().take(64).collect::<String>()),
        _ => "cli".into(),
    }
}

pub fn apikey(cmd: ApikeyCommand) -> Result<ExitCode, String> {
    match cmd {
        ApikeyCommand::Create { role, name, expires_in_days, store } => {
            let store = open_store(&store.config()?, "POST /api/v1/apikeys")?;
            let role = crate::staff::Role::parse(&role).ok_or("role must be sales, legal, vendor_manager or admin")?;
            let t = now();
            let (key, rec) = crate::staff::create(
                store.as_ref(),
                &name,
                role,
                expires_in_days.map(|d| t + d * 86_400),
                &cli_actor(),
                "",
                t,
            )
            .map_err(|e| e.to_string())?;
            println!("{key}");
            eprintln!("created key {} ({}, {}); it is shown only once", rec.id, rec.name, rec.role);
        }
        ApikeyCommand::List { store } => {
            let store = open_store(&store.config()?, "GET /api/v1/apikeys")?;
            for k in crate::staff::list(store.as_ref()).map_err(|e| e.to_string())? {
                let state = match (&k.revoked_at, &k.expires_at) {
                    (Some(r), _) => format!("revoked {r}"),
                    (None, Some(e)) => format!("expires {e}"),
                    _ => "active".into(),
                };
                println!(
                    "{}  {:<15} {:<30} created {}  last used {}  {state}",
                    k.id,
                    k.role,
                    k.name,
                    k.created_at,
                    k.last_used.unwrap_or_else(|| "never".into())
                );
            }
        }
        ApikeyCommand::Revoke { id, store } => {
            let store = open_store(&store.config()?, "DELETE /api/v1/apikeys/{id}")?;
            let rec = crate::staff::revoke(store.as_ref(), &id, now(), &cli_actor(), "").map_err(|e| e.to_string())?;
            println!("revoked {} ({})", rec.id, rec.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn retention(config: &Config) -> Result<ExitCode, String> {
    let store = open_store(config, "GET /api/v1/retention")?;
    let svc = service(store, config)?;
    let rows = svc.retention_report().map_err(|e| e.to_string())?;
    if rows.is_empty() {
        println!("nothing is past its retention date");
    }
    for r in rows {
        println!(
            "{}  retain until {}  {:?}  {} — {} and {}",
            r.id, r.retain_until, r.status, r.title, r.parties[0], r.parties[1]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `countersign bench seed`: writes `count` agreements into `data` (see [`crate::app::seed`]).
pub fn bench_seed(config: &Config, count: u64, seed: u64) -> Result<ExitCode, String> {
    let count = usize::try_from(count).map_err(|_| format!("--count {count} is too large for this machine"))?;
    let store = open_store(config, "(none: stop the server to seed its directory)")?;
    let svc = service(store, config)?;
    let progress = |n: usize| {
        if n.is_multiple_of(10_240) {
            eprintln!("  {n} of {count}");
        }
    };
    let r = crate::app::seed::seed(&svc, count, seed, &progress).map_err(|e| e.to_string())?;
    let mix: Vec<String> =
        r.by_status.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{} {n}", s.as_str())).collect();
    println!(
        "seeded {} agreements ({} audit events, {} messages) into {} in {:.1} s ({:.0} agreements/s)",
        r.agreements,
        r.events,
        r.messages,
        match config.database_url {
            Some(_) => "the database".to_string(),
            None => config.data_dir.display().to_string(),
        },
        r.secs,
        r.agreements as f64 / r.secs.max(1e-9)
    );
    println!("by status: {}", mix.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// The backup passphrase: the first line of `file`, else `COUNTERSIGN_BACKUP_PASSPHRASE`.
/// Never a command-line argument (other users see those in the process list).
pub fn passphrase(file: Option<&Path>) -> Result<crate::secret::SecretString, String> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        None => std::env::var("COUNTERSIGN_BACKUP_PASSPHRASE").map_err(|_| {
            "give the passphrase with --passphrase-file FILE or COUNTERSIGN_BACKUP_PASSPHRASE".to_string()
        })?,
    };
    let line = text.lines().next().unwrap_or("").to_string();
    drop(crate::secret::SecretString::new(text));
    Ok(crate::secret::SecretString::new(line))
}

/// Writes a snapshot to `out` (0600), encrypted under `passphrase` when one is given.
pub fn backup(
    out: &Path,
    config: &Config,
    passphrase: Option<&crate::secret::SecretString>,
) -> Result<ExitCode, String> {
    let access = super::access::access(config, None)?;
    if let (Access::Store(store), None) = (&access, passphrase) {
        // Not encrypted: streamed to the file as the store is read, never held whole.
        let tmp = out.with_extension("partial");
        let written = (|| -> Result<(usize, u64), String> {
            let err = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
            let records = store.dump(&mut w).map_err(|e| e.to_string())?;
            let f = w.into_inner().map_err(|e| err(e.into_error()))?;
            f.sync_all().map_err(err)?;
            let bytes = f.metadata().map_err(err)?.len();
            std::fs::rename(&tmp, out).map_err(err)?;
            Ok((records, bytes))
        })();
        let (records, bytes) = written.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        println!("wrote {} ({records} records, {bytes} bytes)", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let bytes = match access {
        Access::Store(store) => {
            let mut v = Vec::new();
            store.dump(&mut v).map_err(|e| e.to_string())?;
            v
        }
        Access::Server(server) => server.call("GET", "/api/v1/backup", None)?,
    };
    let records = bytes.iter().filter(|&&b| b == b'\n').count();
    let bytes = match passphrase {
        Some(p) => crate::secret::sealed_file::seal(&bytes, p.expose()).map_err(|e| e.to_string())?,
        None => bytes,
    };
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::rename(&tmp, out))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "wrote {} ({records} records, {} bytes{})",
        out.display(),
        bytes.len(),
        if passphrase.is_some() { ", encrypted" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads a backup, then walks every audit chain against its authenticated head: a backup with
/// events removed or heads rewritten is reported (exit 1), not silently accepted. `head_key`
/// is the copy of `<data>/audit-head.key` the operator kept apart from the backup; `vault_key`
/// the copy of `vault.key`, without which sealed secrets (two-factor seeds) do not open.
pub fn restore(
    from: &Path,
    config: &Config,
    head_key: Option<&Path>,
    vault_key: Option<&Path>,
    passphrase_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let data = config.data_dir.as_path();
    let mut f = std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    // An encrypted backup is opened in memory first (it must be whole to authenticate); a
    // wrong passphrase or a damaged file stops here, before anything is created.
    let mut magic = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut f, crate::secret::sealed_file::MAGIC.len() as u64),
        &mut magic,
    )
    .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let input: Box<dyn std::io::Read + Send> = if crate::secret::sealed_file::is_sealed(&magic) {
        let sealed = std::fs::read(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let p = passphrase(passphrase_file).map_err(|e| format!("{} is encrypted: {e}", from.display()))?;
        let plain =
            crate::secret::sealed_file::open(&sealed, p.expose()).map_err(|e| format!("{}: {e}", from.display()))?;
        Box::new(std::io::Cursor::new(plain))
    } else {
        Box::new(std::io::Read::chain(std::io::Cursor::new(magic), f))
    };
    // What was in `data` before, so a failed restore leaves nothing behind (no half store).
    let before: Option<Vec<std::path::PathBuf>> =
        std::fs::read_dir(data).ok().map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect());
    if let Some(k) = head_key {
        let target = crate::store::format::head_key_path(data);
        if target.exists() {
            return Err(format!("{} already exists: restore needs an empty data directory", target.display()));
        }
        crate::store::perms::secure_data_dir(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        std::fs::copy(k, &target).map_err(|e| format!("cannot copy {}: {e}", k.display()))?;
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    if let Some(k) = vault_key {
        crate::secret::vault::Vault::load(k, false).map_err(|e| format!("--vault-key: {e}"))?;
        let target = crate::secret::vault::default_path(data);
        if target.exists() {
            return Err(format!("{} already exists: restore needs an empty data directory", target.display()));
        }
        crate::store::perms::secure_data_dir(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        std::fs::copy(k, &target).map_err(|e| format!("cannot copy {}: {e}", k.display()))?;
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    // sled: the directory must be unused and empty; PostgreSQL: the database must be empty
    // (checked, then filled in one transaction).
    let restored: Result<(Arc<dyn Store>, usize), String> = match &config.database_url {
        Some(url) => crate::store::postgres::PgStore::open(url.expose(), data)
            .map_err(|e| format!("database: {e}"))
            .and_then(|s| {
                let n = s.restore(std::io::BufReader::new(input)).map_err(|e| e.to_string())?;
                Ok((Arc::new(s) as Arc<dyn Store>, n))
            }),
        None => match SledStore::open(data) {
            Ok(s) => match s.restore(std::io::BufReader::new(input)) {
                Ok(n) => Ok((Arc::new(s) as Arc<dyn Store>, n)),
                Err(e) => Err(e.to_string()),
            },
            Err(StoreError::Locked(d)) => Err(format!(
                "{d} is held by a running countersign server; stop it: restore needs an empty, unused data directory"
            )),
            Err(e) => Err(e.to_string()),
        },
    };
    let (store, n) = match restored {
        Ok(r) => r,
        Err(e) => {
            // Nothing half-restored stays behind: what this restore created in the directory
            // goes (the database side is one transaction).
            match &before {
                None => {
                    let _ = std::fs::remove_dir_all(data);
                }
                Some(kept) => {
                    for p in std::fs::read_dir(data).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())) {
                        if !kept.contains(&p) {
                            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                        }
                    }
                }
            }
            return Err(e);
        }
    };
    match &config.database_url {
        Some(_) => println!("restored {n} records into the database (key files in {})", data.display()),
        None => println!("restored {n} records into {}", data.display()),
    }
    match crate::app::verify_chains(store.as_ref()) {
        Ok((chains, events)) => {
            println!("audit trail intact: {chains} agreement chain(s), {events} event(s)");
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            println!("audit trail BROKEN: {b}");
            if head_key.is_none() {
                println!("(restore with --head-key <copy of audit-head.key> if the heads were made under another key)");
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn seal_cert(cmd: SealCertCommand) -> Result<ExitCode, String> {
    let dir = |data: &Path| data.join("seal");
    match cmd {
        SealCertCommand::Show { data } => {
            let keys = crate::seal::SealKeys::load_or_create(&dir(&data)).map_err(|e| e.to_string())?;
            print!("{}", keys.ca_pem());
            println!("sealing certificate #{} SHA-256 fingerprint: {}", keys.current_index(), keys.fingerprint());
            for f in keys.known_fingerprints() {
                println!("  verifies seals by: {f}");
            }
        }
        SealCertCommand::Export { out, data } => {
            let keys = crate::seal::SealKeys::load_or_create(&dir(&data)).map_err(|e| e.to_string())?;
            std::fs::write(&out, keys.ca_pem()).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!(
                "wrote the Countersign CA certificate to {} (trust it in Acrobat or NSS to validate seals)",
                out.display()
            );
        }
        SealCertCommand::Rotate { store } => {
            let config = store.config()?;
            let data = config.data_dir;
            // sled: a server holding the directory would keep sealing with the old certificate
            // unseen; on PostgreSQL several instances share the key files, and each seals with
            // the new one once restarted (as with `keys rotate`).
            if config.database_url.is_none()
                && SledStore::open(&data).is_err_and(|e| matches!(e, StoreError::Locked(_)))
            {
                return Err(format!(
                    "{} is held by a running server; stop it before rotating the sealing certificate",
                    data.display()
                ));
            }
            let keys = crate::seal::SealKeys::rotate(&dir(&data)).map_err(|e| e.to_string())?;
            println!("sealing certificate #{} in use; fingerprint {}", keys.current_index(), keys.fingerprint());
            if config.database_url.is_some() {
                println!("instances running on the database seal with it once restarted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
