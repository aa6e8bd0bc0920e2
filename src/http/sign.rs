//! Signer pages: `/sign/{token}` (read, consent, sign or decline), `/sign/{token}/document`
//! (the PDF as sent) and `/download/{token}` (the countersigned copy).
//!
//! [`SignerLink`] verifies the token before any handler runs, telling a missing token (404
//! "incomplete link") from a garbled one (404), an altered one or one from another server (403),
//! an expired one (410, with how to get a new one), a superseded or voided one (410) and a used
//! one (409, showing the outcome). Forms carry a CSRF token (an HMAC of the link) and are
//! refused when the browser reports a foreign Origin.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tera::{Context, Tera};

use super::error::ApiError;
use super::page_cache::{Deflated, DocCache, accepts_gzip};
use super::{AppState, actor, blocking, signer_work};
use crate::app::service::{Link, LinkError, ServiceError, SignForm};
use crate::clock::rfc3339;
use crate::domain::agreement::{Agreement, SignerStatus, Status};
use crate::signing::token::Purpose;
use crate::signing::{CONSENT_TEXT, CONSENT_VERSION};

const SIGN_PAGE: &str = include_str!("../../templates/web/sign.html.tera");
const MESSAGE_PAGE: &str = include_str!("../../templates/web/message.html.tera");
const BASE: &str = include_str!("../../templates/web/base.html.tera");
const DOCUMENT: &str = include_str!("../../templates/web/document.html.tera");

/// The HTML templates (autoescaped: every value is HTML-escaped).
pub struct Pages {
    tera: Tera,
    /// The agreement text, compressed, by sent SHA-256 and agreement id: rendered once per
    /// frozen document and reused by every view (only the signer's name and the form tokens
    /// differ, and they are outside it). Safe to share because a sent document never changes;
    /// the state shown around it (signed, declined, closed) is read fresh for every request.
    /// Bounded by [`DOC_CACHE_BYTES`]; a miss only costs a render.
    docs: DocCache<SentDoc>,
    /// The text pieces of each form shape's skeleton for a document with no values of its own,
    /// which every document's skeleton of that shape shares where its pieces are the same (see
    /// [`Skeleton::make`]).
    common: [std::sync::OnceLock<Vec<Arc<str>>>; SHAPES],
}

/// Compressed bytes of agreement text kept for the signer page, with the page's skeleton: ~12 KB
/// per 12-page BAA and ~1–2 KB of page of its own (the rest of the page's text is shared by every
/// document, see [`Skeleton::make`]), so about 4,500 documents in view at once stay rendered;
/// nothing is kept until a link is opened.
const DOC_CACHE_BYTES: usize = 64 << 20;

/// The parts of the signer page that depend only on the frozen document.
#[derive(serde::Serialize)]
pub struct SentDoc {
    title: String,
    subtitle: Vec<String>,
    /// The agreement and the sent SHA-256 this text was rendered from (the cache's key; the
    /// page prints the digest of the text it shows).
    #[serde(skip)]
    agreement: String,
    #[serde(skip)]
    sha256: Option<String>,
    #[serde(skip)]
    html: Deflated,
    /// The page around the text, one per shape of the form ([`shape`]), made at the first view
    /// of that shape (see [`Skeleton`]).
    #[serde(skip)]
    skeletons: [std::sync::OnceLock<Option<Skeleton>>; SHAPES],
}

/// The shapes of the signer page's form: no emailed code; a code to give; a code, and the link
/// locked by wrong ones (a lock without a code shows nothing, so it is the first shape).
const SHAPES: usize = 3;

fn shape(email_code: bool, locked: bool) -> usize {
    match (email_code, locked) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    }
}

/// What fills the signer page's slots for one link, in slot order (`SLOT_*`).
type SlotValues<'a> = [&'a str; SLOTS];

/// The values of the signer page that differ between the links of one document (and the
/// agreement's title, which a correction may change while the text stays): everything else on
/// the page (the document's title and parties, its digest, the consent text) is the
/// document's, and the note (an error or notice) exists only on a form's answer.
const SLOTS: usize = 7;
const SLOT_TITLE: usize = 0;
const SLOT_NAME: usize = 1;
const SLOT_SIGNER_TITLE: usize = 2;
const SLOT_PARTY: usize = 3;
const SLOT_TOKEN: usize = 4;
const SLOT_CSRF: usize = 5;
const SLOT_MASKED_EMAIL: usize = 6;

/// Marks a slot in the page rendered for a skeleton: Unicode private-use characters, which the
/// HTML escape passes through and no template writes.
const SLOT_OPEN: char = '\u{E000}';
const SLOT_CLOSE: char = '\u{E001}';

/// The signer page without a note, rendered once per document and form shape with marks in its
/// slots, and split there: a view fills the slots with the link's values, escaped exactly as
/// the template would (`render::html::escape`), instead of running the template (tera and its
/// context were a fifth of the page's CPU under load, 2026-12-01). A test renders every shape
/// both ways, with values that need escaping, and compares the bytes.
struct Skeleton {
    head: Vec<Piece>,
    tail: Vec<Piece>,
    /// The bytes of its text that are its own (not shared with the common skeleton).
    own: usize,
}

enum Piece {
    Text(Arc<str>),
    Slot(usize),
}

impl Skeleton {
    /// The page's template rendered with marks for a form shape, split into pieces; `None`
    /// when a document value itself holds a mark character (then every view runs the template).
    ///
    /// A text piece the same as one of the shape's common skeleton (see [`Pages::common`]) is
    /// that piece, shared: everything but the few pieces holding the document's title,
    /// subtitle and digest. A view walks a skeleton's text from memory, and when every
    /// document had its own copy of the same ~3 KB, a load cycling through thousands of links
    /// read each copy from outside the CPU's caches (the copy was 3.8 % of the page's CPU
    /// against ~1.3 % for the gzip framing around 15 KB, perf, 2026-12-02).
    fn make(pages: &Pages, doc: &SentDoc, email_code: bool, locked: bool) -> Option<Skeleton> {
        let mut sk = Self::render(pages, doc, email_code, locked)?;
        let common = pages.common(email_code, locked);
        for p in sk.head.iter_mut().chain(sk.tail.iter_mut()) {
            if let Piece::Text(t) = p
                && let Some(c) = common.iter().find(|c| c[..] == t[..])
            {
                sk.own -= t.len();
                *t = c.clone();
            }
        }
        Some(sk)
    }

    /// [`Skeleton::make`] without sharing (all its text its own).
    fn render(pages: &Pages, doc: &SentDoc, email_code: bool, locked: bool) -> Option<Skeleton> {
        let fixed = doc
            .title
            .chars()
            .chain(doc.subtitle.iter().flat_map(|l| l.chars()))
            .chain(doc.sha256.as_deref().unwrap_or("").chars());
        if fixed.into_iter().any(|c| c == SLOT_OPEN || c == SLOT_CLOSE) {
            return None;
        }
        let marks: Vec<String> = (0..SLOTS).map(|i| format!("{SLOT_OPEN}{i}{SLOT_CLOSE}")).collect();
        let values: SlotValues<'_> = std::array::from_fn(|i| marks[i].as_str());
        let (head, tail) = pages.sign_page_parts(&page_context(doc, email_code, locked, None, &values)).ok()?;
        let (head, tail) = (Self::pieces(&head)?, Self::pieces(&tail)?);
        let own = head.iter().chain(&tail).map(|p| if let Piece::Text(t) = p { t.len() } else { 0 }).sum();
        Some(Skeleton { head, tail, own })
    }

    fn pieces(mut rest: &str) -> Option<Vec<Piece>> {
        let mut out = Vec::new();
        while let Some(at) = rest.find(SLOT_OPEN) {
            if at > 0 {
                out.push(Piece::Text(rest[..at].into()));
            }
            let after = &rest[at + SLOT_OPEN.len_utf8()..];
            let end = after.find(SLOT_CLOSE)?;
            let slot: usize = after[..end].parse().ok().filter(|&i| i < SLOTS)?;
            out.push(Piece::Slot(slot));
            rest = &after[end + SLOT_CLOSE.len_utf8()..];
        }
        if rest.contains(SLOT_CLOSE) {
            return None;
        }
        if !rest.is_empty() {
            out.push(Piece::Text(rest.into()));
        }
        Some(out)
    }

    /// What the skeleton holds, for the cache's budget: its own text, the pieces, and an
    /// allocation's overhead for each.
    fn bytes(&self) -> usize {
        self.own + self.head.iter().chain(&self.tail).map(|_| std::mem::size_of::<Piece>() + 16).sum::<usize>()
    }

    /// What filling `pieces` with `values` takes, about (escaping lengthens only what holds
    /// `&<>"'`).
    fn size(pieces: &[Piece], values: &SlotValues<'_>) -> usize {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Slot(i) => values[*i].len() + 8,
            })
            .sum()
    }

    /// Appends `pieces` filled with `values` to `out` (with room for 8 bytes more: a gzip
    /// trailer after a tail).
    fn fill_into(pieces: &[Piece], values: &SlotValues<'_>, out: &mut Vec<u8>) {
        out.reserve(Self::size(pieces, values) + 8);
        for p in pieces {
            match p {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                // Writing to a vector cannot fail.
                Piece::Slot(i) => {
                    let _ = crate::render::html::escape(values[*i], out);
                }
            }
        }
    }

    fn fill(pieces: &[Piece], values: &SlotValues<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        Self::fill_into(pieces, values, &mut out);
        out
    }

    /// The whole page as one gzip member, the head and tail filled in place around the kept
    /// document ([`super::page_cache::GzipBuilder`]).
    fn gzip(&self, doc: &SentDoc, values: &SlotValues<'_>) -> super::page_cache::Gzipped {
        let mut g = super::page_cache::GzipBuilder::default();
        Self::fill_into(&self.head, values, g.head());
        g.finish(&doc.html, |t| Self::fill_into(&self.tail, values, t))
    }
}

impl SentDoc {
    fn new(agreement: &Agreement, title: String, subtitle: Vec<String>, html: Deflated) -> SentDoc {
        SentDoc {
            title,
            subtitle,
            agreement: agreement.id.clone(),
            sha256: agreement.sent_sha256.clone(),
            html,
            skeletons: Default::default(),
        }
    }

    /// What the document costs the cache before any skeleton is made.
    fn bytes(&self) -> usize {
        self.html.len() + self.title.len() + self.subtitle.iter().map(|l| l.len() + 24).sum::<usize>()
    }

    /// This document's skeleton for the form's shape, made now if it is the first (and charged
    /// to the cache); `None` when the document cannot have one (see [`Skeleton::make`]).
    fn skeleton(&self, pages: &Pages, email_code: bool, locked: bool) -> Option<&Skeleton> {
        self.skeletons[shape(email_code, locked)]
            .get_or_init(|| {
                let sk = Skeleton::make(pages, self, email_code, locked);
                if let (Some(sk), Some(sha)) = (&sk, &self.sha256) {
                    pages.docs.charge(&self.agreement, sha, sk.bytes());
                }
                sk
            })
            .as_ref()
    }

    /// The page's head and tail for a link without a note, from this document's skeleton.
    #[cfg(test)]
    fn filled(
        &self,
        pages: &Pages,
        email_code: bool,
        locked: bool,
        values: &SlotValues<'_>,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let sk = self.skeleton(pages, email_code, locked)?;
        Some((Skeleton::fill(&sk.head, values), Skeleton::fill(&sk.tail, values)))
    }
}

/// Where the agreement text goes in the rendered page (the template writes it unescaped).
const DOC_MARK: &str = "<!--countersign:agreement-text-->";

impl Pages {
    pub fn new() -> Result<Pages, super::web::TemplateError> {
        let mut tera = crate::render::html::tera();
        for (n, s) in [
            ("base.html.tera", BASE),
            ("sign.html.tera", SIGN_PAGE),
            ("message.html.tera", MESSAGE_PAGE),
            ("document.html.tera", DOCUMENT),
        ] {
            tera.add_raw_template(n, s)
                .map_err(|e| super::web::TemplateError::SignerPage { name: n, reason: e.to_string() })?;
        }
        Ok(Pages { tera, docs: DocCache::new(DOC_CACHE_BYTES), common: Default::default() })
    }

    /// The text pieces of the skeleton of a form shape for a document without a title, subtitle
    /// or digest (made once per shape; empty if it cannot be made, and then nothing is shared).
    fn common(&self, email_code: bool, locked: bool) -> &[Arc<str>] {
        self.common[shape(email_code, locked)].get_or_init(|| {
            let blank = Deflated::new("").ok().map(|html| SentDoc {
                title: String::new(),
                subtitle: Vec::new(),
                agreement: String::new(),
                sha256: None,
                html,
                skeletons: Default::default(),
            });
            let sk = blank.and_then(|d| Skeleton::render(self, &d, email_code, locked));
            sk.map(|sk| {
                sk.head
                    .into_iter()
                    .chain(sk.tail)
                    .filter_map(|p| if let Piece::Text(t) = p { Some(t) } else { None })
                    .collect()
            })
            .unwrap_or_default()
        })
    }

    fn cached_doc(&self, a: &crate::domain::agreement::Agreement) -> Option<Arc<SentDoc>> {
        self.docs.get(&a.id, a.sent_sha256.as_deref()?)
    }

    /// Renders and compresses the agreement text of a sent document and keeps it for the next
    /// view (on a blocking thread: tera and deflate are CPU work).
    fn render_doc(
        &self,
        a: &crate::domain::agreement::Agreement,
        model: &crate::render::model::Document,
    ) -> Result<Arc<SentDoc>, ApiError> {
        let mut ctx = Context::new();
        ctx.insert("doc", model);
        let html =
            self.tera.render("document.html.tera", &ctx).map_err(|e| ApiError::Internal(format!("page: {e}")))?;
        let html = Deflated::new(&html).map_err(|e| ApiError::Internal(format!("page: {e}")))?;
        let doc = Arc::new(SentDoc::new(a, model.title.clone(), model.subtitle.clone(), html));
        if let Some(sha) = &a.sent_sha256 {
            // Each skeleton is charged when it is made (`SentDoc::filled`).
            self.docs.insert(&a.id, sha, doc.clone(), doc.bytes());
        }
        Ok(doc)
    }

    /// The signer page rendered from `ctx`, split where the agreement text goes: the head and
    /// the tail (for a view's answer, or for a skeleton with marks in its slots).
    fn sign_page_parts(&self, ctx: &Context) -> Result<(String, String), ApiError> {
        let mut page = self
            .tera
            .render("sign.html.tera", ctx)
            .map_err(|e| ApiError::Internal(format!("page sign.html.tera: {e}")))?;
        let at = page
            .find(DOC_MARK)
            .ok_or_else(|| ApiError::Internal("page sign.html.tera: no place for the agreement text".into()))?;
        let tail = page.split_off(at + DOC_MARK.len());
        page.truncate(at);
        Ok((page, tail))
    }

    fn render(&self, name: &str, ctx: &Context) -> Response {
        match self.tera.render(name, ctx) {
            Ok(html) => Html(html).into_response(),
            Err(e) => ApiError::Internal(format!("page {name}: {e}")).into_response(),
        }
    }

    /// A status page with a title and explanation.
    pub fn message(&self, status: StatusCode, title: &str, body: &str) -> Response {
        let mut ctx = Context::new();
        ctx.insert("title", title);
        ctx.insert("body", body);
        let mut r = self.render("message.html.tera", &ctx);
        *r.status_mut() = status;
        r
    }
}

/// The pages' stylesheet (served, not inline: the Content-Security-Policy allows no inline style).
const STYLESHEET: &str = include_str!("../../templates/web/countersign.css");

async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/countersign.css", get(stylesheet))
        .route("/sign", get(missing_token))
        .route("/sign/", get(missing_token))
        .route("/sign/{token}", get(page).post(submit))
        .route("/sign/{token}/document", get(sent_document))
        .route("/download", get(missing_token))
        .route("/download/", get(missing_token))
        .route("/download/{token}", get(download))
        .route(
            "/verify",
            axum::routing::post(public_verify).layer(axum::extract::DefaultBodyLimit::max(super::api::MAX_PDF)),
        )
}

/// The public check: no key, rate-limited per source, and it says only whether the file is an
/// archived document (and, once sealing exists, whether its seal is valid) — no names, no ids.
async fn public_verify(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let headers = request.headers();
    let now = state.service.clock.now();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = state.service.config.http.client_ip(addr.ip(), forwarded);
    // The budget is checked before the body is read: a source over it cannot upload first.
    if state.public_limiter.hit(client, now) {
        return ApiError::TooManyRequests.into_response();
    }
    if let Err(e) = super::api::check_pdf_type(headers) {
        return e.into_response();
    }
    let body = match axum::body::to_bytes(request.into_body(), super::api::MAX_PDF).await {
        Ok(b) => b,
        Err(_) => return ApiError::TooLarge.into_response(),
    };
    // No near-miss search on the public route: it would say nothing the answer shows anyway.
    match state.service.clone().verify_bounded(body, false).await {
        Ok(v) => axum::Json(serde_json::json!({
            "match": v.matched,
            "sha256": v.sha256,
            "seal": {
                "sealed": v.seal.sealed,
                "valid": v.seal.valid,
                "signed_by_countersign": v.seal.signed_by_our_ca,
                "covers_whole_file": v.seal.covers_whole_file,
                "modified_after_seal": v.seal.modified_after_seal,
            },
        }))
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn missing_token(State(state): State<AppState>) -> Response {
    state.pages.message(
        StatusCode::NOT_FOUND,
        "This link is incomplete",
        "The address is missing its personal code. Open the link from your email again, or copy the whole address.",
    )
}

/// Maps a link failure to its page and status.
fn link_error(state: &AppState, e: &LinkError, a_status: Option<&str>) -> Response {
    let (status, title) = match e {
        LinkError::Malformed | LinkError::Gone => (StatusCode::NOT_FOUND, "This link is not valid"),
        LinkError::UnknownKey | LinkError::BadTag => (StatusCode::FORBIDDEN, "This link cannot be used"),
        LinkError::Expired(_) => (StatusCode::GONE, "This link has expired"),
        LinkError::Superseded | LinkError::Voided => (StatusCode::GONE, "This link is no longer active"),
        LinkError::AlreadyUsed | LinkError::Closed(_) => (StatusCode::CONFLICT, "This agreement is closed to you"),
    };
    let mut body = e.to_string();
    if let LinkError::Expired(_) = e {
        body.push_str(". Reply to the email that brought you this link and ask the sender for a new one.");
    }
    if let Some(s) = a_status {
        body.push_str(&format!(" (Agreement status: {s}.)"));
    }
    state.pages.message(status, title, &body)
}

/// A service or internal error on a signer page: the status the policy in `http::error` gives
/// it, as an HTML page (signer pages never answer JSON).
fn error_page(state: &AppState, e: ApiError) -> Response {
    let (status, code, message, findings) = e.parts();
    let title = match status {
        _ if code == "outcome_unknown" => "We cannot tell whether that was recorded",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "This cannot be done now",
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "Please try again in a minute",
        s if s.is_server_error() => "Something went wrong on our side",
        _ => "This request cannot be accepted",
    };
    let mut body = message;
    for f in findings {
        body.push_str(&format!(" {f}."));
    }
    if code == "outcome_unknown" {
        body = "The connection to our database was lost while your action was being saved, so we cannot tell whether it took effect. Reload this page to see whether it did before trying again.".into();
    } else if status.is_server_error() {
        body = "Nothing was recorded. Please try again in a minute; if it keeps happening, reply to the email that brought you the link.".into();
    }
    let mut resp = state.pages.message(status, title, &body);
    crate::http::error::retry_after(&mut resp);
    resp
}

/// The signer page again after a form was refused or a code sent, with the link re-read (the
/// signer's code counters may have moved) and `note` beside the field it concerns.
async fn refreshed_page(state: &AppState, link: &Link, note: Note<'_>, status: StatusCode, gzip: bool) -> Response {
    let svc = state.service.clone();
    let token = link.token.clone();
    let link = match blocking(move || svc.resolve(&token, Purpose::Sign)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return link_error(state, &e, None),
        Err(e) => return error_page(state, e),
    };
    if let Some(r) = outcome_page(state, &link) {
        return r;
    }
    match sent_doc(state, &link).await {
        Ok(doc) => sign_page(state, &link, &doc, Some(note), status, gzip),
        Err(r) => r,
    }
}

/// A verified signing link: handlers that take it only run for a valid, current token.
pub struct SignerLink(pub Link);

impl FromRequestParts<AppState> for SignerLink {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path(token) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| {
            state.pages.message(
                StatusCode::NOT_FOUND,
                "This link is incomplete",
                "The address is missing its personal code.",
            )
        })?;
        // With a store in this process, verified here on the async thread, not on the blocking
        // pool: a verification is a MAC, one read of a ~2 KB record from sled's page cache and
        // its decoding (about a tenth of a cached page's CPU, 2026-12-01), while the hand-off to
        // a blocking thread and back cost more than the work and halved the page's rate. The
        // price: a record not in sled's cache (32 MB; at 100,000 agreements most records are
        // not) is read with a pread from the OS's page cache, or, when that is cold too, from
        // the disk, holding this async worker for that read. A store across the network
        // (PostgreSQL) is read on the blocking pool, ungated, as before.
        let svc = state.service.clone();
        let res = if svc.reads_in_process() {
            svc.resolve(&token, Purpose::Sign)
        } else {
            blocking(move || svc.resolve(&token, Purpose::Sign)).await.map_err(|e| error_page(state, e))?
        };
        match res {
            Ok(link) => Ok(SignerLink(link)),
            Err(e) => Err(link_error(state, &e, None)),
        }
    }
}

fn csrf(state: &AppState, token: &str) -> String {
    hex::encode(state.service.keys.mac("csrf", token.as_bytes()))
}

/// The page for a link: the agreement and the form, or the outcome if the signer acted.
/// The first view is recorded durably before the page shows; later views are counted in memory
/// (the first-view rule, [`crate::app::views`]) and, once the document's HTML is cached,
/// need no storage work beyond verifying the link.
async fn page(
    SignerLink(link): SignerLink,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = outcome_page(&state, &link) {
        return r;
    }
    let cached = state.pages.cached_doc(&link.agreement);
    if let (Some(doc), false) = (&cached, link.signer.status == SignerStatus::Notified) {
        state.service.views.bump(&link.agreement.id, &link.signer.id);
        return sign_page(&state, &link, doc, None, StatusCode::OK, wants_gzip(&headers));
    }
    let who = actor(format!("signer:{} <{}>", link.signer.id, link.signer.email), Some(addr), &headers);
    let svc = state.service.clone();
    let pages = state.pages.clone();
    let l = link.clone();
    let doc = match blocking(move || -> Result<Arc<SentDoc>, ApiError> {
        svc.opened(&l, &who)?;
        match cached {
            Some(doc) => Ok(doc),
            None => pages.render_doc(&l.agreement, &svc.sent_model(&l.agreement)?),
        }
    })
    .await
    {
        Ok(Ok(d)) => d,
        Ok(Err(e)) | Err(e) => return error_page(&state, e),
    };
    sign_page(&state, &link, &doc, None, StatusCode::OK, wants_gzip(&headers))
}

/// The document part of the signer page, from the cache or rendered now.
async fn sent_doc(state: &AppState, link: &Link) -> Result<Arc<SentDoc>, Response> {
    if let Some(doc) = state.pages.cached_doc(&link.agreement) {
        return Ok(doc);
    }
    let (svc, pages, a) = (state.service.clone(), state.pages.clone(), link.agreement.clone());
    match blocking(move || -> Result<Arc<SentDoc>, ApiError> { pages.render_doc(&a, &svc.sent_model(&a)?) }).await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) | Err(e) => Err(error_page(state, e)),
    }
}

/// When the signer already acted or signing closed, the page shows that (409 for a used link).
fn outcome_page(state: &AppState, link: &Link) -> Option<Response> {
    let s = &link.signer;
    let a = &link.agreement;
    match s.status {
        SignerStatus::Signed => {
            let when = s.signature.as_ref().map(|x| rfc3339(x.signed_at)).unwrap_or_default();
            let done = if a.status == Status::Executed {
                "Every party has signed; the countersigned copy has been emailed to you."
            } else {
                "The agreement is waiting for the other signers; you will receive the countersigned copy by email."
            };
            Some(state.pages.message(
                StatusCode::CONFLICT,
                "You have already signed",
                &format!("You signed this agreement on {when}. {done}"),
            ))
        }
        SignerStatus::Declined => Some(state.pages.message(
            StatusCode::CONFLICT,
            "You declined this agreement",
            &format!(
                "You declined with this reason: “{}”. The sender has been told.",
                s.decline_reason.clone().unwrap_or_default()
            ),
        )),
        _ if !a.status.is_out_for_signature() => {
            Some(link_error(state, &LinkError::Closed(a.status.as_str().into()), None))
        }
        _ => None,
    }
}

/// What the form says above or beside its fields: an error (tied to the field its pointer names:
/// `/code` beside the code field, anything else above the form) or a notice.
enum Note<'a> {
    Error(&'a str, &'a str),
    Notice(String),
}

/// The signer page around the kept agreement text: gzip-encoded when the client accepts it
/// (every browser does), plain HTML otherwise (see [`super::page_cache`]).
fn sign_page(
    state: &AppState,
    link: &Link,
    doc: &SentDoc,
    note: Option<Note<'_>>,
    status: StatusCode,
    gzip: bool,
) -> Response {
    let masked = crate::app::email_code::masked(&link.signer.email);
    let csrf = csrf(state, &link.token);
    let mut values: SlotValues<'_> = [""; SLOTS];
    values[SLOT_TITLE] = &link.agreement.title;
    values[SLOT_NAME] = &link.signer.name;
    values[SLOT_SIGNER_TITLE] = &link.signer.title;
    values[SLOT_PARTY] = &link.signer.party_name;
    values[SLOT_TOKEN] = &link.token;
    values[SLOT_CSRF] = &csrf;
    values[SLOT_MASKED_EMAIL] = &masked;
    let (email_code, locked) = (link.signer.email_code.required, link.signer.email_code.locked());
    let skeleton = if note.is_none() { doc.skeleton(&state.pages, email_code, locked) } else { None };
    let body = match skeleton {
        // The common case, a view: filled in place around the kept stream.
        Some(sk) if gzip => axum::body::Body::new(sk.gzip(doc, &values)),
        _ => {
            let (head, tail) = match skeleton {
                Some(sk) => (Skeleton::fill(&sk.head, &values), Skeleton::fill(&sk.tail, &values)),
                None => match state.pages.sign_page_parts(&page_context(doc, email_code, locked, note, &values)) {
                    Ok((head, tail)) => (head.into_bytes(), tail.into_bytes()),
                    Err(e) => return error_page(state, e),
                },
            };
            if gzip {
                axum::body::Body::new(super::page_cache::gzip(&head, &doc.html, &tail))
            } else {
                match doc.html.inflate() {
                    Ok(text) => axum::body::Body::from([head.as_slice(), text.as_bytes(), tail.as_slice()].concat()),
                    Err(e) => return error_page(state, ApiError::Internal(format!("page: kept agreement text: {e}"))),
                }
            }
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// The signer page's template context: the document's values, the link's `values` (or the
/// skeleton's marks), the form's shape and the note.
fn page_context(
    doc: &SentDoc,
    email_code: bool,
    code_locked: bool,
    note: Option<Note<'_>>,
    values: &SlotValues<'_>,
) -> Context {
    let mut ctx = Context::new();
    ctx.insert("doc", doc);
    ctx.insert("doc_html", DOC_MARK);
    ctx.insert("title", values[SLOT_TITLE]);
    ctx.insert(
        "signer",
        &serde_json::json!({
            "name": values[SLOT_NAME],
            "title": values[SLOT_SIGNER_TITLE],
            "party_name": values[SLOT_PARTY],
        }),
    );
    ctx.insert("token", values[SLOT_TOKEN]);
    ctx.insert("csrf", values[SLOT_CSRF]);
    ctx.insert("consent_text", CONSENT_TEXT);
    ctx.insert("consent_version", CONSENT_VERSION);
    ctx.insert("sha256", &doc.sha256);
    let (error, code_error, notice) = match note {
        Some(Note::Error("/code", m)) => (None, Some(m), None),
        Some(Note::Error(_, m)) => (Some(m), None, None),
        Some(Note::Notice(n)) => (None, None, Some(n)),
        None => (None, None, None),
    };
    ctx.insert("error", &error);
    ctx.insert("code_error", &code_error);
    ctx.insert("notice", &notice);
    ctx.insert("email_code", &email_code);
    ctx.insert("code_locked", &code_locked);
    ctx.insert("masked_email", values[SLOT_MASKED_EMAIL]);
    ctx
}

/// Whether the request's `Accept-Encoding` accepts gzip.
fn wants_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| v.to_str().map(accepts_gzip).unwrap_or(false))
}

#[derive(Deserialize, Default)]
pub struct SignSubmit {
    #[serde(default)]
    action: String,
    #[serde(default)]
    consent: Option<String>,
    #[serde(default)]
    typed_name: String,
    #[serde(default)]
    typed_title: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
    /// The one-time code from the signer's email, when the agreement asks for one.
    #[serde(default)]
    code: String,
}

/// True when the browser says the form came from another site. Our pages send
/// `Referrer-Policy: no-referrer` (the token is in the URL), under which browsers send the
/// opaque `Origin: null` even for same-site forms, so `null` is not evidence either way; the
/// CSRF token, an HMAC of the link, is what every submission must carry.
fn foreign_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    if origin == "null" {
        return false;
    }
    let base = state.service.config.base_url();
    // Origin is scheme://host[:port]; the base URL may carry a path.
    !(base == origin || base.starts_with(&format!("{origin}/")))
}

async fn submit(
    SignerLink(link): SignerLink,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignSubmit>, axum::extract::rejection::FormRejection>,
) -> Response {
    // A body that is not a form (wrong content type, too large, undecodable) gets the
    // rejection's status on an HTML page, like every other answer of the signer pages.
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => {
            return state.pages.message(
                e.status(),
                "This form cannot be accepted",
                "The form could not be read. Open your link again and submit from the page.",
            );
        }
    };
    let tag = hex::decode(form.csrf.trim()).unwrap_or_default();
    if foreign_origin(&state, &headers) || !state.service.keys.verify_mac("csrf", link.token.as_bytes(), &tag) {
        return state.pages.message(
            StatusCode::FORBIDDEN,
            "This form cannot be accepted",
            "The form did not come from this agreement’s page. Open your link again and submit from there.",
        );
    }
    if let Some(r) = outcome_page(&state, &link) {
        return r;
    }
    let who = actor(format!("signer:{} <{}>", link.signer.id, link.signer.email), Some(addr), &headers);
    let svc = state.service.clone();
    let token = link.token.clone();
    let action = form.action.clone();
    if action == "send_code" {
        let svc = state.service.clone();
        let agreement = link.agreement.id.clone();
        let result = blocking(move || {
            let to = svc.send_code(&token, &who)?;
            svc.flush_outbox_of(&agreement)?;
            Ok::<_, ServiceError>(to)
        })
        .await;
        // The page again, with the signer's typed values lost only if they had typed any
        // (the form posts them, but a fresh page is what a reload shows too).
        return match result {
            Ok(Ok(to)) => {
                refreshed_page(
                    &state,
                    &link,
                    Note::Notice(format!("We emailed a six-digit code to {to}. It works once, for 15 minutes.")),
                    StatusCode::OK,
                    wants_gzip(&headers),
                )
                .await
            }
            Ok(Err(e)) => refused(&state, &link, e, wants_gzip(&headers)).await,
            Err(e) => error_page(&state, e),
        };
    }
    let code = form.code.clone();
    let result = match action.as_str() {
        // Applied on a gated blocking thread, then waited for durably without a thread (group
        // commit: many signers share one fsync); the commit wakes the mail sender, which writes
        // the `.eml` copies (see `Service::sign_end_async`). In a task of its own, so that a
        // signer who hangs up midway does not stop it between the commit and waking the sender
        // (which a blocking call, run to its end, never did either).
        "sign" => {
            let state = state.clone();
            let loaded = link.agreement.clone();
            let run = tokio::spawn(async move {
                let signing = signer_work(move || {
                    let form = SignForm {
                        consent: form.consent.is_some(),
                        typed_name: form.typed_name,
                        typed_title: form.typed_title,
                    };
                    svc.sign_begin(&token, form, Some(&code), Some(std::sync::Arc::unwrap_or_clone(loaded)), &who)
                })
                .await?;
                Ok(match signing {
                    Ok(signing) => state.service.sign_end_async(signing).await,
                    Err(e) => Err(e),
                })
            });
            run.await.unwrap_or_else(|e| Err(ApiError::Internal(format!("task failed: {e}"))))
        }
        _ => {
            blocking(move || {
                let r = match action.as_str() {
                    "decline" => svc.decline(&token, &form.reason, &who),
                    _ => Err(ServiceError::Field("/action".into(), "choose Sign or Decline".into())),
                };
                if let Ok(a) = &r {
                    svc.flush_outbox_of(&a.id)?;
                }
                r
            })
            .await
        }
    };
    match result {
        Ok(Ok(a)) => {
            let (title, body) = if form.action == "decline" {
                (
                    "You declined this agreement",
                    "Your reason has been recorded and the sender has been told.".to_string(),
                )
            } else if a.status == Status::Executed {
                ("Signed — the agreement is complete", "Every party has signed. The countersigned copy, with its certificate of completion, has been emailed to every signer.".to_string())
            } else {
                ("Signed", "Your signature has been recorded. The next signer has been invited; you will receive the countersigned copy by email.".to_string())
            };
            state.pages.message(StatusCode::OK, title, &body)
        }
        Ok(Err(e)) => refused(&state, &link, e, wants_gzip(&headers)).await,
        Err(e) => error_page(&state, e),
    }
}

/// A form action the service refused: a field error on the page again beside its field (422), a
/// link that no longer acts on its page, anything else as an error page.
async fn refused(state: &AppState, link: &Link, e: ServiceError, gzip: bool) -> Response {
    match e {
        ServiceError::Field(ptr, reason) => {
            refreshed_page(state, link, Note::Error(&ptr, &reason), StatusCode::UNPROCESSABLE_ENTITY, gzip).await
        }
        ServiceError::Link(e) => link_error(state, &e, None),
        e => error_page(state, e.into()),
    }
}

/// The PDF exactly as sent, for the signer to read before signing.
/// After execution the read is recorded in the access log.
async fn sent_document(
    SignerLink(link): SignerLink,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let who = actor(format!("signer:{} <{}>", link.signer.id, link.signer.email), Some(addr), &headers);
    let svc = state.service.clone();
    match blocking(move || svc.sent_document_read(&link, &who)).await {
        Ok(Ok((bytes, sha))) => {
            let mut r = super::api::pdf_response(bytes, &sha, "agreement.pdf");
            r.headers_mut()
                .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"agreement.pdf\""));
            r
        }
        Ok(Err(e)) => error_page(&state, e.into()),
        Err(e) => error_page(&state, e),
    }
}

/// The countersigned copy through a completion email's download link.
async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let svc = state.service.clone();
    let who = actor("download-link".into(), Some(addr), &headers);
    match blocking(move || svc.download(&token, &who)).await {
        Ok(Ok((bytes, a))) => {
            super::api::pdf_response(bytes, a.final_sha256.as_deref().unwrap_or_default(), "countersigned.pdf")
        }
        Ok(Err(ServiceError::Link(e))) => link_error(&state, &e, None),
        Ok(Err(e)) => error_page(&state, e.into()),
        Err(e) => error_page(&state, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The templates, parsed once for every case.
    fn pages() -> &'static Pages {
        static PAGES: std::sync::OnceLock<Pages> = std::sync::OnceLock::new();
        PAGES.get_or_init(|| Pages::new().expect("templates parse"))
    }

    fn doc(title: &str, subtitle: Vec<String>, sha256: Option<&str>) -> SentDoc {
        let a: Agreement = serde_json::from_value(serde_json::json!({
            "id": "ag_1", "kind": "baa", "title": "t", "upstream_name": "Up", "downstream_name": "Down",
            "status": "sent", "version": 1, "document_sha256": "", "check_passes": true, "created_at": 1,
            "updated_at": 1, "created_by": "test", "sent_at": 1, "sent_by": "test", "sent_sha256": sha256,
            "executed_at": null, "final_sha256": null, "void_reason": null, "signers": [], "revision": 1
        }))
        .expect("an agreement");
        SentDoc::new(&a, title.into(), subtitle, Deflated::new("<main>text</main>").expect("compresses"))
    }

    /// The page as the template renders it for these values, split around the agreement text.
    fn by_template(d: &SentDoc, email_code: bool, locked: bool, v: &SlotValues<'_>) -> (Vec<u8>, Vec<u8>) {
        let (h, t) = pages().sign_page_parts(&page_context(d, email_code, locked, None, v)).expect("renders");
        (h.into_bytes(), t.into_bytes())
    }

    proptest! {
        #[test]
        fn every_shape_of_the_page_filled_from_its_skeleton_is_the_page_the_template_renders(
            values in proptest::array::uniform7("[<>&\"'a-zé \u{E000}\u{E001}0-9]{0,24}"),
            title in "[<>&\"'A-Za-z ]{0,30}",
            subtitle in proptest::collection::vec("[<>&\"'A-Za-z ]{0,20}", 0..3),
            sha in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let d = doc(&title, subtitle, sha.as_deref());
            let v: SlotValues<'_> = std::array::from_fn(|i| values[i].as_str());
            for (email_code, locked) in [(false, false), (false, true), (true, false), (true, true)] {
                let filled = d.filled(pages(), email_code, locked, &v).expect("a skeleton for every shape");
                let (head, tail) = by_template(&d, email_code, locked, &v);
                prop_assert_eq!(&filled, &(head.clone(), tail.clone()), "code {} locked {}", email_code, locked);
                // The gzip member filled in place decodes to the same page (GzDecoder checks
                // the CRC-32 and the length).
                let sk = d.skeleton(pages(), email_code, locked).expect("a skeleton");
                let mut page = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&sk.gzip(&d, &v).to_vec()[..]), &mut page)
                    .expect("a valid gzip member");
                prop_assert_eq!(page, [head.as_slice(), b"<main>text</main>", tail.as_slice()].concat());
            }
        }
    }

    #[test]
    fn the_skeleton_has_a_slot_for_every_value_that_differs_between_links() {
        let d = doc("BAA", vec![], Some("ab12"));
        let sk = Skeleton::make(pages(), &d, true, true).expect("a skeleton");
        let mut seen = [false; SLOTS];
        for p in sk.head.iter().chain(&sk.tail) {
            if let Piece::Slot(i) = p {
                seen[*i] = true;
            }
        }
        assert_eq!(seen, [true; SLOTS], "with the code form shown and locked, every value appears");
    }

    #[test]
    fn a_skeleton_made_for_a_kept_document_is_charged_to_the_cache() {
        let pages = Pages::new().expect("templates parse");
        let d = Arc::new(doc("BAA", vec!["Up".into()], Some("ab12")));
        pages.docs.insert("ag_1", "ab12", d.clone(), d.bytes());
        let before = pages.docs.usage().1;
        let v: SlotValues<'_> = ["t", "n", "st", "p", "tok", "c", "m"];
        d.filled(&pages, false, false, &v).expect("filled");
        let one = pages.docs.usage().1 - before;
        // Charged for its own text (the pieces with the document's title and digest) and the
        // pieces, not for the few kilobytes of text it shares with every other document.
        let sk = d.skeleton(&pages, false, false).expect("a skeleton");
        assert!(sk.own > 0 && one >= sk.own, "{one} charged, {} own", sk.own);
        assert!(one < 2_000, "the shared text is not charged to each document: {one}");
        d.filled(&pages, false, true, &v).expect("filled");
        assert_eq!(pages.docs.usage().1 - before, one, "a lock without a code is the same shape: made once");
        d.filled(&pages, true, false, &v).expect("filled");
        assert!(pages.docs.usage().1 - before > one, "a second shape is charged too");
    }

    #[test]
    fn skeletons_of_two_documents_share_the_text_they_have_in_common_and_keep_their_own() {
        let pages = Pages::new().expect("templates parse");
        let (a, b) = (doc("First BAA", vec!["Up".into()], Some("ab12")), doc("Second DUA", vec![], Some("cd34")));
        for (email_code, locked) in [(false, false), (true, false), (true, true)] {
            let (ska, skb) = (
                a.skeleton(&pages, email_code, locked).expect("a skeleton"),
                b.skeleton(&pages, email_code, locked).expect("a skeleton"),
            );
            let texts = |sk: &Skeleton| -> Vec<Arc<str>> {
                sk.head
                    .iter()
                    .chain(&sk.tail)
                    .filter_map(|p| if let Piece::Text(t) = p { Some(t.clone()) } else { None })
                    .collect()
            };
            let (ta, tb) = (texts(ska), texts(skb));
            assert_eq!(ta.len(), tb.len());
            let shared = ta.iter().zip(&tb).filter(|(x, y)| Arc::ptr_eq(x, y)).count();
            assert!(
                shared + 2 >= ta.len(),
                "all but the pieces with a document's own values are shared: {shared} of {}",
                ta.len()
            );
            let own: Vec<&Arc<str>> = ta.iter().zip(&tb).filter(|(x, y)| !Arc::ptr_eq(x, y)).map(|(x, _)| x).collect();
            assert!(own.iter().any(|t| t.contains("First BAA")) && own.iter().any(|t| t.contains("ab12")), "{own:?}");
            let total: usize = ta.iter().map(|t| t.len()).sum();
            assert!(ska.own * 3 < total, "{} own of {total}", ska.own);
        }
    }

    #[test]
    fn a_document_whose_own_text_holds_a_mark_character_is_rendered_by_the_template_every_time() {
        let d = doc("BAA \u{E000}3\u{E001}", vec![], Some("ab12"));
        let v: SlotValues<'_> = ["t", "n", "st", "p", "tok", "c", "m"];
        assert!(d.filled(pages(), false, false, &v).is_none());
        let (head, _) = by_template(&d, false, false, &v);
        assert!(
            String::from_utf8(head).expect("utf-8").contains("BAA \u{E000}3\u{E001}"),
            "the template still prints it"
        );
    }
}
