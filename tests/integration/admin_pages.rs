//! The administrators' page over real HTTP: the sealing certificate's fingerprint (checked
//! against `openssl` on the certificate file), API keys created (shown once, and working),
//! revoked (and refused afterwards), the outbox's failed messages retried, everything in the
//! security log; anyone but an admin gets the 403 page and changes nothing.

use crate::app::*;
use crate::smtp::{SmtpServer, eventually, free_port};
use crate::web::{Client, PASSWORD, accept, invite};
use countersign::clock::ManualClock;

fn signed_in(app: &TestApp, email: &str, role: &str) -> Client {
    let (_, url) = invite(app, email, "Someone", role);
    let mut c = Client::new(app);
    accept(&mut c, &url);
    assert_eq!(c.login(email, PASSWORD).0, 303);
    c
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let i = body.find(start).unwrap_or_else(|| panic!("{start} in {body}")) + start.len();
    body[i..].split(end).next().unwrap_or("")
}

#[test]
fn an_admin_sees_the_seal_fingerprint_creates_and_revokes_a_key_and_retries_failed_mail() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", |c| {
        crate::mail::with_smtp(port)(c);
        c.delivery.max_attempts = 1;
    });
    let mut ada = signed_in(&app, "ada@example.com", "admin");
    // The invitation to Ada could not be delivered (nothing listens on the SMTP port).
    eventually(10, "a failed invitation", || {
        app.get("/api/v1/outbox?status=failed").json()["items"].as_array().is_some_and(|v| !v.is_empty())
    });

    let (status, _, page) = ada.send("GET", "/admin", &[]);
    assert_eq!(status, 200);
    let shown = between(&page, "id=\"seal-fingerprint\">", "<").to_string();
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(app.data.join("seal").join("seal-1.pem"))
        .output()
        .expect("openssl runs");
    let want = String::from_utf8_lossy(&out.stdout);
    assert_eq!(want.trim().rsplit('=').next(), Some(shown.as_str()), "{want}");

    // A key: bad fields are reported beside each field, a good one is shown once and works.
    let csrf = ada.csrf("/admin");
    let (status, _, body) =
        ada.send("POST", "/admin/keys", &[("csrf", &csrf), ("name", ""), ("role", "boss"), ("expires_days", "0")]);
    assert_eq!(status, 422);
    for f in ["name", "role", "expires_days"] {
        assert!(body.contains(&format!("id=\"e-{f}\"")), "{f}: {body}");
    }
    let (status, _, body) = ada.send(
        "POST",
        "/admin/keys",
        &[("csrf", &csrf), ("name", "CRM sync"), ("role", "legal"), ("expires_days", "")],
    );
    assert_eq!(status, 201, "{body}");
    let key = between(&body, "id=\"new-api-key\">", "<").to_string();
    assert_eq!(app.get_with_key("/api/v1/agreements", &key).status, 200, "the new key works");
    let (_, _, again) = ada.send("GET", "/admin", &[]);
    assert!(again.contains("CRM sync") && !again.contains(&key), "shown once");
    let keys = app.get("/api/v1/apikeys").json();
    let id = keys["items"].as_array().expect("items").iter().find(|k| k["name"] == "CRM sync").expect("listed")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, loc, _) = ada.send("POST", &format!("/admin/keys/{id}/revoke"), &[("csrf", &csrf)]);
    assert_eq!((status, loc.as_str()), (303, "/admin#keys"));
    assert_eq!(app.get_with_key("/api/v1/agreements", &key).status, 401, "revoked");

    // The failed invitation is listed; retry queues it again and it goes out.
    let (_, _, page) = ada.send("GET", "/admin", &[]);
    let mid = between(&page, "action=\"/admin/outbox/", "/retry").to_string();
    assert!(page.contains("You are invited to Countersign"), "{page}");
    let smtp = SmtpServer::start_on(port);
    let (status, _, body) = ada.send("POST", &format!("/admin/outbox/{mid}/retry"), &[("csrf", &csrf)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("is queued again"), "{body}");
    eventually(10, "the retried invitation delivered", || !smtp.messages().is_empty());

    let log = app.get("/api/v1/security-log").json();
    let actions: Vec<&str> =
        log["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"api_key_created") && actions.contains(&"api_key_revoked"), "{actions:?}");
}

#[test]
fn anyone_but_an_admin_gets_the_403_page_on_the_admin_page_and_changes_nothing() {
    let (app, _dir) = spawn_app();
    for role in ["sales", "legal", "vendor_manager"] {
        let mut c = signed_in(&app, &format!("{role}@example.com"), role);
        let (status, _, page) = c.send("GET", "/admin", &[]);
        assert_eq!(status, 403, "{role}");
        assert!(page.contains("Not allowed") && !page.contains("seal-fingerprint"), "{page}");
        let csrf = c.csrf("/account");
        let before = app.get("/api/v1/apikeys").json()["items"].as_array().map(Vec::len);
        let (status, _, _) = c.send(
            "POST",
            "/admin/keys",
            &[("csrf", &csrf), ("name", "sneaky"), ("role", "admin"), ("expires_days", "")],
        );
        assert_eq!(status, 403);
        assert_eq!(app.get("/api/v1/apikeys").json()["items"].as_array().map(Vec::len), before);
    }
    assert_eq!(Client::new(&app).send("GET", "/admin", &[]).1, "/login", "signed out: to sign-in");
}
