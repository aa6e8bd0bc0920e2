//! The sealing keys: a private CA and the sealing certificates it issued, kept as PEM files in
//! the data dir (`<data>/seal`).
//!
//! | file | what |
//! | --- | --- |
//! | `ca.pem` | the CA certificate: give it to whoever must trust the seal (`pdfsig`, Acrobat) |
//! | `ca-key.pem` | the CA's private key (PKCS#8, 0600): needed only to issue sealing certificates |
//! | `seal-N.pem` | sealing certificate number N; the highest N is the current one |
//! | `seal-N-key.pem` | its private key (PKCS#8, 0600) |
//!
//! All keys are ECDSA P-256. A directory is created 0700 and locked (`.lock`) while keys are
//! created or rotated, so two processes starting at once cannot make two CAs. Files are written
//! to a temporary name, synced and renamed, so a crash never leaves half a PEM file; a key
//! whose certificate was never written is simply replaced on the next start.
//!
//! Loading refuses a key file readable by group or others (as ssh does), a key that does not
//! belong to its certificate, and a sealing certificate the CA did not issue.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::{BitString, GeneralizedTime, OctetString, UtcTime};
use der::oid::AssociatedOid;
use der::pem::LineEnding;
use der::{DateTime, DecodePem, Encode, EncodePem};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::{SealError, fingerprint_of, oid};

/// Subject of every sealing certificate.
pub(super) const SEAL_SUBJECT: &str = "CN=Countersign document seal,O=Countersign";
/// The CA's validity; sealing certificates never outlive it.
const CA_DAYS: u64 = 20 * 365 + 5;
/// A sealing certificate's validity (10 years).
const SEAL_DAYS: u64 = 10 * 365 + 3;
/// Certificates start a little in the past, for clocks that are slightly behind.
const BACKDATE_SECS: u64 = 10 * 60;
const DAY: u64 = 86_400;

/// A certificate with its DER encoding.
#[derive(Clone)]
pub(super) struct Cert {
    pub cert: Certificate,
    pub der: Vec<u8>,
}

impl Cert {
    pub(super) fn new(cert: Certificate) -> Result<Cert, SealError> {
        let der = cert.to_der().map_err(|e| SealError::Crypto(format!("encoding a certificate: {e}")))?;
        Ok(Cert { cert, der })
    }

    /// The certificate's P-256 public key, if it has one.
    pub fn p256_key(&self) -> Option<VerifyingKey> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != oid::EC_PUBLIC_KEY {
            return None;
        }
        let curve = spki.algorithm.parameters.as_ref()?.decode_as::<der::asn1::ObjectIdentifier>().ok()?;
        if curve != oid::SECP256R1 {
            return None;
        }
        VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).ok()
    }

    /// Whether `issuer` issued this certificate: names match and its key verifies the
    /// certificate's ECDSA-with-SHA256 signature.
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        let tbs = &self.cert.tbs_certificate;
        if tbs.issuer != issuer.cert.tbs_certificate.subject
            || self.cert.signature_algorithm.oid != oid::ECDSA_WITH_SHA256
        {
            return false;
        }
        let (Some(key), Ok(tbs_der)) = (issuer.p256_key(), tbs.to_der()) else { return false };
        let Some(sig) = self.cert.signature.as_bytes().and_then(|b| Signature::from_der(b).ok()) else {
            return false;
        };
        key.verify(&tbs_der, &sig).is_ok()
    }

    /// notBefore and notAfter as Unix seconds.
    pub fn validity_unix(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs())
    }
}

/// The sealing keys: the CA certificate (and its key, when present), the current sealing
/// certificate and key, and older sealing certificates kept for verification.
pub struct SealKeys {
    /// The CA that issued the current sealing certificate.
    pub(super) ca: Cert,
    pub(super) ca_pem: String,
    /// Present for generated keys; needed only to issue sealing certificates.
    pub(super) ca_key: Option<SigningKey>,
    pub(super) current: Cert,
    /// N of `seal-N`; 0 for keys from a PKCS#12 file.
    pub(super) current_index: u32,
    pub(super) key: SigningKey,
    /// Older sealing certificates, oldest first.
    pub(super) older: Vec<Cert>,
    /// Certificates embedded in each seal after the sealing certificate: the CA (and any
    /// intermediate certificates of a PKCS#12 file).
    pub(super) chain: Vec<Cert>,
    /// The CAs whose certificates count as ours when verifying: `ca` first.
    pub(super) trusted: Vec<Cert>,
}

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKeys")
            .field("current", &format_args!("seal-{}", self.current_index))
            .field("subject", &format_args!("{}", self.current.cert.tbs_certificate.subject))
            .field("fingerprint", &self.fingerprint())
            .field("older", &self.older.len())
            .field("ca_key", &self.ca_key.is_some())
            .finish_non_exhaustive()
    }
}

impl SealKeys {
    /// Loads the keys from `dir` (`<data>/seal`), creating what is missing on first start: the
    /// directory (0700), the CA (`ca.pem`, `ca-key.pem`) and the first sealing certificate
    /// (`seal-1.pem`, `seal-1-key.pem`). Keys are written 0600. The next call loads the same.
    pub fn load_or_create(dir: &Path) -> Result<SealKeys, SealError> {
        // Nothing to create: load without writing anything (the directory may be read-only).
        if exists(&dir.join("ca.pem"))? && !seal_indices(dir, false)?.is_empty() {
            return load(dir);
        }
        ensure_dir(dir)?;
        let _lock = lock(dir)?;
        let ca_path = dir.join("ca.pem");
        if !exists(&ca_path)? {
            create_ca(dir)?;
        }
        if seal_indices(dir, false)?.is_empty() {
            let index = seal_indices(dir, true)?.last().map_or(1, |i| i.saturating_add(1));
            let (ca, ca_key) = load_ca(dir)?;
            let ca_key = ca_key.ok_or_else(|| missing_ca_key(dir))?;
            issue_seal(dir, index, &ca, &ca_key)?;
        }
        load(dir)
    }

    /// Issues a new sealing certificate `seal-N` (N one above the highest so far) from the same
    /// CA and makes it current. Older certificates stay in `dir`, and in the returned keys, for
    /// [`verify`](super::verify()); their key files are left as they are.
    pub fn rotate(dir: &Path) -> Result<SealKeys, SealError> {
        let keys = SealKeys::load_or_create(dir)?;
        let _lock = lock(dir)?;
        let ca_key = keys.ca_key.as_ref().ok_or_else(|| missing_ca_key(dir))?;
        let highest = seal_indices(dir, false)?.into_iter().chain(seal_indices(dir, true)?).max().unwrap_or(0);
        let index =
            highest.checked_add(1).ok_or_else(|| SealError::Keys("sealing certificate numbers exhausted".into()))?;
        issue_seal(dir, index, &keys.ca, ca_key)?;
        load(dir)
    }

    /// The CA certificate as PEM (`-----BEGIN CERTIFICATE-----`, LF line endings): what
    /// `countersign seal-cert show|export` hands out for `pdfsig`/Acrobat to trust.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The current sealing certificate as PEM.
    pub fn seal_cert_pem(&self) -> String {
        self.current.cert.to_pem(LineEnding::LF).unwrap_or_default()
    }

    /// SHA-256 of the current sealing certificate's DER, uppercase hex pairs joined by colons
    /// (`3F:A0:…`, 95 characters), as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.current.der)
    }

    /// SHA-256 fingerprints (same format) of every sealing certificate this installation has
    /// issued, current last.
    pub fn known_fingerprints(&self) -> Vec<String> {
        self.older.iter().chain([&self.current]).map(|c| fingerprint_of(&c.der)).collect()
    }

    /// N of the current `seal-N`.
    pub fn current_index(&self) -> u32 {
        self.current_index
    }

    /// Also accepts, in [`verify`](super::verify()), seals made with `other`'s certificates:
    /// its CA becomes trusted and its sealing certificates count as older ones. For moving
    /// from generated keys to a configured PKCS#12 file (or back) without losing old seals.
    pub fn also_trust(mut self, other: &SealKeys) -> SealKeys {
        for ca in &other.trusted {
            if !self.trusted.iter().any(|c| c.der == ca.der) {
                self.trusted.push(ca.clone());
            }
        }
        for cert in other.older.iter().chain([&other.current]) {
            if !self.is_ours(&cert.der) {
                self.older.push(cert.clone());
            }
        }
        self
    }

    /// The certificate among ours (current or older) with this DER encoding.
    pub(super) fn is_ours(&self, der: &[u8]) -> bool {
        self.older.iter().chain([&self.current]).any(|c| c.der == der)
    }

    /// Whether one of our CAs issued `cert`.
    pub(super) fn issued_by_ours(&self, cert: &Cert) -> bool {
        self.trusted.iter().any(|ca| cert.issued_by(ca))
    }
}

/// Reads every file of `dir` into keys, checking them as described in the module docs.
fn load(dir: &Path) -> Result<SealKeys, SealError> {
    let (ca, ca_key) = load_ca(dir)?;
    let ca_pem = ca.cert.to_pem(LineEnding::LF).map_err(|e| SealError::Crypto(format!("encoding ca.pem: {e}")))?;
    let indices = seal_indices(dir, false)?;
    let Some((&current_index, older_indices)) = indices.split_last() else {
        return Err(SealError::Keys(format!("{}: no sealing certificate (seal-N.pem)", dir.display())));
    };
    let mut older = Vec::with_capacity(older_indices.len());
    for &i in older_indices {
        older.push(load_seal_cert(dir, i, &ca)?);
    }
    let current = load_seal_cert(dir, current_index, &ca)?;
    let key_path = dir.join(format!("seal-{current_index}-key.pem"));
    let key = read_key(&key_path)?.ok_or_else(|| {
        SealError::Keys(format!("{}: missing; the current sealing certificate has no key", key_path.display()))
    })?;
    check_pair(&current, &key, &key_path)?;
    let chain = vec![ca.clone()];
    let trusted = vec![ca.clone()];
    Ok(SealKeys { ca, ca_pem, ca_key, current, current_index, key, older, chain, trusted })
}

fn load_ca(dir: &Path) -> Result<(Cert, Option<SigningKey>), SealError> {
    let ca = read_cert(&dir.join("ca.pem"))?;
    if !ca.issued_by(&ca) {
        return Err(SealError::Keys(format!(
            "{}: not a self-signed P-256 CA certificate",
            dir.join("ca.pem").display()
        )));
    }
    let key_path = dir.join("ca-key.pem");
    let key = read_key(&key_path)?;
    if let Some(key) = &key {
        check_pair(&ca, key, &key_path)?;
    }
    Ok((ca, key))
}

fn load_seal_cert(dir: &Path, index: u32, ca: &Cert) -> Result<Cert, SealError> {
    let path = dir.join(format!("seal-{index}.pem"));
    let cert = read_cert(&path)?;
    if !cert.issued_by(ca) {
        return Err(SealError::Keys(format!("{}: not issued by the CA in ca.pem", path.display())));
    }
    Ok(cert)
}

fn missing_ca_key(dir: &Path) -> SealError {
    SealError::Keys(format!("{}: missing; cannot issue a sealing certificate", dir.join("ca-key.pem").display()))
}

/// Creates a new CA key and self-signed certificate, replacing any `ca-key.pem` left by an
/// interrupted start (no certificate can have been issued with it: `ca.pem` is written last).
fn create_ca(dir: &Path) -> Result<(), SealError> {
    let key = new_key()?;
    // A per-installation suffix keeps two installations' CAs apart by name, too.
    let point = key.verifying_key().to_encoded_point(false);
    let tag = &fingerprint_of(point.as_bytes()).replace(':', "")[..8];
    let subject = name(&format!("CN=Countersign seal CA {tag},O=Countersign"))?;
    let now = unix_now();
    let validity = validity(now.saturating_sub(BACKDATE_SECS), now + CA_DAYS * DAY)?;
    let ski = key_id(&key)?;
    let extensions = vec![
        extension(&BasicConstraints { ca: true, path_len_constraint: None }, true)?,
        extension(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
        extension(&SubjectKeyIdentifier(ski), false)?,
    ];
    let cert = issue(&key, subject.clone(), subject, validity, &key, extensions)?;
    write_file(&dir.join("ca-key.pem"), key_pem(&key)?.as_bytes(), 0o600)?;
    write_file(&dir.join("ca.pem"), cert_pem(&cert)?.as_bytes(), 0o600)
}

/// Issues `seal-{index}` (key first, certificate last).
fn issue_seal(dir: &Path, index: u32, ca: &Cert, ca_key: &SigningKey) -> Result<(), SealError> {
    let key = new_key()?;
    let now = unix_now();
    let (_, ca_end) = ca.validity_unix();
    let end = (now + SEAL_DAYS * DAY).min(ca_end);
    if end <= now {
        return Err(SealError::Keys("the CA certificate has expired: cannot issue a sealing certificate".into()));
    }
    let validity = validity(now.saturating_sub(BACKDATE_SECS), end)?;
    // Extended key usage: documentSigning (RFC 9336) for current validators, emailProtection
    // because NSS (pdfsig) checks a document signer as an S/MIME signer, and Acrobat accepts it.
    let extensions = vec![
        extension(&BasicConstraints { ca: false, path_len_constraint: None }, true)?,
        extension(&KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation), true)?,
        extension(&ExtendedKeyUsage(vec![oid::KP_DOCUMENT_SIGNING, oid::KP_EMAIL_PROTECTION]), false)?,
        extension(&SubjectKeyIdentifier(key_id(&key)?), false)?,
        extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(key_id(ca_key)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?,
    ];
    let issuer = ca.cert.tbs_certificate.subject.clone();
    let cert = issue(&key, issuer, name(SEAL_SUBJECT)?, validity, ca_key, extensions)?;
    write_file(&dir.join(format!("seal-{index}-key.pem")), key_pem(&key)?.as_bytes(), 0o600)?;
    write_file(&dir.join(format!("seal-{index}.pem")), cert_pem(&cert)?.as_bytes(), 0o600)
}

/// A v3 certificate for `key`, signed by `issuer_key` with ECDSA-with-SHA256.
fn issue(
    key: &SigningKey,
    issuer: Name,
    subject: Name,
    validity: Validity,
    issuer_key: &SigningKey,
    extensions: Vec<Extension>,
) -> Result<Certificate, SealError> {
    let crypto = |e: der::Error| SealError::Crypto(format!("building a certificate: {e}"));
    let algorithm = AlgorithmIdentifierOwned { oid: oid::ECDSA_WITH_SHA256, parameters: None };
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial()?,
        signature: algorithm.clone(),
        issuer,
        validity,
        subject,
        subject_public_key_info: spki(key)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let signature: Signature = issuer_key
        .try_sign(&tbs.to_der().map_err(crypto)?)
        .map_err(|e| SealError::Crypto(format!("signing a certificate: {e}")))?;
    let signature = BitString::from_bytes(signature.to_der().as_bytes()).map_err(crypto)?;
    Ok(Certificate { tbs_certificate: tbs, signature_algorithm: algorithm, signature })
}

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, SealError> {
    let crypto = |e: der::Error| SealError::Crypto(format!("certificate extension {}: {e}", T::OID));
    let extn_value = OctetString::new(value.to_der().map_err(crypto)?).map_err(crypto)?;
    Ok(Extension { extn_id: T::OID, critical, extn_value })
}

/// Key identifier (RFC 7093, method 1): the leftmost 160 bits of the SHA-256 of the public
/// key's bit string.
fn key_id(key: &SigningKey) -> Result<OctetString, SealError> {
    use sha2::Digest;
    let point = key.verifying_key().to_encoded_point(false);
    let digest = sha2::Sha256::digest(point.as_bytes());
    OctetString::new(digest[..20].to_vec()).map_err(|e| SealError::Crypto(format!("key identifier: {e}")))
}

fn new_key() -> Result<SigningKey, SealError> {
    // A uniformly random 32-byte string is a valid scalar except with probability ~2^-32.
    for _ in 0..64 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SealError::Crypto(format!("no randomness for a key: {e}")))?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(SealError::Crypto("could not draw a P-256 key".into()))
}

fn serial() -> Result<SerialNumber, SealError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SealError::Crypto(format!("no randomness for a serial: {e}")))?;
    // Positive, and no leading zero octet to strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| SealError::Crypto(format!("serial number: {e}")))
}

fn name(s: &str) -> Result<Name, SealError> {
    Name::from_str(s).map_err(|e| SealError::Crypto(format!("name {s:?}: {e}")))
}

fn spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, SealError> {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key())
        .map_err(|e| SealError::Crypto(format!("encoding a public key: {e}")))
}

fn validity(from: u64, to: u64) -> Result<Validity, SealError> {
    Ok(Validity { not_before: asn1_time(from)?, not_after: asn1_time(to)? })
}

/// RFC 5280 / RFC 5652 time: UTCTime through 2049, GeneralizedTime from 2050.
pub(super) fn asn1_time(unix: u64) -> Result<Time, SealError> {
    let bad = |e: der::Error| SealError::Crypto(format!("time {unix}: {e}"));
    let dt = DateTime::from_unix_duration(Duration::from_secs(unix)).map_err(bad)?;
    if dt.year() < 2050 {
        UtcTime::from_date_time(dt).map(Time::UtcTime).map_err(bad)
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn key_pem(key: &SigningKey) -> Result<der::zeroize::Zeroizing<String>, SealError> {
    key.to_pkcs8_pem(LineEnding::LF).map_err(|e| SealError::Crypto(format!("encoding a private key: {e}")))
}

pub(super) fn cert_pem(cert: &Certificate) -> Result<String, SealError> {
    cert.to_pem(LineEnding::LF).map_err(|e| SealError::Crypto(format!("encoding a certificate: {e}")))
}

fn check_pair(cert: &Cert, key: &SigningKey, key_path: &Path) -> Result<(), SealError> {
    if cert.p256_key().as_ref() != Some(key.verifying_key()) {
        return Err(SealError::Keys(format!("{}: does not match its certificate", key_path.display())));
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |source| SealError::Io { path: path.to_path_buf(), source }
}

fn exists(path: &Path) -> Result<bool, SealError> {
    path.try_exists().map_err(io(path))
}

fn read_cert(path: &Path) -> Result<Cert, SealError> {
    let pem = fs::read(path).map_err(io(path))?;
    let cert = Certificate::from_pem(&pem)
        .map_err(|e| SealError::Keys(format!("{}: not a PEM certificate: {e}", path.display())))?;
    Cert::new(cert)
}

/// The key in `path`, `None` if there is no such file.
fn read_key(path: &Path) -> Result<Option<SigningKey>, SealError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SealError::Keys(format!(
            "{}: readable by group or others (mode {mode:03o}); it must be 0600",
            path.display()
        )));
    }
    let pem = der::zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| SealError::Keys(format!("{}: not a PKCS#8 P-256 private key: {e}", path.display())))?;
    Ok(Some(key))
}

/// The N of every `seal-N.pem` (or `seal-N-key.pem` when `keys`), ascending.
fn seal_indices(dir: &Path, keys: bool) -> Result<Vec<u32>, SealError> {
    let suffix = if keys { "-key.pem" } else { ".pem" };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|s| s.strip_prefix("seal-")).and_then(|s| s.strip_suffix(suffix)) else {
            continue;
        };
        if !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && !n.starts_with('0')
            && let Ok(i) = n.parse::<u32>()
        {
            out.push(i);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn ensure_dir(dir: &Path) -> Result<(), SealError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}

/// An exclusive lock on `dir/.lock`, released when the file is dropped.
fn lock(dir: &Path) -> Result<File, SealError> {
    let path = dir.join(".lock");
    let file =
        OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path).map_err(io(&path))?;
    file.lock().map_err(io(&path))?;
    Ok(file)
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename) with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SealError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io(&tmp))?;
        // `mode` applies only to a new file; make sure of it either way.
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
