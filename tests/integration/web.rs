//! The staff web app over real HTTP and in a real browser: the first administrator from the
//! one-time setup link, invitations, sign-in, sessions, CSRF, roles, the 403 and 404 pages,
//! axe-core on every page, screenshots at 1280 and 390 px; people in backup and restore; an
//! old data directory (without the people trees) opens unchanged.

use serde_json::{Value, json};

use crate::app::*;
use crate::browser::Driver;
use crate::helpers::{BAA, DUA, example_text};
use countersign::clock::ManualClock;

pub(crate) const PASSWORD: &str = "a quiet harbour at dusk";

/// A client signed in as a new person invited with `role` (named by their email).
pub(crate) fn signed_in(app: &TestApp, email: &str, role: &str) -> Client {
    let (_, url) = invite(app, email, email, role);
    let mut c = Client::new(app);
    accept(&mut c, &url);
    assert_eq!(c.login(email, PASSWORD).0, 303);
    c
}

/// A browser-less client that keeps one session cookie and does not follow redirects.
pub(crate) struct Client {
    pub(crate) http: ureq::Agent,
    pub(crate) base: String,
    pub(crate) cookie: String,
}

impl Client {
    pub(crate) fn new(app: &TestApp) -> Client {
        let http: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        Client { http, base: app.base.clone(), cookie: String::new() }
    }

    pub(crate) fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let url = format!("{}{path}", self.base);
        let r = if method == "GET" {
            self.http.get(&url).header("Cookie", &self.cookie).call()
        } else {
            self.http.post(&url).header("Cookie", &self.cookie).send_form(form.iter().copied())
        };
        let mut r = r.expect("answers");
        if let Some(c) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = c.split(';').next().unwrap_or("").to_string();
        }
        let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        (r.status().as_u16(), loc, body)
    }

    pub(crate) fn login(&mut self, email: &str, password: &str) -> (u16, String, String) {
        self.send("POST", "/login", &[("email", email), ("password", password)])
    }

    /// The CSRF token of the page at `path`.
    pub(crate) fn csrf(&mut self, path: &str) -> String {
        let (_, _, body) = self.send("GET", path, &[]);
        csrf_of(&body)
    }
}

/// The CSRF token of the first form in `page`.
pub(crate) fn csrf_of(page: &str) -> String {
    let i = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[i..].split('"').next().unwrap_or("").to_string()
}

pub(crate) fn invite(app: &TestApp, email: &str, name: &str, role: &str) -> (String, String) {
    let r = app.post("/api/v1/users", &json!({"email": email, "name": name, "role": role}).to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (v["id"].as_str().expect("id").to_string(), v["invite_url"].as_str().expect("invite_url").to_string())
}

pub(crate) fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

pub(crate) fn accept(c: &mut Client, invite_url: &str) {
    let p = path_of(invite_url);
    let (status, loc, body) = c.send("POST", &p, &[("password", PASSWORD), ("password_confirm", PASSWORD)]);
    assert_eq!((status, loc.as_str()), (303, "/login?welcome=1"), "{body}");
}

pub(crate) fn person(app: &TestApp, email: &str) -> Value {
    let list = app.get("/api/v1/users").json();
    list["items"].as_array().expect("items").iter().find(|p| p["email"] == email).cloned().expect("listed")
}

#[test]
fn an_invited_person_signs_in_and_their_session_ends_when_an_admin_disables_them() {
    let (app, _dir) = spawn_app();
    let (id, url) = invite(&app, "Lena.Legal@example.com", "Lena Legal", "legal");
    assert_eq!(person(&app, "lena.legal@example.com")["status"], "invited");
    // The invitation email is queued through the outbox and carries the link.
    let mail = app.get("/api/v1/outbox").json();
    let msg = mail["items"].as_array().expect("items").iter().find(|m| m["kind"] == "invite").cloned().expect("queued");
    assert_eq!(msg["to"], "lena.legal@example.com");

    let mut c = Client::new(&app);
    // Signed out, the app sends people to the sign-in page.
    assert_eq!(c.send("GET", "/", &[]).0, 303);
    // A too-short password is refused beside its field; the link still works afterwards.
    let (status, _, body) = c.send("POST", &path_of(&url), &[("password", "short"), ("password_confirm", "short")]);
    assert_eq!(status, 422);
    assert!(
        body.contains("aria-describedby=\"e-password h-password\"") && body.contains("id=\"e-password\""),
        "{body}"
    );
    accept(&mut c, &url);
    // The link works once.
    assert_eq!(c.send("GET", &path_of(&url), &[]).0, 410);
    // A wrong password and an unknown email get the same answer.
    let wrong = c.login("lena.legal@example.com", "not the password at all");
    let nobody = c.login("nobody@example.com", "not the password at all");
    assert_eq!((wrong.0, nobody.0), (401, 401));
    assert!(
        wrong.2.contains("The email or password is not right.")
            && nobody.2.contains("The email or password is not right.")
    );
    let (status, loc, _) = c.login("LENA.LEGAL@example.com", PASSWORD);
    assert_eq!((status, loc.as_str()), (303, "/"));
    assert!(c.cookie.starts_with("countersign="), "{}", c.cookie);
    let (status, _, home) = c.send("GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(home.contains("Lena Legal") && home.contains("Agreements"));
    // Disabling ends the session at once.
    let r = app.post(&format!("/api/v1/users/{id}/disable"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, loc, _) = c.send("GET", "/", &[]);
    assert_eq!((status, loc.as_str()), (303, "/login"));
    assert_eq!(c.login("lena.legal@example.com", PASSWORD).0, 401);
    // The security log holds it all, hash-chained.
    let log = app.get("/api/v1/security-log").json();
    assert_eq!(log["intact"], true);
    let actions: Vec<&str> =
        log["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["invited", "invite_accepted", "sign_in_failed", "signed_in", "disabled"] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

#[test]
fn sessions_end_after_thirty_idle_minutes_and_sign_out_ends_them_too() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "sam@example.com", "Sam Sales", "sales");
    let mut c = Client::new(&app);
    accept(&mut c, &url);
    assert_eq!(c.login("sam@example.com", PASSWORD).0, 303);
    app.clock.advance(29 * 60);
    assert_eq!(c.send("GET", "/", &[]).0, 200);
    app.clock.advance(29 * 60);
    assert_eq!(c.send("GET", "/", &[]).0, 200, "activity keeps the session alive");
    app.clock.advance(31 * 60);
    assert_eq!(c.send("GET", "/", &[]).1, "/login", "idle for 31 minutes: signed out");
    assert_eq!(c.login("sam@example.com", PASSWORD).0, 303);
    let token = c.csrf("/");
    // Sign-out without the token changes nothing; with it, the session is gone.
    assert_eq!(c.send("POST", "/logout", &[]).0, 403);
    assert_eq!(c.send("GET", "/", &[]).0, 200);
    assert_eq!(c.send("POST", "/logout", &[("csrf", token.as_str())]).1, "/login");
    assert_eq!(c.send("GET", "/", &[]).1, "/login");
}

#[test]
fn failed_sign_ins_are_limited_per_account_with_a_clear_message() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "vic@example.com", "Vic Vendor", "vendor_manager");
    let mut c = Client::new(&app);
    accept(&mut c, &url);
    for _ in 0..5 {
        assert_eq!(c.login("vic@example.com", "wrong wrong wrong").0, 401);
    }
    let (status, _, body) = c.login("vic@example.com", PASSWORD);
    assert_eq!(status, 429);
    assert!(body.contains("Too many failed sign-ins"), "{body}");
    app.clock.advance(15 * 60 + 1);
    assert_eq!(c.login("vic@example.com", PASSWORD).0, 303);
}

#[test]
fn inviting_through_the_api_is_for_admins_and_reports_each_bad_field() {
    let (app, _dir) = spawn_app();
    let r = app.post("/api/v1/users", &json!({"email": "not-an-email", "name": "", "role": "boss"}).to_string());
    assert_eq!(r.status, 422);
    let pointers: Vec<String> = r.json()["error"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["pointer"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(pointers, ["/email", "/name", "/role"], "{}", r.text());
    invite(&app, "a@example.com", "A", "sales");
    let again = app.post("/api/v1/users", &json!({"email": "A@example.com", "name": "A", "role": "sales"}).to_string());
    assert_eq!(again.status, 422, "{}", again.text());
    let (legal_key, _) = app.key_for("legal", None);
    let body = json!({"email": "b@example.com", "name": "B", "role": "admin"}).to_string();
    assert_eq!(app.req("POST", "/api/v1/users", Some(&legal_key), "application/json", body.as_bytes()).status, 403);
    assert_eq!(app.get_with_key("/api/v1/users", &legal_key).status, 403);
}

#[test]
fn people_and_sessions_survive_backup_and_restore() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "rita@example.com", "Rita Restore", "admin");
    let mut c = Client::new(&app);
    accept(&mut c, &url);
    let backup = app.get("/api/v1/backup");
    assert_eq!(backup.status, 200);
    let text = backup.text();
    for tree in ["\"people\"", "\"invites\"", "\"seclog\""] {
        assert!(text.contains(tree), "backup has the {tree} tree");
    }
    let restored = tempfile::tempdir().expect("tempdir");
    restore_into(restored.path(), text.as_bytes());
    let app2 = spawn_app_at(restored.path(), ManualClock::at(T0));
    let mut c2 = Client::new(&app2);
    assert_eq!(c2.login("rita@example.com", PASSWORD).0, 303, "the restored password works");
    let log = app2.get("/api/v1/users").json();
    assert_eq!(log["items"][0]["email"], "rita@example.com");
}

#[test]
fn a_data_directory_from_before_people_existed_opens_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let app = spawn_app_at(dir.path(), ManualClock::at(T0));
        let a = app.create(&crate::helpers::example_text(crate::helpers::BAA));
        app.stop();
        a["id"].as_str().expect("id").to_string()
    };
    // What the previous release wrote: the same trees, without people, invites, sessions, seclog.
    {
        let db = crate::helpers::sled_open_when_free(&dir.path().join("sled"));
        for t in ["people", "invites", "sessions", "seclog"] {
            db.drop_tree(t).expect("dropped");
        }
        assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"people"));
        db.flush().expect("flushed");
    }
    let app = spawn_app_at(dir.path(), ManualClock::at(T0));
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).status, 200, "agreements are all there");
    assert_eq!(app.get("/api/v1/users").json()["items"], json!([]));
    // Nobody can sign in yet: the web app offers sign-in, and an admin can invite.
    assert_eq!(app.get_anon("/login").status, 200);
    invite(&app, "first@example.com", "First Admin", "admin");
}

pub(crate) fn check_page(d: &Driver, name: &str, width: u32) {
    let v = d.axe_violations();
    assert!(v.is_empty(), "{name}: axe-core found {v:?}");
    assert!(d.fits(width), "{name} scrolls sideways at {width} px");
    d.save_screenshot(&format!("web-{name}-{width}"));
}

/// Waits (up to [`PATIENCE`]) until the page has an element matching `css`: a click returns before
/// the next page has loaded. WebDriver's find answers errors as values, so this asks the page.
pub(crate) fn has(d: &Driver, css: &str) -> bool {
    poll(|| d.script(&format!("return document.querySelector({}) !== null;", json!(css))).as_bool().unwrap_or(false))
}

/// Waits until the page's text contains `text`.
pub(crate) fn shows(d: &Driver, text: &str) -> bool {
    poll(|| d.source().contains(text))
}

/// Waits until the browser is at `path`.
pub(crate) fn at(d: &Driver, path: &str) -> bool {
    poll(|| current_path(d) == path && d.script("return document.readyState;") == "complete")
}

/// How long a browser test waits for something it expects to see. Only positive waits use it
/// (a passing run never waits this long), so it is generous: on a fresh 2-core CI machine the
/// browser shares the cores with the rest of the suite, and one run of 15 s timed out once.
pub(crate) const PATIENCE: std::time::Duration = std::time::Duration::from_secs(45);

/// Calls `f` until it holds or [`PATIENCE`] has passed.
pub(crate) fn poll(mut f: impl FnMut() -> bool) -> bool {
    let t = std::time::Instant::now();
    while t.elapsed() < PATIENCE {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

pub(crate) fn current_path(d: &Driver) -> String {
    let url = d.call("GET", &d.s("/url"), None);
    path_of(url.as_str().unwrap_or(""))
}

#[test]
fn in_a_real_browser_the_first_admin_invites_people_and_roles_and_csrf_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_at(dir.path(), ManualClock::at(T0));
    let setup = app.setup_path();
    let agreement = app.create(&crate::helpers::example_text(crate::helpers::BAA));
    let agreement_path = format!("/agreements/{}", agreement["id"].as_str().expect("id"));
    for width in [1280, 390] {
        let d = Driver::start(width);
        let fresh = width == 1280;
        // Signed out: `/` goes to the sign-in page.
        d.go(&app.url("/"));
        assert!(at(&d, "/login"), "{}", d.source());
        check_page(&d, "login", width);
        if fresh {
            d.go(&app.url(&setup));
            check_page(&d, "setup", width);
            d.type_into("#f-email", "ada@example.com");
            d.type_into("#f-name", "Ada Admin");
            d.type_into("#f-password", PASSWORD);
            d.type_into("#f-password_confirm", "something else entirely");
            d.click("button[type=submit]");
            // The error sits beside its field, tied to it for screen readers.
            let tied = "#f-password_confirm[aria-invalid=true][aria-describedby=e-password_confirm]";
            assert!(has(&d, tied), "{}", d.source());
            assert!(shows(&d, "does not match the password"), "{}", d.source());
            check_page(&d, "setup-error", width);
            d.type_into("#f-password", PASSWORD);
            d.type_into("#f-password_confirm", PASSWORD);
            d.click("button[type=submit]");
            assert!(at(&d, "/login?welcome=1"), "{}", d.source());
        }
        d.go(&app.url("/login"));
        d.type_into("#email", "ada@example.com");
        d.type_into("#password", "wrong password here");
        d.click("button[type=submit]");
        assert!(shows(&d, "The email or password is not right."), "{}", d.source());
        check_page(&d, "login-error", width);
        d.type_into("#email", "ada@example.com");
        d.type_into("#password", PASSWORD);
        d.click("button[type=submit]");
        assert!(at(&d, "/"), "{}", d.source());
        assert!(has(&d, &format!("a[href='{agreement_path}']")), "{}", d.source());
        check_page(&d, "agreements", width);
        d.go(&app.url(&agreement_path));
        assert!(has(&d, "#check"), "{}", d.source());
        check_page(&d, "agreement", width);
        if fresh {
            d.click(&format!("form[action='{agreement_path}/send'] button"));
            assert!(shows(&d, "Sent: the first signer"), "{}", d.source());
            check_page(&d, "agreement-sent", width);
        }
        d.go(&app.url("/people"));
        check_page(&d, "people", width);
        if fresh {
            // An invitation with a bad email shows the error beside the field, then a good one.
            d.type_into("#f-email", "not an email");
            d.type_into("#f-name", "Lena Legal");
            d.click("form[action='/people'] button[type=submit]");
            assert!(has(&d, "#f-email[aria-invalid=true][aria-describedby=e-email]"), "{}", d.source());
            check_page(&d, "people-invite-error", width);
            d.type_into("#f-email", "lena@example.com");
            d.script("document.getElementById('f-role').value = 'legal'; return true;");
            d.click("form[action='/people'] button[type=submit]");
            assert!(shows(&d, "Invitation queued for <strong>lena@example.com"), "{}", d.source());
            let shown = d.script("return document.getElementById('invite-url').textContent;");
            let legal_url = shown.as_str().expect("the invite link is shown once").trim().to_string();
            assert!(legal_url.contains("/invite/"));
            check_page(&d, "people-invited", width);
            // The sales person.
            d.type_into("#f-email", "sam@example.com");
            d.type_into("#f-name", "Sam Sales");
            d.script("document.getElementById('f-role').value = 'sales'; return true;");
            d.click("form[action='/people'] button[type=submit]");
            assert!(shows(&d, "Invitation queued for <strong>sam@example.com"), "{}", d.source());
            let sales_url = d.script("return document.getElementById('invite-url').textContent;");
            let sales_url = sales_url.as_str().expect("shown").trim().to_string();
            // A form posted without its CSRF token is refused and changes nothing.
            let sam = person(&app, "sam@example.com");
            d.go(&app.url("/people"));
            let sel = format!("form[action='/people/{}/disable']", sam["id"].as_str().expect("id"));
            d.script(&format!(
                "const f = document.querySelector(\"{sel}\"); f.querySelector('input[name=csrf]').remove(); f.submit(); return true;"
            ));
            assert!(shows(&d, "This form has expired"), "{}", d.source());
            check_page(&d, "csrf-refused", width);
            assert_eq!(person(&app, "sam@example.com")["status"], "invited", "nothing changed");
            // Sam accepts in the same browser after Ada signs out, and meets the 403 page.
            d.go(&app.url("/"));
            d.click(".signout button");
            assert!(at(&d, "/login"), "{}", d.source());
            d.go(&sales_url);
            assert!(has(&d, "#f-password_confirm"), "{}", d.source());
            check_page(&d, "invite", width);
            d.type_into("#f-password", PASSWORD);
            d.type_into("#f-password_confirm", PASSWORD);
            d.click("button[type=submit]");
            assert!(at(&d, "/login?welcome=1"), "{}", d.source());
            check_page(&d, "login-welcome", width);
            d.type_into("#email", "sam@example.com");
            d.type_into("#password", PASSWORD);
            d.click("button[type=submit]");
            assert!(at(&d, "/"), "{}", d.source());
            assert!(!d.source().contains("href=\"/people\""), "no People link for sales");
            d.go(&app.url("/people"));
            assert!(shows(&d, "Not allowed"), "{}", d.source());
            check_page(&d, "forbidden", width);
            // Sam did not create the agreement: it does not exist for him.
            d.go(&app.url(&agreement_path));
            assert!(shows(&d, "Agreement not found"), "{}", d.source());
            let _ = legal_url;
        }
        d.go(&app.url("/no/such/page"));
        assert!(shows(&d, "Page not found"), "{}", d.source());
        check_page(&d, "not-found", width);
    }
}

#[test]
fn a_signed_in_person_sends_from_the_agreement_page_under_their_own_name() {
    let (app, _dir) = spawn_app();
    let (_, url) = invite(&app, "ada@example.com", "Ada Admin", "admin");
    let (_, sales_url) = invite(&app, "sam@example.com", "Sam Sales", "sales");
    let mut ada = Client::new(&app);
    accept(&mut ada, &url);
    let mut sam = Client::new(&app);
    accept(&mut sam, &sales_url);
    assert_eq!(ada.login("ada@example.com", PASSWORD).0, 303);
    assert_eq!(sam.login("sam@example.com", PASSWORD).0, 303);
    let a = app.create(&crate::helpers::example_text(crate::helpers::BAA));
    let id = a["id"].as_str().expect("id");
    let page = format!("/agreements/{id}");
    let (status, _, body) = ada.send("GET", &page, &[]);
    assert_eq!(status, 200);
    assert!(body.contains("Required elements") && body.contains(">Send</button>"), "{body}");
    // A sales person sees only agreements they created.
    assert_eq!(sam.send("GET", &page, &[]).0, 404);
    assert_eq!(sam.send("GET", &format!("{page}/document"), &[]).0, 404);
    // Without the CSRF token nothing is sent.
    assert_eq!(ada.send("POST", &format!("{page}/send"), &[]).0, 403);
    assert_eq!(app.get(&format!("/api/v1{page}")).json()["status"], "draft");
    let token = ada.csrf(&page);
    let (status, loc, _) = ada.send("POST", &format!("{page}/send"), &[("csrf", token.as_str())]);
    assert_eq!((status, loc.as_str()), (303, format!("{page}?sent=1").as_str()));
    assert_eq!(app.get(&format!("/api/v1{page}")).json()["status"], "sent");
    let audit = app.get(&format!("/api/v1{page}/audit")).json();
    let sent =
        audit["items"].as_array().expect("items").iter().find(|e| e["kind"] == "sent").cloned().expect("a sent event");
    assert_eq!(sent["actor"], "ada@example.com");
    // The page's PDF is the API's PDF, byte for byte.
    let url = format!("{}{page}/document", app.base);
    let mut r = ada.http.get(&url).header("Cookie", &ada.cookie).call().expect("answers");
    assert_eq!(r.status().as_u16(), 200);
    let web_pdf = r.body_mut().with_config().limit(64 << 20).read_to_vec().expect("pdf");
    let api_pdf = app.get(&format!("/api/v1{page}/document")).body;
    assert!(web_pdf.starts_with(b"%PDF") && web_pdf == api_pdf);
}

#[test]
fn a_sales_person_s_home_lists_and_flags_only_their_own_agreements() {
    let (app, _dir) = spawn_app();
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    let actor = |who: &str, own_only: bool| countersign::app::service::Actor {
        who: who.into(),
        ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        own_only,
    };
    let svc = app.service();
    // One declined agreement each (a declined one needs attention), and a draft each.
    let declined = |who: &countersign::app::service::Actor| {
        let id = svc.create(&example_text(BAA), who).expect("drafted").id;
        svc.send(&id, who).expect("sent");
        let link = svc.store.agreement_messages(&id).expect("messages").into_iter().find(|m| m.kind == "link");
        let text = link.expect("a signer link").text;
        let word = text.split_whitespace().find(|w| w.contains("/sign/")).expect("the link");
        let token = word.rsplit('/').next().expect("token").to_string();
        svc.decline(&token, "Not this quarter", who).expect("declined");
        id
    };
    let (sam_actor, admin) = (actor("sam@example.com", true), actor("admin:test", false));
    let (his_declined, their_declined) = (declined(&sam_actor), declined(&admin));
    let his_draft = svc.create(&example_text(DUA), &sam_actor).expect("drafted").id;
    let their_draft = svc.create(&example_text(DUA), &admin).expect("drafted").id;
    drop(svc);

    let (status, _, page) = sam.send("GET", "/", &[]);
    assert_eq!(status, 200);
    let needs =
        page.split("id=\"needs\"").nth(1).expect("the attention section").split("</section>").next().unwrap_or("");
    assert!(needs.contains(&his_declined) && !needs.contains(&their_declined), "{needs}");
    assert!(page.contains(&his_draft) && !page.contains(&their_draft), "{page}");
    assert!(!page.contains(&their_declined), "{page}");
}
