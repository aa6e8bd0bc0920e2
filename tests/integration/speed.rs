//! Issue 14 behaviour, checked for correctness (speed itself is measured by `scripts/load` and
//! the benches, never asserted here): the first-view rule, the cached signer page staying
//! current, and group commit keeping every acknowledged write on disk.

use std::sync::Arc;

use countersign::store::sled_store::SledStore;
use countersign::store::{Change, NewEvent, Store};

use crate::app::*;
use crate::helpers::*;

fn created_and_sent(app: &TestApp, intake: &str) -> String {
    let a = app.create(intake);
    let id = a["id"].as_str().expect("id").to_string();
    let r = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    id
}

fn events_of(app: &TestApp, id: &str, kind: &str) -> Vec<serde_json::Value> {
    let all = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    all["items"].as_array().expect("items").iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// The agreement text section of a signer page.
fn doc_section(html: &str) -> &str {
    let start = html.find("<section class=\"doc\"").expect("document section");
    let end = html[start..].find("</section>").expect("section end") + start;
    &html[start..end]
}

#[test]
fn a_link_opened_many_times_records_one_opened_event_and_the_later_views_go_with_the_signature() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let priya = app.sign_link("priya@northwind.example");
    let events_before = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"].as_array().map(Vec::len);
    let (status, first, _) = app.open(&priya);
    assert_eq!(status, 200);
    assert_eq!(app.get(&format!("/api/v1/agreements/{id}")).json()["signers"][0]["status"], "opened");
    for _ in 0..4 {
        let (status, again, _) = app.open(&priya);
        assert_eq!(status, 200);
        assert_eq!(again, first, "a later view shows the same page as the first (cached document HTML)");
    }
    let items = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"].as_array().map(Vec::len);
    assert_eq!(items, events_before.map(|n| n + 1), "five views add exactly one event");
    assert_eq!(events_of(&app, &id, "opened").len(), 1);

    // `sign` opens the page once more before posting: 4 + 1 later views.
    let r = app.sign(&priya, "Priya Raman", "VP, Legal");
    assert_eq!(r.status, 200, "{}", r.text());
    let signed = events_of(&app, &id, "signed");
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["detail"]["later_views"], 5, "{}", signed[0]);
    assert_eq!(events_of(&app, &id, "opened").len(), 1);
}

#[test]
fn concurrent_first_views_record_one_opened_event() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let priya = app.sign_link("priya@northwind.example");
    let app = Arc::new(app);
    let views: Vec<_> = (0..8)
        .map(|_| {
            let (app, link) = (app.clone(), priya.clone());
            std::thread::spawn(move || app.open(&link).0)
        })
        .collect();
    for v in views {
        assert_eq!(v.join().expect("viewer"), 200);
    }
    assert_eq!(events_of(&app, &id, "opened").len(), 1);
}

#[test]
fn signers_of_one_agreement_share_the_document_html_but_see_their_own_name_and_form_token() {
    let (app, _dir) = spawn_app();
    let mut v = example_json(BAA);
    v["signers"][1]["order"] = serde_json::json!(1);
    created_and_sent(&app, &v.to_string());
    let (s1, priya, csrf1) = app.open(&app.sign_link("priya@northwind.example"));
    let (s2, zoe, csrf2) = app.open(&app.sign_link("zoe@lakeside.example"));
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(doc_section(&priya), doc_section(&zoe));
    assert!(doc_section(&priya).contains("Northwind Patient Messaging, Inc."));
    assert!(priya.contains("Priya Raman") && !priya.contains("value=\"Zoë"), "each page names its own signer");
    assert!(zoe.contains("Zoë Ångström"));
    assert!(!csrf1.is_empty() && csrf1 != csrf2, "each link has its own form token");
}

#[test]
fn a_browser_that_accepts_gzip_gets_the_same_signer_page_compressed_to_a_fraction() {
    use std::io::Read;
    let (app, _dir) = spawn_app();
    created_and_sent(&app, &example_text(BAA));
    let priya = app.sign_link("priya@northwind.example");
    // The first view records `opened` and renders the agreement text; later views reuse it.
    let (status, _, _) = app.open(&priya);
    assert_eq!(status, 200);
    let plain = app.get_with_headers(&priya, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("accept-encoding"));
    assert_eq!(plain.header("content-type"), Some("text/html; charset=utf-8"));

    let gz = app.get_with_headers(&priya, &[("Accept-Encoding", "gzip, deflate, br, zstd")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("accept-encoding"));
    // Sent as three parts (head, the kept stream, tail), announced with its exact length.
    assert_eq!(gz.header("content-length"), Some(gz.body.len().to_string().as_str()));
    assert_eq!(gz.header("transfer-encoding"), None, "not chunked");
    let mut html = String::new();
    // The decoder checks the member's CRC-32 and length.
    flate2::read::GzDecoder::new(gz.body.as_slice()).read_to_string(&mut html).expect("a valid gzip body");
    assert_eq!(html, plain.text(), "the compressed page is the plain page, byte for byte");
    assert!(doc_section(&html).contains("Northwind Patient Messaging, Inc."));
    assert!(
        gz.body.len() * 2 < plain.body.len(),
        "{} compressed bytes for a {}-byte page",
        gz.body.len(),
        plain.body.len()
    );

    // A weight of zero refuses gzip.
    let refused = app.get_with_headers(&priya, &[("Accept-Encoding", "gzip;q=0, identity")]);
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.body, plain.body);
}

#[test]
fn the_page_shows_the_current_state_while_views_and_a_signature_run_concurrently() {
    let (app, _dir) = spawn_app();
    let id = created_and_sent(&app, &example_text(BAA));
    let priya = app.sign_link("priya@northwind.example");
    let (_, _, csrf) = app.open(&priya);
    let app = Arc::new(app);
    let viewers: Vec<_> = (0..4)
        .map(|_| {
            let (app, link) = (app.clone(), priya.clone());
            std::thread::spawn(move || (0..10).map(|_| app.open(&link).0).collect::<Vec<u16>>())
        })
        .collect();
    let r = app.form(
        &priya,
        &[
            ("action", "sign"),
            ("consent", "yes"),
            ("typed_name", "Priya Raman"),
            ("typed_title", "VP"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Acknowledged: every view from now on shows the outcome, never the form.
    let (status, html, _) = app.open(&priya);
    assert_eq!(status, 409);
    assert!(html.contains("You have already signed"));
    assert!(!html.contains("name=\"typed_name\""));
    for v in viewers {
        for status in v.join().expect("viewer") {
            assert!(status == 200 || status == 409, "a view during signing answered {status}");
        }
    }
    let signed = events_of(&app, &id, "signed");
    assert_eq!(signed.len(), 1);
    let later = signed[0]["detail"]["later_views"].as_u64().expect("later_views");
    assert!(later <= 40, "views counted before the signature: {later}");
}

fn event(agreement: &str, n: usize) -> NewEvent {
    NewEvent {
        agreement_id: agreement.to_string(),
        kind: "note".into(),
        at: 1_800_000_000 + n as u64,
        actor: "test".into(),
        ip: String::new(),
        user_agent: String::new(),
        document_sha256: String::new(),
        detail: serde_json::json!({"n": n}),
    }
}

#[test]
fn concurrent_commits_share_flushes_and_every_acknowledged_one_is_there_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..20 {
                    store
                        .commit(Change { events: vec![event(&format!("ag{w}"), n)], ..Change::default() })
                        .expect("commit");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let flushes = store.flushes();
    assert!(flushes < 320, "320 concurrent commits shared no fsync ({flushes})");
    drop(store);
    let reopened = crate::helpers::sled_store_when_free(dir.path()).expect("reopen");
    for w in 0..16 {
        let events = reopened.events(&format!("ag{w}")).expect("events");
        assert_eq!(events.len(), 20, "writer {w}");
        let ns: Vec<u64> = events.iter().map(|e| e.detail["n"].as_u64().unwrap_or(99)).collect();
        assert_eq!(ns, (0..20).collect::<Vec<u64>>(), "writer {w}'s commits in order");
    }
    let chains = reopened.raw_chains().expect("chains");
    assert_eq!(chains.len(), 16);
}

fn message(id: &str, agreement: &str, status: countersign::store::MessageStatus) -> countersign::store::Message {
    countersign::store::Message {
        id: id.into(),
        agreement_id: agreement.into(),
        kind: "link".into(),
        to_name: "Priya".into(),
        to: "priya@northwind.example".into(),
        subject: "Please sign".into(),
        text: "…".into(),
        html: None,
        message_id: format!("{id}@countersign.test"),
        created_at: 1_800_000_000,
        status,
        attempts: 0,
        last_error: None,
        sent_at: None,
        signer_id: Some("s1".into()),
        reply_to: None,
        next_attempt_at: None,
        last_attempt_at: None,
        reply: None,
    }
}

fn ids(ms: Vec<countersign::store::Message>) -> Vec<String> {
    ms.into_iter().map(|m| m.id).collect()
}

#[test]
fn the_outbox_index_answers_queued_and_per_agreement_messages_and_follows_status_changes() {
    use countersign::store::MessageStatus::{Queued, Sent};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(dir.path()).expect("open");
    let change = Change {
        messages: vec![message("m1", "ag_a", Queued), message("m2", "ag_b", Queued), message("m3", "ag_a", Sent)],
        ..Change::default()
    };
    store.commit(change).expect("commit");
    assert_eq!(ids(store.queued_messages().expect("queued")), ["m1", "m2"]);
    assert_eq!(ids(store.agreement_messages("ag_a").expect("ag_a")), ["m1", "m3"]);
    assert_eq!(ids(store.agreement_messages("ag_b").expect("ag_b")), ["m2"]);
    assert!(store.agreement_messages("ag_").expect("prefix only").is_empty(), "an id prefix matches nothing");
    let mut sent = message("m1", "ag_a", Sent);
    sent.attempts = 1;
    store.put_message(&sent).expect("put");
    assert_eq!(ids(store.queued_messages().expect("queued")), ["m2"]);
    // The sender's pass reads the heads alone: the same messages, their bodies skipped.
    let mut retried = message("m2", "ag_b", Queued);
    retried.next_attempt_at = Some(1_800_000_300);
    store.put_message(&retried).expect("put");
    let heads = store.queued_heads().expect("heads");
    assert_eq!(heads, [countersign::store::QueuedHead::of(&retried)]);
    assert_eq!(heads[0].next_attempt_at, Some(1_800_000_300));
    assert_eq!(store.agreement_messages("ag_a").expect("ag_a")[0].attempts, 1);

    // Backup and restore: the index is derived, left out of the backup and rebuilt.
    let mut backup = Vec::new();
    store.dump(&mut backup).expect("dump");
    assert!(!String::from_utf8_lossy(&backup).contains("outbox_index"));
    let other = tempfile::tempdir().expect("tempdir");
    let restored = SledStore::open(other.path()).expect("open");
    restored.restore(&backup[..]).expect("restore");
    assert_eq!(ids(restored.queued_messages().expect("queued")), ["m2"]);
    assert_eq!(ids(restored.agreement_messages("ag_a").expect("ag_a")), ["m1", "m3"]);
}

#[test]
fn a_data_directory_written_before_the_outbox_index_gets_one_when_opened() {
    use countersign::store::MessageStatus::{Queued, Sent};
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // What the previous release wrote: messages in `outbox`, no index tree.
        let db = sled::open(dir.path().join("sled")).expect("sled");
        let outbox = db.open_tree("outbox").expect("outbox");
        for m in [message("m1", "ag_a", Sent), message("m2", "ag_a", Queued)] {
            outbox.insert(m.id.as_bytes(), serde_json::to_vec(&m).expect("json")).expect("insert");
        }
        db.flush().expect("flush");
    }
    let store = crate::helpers::sled_store_when_free(dir.path()).expect("open");
    assert_eq!(ids(store.queued_messages().expect("queued")), ["m2"]);
    assert_eq!(ids(store.agreement_messages("ag_a").expect("ag_a")), ["m1", "m2"]);
}

#[test]
fn a_seeded_data_directory_passes_audit_verify_and_serves_search_signer_pages_and_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8 path");
    let out = countersign(&["bench", "seed", "--data", d, "--count", "300", "--seed", "3"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("seeded 300 agreements"), "{stdout}");
    let out = countersign(&["audit", "verify", "--data", d], dir.path());
    let verified = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{verified}");
    assert!(verified.contains("audit trail intact: 300 agreement chain(s)"), "{verified}");

    // The records as the store holds them: every generated one is a full record.
    let (sent, executed) = {
        let store = crate::app::open_store(&data);
        let all = store.agreements().expect("agreements");
        assert_eq!(all.len(), 300);
        let sent = all.iter().find(|a| a.status.as_str() == "sent").cloned().expect("a sent agreement");
        let executed = all.iter().find(|a| a.status.as_str() == "executed").cloned().expect("an executed agreement");
        assert!(
            store.agreement_messages(&executed.id).expect("messages").iter().all(|m| m.agreement_id == executed.id)
        );
        (sent, executed)
    };

    let now = countersign::clock::Clock::now(&countersign::clock::SystemClock);
    let app = spawn_app_at(&data, countersign::clock::ManualClock::at(now));
    let page = app.get("/api/v1/agreements?limit=5").json();
    assert_eq!(page["total"], 300, "{page}");
    // Counterparties carry accents; the search folds them.
    let folded = app.get("/api/v1/agreements?counterparty=nunez&limit=500").json();
    let hits = folded["items"].as_array().expect("items");
    assert!(!hits.is_empty(), "{folded}");
    assert!(hits.iter().all(|e| e["parties"].to_string().contains("Núñez")), "{folded}");
    assert_eq!(app.get("/api/v1/agreements/renewal-due?days=3650").status, 200);
    assert_eq!(app.get(&format!("/api/v1/agreements/{}/audit", executed.id)).status, 200);
    let pdf = app.get(&format!("/api/v1/agreements/{}/document", executed.id));
    assert_eq!(pdf.status, 200, "{}", pdf.text());
    assert!(pdf.body.starts_with(b"%PDF-"));

    // A generated signer link opens the signer page.
    let keys = countersign::signing::token::KeyRing::load_or_create(&data.join("link-keys")).expect("link keys");
    let s = sent.signers.iter().find(|s| s.link_expires.is_some()).expect("a signer with an open link");
    let token = keys.issue(
        &sent.id,
        s.index,
        countersign::signing::token::Purpose::Sign,
        s.link_expires.unwrap_or(0),
        s.generation,
    );
    let (status, html, _) = app.open(&format!("{}/sign/{token}", app.base));
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&s.name), "the page names the signer");
}

#[test]
fn the_sender_leases_a_batch_of_due_messages_in_one_flush_and_records_their_outcomes_in_one_more() {
    use countersign::app::sender::{Transport, deliver_due};
    use countersign::store::MessageStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let config = countersign::config::Config {
        data_dir: dir.path().to_path_buf(),
        public_base_url: Some("http://127.0.0.1:9".into()),
        ..countersign::config::Config::default()
    };
    let clock: Arc<dyn countersign::clock::Clock> = Arc::new(countersign::clock::ManualClock::at(T0));
    let service = Arc::new(countersign::app::open_on(config, store.clone(), clock).expect("service"));
    let queued: Vec<_> = (0..5).map(|i| message(&format!("m{i}"), &format!("ag{i}"), MessageStatus::Queued)).collect();
    store.commit(Change { messages: queued, ..Change::default() }).expect("queue");

    let before = store.flushes();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let next = runtime.block_on(deliver_due(&service, &Transport::Eml)).expect("a pass");

    assert_eq!(store.flushes() - before, 2, "one flush for the five leases, one for the five outcomes");
    assert_eq!(next, None, "nothing is left queued");
    for i in 0..5 {
        let m = store.message(&format!("m{i}")).expect("stored");
        assert_eq!((m.status, m.attempts), (MessageStatus::Sent, 1), "m{i}");
        let eml = countersign::mail::eml_path(&dir.path().join("outbox"), &m);
        let text = std::fs::read_to_string(&eml).expect("the .eml copy");
        assert!(text.contains(&format!("Message-ID: <m{i}@countersign.test>")), "m{i}'s copy: {text}");
    }
}

#[test]
fn a_queued_message_whose_body_cannot_be_read_is_tried_again_a_second_later_not_at_once() {
    use countersign::app::sender::{Transport, deliver_due};
    use countersign::store::MessageStatus;
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SledStore::open(dir.path()).expect("open");
        let queued = vec![message("m1", "ag1", MessageStatus::Queued)];
        store.commit(Change { messages: queued, ..Change::default() }).expect("queue");
    }
    {
        // Its head still reads (id, status, times); its body no longer does (text is a number).
        // (The store just closed: sled's lock may outlive it for a moment.)
        let db = crate::helpers::sled_open_when_free(&dir.path().join("sled"));
        let outbox = db.open_tree("outbox").expect("outbox");
        let mut v: serde_json::Value =
            serde_json::from_slice(&outbox.get("m1").expect("get").expect("m1")).expect("json");
        v["text"] = serde_json::json!(5);
        outbox.insert("m1", serde_json::to_vec(&v).expect("json")).expect("insert");
        db.flush().expect("flush");
    }
    let store = Arc::new(crate::helpers::sled_store_when_free(dir.path()).expect("open"));
    assert_eq!(store.queued_heads().expect("heads").len(), 1, "the head reads");
    // (With the `.eml` outbox on, the service's start-up flush would refuse the unreadable
    // message and the service would not open; the pass below is given the transport itself.)
    let config = countersign::config::Config {
        data_dir: dir.path().to_path_buf(),
        public_base_url: Some("http://127.0.0.1:9".into()),
        eml_outbox: false,
        ..countersign::config::Config::default()
    };
    let clock: Arc<dyn countersign::clock::Clock> = Arc::new(countersign::clock::ManualClock::at(T0));
    let service = Arc::new(countersign::app::open_on(config, store.clone(), clock).expect("service"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let next = runtime.block_on(deliver_due(&service, &Transport::Eml)).expect("a pass");
    assert_eq!(next, Some(T0 + 1), "the next pass for it comes a second on, not at once");
    assert!(store.message("m1").is_err(), "its body still cannot be read");
}
