//! Actions on the agreement page (`/agreements/{id}`): approve a departure from policy, void,
//! revise after a decline, resend a signer's link, correct a signer's email, the lifecycle of an
//! executed agreement (terminate, certify the return or destruction of PHI, dispose of the
//! documents after retention), and the PDF shown inline. Each action is a plain form with the
//! session's CSRF token, authorized by the API's own route table ([`super::web::api_roles`])
//! and carried out by the same application-layer call as the API handler; a refusal re-renders
//! the page with the reason, and a field's problem beside that field (`aria-invalid`,
//! `aria-describedby`), never a bare error. After success the browser is redirected (303) so a
//! reload does not repeat the action.
//!
//! Also read-only parts of the page: the versions (each draft PDF downloadable), the clause diff
//! between two versions (`/agreements/{id}/diff?from=V&to=W`), the seal's status and the
//! renewal and retention dates.
//!
//! The inline PDF (`/agreements/{id}/pdf`) is the only response that may be framed, and only by
//! this site (`frame-ancestors 'self'`); every other response keeps refusing frames.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use axum::extract::Query;
use serde_json::{Value, json};
use tera::Context;

use super::web::{
    Viewer, agreement_view, agreement_view_with, api_roles, message, no_agreement, read_or, render, service_problem,
    staff_read,
};
use super::{AppState, blocking};
use crate::app::service::{Actor, Service, ServiceError, SignerPatch};
use crate::domain::agreement::{Agreement, Status};
use crate::staff::Role;

const DIFF: &str = include_str!("../../templates/web/app/diff.html.tera");
/// One input of an action form on the agreement page.
pub(crate) const ACTION_FIELD: &str = include_str!("../../templates/web/app/action_field.html.tera");

/// This module's pages, registered by [`super::web::WebPages::new`].
pub(crate) const TEMPLATES: &[(&str, &str)] = &[("diff.html.tera", DIFF)];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements/{id}/pdf", get(inline_pdf))
        .route("/agreements/{id}/approve", post(approve))
        .route("/agreements/{id}/void", post(void))
        .route("/agreements/{id}/revise", post(revise))
        .route("/agreements/{id}/signers/{signer}/resend", post(resend))
        .route("/agreements/{id}/signers/{signer}/email", post(correct_email))
        .route("/agreements/{id}/terminate", post(terminate))
        .route("/agreements/{id}/return-or-destroy", post(return_or_destroy))
        .route("/agreements/{id}/dispose", post(dispose))
        .route("/agreements/{id}/versions/{version}/document", get(version_document))
        .route("/agreements/{id}/diff", get(diff_page))
}

/// One input of an action form: (name, label, kind, hint, required). The name is what the form
/// posts and also the JSON pointer the service reports a problem at, less its `/`.
type Input = (&'static str, &'static str, &'static str, &'static str, bool);

/// The action forms on the agreement page whose inputs can be refused one by one (`certify`
/// also has its `method` select, drawn by the template).
const FORMS: &[(&str, &[Input])] = &[
    ("approve", &[("reason", "Reason for approving", "textarea", "", true)]),
    ("void", &[("reason", "Reason for voiding", "textarea", "", true)]),
    (
        "terminate",
        &[
            (
                "date",
                "Termination date",
                "date",
                "The day the agreement ends (typed as YYYY-MM-DD where no calendar is offered).",
                false,
            ),
            ("reason", "Reason", "textarea", "", false),
        ],
    ),
    (
        "certify",
        &[
            ("method", "What happened to the PHI", "select", "", false),
            (
                "date",
                "Date",
                "date",
                "When it was returned or destroyed (typed as YYYY-MM-DD where no calendar is offered).",
                false,
            ),
            (
                "certified_by",
                "Certified by",
                "text",
                "Name and title of the person at the business associate who certifies it.",
                false,
            ),
            (
                "protections",
                "Continuing protections (when infeasible)",
                "textarea",
                "Required when return or destruction is infeasible: the protections that continue and the purposes that limit further use.",
                false,
            ),
        ],
    ),
];

/// A form sent back to its page: what was typed, and the problem beside its field.
pub(crate) struct Posted {
    pub form: &'static str,
    pub values: HashMap<String, String>,
    pub errors: HashMap<String, String>,
}

/// Every action form's inputs as `action_field.html.tera` draws them (`ff.<form>`), with what
/// was typed and the problem beside its input when `posted` is that form; and the values and
/// errors by name (`fv.<form>.<name>`, `fe.<form>.<name>`) for inputs the template draws
/// itself. Every key is present, so a template never meets a missing one.
pub(crate) fn form_state(posted: Option<&Posted>) -> (Value, Value, Value) {
    let (mut drawn, mut values, mut errors) = (serde_json::Map::new(), serde_json::Map::new(), serde_json::Map::new());
    for (form, inputs) in FORMS {
        let mine = posted.filter(|p| p.form == *form);
        let value = |n: &str| mine.and_then(|p| p.values.get(n)).cloned().unwrap_or_default();
        let error = |n: &str| mine.and_then(|p| p.errors.get(n)).cloned().unwrap_or_default();
        let list: Vec<Value> = inputs
            .iter()
            .filter(|(_, _, kind, ..)| *kind != "select")
            .map(|(name, label, kind, hint, required)| {
                let id = format!("{form}-{name}");
                let mut described = Vec::new();
                if !error(name).is_empty() {
                    described.push(format!("{id}-error"));
                }
                if !hint.is_empty() {
                    described.push(format!("{id}-hint"));
                }
                json!({"id": id, "name": name, "label": label, "kind": kind, "textarea": *kind == "textarea",
                       "hint": hint, "required": required, "value": value(name), "error": error(name),
                       "described": described.join(" ")})
            })
            .collect();
        drawn.insert((*form).into(), Value::Array(list));
        values.insert((*form).into(), inputs.iter().map(|i| (i.0.to_string(), json!(value(i.0)))).collect());
        errors.insert((*form).into(), inputs.iter().map(|i| (i.0.to_string(), json!(error(i.0)))).collect());
    }
    (Value::Object(drawn), Value::Object(values), Value::Object(errors))
}

/// One line of the human timeline: what happened (in words), who did it, when (UTC), from which
/// address, and the detail a person needs (a reason, a date, the signer's email).
pub(crate) fn timeline_entry(e: &crate::store::Event) -> Value {
    let what = match e.kind.as_str() {
        "created" => "Draft created",
        "version_replaced" => "New draft version saved",
        "approved" => "Departures from policy approved",
        "sent" => "Sent for signature",
        "link_issued" => "Signing link emailed",
        "opened" => "Signer opened the agreement",
        "code_sent" => "Signer's one-time code emailed",
        "code_failed" => "Wrong one-time code entered",
        "consented" => "Signer consented to sign electronically",
        "signed" => "Signed",
        "declined" => "Declined",
        "completed" => "Countersigned and sealed",
        "archived" => "Archived",
        "downloaded" => "Archived copy downloaded",
        "voided" => "Voided",
        "revised" => "Revised after a decline",
        "signer_updated" => "Signer corrected",
        "expired" => "Signing links expired",
        "withdrawn" => "Withdrawn",
        "terminated" => "Terminated",
        "phi_disposition_certified" => "Return or destruction of PHI certified",
        "disposed" => "Documents disposed of after retention",
        _ => "",
    };
    let what = if what.is_empty() {
        sentence(&e.kind.replace('_', " ")).trim_end_matches('.').to_string()
    } else {
        what.into()
    };
    let d = &e.detail;
    let text = |k: &str| d.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()).map(String::from);
    let mut notes: Vec<String> = Vec::new();
    if let Some(m) = text("method") {
        let (date, by) = (text("date").unwrap_or_default(), text("certified_by").unwrap_or_default());
        notes.push(format!("{m} on {date}, certified by {by}"));
    } else if let Some(date) = text("date") {
        notes.push(format!("effective {date}"));
    }
    if let Some(r) = text("reason") {
        notes.push(format!("reason: {r}"));
    }
    if let Some(email) = text("email") {
        notes.push(format!("to {email}"));
    }
    if let Some(name) = text("typed_name") {
        notes.push(format!("as {name}"));
    }
    if matches!(e.kind.as_str(), "version_replaced" | "revised" | "sent")
        && let Some(v) = d.get("version").and_then(Value::as_u64)
    {
        notes.push(format!("version {v}"));
    }
    json!({"what": what, "who": e.actor, "when": when(e.at), "ip": e.ip, "note": notes.join("; ")})
}

/// Dates shown to people: `2027-01-05 14:03 UTC`.
pub(crate) fn when(secs: u64) -> String {
    let t = crate::clock::rfc3339(secs);
    format!("{} UTC", t.get(..16).unwrap_or(&t).replace('T', " "))
}

fn date_of_days(days: i64) -> String {
    crate::domain::time::Date::from_days(days).to_string()
}

/// What the agreement page shows beyond the agreement itself — versions, the seal, renewal and
/// retention — and the lifecycle actions this person may take now (the status allows them and
/// the API's table gives their role the route).
pub(crate) fn extras(svc: &Service, a: &Agreement, role: Role) -> Result<(Value, Vec<&'static str>), ServiceError> {
    use crate::domain::actions::Action;
    let mut can = Vec::new();
    for (key, act, path) in [
        ("terminate", Action::Terminate, "/agreements/{id}/terminate"),
        ("certify", Action::CertifyDisposition, "/agreements/{id}/return-or-destroy"),
    ] {
        if a.status.allows(act).is_ok() && api_roles("POST", path).contains(&role) {
            can.push(key);
        }
    }
    let today = svc.today();
    let retain_until = a.retention_until();
    let retention_passed = retain_until.is_some_and(|d| d < today);
    if retention_passed && a.disposed_at.is_none() && api_roles("POST", "/agreements/{id}/dispose").contains(&role) {
        can.push("dispose");
    }
    let versions: Vec<Value> = svc
        .versions(&a.id)?
        .iter()
        .rev()
        .map(|v| {
            let departures = v.report.get("departures").and_then(|d| d.as_array()).map_or(0, Vec::len);
            json!({"version": v.version, "sha256": v.sha256, "created": when(v.created_at), "departures": departures,
                   "current": v.version == a.version})
        })
        .collect();
    let seal = svc.seal_status(a)?.map(|r| {
        json!({"sealed": r.sealed, "valid": r.valid, "ours": r.signed_by_our_ca, "subject": r.certificate_subject,
               "fingerprint": r.certificate_fingerprint, "signed": r.signing_time.map(when),
               "timestamped": r.timestamped, "timestamp": r.timestamp_time.map(when),
               "authority": r.timestamp_authority, "timestamp_checked": r.timestamp_signature_checked,
               "whole": r.covers_whole_file, "modified": r.modified_after_seal, "detail": r.detail})
    });
    let renewal = if matches!(a.status, Status::Executed) {
        a.renewal_date(today).map(|d| {
            let notice_days = svc.config.reminders.term_notice_days;
            let notice = d.days_since_epoch() - i64::from(notice_days);
            json!({"date": d.to_string(), "auto_renew": a.facts.auto_renew, "months": a.facts.term_months,
                   "days_left": d.days_since_epoch() - today.days_since_epoch(),
                   "notice_days": notice_days, "notice_date": (notice_days > 0).then(|| date_of_days(notice))})
        })
    } else {
        None
    };
    let out = json!({
        "versions": versions,
        "seal": seal,
        "renewal": renewal,
        "today": today.to_string(),
        "retention": {"until": retain_until.map(|d| d.to_string()), "passed": retention_passed,
                      "disposed": a.disposed_at.map(when)},
    });
    Ok((out, can))
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
        "terminated" => {
            "Terminated: the agreement ends on the date given. Certify the return or destruction of PHI when it is done."
        }
        "certified" => "Certified: the return or destruction of PHI is recorded and the agreement is closed.",
        "disposed" => "Disposed of: the documents are deleted; the record and its audit trail remain.",
        _ => return None,
    })
}

/// One action's call of the service: the agreement, the signer (empty where the route has none),
/// the form's fields (less the CSRF token) and who acts.
type Step = fn(&Service, &str, &str, &HashMap<String, String>, &Actor) -> Result<Agreement, ServiceError>;

/// What every action takes from its request: the person, the path's `{id}` (and `{signer}`),
/// the headers and the posted form (extracted in that order).
struct Posting {
    state: AppState,
    viewer: Viewer,
    path: HashMap<String, String>,
    headers: HeaderMap,
    form: HashMap<String, String>,
}

impl FromRequest<AppState> for Posting {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let Path(path) = Path::<HashMap<String, String>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let Form(form) = Form::<HashMap<String, String>>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Posting { state: state.clone(), viewer, path, headers, form })
    }
}

async fn approve(p: Posting) -> Response {
    act(p, "approved", |svc, id, _, f, who| svc.approve(id, &field(f, "reason"), who)).await
}

async fn void(p: Posting) -> Response {
    act(p, "voided", |svc, id, _, f, who| svc.void(id, &field(f, "reason"), who)).await
}

async fn revise(p: Posting) -> Response {
    act(p, "revised", |svc, id, _, _, who| svc.revise(id, who)).await
}

async fn resend(p: Posting) -> Response {
    act(p, "resent", |svc, id, signer, _, who| svc.resend(id, signer, who)).await
}

async fn correct_email(p: Posting) -> Response {
    act(p, "corrected", |svc, id, signer, f, who| {
        let patch = SignerPatch { name: None, title: None, email: Some(field(f, "email")) };
        svc.update_signer(id, signer, patch, who)
    })
    .await
}

async fn terminate(p: Posting) -> Response {
    act(p, "terminated", |svc, id, _, f, who| svc.terminate(id, &field(f, "date"), &field(f, "reason"), who)).await
}

async fn return_or_destroy(p: Posting) -> Response {
    act(p, "certified", |svc, id, _, f, who| {
        let protections = field(f, "protections");
        svc.certify_disposition(
            id,
            &field(f, "method"),
            &field(f, "date"),
            &field(f, "certified_by"),
            Some(protections.as_str()),
            who,
        )
    })
    .await
}

async fn dispose(p: Posting) -> Response {
    act(p, "disposed", |svc, id, _, _, who| svc.dispose(id, who)).await
}

/// One action (the route layer checked the roles of its API twin): the CSRF token, the agreement
/// visible to the person, then `step` off the async threads; 303 back to the page, or the page with the refusal.
async fn act(p: Posting, done: &'static str, step: Step) -> Response {
    let Posting { state, viewer, mut path, headers, form } = p;
    let (w, fields) = match viewer.form(form) {
        Ok((w, fields)) => (w.clone(), fields),
        Err(r) => return *r,
    };
    let id = path.remove("id").unwrap_or_default();
    let signer = path.remove("signer").unwrap_or_default();
    let staff = w.staff();
    let who = viewer.actor(&staff, &headers);
    let svc = state.service.clone();
    let (id2, sent) = (id.clone(), fields.clone());
    let result = blocking(move || {
        super::api::visible(&svc, &staff, &id2)?;
        step(&svc, &id2, &signer, &sent, &who)?;
        svc.flush_outbox_of(&id2)
    })
    .await;
    let sent_back = fields;
    match result {
        Ok(Ok(_)) => Redirect::to(&format!("/agreements/{id}?done={done}")).into_response(),
        Ok(Err(ServiceError::NotFound)) => no_agreement(&state, &viewer),
        Ok(Err(ServiceError::Field(pointer, m))) => {
            // The problem beside its field when the form has one by that name.
            let name = pointer.trim_start_matches('/').to_string();
            let form = FORMS.iter().find(|(f, inputs)| form_of(done) == *f && inputs.iter().any(|i| i.0 == name));
            let posted = form.map(|(f, _)| Posted {
                form: f,
                values: sent_back,
                errors: [(name, sentence(&m))].into_iter().collect(),
            });
            agreement_view_with(
                state,
                viewer,
                id,
                None,
                Some((format!("Not done: {m}."), Vec::new())),
                posted,
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

/// `a reason is required` → `A reason is required.`
fn sentence(m: &str) -> String {
    let mut c = m.chars();
    let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
    let rest = c.as_str().trim_end_matches('.');
    format!("{first}{rest}.")
}

/// The form an action's outcome key belongs to.
fn form_of(done: &str) -> &'static str {
    match done {
        "approved" => "approve",
        "voided" => "void",
        "terminated" => "terminate",
        "certified" => "certify",
        _ => "",
    }
}

fn field(f: &HashMap<String, String>, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

/// A version's draft PDF, as the API's `/versions/{version}/document` (its read is logged once
/// the agreement is archived).
async fn version_document(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = viewer.signed_in() {
        return *r;
    }
    let Ok(version) = version.parse::<u32>() else { return no_version(&state, &viewer) };
    let read = move |svc: &Service, id: &str, who: &Actor| svc.version_document_read(id, version, who);
    match staff_read(&state, &viewer, &headers, id, no_version, read).await {
        Ok((bytes, sha)) => super::api::pdf_response(bytes, &sha, &format!("agreement-v{version}.pdf")),
        Err(r) => *r,
    }
}

fn no_version(state: &AppState, viewer: &Viewer) -> Response {
    message(
        state,
        Some(viewer),
        StatusCode::NOT_FOUND,
        "Version not found",
        "There is no such version of an agreement you may see.",
    )
}

/// `?from=V&to=W` (both optional: the latest version against the one before it). A value that
/// is not a version of this agreement is reported beside its field.
fn diff_versions(q: &HashMap<String, String>, latest: u32) -> (u32, u32, HashMap<&'static str, String>) {
    let mut errors = HashMap::new();
    let mut pick = |k: &'static str, default: u32| match q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => default,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=latest).contains(&n) => n,
            _ => {
                errors.insert(k, format!("Choose a version from 1 to {latest}."));
                default
            }
        },
    };
    let to = pick("to", latest);
    let from = pick("from", to.saturating_sub(1).max(1));
    (from, to, errors)
}

async fn diff_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let staff = w.staff();
    let svc = state.service.clone();
    let loaded = blocking(move || {
        let a = super::api::visible(&svc, &staff, &id)?;
        let (from, to, errors) = diff_versions(&q, a.version);
        let changes = if errors.is_empty() && from != to { svc.diff(&a.id, from, to)? } else { Vec::new() };
        Ok::<_, ServiceError>((a, from, to, errors, changes))
    })
    .await;
    let (a, from, to, errors, changes) = match read_or(loaded, || no_agreement(&state, &viewer)) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let rows: Vec<Value> = changes
        .iter()
        .map(|c| {
            let change = match c.change {
                crate::render::diff::Change::Added => "added",
                crate::render::diff::Change::Removed => "removed",
                crate::render::diff::Change::Changed => "changed",
            };
            json!({"clause": c.clause, "change": change, "from": c.from_number, "to": c.to_number,
                   "segments": c.segments, "added": c.added.len(), "removed": c.removed.len()})
        })
        .collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let mut ctx = Context::new();
    ctx.insert("title", &format!("Changes: {}", a.title));
    ctx.insert("a", &json!({"id": a.id, "title": a.title, "version": a.version}));
    ctx.insert("versions", &(1..=a.version).rev().collect::<Vec<u32>>());
    ctx.insert("from", &from);
    ctx.insert("to", &to);
    ctx.insert("errors", &json!({"from": errors.get("from"), "to": errors.get("to")}));
    ctx.insert("changes", &rows);
    render(&state, Some(&viewer), "diff.html.tera", "agreements", ctx, status)
}

/// The current PDF for the frame on the agreement page: inline, and frameable by this site only.
async fn inline_pdf(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match staff_read(&state, &viewer, &headers, id, no_agreement, |svc, id, who| svc.document(id, who)).await {
        Ok((bytes, sha)) => {
            let mut r = super::api::pdf_response(bytes, &sha, "agreement.pdf");
            let h = r.headers_mut();
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"agreement.pdf\""));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PDF_CSP));
            h.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
            r
        }
        Err(r) => *r,
    }
}
