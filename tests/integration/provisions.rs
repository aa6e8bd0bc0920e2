//! Negotiated provisions: rendering, policy departures, approval and clause diffs.

use countersign::render::Options;
use serde_json::json;

use crate::app::*;
use crate::helpers::*;

fn with_provisions(p: serde_json::Value) -> serde_json::Value {
    let mut v = example_json(BAA);
    v["provisions"] = p;
    v
}

#[test]
fn each_provision_renders_its_clause_with_its_parameters_and_is_removed_when_off() {
    // (intake provisions, clause heading, text that must print)
    let cases = [
        (
            json!({"audit_rights": {"notice_days": 15, "per_year": 2, "cost": "shared"}}),
            "Audit and Documentation Rights",
            vec!["fifteen (15) days", "two (2) times", "share the cost"],
        ),
        (
            json!({"liability": {"mutual": false, "cap_amount_usd": 5000000, "phi_carve_out": true}}),
            "Liability and Indemnification",
            vec![
                "US$5,000,000",
                "Business Associate shall indemnify",
                "does not apply to a party’s breach of its obligations concerning PHI",
            ],
        ),
        (json!({"cyber_insurance": {"coverage_usd": 3000000}}), "Cyber Insurance", vec!["US$3,000,000"]),
        (json!({"cure_period_days": 20}), "Termination for Material Breach", vec!["twenty (20) days"]),
        (
            json!({"limited_data_set": {"dua_reference": "DUA-2027-004"}}),
            "Limited Data Sets",
            vec!["DUA-2027-004", "164.514(e)(4)"],
        ),
        (json!({"governing_law": "CA"}), "Governing Law", vec!["State of California"]),
        (json!({"preemption": true}), "State-Law Addenda and More Stringent Law", vec!["more stringent", "160.203"]),
    ];
    for (p, heading, texts) in cases {
        let r = render(&intake_from(&with_provisions(p.clone())), Options::default());
        assert_eq!(r.report.errors(), 0, "{p}: {:#?}", r.report.findings);
        let text = fold(&pdftotext(&r.pdf));
        assert!(text.contains(heading), "{p}: no clause {heading:?}");
        for t in texts {
            assert!(text.contains(t), "{p}: clause lacks {t:?}");
        }
    }
    // Off: the clause disappears and the report says so.
    for (key, heading, tag) in [
        ("audit_rights", "Audit and Documentation Rights", "P-AUDIT"),
        ("liability", "Liability and Indemnification", "P-LIABILITY"),
        ("cyber_insurance", "Cyber Insurance", "P-INSURANCE"),
        ("preemption", "More Stringent Law", "P-PREEMPTION"),
    ] {
        let r = render(&intake_from(&with_provisions(json!({ key: false }))), Options::default());
        let text = fold(&pdftotext(&r.pdf));
        assert!(!text.contains(heading), "{key}: {heading:?} should be gone");
        let row = r.report.provisions.iter().find(|p| p.tag == tag).expect("row");
        assert!(!row.enabled);
        assert!(
            r.report.departures.iter().any(|d| d.pointer.as_deref() == Some(&format!("/provisions/{key}") as &str)),
            "{key}: turning it off departs from policy"
        );
    }
    // The limited-data-set statement is off by default.
    let r = render(&intake(&example_text(BAA)), Options::default());
    assert!(!fold(&pdftotext(&r.pdf)).contains("Limited Data Sets"));
}

#[test]
fn the_check_report_separates_elements_provisions_and_departures() {
    let r = render(&intake(&example_text(BAA)), Options::default());
    assert!(r.report.departures.is_empty(), "the shipped policy accepts the example: {:#?}", r.report.departures);
    assert!(r.report.provisions.iter().filter(|p| p.enabled).all(|p| p.clause.is_some()));
    let out =
        render(&intake_from(&with_provisions(json!({"liability": {"cap_multiple_of_fees": 1}}))), Options::default());
    assert_eq!(out.report.errors(), 0);
    let d = &out.report.departures;
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].pointer.as_deref(), Some("/provisions/liability/cap_multiple_of_fees"));
    assert_eq!(d[0].element.as_deref(), Some("policy liability.min_cap_multiple"));
    assert!(!out.report.passes());
}

#[test]
fn a_draft_outside_policy_is_refused_at_send_until_approved_and_the_approval_is_audited() {
    let (app, _dir) = spawn_app();
    let v = with_provisions(json!({"liability": {"cap_multiple_of_fees": 1}, "cure_period_days": 45}));
    let a = app.create(&v.to_string());
    assert_eq!(a["status"], "awaiting_approval");
    let id = a["id"].as_str().expect("id");

    let refused = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(refused.status, 422, "{}", refused.text());
    let body = refused.json();
    assert_eq!(body["error"]["code"], "needs_approval");
    let msg = body["error"]["message"].as_str().expect("message");
    assert!(msg.contains("/provisions/liability/cap_multiple_of_fees") && msg.contains("minimum of 2× fees"), "{msg}");
    let rules: Vec<&str> =
        body["error"]["findings"].as_array().expect("findings").iter().filter_map(|f| f["element"].as_str()).collect();
    assert!(rules.contains(&"policy liability.min_cap_multiple") && rules.contains(&"policy cure_period"), "{rules:?}");

    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/approve"), r#"{"reason": ""}"#).status, 422);
    let ok = app
        .post(&format!("/api/v1/agreements/{id}/approve"), r#"{"reason": "Cap agreed by GC for a low-volume pilot"}"#);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["status"], "draft");
    let sent = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(sent.status, 200, "{}", sent.text());

    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    let approved =
        audit["items"].as_array().expect("items").iter().find(|e| e["kind"] == "approved").expect("approved event");
    assert_eq!(approved["detail"]["reason"], "Cap agreed by GC for a low-volume pilot");
    assert_eq!(approved["actor"], "admin:bootstrap");
}

#[test]
fn a_replaced_version_needs_approval_again() {
    let (app, _dir) = spawn_app();
    let v = with_provisions(json!({"cyber_insurance": {"coverage_usd": 500000}}));
    let id = app.create(&v.to_string())["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/approve"), r#"{"reason": "ok"}"#).status, 200);
    let r = app.put(&format!("/api/v1/agreements/{id}"), &v.to_string());
    assert_eq!(r.json()["status"], "awaiting_approval", "approval covers one version only");
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 422);
}

#[test]
fn the_diff_between_two_versions_names_exactly_the_changed_clauses_and_words() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    let mut v2 = with_provisions(json!({"liability": {"cap_multiple_of_fees": 3}}));
    v2["breach_notice_days"] = json!(7);
    assert_eq!(app.put(&format!("/api/v1/agreements/{id}"), &v2.to_string()).status, 200);

    let versions = app.get(&format!("/api/v1/agreements/{id}/versions")).json();
    assert_eq!(versions["items"].as_array().map(Vec::len), Some(2));
    let v1pdf = app.get(&format!("/api/v1/agreements/{id}/versions/1/document"));
    assert_eq!(v1pdf.status, 200);
    assert_eq!(v1pdf.header("x-document-sha256"), versions["items"][0]["sha256"].as_str());

    let d = app.get(&format!("/api/v1/agreements/{id}/diff?from=1&to=2"));
    assert_eq!(d.status, 200, "{}", d.text());
    let changes = d.json()["changes"].as_array().expect("changes").clone();
    let clauses: Vec<&str> = changes.iter().filter_map(|c| c["clause"].as_str()).collect();
    assert_eq!(
        clauses,
        [
            "Obligations of Business Associate › Reporting of Improper Use or Disclosure",
            "Negotiated Terms › Liability and Indemnification"
        ]
    );
    let words = |c: &serde_json::Value, k: &str| {
        c[k].as_array().expect(k).iter().filter_map(|w| w.as_str()).collect::<Vec<_>>().join(" ")
    };
    assert_eq!(words(&changes[0], "removed"), "ten (10)");
    assert_eq!(words(&changes[0], "added"), "seven (7)");
    assert_eq!(words(&changes[1], "removed"), "two (2)");
    assert_eq!(words(&changes[1], "added"), "three (3)");
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}/diff?from=1")).status, 422);
}

#[test]
fn the_offline_diff_command_names_the_same_clauses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut v2 = with_provisions(json!({"liability": {"cap_multiple_of_fees": 3}}));
    v2["breach_notice_days"] = json!(7);
    std::fs::write(dir.path().join("b.json"), v2.to_string()).expect("write");
    let out = countersign(
        &["diff", "--intake", example_path(BAA).to_str().expect("p"), "--intake", "b.json", "--format", "json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let same = countersign(
        &[
            "diff",
            "--intake",
            example_path(BAA).to_str().expect("p"),
            "--intake",
            example_path(BAA).to_str().expect("p"),
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("no differences"));
}

#[test]
fn invalid_provisions_are_rejected_with_their_pointer() {
    for (p, ptr) in [
        (json!({"cure_period_days": 61}), "/provisions/cure_period_days"),
        (
            json!({"liability": {"cap_multiple_of_fees": 2, "cap_amount_usd": 5}}),
            "/provisions/liability/cap_amount_usd",
        ),
        (json!({"audit_rights": {"cost": "nobody"}}), "/provisions/audit_rights/cost"),
        (json!({"governing_law": "ZZ"}), "/provisions/governing_law"),
        (json!({"liabilty": false}), "/provisions/liabilty"),
    ] {
        let err = countersign::app::load_intake(&with_provisions(p.clone()).to_string()).expect_err("must be rejected");
        assert!(err.iter().any(|f| f.pointer.as_deref() == Some(ptr)), "{p}: {err:?}");
    }
}

/// The example DUA between the example BAA's parties (covered entity, and the business
/// associate as data recipient).
fn dua_between_the_baa_s_parties() -> serde_json::Value {
    let mut dua = example_json(DUA);
    dua["covered_entity"] = example_json(BAA)["covered_entity"].clone();
    dua["data_recipient"] = example_json(BAA)["business_associate"].clone();
    dua["signers"][0]["email"] = json!("priya@northwind.example");
    dua["signers"][1]["email"] = json!("zoe@lakeside.example");
    dua
}

#[test]
fn the_limited_data_set_statement_cross_references_an_existing_dua_between_the_same_parties() {
    let (app, _dir) = spawn_app();
    let dua = dua_between_the_baa_s_parties();
    let dua_id = app.create(&dua.to_string())["id"].as_str().expect("id").to_string();
    // A DUA between other parties must not be picked.
    let other = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();

    let baa = app.create(&with_provisions(json!({"limited_data_set": true})).to_string());
    let id = baa["id"].as_str().expect("id");
    let text = fold(&pdftotext(&app.get(&format!("/api/v1/agreements/{id}/document")).body));
    assert!(text.contains("Limited Data Sets"), "the statement is included");
    assert!(text.contains(&format!("{dua_id} (Data Use Agreement)")), "cross-references {dua_id}");
    assert!(!text.contains(&other), "never a DUA between other parties");
}

#[test]
fn a_sales_key_s_draft_cross_references_only_a_dua_it_created_itself() {
    let (app, _dir) = spawn_app();
    let (sales, _) = app.key_for("sales", None);
    let dua = dua_between_the_baa_s_parties();
    // Another person's DUA between the same parties: not theirs to name.
    let theirs = app.create(&dua.to_string())["id"].as_str().expect("id").to_string();
    let baa = with_provisions(json!({"limited_data_set": true})).to_string();
    let draft_text = |app: &TestApp| {
        let r = app.req("POST", "/api/v1/agreements", Some(&sales), "application/json", baa.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().expect("id").to_string();
        fold(&pdftotext(&app.req("GET", &format!("/api/v1/agreements/{id}/document"), Some(&sales), "", b"").body))
    };
    let text = draft_text(&app);
    assert!(text.contains("Limited Data Sets"), "the statement is included");
    assert!(!text.contains(&theirs), "never another person's DUA");

    let r = app.req("POST", "/api/v1/agreements", Some(&sales), "application/json", dua.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let own = r.json()["id"].as_str().expect("id").to_string();
    let text = draft_text(&app);
    assert!(text.contains(&format!("{own} (Data Use Agreement)")), "cross-references their own {own}");
    assert!(!text.contains(&theirs), "never another person's DUA");
}
