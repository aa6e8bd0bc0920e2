//! Archive operations on the service: lifecycle (renewal, termination, return or destruction of
//! PHI), subcontractor chains, verification of a file against the archive, the access log,
//! retention and disposal.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::service::{Actor, Service, ServiceError};
use crate::clock::rfc3339;
use crate::domain::actions::Action;
use crate::domain::agreement::{Agreement, Disposition, Status, Termination};
use crate::domain::intake::Date;
use crate::store::{Change, Event};

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    #[serde(rename = "match")]
    pub matched: bool,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_id: Option<String>,
    /// `final`, `sent` or `draft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed_at: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<serde_json::Value>,
    /// A plain sentence when the file is close to an archived copy but not identical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_miss: Option<String>,
    /// The embedded PAdES seal: present, valid, by which certificate, changed after sealing.
    pub seal: crate::seal::SealReport,
}

/// The subcontractor chain around an agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// From the top (the covered entity's BAA) down to this agreement's parent.
    pub ancestors: Vec<ChainLink>,
    /// Every agreement below this one, depth first.
    pub descendants: Vec<ChainLink>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    pub id: String,
    pub title: String,
    pub parties: [String; 2],
    pub status: Status,
    pub depth: usize,
}

fn link(a: &Agreement, depth: usize) -> ChainLink {
    ChainLink {
        id: a.id.clone(),
        title: a.title.clone(),
        parties: [a.upstream_name.clone(), a.downstream_name.clone()],
        status: a.status,
        depth,
    }
}

/// One agreement past its retention date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRow {
    pub id: String,
    pub title: String,
    pub parties: [String; 2],
    pub status: Status,
    pub retain_until: String,
}

fn field(ptr: &str, msg: &str) -> ServiceError {
    ServiceError::Field(ptr.into(), msg.into())
}

fn date_field(ptr: &str, s: &str) -> Result<Date, ServiceError> {
    Date::parse(s.trim()).map_err(|m| field(ptr, &m.to_string()))
}

impl Service {
    /// Executed agreements whose renewal (or term end) falls within `days` of today. The archive
    /// index picks them ([`crate::archive::lifecycle`]: no scan of the store); the store is read
    /// for those only (their titles and parties).
    pub fn renewal_due(&self, days: u32) -> Result<Vec<serde_json::Value>, ServiceError> {
        let today = self.today();
        let due: Vec<((Date, bool), String)> = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            crate::archive::lifecycle::renewal_due(&index, today, days)
                .into_iter()
                .map(|(d, e, l)| ((d, l.auto_renew), e.id().to_string()))
                .collect()
        };
        Ok(self
            .with_summaries(due)?
            .into_iter()
            .map(|((d, auto_renew), s)| {
                serde_json::json!({"id": s.id, "title": s.title, "parties": [s.upstream_name, s.downstream_name],
                    "renewal_date": d.to_string(), "auto_renew": auto_renew,
                    "days_left": d.days_since_epoch() - today.days_since_epoch()})
            })
            .collect())
    }

    /// [`Service::renewal_due`] by decoding every stored agreement: what the index must equal
    /// (tests compare the two).
    pub fn renewal_due_scan(&self, days: u32) -> Result<Vec<serde_json::Value>, ServiceError> {
        let today = self.today();
        let limit = today.days_since_epoch() + i64::from(days);
        let mut out: Vec<(Date, serde_json::Value)> = Vec::new();
        for a in self.store.agreements()? {
            if a.status != Status::Executed {
                continue;
            }
            if let Some(d) = a.renewal_date(today).filter(|d| d.days_since_epoch() <= limit) {
                out.push((
                    d,
                    serde_json::json!({"id": a.id, "title": a.title, "parties": [a.upstream_name, a.downstream_name],
                        "renewal_date": d.to_string(), "auto_renew": a.facts.auto_renew,
                        "days_left": d.days_since_epoch() - today.days_since_epoch()}),
                ));
            }
        }
        out.sort_by_key(|a| a.0);
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// Ends an executed agreement on a date, for a reason.
    pub fn terminate(&self, id: &str, date: &str, reason: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let date = date_field("/date", date)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(field("/reason", "a reason is required"));
        }
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::Terminate)?;
            let now = self.clock.now();
            a.termination =
                Some(Termination { date: date.to_string(), reason: reason.into(), by: actor.who.clone(), at: now });
            a.status = Status::Terminated;
            change.events.push(self.event(
                a,
                "terminated",
                actor,
                &a.document_sha256,
                serde_json::json!({"date": date.to_string(), "reason": reason}),
            ));
            Ok(())
        })?;
        Ok(a)
    }

    /// Certifies the return or destruction of PHI after termination, or records that it is
    /// infeasible together with the protections that continue (45 CFR 164.504(e)(2)(ii)(J)).
    pub fn certify_disposition(
        &self,
        id: &str,
        method: &str,
        date: &str,
        certified_by: &str,
        protections: Option<&str>,
        actor: &Actor,
    ) -> Result<Agreement, ServiceError> {
        let method = method.trim();
        if !["returned", "destroyed", "infeasible"].contains(&method) {
            return Err(field("/method", "must be returned, destroyed or infeasible"));
        }
        let date = date_field("/date", date)?;
        let certified_by = certified_by.trim();
        if certified_by.is_empty() {
            return Err(field("/certified_by", "the certifying person is required"));
        }
        let protections = protections.map(str::trim).filter(|p| !p.is_empty());
        if method == "infeasible" && protections.is_none() {
            return Err(field(
                "/protections",
                "when return or destruction is infeasible, state the protections that continue and the purposes that limit further use",
            ));
        }
        let (a, ()) = self.update(id, |a, change| {
            a.status.allows(Action::CertifyDisposition)?;
            let now = self.clock.now();
            a.disposition = Some(Disposition {
                method: method.into(),
                date: date.to_string(),
                certified_by: certified_by.into(),
                protections: protections.map(String::from),
                by: actor.who.clone(),
                at: now,
            });
            a.status = Status::Closed;
            change.events.push(self.event(
                a,
                "phi_disposition_certified",
                actor,
                &a.document_sha256,
                serde_json::json!({"method": method, "date": date.to_string(), "certified_by": certified_by, "protections": protections}),
            ));
            Ok(())
        })?;
        Ok(a)
    }

    /// The seal on an agreement's countersigned copy, checked as `verify` checks an uploaded
    /// file: none before execution. Reading the archived copy for this check is not a download
    /// and is not logged.
    pub fn seal_status(&self, a: &Agreement) -> Result<Option<crate::seal::SealReport>, ServiceError> {
        let Some(sha) = a.final_sha256.as_deref() else { return Ok(None) };
        if a.disposed_at.is_some() {
            return Ok(None);
        }
        let bytes = self.store.document(sha)?;
        Ok(Some(crate::seal::verify(&bytes, &self.seal)))
    }

    /// The subcontractor chain: parents up to the top, children all the way down. Answered from
    /// the archive index ([`crate::archive::lifecycle::chain`]); only the agreements in it
    /// are read.
    pub fn chain(&self, id: &str) -> Result<Chain, ServiceError> {
        let (up, down) = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            crate::archive::lifecycle::chain(&index, id).ok_or(ServiceError::NotFound)?
        };
        // Each link with (whether it is an ancestor, its depth); one removed meanwhile is left out.
        let n = up.len();
        let ups = up.into_iter().enumerate().map(|(i, id)| ((true, n - i), id));
        let downs = down.into_iter().map(|(id, depth)| ((false, depth), id));
        let (mut ancestors, mut descendants) = (Vec::new(), Vec::new());
        for ((ancestor, depth), s) in self.with_summaries(ups.chain(downs).collect())? {
            let link = ChainLink {
                id: s.id,
                title: s.title,
                parties: [s.upstream_name, s.downstream_name],
                status: s.status,
                depth,
            };
            if ancestor { ancestors.push(link) } else { descendants.push(link) }
        }
        Ok(Chain { ancestors, descendants })
    }

    /// [`Service::chain`] by decoding every stored agreement: what the index must equal.
    pub fn chain_scan(&self, id: &str) -> Result<Chain, ServiceError> {
        let all = self.store.agreements()?;
        let this = all.iter().find(|a| a.id == id).ok_or(ServiceError::NotFound)?;
        let mut ancestors = Vec::new();
        let mut cur = this.facts.parent_agreement_id.clone();
        while let Some(pid) = cur {
            let Some(p) = all.iter().find(|a| a.id == pid) else { break };
            if ancestors.iter().any(|l: &ChainLink| l.id == p.id) || p.id == this.id {
                break; // a cycle in hand-entered ids
            }
            ancestors.push(link(p, 0));
            cur = p.facts.parent_agreement_id.clone();
        }
        ancestors.reverse();
        let n = ancestors.len();
        for (i, l) in ancestors.iter_mut().enumerate() {
            l.depth = n - i;
        }
        let mut descendants = Vec::new();
        let mut stack: Vec<(&Agreement, usize)> = vec![(this, 0)];
        while let Some((a, depth)) = stack.pop() {
            for child in all.iter().filter(|c| c.facts.parent_agreement_id.as_deref() == Some(a.id.as_str())) {
                if descendants.iter().any(|l: &ChainLink| l.id == child.id) || child.id == this.id {
                    continue;
                }
                descendants.push(link(child, depth + 1));
                stack.push((child, depth + 1));
            }
        }
        Ok(Chain { ancestors, descendants })
    }

    /// Who downloaded the archived copy, when, from where.
    pub fn access_log(&self, id: &str) -> Result<Vec<Event>, ServiceError> {
        self.store.agreement(id)?;
        Ok(self.store.events(id)?.into_iter().filter(|e| e.kind == "downloaded").collect())
    }

    /// Is this byte-for-byte an archived document (a copy sent for signature or a countersigned
    /// copy)? Looked up by SHA-256 in the in-memory digest map, so the cost does not grow with
    /// the archive. With `near_miss` (staff only), a near miss is said plainly: the same length
    /// as an archived copy with a few bytes changed, or an archived copy followed by added bytes.
    ///
    /// One pass over the bytes: the SHA-256 state is kept at each `%%EOF` as the file is hashed,
    /// and only the last [`LAST_EOFS`] of them are considered as the end of an archived copy (an
    /// earlier version made quadratic work out of a file of repeated `%%EOF`s). The digest map's
    /// read lock is taken only for the look-ups, after all hashing, so commits never wait on a
    /// verification.
    pub fn verify(&self, bytes: &[u8], near_miss: bool) -> Result<Verification, ServiceError> {
        let (sha, prefixes) = digest_with_eof_prefixes(bytes);
        let seal = crate::seal::verify(bytes, &self.seal);
        let hit = super::service::digest_key(&sha)
            .and_then(|k| self.digests.read().unwrap_or_else(|p| p.into_inner()).get(&k).cloned());
        if let Some((id, copy, _)) = hit {
            let a = self.store.agreement(&id)?;
            // The archived bytes are re-checked on read; a corrupt archive is no match.
            self.store.document(&sha)?;
            let signers = a
                .signers
                .iter()
                .map(|s| {
                    serde_json::json!({"name": s.name, "title": s.title, "party": s.party_name,
                        "signed_at": s.signature.as_ref().map(|x| rfc3339(x.signed_at))})
                })
                .collect();
            return Ok(Verification {
                matched: true,
                sha256: sha,
                agreement_id: Some(a.id.clone()),
                copy: Some(copy.into()),
                version: Some(a.version),
                status: Some(a.status),
                executed_at: a.executed_at.map(rfc3339),
                signers,
                near_miss: None,
                seal,
            });
        }
        Ok(Verification {
            matched: false,
            sha256: sha,
            agreement_id: None,
            copy: None,
            version: None,
            status: None,
            executed_at: None,
            signers: Vec::new(),
            near_miss: if near_miss { self.near_miss(bytes, &prefixes) } else { None },
            seal,
        })
    }

    /// [`Service::verify`] under a concurrency cap ([`VERIFY_SLOTS`] at once; more wait their
    /// turn) and a time budget ([`VERIFY_BUDGET`], waiting included): past it the caller gets
    /// [`ServiceError::Busy`]. The slot is held by the blocking task itself, so a verification
    /// that outlives its budget still counts against the cap until it ends.
    pub async fn verify_bounded(
        self: std::sync::Arc<Self>,
        bytes: axum::body::Bytes,
        near_miss: bool,
    ) -> Result<Verification, ServiceError> {
        let work = async move {
            let permit =
                VERIFY_GATE.acquire().await.map_err(|_| ServiceError::Internal("verification gate closed".into()))?;
            tokio::task::spawn_blocking(move || {
                let _slot = permit;
                self.verify(&bytes, near_miss)
            })
            .await
            .map_err(|e| ServiceError::Internal(format!("verify task failed: {e}")))?
        };
        tokio::time::timeout(VERIFY_BUDGET, work)
            .await
            .map_err(|_| ServiceError::Busy("verification is busy; try again in a minute".into()))?
    }

    fn near_miss(&self, bytes: &[u8], prefixes: &[(usize, String)]) -> Option<String> {
        let label = |copy: &str| if copy == "final" { "countersigned copy" } else { "copy sent for signature" };
        let (same_len, appended) = {
            // Look-ups only: the hashing is already done.
            let d = self.digests.read().unwrap_or_else(|p| p.into_inner());
            let same_len: Vec<(String, String, &'static str)> = d
                .iter()
                .filter(|(_, (_, _, len))| *len == bytes.len() as u64)
                .take(NEAR_MISS_SAME_LENGTH)
                .map(|(sha, (id, copy, _))| (hex::encode(sha), id.to_string(), *copy))
                .collect();
            // An archived copy followed by more bytes: it ends at one of the file's last `%%EOF`s.
            let appended = prefixes.iter().find_map(|(cut, prefix)| {
                let k = super::service::digest_key(prefix)?;
                d.get(&k).map(|(id, copy, _)| (id.to_string(), *copy, bytes.len() - cut))
            });
            (same_len, appended)
        };
        for (sha, id, copy) in same_len {
            let Ok(doc) = self.store.document(&sha) else { continue };
            let diff = doc.iter().zip(bytes).filter(|(x, y)| x != y).count();
            if diff <= 64 {
                return Some(format!(
                    "not a match: this file is the same size as the archived {} of agreement {id} but {diff} byte(s) differ — it was altered",
                    label(copy)
                ));
            }
        }
        appended.map(|(id, copy, extra)| {
            format!("not a match: this file begins with the archived {} of agreement {id} but has {extra} byte(s) added after it", label(copy))
        })
    }

    /// Agreements whose retention period (six years from creation or from the date last in
    /// effect, whichever is later) has passed and whose documents are still kept. Answered from
    /// the archive index ([`crate::archive::lifecycle::past_retention`]).
    pub fn retention_report(&self) -> Result<Vec<RetentionRow>, ServiceError> {
        let today = self.today();
        let past = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            crate::archive::lifecycle::past_retention(&index, today)
        };
        Ok(self
            .with_summaries(past)?
            .into_iter()
            .map(|(until, s)| RetentionRow {
                id: s.id,
                title: s.title,
                parties: [s.upstream_name, s.downstream_name],
                status: s.status,
                retain_until: until.to_string(),
            })
            .collect())
    }

    /// [`Service::retention_report`] by decoding every stored agreement: what the index must equal.
    pub fn retention_report_scan(&self) -> Result<Vec<RetentionRow>, ServiceError> {
        let today = self.today();
        let mut rows: Vec<RetentionRow> = self
            .store
            .agreements()?
            .into_iter()
            .filter(|a| a.disposed_at.is_none())
            .filter_map(|a| {
                let until = a.retention_until()?;
                (until < today).then(|| RetentionRow {
                    id: a.id.clone(),
                    title: a.title.clone(),
                    parties: [a.upstream_name.clone(), a.downstream_name.clone()],
                    status: a.status,
                    retain_until: until.to_string(),
                })
            })
            .collect();
        rows.sort_by(|a, b| a.retain_until.cmp(&b.retain_until));
        Ok(rows)
    }

    /// Deletes an agreement's documents once its retention period has passed, leaving the record
    /// and a tombstone event in the audit chain. Admin only (checked by the caller).
    pub fn dispose(&self, id: &str, actor: &Actor) -> Result<Agreement, ServiceError> {
        let _g = self.write();
        let mut a = self.store.agreement(id)?;
        if a.disposed_at.is_some() {
            return Err(ServiceError::State("the documents were already disposed of".into()));
        }
        let until = a.retention_until().ok_or_else(|| {
            ServiceError::State(format!(
                "a {} agreement is still in effect or open and must be kept",
                a.status.as_str()
            ))
        })?;
        if until >= self.today() {
            return Err(ServiceError::State(format!("documents must be kept until {until} (45 CFR 164.316(b)(2))")));
        }
        let mut shas: Vec<String> = self
            .store
            .versions(id)?
            .iter()
            .flat_map(|v| [Some(v.sha256.clone()), v.model_sha256.clone()])
            .flatten()
            .collect();
        shas.extend(a.sent_sha256.clone());
        shas.extend(a.final_sha256.clone());
        shas.extend(
            self.store
                .events(id)?
                .iter()
                .filter_map(|e| e.detail.get("model_sha256").and_then(|v| v.as_str()).map(String::from)),
        );
        // Content-addressed documents may be shared; keep any another agreement still needs.
        let others = self.store.agreements()?;
        shas.retain(|s| {
            !others.iter().any(|o| {
                o.id != a.id
                    && (o.sent_sha256.as_deref() == Some(s)
                        || o.final_sha256.as_deref() == Some(s)
                        || o.document_sha256 == *s)
            })
        });
        shas.sort();
        shas.dedup();
        let now = self.clock.now();
        a.disposed_at = Some(now);
        a.updated_at = now;
        a.revision += 1;
        let ev = self.event(
            &a,
            "disposed",
            actor,
            &a.document_sha256,
            serde_json::json!({"documents_deleted": shas.len(), "retain_until": until.to_string()}),
        );
        self.commit(Change {
            agreement: Some(a.clone()),
            events: vec![ev],
            delete_documents: shas,
            ..Change::default()
        })?;
        Ok(a)
    }
}

/// How many of a file's last `%%EOF`s are tried as the end of an archived copy.
pub const LAST_EOFS: usize = 8;
/// How many archived documents of the same length are compared byte by byte.
const NEAR_MISS_SAME_LENGTH: usize = 4;
/// Verifications running at once (each is CPU-bound: one per core on the reference machine).
pub const VERIFY_SLOTS: usize = 2;
/// A verification's budget, waiting for a slot included. One pass over 32 MiB takes well
/// under a second; the rest is for waiting behind others.
pub const VERIFY_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);
/// The cap on concurrent verifications, process-wide: the public and the staff route share it,
/// so an unauthenticated flood cannot take more than these slots' worth of CPU.
static VERIFY_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(VERIFY_SLOTS);

/// SHA-256 of `bytes` and, in the same single pass, the SHA-256 of each prefix that could be an
/// archived copy with bytes appended: ending at one of the last [`LAST_EOFS`] `%%EOF` markers,
/// plus an optional `\r`, `\n` or `\r\n` (the prefix must be shorter than the file). Each prefix
/// digest costs one clone of the hash state and one final block, so the whole is linear in the
/// length of the file however many markers it holds. Returned as (prefix length, hex digest),
/// the longest prefix first.
pub fn digest_with_eof_prefixes(bytes: &[u8]) -> (String, Vec<(usize, String)>) {
    const EOF: &[u8] = b"%%EOF";
    let mut h = Sha256::new();
    let mut fed = 0;
    // Hash states just after each `%%EOF` (the last LAST_EOFS only), with their offsets.
    let mut states: std::collections::VecDeque<(usize, Sha256)> = std::collections::VecDeque::new();
    let mut from = 0;
    while let Some(at) = find_from(bytes, EOF, from) {
        let end = at + EOF.len();
        h.update(&bytes[fed..end]);
        fed = end;
        if states.len() == LAST_EOFS {
            states.pop_front();
        }
        states.push_back((end, h.clone()));
        from = end;
    }
    h.update(&bytes[fed..]);
    let whole = hex::encode(h.finalize());
    let mut prefixes = Vec::new();
    for (end, state) in states.into_iter().rev() {
        for tail in [&b""[..], b"\n", b"\r", b"\r\n"] {
            let cut = end + tail.len();
            if cut >= bytes.len() || &bytes[end..cut] != tail {
                continue;
            }
            let mut st = state.clone();
            st.update(tail);
            prefixes.push((cut, hex::encode(st.finalize())));
        }
    }
    (whole, prefixes)
}

/// The first occurrence of `needle` in `hay` at or after `from` (linear: the first byte is
/// searched with `position`, which the compiler vectorizes).
fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        i += hay[i..=hay.len() - needle.len()].iter().position(|&b| b == first)?;
        if &hay[i + 1..i + needle.len()] == rest {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod verify_tests {
    use super::*;

    #[test]
    fn each_prefix_digest_equals_the_digest_of_that_prefix() {
        let mut file = b"%PDF-1.7\n1 0 obj\n%%EOF\nmore\n%%EOF\r\nx%%EOF".to_vec();
        file.extend_from_slice(b" tail");
        let (whole, prefixes) = digest_with_eof_prefixes(&file);
        assert_eq!(whole, hex::encode(Sha256::digest(&file)));
        assert!(!prefixes.is_empty());
        for (cut, d) in &prefixes {
            assert_eq!(*d, hex::encode(Sha256::digest(&file[..*cut])), "prefix of {cut} bytes");
        }
        let cuts: Vec<usize> = prefixes.iter().map(|(c, _)| *c).collect();
        let first = file.windows(5).position(|w| w == b"%%EOF").map(|i| i + 5);
        assert!(first.is_some_and(|f| cuts.contains(&f) && cuts.contains(&(f + 1))), "{cuts:?}");
    }

    #[test]
    fn a_file_of_repeated_eof_markers_yields_only_the_last_few_prefixes() {
        let file = b"%%EOF\n".repeat(100_000);
        let (_, prefixes) = digest_with_eof_prefixes(&file);
        // At most: no tail and "\n" for each of the last LAST_EOFS markers.
        assert!(prefixes.len() <= 2 * LAST_EOFS, "{}", prefixes.len());
        assert!(prefixes.iter().all(|(cut, _)| *cut >= file.len() - 6 * (LAST_EOFS + 1)));
    }
}
