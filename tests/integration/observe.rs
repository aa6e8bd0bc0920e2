//! What operators ship and scrape: JSON log lines with request ids, and `/metrics`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// `countersign serve` as a child process on 127.0.0.1:0; stdout lines arrive on a channel.
struct Served {
    child: Child,
    lines: Receiver<String>,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, args: &[&str]) -> Served {
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
    fn next_line_where(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
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
    assert_eq!(id.len(), 32, "16 random bytes in hex: {id}");
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

    // A signer path's token never reaches the log: the pattern does.
    let r = http.get(format!("{}/sign/secret-token-in-path", s.base)).call().expect("answers");
    let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("id").to_string();
    let line = s.next_line_where(|l| l.contains(&id)).expect("logged");
    assert!(!line.contains("secret-token-in-path"), "{line}");
}
