//! Actions on the agreement page (`/agreements/{id}`): approve a departure from policy, void,
//! revise after a decline, resend a signer's link, correct a signer's email, and the PDF shown
//! inline. Each action is a plain form with the session's CSRF token, authorized by the API's
//! own route table ([`super::web::api_roles`]) and carried out by the same application-layer
//! call as the API handler; a refusal re-renders the page with the reason (never a bare error).
//! After success the browser is redirected (303) so a reload does not repeat the action.
//!
//! The inline PDF (`/agreements/{id}/pdf`) is the only response that may be framed, and only by
//! this site (`frame-ancestors 'self'`); every other response keeps refusing frames.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::error::ApiError;
use super::web::{Viewer, agreement_view, message, service_problem};
use super::{AppState, blocking};
use crate::app::service::{Actor, Service, ServiceError, SignerPatch};
use crate::domain::agreement::Agreement;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements/{id}/pdf", get(inline_pdf))
        .route("/agreements/{id}/approve", post(approve))
        .route("/agreements/{id}/void", post(void))
        .route("/agreements/{id}/revise", post(revise))
        .route("/agreements/{id}/signers/{signer}/resend", post(resend))
        .route("/agreements/{id}/signers/{signer}/email", post(correct_email))
}

/// The agreement page's policy: the site's own, plus frames from this site (the inline PDF).
pub(crate) fn page_csp() -> String {
    super::CSP.replace("frame-ancestors", "frame-src 'self'; frame-ancestors")
}

/// The framing policy of the inline PDF: this site's own pages only.
const PDF_CSP: &str = "default-src 'none'; frame-ancestors 'self'";

/// What the page says after each action (`?done=<key>`).
pub(crate) fn done_message(key: &str) -> Option<&'static str> {
    Some(match key {
        "approved" => "Approved: the departures from policy are recorded with your reason, and the draft may be sent.",
        "voided" => "Voided: the signer links no longer work.",
        "revised" => "Back to draft: change the intake or send it again.",
        "resent" => "A new link is on its way to the signer; the old one no longer works.",
        "corrected" => "The signer's email is corrected and a new link is on its way.",
        _ => return None,
    })
}

type Op = Box<dyn FnOnce(&Service, &Actor) -> Result<Agreement, ServiceError> + Send>;

/// One action (the route layer checked the roles of its API twin): the CSRF token, the agreement
/// visible to the person, then `op` off the async threads; 303 back to the page, or the page with the refusal.
async fn act(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    (id, done): (String, &'static str),
    f: HashMap<String, String>,
    op: impl FnOnce(HashMap<String, String>) -> Op,
) -> Response {
    let (w, fields) = match viewer.form(f) {
        Ok((w, fields)) => (w.clone(), fields),
        Err(r) => return *r,
    };
    let staff = w.staff();
    let who = super::staff_actor(&staff, viewer.ip.parse().ok().map(|ip| SocketAddr::new(ip, 0)), &headers);
    let svc = state.service.clone();
    let id2 = id.clone();
    let op = op(fields);
    let result = blocking(move || {
        super::api::visible(&svc, &staff, &id2)?;
        op(&svc, &who)?;
        svc.flush_outbox()
    })
    .await;
    match result {
        Ok(Ok(_)) => Redirect::to(&format!("/agreements/{id}?done={done}")).into_response(),
        Ok(Err(ServiceError::NotFound)) => message(
            &state,
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "Agreement not found",
            "There is no such agreement, or it is not yours to see.",
        ),
        Ok(Err(ServiceError::Field(_, m))) => {
            agreement_view(
                state,
                viewer,
                id,
                None,
                Some((format!("Not done: {m}."), Vec::new())),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Ok(Err(e)) => match service_problem(e) {
            Ok((m, f)) => {
                agreement_view(state, viewer, id, None, Some((format!("Not done: {m}"), f)), StatusCode::CONFLICT).await
            }
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

async fn approve(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, headers, (id, "approved"), f, move |f| {
        Box::new(move |svc, who| svc.approve(&key, &field(&f, "reason"), who))
    })
    .await
}

async fn void(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, headers, (id, "voided"), f, move |f| {
        Box::new(move |svc, who| svc.void(&key, &field(&f, "reason"), who))
    })
    .await
}

async fn revise(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, headers, (id, "revised"), f, move |_| Box::new(move |svc, who| svc.revise(&key, who))).await
}

async fn resend(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, signer)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, headers, (id, "resent"), f, move |_| Box::new(move |svc, who| svc.resend(&key, &signer, who)))
        .await
}

async fn correct_email(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, signer)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, headers, (id, "corrected"), f, move |f| {
        let patch = SignerPatch { name: None, title: None, email: Some(field(&f, "email")) };
        Box::new(move |svc, who| svc.update_signer(&key, &signer, patch, who))
    })
    .await
}

/// The current PDF for the frame on the agreement page: inline, and frameable by this site only.
async fn inline_pdf(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let staff = w.staff();
    let who = super::staff_actor(&staff, viewer.ip.parse().ok().map(|ip| SocketAddr::new(ip, 0)), &headers);
    let svc = state.service.clone();
    match blocking(move || {
        super::api::visible(&svc, &staff, &id)?;
        svc.document(&id, &who)
    })
    .await
    {
        Ok(Ok((bytes, sha))) => {
            let mut r = super::api::pdf_response(bytes, &sha, "agreement.pdf");
            let h = r.headers_mut();
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"agreement.pdf\""));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PDF_CSP));
            h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
            r
        }
        Ok(Err(ServiceError::NotFound)) => message(
            &state,
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "Agreement not found",
            "There is no such agreement, or it is not yours to see.",
        ),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}
