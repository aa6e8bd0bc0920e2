//! The agreements' summaries (issue 14 §6): what the archive index needs of every agreement at
//! start, without reading (and decoding) every ~2.6 KB agreement record.
//!
//! One sled tree, `agreement_summaries`: agreement id → that agreement's [`Summary`] in a compact
//! binary encoding ([`encode`], ~150–250 bytes against the record's ~2.6 KB). The entry is
//! written in the same transaction as the agreement record (the only writer of `agreements` is
//! the commit; see `SledStore::commit_nowait`), always as `Summary::from(&record)`, so it can
//! never disagree with the record. It is derived data, like [`super::outbox_index`]: `backup`
//! leaves it out, `restore` rebuilds it, and it is rebuilt at open when its marker is missing
//! (a data directory from a release before it). The marker is written last, so a build cut
//! short by a crash runs again at the next open.
//!
//! Encoding (version 2): a version byte, then the fields in [`Summary`]'s order without the id
//! (it is the key); integers as LEB128 varints, strings as varint length + UTF-8, options as a
//! tag byte (0 none, 1 some), a SHA-256 kept as a tag (2: 32 raw bytes, for 64 lowercase hex
//! digits; 1: the string as stored), the status as one byte ([`status_byte`]). Version 1 had
//! no `revision` (the last field); a tree in it is rebuilt at the first open by this release
//! (its marker is not this one's), and a version-1 value is still read, with revision 0, which
//! no stored record has, so no reminder wake mark ever matches it.

use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::StoreError;
use crate::domain::agreement::{Status, Summary, SummaryFacts};
use crate::domain::compact::{Reader, put_opt_str, put_opt_u64, put_sha, put_str, put_u64};

/// Present once the tree holds every agreement's summary in encoding 2. It starts with a NUL
/// byte, which no agreement id contains; a later encoding names its own marker, so a directory
/// built by this release is rebuilt by that one (and one built by the release before, whose
/// marker was `\0built/v1`, by this one; the rebuild clears the tree, that marker with it, so
/// going back a release rebuilds it there too).
pub(super) const MARKER: &[u8] = b"\0built/v2";

/// The encoding's version (the first byte of every value).
const VERSION: u8 = 2;

/// Byte → status: the inverse of [`status_byte`]. Append only: a byte once given keeps its status.
const STATUSES: [Status; 10] = [
    Status::Draft,
    Status::AwaitingApproval,
    Status::Sent,
    Status::PartiallySigned,
    Status::Executed,
    Status::Declined,
    Status::Voided,
    Status::Expired,
    Status::Terminated,
    Status::Closed,
];

/// Status → byte; exhaustive, so a new status does not compile until it has its byte (and its
/// place in [`STATUSES`]).
fn status_byte(s: Status) -> u8 {
    match s {
        Status::Draft => 0,
        Status::AwaitingApproval => 1,
        Status::Sent => 2,
        Status::PartiallySigned => 3,
        Status::Executed => 4,
        Status::Declined => 5,
        Status::Voided => 6,
        Status::Expired => 7,
        Status::Terminated => 8,
        Status::Closed => 9,
    }
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The summary entry for `s`, inside the transaction that writes its agreement.
pub(super) fn index_tx<E>(t: &TransactionalTree, s: &Summary) -> Result<(), ConflictableTransactionError<E>> {
    t.insert(s.id.as_bytes(), encode(s))?;
    Ok(())
}

/// Builds the tree from the agreement records unless it is already built.
/// Returns how many summaries it wrote (0: already built).
pub(super) fn ensure_built(agreements: &Tree, summaries: &Tree) -> Result<usize, StoreError> {
    if summaries.contains_key(MARKER).map_err(io)? {
        return Ok(0);
    }
    rebuild(agreements, summaries)
}

/// Rebuilds the tree from the agreement records (after a restore, or for an older data
/// directory): one pass, each record decoded as a [`Summary`] (what the start-up scan read
/// before this tree existed), the marker written last.
pub(super) fn rebuild(agreements: &Tree, summaries: &Tree) -> Result<usize, StoreError> {
    let started = std::time::Instant::now();
    summaries.clear().map_err(io)?;
    let mut n = 0;
    let mut batch = sled::Batch::default();
    for v in agreements.iter().values() {
        let s: Summary = serde_json::from_slice(&v.map_err(io)?).map_err(io)?;
        batch.insert(s.id.as_bytes(), encode(&s));
        n += 1;
        if n % 1000 == 0 {
            summaries.apply_batch(std::mem::take(&mut batch)).map_err(io)?;
        }
    }
    summaries.apply_batch(batch).map_err(io)?;
    summaries.insert(MARKER, &[] as &[u8]).map_err(io)?;
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(agreements = n, ms, "agreement summaries built from the records: {n} in {ms} ms");
    Ok(n)
}

/// Every stored summary, in id order, handed to `f` as read, for [`decode_entry`] (on any
/// thread).
pub(super) fn scan_stored(
    summaries: &Tree,
    f: &mut (dyn FnMut(super::StoredSummary) + Send),
) -> Result<(), StoreError> {
    for kv in summaries.iter() {
        let (k, v) = kv.map_err(io)?;
        if k.as_ref() != MARKER {
            f(super::StoredSummary(super::Stored::Sled(k, v)));
        }
    }
    Ok(())
}

/// One entry of the tree: its key (the agreement id) and value.
pub(super) fn decode_entry(k: &[u8], v: &[u8]) -> Result<Summary, StoreError> {
    let id = std::str::from_utf8(k).map_err(|_| io("agreement_summaries: a key is not UTF-8"))?;
    decode(id, v).map_err(|e| io(format!("agreement_summaries/{id}: {e}")))
}

/// The stored summary of one agreement (tests).
#[cfg(test)]
pub(super) fn get(summaries: &Tree, id: &str) -> Result<Option<Summary>, StoreError> {
    summaries.get(id.as_bytes()).map_err(io)?.map(|v| decode(id, &v).map_err(io)).transpose()
}

/// `s` without its id (the key), in encoding [`VERSION`].
pub fn encode(s: &Summary) -> Vec<u8> {
    let mut w = Vec::with_capacity(160);
    w.push(VERSION);
    for t in [&s.kind, &s.title, &s.upstream_name, &s.downstream_name] {
        put_str(&mut w, t);
    }
    w.push(status_byte(s.status));
    put_u64(&mut w, s.created_at);
    put_u64(&mut w, s.updated_at);
    put_str(&mut w, &s.created_by);
    put_opt_u64(&mut w, s.executed_at);
    put_sha(&mut w, s.sent_sha256.as_deref());
    put_sha(&mut w, s.final_sha256.as_deref());
    put_opt_u64(&mut w, s.sent_bytes);
    put_opt_u64(&mut w, s.final_bytes);
    put_u64(&mut w, s.facts.states.len() as u64);
    for st in &s.facts.states {
        put_str(&mut w, st);
    }
    put_str(&mut w, &s.facts.effective_date);
    put_u64(&mut w, u64::from(s.facts.term_months));
    w.push(u8::from(s.facts.auto_renew));
    put_opt_str(&mut w, s.facts.parent_agreement_id.as_deref());
    put_opt_str(&mut w, s.termination_date.as_deref());
    put_opt_u64(&mut w, s.disposed_at);
    put_u64(&mut w, s.revision);
    w
}

/// The summary of agreement `id` from its encoded value.
pub fn decode(id: &str, bytes: &[u8]) -> Result<Summary, String> {
    let mut r = Reader(bytes);
    let version = match r.byte()? {
        v @ (1 | VERSION) => v,
        v => return Err(format!("unknown summary encoding {v}")),
    };
    let kind = r.string()?;
    let title = r.string()?;
    let upstream_name = r.string()?;
    let downstream_name = r.string()?;
    let status = *STATUSES.get(usize::from(r.byte()?)).ok_or("unknown status")?;
    let created_at = r.u64()?;
    let updated_at = r.u64()?;
    let created_by = r.string()?;
    let executed_at = r.opt_u64()?;
    let sent_sha256 = r.sha()?;
    let final_sha256 = r.sha()?;
    let sent_bytes = r.opt_u64()?;
    let final_bytes = r.opt_u64()?;
    let n = r.count()?;
    let states = (0..n).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
    let effective_date = r.string()?;
    let term_months = u16::try_from(r.u64()?).map_err(|_| "term_months out of range")?;
    let auto_renew = match r.byte()? {
        0 => false,
        1 => true,
        _ => return Err("bad auto_renew".into()),
    };
    let parent_agreement_id = r.opt_string()?;
    let termination_date = r.opt_string()?;
    let disposed_at = r.opt_u64()?;
    let revision = if version >= 2 { r.u64()? } else { 0 };
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(Summary {
        id: id.to_string(),
        kind,
        title,
        upstream_name,
        downstream_name,
        status,
        created_at,
        updated_at,
        created_by,
        executed_at,
        sent_sha256,
        final_sha256,
        sent_bytes,
        final_bytes,
        facts: SummaryFacts { states, effective_date, term_months, auto_renew, parent_agreement_id },
        termination_date,
        disposed_at,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agreement::Agreement;
    use crate::store::sled_store::SledStore;
    use crate::store::{Change, Store};

    fn agreement(id: &str, n: u64) -> Agreement {
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "baa", "title": format!("Hospital Ünïcode № {n}"), "upstream_name": "Up",
            "downstream_name": "Down", "status": "sent", "version": 1, "document_sha256": "",
            "check_passes": true, "created_at": 1_795_824_000 + n, "updated_at": 1_795_824_000 + n,
            "created_by": "sales@example.test", "sent_at": 2, "sent_by": "test",
            "sent_sha256": format!("{:064x}", n + 1), "sent_bytes": 90_000 + n, "executed_at": null,
            "final_sha256": null, "void_reason": null, "signers": [], "revision": 1,
            "facts": {"states": ["TX", "CA"], "effective_date": "2026-12-01", "term_months": 36,
                      "auto_renew": true, "parent_agreement_id": null}
        }))
        .expect("an agreement")
    }

    /// Every record's stored summary is `Summary::from(&record)`, and the scan hands over
    /// exactly those, one per agreement.
    fn assert_tree_matches_records(store: &SledStore) {
        let records = store.agreements().expect("records");
        for a in &records {
            let stored = get(store.summary_tree(), &a.id).expect("reads");
            assert_eq!(stored, Some(Summary::from(a)), "{}", a.id);
        }
        let mut scanned = Vec::new();
        store.agreement_summaries(&mut |s| scanned.push(s)).expect("scan");
        let expected: Vec<Summary> = records.iter().map(Summary::from).collect();
        assert_eq!(scanned, expected, "the scan gives every record's summary, in id order");
        let mut stored = Vec::new();
        store.stored_summaries(&mut |s| stored.push(s)).expect("scan");
        let decoded: Vec<Summary> = stored.into_iter().map(|s| s.decode().expect("decodes")).collect();
        assert_eq!(decoded, expected, "the undecoded scan decodes to the same summaries");
    }

    /// A few agreements committed, then changed again (executed, terminated, a parent set,
    /// disposed of): the second revisions' summaries replace the first.
    fn committed_store(dir: &std::path::Path) -> SledStore {
        let store = SledStore::open(dir).expect("opens");
        for n in 0..6 {
            let a = agreement(&format!("ag_{n:02}"), n);
            store.commit(Change { agreement: Some(a), ..Change::default() }).expect("commits");
        }
        for n in [1, 4] {
            let mut a = store.agreement(&format!("ag_{n:02}")).expect("stored");
            a.revision += 1;
            a.status = Status::Terminated;
            a.executed_at = Some(1_795_900_000);
            a.final_sha256 = Some("not-a-sha: kept as written".into());
            a.final_bytes = Some(123_456);
            a.facts.parent_agreement_id = Some("ag_00".into());
            a.termination = Some(crate::domain::agreement::Termination {
                date: "2027-01-31".into(),
                reason: "ended".into(),
                by: "legal".into(),
                at: 1_795_900_100,
            });
            a.disposed_at = (n == 4).then_some(1_999_999_999);
            store.commit(Change { agreement: Some(a), ..Change::default() }).expect("commits the change");
        }
        store
    }

    #[test]
    fn the_encoding_round_trips_every_field_and_every_status() {
        let mut s = Summary::from(&agreement("ag_x", 7));
        for status in STATUSES {
            s.status = status;
            assert_eq!(STATUSES[usize::from(status_byte(status))], status);
            assert_eq!(decode("ag_x", &encode(&s)), Ok(s.clone()));
        }
        s.sent_sha256 = Some("ABCDEF".into());
        s.final_sha256 = Some("F".repeat(64));
        s.executed_at = Some(u64::MAX);
        s.sent_bytes = None;
        s.final_bytes = Some(0);
        s.facts = SummaryFacts {
            states: vec![],
            effective_date: String::new(),
            term_months: u16::MAX,
            auto_renew: false,
            parent_agreement_id: Some("ag_parent".into()),
        };
        s.termination_date = Some("2030-02-28".into());
        s.disposed_at = Some(1);
        assert_eq!(decode("ag_x", &encode(&s)), Ok(s.clone()));
        // A lowercase SHA-256 is stored as its 32 bytes (a tag byte more than none at all).
        let with = Summary::from(&agreement("ag_x", 7));
        let without = Summary { sent_sha256: None, ..with.clone() };
        assert_eq!(encode(&with).len(), encode(&without).len() + 32);
    }

    #[test]
    fn a_value_in_an_unknown_encoding_or_cut_short_is_an_error_not_a_guess() {
        let good = encode(&Summary::from(&agreement("ag_x", 7)));
        let mut newer = good.clone();
        newer[0] = VERSION + 1;
        assert_eq!(decode("ag_x", &newer), Err(format!("unknown summary encoding {}", VERSION + 1)));
        for cut in 0..good.len() {
            assert!(decode("ag_x", &good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode("ag_x", &[good.as_slice(), b"!"].concat()), Err("trailing bytes".into()));
    }

    #[test]
    fn every_commit_writes_its_agreements_summary_from_the_record_in_the_same_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = committed_store(dir.path());
        assert_eq!(store.summaries_built(), 0, "a new directory has nothing to build");
        assert_tree_matches_records(&store);
        let terminated = get(store.summary_tree(), "ag_04").expect("reads").expect("present");
        assert_eq!(terminated.status, Status::Terminated);
        assert_eq!(terminated.termination_date.as_deref(), Some("2027-01-31"));
        // A commit refused for its stale revision changes neither the record nor its summary.
        let stale = agreement("ag_02", 99);
        assert!(matches!(
            store.commit(Change { agreement: Some(stale), ..Change::default() }),
            Err(StoreError::Conflict)
        ));
        assert_tree_matches_records(&store);
    }

    #[test]
    fn a_directory_without_the_tree_builds_it_once_at_open_with_the_same_summaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = committed_store(dir.path());
        let mut before = Vec::new();
        store.agreement_summaries(&mut |s| before.push(s)).expect("scan");
        // As a release before the tree left it, plus an entry of a build cut short (no marker).
        store.drop_summaries().expect("drops");
        store.summary_tree().insert("ag_99", encode(&Summary::from(&agreement("ag_99", 99)))).expect("put");
        drop(store);

        let store = SledStore::open(dir.path()).expect("reopens");
        assert_eq!(store.summaries_built(), 6, "built from the six records");
        assert_eq!(get(store.summary_tree(), "ag_99").expect("reads"), None, "the unfinished build is gone");
        assert_tree_matches_records(&store);
        let mut after = Vec::new();
        store.agreement_summaries(&mut |s| after.push(s)).expect("scan");
        assert_eq!(after, before);
        drop(store);

        let store = SledStore::open(dir.path()).expect("opens again");
        assert_eq!(store.summaries_built(), 0, "built once");
        assert_tree_matches_records(&store);
    }

    /// `s` in encoding 1 (the release before `revision`): version byte 1, no revision at the end.
    fn encode_v1(s: &Summary) -> Vec<u8> {
        let mut v = encode(&Summary { revision: 0, ..s.clone() });
        v[0] = 1;
        v.pop(); // the varint 0 of the revision
        v
    }

    #[test]
    fn a_tree_in_encoding_1_reads_with_revision_0_and_is_rebuilt_with_the_revisions_at_open() {
        let s = Summary { revision: 7, ..Summary::from(&agreement("ag_x", 7)) };
        assert_eq!(decode("ag_x", &encode_v1(&s)), Ok(Summary { revision: 0, ..s.clone() }));

        let dir = tempfile::tempdir().expect("tempdir");
        let store = committed_store(dir.path());
        let mut before = Vec::new();
        store.agreement_summaries(&mut |s| before.push(s)).expect("scan");
        assert!(before.iter().all(|s| s.revision > 0), "every record has a revision");
        // The tree as the release before left it: its marker and every value in encoding 1.
        store.drop_summaries().expect("drops");
        for s in &before {
            store.summary_tree().insert(s.id.as_bytes(), encode_v1(s)).expect("put");
        }
        store.summary_tree().insert(b"\0built/v1", &[] as &[u8]).expect("marker");
        drop(store);

        let store = SledStore::open(dir.path()).expect("reopens");
        assert_eq!(store.summaries_built(), before.len(), "rebuilt from the records");
        assert_eq!(store.summary_tree().get(b"\0built/v1").expect("reads"), None, "the old marker is gone");
        let mut after = Vec::new();
        store.agreement_summaries(&mut |s| after.push(s)).expect("scan");
        assert_eq!(after, before, "the revisions are back");
    }

    #[test]
    fn backup_and_restore_give_the_same_summaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = committed_store(dir.path());
        let mut before = Vec::new();
        store.agreement_summaries(&mut |s| before.push(s)).expect("scan");
        let mut dump = Vec::new();
        store.dump(&mut dump).expect("dumps");
        assert!(!String::from_utf8_lossy(&dump).contains("agreement_summaries"), "derived: not in the backup");

        let other = tempfile::tempdir().expect("tempdir");
        let restored = SledStore::open(other.path()).expect("opens empty");
        restored.restore(dump.as_slice()).expect("restores");
        assert_tree_matches_records(&restored);
        let mut after = Vec::new();
        restored.agreement_summaries(&mut |s| after.push(s)).expect("scan");
        assert_eq!(after, before);
        drop(restored);
        assert_eq!(SledStore::open(other.path()).expect("reopens").summaries_built(), 0, "built by the restore");
    }
}
