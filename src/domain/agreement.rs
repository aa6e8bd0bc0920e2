//! The agreement record and its state table.
//!
//! | status             | means                                             | moves to                                  |
//! |--------------------|---------------------------------------------------|-------------------------------------------|
//! | `draft`            | editable; each replacement is a new version       | `sent` (check passes), `voided`           |
//! | `awaiting_approval`| a draft with departures from policy               | `draft` via approve (legal/admin), `voided`|
//! | `sent`             | frozen document; first signing order has links    | `partially_signed`, `declined`, `voided`, `expired` |
//! | `partially_signed` | at least one signature recorded                   | `executed`, `declined`, `voided`, `expired` |
//! | `executed`         | every signer signed; final PDF archived, immutable| —                                         |
//! | `declined`         | a signer declined (reason kept); links revoked    | `draft` via revise (new version)          |
//! | `voided`           | staff withdrew it (reason kept); links revoked    | —                                         |
//! | `expired`          | every open link expired unsigned                  | `sent`/`partially_signed` via resend      |
//! | `terminated`       | an executed agreement ended (date, reason)        | `closed` via return-or-destroy            |
//! | `closed`           | PHI returned, destroyed, or retention infeasible  | — (documents kept for retention)          |
//!
//! The record is plain data: the signing service changes it and the store persists it, in one
//! transaction with the audit events and outgoing messages the change causes.

use serde::{Deserialize, Serialize};

use super::intake::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    /// A draft whose negotiated terms depart from policy: editable, not sendable until approved.
    AwaitingApproval,
    Sent,
    PartiallySigned,
    Executed,
    Declined,
    Voided,
    Expired,
    /// An executed agreement that has ended; PHI must now be returned or destroyed.
    Terminated,
    /// Terminated, and the return or destruction of PHI (or its infeasibility) is certified.
    Closed,
}

impl Status {
    /// Signing is in progress: links may be open.
    /// Still being drafted (replaceable).
    pub fn is_draft(self) -> bool {
        matches!(self, Status::Draft | Status::AwaitingApproval)
    }

    pub fn is_out_for_signature(self) -> bool {
        matches!(self, Status::Sent | Status::PartiallySigned)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Sent => "sent",
            Status::PartiallySigned => "partially_signed",
            Status::Executed => "executed",
            Status::Declined => "declined",
            Status::Voided => "voided",
            Status::Expired => "expired",
            Status::Terminated => "terminated",
            Status::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerStatus {
    /// A later signing order; no link yet.
    Waiting,
    /// A link was issued.
    Notified,
    /// The link was opened at least once.
    Opened,
    Signed,
    Declined,
}

/// What a signer did, as recorded when they signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub typed_name: String,
    pub typed_title: String,
    /// Unix seconds.
    pub signed_at: u64,
    pub ip: String,
    pub user_agent: String,
    pub consent_version: String,
    /// A stable identifier printed on the executed signature page.
    pub signature_id: String,
    /// How the signer was verified: `email_link`, or `email_link+email_code` when they also gave
    /// a one-time code sent to their address. Empty in records written before the code existed
    /// (they were verified by the link alone).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verification: String,
}

/// The one-time email code a signer gives before signing (issue 11 §2.9). Off unless the intake
/// (`/signers/N/verify_email_code`) or the policy (config `signer_email_code`) turns it on.
/// The code itself is never stored: only its HMAC under the link key, which lives outside the
/// store. The counters belong to the current link: a new link (resend, correction) resets them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmailCode {
    pub required: bool,
    /// HMAC-SHA256 of the current code, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// When the current code stops working (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Codes sent for the current link.
    #[serde(default)]
    pub sent: u32,
    /// Wrong codes given for the current link; at [`EmailCode::MAX_FAILURES`] the link is locked
    /// until a new link is sent.
    #[serde(default)]
    pub failures: u32,
}

impl EmailCode {
    /// Wrong codes before the link locks.
    pub const MAX_FAILURES: u32 = 5;
    /// Codes one link may ask for (each is an email to the signer).
    pub const MAX_SENT: u32 = 5;
    /// How long a code works, in seconds.
    pub const VALID_SECS: u64 = 15 * 60;

    pub fn locked(&self) -> bool {
        self.failures >= Self::MAX_FAILURES
    }

    /// A fresh start for a new link: required stays, everything else resets.
    pub fn reset(&mut self) {
        *self = EmailCode { required: self.required, ..EmailCode::default() };
    }

    fn is_off(&self) -> bool {
        *self == EmailCode::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    /// `s1`, `s2`, … (stable across corrections).
    pub id: String,
    /// Index in the token payload.
    pub index: u16,
    pub side: Side,
    pub party_label: String,
    pub party_name: String,
    pub name: String,
    pub title: String,
    pub email: String,
    pub order: u32,
    pub status: SignerStatus,
    /// Bumped on resend, correction and void: older links stop working.
    pub generation: u32,
    /// Expiry of the current link (unix seconds).
    pub link_expires: Option<u64>,
    pub signature: Option<Signature>,
    pub decline_reason: Option<String>,
    /// The one-time email code, when required (absent in records written before it existed).
    #[serde(default, skip_serializing_if = "EmailCode::is_off")]
    pub email_code: EmailCode,
}

/// Intake facts kept on the record (search, renewal, retention).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Facts {
    pub states: Vec<String>,
    /// YYYY-MM-DD
    pub effective_date: String,
    pub term_months: u16,
    pub auto_renew: bool,
    pub parent_agreement_id: Option<String>,
    /// The disclosing party's privacy contact (name, email): replies to signing emails go here
    /// when the sender is not a person with an address. Absent in records written before it.
    #[serde(default)]
    pub upstream_contact: Option<(String, String)>,
}

/// Termination of an executed agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// YYYY-MM-DD: the date the agreement ends.
    pub date: String,
    pub reason: String,
    pub by: String,
    pub at: u64,
}

/// How PHI was dealt with after termination (45 CFR 164.504(e)(2)(ii)(J)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    /// `returned`, `destroyed`, or `infeasible`.
    pub method: String,
    /// YYYY-MM-DD
    pub date: String,
    pub certified_by: String,
    /// When infeasible: the protections that continue and the purposes that limit further use.
    pub protections: Option<String>,
    pub by: String,
    pub at: u64,
}

/// A legal or admin user's approval of a version's departures from policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub version: u32,
    pub by: String,
    pub reason: String,
    pub at: u64,
}

/// One kept version of the agreement's intake and rendered document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    /// The intake JSON exactly as received.
    pub intake: String,
    /// SHA-256 of the draft PDF of this version.
    pub sha256: String,
    /// The element report (render::Report) as JSON.
    pub report: serde_json::Value,
    pub created_at: u64,
    /// SHA-256 of the version's document model (JSON), for clause diffs.
    #[serde(default)]
    pub model_sha256: Option<String>,
}

/// The agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub upstream_name: String,
    pub downstream_name: String,
    pub status: Status,
    /// The current version number (1-based).
    pub version: u32,
    /// SHA-256 of the current document: the draft, then the sent copy, then the final copy.
    pub document_sha256: String,
    /// True when the current version's check has no errors (sending is allowed).
    pub check_passes: bool,
    pub created_at: u64,
    pub updated_at: u64,
    pub created_by: String,
    pub sent_at: Option<u64>,
    pub sent_by: Option<String>,
    /// SHA-256 of the copy sent for signature: frozen once sent.
    pub sent_sha256: Option<String>,
    pub executed_at: Option<u64>,
    pub final_sha256: Option<String>,
    /// Lengths of the sent and final documents (verification's near-miss check uses them).
    #[serde(default)]
    pub sent_bytes: Option<u64>,
    #[serde(default)]
    pub final_bytes: Option<u64>,
    pub void_reason: Option<String>,
    /// The current version's departures from policy need approval before sending.
    #[serde(default)]
    pub needs_approval: bool,
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Facts from the current version's intake, for search and lifecycle.
    #[serde(default)]
    pub facts: Facts,
    #[serde(default)]
    pub termination: Option<Termination>,
    #[serde(default)]
    pub disposition: Option<Disposition>,
    /// Set when the documents were disposed of after the retention period (a tombstone).
    #[serde(default)]
    pub disposed_at: Option<u64>,
    pub signers: Vec<SignerRecord>,
    /// Bumped on every committed change (optimistic concurrency in the store).
    pub revision: u64,
}

impl Agreement {
    /// When every open link (a signer notified or who opened it) has expired: the latest of
    /// their expiries. None when no signer is open or one's link has no expiry. An agreement
    /// out for signature moves to `expired` at that time (`Service::get`), and the reminder
    /// tick wakes for it (`app::schedule::wake_at`).
    pub fn open_links_expire_at(&self) -> Option<u64> {
        let mut open =
            self.signers.iter().filter(|s| matches!(s.status, SignerStatus::Notified | SignerStatus::Opened));
        let first = open.next()?.link_expires?;
        open.try_fold(first, |last, s| Some(last.max(s.link_expires?)))
    }

    pub fn signer(&self, id: &str) -> Option<&SignerRecord> {
        self.signers.iter().find(|s| s.id == id)
    }

    pub fn signer_by_index(&self, index: u16) -> Option<&SignerRecord> {
        self.signers.iter().find(|s| s.index == index)
    }

    /// The lowest signing order with a signer who has not signed.
    pub fn current_order(&self) -> Option<u32> {
        self.signers.iter().filter(|s| s.status != SignerStatus::Signed).map(|s| s.order).min()
    }

    pub fn all_signed(&self) -> bool {
        self.signers.iter().all(|s| s.status == SignerStatus::Signed)
    }

    fn effective(&self) -> Option<super::intake::Date> {
        super::intake::Date::parse(&self.facts.effective_date).ok()
    }

    /// The end of the first term (effective date + term).
    pub fn term_end(&self) -> Option<super::intake::Date> {
        self.effective().map(|d| d.add_months(u32::from(self.facts.term_months)))
    }

    /// The next renewal date on or after `today` for an auto-renewing agreement, or the end of
    /// its term otherwise; none once terminated.
    pub fn renewal_date(&self, today: super::intake::Date) -> Option<super::intake::Date> {
        renewal_date(self.effective(), self.facts.term_months, self.facts.auto_renew, self.termination.is_some(), today)
    }

    /// Keep documents until six years after creation or the date last in effect, whichever is
    /// later (45 CFR 164.316(b)(2)(i); 164.502(e)(2) for BAAs). Only agreements that are no longer
    /// in effect have a date; one in effect is kept.
    pub fn retention_until(&self) -> Option<super::intake::Date> {
        let termination = self.termination.as_ref().and_then(|t| super::intake::Date::parse(&t.date).ok());
        retention_until(self.created_at, self.status, termination, self.facts.auto_renew, self.term_end())
    }

    /// The lifecycle facts the archive index keeps for renewal, retention and the subcontractor
    /// chain (so those listings need not decode every agreement).
    pub fn life(&self) -> Life {
        Life {
            effective: self.effective(),
            term_months: self.facts.term_months,
            auto_renew: self.facts.auto_renew,
            terminated: self.termination.is_some(),
            termination: self.termination.as_ref().and_then(|t| super::intake::Date::parse(&t.date).ok()),
            disposed: self.disposed_at.is_some(),
            parent: self.facts.parent_agreement_id.as_deref().map(Box::from),
            revision: self.revision,
        }
    }
}

/// What the archive index and the digest map need of an agreement record, decoded from the same
/// JSON as [`Agreement`] with everything else skipped (signers, approval, void reason, …): the
/// start-up scan reads one of these per agreement instead of the whole record.
/// `Summary::from(&agreement)` is what decoding the agreement's JSON gives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Summary {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub upstream_name: String,
    pub downstream_name: String,
    pub status: Status,
    pub created_at: u64,
    pub updated_at: u64,
    pub created_by: String,
    pub executed_at: Option<u64>,
    pub sent_sha256: Option<String>,
    pub final_sha256: Option<String>,
    #[serde(default)]
    pub sent_bytes: Option<u64>,
    #[serde(default)]
    pub final_bytes: Option<u64>,
    #[serde(default)]
    pub facts: SummaryFacts,
    /// The termination's date (YYYY-MM-DD), when one is recorded.
    #[serde(default, deserialize_with = "termination_date")]
    #[serde(rename = "termination")]
    pub termination_date: Option<String>,
    #[serde(default)]
    pub disposed_at: Option<u64>,
    /// The record's revision: the reminder tick's wake marks hold for one revision (see
    /// `app::schedule::wake_at`).
    #[serde(default)]
    pub revision: u64,
}

/// [`Facts`] without the privacy contact.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SummaryFacts {
    pub states: Vec<String>,
    pub effective_date: String,
    pub term_months: u16,
    pub auto_renew: bool,
    pub parent_agreement_id: Option<String>,
}

/// Reads a stored `termination` (or `null`) keeping only its date.
fn termination_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct DateOnly {
        date: String,
    }
    Ok(Option::<DateOnly>::deserialize(d)?.map(|t| t.date))
}

impl From<&Agreement> for Summary {
    fn from(a: &Agreement) -> Summary {
        Summary {
            id: a.id.clone(),
            kind: a.kind.clone(),
            title: a.title.clone(),
            upstream_name: a.upstream_name.clone(),
            downstream_name: a.downstream_name.clone(),
            status: a.status,
            created_at: a.created_at,
            updated_at: a.updated_at,
            created_by: a.created_by.clone(),
            executed_at: a.executed_at,
            sent_sha256: a.sent_sha256.clone(),
            final_sha256: a.final_sha256.clone(),
            sent_bytes: a.sent_bytes,
            final_bytes: a.final_bytes,
            facts: SummaryFacts {
                states: a.facts.states.clone(),
                effective_date: a.facts.effective_date.clone(),
                term_months: a.facts.term_months,
                auto_renew: a.facts.auto_renew,
                parent_agreement_id: a.facts.parent_agreement_id.clone(),
            },
            termination_date: a.termination.as_ref().map(|t| t.date.clone()),
            disposed_at: a.disposed_at,
            revision: a.revision,
        }
    }
}

impl Summary {
    /// [`Agreement::life`], from the summary (the same facts).
    pub fn life(&self) -> Life {
        Life {
            effective: super::intake::Date::parse(&self.facts.effective_date).ok(),
            term_months: self.facts.term_months,
            auto_renew: self.facts.auto_renew,
            terminated: self.termination_date.is_some(),
            termination: self.termination_date.as_deref().and_then(|d| super::intake::Date::parse(d).ok()),
            disposed: self.disposed_at.is_some(),
            parent: self.facts.parent_agreement_id.as_deref().map(Box::from),
            revision: self.revision,
        }
    }
}

/// What renewal, retention and the subcontractor chain need of an agreement, compactly: the
/// archive index keeps one per agreement (see [`Agreement::life`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Life {
    /// The effective date, when it parses.
    pub effective: Option<super::intake::Date>,
    pub term_months: u16,
    pub auto_renew: bool,
    /// A termination is recorded.
    pub terminated: bool,
    /// The termination's date, when it parses.
    pub termination: Option<super::intake::Date>,
    /// The documents were disposed of.
    pub disposed: bool,
    /// `facts.parent_agreement_id`.
    pub parent: Option<Box<str>>,
    /// The record's revision (a reminder wake mark holds for one revision).
    pub revision: u64,
}

impl Life {
    /// [`Agreement::renewal_date`], from these facts.
    pub fn renewal_date(&self, today: super::intake::Date) -> Option<super::intake::Date> {
        renewal_date(self.effective, self.term_months, self.auto_renew, self.terminated, today)
    }

    /// [`Agreement::retention_until`], from these facts.
    pub fn retention_until(&self, created_at: u64, status: Status) -> Option<super::intake::Date> {
        let term_end = self.effective.map(|d| d.add_months(u32::from(self.term_months)));
        retention_until(created_at, status, self.termination, self.auto_renew, term_end)
    }
}

/// The rule behind [`Agreement::renewal_date`] (one definition for the record and the index).
fn renewal_date(
    effective: Option<super::intake::Date>,
    term_months: u16,
    auto_renew: bool,
    terminated: bool,
    today: super::intake::Date,
) -> Option<super::intake::Date> {
    if terminated || term_months == 0 {
        return None;
    }
    let start = effective?;
    let mut end = start.add_months(u32::from(term_months));
    if auto_renew {
        let mut n = 1u32;
        while end < today && n < 1200 {
            n += 1;
            end = start.add_months(u32::from(term_months) * n);
        }
    }
    Some(end)
}

/// The rule behind [`Agreement::retention_until`] (one definition for the record and the index).
fn retention_until(
    created_at: u64,
    status: Status,
    termination: Option<super::intake::Date>,
    auto_renew: bool,
    term_end: Option<super::intake::Date>,
) -> Option<super::intake::Date> {
    let created = super::intake::Date::from_unix(created_at);
    let last_in_effect = match status {
        Status::Terminated | Status::Closed => termination?,
        Status::Voided | Status::Declined | Status::Expired => created,
        Status::Executed if !auto_renew => term_end?,
        _ => return None,
    };
    Some(created.max(last_in_effect).add_months(72))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_match_their_json() {
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::String(s.as_str().into())));
        }
    }

    /// A record with every field the summary reads set, and the ones it skips too.
    fn full_record(terminated: bool) -> Agreement {
        let mut a: Agreement = serde_json::from_value(serde_json::json!({
            "id": "a1", "kind": "baa", "title": "Núñez BAA", "upstream_name": "Marta Núñez Clinic",
            "downstream_name": "Ångström Labs", "status": "executed", "version": 2,
            "document_sha256": "d", "check_passes": true, "created_at": 5, "updated_at": 9,
            "created_by": "sales", "sent_at": 6, "sent_by": "sales", "sent_sha256": "s",
            "executed_at": 8, "final_sha256": "f", "sent_bytes": 10, "final_bytes": 12,
            "void_reason": "x", "needs_approval": true,
            "facts": {"states": ["CA", "TX"], "effective_date": "2026-01-31", "term_months": 12,
                      "auto_renew": true, "parent_agreement_id": "p1",
                      "upstream_contact": ["Priya", "priya@example.com"]},
            "signers": [], "revision": 4
        }))
        .expect("an agreement");
        if terminated {
            a.termination =
                Some(Termination { date: "2027-03-01".into(), reason: "r".into(), by: "legal".into(), at: 11 });
            a.disposed_at = Some(12);
        }
        a
    }

    #[test]
    fn a_summary_decoded_from_the_record_equals_the_summary_of_the_decoded_record() {
        for terminated in [false, true] {
            let a = full_record(terminated);
            let json = serde_json::to_vec(&a).expect("json");
            let s: Summary = serde_json::from_slice(&json).expect("a summary");
            assert_eq!(s, Summary::from(&a));
            assert_eq!(s.life(), a.life());
            assert_eq!(s.termination_date.is_some(), terminated);
        }
    }
}
