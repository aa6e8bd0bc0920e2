//! The link-key ring a running server uses, replaceable while it serves (issue 11 §2.8: an
//! admin route rotates the link keys without a restart).
//!
//! Concurrency: the ring sits behind an `RwLock<Arc<KeyRing>>`; every use clones the `Arc` under
//! a read lock held for that clone only, then works without any lock, so a rotation never waits
//! on HMAC work and a request never sees half a ring. A rotation swaps in a ring that still
//! holds every older key, so links issued before it keep verifying until they expire.

use std::sync::{Arc, RwLock};

use super::token::{Claims, KeyRing, Purpose, TokenError};

pub struct LiveKeyRing {
    ring: RwLock<Arc<KeyRing>>,
}

impl std::fmt::Debug for LiveKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl From<KeyRing> for LiveKeyRing {
    fn from(ring: KeyRing) -> Self {
        LiveKeyRing { ring: RwLock::new(Arc::new(ring)) }
    }
}

impl LiveKeyRing {
    /// The ring as it is now.
    pub fn current(&self) -> Arc<KeyRing> {
        // A panic cannot leave the Arc half-replaced: a poisoned lock is safe to read.
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `ring` in use for every request from now on.
    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }

    /// [`KeyRing::issue`] with the current ring.
    pub fn issue(&self, agreement: &str, signer: u16, purpose: Purpose, expires: u64, generation: u32) -> String {
        self.current().issue(agreement, signer, purpose, expires, generation)
    }

    /// [`KeyRing::verify`] with the current ring.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        self.current().verify(token, now)
    }

    /// [`KeyRing::mac`] with the current ring.
    pub fn mac(&self, label: &str, data: &[u8]) -> [u8; 32] {
        self.current().mac(label, data)
    }

    /// [`KeyRing::verify_mac`] with the current ring.
    pub fn verify_mac(&self, label: &str, data: &[u8], tag: &[u8]) -> bool {
        self.current().verify_mac(label, data, tag)
    }

    /// The id of the key that signs new links.
    pub fn signing_key_id(&self) -> String {
        self.current().signing_key_id().to_string()
    }

    /// Every key id, oldest first.
    pub fn key_ids(&self) -> Vec<String> {
        self.current().key_ids().map(String::from).collect()
    }
}
