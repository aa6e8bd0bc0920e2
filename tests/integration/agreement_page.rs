//! The agreement page over real HTTP: the versions with each draft PDF, the clause diff
//! between two versions (marked with <ins>/<del> and a text prefix, not colour alone), the
//! seal's status on an executed agreement, and the lifecycle actions — terminate, certify the
//! return or destruction of PHI, dispose after retention — each shown only when the status and
//! the role allow it, refused without its CSRF token (403, nothing changed) and for a role that
//! may not act (the 403 page), a bad field reported beside that field, and the audit trail
//! recording the person's email.

use serde_json::Value;

use crate::app::*;
use crate::archive::execute;
use crate::helpers::{BAA, DUA, example_json, example_text};
use crate::web::{Client, PASSWORD, accept, csrf_of, invite, signed_in};

fn status_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/agreements/{id}")).json()["status"].clone()
}

/// The audit event of `kind` (the last one).
fn event(app: &TestApp, id: &str, kind: &str) -> Option<Value> {
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    audit["items"].as_array().expect("items").iter().rev().find(|e| e["kind"] == kind).cloned()
}

fn bytes(c: &Client, path: &str) -> (u16, Vec<u8>) {
    let mut r = c.http.get(format!("{}{path}", c.base)).header("Cookie", &c.cookie).call().expect("answers");
    (r.status().as_u16(), r.body_mut().with_config().limit(64 << 20).read_to_vec().expect("body"))
}

/// `field` of the form `form` is marked invalid and described by the message beside it.
fn error_beside(html: &str, form: &str, field: &str) -> bool {
    let id = format!("{form}-{field}");
    html.contains(&format!("id=\"{id}-error\""))
        && html.split(&format!("id=\"{id}\"")).nth(1).is_some_and(|rest| {
            let tag = rest.split('>').next().unwrap_or("");
            tag.contains("aria-invalid=\"true\"") && tag.contains(&format!("aria-describedby=\"{id}-error"))
        })
}

#[test]
fn an_executed_agreement_shows_a_valid_seal_and_a_vendor_manager_terminates_and_certifies_it_under_their_email() {
    let (app, dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    let page = format!("/agreements/{id}");
    let mut vera = signed_in(&app, "vera@example.com", "vendor_manager");
    let mut lena = signed_in(&app, "lena@example.com", "legal");
    // Before execution: no seal, no lifecycle actions.
    let (_, _, html) = vera.send("GET", &page, &[]);
    assert!(!html.contains("id=\"seal\"") && !html.contains(&format!("action=\"{page}/terminate\"")), "{html}");
    execute(&app, &id);

    // The seal, from the archived copy: valid, our certificate, its fingerprint, no timestamp.
    let keys = countersign::seal::SealKeys::load_or_create(&dir.path().join("seal")).expect("seal keys");
    let (status, _, html) = vera.send("GET", &page, &[]);
    assert_eq!(status, 200);
    assert!(html.contains("Sealed and valid."), "{html}");
    assert!(html.contains("CN=Countersign document seal,O=Countersign"), "{html}");
    assert!(html.contains(&keys.fingerprint()), "the sealing certificate's fingerprint: {html}");
    assert!(html.contains("No: the seal covers the whole file"), "{html}");
    assert!(html.contains("None: the time is the sealing server's own clock."), "{html}");
    // Renewal: the example renews by itself every 36 months from 2027-01-01.
    assert!(html.contains("Renews on</dt><dd>2030-01-01"), "{html}");
    assert!(html.contains("It renews by itself for another 36 months"), "{html}");
    assert!(html.contains("2029-12-02 (30 days before)"), "the staff notice date: {html}");
    // Vera (vendor manager) may terminate; Lena (legal) may not and sees no form.
    assert!(html.contains(&format!("action=\"{page}/terminate\"")));
    assert!(!html.contains(&format!("action=\"{page}/return-or-destroy\"")), "not before termination");
    let (_, _, lena_html) = lena.send("GET", &page, &[]);
    assert!(lena_html.contains("Sealed and valid.") && !lena_html.contains(&format!("action=\"{page}/terminate\"")));
    let lena_csrf = csrf_of(&lena_html);
    let (status, _, refused) = lena.send(
        "POST",
        &format!("{page}/terminate"),
        &[("csrf", &lena_csrf), ("date", "2027-03-01"), ("reason", "not mine to end")],
    );
    assert_eq!(status, 403);
    assert!(refused.contains("Not allowed") && refused.contains("Your role does not allow this page"), "{refused}");
    assert_eq!(status_of(&app, &id), "executed");

    // Without the CSRF token nothing happens.
    let (status, _, _) =
        vera.send("POST", &format!("{page}/terminate"), &[("date", "2027-03-01"), ("reason", "Contract ended")]);
    assert_eq!(status, 403);
    assert_eq!(status_of(&app, &id), "executed");

    // A date that is not a date is reported beside its input; what was typed stays.
    let csrf = csrf_of(&html);
    let (status, _, html) = vera.send(
        "POST",
        &format!("{page}/terminate"),
        &[("csrf", &csrf), ("date", "1 March 2027"), ("reason", "Contract ended")],
    );
    assert_eq!(status, 422);
    assert!(error_beside(&html, "terminate", "date"), "{html}");
    assert!(html.contains("Not a date in the form YYYY-MM-DD."), "{html}");
    assert!(html.contains(">Contract ended</textarea>") && html.contains("value=\"1 March 2027\""), "{html}");
    assert!(!error_beside(&html, "terminate", "reason"));
    // A missing reason, beside the reason.
    let (status, _, html) =
        vera.send("POST", &format!("{page}/terminate"), &[("csrf", &csrf), ("date", "2027-03-01"), ("reason", " ")]);
    assert_eq!(status, 422);
    assert!(error_beside(&html, "terminate", "reason") && html.contains("A reason is required."), "{html}");
    assert_eq!(status_of(&app, &id), "executed");

    let (status, loc, _) = vera.send(
        "POST",
        &format!("{page}/terminate"),
        &[("csrf", &csrf), ("date", "2027-03-01"), ("reason", "Contract ended")],
    );
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=terminated").as_str()));
    assert_eq!(status_of(&app, &id), "terminated");
    let ev = event(&app, &id, "terminated").expect("a terminated event");
    assert_eq!((ev["actor"].as_str(), ev["ip"].as_str()), (Some("vera@example.com"), Some("127.0.0.1")));
    let (_, _, html) = vera.send("GET", &loc, &[]);
    assert!(html.contains("Terminated: the agreement ends on the date given."), "{html}");
    assert!(html.contains("Effective 2027-03-01, by vera@example.com: Contract ended"), "{html}");
    // The timeline says who, what, when and from where.
    assert!(
        html.contains("<strong>Terminated</strong> (effective 2027-03-01; reason: Contract ended) — vera@example.com, 2027-01-04 12:00 UTC, from 127.0.0.1"),
        "{html}"
    );
    assert!(!html.contains(&format!("action=\"{page}/terminate\"")), "terminated once");

    // Certify: infeasible needs the continuing protections, beside that field.
    assert!(html.contains(&format!("action=\"{page}/return-or-destroy\"")));
    let certify = |c: &mut Client, f: &[(&str, &str)]| c.send("POST", &format!("{page}/return-or-destroy"), f);
    let (status, _, html) = certify(
        &mut vera,
        &[
            ("csrf", &csrf),
            ("method", "infeasible"),
            ("date", "2027-03-10"),
            ("certified_by", "Priya Raman, VP Legal"),
            ("protections", ""),
        ],
    );
    assert_eq!(status, 422);
    assert!(error_beside(&html, "certify", "protections"), "{html}");
    assert!(html.contains("<a href=\"#certify-protections\">Go to the field</a>"), "{html}");
    assert!(html.contains("option value=\"infeasible\" selected"), "the choice stays: {html}");
    let (status, _, html) =
        certify(&mut vera, &[("csrf", &csrf), ("method", ""), ("date", "2027-03-10"), ("certified_by", "P")]);
    assert_eq!(status, 422);
    assert!(
        html.contains(
            "id=\"certify-method\" name=\"method\" aria-invalid=\"true\" aria-describedby=\"certify-method-error\""
        ),
        "{html}"
    );
    assert_eq!(
        certify(
            &mut lena,
            &[("csrf", &lena_csrf), ("method", "destroyed"), ("date", "2027-03-10"), ("certified_by", "P")]
        )
        .0,
        403
    );
    assert_eq!(status_of(&app, &id), "terminated");
    let (status, loc, _) = certify(
        &mut vera,
        &[
            ("csrf", &csrf),
            ("method", "destroyed"),
            ("date", "2027-03-10"),
            ("certified_by", "Priya Raman, VP Legal"),
            ("protections", ""),
        ],
    );
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=certified").as_str()));
    assert_eq!(status_of(&app, &id), "closed");
    let ev = event(&app, &id, "phi_disposition_certified").expect("a certification event");
    assert_eq!(ev["actor"], "vera@example.com");
    assert_eq!(ev["detail"]["certified_by"], "Priya Raman, VP Legal");
    let (_, _, html) = vera.send("GET", &loc, &[]);
    assert!(html.contains("Destroyed on 2027-03-10, certified by Priya Raman, VP Legal"), "{html}");
    assert!(html.contains("Keep documents until</dt><dd>2033-03-01"), "six years from the end: {html}");
    assert!(
        !html.contains(&format!("action=\"{page}/return-or-destroy\""))
            && !html.contains(&format!("action=\"{page}/dispose\""))
    );

    // Past the retention date an administrator (only) may dispose of the documents.
    app.clock.advance(7 * 366 * 86_400);
    let mut vera = Client::new(&app);
    assert_eq!(vera.login("vera@example.com", PASSWORD).0, 303);
    let (_, _, html) = vera.send("GET", &page, &[]);
    assert!(!html.contains(&format!("action=\"{page}/dispose\"")), "not for a vendor manager");
    let vera_csrf = csrf_of(&html);
    assert_eq!(vera.send("POST", &format!("{page}/dispose"), &[("csrf", &vera_csrf)]).0, 403);
    let mut ada = signed_in(&app, "ada@example.com", "admin");
    let (_, _, html) = ada.send("GET", &page, &[]);
    assert!(html.contains(&format!("action=\"{page}/dispose\"")), "{html}");
    assert_eq!(ada.send("POST", &format!("{page}/dispose"), &[]).0, 403);
    assert!(app.get(&format!("/api/v1{page}")).json()["disposed_at"].is_null(), "nothing changed");
    let (status, loc, _) = ada.send("POST", &format!("{page}/dispose"), &[("csrf", &csrf_of(&html))]);
    assert_eq!((status, loc.as_str()), (303, format!("{page}?done=disposed").as_str()));
    assert!(app.get(&format!("/api/v1{page}")).json()["disposed_at"].is_string());
    assert_eq!(event(&app, &id, "disposed").expect("disposed")["actor"], "ada@example.com");
    let (status, _, html) = ada.send("GET", &loc, &[]);
    assert_eq!(status, 200, "the page still opens once the documents are gone: {html}");
    assert!(html.contains("Disposed of: the documents are deleted"), "{html}");
}

#[test]
fn the_versions_download_each_draft_and_the_diff_marks_changed_words_not_by_colour_alone() {
    let (app, _dir) = spawn_app();
    let mut lena = signed_in(&app, "lena@example.com", "legal");
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    let page = format!("/agreements/{id}");
    // One version: listed, nothing to compare yet.
    let (_, _, html) = lena.send("GET", &page, &[]);
    assert!(html.contains(&format!("href=\"{page}/versions/1/document\"")), "{html}");
    assert!(!html.contains(&format!("action=\"{page}/diff\"")), "no comparison with one version");
    let (status, _, html) = lena.send("GET", &format!("{page}/diff"), &[]);
    assert_eq!(status, 200);
    assert!(html.contains("compared with itself"), "{html}");

    let mut intake = example_json(BAA);
    intake["services"] = serde_json::json!("Appointment reminders, two-way patient messaging and billing statements");
    intake["breach_notice_days"] = serde_json::json!(5);
    let r = app.put(&format!("/api/v1{page}"), &intake.to_string());
    assert_eq!(r.status, 200, "{}", r.text());

    let (_, _, html) = lena.send("GET", &page, &[]);
    for v in [1, 2] {
        assert!(html.contains(&format!("href=\"{page}/versions/{v}/document\"")), "{html}");
    }
    assert!(html.contains("Version 2 (current)") && html.contains(&format!("action=\"{page}/diff\"")), "{html}");
    // Each version's PDF is the API's, byte for byte.
    let (status, v1) = bytes(&lena, &format!("{page}/versions/1/document"));
    assert_eq!(status, 200);
    assert!(v1.starts_with(b"%PDF-") && v1 == app.get(&format!("/api/v1{page}/versions/1/document")).body);
    assert_eq!(bytes(&lena, &format!("{page}/versions/9/document")).0, 404);
    assert_eq!(bytes(&lena, &format!("{page}/versions/x/document")).0, 404);

    // The diff, latest against the one before by default: the API's clauses, each marked.
    let api = app.get(&format!("/api/v1{page}/diff?from=1&to=2")).json();
    let clauses: Vec<&str> =
        api["changes"].as_array().expect("changes").iter().map(|c| c["clause"].as_str().expect("clause")).collect();
    assert!(!clauses.is_empty());
    let (status, _, html) = lena.send("GET", &format!("{page}/diff"), &[]);
    assert_eq!(status, 200);
    assert!(html.contains("Changes between versions 1 and 2"), "{html}");
    assert!(html.contains(&format!("{} clause(s) differ.", clauses.len())), "{html}");
    for c in &clauses {
        let shown = c.replace('&', "&amp;").replace('\'', "&#x27;");
        assert!(html.contains(&shown), "clause {c} listed: {html}");
    }
    // Insertions and deletions carry a text mark for screen readers and for print.
    assert!(html.contains("<ins><span class=\"sr-only\">[added: </span>"), "{html}");
    assert!(html.contains("<del><span class=\"sr-only\">[removed: </span>"), "{html}");
    assert!(html.contains("billing"), "{html}");
    // Versions chosen in the form; a version that does not exist is reported beside its field.
    let (status, _, html) = lena.send("GET", &format!("{page}/diff?from=2&to=1"), &[]);
    assert_eq!(status, 200);
    assert!(html.contains("Changes between versions 2 and 1"), "{html}");
    let (status, _, html) = lena.send("GET", &format!("{page}/diff?from=7&to=2"), &[]);
    assert_eq!(status, 422);
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"e-from\"")
            && html.contains("Choose a version from 1 to 2."),
        "{html}"
    );
    // A sales person who did not create it: it does not exist for them.
    assert_eq!(sam.send("GET", &format!("{page}/diff"), &[]).0, 404);
    assert_eq!(bytes(&sam, &format!("{page}/versions/1/document")).0, 404);
}

#[test]
fn a_draft_dua_page_offers_no_lifecycle_action_and_the_timeline_names_who_created_it_from_where() {
    let (app, _dir) = spawn_app();
    let mut ada = signed_in(&app, "ada@example.com", "admin");
    let id = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    let page = format!("/agreements/{id}");
    let (status, _, html) = ada.send("GET", &page, &[]);
    assert_eq!(status, 200);
    for action in ["terminate", "return-or-destroy", "dispose"] {
        assert!(!html.contains(&format!("action=\"{page}/{action}\"")), "{action}: {html}");
    }
    // Terminating a draft is refused by its status, said plainly, and nothing changes.
    let csrf = csrf_of(&html);
    let (status, _, html) =
        ada.send("POST", &format!("{page}/terminate"), &[("csrf", &csrf), ("date", "2027-03-01"), ("reason", "r")]);
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("Not done:"), "{html}");
    assert_eq!(status_of(&app, &id), "draft");
    // The draft was created with the bootstrap API key: the timeline names it and the time.
    let created = event(&app, &id, "created").expect("created");
    assert!(
        html.contains(&format!(
            "<strong>Draft created</strong> — {}, 2027-01-04 12:00 UTC",
            created["actor"].as_str().expect("actor")
        )),
        "{html}"
    );
}

#[test]
fn in_a_real_browser_the_seal_the_diff_and_the_lifecycle_forms_pass_axe_and_fit_a_phone() {
    use crate::browser::Driver;
    use crate::web::{at, check_page, has, shows};
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "vera@example.com", "Vera Vendor", "vendor_manager");
    accept(&mut Client::new(&app), &url);
    for width in [1280, 390] {
        // An executed agreement, and a draft with two versions.
        let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
        execute(&app, &id);
        let draft = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
        let mut intake = example_json(BAA);
        intake["services"] = serde_json::json!(
            "Appointment reminders, two-way patient messaging, billing statements and a very-long-hyphenated-service-name-that-must-wrap-on-a-phone"
        );
        assert_eq!(app.put(&format!("/api/v1/agreements/{draft}"), &intake.to_string()).status, 200);

        let d = Driver::start(width);
        d.go(&app.url("/login"));
        d.type_into("#email", "vera@example.com");
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(at(&d, "/"), "{}", d.source());

        let page = format!("/agreements/{id}");
        d.go(&app.url(&page));
        assert!(shows(&d, "Sealed and valid."), "{}", d.source());
        check_page(&d, "agreement-executed", width);
        d.script("document.getElementById('seal').scrollIntoView(); return true;");
        check_page(&d, "agreement-executed-seal", width);
        // Terminate through the form (the date input takes the ISO date).
        d.script("document.getElementById('terminate-date').value = '2027-03-01'; return true;");
        d.type_into("#terminate-reason", "Contract ended");
        d.click(&format!("form[action='{page}/terminate'] button"));
        assert!(shows(&d, "Terminated: the agreement ends on the date given."), "{}", d.source());
        assert_eq!(status_of(&app, &id), "terminated");
        d.script("document.getElementById('lifecycle').scrollIntoView(); return true;");
        check_page(&d, "agreement-terminated", width);
        // Infeasible without the continuing protections: the error beside that field.
        d.script("document.getElementById('certify-method').value = 'infeasible'; document.getElementById('certify-date').value = '2027-03-10'; return true;");
        d.type_into("#certify-certified_by", "Priya Raman, VP Legal");
        d.click(&format!("form[action='{page}/return-or-destroy'] button"));
        assert!(
            has(
                &d,
                "#certify-protections[aria-invalid=true][aria-describedby='certify-protections-error certify-protections-hint']"
            ),
            "{}",
            d.source()
        );
        assert!(has(&d, "a[href='#certify-protections']"), "the alert links to the field: {}", d.source());
        d.script("document.getElementById('certify-protections').scrollIntoView({block: 'center'}); return true;");
        check_page(&d, "agreement-certify-error", width);
        d.type_into("#certify-protections", "Backups age out in 35 days; until then the BAA's protections continue.");
        d.click(&format!("form[action='{page}/return-or-destroy'] button"));
        assert!(shows(&d, "Certified: the return or destruction of PHI is recorded"), "{}", d.source());
        assert_eq!(status_of(&app, &id), "closed");
        check_page(&d, "agreement-closed", width);

        // The diff, chosen from the agreement page's form.
        d.go(&app.url(&format!("/agreements/{draft}")));
        d.click(&format!("form[action='/agreements/{draft}/diff'] button"));
        assert!(shows(&d, "Changes between versions 1 and 2"), "{}", d.source());
        assert!(has(&d, "ol.diff ins"), "{}", d.source());
        check_page(&d, "agreement-diff", width);
    }
}
