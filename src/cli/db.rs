//! `countersign db migrate` (the PostgreSQL schema alone) and `countersign migrate --from --to`
//! (everything, from a sled data directory to PostgreSQL or back, verified on the target).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sled_store::SledStore;

/// The database URL from the flag or `COUNTERSIGN_DATABASE_URL`.
pub fn database_url(flag: Option<String>) -> Result<String, String> {
    flag.or_else(|| std::env::var("COUNTERSIGN_DATABASE_URL").ok())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| "give --database-url or set COUNTERSIGN_DATABASE_URL".to_string())
}

/// `countersign db migrate`.
pub fn db_migrate(url: &str) -> Result<ExitCode, String> {
    let m = crate::store::postgres::migrate_url(url).map_err(|e| e.to_string())?;
    if m.from == m.to {
        println!("database schema is current (version {})", m.to);
    } else {
        println!("database schema migrated from version {} to {}", m.from, m.to);
    }
    Ok(ExitCode::SUCCESS)
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// What `migrate` copied and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub records: usize,
    pub documents: usize,
    pub chains: usize,
    pub events: usize,
}

/// `countersign migrate --from SOURCE --to TARGET`: one side a data directory, the other a
/// PostgreSQL URL. The key files stay with the data directory: from a directory they are read
/// there (every instance on the database needs copies); to a directory they are copied from
/// `keys` (the data directory the PostgreSQL instances run with). Refuses a non-empty target.
pub fn migrate(from: &str, to: &str, keys: Option<&Path>) -> Result<Migrated, String> {
    match (is_url(from), is_url(to)) {
        (false, true) => {
            let dir = PathBuf::from(from);
            let source = SledStore::open(&dir).map_err(|e| format!("{from}: {e}"))?;
            let target = PgStore::open(to, keys.unwrap_or(&dir)).map_err(|e| format!("database: {e}"))?;
            if !target.is_empty().map_err(|e| e.to_string())? {
                return Err("the target database is not empty: migrate needs an empty one".into());
            }
            let lines = dump(&source)?;
            target.restore(lines.join("\n").as_bytes()).map_err(|e| format!("database: {e}"))?;
            check(&source, &target)
        }
        (true, false) => {
            let dir = PathBuf::from(to);
            let keys =
                keys.ok_or("give --data: the data directory the PostgreSQL instances keep their key files in")?;
            if dir.exists() && std::fs::read_dir(&dir).map_err(|e| e.to_string())?.next().is_some() {
                return Err(format!("{to} is not empty: migrate needs a new or empty data directory"));
            }
            let source = PgStore::open(from, keys).map_err(|e| format!("database: {e}"))?;
            copy_key_files(keys, &dir)?;
            let target = SledStore::open(&dir).map_err(|e| format!("{to}: {e}"))?;
            let lines = dump(&source)?;
            target.restore(lines.join("\n").as_bytes()).map_err(|e| format!("{to}: {e}"))?;
            check(&source, &target)
        }
        _ => Err("one of --from and --to must be a data directory, the other a postgres:// URL".into()),
    }
}

fn dump(store: &dyn Store) -> Result<Vec<String>, String> {
    let mut buf = Vec::new();
    store.dump(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8(buf).map_err(|e| e.to_string())?.lines().map(str::to_string).collect())
}

/// The target holds exactly what the source holds (every record, byte for byte), every
/// document matches its SHA-256, and every audit chain verifies against its authentic head.
fn check(source: &dyn Store, target: &dyn Store) -> Result<Migrated, String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    // `meta` holds the format version only; both stores stamp the current one.
    // Sorted: the two stores may list keys that share a prefix in different orders.
    let comparable = |lines: Vec<String>| -> Vec<String> {
        let mut l: Vec<String> = lines.into_iter().filter(|l| !l.contains("\"tree\":\"meta\"")).collect();
        l.sort();
        l
    };
    let (a, b) = (comparable(dump(source)?), comparable(dump(target)?));
    if a != b {
        let missing = a.iter().filter(|l| !b.contains(l)).count();
        return Err(format!(
            "the copy differs from the source ({} records in the source, {} in the copy, {missing} missing or changed)",
            a.len(),
            b.len()
        ));
    }
    let mut documents = 0;
    for l in &b {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
        if matches!(v["tree"].as_str(), Some("documents" | "vendor_documents")) {
            let key = b64.decode(v["key"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
            let sha = String::from_utf8_lossy(&key).into_owned();
            let read =
                if v["tree"] == "documents" { target.document(&sha) } else { target.vendors().vendor_document(&sha) };
            read.map_err(|e| format!("document {sha}: {e}"))?;
            documents += 1;
        }
    }
    let (chains, events) = crate::app::verify_chains(target).map_err(|e| format!("audit trail on the target: {e}"))?;
    Ok(Migrated { records: b.len(), documents, chains, events })
}

/// Copies the key files (everything but the store, the outbox copies and the server address)
/// from `keys` into the new data directory `dir`, keeping their modes.
fn copy_key_files(keys: &Path, dir: &Path) -> Result<(), String> {
    crate::store::perms::secure_data_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for entry in std::fs::read_dir(keys).map_err(|e| err(keys, e))? {
        let entry = entry.map_err(|e| err(keys, e))?;
        let name = entry.file_name();
        if matches!(name.to_str(), Some("sled" | "outbox" | "server.url")) {
            continue;
        }
        let (src, dst) = (entry.path(), dir.join(&name));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| err(&dst, e))?;
            for f in std::fs::read_dir(&src).map_err(|e| err(&src, e))? {
                let f = f.map_err(|e| err(&src, e))?;
                if f.path().is_file() {
                    std::fs::copy(f.path(), dst.join(f.file_name())).map_err(|e| err(&f.path(), e))?;
                }
            }
        } else if src.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| err(&src, e))?;
        }
    }
    Ok(())
}

/// `countersign migrate` with its report.
pub fn migrate_command(from: &str, to: &str, keys: Option<&Path>) -> Result<ExitCode, String> {
    let m = migrate(from, to, keys)?;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "migrated {} record(s): {} document(s) match their SHA-256, audit trail intact ({} chain(s), {} event(s))",
        m.records, m.documents, m.chains, m.events
    );
    Ok(ExitCode::SUCCESS)
}
