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

    /// Creates a key: the key string (shown once) and its record.
    pub fn create_api_key(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<u64>,
        by: &str,
    ) -> Result<(String, ApiKeyRecord), ServiceError> {
        Ok(crate::staff::create(self.store.as_ref(), name, role, expires_at, by, self.clock.now())?)
    }

    /// Revokes a key (the bootstrap key once another active admin key exists).
    pub fn revoke_api_key(&self, id: &str, by: &str) -> Result<ApiKeyRecord, ServiceError> {
        Ok(crate::staff::revoke(self.store.as_ref(), id, self.clock.now(), by)?)
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
