//! A data directory written by the previous release (tests/fixtures/data-v1.tar.gz, made by
//! `scripts/make-fixture` with the release at 7fa7f00) opens in this one: the format migration
//! runs once, the audit trail verifies (now against authenticated heads), the archived
//! documents are byte-for-byte what was signed, search finds them, and a signing link mailed
//! before the upgrade still works.

use std::path::Path;

use sha2::{Digest, Sha256};

use countersign::store::Store;
use countersign::store::format::{FORMAT_VERSION, Migration};
use countersign::store::sled_store::SledStore;

use crate::app::*;
use crate::helpers::*;

/// Unpacks the fixture into `into`: (data directory, fixture.json).
fn unpack(into: &Path) -> (std::path::PathBuf, serde_json::Value) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-v1.tar.gz");
    let out = std::process::Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(into).output().expect("tar");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fixture =
        serde_json::from_slice(&std::fs::read(into.join("fixture.json")).expect("fixture.json")).expect("json");
    (into.join("data"), fixture)
}

#[test]
fn a_data_directory_from_the_previous_release_migrates_once_and_keeps_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (data, fx) = unpack(tmp.path());
    assert!(!data.join("audit-head.key").exists(), "the old release had no head key");
    let id = |k: &str| fx[k].as_str().expect(k).to_string();

    // First open: format 1 → current, heads authenticated.
    let store = SledStore::open(&data).expect("opens");
    assert_eq!(store.migration(), Migration { from: 1, to: FORMAT_VERSION });
    // The agreements' summary tree (start-up reads it instead of the records) did not exist
    // then: built now, once, from the records.
    assert_eq!(store.summaries_built(), store.agreements().expect("agreements").len());
    assert!(store.summaries_built() >= 4);
    assert!(store.chain_heads().expect("heads").iter().all(|h| h.authentic));
    let (chains, events) = countersign::app::verify_chains(&store).expect("audit intact");
    assert!(chains >= 4 && events > chains, "{chains} chains, {events} events");
    drop(store);
    let audit = countersign(&["audit", "verify", "--data", data.to_str().expect("p")], tmp.path());
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));

    // Served at the fixture's time (a minute after it was made).
    let made_at = fx["made_at"].as_u64().expect("made_at");
    let app = spawn_app_at(&data, countersign::clock::ManualClock::at(made_at + 60));
    for (ag, sha) in fx["documents_sha256"].as_object().expect("docs") {
        let doc = app.get(&format!("/api/v1/agreements/{ag}/document"));
        assert_eq!(doc.status, 200, "{ag}");
        assert_eq!(hex::encode(Sha256::digest(&doc.body)), sha.as_str().expect("sha"), "{ag}: the same bytes");
    }
    let executed = app.get(&format!("/api/v1/agreements/{}", id("executed"))).json();
    assert_eq!(executed["status"], "executed");
    assert_eq!(executed["final_sha256"], fx["final_sha256"]);
    assert_eq!(app.get(&format!("/api/v1/agreements/{}", id("voided"))).json()["status"], "voided");
    assert_eq!(app.get(&format!("/api/v1/agreements/{}", id("draft"))).json()["status"], "draft");
    // Search finds them (the index is rebuilt from the migrated store).
    let all = app.get("/api/v1/agreements?limit=50").json();
    for k in ["executed", "pending", "draft", "voided"] {
        assert!(all["items"].as_array().expect("items").iter().any(|e| e["id"] == id(k).as_str()), "{k}: {all}");
    }
    // The archived final copy verifies as itself.
    let final_pdf = app.get(&format!("/api/v1/agreements/{}/document", id("executed"))).body;
    let v = app.req("POST", "/api/v1/verify", Some(&app.key), "application/pdf", &final_pdf).json();
    assert_eq!(v["match"], true, "{v}");
    assert_eq!(v["agreement_id"], id("executed").as_str());
    // The API key made by the old release is listed, still active.
    let keys = app.get("/api/v1/apikeys").json();
    let key = keys["items"].as_array().expect("items").iter().find(|k| k["id"] == id("api_key_id").as_str()).cloned();
    assert!(key.is_some_and(|k| k["revoked_at"].is_null()), "{keys}");
    // A signing link mailed before the upgrade still works.
    // (The same address got links for the other agreements too: the voided one's no longer open.)
    // The fixture's server listened on another port: the path (with its token) is what counts.
    let here = |l: String| l.find("/sign/").map(|i| format!("{}{}", app.base, &l[i..])).unwrap_or(l);
    let link =
        app.links_for(&id("pending_signer"), "/sign/").into_iter().map(here).rev().find(|l| app.open(l).0 == 200);
    let link = link.expect("the pending agreement's link still opens");
    assert_eq!(app.sign(&link, &id("pending_signer_name"), "Privacy Officer").status, 200);
    let pending = app.get(&format!("/api/v1/agreements/{}", id("pending"))).json();
    assert_ne!(pending["status"], "sent", "{pending}");
    app.stop();

    // Second open: nothing to migrate, and the trail (with the new signature) still verifies.
    let store = crate::helpers::sled_store_when_free(&data).expect("reopens");
    assert!(store.migration().is_noop(), "{:?}", store.migration());
    assert_eq!(store.summaries_built(), 0, "the summaries were built at the first open");
    assert!(countersign::app::verify_chains(&store).is_ok());
}

#[test]
fn a_data_directory_from_a_newer_release_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    drop(SledStore::open(&data).expect("new"));
    {
        let db = crate::helpers::sled_open_when_free(&data.join("sled"));
        db.open_tree("meta").expect("meta").insert("format_version", &(FORMAT_VERSION + 1).to_be_bytes()).expect("put");
        db.flush().expect("flush");
    }
    let err = match crate::helpers::sled_store_when_free(&data) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a directory from a newer release opened"),
    };
    assert!(err.contains("newer Countersign") && err.contains(&format!("format {}", FORMAT_VERSION + 1)), "{err}");
}
