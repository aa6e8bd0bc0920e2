//! Operator commands on the data directory: verify, API keys, retention, backup and restore.
//!
//! Each opens the store directly when no server runs. When a server holds the directory, the
//! ones that must work then (`verify`, `backup`) ask it over loopback HTTP; the others refuse
//! plainly and name the API route to use instead.

use std::path::Path;
use std::process::ExitCode;

use super::{ApikeyCommand, SealCertCommand, client};
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError};

/// Either the store, or the running server that holds it (base URL, bootstrap key).
pub(super) enum Access {
    Direct(Box<SledStore>),
    Server(String, String),
}

pub(super) fn access(data: &Path) -> Result<Access, String> {
    match SledStore::open(data) {
        Ok(s) => Ok(Access::Direct(Box::new(s))),
        Err(StoreError::Locked(_)) => client::server(data).map(|(u, k)| Access::Server(u, k)),
        Err(e) => Err(e.to_string()),
    }
}

fn direct(data: &Path, api: &str) -> Result<SledStore, String> {
    match SledStore::open(data) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked(d)) => Err(format!(
            "{d} is held by a running countersign server; refusing to open it. Use the API instead: {api} (with an admin key)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn now() -> u64 {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

/// A service over a directly opened store, for commands that need its logic.
fn service(store: SledStore, data: &Path) -> Result<crate::app::service::Service, String> {
    let keys = crate::signing::token::KeyRing::load_or_create(&data.join("link-keys")).map_err(|e| e.to_string())?;
    let config = crate::config::Config { data_dir: data.to_path_buf(), ..Default::default() };
    let seal = crate::app::seal_keys(&config)?;
    let vault = crate::secret::vault::Vault::load(&config.vault_key_path(), true).map_err(|e| e.to_string())?;
    Ok(crate::app::service::Service::new(
        std::sync::Arc::new(store),
        keys,
        crate::render::Renderer::builtin().map_err(|e| e.to_string())?,
        config,
        std::sync::Arc::new(crate::clock::SystemClock),
        seal,
        vault,
    ))
}

pub fn verify(file: &Path, data: &Path) -> Result<ExitCode, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let v: serde_json::Value = match access(data)? {
        Access::Direct(store) => {
            let svc = service(*store, data)?;
            serde_json::to_value(svc.verify(&bytes, true).map_err(|e| e.to_string())?).unwrap_or_default()
        }
        Access::Server(url, key) => {
            let (status, body) =
                client::request(&url, "POST", "/api/v1/verify", &key, Some("application/pdf"), &bytes)?;
            if status != 200 {
                return Err(format!("the server answered {status}: {}", String::from_utf8_lossy(&body)));
            }
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
        ApikeyCommand::Create { role, name, expires_in_days, data } => {
            let store = direct(&data, "POST /api/v1/apikeys")?;
            let role = crate::staff::Role::parse(&role).ok_or("role must be sales, legal, vendor_manager or admin")?;
            let t = now();
            let (key, rec) =
                crate::staff::create(&store, &name, role, expires_in_days.map(|d| t + d * 86_400), &cli_actor(), "", t)
                    .map_err(|e| e.to_string())?;
            println!("{key}");
            eprintln!("created key {} ({}, {}); it is shown only once", rec.id, rec.name, rec.role);
        }
        ApikeyCommand::List { data } => {
            let store = direct(&data, "GET /api/v1/apikeys")?;
            for k in crate::staff::list(&store).map_err(|e| e.to_string())? {
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
        ApikeyCommand::Revoke { id, data } => {
            let store = direct(&data, "DELETE /api/v1/apikeys/{id}")?;
            let rec = crate::staff::revoke(&store, &id, now(), &cli_actor(), "").map_err(|e| e.to_string())?;
            println!("revoked {} ({})", rec.id, rec.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn retention(data: &Path) -> Result<ExitCode, String> {
    let store = direct(data, "GET /api/v1/retention")?;
    let svc = service(store, data)?;
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
pub fn bench_seed(data: &Path, count: u64, seed: u64) -> Result<ExitCode, String> {
    let count = usize::try_from(count).map_err(|_| format!("--count {count} is too large for this machine"))?;
    let store = direct(data, "(none: stop the server to seed its directory)")?;
    let svc = service(store, data)?;
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
        data.display(),
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
pub fn backup(out: &Path, data: &Path, passphrase: Option<&crate::secret::SecretString>) -> Result<ExitCode, String> {
    let bytes = match access(data)? {
        Access::Direct(store) => {
            let mut v = Vec::new();
            store.dump(&mut v).map_err(|e| e.to_string())?;
            v
        }
        Access::Server(url, key) => {
            let (status, body) = client::request(&url, "GET", "/api/v1/backup", &key, None, &[])?;
            if status != 200 {
                return Err(format!("the server answered {status}: {}", String::from_utf8_lossy(&body)));
            }
            body
        }
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
    data: &Path,
    head_key: Option<&Path>,
    vault_key: Option<&Path>,
    passphrase_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let mut f = std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    // An encrypted backup is opened in memory first (it must be whole to authenticate); a
    // wrong passphrase or a damaged file stops here, before anything is created.
    let mut magic = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut f, crate::secret::sealed_file::MAGIC.len() as u64),
        &mut magic,
    )
    .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let input: Box<dyn std::io::Read> = if crate::secret::sealed_file::is_sealed(&magic) {
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
    let store = direct(data, "(stop the server: restore needs an empty, unused data directory)")?;
    let n = match store.restore(std::io::BufReader::new(input)) {
        Ok(n) => n,
        Err(e) => {
            drop(store);
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
            return Err(e.to_string());
        }
    };
    println!("restored {n} records into {}", data.display());
    match crate::app::verify_chains(&store) {
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
        SealCertCommand::Rotate { data } => {
            if SledStore::open(&data).is_err_and(|e| matches!(e, StoreError::Locked(_))) {
                return Err(format!(
                    "{} is held by a running server; stop it before rotating the sealing certificate",
                    data.display()
                ));
            }
            let keys = crate::seal::SealKeys::rotate(&dir(&data)).map_err(|e| e.to_string())?;
            println!("sealing certificate #{} in use; fingerprint {}", keys.current_index(), keys.fingerprint());
        }
    }
    Ok(ExitCode::SUCCESS)
}
