//! Secrets at rest: two-factor seeds and webhook signing secrets are stored encrypted under a
//! key that lives in a file beside the store, never in it (`<data>/vault.key`, 0600, or
//! `vault_key_file` in the configuration). A copy of the store alone — a backup, a stolen disk
//! image of the sled files — reveals none of them.
//!
//! The cipher is XChaCha20-Poly1305: a 24-byte random nonce per encryption is safe to draw at
//! random (no counter to keep across restarts and instances). Each ciphertext is bound to what
//! it belongs to through the associated data (`"totp:<person id>"`, `"webhook:<endpoint id>"`),
//! so a ciphertext moved onto another record does not decrypt.
//!
//! Sealed format: `v1` (2 bytes) ‖ nonce (24 bytes) ‖ ciphertext and tag. The version byte
//! leaves room for a key rotation that re-encrypts under a new key.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::Secret;

/// The vault key file's name in the data directory.
pub const VAULT_KEY_FILE: &str = "vault.key";
const VERSION: &[u8; 2] = b"v1";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("a sealed secret is damaged or was sealed under another vault key")]
    Open,
    #[error("no randomness: {0}")]
    Random(String),
}

/// The key that seals secrets at rest. Cloning shares nothing mutable; it never prints.
#[derive(Clone)]
pub struct Vault {
    key: Secret,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault([redacted])")
    }
}

/// `<data>/vault.key`.
pub fn default_path(data: &Path) -> PathBuf {
    data.join(VAULT_KEY_FILE)
}

impl Vault {
    /// A vault from raw key bytes (32).
    pub fn from_key(key: Secret) -> Result<Vault, VaultError> {
        if key.len() != KEY_LEN {
            return Err(VaultError::Key { path: "(memory)".into(), reason: format!("must be {KEY_LEN} bytes") });
        }
        Ok(Vault { key })
    }

    /// A vault with a fresh random key that lives only in memory (tests, in-memory stores).
    pub fn ephemeral() -> Result<Vault, VaultError> {
        let key = Secret::random(KEY_LEN).map_err(|e| VaultError::Random(e.to_string()))?;
        Ok(Vault { key })
    }

    /// Reads the key file (64 hex digits and an optional newline); with `create`, a missing file
    /// is made with a new random key, mode 0600, written and synced before it is used.
    pub fn load(path: &Path, create: bool) -> Result<Vault, VaultError> {
        let err = |reason: String| VaultError::Key { path: path.display().to_string(), reason };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Secret::random(KEY_LEN).map_err(|e| VaultError::Random(e.to_string()))?;
                let mut f = open_new_private(path).map_err(|e| err(e.to_string()))?;
                f.write_all(format!("{}\n", hex::encode(key.expose())).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                return Ok(Vault { key });
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let text = super::SecretString::new(text);
        let bytes = hex::decode(text.expose().trim_end()).map_err(|_| err("is not 64 hex digits".into()))?;
        if bytes.len() != KEY_LEN {
            return Err(err("is not 64 hex digits".into()));
        }
        Ok(Vault { key: Secret::new(bytes) })
    }

    /// Encrypts `plain`, bound to `context` (what record it belongs to).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
        let ct = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: context.as_bytes() })
            .map_err(|_| VaultError::Open)?;
        let mut out = Vec::with_capacity(VERSION.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what [`Vault::seal`] made for the same `context`.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Secret, VaultError> {
        let rest = sealed.strip_prefix(VERSION.as_slice()).ok_or(VaultError::Open)?;
        if rest.len() < NONCE_LEN + 16 {
            return Err(VaultError::Open);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map(Secret::new)
            .map_err(|_| VaultError::Open)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(self.key.expose()))
    }
}

fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_its_context() {
        let v = Vault::ephemeral().unwrap();
        let sealed = v.seal(b"JBSWY3DPEHPK3PXP", "totp:p1").unwrap();
        assert_eq!(v.open(&sealed, "totp:p1").unwrap().expose(), b"JBSWY3DPEHPK3PXP");
        assert!(!sealed.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"), "plaintext visible");
        assert!(matches!(v.open(&sealed, "totp:p2"), Err(VaultError::Open)), "moved to another record");
        assert!(matches!(Vault::ephemeral().unwrap().open(&sealed, "totp:p1"), Err(VaultError::Open)));
        let mut bent = sealed.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert!(matches!(v.open(&bent, "totp:p1"), Err(VaultError::Open)));
        assert!(matches!(v.open(b"v1short", "totp:p1"), Err(VaultError::Open)));
        assert_ne!(v.seal(b"x", "c").unwrap(), v.seal(b"x", "c").unwrap(), "nonces repeat");
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = default_path(dir.path());
        assert!(matches!(Vault::load(&path, false), Err(VaultError::Key { .. })), "missing file, no create");
        let v = Vault::load(&path, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = v.seal(b"whsec", "webhook:w1").unwrap();
        let again = Vault::load(&path, true).unwrap();
        assert_eq!(again.open(&sealed, "webhook:w1").unwrap().expose(), b"whsec");
        std::fs::write(&path, "not hex\n").unwrap();
        let e = Vault::load(&path, true).unwrap_err().to_string();
        assert!(e.contains("vault.key") && e.contains("64 hex digits"), "{e}");
        assert!(!format!("{v:?}").contains(&hex::encode(v.key.expose())));
    }
}
