//! `countersign bench seed`: a data directory with many realistic agreements, written through
//! the store, for measuring search, start-up, memory and store size at scale (issue 14 §6).
//!
//! Two agreements go the whole way through the service first — the example BAA and the example
//! DUA: created, sent, signed by every signer, countersigned and sealed. Every generated
//! agreement is then a variation of one of them: its own id, counterparty (names with accents),
//! states, status, dates, signers, audit chain and outbox messages, committed like any change
//! (one sled transaction each, audit events hashed and chained by the store). The documents are
//! those two agreements' rendered PDFs (draft, sent, countersigned), reused content-addressed: a
//! generated record points at a real PDF whose printed names are the template's, not its own.
//! What a seeded directory measures is therefore the records, chains, messages and indexes of N
//! agreements, plus six PDFs; a real archive also holds N × ~3 documents of ~80 KB.
//!
//! The generator is deterministic for a given `--seed`, except for the two template agreements
//! (rendered with the real clock) and message ids (time-ordered).

use std::time::Instant;

use crate::domain::agreement::{
    Agreement, Disposition, Signature, SignerRecord, SignerStatus, Status, Termination, VersionRecord,
};
use crate::domain::intake::Date;
use crate::signing::token::Purpose;
use crate::store::{Change, Message, MessageStatus, NewEvent};

use super::service::{Actor, Service, ServiceError, SignForm};

const BAA: &str = include_str!("../../examples/intake/baa-tx-ca.json");
const DUA: &str = include_str!("../../examples/intake/dua-ny-research.json");
/// Changes applied between two waits for the disk.
const BATCH: usize = 512;
const DAY: u64 = 86_400;

/// What a seed run did.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Agreements written, the two templates included.
    pub agreements: usize,
    pub events: usize,
    pub messages: usize,
    /// Per status, in [`Status::ALL`] order.
    pub by_status: Vec<(Status, usize)>,
    pub secs: f64,
}

/// The organisations running Countersign (one side of every agreement).
const OURS: [&str; 3] = ["Lakeside Family Clinic, P.C.", "Mercy Valley Health System", "Clínica San José de Río Bravo"];
const FIRST: [&str; 24] = [
    "Northwind",
    "Núñez",
    "Søndergaard",
    "Zürich",
    "Ångström",
    "Château-Lévêque",
    "Brontë",
    "Harbor",
    "Cedar Ridge",
    "Łódź",
    "Dvořák",
    "São Tomé",
    "Müller & Söhne",
    "Cañón",
    "Açaí Valley",
    "Élan",
    "O'Brien",
    "Kowalczyk",
    "Blue Heron",
    "Piñon",
    "Fjørd",
    "Ōkubo",
    "Stellar",
    "Quillón",
];
const MIDDLE: [&str; 12] = [
    "Patient Messaging",
    "Health Analytics",
    "Billing Services",
    "Cloud Hosting",
    "Transcription",
    "Clinical Labs",
    "Care Coordination",
    "Imaging",
    "Pharmacy Benefits",
    "Telehealth",
    "Records Management",
    "Research Institute",
];
const SUFFIX: [&str; 6] = ["Inc.", "LLC", "P.C.", "Corp.", "GmbH", "S.A."];
const PEOPLE: [&str; 10] = [
    "Priya Raman",
    "Zoë Ångström",
    "Marta Núñez",
    "Łukasz Żółć",
    "José Álvarez",
    "Søren Kierkegård",
    "Chloé Lefèvre",
    "Dana Ortiz",
    "Nguyễn Thị Lan",
    "François Dubois",
];
const STATES: [&str; 8] = ["TX", "CA", "NY", "FL", "IL", "WA", "MA", "CO"];
const STAFF: [&str; 4] =
    ["admin:bootstrap", "dana.ortiz@lakeside.example", "sam.lee@lakeside.example", "sales:k5eed0001"];
const TERMS: [u16; 5] = [12, 24, 36, 36, 60];

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The status mix: a share out of 1,000 for each.
const MIX: [(Status, u64); 10] = [
    (Status::Draft, 80),
    (Status::AwaitingApproval, 20),
    (Status::Sent, 70),
    (Status::PartiallySigned, 50),
    (Status::Executed, 580),
    (Status::Declined, 30),
    (Status::Voided, 30),
    (Status::Expired, 40),
    (Status::Terminated, 60),
    (Status::Closed, 40),
];

fn status(rng: &mut Rng) -> Status {
    let mut r = rng.below(1000);
    for (s, share) in MIX {
        if r < share {
            return s;
        }
        r -= share;
    }
    Status::Executed
}

fn date_of(secs: u64) -> Date {
    Date::from_days((secs / DAY) as i64)
}

/// A template: an agreement carried through the real service, with what it stored.
struct Template {
    a: Agreement,
    versions: Vec<VersionRecord>,
    events: Vec<NewEvent>,
    messages: Vec<Message>,
}

fn template(svc: &Service, intake: &str) -> Result<Template, ServiceError> {
    let staff = Actor { who: STAFF[0].into(), ip: "127.0.0.1".into(), ..Actor::default() };
    let a = svc.create(intake, &staff)?;
    let mut a = svc.send(&a.id, &staff)?;
    while let Some(order) = a.current_order() {
        let Some(s) = a.signers.iter().find(|s| s.order == order && s.status != SignerStatus::Signed).cloned() else {
            break;
        };
        let expires = s.link_expires.unwrap_or_else(|| svc.clock.now() + 30 * DAY);
        let token = svc.keys.issue(&a.id, s.index, Purpose::Sign, expires, s.generation);
        let who = Actor {
            who: format!("signer:{} <{}>", s.id, s.email),
            ip: "203.0.113.7".into(),
            user_agent: "Mozilla/5.0 (seed)".into(),
            own_only: false,
        };
        let link = svc.resolve_open(&token).map_err(ServiceError::Link)?;
        svc.opened(&link, &who)?;
        let form = SignForm { consent: true, typed_name: s.name.clone(), typed_title: s.title.clone() };
        a = svc.sign(&token, form, &who)?;
    }
    if a.status != Status::Executed {
        return Err(ServiceError::Internal(format!("template {} ended {}", a.id, a.status.as_str())));
    }
    let events = svc
        .store
        .events(&a.id)?
        .into_iter()
        .map(|e| NewEvent {
            agreement_id: e.agreement_id,
            kind: e.kind,
            at: e.at,
            actor: e.actor,
            ip: e.ip,
            user_agent: e.user_agent,
            document_sha256: e.document_sha256,
            detail: e.detail,
        })
        .collect();
    Ok(Template { versions: svc.store.versions(&a.id)?, messages: svc.store.agreement_messages(&a.id)?, events, a })
}

/// Writes `count` agreements (the two templates included) into the service's store. `progress`
/// is called after each batch with the number written so far.
pub fn seed(svc: &Service, count: usize, seed: u64, progress: &dyn Fn(usize)) -> Result<Seeded, ServiceError> {
    let started = Instant::now();
    let templates = [template(svc, BAA)?, template(svc, DUA)?];
    let mut by_status: Vec<(Status, usize)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    let bump = |by: &mut Vec<(Status, usize)>, s: Status| {
        if let Some(x) = by.iter_mut().find(|(k, _)| *k == s) {
            x.1 += 1;
        }
    };
    let mut events = 0;
    let mut messages = 0;
    for t in &templates {
        bump(&mut by_status, t.a.status);
        events += t.events.len();
        messages += t.messages.len();
    }
    let now = svc.clock.now();
    let mut rng = Rng(seed ^ 0x5EED_C0DE);
    // Executed BAAs so far: parents for subcontractor BAAs.
    let mut parents: Vec<String> = Vec::new();
    let mut ticket = 0;
    let mut written = templates.len().min(count);
    while written < count {
        let kind_dua = rng.below(5) == 0;
        let t = &templates[usize::from(kind_dua)];
        let st = status(&mut rng);
        let change = generate(t, st, &mut rng, now, &parents);
        if st == Status::Executed
            && !kind_dua
            && let Some(a) = &change.agreement
        {
            parents.push(a.id.clone());
        }
        bump(&mut by_status, st);
        events += change.events.len();
        messages += change.messages.len();
        let (_, tk) = svc.store.commit_nowait(change)?;
        ticket = tk;
        written += 1;
        if written % BATCH == 0 {
            svc.store.sync(ticket)?;
            progress(written);
        }
    }
    svc.store.sync(ticket)?;
    progress(written);
    svc.rebuild_index();
    Ok(Seeded { agreements: written, events, messages, by_status, secs: started.elapsed().as_secs_f64() })
}

/// One generated agreement in status `st`, as the change that stores it.
fn generate(t: &Template, st: Status, rng: &mut Rng, now: u64, parents: &[String]) -> Change {
    let mut a = t.a.clone();
    let id = format!("ag_{:016x}{:04x}", rng.next(), rng.below(1 << 16));
    let ours = rng.pick(&OURS).to_string();
    let theirs = format!("{} {} {}", rng.pick(&FIRST), rng.pick(&MIDDLE), rng.pick(&SUFFIX));
    a.title = t.a.title.replace(&t.a.upstream_name, &ours).replace(&t.a.downstream_name, &theirs);
    let (old_up, old_down) = (t.a.upstream_name.clone(), t.a.downstream_name.clone());
    a.upstream_name = ours.clone();
    a.downstream_name = theirs.clone();
    a.id = id.clone();
    a.revision = 1;
    a.created_by = rng.pick(&STAFF).to_string();
    // Open signing is recent; everything else anywhere in the last seven years.
    let age = if st.is_out_for_signature() || st.is_draft() {
        rng.below(25 * DAY)
    } else if st == Status::Expired {
        35 * DAY + rng.below(400 * DAY)
    } else {
        rng.below(7 * 365 * DAY)
    };
    a.created_at = now.saturating_sub(age);
    let effective = date_of(a.created_at + rng.below(60) * DAY);
    a.facts.effective_date = effective.to_string();
    a.facts.term_months = *rng.pick(&TERMS);
    a.facts.auto_renew = rng.below(2) == 0;
    let mut states: Vec<String> = Vec::new();
    for _ in 0..=rng.below(3) {
        let s = rng.pick(&STATES).to_string();
        if !states.contains(&s) {
            states.push(s);
        }
    }
    a.facts.states = states;
    a.facts.parent_agreement_id = if a.kind == "baa" && !parents.is_empty() && rng.below(20) == 0 {
        Some(rng.pick(parents).clone())
    } else {
        None
    };
    let created = a.created_at;
    let step = move |n: u64| created + n * 3_600;
    // Signers: the template's, renamed, their state following the agreement's.
    let mut signed_so_far = 0;
    let signers: Vec<SignerRecord> = t.a.signers.clone();
    a.signers = signers
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            s.party_name = if s.party_name == old_up { ours.clone() } else { theirs.clone() };
            s.name = rng.pick(&PEOPLE).to_string();
            s.email = format!("signer{}@{}.example", i + 1, if s.party_name == ours { "ours" } else { "theirs" });
            let signs = match st {
                Status::Executed | Status::Terminated | Status::Closed => true,
                Status::PartiallySigned => s.order == 1,
                _ => false,
            };
            s.signature = None;
            s.link_expires = None;
            s.decline_reason = None;
            s.status = if st.is_draft() {
                SignerStatus::Waiting
            } else if signs {
                signed_so_far += 1;
                s.signature = Some(Signature {
                    typed_name: s.name.clone(),
                    typed_title: s.title.clone(),
                    signed_at: step(24 + 24 * u64::from(s.order)),
                    ip: "203.0.113.7".into(),
                    user_agent: "Mozilla/5.0 (seed)".into(),
                    consent_version: "1".into(),
                    signature_id: format!("sig_{:016x}", rng.next()),
                    verification: "email_link".into(),
                });
                SignerStatus::Signed
            } else if st == Status::Declined && s.order == 1 {
                s.decline_reason = Some("The indemnity cap needs another look.".into());
                SignerStatus::Declined
            } else if (st.is_out_for_signature() || st == Status::Expired) && s.order == signed_so_far + 1 {
                s.link_expires = Some(if st == Status::Expired { step(24 * 15) } else { now + 30 * DAY });
                SignerStatus::Notified
            } else {
                SignerStatus::Waiting
            };
            s
        })
        .collect();
    a.status = st;
    let draft_sha = t.versions.last().map(|v| v.sha256.clone()).unwrap_or_default();
    let (sent, final_) = match st {
        Status::Draft | Status::AwaitingApproval => (false, false),
        Status::Executed | Status::Terminated | Status::Closed => (true, true),
        _ => (true, false),
    };
    a.needs_approval = st == Status::AwaitingApproval;
    a.approval = None;
    a.sent_at = sent.then(|| step(1));
    a.sent_by = sent.then(|| a.created_by.clone());
    if !sent {
        a.sent_sha256 = None;
        a.sent_bytes = None;
    }
    a.executed_at = final_.then(|| step(24 * 3));
    if !final_ {
        a.final_sha256 = None;
        a.final_bytes = None;
    }
    a.document_sha256 = match (&a.final_sha256, &a.sent_sha256) {
        (Some(f), _) => f.clone(),
        (None, Some(s)) => s.clone(),
        _ => draft_sha.clone(),
    };
    a.void_reason = (st == Status::Voided).then(|| "Replaced by a renegotiated agreement.".into());
    a.termination = matches!(st, Status::Terminated | Status::Closed).then(|| {
        let end = effective.add_months(1 + rng.below(u64::from(a.facts.term_months)) as u32);
        Termination {
            date: end.to_string(),
            reason: "Services ended.".into(),
            by: a.created_by.clone(),
            at: step(24 * 30),
        }
    });
    a.disposition = (st == Status::Closed).then(|| Disposition {
        method: "destroyed".into(),
        date: a.termination.as_ref().map(|t| t.date.clone()).unwrap_or_default(),
        certified_by: rng.pick(&PEOPLE).to_string(),
        protections: None,
        by: a.created_by.clone(),
        at: step(24 * 45),
    });
    a.disposed_at = None;

    // The audit chain: the template's, cut where this agreement's story ends, then its own end.
    let first = |kind: &str| t.events.iter().position(|e| e.kind == kind).unwrap_or(t.events.len());
    let cut = match st {
        Status::Draft | Status::AwaitingApproval => first("sent"),
        Status::Sent | Status::Voided | Status::Expired => first("opened"),
        Status::PartiallySigned | Status::Declined => {
            let signed = first("signed");
            if st == Status::Declined { signed } else { (signed + 1).min(t.events.len()) }
        }
        _ => t.events.len(),
    };
    // Messages: those the template had by the cut (by time), renamed.
    let cut_at = t.events.get(cut).map_or(u64::MAX, |e| e.at);
    let mut renamed: Vec<(String, String)> = Vec::new();
    let mut msgs: Vec<Message> = Vec::new();
    for m in t.messages.iter().filter(|m| m.created_at < cut_at || cut == t.events.len()) {
        let mut m = m.clone();
        let new = crate::store::ids::message_id(a.created_at);
        renamed.push((m.id.clone(), new.clone()));
        m.id = new;
        m.agreement_id = id.clone();
        m.message_id = format!("{}.{}", &m.message_id, &id);
        m.subject = m.subject.replace(&old_up, &ours).replace(&old_down, &theirs);
        m.status = MessageStatus::Sent;
        m.created_at = step(1);
        m.sent_at = Some(step(1) + 5);
        m.next_attempt_at = None;
        m.attempts = 1;
        msgs.push(m);
    }
    let mut events: Vec<NewEvent> = t.events[..cut]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e.agreement_id = id.clone();
            e.at = step(i as u64);
            if let Some(m) = e.detail.get("message").and_then(|v| v.as_str())
                && let Some((_, new)) = renamed.iter().find(|(old, _)| old == m)
            {
                e.detail["message"] = serde_json::Value::String(new.clone());
            }
            e
        })
        .collect();
    let mut end = |kind: &str, detail: serde_json::Value, at: u64| {
        events.push(NewEvent {
            agreement_id: id.clone(),
            kind: kind.into(),
            at,
            actor: a.created_by.clone(),
            ip: "198.51.100.20".into(),
            user_agent: "Mozilla/5.0 (seed)".into(),
            document_sha256: a.document_sha256.clone(),
            detail,
        })
    };
    match st {
        Status::Declined => {
            end("declined", serde_json::json!({"reason": "The indemnity cap needs another look."}), step(30))
        }
        Status::Voided => {
            end("voided", serde_json::json!({"reason": "Replaced by a renegotiated agreement."}), step(30))
        }
        Status::Expired => end("expired", serde_json::json!({}), step(24 * 15)),
        Status::Terminated | Status::Closed => {
            let date = a.termination.as_ref().map(|t| t.date.clone()).unwrap_or_default();
            end("terminated", serde_json::json!({"date": date, "reason": "Services ended."}), step(24 * 30));
            if st == Status::Closed {
                end(
                    "phi_disposition_certified",
                    serde_json::json!({"method": "destroyed", "date": date, "certified_by": "Dana Ortiz", "protections": null}),
                    step(24 * 45),
                );
            }
        }
        _ => {}
    }
    a.updated_at = events.last().map_or(a.created_at, |e| e.at);
    let versions = t.versions.iter().map(|v| VersionRecord { created_at: a.created_at, ..v.clone() }).collect();
    Change { agreement: Some(a), versions, events, messages: msgs, ..Change::default() }
}
