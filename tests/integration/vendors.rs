//! The vendor register (issue 16), through a real server on loopback with sled on disk: the
//! questionnaire's determinations, vendor-paper agreements found and verified by hash (and
//! never claimed by the public verify), the missing-BAA flag, reassessment reminders on the
//! day they fall due across restarts, and the executive report against counts made here.

use std::collections::BTreeMap;
use std::path::Path;

use countersign::app::service::Actor;
use countersign::clock::ManualClock;
use countersign::config::Config;
use countersign::domain::vendor::VendorInput;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::{T0, TestApp, spawn_app, spawn_app_with};
use crate::helpers::{BAA, assert_qpdf_ok, countersign, example_json, pdftotext};
use crate::smtp::eventually;
use crate::web::poll;

const DAY: u64 = 86_400;

struct Keys {
    vm: String,
    legal: String,
    sales: String,
}

fn keys(app: &TestApp) -> Keys {
    Keys {
        vm: app.key_for("vendor_manager", None).0,
        legal: app.key_for("legal", None).0,
        sales: app.key_for("sales", None).0,
    }
}

fn call(app: &TestApp, method: &str, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let raw = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let r = app.req(method, path, Some(key), "application/json", &raw);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn new_vendor(app: &TestApp, k: &Keys, body: Value) -> String {
    let (status, v) = call(app, "POST", "/api/v1/vendors", &k.vm, &body);
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().expect("id").to_string()
}

fn answer(app: &TestApp, key: &str, id: &str, answers: Value) -> Value {
    let (status, v) = call(app, "POST", &format!("/api/v1/vendors/{id}/questionnaire"), key, &answers);
    assert_eq!(status, 200, "{v}");
    v
}

fn upload_paper(app: &TestApp, key: &str, id: &str, query: &str, pdf: &[u8]) -> Value {
    let r = app.req("POST", &format!("/api/v1/vendors/{id}/papers?{query}"), Some(key), "application/pdf", pdf);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[test]
fn the_questionnaire_decides_the_conduit_de_identified_limited_data_set_and_subcontractor_cases() {
    let (app, _dir) = spawn_app();
    let k = keys(&app);
    let cases = [
        ("Fiberline Telecom", json!({"handles_phi": true, "transmission_only": true}), "conduit", "conduit exception"),
        (
            "Deidata Analytics",
            json!({"handles_phi": false, "deidentified_only": true}),
            "not_business_associate",
            "164.514(a)",
        ),
        (
            "Cohort Research Partners",
            json!({"handles_phi": true, "limited_data_set_only": true}),
            "dua_needed",
            "164.514(e)",
        ),
        (
            "Harbor Cloud Hosting",
            json!({"handles_phi": true, "we_are_business_associate": true}),
            "subcontractor",
            "160.103",
        ),
        ("Northwind Messaging", json!({"handles_phi": true}), "business_associate", "160.103"),
    ];
    for (name, answers, role, cites) in cases {
        let id = new_vendor(&app, &k, json!({"legal_name": name}));
        // Readable by sales; the determination is there, null, until the questionnaire is answered.
        let (status, before) = call(&app, "GET", &format!("/api/v1/vendors/{id}"), &k.sales, &Value::Null);
        assert_eq!(status, 200);
        assert!(before.get("determination").is_some_and(Value::is_null), "{before}");
        // Legal answers it (legal edits determinations; sales may not).
        let path = format!("/api/v1/vendors/{id}/questionnaire");
        assert_eq!(call(&app, "POST", &path, &k.sales, &answers).0, 403);
        let v = answer(&app, &k.legal, &id, answers);
        let d = &v["determination"];
        assert_eq!(d["role"], role, "{name}: {d}");
        assert!(d["citation"].as_str().is_some_and(|c| c.starts_with("45 CFR") && c.contains(cites)), "{name}: {d}");
        assert!(d["reason"].as_str().is_some_and(|r| r.len() > 40));
        assert!(d["answered_by"].as_str().is_some_and(|w| w.starts_with("key:") && w.ends_with(" legal test")), "{d}");
        assert_eq!(d["answered_at"], T0);
        let required = v["standing"]["baa_status"].as_str().expect("status");
        let want = if matches!(role, "conduit" | "not_business_associate") { "not_required" } else { "missing" };
        assert_eq!(required, want, "{name}");
        // Who answered is in the vendor's audit trail, whose chain is intact.
        let (_, audit) = call(&app, "GET", &format!("/api/v1/vendors/{id}/audit"), &k.legal, &Value::Null);
        assert_eq!(audit["intact"], true);
        let actions: Vec<(&str, &str)> = audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or(""),
                    e["who"].as_str().unwrap_or("").rsplit_once(' ').map_or("", |x| x.0),
                )
            })
            .map(|(a, w)| (a, w.rsplit(' ').next().unwrap_or("")))
            .collect();
        assert_eq!(actions, [("created", "vendor_manager"), ("questionnaire_answered", "legal")]);
    }
    // Contradictory answers are refused at their pointer, and nothing changes.
    let id = new_vendor(&app, &k, json!({"legal_name": "Undecided Inc."}));
    let (status, e) = call(
        &app,
        "POST",
        &format!("/api/v1/vendors/{id}/questionnaire"),
        &k.legal,
        &json!({"transmission_only": true, "deidentified_only": true}),
    );
    assert_eq!(status, 422, "{e}");
    let pointers: Vec<&str> =
        e["error"]["findings"].as_array().expect("findings").iter().filter_map(|f| f["pointer"].as_str()).collect();
    assert_eq!(pointers, ["/handles_phi", "/deidentified_only"]);
    let (_, v) = call(&app, "GET", &format!("/api/v1/vendors/{id}"), &k.legal, &Value::Null);
    assert!(v["determination"].is_null());
    // Filter by determination, accent-insensitive search.
    let (_, list) = call(&app, "GET", "/api/v1/vendors?determination=dua_needed", &k.sales, &Value::Null);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["legal_name"], "Cohort Research Partners");
}

#[test]
fn an_empty_legal_name_is_a_422_at_legal_name_and_nothing_is_created() {
    let (app, _dir) = spawn_app();
    let k = keys(&app);
    for body in [json!({"legal_name": "   "}), json!({}), json!({"legal_name": "", "website": "example.com"})] {
        let (status, e) = call(&app, "POST", "/api/v1/vendors", &k.vm, &body);
        assert_eq!(status, 422, "{e}");
        assert_eq!(e["error"]["code"], "invalid_vendor");
        assert_eq!(e["error"]["findings"][0]["pointer"], "/legal_name", "{e}");
    }
    let (status, e) = call(&app, "POST", "/api/v1/vendors", &k.vm, &json!({"legal_name": "X", "colour": "red"}));
    assert_eq!(status, 422, "unknown fields are named: {e}");
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("colour")));
    assert_eq!(call(&app, "POST", "/api/v1/vendors", &k.sales, &json!({"legal_name": "X"})).0, 403, "sales only read");
    let (_, list) = call(&app, "GET", "/api/v1/vendors", &k.vm, &Value::Null);
    assert_eq!(list["total"], 0);
    assert_eq!(list["items"], json!([]));
}

#[test]
fn a_vendor_paper_baa_is_found_by_search_and_verified_by_hash_but_never_claimed_by_the_public_verify() {
    let (app, _dir) = spawn_app();
    let k = keys(&app);
    let id = new_vendor(&app, &k, json!({"legal_name": "Ærø Médical Transcription ApS", "other_names": ["AMT"]}));
    let pdf = b"%PDF-1.7\n% the vendor's own BAA, signed on their paper\n%%EOF\n".to_vec();
    let sha = hex::encode(Sha256::digest(&pdf));
    let v = upload_paper(
        &app,
        &k.vm,
        &id,
        "kind=baa&title=Business%20Associate%20Addendum&effective_date=2026-06-01&term_months=24&breach_notice_days=15&return_or_destroy=destroy",
        &pdf,
    );
    assert_eq!(v["papers"][0]["sha256"], sha);
    let by = v["papers"][0]["uploaded_by"].as_str().expect("by").to_string();
    assert!(by.ends_with(" vendor_manager test"), "{by}");
    // Not a PDF, or a bad term: refused with the parameter named, nothing stored.
    let r = app.req(
        "POST",
        &format!("/api/v1/vendors/{id}/papers?kind=baa&title=t&effective_date=2026-02-30"),
        Some(&k.vm),
        "application/pdf",
        b"hello",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let pointers: Vec<String> = r.json()["error"]["findings"]
        .as_array()
        .expect("f")
        .iter()
        .filter_map(|f| f["pointer"].as_str().map(String::from))
        .collect();
    assert_eq!(pointers, ["?effective_date", ""]);

    // The staff search finds it, accent- and case-insensitively, and says what it is.
    for q in ["aero medical", "ÆRØ", "amt addendum"] {
        let r = app.req("GET", &format!("/api/v1/vendors/documents?q={}", urlencode(q)), Some(&k.sales), "", b"");
        let items = r.json()["items"].as_array().cloned().expect("items");
        assert_eq!(items.len(), 1, "{q}: {items:?}");
        assert_eq!(items[0]["sha256"], sha);
        assert_eq!(items[0]["record_type"], "vendor_document");
        assert_eq!(items[0]["category"], "vendor_paper");
    }
    let (_, list) = call(&app, "GET", &format!("/api/v1/vendors?q={}", urlencode("aero")), &k.sales, &Value::Null);
    assert_eq!(list["total"], 1);

    // Staff verify: no match as an archived agreement, but named as the vendor's copy.
    let staff = app.req("POST", "/api/v1/verify", Some(&k.vm), "application/pdf", &pdf).json();
    assert_eq!(staff["match"], false, "{staff}");
    assert!(staff.get("agreement_id").is_none());
    let copy = &staff["vendor_copy"];
    assert_eq!(copy["vendor_id"], id.as_str());
    assert_eq!(copy["sha256"], sha);
    assert_eq!(copy["message"], format!("vendor-provided copy, uploaded by {by} on January 4, 2027"));
    // The public verify never claims it, and says nothing about the vendor.
    let public = app.req("POST", "/verify", None, "application/pdf", &pdf);
    assert_eq!(public.status, 200);
    assert_eq!(public.json()["match"], false);
    assert!(!public.text().contains("vendor") && !public.text().contains(&id), "{}", public.text());

    // The stored copy comes back byte for byte, re-checked against its hash.
    let r = app.req("GET", &format!("/api/v1/vendors/{id}/files/{sha}"), Some(&k.legal), "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pdf);
    assert_eq!(r.header("x-document-sha256"), Some(sha.as_str()));
    assert_eq!(app.req("GET", &format!("/api/v1/vendors/{id}/files/{sha}"), Some(&k.sales), "", b"").status, 403);

    // Its terms make obligations; the BAA satisfies a business associate determination.
    answer(&app, &k.legal, &id, json!({"handles_phi": true}));
    let (_, v) = call(&app, "GET", &format!("/api/v1/vendors/{id}"), &k.vm, &Value::Null);
    assert_eq!(v["standing"]["baa_status"], "executed");
    let kinds: Vec<&str> =
        v["standing"]["obligations"].as_array().expect("o").iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["breach_notice", "term_end", "return_or_destroy"]);
    assert_eq!(v["standing"]["obligations"][1]["due"], "2028-06-01");

    // The backup holds the register's trees, the file included.
    let backup = app.get("/api/v1/backup").text();
    for tree in ["\"vendors\"", "\"vendor_events\"", "\"vendor_documents\""] {
        assert!(backup.contains(&format!("\"tree\":{tree}")), "{tree} missing from the backup");
    }
}

#[test]
fn a_business_associate_with_phi_flowing_and_no_executed_baa_is_flagged_until_its_baa_is_executed() {
    let (app, _dir) = spawn_app();
    let k = keys(&app);
    let id = new_vendor(
        &app,
        &k,
        json!({"legal_name": "Northwind Patient Messaging, Inc.",
               "data_flows": {"phi_categories": ["contact_details", "appointment_information"], "volume": "medium",
                              "locations": [{"country": "US", "state": "CA"}]}}),
    );
    answer(&app, &k.legal, &id, json!({"handles_phi": true}));
    let (_, v) = call(&app, "GET", &format!("/api/v1/vendors/{id}"), &k.sales, &Value::Null);
    assert_eq!(v["standing"]["baa_status"], "missing");
    let flag =
        v["standing"]["flags"].as_array().expect("flags").iter().find(|f| f["code"] == "missing_agreement").cloned();
    let flag = flag.unwrap_or_else(|| panic!("flagged: {v}"));
    assert_eq!(flag["since"], "2027-01-04", "flagged the day it became true");
    let (_, list) = call(&app, "GET", "/api/v1/vendors?flag=missing_agreement", &k.sales, &Value::Null);
    assert_eq!(list["total"], 1);

    // An agreement created for the vendor from its record starts from the vendor's details and
    // links back; while it is a draft the BAA is in progress, still flagged.
    let (_, pre) = call(&app, "GET", &format!("/api/v1/vendors/{id}/intake"), &k.sales, &Value::Null);
    assert_eq!(pre["business_associate"]["legal_name"], "Northwind Patient Messaging, Inc.");
    assert_eq!(pre["states"], json!(["CA"]));
    let mut intake = example_json(BAA);
    intake["business_associate"]["legal_name"] = pre["business_associate"]["legal_name"].clone();
    let (status, made) =
        call(&app, "POST", &format!("/api/v1/vendors/{id}/agreements"), &k.vm, &json!({"intake": intake}));
    assert_eq!(status, 201, "{made}");
    let agreement = made["agreement"]["id"].as_str().expect("agreement id").to_string();
    assert_eq!(made["vendor"]["standing"]["baa_status"], "in_progress");
    let (_, back) = call(&app, "GET", &format!("/api/v1/vendors?agreement={agreement}"), &k.sales, &Value::Null);
    assert_eq!(back["items"][0]["id"], id.as_str(), "the counterparty links back to the vendor");

    // Executed: the flag goes.
    execute(&app, &agreement);
    let (_, v) = call(&app, "GET", &format!("/api/v1/vendors/{id}"), &k.sales, &Value::Null);
    assert_eq!(v["standing"]["baa_status"], "executed", "{v}");
    assert!(!v["standing"]["flags"].as_array().expect("flags").iter().any(|f| f["code"] == "missing_agreement"));
    let kinds: Vec<&str> =
        v["standing"]["obligations"].as_array().expect("o").iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(kinds.contains(&"breach_notice") && kinds.contains(&"renewal"), "{kinds:?}");
}

/// Signs every signer of an agreement through its links.
fn execute(app: &TestApp, id: &str) {
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    if a["status"] == "draft" {
        assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    }
    for _ in 0..4 {
        let a = app.get(&format!("/api/v1/agreements/{id}")).json();
        for s in a["signers"].as_array().expect("signers") {
            if s["status"] == "notified" || s["status"] == "opened" {
                let email = s["email"].as_str().expect("email");
                let link = app.links_for(email, "/sign/").into_iter().rev().find(|l| app.open(l).0 == 200);
                if let Some(link) = link {
                    assert_eq!(app.sign(&link, s["name"].as_str().expect("n"), "Signer").status, 200);
                }
            }
        }
    }
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "executed");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn admin() -> Actor {
    Actor { who: "vm@example.com".into(), ..Default::default() }
}

fn configure(c: &mut Config) {
    c.staff_notice_to = Some("vendors@lakeside.example".into());
}

/// A service on `data` without the HTTP server (so without the sender task).
fn offline(data: &Path, clock: &ManualClock) -> countersign::http::AppState {
    crate::app::offline_state(data, clock, configure)
}

fn reminders(app: &TestApp) -> Vec<Value> {
    let all = app.get("/api/v1/outbox").json()["items"].as_array().cloned().expect("items");
    all.into_iter().filter(|m| m["kind"] == "notice_vendor_reassessment").collect()
}

#[test]
fn a_reassessment_reminder_is_sent_on_the_day_it_falls_due_and_not_twice_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0); // 2027-01-04
    let id = {
        let state = offline(dir.path(), &clock);
        let input: VendorInput = serde_json::from_value(json!({
            "legal_name": "Harbor Cloud Hosting LLC", "account_owner": "owner@lakeside.example",
            "last_assessed": "2026-01-10", "tier_override": {"tier": "high", "reason": "hosts our EHR backups"}
        }))
        .expect("input");
        let v = state.service.create_vendor(input, &admin()).expect("created");
        assert_eq!(state.service.queue_due_messages().expect("tick"), 0, "due on 2027-01-10, not yet");
        v.id
    };
    // The evening before: still nothing (a fresh process, as after a restart).
    clock.set(T0 + 5 * DAY + 11 * 3600); // 2027-01-09T23:00Z
    assert_eq!(offline(dir.path(), &clock).service.queue_due_messages().expect("tick"), 0);
    // The day it falls due: the running server's tick queues it and the sender delivers it.
    clock.set(T0 + 5 * DAY + 12 * 3600); // 2027-01-10T00:00Z
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", configure);
    eventually(10, "the reminder is sent", || reminders(&app).first().is_some_and(|m| m["status"] == "sent"));
    let sent = reminders(&app);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["id"], format!("vendor-reassessment:{id}:2027-01-10"));
    assert_eq!(sent[0]["to"], "owner@lakeside.example, vendors@lakeside.example");
    let eml: Vec<(String, String)> = app.outbox().into_iter().filter(|(_, t)| t.contains("Harbor Cloud")).collect();
    assert_eq!(eml.len(), 1);
    assert!(eml[0].1.contains("Vendor reassessment due: Harbor Cloud Hosting LLC"), "{}", eml[0].1);
    assert!(eml[0].1.contains("falls due on January 10, 2027"), "{}", eml[0].1);
    // The vendor shows it due.
    let v = app.get(&format!("/api/v1/vendors/{id}")).json();
    assert_eq!(v["standing"]["reassessment_due"], true);
    app.stop();

    // Restarted a day later: the sender ticks again (twice), and nothing is queued again.
    clock.advance(DAY);
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", configure);
    app.sender_passes(2);
    assert_eq!(reminders(&app).len(), 1, "not twice");
    assert_eq!(app.outbox().into_iter().filter(|(_, t)| t.contains("Harbor Cloud")).count(), 1);
    // Recording the reassessment moves the next one a year on: the flag goes.
    let r = app.post(&format!("/api/v1/vendors/{id}/reassessed"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["standing"]["next_reassessment"], "2028-01-11");
    assert_eq!(r.json()["standing"]["reassessment_due"], false);
    app.stop();
}

/// (figure → value) from the CSV's figures section.
fn csv_figures(csv: &str) -> BTreeMap<String, u64> {
    let (_, figures) = csv.split_once("\nfigure,value\n").expect("figures section");
    figures
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(',').expect("figure,value");
            (k.to_string(), v.parse().expect("number"))
        })
        .collect()
}

#[test]
fn the_executive_reports_figures_equal_the_counts_computed_from_the_api() {
    let (app, dir) = spawn_app();
    let k = keys(&app);
    let flows = json!({"phi_categories": ["claims"], "volume": "low"});
    // A business associate without a BAA.
    let a = new_vendor(&app, &k, json!({"legal_name": "Acme Billing", "data_flows": flows}));
    answer(&app, &k.legal, &a, json!({"handles_phi": true}));
    // A business associate with its own-paper BAA renewing within 90 days.
    let b = new_vendor(
        &app,
        &k,
        json!({"legal_name": "Bright Scribe", "data_flows": {"phi_categories": ["mental_health"], "volume": "high"}}),
    );
    answer(&app, &k.legal, &b, json!({"handles_phi": true}));
    upload_paper(
        &app,
        &k.vm,
        &b,
        "kind=baa&title=Bright%20BAA&effective_date=2026-03-01&term_months=12&auto_renew=true",
        b"%PDF-1.4 bright",
    );
    // A conduit with an unconfirmed subcontractor, an overdue finding and a stale SOC 2.
    let c = new_vendor(
        &app,
        &k,
        json!({"legal_name": "Çelik Fiber", "subcontractors": [{"name": "Relay Co", "downstream_baa_confirmed": false}],
               "findings": [{"title": "MFA on consoles", "owner": "ops@lakeside.example", "due": "2026-12-01"}]}),
    );
    answer(&app, &k.legal, &c, json!({"handles_phi": true, "transmission_only": true}));
    let r = app.req(
        "POST",
        &format!("/api/v1/vendors/{c}/documents?kind=soc2_type2&issued=2025-10-01"),
        Some(&k.vm),
        "application/pdf",
        b"%PDF-1.4 soc2",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Undetermined, high by override, reassessment overdue.
    new_vendor(
        &app,
        &k,
        json!({"legal_name": "Delta Couriers", "last_assessed": "2025-06-01",
                               "tier_override": {"tier": "high", "reason": "paper records in transit"}}),
    );
    // A limited data set recipient.
    let e = new_vendor(&app, &k, json!({"legal_name": "Epsilon Research", "data_flows": {"limited_data_set": true}}));
    answer(&app, &k.legal, &e, json!({"handles_phi": true, "limited_data_set_only": true}));

    // Count from the API, page by page (limit 2: the cursor is exercised too).
    let mut items: Vec<Value> = Vec::new();
    let mut path = "/api/v1/vendors?limit=2".to_string();
    loop {
        let page = app.req("GET", &path, Some(&k.sales), "", b"").json();
        assert_eq!(page["total"], 5);
        items.extend(page["items"].as_array().cloned().expect("items"));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/vendors?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(items.len(), 5);
    let names: Vec<&str> = items.iter().filter_map(|v| v["legal_name"].as_str()).collect();
    assert_eq!(names, ["Acme Billing", "Bright Scribe", "Çelik Fiber", "Delta Couriers", "Epsilon Research"]);
    let role = |v: &Value| v["determination"]["role"].as_str().unwrap_or("undetermined").to_string();
    let flags = |code: &[&str]| -> u64 {
        items
            .iter()
            .flat_map(|v| v["standing"]["flags"].as_array().cloned().unwrap_or_default())
            .filter(|f| code.contains(&f["code"].as_str().unwrap_or("")))
            .count() as u64
    };
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    want.insert("vendors".into(), items.len() as u64);
    for t in ["high", "medium", "low"] {
        want.insert(format!("tier_{t}"), items.iter().filter(|v| v["standing"]["tier"] == t).count() as u64);
    }
    for d in ["business_associate", "subcontractor", "dua_needed", "conduit", "not_business_associate", "undetermined"]
    {
        want.insert(format!("determination_{d}"), items.iter().filter(|v| role(v) == d).count() as u64);
    }
    let bas: Vec<&Value> =
        items.iter().filter(|v| matches!(role(v).as_str(), "business_associate" | "subcontractor")).collect();
    want.insert("business_associates".into(), bas.len() as u64);
    want.insert(
        "business_associates_without_baa".into(),
        bas.iter().filter(|v| v["standing"]["baa_status"] != "executed").count() as u64,
    );
    want.insert(
        "overdue_reassessments".into(),
        items.iter().filter(|v| v["standing"]["reassessment_due"] == true).count() as u64,
    );
    want.insert("overdue_findings".into(), flags(&["finding_overdue"]));
    want.insert("expiring_documents".into(), flags(&["document_expired", "document_expiring", "soc2_stale"]));
    want.insert(
        "renewing_90_days".into(),
        items
            .iter()
            .filter(|v| {
                v["standing"]["obligations"].as_array().into_iter().flatten().any(|o| {
                    matches!(o["kind"].as_str(), Some("renewal" | "term_end"))
                        && o["due"].as_str().is_some_and(|d| ("2027-01-04"..="2027-04-04").contains(&d))
                })
            })
            .count() as u64,
    );
    want.insert("unconfirmed_subcontractors".into(), flags(&["subcontractor_unconfirmed"]));
    // The fixture covers every figure with something to count.
    for f in [
        "business_associates_without_baa",
        "overdue_reassessments",
        "overdue_findings",
        "expiring_documents",
        "renewing_90_days",
        "unconfirmed_subcontractors",
    ] {
        assert!(want[f] >= 1, "{f} is exercised");
    }

    let r = app.req("GET", "/api/v1/vendors/report?format=csv", Some(&k.sales), "", b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/csv")));
    let csv = r.text();
    assert_eq!(csv_figures(&csv), want, "{csv}");
    for v in &items {
        let row = format!(
            "{},{},{},{},{},{}",
            v["id"].as_str().unwrap_or(""),
            v["legal_name"].as_str().unwrap_or(""),
            role(v),
            v["standing"]["tier"].as_str().unwrap_or(""),
            v["standing"]["baa_status"].as_str().unwrap_or(""),
            v["standing"]["next_reassessment"].as_str().unwrap_or("")
        );
        assert!(csv.contains(&row), "{row} in {csv}");
    }

    // The PDF says the same, through the render pipeline, with its chart page.
    let r = app.req("GET", "/api/v1/vendors/report?format=pdf", Some(&k.sales), "", b"");
    assert_eq!(r.status, 200);
    assert_qpdf_ok(&r.body);
    let text = pdftotext(&r.body);
    assert!(text.contains("Vendor Register — Executive Report"), "{text}");
    for (label, key) in [
        ("Business associates without an executed BAA", "business_associates_without_baa"),
        ("Reassessments due or overdue", "overdue_reassessments"),
        ("Open findings past their due date", "overdue_findings"),
        ("Subcontractors without a confirmed downstream BAA", "unconfirmed_subcontractors"),
    ] {
        assert!(text.contains(&format!("{label}: {}", want[key])), "{label}: {} in {text}", want[key]);
    }
    assert!(text.contains("Çelik Fiber") && text.contains("Charts") && text.contains("Vendors by risk tier"), "{text}");
    std::fs::create_dir_all("target/screenshots").ok();
    std::fs::write("target/screenshots/vendor-report.pdf", &r.body).ok();
    let csv_api = csv;
    app.stop();

    // The CLI on the stopped store writes the same report.
    let out = dir.path().join("report.csv");
    let data = dir.path().to_str().expect("utf-8");
    let run = countersign(
        &["vendors", "report", "--out", out.to_str().expect("p"), "--format", "csv", "--data", data],
        dir.path(),
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let cli_csv = std::fs::read_to_string(&out).expect("written");
    assert_eq!(csv_figures(&cli_csv).get("vendors"), Some(&5));
    assert_eq!(csv_figures(&cli_csv)["business_associates"], want["business_associates"]);
    let _ = csv_api;
    let list = countersign(&["vendors", "list", "--data", data], dir.path());
    assert!(list.status.success());
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(stdout.contains("Çelik Fiber") && stdout.contains("5 vendor(s)"), "{stdout}");
}

const PASSWORD: &str = "a quiet harbour at dusk";

#[test]
fn in_a_real_browser_the_vendor_pages_show_every_section_and_take_the_questionnaire() {
    use crate::browser::Driver;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = crate::app::spawn_app_at(dir.path(), ManualClock::at(T0));
    let setup = app.setup_path();
    let r = app.post(
        "/api/v1/vendors",
        &json!({"legal_name": "Northwind Patient Messaging, Inc.", "other_names": ["Northwind"],
                "website": "https://northwind.example", "account_owner": "ada@example.com",
                "privacy_contact": {"name": "Marta Núñez", "email": "privacy@northwind.example"},
                "data_flows": {"phi_categories": ["contact_details", "appointment_information"], "systems": ["SMS gateway"],
                               "locations": [{"country": "US", "state": "CA"}], "volume": "medium"},
                "findings": [{"title": "Annual penetration test summary outstanding", "owner": "ada@example.com", "due": "2026-12-15"}],
                "subcontractors": [{"name": "Harbor Cloud Hosting LLC", "services": "hosting", "downstream_baa_confirmed": true}]})
        .to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    for width in [1280, 390] {
        let d = Driver::start(width);
        if width == 1280 {
            d.go(&app.url(&setup));
            d.type_into("#f-email", "ada@example.com");
            d.type_into("#f-name", "Ada Admin");
            d.type_into("#f-password", PASSWORD);
            d.type_into("#f-password_confirm", PASSWORD);
            d.click("button[type=submit]");
            assert!(poll(|| d.source().contains("welcome") || d.source().contains("Sign in")), "{}", d.source());
        }
        d.go(&app.url("/login"));
        d.type_into("#email", "ada@example.com");
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(poll(|| d.source().contains("Sign out")), "{}", d.source());
        d.go(&app.url("/vendors"));
        assert!(poll(|| d.source().contains(&format!("href=\"/vendors/{id}\""))), "{}", d.source());
        assert_eq!(d.axe_violations(), Vec::<String>::new(), "axe-core on the vendor list at {width}");
        assert!(d.fits(width), "the vendor list scrolls sideways at {width} px");
        d.save_screenshot(&format!("vendor-list-{width}"));
        // The report link works with the session (the API's report needs a key).
        let pdf =
            d.script("return fetch('/vendor-report.pdf').then(r => r.status + ' ' + r.headers.get('content-type'));");
        assert_eq!(pdf, "200 application/pdf");
        d.go(&app.url(&format!("/vendors/{id}")));
        assert!(poll(|| d.source().contains("Role determination")), "{}", d.source());
        if width == 1280 {
            // Submitting without the PHI answer: the error is shown and tied to the questions.
            d.click("form[action$=questionnaire] button[type=submit]");
            assert!(poll(|| d.source().contains("Answer whether the vendor handles PHI")), "{}", d.source());
            d.click("#phi-yes");
            d.click("form[action$=questionnaire] button[type=submit]");
            assert!(poll(|| d.source().contains("needs an executed BAA before PHI flows")), "{}", d.source());
        }
        for section in [
            "Identity",
            "Data flows and risk",
            "Due diligence",
            "Open findings",
            "Agreements",
            "Subcontractors",
            "Obligations",
            "History",
            "Needs attention",
        ] {
            assert!(d.source().contains(section), "{section} at {width}");
        }
        assert!(d.source().contains("PHI flows to this vendor and no executed BAA"), "flagged on the page");
        assert_eq!(d.axe_violations(), Vec::<String>::new(), "axe-core on the vendor page at {width}");
        assert!(d.fits(width), "the vendor page scrolls sideways at {width} px");
        d.save_screenshot(&format!("vendor-page-{width}"));
        // An edit form (a repeating group) and the dashboard's register figures.
        for (path, name, marker) in [
            (format!("/vendors/{id}/edit/findings"), "vendor-edit-findings", "Remove this finding"),
            (format!("/vendors/{id}/edit/paper"), "vendor-upload-paper", "The executed agreement (PDF)"),
            ("/".to_string(), "dashboard", "data-figure=\"overdue_findings\""),
        ] {
            d.go(&app.url(&path));
            assert!(poll(|| d.source().contains(marker)), "{name}: {}", d.source());
            assert_eq!(d.axe_violations(), Vec::<String>::new(), "axe-core on {name} at {width}");
            assert!(d.fits(width), "{name} scrolls sideways at {width} px");
            d.save_screenshot(&format!("{name}-{width}"));
        }
    }
    // The answer came from the page, recorded under the person's email.
    let v = app.get(&format!("/api/v1/vendors/{id}")).json();
    assert_eq!(v["determination"]["role"], "business_associate");
    assert_eq!(v["determination"]["answered_by"], "ada@example.com");
}
