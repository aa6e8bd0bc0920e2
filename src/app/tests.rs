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

/// A service over sled in `dir`, on a clock the test moves.
fn sled_service(dir: &std::path::Path, clock: ManualClock) -> Service {
    let keys = KeyRing::new(vec![("k1".into(), Secret::new(vec![7u8; 32]))]).expect("key ring");
    let config = Config { data_dir: dir.to_path_buf(), eml_outbox: false, ..Config::default() };
    let seal = SealKeys::load_or_create(&dir.join("seal")).expect("seal keys");
    let store = crate::store::sled_store::SledStore::open(dir).expect("sled opens");
    Service::new(
        Arc::new(store),
        keys,
        Renderer::builtin().expect("renderer"),
        config,
        Arc::new(clock),
        seal,
        crate::secret::vault::Vault::ephemeral().expect("vault"),
    )
}

/// Renewal-due, retention and every agreement's chain, from the index and by a full scan.
fn assert_index_answers_equal_full_scans(svc: &Service, when: &str) {
    for days in [0, 30, 60, 365, 3650] {
        let (ix, scan) = (svc.renewal_due(days).expect("renewal"), svc.renewal_due_scan(days).expect("scan"));
        assert_eq!(ix, scan, "renewal-due within {days} days, {when}");
    }
    let (ix, scan) = (svc.retention_report().expect("retention"), svc.retention_report_scan().expect("scan"));
    assert_eq!(ix, scan, "retention, {when}");
    // Every agreement in a chain (with a parent, or named as one) and a few others: the scan
    // decodes every agreement per call.
    let all = svc.store.agreements().expect("agreements");
    let in_chains: Vec<&str> = all
        .iter()
        .flat_map(|a| a.facts.parent_agreement_id.as_deref().map(|p| [a.id.as_str(), p]))
        .flatten()
        .chain(all.iter().take(5).map(|a| a.id.as_str()))
        .collect();
    for id in in_chains {
        assert_eq!(svc.chain(id).ok(), svc.chain_scan(id).ok(), "chain of {id}, {when}");
    }
    assert!(matches!(svc.chain("ag_missing"), Err(ServiceError::NotFound)));
}

#[test]
fn renewal_retention_and_chains_from_the_index_equal_full_scans_of_a_seeded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The real time: the generated sealing certificate is valid from now on.
    let start = crate::clock::Clock::now(&crate::clock::SystemClock);
    let clock = ManualClock::at(start);
    let svc = sled_service(dir.path(), clock.clone());
    let seeded = super::seed::seed(&svc, 300, 7, &|_| {}).expect("seeds");
    assert_eq!(seeded.agreements, 300);
    assert_eq!(svc.store.agreements().expect("agreements").len(), 300);
    // The seed's mix: every status, and subcontractor BAAs with parents.
    assert!(seeded.by_status.iter().all(|(_, n)| *n > 0), "{:?}", seeded.by_status);
    let all = svc.store.agreements().expect("agreements");
    let parent = all.iter().find(|a| a.facts.parent_agreement_id.is_some()).expect("a subcontractor BAA");
    let top = parent.facts.parent_agreement_id.clone().expect("its parent");
    assert!(!svc.chain(&top).expect("chain").descendants.is_empty());
    assert!(!svc.renewal_due(3650).expect("renewal").is_empty());
    assert_index_answers_equal_full_scans(&svc, "as seeded");

    // A deeper chain with a cycle in hand-entered ids, written behind the service's back and
    // picked up by a rebuild (as at start).
    let mut ids = Vec::new();
    for (n, base) in all.iter().filter(|a| a.kind == "baa").take(4).enumerate() {
        let mut a = base.clone();
        a.id = format!("ag_chain{n}");
        a.revision = 1;
        a.facts.parent_agreement_id = Some(if n == 0 { "ag_chain3".into() } else { format!("ag_chain{}", n - 1) });
        ids.push(a.id.clone());
        svc.store.commit(Change { agreement: Some(a), ..Change::default() }).expect("commits");
    }
    svc.rebuild_index();
    assert_index_answers_equal_full_scans(&svc, "with a cycle");

    // Changes through the service move the index with them.
    let executed = all.iter().find(|a| a.status == Status::Executed).expect("an executed agreement");
    svc.terminate(&executed.id, "2027-01-31", "services ended", &staff()).expect("terminates");
    let mut child = svc.get(&ids[1]).expect("chain member");
    child.facts.parent_agreement_id = None;
    child.revision += 1;
    svc.commit(Change { agreement: Some(child), ..Change::default() }).expect("reparents");
    assert_index_answers_equal_full_scans(&svc, "after changes");

    // Years later: renewals roll forward, retention periods pass.
    for years in [3, 7, 12] {
        clock.set(start + years * 365 * 86_400);
        assert_index_answers_equal_full_scans(&svc, &format!("{years} years on"));
    }
    assert!(!svc.retention_report().expect("retention").is_empty(), "something is past retention 12 years on");
}

/// What the archive answers from its index: a few searches (every page in full), renewal-due
/// and retention.
fn index_answers(svc: &Service) -> Vec<serde_json::Value> {
    use crate::archive::search::Query;
    let all = Query { limit: Some(crate::archive::search::MAX_LIMIT), ..Query::default() };
    let queries = [
        all.clone(),
        Query { status: Some("executed".into()), ..all.clone() },
        Query { state: Some("TX".into()), sort: Some("-updated_at".into()), ..all.clone() },
        Query { q: Some("health".into()), ..all.clone() },
        Query { kind: Some("dua".into()), limit: Some(7), ..all.clone() },
    ];
    assert!(queries.iter().all(|q| q.validate().is_ok()));
    let mut out: Vec<serde_json::Value> =
        queries.iter().map(|q| serde_json::to_value(svc.search(q).expect("a page")).expect("json")).collect();
    out.push(serde_json::to_value(svc.renewal_due(3650).expect("renewal")).expect("json"));
    out.push(serde_json::to_value(svc.retention_report().expect("retention").len()).expect("json"));
    out
}

/// A service over sled in a new directory, seeded with `n` agreements (`bench seed`'s
/// generator), on a clock the test can move, set to the real time (the generated sealing
/// certificate is valid from now on).
fn seeded_sled_service(n: usize, seed: u64) -> (tempfile::TempDir, ManualClock, Service) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(crate::clock::Clock::now(&crate::clock::SystemClock));
    let svc = sled_service(dir.path(), clock.clone());
    super::seed::seed(&svc, n, seed, &|_| {}).expect("seeds");
    (dir, clock, svc)
}

#[test]
fn a_data_directory_without_the_summary_tree_builds_it_at_open_and_the_index_answers_the_same() {
    let (dir, clock, svc) = seeded_sled_service(120, 11);
    let before = index_answers(&svc);
    assert_eq!(before[0]["total"], 120);
    assert!(before[1..4].iter().all(|p| p["total"].as_u64().is_some_and(|n| n > 0)), "{before:?}");
    drop(svc);

    // As a release before the tree left the directory.
    let store = crate::store::sled_store::SledStore::open(dir.path()).expect("opens");
    store.drop_summaries().expect("drops the tree");
    drop(store);

    let svc = sled_service(dir.path(), clock.clone());
    assert_eq!(index_answers(&svc), before, "the same answers from the rebuilt tree");
    assert_index_answers_equal_full_scans(&svc, "after the tree was rebuilt");
}

#[test]
fn a_damaged_summary_is_read_from_its_record_and_the_index_answers_the_same() {
    let (dir, clock, svc) = seeded_sled_service(60, 12);
    let before = index_answers(&svc);
    let all = svc.store.agreements().expect("agreements");
    let executed = all.iter().find(|a| a.final_sha256.is_some()).expect("an executed agreement").clone();
    let mut damaged: Vec<String> = all.iter().step_by(17).take(2).map(|a| a.id.clone()).collect();
    damaged.push(executed.id.clone());
    drop(svc);

    // Three summaries damaged three ways (an unknown encoding, cut short, empty), and one with
    // no record behind it.
    let store = crate::store::sled_store::SledStore::open(dir.path()).expect("opens");
    for (id, bytes) in damaged.iter().zip([&[9u8, 1, 2][..], &[2, 5, b'b'][..], &[][..]]) {
        store.put_raw_summary(id, bytes).expect("overwrites");
    }
    store.put_raw_summary("ag_ghost", &[9]).expect("writes");
    drop(store);

    let svc = sled_service(dir.path(), clock.clone());
    assert_eq!(index_answers(&svc), before, "the same answers with three summaries damaged");
    assert_index_answers_equal_full_scans(&svc, "with three summaries damaged");
    let index = svc.index.read().expect("index");
    for id in &damaged {
        assert!(index.get(id).is_some(), "{id} is in the index");
    }
    assert!(index.get("ag_ghost").is_none(), "a summary without a record is left out");
    drop(index);
    // Every agreement was read one way or the other (the orphan names none): the index is whole
    // and kept as a snapshot.
    assert!(svc.save_index_snapshot().expect("answers"), "a whole index is kept");
    assert!(super::snapshot::path(dir.path()).exists());
    let index = svc.index.read().expect("index");
    assert_eq!(index.len(), all.len());
    drop(index);
    // A page reads a damaged summary from its record too.
    let want: Vec<Option<crate::domain::agreement::Summary>> = damaged
        .iter()
        .map(|id| Some(crate::domain::agreement::Summary::from(&svc.store.agreement(id).expect("stored"))))
        .collect();
    assert_eq!(svc.summaries(&damaged).expect("read"), want);
    // The recovered executed agreement's final copy is found by its digest (verification).
    let key = super::service::digest_key(executed.final_sha256.as_deref().expect("final")).expect("hex");
    let digests = svc.digests.read().expect("digests");
    assert_eq!(digests.get(&key).map(|(id, which, _)| (id.to_string(), *which)), Some((executed.id.clone(), "final")));
}

#[test]
fn summaries_read_in_parallel_batches_answer_one_per_id_in_the_order_asked() {
    let (_dir, _clock, svc) = seeded_sled_service(40, 5);
    let stored: Vec<String> = svc.store.agreements().expect("agreements").into_iter().map(|a| a.id).collect();
    // 700 ids (three batches of 256): each stored one many times, in no order, and ids no
    // agreement has among them.
    let ids: Vec<String> = (0..700)
        .map(|i| if i % 7 == 3 { format!("ag_missing{i}") } else { stored[(i * 13) % stored.len()].clone() })
        .collect();
    let got = svc.summaries(&ids).expect("read");
    assert_eq!(got.len(), ids.len());
    for (id, s) in ids.iter().zip(&got) {
        match svc.store.agreement(id) {
            Ok(a) => assert_eq!(s.as_ref(), Some(&crate::domain::agreement::Summary::from(&a)), "{id}"),
            Err(_) => assert!(s.is_none(), "{id} has no agreement"),
        }
    }
    // An export lists every match in the index's order.
    let q = crate::archive::search::Query { sort: Some("counterparty".into()), ..Default::default() };
    let order = svc.index.read().expect("index").export(&q);
    let listed: Vec<String> = svc.export(&q).expect("export").into_iter().map(|e| e.id).collect();
    assert_eq!(listed, order);
}

#[test]
fn a_page_leaves_out_an_agreement_the_store_no_longer_has_and_counts_what_the_index_matched() {
    let (_dir, _clock, svc) = seeded_sled_service(12, 9);
    let all = crate::archive::search::Query::default();
    let before = svc.search(&all).expect("a page");
    // An entry the index has and the store does not (removed between the two reads).
    let ghost =
        crate::archive::search::Entry { id: "ag_ghost".into(), updated_at: u64::MAX, ..before.items[0].clone() };
    svc.index.write().expect("index").upsert(ghost);
    let page = svc.search(&all).expect("a page");
    assert_eq!(page.total, before.total + 1, "the index matched it");
    assert_eq!(page.items, before.items, "the page lists what the store has");
    let exported: Vec<String> = svc.export(&all).expect("export").into_iter().map(|e| e.id).collect();
    assert!(!exported.iter().any(|id| id == "ag_ghost"));
    assert_eq!(exported.len(), before.total);
}

#[test]
fn an_executed_record_from_before_the_facts_takes_its_term_from_its_intake_for_the_renewal_notice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path());
    // Renews on 2026-12-15, 17 days after NOW: inside the 30-day notice window.
    let intake = BAA.replace("\"2027-01-01\"", "\"2023-12-15\"");
    let base = svc.create(&intake, &staff()).expect("a draft");
    let mut a = in_status(&svc, &base, Status::Executed, 1);
    // As a release before the record's facts wrote it: no effective date on the record.
    a.facts.effective_date = String::new();
    a.revision = 2;
    svc.commit(Change { agreement: Some(a.clone()), ..Change::default() }).expect("the old-style record");
    assert_eq!(svc.store.agreement(&a.id).expect("stored").life().effective, None);

    assert_eq!(svc.queue_due_messages().expect("the tick"), 1);
    let ids: Vec<String> = svc.store.agreement_messages(&a.id).expect("messages").into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [format!("notice:{}:renewal:2026-12-15", a.id)]);
    assert_eq!(svc.queue_due_messages().expect("the tick again"), 0, "a notice goes once");
}

/// Everything the index holds, comparable: every entry with its lifecycle facts and the
/// children named for it, in id order; the digest map in key order; and the index's answers.
fn index_state(svc: &Service) -> IndexState {
    let index = svc.index.read().unwrap_or_else(|p| p.into_inner());
    let mut rows: Vec<String> = index
        .lives()
        .map(|(e, l)| format!("{} {l:?} {:?}", e.held(), index.children(e.id()).collect::<Vec<_>>()))
        .collect();
    rows.sort();
    drop(index);
    let digests = svc.digests.read().unwrap_or_else(|p| p.into_inner());
    let mut docs: Vec<String> =
        digests.iter().map(|(k, v)| format!("{} {} {} {}", hex::encode(k), v.0, v.1, v.2)).collect();
    docs.sort();
    drop(digests);
    (rows, docs, index_answers(svc))
}

/// Asserts two [`index_state`]s are equal, naming only what differs. The seed gives many
/// agreements the same document, and which of them the digest map names for it depends on the
/// order they were indexed in: a rebuild and a running index may differ there, and are
/// compared without the owners; a snapshot keeps them exactly.
#[track_caller]
fn assert_same_index(a: &IndexState, b: &IndexState, owners: bool, when: &str) {
    let only = |x: &[String], y: &[String]| x.iter().filter(|r| !y.contains(r)).cloned().collect::<Vec<_>>();
    let docs = |s: &IndexState| -> Vec<String> {
        s.1.iter()
            .map(|d| if owners { d.clone() } else { d.split(' ').filter(|w| !w.contains("ag_")).collect() })
            .collect()
    };
    assert_eq!(only(&a.0, &b.0), only(&b.0, &a.0), "rows, {when}");
    assert_eq!(only(&docs(a), &docs(b)), only(&docs(b), &docs(a)), "documents, {when}");
    assert_eq!((a.0.len(), a.1.len()), (b.0.len(), b.1.len()), "rows and documents, {when}");
    for (i, (x, y)) in a.2.iter().zip(&b.2).enumerate() {
        assert!(x == y, "answer {i}, {when}: {x}\n{y}");
    }
}

type IndexState = (Vec<String>, Vec<String>, Vec<serde_json::Value>);

fn snapshot_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    super::snapshot::path(dir.path())
}

fn from_snapshot(svc: &Service) -> bool {
    svc.index_from_snapshot.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn a_clean_stop_leaves_a_snapshot_the_next_start_reads_instead_of_building_the_same_index() {
    let (dir, clock, svc) = seeded_sled_service(150, 13);
    assert!(!from_snapshot(&svc), "a new directory has none");
    let before = index_state(&svc);
    assert_eq!(before.0.len(), 150);
    assert!(!before.1.is_empty(), "documents by digest");
    assert!(svc.save_index_snapshot().expect("writes"), "sled keeps the token");
    drop(svc);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(snapshot_path(&dir)).expect("the snapshot is there").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let svc = sled_service(dir.path(), clock.clone());
    assert!(from_snapshot(&svc), "read from the snapshot");
    assert!(!snapshot_path(&dir).exists(), "and spent");
    assert_same_index(&index_state(&svc), &before, true, "the index read is the index written");
    assert_index_answers_equal_full_scans(&svc, "read from the snapshot");
    // It goes on like a built one.
    let executed = svc.store.agreements().expect("agreements").into_iter().find(|a| a.status == Status::Executed);
    let executed = executed.expect("an executed agreement");
    svc.terminate(&executed.id, "2027-01-31", "services ended", &staff()).expect("terminates");
    assert_index_answers_equal_full_scans(&svc, "read from the snapshot, then changed");
    let after = index_state(&svc);
    drop(svc);

    // Stopped without a snapshot (as by a crash): the next start builds the same index.
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc));
    // A change that panicked under the write lock may be missing from the index: no snapshot.
    let panicked = std::thread::scope(|s| {
        s.spawn(|| {
            let _w = svc.write();
            panic!("a bug while a change is applied");
        })
        .join()
    });
    assert!(panicked.is_err());
    assert!(!svc.save_index_snapshot().expect("answers"), "no snapshot after a panic under the write lock");
    assert!(!snapshot_path(&dir).exists());
    assert_same_index(&index_state(&svc), &after, false, "built after a stop without a snapshot");
}

#[test]
fn a_commit_after_the_snapshot_another_open_an_earlier_release_or_a_damaged_file_makes_the_next_start_build_the_index()
{
    let (dir, clock, svc) = seeded_sled_service(40, 14);
    let executed = svc.store.agreements().expect("agreements").into_iter().find(|a| a.status == Status::Executed);
    let executed = executed.expect("an executed agreement");

    // A commit after the snapshot (a writer still at work when the server stopped).
    assert!(svc.save_index_snapshot().expect("writes"));
    svc.terminate(&executed.id, "2027-01-31", "services ended", &staff()).expect("terminates");
    let terminated = index_state(&svc);
    drop(svc);
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc), "the commit took the token out");
    assert_same_index(&index_state(&svc), &terminated, false, "the termination is in the index");

    // Another open of the store between the stop and the start (an operator command).
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    drop(crate::store::sled_store::SledStore::open(dir.path()).expect("opens"));
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc), "the other open took the token out");
    assert_same_index(&index_state(&svc), &terminated, false, "built");

    // One byte of the file changed.
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    let mut bytes = std::fs::read(snapshot_path(&dir)).expect("reads");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(snapshot_path(&dir), &bytes).expect("writes");
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc), "the checksum refuses it");
    assert_same_index(&index_state(&svc), &terminated, false, "built");

    // The file of an earlier stop, left beside a later token.
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    let earlier = std::fs::read(snapshot_path(&dir)).expect("reads");
    let svc = sled_service(dir.path(), clock.clone());
    assert!(from_snapshot(&svc));
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    std::fs::write(snapshot_path(&dir), &earlier).expect("writes");
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc), "its token is not the store's");
    assert_same_index(&index_state(&svc), &terminated, false, "built");

    // An earlier release, which knows nothing of the token, ran in between and changed an
    // agreement: the token is still in the store, but the data file is not as it was sealed.
    assert!(svc.save_index_snapshot().expect("writes"));
    let mut renamed = svc.store.agreement(&executed.id).expect("the agreement");
    drop(svc);
    renamed.title = "Renamed by an earlier release".into();
    // Past the sealed stamp's clock tick (file times may be kept to a few milliseconds): the
    // earlier release's write below must be told apart by its time, as a later run would be.
    let lock = dir.path().join("sled").join("db");
    let sealed = std::fs::metadata(&lock).and_then(|m| m.modified()).expect("the data file's time");
    while std::time::SystemTime::now().duration_since(sealed).unwrap_or_default() < std::time::Duration::from_millis(50)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let db = sled::Config::new().path(dir.path().join("sled")).open().expect("sled opens");
    let json = serde_json::to_vec(&renamed).expect("json");
    db.open_tree("agreements").expect("tree").insert(renamed.id.as_bytes(), json).expect("writes");
    let summary = crate::store::summary_bytes(&renamed);
    db.open_tree("agreement_summaries").expect("tree").insert(renamed.id.as_bytes(), summary).expect("writes");
    db.flush().expect("flushes");
    drop(db);
    while std::fs::File::open(&lock).expect("the data file").try_lock().is_err() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc), "the seal no longer matches the data file");
    // The index was rebuilt from the store: its text has the new title.
    let q = crate::archive::search::Query { q: Some("renamed by an earlier release".into()), ..Default::default() };
    let found: Vec<String> = svc.search(&q).expect("a page").items.into_iter().map(|e| e.id).collect();
    assert_eq!(found, std::slice::from_ref(&executed.id));
    let terminated = index_state(&svc);

    // Missing, or cut short.
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    std::fs::remove_file(snapshot_path(&dir)).expect("removes");
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc));
    assert!(svc.save_index_snapshot().expect("writes"));
    drop(svc);
    let bytes = std::fs::read(snapshot_path(&dir)).expect("reads");
    std::fs::write(snapshot_path(&dir), &bytes[..bytes.len() - 40]).expect("writes");
    let svc = sled_service(dir.path(), clock.clone());
    assert!(!from_snapshot(&svc));
    assert_same_index(&index_state(&svc), &terminated, false, "built");
}

#[test]
fn an_index_that_lacks_an_agreement_it_could_not_read_is_not_kept_as_a_snapshot() {
    let (dir, clock, svc) = seeded_sled_service(20, 16);
    let a = svc.store.agreements().expect("agreements").swap_remove(3);
    let record = serde_json::to_vec(&a).expect("json");
    drop(svc);
    let store = crate::store::sled_store::SledStore::open(dir.path()).expect("opens");
    store.put_raw_summary(&a.id, &[9]).expect("damages the summary");
    store.put_raw_agreement(&a.id, b"{ not an agreement").expect("damages the record");
    drop(store);

    let svc = sled_service(dir.path(), clock.clone());
    assert!(svc.index.read().expect("index").get(&a.id).is_none(), "read neither way");
    assert!(!svc.save_index_snapshot().expect("answers"), "an index in doubt is not kept");
    assert!(!snapshot_path(&dir).exists());
    drop(svc);

    // The record mended: the next start reads it (its summary still damaged), and that index is
    // whole again and kept.
    let store = crate::store::sled_store::SledStore::open(dir.path()).expect("opens");
    store.put_raw_agreement(&a.id, &record).expect("mends the record");
    drop(store);
    let svc = sled_service(dir.path(), clock.clone());
    assert!(svc.index.read().expect("index").get(&a.id).is_some());
    assert!(svc.save_index_snapshot().expect("answers"));
    assert!(snapshot_path(&dir).exists());
}

#[test]
fn a_snapshot_of_an_earlier_day_and_a_running_index_on_a_new_day_move_renewals_as_a_rebuild_would() {
    let (dir, clock, svc) = seeded_sled_service(150, 15);
    let start = crate::clock::Clock::now(&clock);
    assert!(svc.save_index_snapshot().expect("writes"));
    let then = index_state(&svc);
    drop(svc);

    // Three years on, the snapshot of that day is read with its renewal dates moved.
    clock.set(start + 3 * 365 * 86_400);
    let svc = sled_service(dir.path(), clock.clone());
    assert!(from_snapshot(&svc));
    let read = index_state(&svc);
    assert_ne!(read.0, then.0, "auto-renewing terms rolled forward");
    svc.rebuild_index();
    assert_same_index(&index_state(&svc), &read, false, "as a rebuild on the day makes them");
    let by_search = |svc: &Service| {
        let q = crate::archive::search::Query {
            renewal_before: Some(svc.today().add_months(3).to_string()),
            limit: Some(crate::archive::search::MAX_LIMIT),
            ..Default::default()
        };
        svc.index.read().unwrap_or_else(|p| p.into_inner()).search(&q).total
    };
    assert!(by_search(&svc) > 0, "renewals due within three months of the day");

    // A running index on a new day: the reminder tick brings it forward.
    assert_eq!(svc.refresh_renewals(), 0, "nothing moves within the day");
    let due_before = by_search(&svc);
    clock.set(start + 5 * 365 * 86_400);
    svc.queue_due_messages().expect("the tick runs");
    assert_eq!(svc.refresh_renewals(), 0, "the tick moved them already");
    let refreshed = index_state(&svc);
    assert_ne!(refreshed.0, read.0, "two years on, dates moved");
    assert!(due_before > 0);
    svc.rebuild_index();
    assert_same_index(&index_state(&svc), &refreshed, false, "the running index brought forward, and a rebuild");
    assert!(by_search(&svc) > 0);
}
