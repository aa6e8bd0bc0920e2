//! The new-agreement form (`/agreements/new?kind=baa|dua`): a page that mirrors the intake,
//! each input named by its intake JSON pointer so the one intake parser (the API's) reports every
//! problem beside its own input. Repeating groups grow and shrink with submit buttons (no
//! JavaScript); **Check** shows the findings and saves nothing; **Save draft** creates the
//! agreement through [`crate::app::service::Service::create`] under the person's identity, as
//! `POST /api/v1/agreements` does. A form can start from an uploaded intake file or from an
//! existing agreement's intake.
//!
//! Authorization is the route table's ([`super::routes::PAGES`]: the roles of the API's
//! `POST /agreements`), so a vendor manager gets the 403 page here exactly as the API refuses them.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::{Form, Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tera::Context;

use super::error::ApiError;
use super::web::{Viewer, message, no_agreement, read_or, render};
use super::{AppState, blocking};
use crate::app::service::ServiceError;
use crate::domain::findings::{Finding, Level};
use crate::domain::form;
use crate::domain::provisions::{CostBearer, Policy, usd};
use crate::domain::states::JURISDICTIONS;

pub fn router() -> Router<AppState> {
    Router::new().route("/agreements/new", get(new_page).post(submit)).route("/agreements/new/upload", post(upload))
}

/// One `<option>`.
#[derive(Serialize, Clone)]
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

/// One input of the form, named by its intake pointer.
#[derive(Serialize, Default)]
struct Input {
    name: String,
    /// The element id: `f` and the pointer with `/` as `-` (`f-signers-1-email`).
    id: String,
    label: String,
    /// text, email, number, date, textarea, select, checkbox, states.
    kind: &'static str,
    value: String,
    checked: bool,
    errors: Vec<String>,
    /// Departures from policy found by Check: not errors, but legal must approve them.
    notes: Vec<String>,
    hint: Option<String>,
    options: Vec<Opt>,
    autocomplete: &'static str,
}

/// A box of inputs: one party's contact, one signer row…; `remove` names the row for its
/// Remove button (`/signers/1`).
#[derive(Serialize)]
struct Block {
    legend: Option<String>,
    inputs: Vec<Input>,
    remove: Option<String>,
}

#[derive(Serialize)]
struct Section {
    id: String,
    title: String,
    intro: Option<String>,
    blocks: Vec<Block>,
    /// `(action value, button label)` of the Add button (`add:/signers`).
    add: Option<(String, String)>,
}

/// A problem in the summary at the top, linked to its input when it has one.
#[derive(Serialize)]
struct Problem {
    target: Option<String>,
    label: Option<String>,
    pointer: String,
    message: String,
}

/// What the posted (or prefilled) form holds, and what to draw on top of it.
struct Draft {
    kind: String,
    pairs: Vec<(String, String)>,
    /// Extra blank rows asked for with an Add button: list pointer → count.
    extra: HashMap<String, usize>,
    /// The vendor the agreement is for (`/agreements/new?vendor=…`): saving links it.
    vendor: Option<String>,
}

impl Draft {
    fn value(&self, name: &str) -> String {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn rows(&self, list: &str, at_least: usize) -> usize {
        (form::rows(&self.pairs, list) + self.extra.get(list).copied().unwrap_or(0)).max(at_least)
    }
}

fn id_of(name: &str) -> String {
    format!("f{}", name.replace('/', "-").replace('~', "_"))
}

/// Builds the inputs, consuming the values and findings they show.
struct Builder<'a> {
    d: &'a Draft,
    used: HashSet<String>,
    errors: HashMap<String, Vec<String>>,
    notes: HashMap<String, Vec<String>>,
    labels: HashMap<String, (String, String)>,
}

impl Builder<'_> {
    fn input(&mut self, name: &str, label: &str, kind: &'static str) -> Input {
        self.used.insert(name.to_string());
        let value = self.d.value(name);
        let id = id_of(name);
        self.labels.insert(name.to_string(), (id.clone(), label.to_string()));
        Input {
            name: name.to_string(),
            id,
            label: label.to_string(),
            kind,
            checked: value == "true",
            errors: self.errors.remove(name).unwrap_or_default(),
            notes: self.notes.remove(name).unwrap_or_default(),
            value,
            autocomplete: "off",
            ..Input::default()
        }
    }

    fn text(&mut self, name: &str, label: &str) -> Input {
        self.input(name, label, "text")
    }

    fn hinted(&mut self, name: &str, label: &str, kind: &'static str, hint: String) -> Input {
        Input { hint: Some(hint), ..self.input(name, label, kind) }
    }

    fn select(&mut self, name: &str, label: &str, options: &[(&str, &str)]) -> Input {
        let mut i = self.input(name, label, "select");
        i.options = options
            .iter()
            .map(|(v, l)| Opt { value: v.to_string(), label: l.to_string(), selected: i.value == *v })
            .collect();
        i
    }

    /// A provision switch: the policy default, on, or off.
    fn toggle(&mut self, name: &str, label: &str, default_on: bool, hint: Option<String>) -> Input {
        let default = if default_on { "Policy default (on)" } else { "Policy default (off)" };
        let mut i = self.select(name, label, &[("", default), ("true", "On"), ("false", "Off")]);
        i.hint = hint;
        i
    }

    fn states(&mut self, name: &str, label: &str, blank: &str) -> Input {
        let mut opts = vec![("", blank)];
        opts.extend(JURISDICTIONS.iter().map(|(c, n)| (*c, *n)));
        self.select(name, label, &opts)
    }

    fn party(&mut self, key: &str, title: &str, upstream_ce: bool) -> Section {
        let p = |f: &str| format!("/{key}/{f}");
        let mut main = vec![self.text(&p("legal_name"), "Legal name")];
        main.push(self.text(&p("address/street"), "Street address"));
        main.push(self.text(&p("address/city"), "City"));
        main.push(self.states(&p("address/state"), "State", "Choose a state"));
        main.push(self.text(&p("address/postal_code"), "ZIP code"));
        if upstream_ce {
            main.push(self.input(
                &p("california_licensed_facility"),
                "A California-licensed clinic or health facility (Cal. H&S 1280.15)",
                "checkbox",
            ));
        }
        let mut blocks = vec![Block { legend: None, inputs: main, remove: None }];
        for (c, l) in [("privacy_contact", "Privacy contact"), ("security_contact", "Security contact")] {
            let inputs = vec![
                self.text(&p(&format!("{c}/name")), "Name"),
                self.input(&p(&format!("{c}/email")), "Email", "email"),
                self.input(&p(&format!("{c}/phone")), "Phone (optional)", "tel"),
            ];
            blocks.push(Block { legend: Some(l.into()), inputs, remove: None });
        }
        Section { id: key.replace('_', "-"), title: title.into(), intro: None, blocks, add: None }
    }

    /// A list of phrases (`/use_cases/0`, …), at least one row shown.
    fn phrases(&mut self, list: &str, item: &str) -> Vec<Block> {
        (0..self.d.rows(list, 1))
            .map(|i| Block {
                legend: None,
                inputs: vec![self.text(&format!("{list}/{i}"), &format!("{item} {}", i + 1))],
                remove: Some(format!("{list}/{i}")),
            })
            .collect()
    }
}

/// Everything the form shows for one kind, in order, from the policy's defaults and ranges.
fn sections(b: &mut Builder, policy: &Policy) -> Vec<Section> {
    let d = b.d;
    let baa = d.kind == "baa";
    let relationship = d.value("/relationship");
    let sub = baa && relationship == "business_associate_to_subcontractor";
    let (up, down) = match (baa, sub) {
        (false, _) => (("covered_entity", "Covered entity"), ("data_recipient", "Data recipient")),
        (true, false) => (("covered_entity", "Covered entity"), ("business_associate", "Business associate")),
        (true, true) => (("business_associate", "Business associate"), ("subcontractor", "Subcontractor")),
    };
    let mut out = Vec::new();

    let mut general = Vec::new();
    if baa {
        let mut r = b.select(
            "/relationship",
            "Relationship",
            &[
                ("covered_entity_to_business_associate", "Covered entity → business associate"),
                ("business_associate_to_subcontractor", "Business associate → subcontractor"),
            ],
        );
        r.hint = Some("After changing it, press Check: the party sections follow the relationship.".into());
        general.push(r);
        if sub {
            general.push(b.text("/parent_agreement_id", "Upstream agreement id (optional)"));
        }
    } else {
        general.push(b.select(
            "/purpose",
            "Purpose of the limited data set",
            &[
                ("", "Choose a purpose"),
                ("research", "Research"),
                ("public_health", "Public health"),
                ("health_care_operations", "Health care operations"),
            ],
        ));
        general.push(b.input("/project_description", "Project description", "textarea"));
    }
    general.push(b.hinted("/effective_date", "Effective date", "date", "YYYY-MM-DD".into()));
    general.push(b.hinted("/term/months", "Term in months", "number", "1–120 months".into()));
    general.push(b.input("/term/auto_renew", "Renews automatically", "checkbox"));
    general.push(b.hinted(
        "/breach_notice_days",
        "Breach notice within (days)",
        "number",
        format!(
            "1–60 calendar days; policy: the effective clock after state law is at most {} days",
            policy.breach_clock.max_days
        ),
    ));
    let mut states = b.input("/states", "States whose law applies", "states");
    let chosen: HashSet<String> =
        d.pairs.iter().filter(|(k, _)| k.starts_with("/states/")).map(|(_, v)| v.to_ascii_uppercase()).collect();
    states.options = JURISDICTIONS
        .iter()
        .map(|(c, n)| Opt { value: c.to_string(), label: n.to_string(), selected: chosen.contains(*c) })
        .collect();
    // Every problem with the list or one of its entries shows at the list.
    let keys: Vec<String> = b.errors.keys().filter(|k| k.starts_with("/states/")).cloned().collect();
    for k in keys {
        states.errors.extend(b.errors.remove(&k).unwrap_or_default());
    }
    b.used.extend(d.pairs.iter().filter(|(k, _)| k.starts_with("/states/")).map(|(k, _)| k.clone()));
    general.push(states);
    out.push(Section {
        id: "agreement".into(),
        title: "Agreement".into(),
        intro: None,
        blocks: vec![Block { legend: None, inputs: general, remove: None }],
        add: None,
    });

    out.push(b.party(up.0, up.1, up.0 == "covered_entity"));
    out.push(b.party(down.0, down.1, false));

    let parties = [(up.0, up.1), (down.0, down.1)];
    let signers = (0..d.rows("/signers", 2))
        .map(|i| {
            let p = |f: &str| format!("/signers/{i}/{f}");
            let mut opts = vec![("", "Choose a party")];
            opts.extend(parties.iter().copied());
            Block {
                legend: Some(format!("Signer {}", i + 1)),
                inputs: vec![
                    b.select(&p("party"), "Signs for", &opts),
                    b.text(&p("name"), "Name"),
                    b.text(&p("title"), "Title"),
                    b.input(&p("email"), "Email", "email"),
                    b.hinted(
                        &p("order"),
                        "Signing order",
                        "number",
                        "1 signs first; equal numbers sign in parallel".into(),
                    ),
                ],
                remove: Some(format!("/signers/{i}")),
            }
        })
        .collect();
    out.push(Section {
        id: "signers".into(),
        title: "Signers".into(),
        intro: Some("Each signer gets an emailed link in signing order.".into()),
        blocks: signers,
        add: Some(("add:/signers".into(), "Add signer".into())),
    });

    if baa {
        out.push(Section {
            id: "services".into(),
            title: "Services".into(),
            intro: None,
            blocks: vec![Block {
                legend: None,
                inputs: vec![b.input("/services", "Services the business associate provides", "textarea")],
                remove: None,
            }],
            add: None,
        });
        out.push(Section {
            id: "use-cases".into(),
            title: "Use cases".into(),
            intro: None,
            blocks: b.phrases("/use_cases", "Use case"),
            add: Some(("add:/use_cases".into(), "Add use case".into())),
        });
        out.push(Section {
            id: "phi-types".into(),
            title: "Kinds of PHI".into(),
            intro: Some("For example names, contact_details, medical_record_numbers.".into()),
            blocks: b.phrases("/phi_types", "Kind of PHI"),
            add: Some(("add:/phi_types".into(), "Add kind of PHI".into())),
        });
        let options = vec![
            b.input(
                "/options/management_and_administration",
                "May use PHI for its own management and administration",
                "checkbox",
            ),
            b.input("/options/data_aggregation", "May aggregate data", "checkbox"),
            b.input("/options/de_identification", "May de-identify PHI", "checkbox"),
        ];
        out.push(Section {
            id: "options".into(),
            title: "Permitted uses".into(),
            intro: None,
            blocks: vec![Block { legend: None, inputs: options, remove: None }],
            add: None,
        });
        let subs = (0..d.rows("/subcontractors", 0))
            .map(|i| {
                let p = |f: &str| format!("/subcontractors/{i}/{f}");
                Block {
                    legend: Some(format!("Subcontractor {}", i + 1)),
                    inputs: vec![
                        b.text(&p("legal_name"), "Legal name"),
                        b.text(&p("services"), "Services"),
                        b.input(&p("baa_in_place"), "A business associate agreement is in place", "checkbox"),
                    ],
                    remove: Some(format!("/subcontractors/{i}")),
                }
            })
            .collect();
        out.push(Section {
            id: "subcontractors".into(),
            title: "Subcontractors".into(),
            intro: None,
            blocks: subs,
            add: Some(("add:/subcontractors".into(), "Add subcontractor".into())),
        });
    } else {
        out.push(Section {
            id: "recipients".into(),
            title: "Permitted recipients".into(),
            intro: None,
            blocks: b.phrases("/permitted_recipients", "Recipient"),
            add: Some(("add:/permitted_recipients".into(), "Add recipient".into())),
        });
        out.push(Section {
            id: "data-elements".into(),
            title: "Data elements".into(),
            intro: Some(
                "No direct identifiers: a limited data set leaves out the 16 identifiers of 45 CFR 164.514(e)(2)."
                    .into(),
            ),
            blocks: b.phrases("/data_elements", "Data element"),
            add: Some(("add:/data_elements".into(), "Add data element".into())),
        });
    }

    let exhibits = (0..d.rows("/exhibits", 0))
        .map(|i| Block {
            legend: Some(format!("Exhibit {}", i + 1)),
            inputs: vec![
                b.text(&format!("/exhibits/{i}/title"), "Title"),
                b.input(&format!("/exhibits/{i}/text"), "Text (blank lines separate paragraphs)", "textarea"),
            ],
            remove: Some(format!("/exhibits/{i}")),
        })
        .collect();
    out.push(Section {
        id: "exhibits".into(),
        title: "Exhibits".into(),
        intro: None,
        blocks: exhibits,
        add: Some(("add:/exhibits".into(), "Add exhibit".into())),
    });

    if baa {
        out.push(provisions(b, policy, up.1, sub));
    }
    out
}

fn cost_label(c: CostBearer) -> &'static str {
    match c {
        CostBearer::CoveredEntity => "the covered entity",
        CostBearer::BusinessAssociate => "the business associate",
        CostBearer::Shared => "shared",
    }
}

/// The negotiated provisions, each with the policy's default and approved range beside it.
fn provisions(b: &mut Builder, policy: &Policy, upstream: &str, sub: bool) -> Section {
    let off = |may: bool| if may { "" } else { " Turning it off needs approval." };
    let mut blocks = Vec::new();
    let a = &policy.audit_rights;
    blocks.push(Block {
        legend: Some("Audit rights".into()),
        inputs: vec![
            b.toggle(
                "/provisions/audit_rights",
                "Audit rights",
                a.default_on,
                Some(off(a.may_be_off).trim().to_string()).filter(|s| !s.is_empty()),
            ),
            b.hinted(
                "/provisions/audit_rights/notice_days",
                "Notice before an audit (days)",
                "number",
                format!("Policy: {} days; at most {}", a.default_notice_days, a.max_notice_days),
            ),
            b.hinted(
                "/provisions/audit_rights/per_year",
                "Audits a year",
                "number",
                format!("Policy: {}; at least {}", a.default_per_year, a.min_per_year),
            ),
            {
                let mut i = b.select(
                    "/provisions/audit_rights/cost",
                    "Who pays for an audit",
                    &[
                        ("", "Policy default"),
                        ("covered_entity", "The covered entity"),
                        ("business_associate", "The business associate"),
                        ("shared", "Shared"),
                    ],
                );
                let approved: Vec<&str> = a.approved_costs.iter().map(|c| cost_label(*c)).collect();
                i.hint = Some(format!("Policy: {}; approved: {}", cost_label(a.default_cost), approved.join(", ")));
                i
            },
        ],
        remove: None,
    });
    let l = &policy.liability;
    let parties: &[(&str, &str)] = if sub {
        &[("", "Neither"), ("business_associate", "The business associate"), ("subcontractor", "The subcontractor")]
    } else {
        &[("", "Neither"), ("covered_entity", "The covered entity"), ("business_associate", "The business associate")]
    };
    blocks.push(Block {
        legend: Some("Liability".into()),
        inputs: vec![
            b.toggle(
                "/provisions/liability",
                "Limitation of liability",
                l.default_on,
                Some(off(l.may_be_off).trim().to_string()).filter(|s| !s.is_empty()),
            ),
            b.toggle(
                "/provisions/liability/mutual",
                "Mutual",
                l.default_mutual,
                Some(if l.one_way_approved {
                    "Policy: mutual; one-way is approved".into()
                } else {
                    "Policy: mutual; one-way needs approval".into()
                }),
            ),
            b.hinted(
                "/provisions/liability/cap_multiple_of_fees",
                "Cap as a multiple of twelve months' fees",
                "number",
                format!("Policy: {}×; at least {}×", l.default_cap_multiple, l.min_cap_multiple),
            ),
            b.hinted(
                "/provisions/liability/cap_floor_usd",
                "Floor of that cap (US dollars)",
                "number",
                format!("Policy: {}; at least {}", usd(l.default_cap_floor_usd), usd(l.min_cap_floor_usd)),
            ),
            b.hinted(
                "/provisions/liability/cap_amount_usd",
                "Or a fixed cap (US dollars)",
                "number",
                format!("Instead of the multiple; at least {}", usd(l.min_cap_amount_usd)),
            ),
            b.toggle(
                "/provisions/liability/phi_carve_out",
                "PHI obligations outside the cap",
                true,
                Some(if l.carve_out_required { "Policy: required".into() } else { "Policy: optional".into() }),
            ),
            b.select(
                "/provisions/liability/public_body",
                "A governmental party (indemnifies only as far as its law permits)",
                parties,
            ),
        ],
        remove: None,
    });
    let c = &policy.cyber_insurance;
    blocks.push(Block {
        legend: Some("Cyber insurance".into()),
        inputs: vec![
            b.toggle(
                "/provisions/cyber_insurance",
                "Cyber insurance",
                c.default_on,
                Some(off(c.may_be_off).trim().to_string()).filter(|s| !s.is_empty()),
            ),
            b.hinted(
                "/provisions/cyber_insurance/coverage_usd",
                "Coverage (US dollars)",
                "number",
                format!("Policy: {}; at least {}", usd(c.default_coverage_usd), usd(c.min_coverage_usd)),
            ),
        ],
        remove: None,
    });
    let s = &policy.security_controls;
    blocks.push(Block {
        legend: Some("Security controls".into()),
        inputs: vec![
            b.toggle(
                "/provisions/security_controls",
                "Security controls",
                s.default_on,
                Some(off(s.may_be_off).trim().to_string()).filter(|s| !s.is_empty()),
            ),
            b.hinted(
                "/provisions/security_controls/log_retention_years",
                "Keep audit logs (years)",
                "number",
                format!("Policy: {}; at least {}", s.default_log_retention_years, s.min_log_retention_years),
            ),
        ],
        remove: None,
    });
    let cp = &policy.cure_period;
    let so = &policy.subcontractor_objection;
    let bc = &policy.breach_costs;
    let cl = &policy.change_in_law;
    blocks.push(Block {
        legend: Some("Terms".into()),
        inputs: vec![
            b.toggle(
                "/provisions/preemption",
                "More stringent law applies (preemption)",
                policy.preemption.default_on,
                None,
            ),
            b.hinted(
                "/provisions/cure_period_days",
                "Days to cure a material breach",
                "number",
                format!("Policy: {} days; {}–{}", cp.default_days, cp.min_days, cp.max_days),
            ),
            {
                let blank = format!("Policy default: the {}'s state", upstream.to_lowercase());
                let mut i = b.states("/provisions/governing_law", "Governing law", &blank);
                i.hint = Some(if policy.governing_law.upstream_state_only {
                    "Another state needs approval".into()
                } else {
                    "Any state is approved".into()
                });
                i
            },
            b.toggle(
                "/provisions/data_location",
                "PHI stays in the United States",
                policy.data_location.default_on,
                None,
            ),
            b.hinted(
                "/provisions/subcontractor_objection_days",
                "Days to object to a new subcontractor",
                "number",
                format!("Policy: {} days; at least {}", so.default_days, so.min_days),
            ),
            b.hinted(
                "/provisions/breach_costs/credit_monitoring_months",
                "Credit monitoring after a breach (months)",
                "number",
                format!(
                    "Policy: {} months; at least {}",
                    bc.default_credit_monitoring_months, bc.min_credit_monitoring_months
                ),
            ),
            b.toggle("/provisions/part2", "42 CFR Part 2 records", false, None),
            b.toggle(
                "/provisions/agency",
                "The business associate acts as agent",
                false,
                Some(if policy.agency.agency_approved { "Approved by policy".into() } else { "Needs approval".into() }),
            ),
            b.hinted(
                "/provisions/change_in_law_days",
                "Days to amend after a change in law",
                "number",
                format!("Policy: {} days; {}–{}", cl.default_days, cl.min_days, cl.max_days),
            ),
            b.toggle("/provisions/limited_data_set", "A limited data set is shared", false, None),
            b.text("/provisions/limited_data_set/dua_reference", "Its data use agreement (optional)"),
        ],
        remove: None,
    });
    Section {
        id: "provisions".into(),
        title: "Negotiated provisions".into(),
        intro: Some("Leave a value blank for the policy default. A value outside the policy's range can be saved, but legal must approve it before the agreement is sent.".into()),
        blocks,
        add: None,
    }
}

/// What Check found, when it got as far as rendering.
#[derive(Serialize)]
struct Checked {
    passes: bool,
    breach: Option<String>,
    departures: Vec<String>,
    findings: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    state: &AppState,
    viewer: &Viewer,
    d: &Draft,
    findings: &[Finding],
    checked: Option<Checked>,
    notice: Option<&str>,
    upload_error: Option<String>,
    status: StatusCode,
) -> Response {
    let mut errors: HashMap<String, Vec<String>> = HashMap::new();
    let mut notes: HashMap<String, Vec<String>> = HashMap::new();
    for f in findings {
        let ptr = f.pointer.clone().unwrap_or_default();
        let to = if f.code == "needs_approval" || f.level != Level::Error { &mut notes } else { &mut errors };
        to.entry(ptr).or_default().push(f.message.clone());
    }
    let mut b = Builder { d, used: HashSet::new(), errors, notes, labels: HashMap::new() };
    let mut secs = sections(&mut b, state.service.renderer.policy());
    // Values the form has no input for (an uploaded intake's extra fields) stay on the page,
    // where the parser's finding about them shows, so nothing posted is lost.
    let leftovers: Vec<String> = d
        .pairs
        .iter()
        .filter(|(k, _)| k.starts_with('/') && k != "/kind" && !b.used.contains(k))
        .map(|(k, _)| k.clone())
        .collect();
    if !leftovers.is_empty() {
        let mut seen = HashSet::new();
        let inputs: Vec<Input> = leftovers.iter().filter(|k| seen.insert((*k).clone())).map(|k| b.text(k, k)).collect();
        secs.push(Section {
            id: "other".into(),
            title: "Other fields".into(),
            intro: Some("These fields have no place in the form; fix or clear them.".into()),
            blocks: vec![Block { legend: None, inputs, remove: None }],
            add: None,
        });
    }
    // In the summary a bare label is ambiguous (the form has a dozen "Email" inputs): each is
    // named with its row's legend, or its section's title ("Signer 2: Email").
    let context: HashMap<&str, &str> = secs
        .iter()
        .flat_map(|s| {
            s.blocks.iter().flat_map(move |bl| {
                let within = bl.legend.as_deref().unwrap_or(&s.title);
                bl.inputs.iter().map(move |i| (i.id.as_str(), within))
            })
        })
        .collect();
    let named = |id: &str, label: &str| match context.get(id) {
        Some(within) if *within != label => format!("{within}: {label}"),
        _ => label.to_string(),
    };
    let mut problems: Vec<Problem> = findings
        .iter()
        .filter(|f| f.level == Level::Error && f.code != "needs_approval")
        .map(|f| {
            let ptr = f.pointer.clone().unwrap_or_default();
            let at =
                b.labels.get(&ptr).or_else(|| ptr.starts_with("/states/").then(|| b.labels.get("/states")).flatten());
            Problem {
                target: at.map(|(id, _)| id.clone()),
                label: at.map(|(id, l)| named(id, l)),
                pointer: ptr.clone(),
                message: f.message.clone(),
            }
        })
        .collect();
    problems.sort_by_key(|p| p.target.is_some());
    let mut ctx = Context::new();
    let title = if d.kind == "dua" { "New data use agreement" } else { "New business associate agreement" };
    ctx.insert("title", title);
    ctx.insert("kind", &d.kind);
    ctx.insert("sections", &secs);
    ctx.insert("problems", &problems);
    ctx.insert("checked", &checked);
    ctx.insert("notice", &notice);
    ctx.insert("vendor", &d.vendor);
    ctx.insert("upload_error", &upload_error);
    render(state, Some(viewer), "draft.html.tera", "new", ctx, status)
}

fn kind_of(s: &str) -> String {
    if s == "dua" { "dua".into() } else { "baa".into() }
}

/// A fresh form: the right number of blank signer rows, the example's shape.
fn blank(kind: &str) -> Draft {
    let mut pairs = vec![("/kind".to_string(), kind.to_string())];
    if kind == "baa" {
        pairs.push(("/relationship".into(), "covered_entity_to_business_associate".into()));
    }
    pairs.push(("/signers/0/order".into(), "1".into()));
    pairs.push(("/signers/1/order".into(), "2".into()));
    pairs.push(("/term/auto_renew".into(), "false".into()));
    Draft { kind: kind.into(), pairs, extra: HashMap::new(), vendor: None }
}

/// Why an uploaded file cannot fill the form (shown on the page as it is).
#[derive(Debug, thiserror::Error)]
enum NotAnIntake {
    #[error("The file is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("The file is JSON but not an intake (an object).")]
    NotAnObject,
}

/// A form prefilled from intake JSON (a file or an agreement); the parser's findings shown.
fn from_intake(text: &str, fallback_kind: &str) -> Result<(Draft, Vec<Finding>), NotAnIntake> {
    let v: Value = serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(text)).map_err(NotAnIntake::NotJson)?;
    if !v.is_object() {
        return Err(NotAnIntake::NotAnObject);
    }
    let kind = kind_of(v["kind"].as_str().unwrap_or(fallback_kind));
    let mut pairs = form::flatten(&v);
    if !pairs.iter().any(|(k, _)| k == "/kind") {
        pairs.insert(0, ("/kind".into(), kind.clone()));
    }
    let findings = match crate::app::load_intake(text) {
        Ok(_) => Vec::new(),
        Err(f) => f,
    };
    Ok((Draft { kind, pairs, extra: HashMap::new(), vendor: None }, findings))
}

async fn new_page(State(state): State<AppState>, viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let kind = kind_of(q.get("kind").map_or("baa", String::as_str));
    if let Some(vendor) = q.get("vendor").filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()) {
        return for_vendor(&state, &viewer, vendor, &kind).await;
    }
    let Some(from) = q.get("from").filter(|f| !f.trim().is_empty()).map(|f| f.trim().to_string()) else {
        return form_page(&state, &viewer, &blank(&kind), &[], None, None, None, StatusCode::OK);
    };
    // Copying an agreement's intake needs the right to see it (sales: only their own).
    let staff = w.staff();
    let svc = state.service.clone();
    let id = from.clone();
    let loaded = blocking(move || {
        super::api::visible(&svc, &staff, &id)?;
        svc.current_intake(&id)
    })
    .await;
    let text = match read_or(loaded, || no_agreement(&state, &viewer)) {
        Ok(text) => text,
        Err(r) => return *r,
    };
    match from_intake(&text, &kind) {
        Ok((d, findings)) => {
            let notice = format!("Started from agreement {from}. Saving creates a new agreement.");
            form_page(&state, &viewer, &d, &findings, None, Some(&notice), None, StatusCode::OK)
        }
        Err(e) => ApiError::Internal(format!("stored intake of {from}: {e}")).into_response(),
    }
}

/// A form prefilled from a vendor's record (`GET /vendors/{id}/intake`), kept tied to the
/// vendor so that saving links the agreement to it.
async fn for_vendor(state: &AppState, viewer: &Viewer, vendor: String, kind: &str) -> Response {
    let svc = state.service.clone();
    let id = vendor.clone();
    let loaded =
        blocking(move || Ok::<_, ServiceError>((svc.vendor_intake(&id)?, svc.vendor(&id)?.vendor.legal_name))).await;
    match loaded {
        Ok(Ok((mut intake, name))) => {
            // The kind asked for wins over the one the determination suggests.
            if intake["kind"] != kind {
                intake = serde_json::json!({"kind": kind, "states": intake["states"].clone()});
                let party = serde_json::json!({"legal_name": name});
                if kind == "dua" {
                    intake["recipient"] = party;
                } else {
                    intake["relationship"] = "covered_entity_to_business_associate".into();
                    intake["business_associate"] = party;
                }
            }
            match from_intake(&intake.to_string(), kind) {
                // Only the vendor's part is filled in: the rest is for the person to complete.
                Ok((mut d, _)) => {
                    d.vendor = Some(vendor);
                    let notice = format!(
                        "Started from the vendor record of {name}. Saving creates the agreement and lists it with the vendor."
                    );
                    form_page(state, viewer, &d, &[], None, Some(&notice), None, StatusCode::OK)
                }
                Err(e) => ApiError::Internal(format!("vendor intake of {vendor}: {e}")).into_response(),
            }
        }
        Ok(Err(ServiceError::NotFound)) => {
            message(state, Some(viewer), StatusCode::NOT_FOUND, "Vendor not found", "There is no such vendor.")
        }
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Checks the CSRF token among the pairs (through [`Viewer::form`], the web app's one check).
fn csrf_checked<'v>(
    viewer: &'v Viewer,
    pairs: &[(String, String)],
) -> Result<&'v crate::people::SignedIn, Box<Response>> {
    let token = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone()).unwrap_or_default();
    viewer.form(HashMap::from([("csrf".to_string(), token)])).map(|(w, _)| w)
}

async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let w = match csrf_checked(&viewer, &pairs) {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let action = pairs.iter().rev().find(|(k, _)| k == "action").map(|(_, v)| v.clone()).unwrap_or_default();
    let vendor = pairs.iter().find(|(k, _)| k == "vendor").map(|(_, v)| v.clone());
    let fields: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k.starts_with('/')).collect();
    let kind = kind_of(&fields.iter().find(|(k, _)| k == "/kind").map(|(_, v)| v.clone()).unwrap_or_default());
    let vendor = vendor.filter(|v| !v.trim().is_empty());
    let mut d = Draft { kind, pairs: fields, extra: HashMap::new(), vendor };
    if let Some(list) = action.strip_prefix("add:") {
        d.extra.insert(list.to_string(), 1);
        return form_page(&state, &viewer, &d, &[], None, None, None, StatusCode::OK);
    }
    if let Some(row) = action.strip_prefix("remove:") {
        if let Some((list, i)) = row.rsplit_once('/').and_then(|(l, i)| Some((l, i.parse::<usize>().ok()?))) {
            d.pairs = form::remove_row(&d.pairs, list, i);
        }
        return form_page(&state, &viewer, &d, &[], None, None, None, StatusCode::OK);
    }
    let value = match form::unflatten(&d.pairs) {
        Ok(v) => v,
        Err(findings) => {
            return form_page(&state, &viewer, &d, &findings, None, None, None, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let svc = state.service.clone();
    if action == "save" {
        let staff = w.staff();
        let who = viewer.actor(&staff, &headers);
        // Started for a vendor: the agreement is linked to it when the person's role may link
        // (the API's `POST /vendors/{id}/agreements`), in the same call as creating it.
        let link =
            d.vendor.clone().filter(|_| super::api::allowed("POST", "/vendors/{id}/agreements").contains(&w.role));
        return match blocking(move || match link {
            Some(v) => svc.create_agreement_for_vendor(&v, &text, &who).map(|(a, _)| a),
            None => svc.create(&text, &who),
        })
        .await
        {
            Ok(Ok(a)) => Redirect::to(&format!("/agreements/{}?created=1", a.id)).into_response(),
            Ok(Err(ServiceError::Invalid(findings))) => form_page(
                &state,
                &viewer,
                &d,
                &findings,
                None,
                Some("Nothing was saved: fix the fields marked below."),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            Ok(Err(e)) => ApiError::from(e).into_response(),
            Err(e) => e.into_response(),
        };
    }
    // Check (the default for Enter in a field): the same parse and render as saving, nothing stored.
    let who = viewer.actor(&w.staff(), &headers);
    match blocking(move || svc.check_intake(&text, &who)).await {
        Ok(Ok(report)) => {
            let passes = report.passes();
            let checked = Checked {
                passes,
                breach: Some(format!(
                    "Breach notice: {} — {}.",
                    report.breach_clock.text,
                    report.breach_clock.explanation.trim_end_matches('.')
                )),
                departures: report.departures.iter().map(|f| f.message.clone()).collect(),
                findings: report.findings.iter().map(|f| f.message.clone()).collect(),
            };
            let findings: Vec<Finding> = report.departures.clone();
            form_page(&state, &viewer, &d, &findings, Some(checked), None, None, StatusCode::OK)
        }
        Ok(Err(ServiceError::Invalid(findings))) => {
            form_page(&state, &viewer, &d, &findings, None, None, None, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Upload an intake file (multipart: `csrf`, `file`) to prefill the form.
async fn upload(State(state): State<AppState>, viewer: Viewer, mut mp: Multipart) -> Response {
    let mut pairs = Vec::new();
    let mut file = None;
    loop {
        match mp.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or("").to_string();
                match f.bytes().await {
                    Ok(b) if name == "file" => file = Some(b),
                    Ok(b) => pairs.push((name, String::from_utf8_lossy(&b).into_owned())),
                    Err(e) => {
                        return ApiError::BadRequest(format!("the upload did not arrive whole: {e}")).into_response();
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return ApiError::BadRequest(format!("the upload did not arrive whole: {e}")).into_response(),
        }
    }
    if let Err(r) = csrf_checked(&viewer, &pairs) {
        return *r;
    }
    let kind = kind_of(pairs.iter().find(|(k, _)| k == "kind").map_or("baa", |(_, v)| v.as_str()));
    let problem = match file.filter(|b| !b.is_empty()) {
        None => "Choose an intake file (JSON) to upload.".to_string(),
        Some(bytes) => match String::from_utf8(bytes.to_vec()) {
            Err(_) => "The file is not UTF-8 text.".to_string(),
            Ok(text) => match from_intake(&text, &kind) {
                Ok((d, findings)) => {
                    let notice = if findings.is_empty() {
                        "Filled from the file. Check it, then save the draft."
                    } else {
                        "Filled from the file, which has problems: they are marked below."
                    };
                    return form_page(&state, &viewer, &d, &findings, None, Some(notice), None, StatusCode::OK);
                }
                Err(e) => e.to_string(),
            },
        },
    };
    form_page(&state, &viewer, &blank(&kind), &[], None, None, Some(problem), StatusCode::UNPROCESSABLE_ENTITY)
}
