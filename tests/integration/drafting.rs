//! The new-agreement form over real HTTP: inputs named by intake pointers, every parser finding
//! beside its own input, Check saves nothing, Save draft creates the agreement under the
//! person's own identity, rows added and removed without JavaScript, start from an uploaded
//! intake file or an existing agreement, roles and CSRF.

use serde_json::Value;

use crate::app::*;
use crate::browser::Driver;
use crate::helpers::{BAA, DUA, example_json, example_path, example_text};
use crate::web::{
    Client, PASSWORD, accept, at, check_page, csrf_of, current_path, has, invite, poll, shows, signed_in,
};
use countersign::domain::form::flatten;

/// The example intake as the form posts it, with `action` and the token.
fn posted(intake: &Value, csrf: &str, action: &str, change: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = flatten(intake);
    for (k, v) in change {
        match pairs.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = v.to_string(),
            None => pairs.push((k.to_string(), v.to_string())),
        }
    }
    pairs.push(("csrf".into(), csrf.into()));
    pairs.push(("action".into(), action.into()));
    pairs
}

fn post(c: &mut Client, pairs: &[(String, String)]) -> (u16, String, String) {
    let form: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    c.send("POST", "/agreements/new", &form)
}

fn total(app: &TestApp) -> u64 {
    app.get("/api/v1/agreements").json()["total"].as_u64().expect("total")
}

#[test]
fn a_legal_person_sees_a_bad_signer_email_beside_its_input_then_saves_the_draft_under_their_own_name() {
    let (app, _dir) = spawn_app();
    let mut c = signed_in(&app, "lena@example.com", "legal");
    let (status, _, page) = c.send("GET", "/agreements/new?kind=baa", &[]);
    assert_eq!(status, 200);
    for name in ["/covered_entity/legal_name", "/signers/1/email", "/provisions/liability/cap_multiple_of_fees"] {
        assert!(page.contains(&format!("name=\"{name}\"")), "an input named {name}");
    }
    // The negotiated provisions show the policy's default and range beside each input.
    assert!(page.contains("Policy: 2×; at least 2×") && page.contains("Policy: 30 days; 10–30"), "{page}");
    let csrf = csrf_of(&page);
    let example = example_json(BAA);
    let bad = [("/signers/1/email", "zoe at lakeside")];

    let (status, _, page) = post(&mut c, &posted(&example, &csrf, "check", &bad));
    assert_eq!(status, 422);
    assert!(
        page.contains(r#"id="f-signers-1-email" name="/signers/1/email" type="email" value="zoe at lakeside""#)
            && page.contains(r#"aria-invalid="true" aria-describedby="ef-signers-1-email""#)
            && page.contains(r#"<p class="error" id="ef-signers-1-email">not an email address</p>"#),
        "{page}"
    );
    // The summary links to the input; every other value is still there.
    assert!(page.contains(r##"<a href="#f-signers-1-email">Signer 2: Email</a>: not an email address"##), "{page}");
    assert!(page.contains(r#"value="Lakeside Family Clinic, P.C.""#));
    let (status, _, _) = post(&mut c, &posted(&example, &csrf, "save", &bad));
    assert_eq!((status, total(&app)), (422, 0), "an invalid draft is not saved");

    let (status, _, page) = post(&mut c, &posted(&example, &csrf, "check", &[]));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The check passes") && page.contains("Nothing was saved."), "{page}");
    assert_eq!(total(&app), 0, "Check saves nothing");

    let (status, loc, _) = post(&mut c, &posted(&example, &csrf, "save", &[]));
    assert_eq!(status, 303);
    let id = loc.strip_prefix("/agreements/").and_then(|l| l.strip_suffix("?created=1")).expect("to its page");
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!((a["created_by"].as_str(), a["status"].as_str()), (Some("lena@example.com"), Some("draft")));
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    assert_eq!(audit["items"][0]["actor"], "lena@example.com", "{audit}");
    // The form's intake is the example's: the API makes the same document from the file.
    let from_api = app.create(&example_text(BAA));
    assert_eq!(a["document_sha256"], from_api["document_sha256"]);
    assert_eq!(c.send("GET", &loc, &[]).0, 200);
}

#[test]
fn rows_are_added_and_removed_without_javascript_and_a_dua_form_has_its_own_fields() {
    let (app, _dir) = spawn_app();
    let mut c = signed_in(&app, "sam@example.com", "sales");
    let (_, _, page) = c.send("GET", "/agreements/new?kind=dua", &[]);
    for name in ["/purpose", "/data_recipient/legal_name", "/data_elements/0", "/permitted_recipients/0"] {
        assert!(page.contains(&format!("name=\"{name}\"")), "an input named {name}");
    }
    assert!(!page.contains("name=\"/provisions/"), "no negotiated provisions on a DUA");
    let csrf = csrf_of(&page);
    let dua = example_json(DUA);
    let (status, _, page) = post(&mut c, &posted(&dua, &csrf, "add:/signers", &[]));
    assert_eq!(status, 200);
    assert!(page.contains("name=\"/signers/2/email\"") && !page.contains("name=\"/signers/3/email\""));
    // Removing the first signer moves the second up, values and all.
    let (_, _, page) = post(&mut c, &posted(&dua, &csrf, "remove:/signers/0", &[]));
    assert!(page.contains(r#"name="/signers/0/email" type="email" value="grace@hvhs.example""#), "{page}");
    // Two signer rows stay on the form (an agreement has one for each party): the second is blank.
    assert!(page.contains(r#"name="/signers/1/email" type="email" value="""#), "{page}");
    assert_eq!(total(&app), 0);
    // Saved as it is, the DUA is the sales person's own.
    let (status, loc, _) = post(&mut c, &posted(&dua, &csrf, "save", &[]));
    assert_eq!(status, 303);
    let (_, _, list) = c.send("GET", "/", &[]);
    assert!(list.contains(loc.trim_end_matches("?created=1")), "{list}");
}

/// A multipart body with the token, the kind and one file.
fn upload(c: &mut Client, csrf: &str, file: &[u8]) -> (u16, String) {
    let b = "----countersign-test-boundary";
    let mut body = Vec::new();
    for (n, v) in [("csrf", csrf), ("kind", "baa")] {
        body.extend(format!("--{b}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"intake.json\"\r\nContent-Type: application/json\r\n\r\n")
            .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{b}--\r\n").as_bytes());
    let mut r = c
        .http
        .post(&format!("{}/agreements/new/upload", c.base))
        .header("Cookie", &c.cookie)
        .header("Content-Type", &format!("multipart/form-data; boundary={b}"))
        .send(&body[..])
        .expect("answers");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn an_uploaded_intake_file_prefills_the_form_and_its_problems_show_beside_their_inputs() {
    let (app, _dir) = spawn_app();
    let mut c = signed_in(&app, "lena@example.com", "legal");
    let (_, _, page) = c.send("GET", "/agreements/new", &[]);
    let csrf = csrf_of(&page);
    let (status, page) = upload(&mut c, &csrf, example_text(BAA).as_bytes());
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(r#"name="/business_associate/legal_name" type="text" value="Northwind Patient Messaging, Inc.""#)
    );
    assert!(page.contains(r#"name="/states/-" value="CA" checked"#), "{page}");
    // A field the form has no input for stays on the page, with the parser's finding beside it.
    let mut odd = example_json(BAA);
    odd["signers"][0]["email"] = "priya".into();
    odd["covered_entity"]["zip"] = "78701".into();
    let (status, page) = upload(&mut c, &csrf, odd.to_string().as_bytes());
    assert_eq!(status, 200);
    assert!(page.contains(r#"<p class="error" id="ef-signers-0-email">not an email address</p>"#), "{page}");
    assert!(page.contains(r#"name="/covered_entity/zip""#) && page.contains("postal_code"), "{page}");
    let (status, page) = upload(&mut c, &csrf, b"this is not json");
    assert_eq!(status, 422);
    assert!(
        page.contains(r#"aria-describedby="intake-file-error""#) && page.contains("The file is not JSON"),
        "{page}"
    );
    // Without the token, nothing is read.
    let (status, _) = upload(&mut c, "forged", example_text(BAA).as_bytes());
    assert_eq!(status, 403);
}

#[test]
fn a_form_starts_from_an_agreement_the_person_may_see_and_roles_and_csrf_hold() {
    let (app, _dir) = spawn_app();
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    let mut vic = signed_in(&app, "vic@example.com", "vendor_manager");
    let theirs = app.create(&example_text(DUA));
    let id = theirs["id"].as_str().expect("id");
    // Another's agreement is not there for a sales person; legal may copy it.
    assert_eq!(sam.send("GET", &format!("/agreements/new?from={id}"), &[]).0, 404);
    let mut lena = signed_in(&app, "lena@example.com", "legal");
    let (status, _, page) = lena.send("GET", &format!("/agreements/new?from={id}"), &[]);
    assert_eq!(status, 200);
    assert!(page.contains(r#"name="/project_description" rows="4">Retrospective study"#), "{page}");
    assert!(page.contains(&format!("Started from agreement {id}")));
    // A vendor manager gets the 403 page, and no link to the form.
    let (status, _, page) = vic.send("GET", "/agreements/new", &[]);
    assert_eq!(status, 403);
    assert!(page.contains("Not allowed"));
    assert!(!vic.send("GET", "/", &[]).2.contains("href=\"/agreements/new\""));
    let csrf = csrf_of(&sam.send("GET", "/agreements/new", &[]).2);
    let vic_csrf = csrf_of(&vic.send("GET", "/", &[]).2);
    assert_eq!(post(&mut vic, &posted(&example_json(BAA), &vic_csrf, "save", &[])).0, 403);
    // Without its token (or with another session's) the form changes nothing.
    let mut no_token = posted(&example_json(BAA), &csrf, "save", &[]);
    no_token.retain(|(k, _)| k != "csrf");
    let (status, _, page) = post(&mut sam, &no_token);
    assert_eq!(status, 403);
    assert!(page.contains("This form has expired"));
    assert_eq!(post(&mut sam, &posted(&example_json(BAA), &vic_csrf, "save", &[])).0, 403);
    assert_eq!(total(&app), 1, "nothing was created");
    // A hostile row index is refused beside nothing, without building the list.
    let mut huge = posted(&example_json(BAA), &csrf, "check", &[]);
    huge.push(("/signers/99999999999/email".into(), "a@b.example".into()));
    let (status, _, page) = post(&mut sam, &huge);
    assert_eq!(status, 422);
    assert!(page.contains("beyond the limit of 100 rows"), "{page}");
}

#[test]
fn in_a_real_browser_a_legal_person_fills_the_baa_form_from_the_example_fixes_a_wrong_email_and_saves() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "lena@example.com", "Lena Legal", "legal");
    accept(&mut Client::new(&app), &url);
    for width in [1280, 390] {
        let d = Driver::start(width);
        d.go(&app.url("/login"));
        d.type_into("#email", "lena@example.com");
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(at(&d, "/"), "{}", d.source());
        d.click("nav a[href='/agreements/new']");
        assert!(has(&d, "#f-covered_entity-legal_name"), "{}", d.source());
        check_page(&d, "new-baa", width);
        // Start from the example intake file.
        d.click("details.start summary");
        let file = d.find("#intake-file");
        let path = example_path(BAA).display().to_string();
        d.call("POST", &d.s(&format!("/element/{file}/value")), Some(serde_json::json!({"text": path})));
        d.click("form[action='/agreements/new/upload'] button");
        assert!(shows(&d, "Filled from the file"), "{}", d.source());
        assert!(has(&d, "#f-signers-1-email[value='zoe@lakeside.example']"), "{}", d.source());
        check_page(&d, "new-baa-filled", width);
        // A wrong signer email: the error is beside that input and tied to it.
        d.type_into("#f-signers-1-email", "zoe at lakeside");
        d.click(".actions button[value=save]");
        assert!(
            has(&d, "#f-signers-1-email[aria-invalid=true][aria-describedby=ef-signers-1-email]"),
            "{}",
            d.source()
        );
        assert!(shows(&d, "not an email address"), "{}", d.source());
        check_page(&d, "new-baa-error", width);
        d.type_into("#f-signers-1-email", "zoe@lakeside.example");
        d.click(".actions button[value=check]");
        let text = || d.script("return document.querySelector('main').innerText;");
        assert!(shows(&d, "The check passes"), "{}", text());
        check_page(&d, "new-baa-checked", width);
        d.click(".actions button[value=save]");
        assert!(poll(|| current_path(&d).ends_with("?created=1")), "{}", d.source());
        assert!(shows(&d, "Draft saved."), "{}", d.source());
        check_page(&d, "new-baa-saved", width);
    }
    assert_eq!(total(&app), 2, "one draft from each browser");
}

/// A page's status and the headers that decide framing.
fn framing(c: &Client, path: &str) -> (u16, String, String, String) {
    let r = c.http.get(&format!("{}{path}", c.base)).header("Cookie", &c.cookie).call().expect("answers");
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), h("content-security-policy"), h("x-frame-options"), h("content-type"))
}

#[test]
fn on_the_agreement_page_legal_approves_a_departure_with_a_reason_sends_resends_corrects_and_voids() {
    let (app, _dir) = spawn_app();
    let mut lena = signed_in(&app, "lena@example.com", "legal");
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    let mut intake = example_json(BAA);
    intake["provisions"] = serde_json::json!({"liability": {"cap_multiple_of_fees": 1.0}});
    let a = app.create(&intake.to_string());
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(a["status"], "awaiting_approval");
    let page = format!("/agreements/{id}");
    let (status, _, html) = lena.send("GET", &page, &[]);
    assert_eq!(status, 200);
    assert!(html.contains("Departures from policy") && html.contains("cap_multiple_of_fees"), "{html}");
    assert!(html.contains(&format!("<iframe class=\"pdf\" src=\"/agreements/{id}/pdf\"")));
    let csrf = csrf_of(&html);
    // A reason is required; without one nothing changes and the page says why.
    let (status, _, html) = lena.send("POST", &format!("{page}/approve"), &[("csrf", &csrf), ("reason", " ")]);
    assert_eq!(status, 422);
    assert!(html.contains("Not done: a reason is required."), "{html}");
    // Without the token, nothing either.
    assert_eq!(lena.send("POST", &format!("{page}/approve"), &[("reason", "ok")]).0, 403);
    assert_eq!(app.get(&format!("/api/v1{page}")).json()["status"], "awaiting_approval");
    let (status, loc, _) =
        lena.send("POST", &format!("{page}/approve"), &[("csrf", &csrf), ("reason", "Board approved the lower cap")]);
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=approved").as_str()));
    assert!(lena.send("GET", &loc, &[]).2.contains("Approved: the departures from policy are recorded"));
    let audit = app.get(&format!("/api/v1{page}/audit")).json();
    let approved = audit["items"].as_array().expect("items").iter().find(|e| e["kind"] == "approved").cloned();
    assert_eq!(approved.expect("an approval event")["actor"], "lena@example.com");

    assert_eq!(lena.send("POST", &format!("{page}/send"), &[("csrf", &csrf)]).0, 303);
    let first = app.sign_link("priya@northwind.example");
    let (status, loc, _) = lena.send("POST", &format!("{page}/signers/s1/resend"), &[("csrf", &csrf)]);
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=resent").as_str()));
    assert_ne!(app.sign_link("priya@northwind.example"), first, "a new link went out");
    let (status, _, _) = lena.send(
        "POST",
        &format!("{page}/signers/s1/email"),
        &[("csrf", &csrf), ("email", "priya.raman@northwind.example")],
    );
    assert_eq!(status, 303);
    app.sign_link("priya.raman@northwind.example");
    let (status, _, html) =
        lena.send("POST", &format!("{page}/signers/s1/email"), &[("csrf", &csrf), ("email", "nope")]);
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Not done:"), "{html}");
    // A sales person cannot act on another's agreement: it does not exist for them.
    let sam_csrf = csrf_of(&sam.send("GET", "/", &[]).2);
    assert_eq!(sam.send("POST", &format!("{page}/void"), &[("csrf", &sam_csrf), ("reason", "x")]).0, 403);
    assert_eq!(sam.send("GET", &format!("{page}/pdf"), &[]).0, 404);

    // The PDF frame may be framed by this site only; every page still refuses frames.
    let (status, csp, xfo, ctype) = framing(&lena, &format!("{page}/pdf"));
    assert_eq!((status, ctype.as_str(), xfo.as_str()), (200, "application/pdf", "SAMEORIGIN"));
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    let (_, csp, xfo, _) = framing(&lena, &page);
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("frame-src 'self'") && xfo == "DENY", "{csp} {xfo}");
    let (_, csp, xfo, _) = framing(&lena, "/");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("frame-src") && xfo == "DENY", "{csp}");

    let (status, _, _) = lena.send("POST", &format!("{page}/void"), &[("csrf", &csrf), ("reason", "")]);
    assert_eq!(status, 422);
    let (status, loc, _) = lena.send("POST", &format!("{page}/void"), &[("csrf", &csrf), ("reason", "Deal cancelled")]);
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=voided").as_str()));
    assert_eq!(app.get(&format!("/api/v1{page}")).json()["status"], "voided");
    let (_, _, html) = lena.send("GET", &page, &[]);
    assert!(!html.contains(&format!("action=\"{page}/void\"")), "no Void form once voided");
}
