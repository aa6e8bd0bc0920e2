//! Staff API keys through the service, so handlers never reach the store; each failure of
//! [`crate::staff`] becomes the error the policy in `http/error.rs` answers for it.

use super::service::{Service, ServiceError};
use crate::staff::{ChangeError, KeyInfo, Role};
use crate::store::ApiKeyRecord;

impl From<ChangeError> for ServiceError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Name => ServiceError::Field("/name".into(), e.to_string()),
            ChangeError::NoSuchKey(_) => ServiceError::NotFound,
            ChangeError::Refused(m) => ServiceError::State(m.into()),
            ChangeError::Store(e) => e.into(),
            ChangeError::Random(m) => ServiceError::Internal(m),
        }
    }
}

impl Service {
    /// Every key, without secrets.
    pub fn api_keys(&self) -> Result<Vec<KeyInfo>, ServiceError> {
        Ok(crate::staff::list(self.store.as_ref())?)
    }

    /// Creates a key: the key string (shown once) and its record; in the security log under
    /// `by` from `ip`.
    pub fn create_api_key(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<u64>,
        by: &str,
        ip: &str,
    ) -> Result<(String, ApiKeyRecord), ServiceError> {
        Ok(crate::staff::create(self.store.as_ref(), name, role, expires_at, by, ip, self.clock.now())?)
    }

    /// Rotates the link keys of a running server: a new random key is appended to
    /// `<data>/link-keys` (locked, fsynced) and the service's ring is replaced at once, so new
    /// links are signed with it while links signed with the older keys keep working until they
    /// expire. Refused (409) when the keys come from the configuration file: rotate them there.
    /// Returns the new signing key id and every key id, oldest first.
    pub fn rotate_link_keys(&self, by: &str) -> Result<(String, Vec<String>), ServiceError> {
        if !self.config.link_keys.is_empty() {
            return Err(ServiceError::State(
                "the link keys are set in the configuration file (link_keys): add a key there and restart".into(),
            ));
        }
        let path = self.config.data_dir.join("link-keys");
        let ring = crate::signing::token::KeyRing::rotate(&path).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let signing = ring.signing_key_id().to_string();
        let ids: Vec<String> = ring.key_ids().map(String::from).collect();
        self.keys.replace(ring);
        tracing::info!(by = %by, signing_key = %signing, keys = ids.len(), "link keys rotated");
        Ok((signing, ids))
    }

    /// Revokes a key (the bootstrap key once another active admin key exists); in the security
    /// log under `by` from `ip`.
    pub fn revoke_api_key(&self, id: &str, by: &str, ip: &str) -> Result<ApiKeyRecord, ServiceError> {
        Ok(crate::staff::revoke(self.store.as_ref(), id, self.clock.now(), by, ip)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn key_failures_become_the_policys_errors_and_storage_is_never_a_field_error() {
        assert!(matches!(ServiceError::from(ChangeError::Name), ServiceError::Field(p, _) if p == "/name"));
        assert!(matches!(ServiceError::from(ChangeError::NoSuchKey("k1".into())), ServiceError::NotFound));
        assert!(matches!(ServiceError::from(ChangeError::Refused("no")), ServiceError::State(_)));
        let io = ServiceError::from(ChangeError::Store(StoreError::Io("disk full".into())));
        assert!(matches!(io, ServiceError::Store(StoreError::Io(_))), "{io:?}");
    }
}
