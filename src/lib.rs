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
//! * [`signing`] — HMAC-SHA256 signer links ([`signing::token`]) and the ceremony that carries an
//!   agreement from draft to executed ([`signing::service`]): one read–modify–commit per change
//!   under a write lock, PDF work off the async threads.
//! * [`store`] — sled behind the narrow [`store::Store`] trait: atomic multi-tree commits made
//!   durable (fsync) before anything is acknowledged, content-addressed documents re-checked on
//!   every read, and a hash chain of audit events per agreement ([`store::audit`]).
//! * [`archive`] — finding and keeping executed agreements: the in-memory search index, verify,
//!   lifecycle (renewal, termination, return or destruction of PHI), retention and disposal.
//! * [`staff`] — API keys (hashed) and roles.
//! * [`people`] — staff people, invitations, password sign-in, web sessions with CSRF tokens and
//!   the staff security log (stored through [`store::people`]); the web pages are [`http::web`].
//! * [`http`] — axum only: the staff API (`/api/v1`, its route table drives role checks and the
//!   OpenAPI description) and the signer pages (`/sign/{token}`), each module with `router()`.
//! * [`seal`] — the PAdES seal on every countersigned PDF: a private CA and sealing certificate
//!   (or a PKCS#12 file), CMS signing as one more incremental update, and verification.
//! * [`mail`] — outgoing mail: tera templates (text + HTML), MIME, the sled outbox as source of
//!   truth, the sender task (SMTP via lettre or `.eml` files; retries with backoff), reminders,
//!   expiry warnings and staff notices.
//! * [`cli`] — the `countersign` command; [`config`] — layered configuration; [`clock`] — time
//!   behind a trait so tests move it; [`secret`] — secrets that never print.
//!
//! Errors that users see are [`domain::findings::Finding`]s: one JSON shape for intake errors
//! (`/signers/1/email: not an email address`), missing clauses and advisories.

pub mod archive;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod people;
pub mod render;
pub mod seal;
pub mod secret;
pub mod signing;
pub mod staff;
pub mod store;
