//! The staff JSON API, `/api/v1`. Every route takes [`Staff`], so none runs unauthenticated.
//! Intake bodies are taken as text (the exact bytes are kept as the version's intake).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, actor, blocking};
use crate::clock::rfc3339;
use crate::domain::agreement::Agreement;
use crate::signing::service::SignerPatch;

/// Largest intake body accepted.
const MAX_INTAKE: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements", post(create))
        .route("/agreements/{id}", get(show).put(replace))
        .route("/agreements/{id}/document", get(document))
        .route("/agreements/{id}/versions", get(versions))
        .route("/agreements/{id}/versions/{version}/document", get(version_document))
        .route("/agreements/{id}/diff", get(diff))
        .route("/agreements/{id}/approve", post(approve))
        .route("/agreements/{id}/send", post(send))
        .route("/agreements/{id}/void", post(void))
        .route("/agreements/{id}/revise", post(revise))
        .route("/agreements/{id}/signers/{signer}", patch(update_signer))
        .route("/agreements/{id}/signers/{signer}/resend", post(resend))
        .route("/agreements/{id}/audit", get(audit))
        .route("/audit/verify", get(audit_verify))
        .merge(super::outbox::router())
        .layer(DefaultBodyLimit::max(MAX_INTAKE))
}

/// The agreement as staff see it: state, check, signers and delivery — never link tokens.
fn view(state: &AppState, a: &Agreement) -> Result<Value, ApiError> {
    let report = state.service.store.version(&a.id, a.version).map(|v| v.report).unwrap_or(Value::Null);
    let deliveries = state.service.deliveries(&a.id)?;
    let signers: Vec<Value> = a
        .signers
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "party": s.party_label,
                "party_name": s.party_name,
                "name": s.name,
                "title": s.title,
                "email": s.email,
                "order": s.order,
                "status": s.status,
                "link_expires": s.link_expires.map(rfc3339),
                "signed_at": s.signature.as_ref().map(|x| rfc3339(x.signed_at)),
                "consent_version": s.signature.as_ref().map(|x| x.consent_version.clone()),
                "decline_reason": s.decline_reason,
                "delivery": deliveries.iter().filter(|d| d.signer.as_deref() == Some(s.id.as_str())).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "id": a.id,
        "kind": a.kind,
        "title": a.title,
        "parties": [a.upstream_name, a.downstream_name],
        "status": a.status,
        "version": a.version,
        "document_sha256": a.document_sha256,
        "sent_sha256": a.sent_sha256,
        "final_sha256": a.final_sha256,
        "created_at": rfc3339(a.created_at),
        "updated_at": rfc3339(a.updated_at),
        "sent_at": a.sent_at.map(rfc3339),
        "executed_at": a.executed_at.map(rfc3339),
        "void_reason": a.void_reason,
        "needs_approval": a.needs_approval,
        "approval": a.approval.as_ref().map(|x| json!({"version": x.version, "by": x.by, "reason": x.reason, "at": rfc3339(x.at)})),
        "check": {
            "passes": a.check_passes,
            "elements": report.get("elements").cloned().unwrap_or(Value::Null),
            "findings": report.get("findings").cloned().unwrap_or(Value::Null),
            "breach_clock": report.get("breach_clock").cloned().unwrap_or(Value::Null),
            "provisions": report.get("provisions").cloned().unwrap_or(Value::Null),
            "departures": report.get("departures").cloned().unwrap_or(Value::Null),
        },
        "signers": signers,
        "messages": deliveries,
    }))
}

fn intake_text(body: &Bytes) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("the intake must be UTF-8 JSON".into()))
}

async fn create(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = intake_text(&body)?;
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || svc.create(&text, &who)).await??;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/agreements/{}", a.id))],
        axum::Json(view(&state, &a)?),
    )
        .into_response())
}

async fn show(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let a = blocking(move || svc.get(&id)).await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn replace(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let text = intake_text(&body)?;
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || svc.replace(&id, &text, &who)).await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn document(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let (bytes, sha) = blocking(move || svc.document(&id, &who)).await??;
    Ok(pdf_response(bytes, &sha, "agreement.pdf"))
}

/// A PDF with its SHA-256 in a header, so clients can check what they received.
pub fn pdf_response(bytes: Vec<u8>, sha: &str, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::HeaderName::from_static("x-document-sha256"), sha.to_string()),
        ],
        bytes,
    )
        .into_response()
}

async fn versions(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let vs = blocking(move || svc.versions(&id)).await??;
    let items: Vec<Value> = vs
        .iter()
        .map(|v| json!({"version": v.version, "sha256": v.sha256, "created_at": rfc3339(v.created_at), "passes": v.report.get("findings").and_then(|f| f.as_array()).map(|f| !f.iter().any(|x| x["level"] == "error")).unwrap_or(false)}))
        .collect();
    Ok(axum::Json(json!({"items": items})))
}

async fn send(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || {
        let a = svc.send(&id, &who)?;
        svc.flush_outbox()?;
        Ok::<_, crate::signing::service::ServiceError>(a)
    })
    .await??;
    Ok(axum::Json(view(&state, &a)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Unprocessable {
        code: "invalid_body",
        message: format!("the body is not valid: {e}"),
        findings: vec![crate::domain::findings::Finding::field("", e.to_string())],
    })
}

async fn void(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let Reason { reason } = json_body(&body)?;
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || svc.void(&id, &reason, &who)).await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn approve(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let Reason { reason } = json_body(&body)?;
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || svc.approve(&id, &reason, &who)).await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn version_document(
    _staff: Staff,
    State(state): State<AppState>,
    Path((id, version)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let svc = state.service.clone();
    let (bytes, sha) = blocking(move || svc.version_document(&id, version)).await??;
    Ok(pdf_response(bytes, &sha, &format!("agreement-v{version}.pdf")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    from: u32,
    to: u32,
}

async fn diff(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::Unprocessable {
        code: "invalid_query",
        message: format!("diff takes ?from=V&to=W: {e}"),
        findings: vec![crate::domain::findings::Finding::field("/from", e.body_text())],
    })?;
    let svc = state.service.clone();
    let changes = blocking(move || svc.diff(&id, q.from, q.to)).await??;
    Ok(axum::Json(json!({"from": q.from, "to": q.to, "changes": changes})))
}

async fn revise(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || svc.revise(&id, &who)).await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn resend(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, signer)): Path<(String, String)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || {
        let a = svc.resend(&id, &signer, &who)?;
        svc.flush_outbox()?;
        Ok::<_, crate::signing::service::ServiceError>(a)
    })
    .await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn update_signer(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, signer)): Path<(String, String)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let patch: SignerPatch = json_body(&body)?;
    let who = actor(staff.name, Some(addr), &headers);
    let svc = state.service.clone();
    let a = blocking(move || {
        let a = svc.update_signer(&id, &signer, patch, &who)?;
        svc.flush_outbox()?;
        Ok::<_, crate::signing::service::ServiceError>(a)
    })
    .await??;
    Ok(axum::Json(view(&state, &a)?))
}

async fn audit(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let events = blocking(move || svc.audit(&id)).await??;
    Ok(axum::Json(json!({"items": events})))
}

/// Verifies every audit chain in the running server's store (what `countersign audit verify`
/// asks for when the server holds the data directory).
async fn audit_verify(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let result = blocking(move || crate::cli::verify_chains(svc.store.as_ref())).await?;
    Ok(axum::Json(match result {
        Ok((chains, events)) => json!({"ok": true, "chains": chains, "events": events}),
        Err(msg) => json!({"ok": false, "break": msg}),
    }))
}
