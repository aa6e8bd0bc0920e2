//! The archive: finding, verifying and keeping executed agreements.
//!
//! * [`search`] — the in-memory search index behind `GET /api/v1/agreements` and `export.csv`.

pub mod search;
