//! The archive's listings as people see them: the search index picks and orders agreement ids
//! ([`crate::archive::search`]), the store gives the entries of the ones shown
//! ([`crate::store::Store::summaries`]).
//!
//! The index keeps only what it filters and sorts on (at 100,000 agreements, 14–17 MB less RSS
//! than keeping every entry beside it: PostgreSQL idles at 56–59 MB; README, *The entries out of
//! the index*), so a page of 50 costs one batched read of 50 summaries after the index lock is
//! let go: sled's summary tree, one `= ANY($1)` query on PostgreSQL. An entry is read as it is
//! when the page is made: one changed between the index's answer and that read shows its new
//! facts where the index placed it, and one removed meanwhile is left out.

use crate::app::service::{Service, ServiceError, entry};
use crate::archive::search::{Entry, Page, Query};
use crate::domain::agreement::Summary;

/// Ids read from the store per batch: a whole export is read in pieces of this many, so no
/// single query or answer grows with the archive.
const BATCH: usize = 256;

impl Service {
    /// One page of the archive search (`GET /api/v1/agreements`, the agreements and archive
    /// pages). A query that fails [`Query::validate`] answers an empty page: validate first.
    pub fn search(&self, q: &Query) -> Result<Page, ServiceError> {
        let hits = self.index.read().unwrap_or_else(|p| p.into_inner()).search(q);
        let items = own(q, self.entries(&hits.ids)?);
        Ok(Page { items, total: hits.total, next_cursor: hits.next_cursor })
    }

    /// Every match of `q`, in its order (`export.csv`; `limit` and `cursor` do not apply).
    pub fn export(&self, q: &Query) -> Result<Vec<Entry>, ServiceError> {
        let ids = self.index.read().unwrap_or_else(|p| p.into_inner()).export(q);
        Ok(own(q, self.entries(&ids)?))
    }

    /// The entries of these agreements, in the order given; one no longer stored is left out.
    pub fn entries(&self, ids: &[String]) -> Result<Vec<Entry>, ServiceError> {
        let today = self.today();
        Ok(self
            .summaries(ids)?
            .into_iter()
            .flatten()
            .map(|s| {
                let life = s.life();
                entry(s, &life, today)
            })
            .collect())
    }

    /// Each item with the stored summary of the agreement it names, in the order given; an item
    /// whose agreement is no longer stored is left out (the lifecycle listings).
    pub(crate) fn with_summaries<T>(&self, items: Vec<(T, String)>) -> Result<Vec<(T, Summary)>, ServiceError> {
        let ids: Vec<String> = items.iter().map(|(_, id)| id.clone()).collect();
        Ok(items.into_iter().zip(self.summaries(&ids)?).filter_map(|((t, _), s)| Some((t, s?))).collect())
    }

    /// The stored summaries of these agreements, one per id (`None`: no longer stored), read in
    /// batches of [`BATCH`], on the rayon threads when there are several (a `renewal-due`
    /// listing at 60 days names thousands; an export, every agreement).
    pub(crate) fn summaries(&self, ids: &[String]) -> Result<Vec<Option<Summary>>, ServiceError> {
        use rayon::prelude::*;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() <= BATCH {
            return Ok(self.store.summaries(ids)?);
        }
        let batches: Vec<Vec<Option<Summary>>> =
            ids.par_chunks(BATCH).map(|chunk| self.store.summaries(chunk)).collect::<Result<_, _>>()?;
        // What these summaries, their entries and the answer made of them free is returned to
        // the system once the answer is sent.
        super::memory::return_freed_soon();
        Ok(batches.into_iter().flatten().collect())
    }
}

/// `entries` without any whose stored creator is not the one `q` asks for. The index filtered
/// on it already, and a record's creator never changes: this holds a `sales` viewer's list to
/// their own even against an index that disagreed with the store.
fn own(q: &Query, mut entries: Vec<Entry>) -> Vec<Entry> {
    if let Some(who) = &q.created_by {
        entries.retain(|e| e.created_by == *who);
    }
    entries
}
