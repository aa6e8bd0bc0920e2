//! Staff access and the archive: roles, search, export, verify, lifecycle, retention, backup.

use sha2::{Digest, Sha256};

use countersign::http::api::{Body, ROUTES};

use crate::app::*;
use crate::helpers::*;

const ROLES: [&str; 4] = ["sales", "legal", "vendor_manager", "admin"];

/// Signs every signer of an agreement through its links.
pub(crate) fn execute(app: &TestApp, id: &str) {
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    if a["status"] == "draft" {
        assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    }
    for _ in 0..4 {
        let a = app.get(&format!("/api/v1/agreements/{id}")).json();
        for s in a["signers"].as_array().expect("signers") {
            if s["status"] == "notified" || s["status"] == "opened" {
                let email = s["email"].as_str().expect("email");
                let link = app.links_for(email, "/sign/").into_iter().rev().find(|l| app.open(l).0 == 200);
                if let Some(link) = link {
                    assert_eq!(app.sign(&link, s["name"].as_str().expect("n"), "Signer").status, 200);
                }
            }
        }
    }
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "executed");
}

pub(crate) fn intake_named(downstream: &str, upstream: &str) -> String {
    let mut v = example_json(BAA);
    v["business_associate"]["legal_name"] = serde_json::json!(downstream);
    v["covered_entity"]["legal_name"] = serde_json::json!(upstream);
    v.to_string()
}

/// The status an allowed role gets for each route when the ids name nothing (or, for
/// collection routes, on an empty-ish archive).
fn expected_for_allowed(method: &str, path: &str) -> u16 {
    match (method, path) {
        (
            "GET",
            "/agreements"
            | "/agreements/export.csv"
            | "/agreements/renewal-due"
            | "/retention"
            | "/apikeys"
            | "/audit/verify"
            | "/backup"
            | "/openapi.json"
            | "/outbox"
            | "/users"
            | "/security-log"
            | "/vendors"
            | "/vendors/report"
            | "/vendors/documents"
            | "/webhooks",
        ) => 200,
        // The file's description in the query string is checked before the vendor is looked up.
        ("POST", "/vendors/{id}/documents" | "/vendors/{id}/papers") => 422,
        ("POST", "/verify" | "/keys/link/rotate") => 200,
        ("POST", "/agreements" | "/apikeys" | "/users" | "/vendors" | "/webhooks") => 201,
        _ => 404,
    }
}

fn body_for(route: &countersign::http::api::RouteDoc) -> (String, &'static str) {
    match route.body {
        Body::None => (String::new(), "application/json"),
        Body::Intake => (example_text(BAA), "application/json"),
        Body::Pdf => ("%PDF-1.7 not archived".into(), "application/pdf"),
        Body::Json(_) => (
            match route.path {
                "/agreements/{id}/terminate" => r#"{"date": "2028-01-01", "reason": "x"}"#.into(),
                "/agreements/{id}/return-or-destroy" => {
                    r#"{"method": "destroyed", "date": "2028-01-01", "certified_by": "x"}"#.into()
                }
                "/agreements/{id}/signers/{signer}" => r#"{"name": "X Y"}"#.into(),
                "/apikeys" => r#"{"name": "made in matrix", "role": "sales"}"#.into(),
                "/users" => r#"{"email": "matrix@example.com", "name": "Made in matrix", "role": "sales"}"#.into(),
                "/users/{id}" => r#"{"role": "legal"}"#.into(),
                "/vendors" => r#"{"legal_name": "Made in matrix"}"#.into(),
                "/vendors/{id}" => r#"{"website": "https://matrix.example"}"#.into(),
                "/vendors/{id}/questionnaire" => r#"{"handles_phi": true}"#.into(),
                "/vendors/{id}/agreements" => r#"{"agreement_id": "ag_00000000000000000000"}"#.into(),
                "/vendors/{id}/reassessed" => "{}".into(),
                "/webhooks" => r#"{"url": "https://hooks.example.com/in", "events": ["*"]}"#.into(),
                _ => r#"{"reason": "x"}"#.into(),
            },
            "application/json",
        ),
    }
}

fn concrete(path: &str) -> String {
    format!(
        "/api/v1{}",
        path.replace("{id}", "ag_00000000000000000000")
            .replace("{signer}", "s1")
            .replace("{version}", "1")
            .replace("{key_id}", "k00000000")
            .replace("{message}", "m000000000000")
            .replace("{sha256}", "00")
            .replace("{delivery}", "wd_0")
    ) + if path.ends_with("/diff") { "?from=1&to=2" } else { "" }
}

#[test]
fn every_route_answers_every_role_and_every_bad_key_with_the_exact_status() {
    let (app, _dir) = spawn_app();
    let keys: Vec<(&str, String)> = ROLES.iter().map(|r| (*r, app.key_for(r, None).0)).collect();
    let (revoked, revoked_id) = app.key_for("admin", None);
    assert_eq!(app.req("DELETE", &format!("/api/v1/apikeys/{revoked_id}"), Some(&app.key), "", b"").status, 200);
    let (expired, _) = app.key_for("admin", Some(T0 + 60));
    app.clock.advance(120);

    for route in ROUTES {
        let path = concrete(route.path);
        let (body, ctype) = body_for(route);
        for (label, key) in [
            ("no key", None),
            ("revoked key", Some(revoked.as_str())),
            ("expired key", Some(expired.as_str())),
            ("garbage key", Some("csk_nope_nope")),
        ] {
            let r = app.req(route.method, &path, key, ctype, body.as_bytes());
            let want = if countersign::http::api::is_public(route.method, route.path) { 200 } else { 401 };
            assert_eq!(r.status, want, "{} {path} with {label}: {}", route.method, r.text());
        }
        // Four failures per route: step past the failure limiter's window between routes.
        app.clock.advance(61);
        for (role, key) in &keys {
            let r = app.req(route.method, &path, Some(key), ctype, body.as_bytes());
            let allowed = route.roles.iter().any(|x| x.as_str() == *role);
            let want = if allowed { expected_for_allowed(route.method, route.path) } else { 403 };
            assert_eq!(r.status, want, "{} {path} as {role}: {}", route.method, r.text());
        }
    }
}

#[test]
fn failed_key_attempts_are_rate_limited_per_source_but_a_valid_key_is_never_refused() {
    let (app, _dir) = spawn_app();
    for _ in 0..20 {
        assert_eq!(app.get_with_key("/api/v1/agreements", "csk_bad_bad").status, 401);
    }
    assert_eq!(app.get_with_key("/api/v1/agreements", "csk_bad_bad").status, 429);
    assert_eq!(app.get_with_key("/api/v1/agreements", "csk_other_guess").status, 429, "the source is blocked");
    // Behind a shared proxy address anyone could fail 20 times: staff keys keep working.
    assert_eq!(app.get("/api/v1/agreements").status, 200, "a valid key is never refused");
    app.clock.advance(61);
    assert_eq!(app.get_with_key("/api/v1/agreements", "csk_bad_bad").status, 401);
}

#[test]
fn sales_keys_see_only_their_own_agreements() {
    let (app, _dir) = spawn_app();
    let (sales, _) = app.key_for("sales", None);
    let mine =
        app.req("POST", "/api/v1/agreements", Some(&sales), "application/json", example_text(BAA).as_bytes()).json();
    let theirs = app.create(&example_text(DUA));
    let id = mine["id"].as_str().expect("id");
    assert_eq!(app.req("GET", &format!("/api/v1/agreements/{id}"), Some(&sales), "", b"").status, 200);
    let other = theirs["id"].as_str().expect("id");
    assert_eq!(app.req("GET", &format!("/api/v1/agreements/{other}"), Some(&sales), "", b"").status, 404);
    let list = app.req("GET", "/api/v1/agreements", Some(&sales), "", b"").json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);

    // Their own list pages like any other: by cursor, every one of theirs once, no one else's.
    let mut own = vec![id.to_string()];
    for _ in 0..2 {
        let a = app.req("POST", "/api/v1/agreements", Some(&sales), "application/json", example_text(DUA).as_bytes());
        own.push(a.json()["id"].as_str().expect("id").to_string());
    }
    app.create(&example_text(BAA));
    let mut seen = Vec::new();
    let mut path = "/api/v1/agreements?limit=2".to_string();
    loop {
        let page = app.req("GET", &path, Some(&sales), "", b"").json();
        assert_eq!(page["total"], 3, "{page}");
        seen.extend(page["items"].as_array().expect("items").iter().map(|e| e["id"].as_str().expect("id").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/agreements?limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    own.sort();
    assert_eq!(seen, own);
}

#[test]
fn search_is_accent_insensitive_pages_without_skips_and_exports_csv() {
    let (app, _dir) = spawn_app();
    let names = [
        "Marta Núñez Clinic",
        "Nunez Dental",
        "Łukasz Żółć Labs",
        "Zoë Ångström Health",
        "Northwind Messaging",
        "Harbor Cloud",
        "Ñandú Analytics",
        "O'Brien, Smith & Co",
        "=cmd|calc Partners",
    ];
    let mut ids = Vec::new();
    for i in 0..21 {
        let n = format!("{} {}", names[i % names.len()], i);
        ids.push(app.create(&intake_named(&n, "Lakeside Family Clinic, P.C."))["id"].as_str().expect("id").to_string());
    }
    let found = app.get("/api/v1/agreements?counterparty=nunez&limit=50").json();
    let hits: Vec<String> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["parties"][1].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        hits.iter().any(|h| h.starts_with("Marta Núñez")) && hits.iter().any(|h| h.starts_with("Nunez Dental")),
        "{hits:?}"
    );
    assert_eq!(found["total"].as_u64(), Some(hits.len() as u64));
    assert!(app.get("/api/v1/agreements?q=zolc").json()["total"].as_u64() >= Some(1));

    // Pages of 4 by counterparty: every agreement once, in order.
    let mut seen = Vec::new();
    let mut url = "/api/v1/agreements?limit=4&sort=counterparty".to_string();
    loop {
        let page = app.get(&url).json();
        assert_eq!(page["total"], 21);
        seen.extend(page["items"].as_array().expect("items").iter().map(|e| e["id"].as_str().expect("id").to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/agreements?limit=4&sort=counterparty&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 21, "no repeats");
    assert_eq!(sorted.len(), 21, "no skips");

    assert_eq!(app.get("/api/v1/agreements?sort=sideways").status, 422);
    assert_eq!(app.get("/api/v1/agreements?colour=red").status, 422);

    let csv = app.get("/api/v1/agreements/export.csv?counterparty=o");
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").is_some_and(|t| t.starts_with("text/csv")));
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(csv.body.as_slice());
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>().expect("CSV parses");
    assert!(rows.iter().any(|r| r.iter().any(|f| f.starts_with("O'Brien, Smith & Co"))), "commas survive");
    assert!(rows.iter().all(|r| r.iter().all(|f| !f.starts_with('='))), "formula injection neutralised");
}

#[test]
fn an_archived_pdf_verifies_and_one_changed_byte_does_not() {
    let (app, dir) = spawn_app();
    let id = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    execute(&app, &id);
    let pdf = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    let (vm, _) = app.key_for("vendor_manager", None);
    let ok = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &pdf).json();
    assert_eq!(ok["match"], true);
    assert_eq!(ok["agreement_id"], id.as_str());
    assert_eq!(ok["status"], "executed");
    assert_eq!(ok["copy"], "final");
    assert_eq!(ok["signers"].as_array().map(Vec::len), Some(2));

    let mut altered = pdf.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x20;
    let bad = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &altered).json();
    assert_eq!(bad["match"], false);
    assert!(bad["near_miss"].as_str().is_some_and(|m| m.contains("1 byte(s) differ") && m.contains(&id)), "{bad}");
    assert!(bad.get("agreement_id").is_none());

    // The public check needs no key and says only match or not.
    let public = app.req("POST", "/verify", None, "application/pdf", &pdf).json();
    assert_eq!(public["match"], true);
    assert!(public.get("agreement_id").is_none() && public.get("signers").is_none());
    assert_eq!(app.req("POST", "/verify", None, "application/pdf", &altered).json()["match"], false);

    // The CLI asks the running server, then reads the store directly once it is stopped.
    std::fs::write(dir.path().join("final.pdf"), &pdf).expect("write");
    std::fs::write(dir.path().join("altered.pdf"), &altered).expect("write");
    let data = dir.path().to_str().expect("path");
    let _ = std::fs::write(dir.path().join("server.url"), format!("{}\n", app.base));
    assert!(countersign(&["verify", "final.pdf", "--data", data], dir.path()).status.success(), "via the server");
    app.stop();
    let _ = std::fs::remove_file(dir.path().join("server.url"));
    assert!(countersign(&["verify", "final.pdf", "--data", data], dir.path()).status.success(), "direct");
    let out = countersign(&["verify", "altered.pdf", "--data", data], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NO MATCH"));
}

#[test]
fn the_public_verify_is_rate_limited() {
    let (app, _dir) = spawn_app();
    for _ in 0..20 {
        assert_eq!(app.req("POST", "/verify", None, "application/pdf", b"%PDF-").status, 200);
    }
    assert_eq!(app.req("POST", "/verify", None, "application/pdf", b"%PDF-").status, 429);
}

#[test]
fn downloads_of_the_archived_copy_are_in_the_access_log() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    execute(&app, &id);
    let (vm, vm_id) = app.key_for("vendor_manager", None);
    assert_eq!(app.req("GET", &format!("/api/v1/agreements/{id}/document"), Some(&vm), "", b"").status, 200);
    let log = app.req("GET", &format!("/api/v1/agreements/{id}/access-log"), Some(&vm), "", b"").json();
    let items = log["items"].as_array().expect("items");
    assert!(
        items.iter().any(|e| e["who"].as_str().is_some_and(|w| w.contains(&vm_id)) && e["ip"] == "127.0.0.1"),
        "{log}"
    );
}

#[test]
fn terminate_then_certify_return_or_destruction_closes_the_agreement() {
    let (app, _dir) = spawn_app();
    let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    assert_eq!(
        app.post(
            &format!("/api/v1/agreements/{id}/terminate"),
            r#"{"date": "2027-06-30", "reason": "contract ended"}"#
        )
        .status,
        409,
        "only executed agreements"
    );
    execute(&app, &id);
    let due = app.get("/api/v1/agreements/renewal-due?days=4000").json();
    assert!(
        due["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["id"] == id.as_str() && e["renewal_date"] == "2030-01-01"),
        "{due}"
    );

    assert_eq!(
        app.post(&format!("/api/v1/agreements/{id}/terminate"), r#"{"date": "2027-02-30", "reason": "x"}"#).status,
        422
    );
    let t = app
        .post(&format!("/api/v1/agreements/{id}/terminate"), r#"{"date": "2027-06-30", "reason": "Vendor replaced"}"#);
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["status"], "terminated");
    // Voiding would move the six-year retention back to creation: refused after execution.
    let void = app.post(&format!("/api/v1/agreements/{id}/void"), r#"{"reason": "clean up"}"#);
    assert_eq!(void.status, 409, "{}", void.text());
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["status"], "terminated");
    let infeasible = app.post(
        &format!("/api/v1/agreements/{id}/return-or-destroy"),
        r#"{"method": "infeasible", "date": "2027-07-15", "certified_by": "Łukasz Żółć"}"#,
    );
    assert_eq!(infeasible.status, 422, "infeasible needs the continuing protections");
    let c = app.post(
        &format!("/api/v1/agreements/{id}/return-or-destroy"),
        r#"{"method": "infeasible", "date": "2027-07-15", "certified_by": "Łukasz Żółć", "protections": "Backups kept under this Agreement's safeguards, used only to restore service, destroyed on rotation"}"#,
    );
    assert_eq!(c.status, 200, "{}", c.text());
    let v = c.json();
    assert_eq!(v["status"], "closed");
    assert_eq!(v["phi_disposition"]["method"], "infeasible");
    assert_eq!(v["retain_until"], "2033-06-30");
    let kinds: Vec<String> = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kinds.contains(&"terminated".into()) && kinds.contains(&"phi_disposition_certified".into()));
}

#[test]
fn a_subcontractor_chain_of_depth_two_is_listed_both_ways() {
    let (app, _dir) = spawn_app();
    let top = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    let sub = |parent: &str, name: &str| {
        let mut v = example_json(BAA);
        v["relationship"] = serde_json::json!("business_associate_to_subcontractor");
        v["parent_agreement_id"] = serde_json::json!(parent);
        v["subcontractor"] = v["business_associate"].clone();
        v["subcontractor"]["legal_name"] = serde_json::json!(name);
        v["business_associate"] = v["covered_entity"].clone();
        v.as_object_mut().expect("obj").remove("covered_entity");
        v["signers"][0]["party"] = serde_json::json!("subcontractor");
        v["signers"][1]["party"] = serde_json::json!("business_associate");
        app.create(&v.to_string())["id"].as_str().expect("id").to_string()
    };
    let mid = sub(&top, "Harbor Cloud Hosting LLC");
    let leaf = sub(&mid, "Tide Backup Services LLC");
    let down = app.get(&format!("/api/v1/agreements/{top}/chain")).json();
    let d: Vec<(&str, u64)> = down["descendants"]
        .as_array()
        .expect("d")
        .iter()
        .map(|l| (l["id"].as_str().unwrap_or(""), l["depth"].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(d, vec![(mid.as_str(), 1), (leaf.as_str(), 2)]);
    let up = app.get(&format!("/api/v1/agreements/{leaf}/chain")).json();
    let u: Vec<&str> = up["ancestors"].as_array().expect("a").iter().map(|l| l["id"].as_str().unwrap_or("")).collect();
    assert_eq!(u, vec![top.as_str(), mid.as_str()]);
}

#[test]
fn documents_past_retention_are_reported_and_disposed_of_leaving_a_tombstone() {
    let (app, dir) = spawn_app();
    let id = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    execute(&app, &id);
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/dispose"), "").status, 409, "in effect: kept");
    app.post(&format!("/api/v1/agreements/{id}/terminate"), r#"{"date": "2027-03-01", "reason": "study ended"}"#);
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/dispose"), "").status, 409, "within six years: kept");
    assert!(app.get("/api/v1/retention").json()["items"].as_array().expect("items").is_empty());
    app.clock.advance(7 * 366 * 86_400);
    let report = app.get("/api/v1/retention").json();
    assert_eq!(report["items"][0]["id"], id.as_str());
    assert_eq!(report["items"][0]["retain_until"], "2033-03-01");
    let (legal, _) = app.key_for("legal", None);
    assert_eq!(
        app.req("POST", &format!("/api/v1/agreements/{id}/dispose"), Some(&legal), "", b"").status,
        403,
        "admin only"
    );
    let r = app.post(&format!("/api/v1/agreements/{id}/dispose"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}/document")).status, 404);
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    assert_eq!(audit["items"].as_array().expect("items").last().expect("last")["kind"], "disposed");
    assert_eq!(app.get("/api/v1/audit/verify").json()["ok"], true);
    app.stop();
    let out = countersign(&["retention", "report", "--data", dir.path().to_str().expect("p")], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing is past"), "disposed agreements leave the report");
}

#[test]
fn a_backup_taken_while_serving_restores_to_an_archive_that_verifies_and_searches_the_same() {
    let (app, dir) = spawn_app();
    let a = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    execute(&app, &a);
    app.create(&intake_named("Núñez Billing LLC", "Lakeside Family Clinic, P.C."));
    let before = app.get("/api/v1/agreements?sort=counterparty").json();
    std::fs::write(dir.path().join("server.url"), format!("{}\n", app.base)).expect("url");
    let data = dir.path().to_str().expect("p");
    let out = countersign(&["backup", "--out", "snap.ndjson", "--data", data], dir.path());
    assert!(out.status.success(), "backup through the running server: {}", String::from_utf8_lossy(&out.stderr));
    let final_pdf = app.get(&format!("/api/v1/agreements/{a}/document")).body;
    app.stop();

    let restored = tempfile::tempdir().expect("tempdir");
    let rdata = restored.path().to_str().expect("p");
    let head_key = dir.path().join("audit-head.key");
    let out = countersign(
        &[
            "restore",
            "--from",
            dir.path().join("snap.ndjson").to_str().expect("p"),
            "--head-key",
            head_key.to_str().expect("p"),
            "--data",
            rdata,
        ],
        restored.path(),
    );
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let audit = countersign(&["audit", "verify", "--data", rdata], restored.path());
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    std::fs::write(restored.path().join("final.pdf"), &final_pdf).expect("write");
    assert!(countersign(&["verify", "final.pdf", "--data", rdata], restored.path()).status.success());
    let again = countersign(
        &["restore", "--from", dir.path().join("snap.ndjson").to_str().expect("p"), "--data", rdata],
        restored.path(),
    );
    assert!(!again.status.success(), "restore refuses a non-empty directory");

    let app2 = spawn_app_at(restored.path(), countersign::clock::ManualClock::at(T0));
    let after = app2.get("/api/v1/agreements?sort=counterparty").json();
    assert_eq!(before["items"], after["items"], "same search results");
    // Every document's bytes still match their SHA-256 (re-checked on read).
    let sha = hex::encode(Sha256::digest(app2.get(&format!("/api/v1/agreements/{a}/document")).body));
    assert_eq!(sha, hex::encode(Sha256::digest(&final_pdf)));
}

#[test]
fn apikeys_are_shown_once_listed_without_secrets_and_the_bootstrap_key_retires_after_another_admin_exists() {
    let (app, _dir) = spawn_app();
    assert_eq!(app.req("DELETE", "/api/v1/apikeys/bootstrap", Some(&app.key), "", b"").status, 409);
    let (admin, _) = app.key_for("admin", None);
    let list = app.get("/api/v1/apikeys").text();
    assert!(!list.contains(&admin), "the key is shown once, never listed");
    assert!(!list.contains("hash"));
    assert_eq!(app.req("DELETE", "/api/v1/apikeys/bootstrap", Some(&admin), "", b"").status, 200);
    assert_eq!(app.get("/api/v1/agreements").status, 401, "bootstrap key revoked");
    assert_eq!(app.req("GET", "/api/v1/agreements", Some(&admin), "", b"").status, 200);
}

#[test]
fn the_openapi_description_lists_every_route() {
    let (app, _dir) = spawn_app();
    let doc = app.get("/api/v1/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in ROUTES {
        let op = &doc["paths"][format!("/api/v1{}", r.path)][r.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing", r.method, r.path);
        assert!(op["x-roles"].is_array());
    }
}

#[test]
fn apikey_commands_work_on_a_stopped_server_and_refuse_plainly_on_a_running_one() {
    let (app, dir) = spawn_app();
    let data = dir.path().to_str().expect("p");
    let busy = countersign(&["apikey", "list", "--data", data], dir.path());
    assert_eq!(busy.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("running countersign server"));
    app.stop();
    let made =
        countersign(&["apikey", "create", "--role", "legal", "--name", "Dana (legal)", "--data", data], dir.path());
    assert!(made.status.success());
    let key = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(key.starts_with("csk_k"));
    let listed =
        String::from_utf8_lossy(&countersign(&["apikey", "list", "--data", data], dir.path()).stdout).to_string();
    assert!(listed.contains("Dana (legal)") && !listed.contains(&key));
    let app = spawn_app_at(dir.path(), countersign::clock::ManualClock::at(T0));
    assert_eq!(app.req("GET", "/api/v1/agreements", Some(&key), "", b"").status, 200);
}

#[test]
fn a_restart_reads_the_index_its_stop_wrote_and_finds_agreements_an_operator_command_added_in_between() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = countersign::clock::ManualClock::at(T0);
    let app = spawn_app_at(dir.path(), clock.clone());
    let a = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    execute(&app, &a);
    for name in ["Núñez Billing LLC", "Harbor Cloud, Inc.", "Zoë Ångström Health"] {
        app.create(&intake_named(name, "Lakeside Family Clinic, P.C."));
    }
    let all = |app: &TestApp| app.get("/api/v1/agreements?sort=counterparty&limit=500").json();
    let before = all(&app);
    assert_eq!(before["total"], 4);
    let pdf = app.get(&format!("/api/v1/agreements/{a}/document")).body;
    app.stop();

    // sled keeps the snapshot's token; PostgreSQL, shared by instances, builds at each start.
    let snapshot = dir.path().join("index.snapshot");
    let sled = !crate::pg::on_postgres();
    assert_eq!(snapshot.exists(), sled, "a clean stop on sled leaves the index snapshot");
    let app = spawn_app_at(dir.path(), clock.clone());
    assert_eq!(app.index_from_snapshot(), sled, "read from the snapshot on sled");
    assert!(!snapshot.exists(), "the start spent it");
    assert_eq!(all(&app), before, "the same answers");
    assert_eq!(app.get("/api/v1/agreements?q=nunez").json()["total"], 1);
    let (vm, _) = app.key_for("vendor_manager", None);
    let found = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &pdf).json();
    assert_eq!((&found["match"], &found["agreement_id"]), (&serde_json::json!(true), &serde_json::json!(a)));
    app.stop();
    if !sled {
        return;
    }

    // With the server stopped, an operator command writes agreements into the store: the next
    // start must not serve the index of before, even with the snapshot and its seal put back.
    let seal = dir.path().join("index-token.seal");
    let kept = (std::fs::read(&snapshot).expect("the snapshot"), std::fs::read(&seal).expect("its seal"));
    let data = dir.path().to_str().expect("utf-8 path");
    let out = countersign(&["bench", "seed", "--count", "3", "--seed", "5", "--data", data], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&snapshot, &kept.0).expect("put back");
    std::fs::write(&seal, &kept.1).expect("put back");
    let app = spawn_app_at(dir.path(), clock);
    assert!(!app.index_from_snapshot(), "the store no longer vouches for it");
    assert_eq!(all(&app)["total"], 7, "the three seeded agreements are found");
}
