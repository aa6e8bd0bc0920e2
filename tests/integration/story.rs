//! The whole story in a real browser (headless Chromium over WebDriver), once at 1280 px and
//! once at 390 px, with mail through the loopback SMTP server:
//!
//! an admin invites a legal person and a vendor manager from the People page; the legal person
//! accepts through the link in the invitation email, enrols two-factor sign-in (the code is
//! computed here from the key shown in `#totp-secret`) and signs in with a code; fills the BAA
//! form from the example intake file, types a wrong signer email and sees the error beside that
//! field, fixes it, checks, saves, reads the element report, finds that a Send posted without
//! its CSRF token changes nothing, and sends; both signers sign through the links in their
//! emails; the vendor manager signs in, finds the agreement in the archive, downloads it (the
//! same SHA-256 as the API's copy) and verifies the downloaded file on `/archive/verify`. A
//! sales person sees none of it and gets the 403 page on an admin page.
//!
//! Every page visited is checked with axe-core (no serious or critical violation), must not
//! scroll sideways, and is saved as `target/screenshots/web-story-<page>-<width>.png`. Nothing
//! waits a fixed time: each step polls for its condition with a deadline.

use sha2::{Digest, Sha256};

use crate::account::unbase32;
use crate::app::*;
use crate::browser::{Driver, browser_available};
use crate::helpers::*;
use crate::smtp::{SmtpServer, plain_part};
use crate::web::{Client, PASSWORD, accept, at, check_page, current_path, has, invite, poll, shows};
use countersign::clock::{Clock, ManualClock};
use countersign::people::totp;

/// The newest link containing `kind` in a message to `to`, waiting for it (a link not in
/// `used`, so a second email to the same person is told from the first).
fn mailed_link(smtp: &SmtpServer, to: &str, kind: &str, used: &[String]) -> String {
    let mut found = None;
    let ok = poll(|| {
        found = smtp
            .messages()
            .iter()
            .rev()
            .filter(|m| m.to.iter().any(|t| t == to))
            .filter_map(|m| plain_part(&m.parsed()))
            .flat_map(|t| t.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|w| w.starts_with("http") && w.contains(kind) && !used.contains(w));
        found.is_some()
    });
    assert!(ok, "no {kind} link mailed to {to}");
    found.unwrap_or_default()
}

/// Signs in with email and password in the browser (the first step).
fn password_step(d: &Driver, app: &TestApp, email: &str) {
    d.go(&app.url("/login"));
    assert!(has(d, "#email"), "{}", d.source());
    d.type_into("#email", email);
    d.type_into("#password", PASSWORD);
    d.click("button[type=submit]");
}

fn sign_out(d: &Driver, app: &TestApp) {
    d.go(&app.url("/account"));
    assert!(has(d, ".signout button"), "{}", d.source());
    d.click(".signout button");
    assert!(at(d, "/login"), "{}", d.source());
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn story(width: u32) {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", crate::mail::with_smtp(smtp.port));
    let page = |d: &Driver, name: &str| check_page(d, &format!("story-{name}"), width);
    let (_, admin_url) = invite(&app, "ada@example.com", "Ada Admin", "admin");
    accept(&mut Client::new(&app), &admin_url);
    let (_, sales_url) = invite(&app, "sam@example.com", "Sam Sales", "sales");
    accept(&mut Client::new(&app), &sales_url);

    let d = Driver::start(width);
    // The admin invites Lena (legal) and Vera (vendor manager) from the People page.
    password_step(&d, &app, "ada@example.com");
    assert!(at(&d, "/"), "{}", d.source());
    d.click("nav a[href='/people']");
    assert!(has(&d, "form[action='/people'] #f-email"), "{}", d.source());
    page(&d, "people");
    for (email, name, role) in
        [("lena@example.com", "Lena Legal", "legal"), ("vera@example.com", "Vera Vendor", "vendor_manager")]
    {
        d.type_into("#f-email", email);
        d.type_into("#f-name", name);
        d.script(&format!("document.getElementById('f-role').value = '{role}'; return true;"));
        d.click("form[action='/people'] button[type=submit]");
        assert!(shows(&d, &format!("Invitation queued for <strong>{email}")), "{}", d.source());
    }
    page(&d, "people-invited");
    sign_out(&d, &app);

    // Lena accepts through the invitation email.
    let lena_invite = mailed_link(&smtp, "lena@example.com", "/invite/", &[]);
    d.go(&lena_invite);
    assert!(has(&d, "#f-password_confirm"), "{}", d.source());
    page(&d, "invite");
    d.type_into("#f-password", PASSWORD);
    d.type_into("#f-password_confirm", PASSWORD);
    d.click("button[type=submit]");
    assert!(at(&d, "/login?welcome=1"), "{}", d.source());
    page(&d, "login-welcome");
    // She signs in and turns on two-factor sign-in with a code from the key on the page.
    d.type_into("#email", "lena@example.com");
    d.type_into("#password", PASSWORD);
    d.click("button[type=submit]");
    assert!(at(&d, "/"), "{}", d.source());
    page(&d, "agreements-empty");
    d.click("nav a[href='/account']");
    assert!(has(&d, "form[action='/account/totp'] button"), "{}", d.source());
    page(&d, "account");
    d.click("form[action='/account/totp'] button");
    assert!(has(&d, "#totp-secret"), "{}", d.source());
    page(&d, "account-totp");
    let secret = d.script("return document.getElementById('totp-secret').textContent;");
    let seed = unbase32(secret.as_str().expect("the key as text").trim());
    d.type_into("#f-code", &totp::code_at(&seed, clock.now()));
    d.click("form[action='/account/totp/confirm'] button[type=submit]");
    assert!(has(&d, "#recovery-codes"), "{}", d.source());
    page(&d, "account-recovery-codes");
    sign_out(&d, &app);
    password_step(&d, &app, "lena@example.com");
    assert!(has(&d, "input[name=code]"), "the second step asks for a code: {}", d.source());
    page(&d, "login-code");
    // The enrolment's code is spent; thirty seconds on, the next one signs her in.
    clock.advance(30);
    d.type_into("input[name=code]", &totp::code_at(&seed, clock.now()));
    d.click("button[type=submit]");
    assert!(at(&d, "/"), "{}", d.source());

    // The BAA form, filled from the example intake file; a wrong signer email is shown beside
    // its input, then fixed.
    d.go(&app.url("/agreements/new?kind=baa"));
    assert!(has(&d, "#f-covered_entity-legal_name"), "{}", d.source());
    page(&d, "new-baa");
    d.click("details.start summary");
    let file = d.find("#intake-file");
    let intake = example_path(BAA).display().to_string();
    d.call("POST", &d.s(&format!("/element/{file}/value")), Some(serde_json::json!({"text": intake})));
    d.click("form[action='/agreements/new/upload'] button");
    assert!(shows(&d, "Filled from the file"), "{}", d.source());
    page(&d, "new-baa-filled");
    d.type_into("#f-signers-1-email", "zoe at lakeside");
    d.click(".actions button[value=save]");
    assert!(has(&d, "#f-signers-1-email[aria-invalid=true][aria-describedby=ef-signers-1-email]"), "{}", d.source());
    let said = d.script("return document.getElementById('ef-signers-1-email').textContent;");
    assert!(said.as_str().is_some_and(|t| t.contains("not an email address")), "{said}");
    page(&d, "new-baa-error");
    d.script("document.getElementById('f-signers-1-email').scrollIntoView({block: 'center'}); return true;");
    page(&d, "new-baa-error-at-the-field");
    assert_eq!(app.get("/api/v1/agreements").json()["total"], 0, "nothing saved with an error");
    d.type_into("#f-signers-1-email", "zoe@lakeside.example");
    d.click(".actions button[value=check]");
    assert!(shows(&d, "The check passes"), "{}", d.source());
    page(&d, "new-baa-checked");
    d.click(".actions button[value=save]");
    assert!(poll(|| current_path(&d).ends_with("?created=1")), "{}", d.source());
    let agreement = current_path(&d).trim_end_matches("?created=1").to_string();
    let id = agreement.trim_start_matches("/agreements/").to_string();
    assert!(shows(&d, "Draft saved."), "{}", d.source());
    // The element report: every required element, each with its clause and citation.
    assert!(shows(&d, "Every required element is present."), "{}", d.source());
    let rows = d.script(
        "return [...document.querySelectorAll('section[aria-labelledby=check] tbody tr')]
           .map(r => [...r.cells].map(c => c.textContent.trim()));",
    );
    let rows = rows.as_array().expect("element rows").clone();
    assert!(rows.len() >= 10, "{rows:?}");
    assert!(rows.iter().all(|r| r[2].as_str().is_some_and(|c| c.contains("164."))), "citations: {rows:?}");
    page(&d, "agreement-draft");
    // A Send without its CSRF token is refused and changes nothing.
    d.script(&format!(
        "const f = document.querySelector(\"form[action='{agreement}/send']\"); \
         f.querySelector('input[name=csrf]').remove(); f.submit(); return true;"
    ));
    assert!(shows(&d, "This form has expired"), "{}", d.source());
    page(&d, "csrf-refused");
    assert_eq!(app.get(&format!("/api/v1{agreement}")).json()["status"], "draft", "nothing changed");
    d.go(&app.url(&agreement));
    assert!(has(&d, &format!("form[action='{agreement}/send'] button")), "{}", d.source());
    d.click(&format!("form[action='{agreement}/send'] button"));
    assert!(shows(&d, "Sent: the first signer"), "{}", d.source());
    page(&d, "agreement-sent");
    let audit = app.get(&format!("/api/v1{agreement}/audit")).json();
    let by = |kind: &str| {
        audit["items"].as_array().expect("items").iter().find(|e| e["kind"] == kind).map(|e| e["actor"].clone())
    };
    assert_eq!(by("created"), Some(serde_json::json!("lena@example.com")), "{audit}");
    assert_eq!(by("sent"), Some(serde_json::json!("lena@example.com")), "{audit}");
    sign_out(&d, &app);

    // The signers sign through the links in their emails, in order.
    for (email, name) in [("priya@northwind.example", "Priya Raman"), ("zoe@lakeside.example", "Zoë Ångström")] {
        let link = mailed_link(&smtp, email, "/sign/", &[]);
        d.go(&link);
        assert!(has(&d, "#typed_name"), "{}", d.source());
        page(&d, &format!("signer-{}", email.split('@').next().unwrap_or("signer")));
        d.type_into("#typed_name", name);
        d.click("input[name=consent]");
        d.click("button[value=sign]");
        // The first signer's confirmation, or the last one's: the agreement is complete.
        let confirmed = poll(|| {
            let html = d.source();
            html.contains("Your signature has been recorded") || html.contains("the agreement is complete")
        });
        assert!(confirmed, "{}", d.source());
        page(&d, &format!("signed-{}", email.split('@').next().unwrap_or("signer")));
    }
    assert!(
        poll(|| app.get(&format!("/api/v1{agreement}")).json()["status"] == "executed"),
        "executed after both signatures"
    );

    // Vera accepts, signs in, finds it in the archive, downloads it and verifies the download.
    let vera_invite = mailed_link(&smtp, "vera@example.com", "/invite/", &[]);
    d.go(&vera_invite);
    assert!(has(&d, "#f-password_confirm"), "{}", d.source());
    d.type_into("#f-password", PASSWORD);
    d.type_into("#f-password_confirm", PASSWORD);
    d.click("button[type=submit]");
    assert!(at(&d, "/login?welcome=1"), "{}", d.source());
    d.type_into("#email", "vera@example.com");
    d.type_into("#password", PASSWORD);
    d.click("button[type=submit]");
    assert!(at(&d, "/"), "{}", d.source());
    page(&d, "agreements-vendor-manager");
    d.click("nav a[href='/archive']");
    assert!(has(&d, "#f-q"), "{}", d.source());
    d.type_into("#f-q", "Northwind");
    d.script("document.getElementById('f-status').value = 'executed'; return true;");
    d.click("form.filters button[type=submit]");
    let download = format!("a[href='{agreement}/document']");
    assert!(has(&d, &download), "{}", d.source());
    page(&d, "archive-found");
    d.click(&download);
    let saved = d.downloads();
    let mut got = None;
    let done = poll(|| {
        got = std::fs::read_dir(&saved).ok().and_then(|entries| {
            entries.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "pdf"))
        });
        got.is_some()
    });
    assert!(done, "the download did not arrive in {}", saved.display());
    let file = got.expect("a downloaded PDF");
    let api = app.get(&format!("/api/v1{agreement}/document")).body;
    let mut bytes = Vec::new();
    assert!(
        poll(|| {
            bytes = std::fs::read(&file).unwrap_or_default();
            sha256(&bytes) == sha256(&api)
        }),
        "the download is the API's copy: {} bytes vs {}",
        bytes.len(),
        api.len()
    );
    let log = app.get(&format!("/api/v1{agreement}/access-log")).json();
    assert!(log["items"].as_array().expect("items").iter().any(|e| e["who"] == "vera@example.com"), "{log}");
    d.click("main a[href='/archive/verify']");
    assert!(has(&d, "#f-file"), "{}", d.source());
    page(&d, "verify");
    let input = d.find("#f-file");
    d.call(
        "POST",
        &d.s(&format!("/element/{input}/value")),
        Some(serde_json::json!({"text": file.display().to_string()})),
    );
    d.click("main form button[type=submit]");
    assert!(has(&d, "#verdict"), "{}", d.source());
    let verdict = d.script("return document.getElementById('verdict').textContent;");
    assert!(verdict.as_str().is_some_and(|t| t.starts_with("Archived copy.")), "{verdict}");
    assert!(has(&d, &format!("#agreement-link[href='{agreement}']")), "{}", d.source());
    assert!(shows(&d, "Valid seal by Countersign"), "{}", d.source());
    page(&d, "verify-archived");
    sign_out(&d, &app);

    // Sam (sales) sees none of Lena's agreements, and People is not for him.
    password_step(&d, &app, "sam@example.com");
    assert!(at(&d, "/"), "{}", d.source());
    assert!(!has_now(&d, &format!("a[href='{agreement}']")), "not on Sam's list");
    page(&d, "agreements-sales");
    d.go(&app.url("/archive"));
    assert!(shows(&d, "0 agreement(s)"), "{}", d.source());
    assert!(!d.source().contains(&id));
    d.go(&app.url(&agreement));
    assert!(shows(&d, "Agreement not found"), "{}", d.source());
    page(&d, "agreement-hidden-from-sales");
    d.go(&app.url("/people"));
    assert!(shows(&d, "Not allowed"), "{}", d.source());
    page(&d, "forbidden");
    // The public check of the same file, signed out.
    sign_out(&d, &app);
    d.go(&app.url("/verify"));
    assert!(has(&d, "#f-file"), "{}", d.source());
    page(&d, "public-verify");
    let input = d.find("#f-file");
    d.call(
        "POST",
        &d.s(&format!("/element/{input}/value")),
        Some(serde_json::json!({"text": file.display().to_string()})),
    );
    d.click("main form button[type=submit]");
    assert!(has(&d, "#verdict"), "{}", d.source());
    assert!(shows(&d, "Valid seal by Countersign") && !d.source().contains(&id), "{}", d.source());
    page(&d, "public-verify-archived");
}

/// Whether the page has `css` now (the page is already loaded: no waiting for it to appear).
fn has_now(d: &Driver, css: &str) -> bool {
    d.script(&format!("return document.querySelector({}) !== null;", serde_json::json!(css))).as_bool().unwrap_or(false)
}

#[test]
fn in_a_real_browser_legal_drafts_and_sends_signers_sign_and_the_vendor_manager_downloads_and_verifies_the_archived_copy()
 {
    if !browser_available("story") {
        return;
    }
    for width in [1280, 390] {
        story(width);
    }
}
