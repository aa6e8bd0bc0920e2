//! Verification in a browser: upload a PDF, learn whether it is an archived copy.
//!
//! * `GET|POST /archive/verify` (staff; the roles of the API's `POST /verify`): a multipart
//!   upload (`csrf`, `file`). The answer names the agreement the file belongs to (linked), which
//!   copy it is (sent for signature or countersigned), the version and status, the signers, a
//!   near miss said plainly (same size with bytes changed, or an archived copy with bytes
//!   added), a vendor-provided copy from the vendor register ("vendor-provided copy, uploaded by
//!   … on …", never called a match), and the seal's validity. A draft is never an archived
//!   copy: only copies sent for signature and countersigned copies are in the digest map.
//! * `GET /verify` (public, no sign-in): the same upload form; its `POST /verify/upload` answers
//!   only whether the file is an archived copy and what its seal says — no names, no ids — like
//!   the public JSON `POST /verify`, which stays as it is (a PDF body, JSON answer). The HTML
//!   form posts to its own path so the JSON route's contract does not depend on content
//!   negotiation. The same limits hold: the public budget per source address (shared with the
//!   JSON route) is checked *before* the body is read, the body is capped at the API's
//!   [`super::api::MAX_PDF`] (plus the form's few fields), and the work is the service's
//!   one-pass, bounded [`crate::app::service::Service::verify_bounded`].
//!
//! Errors (no file, not a PDF, too large, too many) are pages in the web app's layout; the
//! file input carries `aria-invalid` and `aria-describedby` when the error is about it.

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use std::net::SocketAddr;
use tera::Context;

use super::error::ApiError;
use super::web::{Viewer, message, render};
use super::{AppState, blocking};
use crate::app::lifecycle::Verification;
use crate::app::service::ServiceError;
use crate::app::vendors::VendorCopy;
use crate::clock::rfc3339;

pub(crate) const TEMPLATES: &[(&str, &str)] =
    &[("verify.html.tera", include_str!("../../templates/web/app/verify.html.tera"))];

/// The upload's cap: the API's PDF limit plus room for the form's other fields and the
/// multipart framing.
const MAX_UPLOAD: usize = super::api::MAX_PDF + 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/archive/verify", get(staff_page).post(staff_verify).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        // One path, two methods: the JSON `POST /verify` stays in `http::sign`; the routers'
        // merge joins them.
        .route("/verify", get(public_page))
        .route("/verify/upload", post(public_verify).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
}

/// `GET /verify`: the public upload form.
async fn public_page(State(state): State<AppState>) -> Response {
    form(&state, None, true, None, None, StatusCode::OK)
}

/// What the page shows about one verified file.
#[derive(Serialize, Default)]
struct Outcome {
    name: String,
    sha256: String,
    matched: bool,
    /// Staff only from here on.
    agreement: Option<AgreementRef>,
    copy: Option<&'static str>,
    version: Option<u32>,
    status: Option<String>,
    executed_at: Option<String>,
    signers: Vec<SignerLine>,
    near_miss: Option<String>,
    vendor: Option<VendorCopy>,
    seal: SealLines,
}

#[derive(Serialize)]
struct AgreementRef {
    id: String,
    title: String,
    parties: String,
}

#[derive(Serialize)]
struct SignerLine {
    name: String,
    party: String,
    signed_at: Option<String>,
}

/// The seal in sentences.
#[derive(Serialize, Default)]
struct SealLines {
    sealed: bool,
    valid: bool,
    /// One headline: valid, broken, not ours, or none.
    verdict: String,
    details: Vec<String>,
}

fn seal_lines(s: &crate::seal::SealReport, staff: bool) -> SealLines {
    let verdict = if !s.sealed {
        "No seal: the file carries no digital signature."
    } else if s.valid && s.signed_by_our_ca && !s.modified_after_seal {
        "Valid seal by Countersign: nothing was changed after sealing."
    } else if s.valid && s.signed_by_our_ca {
        "The seal by Countersign is intact, but bytes were added after sealing."
    } else if s.valid {
        "The file is signed, but not by Countersign's sealing certificate."
    } else {
        "The seal is not valid: the file was changed after it was sealed, or the signature is damaged."
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut details = Vec::new();
    if s.sealed {
        details.push(format!("Signature intact: {}", yes(s.valid)));
        details.push(format!("Signed by Countersign's certificate authority: {}", yes(s.signed_by_our_ca)));
        details.push(format!("Covers the whole file: {}", yes(s.covers_whole_file)));
        details.push(format!("Modified after sealing: {}", yes(s.modified_after_seal)));
        if staff {
            if let Some(f) = &s.certificate_fingerprint {
                details.push(format!("Certificate SHA-256: {f}"));
            }
            if let Some(t) = s.signing_time {
                details.push(format!("Sealed at (server clock): {}", rfc3339(t)));
            }
            if s.timestamped {
                let at = s.timestamp_time.map(rfc3339).unwrap_or_default();
                details.push(format!("Timestamped at {at}"));
            }
        }
    }
    SealLines { sealed: s.sealed, valid: s.valid, verdict: verdict.into(), details }
}

/// The verify page: the form, and the outcome or a problem with the file.
fn form(
    state: &AppState,
    viewer: Option<&Viewer>,
    public: bool,
    outcome: Option<Outcome>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", if public { "Check a Countersign PDF" } else { "Verify a PDF" });
    ctx.insert("public", &public);
    ctx.insert("action", if public { "/verify/upload" } else { "/archive/verify" });
    ctx.insert("outcome", &outcome);
    ctx.insert("error", &error);
    render(state, viewer, "verify.html.tera", if public { "" } else { "verify" }, ctx, status)
}

/// The upload's fields: the file (name, bytes) and the other fields as text.
struct Upload {
    file: Option<(String, axum::body::Bytes)>,
    fields: std::collections::HashMap<String, String>,
}

/// Reads the multipart body (within the route's cap). A body over the cap answers 413; a
/// broken one 400 — both as pages.
async fn read_upload(state: &AppState, viewer: Option<&Viewer>, mut mp: Multipart) -> Result<Upload, Response> {
    let mut up = Upload { file: None, fields: Default::default() };
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(up),
            Err(e) => return Err(upload_error(state, viewer, e.status())),
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().unwrap_or("").chars().take(200).collect::<String>();
        match field.bytes().await {
            Ok(b) if name == "file" => up.file = Some((file_name, b)),
            Ok(b) if b.len() <= 1024 => {
                up.fields.insert(name, String::from_utf8_lossy(&b).into_owned());
            }
            Ok(_) => {}
            Err(e) => return Err(upload_error(state, viewer, e.status())),
        }
    }
}

fn upload_error(state: &AppState, viewer: Option<&Viewer>, status: StatusCode) -> Response {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let mb = super::api::MAX_PDF / (1024 * 1024);
        return message(
            state,
            viewer,
            status,
            "That file is too large",
            &format!("Countersign's PDFs are well under {mb} MiB; a file larger than that cannot be one of them."),
        );
    }
    message(
        state,
        viewer,
        StatusCode::BAD_REQUEST,
        "The upload did not arrive whole",
        "Choose the file again and send the form once more.",
    )
}

/// The file's bytes, or the problem to show beside the file input.
fn pdf_of(up: Upload) -> Result<(String, axum::body::Bytes), &'static str> {
    match up.file {
        Some((_, b)) if b.is_empty() => Err("Choose a PDF file to check."),
        None => Err("Choose a PDF file to check."),
        Some((_, b)) if !b.starts_with(b"%PDF-") => Err("This file is not a PDF (it does not begin with %PDF-)."),
        Some(f) => Ok(f),
    }
}

fn refused(state: &AppState, viewer: Option<&Viewer>, public: bool, e: ServiceError) -> Response {
    if let ServiceError::Busy(m) = &e {
        return message(state, viewer, StatusCode::TOO_MANY_REQUESTS, "Verification is busy", m);
    }
    let (status, _, text, _) = ApiError::from(e).parts();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let mut resp = message(state, viewer, status, "Please try again", &text);
        crate::http::error::retry_after(&mut resp);
        return resp;
    }
    if status.is_server_error() {
        return ApiError::Internal(text).into_response();
    }
    form(state, viewer, public, None, Some(&text), status)
}

fn too_many(state: &AppState, viewer: Option<&Viewer>) -> Response {
    message(
        state,
        viewer,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many checks",
        "Too many files were checked from your address in the last few minutes. Wait a few minutes and try again.",
    )
}

async fn staff_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    if let Err(r) = viewer.signed_in() {
        return *r;
    }
    form(&state, Some(&viewer), false, None, None, StatusCode::OK)
}

async fn staff_verify(State(state): State<AppState>, viewer: Viewer, mp: Multipart) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let up = match read_upload(&state, Some(&viewer), mp).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let fields = up.fields.clone();
    if let Err(r) = viewer.csrf(&w, fields) {
        return *r;
    }
    let (name, bytes) = match pdf_of(up) {
        Ok(f) => f,
        Err(problem) => {
            return form(&state, Some(&viewer), false, None, Some(problem), StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let v = match state.service.clone().verify_bounded(bytes, true).await {
        Ok(v) => v,
        Err(e) => return refused(&state, Some(&viewer), false, e),
    };
    let svc = state.service.clone();
    let looked = blocking(move || -> Result<Outcome, ServiceError> {
        let vendor = if v.matched { None } else { svc.vendor_copy(&v.sha256)? };
        let agreement = match &v.agreement_id {
            Some(id) => {
                let a = svc.get(id)?;
                Some(AgreementRef {
                    id: a.id.clone(),
                    title: a.title.clone(),
                    parties: format!("{} · {}", a.upstream_name, a.downstream_name),
                })
            }
            None => None,
        };
        Ok(staff_outcome(name, v, agreement, vendor))
    })
    .await;
    match looked {
        Ok(Ok(o)) => form(&state, Some(&viewer), false, Some(o), None, StatusCode::OK),
        Ok(Err(e)) => refused(&state, Some(&viewer), false, e),
        Err(e) => e.into_response(),
    }
}

fn staff_outcome(
    name: String,
    v: Verification,
    agreement: Option<AgreementRef>,
    vendor: Option<VendorCopy>,
) -> Outcome {
    let copy = v.copy.as_deref().map(|c| match c {
        "final" => "the countersigned copy",
        _ => "the copy sent for signature",
    });
    let signers = v
        .signers
        .iter()
        .map(|s| SignerLine {
            name: s["name"].as_str().unwrap_or("").to_string(),
            party: s["party"].as_str().unwrap_or("").to_string(),
            signed_at: s["signed_at"].as_str().map(String::from),
        })
        .collect();
    Outcome {
        name,
        sha256: v.sha256,
        matched: v.matched,
        agreement,
        copy,
        version: v.version,
        status: v.status.map(|s| s.as_str().replace('_', " ")),
        executed_at: v.executed_at,
        signers,
        near_miss: v.near_miss,
        vendor,
        seal: seal_lines(&v.seal, true),
    }
}

/// `POST /verify/upload`: the public form's answer (match and seal only).
async fn public_verify(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let now = state.service.clock.now();
    let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = state.service.config.http.client_ip(addr.ip(), forwarded);
    // The budget (shared with the JSON route) is checked before the body is read.
    if state.public_limiter.hit(client, now) {
        return too_many(&state, None);
    }
    let mp = match Multipart::from_request(request, &state).await {
        Ok(mp) => mp,
        Err(_) => {
            return form(
                &state,
                None,
                true,
                None,
                Some("Send the file with this page's form."),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            );
        }
    };
    let up = match read_upload(&state, None, mp).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let (name, bytes) = match pdf_of(up) {
        Ok(f) => f,
        Err(problem) => return form(&state, None, true, None, Some(problem), StatusCode::UNPROCESSABLE_ENTITY),
    };
    // No near-miss search and nothing about the agreement: the public answer is match and seal.
    match state.service.clone().verify_bounded(bytes, false).await {
        Ok(v) => {
            let o = Outcome {
                name,
                sha256: v.sha256,
                matched: v.matched,
                seal: seal_lines(&v.seal, false),
                ..Outcome::default()
            };
            form(&state, None, true, Some(o), None, StatusCode::OK)
        }
        Err(e) => refused(&state, None, true, e),
    }
}
