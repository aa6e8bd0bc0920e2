//! Issue 11 §2.8: link keys rotated through the API on a running server, and backups encrypted
//! under a passphrase (they hold live signing links).

use std::process::Output;

use countersign::signing::token::KeyRing;

use crate::app::*;
use crate::helpers::*;

const PRIYA: &str = "priya@northwind.example";

fn said(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn rotating_link_keys_through_the_api_signs_new_links_with_the_new_key_and_old_links_keep_working() {
    let (app, dir) = spawn_app();
    let first = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{first}/send"), "").status, 200);
    let old_link = app.sign_link(PRIYA);

    let (legal, _) = app.key_for("legal", None);
    let r = app.req("POST", "/api/v1/keys/link/rotate", Some(&legal), "application/json", b"");
    assert_eq!(r.status, 403, "only admins rotate");
    let r = app.post("/api/v1/keys/link/rotate", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["signing_key_id"], "k2");
    assert_eq!(v["key_ids"], serde_json::json!(["k1", "k2"]));
    assert!(!r.text().contains("secret"), "no key material in the answer");

    // The running server signs with the new key at once: no restart.
    let second = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{second}/send"), "").status, 200);
    let new_link = app.sign_link(PRIYA);
    assert_ne!(new_link, old_link);
    let ring = KeyRing::load_or_create(&dir.path().join("link-keys")).expect("the key file");
    let key_of = |link: &str| {
        let token = link.rsplit('/').next().expect("token");
        ring.verify(token, T0 + 60).expect("a genuine token").key_id
    };
    assert_eq!(key_of(&old_link), "k1");
    assert_eq!(key_of(&new_link), "k2");

    // Both links work on the running server: the old one until it expires.
    assert_eq!(app.sign(&old_link, "Priya Raman", "VP, Legal").status, 200);
    assert_eq!(app.sign(&new_link, "Priya Raman", "VP, Legal").status, 200);
}

#[test]
fn an_encrypted_backup_holds_no_link_in_the_clear_and_restores_only_with_its_passphrase() {
    let (app, dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    let link = app.sign_link(PRIYA);
    let token = link.rsplit('/').next().expect("token").to_string();
    app.stop();

    let work = tempfile::tempdir().expect("tempdir");
    let pass = work.path().join("pass");
    std::fs::write(&pass, "a long backup passphrase\n").expect("pass");
    let data = dir.path().to_str().expect("p");
    let p = pass.to_str().expect("p");

    let out =
        countersign(&["backup", "--out", "snap.enc", "--data", data, "--encrypt", "--passphrase-file", p], work.path());
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("encrypted"), "{}", said(&out));
    let sealed = std::fs::read(work.path().join("snap.enc")).expect("backup");
    assert!(sealed.starts_with(b"countersign-enc-v1"));
    assert!(!sealed.windows(token.len()).any(|w| w == token.as_bytes()), "the live link is not in the clear");
    assert!(!sealed.windows(id.len()).any(|w| w == id.as_bytes()), "nothing of the store is in the clear");

    // --encrypt without a passphrase is refused and writes nothing.
    let out = countersign(&["backup", "--out", "none.enc", "--data", data, "--encrypt"], work.path());
    assert!(!out.status.success() && !work.path().join("none.enc").exists(), "{}", said(&out));

    // The wrong passphrase, or none, restores nothing.
    let wrong = work.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all").expect("wrong");
    let target = work.path().join("restored");
    let t = target.to_str().expect("p");
    let head_key = dir.path().join("audit-head.key");
    let hk = head_key.to_str().expect("p");
    for args in [
        vec![
            "restore",
            "--from",
            "snap.enc",
            "--data",
            t,
            "--head-key",
            hk,
            "--passphrase-file",
            wrong.to_str().expect("p"),
        ],
        vec!["restore", "--from", "snap.enc", "--data", t, "--head-key", hk],
    ] {
        let out = countersign(&args, work.path());
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        assert!(!target.exists(), "nothing created: {:?}", files_in(&target));
    }
    let out = countersign(
        &["restore", "--from", "snap.enc", "--data", t, "--head-key", hk, "--passphrase-file", p],
        work.path(),
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("audit trail intact"), "{}", said(&out));

    let restored = spawn_app_at(&target, countersign::clock::ManualClock::at(T0));
    assert_eq!(restored.get(&format!("/api/v1/agreements/{id}")).json()["status"], "sent");
}
