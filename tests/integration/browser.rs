//! The signer page in a real headless browser (Chromium driven over WebDriver by chromedriver):
//! the consent checkbox blocks submission until ticked, the form posts with the browser's own
//! Origin header and CSRF token, the page fits a phone screen whatever fonts the machine has,
//! axe-core finds no serious or critical accessibility violation, and signing completes. The
//! signing email's HTML part is rendered in the same browser and must fit a phone too.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::*;
use crate::helpers::*;

pub(crate) struct Driver {
    child: Child,
    base: String,
    http: ureq::Agent,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// A headless Chromium whose viewport is `width` CSS pixels wide. Widths under Chrome's
    /// smallest window (500) use device emulation, so a "phone" really is 390 px wide.
    pub(crate) fn start(width: u32) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while http.get(format!("{base}/status")).call().is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            // Downloads land in the profile's own directory, without asking (see `downloads`).
            "prefs": {"download.default_directory": downloads.display().to_string(),
                      "download.prompt_for_download": false, "download.directory_upgrade": true},
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                     format!("--user-data-dir={}", profile.path().display()), format!("--window-size={},900", width.max(500))],
            "mobileEmulation": if width < 500 {
                json!({"deviceMetrics": {"width": width, "height": 844, "pixelRatio": 1.0}})
            } else {
                json!({"deviceMetrics": {"width": width, "height": 900, "pixelRatio": 1.0}})
            }
        }}}});
        let mut d = Driver { child, base, http, session: String::new(), _profile: profile };
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        d
    }

    /// Where this browser saves downloads.
    pub(crate) fn downloads(&self) -> std::path::PathBuf {
        self._profile.path().join("downloads")
    }

    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.http.get(&url).call(),
            ("DELETE", _) => self.http.delete(&url).call(),
            (_, b) => {
                self.http.post(&url).header("Content-Type", "application/json").send(b.unwrap_or(json!({})).to_string())
            }
        };
        let mut resp = resp.expect("webdriver answers");
        let text = resp.body_mut().with_config().limit(64 << 20).read_to_string().expect("body");
        let v: Value = serde_json::from_str(&text).expect("webdriver JSON");
        v["value"].clone()
    }

    pub(crate) fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub(crate) fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})));
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})));
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/click")), None);
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/clear")), None);
        self.call("POST", &self.s(&format!("/element/{id}/value")), Some(json!({"text": text})));
    }

    /// The page's HTML; when the browser cannot give it (mid-navigation, a renderer that does
    /// not answer), what WebDriver said instead, so a failed assertion that prints the source
    /// says why it is not there.
    pub(crate) fn source(&self) -> String {
        let v = self.call("GET", &self.s("/source"), None);
        match v.as_str() {
            Some(html) => html.to_string(),
            None => format!("(no page source; WebDriver answered {v})"),
        }
    }

    pub(crate) fn script(&self, js: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({"script": js, "args": []})))
    }

    pub(crate) fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", &self.s("/screenshot"), None);
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).expect("png")
    }

    /// Saves a screenshot as `target/screenshots/{name}.png` (for people to look at) and
    /// returns its bytes.
    pub(crate) fn save_screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.screenshot();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot of {name}");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), &png);
        png
    }

    /// True when the page's content is no wider than `width` CSS pixels and its viewport no
    /// wider either (no sideways scrolling on a screen that wide).
    pub(crate) fn fits(&self, width: u32) -> bool {
        let v = self.script("const d = document.documentElement; return [d.scrollWidth, d.clientWidth];");
        let n = |i: usize| v[i].as_u64().unwrap_or_else(|| panic!("widths: {v}"));
        n(0) <= u64::from(width) && n(1) <= u64::from(width)
    }

    /// Runs axe-core (vendored in `tests/assets`) on the current page; returns the serious and
    /// critical violations as "rule: target" lines.
    pub(crate) fn axe_violations(&self) -> Vec<String> {
        let axe = include_str!("../assets/axe.min.js");
        self.script(&format!("{axe}\n;return true;"));
        let v = self.call(
            "POST",
            &self.s("/execute/async"),
            Some(json!({"script": "const done = arguments[arguments.length - 1];
                axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
                       targets: v.nodes.map(n => n.target.join(' '))}))))
                   .catch(e => done([{id: 'axe-error', impact: 'critical', targets: [String(e)]}]));",
                "args": []})),
        );
        let list = v.as_array().unwrap_or_else(|| panic!("axe answered {v}"));
        list.iter()
            .filter(|x| matches!(x["impact"].as_str(), Some("serious" | "critical")))
            .map(|x| format!("{}: {}", x["id"].as_str().unwrap_or("?"), x["targets"]))
            .collect()
    }
}

/// Whether this machine can run the browser tests. Where Chromium or chromedriver is missing
/// the test says why and is skipped — except when `COUNTERSIGN_REQUIRE_BROWSER` is set (CI sets
/// it, after installing both), where a missing browser fails the test.
pub(crate) fn browser_available(test: &str) -> bool {
    let found =
        |c: &str| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(c).is_file()));
    let missing: Vec<&str> = ["chromedriver"].into_iter().filter(|c| !found(c)).collect();
    let chromium = std::path::Path::new("/usr/bin/chromium").is_file();
    if missing.is_empty() && chromium {
        return true;
    }
    let why = format!(
        "{test}: skipped: {} not installed (apt-get install chromium chromium-driver)",
        if chromium {
            "chromedriver"
        } else if missing.is_empty() {
            "/usr/bin/chromium"
        } else {
            "chromium and chromedriver"
        }
    );
    assert!(std::env::var_os("COUNTERSIGN_REQUIRE_BROWSER").is_none(), "{why}, but COUNTERSIGN_REQUIRE_BROWSER is set");
    eprintln!("{why}");
    false
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_signer_signs_in_a_real_browser_on_a_phone_sized_screen() {
    let (app, _dir) = spawn_app();
    let a = app.create(&example_text(BAA));
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let link = app.sign_link("priya@northwind.example");

    let d = Driver::start(390);
    d.go(&link);
    let html = d.source();
    assert!(html.contains("Business Associate Agreement") && html.contains("Sign the agreement"), "{html}");
    // Whatever fonts this machine has, the page (with its 64-character SHA-256) must fit; the
    // widest monospace font makes the unbroken hash longest, so force it on every element.
    assert!(d.fits(390), "no sideways scrolling on a phone");
    d.script("document.querySelectorAll('*').forEach(e => e.style.fontFamily = 'monospace'); return true;");
    assert!(d.fits(390), "no sideways scrolling on a phone, even in a wide monospace font");
    d.go(&link);
    d.save_screenshot("signer-page-390");
    assert_eq!(d.axe_violations(), Vec::<String>::new(), "axe-core: no serious or critical violation");
    // The agreement text scrolls by itself, so it must be reachable by keyboard.
    assert_eq!(d.script("return document.querySelector('section.doc').tabIndex"), json!(0));

    // Without consent the browser refuses to submit (the field is required): still on the form.
    d.type_into("#typed_name", "Priya Raman");
    d.click("button[value=sign]");
    assert!(d.source().contains("Sign the agreement"), "submission blocked until consent is given");
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["signers"][0]["status"], "opened");

    d.click("input[name=consent]");
    d.click("button[value=sign]");
    let t = Instant::now();
    while !d.source().contains("Your signature has been recorded") {
        assert!(t.elapsed() < crate::web::PATIENCE, "no confirmation page: {}", d.source());
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["signers"][0]["status"], "signed");
    assert_eq!(a["status"], "partially_signed");
    let signed = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "signed")
        .cloned()
        .expect("signed event");
    assert!(
        signed["user_agent"].as_str().is_some_and(|ua| ua.contains("Chrome")),
        "the browser's user agent is recorded"
    );

    // Reopening the used link in the browser shows the outcome.
    d.go(&link);
    assert!(d.source().contains("You have already signed"));
    d.save_screenshot("signer-done-390");
    assert_eq!(d.axe_violations(), Vec::<String>::new(), "axe-core on the outcome page");
}

#[test]
fn the_signing_email_fits_a_phone_and_replies_go_to_the_sending_party() {
    use base64::Engine;
    let (app, _dir) = spawn_app();
    let a = app.create(&example_text(BAA));
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let eml = std::fs::read_dir(app.data.join("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read(e.path()).expect("eml"))
        .find(|raw| String::from_utf8_lossy(raw).contains("priya@northwind.example"))
        .expect("the signing email");
    let parsed = mailparse::parse_mail(&eml).expect("MIME");
    let reply_to = parsed.headers.iter().find(|h| h.get_key() == "Reply-To").map(|h| h.get_value());
    // Sent with the bootstrap key (not a person): replies go to the disclosing party's privacy
    // contact from the intake, never to the service's own From address.
    assert_eq!(reply_to.as_deref(), Some("\"Dana Ortiz\" <privacy@lakeside.example>"));
    let html = crate::smtp::html_part(&parsed).expect("an HTML part");

    for width in [600, 390] {
        let d = Driver::start(width);
        let url = format!(
            "data:text/html;charset=utf-8;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(html.as_bytes())
        );
        d.go(&url);
        assert!(d.source().contains("Review and sign"), "the email renders");
        assert!(d.fits(width), "the signing email has no sideways scrolling at {width} px");
        d.save_screenshot(&format!("signing-email-{width}"));
    }
}
