//! One read–modify–commit for every change to an agreement: [`Service::update`].
//!
//! Concurrency: the change is decided *without* a lock — rendering, sealing and the timestamp
//! authority may take seconds and must not hold up other agreements — and committed under the
//! service's write lock only if the agreement's revision is still the one that was loaded: the
//! store's commit checks it inside its transaction and answers `Conflict` otherwise. Then the
//! whole decision runs again on the fresh agreement (its checks included, so two submissions of
//! one signing link cannot both sign). After [`ATTEMPTS`] lost races the caller gets a 409 and
//! may retry. [`Service::update_nowait`] stops before the wait for the disk, for callers that
//! wait without a thread (the signer's form, see [`crate::store::group`]).
//!
//! Events committed without the agreement do not bump the revision: downloads of an executed
//! copy (which no signing action changes), and the reminder tick's `message_queued` events for
//! an agreement out for signature. A tick's event committed while the last signature is being
//! decided is kept in the chain (the store numbers events at commit), but the certificate of
//! completion, built from the chain read during the decision, does not list it.

use crate::domain::agreement::Agreement;
use crate::store::{Change, StoreError};

use super::service::{Pending, Service, ServiceError};

/// How many times a change is decided before a conflict is reported.
const ATTEMPTS: usize = 3;

impl Service {
    /// Loads agreement `id`, lets `decide` change it and fill the [`Change`] (events, documents,
    /// messages, versions) outside any lock, then commits agreement and change together if no
    /// other change was committed meanwhile; else decides again. `decide` sees a fresh copy on
    /// every attempt and must not have effects outside its arguments. Returns the agreement as
    /// committed and what `decide` returned.
    pub(crate) fn update<T>(
        &self,
        id: &str,
        decide: impl FnMut(&mut Agreement, &mut Change) -> Result<T, ServiceError>,
    ) -> Result<(Agreement, T), ServiceError> {
        let (a, out, pending) = self.update_nowait(id, None, decide)?;
        self.durable(pending)?;
        Ok((a, out))
    }

    /// [`Service::update`] up to the commit, without waiting for the disk: the caller must
    /// wait for the [`Pending`] ([`Service::durable`], or [`Service::durable_async`] on an async
    /// thread) before acknowledging anything.
    ///
    /// `loaded`, when given, is a copy of agreement `id` the caller has just read: the first
    /// attempt decides on it instead of reading the record again (the signer's form has read it
    /// to verify the link). A copy that is no longer current costs nothing but that attempt:
    /// the commit's revision check refuses it and the next attempt reads the record.
    pub(crate) fn update_nowait<T>(
        &self,
        id: &str,
        mut loaded: Option<Agreement>,
        mut decide: impl FnMut(&mut Agreement, &mut Change) -> Result<T, ServiceError>,
    ) -> Result<(Agreement, T, Pending), ServiceError> {
        // The caller's copy is one attempt more: a copy gone stale must not cost a fresh read.
        let attempts = ATTEMPTS + usize::from(loaded.is_some());
        for _ in 0..attempts {
            let loaded = match loaded.take() {
                Some(a) if a.id == id => a,
                _ => self.store.agreement(id)?,
            };
            let revision = loaded.revision;
            let mut a = loaded;
            let mut change = Change::default();
            let out = decide(&mut a, &mut change)?;
            a.revision = revision + 1;
            a.updated_at = self.clock.now();
            change.agreement = Some(a.clone());
            // Short critical section: apply (the store's transaction checks the revision and
            // answers `Conflict` if another change landed since the load), update the index.
            // Writers arriving together are applied in one batch, under the write lock, by one
            // of them (see `app::combine`). The lock is released before the fsync, which
            // concurrent writers share (group commit); nothing is acknowledged before the
            // pending commit is durable.
            match self.apply_combined(change) {
                Ok((_, ticket, queued)) => return Ok((a, out, Pending { ticket, queued })),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Store(StoreError::Conflict))
    }
}
