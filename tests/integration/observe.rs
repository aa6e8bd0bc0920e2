//! What operators ship and scrape: JSON log lines with request ids, and `/metrics`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// `countersign serve` as a child process on 127.0.0.1:0; stdout lines arrive on a channel.
pub(crate) struct Served {
    child: Child,
    pub(crate) lines: Receiver<String>,
    pub(crate) base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(data: &std::path::Path, args: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .env_remove("COUNTERSIGN_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut s = Served { child, lines, base: String::new() };
    let line = s.next_line_where(|l| l.contains("listening on http://")).expect("the server says where it listens");
    let at = line.split("listening on ").nth(1).expect("url");
    s.base = at.split_whitespace().next().expect("url").to_string();
    s
}

impl Served {
    /// The next stdout line matching `pred`, waiting up to 30 s for it to be written.
    pub(crate) fn next_line_where(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

#[test]
fn json_logs_carry_the_request_id_the_response_returns_and_never_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = serve(dir.path(), &["--log-format", "json"]);
    let key = std::fs::read_to_string(dir.path().join("bootstrap-admin.key")).expect("key").trim().to_string();
    let http = agent();

    // An id the server makes up.
    let r = http
        .get(format!("{}/api/v1/agreements", s.base))
        .header("Authorization", format!("Bearer {key}"))
        .call()
        .expect("answers");
    assert_eq!(r.status(), 200);
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_string();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "a process prefix and a counter in hex: {id}");
    let line = s.next_line_where(|l| l.contains(&id)).expect("a log line with the request id");
    let v: serde_json::Value = serde_json::from_str(&line).expect("the line is one JSON object");
    assert_eq!(v["span"]["request_id"], id.as_str());
    assert_eq!(v["span"]["route"], "/api/v1/agreements", "the route pattern is logged");
    assert_eq!(v["fields"]["status"], 200);
    assert_eq!(v["level"], "INFO");
    assert!(!line.contains(&key), "the key is never logged");

    // A well-formed id the caller sends is kept; a malformed one is replaced.
    let r = http.get(format!("{}/healthz", s.base)).header("X-Request-Id", "trace-42.a_b").call().expect("answers");
    assert_eq!(r.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-42.a_b"));
    let line = s.next_line_where(|l| l.contains("trace-42.a_b")).expect("logged under the caller's id");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(v["span"]["route"], "/healthz");
    let r = http.get(format!("{}/healthz", s.base)).header("X-Request-Id", "a\"b} {").call().expect("answers");
    let given = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("id").to_string();
    assert!(given.len() == 32 && given.bytes().all(|b| b.is_ascii_hexdigit()), "{given}");
    assert_ne!(given, id, "each request gets an id of its own");
    assert_eq!(given[..16], id[..16], "made by the same process");

    // A signer path's token never reaches the log: the pattern does.
    let r = http.get(format!("{}/sign/secret-token-in-path", s.base)).call().expect("answers");
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("id").to_string();
    let line = s.next_line_where(|l| l.contains(&id)).expect("logged");
    assert!(!line.contains("secret-token-in-path"), "{line}");
}

/// The value of the sample whose name and labels are exactly `series` (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' ').and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn a_scrape_after_a_signing_flow_shows_requests_renders_signatures_and_statuses_moved() {
    use crate::app::*;
    use crate::helpers::*;
    let (app, dir) = spawn_app();
    let before = app.get_anon("/metrics");
    assert_eq!(before.status, 200, "loopback callers may scrape");
    assert!(before.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    let before = before.text();
    assert_eq!(sample(&before, "countersign_signatures_total"), 0.0);

    let a = app.create(&example_text(BAA));
    let id = a["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let mut signed = 0;
    for _ in 0..4 {
        let a = app.get(&format!("/api/v1/agreements/{id}")).json();
        for s in a["signers"].as_array().expect("signers") {
            if s["status"] == "notified" || s["status"] == "opened" {
                let email = s["email"].as_str().expect("email");
                let link = app.links_for(email, "/sign/").into_iter().rev().find(|l| app.open(l).0 == 200);
                if let Some(link) = link {
                    assert_eq!(app.sign(&link, s["name"].as_str().expect("n"), "Signer").status, 200);
                    signed += 1;
                }
            }
        }
    }
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "executed");

    let after = app.get_anon("/metrics").text();
    assert_eq!(sample(&after, "countersign_signatures_total"), f64::from(signed), "{after}");
    assert!(signed >= 2);
    assert_eq!(sample(&after, r#"countersign_agreements{status="executed"}"#), 1.0, "{after}");
    assert_eq!(sample(&after, r#"countersign_agreements{status="draft"}"#), 0.0);
    assert_eq!(
        sample(&after, r#"countersign_http_requests_total{method="POST",route="/api/v1/agreements",status="201"}"#),
        1.0,
        "{after}"
    );
    assert!(sample(&after, r#"countersign_http_request_duration_seconds_count{route="/sign/{token}"}"#) >= 1.0);
    assert!(sample(&after, r#"countersign_documents_rendered_total{mode="draft"}"#) >= 1.0);
    assert_eq!(sample(&after, r#"countersign_documents_rendered_total{mode="for_signature"}"#), 1.0);
    assert!(sample(&after, r#"countersign_render_duration_seconds_count{mode="for_signature"}"#) >= 1.0);
    assert!(sample(&after, r#"countersign_audit_events_total{kind="signed"}"#) >= f64::from(signed));
    assert!(sample(&after, "countersign_store_size_bytes") > 0.0);
    // Every agreement commit is counted with its size: at least the draft, the send and each
    // signature, none larger than the combiner's bound.
    let commits = sample(&after, "countersign_store_commit_changes_count");
    assert!(commits >= 2.0 + f64::from(signed), "{after}");
    assert_eq!(sample(&after, r#"countersign_store_commit_changes_bucket{le="64.0"}"#), commits, "{after}");
    assert!(after.contains("countersign_outbox_queued "), "{after}");
    // No token, key or address appears in the exposition: route patterns only.
    assert!(!after.contains(&app.key) && !after.contains(&id), "{after}");

    // A restart seeds the status gauges from the index it rebuilds; counters start again.
    app.stop();
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0));
    let again = app.get_anon("/metrics").text();
    assert_eq!(sample(&again, r#"countersign_agreements{status="executed"}"#), 1.0, "{again}");
    assert_eq!(sample(&again, "countersign_signatures_total"), 0.0);
}

#[test]
fn metrics_can_require_a_token_or_move_to_their_own_address() {
    use crate::app::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", |c| {
        c.metrics_token = Some(countersign::secret::SecretString::new("scrape-me-please".into()));
    });
    assert_eq!(app.get_anon("/metrics").status, 401);
    assert_eq!(app.get_with_key("/metrics", "scrape-me-please!").status, 401);
    let ok = app.get_with_key("/metrics", "scrape-me-please");
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("countersign_http_requests_total"));
    app.stop();

    // A free loopback port for the separate listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let app = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", |c| {
        c.metrics_bind = Some(metrics_addr);
    });
    assert_eq!(app.get_anon("/metrics").status, 404, "not on the main listener");
    let http = agent();
    let url = format!("http://{metrics_addr}/metrics");
    // The listener starts with the server: poll until it answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        match http.get(&url).call() {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("metrics listener never answered: {e}"),
        }
    };
    assert_eq!(r.status(), 200);
    assert_eq!(http.get(format!("http://{metrics_addr}/api/v1/agreements")).call().expect("answers").status(), 404);
}
