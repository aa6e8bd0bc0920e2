//! The vendor register through the API, merged into the `/api/v1` router (issue 16). Each
//! route's roles come from [`super::api::ROUTES`]: `vendor_manager` and `admin` edit, `legal`
//! answers the questionnaire (the determination) and reads, `sales` reads. Handlers call the
//! application layer ([`crate::app::vendors`]) off the async threads, never the store.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, actor, blocking};
use crate::app::service::{Service, ServiceError};
use crate::app::vendors::{MAX_UPLOAD, VendorQuery};
use crate::domain::findings::Finding;
use crate::domain::vendor::{AnswersInput, PaperTerms, VendorInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vendors", get(list).post(create))
        .route("/vendors/report", get(report))
        .route("/vendors/documents", get(search_documents))
        .route("/vendors/{id}", get(show).patch(update))
        .route("/vendors/{id}/questionnaire", post(questionnaire))
        .route("/vendors/{id}/documents", post(upload_document).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/vendors/{id}/papers", post(upload_paper).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/vendors/{id}/files/{sha256}", get(file))
        .route("/vendors/{id}/agreements", post(link))
        .route("/vendors/{id}/intake", get(intake))
        .route("/vendors/{id}/reassessed", post(reassessed))
        .route("/vendors/{id}/audit", get(audit))
}

/// Vendor field problems answer 422 `invalid_vendor` (not `invalid_intake`).
fn err(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Invalid(findings) => ApiError::Unprocessable {
            code: "invalid_vendor",
            message: findings
                .iter()
                .map(|f| format!("{}: {}", f.pointer.as_deref().unwrap_or(""), f.message))
                .collect::<Vec<_>>()
                .join("; "),
            findings,
        },
        e => e.into(),
    }
}

async fn run<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let svc = state.service.clone();
    blocking(move || f(&svc)).await?.map_err(err)
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| {
        // serde names the field in its message; the pointer is the body itself.
        ApiError::Unprocessable {
            code: "invalid_body",
            message: format!("the body is not valid: {e}"),
            findings: vec![Finding::field("", e.to_string())],
        }
    })
}

fn query<T: serde::de::DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|e| ApiError::Unprocessable {
        code: "invalid_query",
        message: e.body_text(),
        findings: vec![Finding::field("?", e.body_text())],
    })
}

type Conn = ConnectInfo<SocketAddr>;

async fn list(_staff: Staff, State(state): State<AppState>, uri: Uri) -> Result<axum::Json<Value>, ApiError> {
    let q: VendorQuery = query(&uri)?;
    let page = run(&state, move |svc| svc.list_vendors(&q)).await?;
    Ok(axum::Json(serde_json::to_value(page).unwrap_or_default()))
}

async fn create(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    b: Bytes,
) -> Result<Response, ApiError> {
    let s = &staff.0;
    let input: VendorInput = body(&b)?;
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view = run(&state, move |svc| svc.create_vendor(input, &who).map(|v| svc.vendor_view(v))).await?;
    let loc = format!("/api/v1/vendors/{}", view.vendor.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], axum::Json(view)).into_response())
}

async fn show(_staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let view = run(&state, move |svc| svc.vendor(&id)).await?;
    let mut v = serde_json::to_value(view).unwrap_or_default();
    // Always present: null until the questionnaire is answered.
    if v.get("determination").is_none() {
        v["determination"] = Value::Null;
    }
    Ok(axum::Json(v).into_response())
}

async fn update(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let input: VendorInput = body(&b)?;
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view = run(&state, move |svc| svc.update_vendor(&id, input, &who).map(|v| svc.vendor_view(v))).await?;
    Ok(axum::Json(serde_json::to_value(view).unwrap_or_default()))
}

async fn questionnaire(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let input: AnswersInput = body(&b)?;
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view = run(&state, move |svc| svc.answer_questionnaire(&id, input, &who).map(|v| svc.vendor_view(v))).await?;
    Ok(axum::Json(serde_json::to_value(view).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocQuery {
    kind: String,
    issued: Option<String>,
    expires: Option<String>,
}

async fn upload_document(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
    b: Bytes,
) -> Result<Response, ApiError> {
    let s = &staff.0;
    let q: DocQuery = query(&uri)?;
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view = run(&state, move |svc| {
        svc.upload_vendor_document(&id, &q.kind, q.issued.as_deref(), q.expires.as_deref(), b.to_vec(), &who)
            .map(|v| svc.vendor_view(v))
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaperQuery {
    kind: String,
    title: String,
    effective_date: String,
    term_months: Option<u16>,
    #[serde(default)]
    auto_renew: bool,
    breach_notice_days: Option<u16>,
    return_or_destroy: Option<String>,
    notice_days: Option<u16>,
}

async fn upload_paper(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
    b: Bytes,
) -> Result<Response, ApiError> {
    let s = &staff.0;
    let q: PaperQuery = query(&uri)?;
    let terms = PaperTerms {
        kind: q.kind,
        title: q.title,
        effective_date: q.effective_date,
        term_months: q.term_months,
        auto_renew: q.auto_renew,
        breach_notice_days: q.breach_notice_days,
        return_or_destroy: q.return_or_destroy,
        notice_days: q.notice_days,
    };
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view =
        run(&state, move |svc| svc.upload_vendor_paper(&id, terms, b.to_vec(), &who).map(|v| svc.vendor_view(v)))
            .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

async fn file(
    _staff: Staff,
    State(state): State<AppState>,
    Path((id, sha)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let s2 = sha.clone();
    let bytes = run(&state, move |svc| svc.vendor_file(&id, &s2)).await?;
    let ctype = if bytes.starts_with(b"%PDF-") { "application/pdf" } else { "application/octet-stream" };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"vendor-{}.pdf\"", &sha[..sha.len().min(12)])),
            (header::HeaderName::from_static("x-document-sha256"), sha),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    agreement_id: Option<String>,
    /// An intake: create the agreement and link it in one step.
    intake: Option<Value>,
}

async fn link(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let s = &staff.0;
    let l: Link = body(&b)?;
    let who = actor(s.who.clone(), Some(addr), &headers);
    match (l.agreement_id, l.intake) {
        (Some(a), None) => {
            let view = run(&state, move |svc| svc.link_agreement(&id, &a, &who).map(|v| svc.vendor_view(v))).await?;
            Ok(axum::Json(json!({"vendor": view})).into_response())
        }
        (None, Some(intake)) => {
            let text = intake.to_string();
            let (a, view) = run(&state, move |svc| {
                let (a, v) = svc.create_agreement_for_vendor(&id, &text, &who)?;
                Ok((super::api::view(svc, &a)?, svc.vendor_view(v)))
            })
            .await
            .map_err(|e| match e {
                // The intake's own findings keep their intake code.
                ApiError::Unprocessable { code: "invalid_vendor", message, findings } => {
                    ApiError::Unprocessable { code: "invalid_intake", message, findings }
                }
                e => e,
            })?;
            Ok((StatusCode::CREATED, axum::Json(json!({"agreement": a, "vendor": view}))).into_response())
        }
        _ => Err(ApiError::Unprocessable {
            code: "invalid_body",
            message: "send either agreement_id (link an existing agreement) or intake (create one)".into(),
            findings: vec![Finding::field("/agreement_id", "send either agreement_id or intake")],
        }),
    }
}

async fn intake(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(run(&state, move |svc| svc.vendor_intake(&id)).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Reassessed {
    date: Option<String>,
}

async fn reassessed(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let r: Reassessed = if b.is_empty() { Reassessed::default() } else { body(&b)? };
    let who = actor(s.who.clone(), Some(addr), &headers);
    let view =
        run(&state, move |svc| svc.record_reassessment(&id, r.date.as_deref(), &who).map(|v| svc.vendor_view(v)))
            .await?;
    Ok(axum::Json(serde_json::to_value(view).unwrap_or_default()))
}

async fn audit(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let (events, intact) = run(&state, move |svc| svc.vendor_audit(&id)).await?;
    Ok(axum::Json(json!({"intact": intact, "items": events})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocSearch {
    q: Option<String>,
    sha256: Option<String>,
}

async fn search_documents(
    _staff: Staff,
    State(state): State<AppState>,
    uri: Uri,
) -> Result<axum::Json<Value>, ApiError> {
    let q: DocSearch = query(&uri)?;
    let items = run(&state, move |svc| svc.search_vendor_copies(q.q.as_deref(), q.sha256.as_deref())).await?;
    Ok(axum::Json(json!({"items": items, "total": items.len()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Format {
    format: Option<String>,
}

async fn report(_staff: Staff, State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let f: Format = query(&uri)?;
    match f.format.as_deref().unwrap_or("pdf") {
        "pdf" => {
            let bytes = run(&state, |svc| svc.vendor_report_pdf()).await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "application/pdf"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"vendor-report.pdf\""),
                ],
                bytes,
            )
                .into_response())
        }
        "csv" => {
            let csv = run(&state, |svc| svc.vendor_report().map(|r| r.to_csv())).await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"vendor-report.csv\""),
                ],
                csv,
            )
                .into_response())
        }
        "json" => Ok(axum::Json(run(&state, |svc| svc.vendor_report()).await?).into_response()),
        _ => Err(ApiError::Unprocessable {
            code: "invalid_query",
            message: "?format: pdf, csv or json".into(),
            findings: vec![Finding::field("?format", "pdf, csv or json")],
        }),
    }
}
