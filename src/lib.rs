//! Countersign produces HIPAA Business Associate Agreements, Data Use Agreements and state-law
//! addenda, and carries them through to a countersigned, archived copy.
//!
//! # Layout
//!
//! Dependencies point one way, from the outside in; a module names only modules listed before
//! it (checked by `cargo test --test integration layout`: no module imports [`cli`], `domain`
//! imports nothing else from the crate, and top-level modules form no cycle).
//!
//! * [`domain`] — intake and agreement types, validated at the edge ([`domain::parse`]), the
//!   regulatory tables: required elements with citations ([`domain::elements`]), the 16
//!   limited-data-set identifiers ([`domain::identifiers`]), state law ([`domain::addenda`]);
//!   the audit event and its hash chain ([`domain::audit`]), the staff security log's event and
//!   its chain ([`domain::security_log`]), the one calendar date every module parses, converts
//!   and prints with, and the date formats ([`domain::time::Date`]), the vendor register's rules
//!   — role determination with citations, risk tier, reassessments, obligations, flags, the
//!   report's figures ([`domain::vendor`]) —, and the one accent-folding rule of every search
//!   ([`domain::fold`]), and the compact binary fields of the agreements' stored summaries and
//!   the search index's snapshot ([`domain::compact`]).
//!   No HTTP, no storage.
//! * [`metrics`] — Prometheus counters, gauges and histograms (pure: names nothing else);
//!   [`clock`] — time behind a trait so tests move it; [`secret`] — secrets that never print,
//!   the vault that seals secrets at rest under a key file outside the store
//!   ([`secret::vault`]: two-factor seeds, webhook secrets) and encrypted backups;
//!   [`signing`] — HMAC-SHA256 signer links ([`signing::token`]) and the consent text;
//!   [`config`] — layered configuration, mail settings included ([`config::mail`]).
//! * [`render`] — intake → tera templates (`templates/`, `addenda/`) → markup → document model
//!   ([`render::model`]) → required-elements check on the *rendered* model ([`render::check`])
//!   → layout with the embedded font's metrics ([`render::layout`]) → PDF ([`render::pdf`]);
//!   the repeated work of a template version kept in byte-bounded caches of one kind
//!   (`render::shelf`). Deterministic: the same intake gives the same bytes. What does not
//!   depend on the intake is done once and kept, compared in full on every hit so the bytes
//!   never depend on what is kept: markup sections, folded clause texts, laid-out clauses and
//!   line breaks per thread, compressed pages shared by all threads under a byte budget. Also
//!   the tera and HTML escape of every page and email ([`render::html`]).
//! * [`pdf`] — incremental updates ([`pdf::append`]): the appendix and the seal are added after
//!   the sent bytes, which stay an exact prefix.
//! * [`seal`] — the PAdES seal on every countersigned PDF: a private CA and sealing certificate
//!   (or a PKCS#12 file), CMS signing as one more incremental update, RFC 3161 timestamps, and
//!   verification.
//! * [`store`] — sled behind the narrow [`store::Store`] trait: atomic multi-tree commits made
//!   durable (fsync) before anything is acknowledged, concurrent commits sharing one fsync
//!   ([`store::group`]; threads wait on a condvar, the signer's requests on a notify, without a
//!   thread), content-addressed documents re-checked on
//!   every read, the audit chain per agreement, derived trees written in the same commits,
//!   left out of backups and rebuilt from the records when missing (the outbox's indexes; each
//!   agreement's archive summary, which start-up reads instead of every record), and the
//!   reminder tick's wake notes (advisory, written outside the commits); the last decoded copy of
//!   the agreements whose links are being checked, used only while the record's bytes are
//!   unchanged (`store/decoded.rs`, sled only); sub-stores for
//!   people ([`store::people`]), webhook endpoints and deliveries ([`store::webhooks`]) and the
//!   vendor register ([`store::vendors`]), each with its trees in every backup. sled is
//!   vendored (`vendor/sled`: its blob files synced, its page table sized exactly and 32 bytes
//!   a page fragment, leaves of small items split above 64, `Db::shed_cache` for the pages the
//!   index build read; `vendor/README.md`).
//! * [`staff`] — API keys (hashed) and roles; [`archive`] — the in-memory search index (ids in
//!   one buffer, titles and parties as numbers in a dictionary of distinct folded strings, the
//!   facts it filters and sorts on in fixed-size rows, no heap block per row beyond a parent's
//!   id, or odd state codes in a map by id; it answers ids, and the app layer reads the entries
//!   shown from the store,
//!   `app::listing`), written as a snapshot when a server stops and read at the next start
//!   when the store vouches for it ([`app::snapshot`]: a token the store holds only while
//!   nothing has changed since).
//! * [`mail`] — mail composition: tera templates (text + HTML), MIME, `.eml` files, SMTP via
//!   lettre, staff notices.
//! * [`app`] — the application layer: the service that carries an agreement from draft to
//!   executed ([`app::service`]: one read–modify–commit per change, PDF work off the async
//!   threads; concurrent changes applied in one store commit by whichever writer holds the
//!   write lock, [`app::update`]), archive search and export ([`app::listing`]: the index's
//!   ids, the store's entries), lifecycle (verify, renewal, termination, retention), and delivery (the outbox,
//!   the reminder schedule, whose tick reads only agreements whose wake note has come due or
//!   whose record changed ([`app::schedule::wake_at`]), the sender task: due messages leased
//!   and recorded in batches, one commit each, with retries and backoff; it also writes the
//!   `.eml` copies of the mail a signature queued), the signer's emailed
//!   one-time code ([`app::email_code`]), webhooks ([`app::webhooks`]: deliveries queued in the
//!   change's own commit, signed, sent with SSRF checks after DNS) and the vendor register
//!   ([`app::vendors`]). [`app::open`] builds it from configuration. `app::memory` tunes glibc's
//!   allocator for a long-lived server (large blocks mapped apart, an arena per start-up
//!   thread) and hands freed heap back after the start-up passes and large listings.
//! * [`people`] — staff people, invitations, password sign-in, web sessions with CSRF tokens and
//!   the staff security log (stored through [`store::people`]); the web pages are [`http::web`],
//!   the new-agreement form [`http::drafting`] (intake pointers ↔ form fields in
//!   [`domain::form`]) and the agreement page's actions [`http::agreement_page`]; two-factor
//!   and passwords [`http::account`], administration [`http::admin_pages`] and
//!   [`http::webhook_pages`], the archive [`http::archive_pages`], verifying a PDF (staff and
//!   public upload forms) [`http::verify_pages`], vendors
//!   [`http::vendor_pages`].
//! * [`http`] — axum only: the staff API (`/api/v1`, its route table [`http::api::ROUTES`] also
//!   drives the OpenAPI description), the staff web pages and the signer pages (`/sign/{token}`),
//!   each module with `router()`. Who may call what is one table per kind ([`http::api::ROUTES`],
//!   [`http::routes::PAGES`]) enforced by one route layer, [`http::routes::authorize`], before any
//!   handler runs (fail closed); [`http::state::build_state`] assembles the server's state.
//! * [`cli`] — the `countersign` command, outermost: nothing imports it.
//!
//! Errors that users see are [`domain::findings::Finding`]s: one JSON shape for intake errors
//! (`/signers/1/email: not an email address`), missing clauses and advisories.
//! Library functions return typed errors — one enum per module whose variants say what went
//! wrong ([`config::ConfigError`], [`mail::MailError`], [`app::OpenError`], …) — so callers match
//! on variants, not text; only [`cli`], the outer edge, turns them into the sentences it prints.

pub mod app;
pub mod archive;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod pdf;
pub mod people;
pub mod render;
pub mod seal;
pub mod secret;
pub mod signing;
pub mod staff;
pub mod store;
