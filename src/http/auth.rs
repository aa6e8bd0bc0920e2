//! Staff authentication. Until staff roles exist, every `/api` route requires the bootstrap
//! admin key, which `serve` writes on first start to `<data>/bootstrap-admin.key` (mode 0600).
//! Only the key's SHA-256 is kept in memory; comparison is constant-time.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Accepted staff keys, by hash.
pub struct AdminKeys {
    hashes: Vec<[u8; 32]>,
}

impl AdminKeys {
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> AdminKeys {
        AdminKeys { hashes: keys.into_iter().map(|k| Sha256::digest(k.as_bytes()).into()).collect() }
    }

    /// Constant-time over every stored hash (no early exit on a match).
    pub fn accepts(&self, presented: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.hashes.iter().fold(subtle::Choice::from(0), |acc, k| acc | k.ct_eq(&h)).into()
    }
}

/// The bootstrap key file's path.
pub fn bootstrap_key_path(data: &Path) -> PathBuf {
    data.join("bootstrap-admin.key")
}

/// Reads the bootstrap admin key, creating it (mode 0600) on first start. Returns the key and
/// whether it was created.
pub fn load_or_create_bootstrap(data: &Path) -> std::io::Result<(String, bool)> {
    let path = bootstrap_key_path(data);
    if path.exists() {
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{} must not be readable by group or others (chmod 600)",
                path.display()
            )));
        }
        let key = std::fs::read_to_string(&path)?.trim().to_string();
        return Ok((key, false));
    }
    std::fs::create_dir_all(data)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let key = format!("csk_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    f.write_all(key.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok((key, true))
}

/// A verified staff caller. Handlers that take it only run for valid keys.
pub struct Staff {
    pub name: String,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized("missing API key: send Authorization: Bearer <key>"));
        };
        let key = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
        if key.is_empty() || !state.admin.accepts(key) {
            return Err(ApiError::Unauthorized("invalid API key"));
        }
        Ok(Staff { name: "admin:bootstrap".into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_key_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (k1, created) = load_or_create_bootstrap(dir.path()).expect("created");
        assert!(created && k1.starts_with("csk_"));
        let mode = std::fs::metadata(bootstrap_key_path(dir.path())).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (k2, created) = load_or_create_bootstrap(dir.path()).expect("reloaded");
        assert!(!created);
        assert_eq!(k1, k2);
        let keys = AdminKeys::from_keys([k1.as_str()]);
        assert!(keys.accepts(&k1));
        assert!(!keys.accepts("csk_wrong"));
    }
}
