//! Email delivery against a real SMTP server on loopback (the in-process server of `smtp.rs`,
//! spoken to by lettre over TCP), and the reminder schedule driven by a manual clock.
//!
//! No test sleeps for a fixed time: time-based behaviour (backoff, reminders) moves with
//! `ManualClock`, and the few waits for the sender task poll with a deadline.

use std::path::Path;

use countersign::app::service::{Actor, SignForm};
use countersign::clock::ManualClock;
use countersign::config::Config;
use countersign::config::mail::{SmtpSettings, TlsMode};
use countersign::http::AppState;
use countersign::store::{Message, MessageStatus};
use serde_json::Value;

use crate::app::*;
use crate::helpers::*;
use crate::smtp::*;

const DAY: u64 = 86_400;

/// SMTP on `port` (no TLS), a fast poll, and a short retry schedule in clock seconds.
pub(crate) fn with_smtp(port: u16) -> impl FnOnce(&mut Config) {
    move |c| {
        c.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            username: None,
            password: None,
            from: Some("Countersign <countersign@sign.example.com>".into()),
            reply_to: Some("legal@lakeside.example".into()),
            timeout_secs: 5,
            ca_file: None,
        });
        c.delivery.poll_ms = 25;
        c.delivery.backoff_initial_secs = 60;
        c.delivery.backoff_max_secs = 600;
        c.delivery.max_attempts = 3;
        c.delivery.jitter = 0.0;
        c.staff_notice_to = Some("contracts@lakeside.example".into());
    }
}

fn admin() -> Actor {
    Actor { who: "admin:test".into(), ip: "127.0.0.1".into(), user_agent: "test".into(), own_only: false }
}

fn send(app: &TestApp, intake: &str) -> String {
    let id = app.create(intake)["id"].as_str().expect("id").to_string();
    let r = app.post(&format!("/api/v1/agreements/{id}/send"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    id
}

/// The agreement's messages as the API shows them.
fn messages(app: &TestApp, id: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/agreements/{id}")).json()["messages"].as_array().expect("messages").clone()
}

fn message(app: &TestApp, id: &str, kind: &str) -> Value {
    messages(app, id).into_iter().find(|m| m["kind"] == kind).unwrap_or_else(|| panic!("no {kind} message"))
}

/// The first link to `/<kind>/` in a text.
fn link_in(text: &str, kind: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(kind))
        .unwrap_or_else(|| panic!("no {kind} link in:\n{text}"))
        .to_string()
}

fn token_of(m: &Message) -> String {
    link_in(&m.text, "/sign/").rsplit('/').next().expect("token").to_string()
}

#[test]
fn with_an_smtp_configuration_that_cannot_start_a_signatures_mail_stays_queued_and_still_gets_its_eml_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    // STARTTLS with a private CA file that exists (the configuration is accepted) but is a
    // directory, so it cannot be read: the transport fails at start.
    let ca = dir.path().join("not-a-ca");
    std::fs::create_dir(&ca).expect("a directory");
    let data = dir.path().join("data");
    let app = spawn_app_with(&data, ManualClock::at(T0), "127.0.0.1:0", |c| {
        with_smtp(9)(c);
        let smtp = c.smtp.as_mut().expect("smtp");
        smtp.tls = TlsMode::Starttls;
        smtp.ca_file = Some(ca.clone());
    });
    let id = send(&app, &example_text(BAA));
    let first = app.sign_link("priya@northwind.example");
    assert_eq!(app.sign(&first, "Priya Raman", "VP, Legal").status, 200);

    // The signature's answer does not write the next signer's copy; the sender's pass does,
    // though nothing can deliver the message: after two passes it is still unattempted.
    app.sender_passes(2);
    let invitation = messages(&app, &id)
        .into_iter()
        .filter(|m| m["kind"] == "link")
        .find(|m| m["to"] != "priya@northwind.example")
        .expect("the next signer's invitation");
    assert_eq!(invitation["status"], "queued", "{invitation}");
    assert_eq!(invitation["attempts"], 0, "never attempted: {invitation}");
    assert_eq!(invitation["last_error"], Value::Null, "{invitation}");
    let to = invitation["to"].as_str().expect("to").to_string();
    assert!(!app.links_for(&to, "/sign/").is_empty(), "the invitation's .eml copy for {to}");
}

#[test]
fn the_link_email_arrives_by_smtp_as_mime_with_both_alternatives_and_opens_the_signer_page() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", with_smtp(smtp.port));
    let id = send(&app, &example_text(BAA));

    let got = smtp.wait_for(1, 10);
    assert_eq!(got.len(), 1, "only the first signing order is invited");
    let mail = &got[0];
    assert_eq!(mail.to, ["priya@northwind.example"]);
    assert_eq!(mail.from, "countersign@sign.example.com");
    let parsed = mail.parsed();
    assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
    let kinds: Vec<&str> = parsed.subparts.iter().map(|p| p.ctype.mimetype.as_str()).collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    let text = plain_part(&parsed).expect("text part");
    let html = html_part(&parsed).expect("html part");
    for needle in ["Business Associate Agreement", "Lakeside Family Clinic, P.C.", "Northwind Patient Messaging, Inc."]
    {
        assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
    }
    assert!(text.contains("expires on January 18, 2027"), "the expiry date (14 days):\n{text}");
    assert!(text.contains("Priya Raman") && text.contains("VP, Legal"), "{text}");
    let link = link_in(&text, "/sign/");
    assert!(html.contains(&format!("href=\"{link}\"")), "the HTML alternative carries the same link");
    assert!(html.contains("Lakeside Family Clinic, P.C."));
    assert_eq!(mail.header("Reply-To").as_deref(), Some("legal@lakeside.example"));

    // The link opens the signer page.
    let (status, page, _) = app.open(&link);
    assert_eq!(status, 200);
    assert!(page.contains("Northwind Patient Messaging, Inc."));

    // Staff see it delivered, with the server's reply and the same stable Message-ID.
    let mut m = Value::Null;
    eventually(10, "the API shows the message sent", || {
        m = message(&app, &id, "link");
        m["status"] == "sent"
    });
    assert_eq!(m["attempts"], 1);
    assert!(m["reply"].as_str().is_some_and(|r| r.starts_with("250") && r.contains("queued as TEST1")), "{m}");
    assert_eq!(mail.header("Message-ID"), Some(format!("<{}>", m["message_id"].as_str().expect("message_id"))));
    assert_eq!(m["signer"], "s1");

    // The .eml copy is kept and is byte for byte the MIME that went over SMTP.
    let eml = std::fs::read(dir.path().join("outbox").join(format!("{}.eml", m["id"].as_str().expect("id"))))
        .expect("the .eml copy is kept with SMTP configured");
    assert_eq!(eml.trim_ascii_end(), mail.data.trim_ascii_end());
}

#[test]
fn a_server_that_refuses_then_accepts_delivers_exactly_once_after_the_backoff() {
    let smtp = SmtpServer::start();
    smtp.refuse_next(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", with_smtp(smtp.port));
    let id = send(&app, &example_text(DUA));

    let mut m = Value::Null;
    eventually(10, "a failed first attempt", || {
        m = message(&app, &id, "link");
        m["attempts"] == 1 && m["last_error"].is_string()
    });
    assert_eq!(m["status"], "queued", "a 451 is transient: {m}");
    assert!(m["last_error"].as_str().is_some_and(|e| e.contains("451")), "{m}");
    assert_eq!(m["next_attempt_at"], "2027-01-04T12:01:00Z", "backoff 60 s (jitter only shortens it): {m}");
    assert_eq!(smtp.refused(), 1);
    assert!(smtp.messages().is_empty());

    // Not before the backoff is over (the sender looks every 25 ms; give it a few looks)…
    app.clock.advance(30);
    app.sender_passes(2);
    assert_eq!(message(&app, &id, "link")["attempts"], 1);
    // …then exactly once.
    app.clock.advance(31);
    let got = smtp.wait_for(1, 10);
    eventually(10, "the API shows it sent", || message(&app, &id, "link")["status"] == "sent");
    let m = message(&app, &id, "link");
    assert_eq!(m["attempts"], 2);
    assert_eq!(m["last_error"], Value::Null);
    app.clock.advance(3600);
    let r = app.get("/api/v1/outbox?status=queued").json();
    assert_eq!(r["items"].as_array().map(Vec::len), Some(0), "nothing left to send: {r}");
    assert_eq!(smtp.messages().len(), 1, "delivered exactly once");
    assert_eq!(got[0].header("Message-ID"), Some(format!("<{}>", m["message_id"].as_str().expect("id"))));
}

#[test]
fn a_server_down_for_the_whole_retry_window_fails_the_message_with_its_reason_and_staff_can_resend() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", with_smtp(port));
    let id = send(&app, &example_text(DUA));

    for attempt in 1..=3 {
        eventually(10, &format!("attempt {attempt}"), || message(&app, &id, "link")["attempts"] == attempt);
        app.clock.advance(600);
    }
    let mut m = Value::Null;
    eventually(10, "the message is failed", || {
        m = message(&app, &id, "link");
        m["status"] == "failed"
    });
    let reason = m["last_error"].as_str().expect("a reason");
    assert!(reason.to_lowercase().contains("connect"), "{reason}");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(m["attempts"], 3);
    assert_eq!(m["next_attempt_at"], Value::Null);
    // The per-signer view shows it too.
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    let signer = a["signers"].as_array().expect("signers").iter().find(|s| s["id"] == "s1").expect("s1").clone();
    assert_eq!(signer["delivery"][0]["status"], "failed");
    // The failure is in the audit trail, and staff were told (that notice is queued too).
    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    assert!(audit["items"].as_array().expect("items").iter().any(|e| e["kind"] == "message_failed"));
    let notice = message(&app, &id, "notice_failed");
    assert_eq!(notice["to"], "contracts@lakeside.example");
    assert_eq!(notice["id"], format!("notice:{id}:failed:{}", m["id"].as_str().expect("id")));

    // The server comes back; staff resend the failed message: the same message goes out.
    let smtp = SmtpServer::start_on(port);
    let mid = m["id"].as_str().expect("id").to_string();
    let r = app.post(&format!("/api/v1/agreements/{id}/messages/{mid}/resend"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "queued");
    assert_eq!(r.json()["attempts"], 0);
    eventually(10, "the link delivered", || {
        smtp.messages()
            .iter()
            .any(|x| x.header("Message-ID") == Some(format!("<{}>", m["message_id"].as_str().unwrap_or(""))))
    });
    eventually(10, "marked sent", || message(&app, &id, "link")["status"] == "sent");
    // A delivered message is not sent again.
    let again = app.post(&format!("/api/v1/outbox/{mid}/retry"), "");
    assert_eq!(again.status, 409, "{}", again.text());
    assert!(again.text().contains("already delivered"));
    assert_eq!(app.post("/api/v1/outbox/nope/retry", "").status, 404);
}

/// A service without the HTTP server (so without the sender task): messages stay queued.
fn offline_state(data: &Path, clock: &ManualClock, configure: impl FnOnce(&mut Config)) -> AppState {
    crate::app::offline_state(data, clock, configure)
}

#[test]
fn messages_queued_before_a_restart_all_arrive_once() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    // Queue messages, and stop before anything is delivered (no sender runs here).
    let queued: Vec<Message> = {
        let state = offline_state(dir.path(), &clock, with_smtp(smtp.port));
        let svc = &state.service;
        for intake in [example_text(BAA), example_text(DUA), parallel(&example_text(BAA))] {
            let a = svc.create(&intake, &admin()).expect("created");
            svc.send(&a.id, &admin()).expect("sent");
        }
        svc.store.messages().expect("messages")
    };
    assert_eq!(queued.len(), 4, "BAA: 1 link, DUA: 1 link, parallel BAA: 2 links");
    assert!(queued.iter().all(|m| m.status == MessageStatus::Queued));
    assert!(smtp.messages().is_empty());

    // Start again: every queued message arrives.
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", with_smtp(smtp.port));
    let got = smtp.wait_for(4, 15);
    eventually(10, "all marked sent", || {
        app.get("/api/v1/outbox?status=sent").json()["items"].as_array().map(Vec::len) == Some(4)
    });
    app.stop();
    // And a second restart sends nothing again.
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", with_smtp(smtp.port));
    clock.advance(DAY);
    app.sender_passes(2);
    let again = app.get("/api/v1/outbox").json();
    assert_eq!(again["items"].as_array().map(Vec::len), Some(4));
    let mut ids: Vec<String> = smtp.messages().iter().filter_map(|m| m.header("Message-ID")).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(ids.len(), 4, "each arrived once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct Message-IDs");
    let mut want: Vec<String> = queued.iter().map(|m| format!("<{}>", m.message_id)).collect();
    want.sort();
    assert_eq!(ids, want, "the Message-IDs are the ones queued before the restart");
}

fn parallel(intake: &str) -> String {
    let mut v: Value = serde_json::from_str(intake).expect("json");
    v["signers"][1]["order"] = serde_json::json!(1);
    v.to_string()
}

fn ids_of_kind(state: &AppState, agreement: &str, kind: &str) -> Vec<String> {
    let mut ms: Vec<Message> = state
        .service
        .store
        .messages()
        .expect("messages")
        .into_iter()
        .filter(|m| m.agreement_id == agreement && m.kind == kind)
        .collect();
    ms.sort_by_key(|m| m.created_at);
    ms.into_iter().map(|m| m.id).collect()
}

#[test]
fn reminders_follow_the_schedule_until_the_link_expires_and_survive_restarts_without_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let id = {
        let state = offline_state(dir.path(), &clock, |_| {});
        let a = state.service.create(&example_text(BAA), &admin()).expect("created");
        state.service.send(&a.id, &admin()).expect("sent");
        assert_eq!(state.service.queue_due_messages().expect("tick"), 0, "nothing due at once");
        a.id
    };
    let tick_at = |offset: u64| -> Vec<String> {
        clock.set(T0 + offset);
        // A fresh process each time: restarts must not repeat anything.
        let state = offline_state(dir.path(), &clock, |_| {});
        let before: Vec<String> = state.service.store.messages().expect("m").into_iter().map(|m| m.id).collect();
        state.service.queue_due_messages().expect("tick");
        state.service.queue_due_messages().expect("a second tick queues nothing more");
        let mut new: Vec<String> = state
            .service
            .store
            .messages()
            .expect("m")
            .into_iter()
            .map(|m| m.id)
            .filter(|m| !before.contains(m))
            .collect();
        new.sort();
        new
    };
    assert!(tick_at(3 * DAY - 1).is_empty());
    assert_eq!(tick_at(3 * DAY), [format!("reminder:{id}:s1:1:1")]);
    assert!(tick_at(3 * DAY + 3600).is_empty(), "idempotent across restarts");
    assert!(tick_at(6 * DAY).is_empty());
    assert_eq!(tick_at(7 * DAY), [format!("reminder:{id}:s1:1:2")]);
    assert_eq!(tick_at(11 * DAY), [format!("reminder:{id}:s1:1:3")]);
    assert_eq!(tick_at(12 * DAY), [format!("expiry:{id}:s1:1")], "2 days before the 14-day link expires");
    assert!(tick_at(13 * DAY).is_empty());
    // The link expires unsigned: the agreement moves to expired and staff are told, once.
    assert_eq!(tick_at(14 * DAY), [format!("notice:{id}:expired:{}", T0 + 14 * DAY)]);
    assert!(tick_at(20 * DAY).is_empty());

    let state = offline_state(dir.path(), &clock, |_| {});
    assert_eq!(state.service.get(&id).expect("a").status.as_str(), "expired");
    let all = state.service.store.messages().expect("m");
    // A reminder is a full email with a working link to the same (unextended) signing page.
    let r = all.iter().find(|m| m.kind == "reminder").expect("a reminder");
    assert_eq!(r.to, "priya@northwind.example");
    assert!(r.subject.starts_with("Reminder"), "{}", r.subject);
    assert!(r.text.contains("still waiting for your signature") && r.text.contains("January 18, 2027"), "{}", r.text);
    assert!(r.html.as_deref().is_some_and(|h| h.contains("href=\"http://127.0.0.1:9/sign/")));
    assert_eq!(r.message_id, format!("reminder.{id}.s1.1.1@localhost"));
    let w = all.iter().find(|m| m.kind == "expiry_warning").expect("warning");
    assert!(w.text.contains("expires in 2 days, on January 18, 2027"), "{}", w.text);
    let link = all.iter().find(|m| m.kind == "link").expect("link");
    assert_eq!(token_of(r), token_of(link), "same claims: the reminder neither extends nor replaces the link");
    let notice = all.iter().find(|m| m.kind == "notice_expired").expect("notice");
    assert_eq!(notice.to, "", "no staff_notice_to: kept in the outbox only");
    assert_eq!(notice.signer_id, None);
}

/// Agreements out for signature the reminder ticks of `state` read while `f` runs.
fn reads_during(state: &AppState, f: impl FnOnce()) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let before = state.service.reminder_reads.load(Relaxed);
    f();
    state.service.reminder_reads.load(Relaxed) - before
}

#[test]
fn the_reminder_tick_reads_an_agreement_out_for_signature_only_once_something_can_be_due_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let (a, b) = {
        let state = offline_state(dir.path(), &clock, |_| {});
        let svc = &state.service;
        let a = svc.create(&example_text(BAA), &admin()).expect("created");
        let b = svc.create(&example_text(DUA), &admin()).expect("created");
        svc.send(&a.id, &admin()).expect("sent");
        svc.send(&b.id, &admin()).expect("sent");
        assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 0)), 2, "no notes yet");
        clock.set(T0 + 3600);
        assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 0)), 0, "asleep");
        (a.id, b.id)
    };

    // A restart two days on: the notes were kept (on sled; PostgreSQL keeps them in memory
    // only, so its first tick after a start reads every candidate), so neither is read.
    clock.set(T0 + 2 * DAY);
    let state = offline_state(dir.path(), &clock, |_| {});
    let svc = &state.service;
    let after_start = if crate::pg::on_postgres() { 2 } else { 0 };
    assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 0)), after_start);
    // A resend writes A's record: A alone is read again, and nothing is due for its new link.
    svc.resend(&a, "s1", &admin()).expect("resent");
    assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 0)), 1);

    // Day 3: B's first reminder falls due, so B is read and reminded; A's new link is a day old.
    clock.set(T0 + 3 * DAY);
    assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 1)), 1);
    assert_eq!(ids_of_kind(&state, &b, "reminder"), [format!("reminder:{b}:s1:1:1")]);
    assert!(ids_of_kind(&state, &a, "reminder").is_empty());
    let metrics = svc.metrics.encode();
    assert!(metrics.contains("countersign_reminder_tick_asleep 1\n"), "A was let be: {metrics}");
    // Day 5: A's first reminder (three days after the resend, under the new generation).
    clock.set(T0 + 5 * DAY);
    assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 1)), 1);
    assert_eq!(ids_of_kind(&state, &a, "reminder"), [format!("reminder:{a}:s1:2:1")]);
    drop(state);

    // Other reminder settings: the notes made under the old ones are not believed.
    let state = offline_state(dir.path(), &clock, |c| c.reminders.every_days = 1);
    let svc = &state.service;
    assert_eq!(reads_during(&state, || assert_eq!(svc.queue_due_messages().expect("tick"), 1)), 2);
    assert_eq!(ids_of_kind(&state, &b, "reminder").len(), 2, "B's daily reminder of day 5 (1 + 2 days)");
}

#[test]
fn signing_voiding_and_resending_change_who_is_reminded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let state = offline_state(dir.path(), &clock, |_| {});
    let svc = state.service.clone();
    let a = svc.create(&example_text(BAA), &admin()).expect("created");
    let b = svc.create(&example_text(DUA), &admin()).expect("created");
    svc.send(&a.id, &admin()).expect("sent");
    svc.send(&b.id, &admin()).expect("sent");

    // Day 2: Priya signs A, so Zoë is invited; B is voided.
    clock.set(T0 + 2 * DAY);
    let link = svc.store.message(&ids_of_kind(&state, &a.id, "link")[0]).expect("link");
    let form = SignForm { consent: true, typed_name: "Priya Raman".into(), typed_title: "VP, Legal".into() };
    svc.sign(&token_of(&link), form, &admin()).expect("signed");
    svc.void(&b.id, "superseded", &admin()).expect("voided");

    clock.set(T0 + 3 * DAY);
    svc.queue_due_messages().expect("tick");
    assert!(ids_of_kind(&state, &a.id, "reminder").is_empty(), "Priya signed; Zoë's link is one day old");
    assert!(ids_of_kind(&state, &b.id, "reminder").is_empty(), "a voided agreement reminds nobody");
    clock.set(T0 + 5 * DAY);
    svc.queue_due_messages().expect("tick");
    assert_eq!(ids_of_kind(&state, &a.id, "reminder"), [format!("reminder:{}:s2:1:1", a.id)]);

    // Day 6: a resend starts Zoë's schedule again under a new generation.
    clock.set(T0 + 6 * DAY);
    svc.resend(&a.id, "s2", &admin()).expect("resent");
    clock.set(T0 + 8 * DAY);
    svc.queue_due_messages().expect("tick");
    assert_eq!(ids_of_kind(&state, &a.id, "reminder").len(), 1, "3 days after the new link, not 7 after the old");
    clock.set(T0 + 9 * DAY);
    svc.queue_due_messages().expect("tick");
    assert_eq!(ids_of_kind(&state, &a.id, "reminder").last(), Some(&format!("reminder:{}:s2:2:1", a.id)));
}

#[test]
fn messages_that_are_no_longer_needed_when_their_turn_comes_are_skipped() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let id = {
        let state = offline_state(dir.path(), &clock, with_smtp(smtp.port));
        let a = state.service.create(&example_text(DUA), &admin()).expect("created");
        state.service.send(&a.id, &admin()).expect("sent");
        clock.set(T0 + 3 * DAY);
        assert_eq!(state.service.queue_due_messages().expect("tick"), 1);
        // Voided before the sender ran.
        state.service.void(&a.id, "withdrawn", &admin()).expect("voided");
        a.id
    };
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", with_smtp(smtp.port));
    for kind in ["reminder", "link"] {
        let mut r = Value::Null;
        eventually(10, "the message is settled", || {
            r = message(&app, &id, kind);
            r["status"] != "queued"
        });
        assert_eq!(r["status"], "skipped", "{r}");
        assert_eq!(r["attempts"], 0);
        assert!(r["last_error"].as_str().is_some_and(|e| e.contains("voided")), "{r}");
    }
    assert!(smtp.messages().is_empty(), "a voided agreement's link and reminder are not mailed");
}

#[test]
fn staff_are_told_of_a_decline_without_the_reason_and_before_an_executed_agreement_renews() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", with_smtp(smtp.port));
    let id = send(&app, &example_text(BAA));
    let got = smtp.wait_for(1, 10);
    let link = link_in(&plain_part(&got[0].parsed()).expect("text"), "/sign/");
    let (_, _, csrf) = app.open(&link);
    let r = app.form(&link, &[("action", "decline"), ("reason", "Indemnity cap is unacceptable"), ("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = smtp.wait_for(2, 10);
    let notice = got.iter().find(|m| m.to == ["contracts@lakeside.example"]).expect("a staff notice");
    let subject = notice.header("Subject").expect("subject");
    assert!(subject.contains("Declined") && subject.contains("Business Associate Agreement"), "{subject}");
    let text = plain_part(&notice.parsed()).expect("text");
    assert!(text.contains("Priya Raman (Northwind Patient Messaging, Inc.) declined"), "{text}");
    assert!(!text.contains("Indemnity"), "the free-text reason stays in Countersign");
    assert!(text.contains(&format!("/api/v1/agreements/{id}")));
    assert!(html_part(&notice.parsed()).is_some());
    eventually(10, "notice marked sent", || message(&app, &id, "notice_declined")["status"] == "sent");
    app.stop();

    // An executed BAA (effective 2027-01-01, 36 months, auto-renewing) renews on 2030-01-01:
    // staff hear 30 days before, once.
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let state = offline_state(dir.path(), &clock, |c| c.staff_notice_to = Some("contracts@lakeside.example".into()));
    let svc = state.service.clone();
    let a = svc.create(&parallel(&example_text(BAA)), &admin()).expect("created");
    svc.send(&a.id, &admin()).expect("sent");
    for (n, name) in [(0, "Priya Raman"), (1, "Zoë Ångström")] {
        let link = svc.store.message(&ids_of_kind(&state, &a.id, "link")[n]).expect("link");
        let form = SignForm { consent: true, typed_name: name.into(), typed_title: "Officer".into() };
        svc.sign(&token_of(&link), form, &admin()).expect("signed");
    }
    assert_eq!(svc.get(&a.id).expect("a").status.as_str(), "executed");
    let renewal = 1_893_456_000; // 2030-01-01T00:00:00Z
    clock.set(renewal - 31 * DAY);
    assert_eq!(svc.queue_due_messages().expect("tick"), 0);
    clock.set(renewal - 30 * DAY);
    assert_eq!(svc.queue_due_messages().expect("tick"), 1);
    assert_eq!(svc.queue_due_messages().expect("tick"), 0, "once");
    let n = svc.store.message(&format!("notice:{}:renewal:2030-01-01", a.id)).expect("renewal notice");
    assert_eq!(n.to, "contracts@lakeside.example");
    assert!(n.text.contains("renews automatically on January 1, 2030"), "{}", n.text);
    let completion = ids_of_kind(&state, &a.id, "completion");
    assert_eq!(completion.len(), 2);
    let c = svc.store.message(&completion[0]).expect("completion");
    assert!(link_in(&c.text, "/download/").starts_with("http://127.0.0.1:9/download/"), "links the countersigned copy");
    assert!(c.html.as_deref().is_some_and(|h| h.contains("/download/")));
}

#[test]
fn smtp_authentication_is_used_and_the_password_never_shows() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir.path(), ManualClock::at(T0), "127.0.0.1:0", |c| {
        with_smtp(smtp.port)(c);
        if let Some(s) = c.smtp.as_mut() {
            s.username = Some("countersign".into());
            s.password = Some(countersign::secret::SecretString::new("p4ssw0rd-never-logged".into()));
        }
        assert!(!format!("{c:?}").contains("p4ssw0rd"), "the config never prints the password");
    });
    let id = send(&app, &example_text(DUA));
    let got = smtp.wait_for(1, 10);
    assert_eq!(got[0].user.as_deref(), Some("countersign"));
    eventually(10, "sent", || message(&app, &id, "link")["status"] == "sent");
    let all = app.get(&format!("/api/v1/agreements/{id}")).text() + &app.get("/api/v1/outbox").text();
    assert!(!all.contains("p4ssw0rd"));
}

#[test]
fn without_smtp_the_eml_outbox_is_the_transport() {
    let (app, _dir) = spawn_app();
    let id = send(&app, &example_text(DUA));
    let mut m = Value::Null;
    eventually(10, "written", || {
        m = message(&app, &id, "link");
        m["status"] == "sent"
    });
    assert!(m["reply"].as_str().is_some_and(|r| r.contains(".eml") && r.contains("no SMTP")), "{m}");
    let emls = app.outbox();
    assert_eq!(emls.len(), 1);
    assert!(emls[0].1.contains("Content-Type: multipart/alternative"), "{}", emls[0].1);
}

#[test]
fn the_outbox_command_lists_and_retries_through_the_running_server_and_offline() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", |c| {
        with_smtp(port)(c);
        c.delivery.max_attempts = 1;
    });
    let id = send(&app, &example_text(DUA));
    eventually(10, "failed", || message(&app, &id, "link")["status"] == "failed");
    let mid = message(&app, &id, "link")["id"].as_str().expect("id").to_string();
    let data = dir.path().to_str().expect("utf8 path");
    let server = app.base.clone();

    // While the server runs: through its API.
    let out = countersign(&["outbox", "list", "--data", data, "--server", &server, "--json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    let link = items.iter().find(|m| m["id"] == mid.as_str()).expect("listed");
    assert_eq!(link["status"], "failed");
    assert!(link["last_error"].as_str().is_some_and(|e| e.contains("gave up after 1 attempts")), "{link}");
    let table = countersign(&["outbox", "--data", data, "--server", &server], dir.path());
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains(&mid) && table.contains("failed"), "{table}");
    let failed = countersign(
        &["outbox", "list", "--status", "failed", "--data", data, "--server", &server, "--json"],
        dir.path(),
    );
    let failed: Vec<Value> = serde_json::from_slice(&failed.stdout).expect("json");
    assert!(failed.iter().all(|m| m["status"] == "failed") && !failed.is_empty());

    let smtp = SmtpServer::start_on(port);
    let out = countersign(&["outbox", "retry", &mid, "--data", data, "--server", &server], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued again"));
    smtp.wait_for(1, 10);
    eventually(10, "sent", || message(&app, &id, "link")["status"] == "sent");
    let out = countersign(&["outbox", "retry", &mid, "--data", data, "--server", &server], dir.path());
    assert_eq!(out.status.code(), Some(2), "a delivered message is not retried");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already delivered"));
    app.stop();

    // With the server stopped: the store directly.
    let out = countersign(&["outbox", "list", "--data", data, "--json"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(items.iter().any(|m| m["id"] == mid.as_str() && m["status"] == "sent"));
    // Mark it failed in the stopped server's store, then retry it from the command line.
    {
        let store = crate::app::open_store(dir.path());
        let mut m = store.message(&mid).expect("message");
        m.status = MessageStatus::Failed;
        m.last_error = Some("550 5.1.1 mailbox unavailable".into());
        store.put_message(&m).expect("put");
    }
    let nid = mid.clone();
    let out = countersign(&["outbox", "retry", &nid, "--data", data], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("when the server starts"));
    let out = countersign(&["outbox", "list", "--status", "queued", "--data", data, "--json"], dir.path());
    let queued: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(queued.iter().any(|m| m["id"] == nid.as_str() && m["attempts"] == 0), "{queued:?}");
    let out = countersign(&["outbox", "retry", "no-such-message", "--data", data], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// Invites and accepts a person; returns their id.
fn person(app: &TestApp, email: &str, role: &str) -> String {
    let (id, url) = crate::web::invite(app, email, "Someone", role);
    let mut c = crate::web::Client::new(app);
    crate::web::accept(&mut c, &url);
    id
}

/// The recipients (RCPT TO, sorted) of each received message whose subject contains `what`.
fn rcpts(smtp: &SmtpServer, what: &str) -> Vec<Vec<String>> {
    smtp.messages()
        .iter()
        .filter(|m| m.header("Subject").is_some_and(|s| s.contains(what)))
        .map(|m| {
            let mut to = m.to.clone();
            to.sort();
            to
        })
        .collect()
}

#[test]
fn staff_notices_also_go_to_the_creator_and_every_active_legal_person_once_and_never_again_after_a_restart() {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let port = smtp.port;
    let setup = move |c: &mut Config| {
        with_smtp(port)(c);
        // Lena is named here too: she still gets each notice once.
        c.staff_notice_to = Some("contracts@lakeside.example, lena@example.com".into());
    };
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", setup);
    person(&app, "sam@example.com", "sales");
    person(&app, "lena@example.com", "legal");
    person(&app, "lars@example.com", "legal");
    person(&app, "vera@example.com", "vendor_manager");
    let gone = person(&app, "lou@example.com", "legal");
    assert_eq!(app.post(&format!("/api/v1/users/{gone}/disable"), "").status, 200);
    crate::web::invite(&app, "leo@example.com", "Leo", "legal"); // invited, never accepted: not active

    // Sam creates and sends an agreement (under his email, as the web app does); the bootstrap
    // key (no address) another.
    let svc = app.service();
    let sam =
        Actor { who: "sam@example.com".into(), ip: "127.0.0.1".into(), user_agent: "test".into(), own_only: true };
    let mine = svc.create(&example_text(BAA), &sam).expect("created").id;
    svc.send(&mine, &sam).expect("sent");
    let keys = send(&app, &example_text(BAA));

    // A signer declines Sam's agreement; every link of the other one expires unsigned.
    let link_id = message(&app, &mine, "link")["id"].as_str().expect("id").to_string();
    let link = svc.store.message(&link_id).expect("the link message");
    svc.decline(&token_of(&link), "Not this quarter", &admin()).expect("declined");
    clock.set(T0 + 15 * DAY);
    assert_eq!(svc.get(&keys).expect("agreement").status.as_str(), "expired");
    drop(svc);

    // Each notice is one message with one deterministic id, to every address once: staff_notice_to,
    // the creator when a person (Sam), each active legal person — not Lou (disabled), Leo (not
    // yet accepted) or Vera (vendor manager).
    let declined = message(&app, &mine, "notice_declined");
    assert_eq!(declined["id"], format!("notice:{mine}:declined:v1"));
    assert_eq!(declined["to"], "contracts@lakeside.example, lena@example.com, sam@example.com, lars@example.com");
    let expired = message(&app, &keys, "notice_expired");
    assert_eq!(expired["to"], "contracts@lakeside.example, lena@example.com, lars@example.com");
    let want_declined =
        ["contracts@lakeside.example", "lars@example.com", "lena@example.com", "sam@example.com"].map(String::from);
    let want_expired = ["contracts@lakeside.example", "lars@example.com", "lena@example.com"].map(String::from);
    eventually(10, "both notices delivered", || {
        rcpts(&smtp, "Declined").len() == 1 && rcpts(&smtp, "Expired unsigned").len() == 1
    });
    assert_eq!(rcpts(&smtp, "Declined"), vec![want_declined.to_vec()]);
    assert_eq!(rcpts(&smtp, "Expired unsigned"), vec![want_expired.to_vec()]);
    eventually(10, "notices marked sent", || {
        message(&app, &mine, "notice_declined")["status"] == "sent"
            && message(&app, &keys, "notice_expired")["status"] == "sent"
    });
    app.stop();

    // After a restart, the sender and the schedule run again and nothing is sent twice.
    let app = spawn_app_with(dir.path(), clock.clone(), "127.0.0.1:0", setup);
    assert_eq!(app.get(&format!("/api/v1/agreements/{keys}")).json()["status"], "expired");
    app.sender_passes(2);
    let svc = app.service();
    svc.queue_due_messages().expect("tick");
    drop(svc);
    app.sender_passes(2);
    assert_eq!(rcpts(&smtp, "Declined").len(), 1, "the decline notice once");
    assert_eq!(rcpts(&smtp, "Expired unsigned").len(), 1, "the expiry notice once");
    let kinds: Vec<Value> = messages(&app, &mine).into_iter().filter(|m| m["kind"] == "notice_declined").collect();
    assert_eq!(kinds.len(), 1);
}
