//! Admin routes for webhook endpoints, merged into the `/api/v1` router (see
//! [`crate::app::webhooks`]). Every route takes [`Staff`] and checks its row of the route table.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, blocking};
use crate::app::webhooks::{NewEndpoint, delivery_view, endpoint_view};
use crate::domain::findings::Finding;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).delete(remove))
        .route("/webhooks/{id}/test", post(test))
        .route("/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
}

/// The body as a [`NewEndpoint`]: malformed JSON is a 400, a wrong or missing field a 422 that
/// names it.
fn new_endpoint(body: &Bytes) -> Result<NewEndpoint, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in backticks ("missing field `url`", "unknown field `x`").
        let pointer = msg.split('`').nth(1).map(|f| format!("/{f}")).unwrap_or_default();
        ApiError::Unprocessable {
            code: "invalid_field",
            message: format!("{pointer}: {msg}"),
            findings: vec![Finding::field(pointer, msg)],
        }
    })
}

/// `GET /api/v1/webhooks`: every endpoint (never a secret).
async fn list(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let all = blocking(move || svc.webhooks()).await??;
    Ok(axum::Json(json!({"items": all.iter().map(endpoint_view).collect::<Vec<_>>()})))
}

/// `POST /api/v1/webhooks`: 201 with the endpoint and its secret, shown this once.
async fn create(staff: Staff, State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let who = staff.who.clone();
    let new = new_endpoint(&body)?;
    let svc = state.service.clone();
    let (e, secret) = blocking(move || svc.create_webhook(new, &who)).await??;
    let mut v = endpoint_view(&e);
    v["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// `GET /api/v1/webhooks/{id}`: the endpoint and its delivery log.
async fn show(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let svc = state.service.clone();
    let (e, log) = blocking(move || svc.webhook(&id)).await??;
    let mut v = endpoint_view(&e);
    v["deliveries"] = log.iter().map(delivery_view).collect();
    Ok(axum::Json(v))
}

/// `DELETE /api/v1/webhooks/{id}`: the endpoint and its log are gone; queued deliveries dropped.
async fn remove(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let who = staff.who.clone();
    let svc = state.service.clone();
    let e = blocking(move || svc.delete_webhook(&id, &who)).await??;
    Ok(axum::Json(endpoint_view(&e)))
}

/// `POST /api/v1/webhooks/{id}/test`: queues a `webhook.test` event to this endpoint.
async fn test(_staff: Staff, State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let svc = state.service.clone();
    let d = blocking(move || svc.test_webhook(&id)).await??;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery_view(&d))).into_response())
}

/// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/redeliver`: back in the queue, due now.
async fn redeliver(
    _staff: Staff,
    State(state): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let svc = state.service.clone();
    let d = blocking(move || svc.redeliver_webhook(&id, &delivery)).await??;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery_view(&d))).into_response())
}
