//! Staff people through the API, merged into the `/api/v1` router: list, invite (201 with the
//! one-time `invite_url`), change role, disable, re-invite, and the staff security log. Admin
//! only; each route's roles come from [`super::api::ROUTES`].

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, blocking};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(invite))
        .route("/users/{id}", axum::routing::patch(change))
        .route("/users/{id}/disable", post(disable))
        .route("/users/{id}/reinvite", post(reinvite))
        .route("/security-log", get(security_log))
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::Unprocessable {
        code: "invalid_body",
        message: format!("the body is not valid: {e}"),
        findings: vec![crate::domain::findings::Finding::field("", e.to_string())],
    })
}

fn ip(c: &ConnectInfo<SocketAddr>) -> String {
    c.0.ip().to_string()
}

async fn list(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let people = state.people.clone();
    let items = blocking(move || people.people()).await??;
    Ok(axum::Json(json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPerson {
    email: String,
    name: String,
    role: String,
}

async fn invite(
    staff: Staff,
    State(state): State<AppState>,
    conn: ConnectInfo<SocketAddr>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let s = staff.0;
    let n: NewPerson = body(&b)?;
    let people = state.people.clone();
    let ip = ip(&conn);
    let (p, url) = blocking(move || people.invite(&s.who, &ip, &n.email, &n.name, &n.role)).await??;
    Ok((StatusCode::CREATED, axum::Json(json!({"id": p.id, "invite_url": url, "person": p}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

async fn change(
    staff: Staff,
    State(state): State<AppState>,
    conn: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let r: RoleChange = body(&b)?;
    let people = state.people.clone();
    let ip = ip(&conn);
    let p = blocking(move || people.set_role(&s.who, &ip, &id, &r.role)).await??;
    Ok(axum::Json(json!(p)))
}

async fn disable(
    staff: Staff,
    State(state): State<AppState>,
    conn: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let people = state.people.clone();
    let ip = ip(&conn);
    let p = blocking(move || people.disable(&s.who, &ip, &id)).await??;
    Ok(axum::Json(json!(p)))
}

async fn reinvite(
    staff: Staff,
    State(state): State<AppState>,
    conn: ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let people = state.people.clone();
    let ip = ip(&conn);
    let pid = id.clone();
    let url = blocking(move || people.reinvite(&s.who, &ip, &pid)).await??;
    Ok(axum::Json(json!({"id": id, "invite_url": url})))
}

async fn security_log(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let people = state.people.clone();
    let log = blocking(move || people.security_log()).await??;
    let intact = crate::store::people::verify_security_log(&log);
    Ok(axum::Json(json!({"intact": intact.is_ok(), "broken_at": intact.err(), "items": log})))
}
