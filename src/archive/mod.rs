//! The archive: finding, verifying and keeping executed agreements.
//!
//! * [`search`] — the in-memory search index behind `GET /api/v1/agreements` and `export.csv`.
//! * [`lifecycle`] — renewals due, retention and the subcontractor chain, from the same index.
//! * `packed` — an index entry packed, kept in the index's shared buffer (`search::Packs`) and
//!   unpacked for the entries a search answers.

pub mod lifecycle;
mod packed;
pub mod search;
