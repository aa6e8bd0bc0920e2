//! Regression tests for the security review (issue 11 §2): each finding, reproduced against a
//! real server on loopback, and shown fixed.

use std::io::{Read, Write};

use crate::app::*;
use crate::helpers::*;

/// A raw HTTP/1.1 request on its own connection; returns the stream to read the answer from.
pub(crate) fn send_raw(app: &TestApp, head: &str, body: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(app.addr()).expect("connect");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    s
}

/// Reads an HTTP/1.1 answer sent with `Connection: close` to its end: (status, body).
pub(crate) fn read_answer(mut s: std::net::TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn a_verify_upload_of_repeated_eof_markers_answers_and_does_not_hold_up_a_new_agreement() {
    let (app, _dir) = spawn_app();
    // 4 MiB of `%%EOF\n`: 700,000 markers. The earlier verifier hashed the file once per marker
    // while holding the lock every commit needs (days of work at this size).
    let bomb = b"%%EOF\n".repeat(4 * 1024 * 1024 / 6);
    for (path, key) in [("/api/v1/verify", Some(app.key.as_str())), ("/verify", None)] {
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/pdf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            app.addr(),
            bomb.len()
        );
        // The whole upload is handed to the server before the new agreement is asked for, so
        // the create runs while the verification is received or in progress.
        let verifying = send_raw(&app, &head, &bomb);
        let created = app.create(&example_text(BAA));
        assert!(created["id"].as_str().is_some_and(|id| id.starts_with("ag_")), "{created}");
        let (status, body) = read_answer(verifying);
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["match"], false, "{v}");
        assert!(v.get("near_miss").is_none(), "{v}");
    }
}

#[test]
fn an_archived_copy_with_bytes_appended_is_still_named_as_a_near_miss() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let sent = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    // Many markers after the copy: only the last few are tried, and the copy's end is among them.
    let mut grown = sent.clone();
    grown.extend_from_slice(b"% added\n%%EOF\n");
    let r = app.req("POST", "/api/v1/verify", Some(&app.key), "application/pdf", &grown);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["match"], false);
    assert!(v["near_miss"].as_str().is_some_and(|m| m.contains(&id) && m.contains("added")), "{v}");
    // The public route says only match or not.
    let r = app.req("POST", "/verify", None, "application/pdf", &grown);
    assert_eq!(r.status, 200);
    assert!(r.json().get("near_miss").is_none());
}

#[test]
fn a_key_revoked_while_requests_are_in_flight_stays_revoked() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (app, _dir) = spawn_app();
    let app = Arc::new(app);
    for round in 0..10 {
        let (key, id) = app.key_for("legal", None);
        let served = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (app, key, served) = (app.clone(), key.clone(), served.clone());
                std::thread::spawn(move || {
                    // Until this worker is refused: the revocation must take, whatever is in flight.
                    for _ in 0..100_000 {
                        match app.get_with_key("/api/v1/agreements?limit=1", &key).status {
                            200 => served.fetch_add(1, Ordering::SeqCst),
                            // Refused: 401, or 429 once this source has failed often enough.
                            401 | 429 => return true,
                            other => panic!("unexpected {other}"),
                        };
                    }
                    false
                })
            })
            .collect();
        // Revoke once requests are flowing (an event, not a delay).
        while served.load(Ordering::SeqCst) < 16 {
            std::thread::yield_now();
        }
        let r = app.req("DELETE", &format!("/api/v1/apikeys/{id}"), Some(&app.key), "", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        for w in workers {
            assert!(w.join().expect("worker"), "round {round}: a worker was never refused");
        }
        let after = app.get_with_key("/api/v1/agreements", &key).status;
        assert!(after == 401 || after == 429, "round {round}: {after}");
        // The next round starts with this source's failure window clear.
        app.clock.advance(61);
        let keys = app.get("/api/v1/apikeys").json()["items"].clone();
        let rec = keys.as_array().and_then(|ks| ks.iter().find(|k| k["id"] == id.as_str()).cloned());
        assert!(rec.as_ref().is_some_and(|k| k["revoked_at"].is_string()), "round {round}: {keys}");
    }
}

/// A backup's lines as (tree, key bytes, the raw line).
fn backup_lines(text: &str) -> Vec<(String, Vec<u8>, String)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("backup line");
            let key = b64.decode(v["key"].as_str().expect("key")).expect("b64");
            (v["tree"].as_str().expect("tree").to_string(), key, l.to_string())
        })
        .collect()
}

/// Restores `lines` into a fresh directory with the original head key: (exit ok, stdout).
fn restore(lines: &[String], head_key: &std::path::Path) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snap.ndjson");
    std::fs::write(&snap, lines.join("\n") + "\n").expect("write");
    let data = dir.path().join("data");
    let out = countersign(
        &[
            "restore",
            "--from",
            snap.to_str().expect("p"),
            "--head-key",
            head_key.to_str().expect("p"),
            "--data",
            data.to_str().expect("p"),
        ],
        dir.path(),
    );
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn restore_and_audit_verify_catch_deleted_events_deleted_chains_and_rewritten_heads() {
    let (app, dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let other = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    let snap = app.get("/api/v1/backup");
    assert_eq!(snap.status, 200);
    app.stop();
    let head_key = dir.path().join("audit-head.key");
    let lines = backup_lines(&snap.text());
    let all: Vec<String> = lines.iter().map(|(_, _, l)| l.clone()).collect();

    let (ok, out) = restore(&all, &head_key);
    assert!(ok && out.contains("audit trail intact"), "{out}");

    // The agreement's last event removed.
    let of = |t: &str, k: &[u8], agreement: &str| t == "events" && k.starts_with(format!("{agreement}/").as_bytes());
    let last = lines.iter().filter(|(t, k, _)| of(t, k, &id)).map(|(_, k, _)| k.clone()).max().expect("events");
    let cut: Vec<String> =
        lines.iter().filter(|(t, k, _)| !(t == "events" && *k == last)).map(|(_, _, l)| l.clone()).collect();
    let (ok, out) = restore(&cut, &head_key);
    assert!(!ok && out.contains(&id) && out.contains("events were deleted"), "{out}");

    // A whole chain removed, head and all.
    let gone: Vec<String> = lines
        .iter()
        .filter(|(t, k, _)| !(of(t, k, &other) || (t == "heads" && k == other.as_bytes())))
        .map(|(_, _, l)| l.clone())
        .collect();
    let (ok, out) = restore(&gone, &head_key);
    assert!(!ok && out.contains(&other) && out.contains("no audit chain"), "{out}");

    // The last event removed and the head rewritten to match: its MAC gives it away.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let prev_event = lines
        .iter()
        .filter(|(t, k, _)| of(t, k, &id) && *k != last)
        .max_by(|a, b| a.1.cmp(&b.1))
        .map(|(_, _, l)| serde_json::from_str::<serde_json::Value>(l).expect("line"))
        .expect("previous event");
    let ev: serde_json::Value =
        serde_json::from_slice(&b64.decode(prev_event["value"].as_str().expect("v")).expect("b64")).expect("event");
    let forged_head = serde_json::json!({"seq": ev["seq"], "hash": ev["hash"], "mac": "00"});
    let forged: Vec<String> = lines
        .iter()
        .filter(|(t, k, _)| !(t == "events" && *k == last))
        .map(|(t, k, l)| {
            if t == "heads" && k == id.as_bytes() {
                serde_json::json!({"tree": "heads", "key": b64.encode(k), "value": b64.encode(forged_head.to_string())})
                    .to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    let (ok, out) = restore(&forged, &head_key);
    assert!(!ok && out.contains(&id) && out.contains("not authentic"), "{out}");
}

#[test]
fn the_data_directory_and_everything_written_in_it_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory an earlier release left open to others, with a world-readable file in it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
    std::fs::set_permissions(dir.path().join("notes.txt"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0));
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    assert!(!app.outbox().is_empty(), "signing emails were written");
    let mut seen = (0, 0);
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        seen.0 += 1;
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                let mode = e.metadata().expect("stat").permissions().mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", e.path().display());
                seen.1 += 1;
            }
        }
    }
    // The sled files, the outbox's .eml files, the keys: all were looked at.
    for name in ["sled/db", "link-keys", "audit-head.key", "bootstrap-admin.key"] {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    assert!(seen.0 >= 3 && seen.1 >= 6, "{seen:?}");
}

#[test]
fn pages_carry_a_content_security_policy_with_no_inline_style_and_hsts_only_over_https() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let link = app.sign_link("priya@northwind.example");
    let page = app.req("GET", &link, None, "", b"");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("CSP").to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text();
    assert!(!html.contains("<style") && !html.contains("<script") && !html.contains(" style="), "inline style");
    assert!(html.contains(r#"href="/assets/countersign.css""#));
    let css = app.get_anon("/assets/countersign.css");
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").is_some_and(|t| t.starts_with("text/css")));
    assert!(css.text().contains("overflow-wrap"));
    assert!(page.header("strict-transport-security").is_none(), "no HSTS over plain http");

    let dir = tempfile::tempdir().expect("tempdir");
    let https = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", |c| {
        c.public_base_url = Some("https://sign.example.org".into());
    });
    let r = https.get_anon("/healthz");
    assert!(r.header("strict-transport-security").is_some_and(|v| v.contains("max-age=")), "HSTS");
}

#[test]
fn a_slow_loris_connection_is_closed_after_the_header_timeout_while_others_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", |c| {
        c.http.header_read_timeout_secs = 1;
    });
    // Headers a line at a time, then nothing; and a connection that sends nothing at all.
    let mut slow = std::net::TcpStream::connect(app.addr()).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").expect("partial head");
    let silent = std::net::TcpStream::connect(app.addr()).expect("connect");
    // Others are served meanwhile.
    assert_eq!(app.get_anon("/healthz").status, 200);
    for mut s in [slow, silent] {
        // Wait for the server to close it (the event): read returns end of file or a reset. The
        // read timeout only turns a server that never closes into a failure instead of a hang.
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).expect("timeout");
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(n) => assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{n} bytes"),
            Err(e) => assert!(
                matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
                "not closed: {e}"
            ),
        }
    }
    assert_eq!(app.get_anon("/healthz").status, 200);
}

#[test]
fn the_public_verify_budget_is_checked_before_the_upload_is_read() {
    let (app, _dir) = spawn_app();
    let mut spent = 0;
    while app.req("POST", "/verify", None, "application/pdf", b"%PDF-1.7\n%%EOF\n").status == 200 {
        spent += 1;
        assert!(spent <= 1000, "no budget");
    }
    // Over budget: a 30 MB upload is answered 429 from its headers alone, its body never read
    // (the server answers and closes while the client has sent nothing after the headers).
    let head = format!(
        "POST /verify HTTP/1.1\r\nHost: {}\r\nContent-Type: application/pdf\r\nContent-Length: 30000000\r\nConnection: close\r\n\r\n",
        app.addr()
    );
    let (status, body) = read_answer(send_raw(&app, &head, b""));
    assert_eq!(status, 429, "{body}");
}

#[test]
fn rotating_link_keys_keeps_links_already_mailed_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0));
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let old = app.sign_link("priya@northwind.example");
    app.stop();
    let out = countersign(&["keys", "rotate", "--data", dir.path().to_str().expect("p")], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("k1, k2"), "{}", String::from_utf8_lossy(&out.stdout));
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0 + 60));
    // The restarted server listens on another port: the path (with its token) is what counts.
    let old = old.find("/sign/").map(|i| format!("{}{}", app.base, &old[i..])).expect("a signing link");
    assert_eq!(app.open(&old).0, 200, "a link signed with the old key still opens");
    assert_eq!(app.sign(&old, "Priya Raman", "Privacy Officer").status, 200);
}
