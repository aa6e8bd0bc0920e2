//! Passphrase-encrypted files: `countersign backup --encrypt` (issue 11 §2.8). A backup holds
//! the outbox, whose messages carry live signing links; encrypted, it can leave the machine.
//!
//! The key is derived from the passphrase with argon2id (a fresh random 16-byte salt per file,
//! the cost parameters stored in the header so they can be raised later without breaking old
//! files), and the contents are sealed with XChaCha20-Poly1305 (a random 24-byte nonce), the
//! whole header being the associated data: a changed parameter, salt or byte of ciphertext
//! fails to open. Both crates are already used by the tree (passwords, the vault).
//!
//! Format: `MAGIC` (20 bytes) ‖ m_cost KiB, t_cost, p_cost (u32 LE each) ‖ salt (16) ‖
//! nonce (24) ‖ ciphertext and tag.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroize;

/// The first bytes of an encrypted file.
pub const MAGIC: &[u8; 20] = b"countersign-enc-v1\n\0";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + NONCE_LEN;
/// A passphrase shorter than this is refused when encrypting.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Highest cost accepted when opening (a crafted header cannot make restore allocate 4 GiB).
const MAX_M_COST_KIB: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealedError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    #[error("not an encrypted countersign file")]
    NotSealed,
    #[error("the file is damaged or the passphrase is wrong")]
    Open,
    #[error("the file's key-derivation parameters are out of range")]
    Params,
    #[error("{0}")]
    Crypto(String),
}

/// True when `bytes` starts like a file made by [`seal`].
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn key(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> Result<[u8; 32], SealedError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| SealedError::Params)?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| SealedError::Crypto(e.to_string()))?;
    Ok(out)
}

/// Encrypts `plain` under `passphrase` with argon2id's default cost (19 MiB, 2 passes).
pub fn seal(plain: &[u8], passphrase: &str) -> Result<Vec<u8>, SealedError> {
    seal_with(plain, passphrase, Params::DEFAULT_M_COST, Params::DEFAULT_T_COST)
}

/// [`seal`] with explicit argon2id memory (KiB) and time costs (tests use small ones).
pub fn seal_with(plain: &[u8], passphrase: &str, m_cost: u32, t_cost: u32) -> Result<Vec<u8>, SealedError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(SealedError::WeakPassphrase);
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).map_err(|e| SealedError::Crypto(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| SealedError::Crypto(e.to_string()))?;
    let p_cost = 1u32;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    for v in [m_cost, t_cost, p_cost] {
        header.extend_from_slice(&v.to_le_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let mut k = key(passphrase.as_bytes(), &salt, m_cost, t_cost, p_cost)?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    k.zeroize();
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: &header })
        .map_err(|_| SealedError::Crypto("encryption failed".into()))?;
    header.extend_from_slice(&sealed);
    Ok(header)
}

/// Decrypts a file made by [`seal`].
pub fn open(bytes: &[u8], passphrase: &str) -> Result<Vec<u8>, SealedError> {
    if !is_sealed(bytes) {
        return Err(SealedError::NotSealed);
    }
    if bytes.len() < HEADER_LEN {
        return Err(SealedError::Open);
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let n = |i: usize| {
        let at = MAGIC.len() + 4 * i;
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (m, t, p) = (n(0), n(1), n(2));
    if m > MAX_M_COST_KIB || t > MAX_T_COST || p != 1 {
        return Err(SealedError::Params);
    }
    let salt = &header[MAGIC.len() + 12..MAGIC.len() + 12 + SALT_LEN];
    let nonce = &header[MAGIC.len() + 12 + SALT_LEN..];
    let mut k = key(passphrase.as_bytes(), salt, m, t, p)?;
    let cipher = XChaCha20Poly1305::new((&k).into());
    k.zeroize();
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: header }).map_err(|_| SealedError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";

    #[test]
    fn a_sealed_file_opens_with_its_passphrase_only_and_any_changed_byte_is_refused() {
        let plain = b"{\"tree\":\"outbox\"}\n".repeat(10);
        let sealed = seal_with(&plain, PASS, 64, 1).expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(9).any(|w| w == b"\"outbox\"}"), "the contents are not in the clear");
        assert_eq!(open(&sealed, PASS).expect("open"), plain);
        assert_eq!(open(&sealed, "another passphrase"), Err(SealedError::Open));
        for at in [MAGIC.len() + 1, MAGIC.len() + 13, HEADER_LEN - 1, HEADER_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open(&bad, PASS).is_err(), "byte {at} changed");
        }
        assert_eq!(open(&sealed[..HEADER_LEN - 3], PASS), Err(SealedError::Open));
        assert_eq!(open(b"{\"not\":\"sealed\"}", PASS), Err(SealedError::NotSealed));
    }

    #[test]
    fn short_passphrases_and_absurd_costs_are_refused() {
        assert_eq!(seal(b"x", "short"), Err(SealedError::WeakPassphrase));
        let mut sealed = seal_with(b"x", PASS, 64, 1).expect("seal");
        sealed[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(open(&sealed, PASS), Err(SealedError::Params));
    }
}
