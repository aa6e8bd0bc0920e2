//! Outbox indexes (issue 14 §5): the queued messages, and each agreement's messages, without
//! scanning (and decoding) the whole outbox.
//!
//! One sled tree, `outbox_index`, with two kinds of key (values are empty; the message itself
//! stays in `outbox`):
//!
//! * `q/<message id>` — the message is queued (present exactly while its status is `queued`);
//! * `a/<agreement id>/<message id>` — the message belongs to the agreement.
//!
//! The index is written in the same transaction as the message, so it can never disagree with
//! the outbox. It is derived data: `backup` leaves it out, and it is rebuilt when the marker key
//! is missing (a data directory from a release before the index, or a restore).

use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Message, MessageStatus, StoreError};

/// Present once the index covers every message in the outbox.
const MARKER: &[u8] = b"built/v1";

fn queued_key(id: &str) -> Vec<u8> {
    [b"q/", id.as_bytes()].concat()
}

fn agreement_prefix(agreement: &str) -> Vec<u8> {
    [b"a/", agreement.as_bytes(), b"/"].concat()
}

fn agreement_key(m: &Message) -> Vec<u8> {
    [agreement_prefix(&m.agreement_id), m.id.as_bytes().to_vec()].concat()
}

/// Index entries for `m`, inside the transaction that writes it.
pub(super) fn index_tx<E>(t: &TransactionalTree, m: &Message) -> Result<(), ConflictableTransactionError<E>> {
    t.insert(agreement_key(m), &[] as &[u8])?;
    if m.status == MessageStatus::Queued {
        t.insert(queued_key(&m.id), &[] as &[u8])?;
    } else {
        t.remove(queued_key(&m.id))?;
    }
    Ok(())
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Rebuilds the index from the outbox unless it is already built.
pub(super) fn ensure_built(outbox: &Tree, index: &Tree) -> Result<(), StoreError> {
    if index.contains_key(MARKER).map_err(io)? {
        return Ok(());
    }
    rebuild(outbox, index)
}

/// Rebuilds the index from the outbox (after a restore, or for an older data directory).
pub(super) fn rebuild(outbox: &Tree, index: &Tree) -> Result<(), StoreError> {
    index.clear().map_err(io)?;
    for v in outbox.iter().values() {
        let m: Message = serde_json::from_slice(&v.map_err(io)?).map_err(io)?;
        index.insert(agreement_key(&m), &[] as &[u8]).map_err(io)?;
        if m.status == MessageStatus::Queued {
            index.insert(queued_key(&m.id), &[] as &[u8]).map_err(io)?;
        }
    }
    index.insert(MARKER, &[] as &[u8]).map_err(io)?;
    Ok(())
}

fn load<T: serde::de::DeserializeOwned>(
    outbox: &Tree,
    ids: impl Iterator<Item = Result<Vec<u8>, StoreError>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(v) = outbox.get(id?).map_err(io)? {
            out.push(serde_json::from_slice(&v).map_err(io)?);
        }
    }
    Ok(out)
}

/// The queued messages, in id order.
pub(super) fn queued<T: serde::de::DeserializeOwned>(outbox: &Tree, index: &Tree) -> Result<Vec<T>, StoreError> {
    let ids = index.scan_prefix(b"q/").keys().map(|k| k.map(|k| k[2..].to_vec()).map_err(io));
    load(outbox, ids)
}

/// One agreement's messages, in id order.
pub(super) fn of_agreement(outbox: &Tree, index: &Tree, agreement: &str) -> Result<Vec<Message>, StoreError> {
    let prefix = agreement_prefix(agreement);
    let n = prefix.len();
    let ids = index.scan_prefix(&prefix).keys().map(move |k| k.map(|k| k[n..].to_vec()).map_err(io));
    load(outbox, ids)
}
