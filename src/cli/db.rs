//! `countersign db migrate` (the PostgreSQL schema alone) and `countersign migrate --from --to`
//! (everything, from a sled data directory to PostgreSQL or back, verified on the target).

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::store::postgres::PgStore;
use crate::store::sled_store::SledStore;
use crate::store::{Store, StoreError};

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
///
/// Streams: the source's dump is piped into the target's restore line by line (neither is
/// held whole), then [`check`] compares the two stores by per-line digests. An error on either
/// side is the error; on PostgreSQL the target's one transaction then rolls back.
pub fn migrate(from: &str, to: &str, keys: Option<&Path>) -> Result<Migrated, String> {
    match (is_url(from), is_url(to)) {
        (false, true) => {
            let dir = PathBuf::from(from);
            let source = SledStore::open(&dir).map_err(|e| format!("{from}: {e}"))?;
            let target = PgStore::open(to, keys.unwrap_or(&dir)).map_err(|e| format!("database: {e}"))?;
            if !target.is_empty().map_err(|e| e.to_string())? {
                return Err("the target database is not empty: migrate needs an empty one".into());
            }
            pipe(&source, |r| target.restore(r).map_err(|e| format!("database: {e}")))?;
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
            pipe(&source, |r| target.restore(r).map_err(|e| format!("{to}: {e}")))
                .map_err(|e| format!("{e} ({to} holds a partial copy: delete it before migrating again)"))?;
            check(&source, &target)
        }
        _ => Err("one of --from and --to must be a data directory, the other a postgres:// URL".into()),
    }
}

/// The reading end of the pipe from a dump: the end of the stream counts only when the dump
/// finished (`complete`); a dump that failed or panicked ends it with an error instead, so the
/// restore never commits a half copy.
struct DumpReader<'a> {
    pipe: std::io::PipeReader,
    complete: &'a AtomicBool,
    cut: &'a AtomicBool,
}

impl std::io::Read for DumpReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.complete.load(Ordering::SeqCst) {
            self.cut.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other("the source's dump stopped before its end"));
        }
        Ok(n)
    }
}

/// Runs `source.dump` on a scoped thread into an OS pipe that `restore` reads: at most the
/// pipe's and the buffers' few hundred KB are in flight. When the restore fails its reader is
/// dropped and the dump stops on the broken pipe; when the dump fails the restore sees an
/// error instead of the end.
fn pipe(
    source: &dyn Store,
    restore: impl FnOnce(BufReader<DumpReader<'_>>) -> Result<usize, String>,
) -> Result<usize, String> {
    pipe_dump(|w| source.dump(w), restore)
}

/// [`pipe`] with the dump as a function (tests make it fail).
fn pipe_dump(
    dump: impl FnOnce(&mut (dyn Write + Send)) -> Result<usize, StoreError> + Send,
    restore: impl FnOnce(BufReader<DumpReader<'_>>) -> Result<usize, String>,
) -> Result<usize, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let (complete, cut) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        let dumping = s.spawn(|| -> Result<usize, String> {
            let mut w = BufWriter::with_capacity(256 * 1024, writer);
            let n = dump(&mut w).map_err(|e| format!("the source: {e}"))?;
            w.flush().map_err(|e| format!("the source: {e}"))?;
            complete.store(true, Ordering::SeqCst);
            Ok(n)
        });
        let input = DumpReader { pipe: reader, complete: &complete, cut: &cut };
        let restored = restore(BufReader::with_capacity(256 * 1024, input));
        let dumped = dumping.join().unwrap_or_else(|_| Err("the source's dump panicked".into()));
        match (dumped, restored) {
            (Ok(_), Ok(n)) => Ok(n),
            // The dump's own error is the cause when the restore only saw its stream cut.
            (Err(d), Err(_)) if cut.load(Ordering::SeqCst) => Err(d),
            (Err(d), Ok(_)) => Err(d),
            (_, Err(r)) => Err(r),
        }
    })
}

/// What one store's dump comes to for [`check`]: a SHA-256 per line (32 bytes, whatever the
/// line's size) and the documents' own checks, worked out as the lines stream by.
#[derive(Default)]
struct Digests {
    partial: Vec<u8>,
    lines: Vec<[u8; 32]>,
    documents: usize,
    /// The first document whose bytes do not match its SHA-256 key.
    bad_document: Option<String>,
    error: Option<String>,
}

impl Digests {
    fn line(&mut self, line: &[u8]) {
        use base64::Engine;
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            tree: &'a str,
            key: &'a str,
            value: &'a str,
        }
        let l: Line<'_> = match serde_json::from_slice(line) {
            Ok(l) => l,
            Err(e) => {
                self.error.get_or_insert(format!("a dump line is not JSON: {e}"));
                return;
            }
        };
        // `meta` holds the format version only; both stores stamp the current one.
        if l.tree == "meta" {
            return;
        }
        self.lines.push(Sha256::digest(line).into());
        if matches!(l.tree, "documents" | "vendor_documents") {
            // The stored bytes against their content address (what every read re-checks).
            let b64 = base64::engine::general_purpose::STANDARD;
            let (key, value) = (b64.decode(l.key), b64.decode(l.value));
            let ok =
                matches!((&key, &value), (Ok(k), Ok(v)) if hex::encode(Sha256::digest(v)).as_bytes() == k.as_slice());
            if !ok && self.bad_document.is_none() {
                self.bad_document = Some(key.map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_default());
            }
            self.documents += 1;
        }
    }
}

impl Write for Digests {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..i]);
            } else {
                let mut l = std::mem::take(&mut self.partial);
                l.extend_from_slice(&rest[..i]);
                self.line(&l);
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One store's dump as sorted line digests (the two stores may list keys that share a prefix
/// in different orders).
fn digests(store: &dyn Store) -> Result<Digests, String> {
    let mut d = Digests::default();
    store.dump(&mut d).map_err(|e| e.to_string())?;
    if !d.partial.is_empty() {
        let last = std::mem::take(&mut d.partial);
        d.line(&last);
    }
    if let Some(e) = d.error.take() {
        return Err(e);
    }
    d.lines.sort_unstable();
    Ok(d)
}

/// The target holds exactly what the source holds (every record, byte for byte: compared by
/// per-line SHA-256, both dumps read at once), every document matches its SHA-256, and every
/// audit chain verifies against its authentic head.
fn check(source: &dyn Store, target: &dyn Store) -> Result<Migrated, String> {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| digests(source));
        let b = digests(target);
        (a.join().unwrap_or_else(|_| Err("reading it panicked".into())), b)
    });
    let (a, b) = (a.map_err(|e| format!("the source: {e}"))?, b.map_err(|e| format!("the copy: {e}"))?);
    if a.lines != b.lines {
        // Both sorted, each line unique: count the source's lines the copy lacks.
        let (mut i, mut j, mut missing) = (0, 0, 0);
        while i < a.lines.len() {
            match b.lines.get(j).map(|x| x.cmp(&a.lines[i])) {
                Some(std::cmp::Ordering::Less) => j += 1,
                Some(std::cmp::Ordering::Equal) => (i, j) = (i + 1, j + 1),
                _ => (i, missing) = (i + 1, missing + 1),
            }
        }
        return Err(format!(
            "the copy differs from the source ({} records in the source, {} in the copy, {missing} missing or changed)",
            a.lines.len(),
            b.lines.len()
        ));
    }
    if let Some(sha) = b.bad_document {
        return Err(StoreError::Corrupt(sha).to_string());
    }
    let (chains, events) = crate::app::verify_chains(target).map_err(|e| format!("audit trail on the target: {e}"))?;
    Ok(Migrated { records: b.lines.len(), documents: b.documents, chains, events })
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

#[cfg(test)]
mod tests {
    use std::io::BufRead;

    use super::*;

    fn lines(n: usize) -> impl FnOnce(&mut (dyn Write + Send)) -> Result<usize, StoreError> + Send {
        move |w| {
            for i in 0..n {
                writeln!(w, "line {i} {}", "x".repeat(200)).map_err(|e| StoreError::Io(e.to_string()))?;
            }
            Ok(n)
        }
    }

    #[test]
    fn a_whole_dump_reaches_the_restore_line_by_line() {
        let mut last = String::new();
        let n = pipe_dump(lines(20_000), |r| {
            let mut n = 0;
            for l in r.lines() {
                last = l.map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok(n)
        })
        .expect("piped");
        assert_eq!(n, 20_000);
        assert!(last.starts_with("line 19999 x"), "{last}");
    }

    #[test]
    fn a_dump_that_fails_midway_fails_the_restore_instead_of_ending_it() {
        let dump = |w: &mut (dyn Write + Send)| {
            lines(5_000)(w)?;
            Err(StoreError::Io("disk read error".into()))
        };
        // The restore reads to the end and would "commit" what it got: it must see an error.
        let mut committed = None;
        let err = pipe_dump(dump, |r| {
            let mut n = 0;
            for l in r.lines() {
                l.map_err(|e| format!("reading: {e}"))?;
                n += 1;
            }
            committed = Some(n);
            Ok(n)
        })
        .expect_err("the dump's error");
        assert_eq!(err, "the source: storage: disk read error");
        assert_eq!(committed, None, "nothing committed");
    }

    #[test]
    fn a_restore_that_fails_stops_the_dump_and_is_the_error() {
        let err = pipe_dump(lines(200_000), |mut r| {
            let mut first = String::new();
            r.read_line(&mut first).map_err(|e| e.to_string())?;
            Err("database: backup line 1: unknown tree".into())
        })
        .expect_err("the restore's error");
        assert_eq!(err, "database: backup line 1: unknown tree");
    }

    #[test]
    fn digests_count_lines_across_writes_and_skip_meta() {
        let mut d = Digests::default();
        let line = |tree: &str| format!("{{\"key\":\"YQ==\",\"tree\":\"{tree}\",\"value\":\"Yg==\"}}\n");
        let text = [line("agreements"), line("meta"), line("events")].concat();
        let (a, b) = text.as_bytes().split_at(17);
        d.write_all(a).expect("write");
        d.write_all(b).expect("write");
        assert_eq!(d.lines.len(), 2);
        assert!(d.error.is_none());
        // A document whose bytes do not hash to its key is named.
        d.write_all(line("documents").as_bytes()).expect("write");
        assert_eq!((d.documents, d.bad_document.as_deref()), (1, Some("a")));
    }
}
