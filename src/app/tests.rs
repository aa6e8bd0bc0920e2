//! The application layer without HTTP or a data directory: the service over the in-memory
//! store ([`crate::store::memory::MemoryStore`]).

use std::sync::Arc;

use super::service::{Actor, ServiceError, SignForm, SignerPatch};
use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::actions::Action;
use crate::domain::agreement::{Agreement, SignerStatus, Status};
use crate::render::Renderer;
use crate::seal::SealKeys;
use crate::secret::Secret;
use crate::signing::token::{KeyRing, Purpose};
use crate::store::Change;
use crate::store::memory::MemoryStore;

use super::service::Service;

const BAA: &str = include_str!("../../examples/intake/baa-tx-ca.json");
/// 2026-11-28T00:00:00Z
const NOW: u64 = 1_795_824_000;

fn service(dir: &std::path::Path) -> Service {
    let keys = KeyRing::new(vec![("k1".into(), Secret::new(vec![7u8; 32]))]).expect("key ring");
    let config = Config { data_dir: dir.to_path_buf(), eml_outbox: false, ..Config::default() };
    let seal = SealKeys::load_or_create(&dir.join("seal")).expect("seal keys");
    Service::new(
        Arc::new(MemoryStore::new()),
        keys,
        Renderer::builtin().expect("renderer"),
        config,
        Arc::new(ManualClock::at(NOW)),
        seal,
        crate::secret::vault::Vault::ephemeral().expect("vault"),
    )
}

fn staff() -> Actor {
    Actor { who: "test".into(), ..Actor::default() }
}

/// A copy of `base` under a new id in `status`, its first signer holding an open link and the
/// second waiting, its versions copied along.
fn in_status(svc: &Service, base: &Agreement, status: Status, n: usize) -> Agreement {
    let mut a = base.clone();
    a.id = format!("ag_case{n:03}");
    a.status = status;
    a.revision = 1;
    a.sent_sha256 = Some(base.document_sha256.clone());
    for s in &mut a.signers {
        if s.order == 1 {
            s.status = SignerStatus::Notified;
            s.link_expires = Some(NOW + 86_400);
        } else {
            s.status = SignerStatus::Waiting;
        }
    }
    let versions = svc.store.versions(&base.id).expect("versions");
    svc.store.commit(Change { agreement: Some(a.clone()), versions, ..Change::default() }).expect("fixture commits");
    a
}

/// Asks the service for `action` on agreement `a`.
fn act(svc: &Service, a: &Agreement, action: Action) -> Result<(), ServiceError> {
    let who = staff();
    let s1 = a.signers.iter().find(|s| s.order == 1).expect("a first signer");
    match action {
        Action::Replace => svc.replace(&a.id, BAA, &who).map(drop),
        Action::Approve => svc.approve(&a.id, "reviewed by counsel", &who).map(drop),
        Action::Send => svc.send(&a.id, &who).map(drop),
        Action::Void => svc.void(&a.id, "withdrawn", &who).map(drop),
        Action::Resend => svc.resend(&a.id, &s1.id, &who).map(drop),
        Action::UpdateSigner => {
            let patch = SignerPatch { title: Some("General Counsel".into()), ..SignerPatch::default() };
            svc.update_signer(&a.id, &s1.id, patch, &who).map(drop)
        }
        Action::Revise => svc.revise(&a.id, &who).map(drop),
        Action::Sign => {
            let token = svc.keys.issue(&a.id, s1.index, Purpose::Sign, NOW + 86_400, s1.generation);
            let form = SignForm { consent: true, typed_name: s1.name.clone(), typed_title: s1.title.clone() };
            svc.sign(&token, form, &who).map(drop)
        }
        Action::Terminate => svc.terminate(&a.id, "2027-06-30", "services ended", &who).map(drop),
        Action::CertifyDisposition => {
            svc.certify_disposition(&a.id, "destroyed", "2027-07-15", "Priya Raman", None, &who).map(drop)
        }
    }
}

#[test]
fn every_action_in_every_status_is_carried_out_or_refused_with_the_tables_sentence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path());
    let base = svc.create(BAA, &staff()).expect("the example intake makes a draft");
    assert_eq!(base.status, Status::Draft, "the example passes its checks without departures");
    let mut n = 0;
    for action in Action::ALL {
        for status in Status::ALL {
            n += 1;
            let a = in_status(&svc, &base, status, n);
            let got = act(&svc, &a, action);
            match status.allows(action) {
                Ok(()) if action == Action::Send && status == Status::AwaitingApproval => {
                    // Allowed by the state, stopped by the next rule: this version is unapproved.
                    assert!(matches!(got, Err(ServiceError::NeedsApproval(_))), "{action:?} in {status:?}: {got:?}");
                }
                Ok(()) => {
                    assert!(got.is_ok(), "{action:?} in {status:?} should be carried out: {got:?}");
                    let after = svc.store.agreement(&a.id).expect("still there");
                    assert_eq!(after.revision, 2, "{action:?} in {status:?} commits once");
                }
                Err(refusal) => {
                    let text = match got {
                        Err(ServiceError::State(m)) => m,
                        // A signer's link says a voided agreement was withdrawn before any state
                        // check; other closed agreements get the table's sentence.
                        Err(ServiceError::Link(e)) if status == Status::Voided => {
                            assert_eq!(e, super::service::LinkError::Voided);
                            continue;
                        }
                        Err(ServiceError::Link(e)) => e.to_string(),
                        other => panic!("{action:?} in {status:?} should be refused: {other:?}"),
                    };
                    assert_eq!(text, refusal.to_string(), "{action:?} in {status:?}");
                    let after = svc.store.agreement(&a.id).expect("still there");
                    assert_eq!(after.revision, 1, "{action:?} in {status:?} changes nothing");
                }
            }
        }
    }
}

#[test]
fn a_change_that_lost_the_race_is_decided_again_on_the_fresh_agreement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path());
    let a = svc.create(BAA, &staff()).expect("draft");
    let mut attempts = 0;
    let result = svc.update(&a.id, |fresh, change| {
        attempts += 1;
        if attempts == 1 {
            // Another request commits first (a void), between this load and this commit.
            svc.void(&a.id, "withdrawn meanwhile", &staff()).expect("the other change commits");
        }
        fresh.status.allows(Action::Send)?;
        change.events.push(svc.event(fresh, "noted", &staff(), "", serde_json::json!({})));
        Ok(())
    });
    assert_eq!(attempts, 2, "the decision ran again after the conflict");
    match result {
        Err(ServiceError::State(m)) => assert_eq!(m, "only a draft can be sent; this agreement is voided"),
        other => panic!("the second decision should see the void and refuse: {other:?}"),
    }
    let kinds: Vec<String> = svc.store.events(&a.id).expect("events").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["created", "voided"], "the first decision was not committed");
}
