//! The search index snapshot: written when a server stops cleanly, read when it starts, so a
//! restart does not read, decode and fold every agreement's summary again (issue 14 §6: at
//! 100,000 agreements that build was most of a 1.2–1.3 s restart).
//!
//! # When a snapshot is used
//!
//! A snapshot is used only when it is certainly the index of what the store holds; otherwise
//! the index is built from the store, as it always could be. Each check is enough to refuse:
//!
//! * **The store's token.** The server writes the snapshot under its write lock, after its last
//!   commit, with a fresh random token in it, then stores the same token in the store
//!   ([`crate::store::Store::put_index_token`]). Opening the store takes the token out again,
//!   durably, before it is handed to anyone (an open that migrated the directory or built its
//!   summaries hands none over), and any commit of an agreement after the token was stored
//!   removes it first.
//!   So the token is in the store only while nothing has changed since the snapshot; a crash,
//!   an operator command that opened the store, or a restore leaves none. An earlier release
//!   knows nothing of the token and would leave it in place, so sled also seals it, once the
//!   store is closed, with its data file's inode, length and times: a rollback that wrote to
//!   the store since voids it (`store::sled_store`).
//! * **Not in doubt.** No snapshot is written after a panic under the write lock, or when the
//!   last build could read an agreement neither from its summary nor from its record.
//! * **The build.** The snapshot carries the SHA-256 of the executable that wrote it; another
//!   build (an upgrade, a downgrade) builds its index afresh, so the layout needs no version
//!   and can change with any release.
//! * **The bytes.** The file ends with the SHA-256 of what comes before it, and every field is
//!   checked as it is read ([`Index::read_snapshot`]).
//! * **The day.** An executed, auto-renewing agreement's renewal date depends on the day its
//!   entry was made. A snapshot from an earlier day is used with those dates brought forward
//!   ([`Index::refresh_renewals`]), as a rebuild would have made them.
//!
//! # File
//!
//! `<data>/index.snapshot`, mode 0600, written to a temporary file, synced and renamed:
//! [`MAGIC`]; the token (16 bytes); the build's SHA-256 (32 bytes); the index's day (YYYYMMDD);
//! the index ([`Index::write_snapshot`]); the digest map (a count, then per document its
//! SHA-256, agreement id, `sent` or `final` and length, grouped by agreement); the SHA-256 of
//! all before it. Nothing in it is secret beyond what the store itself holds in the clear
//! (titles, party names, document digests).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::service::Digests;
use crate::archive::search::Index;
use crate::domain::compact::{Reader, put_str, put_u64};
use crate::domain::intake::Date;

/// The snapshot's file name in the data directory.
pub const FILE: &str = "index.snapshot";

/// The file's first bytes.
pub const MAGIC: &[u8; 24] = b"countersign index snap\n\0";

/// What a snapshot held.
pub struct Loaded {
    pub index: Index,
    pub digests: Digests,
    /// The day its renewal dates are for (the index's day when it was written).
    pub day: Date,
}

/// The snapshot's path for a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The SHA-256 of the running executable (`/proc/self/exe`: the image running, even when its
/// file was replaced since), read once per process.
fn build_id() -> Result<[u8; 32], String> {
    static ID: std::sync::OnceLock<Result<[u8; 32], String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let exe = Path::new("/proc/self/exe");
        let mut f = match std::fs::File::open(exe) {
            Ok(f) => f,
            Err(_) => std::env::current_exe()
                .and_then(std::fs::File::open)
                .map_err(|e| format!("cannot read the executable: {e}"))?,
        };
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => return Ok(h.finalize().into()),
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read the executable: {e}")),
            }
        }
    })
    .clone()
}

/// The snapshot's bytes.
pub fn encode(token: [u8; 16], index: &Index, digests: &Digests, day: Date) -> Result<Vec<u8>, String> {
    let mut w = Vec::with_capacity(index.len() * 512 + 1024);
    w.extend_from_slice(MAGIC);
    w.extend_from_slice(&token);
    w.extend_from_slice(&build_id()?);
    put_u64(&mut w, u64::from(day.number()));
    index.write_snapshot(&mut w);
    // Grouped by agreement, so reading shares one id among an agreement's documents.
    let mut docs: Vec<_> = digests.iter().collect();
    docs.sort_unstable_by(|a, b| (&a.1.0, a.1.1).cmp(&(&b.1.0, b.1.1)));
    put_u64(&mut w, docs.len() as u64);
    for (key, (id, which, len)) in docs {
        w.extend_from_slice(key);
        put_str(&mut w, id);
        w.push(u8::from(*which == "final"));
        put_u64(&mut w, *len);
    }
    let sum = Sha256::digest(&w);
    w.extend_from_slice(&sum);
    Ok(w)
}

/// The snapshot in `bytes`, if it is the one written with `token` by this build.
pub fn decode(bytes: &[u8], token: [u8; 16]) -> Result<Loaded, String> {
    let body_len = bytes.len().checked_sub(32).ok_or("shorter than its checksum")?;
    let (body, sum) = bytes.split_at(body_len);
    let mut r = Reader(body);
    if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
        return Err("not an index snapshot".into());
    }
    // The token before the checksum: the usual refusal (a snapshot older than the store's last
    // change) costs no hashing.
    if r.take(16)? != token {
        return Err("written before the store's last change".into());
    }
    if r.take(32)? != build_id()? {
        return Err("written by another build".into());
    }
    if Sha256::digest(body).as_slice() != sum {
        return Err("its checksum does not match".into());
    }
    let day = r.u64()?;
    let day = Date::from_number(day).ok_or_else(|| format!("no day {day}"))?;
    let index = Index::read_snapshot(&mut r)?;
    let n = r.count()?;
    let mut digests = Digests::with_capacity_and_hasher(n, Default::default());
    let mut last: Option<Arc<str>> = None;
    for _ in 0..n {
        let key: [u8; 32] = r.take(32)?.try_into().map_err(|_| "truncated")?;
        let id = r.str()?;
        let id = match last.take() {
            Some(a) if &*a == id => a,
            _ => Arc::from(id),
        };
        let which = match r.byte()? {
            0 => "sent",
            1 => "final",
            b => return Err(format!("bad document kind {b}")),
        };
        digests.insert(key, (id.clone(), which, r.u64()?));
        last = Some(id);
    }
    if !r.0.is_empty() {
        return Err("bytes after the digest map".into());
    }
    Ok(Loaded { index, digests, day })
}

/// Reads and decodes the snapshot at `path` (see [`decode`]).
pub fn read(path: &Path, token: [u8; 16]) -> Result<Loaded, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    // Far beyond any index (~340 bytes an agreement): a file this large is not one.
    let len = std::fs::metadata(path).map_err(cannot)?.len();
    if len > MAX_BYTES {
        return Err(format!("{} is {len} bytes, more than an index snapshot can be", path.display()));
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    decode(&bytes, token)
}

/// The largest snapshot read: 16 GiB, some 50 million agreements.
const MAX_BYTES: u64 = 16 << 30;
