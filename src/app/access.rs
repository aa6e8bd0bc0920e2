//! The access log of archived documents (issue 11 §2.8): every read of an executed, terminated
//! or closed agreement's documents is a `downloaded` event, whichever route served it — the
//! current document (`Service::document`), a version's draft PDF, and the sent copy through a
//! signer's link. Reads before execution are drafting and signing, not archive access, and are
//! not recorded (as for `Service::document`).

use crate::domain::agreement::{Agreement, Status};
use crate::store::Change;

use super::service::{Actor, Link, Service, ServiceError};

impl Service {
    /// Records a read of `sha` in the agreement's access log when the agreement is archived.
    /// Events only: the agreement record and its revision are untouched.
    pub fn record_read(
        &self,
        a: &Agreement,
        sha: &str,
        actor: &Actor,
        detail: serde_json::Value,
    ) -> Result<(), ServiceError> {
        if !matches!(a.status, Status::Executed | Status::Terminated | Status::Closed) {
            return Ok(());
        }
        let _g = self.write();
        let ev = self.event(a, "downloaded", actor, sha, detail);
        self.commit(Change { events: vec![ev], ..Change::default() })?;
        Ok(())
    }

    /// The draft PDF of one version, its read recorded once the agreement is archived.
    pub fn version_document_read(
        &self,
        id: &str,
        version: u32,
        actor: &Actor,
    ) -> Result<(Vec<u8>, String), ServiceError> {
        let a = self.get(id)?;
        let (bytes, sha) = self.version_document(id, version)?;
        self.record_read(&a, &sha, actor, serde_json::json!({"version": version}))?;
        Ok((bytes, sha))
    }

    /// The PDF as sent, through a signer's link, its read recorded once the agreement is
    /// archived (the link keeps opening the sent copy after execution until it expires).
    pub fn sent_document_read(&self, link: &Link, actor: &Actor) -> Result<(Vec<u8>, String), ServiceError> {
        let sha = link.agreement.sent_sha256.clone().ok_or(ServiceError::NotFound)?;
        let bytes = self.store.document(&sha)?;
        self.record_read(&link.agreement, &sha, actor, serde_json::json!({"signer": link.signer.id, "copy": "sent"}))?;
        Ok((bytes, sha))
    }
}
