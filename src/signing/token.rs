//! Signer links: HMAC-SHA256 tokens and the key ring that issues and checks them.
//!
//! # Token format
//!
//! A token is the unpadded base64url encoding of `payload || tag`, where `tag` is the full
//! 32-byte HMAC-SHA256 of `payload` under the key named in the payload. The payload, version 1:
//!
//! | bytes   | field                                                      |
//! |---------|------------------------------------------------------------|
//! | 1       | format version, `1`                                        |
//! | 1 + n   | key id: length `n` (1–32), then UTF-8                      |
//! | 1 + n   | agreement id: length `n` (0–64), then UTF-8                |
//! | 2       | signer index, big-endian `u16`                             |
//! | 1       | purpose: `1` sign, `2` download                            |
//! | 8       | expiry, unix seconds, big-endian `u64` (valid while `now < expiry`) |
//! | 4       | link generation, big-endian `u32`                          |
//!
//! Verification checks, in order: the token decodes and the payload parses exactly (no trailing
//! bytes, canonical base64url, at most 512 characters) → [`TokenError::Malformed`]; the key id
//! is in the ring → [`TokenError::UnknownKey`]; the tag matches, compared in constant time →
//! [`TokenError::BadTag`]; the link has not expired → [`TokenError::Expired`], which carries the
//! (authenticated) claims so the caller can say which agreement the link was for.
//!
//! A verified token proves only that this service issued those [`Claims`]: the caller must still
//! compare the agreement, signer, purpose and generation with what it expects (a resend bumps the
//! generation, which is how older links stop working).
//!
//! # Key file
//!
//! [`KeyRing::load_or_create`] and [`KeyRing::rotate`] keep the keys in a file of lines
//! `<id> <secret as unpadded base64url>`, oldest first; blank lines and lines starting with `#`
//! are ignored. The last key signs, all keys verify. The file must not be accessible by group or
//! others (mode `0600` or stricter). Error messages about the file name the line, never its text.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::{fmt, iter};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::secret::{Secret, SecretString};

type HmacSha256 = Hmac<Sha256>;

/// The payload format version this module writes and accepts.
pub const FORMAT_VERSION: u8 = 1;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Longest agreement id a token can carry, in bytes.
pub const MAX_AGREEMENT_LEN: usize = 64;
/// Shortest accepted key, in bytes; generated keys have this length.
pub const MIN_KEY_LEN: usize = 32;
/// Longer token strings are rejected before decoding (the longest valid token has 195).
pub const MAX_TOKEN_LEN: usize = 512;

const TAG_LEN: usize = 32;
/// Key files larger than this are refused (about 1,000 keys).
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Sign,
    Download,
}

impl Purpose {
    fn to_byte(self) -> u8 {
        match self {
            Purpose::Sign => 1,
            Purpose::Download => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Purpose> {
        match b {
            1 => Some(Purpose::Sign),
            2 => Some(Purpose::Download),
            _ => None,
        }
    }
}

/// The contents of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The key that signed the token.
    pub key_id: String,
    pub agreement: String,
    pub signer: u16,
    pub purpose: Purpose,
    /// Unix seconds; the token is valid while `now < expires`.
    pub expires: u64,
    pub generation: u32,
}

/// Why a token was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this service could have issued: bad encoding, length or payload.
    #[error("malformed link")]
    Malformed,
    /// Signed with a key that is not (or no longer) in the key ring.
    #[error("link signed with an unknown or retired key")]
    UnknownKey,
    /// The signature does not match: the token was altered or forged.
    #[error("link signature does not verify")]
    BadTag,
    /// Genuine but expired; the claims say which agreement and signer it was for.
    #[error("link expired")]
    Expired(Claims),
}

/// Why a key ring could not be built, loaded or rotated. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key ring has no keys")]
    NoKeys,
    /// Key ids must be 1–32 bytes without whitespace or control characters. `index` counts the
    /// keys given to [`KeyRing::new`] from 0 (the id itself is not shown: it may be anything).
    #[error("key #{index}: key ids must be 1–32 bytes without whitespace or control characters")]
    BadId { index: usize },
    #[error("key id {0:?} is used twice")]
    DuplicateId(String),
    #[error("key {id:?} is {len} bytes; keys must be at least 32 bytes")]
    ShortKey { id: String, len: usize },
    #[error("key file {}, line {line}: {reason}", path.display())]
    Syntax { path: PathBuf, line: usize, reason: &'static str },
    #[error("key file {} has no keys", path.display())]
    EmptyFile { path: PathBuf },
    #[error("key file {} is larger than 64 KiB", path.display())]
    FileTooLarge { path: PathBuf },
    #[error(
        "key file {} has mode {mode:04o}: it must not be accessible by group or others (chmod 600)",
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot get random bytes for a new key: {0}")]
    Random(getrandom::Error),
}

// By hand, not `#[from]`: without getrandom's `std` feature its error is no `std::error::Error`.
impl From<getrandom::Error> for KeyError {
    fn from(e: getrandom::Error) -> KeyError {
        KeyError::Random(e)
    }
}

/// One key: its id and the HMAC state keyed with it. The key bytes themselves are not kept (their
/// `Secret` is zeroed once this is built), but the keyed state is as good as the key, and is not
/// zeroed on drop: `hmac` is built without its `zeroize` feature.
#[derive(Clone)]
struct Key {
    id: String,
    mac: HmacSha256,
}

/// The link-signing keys. The newest key signs; every key verifies, so tokens issued before a
/// rotation keep working until their key is removed from the ring.
///
/// `Debug` shows the key ids only.
#[derive(Clone)]
pub struct KeyRing {
    /// Oldest first.
    older: Vec<Key>,
    newest: Key,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .field("signing_key_id", &self.signing_key_id())
            .finish()
    }
}

impl KeyRing {
    /// A ring of `keys`, oldest first: the last one signs. Needs at least one key; ids must be
    /// unique, 1–32 bytes, without whitespace or control characters; keys at least 32 bytes.
    pub fn new(keys: Vec<(String, Secret)>) -> Result<KeyRing, KeyError> {
        let mut ring: Vec<Key> = Vec::with_capacity(keys.len());
        for (index, (id, secret)) in keys.into_iter().enumerate() {
            if !valid_key_id(&id) {
                return Err(KeyError::BadId { index });
            }
            if ring.iter().any(|k| k.id == id) {
                return Err(KeyError::DuplicateId(id));
            }
            if secret.len() < MIN_KEY_LEN {
                return Err(KeyError::ShortKey { id, len: secret.len() });
            }
            // HMAC accepts keys of any length; the error case cannot happen.
            let Ok(mac) = <HmacSha256 as KeyInit>::new_from_slice(secret.expose()) else {
                return Err(KeyError::ShortKey { id, len: secret.len() });
            };
            ring.push(Key { id, mac });
        }
        let newest = ring.pop().ok_or(KeyError::NoKeys)?;
        Ok(KeyRing { older: ring, newest })
    }

    /// Loads the key file at `path`, or creates it with one random 32-byte key `k1` (mode 0600,
    /// written and fsynced) if it does not exist. Refuses a file accessible by group or others.
    pub fn load_or_create(path: &Path) -> Result<KeyRing, KeyError> {
        match File::open(path) {
            Ok(file) => load(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(path),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// Appends a new random key to the key file at `path` (`k<n+1>`, where `k<n>` is the highest
    /// such id in the file) and returns the new ring: the new key signs, the old keys still
    /// verify. The file must exist and pass the same checks as in [`KeyRing::load_or_create`].
    ///
    /// The file is locked while it is read and appended to, so concurrent rotations are
    /// serialized. Running processes keep their ring until they reload it.
    pub fn rotate(path: &Path) -> Result<KeyRing, KeyError> {
        let mut file = OpenOptions::new().read(true).append(true).open(path).map_err(|e| io_error(path, e))?;
        file.lock().map_err(|e| io_error(path, e))?;
        let (mut keys, ends_with_newline) = read_key_file(path, &mut file)?;
        let id = next_key_id(keys.iter().map(|(id, _)| id.as_str()));
        let secret = Secret::random(MIN_KEY_LEN)?;
        let mut line = key_file_line(&id, &secret);
        if !ends_with_newline {
            line = SecretString::new(format!("\n{}", line.expose()));
        }
        keys.push((id, secret));
        // Validate before touching the file.
        let ring = KeyRing::new(keys)?;
        file.write_all(line.expose().as_bytes()).map_err(|e| io_error(path, e))?;
        file.sync_all().map_err(|e| io_error(path, e))?;
        Ok(ring)
    }

    /// The id of the newest key, which signs new tokens.
    pub fn signing_key_id(&self) -> &str {
        &self.newest.id
    }

    /// All key ids, oldest first (the last is [`KeyRing::signing_key_id`]).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(|k| k.id.as_str())
    }

    /// A token for `signer` of `agreement`, signed with the newest key.
    ///
    /// # Panics
    ///
    /// If `agreement` is longer than [`MAX_AGREEMENT_LEN`] bytes (agreement ids are generated by
    /// this service and much shorter; truncating would make a token for another agreement).
    pub fn issue(&self, agreement: &str, signer: u16, purpose: Purpose, expires: u64, generation: u32) -> String {
        assert!(
            agreement.len() <= MAX_AGREEMENT_LEN,
            "agreement id is {} bytes; tokens allow at most {MAX_AGREEMENT_LEN}",
            agreement.len()
        );
        let claims = Claims {
            key_id: self.newest.id.clone(),
            agreement: agreement.to_owned(),
            signer,
            purpose,
            expires,
            generation,
        };
        let mut bytes = encode_payload(&claims);
        let tag = self.newest.mac.clone().chain_update(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The claims of `token` if it was issued with a key in this ring and has not expired at
    /// `now` (unix seconds). See the module documentation for the order of the checks.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenError::Malformed)?;
        let payload_len = bytes.len().checked_sub(TAG_LEN).ok_or(TokenError::Malformed)?;
        let (payload, tag) = bytes.split_at(payload_len);
        let claims = decode_payload(payload).ok_or(TokenError::Malformed)?;
        let key = self.find(&claims.key_id).ok_or(TokenError::UnknownKey)?;
        key.mac.clone().chain_update(payload).verify_slice(tag).map_err(|_| TokenError::BadTag)?;
        if now < claims.expires { Ok(claims) } else { Err(TokenError::Expired(claims)) }
    }

    /// HMAC-SHA256 with the newest key over `label || 0x00 || data`, for CSRF tokens and similar.
    /// Use a distinct constant `label` per use so a MAC made for one use is useless for another.
    ///
    /// # Panics
    ///
    /// If `label` contains a control character (including NUL, which would make the encoding
    /// ambiguous; excluding the others keeps these inputs apart from token payloads).
    pub fn mac(&self, label: &str, data: &[u8]) -> [u8; 32] {
        labelled_mac(&self.newest.mac, label, data).finalize().into_bytes().into()
    }

    /// Whether `tag` is [`KeyRing::mac`] of `label` and `data` under any key in the ring.
    /// Compares in constant time, and checks every key whatever the outcome.
    ///
    /// # Panics
    ///
    /// As [`KeyRing::mac`].
    pub fn verify_mac(&self, label: &str, data: &[u8], tag: &[u8]) -> bool {
        let mut ok = Choice::from(0);
        for key in self.keys() {
            let expected = labelled_mac(&key.mac, label, data).finalize().into_bytes();
            ok |= expected.as_slice().ct_eq(tag);
        }
        ok.into()
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        self.older.iter().chain(iter::once(&self.newest))
    }

    fn find(&self, id: &str) -> Option<&Key> {
        self.keys().find(|k| k.id == id)
    }
}

fn labelled_mac(key: &HmacSha256, label: &str, data: &[u8]) -> HmacSha256 {
    assert!(!label.chars().any(char::is_control), "MAC labels must not contain control characters");
    key.clone().chain_update(label.as_bytes()).chain_update([0u8]).chain_update(data)
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_KEY_ID_LEN && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

// ---- payload ----

fn encode_payload(c: &Claims) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 1 + c.key_id.len() + 1 + c.agreement.len() + 2 + 1 + 8 + 4 + TAG_LEN);
    out.push(FORMAT_VERSION);
    for field in [&c.key_id, &c.agreement] {
        // Lengths are checked by `KeyRing::new` (key ids) and `KeyRing::issue` (agreements).
        out.push(field.len() as u8);
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(&c.signer.to_be_bytes());
    out.push(c.purpose.to_byte());
    out.extend_from_slice(&c.expires.to_be_bytes());
    out.extend_from_slice(&c.generation.to_be_bytes());
    out
}

/// Parses a whole payload; `None` unless every byte is accounted for.
fn decode_payload(payload: &[u8]) -> Option<Claims> {
    let mut r = Reader(payload);
    if r.byte()? != FORMAT_VERSION {
        return None;
    }
    let key_id = r.string(1, MAX_KEY_ID_LEN)?;
    let agreement = r.string(0, MAX_AGREEMENT_LEN)?;
    let signer = u16::from_be_bytes(r.array()?);
    let purpose = Purpose::from_byte(r.byte()?)?;
    let expires = u64::from_be_bytes(r.array()?);
    let generation = u32::from_be_bytes(r.array()?);
    r.0.is_empty().then_some(Claims { key_id, agreement, signer, purpose, expires, generation })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A length-prefixed UTF-8 string of `min..=max` bytes.
    fn string(&mut self, min: usize, max: usize) -> Option<String> {
        let len = usize::from(self.byte()?);
        if len < min || len > max {
            return None;
        }
        std::str::from_utf8(self.take(len)?).ok().map(str::to_owned)
    }
}

// ---- key file ----

fn io_error(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io { path: path.to_owned(), source }
}

fn load(path: &Path, mut file: File) -> Result<KeyRing, KeyError> {
    // Wait for a concurrent `rotate` (or `create`) to finish writing.
    file.lock_shared().map_err(|e| io_error(path, e))?;
    let (keys, _) = read_key_file(path, &mut file)?;
    KeyRing::new(keys)
}

fn create(path: &Path) -> Result<KeyRing, KeyError> {
    let secret = Secret::random(MIN_KEY_LEN)?;
    let line = key_file_line("k1", &secret);
    let ring = KeyRing::new(vec![("k1".to_owned(), secret)])?;
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        // Another process created it since we looked: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return load(path, File::open(path).map_err(|e| io_error(path, e))?);
        }
        Err(e) => return Err(io_error(path, e)),
    };
    let written = file
        .lock()
        .and_then(|()| file.write_all(line.expose().as_bytes()))
        .and_then(|()| file.sync_all())
        // Make the new directory entry durable too.
        .and_then(|()| File::open(parent_dir(path))?.sync_all());
    if let Err(e) = written {
        // Leave no half-written key file behind (best effort: the error is what matters).
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, e));
    }
    Ok(ring)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `<id> <base64url key>\n`, built in a buffer that is zeroed when dropped.
fn key_file_line(id: &str, secret: &Secret) -> SecretString {
    let mut line = String::with_capacity(id.len() + 2 + secret.len().div_ceil(3) * 4);
    line.push_str(id);
    line.push(' ');
    URL_SAFE_NO_PAD.encode_string(secret.expose(), &mut line);
    line.push('\n');
    SecretString::new(line)
}

/// The keys in `file`, after checking its permissions, and whether it ends with a newline.
fn read_key_file(path: &Path, file: &mut File) -> Result<(Vec<(String, Secret)>, bool), KeyError> {
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: path.to_owned(), mode: mode & 0o7777 });
    }
    if meta.len() > MAX_KEY_FILE_LEN {
        return Err(KeyError::FileTooLarge { path: path.to_owned() });
    }
    // Room to spare, so reading does not reallocate (and leave an unzeroed copy behind).
    let mut raw = Vec::with_capacity(meta.len() as usize + 64);
    let read = file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut raw);
    let raw = Secret::new(raw);
    read.map_err(|e| io_error(path, e))?;
    if raw.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyError::FileTooLarge { path: path.to_owned() });
    }
    let ends_with_newline = raw.expose().last().is_none_or(|&b| b == b'\n');
    Ok((parse_key_file(path, raw.expose())?, ends_with_newline))
}

fn parse_key_file(path: &Path, text: &[u8]) -> Result<Vec<(String, Secret)>, KeyError> {
    let mut keys: Vec<(String, Secret)> = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let syntax = |reason| KeyError::Syntax { path: path.to_owned(), line: index + 1, reason };
        let line = std::str::from_utf8(line).map_err(|_| syntax("not UTF-8"))?.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(id), Some(encoded), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(syntax("expected `<id> <base64url key>`"));
        };
        if !valid_key_id(id) {
            return Err(syntax("key ids must be 1–32 bytes without control characters"));
        }
        if keys.iter().any(|(k, _)| k == id) {
            return Err(syntax("duplicate key id"));
        }
        // Decode into a buffer that is zeroed on drop, even when decoding fails half-way.
        let mut buf = vec![0u8; base64::decoded_len_estimate(encoded.len())];
        let decoded = URL_SAFE_NO_PAD.decode_slice(encoded, &mut buf);
        buf.truncate(match decoded {
            Ok(n) => n,
            Err(_) => 0,
        });
        let secret = Secret::new(buf);
        if decoded.is_err() {
            return Err(syntax("the key is not unpadded base64url"));
        }
        if secret.len() < MIN_KEY_LEN {
            return Err(syntax("the key is shorter than 32 bytes"));
        }
        keys.push((id.to_owned(), secret));
    }
    if keys.is_empty() {
        return Err(KeyError::EmptyFile { path: path.to_owned() });
    }
    Ok(keys)
}

/// `k<n+1>` for the highest `k<n>` among `ids` (`k1` if there is none).
fn next_key_id<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    // Ids are at most 32 bytes, so `n` has at most 31 digits and fits a u128 with room for +1.
    let highest = ids
        .filter_map(|id| id.strip_prefix('k'))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse::<u128>().ok())
        .max()
        .unwrap_or(0);
    format!("k{}", highest + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    const NOW: u64 = 1_750_000_000;
    const LATER: u64 = NOW + 7 * 24 * 3600;

    fn key(byte: u8) -> Secret {
        Secret::new(vec![byte; 32])
    }

    fn ring(ids: &[(&str, u8)]) -> KeyRing {
        KeyRing::new(ids.iter().map(|&(id, b)| (id.to_owned(), key(b))).collect()).unwrap()
    }

    /// `payload || tag` under the ring's newest key, encoded: for crafting tokens with a valid tag.
    fn sign_raw(ring: &KeyRing, payload: &[u8]) -> String {
        let tag = ring.newest.mac.clone().chain_update(payload).finalize().into_bytes();
        URL_SAFE_NO_PAD.encode([payload, tag.as_slice()].concat())
    }

    fn claims(key_id: &str, agreement: &str, signer: u16, purpose: Purpose) -> Claims {
        Claims { key_id: key_id.into(), agreement: agreement.into(), signer, purpose, expires: LATER, generation: 3 }
    }

    #[test]
    fn round_trip_both_purposes() {
        let r = ring(&[("k1", 1)]);
        for purpose in [Purpose::Sign, Purpose::Download] {
            let t = r.issue("agr_01HZX3", 2, purpose, LATER, 3);
            assert!(t.len() <= MAX_TOKEN_LEN);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
            assert_eq!(r.verify(&t, NOW), Ok(claims("k1", "agr_01HZX3", 2, purpose)));
        }
    }

    #[test]
    fn longest_token_fits() {
        let id = "k".repeat(MAX_KEY_ID_LEN);
        let r = KeyRing::new(vec![(id.clone(), key(1))]).unwrap();
        let agreement = "a".repeat(MAX_AGREEMENT_LEN);
        let t = r.issue(&agreement, u16::MAX, Purpose::Download, u64::MAX, u32::MAX);
        assert_eq!(t.len(), 195);
        let c = r.verify(&t, NOW).unwrap();
        assert_eq!((c.key_id, c.agreement, c.signer, c.generation), (id, agreement, u16::MAX, u32::MAX));
    }

    #[test]
    #[should_panic(expected = "agreement id is 65 bytes")]
    fn issue_refuses_overlong_agreement() {
        ring(&[("k1", 1)]).issue(&"a".repeat(65), 0, Purpose::Sign, LATER, 0);
    }

    #[test]
    fn expired() {
        let r = ring(&[("k1", 1)]);
        let t = r.issue("A", 0, Purpose::Sign, NOW, 1);
        assert!(r.verify(&t, NOW - 1).is_ok());
        let want = Claims { expires: NOW, generation: 1, ..claims("k1", "A", 0, Purpose::Sign) };
        assert_eq!(r.verify(&t, NOW), Err(TokenError::Expired(want.clone())));
        assert_eq!(r.verify(&t, u64::MAX), Err(TokenError::Expired(want)));
    }

    #[test]
    fn removed_key_is_unknown() {
        let both = ring(&[("k1", 1), ("k2", 2)]);
        let t = both.issue("A", 0, Purpose::Sign, LATER, 0);
        assert_eq!(both.verify(&t, NOW).unwrap().key_id, "k2");
        assert_eq!(ring(&[("k1", 1)]).verify(&t, NOW), Err(TokenError::UnknownKey));
        // Same id, different key: the tag does not verify.
        assert_eq!(ring(&[("k1", 1), ("k2", 9)]).verify(&t, NOW), Err(TokenError::BadTag));
    }

    #[test]
    fn all_keys_verify_newest_signs() {
        let old = ring(&[("k1", 1)]);
        let new = ring(&[("k1", 1), ("k2", 2)]);
        let t_old = old.issue("A", 0, Purpose::Sign, LATER, 0);
        assert_eq!(new.verify(&t_old, NOW).unwrap().key_id, "k1");
        assert_eq!(new.signing_key_id(), "k2");
        assert_eq!(new.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        let t_new = new.issue("A", 0, Purpose::Sign, LATER, 0);
        assert_eq!(new.verify(&t_new, NOW).unwrap().key_id, "k2");
        assert_eq!(old.verify(&t_new, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn check_order() {
        let r = ring(&[("k1", 1)]);
        // Wrong version with a valid tag: Malformed, not BadTag.
        let mut payload = encode_payload(&claims("k1", "A", 0, Purpose::Sign));
        payload[0] = 2;
        assert_eq!(r.verify(&sign_raw(&r, &payload), NOW), Err(TokenError::Malformed));
        // Unknown key with a bad tag: UnknownKey.
        let payload = encode_payload(&claims("k9", "A", 0, Purpose::Sign));
        let t = URL_SAFE_NO_PAD.encode([payload.as_slice(), &[0; 32]].concat());
        assert_eq!(r.verify(&t, NOW), Err(TokenError::UnknownKey));
        // Known key, bad tag, expired: BadTag (nothing is said about forged claims).
        let payload = encode_payload(&claims("k1", "A", 0, Purpose::Sign));
        let t = URL_SAFE_NO_PAD.encode([payload.as_slice(), &[0; 32]].concat());
        assert_eq!(r.verify(&t, u64::MAX), Err(TokenError::BadTag));
    }

    #[test]
    fn malformed_payloads_with_valid_tags() {
        let r = ring(&[("k1", 1)]);
        let good = encode_payload(&claims("k1", "A", 0, Purpose::Sign));
        assert!(r.verify(&sign_raw(&r, &good), NOW).is_ok());
        let mut cases: Vec<Vec<u8>> = vec![
            [good.as_slice(), &[0]].concat(), // trailing byte
            good[..good.len() - 1].to_vec(),  // truncated
            Vec::new(),
        ];
        let mut purpose = good.clone();
        purpose[1 + 1 + 2 + 1 + 1 + 2] = 3; // the purpose byte: after version, "k1", "A", signer
        cases.push(purpose);
        let mut no_key_id = good.clone();
        no_key_id.splice(1..4, [0]);
        cases.push(no_key_id);
        let long_id = "k".repeat(33);
        let mut p = vec![1, 33];
        p.extend_from_slice(long_id.as_bytes());
        p.extend_from_slice(&good[4..]);
        cases.push(p);
        let mut p = good[..4].to_vec();
        p.push(65);
        p.extend_from_slice(&[b'a'; 65]);
        p.extend_from_slice(&good[6..]);
        cases.push(p);
        let mut bad_utf8 = good.clone();
        bad_utf8[5] = 0xFF; // the agreement "A"
        cases.push(bad_utf8);
        for (i, payload) in cases.iter().enumerate() {
            assert_eq!(r.verify(&sign_raw(&r, payload), NOW), Err(TokenError::Malformed), "case {i}");
        }
        let t = r.issue("A", 0, Purpose::Sign, LATER, 0);
        for bad in [
            format!("{t}="),
            format!("{t}=="),
            format!(" {t}"),
            format!("{t}\n"),
            t.replace('-', "+").replace('_', "/") + "+/",
            "A".repeat(MAX_TOKEN_LEN + 1),
            String::new(),
            "ab".into(),
            "€".repeat(10),
        ] {
            assert_eq!(r.verify(&bad, NOW), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn claims_bind_agreement_and_signer() {
        let r = ring(&[("k1", 1)]);
        let t = r.issue("A", 0, Purpose::Sign, LATER, 3);
        let c = r.verify(&t, NOW).unwrap();
        assert_eq!(c, claims("k1", "A", 0, Purpose::Sign));
        for other in [
            r.issue("B", 0, Purpose::Sign, LATER, 3),
            r.issue("A", 1, Purpose::Sign, LATER, 3),
            r.issue("A", 0, Purpose::Download, LATER, 3),
            r.issue("A", 0, Purpose::Sign, LATER, 4),
            r.issue("AA", 0, Purpose::Sign, LATER, 3),
            r.issue("", 0, Purpose::Sign, LATER, 3),
        ] {
            assert_ne!(other, t);
            assert_ne!(r.verify(&other, NOW).unwrap(), c);
        }
    }

    #[test]
    fn new_validates() {
        assert!(matches!(KeyRing::new(vec![]), Err(KeyError::NoKeys)));
        for bad in ["", "k 1", "k\t1", "k\u{7}", &"k".repeat(33)] {
            assert!(matches!(KeyRing::new(vec![(bad.into(), key(1))]), Err(KeyError::BadId { index: 0 })), "{bad:?}");
        }
        assert!(KeyRing::new(vec![("k".repeat(32), key(1))]).is_ok());
        let dup = KeyRing::new(vec![("k1".into(), key(1)), ("k1".into(), key(2))]);
        assert!(matches!(dup, Err(KeyError::DuplicateId(id)) if id == "k1"));
        let short = KeyRing::new(vec![("k1".into(), Secret::new(vec![1; 31]))]);
        assert!(matches!(short, Err(KeyError::ShortKey { len: 31, .. })));
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let bytes = vec![0xAB; 32];
        let r = KeyRing::new(vec![("k1".into(), Secret::new(bytes.clone())), ("k2".into(), key(0xCD))]).unwrap();
        let shown = format!("{r:?} {r:#?}");
        assert!(shown.contains("k1") && shown.contains("k2"), "{shown}");
        for needle in ["171", "205", "ab", "AB", "cd", "CD", &URL_SAFE_NO_PAD.encode(&bytes)[..10], "q6ur"] {
            assert!(!shown.contains(needle), "{needle} in {shown}");
        }
        assert_eq!(format!("{:?}", Secret::new(bytes.clone())), "[redacted]");
        assert_eq!(format!("{}", Secret::new(bytes)), "[redacted]");
    }

    #[test]
    fn mac_round_trip() {
        let r = ring(&[("k1", 1)]);
        let tag = r.mac("csrf", b"session-123");
        assert!(r.verify_mac("csrf", b"session-123", &tag));
        assert!(!r.verify_mac("csrf", b"session-124", &tag));
        assert!(!r.verify_mac("csrg", b"session-123", &tag));
        assert!(!r.verify_mac("csrf", b"session-123", &tag[..31]));
        assert!(!r.verify_mac("csrf", b"session-123", &[tag.as_slice(), &[0]].concat()));
        assert!(!r.verify_mac("csrf", b"session-123", &[]));
        for i in 0..32 {
            let mut bad = tag;
            bad[i] ^= 0x01;
            assert!(!r.verify_mac("csrf", b"session-123", &bad), "byte {i}");
        }
        // The label and data are separated: moving bytes between them changes the MAC.
        assert_ne!(r.mac("ab", b"c"), r.mac("a", b"bc"));
        // Different keys, different MACs; every key in the ring verifies.
        let rotated = ring(&[("k1", 1), ("k2", 2)]);
        assert_ne!(rotated.mac("csrf", b"session-123"), tag);
        assert!(rotated.verify_mac("csrf", b"session-123", &tag));
        assert!(!ring(&[("k2", 2)]).verify_mac("csrf", b"session-123", &tag));
    }

    #[test]
    #[should_panic(expected = "control characters")]
    fn mac_label_with_nul_panics() {
        ring(&[("k1", 1)]).mac("a\0b", b"");
    }

    // ---- key file ----

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn load_or_create_creates_0600_and_reloads_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link-keys");
        let first = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(first.key_ids().collect::<Vec<_>>(), ["k1"]);
        let text = std::fs::read_to_string(&path).unwrap();
        let (id, secret) = text.trim_end().split_once(' ').unwrap();
        assert_eq!((id, secret.len(), text.lines().count()), ("k1", 43, 1));
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len(), 32);

        let again = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "reloading must not change the file");
        let t = first.issue("A", 0, Purpose::Sign, LATER, 0);
        assert_eq!(again.verify(&t, NOW).unwrap().agreement, "A");
        assert_eq!(again.issue("A", 0, Purpose::Sign, LATER, 0), t);
        assert_eq!(again.mac("x", b"y"), first.mac("x", b"y"));

        // A new file gets a new random key.
        let other = KeyRing::load_or_create(&dir.path().join("other")).unwrap();
        assert_eq!(other.verify(&t, NOW), Err(TokenError::BadTag));
    }

    #[test]
    fn create_in_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyRing::load_or_create(&dir.path().join("no/such/keys")).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err}");
    }

    #[test]
    fn accessible_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        KeyRing::load_or_create(&path).unwrap();
        for m in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
            let err = KeyRing::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyError::Permissions { mode, .. } if mode == m), "{m:o}: {err}");
            assert!(err.to_string().contains(&format!("{m:04o}")), "{err}");
            assert!(matches!(KeyRing::rotate(&path), Err(KeyError::Permissions { .. })));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(KeyRing::load_or_create(&path).is_ok());
        // The refused rotations did not touch the file.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn rotation_keeps_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let v1 = KeyRing::load_or_create(&path).unwrap();
        let t1 = v1.issue("A", 0, Purpose::Sign, LATER, 0);

        let v2 = KeyRing::rotate(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(v2.signing_key_id(), "k2");
        assert_eq!(v2.key_ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(v2.verify(&t1, NOW).unwrap().key_id, "k1");
        let t2 = v2.issue("A", 0, Purpose::Sign, LATER, 0);
        assert_eq!(v2.verify(&t2, NOW).unwrap().key_id, "k2");
        assert_eq!(v1.verify(&t2, NOW), Err(TokenError::UnknownKey));

        let reloaded = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(reloaded.signing_key_id(), "k2");
        assert_eq!(reloaded.verify(&t1, NOW).unwrap().key_id, "k1");
        assert_eq!(reloaded.verify(&t2, NOW).unwrap().key_id, "k2");

        let v3 = KeyRing::rotate(&path).unwrap();
        assert_eq!(v3.key_ids().collect::<Vec<_>>(), ["k1", "k2", "k3"]);
        assert!(v3.verify(&t1, NOW).is_ok() && v3.verify(&t2, NOW).is_ok());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn rotate_requires_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        assert!(matches!(KeyRing::rotate(&path), Err(KeyError::Io { .. })));
        assert!(!path.exists());
    }

    fn write_key_file(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn hand_edited_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let a = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let b = URL_SAFE_NO_PAD.encode([8u8; 48]);
        // Comments, blank lines, CRLF and a missing final newline are fine; custom ids too.
        write_key_file(&path, &format!("# keys\n\nold-2024 {a}\r\n  k7\t{b}  "));
        let r = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(r.key_ids().collect::<Vec<_>>(), ["old-2024", "k7"]);
        let t = r.issue("A", 0, Purpose::Sign, LATER, 0);
        let r2 = KeyRing::rotate(&path).unwrap();
        assert_eq!(r2.signing_key_id(), "k8");
        assert_eq!(r2.verify(&t, NOW).unwrap().key_id, "k7");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("  k7\t{b}  \nk8 ")), "{text}");
        assert_eq!(KeyRing::load_or_create(&path).unwrap().key_ids().count(), 3);
    }

    #[test]
    fn bad_key_files_name_the_line_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let good = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let cases = [
            (format!("k1 {good}\n{good} k2\n"), 2), // swapped: the "id" is the secret
            (format!("k1 {good}\nk2{good}\n"), 2),  // no separator
            (format!("k1 {good} extra\n"), 1),      // extra field
            (format!("k1 {good}=\n"), 1),           // padding
            (format!("k1 +{}\n", &good[1..]), 1),   // standard alphabet
            (format!("k1 {short}\n"), 1),
            (format!("k1 {good}\nk1 {good}\n"), 2),
            (format!("#\nk1 {}\n", "!".repeat(43)), 2),
        ];
        for (text, line) in cases {
            write_key_file(&path, &text);
            let err = KeyRing::load_or_create(&path).unwrap_err();
            assert!(matches!(err, KeyError::Syntax { line: l, .. } if l == line), "{text:?}: {err}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&good[..8]) && !shown.contains(&short[..8]), "{shown}");
        }
        write_key_file(&path, "");
        assert!(matches!(KeyRing::load_or_create(&path), Err(KeyError::EmptyFile { .. })));
        write_key_file(&path, "# only a comment\n\n");
        assert!(matches!(KeyRing::load_or_create(&path), Err(KeyError::EmptyFile { .. })));
        write_key_file(&path, &"#".repeat(70_000));
        assert!(matches!(KeyRing::load_or_create(&path), Err(KeyError::FileTooLarge { .. })));
        std::fs::write(&path, [b'k', b'1', b' ', 0xFF, b'\n']).unwrap();
        assert!(matches!(KeyRing::load_or_create(&path), Err(KeyError::Syntax { line: 1, .. })));
    }

    #[test]
    fn next_key_ids() {
        assert_eq!(next_key_id(["k1"].into_iter()), "k2");
        assert_eq!(next_key_id(["k9", "k10", "k2"].into_iter()), "k11");
        assert_eq!(next_key_id(["main", "kx", "k", "k-1", "k+5"].into_iter()), "k1");
        let big = format!("k{}", "9".repeat(31));
        assert_eq!(next_key_id([big.as_str()].into_iter()).len(), 33);
    }

    #[test]
    fn every_single_char_change_of_one_token_is_rejected() {
        let r = ring(&[("k1", 1)]);
        let t = r.issue("agr_01HZX3", 1, Purpose::Download, LATER, 2);
        let others = ['=', '+', '/', '.', ' ', '\0', '\n', 'é', '€', '😀'];
        for at in 0..t.len() {
            for c in B64URL.iter().map(|&b| char::from(b)).chain(others) {
                if t[at..].starts_with(c) {
                    continue;
                }
                let mut changed = t.clone();
                changed.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                assert!(r.verify(&changed, NOW).is_err(), "{changed}");
            }
        }
    }

    // ---- properties ----

    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn arb_claims() -> impl Strategy<Value = Claims> {
        (
            "[a-zA-Z0-9_-]{0,64}",
            any::<u16>(),
            prop_oneof![Just(Purpose::Sign), Just(Purpose::Download)],
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(|(agreement, signer, purpose, expires, generation)| Claims {
                key_id: "k2".into(),
                agreement,
                signer,
                purpose,
                expires,
                generation,
            })
    }

    /// A replacement for one character: from the base64url alphabet, or anything at all.
    fn arb_replacement() -> impl Strategy<Value = char> {
        prop_oneof![proptest::sample::select(B64URL).prop_map(char::from), any::<char>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_single_char_change_is_rejected(
            c in arb_claims(),
            pos in any::<prop::sample::Index>(),
            replacement in arb_replacement(),
        ) {
            let r = ring(&[("k1", 1), ("k2", 2)]);
            let t = r.issue(&c.agreement, c.signer, c.purpose, c.expires, c.generation);
            let at = pos.index(t.len());
            let original = char::from(t.as_bytes()[at]);
            prop_assume!(replacement != original);
            let mut changed = t.clone();
            changed.replace_range(at..at + 1, replacement.encode_utf8(&mut [0; 4]));
            // Whatever the time, and with every key available.
            prop_assert!(r.verify(&changed, 0).is_err(), "{changed} accepted");
            prop_assert!(r.verify(&t, 0).is_ok() || c.expires == 0);
        }

        #[test]
        fn any_bit_flip_in_the_bytes_is_rejected(c in arb_claims(), pos in any::<prop::sample::Index>(), bit in 0..8u8) {
            let r = ring(&[("k2", 2)]);
            let t = r.issue(&c.agreement, c.signer, c.purpose, c.expires, c.generation);
            let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
            let at = pos.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let changed = URL_SAFE_NO_PAD.encode(&bytes);
            let result = r.verify(&changed, 0);
            prop_assert!(matches!(result, Err(TokenError::Malformed | TokenError::UnknownKey | TokenError::BadTag)), "{result:?}");
        }

        #[test]
        fn payload_round_trips(c in arb_claims()) {
            prop_assert_eq!(decode_payload(&encode_payload(&c)), Some(c.clone()));
            let r = ring(&[("k2", 2)]);
            let t = r.issue(&c.agreement, c.signer, c.purpose, c.expires, c.generation);
            let got = r.verify(&t, 0);
            if c.expires == 0 {
                prop_assert_eq!(got, Err(TokenError::Expired(c)));
            } else {
                prop_assert_eq!(got, Ok(c));
            }
        }

        #[test]
        fn arbitrary_strings_never_panic_or_verify(s in any::<String>()) {
            let r = ring(&[("k1", 1)]);
            prop_assert!(r.verify(&s, 0).is_err());
        }

        #[test]
        fn arbitrary_base64url_never_panics_or_verifies(s in "[A-Za-z0-9_-]{0,600}") {
            let r = ring(&[("k1", 1)]);
            prop_assert!(r.verify(&s, 0).is_err());
        }

        #[test]
        fn arbitrary_payloads_never_panic_or_verify(
            payload in prop::collection::vec(any::<u8>(), 0..200),
            tag in prop::collection::vec(any::<u8>(), 0..40),
            prefix in prop_oneof![Just(vec![]), Just(vec![1u8, 2, b'k', b'1'])],
        ) {
            let r = ring(&[("k1", 1)]);
            let bytes = [prefix.as_slice(), &payload, &tag].concat();
            prop_assert!(r.verify(&URL_SAFE_NO_PAD.encode(bytes), 0).is_err());
        }

        #[test]
        fn mac_rejects_any_changed_byte(
            data in prop::collection::vec(any::<u8>(), 1..100),
            pos in any::<prop::sample::Index>(),
            delta in 1..=255u8,
            in_tag in any::<bool>(),
        ) {
            let r = ring(&[("k1", 1)]);
            let tag = r.mac("csrf", &data);
            prop_assert!(r.verify_mac("csrf", &data, &tag));
            if in_tag {
                let mut bad = tag;
                let at = pos.index(32);
                bad[at] = bad[at].wrapping_add(delta);
                prop_assert!(!r.verify_mac("csrf", &data, &bad));
            } else {
                let mut bad = data.clone();
                let at = pos.index(bad.len());
                bad[at] = bad[at].wrapping_add(delta);
                prop_assert!(!r.verify_mac("csrf", &bad, &tag));
            }
        }
    }
}
