//! The two stores: the same contract scenarios on sled and on PostgreSQL, two instances on one
//! database, and `migrate` from a sled directory to PostgreSQL and back.

use std::collections::BTreeSet;
use std::sync::Arc;

use countersign::clock::ManualClock;
use countersign::config::Config;
use countersign::domain::agreement::{Agreement, Summary};
use countersign::store::people::{InviteRecord, NewSecurityEvent, PersonRecord, SessionRecord, verify_security_log};
use countersign::store::postgres::PgStore;
use countersign::store::sled_store::SledStore;
use countersign::store::webhooks::{Delivery, DeliveryStatus, Endpoint};
use countersign::store::{ApiKeyRecord, Change, Message, MessageStatus, NewEvent, Store, StoreError};
use serde_json::json;

use crate::app::*;
use crate::helpers::*;
use crate::smtp::{SmtpServer, eventually};

fn agreement(id: &str, revision: u64) -> Agreement {
    serde_json::from_value(json!({
        "id": id, "kind": "baa", "title": "Conformance", "upstream_name": "Up", "downstream_name": "Down",
        "status": "draft", "version": 1, "document_sha256": "", "check_passes": true, "created_at": 1,
        "updated_at": 1, "created_by": "test", "sent_at": null, "sent_by": null, "sent_sha256": null,
        "executed_at": null, "final_sha256": null, "void_reason": null, "signers": [], "revision": revision
    }))
    .expect("an agreement")
}

fn event(id: &str, kind: &str) -> NewEvent {
    NewEvent {
        agreement_id: id.into(),
        kind: kind.into(),
        at: 10,
        actor: "test".into(),
        ip: "127.0.0.1".into(),
        user_agent: String::new(),
        document_sha256: String::new(),
        detail: json!({}),
    }
}

fn message(id: &str, agreement: &str) -> Message {
    Message {
        id: id.into(),
        agreement_id: agreement.into(),
        kind: "link".into(),
        to_name: "Priya".into(),
        to: "priya@northwind.example".into(),
        subject: "Please sign".into(),
        text: "text".into(),
        html: None,
        message_id: format!("{id}@test"),
        created_at: 1,
        status: MessageStatus::Queued,
        attempts: 0,
        last_error: None,
        sent_at: None,
        signer_id: None,
        reply_to: None,
        next_attempt_at: None,
        last_attempt_at: None,
        reply: None,
    }
}

fn delivery(id: &str) -> Delivery {
    Delivery {
        id: id.into(),
        endpoint_id: "wh_1".into(),
        event_id: "evt_1".into(),
        event_type: "agreement.created".into(),
        agreement_id: Some("a1".into()),
        body: "{}".into(),
        created_at: 1,
        status: DeliveryStatus::Queued,
        attempts: 0,
        response_code: None,
        last_error: None,
        next_attempt_at: None,
        last_attempt_at: None,
        delivered_at: None,
    }
}

/// The store contract, the same on every backend.
fn contract(store: Arc<dyn Store>) {
    let doc = b"%PDF-1.7 conformance".to_vec();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&doc));
    // A new agreement with its document, two events, a message and a webhook delivery: one commit.
    let change = Change {
        agreement: Some(agreement("a1", 1)),
        documents: vec![doc.clone()],
        events: vec![event("a1", "created"), event("a1", "sent")],
        messages: vec![message("m1", "a1")],
        webhooks: vec![delivery("wd_1")],
        ..Default::default()
    };
    let sealed = store.commit(change).expect("the first commit");
    assert_eq!(sealed.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(store.agreement("a1").expect("stored").revision, 1);
    assert_eq!(store.document(&sha).expect("document"), doc);
    assert!(matches!(store.document(&"0".repeat(64)), Err(StoreError::NotFound)));
    assert_eq!(store.events("a1").expect("events").len(), 2);

    // The revision check: a second "new" agreement and a skipped revision are conflicts, and
    // nothing of a refused change lands.
    let dup = Change { agreement: Some(agreement("a1", 1)), events: vec![event("a1", "x")], ..Default::default() };
    assert!(matches!(store.commit(dup), Err(StoreError::Conflict)));
    let skip = Change { agreement: Some(agreement("a1", 3)), events: vec![event("a1", "x")], ..Default::default() };
    assert!(matches!(store.commit(skip), Err(StoreError::Conflict)));
    assert_eq!(store.events("a1").expect("events").len(), 2, "a refused change writes nothing");
    let next =
        Change { agreement: Some(agreement("a1", 2)), events: vec![event("a1", "voided")], ..Default::default() };
    assert_eq!(store.commit(next).expect("revision 2")[0].seq, 3);

    // Concurrent appends to one chain never fork it.
    std::thread::scope(|s| {
        for _ in 0..4 {
            let store = store.clone();
            s.spawn(move || {
                for _ in 0..5 {
                    let c = Change { events: vec![event("a1", "downloaded")], ..Default::default() };
                    store.commit(c).expect("append");
                }
            });
        }
    });
    let seqs: Vec<u64> = store.events("a1").expect("events").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=23).collect::<Vec<u64>>());
    assert_eq!(countersign::app::verify_chains(store.as_ref()), Ok((1, 23)));

    // The start-up scan: each agreement once, as its summary, the same as the stored record's.
    let other =
        Change { agreement: Some(agreement("a2", 1)), events: vec![event("a2", "created")], ..Default::default() };
    store.commit(other).expect("a second agreement");
    let mut summaries = Vec::new();
    store.agreement_summaries(&mut |s| summaries.push(s)).expect("the scan");
    summaries.sort_by(|a, b| a.id.cmp(&b.id));
    let stored: Vec<Summary> =
        ["a1", "a2"].iter().map(|id| Summary::from(&store.agreement(id).expect("stored"))).collect();
    assert_eq!(summaries, stored);
    assert_eq!(summaries[0].status, countersign::domain::agreement::Status::Draft);
    // A page's summaries, read by id: in the order asked, None for an id no agreement has.
    let asked = ["a2", "nope", "a1", "a2"].map(String::from);
    let got = store.summaries(&asked).expect("the summaries");
    let want = vec![Some(stored[1].clone()), None, Some(stored[0].clone()), Some(stored[1].clone())];
    assert_eq!(got, want);
    assert_eq!(store.summaries(&[]).expect("none asked"), Vec::<Option<Summary>>::new());

    // Several changes in one commit (concurrent writers combined), each with its own revision
    // check: a second change to one agreement follows the first, a stale change is refused
    // alone and writes nothing, and one ticket makes them all durable.
    let batch = vec![
        Change { agreement: Some(agreement("b1", 1)), events: vec![event("b1", "created")], ..Default::default() },
        Change { agreement: Some(agreement("a2", 1)), events: vec![event("a2", "stale")], ..Default::default() },
        Change {
            agreement: Some(agreement("b1", 2)),
            events: vec![event("b1", "sent"), event("b1", "opened")],
            ..Default::default()
        },
    ];
    let (results, ticket) = store.commit_all_nowait(batch);
    store.sync(ticket).expect("durable");
    let seqs: Vec<Option<Vec<u64>>> =
        results.iter().map(|r| r.as_ref().ok().map(|evs| evs.iter().map(|e| e.seq).collect())).collect();
    assert_eq!(seqs, [Some(vec![1]), None, Some(vec![2, 3])]);
    assert!(matches!(results[1], Err(StoreError::Conflict)), "{:?}", results[1]);
    assert_eq!(store.agreement("b1").expect("b1").revision, 2);
    assert_eq!(store.agreement("a2").expect("a2").revision, 1);
    assert_eq!(store.events("a2").expect("events").len(), 1, "the stale change wrote nothing");
    assert_eq!(countersign::app::verify_chains(store.as_ref()), Ok((3, 27)));

    // The outbox and its lease; the sender's view of the queue is the queued messages' heads.
    let queued = store.queued_messages().expect("queue");
    assert_eq!(queued.len(), 1);
    assert_eq!(
        store.queued_heads().expect("heads"),
        queued.iter().map(countersign::store::QueuedHead::of).collect::<Vec<_>>()
    );
    let leased = store
        .lease_message("m1", &mut |mut m| {
            m.attempts += 1;
            m.next_attempt_at = Some(100);
            Ok(Some(m))
        })
        .expect("lease");
    assert_eq!(leased.map(|m| m.attempts), Some(1));
    assert_eq!(store.lease_message("m1", &mut |_| Ok(None)).expect("nothing to do"), None);
    let mut m = store.message("m1").expect("message");
    assert_eq!(m.attempts, 1);
    m.status = MessageStatus::Sent;
    store.put_message(&m).expect("sent");
    assert!(store.queued_messages().expect("queue").is_empty());
    assert!(store.queued_heads().expect("heads").is_empty());
    assert_eq!(store.agreement_messages("a1").expect("messages"), vec![m.clone()]);

    // The sender's batch: one lease for several messages (an unknown id left out, a message the
    // lease declines left as it was), then their outcomes in one write; durable once synced.
    let batch = Change { messages: vec![message("m2", "a1"), message("m3", "a1")], ..Default::default() };
    store.commit(batch).expect("two more messages");
    let ids: Vec<String> = ["m2", "gone", "m3", "m1"].map(String::from).to_vec();
    let (leased, ticket) = store
        .lease_messages_nowait(&ids, &mut |mut m| {
            if m.status != MessageStatus::Queued {
                return Ok(None);
            }
            m.attempts += 1;
            Ok(Some(m))
        })
        .expect("batch lease");
    store.sync(ticket).expect("durable");
    assert_eq!(leased.iter().map(|m| (m.id.as_str(), m.attempts)).collect::<Vec<_>>(), [("m2", 1), ("m3", 1)]);
    assert_eq!(store.message("m3").expect("m3").attempts, 1);
    assert_eq!(store.message("m1").expect("m1"), m);
    let sent: Vec<Message> = leased.into_iter().map(|m| Message { status: MessageStatus::Sent, ..m }).collect();
    let ticket = store.put_messages_nowait(&sent).expect("outcomes");
    store.sync(ticket).expect("durable");
    assert!(store.queued_messages().expect("queue").is_empty());
    assert_eq!(store.agreement_messages("a1").expect("messages").len(), 3);

    // API keys: the last use is kept apart from the record.
    let key = ApiKeyRecord {
        id: "k1".into(),
        name: "ci".into(),
        role: "admin".into(),
        hash: "h".into(),
        created_at: 1,
        created_by: "t".into(),
        expires_at: None,
        revoked_at: None,
        last_used: None,
    };
    store.put_api_key(&key).expect("key");
    store.touch_api_key("k1", 42).expect("touch");
    assert_eq!(store.api_keys().expect("keys")[0].last_used, Some(42));

    // People: an invitation works once; sessions end per person; the security log chains.
    let people = store.people();
    let inv = InviteRecord { hash: "ih".into(), person_id: None, created_at: 1, expires_at: 9, used_at: Some(2) };
    let p = PersonRecord {
        id: "p1".into(),
        email: "a@example.com".into(),
        name: "A".into(),
        role: "admin".into(),
        password_hash: None,
        created_at: 1,
        created_by: "setup".into(),
        disabled_at: None,
        invite_hash: None,
        totp: None,
        reset: None,
    };
    people.accept_invite(&inv, &p).expect("first acceptance");
    assert!(matches!(people.accept_invite(&inv, &p), Err(StoreError::Conflict)));
    for h in ["s1", "s2"] {
        let s = SessionRecord {
            hash: h.into(),
            person_id: "p1".into(),
            created_at: 1,
            last_seen: 1,
            csrf: "c".into(),
            ip: String::new(),
        };
        people.put_session(&s).expect("session");
    }
    assert_eq!(people.delete_sessions_of("p1").expect("ended"), 2);
    assert!(matches!(people.session("s1"), Err(StoreError::NotFound)));
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..4 {
                    people
                        .append_security(NewSecurityEvent { action: "signed_in".into(), ..Default::default() })
                        .expect("log");
                }
            });
        }
    });
    assert_eq!(verify_security_log(&people.security_log().expect("log")), Ok(12));

    // Webhooks: the delivery the commit queued, its lease, and an endpoint removed with its log.
    let hooks = store.webhooks();
    let endpoint = Endpoint {
        id: "wh_1".into(),
        url: "https://example.com/hook".into(),
        events: vec!["*".into()],
        local: false,
        secret_sealed: String::new(),
        description: String::new(),
        created_at: 1,
        created_by: "t".into(),
    };
    hooks.put_endpoint(&endpoint).expect("endpoint");
    assert_eq!(hooks.queued_deliveries().expect("queue").len(), 1);
    let d = hooks
        .lease_delivery("wd_1", &mut |mut d| {
            d.status = DeliveryStatus::Delivered;
            Ok(Some(d))
        })
        .expect("lease");
    assert_eq!(d.map(|d| d.status), Some(DeliveryStatus::Delivered));
    assert!(hooks.queued_deliveries().expect("queue").is_empty());
    assert_eq!(hooks.endpoint_deliveries("wh_1").expect("log").len(), 1);
    hooks.delete_endpoint("wh_1").expect("removed");
    assert!(hooks.endpoint_deliveries("wh_1").expect("log").is_empty());
    assert!(matches!(hooks.delete_endpoint("wh_1"), Err(StoreError::NotFound)));

    // A backup lists every record.
    let mut out = Vec::new();
    let n = store.dump(&mut out).expect("dump");
    assert!(n > 30, "{n} lines");
}

#[test]
fn the_sled_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    contract(Arc::new(SledStore::open(dir.path()).expect("sled")));
}

#[test]
fn the_postgres_store_keeps_the_same_contract_and_finds_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::pg::database();
    let store = Arc::new(PgStore::open(&url, dir.path()).expect("postgres"));
    assert_eq!(store.backend(), "postgres");
    store.ping().expect("the database answers");
    contract(store.clone());
    // `audit verify` on PostgreSQL names a changed event.
    let mut ev = store.events("a1").expect("events")[4].clone();
    ev.actor = "someone else".into();
    store.tamper_event("a1", 5, &serde_json::to_vec(&ev).expect("json")).expect("tampered");
    let err = countersign::app::verify_chains(store.as_ref()).expect_err("the change shows");
    assert!(err.to_string().contains("event #5"), "{err}");
    // A second open of a migrated database changes nothing.
    assert_eq!(PgStore::open(&url, dir.path()).expect("reopens").migration().from, 1);
}

#[test]
fn on_postgres_a_change_that_fails_midway_through_a_combined_batch_leaves_nothing_and_the_others_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PgStore::open(&crate::pg::database(), dir.path()).expect("postgres");
    let created = |id: &str| Change {
        agreement: Some(agreement(id, 1)),
        events: vec![event(id, "created")],
        ..Default::default()
    };
    store.commit(created("c1")).expect("c1");
    // The first change fails at its outbox row (PostgreSQL's text holds no NUL), after its
    // agreement, event and chain head were written; the second appends to the same chain.
    let bad = Change {
        agreement: Some(agreement("c1", 2)),
        events: vec![event("c1", "sent")],
        messages: vec![message("bad\0id", "c1")],
        ..Default::default()
    };
    let good = Change {
        agreement: Some(agreement("c1", 2)),
        events: vec![event("c1", "sent"), event("c1", "opened")],
        messages: vec![message("m-good", "c1")],
        ..Default::default()
    };
    let (results, _) = store.commit_all_nowait(vec![bad, good, created("c2")]);
    assert!(results[0].is_err(), "{:?}", results[0]);
    let seqs: Vec<Option<Vec<u64>>> =
        results.iter().map(|r| r.as_ref().ok().map(|evs| evs.iter().map(|e| e.seq).collect())).collect();
    assert_eq!(seqs, [None, Some(vec![2, 3]), Some(vec![1])]);
    let kinds: Vec<String> = store.events("c1").expect("events").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["created", "sent", "opened"], "nothing of the failed change is left");
    assert_eq!(store.agreement("c1").expect("c1").revision, 2);
    let ids: Vec<String> = store.messages().expect("outbox").into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["m-good"]);
    assert_eq!(countersign::app::verify_chains(&store), Ok((2, 4)));

    // A batch longer than one transaction's share, half of it stale: every fresh change lands,
    // every stale one is refused alone, and the chains stay whole.
    let batch: Vec<Change> = (0..150)
        .map(|i| match i % 2 {
            0 => created(&format!("d{i:03}")),
            _ => {
                Change { agreement: Some(agreement("c2", 1)), events: vec![event("c2", "stale")], ..Default::default() }
            }
        })
        .collect();
    let (results, _) = store.commit_all_nowait(batch);
    assert_eq!(results.len(), 150);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i % 2 == 0, "change {i}: {r:?}");
    }
    assert_eq!(countersign::app::verify_chains(&store), Ok((77, 79)));
}

fn parallel_intake() -> String {
    let mut v = example_json(BAA);
    v["signers"][1]["order"] = json!(1);
    v.to_string()
}

#[test]
fn two_instances_on_one_database_share_agreements_and_send_every_message_once() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::pg::database();
    let config = |c: &mut Config| {
        c.database_url = Some(url.clone().into());
        crate::mail::with_smtp(smtp.port)(c);
    };
    let a = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", config);
    let b = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", config);

    for app in [&a, &b] {
        let h = app.get_anon("/healthz");
        assert_eq!((h.status, h.text()), (200, "ok (postgres)".to_string()));
    }

    // Created and sent on A; B's search index learns of each within moments.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = a.create(&parallel_intake())["id"].as_str().expect("id").to_string();
        let r = a.post(&format!("/api/v1/agreements/{id}/send"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(id);
    }
    eventually(10, "B's search lists the agreements A created", || {
        let listed = b.get("/api/v1/agreements?limit=200").json();
        let found: BTreeSet<String> = listed["items"]
            .as_array()
            .map(|v| v.iter().filter_map(|e| e["id"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        ids.iter().all(|id| found.contains(id))
    });

    // Both signers of each agreement sign at the same moment, one through each instance.
    eventually(20, "every invitation is mailed", || a.links_for("zoe@lakeside.example", "/sign/").len() >= 3);
    let zoe = a.links_for("zoe@lakeside.example", "/sign/");
    let priya = a.links_for("priya@northwind.example", "/sign/");
    assert_eq!((zoe.len(), priya.len()), (3, 3), "one invitation per signer and agreement");
    let through = |app: &TestApp, link: &str| format!("{}{}", app.base, &link[link.find("/sign/").expect("path")..]);
    let sign = |app: &TestApp, link: String, name: &str| {
        // A lost race between the instances is a 409: the signer tries again.
        for _ in 0..10 {
            let (status, html, csrf) = app.open(&link);
            if status == 409 {
                continue;
            }
            assert_eq!(status, 200, "{html}");
            let fields = [
                ("action", "sign"),
                ("consent", "yes"),
                ("typed_name", name),
                ("typed_title", "Signer"),
                ("csrf", csrf.as_str()),
            ];
            let r = app.form(&link, &fields);
            if r.status == 200 {
                return;
            }
            assert_eq!(r.status, 409, "{}", r.text());
        }
        panic!("{name} could not sign");
    };
    std::thread::scope(|s| {
        for (z, p) in zoe.iter().zip(&priya) {
            let (za, pb) = (through(&a, z), through(&b, p));
            s.spawn(|| sign(&a, za, "Zoë Ångström"));
            s.spawn(|| sign(&b, pb, "Priya Raman"));
        }
    });
    for id in &ids {
        assert_eq!(b.get(&format!("/api/v1/agreements/{id}")).json()["status"], "executed", "{id}");
    }

    // Every message the outbox holds is sent, and the SMTP server got each exactly once.
    let store = PgStore::open(&url, dir.path()).expect("a third look at the database");
    eventually(30, "every message is sent", || {
        store.messages().expect("outbox").iter().all(|m| m.status == MessageStatus::Sent)
    });
    let sent = store.messages().expect("outbox");
    let received = smtp.wait_for(sent.len(), 10);
    let ids_received: Vec<String> = received.iter().filter_map(|m| m.header("Message-ID")).collect();
    let unique: BTreeSet<&String> = ids_received.iter().collect();
    assert_eq!(unique.len(), ids_received.len(), "a message was sent twice: {ids_received:?}");
    assert_eq!(ids_received.len(), sent.len(), "every message once");
    // Completion mail to both parties of each agreement is among them.
    assert!(sent.iter().filter(|m| m.kind == "completion").count() >= 3);
    assert_eq!(countersign::app::verify_chains(&store).map(|(chains, _)| chains), Ok(3));
    a.stop();
    b.stop();
}

/// (id, status, title) of every agreement a search lists.
fn listing(app: &TestApp, query: &str) -> Vec<(String, String, String)> {
    let v = app.get(&format!("/api/v1/agreements?{query}")).json();
    let mut out: Vec<(String, String, String)> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("status"), s("title"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn migrate_moves_an_archive_from_sled_to_postgres_and_back_with_identical_results() {
    let source = tempfile::tempdir().expect("tempdir");
    let sled_only = |c: &mut Config| c.database_url = None;
    let app = spawn_app_with(source.path(), ManualClock::at(T0), "127.0.0.1:0", sled_only);
    let mut finals = Vec::new();
    for _ in 0..2 {
        let id = app.create(&parallel_intake())["id"].as_str().expect("id").to_string();
        assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
        let zoe = app.links_for("zoe@lakeside.example", "/sign/").pop().expect("link");
        let priya = app.links_for("priya@northwind.example", "/sign/").pop().expect("link");
        assert_eq!(app.sign(&zoe, "Zoë Ångström", "CCO").status, 200);
        assert_eq!(app.sign(&priya, "Priya Raman", "VP").status, 200);
        let a = app.get(&format!("/api/v1/agreements/{id}")).json();
        assert_eq!(a["status"], "executed");
        finals.push((id, a["final_sha256"].as_str().expect("sealed").to_string()));
    }
    app.create(&example_text(DUA));
    let queries = ["limit=100", "status=executed", "q=Northwind", "kind=dua"];
    let before: Vec<_> = queries.iter().map(|q| listing(&app, q)).collect();
    app.stop();

    // To PostgreSQL: everything, checked on the target.
    let url = crate::pg::database();
    let from = source.path().to_str().expect("utf-8 path");
    let m = countersign::cli::db::migrate(from, &url, None).expect("migrated");
    assert!(m.documents >= 6 && m.chains == 3, "{m:?}");
    let again = countersign::cli::db::migrate(from, &url, None).expect_err("a non-empty target is refused");
    assert!(again.contains("not empty"), "{again}");

    // The same archive, served from PostgreSQL: the same search results, the same sealed bytes.
    let on_pg = |c: &mut Config| c.database_url = Some(url.clone().into());
    let app = spawn_app_with(source.path(), ManualClock::at(T0), "127.0.0.1:0", on_pg);
    let after: Vec<_> = queries.iter().map(|q| listing(&app, q)).collect();
    assert_eq!(after, before);
    for (id, sha) in &finals {
        let doc = app.get(&format!("/api/v1/agreements/{id}/document"));
        assert_eq!(doc.header("x-document-sha256"), Some(sha.as_str()));
        assert_eq!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&doc.body)), *sha);
    }
    let verify = app.get("/api/v1/audit/verify");
    assert_eq!(verify.status, 200, "{}", verify.text());
    app.stop();

    // And back, into a new data directory (the key files copied from the source's).
    let back = tempfile::tempdir().expect("tempdir");
    let to = back.path().join("data");
    let m2 = countersign::cli::db::migrate(&url, to.to_str().expect("utf-8"), Some(source.path())).expect("back");
    // The downloads on PostgreSQL added one `downloaded` event per executed agreement.
    assert_eq!((m2.documents, m2.chains, m2.events), (m.documents, m.chains, m.events + finals.len()));
    let refused = countersign::cli::db::migrate(&url, to.to_str().expect("utf-8"), Some(source.path()));
    assert!(refused.expect_err("a non-empty directory is refused").contains("not empty"));
    let app = spawn_app_with(&to, ManualClock::at(T0), "127.0.0.1:0", sled_only);
    let round: Vec<_> = queries.iter().map(|q| listing(&app, q)).collect();
    assert_eq!(round, before);
    app.stop();
}

/// `audit verify` on PostgreSQL reads every chain, head and agreement in one snapshot: while an
/// instance keeps creating and sending agreements (appending events and moving heads), every
/// verification finds the trail intact — a chain appended to between two reads never looks cut.
#[test]
fn on_postgres_audit_verify_never_reports_a_break_while_an_instance_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::pg::database();
    let db = url.clone();
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", move |c| {
        c.database_url = Some(db.into());
    });
    let store = PgStore::open(&url, dir.path()).expect("the database opens");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (verified, last) = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..12 {
                let id = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
                let r = app.post(&format!("/api/v1/agreements/{id}/send"), "");
                assert_eq!(r.status, 200, "{}", r.text());
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut verified = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            if let Err(e) = countersign::app::verify_chains(&store) {
                panic!("a false break while appending, after {verified} clean runs: {e}");
            }
            verified += 1;
        }
        (verified, countersign::app::verify_chains(&store))
    });
    assert!(verified >= 1);
    let ids: Vec<String> = app.get("/api/v1/agreements?limit=100").json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 12);
    let events: usize = ids
        .iter()
        .map(|id| app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(last, Ok((12, events)), "every chain, every event");
    app.stop();
}

/// Ends every other connection to `url`'s database from a separate connection (what a
/// failover, a restarted pooler or an operator's `pg_terminate_backend` does to a server's
/// pool); returns how many were ended.
fn terminate_other_connections(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).expect("a separate connection");
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
        .expect("terminated")
        .get(0);
    n
}

/// PostgreSQL: every connection of the server's pool ended underneath it (idle ones included)
/// before each step: each action runs again on a fresh connection (it had committed nothing)
/// and succeeds, and the audit trail holds every step exactly once.
#[test]
fn on_postgres_actions_after_the_pools_connections_were_terminated_succeed_on_fresh_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::pg::database();
    let db = url.clone();
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", move |c| {
        c.database_url = Some(db.into());
    });
    // The pool holds connections now (and the change listener its own).
    assert_eq!(app.get("/api/v1/agreements?limit=10").status, 200);
    assert!(terminate_other_connections(&url) >= 1, "the server's connections were ended");
    let id = app.create(&parallel_intake())["id"].as_str().expect("created").to_string();
    assert!(terminate_other_connections(&url) >= 1);
    let sent = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(sent.status, 200, "{}", sent.text());
    let zoe = app.links_for("zoe@lakeside.example", "/sign/").pop().expect("link");
    let priya = app.links_for("priya@northwind.example", "/sign/").pop().expect("link");
    assert!(terminate_other_connections(&url) >= 1);
    assert_eq!(app.sign(&zoe, "Zoë Ångström", "CCO").status, 200);
    assert!(terminate_other_connections(&url) >= 1);
    assert_eq!(app.sign(&priya, "Priya Raman", "VP").status, 200);
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["status"], "executed");
    let kinds: Vec<String> = app.get(&format!("/api/v1/agreements/{id}/audit")).json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "created").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "signed").count(), 2, "{kinds:?}");
    let verify = app.get("/api/v1/audit/verify").json();
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["chains"], 1);
    app.stop();
}

/// A restore into PostgreSQL is one transaction: a backup that goes bad after thousands of
/// good lines leaves the database empty, as before.
#[test]
fn a_postgres_restore_that_fails_midway_leaves_the_database_empty() {
    let source = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(source.path()).expect("sled");
    for i in 0..300 {
        let id = format!("r{i:04}");
        store
            .commit(Change {
                agreement: Some(agreement(&id, 1)),
                events: vec![event(&id, "created")],
                ..Change::default()
            })
            .expect("committed");
    }
    let mut backup = Vec::new();
    let lines = store.dump(&mut backup).expect("dump");
    assert!(lines > 600, "{lines}");
    backup.extend_from_slice(b"{\"tree\":\"agreements\",\"key\":\"not base64!\",\"value\":\"\"}\n");
    let pg = PgStore::open(&crate::pg::database(), source.path()).expect("postgres");
    let err = pg.restore(&backup[..]).expect_err("the bad line refuses the backup");
    assert!(err.to_string().contains(&format!("backup line {}: bad key", lines + 1)), "{err}");
    assert!(pg.is_empty().expect("read"), "nothing of the good lines stayed");
}

/// An API key change and its security-log entry are one commit on either store: created and
/// revoked keys each have exactly one entry, and the log's chain verifies.
#[test]
fn on_both_stores_an_api_key_change_is_stored_with_its_security_log_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(SledStore::open(&dir.path().join("sled")).expect("sled")),
        Arc::new(PgStore::open(&crate::pg::database(), &dir.path().join("keys")).expect("postgres")),
    ];
    for store in stores {
        let role = countersign::staff::Role::Sales;
        let (_, k) =
            countersign::staff::create(store.as_ref(), "ops", role, None, "ann@example.com", "", 10).expect("created");
        countersign::staff::revoke(store.as_ref(), &k.id, 20, "ann@example.com", "").expect("revoked");
        let log = store.people().security_log().expect("log");
        let actions: Vec<&str> = log.iter().filter(|e| e.detail.contains(&k.id)).map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["api_key_created", "api_key_revoked"], "{}", store.backend());
        assert!(verify_security_log(&log).is_ok());
        let stored = store.api_keys().expect("keys").into_iter().find(|x| x.id == k.id).expect("stored");
        assert_eq!(stored.revoked_at, Some(20));
    }
}
