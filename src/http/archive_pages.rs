//! The archive page `/archive`: the API's search filters (counterparty, kind, state, status,
//! effective dates, `q`) over the same index, results with their PDF (through
//! `/agreements/{id}/document`, which records archived-copy downloads in the access log exactly
//! as the API's download does) and the CSV export of the same filter. Roles come from the API's
//! route table; `sales` see only the agreements they created, as in the API.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tera::Context;

use super::AppState;
use super::account::FormField;
use super::error::ApiError;
use super::web::{Viewer, encode, render};
use crate::archive::search;
use crate::staff::Role;

pub(crate) const TEMPLATES: &[(&str, &str)] =
    &[("archive.html.tera", include_str!("../../templates/web/app/archive.html.tera"))];

const PAGE: usize = 25;
/// The filters, in the order the form shows them.
const FILTERS: [&str; 7] = ["q", "counterparty", "kind", "state", "status", "effective_from", "effective_to"];

pub fn router() -> Router<AppState> {
    Router::new().route("/archive", get(page)).route("/archive/export.csv", get(export))
}

/// The query from the form's fields (empty fields are no filter).
fn query(raw: &HashMap<String, String>) -> search::Query {
    let get = |k: &str| raw.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    search::Query {
        q: get("q"),
        counterparty: get("counterparty"),
        kind: get("kind"),
        state: get("state").map(|s| s.to_uppercase()),
        status: get("status"),
        effective_from: get("effective_from"),
        effective_to: get("effective_to"),
        cursor: get("cursor"),
        limit: Some(PAGE),
        ..search::Query::default()
    }
}

/// The filters again as a query string (for the CSV link and the next page).
fn query_string(raw: &HashMap<String, String>) -> String {
    let parts: Vec<String> = FILTERS
        .iter()
        .filter_map(|k| raw.get(*k).filter(|v| !v.trim().is_empty()).map(|v| format!("{k}={}", encode(v.trim()))))
        .collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

async fn page(State(state): State<AppState>, viewer: Viewer, Query(raw): Query<HashMap<String, String>>) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let q = query(&raw);
    let problems = q.validate().err().unwrap_or_default();
    let valid = problems.is_empty();
    let svc = state.service.clone();
    let q2 = q.clone();
    let listed = super::cpu(move || -> Result<(Vec<search::Entry>, usize, Option<String>), ApiError> {
        if !valid {
            return Ok((Vec::new(), 0, None));
        }
        // A sales person sees their own: a filter on the creator the index keeps.
        let own = (w.role == Role::Sales).then(|| w.person.email.clone());
        let p = svc.search(&search::Query { created_by: own, ..q2 })?;
        Ok((p.items, p.total, p.next_cursor))
    })
    .await;
    let (rows, total, next) = match listed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) | Err(e) => return e.into_response(),
    };
    let err = |n: &str| problems.iter().find(|(p, _)| p.trim_start_matches('/') == n).map(|(_, m)| m.clone());
    let val = |n: &str| raw.get(n).cloned().unwrap_or_default();
    let opts = |o: &[(&str, &str)]| o.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect::<Vec<_>>();
    let statuses: Vec<(String, String)> = std::iter::once((String::new(), "Any".to_string()))
        .chain(
            crate::domain::agreement::Status::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), s.as_str().replace('_', " "))),
        )
        .collect();
    let text = |name: &'static str, label: &'static str, hint: Option<&'static str>| FormField {
        name,
        label,
        kind: "text",
        value: val(name),
        error: err(name),
        hint,
        autocomplete: "off",
        ..FormField::default()
    };
    let fields = vec![
        text("q", "Words", None),
        text("counterparty", "Counterparty", None),
        FormField {
            name: "kind",
            label: "Kind",
            kind: "select",
            value: val("kind"),
            error: err("kind"),
            options: opts(&[("", "Any"), ("baa", "BAA"), ("dua", "DUA")]),
            ..FormField::default()
        },
        text("state", "State", Some("Two letters, e.g. CA")),
        FormField {
            name: "status",
            label: "Status",
            kind: "select",
            value: val("status"),
            error: err("status"),
            options: statuses,
            ..FormField::default()
        },
        FormField { kind: "date", ..text("effective_from", "Effective from", None) },
        FormField { kind: "date", ..text("effective_to", "Effective to", None) },
    ];
    let qs = query_string(&raw);
    let next = next.map(|c| {
        let sep = if qs.is_empty() { "?" } else { "&" };
        format!("/archive{qs}{sep}cursor={}", encode(&c))
    });
    let mut ctx = Context::new();
    ctx.insert("title", "Archive");
    ctx.insert("fields", &fields);
    ctx.insert("valid", &valid);
    ctx.insert("rows", &rows);
    ctx.insert("total", &total);
    ctx.insert("next", &next);
    ctx.insert("query", &qs);
    let status = if valid { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(&state, Some(&viewer), "archive.html.tera", "archive", ctx, status)
}

/// The CSV of every match of the same filters (the API's columns).
async fn export(State(state): State<AppState>, viewer: Viewer, Query(raw): Query<HashMap<String, String>>) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let mut q = query(&raw);
    q.limit = None;
    q.cursor = None;
    if let Err(problems) = q.validate() {
        let m: Vec<String> = problems.iter().map(|(p, m)| format!("{}: {m}", p.trim_start_matches('/'))).collect();
        return super::web::message(
            &state,
            Some(&viewer),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not exported",
            &m.join("; "),
        );
    }
    // A sales person exports their own.
    q.created_by = (w.role == Role::Sales).then(|| w.person.email.clone());
    let svc = state.service.clone();
    match super::cpu(move || svc.export(&q).map(|all| search::to_csv(&all))).await {
        Ok(Ok(csv)) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"agreements.csv\""),
            ],
            csv,
        )
            .into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}
