//! The one error type at the HTTP boundary.
//!
//! Policy: every API error is JSON `{"error": {"code", "message", "findings"?}}` with the status
//! its variant documents. Client mistakes say exactly what is wrong (field errors carry the JSON
//! pointer). Internal and storage errors are logged with their cause and answered with a bare
//! 500: no internals, paths or secrets ever reach a client. Signer pages use the same variants
//! but answer HTML (see `http::sign`, built from [`ApiError::parts`]).
//!
//! The database connection lost (PostgreSQL): before anything was committed the store already
//! retried once on a fresh connection, and a second loss answers 503 `unavailable`; lost while
//! the commit was in flight, the outcome is unknown and the answer is 503 `outcome_unknown`
//! ([`OUTCOME_UNKNOWN`]: reload and look before trying again). Both carry `Retry-After`.
//!
//! Pointers name what was wrong: `/signers/1/email` in a JSON body, `/limit` for the query
//! parameter `?limit=` (422 `invalid_query`), `/version` for the path segment `{version}`
//! (400 `bad_request`). Requests axum refuses before a handler runs — a path or query that does
//! not parse, a body over the limit (413 `too_large`), a wrong method (405), an unknown route
//! (404) — get the same shapes through `http::rejection`; the intake routes take
//! `application/json` (or no Content-Type) and answer anything else 415 `unsupported_media_type`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::service::{LinkError, ServiceError};
use crate::domain::findings::Finding;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request body is not what the route takes (malformed JSON, wrong content type).
    BadRequest(String),
    /// 401: no API key, or not a valid one.
    Unauthorized(&'static str),
    /// 403: a valid key whose role may not do this.
    Forbidden,
    /// 429: too many failed authentication attempts from this source; retry later.
    TooManyRequests,
    /// 404: no such agreement, signer or route.
    NotFound,
    /// 409: the agreement's state does not allow this.
    Conflict(String),
    /// 413: the body is larger than the route accepts.
    TooLarge,
    /// 422: the intake or a field is invalid, or the agreement fails its checks.
    Unprocessable { code: &'static str, message: String, findings: Vec<Finding> },
    /// 4xx refused before a handler ran, or a body of the wrong type (415): axum's rejections
    /// re-shaped by `http::rejection`, the finding's pointer naming the parameter.
    Rejected { status: StatusCode, code: &'static str, message: String, findings: Vec<Finding> },
    /// 500: logged, never detailed to the client.
    Internal(String),
    /// 503: over a time budget, or the database connection was lost before anything was
    /// recorded; try again (`Retry-After`).
    Unavailable(String),
    /// 503 `outcome_unknown`: the database connection was lost while the change was being
    /// committed; whether it took effect is unknown (`Retry-After`; reload and look first).
    OutcomeUnknown,
}

/// Seconds a 503 answer asks the client to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: &str = "5";

/// What a client is told when a commit's outcome is unknown.
pub const OUTCOME_UNKNOWN: &str = "the database connection was lost while committing; the outcome is unknown \u{2014} \
     reload to see whether it took effect";

/// The answer to a store error the service passed on (see the policy above).
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound,
        StoreError::Conflict => ApiError::Conflict("the agreement changed meanwhile; retry".into()),
        StoreError::OutcomeUnknown(cause) => {
            tracing::error!(%cause, "database connection lost while committing; outcome unknown");
            ApiError::OutcomeUnknown
        }
        StoreError::ConnectionLost(cause) => {
            tracing::error!(%cause, "database connection lost (retried once); nothing was recorded");
            ApiError::Unavailable("the database connection was lost; nothing was recorded: try again".into())
        }
        e => ApiError::Internal(e.to_string()),
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(findings) => ApiError::Unprocessable {
                code: "invalid_intake",
                message: format!("the intake has {} problem(s)", findings.len()),
                findings,
            },
            ServiceError::CheckFailed(findings) => ApiError::Unprocessable {
                code: "check_failed",
                message: "sending is refused while the agreement fails its checks".into(),
                findings,
            },
            ServiceError::NeedsApproval(findings) => ApiError::Unprocessable {
                code: "needs_approval",
                message: format!(
                    "sending is refused until a legal or admin user approves {} departure(s) from policy: {}",
                    findings.len(),
                    findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
                ),
                findings,
            },
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::State(m) => ApiError::Conflict(m),
            ServiceError::Field(pointer, reason) => ApiError::Unprocessable {
                code: "invalid_field",
                message: format!("{pointer}: {reason}"),
                findings: vec![Finding::field(pointer, reason)],
            },
            ServiceError::Link(l) => match l {
                LinkError::Malformed | LinkError::Gone => ApiError::NotFound,
                other => ApiError::Conflict(other.to_string()),
            },
            ServiceError::Store(e) => store_error(e),
            ServiceError::Internal(m) => ApiError::Internal(m),
            ServiceError::Busy(_) => ApiError::TooManyRequests,
        }
    }
}

impl ApiError {
    /// The status, code, client-facing message and findings of this error, as the policy above
    /// says (an internal cause is logged here and never returned). JSON answers and the signer
    /// pages' HTML answers are both built from these parts, so they cannot drift apart.
    pub fn parts(self) -> (StatusCode, &'static str, String, Vec<Finding>) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m, vec![]),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.to_string(), vec![]),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "not found".to_string(), vec![]),
            ApiError::Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "your API key's role may not do this".to_string(), vec![])
            }
            ApiError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed attempts from this address; try again in a minute".to_string(),
                vec![],
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m, vec![]),
            ApiError::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large".into(), vec![])
            }
            ApiError::Unprocessable { code, message, findings } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message, findings)
            }
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m, vec![]),
            ApiError::OutcomeUnknown => {
                (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", OUTCOME_UNKNOWN.to_string(), vec![])
            }
            ApiError::Rejected { status, code, message, findings } => (status, code, message, findings),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".to_string(), vec![])
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, findings) = self.parts();
        let mut body = json!({"error": {"code": code, "message": message}});
        if !findings.is_empty() {
            body["error"]["findings"] = json!(findings);
        }
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        retry_after(&mut resp);
        resp
    }
}

impl From<crate::people::PeopleError> for ApiError {
    fn from(e: crate::people::PeopleError) -> Self {
        use crate::people::PeopleError as P;
        match e {
            P::Fields(fields) => ApiError::Unprocessable {
                code: "invalid_person",
                message: e_message(&fields),
                findings: fields.into_iter().map(|(p, m)| Finding::field(p, m)).collect(),
            },
            P::NotFound => ApiError::NotFound,
            P::Conflict(m) => ApiError::Conflict(m),
            P::BadCredentials => ApiError::Unauthorized("the email or password is not right"),
            P::TooMany => ApiError::TooManyRequests,
            P::Link(m) => ApiError::Conflict(m.to_string()),
            P::Store(e @ (StoreError::OutcomeUnknown(_) | StoreError::ConnectionLost(_))) => store_error(e),
            P::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

fn e_message(fields: &[(String, String)]) -> String {
    fields.iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("; ")
}

/// Adds `Retry-After` to a 503 answer (JSON or HTML).
pub fn retry_after(resp: &mut Response) {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RETRY_AFTER_SECS));
    }
}
