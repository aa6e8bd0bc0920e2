//! The archive: finding, verifying and keeping executed agreements.
//!
//! * [`search`] — the in-memory search index behind `GET /api/v1/agreements` and `export.csv`.
//! * [`lifecycle`] — renewals due, retention and the subcontractor chain, from the same index.

pub mod lifecycle;
pub mod search;
