//! Webhooks (issue 15) against a real receiver on loopback that checks every Standard Webhooks
//! signature with the secret the create response showed once.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::app::{T0, TestApp, spawn_app, spawn_app_with};
use crate::helpers::{countersign, example_text};
use crate::smtp::eventually;
use countersign::clock::ManualClock;

const BAA: &str = "baa-tx-ca.json";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1: records each request and answers with the next
/// scripted status (200 once the script is used up).
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<u16>>()));
        let (h, s) = (hits.clone(), script);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let status = s.lock().expect("script").pop_front().unwrap_or(200);
                h.lock().expect("hits").push(Hit { path, headers, body: String::from_utf8_lossy(&body).into_owned() });
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
            }
        });
        Receiver { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    fn wait_for(&self, n: usize) -> Vec<Hit> {
        eventually(20, &format!("{n} webhook request(s)"), || self.hits().len() >= n);
        self.hits()
    }
}

/// Checks a request as a Standard Webhooks receiver would: the HMAC-SHA256 of
/// `id.timestamp.body` under the decoded `whsec_` secret, among the `v1,` signatures.
fn signature_ok(secret: &str, h: &Hit) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.{}", h.header("webhook-id"), h.header("webhook-timestamp"), h.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    h.header("webhook-signature").split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// Adds an endpoint (asserting 201) and returns (endpoint id, secret).
fn add_endpoint(app: &TestApp, body: Value) -> (String, String) {
    let r = app.post("/api/v1/webhooks", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (v["id"].as_str().expect("id").to_string(), v["secret"].as_str().expect("secret").to_string())
}

fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/webhooks/{endpoint}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["deliveries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_signing_flow_sends_signed_events_in_order_with_one_view_per_signer_link() {
    let (app, _dir) = spawn_app();
    let rx = Receiver::start(&[]);
    let (endpoint, secret) = add_endpoint(&app, json!({"url": rx.url(), "events": ["*"], "local": true}));
    let key = base64::engine::general_purpose::STANDARD.decode(&secret["whsec_".len()..]).expect("base64");
    assert!((24..=32).contains(&key.len()), "24–32 key bytes, got {}", key.len());

    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let priya = app.sign_link("priya@northwind.example");
    for _ in 0..3 {
        assert_eq!(app.open(&priya).0, 200);
    }
    assert_eq!(app.sign(&priya, "Priya Raman", "VP, Legal").status, 200);
    let zoe = app.sign_link("zoe@lakeside.example");
    assert_eq!(app.open(&zoe).0, 200);
    assert_eq!(app.sign(&zoe, "Zoë Ångström", "Chief Compliance Officer").status, 200);

    let expected = [
        "agreement.created",
        "agreement.sent",
        "agreement.viewed",
        "agreement.signed",
        "agreement.viewed",
        "agreement.signed",
        "agreement.executed",
    ];
    let hits = rx.wait_for(expected.len());
    let types: Vec<String> = hits.iter().map(|h| h.json()["type"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(types, expected, "in order, each view once per link");
    for h in &hits {
        assert_eq!(h.path, "/hook");
        assert!(signature_ok(&secret, h), "signature of {} checks out", h.header("webhook-id"));
        assert!(h.header("webhook-timestamp").parse::<u64>().is_ok_and(|t| t >= T0));
        assert!(h.header("content-type").starts_with("application/json"));
        let v = h.json();
        assert!(v["id"].as_str().is_some_and(|e| e.starts_with("evt_")));
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(v["data"]["agreement"]["id"], id.as_str());
        assert!(!h.body.contains("/sign/") && !h.body.contains("token"), "never a signing link: {}", h.body);
        assert!(!h.body.contains('@'), "no email addresses: {}", h.body);
    }
    assert_eq!(hits[3].json()["data"]["signer"], "s1", "a signed event names its signer");
    assert_eq!(hits[6].json()["data"]["agreement"]["status"], "executed");
    let ids: std::collections::HashSet<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert_eq!(ids.len(), hits.len(), "one webhook-id per delivery");

    // The log agrees, and the scrape counts them.
    eventually(10, "all deliveries recorded as delivered", || {
        deliveries(&app, &endpoint).iter().filter(|d| d["status"] == "delivered").count() == expected.len()
    });
    let log = deliveries(&app, &endpoint);
    assert!(log.iter().all(|d| d["response_code"] == 200 && d["attempts"] == 1), "{log:?}");
    let metrics = app.get_anon("/metrics").text();
    assert!(metrics.contains(&format!("countersign_webhooks_delivered_total {}", expected.len())), "{metrics}");
    assert!(metrics.contains("countersign_webhooks_queued "), "queue depth exported");
}

#[test]
fn an_endpoint_that_answers_500_gets_the_same_delivery_again_after_the_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The sender looks every 50 ms, so it notices the moved clock at once.
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", |c| c.delivery.poll_ms = 50);
    let rx = Receiver::start(&[500]);
    let (endpoint, secret) =
        add_endpoint(&app, json!({"url": rx.url(), "events": ["agreement.created"], "local": true}));
    app.create(&example_text(BAA));
    let first = rx.wait_for(1);
    eventually(10, "the failed attempt recorded", || {
        deliveries(&app, &endpoint).first().is_some_and(|d| d["attempts"] == 1 && d["response_code"] == 500)
    });
    let d = deliveries(&app, &endpoint).remove(0);
    assert_eq!(d["status"], "queued", "a 500 is retried: {d}");
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("500")), "{d}");
    assert!(d["next_attempt_at"].is_string(), "{d}");

    app.clock.advance(61); // the first backoff is at most 60 s
    let hits = rx.wait_for(2);
    assert_eq!(hits.len(), 2, "one retry, no more");
    assert_eq!(hits[1].header("webhook-id"), first[0].header("webhook-id"), "the same delivery");
    assert_eq!(hits[1].body, first[0].body, "the same bytes");
    assert!(signature_ok(&secret, &hits[0]) && signature_ok(&secret, &hits[1]));
    eventually(10, "the retry recorded", || deliveries(&app, &endpoint)[0]["status"] == "delivered");
    let d = deliveries(&app, &endpoint).remove(0);
    assert_eq!((d["attempts"].as_u64(), d["response_code"].as_u64()), (Some(2), Some(200)), "{d}");
    assert!(app.get_anon("/metrics").text().contains("countersign_webhook_failures_total{kind=\"transient\"} 1"));
}

#[test]
fn the_delivery_is_queued_by_the_time_the_change_is_acknowledged_and_redeliver_sends_it_again() {
    let (app, _dir) = spawn_app();
    let rx = Receiver::start(&[]);
    let (endpoint, secret) =
        add_endpoint(&app, json!({"url": rx.url(), "events": ["agreement.created"], "local": true}));
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    // No waiting: the delivery was committed with the agreement.
    let log = deliveries(&app, &endpoint);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["type"], "agreement.created");
    assert_eq!(log[0]["agreement_id"], id.as_str());

    let first = rx.wait_for(1);
    eventually(10, "delivered", || deliveries(&app, &endpoint)[0]["status"] == "delivered");
    let delivery = log[0]["id"].as_str().expect("delivery id");
    let r = app.post(&format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery}/redeliver"), "");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "queued");
    let hits = rx.wait_for(2);
    assert_eq!(hits[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(hits[1].body, first[0].body);
    assert!(signature_ok(&secret, &hits[1]));
    // Another endpoint's id, or an unknown one, is a 404.
    let r = app.post(&format!("/api/v1/webhooks/wh_0000000000000000/deliveries/{delivery}/redeliver"), "");
    assert_eq!(r.status, 404);

    // The test event reaches the endpoint too, signed.
    let r = app.post(&format!("/api/v1/webhooks/{endpoint}/test"), "");
    assert_eq!(r.status, 202, "{}", r.text());
    let hits = rx.wait_for(3);
    assert_eq!(hits[2].json()["type"], "webhook.test");
    assert!(signature_ok(&secret, &hits[2]));

    // Deleting the endpoint removes it and its log.
    assert_eq!(app.req("DELETE", &format!("/api/v1/webhooks/{endpoint}"), Some(&app.key), "", b"").status, 200);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{endpoint}")).status, 404);
    assert_eq!(app.get("/api/v1/webhooks").json()["items"], json!([]));
}

#[test]
fn urls_to_private_or_loopback_addresses_and_bad_fields_are_refused_with_the_field_named() {
    let (app, _dir) = spawn_app();
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.1.1/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "http://hooks.example.com/hook",
        "file:///etc/passwd",
    ] {
        let r = app.post("/api/v1/webhooks", &json!({"url": url, "events": ["*"]}).to_string());
        assert_eq!(r.status, 422, "{url}: {}", r.text());
        assert_eq!(r.json()["error"]["findings"][0]["pointer"], "/url", "{url}");
    }
    let r = app.post("/api/v1/webhooks", &json!({"url": "https://hooks.example.com/in", "events": []}).to_string());
    assert_eq!((r.status, r.json()["error"]["findings"][0]["pointer"].clone()), (422, json!("/events")));
    let r = app.post(
        "/api/v1/webhooks",
        &json!({"url": "https://hooks.example.com/in", "events": ["agreement.sined"]}).to_string(),
    );
    assert_eq!((r.status, r.json()["error"]["findings"][0]["pointer"].clone()), (422, json!("/events")));
    let r = app.post("/api/v1/webhooks", &json!({"events": ["*"]}).to_string());
    assert_eq!((r.status, r.json()["error"]["findings"][0]["pointer"].clone()), (422, json!("/url")));
    assert_eq!(app.post("/api/v1/webhooks", "{not json").status, 400);
    assert_eq!(app.get("/api/v1/webhooks").json()["items"], json!([]), "nothing half-created");

    // Admins only; a public https endpoint is fine; `local` goes to the security log.
    let (legal, _) = app.key_for("legal", None);
    let body = json!({"url": "https://hooks.example.com/in", "events": ["agreement.*"]}).to_string();
    assert_eq!(app.req("POST", "/api/v1/webhooks", Some(&legal), "application/json", body.as_bytes()).status, 403);
    assert_eq!(app.get_with_key("/api/v1/webhooks", &legal).status, 403);
    assert_eq!(app.post("/api/v1/webhooks", &body).status, 201);
    add_endpoint(&app, json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "local": true}));
    let log = app.get("/api/v1/security-log").json();
    assert!(log["items"].as_array().expect("items").iter().any(|e| e["action"] == "webhook_created_local"), "{log}");
}

#[test]
fn a_hostname_that_resolves_to_loopback_is_refused_at_delivery_and_nothing_is_sent() {
    let (app, _dir) = spawn_app();
    let rx = Receiver::start(&[]);
    // `127.1` is not an IP literal to a URL parser, so it passes as a host name; the system
    // resolver turns it into 127.0.0.1 (as DNS could for any name).
    let url = format!("https://127.1:{}/hook", rx.port);
    let (endpoint, _) = add_endpoint(&app, json!({"url": url, "events": ["agreement.created"]}));
    app.create(&example_text(BAA));
    eventually(10, "the delivery refused", || deliveries(&app, &endpoint)[0]["status"] == "failed");
    let d = deliveries(&app, &endpoint).remove(0);
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("127.0.0.1") && e.contains("loopback")), "{d}");
    assert_eq!(d["attempts"], 1, "refused at once, not retried");
    assert!(rx.hits().is_empty(), "nothing reached the loopback receiver");
}

#[test]
fn the_secret_is_not_in_the_list_the_log_or_the_backup() {
    let (app, _dir) = spawn_app();
    let (endpoint, secret) =
        add_endpoint(&app, json!({"url": "https://hooks.example.com/in", "events": ["*"], "description": "CRM"}));
    let raw = base64::engine::general_purpose::STANDARD.decode(&secret["whsec_".len()..]).expect("b64");
    let b64 = &secret["whsec_".len()..];
    for path in ["/api/v1/webhooks".to_string(), format!("/api/v1/webhooks/{endpoint}")] {
        let t = app.get(&path).text();
        assert!(t.contains(&endpoint) && !t.contains(b64) && !t.contains("secret"), "{path}: {t}");
    }
    let backup = app.get("/api/v1/backup");
    assert_eq!(backup.status, 200);
    let mut webhook_lines = 0;
    for line in backup.text().lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        let value = base64::engine::general_purpose::STANDARD.decode(v["value"].as_str().unwrap_or("")).expect("b64");
        webhook_lines += usize::from(v["tree"] == "webhooks");
        assert!(!String::from_utf8_lossy(&value).contains(b64), "the secret's base64 is not in {}", v["tree"]);
        assert!(!value.windows(raw.len()).any(|w| w == raw.as_slice()), "the key bytes are not in {}", v["tree"]);
    }
    assert_eq!(webhook_lines, 1, "the endpoint is in the backup (sealed)");
}

#[test]
fn the_running_binary_never_logs_a_webhook_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = crate::observe::serve(dir.path(), &["--log-format", "json"]);
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).expect("key").trim().to_string();
    let rx = Receiver::start(&[]);
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = http
        .post(format!("{}/api/v1/webhooks", s.base))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(json!({"url": rx.url(), "events": ["*"], "local": true}).to_string())
        .expect("answers");
    assert_eq!(r.status(), 201);
    let v: Value = serde_json::from_slice(&r.body_mut().read_to_vec().expect("body")).expect("JSON");
    let (endpoint, secret) = (v["id"].as_str().expect("id"), v["secret"].as_str().expect("secret").to_string());
    let r = http
        .post(format!("{}/api/v1/webhooks/{endpoint}/test", s.base))
        .header("Authorization", format!("Bearer {key}"))
        .send_empty()
        .expect("answers");
    assert_eq!(r.status(), 202);
    let seen = std::cell::RefCell::new(Vec::<String>::new());
    let done = s.next_line_where(|l| {
        seen.borrow_mut().push(l.to_string());
        l.contains("webhook delivered")
    });
    assert!(done.is_some(), "the delivery is logged");
    assert!(signature_ok(&secret, &rx.wait_for(1)[0]));
    let b64 = &secret["whsec_".len()..];
    let seen = seen.into_inner();
    assert!(seen.iter().any(|l| l.contains(endpoint)), "the endpoint is logged by id");
    assert!(seen.iter().all(|l| !l.contains(b64)), "the secret never is");
}

#[test]
fn the_cli_adds_lists_and_removes_endpoints_on_a_stopped_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let out = countersign(
        &["webhooks", "add", "--url", "https://hooks.example.com/in", "--event", "agreement.signed", "--data", data],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let secret = text.split_whitespace().find(|w| w.starts_with("whsec_")).expect("the secret is printed once");
    let id = text.split_whitespace().find(|w| w.starts_with("wh_")).expect("id").to_string();
    let out = countersign(&["webhooks", "list", "--data", data], dir.path());
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.contains(&id) && list.contains("agreement.signed") && !list.contains(secret), "{list}");
    let out = countersign(&["webhooks", "deliveries", &id, "--data", data], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no deliveries"));
    let refused =
        countersign(&["webhooks", "add", "--url", "https://10.0.0.1/in", "--event", "*", "--data", data], dir.path());
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("private"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(countersign(&["webhooks", "remove", &id, "--data", data], dir.path()).status.success());
    let out = countersign(&["webhooks", "list", "--data", data], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no webhook endpoints"));
}

/// The vendor register's changes reach endpoints too: `vendor.created`, then
/// `vendor.determined` with the questionnaire's role, then `vendor.updated`, each signed, each
/// queued in the vendor change's own commit (in the log when the API call returns), and an
/// endpoint that asked only for agreement events gets none of them.
#[test]
fn vendor_changes_send_signed_vendor_events_to_the_endpoints_that_want_them() {
    let (app, _dir) = spawn_app();
    let rx = Receiver::start(&[]);
    let (endpoint, secret) = add_endpoint(&app, json!({"url": rx.url(), "events": ["vendor.*"], "local": true}));
    let other = Receiver::start(&[]);
    let (agreements_only, _) =
        add_endpoint(&app, json!({"url": other.url(), "events": ["agreement.*"], "local": true}));

    let r = app.post("/api/v1/vendors", &json!({"legal_name": "Northwind Messaging"}).to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    assert!(deliveries(&app, &endpoint).iter().any(|d| d["type"] == "vendor.created"), "queued with the change");
    let r = app.post(&format!("/api/v1/vendors/{id}/questionnaire"), &json!({"handles_phi": true}).to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let r = app.req(
        "PATCH",
        &format!("/api/v1/vendors/{id}"),
        Some(&app.key),
        "application/json",
        json!({"website": "https://northwind.example"}).to_string().as_bytes(),
    );
    assert!(r.status == 200, "{}", r.text());

    let hits = rx.wait_for(3);
    let types: Vec<String> = hits.iter().map(|h| h.json()["type"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(types, ["vendor.created", "vendor.determined", "vendor.updated"]);
    for h in &hits {
        assert!(signature_ok(&secret, h), "signature of {}", h.header("webhook-id"));
        assert_eq!(h.json()["data"]["vendor"]["id"], id.as_str());
    }
    assert_eq!(hits[1].json()["data"]["vendor"]["determination"], "business_associate");
    assert!(deliveries(&app, &agreements_only).is_empty(), "an agreement.* endpoint gets no vendor events");
}
