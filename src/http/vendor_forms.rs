//! The vendor register's edit forms and uploads (issue 16): one page per section of the
//! record (`/vendors/{id}/edit/{section}`), each a plain server-rendered form with the session's
//! CSRF token, carried out by the same application-layer call as the API (`PATCH
//! /api/v1/vendors/{id}`, the uploads, the agreement link) under the person's identity.
//!
//! Each input is named by the JSON pointer the application layer reports problems at
//! (`/privacy_contact/email`, `/findings/1/due`), so every finding is shown beside its own
//! input (`aria-invalid` + `aria-describedby`); list inputs written one item a line
//! (`/data_flows/systems`) take their items' findings ("item 2: …"). A refused form is shown
//! again with what was typed, 422, and nothing is written; success is a 303 back to the vendor
//! page with a notice. Roles are the API route's ([`super::api::allowed`]); anyone else gets
//! the 403 page, and a form without its token gets the 403 page and changes nothing.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use tera::Context;

use super::api::allowed;
use super::error::ApiError;
use super::web::{Viewer, message};
use super::{AppState, blocking};
use crate::app::service::{Actor, ServiceError};
use crate::app::vendors::MAX_UPLOAD;
use crate::domain::findings::Finding;
use crate::domain::vendor::{
    Contact, DataFlows, DocKind, Location, OpenFinding, OverrideInput, PaperTerms, Subcontractor, Tier, Vendor,
    VendorInput, Volume,
};
use crate::staff::Role;

/// Room for the form's other fields around the largest file.
const FORM_SLACK: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vendors/{id}/edit/{section}", get(edit_page).post(save))
        .route(
            "/vendors/{id}/edit/document",
            get(document_page).post(upload_document).layer(DefaultBodyLimit::max(MAX_UPLOAD + FORM_SLACK)),
        )
        .route(
            "/vendors/{id}/edit/paper",
            get(paper_page).post(upload_paper).layer(DefaultBodyLimit::max(MAX_UPLOAD + FORM_SLACK)),
        )
        .route("/vendors/{id}/files/{sha256}", get(download))
        .route("/vendors/new", get(new_page).post(create))
}

/// The add-a-vendor page (roles of the API's `POST /vendors`, checked by the route layer).
async fn new_page(viewer: Viewer) -> Response {
    new_form(&viewer, "", None, StatusCode::OK)
}

fn new_form(viewer: &Viewer, name: &str, error: Option<String>, status: StatusCode) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", "Add a vendor");
    ctx.insert("name", name);
    ctx.insert("error", &error);
    super::vendor_pages::render(viewer, "vendor_new.html.tera", ctx, status)
}

/// Adds a vendor with its legal name (the API's rule: empty is refused at `/legal_name`), then
/// shows its page, where the questionnaire and the other sections wait.
async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (w, form) = match viewer.form(f) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let actor = who(&viewer, &w, &headers);
    let name = form.get("/legal_name").cloned().unwrap_or_default();
    let svc = state.service.clone();
    let input = crate::domain::vendor::VendorInput { legal_name: Some(name.clone()), ..Default::default() };
    match blocking(move || svc.create_vendor(input, &actor)).await {
        Ok(Ok(v)) => Redirect::to(&format!("/vendors/{}?done=created", v.id)).into_response(),
        Ok(Err(e)) => match field_error(e) {
            Ok(findings) => {
                let why =
                    findings.first().map_or_else(|| "enter the vendor's legal name".to_string(), |f| f.message.clone());
                new_form(&viewer, &name, Some(why), StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(e) => ApiError::from(e).into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// The sections with a form, their page title, and the API route whose roles apply.
const SECTIONS: [(&str, &str, &str, &str); 8] = [
    ("identity", "Edit identity", "PATCH", "/vendors/{id}"),
    ("flows", "Edit data flows", "PATCH", "/vendors/{id}"),
    ("findings", "Edit due-diligence findings", "PATCH", "/vendors/{id}"),
    ("subcontractors", "Edit subcontractors", "PATCH", "/vendors/{id}"),
    ("risk", "Risk tier and reassessment", "PATCH", "/vendors/{id}"),
    ("link", "Link an existing agreement", "POST", "/vendors/{id}/agreements"),
    ("document", "Upload a due-diligence document", "POST", "/vendors/{id}/documents"),
    ("paper", "Upload an agreement on the vendor's paper", "POST", "/vendors/{id}/papers"),
];

/// The person, if their role may use this section's form: the route layer admitted the roles of
/// `PATCH /vendors/{id}` (`http::routes`); the section's own API route decides here too, with the
/// 403 page otherwise.
fn in_section<'a>(
    state: &AppState,
    viewer: &'a Viewer,
    roles: &[Role],
) -> Result<&'a crate::people::SignedIn, Box<Response>> {
    let w = viewer.signed_in()?;
    if roles.contains(&w.role) { Ok(w) } else { Err(Box::new(super::web::forbidden(state, viewer))) }
}

/// The roles that may use a section's form (the API route's), if the section exists.
pub(crate) fn section_roles(section: &str) -> Option<&'static [Role]> {
    SECTIONS.iter().find(|s| s.0 == section).map(|s| allowed(s.2, s.3))
}

/// What the vendor page says after a form succeeded (`?done=<section>`).
pub(crate) fn done_message(section: &str) -> Option<&'static str> {
    Some(match section {
        "created" => "Added: the vendor is in the register. Answer the questionnaire below to record its role.",
        "identity" => "Saved: the vendor's identity is updated.",
        "flows" => "Saved: the data flows are updated, and the risk tier with them.",
        "findings" => "Saved: the due-diligence findings are updated.",
        "subcontractors" => "Saved: the subcontractors are updated.",
        "risk" => "Saved: the risk tier and reassessment are updated.",
        "link" => "Linked: the agreement is listed with this vendor.",
        "document" => "Uploaded: the document is stored with the vendor's record.",
        "paper" => "Uploaded: the vendor-provided agreement is stored and its obligations are listed.",
        _ => return None,
    })
}

/// One input, named by its pointer.
#[derive(Serialize, Default)]
struct Input {
    name: String,
    id: String,
    /// The ids of the error and hint paragraphs (`e-…`, `h-…`).
    eid: String,
    hid: String,
    label: String,
    /// text, email, url, date, number, textarea, select, checkbox, file.
    kind: &'static str,
    value: String,
    checked: bool,
    hint: Option<String>,
    error: Option<String>,
    describedby: Option<String>,
    options: Vec<(String, String)>,
    /// The pointer the application layer reports this input's problems at.
    #[serde(skip)]
    pointer: String,
    /// One item a line: findings at `pointer/N/…` belong here.
    #[serde(skip)]
    list: bool,
}

#[derive(Serialize)]
struct Group {
    legend: Option<String>,
    inputs: Vec<Input>,
}

/// Builds inputs from the values shown (the record's, or what was posted).
struct Values<'a>(&'a HashMap<String, String>);

impl Values<'_> {
    fn get(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn input(&self, name: &str, label: &str, kind: &'static str) -> Input {
        let id = format!("f-{}", name.trim_start_matches(['/', '?']).replace('/', "-"));
        Input {
            name: name.to_string(),
            eid: format!("e{}", &id[1..]),
            hid: format!("h{}", &id[1..]),
            id,
            label: label.to_string(),
            kind,
            value: if kind == "file" { String::new() } else { self.get(name) },
            checked: self.get(name) == "yes",
            pointer: name.to_string(),
            ..Input::default()
        }
    }

    fn hinted(&self, name: &str, label: &str, kind: &'static str, hint: &str) -> Input {
        Input { hint: Some(hint.to_string()), ..self.input(name, label, kind) }
    }

    fn list(&self, name: &str, label: &str, hint: &str) -> Input {
        Input { list: true, ..self.hinted(name, label, "textarea", hint) }
    }

    fn select(&self, name: &str, label: &str, options: &[(&str, &str)]) -> Input {
        Input {
            options: options.iter().map(|(v, l)| (v.to_string(), l.to_string())).collect(),
            ..self.input(name, label, "select")
        }
    }
}

/// The number of rows of a repeating group (`/findings/N/…`) among the values.
fn rows(values: &HashMap<String, String>, list: &str) -> usize {
    let prefix = format!("{list}/");
    values
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix)?.split('/').next()?.parse::<usize>().ok())
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
        .min(200)
}

fn yes(b: bool) -> String {
    if b { "yes".into() } else { String::new() }
}

/// The record's values as the forms show them.
fn values_of(v: &Vendor) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut put = |k: &str, s: String| {
        m.insert(k.to_string(), s);
    };
    put("/legal_name", v.legal_name.clone());
    put("/other_names", v.other_names.join("\n"));
    put("/address", v.address.clone().unwrap_or_default());
    put("/website", v.website.clone().unwrap_or_default());
    put("/account_owner", v.account_owner.clone().unwrap_or_default());
    for (p, c) in [("/privacy_contact", &v.privacy_contact), ("/security_contact", &v.security_contact)] {
        put(&format!("{p}/name"), c.as_ref().map(|c| c.name.clone()).unwrap_or_default());
        put(&format!("{p}/email"), c.as_ref().map(|c| c.email.clone()).unwrap_or_default());
    }
    let f = &v.data_flows;
    put("/data_flows/phi_categories", f.phi_categories.join("\n"));
    put("/data_flows/systems", f.systems.join("\n"));
    put(
        "/data_flows/locations",
        f.locations
            .iter()
            .map(|l| match &l.state {
                Some(s) => format!("{}-{s}", l.country),
                None => l.country.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    put(
        "/data_flows/volume",
        f.volume
            .and_then(|x| serde_json::to_value(x).ok())
            .and_then(|x| x.as_str().map(String::from))
            .unwrap_or_default(),
    );
    put("/data_flows/limited_data_set", yes(f.limited_data_set));
    put("/data_flows/part2", yes(f.part2));
    for (i, x) in v.findings.iter().enumerate() {
        put(&format!("/findings/{i}/title"), x.title.clone());
        put(&format!("/findings/{i}/owner"), x.owner.clone());
        put(&format!("/findings/{i}/due"), x.due.clone().unwrap_or_default());
        put(&format!("/findings/{i}/closed"), yes(x.closed));
    }
    for (i, s) in v.subcontractors.iter().enumerate() {
        put(&format!("/subcontractors/{i}/name"), s.name.clone());
        put(&format!("/subcontractors/{i}/services"), s.services.clone().unwrap_or_default());
        put(&format!("/subcontractors/{i}/downstream_baa_confirmed"), yes(s.downstream_baa_confirmed));
    }
    if let Some(o) = &v.tier_override {
        put("/tier_override/tier", o.tier.as_str().to_string());
        put("/tier_override/reason", o.reason.clone());
    }
    put("/last_assessed", v.last_assessed.clone().unwrap_or_default());
    put("kind", String::new());
    m
}

/// A section's inputs, grouped. `extra_row`: one blank row to add to a repeating group.
fn groups(section: &str, values: &HashMap<String, String>, extra_row: bool) -> Vec<Group> {
    let x = Values(values);
    let one = |inputs: Vec<Input>| vec![Group { legend: None, inputs }];
    match section {
        "identity" => vec![
            Group {
                legend: None,
                inputs: vec![
                    x.input("/legal_name", "Legal name", "text"),
                    x.list("/other_names", "Other names", "One a line (trade names, former names)."),
                    x.input("/address", "Address", "textarea"),
                    x.hinted("/website", "Website", "url", "An https:// address."),
                    x.hinted("/account_owner", "Account owner", "email", "The staff person who owns the relationship."),
                ],
            },
            Group {
                legend: Some("Privacy contact at the vendor".into()),
                inputs: vec![
                    x.input("/privacy_contact/name", "Name", "text"),
                    x.input("/privacy_contact/email", "Email", "email"),
                ],
            },
            Group {
                legend: Some("Security contact at the vendor".into()),
                inputs: vec![
                    x.input("/security_contact/name", "Name", "text"),
                    x.input("/security_contact/email", "Email", "email"),
                ],
            },
        ],
        "flows" => one(vec![
            x.list(
                "/data_flows/phi_categories",
                "PHI categories",
                "One a line, e.g. demographics, diagnoses, mental_health, substance_use.",
            ),
            x.list("/data_flows/systems", "Systems", "One a line: the systems the PHI passes through."),
            x.list(
                "/data_flows/locations",
                "Data locations",
                "One a line: a country code, or US and a state where a state law attaches (US-CA, DE).",
            ),
            x.select(
                "/data_flows/volume",
                "Volume",
                &[
                    ("", "Unknown"),
                    ("low", "Under 500 individuals a year"),
                    ("medium", "500 to 49,999 a year"),
                    ("high", "50,000 or more a year"),
                ],
            ),
            x.input("/data_flows/limited_data_set", "A limited data set is involved", "checkbox"),
            x.input("/data_flows/part2", "42 CFR Part 2 (substance use disorder) records are involved", "checkbox"),
        ]),
        "findings" => {
            let n = rows(values, "/findings") + usize::from(extra_row);
            (0..n)
                .map(|i| Group {
                    legend: Some(format!("Finding {}", i + 1)),
                    inputs: vec![
                        x.input(&format!("/findings/{i}/title"), "Finding", "text"),
                        x.hinted(&format!("/findings/{i}/owner"), "Owner", "text", "Who closes it (name or email)."),
                        x.input(&format!("/findings/{i}/due"), "Due date", "date"),
                        x.input(&format!("/findings/{i}/closed"), "Closed", "checkbox"),
                        x.input(&format!("/findings/{i}/remove"), "Remove this finding", "checkbox"),
                    ],
                })
                .collect()
        }
        "subcontractors" => {
            let n = rows(values, "/subcontractors") + usize::from(extra_row);
            (0..n)
                .map(|i| Group {
                    legend: Some(format!("Subcontractor {}", i + 1)),
                    inputs: vec![
                        x.input(&format!("/subcontractors/{i}/name"), "Name", "text"),
                        x.input(&format!("/subcontractors/{i}/services"), "Services", "text"),
                        x.input(
                            &format!("/subcontractors/{i}/downstream_baa_confirmed"),
                            "Its downstream BAA is confirmed",
                            "checkbox",
                        ),
                        x.input(&format!("/subcontractors/{i}/remove"), "Remove this subcontractor", "checkbox"),
                    ],
                })
                .collect()
        }
        "risk" => vec![
            Group {
                legend: Some("Override the computed tier".into()),
                inputs: vec![
                    x.select(
                        "/tier_override/tier",
                        "Risk tier",
                        &[("", "No override (computed)"), ("high", "high"), ("medium", "medium"), ("low", "low")],
                    ),
                    x.hinted("/tier_override/reason", "Reason", "textarea", "Required with an override."),
                ],
            },
            Group {
                legend: None,
                inputs: vec![x.hinted(
                    "/last_assessed",
                    "Last reassessment completed",
                    "date",
                    "The next one falls due by the tier's interval from this date.",
                )],
            },
        ],
        "link" => one(vec![x.hinted(
            "/agreement_id",
            "Agreement ID",
            "text",
            "The ID shown on the agreement's page (starts with agr_).",
        )]),
        "document" => one(vec![
            x.select(
                "kind",
                "Kind of document",
                &[
                    ("", "Choose…"),
                    ("soc2_type2", DocKind::Soc2Type2.label()),
                    ("hitrust", DocKind::Hitrust.label()),
                    ("iso27001", DocKind::Iso27001.label()),
                    ("pen_test_summary", DocKind::PenTestSummary.label()),
                    ("security_questionnaire", DocKind::SecurityQuestionnaire.label()),
                    ("insurance_certificate", DocKind::InsuranceCertificate.label()),
                ],
            ),
            x.input("issued", "Issued on", "date"),
            x.input("expires", "Expires on", "date"),
            Input { pointer: String::new(), ..x.hinted("file", "The file", "file", "At most 32 MB.") },
        ]),
        "paper" => one(vec![
            x.select(
                "kind",
                "Type",
                &[
                    ("", "Choose…"),
                    ("baa", "Business associate agreement"),
                    ("dua", "Data use agreement"),
                    ("subcontractor_baa", "Subcontractor BAA"),
                ],
            ),
            x.input("title", "Title", "text"),
            x.input("effective_date", "Effective date", "date"),
            x.hinted("term_months", "Term (months)", "number", "Leave blank when the agreement has no fixed term."),
            x.input("auto_renew", "Renews automatically", "checkbox"),
            x.hinted("notice_days", "Notice to stop a renewal (days)", "number", "30 when left blank."),
            x.hinted("breach_notice_days", "Breach notice within (days)", "number", "1–60 days."),
            x.select(
                "return_or_destroy",
                "At termination, PHI is",
                &[
                    ("", "Not stated"),
                    ("return", "Returned"),
                    ("destroy", "Destroyed"),
                    ("return_or_destroy", "Returned or destroyed"),
                ],
            ),
            Input {
                pointer: String::new(),
                ..x.hinted("file", "The executed agreement (PDF)", "file", "A PDF of at most 32 MB.")
            },
        ]),
        _ => Vec::new(),
    }
}

/// Puts each finding beside its input; returns the ones that have none.
fn place(groups: &mut [Group], findings: &[Finding]) -> Vec<String> {
    let mut loose = Vec::new();
    for f in findings {
        let p = f.pointer.clone().unwrap_or_default();
        let p = p.strip_prefix('?').map_or(p.clone(), str::to_string);
        let mut placed = false;
        for i in groups.iter_mut().flat_map(|g| g.inputs.iter_mut()) {
            let text = if i.pointer == p {
                Some(f.message.clone())
            } else if i.list
                && let Some(rest) = p.strip_prefix(&format!("{}/", i.pointer))
            {
                let n = rest.split('/').next().and_then(|n| n.parse::<usize>().ok()).map_or(0, |n| n + 1);
                Some(format!("item {n}: {}", f.message))
            } else {
                None
            };
            if let Some(t) = text {
                i.error = Some(match i.error.take() {
                    Some(e) => format!("{e}; {t}"),
                    None => t,
                });
                placed = true;
                break;
            }
        }
        if !placed {
            loose.push(if p.is_empty() { f.message.clone() } else { format!("{p}: {}", f.message) });
        }
    }
    for i in groups.iter_mut().flat_map(|g| g.inputs.iter_mut()) {
        let mut ids = Vec::new();
        if i.error.is_some() {
            ids.push(i.eid.clone());
        }
        if i.hint.is_some() {
            ids.push(i.hid.clone());
        }
        i.describedby = (!ids.is_empty()).then(|| ids.join(" "));
    }
    loose
}

fn section_title(section: &str) -> Option<&'static str> {
    SECTIONS.iter().find(|s| s.0 == section).map(|s| s.1)
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    viewer: &Viewer,
    v: &Vendor,
    section: &str,
    values: &HashMap<String, String>,
    findings: &[Finding],
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let mut gs = groups(section, values, status == StatusCode::OK);
    let loose = place(&mut gs, findings);
    let mut ctx = Context::new();
    let heading = section_title(section).unwrap_or("Edit");
    ctx.insert("title", &format!("{heading} — {}", v.legal_name));
    ctx.insert("heading", heading);
    ctx.insert("v", v);
    ctx.insert("section", section);
    ctx.insert("groups", &gs);
    ctx.insert("multipart", &matches!(section, "document" | "paper"));
    ctx.insert("action", &format!("/vendors/{}/edit/{section}", v.id));
    ctx.insert(
        "submit",
        match section {
            "document" | "paper" => "Upload",
            "link" => "Link the agreement",
            _ => "Save",
        },
    );
    ctx.insert("repeating", &matches!(section, "findings" | "subcontractors"));
    let problem =
        problem.or_else(|| (!findings.is_empty()).then(|| "Nothing was saved: fix the fields marked below.".into()));
    ctx.insert("problem", &problem);
    ctx.insert("loose", &loose);
    super::vendor_pages::render(viewer, "vendor_edit.html.tera", ctx, status)
}

fn not_found(state: &AppState, viewer: &Viewer) -> Response {
    message(state, Some(viewer), StatusCode::NOT_FOUND, "Not found", "There is no such vendor or form.")
}

fn who(viewer: &Viewer, w: &crate::people::SignedIn, headers: &HeaderMap) -> Actor {
    viewer.actor(&w.staff(), headers)
}

async fn load(state: &AppState, id: String) -> Result<Result<Vendor, ServiceError>, ApiError> {
    let svc = state.service.clone();
    blocking(move || svc.vendor(&id).map(|x| x.vendor)).await
}

async fn show(state: AppState, viewer: Viewer, id: String, section: &str) -> Response {
    let Some(roles) = section_roles(section) else { return not_found(&state, &viewer) };
    if let Err(r) = in_section(&state, &viewer, roles) {
        return *r;
    }
    match load(&state, id).await {
        Ok(Ok(v)) => {
            let values = if matches!(section, "document" | "paper" | "link") { HashMap::new() } else { values_of(&v) };
            form_page(&viewer, &v, section, &values, &[], None, StatusCode::OK)
        }
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn edit_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, section)): Path<(String, String)>,
) -> Response {
    show(state, viewer, id, &section).await
}

async fn document_page(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    show(state, viewer, id, "document").await
}

async fn paper_page(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    show(state, viewer, id, "paper").await
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

fn filled(s: Option<&String>) -> Option<String> {
    s.map(|x| x.trim().to_string()).filter(|x| !x.is_empty())
}

/// What the rows of a repeating group became: the input's index → the form's row.
type RowMap = Vec<(String, usize)>;

/// The posted form as the API's update, or findings of its own (a choice that is not one of
/// the options). Rows left blank or marked for removal are dropped.
fn input_of(section: &str, f: &HashMap<String, String>) -> Result<(VendorInput, RowMap), Vec<Finding>> {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let on = |k: &str| f.get(k).is_some_and(|x| x == "yes");
    let mut input = VendorInput::default();
    let mut map = Vec::new();
    let mut own = Vec::new();
    match section {
        "identity" => {
            input.legal_name = Some(get("/legal_name"));
            input.other_names = Some(lines(&get("/other_names")));
            input.address = filled(f.get("/address"));
            input.website = filled(f.get("/website"));
            input.account_owner = filled(f.get("/account_owner"));
            for (p, slot) in
                [("/privacy_contact", &mut input.privacy_contact), ("/security_contact", &mut input.security_contact)]
            {
                let (n, e) = (get(&format!("{p}/name")), get(&format!("{p}/email")));
                if !n.trim().is_empty() || !e.trim().is_empty() {
                    *slot = Some(Contact { name: n, email: e });
                }
            }
        }
        "flows" => {
            let volume = match get("/data_flows/volume").as_str() {
                "" => None,
                s => match serde_json::from_value::<Volume>(Value::String(s.into())) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        own.push(Finding::field("/data_flows/volume", "choose one of the listed bands"));
                        None
                    }
                },
            };
            let locations = get("/data_flows/locations")
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .map(|t| match t.split_once('-') {
                    Some((c, s)) => Location { country: c.into(), state: Some(s.into()) },
                    None => Location { country: t.into(), state: None },
                })
                .collect();
            input.data_flows = Some(DataFlows {
                phi_categories: get("/data_flows/phi_categories")
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect(),
                systems: lines(&get("/data_flows/systems")),
                locations,
                volume,
                limited_data_set: on("/data_flows/limited_data_set"),
                part2: on("/data_flows/part2"),
            });
        }
        "findings" => {
            let mut out = Vec::new();
            for i in 0..rows(f, "/findings") {
                let k = |n: &str| format!("/findings/{i}/{n}");
                let (title, owner, due) = (get(&k("title")), get(&k("owner")), get(&k("due")));
                if on(&k("remove")) || [&title, &owner, &due].iter().all(|x| x.trim().is_empty()) {
                    continue;
                }
                map.push((format!("/findings/{}/", out.len()), i));
                out.push(OpenFinding { title, owner, due: filled(Some(&due)), closed: on(&k("closed")) });
            }
            input.findings = Some(out);
        }
        "subcontractors" => {
            let mut out = Vec::new();
            for i in 0..rows(f, "/subcontractors") {
                let k = |n: &str| format!("/subcontractors/{i}/{n}");
                let (name, services) = (get(&k("name")), get(&k("services")));
                if on(&k("remove")) || (name.trim().is_empty() && services.trim().is_empty()) {
                    continue;
                }
                map.push((format!("/subcontractors/{}/", out.len()), i));
                out.push(Subcontractor {
                    name,
                    services: filled(Some(&services)),
                    downstream_baa_confirmed: on(&k("downstream_baa_confirmed")),
                });
            }
            input.subcontractors = Some(out);
        }
        "risk" => {
            input.tier_override = Some(match get("/tier_override/tier").as_str() {
                "" => None,
                t => match Tier::ALL.iter().find(|x| x.as_str() == t) {
                    Some(tier) => Some(OverrideInput { tier: *tier, reason: get("/tier_override/reason") }),
                    None => {
                        own.push(Finding::field("/tier_override/tier", "choose high, medium or low"));
                        None
                    }
                },
            });
            input.last_assessed = filled(f.get("/last_assessed"));
        }
        _ => {}
    }
    if own.is_empty() { Ok((input, map)) } else { Err(own) }
}

/// Findings at the API input's rows, moved to the form's rows.
fn remap(findings: Vec<Finding>, map: &RowMap) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            if let Some(p) = f.pointer.clone() {
                for (from, row) in map {
                    if let Some(rest) = p.strip_prefix(from.as_str()) {
                        let list = from.trim_end_matches('/').rsplit_once('/').map_or("", |(l, _)| l);
                        f.pointer = Some(format!("{list}/{row}/{rest}"));
                        break;
                    }
                }
            }
            f
        })
        .collect()
}

fn field_error(e: ServiceError) -> Result<Vec<Finding>, ServiceError> {
    match e {
        ServiceError::Invalid(f) => Ok(f),
        ServiceError::Field(p, m) => Ok(vec![Finding::field(p, m)]),
        e => Err(e),
    }
}

async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, section)): Path<(String, String)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(roles) = section_roles(&section).filter(|_| !matches!(section.as_str(), "document" | "paper")) else {
        return not_found(&state, &viewer);
    };
    let (w, form) = match in_section(&state, &viewer, roles).and_then(|w| viewer.csrf(w, f)) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let actor = who(&viewer, &w, &headers);
    let svc = state.service.clone();
    let (vid, sec, posted) = (id.clone(), section.clone(), form.clone());
    let result = blocking(move || -> Result<Result<(), Vec<Finding>>, ServiceError> {
        svc.vendor(&vid)?;
        if sec == "link" {
            let a = posted.get("/agreement_id").map(|x| x.trim().to_string()).unwrap_or_default();
            if a.is_empty() {
                return Ok(Err(vec![Finding::field("/agreement_id", "enter the agreement's ID")]));
            }
            return match svc.link_agreement(&vid, &a, &actor) {
                Ok(_) => Ok(Ok(())),
                Err(e) => field_error(e).map(Err),
            };
        }
        let (input, map) = match input_of(&sec, &posted) {
            Ok(x) => x,
            Err(own) => return Ok(Err(own)),
        };
        match svc.update_vendor(&vid, input, &actor) {
            Ok(_) => Ok(Ok(())),
            Err(e) => field_error(e).map(|f| Err(remap(f, &map))),
        }
    })
    .await;
    match result {
        Ok(Ok(Ok(()))) => Redirect::to(&format!("/vendors/{id}?done={section}")).into_response(),
        Ok(Ok(Err(findings))) => match load(&state, id).await {
            Ok(Ok(v)) => form_page(&viewer, &v, &section, &form, &findings, None, StatusCode::UNPROCESSABLE_ENTITY),
            Ok(Err(e)) => ApiError::from(e).into_response(),
            Err(e) => e.into_response(),
        },
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A multipart form's text fields and its file. A body over the limit is the 413 page.
async fn read_multipart(
    state: &AppState,
    viewer: &Viewer,
    mut mp: Multipart,
) -> Result<(HashMap<String, String>, Vec<u8>), Box<Response>> {
    let mut fields = HashMap::new();
    let mut file = Vec::new();
    let too_large = || {
        Box::new(message(
            state,
            Some(viewer),
            StatusCode::PAYLOAD_TOO_LARGE,
            "The file is too large",
            "Files of at most 32 MB can be uploaded. Nothing was stored.",
        ))
    };
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            Box::new(message(
                state,
                Some(viewer),
                StatusCode::BAD_REQUEST,
                "The upload did not arrive whole",
                "The form's data was cut short or malformed. Nothing was stored; try again.",
            ))
        }
    };
    loop {
        match mp.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or("").to_string();
                let bytes = f.bytes().await.map_err(broken)?;
                if name == "file" {
                    file = bytes.to_vec();
                } else {
                    fields.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            Ok(None) => break,
            Err(e) => return Err(broken(e)),
        }
    }
    if file.len() > MAX_UPLOAD {
        return Err(too_large());
    }
    Ok((fields, file))
}

async fn upload(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    id: String,
    section: &'static str,
    mp: Multipart,
) -> Response {
    let Some(roles) = section_roles(section) else { return not_found(&state, &viewer) };
    let w = match in_section(&state, &viewer, roles) {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let (fields, file) = match read_multipart(&state, &viewer, mp).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let form = match viewer.csrf(&w, fields) {
        Ok((_, form)) => form,
        Err(r) => return *r,
    };
    let actor = who(&viewer, &w, &headers);
    let svc = state.service.clone();
    let (vid, posted) = (id.clone(), form.clone());
    let result = blocking(move || -> Result<Result<(), Vec<Finding>>, ServiceError> {
        let opt = |k: &str| filled(posted.get(k));
        let r = if section == "document" {
            let kind = opt("kind").unwrap_or_default();
            svc.upload_vendor_document(&vid, &kind, opt("issued").as_deref(), opt("expires").as_deref(), file, &actor)
        } else {
            let mut own = Vec::new();
            let mut number = |k: &str| -> Option<u16> {
                let s = opt(k)?;
                match s.parse::<u16>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        own.push(Finding::field(k, "a whole number of days or months"));
                        None
                    }
                }
            };
            let terms = PaperTerms {
                kind: opt("kind").unwrap_or_default(),
                title: posted.get("title").cloned().unwrap_or_default(),
                effective_date: opt("effective_date").unwrap_or_default(),
                term_months: number("term_months"),
                auto_renew: posted.get("auto_renew").is_some_and(|x| x == "yes"),
                breach_notice_days: number("breach_notice_days"),
                return_or_destroy: opt("return_or_destroy"),
                notice_days: number("notice_days"),
            };
            if !own.is_empty() {
                return Ok(Err(own));
            }
            svc.upload_vendor_paper(&vid, terms, file, &actor)
        };
        match r {
            Ok(_) => Ok(Ok(())),
            Err(e) => field_error(e).map(Err),
        }
    })
    .await;
    match result {
        Ok(Ok(Ok(()))) => Redirect::to(&format!("/vendors/{id}?done={section}")).into_response(),
        Ok(Ok(Err(findings))) => match load(&state, id).await {
            Ok(Ok(v)) => form_page(
                &viewer,
                &v,
                section,
                &form,
                &findings,
                Some("Nothing was stored: fix the fields marked below (and choose the file again).".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Ok(Err(e)) => ApiError::from(e).into_response(),
            Err(e) => e.into_response(),
        },
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn upload_document(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    mp: Multipart,
) -> Response {
    upload(state, viewer, headers, id, "document", mp).await
}

async fn upload_paper(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    mp: Multipart,
) -> Response {
    upload(state, viewer, headers, id, "paper", mp).await
}

/// A vendor document's bytes for a signed-in person (roles of the API's
/// `GET /vendors/{id}/files/{sha256}`); each download is logged with who asked.
async fn download(State(state): State<AppState>, viewer: Viewer, Path((id, sha)): Path<(String, String)>) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let svc = state.service.clone();
    let (vid, s2) = (id.clone(), sha.clone());
    match blocking(move || svc.vendor_file(&vid, &s2)).await {
        Ok(Ok(bytes)) => {
            tracing::info!(vendor = %id, sha256 = %sha, who = %w.person.email, "vendor file downloaded");
            let pdf = bytes.starts_with(b"%PDF-");
            let short = &sha[..sha.len().min(12)];
            (
                [
                    (
                        header::CONTENT_TYPE,
                        if pdf { "application/pdf" } else { "application/octet-stream" }.to_string(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"vendor-{short}.{}\"", if pdf { "pdf" } else { "bin" }),
                    ),
                    (header::HeaderName::from_static("x-document-sha256"), sha),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(Err(ServiceError::NotFound)) => not_found(&state, &viewer),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}
