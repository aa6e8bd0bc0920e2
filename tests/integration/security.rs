//! Regression tests for the security review (issue 11 §2): each finding, reproduced against a
//! real server on loopback, and shown fixed.

use std::io::{Read, Write};

use crate::app::*;
use crate::helpers::*;

/// A raw HTTP/1.1 request on its own connection; returns the stream to read the answer from.
fn send_raw(app: &TestApp, head: &str, body: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(app.addr()).expect("connect");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    s
}

/// Reads an HTTP/1.1 answer sent with `Connection: close` to its end: (status, body).
fn read_answer(mut s: std::net::TcpStream) -> (u16, String) {
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
