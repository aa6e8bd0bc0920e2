//! A person's own account over real HTTP: two-factor enrolment from `/account` and sign-in
//! with a code computed here from the seed the page shows (RFC 6238), no replay, recovery
//! codes once each, the admin's reset, `[web] require_mfa`, changing one's password and the
//! forgotten-password link.

use crate::app::*;
use crate::web::{Client, PASSWORD, accept, invite, path_of};
use countersign::clock::ManualClock;
use countersign::people::totp;

/// RFC 4648 base32 (no padding) back to bytes.
pub(crate) fn unbase32(s: &str) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let i = body.find(start).unwrap_or_else(|| panic!("{start} in {body}")) + start.len();
    body[i..].split(end).next().unwrap_or("")
}

/// Signs in a freshly invited person and enrols them; returns the client, the seed read from
/// the page and the recovery codes.
fn enrolled(app: &TestApp, email: &str, role: &str) -> (Client, Vec<u8>, Vec<String>) {
    let (_, url) = invite(app, email, "Tess Two", role);
    let mut c = Client::new(app);
    accept(&mut c, &url);
    assert_eq!(c.login(email, PASSWORD).0, 303);
    let csrf = c.csrf("/account");
    let (status, loc, _) = c.send("POST", "/account/totp", &[("csrf", &csrf)]);
    assert_eq!((status, loc.as_str()), (303, "/account?started=1#two-factor"));
    let (_, _, page) = c.send("GET", "/account", &[]);
    assert!(page.contains("<svg") && page.contains("aria-label=\"QR code for your authenticator app\""), "{page}");
    let seed = unbase32(between(&page, "id=\"totp-secret\">", "<"));
    assert_eq!(seed.len(), 20);
    // A wrong code is refused beside its field.
    let (status, _, body) = c.send("POST", "/account/totp/confirm", &[("csrf", &csrf), ("code", "000000")]);
    assert_eq!(status, 422);
    assert!(body.contains("aria-describedby=\"e-code h-code\"") && body.contains("id=\"e-code\""), "{body}");
    let code = totp::code_at(&seed, app.clock.now_secs());
    let (status, _, body) = c.send("POST", "/account/totp/confirm", &[("csrf", &csrf), ("code", &code)]);
    assert_eq!(status, 200, "{body}");
    let list = between(&body, "id=\"recovery-codes\">", "</ol>");
    let codes: Vec<String> =
        list.split("<code>").skip(1).map(|x| x.split('<').next().unwrap_or("").to_string()).collect();
    assert_eq!(codes.len(), 10, "{list}");
    (c, seed, codes)
}

/// Password, then code: the code step's status and the body.
fn sign_in_with(app: &TestApp, email: &str, code: &str) -> (u16, String, Client) {
    let mut c = Client::new(app);
    let (status, _, body) = c.login(email, PASSWORD);
    assert_eq!(status, 200, "the password step asks for a code: {body}");
    assert!(body.contains("name=\"code\""), "{body}");
    let pending = between(&body, "name=\"pending\" value=\"", "\"").to_string();
    let (status, _, body) = c.send("POST", "/login", &[("pending", &pending), ("code", code)]);
    (status, body, c)
}

trait Now {
    fn now_secs(&self) -> u64;
}

impl Now for ManualClock {
    fn now_secs(&self) -> u64 {
        countersign::clock::Clock::now(self)
    }
}

#[test]
fn a_person_enrols_two_factor_and_signs_in_with_a_code_from_the_seed_shown_once_and_never_twice() {
    let (app, _dir) = spawn_app();
    let (_, seed, _) = enrolled(&app, "tess@example.com", "legal");
    // The seed is sealed at rest: neither its bytes nor its base32 are in the store's files.
    let b32 = totp::base32(&seed);
    for e in walk(&app.data) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert!(!bytes.windows(seed.len()).any(|w| w == seed.as_slice()), "seed in clear in {}", e.display());
        assert!(!bytes.windows(b32.len()).any(|w| w == b32.as_bytes()), "seed in clear in {}", e.display());
    }
    // The enrolment code's step is used: the same code again is a replay.
    let code = totp::code_at(&seed, app.clock.now_secs());
    let (status, body, _) = sign_in_with(&app, "tess@example.com", &code);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("already used") && body.contains("aria-invalid=\"true\""), "{body}");
    // Thirty seconds on, the next code signs in, once.
    app.clock.advance(30);
    let code = totp::code_at(&seed, app.clock.now_secs());
    let (status, _, mut c) = sign_in_with(&app, "tess@example.com", &code);
    assert_eq!(status, 303);
    let (status, _, home) = c.send("GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(home.contains("Tess Two"));
    assert_eq!(sign_in_with(&app, "tess@example.com", &code).0, 401, "replayed within its window");
    let log = app.get("/api/v1/security-log").json();
    let actions: Vec<&str> =
        log["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["two_factor_started", "two_factor_enrolled", "password_accepted", "two_factor_failed", "signed_in"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert_eq!(log["intact"], true);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_recovery_code_signs_in_once_and_an_admin_can_reset_two_factor_but_a_sales_person_cannot() {
    let (app, _dir) = spawn_app();
    let (_, _, codes) = enrolled(&app, "rex@example.com", "sales");
    let typed = codes[3].to_uppercase();
    let (status, _, _) = sign_in_with(&app, "rex@example.com", &typed);
    assert_eq!(status, 303, "a recovery code works, however it is typed");
    let (status, body, _) = sign_in_with(&app, "rex@example.com", &codes[3]);
    assert_eq!(status, 401, "…once: {body}");
    // Wrong codes count against the account's limit like wrong passwords.
    let mut c = Client::new(&app);
    let (_, _, body) = c.login("rex@example.com", PASSWORD);
    let pending = between(&body, "name=\"pending\" value=\"", "\"").to_string();
    let statuses: Vec<u16> =
        (0..5).map(|_| c.send("POST", "/login", &[("pending", &pending), ("code", "123456")]).0).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 429], "failed codes are rate-limited");
    assert_eq!(c.login("rex@example.com", PASSWORD).0, 429, "…and so is the password step");
    app.clock.advance(16 * 60);

    // The sales person may not reset anyone's two-factor: 403, nothing changes.
    let (status, body, mut rex) = sign_in_with(&app, "rex@example.com", &codes[4]);
    assert_eq!(status, 303, "{body}");
    let people = app.get("/api/v1/users").json();
    let id = people["items"].as_array().expect("items").iter().find(|p| p["email"] == "rex@example.com").expect("rex")
        ["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(people["items"][0]["two_factor"], true);
    let csrf = rex.csrf("/account");
    let (status, _, page) = rex.send("POST", &format!("/people/{id}/totp/reset"), &[("csrf", &csrf)]);
    assert_eq!(status, 403);
    assert!(page.contains("Not allowed"));

    // An admin resets it from the people page; the password alone then signs in.
    let (_, url) = invite(&app, "ada@example.com", "Ada Admin", "admin");
    let mut ada = Client::new(&app);
    accept(&mut ada, &url);
    assert_eq!(ada.login("ada@example.com", PASSWORD).0, 303);
    let (_, _, people_page) = ada.send("GET", "/people", &[]);
    assert!(people_page.contains(&format!("/people/{id}/totp/reset")), "{people_page}");
    let csrf = ada.csrf("/people");
    let (status, loc, _) = ada.send("POST", &format!("/people/{id}/totp/reset"), &[("csrf", &csrf)]);
    assert_eq!((status, loc.as_str()), (303, "/people"));
    assert_eq!(Client::new(&app).login("rex@example.com", PASSWORD).0, 303);
    let log = app.get("/api/v1/security-log").json();
    let reset = log["items"].as_array().expect("items").iter().find(|e| e["action"] == "two_factor_reset").cloned();
    assert_eq!(reset.expect("logged")["who"], "ada@example.com");
}

#[test]
fn with_require_mfa_an_invited_person_enrols_before_reaching_any_other_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", |c| c.web.require_mfa = true);
    let (_, url) = invite(&app, "mia@example.com", "Mia", "legal");
    let mut c = Client::new(&app);
    let (status, loc, _) = c.send("POST", &path_of(&url), &[("password", PASSWORD), ("password_confirm", PASSWORD)]);
    assert_eq!((status, loc.as_str()), (303, "/account"), "accepting leads to enrolment");
    let (status, _, page) = c.send("GET", "/account", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("requires two-factor sign-in"), "{page}");
    assert_eq!(c.send("GET", "/", &[]).1, "/account", "other pages wait for enrolment");
    let csrf = c.csrf("/account");
    c.send("POST", "/account/totp", &[("csrf", &csrf)]);
    let (_, _, page) = c.send("GET", "/account", &[]);
    let seed = unbase32(between(&page, "id=\"totp-secret\">", "<"));
    let code = totp::code_at(&seed, app.clock.now_secs());
    assert_eq!(c.send("POST", "/account/totp/confirm", &[("csrf", &csrf), ("code", &code)]).0, 200);
    assert_eq!(c.send("GET", "/", &[]).0, 200, "enrolled: the app opens");
}

#[test]
fn a_person_changes_their_password_and_a_forgotten_one_is_reset_once_by_emailed_link() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "pat@example.com", "Pat", "vendor_manager");
    let mut c = Client::new(&app);
    accept(&mut c, &url);
    assert_eq!(c.login("pat@example.com", PASSWORD).0, 303);
    let csrf = c.csrf("/account");
    let new = "another quiet harbour";
    let (status, _, body) = c.send(
        "POST",
        "/account/password",
        &[("csrf", &csrf), ("current_password", "wrong wrong wrong"), ("password", new), ("password_confirm", new)],
    );
    assert_eq!(status, 422);
    assert!(body.contains("id=\"e-current_password\""), "{body}");
    let (status, loc, _) = c.send(
        "POST",
        "/account/password",
        &[("csrf", &csrf), ("current_password", PASSWORD), ("password", new), ("password_confirm", new)],
    );
    assert_eq!((status, loc.as_str()), (303, "/login?changed=1"));
    assert_eq!(c.send("GET", "/", &[]).1, "/login", "the session ended");
    assert_eq!(Client::new(&app).login("pat@example.com", PASSWORD).0, 401);
    assert_eq!(Client::new(&app).login("pat@example.com", new).0, 303);

    // Forgotten: the same answer for an account and for nobody; only the account gets mail.
    let mut anon = Client::new(&app);
    let (s1, _, known) = anon.send("POST", "/forgot", &[("email", "PAT@example.com")]);
    let (s2, _, unknown) = anon.send("POST", "/forgot", &[("email", "nobody@example.com")]);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(known.replace("PAT@", "x@"), unknown.replace("nobody@", "x@"));
    crate::smtp::eventually(10, "the reset email", || !app.links_for("pat@example.com", "/reset/").is_empty());
    assert!(app.links_for("nobody@example.com", "/reset/").is_empty());
    let link = path_of(&app.links_for("pat@example.com", "/reset/")[0]);
    let (status, _, page) = anon.send("GET", &link, &[]);
    assert_eq!(status, 200);
    assert!(page.contains("pat@example.com"));
    let third = "a third quiet harbour";
    let (status, loc, _) = anon.send("POST", &link, &[("password", third), ("password_confirm", third)]);
    assert_eq!((status, loc.as_str()), (303, "/login?changed=1"));
    assert_eq!(anon.send("POST", &link, &[("password", third), ("password_confirm", third)]).0, 410, "once");
    assert_eq!(Client::new(&app).login("pat@example.com", third).0, 303);
    // An hour-old link no longer works.
    anon.send("POST", "/forgot", &[("email", "pat@example.com")]);
    crate::smtp::eventually(10, "a second reset email", || app.links_for("pat@example.com", "/reset/").len() == 2);
    let link = path_of(&app.links_for("pat@example.com", "/reset/")[1]);
    app.clock.advance(3601);
    assert_eq!(anon.send("GET", &link, &[]).0, 410);
    // Requests from one address are limited.
    let statuses: Vec<u16> = (0..12).map(|_| anon.send("POST", "/forgot", &[("email", "x@example.com")]).0).collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// In headless Chromium at 1280 and 390 px, each width with its own administrator: the
/// forgotten-password page, enrolment from `/account` with the code typed from the secret the
/// page shows, the recovery codes, the sign-in code step, the admin page with a new key shown
/// once. axe-core on each page, a screenshot of each under `target/screenshots/`.
#[test]
fn in_a_real_browser_a_person_enrols_two_factor_signs_in_with_a_code_and_uses_the_admin_page() {
    use crate::browser::Driver;
    use crate::web::{at, check_page, has, shows};
    let (app, _dir) = spawn_app();
    for width in [1280, 390] {
        let email = format!("ada{width}@example.com");
        let (_, url) = invite(&app, &email, "Ada Admin", "admin");
        accept(&mut Client::new(&app), &url);
        let d = Driver::start(width);
        d.go(&app.url("/forgot"));
        assert!(has(&d, "#f-email"), "{}", d.source());
        check_page(&d, "forgot", width);
        d.type_into("#f-email", &email);
        d.click("button[type=submit]");
        assert!(shows(&d, "a link to choose a new password is on its way"), "{}", d.source());
        check_page(&d, "forgot-sent", width);

        d.go(&app.url("/login"));
        d.type_into("#email", &email);
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(at(&d, "/"), "{}", d.source());
        d.go(&app.url("/account"));
        assert!(has(&d, "form[action='/account/totp'] button"), "{}", d.source());
        check_page(&d, "account", width);
        d.click("form[action='/account/totp'] button");
        assert!(has(&d, "#totp-secret"), "{}", d.source());
        assert!(has(&d, "svg.qr"), "{}", d.source());
        check_page(&d, "account-enrol", width);
        let secret = d.script("return document.getElementById('totp-secret').textContent;");
        let seed = unbase32(secret.as_str().expect("the secret is shown").trim());
        d.type_into("#f-code", "000000");
        d.click("form[action='/account/totp/confirm'] button");
        assert!(has(&d, "#f-code[aria-invalid=true][aria-describedby~=e-code]"), "{}", d.source());
        check_page(&d, "account-enrol-error", width);
        d.type_into("#f-code", &totp::code_at(&seed, app.clock.now_secs()));
        d.click("form[action='/account/totp/confirm'] button");
        assert!(has(&d, "#recovery-codes"), "{}", d.source());
        check_page(&d, "account-recovery-codes", width);

        // Sign out and in again: the second step asks for the code.
        d.click(".signout button");
        assert!(at(&d, "/login"), "{}", d.source());
        d.type_into("#email", &email);
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(has(&d, "#code"), "{}", d.source());
        check_page(&d, "login-code", width);
        d.type_into("#code", "999999");
        d.click("button[type=submit]");
        assert!(has(&d, "#code[aria-invalid=true]"), "{}", d.source());
        check_page(&d, "login-code-error", width);
        app.clock.advance(30);
        d.type_into("#code", &totp::code_at(&seed, app.clock.now_secs()));
        d.click("button[type=submit]");
        assert!(at(&d, "/"), "{}", d.source());
        d.go(&app.url("/account"));
        assert!(shows(&d, "recovery code(s) left"), "{}", d.source());
        check_page(&d, "account-on", width);

        d.go(&app.url("/admin"));
        assert!(has(&d, "#seal-fingerprint"), "{}", d.source());
        check_page(&d, "admin", width);
        d.type_into("#f-name", &format!("Integration {width}"));
        d.click("form[action='/admin/keys'] button");
        assert!(has(&d, "#new-api-key"), "{}", d.source());
        check_page(&d, "admin-key-created", width);
        d.go(&app.url("/admin/webhooks"));
        assert!(has(&d, "form[action='/admin/webhooks'] #f-url"), "{}", d.source());
        d.type_into("#f-url", "http://127.0.0.1/hook");
        d.click("form[action='/admin/webhooks'] button");
        assert!(has(&d, "#f-url[aria-invalid=true]"), "{}", d.source());
        check_page(&d, "webhooks-error", width);
        d.go(&app.url("/admin/webhooks"));
        assert!(has(&d, "form[action='/admin/webhooks'] #f-url"), "{}", d.source());
        d.type_into("#f-url", &format!("https://hooks.example.com/countersign/{width}"));
        d.click("form[action='/admin/webhooks'] button");
        assert!(has(&d, "#webhook-secret"), "{}", d.source());
        check_page(&d, "webhooks-created", width);
        d.click("[role=status] a");
        assert!(has(&d, "form[action$='/test'] button"), "{}", d.source());
        d.click("form[action$='/test'] button");
        assert!(has(&d, "form[action$='/redeliver'] button"), "{}", d.source());
        check_page(&d, "webhook-endpoint", width);
        d.go(&app.url("/archive"));
        assert!(has(&d, "form[action='/archive'] #f-q"), "{}", d.source());
        check_page(&d, "archive", width);
        d.go(&app.url("/archive?status=bogus"));
        assert!(has(&d, "#f-status[aria-invalid=true]"), "{}", d.source());
        check_page(&d, "archive-error", width);
        d.go(&app.url("/people"));
        assert!(has(&d, "form[action$='/totp/reset'] button"), "{}", d.source());
        check_page(&d, "people-two-factor", width);
    }
}

/// Backups do not hold `vault.key`; `restore --vault-key` brings it, so a restored store still
/// opens the two-factor seeds and the person signs in with their app's code. A file that is
/// not a vault key is refused before anything is written.
#[test]
fn a_restore_with_the_vault_key_keeps_two_factor_sign_in_working() {
    let (app, dir) = spawn_app();
    let (_, seed, _) = enrolled(&app, "vic@example.com", "legal");
    let backup = app.get("/api/v1/backup");
    assert_eq!(backup.status, 200);
    let file = dir.path().join("backup.jsonl");
    std::fs::write(&file, &backup.body).expect("written");
    let key = app.data.join("vault.key");
    app.stop();

    let work = tempfile::tempdir().expect("tempdir");
    let bad = work.path().join("not-a-key");
    std::fs::write(&bad, "hello").expect("written");
    let refused = work.path().join("refused");
    let out = crate::helpers::countersign(
        &[
            "restore",
            "--from",
            file.to_str().expect("utf8"),
            "--data",
            refused.to_str().expect("utf8"),
            "--vault-key",
            bad.to_str().expect("utf8"),
        ],
        work.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vault-key"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!refused.join("vault.key").exists());

    let restored = work.path().join("restored");
    let out = crate::helpers::countersign(
        &[
            "restore",
            "--from",
            file.to_str().expect("utf8"),
            "--data",
            restored.to_str().expect("utf8"),
            "--vault-key",
            key.to_str().expect("utf8"),
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(restored.join("vault.key")).expect("copied").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let app2 = spawn_app_at(&restored, ManualClock::at(T0 + 60));
    let code = totp::code_at(&seed, app2.clock.now_secs());
    let (status, body, _) = sign_in_with(&app2, "vic@example.com", &code);
    assert_eq!(status, 303, "{body}");
}
