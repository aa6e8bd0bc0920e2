//! The administrators' page over real HTTP: the sealing certificate's fingerprint (checked
//! against `openssl` on the certificate file), API keys created (shown once, and working),
//! revoked (and refused afterwards), the outbox's failed messages retried, everything in the
//! security log; anyone but an admin gets the 403 page and changes nothing.

use crate::app::*;
use crate::smtp::{SmtpServer, eventually, free_port};
use crate::web::{Client, signed_in};
use countersign::clock::ManualClock;

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

/// The webhook pages: a bad address is reported beside its field and nothing is made; a good one
/// shows its `whsec_` secret once (never on the list or the endpoint's page again); a test event
/// lands in the delivery log with a redeliver button; delete removes it; a form without its CSRF
/// token changes nothing; anyone but an admin gets the 403 page.
#[test]
fn an_admin_adds_tests_and_deletes_a_webhook_endpoint_and_its_secret_is_shown_once() {
    let (app, _dir) = spawn_app();
    let mut ada = signed_in(&app, "ada@example.com", "admin");
    let csrf = ada.csrf("/admin/webhooks");
    let (status, _, body) = ada.send(
        "POST",
        "/admin/webhooks",
        &[("csrf", &csrf), ("url", "http://10.0.0.7/hook"), ("events", "agreement.*"), ("description", "")],
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("id=\"e-url\"") && body.contains("aria-invalid=\"true\""), "{body}");
    assert!(app.get("/api/v1/webhooks").json()["items"].as_array().is_none_or(Vec::is_empty));

    let (status, _, body) = ada.send(
        "POST",
        "/admin/webhooks",
        &[
            ("csrf", &csrf),
            ("url", "https://crm.example.com/hooks/countersign"),
            ("events", "agreement.signed, agreement.executed"),
            ("description", "CRM"),
        ],
    );
    assert_eq!(status, 201, "{body}");
    let secret = between(&body, "id=\"webhook-secret\">", "<").to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    let listed = app.get("/api/v1/webhooks").json();
    let id = listed["items"][0]["id"].as_str().expect("an endpoint").to_string();
    assert_eq!(listed["items"][0]["events"], serde_json::json!(["agreement.signed", "agreement.executed"]));

    let (status, _, list) = ada.send("GET", "/admin/webhooks", &[]);
    assert_eq!(status, 200);
    assert!(list.contains(&id) && !list.contains(&secret), "the secret is shown once only");
    let (status, _, page) = ada.send("POST", &format!("/admin/webhooks/{id}/test"), &[("csrf", &csrf)]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("webhook.test") && page.contains("/redeliver"), "{page}");
    assert!(!page.contains(&secret));

    // Without the CSRF token nothing is deleted; with it the endpoint goes.
    let (status, _, _) = ada.send("POST", &format!("/admin/webhooks/{id}/delete"), &[]);
    assert_eq!(status, 403);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).status, 200);
    let (status, _, _) = ada.send("POST", &format!("/admin/webhooks/{id}/delete"), &[("csrf", &csrf)]);
    assert_eq!(status, 303);
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).status, 404);

    let mut sam = signed_in(&app, "sam@example.com", "legal");
    let (status, _, body) = sam.send("GET", "/admin/webhooks", &[]);
    assert_eq!(status, 403, "{body}");
}

/// The security log's entries for API key changes: (who, action, detail, ip).
fn key_changes(app: &TestApp) -> Vec<(String, String, String, String)> {
    let log = app.get("/api/v1/security-log").json();
    assert_eq!(log["intact"], true, "{log}");
    log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("api_key_")))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("who"), s("action"), s("detail"), s("ip"))
        })
        .collect()
}

#[test]
fn api_key_changes_through_the_api_the_admin_page_and_the_command_line_are_in_the_security_log_under_who_made_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_at(dir.path(), ManualClock::at(T0));
    // The API, under the key's name.
    let (_, api_id) = app.key_for("vendor_manager", None);
    let r = app.req("DELETE", &format!("/api/v1/apikeys/{api_id}"), Some(&app.key), "application/json", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // Revoking it again changes nothing, so it logs nothing.
    assert_eq!(app.req("DELETE", &format!("/api/v1/apikeys/{api_id}"), Some(&app.key), "", b"").status, 200);
    // A refused change (the bootstrap key is the last admin key) logs nothing either.
    assert_eq!(app.req("DELETE", "/api/v1/apikeys/bootstrap", Some(&app.key), "", b"").status, 409);
    let api = key_changes(&app);
    assert_eq!(
        api,
        vec![
            (
                "admin:bootstrap".to_string(),
                "api_key_created".to_string(),
                format!("vendor_manager test ({api_id}, vendor_manager)"),
                "127.0.0.1".to_string()
            ),
            (
                "admin:bootstrap".to_string(),
                "api_key_revoked".to_string(),
                format!("vendor_manager test ({api_id})"),
                "127.0.0.1".to_string()
            ),
        ]
    );

    // The admin page, under the person's email, once per change (not twice).
    let mut ada = signed_in(&app, "ada@example.com", "admin");
    let csrf = ada.csrf("/admin");
    let (status, _, _) = ada.send(
        "POST",
        "/admin/keys",
        &[("csrf", &csrf), ("name", "Page key"), ("role", "sales"), ("expires_days", "")],
    );
    assert_eq!(status, 201);
    let page = key_changes(&app);
    assert_eq!(page.len(), 3, "{page:?}");
    assert_eq!((page[2].0.as_str(), page[2].1.as_str()), ("ada@example.com", "api_key_created"));
    assert!(page[2].2.starts_with("Page key (k"), "{page:?}");

    // The command line on the stopped store, under `cli:<user>`.
    app.stop();
    let data = dir.path().to_str().expect("utf-8 path");
    let run = |args: &[&str]| {
        let out =
            crate::helpers::countersign_command(args, dir.path()).env("USER", "olga").output().expect("binary runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let created = run(&["apikey", "create", "--role", "legal", "--name", "Night batch", "--data", data]);
    let said = String::from_utf8_lossy(&created.stderr).to_string();
    let cli_id = said.split_whitespace().nth(2).expect("created key ID").to_string();
    run(&["apikey", "revoke", &cli_id, "--data", data]);
    let app = spawn_app_at(dir.path(), ManualClock::at(T0));
    let all = key_changes(&app);
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(
        all[3..].to_vec(),
        vec![
            (
                "cli:olga".to_string(),
                "api_key_created".to_string(),
                format!("Night batch ({cli_id}, legal)"),
                String::new()
            ),
            ("cli:olga".to_string(), "api_key_revoked".to_string(), format!("Night batch ({cli_id})"), String::new()),
        ]
    );
}
