//! Operator actions on the outbox: list messages with their delivery, retry one.
//!
//! The same functions serve the API (`GET /api/v1/outbox`, `POST /api/v1/outbox/{id}/retry`,
//! through the running server's service) and `countersign outbox` on a stopped server's store.

use serde_json::{Value, json};

use crate::app::service::{Delivery, Service, ServiceError};
use crate::store::{Change, Message, MessageStatus, NewEvent, Store};

/// A message as operators see it: the delivery fields plus the agreement and subject (never the
/// body: it holds live links).
pub fn view(m: &Message) -> Value {
    let mut v = serde_json::to_value(Delivery::of(m)).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("agreement_id".into(), json!(m.agreement_id));
        o.insert("subject".into(), json!(m.subject));
    }
    v
}

/// A status filter that names no message status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be queued, sent, failed or skipped, not {0:?}")]
pub struct UnknownStatus(pub String);

/// The CLI prints it as it is.
impl From<UnknownStatus> for String {
    fn from(e: UnknownStatus) -> String {
        e.to_string()
    }
}

pub fn parse_status(s: &str) -> Result<MessageStatus, UnknownStatus> {
    match s {
        "queued" => Ok(MessageStatus::Queued),
        "sent" => Ok(MessageStatus::Sent),
        "failed" => Ok(MessageStatus::Failed),
        "skipped" => Ok(MessageStatus::Skipped),
        other => Err(UnknownStatus(other.to_string())),
    }
}

/// Every message (optionally of one status), oldest first.
pub fn list(store: &dyn Store, status: Option<MessageStatus>) -> Result<Vec<Message>, ServiceError> {
    // The queued ones through the store's queue index, not by decoding every message sent.
    let all = if status == Some(MessageStatus::Queued) { store.queued_messages()? } else { store.messages()? };
    let mut ms: Vec<Message> = all.into_iter().filter(|m| status.is_none_or(|s| m.status == s)).collect();
    ms.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(ms)
}

/// Puts a failed or skipped message back in the queue with its attempts reset (same content,
/// same Message-ID), or makes a queued one due now. A sent message is not sent again: ask for a
/// new link instead. Recorded in the agreement's audit trail.
pub fn retry(store: &dyn Store, id: &str, now: u64, who: &str) -> Result<Message, ServiceError> {
    let mut m = store.message(id)?;
    match m.status {
        MessageStatus::Sent => {
            return Err(ServiceError::State(format!(
                "message {id} was already delivered{}; to send a signer a fresh link use POST /api/v1/agreements/{}/signers/{{signer}}/resend",
                m.sent_at.map(|t| format!(" at {}", crate::clock::rfc3339(t))).unwrap_or_default(),
                m.agreement_id
            )));
        }
        MessageStatus::Failed | MessageStatus::Skipped => {
            m.status = MessageStatus::Queued;
            m.attempts = 0;
            m.last_error = None;
        }
        MessageStatus::Queued => {}
    }
    m.next_attempt_at = None;
    let mut change = Change::default();
    if let Ok(a) = store.agreement(&m.agreement_id) {
        change.events.push(NewEvent {
            agreement_id: a.id.clone(),
            kind: "message_retried".into(),
            at: now,
            actor: who.into(),
            ip: String::new(),
            user_agent: String::new(),
            document_sha256: a.sent_sha256.clone().unwrap_or_else(|| a.document_sha256.clone()),
            detail: json!({"message": m.id, "kind": m.kind, "signer": m.signer_id}),
        });
    }
    change.messages.push(m.clone());
    store.commit(change)?;
    Ok(m)
}

impl Service {
    /// [`retry`] under the write lock; wakes the sender. With `agreement`, the message must
    /// belong to it.
    pub fn retry_message(&self, id: &str, agreement: Option<&str>, who: &str) -> Result<Message, ServiceError> {
        let m = {
            let _g = self.write();
            let current = self.store.message(id)?;
            if agreement.is_some_and(|a| a != current.agreement_id) {
                return Err(ServiceError::NotFound);
            }
            retry(self.store.as_ref(), id, self.clock.now(), who)?
        };
        self.mail_wake.notify_one();
        Ok(m)
    }
}
