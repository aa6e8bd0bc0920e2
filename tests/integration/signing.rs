//! The signing service over real HTTP: a server on 127.0.0.1:0, sled in a temp dir, links read
//! from the `.eml` outbox, PDFs checked with qpdf and pdftotext.

use sha2::{Digest, Sha256};

use crate::app::*;
use crate::helpers::*;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn parallel_intake() -> String {
    let mut v = example_json(BAA);
    v["signers"][1]["order"] = serde_json::json!(1);
    v.to_string()
}

/// Creates and sends an agreement; returns its id.
fn created_and_sent(app: &TestApp, intake: &str) -> String {
    let a = app.create(intake);
    let id = a["id"].as_str().expect("id").to_string();
    let r = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "sent");
    id
}

#[test]
fn a_baa_goes_from_intake_to_a_countersigned_archived_pdf() {
    let (app, _dir) = spawn_app();
    let created = app.create(&example_text(BAA));
    assert_eq!(created["status"], "draft");
    assert_eq!(created["version"], 1);
    assert_eq!(created["check"]["passes"], true);
    assert!(created["document_sha256"].as_str().is_some_and(|s| s.len() == 64));
    let id = created["id"].as_str().expect("id").to_string();

    let sent = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(sent.status, 200, "{}", sent.text());
    let sent_sha = sent.json()["sent_sha256"].as_str().expect("sent sha").to_string();

    // Order 1 (Priya) is invited; order 2 (Zoë) only after Priya signs.
    let priya = app.sign_link("priya@northwind.example");
    assert!(app.links_for("zoe@lakeside.example", "/sign/").is_empty(), "signer 2 must wait for signer 1");
    let (status, html, _) = app.open(&priya);
    assert_eq!(status, 200);
    assert!(html.contains("Northwind Patient Messaging, Inc."));
    assert!(html.contains("esign-consent-2026-11"));
    let r = app.sign(&priya, "Priya Raman", "VP, Legal");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "partially_signed");

    let zoe = app.sign_link("zoe@lakeside.example");
    let r = app.sign(&zoe, "Zoë Ångström", "Chief Compliance Officer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("complete"));

    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["status"], "executed");
    let final_sha = a["final_sha256"].as_str().expect("final sha").to_string();
    assert_eq!(a["sent_sha256"], sent_sha.as_str(), "the sent hash is frozen");

    let doc = app.get(&format!("/api/v1/agreements/{id}/document"));
    assert_eq!(doc.status, 200);
    assert_eq!(sha(&doc.body), final_sha, "downloaded bytes are the archived bytes");
    assert_eq!(doc.header("x-document-sha256"), Some(final_sha.as_str()));
    assert_qpdf_ok(&doc.body);
    let text = fold(&pdftotext(&doc.body));
    for needle in [
        "Priya Raman",
        "Zoë Ångström",
        "Executed Signature Page",
        "Certificate of Completion",
        sent_sha.as_str(),
        id.as_str(),
    ] {
        assert!(text.contains(needle), "final PDF lacks {needle:?}");
    }

    // What was signed is what is archived: the sent PDF is a byte prefix of the final one.
    let as_sent = app.get_anon(&format!("{priya}/document"));
    assert_eq!(as_sent.status, 200, "a signer can still read what they signed");
    assert_eq!(sha(&as_sent.body), sent_sha);
    assert_eq!(&doc.body[..as_sent.body.len()], &as_sent.body[..], "final = sent bytes + incremental update");
    let events = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    let kinds: Vec<&str> =
        events["items"].as_array().expect("items").iter().map(|e| e["kind"].as_str().unwrap_or("")).collect();
    for k in ["created", "sent", "link_issued", "opened", "consented", "signed", "completed", "archived", "downloaded"]
    {
        assert!(kinds.contains(&k), "audit lacks {k}: {kinds:?}");
    }
    assert!(events["items"].as_array().expect("items").iter().all(|e| e["ip"].is_string() && e["time"].is_string()));

    // Both parties get a completion message with a download link that serves the final copy.
    for email in ["priya@northwind.example", "zoe@lakeside.example"] {
        let links = app.links_for(email, "/download/");
        assert_eq!(links.len(), 1, "{email}");
        let d = app.get_anon(&links[0]);
        assert_eq!(d.status, 200);
        assert_eq!(sha(&d.body), final_sha);
    }
}

#[test]
fn the_sent_pdf_is_a_byte_prefix_of_the_final_pdf() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(DUA));
    let sent = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    assert_qpdf_ok(&sent);
    let sent_text = fold(&pdftotext(&sent));
    assert!(!sent_text.contains("DRAFT"), "the copy sent for signature carries no draft mark");
    assert!(sent_text.contains("Executed Signature Page"), "its signature block points to the executed page");
    assert_eq!(app.sign(&app.sign_link("irene@cori.example"), "Irene Novak", "Principal Investigator").status, 200);
    assert_eq!(app.sign(&app.sign_link("grace@hvhs.example"), "Grace Kim", "Privacy Officer").status, 200);
    let fin = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    assert!(fin.len() > sent.len());
    assert_eq!(&fin[..sent.len()], &sent[..], "final = sent bytes + incremental update");
    assert_eq!(page_count(&fin), page_count(&sent) + 2);
}

#[test]
fn signers_with_the_same_order_sign_in_parallel() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &parallel_intake());
    let zoe = app.sign_link("zoe@lakeside.example");
    let priya = app.sign_link("priya@northwind.example");
    assert_eq!(app.sign(&zoe, "Zoë Ångström", "CCO").status, 200);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "partially_signed");
    assert_eq!(app.sign(&priya, "Priya Raman", "VP, Legal").status, 200);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "executed");
}

#[test]
fn a_decline_records_the_reason_closes_signing_and_revise_starts_a_new_draft() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    let (_, _, csrf) = app.open(&link);
    let no_reason = app.form(&link, &[("action", "decline"), ("reason", "  "), ("csrf", &csrf)]);
    assert_eq!(no_reason.status, 422, "a decline needs a reason");
    let r = app.form(&link, &[("action", "decline"), ("reason", "Liability cap is missing"), ("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["status"], "declined");
    assert_eq!(a["signers"][0]["decline_reason"], "Liability cap is missing");
    let (status, html, _) = app.open(&link);
    assert_eq!(status, 409, "a used link shows the outcome");
    assert!(html.contains("Liability cap is missing"));

    let revised = app.post(&format!("/api/v1/agreements/{id}/revise"), "");
    assert_eq!(revised.status, 200, "{}", revised.text());
    let v = revised.json();
    assert_eq!(v["status"], "draft");
    assert_eq!(v["version"], 2);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}/versions")).json()["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(app.open(&link).0, 410, "the declined round's link is superseded");
}

#[test]
fn voiding_revokes_every_link_and_needs_a_reason() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/void"), r#"{"reason": ""}"#).status, 422);
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/void"), r#"{"why": "x"}"#).status, 422);
    let r = app.post(&format!("/api/v1/agreements/{id}/void"), r#"{"reason": "Vendor relationship cancelled"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, html, _) = app.open(&link);
    assert_eq!(status, 410);
    assert!(html.contains("withdrawn"), "{html}");
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/void"), r#"{"reason": "again"}"#).status, 409);
}

#[test]
fn tokens_are_rejected_with_the_status_that_says_why() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    let (base, token) = link.rsplit_once('/').expect("token");

    // Missing and garbled → 404; altered → 403.
    assert_eq!(app.get_anon("/sign/").status, 404);
    assert_eq!(app.get_anon("/sign/not-a-token").status, 404);
    let mut chars: Vec<char> = token.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    assert_eq!(app.open(&format!("{base}/{altered}")).0, 403);

    // Resend: the old link is revoked (410), the new one works.
    let r = app.post(&format!("/api/v1/agreements/{id}/signers/s1/resend"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = app.sign_link("priya@northwind.example");
    assert_ne!(fresh, link);
    let (status, html, _) = app.open(&link);
    assert_eq!(status, 410);
    assert!(html.contains("newer link"));
    assert_eq!(app.open(&fresh).0, 200);

    // Replay after signing → 409 showing the outcome, never a second signature.
    assert_eq!(app.sign(&fresh, "Priya Raman", "VP, Legal").status, 200);
    let (status, html, _) = app.open(&fresh);
    assert_eq!(status, 409);
    assert!(html.contains("already signed"));
    let signed_events = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["kind"] == "signed")
        .count();
    assert_eq!(signed_events, 1);

    // Expiry: 14 days by default → 410 with how to get a new link.
    let zoe = app.sign_link("zoe@lakeside.example");
    app.clock.advance(15 * 86_400);
    let (status, html, _) = app.open(&zoe);
    assert_eq!(status, 410);
    assert!(html.contains("ask the sender for a new one"));
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "expired");
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/signers/s2/resend"), "").status, 200);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "partially_signed", "resend reopens it");
}

#[test]
fn a_link_never_appears_in_api_responses() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    let token = link.rsplit('/').next().expect("token");
    for path in [format!("/api/v1/agreements/{id}"), format!("/api/v1/agreements/{id}/audit")] {
        assert!(!app.get(&path).text().contains(token), "{path} leaks the token");
    }
}

#[test]
fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let (app, _dir) = spawn_app();
    created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    let fields = [("action", "sign"), ("consent", "yes"), ("typed_name", "Priya Raman"), ("typed_title", "VP")];
    assert_eq!(app.form(&link, &fields).status, 403);
    let (_, _, csrf) = app.open(&link);
    let mut with_csrf = fields.to_vec();
    with_csrf.push(("csrf", &csrf));
    let foreign = app
        .http
        .post(&link)
        .header("Origin", "https://evil.example")
        .send_form(with_csrf.iter().copied())
        .expect("request");
    assert_eq!(foreign.status().as_u16(), 403);
    let missing_consent: Vec<_> = with_csrf.iter().copied().filter(|(k, _)| *k != "consent").collect();
    let r = app.form(&link, &missing_consent);
    assert_eq!(r.status, 422, "consent is required");
    assert!(r.text().contains("consent"));
}

#[test]
fn drafts_can_be_replaced_until_sent_and_sending_freezes_the_document() {
    let (app, _dir) = spawn_app();
    let a = app.create(&example_text(BAA));
    let id = a["id"].as_str().expect("id");
    let changed = example_text(BAA).replace("\"breach_notice_days\": 10", "\"breach_notice_days\": 5");
    let r = app.put(&format!("/api/v1/agreements/{id}"), &changed);
    assert_eq!(r.status, 200, "{}", r.text());
    let v2 = r.json();
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["document_sha256"], a["document_sha256"]);
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    assert_eq!(app.put(&format!("/api/v1/agreements/{id}"), &changed).status, 409);
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 409);
}

#[test]
fn an_invalid_intake_gets_422_with_every_pointer() {
    let (app, _dir) = spawn_app();
    let bad = example_text(BAA)
        .replace("\"breach_notice_days\": 10", "\"breach_notice_days\": 90")
        .replace("priya@northwind.example", "not-an-email");
    let r = app.post("/api/v1/agreements", &bad);
    assert_eq!(r.status, 422);
    let v = r.json();
    let pointers: Vec<&str> =
        v["error"]["findings"].as_array().expect("findings").iter().filter_map(|f| f["pointer"].as_str()).collect();
    assert!(pointers.contains(&"/breach_notice_days"), "{pointers:?}");
    assert!(pointers.contains(&"/signers/0/email"), "{pointers:?}");
    assert_eq!(app.post("/api/v1/agreements", "{ not json").status, 422);
}

#[test]
fn every_api_route_requires_the_admin_key_and_signer_pages_do_not() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    for path in [
        "/api/v1/agreements/x".to_string(),
        format!("/api/v1/agreements/{id}"),
        format!("/api/v1/agreements/{id}/document"),
        format!("/api/v1/agreements/{id}/audit"),
        format!("/api/v1/agreements/{id}/versions"),
        "/api/v1/audit/verify".to_string(),
    ] {
        assert_eq!(app.get_anon(&path).status, 401, "{path} without a key");
        assert_eq!(app.get_with_key(&path, "csk_wrong").status, 401, "{path} with a wrong key");
    }
    let no_key = app.http.post(app.url("/api/v1/agreements")).send(example_text(BAA)).expect("request");
    assert_eq!(no_key.status().as_u16(), 401);
    assert_eq!(app.get_anon("/healthz").status, 200);
}

#[test]
fn correcting_a_signer_revokes_the_old_link_and_mails_the_new_address() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let old = app.sign_link("priya@northwind.example");
    let r = app.patch(
        &format!("/api/v1/agreements/{id}/signers/s1"),
        r#"{"email": "legal@northwind.example", "name": "Priya R. Raman"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.open(&old).0, 410);
    let new = app.sign_link("legal@northwind.example");
    let (status, html, _) = app.open(&new);
    assert_eq!(status, 200);
    assert!(html.contains("Priya R. Raman"));
    assert_eq!(app.patch(&format!("/api/v1/agreements/{id}/signers/s1"), r#"{"email": "nope"}"#).status, 422);
    // The intake's 200-character cap holds for corrections too; nothing is written.
    let long = serde_json::json!({"name": "x".repeat(100_000)}).to_string();
    let r = app.patch(&format!("/api/v1/agreements/{id}/signers/s1"), &long);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("/name") && r.text().contains("at most 200"), "{}", r.text());
    assert_eq!(app.open(&new).0, 200, "the current link still works");
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).text();
    assert!(audit.contains("signer_updated"));
}

#[test]
fn signer_pages_escape_intake_values() {
    let (app, _dir) = spawn_app();
    let mut v = example_json(BAA);
    v["business_associate"]["legal_name"] = serde_json::json!("Acme <script>alert(1)</script> Health");
    created_and_sent(&app, &v.to_string());
    let (status, html, _) = app.open(&app.sign_link("priya@northwind.example"));
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;"));
}

#[test]
fn a_restarted_server_finishes_the_flow_on_the_same_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = countersign::clock::ManualClock::at(T0);
    let app = spawn_app_at(dir.path(), clock.clone());
    let id = created_and_sent(&app, &example_text(BAA));
    assert_eq!(app.sign(&app.sign_link("priya@northwind.example"), "Priya Raman", "VP, Legal").status, 200);
    let addr = app.addr();
    app.stop();

    let app = spawn_app_on(dir.path(), clock, &addr);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "partially_signed");
    assert_eq!(app.sign(&app.sign_link("zoe@lakeside.example"), "Zoë Ångström", "CCO").status, 200);
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["status"], "executed");
    app.stop();

    let out = countersign(&["audit", "verify", "--data", dir.path().to_str().expect("path")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn audit_verify_fails_naming_the_event_when_one_byte_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0));
    let id = created_and_sent(&app, &example_text(BAA));
    app.stop();
    let data = dir.path().to_str().expect("path");
    let ok = countersign(&["audit", "verify", "--data", data], dir.path());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));

    crate::app::tamper_event(dir.path(), &id, 2, |raw| {
        let pos = raw.windows(4).position(|w| w == b"sent").expect("kind") + 1;
        raw[pos] = b'E';
    });
    let bad = countersign(&["audit", "verify", "--data", data], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains(&id) && text.contains("event #2"), "{text}");
}

#[test]
fn a_link_signed_by_a_key_removed_from_the_ring_stops_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = countersign::clock::ManualClock::at(T0);
    let app = spawn_app_at(dir.path(), clock.clone());
    created_and_sent(&app, &example_text(BAA));
    let link = app.sign_link("priya@northwind.example");
    let addr = app.addr();
    app.stop();
    // Rotate, then drop the old key from the file: its links must stop working.
    let keys = dir.path().join("link-keys");
    countersign::signing::token::KeyRing::rotate(&keys).expect("rotate");
    let text = std::fs::read_to_string(&keys).expect("keys");
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("k1 ")).collect();
    std::fs::write(&keys, kept.join("\n") + "\n").expect("write keys");
    let app = spawn_app_on(dir.path(), clock, &addr);
    assert_eq!(app.open(&link).0, 403);
}

#[test]
fn audit_verify_refuses_plainly_while_a_server_holds_the_data_dir() {
    let (app, dir) = spawn_app();
    let out = countersign(&["audit", "verify", "--data", dir.path().to_str().expect("path")], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("running countersign server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = app.get("/api/v1/audit/verify");
    assert_eq!(r.json()["ok"], true);
}
