//! The vendor register from the web pages (issue 16), through a real server with sled on
//! disk, as signed-in people: every section's edit form, a field error beside its field with
//! nothing written, a form without its CSRF token refused, a sales person refused the forms,
//! uploads (due-diligence documents and vendor-paper agreements) and their downloads, the
//! dashboard's figures equal to the executive report's, and agreements tied to vendors.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::app::*;
use crate::helpers::BAA;
use crate::web::{Client, signed_in};

fn vendor(app: &TestApp, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/vendors/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn new_vendor(app: &TestApp, body: Value) -> String {
    let r = app.post("/api/v1/vendors", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

/// Posts a section's form with the page's token; returns (status, location, body).
fn save(c: &mut Client, id: &str, section: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let path = format!("/vendors/{id}/edit/{section}");
    let token = c.csrf(&path);
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    c.send("POST", &path, &form)
}

/// A multipart/form-data body: text fields, then the file.
fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----countersign-test-boundary-7d1f";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

fn upload(c: &mut Client, id: &str, section: &str, fields: &[(&str, &str)], file: &[u8]) -> (u16, String, String) {
    let path = format!("/vendors/{id}/edit/{section}");
    let token = c.csrf(&path);
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(fields);
    let (ctype, body) = multipart(&all, file);
    let mut r = c
        .http
        .post(&format!("{}{path}", c.base))
        .header("Cookie", &c.cookie)
        .header("Content-Type", &ctype)
        .send(&body[..])
        .expect("answers");
    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), loc, r.body_mut().read_to_string().unwrap_or_default())
}

fn get_bytes(c: &Client, path: &str) -> (u16, Vec<u8>) {
    let mut r = c.http.get(&format!("{}{path}", c.base)).header("Cookie", &c.cookie).call().expect("answers");
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap_or_default())
}

#[test]
fn a_vendor_manager_edits_every_section_of_a_vendor_from_the_web_pages() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Northwind Messaging"}));
    let mut c = signed_in(&app, "vic@example.com", "vendor_manager");

    // The vendor page offers each section's form.
    let (status, _, page) = c.send("GET", &format!("/vendors/{id}"), &[]);
    assert_eq!(status, 200);
    for s in ["identity", "flows", "risk", "findings", "subcontractors", "link", "document", "paper"] {
        assert!(page.contains(&format!("/vendors/{id}/edit/{s}")), "a link to the {s} form");
    }

    let (status, loc, body) = save(
        &mut c,
        &id,
        "identity",
        &[
            ("/legal_name", "Northwind Patient Messaging, Inc."),
            ("/other_names", "Northwind\nNW Messaging"),
            ("/address", "1 Harbor Way, Oakland, CA"),
            ("/website", "https://northwind.example"),
            ("/account_owner", "vic@example.com"),
            ("/privacy_contact/name", "Marta Núñez"),
            ("/privacy_contact/email", "privacy@northwind.example"),
            ("/security_contact/name", ""),
            ("/security_contact/email", ""),
        ],
    );
    assert_eq!((status, loc.as_str()), (303, format!("/vendors/{id}?done=identity").as_str()), "{body}");
    let (_, _, page) = c.send("GET", &loc, &[]);
    assert!(page.contains("role=\"status\">Saved: the vendor&#39;s identity is updated."), "{page}");

    let (status, _, body) = save(
        &mut c,
        &id,
        "flows",
        &[
            ("/data_flows/phi_categories", "contact_details\nmental_health"),
            ("/data_flows/systems", "SMS gateway"),
            ("/data_flows/locations", "US-CA\nDE"),
            ("/data_flows/volume", "high"),
            ("/data_flows/part2", "yes"),
        ],
    );
    assert_eq!(status, 303, "{body}");
    let (status, _, body) = save(
        &mut c,
        &id,
        "findings",
        &[
            ("/findings/0/title", "Pen-test summary outstanding"),
            ("/findings/0/owner", "vic"),
            ("/findings/0/due", "2027-01-15"),
        ],
    );
    assert_eq!(status, 303, "{body}");
    let (status, _, body) = save(
        &mut c,
        &id,
        "subcontractors",
        &[
            ("/subcontractors/0/name", "Harbor Cloud Hosting LLC"),
            ("/subcontractors/0/services", "hosting"),
            ("/subcontractors/0/downstream_baa_confirmed", "yes"),
        ],
    );
    assert_eq!(status, 303, "{body}");
    let (status, _, body) = save(
        &mut c,
        &id,
        "risk",
        &[
            ("/tier_override/tier", "medium"),
            ("/tier_override/reason", "encrypted at rest; reviewed"),
            ("/last_assessed", "2026-10-01"),
        ],
    );
    assert_eq!(status, 303, "{body}");

    let v = vendor(&app, &id);
    assert_eq!(v["legal_name"], "Northwind Patient Messaging, Inc.");
    assert_eq!(v["other_names"], json!(["Northwind", "NW Messaging"]));
    assert_eq!(v["privacy_contact"], json!({"name": "Marta Núñez", "email": "privacy@northwind.example"}));
    assert_eq!(v["security_contact"], Value::Null);
    assert_eq!(
        v["data_flows"]["locations"],
        json!([{"country": "US", "state": "CA"}, {"country": "DE", "state": null}])
    );
    assert_eq!((v["data_flows"]["volume"].as_str(), v["data_flows"]["part2"].as_bool()), (Some("high"), Some(true)));
    assert_eq!(v["findings"][0]["due"], "2027-01-15");
    assert_eq!(v["subcontractors"][0]["downstream_baa_confirmed"], true);
    assert_eq!(
        (v["tier_override"]["tier"].as_str(), v["tier_override"]["by"].as_str()),
        (Some("medium"), Some("vic@example.com"))
    );
    assert_eq!(v["last_assessed"], "2026-10-01");

    // Closing the finding and removing the subcontractor through the same forms.
    let (status, _, _) = save(
        &mut c,
        &id,
        "findings",
        &[
            ("/findings/0/title", "Pen-test summary outstanding"),
            ("/findings/0/owner", "vic"),
            ("/findings/0/due", "2027-01-15"),
            ("/findings/0/closed", "yes"),
        ],
    );
    assert_eq!(status, 303);
    let (status, _, _) = save(
        &mut c,
        &id,
        "subcontractors",
        &[("/subcontractors/0/name", "Harbor Cloud Hosting LLC"), ("/subcontractors/0/remove", "yes")],
    );
    assert_eq!(status, 303);
    let v = vendor(&app, &id);
    assert_eq!(v["findings"][0]["closed"], true);
    assert_eq!(v["subcontractors"], json!([]));

    // Every change is in the vendor's trail under the person's email.
    let trail = app.get(&format!("/api/v1/vendors/{id}/audit")).json();
    let by_vic = trail["items"].as_array().expect("items").iter().filter(|e| e["who"] == "vic@example.com").count();
    assert_eq!(by_vic, 7, "{trail}");
}

#[test]
fn a_field_error_is_shown_beside_its_field_and_nothing_is_written() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Acme Billing"}));
    let before = vendor(&app, &id)["revision"].clone();
    let mut c = signed_in(&app, "vic@example.com", "vendor_manager");

    let (status, _, body) = save(
        &mut c,
        &id,
        "identity",
        &[
            ("/legal_name", "Acme Billing"),
            ("/privacy_contact/name", "Pat"),
            ("/privacy_contact/email", "not an address"),
        ],
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("id=\"f-privacy_contact-email\"")
            && body.contains("aria-invalid=\"true\" aria-describedby=\"e-privacy_contact-email\"")
            && body.contains("<p class=\"error\" id=\"e-privacy_contact-email\">"),
        "{body}"
    );
    // What was typed is shown again.
    assert!(body.contains("value=\"not an address\""), "{body}");

    // A bad item of a one-a-line list names the item; a bad row's date is beside that row.
    let (status, _, body) = save(&mut c, &id, "flows", &[("/data_flows/locations", "US-CA\nUS-XX")]);
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-data_flows-locations\">item 2: not a US state code"), "{body}");
    let (status, _, body) = save(
        &mut c,
        &id,
        "findings",
        &[
            ("/findings/0/title", ""),
            ("/findings/0/owner", ""),
            ("/findings/1/title", "MFA on consoles"),
            ("/findings/1/owner", "ops"),
            ("/findings/1/due", "next week"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        body.contains("aria-describedby=\"e-findings-1-due\"") && body.contains("id=\"e-findings-1-due\""),
        "{body}"
    );
    let (status, _, body) =
        save(&mut c, &id, "risk", &[("/tier_override/tier", "high"), ("/tier_override/reason", " ")]);
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-tier_override-reason\""), "{body}");
    let (status, _, body) = save(&mut c, &id, "link", &[("/agreement_id", "agr_nosuchthing")]);
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-agreement_id\">no such agreement"), "{body}");

    assert_eq!(vendor(&app, &id)["revision"], before, "nothing was written");
}

#[test]
fn a_vendor_form_without_its_csrf_token_is_refused_and_writes_nothing() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Acme Billing"}));
    let mut c = signed_in(&app, "vic@example.com", "vendor_manager");
    let path = format!("/vendors/{id}/edit/identity");
    let (status, _, body) = c.send("POST", &path, &[("/legal_name", "Hijacked")]);
    assert_eq!(status, 403);
    assert!(body.contains("nothing was changed"), "{body}");
    let (status, _, _) = c.send("POST", &path, &[("csrf", "forged"), ("/legal_name", "Hijacked")]);
    assert_eq!(status, 403);
    // An upload without the token: nothing stored either.
    let (ctype, b) = multipart(&[("kind", "soc2_type2")], b"%PDF-1.4 x");
    let r = c
        .http
        .post(&format!("{}/vendors/{id}/edit/document", c.base))
        .header("Cookie", &c.cookie)
        .header("Content-Type", &ctype)
        .send(&b[..])
        .expect("answers");
    assert_eq!(r.status().as_u16(), 403);
    let v = vendor(&app, &id);
    assert_eq!((v["legal_name"].as_str(), v["revision"].as_u64()), (Some("Acme Billing"), Some(1)));
    assert_eq!(v["documents"], json!([]));
}

#[test]
fn a_sales_person_reads_the_vendor_page_but_gets_the_403_page_for_every_edit() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Acme Billing"}));
    let mut c = signed_in(&app, "sam@example.com", "sales");
    let (status, _, page) = c.send("GET", &format!("/vendors/{id}"), &[]);
    assert_eq!(status, 200);
    assert!(!page.contains("/edit/"), "no edit links for sales");
    let token = c.csrf(&format!("/vendors/{id}"));
    for s in ["identity", "flows", "findings", "subcontractors", "risk", "link", "document", "paper"] {
        let path = format!("/vendors/{id}/edit/{s}");
        let (status, _, body) = c.send("GET", &path, &[]);
        assert_eq!(status, 403, "{s}");
        assert!(body.contains("Your role does not allow this page"), "{body}");
        if !matches!(s, "document" | "paper") {
            let (status, _, _) = c.send("POST", &path, &[("csrf", &token), ("/legal_name", "Sales was here")]);
            assert_eq!(status, 403, "{s}");
        }
    }
    let (ctype, b) = multipart(&[("csrf", &token), ("kind", "soc2_type2")], b"%PDF-1.4 x");
    let r = c
        .http
        .post(&format!("{}/vendors/{id}/edit/document", c.base))
        .header("Cookie", &c.cookie)
        .header("Content-Type", &ctype)
        .send(&b[..])
        .expect("answers");
    assert_eq!(r.status().as_u16(), 403);
    let v = vendor(&app, &id);
    assert_eq!((v["legal_name"].as_str(), v["revision"].as_u64()), (Some("Acme Billing"), Some(1)));
}

#[test]
fn documents_and_vendor_paper_agreements_upload_from_the_web_and_download_from_the_vendor_page() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Bright Scribe"}));
    let mut c = signed_in(&app, "vic@example.com", "vendor_manager");

    let soc2 = b"%PDF-1.4\n% a SOC 2 Type II report\n".to_vec();
    let (status, loc, body) = upload(
        &mut c,
        &id,
        "document",
        &[("kind", "soc2_type2"), ("issued", "2026-09-01"), ("expires", "2027-09-01")],
        &soc2,
    );
    assert_eq!((status, loc.as_str()), (303, format!("/vendors/{id}?done=document").as_str()), "{body}");

    let paper = b"%PDF-1.7\n% Bright Scribe BAA, executed\n".to_vec();
    let (status, _, body) = upload(
        &mut c,
        &id,
        "paper",
        &[
            ("kind", "baa"),
            ("title", "Bright Scribe Business Associate Agreement"),
            ("effective_date", "2026-03-01"),
            ("term_months", "12"),
            ("auto_renew", "yes"),
            ("breach_notice_days", "10"),
            ("return_or_destroy", "destroy"),
        ],
        &paper,
    );
    assert_eq!(status, 303, "{body}");

    let v = vendor(&app, &id);
    assert_eq!(v["documents"][0]["kind"], "soc2_type2");
    assert_eq!(v["documents"][0]["uploaded_by"], "vic@example.com");
    assert_eq!(v["papers"][0]["terms"]["breach_notice_days"], 10);
    assert_eq!(v["papers"][0]["terms"]["return_or_destroy"], "destroy");
    let (doc_sha, paper_sha) =
        (v["documents"][0]["sha256"].as_str().expect("sha"), v["papers"][0]["sha256"].as_str().expect("sha"));

    // Both are linked from the vendor page and come back byte for byte.
    let (_, _, page) = c.send("GET", &format!("/vendors/{id}"), &[]);
    for (sha, bytes) in [(doc_sha, &soc2), (paper_sha, &paper)] {
        let path = format!("/vendors/{id}/files/{sha}");
        assert!(page.contains(&format!("href=\"{path}\"")), "{page}");
        assert_eq!(get_bytes(&c, &path), (200, bytes.clone()));
    }
    // Another vendor's path does not serve the file.
    let other = new_vendor(&app, json!({"legal_name": "Other Co"}));
    assert_eq!(get_bytes(&c, &format!("/vendors/{other}/files/{doc_sha}")).0, 404);

    // Bad uploads: errors beside their fields, nothing stored.
    let (status, _, body) = upload(
        &mut c,
        &id,
        "paper",
        &[("kind", "baa"), ("title", "Scan"), ("effective_date", "2026-13-40")],
        b"not a pdf",
    );
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-effective_date\"") && body.contains("id=\"e-file\">not a PDF"), "{body}");
    let (status, _, body) = upload(&mut c, &id, "document", &[("kind", "")], b"");
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-kind\"") && body.contains("id=\"e-file\">the body is empty"), "{body}");
    let (status, _, body) = upload(&mut c, &id, "paper", &[("kind", "baa"), ("term_months", "a year")], b"%PDF-1.4");
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-term_months\""), "{body}");
    let after = vendor(&app, &id);
    assert_eq!(
        (after["documents"].as_array().map(Vec::len), after["papers"].as_array().map(Vec::len)),
        (Some(1), Some(1))
    );
}

#[test]
fn an_upload_over_the_size_limit_gets_a_clear_413_page_and_stores_nothing() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(&app, json!({"legal_name": "Bulky Files Inc"}));
    let mut c = signed_in(&app, "vic@example.com", "vendor_manager");
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(33 * 1024 * 1024, b'a');
    let (status, _, body) = upload(&mut c, &id, "document", &[("kind", "hitrust")], &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 32 MB"), "{body}");
    assert_eq!(vendor(&app, &id)["documents"], json!([]));
}

/// The dashboard's figures: `data-figure="name"><strong>N</strong>`.
fn page_figures(body: &str) -> BTreeMap<String, u64> {
    body.split("data-figure=\"")
        .skip(1)
        .map(|rest| {
            let (name, after) = rest.split_once('"').expect("name");
            let n = after.split("<strong>").nth(1).and_then(|s| s.split("</strong>").next()).expect("a number");
            (name.to_string(), n.parse().expect("number"))
        })
        .collect()
}

fn csv_figures(csv: &str) -> BTreeMap<String, u64> {
    let (_, figures) = csv.split_once("\nfigure,value\n").expect("figures section");
    figures.lines().filter_map(|l| l.split_once(',')).map(|(k, v)| (k.to_string(), v.parse().expect("n"))).collect()
}

#[test]
fn the_home_page_shows_the_executive_reports_figures_each_linking_to_the_vendors_it_counts() {
    let (app, _dir) = spawn_app();
    let legal = app.key_for("legal", None).0;
    let answer = |id: &str, a: Value| {
        let r = app.req(
            "POST",
            &format!("/api/v1/vendors/{id}/questionnaire"),
            Some(&legal),
            "application/json",
            a.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let a = new_vendor(&app, json!({"legal_name": "Acme Billing", "data_flows": {"phi_categories": ["claims"]}}));
    answer(&a, json!({"handles_phi": true}));
    let b = new_vendor(
        &app,
        json!({"legal_name": "Çelik Fiber", "subcontractors": [{"name": "Relay Co"}, {"name": "Hop Co"}],
               "findings": [{"title": "MFA", "owner": "ops", "due": "2026-12-01"}]}),
    );
    answer(&b, json!({"handles_phi": true, "transmission_only": true}));
    new_vendor(&app, json!({"legal_name": "Delta Couriers", "last_assessed": "2025-06-01"}));

    let mut c = signed_in(&app, "sam@example.com", "sales");
    let (status, _, home) = c.send("GET", "/", &[]);
    assert_eq!(status, 200);
    let shown = page_figures(&home);
    let report = app.get("/api/v1/vendors/report?format=csv");
    assert_eq!(report.status, 200);
    let want = csv_figures(&report.text());
    assert_eq!(shown, want, "the dashboard shows every figure of the report, with the same values");
    assert!(want["unconfirmed_subcontractors"] == 2 && want["overdue_findings"] == 1, "{want:?}");

    // Each figure links to the vendor list filtered to what it counts.
    for (figure, names) in
        [("business_associates_without_baa", vec!["Acme Billing"]), ("unconfirmed_subcontractors", vec!["Çelik Fiber"])]
    {
        assert!(home.contains(&format!("href=\"/vendors?figure={figure}\" data-figure=\"{figure}\"")), "{figure}");
        let (status, _, list) = c.send("GET", &format!("/vendors?figure={figure}"), &[]);
        assert_eq!(status, 200);
        for n in ["Acme Billing", "Çelik Fiber", "Delta Couriers"] {
            assert_eq!(list.contains(&format!(">{n}</a>")), names.contains(&n), "{figure}: {n}");
        }
    }
    // Overdue items are listed by vendor.
    assert!(home.contains(&format!("href=\"/vendors/{b}\">Çelik Fiber</a>")), "{home}");
    // An unknown figure is a clear page, not a list of everything.
    assert_eq!(c.send("GET", "/vendors?figure=everything", &[]).0, 422);
}

#[test]
fn a_new_baa_for_a_vendor_is_prefilled_from_its_record_and_the_agreement_page_links_back() {
    let (app, _dir) = spawn_app();
    let id = new_vendor(
        &app,
        json!({"legal_name": "Northwind Patient Messaging, Inc.",
               "privacy_contact": {"name": "Marta Núñez", "email": "privacy@northwind.example"}}),
    );
    let mut admin = signed_in(&app, "ada@example.com", "admin");
    let (_, _, page) = admin.send("GET", &format!("/vendors/{id}"), &[]);
    assert!(page.contains(&format!("href=\"/agreements/new?vendor={id}&amp;kind=baa\"")), "{page}");
    let (status, _, form) = admin.send("GET", &format!("/agreements/new?vendor={id}&kind=baa"), &[]);
    assert_eq!(status, 200);
    assert!(form.contains("value=\"Northwind Patient Messaging, Inc.\""), "prefilled: {form}");
    assert!(form.contains(&format!("name=\"vendor\" value=\"{id}\"")), "tied to the vendor");

    // An existing agreement linked from the vendor's form; its page shows the vendor.
    let agreement = app.create(&crate::helpers::example_text(BAA));
    let aid = agreement["id"].as_str().expect("id");
    let (status, _, body) = save(&mut admin, &id, "link", &[("/agreement_id", aid)]);
    assert_eq!(status, 303, "{body}");
    assert_eq!(vendor(&app, &id)["agreements"], json!([aid]));
    let (_, _, apage) = admin.send("GET", &format!("/agreements/{aid}"), &[]);
    assert!(apage.contains(&format!("<a href=\"/vendors/{id}\">Northwind Patient Messaging, Inc.</a>")), "{apage}");
}

#[test]
fn a_vendor_manager_adds_a_vendor_from_the_web_an_empty_name_is_refused_beside_its_field_and_sales_may_not() {
    let (app, _dir) = spawn_app();
    let mut c = signed_in(&app, "vera@example.com", "vendor_manager");
    let (status, _, list) = c.send("GET", "/vendors", &[]);
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/vendors/new\""), "the list offers to add a vendor");
    let token = c.csrf("/vendors/new");
    // an empty name: the error beside the field, nothing written
    let (status, _, page) = c.send("POST", "/vendors/new", &[("csrf", &token), ("/legal_name", "  ")]);
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("aria-invalid=\"true\"") && page.contains("id=\"e-legal_name\""), "{page}");
    assert_eq!(app.get("/api/v1/vendors").json()["total"], 0);
    // without the form's token: refused, nothing written
    let (status, _, _) = c.send("POST", "/vendors/new", &[("/legal_name", "Northwind Health")]);
    assert_eq!(status, 403);
    assert_eq!(app.get("/api/v1/vendors").json()["total"], 0);
    // added: its page, with the notice, and the audit trail names the person
    let (status, loc, _) = c.send("POST", "/vendors/new", &[("csrf", &token), ("/legal_name", "Northwind Health")]);
    assert_eq!(status, 303);
    let id =
        loc.strip_prefix("/vendors/").and_then(|r| r.strip_suffix("?done=created")).expect("vendor page").to_string();
    let v = vendor(&app, &id);
    assert_eq!(v["legal_name"], "Northwind Health");
    assert!(v["determination"].is_null());
    let (status, _, page) = c.send("GET", &loc, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("Added: the vendor is in the register"), "{page}");
    let audit = app.get(&format!("/api/v1/vendors/{id}/audit")).text();
    assert!(audit.contains("vera@example.com"), "{audit}");
    // a sales person sees no button and gets the 403 page
    let mut s = signed_in(&app, "sam@example.com", "sales");
    let (_, _, list) = s.send("GET", "/vendors", &[]);
    assert!(!list.contains("href=\"/vendors/new\""));
    let (status, _, body) = s.send("GET", "/vendors/new", &[]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(app.get("/api/v1/vendors").json()["total"], 1);
}
