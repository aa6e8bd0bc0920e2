//! The administrators' webhook pages: `/admin/webhooks` lists the endpoints and adds one (its
//! `whsec_` secret shown once, on that answer only, never again); `/admin/webhooks/{id}` shows
//! an endpoint's delivery log (newest first) with redeliver, a test event, and delete. Admin only
//! (their rows in [`super::routes::PAGES`]); every form carries the CSRF token; each action calls the
//! same service method as `/api/v1/webhooks`. Endpoints with `"local": true` (http and loopback,
//! for a receiver on the same machine) are made through the API or CLI only, on purpose: the page
//! offers no way around the public-address rule.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tera::Context;

use super::account::FormField;
use super::error::ApiError;
use super::web::{Viewer, form_work, render};
use super::{AppState, blocking};
use crate::app::service::ServiceError;
use crate::app::webhooks::{NewEndpoint, delivery_view};

pub(crate) const TEMPLATES: &[(&str, &str)] =
    &[("webhooks.html.tera", include_str!("../../templates/web/app/webhooks.html.tera"))];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(list).post(create))
        .route("/admin/webhooks/{id}", get(show))
        .route("/admin/webhooks/{id}/delete", post(delete))
        .route("/admin/webhooks/{id}/test", post(test))
        .route("/admin/webhooks/{id}/deliveries/{delivery}/redeliver", post(redeliver))
}

/// What the list page shows besides the endpoints.
#[derive(Default)]
struct Shown {
    secret: Option<(String, String)>,
    form: HashMap<String, String>,
    errors: Vec<(String, String)>,
    problem: Option<String>,
}

fn fields(s: &Shown) -> Vec<FormField> {
    let err = |n: &str| s.errors.iter().find(|(f, _)| f.trim_start_matches('/') == n).map(|(_, m)| m.clone());
    let val = |n: &str| s.form.get(n).cloned().unwrap_or_default();
    vec![
        FormField {
            name: "url",
            label: "Address",
            kind: "url",
            value: val("url"),
            error: err("url"),
            hint: Some("https:// and a public address; Countersign posts each event there."),
            autocomplete: "off",
            ..FormField::default()
        },
        FormField {
            name: "events",
            label: "Events",
            kind: "text",
            value: s.form.get("events").cloned().unwrap_or_else(|| "agreement.*".into()),
            error: err("events"),
            hint: Some(
                "Separated by spaces or commas: agreement.signed, agreement.executed, delivery.failed …, agreement.* or *.",
            ),
            autocomplete: "off",
            ..FormField::default()
        },
        FormField {
            name: "description",
            label: "Description (optional)",
            kind: "text",
            value: val("description"),
            error: err("description"),
            hint: None,
            autocomplete: "off",
            ..FormField::default()
        },
    ]
}

async fn list_page(state: AppState, viewer: Viewer, s: Shown, status: StatusCode) -> Response {
    let svc = state.service.clone();
    let endpoints = match blocking(move || svc.webhooks()).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return e.into_response(),
    };
    let rows: Vec<serde_json::Value> = endpoints.iter().map(crate::app::webhooks::endpoint_view).collect();
    let mut ctx = Context::new();
    ctx.insert("title", "Webhooks");
    ctx.insert("endpoint", &None::<()>);
    ctx.insert("endpoints", &rows);
    ctx.insert("fields", &fields(&s));
    ctx.insert("problem", &s.problem);
    ctx.insert("secret", &s.secret.map(|(id, secret)| serde_json::json!({"id": id, "secret": secret})));
    let mut r = render(&state, Some(&viewer), "webhooks.html.tera", "admin", ctx, status);
    // A new secret may be on this page: keep it out of caches and history.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    list_page(state, viewer, Shown::default(), StatusCode::OK).await
}

async fn create(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let (w, form) = match viewer.form(f) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let events: Vec<String> = form
        .get("events")
        .map(|e| e.split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let new = NewEndpoint {
        url: form.get("url").cloned().unwrap_or_default(),
        events,
        local: false,
        description: form.get("description").cloned().unwrap_or_default(),
    };
    let (svc, by) = (state.service.clone(), w.person.email.clone());
    match blocking(move || svc.create_webhook(new, &by)).await {
        Ok(Ok((e, secret))) => {
            let s = Shown { secret: Some((e.id, secret)), ..Shown::default() };
            list_page(state, viewer, s, StatusCode::CREATED).await
        }
        Ok(Err(ServiceError::Field(pointer, reason))) => {
            let s = Shown { form, errors: vec![(pointer, reason)], ..Shown::default() };
            list_page(state, viewer, s, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn endpoint_page(state: AppState, viewer: Viewer, id: String, done: Option<String>) -> Response {
    let svc = state.service.clone();
    let missing = || not_found(&state, &viewer, "There is no such webhook endpoint.");
    let (e, log) = match super::web::read_or(blocking(move || svc.webhook(&id)).await, missing) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let deliveries: Vec<serde_json::Value> = log.iter().rev().take(100).map(delivery_view).collect();
    let mut ctx = Context::new();
    ctx.insert("title", "Webhook endpoint");
    ctx.insert("endpoint", &crate::app::webhooks::endpoint_view(&e));
    ctx.insert("deliveries", &deliveries);
    ctx.insert("total", &log.len());
    ctx.insert("done", &done);
    ctx.insert("problem", &None::<()>);
    ctx.insert("secret", &None::<()>);
    render(&state, Some(&viewer), "webhooks.html.tera", "admin", ctx, StatusCode::OK)
}

async fn show(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    endpoint_page(state, viewer, id, None).await
}

fn not_found(state: &AppState, viewer: &Viewer, body: &str) -> Response {
    super::web::message(state, Some(viewer), StatusCode::NOT_FOUND, "Not found", body)
}

/// Runs an endpoint action for an admin's form and shows the endpoint again with `done`.
async fn act(
    state: AppState,
    viewer: Viewer,
    f: HashMap<String, String>,
    id: String,
    work: impl FnOnce(&crate::app::service::Service, &str) -> Result<String, ServiceError> + Send + 'static,
) -> Response {
    let svc = state.service.clone();
    match form_work(&viewer, f, move |w, _, _| work(&svc, &w.person.email)).await {
        Ok(Ok(done)) => endpoint_page(state, viewer, id, Some(done)).await,
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer, "There is no such webhook endpoint or delivery."),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(r) => *r,
    }
}

async fn test(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, f, id, move |svc, _| {
        svc.test_webhook(&key).map(|d| format!("A test event ({}) is queued.", d.id))
    })
    .await
}

async fn redeliver(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, delivery)): Path<(String, String)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let key = id.clone();
    act(state, viewer, f, id, move |svc, _| {
        svc.redeliver_webhook(&key, &delivery).map(|d| format!("Delivery {} is queued again.", d.id))
    })
    .await
}

async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let svc = state.service.clone();
    match form_work(&viewer, f, move |w, _, _| svc.delete_webhook(&id, &w.person.email)).await {
        Ok(Ok(_)) => Redirect::to("/admin/webhooks").into_response(),
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer, "There is no such webhook endpoint."),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(r) => *r,
    }
}
