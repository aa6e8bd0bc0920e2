//! Countersign produces HIPAA Business Associate Agreements, Data Use Agreements and state-law
//! addenda, and carries them through to a countersigned, archived copy.
//!
//! # Layout
//!
//! The pipeline reads top to bottom in the module names:
//!
//! * [`domain`] — intake and agreement types, validated at the edge ([`domain::parse`]), and the
//!   regulatory tables: required elements with citations ([`domain::elements`]), the 16
//!   limited-data-set identifiers ([`domain::identifiers`]), state law ([`domain::addenda`]).
//!   No I/O, no HTTP, no storage.
//! * [`render`] — intake → tera templates (`templates/`, `addenda/`) → markup → document model
//!   ([`render::model`]) → required-elements check on the *rendered* model ([`render::check`])
//!   → layout with the embedded font's metrics ([`render::layout`]) → PDF ([`render::pdf`]).
//!   Pure and deterministic: the same intake gives the same bytes.
//! * [`cli`] — the `countersign` command: `render`, `check`, `addenda`.
//!
//! Errors that users see are [`domain::findings::Finding`]s: one JSON shape for intake errors
//! (`/signers/1/email: not an email address`), missing clauses and advisories.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod render;
pub mod secret;
pub mod signing;
pub mod store;
