//! Signer verification by a one-time email code (issue 11 §2.9), the access log of every
//! archived-document read, and the DUA cross-reference seen by a `sales` key (§2.8).

use serde_json::json;

use crate::app::*;
use crate::helpers::*;

const PRIYA: &str = "priya@northwind.example";
const ZOE: &str = "zoe@lakeside.example";

/// A BAA whose first signer (Priya) must give an emailed code; sent; returns its id.
fn sent_with_code(app: &TestApp) -> String {
    let mut v = example_json(BAA);
    v["signers"][0]["verify_email_code"] = json!(true);
    let id = app.create(&v.to_string())["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    id
}

/// The codes mailed to `email`, oldest first (the line of six digits in each code email).
fn codes_for(app: &TestApp, email: &str) -> Vec<String> {
    app.outbox()
        .into_iter()
        .filter(|(_, t)| t.lines().any(|l| l.starts_with("To:") && l.contains(email)))
        .filter(|(_, t)| t.contains("Your one-time code"))
        .filter_map(|(_, t)| {
            t.lines().map(str::trim).find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit())).map(String::from)
        })
        .collect()
}

/// Asks for a code from the signer page; returns the page.
fn ask_code(app: &TestApp, link: &str) -> Resp {
    let (status, html, csrf) = app.open(link);
    assert_eq!(status, 200, "{html}");
    app.form(link, &[("action", "send_code"), ("csrf", &csrf)])
}

/// Submits the signing form with `code`.
fn sign_with(app: &TestApp, link: &str, code: &str) -> Resp {
    let (_, _, csrf) = app.open(link);
    app.form(
        link,
        &[
            ("action", "sign"),
            ("consent", "yes"),
            ("typed_name", "Priya Raman"),
            ("typed_title", "VP, Legal"),
            ("code", code),
            ("csrf", &csrf),
        ],
    )
}

fn signer_status(app: &TestApp, id: &str, signer: &str) -> String {
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    a["signers"].as_array().expect("signers").iter().find(|s| s["id"] == signer).expect("signer")["status"]
        .as_str()
        .expect("status")
        .to_string()
}

fn events(app: &TestApp, id: &str) -> Vec<serde_json::Value> {
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    audit["items"].as_array().expect("events").clone()
}

/// A code other than `code` (same length, every digit changed).
fn wrong(code: &str) -> String {
    code.bytes().map(|b| char::from(b'0' + (b - b'0' + 1) % 10)).collect()
}

#[test]
fn a_signer_asked_for_an_email_code_cannot_sign_without_it_and_the_certificate_names_the_method() {
    let (app, _dir) = spawn_app();
    let id = sent_with_code(&app);
    let link = app.sign_link(PRIYA);

    // The page asks for the code: a labelled field, and a button to have it emailed.
    let (status, html, _) = app.open(&link);
    assert_eq!(status, 200);
    assert!(html.contains(r#"<label for="code">"#) && html.contains(r#"id="code""#), "{html}");
    assert!(html.contains(r#"aria-describedby="code-help""#), "the help text is tied to the field");
    assert!(html.contains(r#"value="send_code""#), "{html}");

    // Without a code (none sent yet), and with an empty one after a code was sent: refused,
    // nothing signed, the error beside the field.
    let r = sign_with(&app, &link, "");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains(r#"id="code-error""#) && r.text().contains(r#"aria-invalid="true""#), "{}", r.text());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert_ne!(signer_status(&app, &id, "s1"), "signed");

    let r = ask_code(&app, &link);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("We emailed a six-digit code to p•••@northwind.example"), "{}", r.text());
    let codes = codes_for(&app, PRIYA);
    assert_eq!(codes.len(), 1, "one code email");
    let code = codes[0].clone();
    assert_eq!(sign_with(&app, &link, "").status, 422);
    assert_ne!(signer_status(&app, &id, "s1"), "signed");

    // The code is nowhere in what staff see: the agreement and its audit trail.
    let shown = format!("{}{}", app.get(&format!("/api/v1/agreements/{id}")).text(), json!(events(&app, &id)));
    assert!(!shown.contains(&code), "the code leaks into the API: {shown}");

    let r = sign_with(&app, &link, &code);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(signer_status(&app, &id, "s1"), "signed");
    // The second signer needs no code.
    assert_eq!(app.sign(&app.sign_link(ZOE), "Zoë Ångström", "CCO").status, 200);

    let evs = events(&app, &id);
    let signed: Vec<&serde_json::Value> = evs.iter().filter(|e| e["kind"] == "signed").collect();
    assert_eq!(signed.len(), 2);
    let method =
        |s: &str| signed.iter().find(|e| e["detail"]["signer"] == s).expect("signed")["detail"]["verification"].clone();
    assert_eq!(method("s1"), "email_link+email_code");
    assert_eq!(method("s2"), "email_link");
    assert!(evs.iter().any(|e| e["kind"] == "code_sent" && e["detail"]["signer"] == "s1"), "{evs:?}");

    let pdf = app.get(&format!("/api/v1/agreements/{id}/document"));
    assert_eq!(pdf.status, 200);
    let text = fold(&pdftotext(&pdf.body));
    assert!(
        text.contains(
            "Verification: personal link sent to the signer’s email address, and a one-time code sent to that address"
        ),
        "{text}"
    );
    assert!(text.contains("Verification: personal link sent to the signer’s email address"), "{text}");
}

#[test]
fn five_wrong_codes_lock_the_link_until_staff_resend_it() {
    let (app, _dir) = spawn_app();
    let id = sent_with_code(&app);
    let link = app.sign_link(PRIYA);
    assert_eq!(ask_code(&app, &link).status, 200);
    let code = codes_for(&app, PRIYA).pop().expect("a code");
    let bad = wrong(&code);
    for left in (1..5).rev() {
        let r = sign_with(&app, &link, &bad);
        assert_eq!(r.status, 422, "{}", r.text());
        let tries = if left == 1 { "try" } else { "tries" };
        assert!(r.text().contains(&format!("{left} {tries} left")), "{}", r.text());
    }
    let r = sign_with(&app, &link, &bad);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("this link is locked"), "{}", r.text());
    assert!(!r.text().contains(r#"value="send_code""#), "a locked link offers no new code");

    // Locked: even the right code is refused, and no new code can be asked for.
    let r = sign_with(&app, &link, &code);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("this link is locked"), "{}", r.text());
    let (_, _, csrf) = app.open(&link);
    let r = app.form(&link, &[("action", "send_code"), ("csrf", &csrf)]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(codes_for(&app, PRIYA).len(), 1, "no code mailed to a locked link");
    assert_ne!(signer_status(&app, &id, "s1"), "signed");
    let failed: Vec<serde_json::Value> = events(&app, &id).into_iter().filter(|e| e["kind"] == "code_failed").collect();
    assert_eq!(failed.len(), 5, "every wrong code is in the audit trail: {failed:?}");
    assert_eq!(failed[4]["detail"]["locked"], true);

    // Staff resend the link: the new link starts afresh.
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/signers/s1/resend"), "").status, 200);
    let fresh = app.sign_link(PRIYA);
    assert_ne!(fresh, link);
    assert_eq!(ask_code(&app, &fresh).status, 200);
    let code = codes_for(&app, PRIYA).pop().expect("a new code");
    let r = sign_with(&app, &fresh, &code);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(signer_status(&app, &id, "s1"), "signed");
}

#[test]
fn a_code_is_used_once_and_a_newer_code_replaces_the_older() {
    let (app, _dir) = spawn_app();
    let id = sent_with_code(&app);
    let link = app.sign_link(PRIYA);
    assert_eq!(ask_code(&app, &link).status, 200);
    assert_eq!(ask_code(&app, &link).status, 200);
    let codes = codes_for(&app, PRIYA);
    assert_eq!(codes.len(), 2);
    if codes[0] != codes[1] {
        assert_eq!(sign_with(&app, &link, &codes[0]).status, 422, "the older code no longer works");
    }
    assert_eq!(sign_with(&app, &link, &codes[1]).status, 200);
    assert_eq!(signer_status(&app, &id, "s1"), "signed");
}

#[test]
fn the_policy_switch_asks_every_signer_for_a_code_and_the_intake_field_is_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", |c| {
        c.signer_email_code = true;
    });
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let r = app.sign(&app.sign_link(PRIYA), "Priya Raman", "VP, Legal");
    assert_eq!(r.status, 422, "no code, no signature: {}", r.text());
    assert_ne!(signer_status(&app, &id, "s1"), "signed");

    let mut v = example_json(BAA);
    v["signers"][1]["verify_email_code"] = json!("yes");
    let r = app.post("/api/v1/agreements", &v.to_string());
    assert_eq!(r.status, 422);
    assert!(r.text().contains("/signers/1/verify_email_code"), "{}", r.text());
}

#[test]
fn reads_of_versions_and_of_the_sent_copy_after_execution_are_in_the_access_log() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let link = app.sign_link(PRIYA);
    assert_eq!(app.sign(&link, "Priya Raman", "VP, Legal").status, 200);
    // Before execution a read is signing, not archive access.
    assert_eq!(app.get_anon(&format!("{link}/document")).status, 200);
    assert_eq!(app.sign(&app.sign_link(ZOE), "Zoë Ångström", "CCO").status, 200);
    let log = |app: &TestApp| app.get(&format!("/api/v1/agreements/{id}/access-log")).json()["items"].clone();
    assert_eq!(log(&app).as_array().expect("items").len(), 0, "{}", log(&app));

    let r = app.req("GET", &format!("{link}/document"), None, "", b"");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"%PDF"));
    let r = app.get(&format!("/api/v1/agreements/{id}/versions/1/document"));
    assert_eq!(r.status, 200);
    let items = log(&app);
    let items = items.as_array().expect("items");
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().any(|e| e["who"].as_str().is_some_and(|w| w.starts_with("signer:s1"))), "{items:?}");
    assert!(items.iter().any(|e| e["detail"]["version"] == 1), "{items:?}");
}

#[test]
fn a_sales_key_is_not_told_of_another_persons_dua_by_the_cross_reference() {
    let (app, _dir) = spawn_app();
    let mut dua = example_json(DUA);
    dua["covered_entity"] = example_json(BAA)["covered_entity"].clone();
    dua["data_recipient"] = example_json(BAA)["business_associate"].clone();
    dua["signers"][0]["email"] = json!(PRIYA);
    dua["signers"][1]["email"] = json!(ZOE);
    let dua_id = app.create(&dua.to_string())["id"].as_str().expect("id").to_string();

    let mut baa = example_json(BAA);
    baa["provisions"] = json!({"limited_data_set": true});
    let (sales, _) = app.key_for("sales", None);
    let r = app.req("POST", "/api/v1/agreements", Some(&sales), "application/json", baa.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let doc = app.req("GET", &format!("/api/v1/agreements/{id}/document"), Some(&sales), "", b"");
    let text = fold(&pdftotext(&doc.body));
    assert!(text.contains("Limited Data Sets"), "the statement is included");
    assert!(!text.contains(&dua_id), "a sales key's draft names another person's DUA: {text}");

    // Staff who may see every agreement still get the cross-reference.
    let id = app.create(&baa.to_string())["id"].as_str().expect("id").to_string();
    let text = fold(&pdftotext(&app.get(&format!("/api/v1/agreements/{id}/document")).body));
    assert!(text.contains(&dua_id), "{text}");
}

/// True when `code` appears in `line` as a word of its own (not inside a longer run of letters
/// and digits, such as a hash or a timestamp's fraction).
fn names(line: &str, code: &str) -> bool {
    line.match_indices(code).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + code.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        !word(before) && !word(after) && before != Some('.')
    })
}

#[test]
fn the_code_never_reaches_the_server_log() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = crate::observe::serve(dir.path(), &["--log-format", "json"]);
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).expect("key").trim().to_string();
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {key}");
    let mut v = example_json(BAA);
    v["signers"][0]["verify_email_code"] = json!(true);
    let mut r = http
        .post(format!("{}/api/v1/agreements", s.base))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(v.to_string())
        .expect("create");
    assert_eq!(r.status(), 201);
    let a: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
    let id = a["id"].as_str().expect("id");
    let r = http.post(format!("{}/api/v1/agreements/{id}/send", s.base)).header("Authorization", &auth).send_empty();
    assert_eq!(r.expect("send").status(), 200);

    let mails = || -> Vec<String> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir.path().join("outbox"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            crate::smtp::readable(&std::fs::read(e.path()).expect("eml")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    };
    let link = mails()
        .iter()
        .filter(|t| t.contains(PRIYA))
        .flat_map(|t| t.split_whitespace().filter(|w| w.contains("/sign/")).map(String::from).collect::<Vec<_>>())
        .next_back()
        .expect("a signing link");
    // The server was started on port 0: the mailed link names the configured address, so the
    // path is followed on the address it actually listens on.
    let link = format!("{}/sign/{}", s.base, link.rsplit("/sign/").next().expect("path"));
    let page = |http: &ureq::Agent| -> String {
        let mut r = http.get(&link).call().expect("page");
        let html = r.body_mut().read_to_string().expect("html");
        html.split("name=\"csrf\" value=\"").nth(1).and_then(|x| x.split('"').next()).expect("csrf").to_string()
    };
    let csrf = page(&http);
    let r = http.post(&link).send_form([("action", "send_code"), ("csrf", csrf.as_str())]).expect("send code");
    assert_eq!(r.status(), 200);
    let code = mails()
        .iter()
        .filter(|t| t.contains("Your one-time code"))
        .find_map(|t| {
            t.lines().map(str::trim).find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit())).map(String::from)
        })
        .expect("a code email");
    let form = |code: &str| {
        vec![
            ("action", "sign".to_string()),
            ("consent", "yes".into()),
            ("typed_name", "Priya Raman".into()),
            ("typed_title", "VP, Legal".into()),
            ("code", code.to_string()),
            ("csrf", csrf.clone()),
        ]
    };
    let post = |fields: Vec<(&str, String)>| {
        http.post(&link).send_form(fields.iter().map(|(k, v)| (*k, v.as_str()))).expect("post").status().as_u16()
    };
    assert_eq!(post(form(&wrong(&code))), 422);
    assert_eq!(post(form(&code)), 200);

    // Every line logged up to a marker request made after the signature.
    let r = http.get(format!("{}/healthz", s.base)).header("X-Request-Id", "end-of-code-test").call();
    assert_eq!(r.expect("healthz").status(), 200);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match s.lines.recv_timeout(left) {
            Ok(l) => {
                let end = l.contains("end-of-code-test");
                lines.push(l);
                if end {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    assert!(lines.iter().any(|l| l.contains("end-of-code-test")), "the log reached the marker: {lines:?}");
    assert!(lines.len() > 5, "the requests were logged: {lines:?}");
    let leaked: Vec<&String> = lines.iter().filter(|l| names(l, &code) || names(l, &wrong(&code))).collect();
    assert!(leaked.is_empty(), "the code {code} is in the log: {leaked:?}");
}
