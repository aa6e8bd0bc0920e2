//! The signer page in a real headless browser (Chromium driven over WebDriver by chromedriver):
//! the consent checkbox blocks submission until ticked, the form posts with the browser's own
//! Origin header and CSRF token, the page fits a phone screen, and signing completes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::*;
use crate::helpers::*;

struct Driver {
    child: Child,
    base: String,
    http: ureq::Agent,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
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
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                     format!("--user-data-dir={}", profile.path().display()), "--window-size=390,844"]
        }}}});
        let mut d = Driver { child, base, http, session: String::new(), _profile: profile };
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call("POST", &self.s("/element"), Some(json!({"using": "css selector", "value": css})));
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/click")), None);
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &self.s(&format!("/element/{id}/clear")), None);
        self.call("POST", &self.s(&format!("/element/{id}/value")), Some(json!({"text": text})));
    }

    fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None).as_str().unwrap_or("").to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({"script": js, "args": []})))
    }

    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", &self.s("/screenshot"), None);
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).expect("png")
    }
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

    let d = Driver::start();
    d.go(&link);
    let html = d.source();
    assert!(html.contains("Business Associate Agreement") && html.contains("Sign the agreement"), "{html}");
    assert_eq!(
        d.script("return document.documentElement.scrollWidth <= window.innerWidth + 1"),
        json!(true),
        "no sideways scrolling on a phone"
    );
    let png = d.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot of the page");
    let _ = std::fs::write(std::env::temp_dir().join("countersign-signer-page.png"), &png);

    // Without consent the browser refuses to submit (the field is required): still on the form.
    d.type_into("#typed_name", "Priya Raman");
    d.click("button[value=sign]");
    assert!(d.source().contains("Sign the agreement"), "submission blocked until consent is given");
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["signers"][0]["status"], "opened");

    d.click("input[name=consent]");
    d.click("button[value=sign]");
    let t = Instant::now();
    while !d.source().contains("Your signature has been recorded") {
        assert!(t.elapsed() < Duration::from_secs(10), "no confirmation page: {}", d.source());
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
}
