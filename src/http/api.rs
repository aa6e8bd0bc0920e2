//! The staff JSON API, `/api/v1`.
//!
//! [`ROUTES`] is the one description of every route: its method and path, the roles allowed, a
//! summary, and what it takes and returns. The route layer ([`super::routes::authorize`]) checks
//! the caller's key against the row's roles before a handler runs, `/api/v1/openapi.json` is
//! generated from the table, and the authorization-matrix test walks it. Handlers take the
//! admitted caller as [`Staff`]; none runs unauthenticated — except those in [`PUBLIC`] (the API
//! description: it holds no secrets, and integrators read it before they have a key). `sales`
//! keys see only agreements they created (others answer 404, so existence does not leak).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Staff;
use super::error::ApiError;
use super::{AppState, actor, blocking};
use crate::app::service::{Service, ServiceError, SignerPatch};
use crate::archive::search;
use crate::clock::rfc3339;
use crate::domain::agreement::Agreement;
use crate::staff::Role::{self, Admin, Legal, Sales, VendorManager};

/// Largest intake body accepted.
const MAX_INTAKE: usize = 1024 * 1024;
/// Largest PDF accepted for verification.
pub const MAX_PDF: usize = 32 * 1024 * 1024;

const ANY: &[Role] = &[Sales, Legal, VendorManager, Admin];
const DRAFTING: &[Role] = &[Sales, Legal, Admin];
const LEGAL: &[Role] = &[Legal, Admin];
const REVIEW: &[Role] = &[Legal, VendorManager, Admin];
const ARCHIVE: &[Role] = &[VendorManager, Admin];
const ADMIN: &[Role] = &[Admin];
/// The vendor register: vendor managers and admins edit it; legal also answers the role
/// questionnaire (the determination).
const VENDOR_EDIT: &[Role] = &[VendorManager, Admin];
const DETERMINE: &[Role] = &[Legal, VendorManager, Admin];

/// What a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Intake,
    Json(&'static str),
    Pdf,
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    /// Relative to `/api/v1`, axum syntax.
    pub path: &'static str,
    pub roles: &'static [Role],
    pub summary: &'static str,
    pub body: Body,
    /// Success status and what it returns.
    pub ok: (u16, &'static str),
}

const fn r(
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    summary: &'static str,
    body: Body,
    ok: (u16, &'static str),
) -> RouteDoc {
    RouteDoc { method, path, roles, summary, body, ok }
}

/// Every route.
pub const ROUTES: &[RouteDoc] = &[
    r(
        "GET",
        "/agreements",
        ANY,
        "Search agreements (counterparty, kind, state, status, effective_from, effective_to, renewal_before, q, sort, limit, cursor)",
        Body::None,
        (200, "items, total, next_cursor"),
    ),
    r(
        "GET",
        "/agreements/export.csv",
        REVIEW,
        "Export the search results as CSV (same filters)",
        Body::None,
        (200, "text/csv"),
    ),
    r(
        "GET",
        "/agreements/renewal-due",
        REVIEW,
        "Executed agreements renewing or ending within ?days= (default 60)",
        Body::None,
        (200, "items"),
    ),
    r(
        "POST",
        "/agreements",
        DRAFTING,
        "Create a draft from an intake (422 lists every problem)",
        Body::Intake,
        (201, "the agreement"),
    ),
    r(
        "GET",
        "/agreements/{id}",
        ANY,
        "An agreement: status, check report, signers and delivery",
        Body::None,
        (200, "the agreement"),
    ),
    r(
        "PUT",
        "/agreements/{id}",
        DRAFTING,
        "Replace a draft's intake (a new version)",
        Body::Intake,
        (200, "the agreement"),
    ),
    r(
        "GET",
        "/agreements/{id}/document",
        ANY,
        "The current PDF (draft, sent or countersigned); downloads of archived copies are logged",
        Body::None,
        (200, "application/pdf"),
    ),
    r("GET", "/agreements/{id}/versions", ANY, "Every version with its SHA-256", Body::None, (200, "items")),
    r(
        "GET",
        "/agreements/{id}/versions/{version}/document",
        ANY,
        "A version's draft PDF",
        Body::None,
        (200, "application/pdf"),
    ),
    r(
        "GET",
        "/agreements/{id}/diff",
        ANY,
        "Clause-level differences between versions ?from=V&to=W",
        Body::None,
        (200, "changes"),
    ),
    r(
        "POST",
        "/agreements/{id}/send",
        DRAFTING,
        "Freeze the document and send the first signing order its links",
        Body::None,
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/approve",
        LEGAL,
        "Approve the current version's departures from policy",
        Body::Json("{reason}"),
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/void",
        LEGAL,
        "Withdraw an agreement (links stop working)",
        Body::Json("{reason}"),
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/revise",
        LEGAL,
        "Start a new draft version after a decline",
        Body::None,
        (200, "the agreement"),
    ),
    r(
        "PATCH",
        "/agreements/{id}/signers/{signer}",
        LEGAL,
        "Correct or reassign a signer who has not signed (old link revoked)",
        Body::Json("{name?, title?, email?}"),
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/signers/{signer}/resend",
        LEGAL,
        "Send a signer a new link (the old one stops working)",
        Body::None,
        (200, "the agreement"),
    ),
    r("GET", "/agreements/{id}/audit", REVIEW, "The agreement's audit trail (hash chain)", Body::None, (200, "items")),
    r(
        "GET",
        "/agreements/{id}/access-log",
        ARCHIVE,
        "Who downloaded the archived copy, when, from where",
        Body::None,
        (200, "items"),
    ),
    r(
        "GET",
        "/agreements/{id}/chain",
        REVIEW,
        "The subcontractor chain: parent agreements and subcontractor BAAs",
        Body::None,
        (200, "ancestors, descendants"),
    ),
    r(
        "POST",
        "/agreements/{id}/terminate",
        ARCHIVE,
        "Terminate an executed agreement",
        Body::Json("{date, reason}"),
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/return-or-destroy",
        ARCHIVE,
        "Certify return or destruction of PHI, or record infeasibility and continuing protections",
        Body::Json("{method: returned|destroyed|infeasible, date, certified_by, protections?}"),
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/agreements/{id}/dispose",
        ADMIN,
        "Delete the documents of an agreement past its retention date (tombstone kept)",
        Body::None,
        (200, "the agreement"),
    ),
    r(
        "POST",
        "/verify",
        REVIEW,
        "Is this PDF byte-for-byte an archived document?",
        Body::Pdf,
        (200, "match, agreement_id, version, status, executed_at, signers"),
    ),
    r(
        "GET",
        "/retention",
        ARCHIVE,
        "Agreements past their retention date (six years, 45 CFR 164.316(b)(2))",
        Body::None,
        (200, "items"),
    ),
    r("GET", "/apikeys", ADMIN, "List API keys (never their secrets)", Body::None, (200, "items")),
    r(
        "POST",
        "/apikeys",
        ADMIN,
        "Create an API key; the key is shown once (recorded in the security log)",
        Body::Json("{name, role, expires_at?}"),
        (201, "key, id, role"),
    ),
    r(
        "DELETE",
        "/apikeys/{key_id}",
        ADMIN,
        "Revoke an API key (the bootstrap key once another admin exists; recorded in the security log)",
        Body::None,
        (200, "the key"),
    ),
    r("GET", "/audit/verify", ADMIN, "Walk every audit chain", Body::None, (200, "ok, chains, events or break")),
    r(
        "POST",
        "/keys/link/rotate",
        ADMIN,
        "Rotate the link keys: new links are signed with a new key; links already sent keep working until they expire (409 when the keys are set in the configuration file)",
        Body::None,
        (200, "signing_key_id, key_ids"),
    ),
    r(
        "GET",
        "/outbox",
        ADMIN,
        "Every outgoing message with its delivery (?status=queued|sent|failed|skipped)",
        Body::None,
        (200, "items"),
    ),
    r(
        "POST",
        "/outbox/{id}/retry",
        ADMIN,
        "Put a failed or skipped message back in the queue",
        Body::None,
        (200, "the message"),
    ),
    r(
        "POST",
        "/agreements/{id}/messages/{message}/resend",
        LEGAL,
        "Send one of an agreement's messages again",
        Body::None,
        (200, "the message"),
    ),
    r(
        "GET",
        "/backup",
        ADMIN,
        "A consistent snapshot of the whole store (JSON lines), for countersign restore",
        Body::None,
        (200, "application/x-ndjson"),
    ),
    r("GET", "/openapi.json", ANY, "This description (public: no key needed)", Body::None, (200, "OpenAPI 3.1")),
    // People who sign in to the web app (src/http/users.rs).
    r(
        "GET",
        "/users",
        ADMIN,
        "People with web sign-in: role and status (invited, active, disabled)",
        Body::None,
        (200, "items"),
    ),
    r(
        "POST",
        "/users",
        ADMIN,
        "Invite a person (queues the invitation email; the link is returned once and works once, for 72 hours)",
        Body::Json("email, name, role"),
        (201, "id, invite_url, person"),
    ),
    r(
        "PATCH",
        "/users/{id}",
        ADMIN,
        "Change a person's role (ends their sessions)",
        Body::Json("role"),
        (200, "the person"),
    ),
    r(
        "POST",
        "/users/{id}/disable",
        ADMIN,
        "Disable a person (ends their sessions at once)",
        Body::None,
        (200, "the person"),
    ),
    r(
        "POST",
        "/users/{id}/reinvite",
        ADMIN,
        "A new invitation link for someone who has not accepted yet",
        Body::None,
        (200, "id, invite_url"),
    ),
    r(
        "GET",
        "/security-log",
        ADMIN,
        "The hash-chained staff security log (sign-ins, invites, roles, disabling)",
        Body::None,
        (200, "intact, items"),
    ),
    // The vendor register (src/http/vendors.rs, issue 16).
    r(
        "GET",
        "/vendors",
        ANY,
        "Search vendors (q, tier, determination, baa_status, flag, agreement, figure, limit, cursor)",
        Body::None,
        (200, "items, total, next_cursor"),
    ),
    r(
        "POST",
        "/vendors",
        VENDOR_EDIT,
        "Add a vendor (only legal_name is required)",
        Body::Json(
            "legal_name, other_names?, address?, website?, account_owner?, privacy_contact?, security_contact?, data_flows?, findings?, subcontractors?, tier_override?, last_assessed?",
        ),
        (201, "the vendor with its standing"),
    ),
    r(
        "GET",
        "/vendors/report",
        ANY,
        "The executive report (?format=pdf|csv|json)",
        Body::None,
        (200, "application/pdf, text/csv or JSON"),
    ),
    r(
        "GET",
        "/vendors/documents",
        ANY,
        "Vendor documents and vendor-paper agreements (?q=, ?sha256=): never agreements executed in Countersign",
        Body::None,
        (200, "items, total"),
    ),
    r(
        "GET",
        "/vendors/{id}",
        ANY,
        "A vendor: record, determination (null until answered), standing, flags, obligations",
        Body::None,
        (200, "the vendor"),
    ),
    r(
        "PATCH",
        "/vendors/{id}",
        VENDOR_EDIT,
        "Update any sections of a vendor record",
        Body::Json("any fields of POST /vendors; tier_override {tier, reason} or null"),
        (200, "the vendor"),
    ),
    r(
        "POST",
        "/vendors/{id}/questionnaire",
        DETERMINE,
        "Answer the role questionnaire: the determination with reason and 45 CFR 160.103 citation",
        Body::Json(
            "handles_phi, transmission_only?, deidentified_only?, limited_data_set_only?, we_are_business_associate?",
        ),
        (200, "the vendor"),
    ),
    r(
        "POST",
        "/vendors/{id}/documents",
        VENDOR_EDIT,
        "Upload a due-diligence document (?kind=&issued=&expires=; the file is the body)",
        Body::Pdf,
        (201, "the vendor"),
    ),
    r(
        "POST",
        "/vendors/{id}/papers",
        VENDOR_EDIT,
        "Upload an executed agreement on the vendor's paper (?kind=&title=&effective_date=&term_months=&auto_renew=&breach_notice_days=&return_or_destroy=&notice_days=)",
        Body::Pdf,
        (201, "the vendor"),
    ),
    r(
        "GET",
        "/vendors/{id}/files/{sha256}",
        REVIEW,
        "A vendor document's bytes (re-checked against its SHA-256)",
        Body::None,
        (200, "the file"),
    ),
    r(
        "POST",
        "/vendors/{id}/agreements",
        VENDOR_EDIT,
        "Link an existing agreement, or create one from an intake and link it",
        Body::Json("agreement_id | intake"),
        (200, "vendor (and agreement when created: 201)"),
    ),
    r(
        "GET",
        "/vendors/{id}/intake",
        ANY,
        "The start of an intake for a new agreement with this vendor",
        Body::None,
        (200, "partial intake"),
    ),
    r(
        "POST",
        "/vendors/{id}/reassessed",
        VENDOR_EDIT,
        "Record a completed reassessment (today, or {date})",
        Body::Json("{date?}"),
        (200, "the vendor"),
    ),
    r(
        "GET",
        "/vendors/{id}/audit",
        REVIEW,
        "Every change to the vendor record, with who made it (hash chain)",
        Body::None,
        (200, "intact, items"),
    ),
    // Webhook endpoints (src/http/webhooks.rs, src/app/webhooks.rs).
    r("GET", "/webhooks", ADMIN, "Webhook endpoints (never their secrets)", Body::None, (200, "items")),
    r(
        "POST",
        "/webhooks",
        ADMIN,
        "Add a webhook endpoint (https to a public address; \"local\": true allows http and loopback); the whsec_ secret is shown once",
        Body::Json("{url, events, local?, description?}"),
        (201, "the endpoint with its secret"),
    ),
    r(
        "GET",
        "/webhooks/{id}",
        ADMIN,
        "A webhook endpoint and its delivery log (status, response code, attempts, last error)",
        Body::None,
        (200, "the endpoint with deliveries"),
    ),
    r(
        "DELETE",
        "/webhooks/{id}",
        ADMIN,
        "Remove a webhook endpoint with its delivery log",
        Body::None,
        (200, "the endpoint"),
    ),
    r(
        "POST",
        "/webhooks/{id}/test",
        ADMIN,
        "Queue a webhook.test event to the endpoint",
        Body::None,
        (202, "the delivery"),
    ),
    r(
        "POST",
        "/webhooks/{id}/deliveries/{delivery}/redeliver",
        ADMIN,
        "Queue a delivery again (same webhook-id and body, attempts reset)",
        Body::None,
        (202, "the delivery"),
    ),
];

/// Routes that answer without a key (method, path relative to `/api/v1`). Only the API
/// description: it is generated from this table and names no agreement, key or secret.
pub const PUBLIC: &[(&str, &str)] = &[("GET", "/openapi.json")];

/// True when a route answers without a key.
pub fn is_public(method: &str, path: &str) -> bool {
    PUBLIC.iter().any(|&(m, p)| m == method && p == path)
}

/// The roles allowed on a route (none for a route missing from the table).
pub fn allowed(method: &str, path: &str) -> &'static [Role] {
    ROUTES.iter().find(|r| r.method == method && r.path == path).map(|r| r.roles).unwrap_or(&[])
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agreements", get(list).post(create))
        .route("/agreements/export.csv", get(export))
        .route("/agreements/renewal-due", get(renewal_due))
        .route("/agreements/{id}", get(show).put(replace))
        .route("/agreements/{id}/document", get(document))
        .route("/agreements/{id}/versions", get(versions))
        .route("/agreements/{id}/versions/{version}/document", get(version_document))
        .route("/agreements/{id}/diff", get(diff))
        .route("/agreements/{id}/send", post(send))
        .route("/agreements/{id}/approve", post(approve))
        .route("/agreements/{id}/void", post(void))
        .route("/agreements/{id}/revise", post(revise))
        .route("/agreements/{id}/signers/{signer}", patch(update_signer))
        .route("/agreements/{id}/signers/{signer}/resend", post(resend))
        .route("/agreements/{id}/audit", get(audit))
        .route("/agreements/{id}/access-log", get(access_log))
        .route("/agreements/{id}/chain", get(chain))
        .route("/agreements/{id}/terminate", post(terminate))
        .route("/agreements/{id}/return-or-destroy", post(return_or_destroy))
        .route("/agreements/{id}/dispose", post(dispose))
        .route("/verify", post(verify).layer(DefaultBodyLimit::max(MAX_PDF)))
        .route("/retention", get(retention))
        .route("/apikeys", get(list_keys).post(create_key))
        .route("/apikeys/{key_id}", delete(revoke_key))
        .route("/audit/verify", get(audit_verify))
        .route("/keys/link/rotate", post(rotate_link_keys))
        .route("/backup", get(backup))
        .route("/openapi.json", get(openapi))
        .merge(super::outbox::router())
        .merge(super::users::router())
        .merge(super::vendors::router())
        .merge(super::webhooks::router())
        .layer(DefaultBodyLimit::max(MAX_INTAKE))
}

/// The actor of a staff request: who, from where, and whether it sees only its own agreements.
fn staff_actor(s: &crate::staff::Staff, addr: SocketAddr, headers: &HeaderMap) -> crate::app::service::Actor {
    super::staff_actor(s, Some(addr), headers)
}

/// Runs service work off the async threads.
async fn with<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let svc = state.service.clone();
    Ok(blocking(move || f(&svc)).await??)
}

/// Loads an agreement the caller may see (`sales` only its own; others answer 404).
pub(crate) fn visible(svc: &Service, staff: &crate::staff::Staff, id: &str) -> Result<Agreement, ServiceError> {
    let a = svc.get(id)?;
    if staff.role == Sales && a.created_by != staff.who {
        return Err(ServiceError::NotFound);
    }
    Ok(a)
}

/// Rotates the link keys of the running server (the ring is replaced at once).
async fn rotate_link_keys(staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let by = s.who.clone();
    let (signing, ids) = with(&state, move |svc| svc.rotate_link_keys(&by)).await?;
    Ok(axum::Json(json!({"signing_key_id": signing, "key_ids": ids})))
}

/// The agreement as staff see it: state, check, signers and delivery — never link tokens.
pub(crate) fn view(svc: &Service, a: &Agreement) -> Result<Value, ServiceError> {
    let report = svc.store.version(&a.id, a.version).map(|v| v.report).unwrap_or(Value::Null);
    let deliveries = svc.deliveries(&a.id)?;
    let signers: Vec<Value> = a
        .signers
        .iter()
        .map(|s| {
            json!({
                "id": s.id, "party": s.party_label, "party_name": s.party_name, "name": s.name, "title": s.title,
                "email": s.email, "order": s.order, "status": s.status, "link_expires": s.link_expires.map(rfc3339),
                "signed_at": s.signature.as_ref().map(|x| rfc3339(x.signed_at)),
                "consent_version": s.signature.as_ref().map(|x| x.consent_version.clone()),
                "decline_reason": s.decline_reason,
                "delivery": deliveries.iter().filter(|d| d.signer.as_deref() == Some(s.id.as_str())).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "id": a.id, "kind": a.kind, "title": a.title, "parties": [a.upstream_name, a.downstream_name],
        "status": a.status, "version": a.version, "document_sha256": a.document_sha256,
        "sent_sha256": a.sent_sha256, "final_sha256": a.final_sha256,
        "created_at": rfc3339(a.created_at), "created_by": a.created_by, "updated_at": rfc3339(a.updated_at),
        "sent_at": a.sent_at.map(rfc3339), "executed_at": a.executed_at.map(rfc3339), "void_reason": a.void_reason,
        "needs_approval": a.needs_approval,
        "approval": a.approval.as_ref().map(|x| json!({"version": x.version, "by": x.by, "reason": x.reason, "at": rfc3339(x.at)})),
        "effective_date": a.facts.effective_date, "states": a.facts.states,
        "term": {"months": a.facts.term_months, "auto_renew": a.facts.auto_renew, "renewal_date": a.renewal_date(svc.today()).map(|d| d.to_string())},
        "parent_agreement_id": a.facts.parent_agreement_id,
        "termination": a.termination, "phi_disposition": a.disposition,
        "retain_until": a.retention_until().map(|d| d.to_string()), "disposed_at": a.disposed_at.map(rfc3339),
        "check": {
            "passes": a.check_passes,
            "elements": report.get("elements").cloned().unwrap_or(Value::Null),
            "provisions": report.get("provisions").cloned().unwrap_or(Value::Null),
            "departures": report.get("departures").cloned().unwrap_or(Value::Null),
            "findings": report.get("findings").cloned().unwrap_or(Value::Null),
            "breach_clock": report.get("breach_clock").cloned().unwrap_or(Value::Null),
        },
        "signers": signers,
        "messages": deliveries,
    }))
}

/// The intake routes take JSON: `application/json` (any parameters, or a `+json` type) or no
/// Content-Type; anything else is 415, before the body is judged.
fn check_json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(t) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let t = t.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if t == "application/json" || (t.starts_with("application/") && t.ends_with("+json")) {
        return Ok(());
    }
    let message = format!("send the intake as JSON with Content-Type: application/json, not {t:?}");
    Err(ApiError::Rejected {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "unsupported_media_type",
        findings: vec![crate::domain::findings::Finding::field("", message.clone())],
        message,
    })
}

fn intake_text(body: &Bytes) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::BadRequest("the intake must be UTF-8 JSON".into()))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Unprocessable {
        code: "invalid_body",
        message: format!("the body is not valid: {e}"),
        findings: vec![crate::domain::findings::Finding::field("", e.to_string())],
    })
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

type Conn = ConnectInfo<SocketAddr>;

fn query_error(e: Vec<(String, String)>) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_query",
        message: e.iter().map(|(p, m)| format!("{p}: {m}")).collect::<Vec<_>>().join("; "),
        findings: e.into_iter().map(|(p, m)| crate::domain::findings::Finding::field(p, m)).collect(),
    }
}

fn parse_query(raw: Option<&str>) -> Result<search::Query, ApiError> {
    let q: search::Query = serde_urlencoded_query(raw.unwrap_or(""))?;
    q.validate().map_err(query_error)?;
    Ok(q)
}

/// Query strings via axum's own deserializer, so unknown parameters are rejected with a message.
fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let uri: axum::http::Uri =
        format!("/?{raw}").parse().map_err(|_| ApiError::BadRequest("malformed query string".into()))?;
    Query::<T>::try_from_uri(&uri).map(|q| q.0).map_err(|e| {
        let text = e.body_text();
        query_error(vec![(super::rejection::pointer_in(&text, &[]), text)])
    })
}

async fn list(staff: Staff, State(state): State<AppState>, uri: axum::http::Uri) -> Result<Response, ApiError> {
    let s = staff.0;
    let mut q = parse_query(uri.query())?;
    // Sales see their own only: a filter on the creator the index keeps, paged like any other.
    if s.role == Sales {
        q.created_by = Some(s.who);
    }
    // A scan of the whole index (milliseconds at 100,000 agreements) and a read of the page's
    // entries: off the async threads.
    let svc = state.service.clone();
    // Serialized straight from the page (no `serde_json::Value` tree in between).
    let page = super::cpu(move || svc.search(&q)).await??;
    Ok(axum::Json(page).into_response())
}

async fn export(staff: Staff, State(state): State<AppState>, uri: axum::http::Uri) -> Result<Response, ApiError> {
    let mut q = parse_query(uri.query())?;
    // The route is for reviewers (no `sales`); were it opened to them, they would export their own.
    if staff.0.role == Sales {
        q.created_by = Some(staff.0.who);
    }
    let svc = state.service.clone();
    let csv = super::cpu(move || svc.export(&q).map(|all| search::to_csv(&all))).await??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"agreements.csv\""),
        ],
        csv,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Days {
    days: Option<u32>,
}

async fn renewal_due(
    _staff: Staff,
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>, ApiError> {
    let Days { days } = serde_urlencoded_query(uri.query().unwrap_or(""))?;
    let items = with(&state, move |s| s.renewal_due(days.unwrap_or(60).min(3650))).await?;
    Ok(axum::Json(json!({"items": items})))
}

async fn create(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = &staff.0;
    check_json_type(&headers)?;
    let text = intake_text(&body)?;
    let who = staff_actor(s, addr, &headers);
    let v = with(&state, move |svc| {
        let a = svc.create(&text, &who)?;
        view(svc, &a)
    })
    .await?;
    let loc = format!("/api/v1/agreements/{}", v["id"].as_str().unwrap_or_default());
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], axum::Json(v)).into_response())
}

async fn show(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    Ok(axum::Json(with(&state, move |svc| view(svc, &visible(svc, &s, &id)?)).await?))
}

async fn replace(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    check_json_type(&headers)?;
    let text = intake_text(&body)?;
    let who = staff_actor(&s, addr, &headers);
    Ok(axum::Json(
        with(&state, move |svc| {
            visible(svc, &s, &id)?;
            view(svc, &svc.replace(&id, &text, &who)?)
        })
        .await?,
    ))
}

async fn document(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = staff.0;
    let who = staff_actor(&s, addr, &headers);
    let (bytes, sha) = with(&state, move |svc| {
        visible(svc, &s, &id)?;
        svc.document(&id, &who)
    })
    .await?;
    Ok(pdf_response(bytes, &sha, "agreement.pdf"))
}

async fn versions(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let vs = with(&state, move |svc| {
        visible(svc, &s, &id)?;
        svc.versions(&id)
    })
    .await?;
    let items: Vec<Value> = vs
        .iter()
        .map(|v| {
            let departures = v.report.get("departures").and_then(|d| d.as_array()).map(Vec::len).unwrap_or(0);
            json!({"version": v.version, "sha256": v.sha256, "created_at": rfc3339(v.created_at), "departures": departures})
        })
        .collect();
    Ok(axum::Json(json!({"items": items})))
}

async fn version_document(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, version)): Path<(String, u32)>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let s = staff.0;
    let who = staff_actor(&s, addr, &headers);
    let (bytes, sha) = with(&state, move |svc| {
        visible(svc, &s, &id)?;
        svc.version_document_read(&id, version, &who)
    })
    .await?;
    Ok(pdf_response(bytes, &sha, &format!("agreement-v{version}.pdf")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    from: u32,
    to: u32,
}

async fn diff(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let q: DiffQuery = serde_urlencoded_query(uri.query().unwrap_or(""))?;
    let changes = with(&state, move |svc| {
        visible(svc, &s, &id)?;
        svc.diff(&id, q.from, q.to)
    })
    .await?;
    Ok(axum::Json(json!({"from": q.from, "to": q.to, "changes": changes})))
}

async fn send(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let who = staff_actor(&s, addr, &headers);
    Ok(axum::Json(
        with(&state, move |svc| {
            visible(svc, &s, &id)?;
            let a = svc.send(&id, &who)?;
            svc.flush_outbox_of(&id)?;
            view(svc, &a)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

/// A state change with a `{reason}` body, after the caller's role was checked.
async fn with_reason(
    state: AppState,
    who: crate::app::service::Actor,
    id: String,
    body: Bytes,
    op: fn(&Service, &str, &str, &crate::app::service::Actor) -> Result<Agreement, ServiceError>,
) -> Result<axum::Json<Value>, ApiError> {
    let Reason { reason } = json_body(&body)?;
    Ok(axum::Json(with(&state, move |svc| view(svc, &op(svc, &id, &reason, &who)?)).await?))
}

async fn approve(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let who = actor(staff.who.clone(), Some(addr), &headers);
    with_reason(state, who, id, body, Service::approve).await
}

async fn void(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let who = actor(staff.who.clone(), Some(addr), &headers);
    with_reason(state, who, id, body, Service::void).await
}

async fn revise(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(with(&state, move |svc| view(svc, &svc.revise(&id, &who)?)).await?))
}

async fn resend(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, signer)): Path<(String, String)>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(
        with(&state, move |svc| {
            let a = svc.resend(&id, &signer, &who)?;
            svc.flush_outbox_of(&id)?;
            view(svc, &a)
        })
        .await?,
    ))
}

async fn update_signer(
    staff: Staff,
    State(state): State<AppState>,
    Path((id, signer)): Path<(String, String)>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let patch: SignerPatch = json_body(&body)?;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(
        with(&state, move |svc| {
            let a = svc.update_signer(&id, &signer, patch, &who)?;
            svc.flush_outbox_of(&id)?;
            view(svc, &a)
        })
        .await?,
    ))
}

async fn audit(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let events = with(&state, move |svc| svc.audit(&id)).await?;
    Ok(axum::Json(json!({"items": events})))
}

async fn access_log(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let events = with(&state, move |svc| svc.access_log(&id)).await?;
    let items: Vec<Value> = events.iter().map(|e| json!({"time": e.time, "who": e.actor, "ip": e.ip, "user_agent": e.user_agent, "document_sha256": e.document_sha256, "detail": e.detail})).collect();
    Ok(axum::Json(json!({"items": items})))
}

async fn chain(
    _staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let c = with(&state, move |svc| svc.chain(&id)).await?;
    Ok(axum::Json(serde_json::to_value(c).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Terminate {
    date: String,
    reason: String,
}

async fn terminate(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let t: Terminate = json_body(&body)?;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(with(&state, move |svc| view(svc, &svc.terminate(&id, &t.date, &t.reason, &who)?)).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Certify {
    method: String,
    date: String,
    certified_by: String,
    protections: Option<String>,
}

async fn return_or_destroy(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let c: Certify = json_body(&body)?;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(
        with(&state, move |svc| {
            view(
                svc,
                &svc.certify_disposition(&id, &c.method, &c.date, &c.certified_by, c.protections.as_deref(), &who)?,
            )
        })
        .await?,
    ))
}

async fn dispose(
    staff: Staff,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let s = &staff.0;
    let who = staff_actor(s, addr, &headers);
    Ok(axum::Json(with(&state, move |svc| view(svc, &svc.dispose(&id, &who)?)).await?))
}

async fn verify(
    _staff: Staff,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    check_pdf_type(&headers)?;
    let v = state.service.clone().verify_bounded(body, true).await?;
    let mut out = serde_json::to_value(&v).unwrap_or_default();
    if !v.matched {
        // Staff only: a vendor-provided copy on file is named as such, never as a match.
        let sha = v.sha256.clone();
        if let Some(c) = with(&state, move |svc| svc.vendor_copy(&sha)).await? {
            out["vendor_copy"] = serde_json::to_value(c).unwrap_or_default();
        }
    }
    Ok(axum::Json(out))
}

/// Verify takes `Content-Type: application/pdf` (or none).
pub fn check_pdf_type(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(t) if t.starts_with("application/pdf") || t.starts_with("application/octet-stream") => Ok(()),
        Some(t) => Err(ApiError::BadRequest(format!("send the PDF bytes with Content-Type: application/pdf, not {t}"))),
    }
}

async fn retention(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let rows = with(&state, |svc| svc.retention_report()).await?;
    Ok(axum::Json(json!({"items": rows})))
}

async fn list_keys(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let keys = with(&state, |svc| svc.api_keys()).await?;
    Ok(axum::Json(json!({"items": keys})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    /// RFC 3339 date or date-time is overkill here: unix seconds.
    expires_at: Option<u64>,
}

async fn create_key(
    staff: Staff,
    State(state): State<AppState>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let s = staff.0;
    let ip = staff_actor(&s, addr, &headers).ip;
    let k: NewKey = json_body(&body)?;
    let Some(role) = Role::parse(&k.role) else {
        return Err(ApiError::Unprocessable {
            code: "invalid_field",
            message: "/role: must be sales, legal, vendor_manager or admin".into(),
            findings: vec![crate::domain::findings::Finding::field(
                "/role",
                "must be sales, legal, vendor_manager or admin",
            )],
        });
    };
    let (key, rec) = with(&state, move |svc| svc.create_api_key(&k.name, role, k.expires_at, &s.who, &ip)).await?;
    let mut v = serde_json::to_value(crate::staff::KeyInfo::from(&rec)).unwrap_or_default();
    v["key"] = Value::String(key);
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn revoke_key(
    staff: Staff,
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    ConnectInfo(addr): Conn,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    let s = staff.0;
    let ip = staff_actor(&s, addr, &headers).ip;
    let rec = with(&state, move |svc| svc.revoke_api_key(&key_id, &s.who, &ip)).await?;
    Ok(axum::Json(serde_json::to_value(crate::staff::KeyInfo::from(&rec)).unwrap_or_default()))
}

/// Verifies every audit chain in the running server's store (what `countersign audit verify`
/// asks for when the server holds the data directory).
async fn audit_verify(_staff: Staff, State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let result = with(&state, |svc| Ok(crate::app::verify_chains(svc.store.as_ref()))).await?;
    Ok(axum::Json(match result {
        Ok((chains, events)) => json!({"ok": true, "chains": chains, "events": events}),
        Err(msg) => json!({"ok": false, "break": msg.to_string()}),
    }))
}

/// A consistent snapshot: taken under the service's write lock, so no change lands mid-dump.
async fn backup(_staff: Staff, State(state): State<AppState>) -> Result<Response, ApiError> {
    let bytes = with(&state, |svc| {
        let _g = svc.write();
        let mut out = Vec::new();
        svc.store.dump(&mut out)?;
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], bytes).into_response())
}

/// `GET /api/v1/openapi.json`: public (see [`PUBLIC`]), so it takes no [`Staff`].
async fn openapi() -> axum::Json<Value> {
    axum::Json(openapi_document())
}

/// The OpenAPI 3.1 description, generated from [`ROUTES`].
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if name == "version" {"integer"} else {"string"}}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method.to_lowercase(), r.path),
            "security": if is_public(r.method, r.path) { json!([]) } else { json!([{"bearer": []}]) },
            "x-roles": r.roles.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
            "parameters": params,
            "responses": {
                r.ok.0.to_string(): {"description": r.ok.1},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"$ref": "#/components/responses/Error"},
                "409": {"$ref": "#/components/responses/Error"},
                "422": {"$ref": "#/components/responses/Error"},
                "429": {"$ref": "#/components/responses/Error"},
            },
        });
        match r.body {
            Body::None => {}
            Body::Intake => {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Intake"}}}})
            }
            Body::Json(shape) => {
                op["requestBody"] = json!({"required": true, "description": shape, "content": {"application/json": {"schema": {"type": "object"}}}})
            }
            Body::Pdf => {
                op["requestBody"] = json!({"required": true, "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}})
            }
        }
        let path = format!("/api/v1{}", r.path);
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Countersign API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "HIPAA BAAs, DUAs and state addenda from intake to countersigned archive. Every route but this description needs an API key (Authorization: Bearer); x-roles lists the roles allowed."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Finding": {"type": "object", "required": ["level", "code", "message"], "properties": {
                    "level": {"enum": ["error", "needs_approval", "advisory"]}, "code": {"type": "string"},
                    "pointer": {"type": "string", "description": "JSON pointer into the intake"},
                    "element": {"type": "string"}, "citation": {"type": "string"}, "message": {"type": "string"}}},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}}}}}},
                "Intake": {"type": "object", "description": "See examples/intake/ and the README", "required": ["kind"], "properties": {"kind": {"enum": ["baa", "dua"]}}},
            },
            "responses": {
                "Unauthorized": {"description": "missing, invalid, revoked or expired key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Forbidden": {"description": "the key's role may not do this", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "Error": {"description": "see the error code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    })
}
