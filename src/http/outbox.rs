//! Staff routes for mail delivery, merged into the `/api/v1` router: the outbox list, retrying
//! a message, and resending one of an agreement's messages. Every route takes [`Staff`].

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, blocking};
use crate::app::outbox;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/outbox", get(list))
        .route("/outbox/{id}/retry", post(retry))
        .route("/agreements/{id}/messages/{message}/resend", post(resend))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
}

/// `GET /api/v1/outbox[?status=queued|sent|failed|skipped]`: every message, oldest first.
async fn list(
    _staff: Staff,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let status =
        q.status.as_deref().map(outbox::parse_status).transpose().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let svc = state.service.clone();
    let ms = blocking(move || outbox::list(svc.store.as_ref(), status)).await??;
    Ok(axum::Json(json!({"items": ms.iter().map(outbox::view).collect::<Vec<_>>()})))
}

/// `POST /api/v1/outbox/{id}/retry`: a failed or skipped message goes back in the queue.
async fn retry(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let who = staff.who.clone();
    let svc = state.service.clone();
    let m = blocking(move || svc.retry_message(&id, None, &who)).await??;
    Ok(axum::Json(outbox::view(&m)))
}

/// `POST /api/v1/agreements/{id}/messages/{message}/resend`: the same, scoped to an agreement.
async fn resend(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, message)): Path<(String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let who = staff.who.clone();
    let svc = state.service.clone();
    let m = blocking(move || svc.retry_message(&message, Some(&id), &who)).await??;
    Ok(axum::Json(outbox::view(&m)))
}
