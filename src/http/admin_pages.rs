//! The administrators' page `/admin`: API keys (list, create — the key shown once —, revoke),
//! the outbox's failed messages with retry, and the sealing certificate's fingerprint. Admin
//! only (its rows in [`super::routes::PAGES`]: everyone else gets the 403 page). Key changes
//! made here also go to the staff security log under the person's email.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tera::Context;

use super::account::FormField;
use super::error::ApiError;
use super::web::{Viewer, form_work, render, role_label};
use super::{AppState, blocking};
use crate::app::service::ServiceError;
use crate::staff::Role;
use crate::store::MessageStatus;

pub(crate) const TEMPLATES: &[(&str, &str)] =
    &[("admin.html.tera", include_str!("../../templates/web/app/admin.html.tera"))];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/keys", post(create_key))
        .route("/admin/keys/{id}/revoke", post(revoke_key))
        .route("/admin/outbox/{id}/retry", post(retry))
}

#[derive(Default)]
struct View {
    done: Option<String>,
    problem: Option<String>,
    new_key: Option<(String, String)>,
    form: HashMap<String, String>,
    errors: Vec<(String, String)>,
}

async fn view(state: AppState, viewer: Viewer, v: View, status: StatusCode) -> Response {
    let svc = state.service.clone();
    let loaded = blocking(move || -> Result<_, ServiceError> {
        let keys = svc.api_keys()?;
        let messages = crate::app::outbox::list(svc.store.as_ref(), None)?;
        let fp = svc.seal.fingerprint();
        let older: Vec<String> = svc.seal.known_fingerprints().into_iter().filter(|f| f != &fp).collect();
        Ok((keys, messages, fp, older))
    })
    .await;
    let (keys, messages, fingerprint, older) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return e.into_response(),
    };
    let count = |s: MessageStatus| messages.iter().filter(|m| m.status == s).count();
    let counts = serde_json::json!({
        "queued": count(MessageStatus::Queued), "sent": count(MessageStatus::Sent),
        "failed": count(MessageStatus::Failed), "skipped": count(MessageStatus::Skipped),
    });
    let failed: Vec<serde_json::Value> = messages
        .iter()
        .rev()
        .filter(|m| matches!(m.status, MessageStatus::Failed | MessageStatus::Skipped))
        .take(200)
        .map(|m| {
            serde_json::json!({"id": m.id, "subject": m.subject, "kind": m.kind, "to": m.to,
                "agreement_id": m.agreement_id, "attempts": m.attempts, "last_error": m.last_error,
                "status": format!("{:?}", m.status).to_lowercase()})
        })
        .collect();
    let err = |n: &str| v.errors.iter().find(|(f, _)| f.trim_start_matches('/') == n).map(|(_, m)| m.clone());
    let val = |n: &str| v.form.get(n).cloned().unwrap_or_default();
    let roles: Vec<(String, String)> = ["sales", "legal", "vendor_manager", "admin"]
        .iter()
        .map(|r| (r.to_string(), role_label(r).to_string()))
        .collect();
    let key_fields = vec![
        FormField {
            name: "name",
            label: "Name",
            kind: "text",
            value: val("name"),
            error: err("name"),
            hint: Some("What the key is for, e.g. the CRM integration."),
            autocomplete: "off",
            ..FormField::default()
        },
        FormField {
            name: "role",
            label: "Role",
            kind: "select",
            value: v.form.get("role").cloned().unwrap_or_else(|| "sales".into()),
            error: err("role"),
            options: roles,
            ..FormField::default()
        },
        FormField {
            name: "expires_days",
            label: "Expires after (days)",
            kind: "text",
            value: val("expires_days"),
            error: err("expires_days"),
            hint: Some("Leave empty for a key that does not expire."),
            autocomplete: "off",
            ..FormField::default()
        },
    ];
    let mut ctx = Context::new();
    ctx.insert("title", "Administration");
    ctx.insert("done", &v.done);
    ctx.insert("problem", &v.problem);
    ctx.insert("new_key", &v.new_key.map(|(name, key)| serde_json::json!({"name": name, "key": key})));
    ctx.insert("fingerprint", &fingerprint);
    ctx.insert("older", &older);
    ctx.insert("keys", &keys);
    ctx.insert("key_fields", &key_fields);
    ctx.insert("counts", &counts);
    ctx.insert("failed", &failed);
    let mut r = render(&state, Some(&viewer), "admin.html.tera", "admin", ctx, status);
    // A freshly created key is on this page: keep it out of caches and history.
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    view(state, viewer, View::default(), StatusCode::OK).await
}

/// A new key's name, role and expiry (unix seconds).
type NewKey = (String, Role, Option<u64>);

/// Checks the new-key form: the key to make, or (field, message) for each problem.
fn parse_key(form: &HashMap<String, String>, now: u64) -> Result<NewKey, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let name = form.get("name").map_or("", |s| s.trim()).to_string();
    if name.is_empty() {
        errors.push(("name".into(), "required".into()));
    } else if name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.push(("name".into(), "at most 100 characters, on one line".into()));
    }
    let role = Role::parse(form.get("role").map_or("", String::as_str));
    if role.is_none() {
        errors.push(("role".into(), "one of sales, legal, vendor_manager, admin".into()));
    }
    let days = form.get("expires_days").map_or("", |s| s.trim());
    let expires = if days.is_empty() {
        None
    } else {
        match days.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(now + d * 86_400),
            _ => {
                errors.push(("expires_days".into(), "a whole number of days from 1 to 3650, or empty".into()));
                None
            }
        }
    };
    match role {
        Some(role) if errors.is_empty() => Ok((name, role, expires)),
        _ => Err(errors),
    }
}

async fn create_key(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let (w, form) = match viewer.form(f) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let (name, role, expires) = match parse_key(&form, state.service.clock.now()) {
        Ok(x) => x,
        Err(errors) => {
            let v = View { form, errors, ..View::default() };
            return view(state, viewer, v, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let (svc, ip, by) = (state.service.clone(), viewer.ip.clone(), w.person.email.clone());
    // The service puts the change in the security log (as for the API and the CLI).
    let result = blocking(move || -> Result<(String, String), ServiceError> {
        let (key, rec) = svc.create_api_key(&name, role, expires, &by, &ip)?;
        Ok((rec.name, key))
    })
    .await;
    match result {
        Ok(Ok(new_key)) => {
            let v = View { new_key: Some(new_key), ..View::default() };
            view(state, viewer, v, StatusCode::CREATED).await
        }
        Ok(Err(e)) => problem(state, viewer, e).await,
        Err(e) => e.into_response(),
    }
}

async fn problem(state: AppState, viewer: Viewer, e: ServiceError) -> Response {
    match super::web::service_problem(e) {
        Ok((m, findings)) => {
            let detail: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
            let m = if detail.is_empty() { m } else { format!("{m} {}", detail.join("; ")) };
            view(state, viewer, View { problem: Some(m), ..View::default() }, StatusCode::CONFLICT).await
        }
        Err(ApiError::NotFound) => {
            let v = View { problem: Some("There is no such key or message.".into()), ..View::default() };
            view(state, viewer, v, StatusCode::NOT_FOUND).await
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let svc = state.service.clone();
    match form_work(&viewer, f, move |w, ip, _| svc.revoke_api_key(&id, &w.person.email, &ip)).await {
        Ok(Ok(_)) => Redirect::to("/admin#keys").into_response(),
        Ok(Err(e)) => problem(state, viewer, e).await,
        Err(r) => *r,
    }
}

async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let svc = state.service.clone();
    match form_work(&viewer, f, move |w, _, _| svc.retry_message(&id, None, &w.person.email)).await {
        Ok(Ok(m)) => {
            let v = View { done: Some(format!("“{}” to {} is queued again.", m.subject, m.to)), ..View::default() };
            view(state, viewer, v, StatusCode::OK).await
        }
        Ok(Err(e)) => problem(state, viewer, e).await,
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_key_form_reports_each_field() {
        let f = |n: &str, r: &str, d: &str| {
            HashMap::from([
                ("name".to_string(), n.to_string()),
                ("role".into(), r.into()),
                ("expires_days".into(), d.into()),
            ])
        };
        assert_eq!(parse_key(&f("CRM", "legal", ""), 0), Ok(("CRM".into(), Role::Legal, None)));
        assert_eq!(parse_key(&f("CRM", "admin", "2"), 10), Ok(("CRM".into(), Role::Admin, Some(10 + 2 * 86_400))));
        let e = parse_key(&f(" ", "boss", "0"), 0).expect_err("three problems");
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["name", "role", "expires_days"]);
    }
}
