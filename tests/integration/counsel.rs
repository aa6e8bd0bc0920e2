//! Counsel's review, round 1 (issue 18), shown on rendered PDFs read back with pdftotext and on
//! `check --format json`: the owner margin in the breach clock, the drafting fixes, the new
//! clauses, and an executed copy without tool vocabulary.

use countersign::render::{Mode, Options};
use serde_json::json;

use crate::app::*;
use crate::helpers::*;

fn baa(states: &[&str], days: u32) -> serde_json::Value {
    let mut v = example_json(BAA);
    v["states"] = json!(states);
    v["breach_notice_days"] = json!(days);
    v
}

fn with_provisions(p: serde_json::Value) -> serde_json::Value {
    let mut v = example_json(BAA);
    v["provisions"] = p;
    v
}

fn text_of(v: &serde_json::Value) -> (String, countersign::render::Report) {
    let r = render(&intake_from(v), Options::default());
    (fold(&pdftotext(&r.pdf)), r.report)
}

/// The BAA example as a subcontractor agreement: Northwind (business associate) engages its host.
fn subcontract(states: &[&str], days: u32) -> serde_json::Value {
    let mut v = baa(states, days);
    let ba = v["business_associate"].clone();
    let mut sub = ba.clone();
    sub["legal_name"] = json!("Harbor Cloud Hosting LLC");
    v["relationship"] = json!("business_associate_to_subcontractor");
    v["business_associate"] = ba;
    v["subcontractor"] = sub;
    if let Some(o) = v.as_object_mut() {
        o.remove("covered_entity");
        o.remove("subcontractors");
    }
    v["signers"] = json!([
        {"party": "subcontractor", "name": "Ana Silva", "title": "CEO", "email": "ana@harbor.example", "order": 1},
        {"party": "business_associate", "name": "Priya Raman", "title": "VP, Legal", "email": "priya@northwind.example", "order": 2}
    ]);
    v
}

#[test]
fn california_and_texas_at_thirty_days_leave_the_covered_entity_fifteen_and_the_report_names_the_law_and_margin() {
    let (text, report) = text_of(&baa(&["TX", "CA"], 30));
    assert!(
        text.contains("immediately, and in no case later than fifteen (15) calendar days after discovery"),
        "{text}"
    );
    let clock = &report.breach_clock;
    assert_eq!(clock.days, 15);
    assert!(
        clock.bound_by.iter().any(|b| b == "Cal. Civ. Code § 1798.82 (30) less the 15-day owner margin"),
        "{:?}",
        clock.bound_by
    );
    assert!(clock.bound_by.iter().any(|b| b == "Tex. Bus. & Com. Code § 521.053(i) (30) less the 15-day owner margin"));
    assert!(clock.explanation.contains("less the 15-day owner margin"), "{}", clock.explanation);
    assert_eq!(clock.margins.calendar_days, 15);
    // Texas alone: the Attorney General's thirty days from determination bind, not the sixty.
    let (text, report) = text_of(&baa(&["TX"], 30));
    assert_eq!(report.breach_clock.days, 15, "{}", report.breach_clock.explanation);
    assert!(text.contains("fifteen (15) calendar days after discovery"));
}

#[test]
fn a_subcontractor_gets_the_upstream_clock_less_the_margin_on_the_rendered_page() {
    let (text, report) = text_of(&subcontract(&[], 60));
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    assert!(text.contains("Subcontractor Business Associate Agreement"));
    assert!(text.contains("without unreasonable delay, and in no case later than thirty (30) calendar days"), "{text}");
    assert_eq!(
        report.breach_clock.bound_by,
        ["the upstream business associate’s clock (45) less the 15-day owner margin"]
    );
    // With California and Texas the upstream clock is fifteen, so the subcontractor gets the floor.
    let (text, report) = text_of(&subcontract(&["TX", "CA"], 30));
    assert!(text.contains("immediately, and in no case later than five (5) calendar days after discovery"), "{text}");
    assert!(report.breach_clock.explanation.contains("floored at 5"), "{}", report.breach_clock.explanation);
}

#[test]
fn a_zero_cure_period_reads_as_termination_without_a_cure_period() {
    let (text, report) = text_of(&with_provisions(json!({"cure_period_days": 0})));
    assert!(text.contains("immediately on written notice, without a cure period"), "{text}");
    assert!(!text.contains("zero (0)"), "no “zero (0) days” anywhere");
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    // Zero is outside the shipped policy's range, so it needs approval.
    assert!(report.departures.iter().any(|d| d.pointer.as_deref() == Some("/provisions/cure_period_days")));
}

#[test]
fn a_governmental_covered_entity_indemnifies_only_as_far_as_its_state_law_permits() {
    let (text, report) = text_of(&with_provisions(json!({"liability": {"public_body": "covered_entity"}})));
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    assert!(text.contains("Covered Entity is a governmental entity."), "{text}");
    assert!(text.contains("only to the extent the constitution and laws of its state permit a public body"));
    // The ordinary example has no such sentence, but keeps the cap floor, the precedence over the
    // Service Arrangement and the indemnification procedure.
    let (text, _) = text_of(&example_json(BAA));
    assert!(!text.contains("governmental entity"));
    assert!(text.contains("the greater of (a) two (2) times the fees"));
    assert!(text.contains("and (b) US$1,000,000"));
    assert!(text.contains("prevails over any limitation or exclusion of liability in the Service Arrangement"));
    assert!(text.contains("let it control the defence") && text.contains("admits fault"));
    // A public body that is not a party is refused at its pointer.
    let err = countersign::app::load_intake(
        &with_provisions(json!({"liability": {"public_body": "data_recipient"}})).to_string(),
    )
    .expect_err("not a party of a BAA");
    assert!(err.iter().any(|f| f.pointer.as_deref() == Some("/provisions/liability/public_body")), "{err:?}");
}

#[test]
fn the_new_york_dua_cites_the_electronic_signatures_and_records_act_and_the_texas_baa_ueta() {
    let r = render(&intake(&example_text(DUA)), Options::default());
    let text = fold(&pdftotext(&r.pdf));
    assert!(
        text.contains("New York Electronic Signatures and Records Act (N.Y. State Technology Law art. 3)"),
        "{text}"
    );
    assert!(!text.contains("Uniform Electronic Transactions Act"), "New York has not adopted UETA");
    // The BAA: Texas law governs, the business associate is in California.
    let (text, _) = text_of(&example_json(BAA));
    assert!(text.contains("Uniform Electronic Transactions Act as adopted in Texas (Tex. Bus. & Com. Code ch. 322)"));
    assert!(text.contains("Uniform Electronic Transactions Act as adopted in California (Cal. Civ. Code § 1633.1"));
}

#[test]
fn the_part_2_clause_appears_only_when_the_covered_entity_holds_substance_use_disorder_records() {
    let (off, report) = text_of(&example_json(BAA));
    assert!(!off.contains("42 CFR Part 2"));
    let row = report.provisions.iter().find(|p| p.tag == "P-PART2").expect("row");
    assert!(!row.enabled);
    let (on, report) = text_of(&with_provisions(json!({"part2": true})));
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    assert!(on.contains("42 CFR Part 2 Records"));
    assert!(on.contains("qualified service organization agreement under 42 CFR 2.11"));
    assert!(on.contains("February 16, 2026"));
    let row = report.provisions.iter().find(|p| p.tag == "P-PART2").expect("row");
    assert!(row.enabled && row.clause.as_deref().is_some_and(|c| c.ends_with("42 CFR Part 2 Records")));
    assert!(report.findings.iter().any(|f| f.element.as_deref() == Some("P-PART2") && f.code == "verify_with_counsel"));
}

#[test]
fn the_executed_copy_carries_citations_but_no_element_ids_and_the_draft_keeps_the_trace() {
    let i = intake(&example_text(BAA));
    let draft = fold(&pdftotext(&render(&i, Options::default()).pdf));
    assert!(draft.contains("Satisfies BAA-04"), "the draft for counsel keeps the trace");
    let sent = fold(&pdftotext(&render(&i, Options { mode: Mode::ForSignature, version: 1 }).pdf));
    for tool in ["Satisfies", "BAA-0", "BAA-1", "REL-0", "P-AUDIT", "P-LIABILITY"] {
        assert!(!sent.contains(tool), "the copy for signature says {tool:?}");
    }
    assert!(sent.contains("45 CFR 164.410"), "the citation stays on the clause");
    let dua =
        fold(&pdftotext(&render(&intake(&example_text(DUA)), Options { mode: Mode::ForSignature, version: 1 }).pdf));
    assert!(!dua.contains("DUA-0") && !dua.contains("Satisfies"));
}

#[test]
fn the_drafting_fixes_read_in_the_rendered_baa() {
    let (text, report) = text_of(&example_json(BAA));
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    let has = |s: &str| assert!(text.contains(s), "BAA lacks {s:?}");
    // 1. Return or destruction: one clause, two exceptions named as such.
    assert!(!text.contains("As the only exception"));
    has("There are two exceptions: (a)");
    // 2. Term follows the Service Arrangement and the PHI.
    has("it continues in effect for as long as the Service Arrangement does");
    has("never leaves PHI disclosed without one");
    has("Business Associate may terminate the Service Arrangement on written notice, and this Agreement with it");
    // 3. Independent contractor, with the reason.
    has("performs the Services as an independent contractor");
    has("164.404(a)(2) and 160.402(c)");
    // 4. Audit limit lifted only after a breach or a successful incident.
    has("a Security Incident has resulted in unauthorized access to, or use or disclosure of, PHI");
    // 5. Knowingly.
    has("shall not knowingly request or collect other categories of PHI");
    // 7. Limited data sets: the more protective term.
    // 8. Governing law: one law; addenda by their own terms.
    has("applies by its own terms to the information within that law’s scope; it does not change the law");
    // 9. Supersession keeps accrued claims; assignment clause.
    has("obligations and claims that accrued under the earlier agreement");
    has("successor to all or substantially all of its business");
    // 11. Rating agency.
    has("A- VII or better by A.M. Best");
    // 13. Change in law.
    has("sixty (60) days after either party asks for one in writing, either party may terminate");
    // New clauses.
    for h in [
        "Security Controls",
        "Data Location",
        "New Subcontractors",
        "Breach Notification and Costs",
        "Severability, Waiver, and Equitable Relief",
        "Transition and Cooperation",
        "Assignment",
        "Authority",
    ] {
        has(h);
    }
    has("multi-factor authentication");
    has("TLS 1.2 or later");
    has("NIST SP 800-111");
    has("only within the United States");
    has("twenty-four (24) months");
    has("“Including” means including without limitation");
    let (lds, _) = text_of(&with_provisions(json!({"limited_data_set": {"dua_reference": "DUA-1"}})));
    assert!(lds.contains("the term more protective of the Limited Data Set governs"));
    assert!(!lds.contains("prevails over this Agreement"));
}

#[test]
fn the_dua_adds_governing_law_small_cells_destruction_certificate_and_signer_authority() {
    let r = render(&intake(&example_text(DUA)), Options::default());
    assert_eq!(r.report.errors(), 0, "{:#?}", r.report.findings);
    let text = fold(&pdftotext(&r.pdf));
    for s in [
        "Governing Law",
        "laws of the State of New York",
        "fewer than eleven (11) Individuals",
        "signed by an officer of Data Recipient",
        "Authority to Sign",
        "A principal investigator or other researcher who signs for Data Recipient",
        "to that business associate",
    ] {
        assert!(text.contains(s), "DUA lacks {s:?}");
    }
    assert!(!text.contains("Exhibit A"), "the example refers to no exhibit it does not attach");
}

#[test]
fn check_json_lists_the_new_provisions_with_parameters_and_a_departure_for_each_term_outside_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |v: &serde_json::Value| -> serde_json::Value {
        let path = dir.path().join("intake.json");
        std::fs::write(&path, v.to_string()).expect("write");
        let out = countersign(&["check", "--intake", "intake.json", "--format", "json"], dir.path());
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let v = run(&example_json(BAA));
    let rows = v["provisions"].as_array().expect("provisions");
    let row = |tag: &str| rows.iter().find(|r| r["tag"] == tag).unwrap_or_else(|| panic!("{tag} row")).clone();
    assert_eq!(row("P-SECURITY")["parameters"]["log_retention_years"], 6);
    assert_eq!(row("P-SECURITY")["enabled"], true);
    assert_eq!(row("P-LOCATION")["parameters"]["united_states_only"], true);
    assert_eq!(row("P-OBJECTION")["parameters"]["days"], 15);
    assert_eq!(row("P-COSTS")["parameters"]["credit_monitoring_months"], 24);
    assert_eq!(row("P-AGENCY")["parameters"]["agent"], false);
    assert_eq!(row("P-CHANGE")["parameters"]["days_to_amend"], 60);
    assert_eq!(row("P-PART2")["enabled"], false);
    for tag in ["P-SECURITY", "P-LOCATION", "P-OBJECTION", "P-COSTS", "P-AGENCY", "P-CHANGE"] {
        assert!(row(tag)["clause"].is_string(), "{tag} names its clause");
    }
    assert_eq!(v["departures"].as_array().map(Vec::len), Some(0));
    assert!(v["breach_clock"]["bound_by"].is_array() && v["breach_clock"]["margins"]["calendar_days"] == 15);

    let v = run(&with_provisions(json!({
        "security_controls": false,
        "data_location": false,
        "subcontractor_objection_days": 5,
        "breach_costs": {"credit_monitoring_months": 12},
        "agency": true,
        "change_in_law_days": 120,
        "liability": {"cap_floor_usd": 250000}
    })));
    let rules: Vec<&str> =
        v["departures"].as_array().expect("departures").iter().filter_map(|d| d["element"].as_str()).collect();
    for rule in [
        "policy security_controls.may_be_off",
        "policy data_location.may_be_off",
        "policy subcontractor_objection.min_days",
        "policy breach_costs.min_credit_monitoring_months",
        "policy agency.agency_approved",
        "policy change_in_law",
        "policy liability.min_cap_floor_usd",
    ] {
        assert!(rules.contains(&rule), "no departure {rule}: {rules:?}");
    }
    let rows = v["provisions"].as_array().expect("provisions");
    let sec = rows.iter().find(|r| r["tag"] == "P-SECURITY").expect("row");
    assert_eq!(sec["enabled"], false);
    let errors: Vec<&serde_json::Value> =
        v["findings"].as_array().expect("f").iter().filter(|f| f["level"] == "error").collect();
    assert!(errors.is_empty(), "departures render cleanly: {errors:?}");
}

#[test]
fn signers_read_no_element_ids_and_the_executed_certificate_heading_says_it_once() {
    let (app, _dir) = spawn_app();
    let created = app.create(&example_text(BAA));
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let priya = app.sign_link("priya@northwind.example");
    let (status, html, _) = app.open(&priya);
    assert_eq!(status, 200);
    assert!(html.contains("Security Controls"), "the signer page shows the new clauses");
    for tool in ["Satisfies", "BAA-04", "P-AUDIT"] {
        assert!(!html.contains(tool), "the signer page says {tool:?}");
    }
    assert_eq!(app.sign(&priya, "Priya Raman", "VP, Legal").status, 200);
    let zoe = app.sign_link("zoe@lakeside.example");
    assert_eq!(app.sign(&zoe, "Zoë Ångström", "Chief Compliance Officer").status, 200);
    let text = fold(&pdftotext(&app.get(&format!("/api/v1/agreements/{id}/document")).body));
    assert!(text.contains("Certificate of Completion"));
    assert!(!text.contains("Certificate — Certificate"), "the heading names the certificate once");
    assert!(!text.contains("Satisfies"), "the executed copy carries no element ids");
}
