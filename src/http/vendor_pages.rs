//! The vendor register's web pages (issue 16): the vendor list with filters and the figures of
//! the executive report, a vendor's page with every section, and the role questionnaire.
//! Server-rendered, no JavaScript, in the staff web app's layout; every state-changing form
//! carries the session's CSRF token ([`Viewer::form`]). Uploads go through the API.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tera::{Context, Tera};

use super::error::ApiError;
use super::web::TemplateError;
use super::web::{Viewer, message};
use super::{AppState, actor, blocking};
use crate::app::service::{Actor, ServiceError};
use crate::app::vendors::VendorQuery;
use crate::domain::vendor::{AnswersInput, Role as VendorRole, Tier};
use crate::staff::Role;

const FLAGS: [(&str, &str); 7] = [
    ("missing_agreement", "Missing BAA or DUA"),
    ("reassessment_due", "Reassessment due"),
    ("soc2_stale", "SOC 2 older than 12 months"),
    ("document_expired", "Expired document"),
    ("document_expiring", "Document expiring"),
    ("finding_overdue", "Overdue finding"),
    ("subcontractor_unconfirmed", "Unconfirmed subcontractor BAA"),
];

fn tera() -> Result<&'static Tera, TemplateError> {
    static T: OnceLock<Result<Tera, TemplateError>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = crate::render::html::tera();
        for (n, s) in [
            ("layout.html.tera", include_str!("../../templates/web/app/layout.html.tera")),
            ("vendors.html.tera", include_str!("../../templates/web/app/vendors.html.tera")),
            ("vendor.html.tera", include_str!("../../templates/web/app/vendor.html.tera")),
            ("vendor_edit.html.tera", include_str!("../../templates/web/app/vendor_edit.html.tera")),
            ("vendor_new.html.tera", include_str!("../../templates/web/app/vendor_new.html.tera")),
        ] {
            t.add_raw_template(n, s).map_err(|e| TemplateError::WebPage { name: n, reason: e.to_string() })?;
        }
        Ok(t)
    })
    .as_ref()
    .map_err(Clone::clone)
}

pub(crate) fn render(viewer: &Viewer, name: &str, mut ctx: Context, status: StatusCode) -> Response {
    ctx.insert("me", &viewer.me());
    ctx.insert("nav", "vendors");
    let page = |t: &Tera| {
        t.render(name, &ctx).map_err(|e| TemplateError::Render { name: name.to_string(), reason: format!("{e:?}") })
    };
    match tera().and_then(page) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::Internal(e.to_string()).into_response(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vendors", get(list))
        .route("/vendor-report.pdf", get(report_pdf))
        .route("/vendor-report.csv", get(report_csv))
        .route("/vendors/{id}", get(page))
        .route("/vendors/{id}/questionnaire", axum::routing::post(questionnaire))
}

fn problem(state: &AppState, viewer: &Viewer, e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound => {
            message(state, Some(viewer), StatusCode::NOT_FOUND, "Not found", "There is no such vendor.")
        }
        ServiceError::Field(p, m) => message(
            state,
            Some(viewer),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not a filter of this list",
            &format!("{}: {m}", p.trim_start_matches('?')),
        ),
        e => ApiError::from(e).into_response(),
    }
}

async fn list(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> Response {
    let mut q: VendorQuery = axum::extract::Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    // Empty selects mean "any".
    for f in [&mut q.q, &mut q.tier, &mut q.determination, &mut q.flag, &mut q.baa_status, &mut q.figure] {
        if f.as_deref().is_some_and(|s| s.trim().is_empty()) {
            *f = None;
        }
    }
    let svc = state.service.clone();
    let q2 = q.clone();
    let loaded = blocking(move || Ok::<_, ServiceError>((svc.list_vendors(&q2)?, svc.vendor_report()?))).await;
    let (page, report) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return problem(&state, &viewer, e),
        Err(e) => return e.into_response(),
    };
    let items: Vec<_> = page
        .items
        .iter()
        .map(|x| {
            json!({
                "id": x.vendor.id, "name": x.vendor.legal_name,
                "determination": x.vendor.determination.as_ref().map_or("Not determined", |d| d.role.label()),
                "tier": x.standing.tier.as_str(), "baa_status": x.standing.baa_status.replace('_', " "),
                "next": x.standing.next_reassessment,
                "flags": if x.standing.flags.is_empty() { "—".to_string() } else { x.standing.flags.len().to_string() },
            })
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("title", "Vendors");
    ctx.insert("can_add", &viewer.who.as_ref().is_some_and(|w| super::routes::allows(w.role, "GET", "/vendors/new")));
    ctx.insert("items", &items);
    ctx.insert("total", &page.total);
    ctx.insert("report", &report);
    ctx.insert(
        "q",
        &json!({"q": q.q.clone().unwrap_or_default(), "tier": q.tier.clone().unwrap_or_default(),
                "determination": q.determination.clone().unwrap_or_default(), "flag": q.flag.clone().unwrap_or_default()}),
    );
    ctx.insert("tiers", &Tier::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>());
    let mut dets: Vec<(&str, &str)> = VendorRole::ALL.iter().map(|r| (r.as_str(), r.label())).collect();
    dets.push(("undetermined", "Not determined"));
    ctx.insert("determinations", &dets);
    ctx.insert("flags", &FLAGS);
    let next = page.next_cursor.map(|c| {
        let mut u = format!("/vendors?cursor={c}");
        for (k, v) in [
            ("q", &q.q),
            ("tier", &q.tier),
            ("determination", &q.determination),
            ("flag", &q.flag),
            ("figure", &q.figure),
        ] {
            if let Some(v) = v {
                u.push_str(&format!("&{k}={}", super::web::encode(v)));
            }
        }
        u
    });
    ctx.insert("next", &next);
    ctx.insert("figure", &q.figure.as_deref().map(|f| json!({"name": f, "label": figure_label(f)})));
    render(&viewer, "vendors.html.tera", ctx, StatusCode::OK)
}

/// The executive report for a signed-in person (the API's needs a key).
async fn report_pdf(State(state): State<AppState>, viewer: Viewer) -> Response {
    let svc = state.service.clone();
    match blocking(move || svc.vendor_report_pdf()).await {
        Ok(Ok(pdf)) => (
            [
                (axum::http::header::CONTENT_TYPE, "application/pdf"),
                (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"vendor-report.pdf\""),
            ],
            pdf,
        )
            .into_response(),
        Ok(Err(e)) => problem(&state, &viewer, e),
        Err(e) => e.into_response(),
    }
}

async fn report_csv(State(state): State<AppState>, viewer: Viewer) -> Response {
    let svc = state.service.clone();
    match blocking(move || svc.vendor_report().map(|r| r.to_csv())).await {
        Ok(Ok(csv)) => (
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"vendor-report.csv\""),
            ],
            csv,
        )
            .into_response(),
        Ok(Err(e)) => problem(&state, &viewer, e),
        Err(e) => e.into_response(),
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>, uri: Uri) -> Response {
    // `?done=<section>` after a form succeeded (303 back here).
    let done = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("done=")))
        .and_then(super::vendor_forms::done_message);
    show(state, viewer, id, HashMap::new(), None, StatusCode::OK, done).await
}

async fn show(
    state: AppState,
    viewer: Viewer,
    id: String,
    answers: HashMap<String, String>,
    problem_text: Option<String>,
    status: StatusCode,
    done: Option<&str>,
) -> Response {
    let svc = state.service.clone();
    let loaded = blocking(move || Ok::<_, ServiceError>((svc.vendor(&id)?, svc.vendor_audit(&id)?.0))).await;
    let (view, events) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return problem(&state, &viewer, e),
        Err(e) => return e.into_response(),
    };
    let v = &view.vendor;
    let can = viewer.who.as_ref().is_some_and(|w| super::routes::allows(w.role, "POST", "/vendors/{id}/questionnaire"));
    let mut ctx = Context::new();
    ctx.insert("title", &v.legal_name);
    ctx.insert("v", v);
    ctx.insert("s", &view.standing);
    ctx.insert("terms", &view.agreement_terms);
    ctx.insert("can_determine", &can);
    let may = |roles: &[Role]| viewer.who.as_ref().is_some_and(|w| roles.contains(&w.role));
    let sec = |s: &str| super::vendor_forms::section_roles(s).is_some_and(may);
    ctx.insert("done", &done);
    ctx.insert(
        "can",
        &json!({
            "edit": sec("identity"), "link": sec("link"), "document": sec("document"), "paper": sec("paper"),
            "download": may(super::api::allowed("GET", "/vendors/{id}/files/{sha256}")),
            "draft": may(super::api::allowed("POST", "/agreements")),
        }),
    );
    ctx.insert("role_label", &v.determination.as_ref().map(|d| d.role.label()));
    ctx.insert(
        "answered_on",
        &v.determination.as_ref().map(|d| crate::domain::time::long_date(d.answered_at)).unwrap_or_default(),
    );
    let locations: Vec<String> = v
        .data_flows
        .locations
        .iter()
        .map(|l| match &l.state {
            Some(s) => format!("{}-{s}", l.country),
            None => l.country.clone(),
        })
        .collect();
    ctx.insert("locations", &locations);
    let a = |k: &str| answers.get(k).is_some_and(|x| x == "yes");
    let prior = v.determination.as_ref().map(|d| d.answers);
    ctx.insert(
        "answers",
        &json!({
            "handles_phi": answers.get("handles_phi").cloned().unwrap_or_else(|| prior.map_or(String::new(), |p| if p.handles_phi { "yes".into() } else { "no".into() })),
            "transmission_only": a("transmission_only") || (answers.is_empty() && prior.is_some_and(|p| p.transmission_only)),
            "deidentified_only": a("deidentified_only") || (answers.is_empty() && prior.is_some_and(|p| p.deidentified_only)),
            "limited_data_set_only": a("limited_data_set_only") || (answers.is_empty() && prior.is_some_and(|p| p.limited_data_set_only)),
            "we_are_business_associate": a("we_are_business_associate") || (answers.is_empty() && prior.is_some_and(|p| p.we_are_business_associate)),
        }),
    );
    ctx.insert("problem", &problem_text);
    let events: Vec<_> = events
        .iter()
        .rev()
        .map(|e| json!({"when": crate::domain::time::rfc3339(e.at), "action": e.action, "who": e.who}))
        .collect();
    ctx.insert("events", &events);
    render(&viewer, "vendor.html.tera", ctx, status)
}

async fn questionnaire(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (w, form) = match viewer.form(f) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let yes = |k: &str| form.get(k).is_some_and(|x| x == "yes");
    let input = AnswersInput {
        handles_phi: form.get("handles_phi").map(|x| x == "yes"),
        transmission_only: yes("transmission_only"),
        deidentified_only: yes("deidentified_only"),
        limited_data_set_only: yes("limited_data_set_only"),
        we_are_business_associate: yes("we_are_business_associate"),
    };
    let who: Actor = actor(w.person.email.clone(), None, &axum::http::HeaderMap::new());
    let svc = state.service.clone();
    let vid = id.clone();
    match blocking(move || svc.answer_questionnaire(&vid, input, &who)).await {
        Ok(Ok(_)) => Redirect::to(&format!("/vendors/{id}#role")).into_response(),
        Ok(Err(ServiceError::Invalid(findings))) => {
            let text = findings
                .iter()
                .map(|f| match f.pointer.as_deref() {
                    Some("/handles_phi") => "Answer whether the vendor handles PHI for us.".to_string(),
                    _ => "Tick at most one of the \"only\" answers.".to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ");
            show(state, viewer, id, form, Some(text), StatusCode::UNPROCESSABLE_ENTITY, None).await
        }
        Ok(Err(e)) => problem(&state, &viewer, e),
        Err(e) => e.into_response(),
    }
}

/// What each figure of the executive report is called on the dashboard.
fn figure_label(name: &str) -> String {
    if let Some(t) = name.strip_prefix("tier_") {
        return format!("{t} tier");
    }
    if let Some(d) = name.strip_prefix("determination_") {
        return VendorRole::ALL
            .iter()
            .find(|r| r.as_str() == d)
            .map_or("Not determined".to_string(), |r| r.label().to_string());
    }
    match name {
        "vendors" => "vendors in the register",
        "business_associates" => "business associates and subcontractors",
        "business_associates_without_baa" => "business associates without an executed BAA",
        "overdue_reassessments" => "reassessments due",
        "overdue_findings" => "overdue findings",
        "expiring_documents" => "expired or expiring documents",
        "renewing_90_days" => "agreements renewing in 90 days",
        "unconfirmed_subcontractors" => "subcontractors without a confirmed downstream BAA",
        other => other,
    }
    .to_string()
}

/// The vendor list filtered to what a figure counts.
fn figure_link(name: &str) -> String {
    if let Some(t) = name.strip_prefix("tier_") {
        format!("/vendors?tier={t}")
    } else if let Some(d) = name.strip_prefix("determination_") {
        format!("/vendors?determination={d}")
    } else if name == "vendors" {
        "/vendors".to_string()
    } else {
        format!("/vendors?figure={name}")
    }
}

/// The home page's register figures for a person whose role reads vendors (`None` for
/// others): the executive report's own figures ([`crate::domain::vendor::Report::figures`]),
/// each linking to the vendor list filtered to what it counts, and the overdue items.
pub(crate) async fn dashboard(state: &AppState, viewer: &Viewer) -> Result<Option<serde_json::Value>, ApiError> {
    let readable = super::api::allowed("GET", "/vendors");
    if !viewer.who.as_ref().is_some_and(|w| readable.contains(&w.role)) {
        return Ok(None);
    }
    let svc = state.service.clone();
    let (report, all) = blocking(move || Ok::<_, ServiceError>((svc.vendor_report()?, svc.all_vendors()?))).await??;
    let figure = |(name, n): (String, usize)| json!({"name": name, "n": n, "label": figure_label(&name), "href": figure_link(&name)});
    let figures = report.figures();
    let group = |pred: &dyn Fn(&str) -> bool| -> Vec<serde_json::Value> {
        figures.iter().filter(|(k, _)| pred(k)).cloned().map(figure).collect()
    };
    let overdue: Vec<_> = all
        .iter()
        .flat_map(|x| {
            x.standing
                .flags
                .iter()
                .filter(|f| matches!(f.code, "reassessment_due" | "finding_overdue"))
                .map(move |f| json!({"id": x.vendor.id, "name": x.vendor.legal_name, "message": f.message, "since": f.since}))
        })
        .take(25)
        .collect();
    Ok(Some(json!({
        "as_of": report.as_of,
        "groups": [
            group(&|k| crate::domain::vendor::FIGURES.contains(&k) && k != "business_associates"),
            group(&|k| k == "vendors" || k == "business_associates"),
            group(&|k| k.starts_with("tier_")),
            group(&|k| k.starts_with("determination_")),
        ],
        "overdue": overdue,
    })))
}

/// The vendors an agreement belongs to, as (id, legal name), for the agreement page; empty
/// for a role that does not read vendors (or when the register cannot be read).
pub(crate) async fn linked_vendors(state: &AppState, role: Role, agreement: String) -> Vec<(String, String)> {
    if !super::api::allowed("GET", "/vendors").contains(&role) {
        return Vec::new();
    }
    let svc = state.service.clone();
    let q = VendorQuery { agreement: Some(agreement), ..VendorQuery::default() };
    match blocking(move || svc.list_vendors(&q)).await {
        Ok(Ok(page)) => page.items.into_iter().map(|x| (x.vendor.id, x.vendor.legal_name)).collect(),
        _ => Vec::new(),
    }
}
