//! The vendor register's application layer: every change to a vendor record (one
//! read–modify–commit with the person who made it in the vendor's audit trail), the standing
//! derived from the record and its agreements, search, the executive report's figures, the
//! staff lookup of vendor-provided copies, and reassessment reminders through the outbox.
//!
//! Concurrency: a change reads the record, decides, and commits only if the record's revision
//! is unchanged (the store checks it inside its transaction); a lost race is decided again from
//! fresh data, at most three times, then answered 409. No lock is held while deciding. The
//! reminder tick takes the service's write lock, as the agreement reminders do, so two ticks
//! never queue the same reminder.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::service::{Actor, Service, ServiceError};
use crate::domain::findings::Finding;
use crate::domain::intake::Date;
use crate::domain::vendor::{
    self, AgreementTerms, AnswersInput, Determination, DocKind, PaperTerms, Report, Standing, Vendor, VendorDocument,
    VendorInput, VendorPaper,
};
use crate::store::vendors::{VendorChange, VendorEvent};
use crate::store::{Change, Message, StoreError};

/// Largest file accepted for a vendor document or vendor-paper agreement.
pub const MAX_UPLOAD: usize = 32 * 1024 * 1024;

/// A vendor as staff see it: the record, its standing today, and its agreements' terms.
#[derive(Debug, Clone, Serialize)]
pub struct VendorView {
    #[serde(flatten)]
    pub vendor: Vendor,
    pub standing: Standing,
    pub agreement_terms: Vec<AgreementTerms>,
}

/// List filters (all optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorQuery {
    /// Words in the legal name, other names or a vendor-paper title (accent- and
    /// case-insensitive).
    pub q: Option<String>,
    pub tier: Option<String>,
    /// A role (`business_associate`, …) or `undetermined`.
    pub determination: Option<String>,
    pub baa_status: Option<String>,
    /// Vendors with this flag (`missing_agreement`, `reassessment_due`, …).
    pub flag: Option<String>,
    /// Vendors linked to this Countersign agreement.
    pub agreement: Option<String>,
    /// Vendors counted by this figure of the executive report (`overdue_findings`, …; see
    /// [`vendor::FIGURES`]): the dashboard's links.
    pub figure: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One page of vendors.
#[derive(Debug, Clone, Serialize)]
pub struct VendorPage {
    pub items: Vec<VendorView>,
    pub total: usize,
    pub next_cursor: Option<String>,
}

/// A vendor document or vendor-paper agreement found by the staff search or verify.
#[derive(Debug, Clone, Serialize)]
pub struct VendorCopy {
    /// Always `vendor_document`: never an agreement executed in Countersign.
    pub record_type: &'static str,
    pub vendor_id: String,
    pub vendor_name: String,
    /// `vendor_paper` or `due_diligence`.
    pub category: &'static str,
    /// The paper's kind (`baa`, …) or the document's kind (`soc2_type2`, …).
    pub kind: String,
    pub title: String,
    pub sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: String,
    /// "vendor-provided copy, uploaded by … on …"
    pub message: String,
}

fn invalid(findings: Vec<Finding>) -> ServiceError {
    ServiceError::Invalid(findings)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Service {
    /// Reads, decides and commits one change to a vendor, retrying a lost race.
    fn change_vendor(
        &self,
        id: &str,
        actor: &Actor,
        action: &str,
        decide: impl Fn(&Vendor) -> Result<(Vendor, Value, Option<Vec<u8>>), ServiceError>,
    ) -> Result<Vendor, ServiceError> {
        for _ in 0..3 {
            let current = self.store.vendors().vendor(id)?;
            let (mut next, detail, document) = decide(&current)?;
            next.revision = current.revision + 1;
            next.updated_at = self.clock.now();
            let c = VendorChange {
                vendor: next.clone(),
                at: next.updated_at,
                who: actor.who.clone(),
                action: action.into(),
                detail,
                document,
                webhooks: self.vendor_webhooks(&next, action)?,
            };
            match self.store.vendors().commit_vendor(c) {
                Ok(_) => {
                    self.hooks.wake.notify_one();
                    return Ok(next);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::State("the vendor changed meanwhile; retry".into()))
    }

    /// The `vendor.*` webhook deliveries of a change to `v` (`created`, `determined` for the
    /// questionnaire, `updated` for everything else), to commit with it. The summary names the
    /// vendor, its determination and tier: never documents, contacts or free text.
    fn vendor_webhooks(&self, v: &Vendor, action: &str) -> Result<Vec<crate::store::webhooks::Delivery>, ServiceError> {
        let endpoints = self.store.webhooks().endpoints()?;
        if endpoints.is_empty() {
            return Ok(Vec::new());
        }
        let kind = match action {
            "created" => "vendor.created",
            a if a.contains("questionnaire") || a.contains("determin") => "vendor.determined",
            _ => "vendor.updated",
        };
        let data = json!({"vendor": {
            "id": v.id, "legal_name": v.legal_name, "revision": v.revision,
            "determination": v.determination.as_ref().map(|d| &d.role),
        }, "action": action});
        Ok(self.webhook_deliveries(&endpoints, kind, None, self.clock.now(), data))
    }

    /// Creates a vendor (only `legal_name` is required).
    pub fn create_vendor(&self, input: VendorInput, actor: &Actor) -> Result<Vendor, ServiceError> {
        let now = self.clock.now();
        let blank = Vendor {
            id: crate::store::ids::new_id("v", 8),
            revision: 0,
            legal_name: String::new(),
            other_names: vec![],
            address: None,
            website: None,
            account_owner: None,
            privacy_contact: None,
            security_contact: None,
            determination: None,
            data_flows: Default::default(),
            documents: vec![],
            findings: vec![],
            tier_override: None,
            agreements: vec![],
            papers: vec![],
            subcontractors: vec![],
            last_assessed: None,
            created_at: now,
            created_by: actor.who.clone(),
            updated_at: now,
        };
        let (mut v, changed) = vendor::apply(&blank, input, true, &actor.who, now).map_err(invalid)?;
        printable(&v)?;
        v.revision = 1;
        self.store.vendors().commit_vendor(VendorChange {
            vendor: v.clone(),
            at: now,
            who: actor.who.clone(),
            action: "created".into(),
            detail: json!({"legal_name": v.legal_name, "sections": changed}),
            document: None,
            webhooks: self.vendor_webhooks(&v, "created")?,
        })?;
        self.hooks.wake.notify_one();
        Ok(v)
    }

    /// Updates any sections of a vendor record.
    pub fn update_vendor(&self, id: &str, input: VendorInput, actor: &Actor) -> Result<Vendor, ServiceError> {
        let now = self.clock.now();
        self.change_vendor(id, actor, "updated", |cur| {
            let (v, changed) = vendor::apply(cur, input.clone(), false, &actor.who, now).map_err(invalid)?;
            printable(&v)?;
            if changed.is_empty() {
                return Err(ServiceError::Field("".into(), "nothing to change: send at least one section".into()));
            }
            let detail = json!({"sections": changed, "tier_override": v.tier_override.as_ref().map(|o| json!({"tier": o.tier, "reason": o.reason}))});
            Ok((v, detail, None))
        })
    }

    /// Records the questionnaire's answers and the determination they give.
    pub fn answer_questionnaire(&self, id: &str, input: AnswersInput, actor: &Actor) -> Result<Vendor, ServiceError> {
        let answers = vendor::parse_answers(&input).map_err(invalid)?;
        let (role, reason, citation) = vendor::determine(&answers);
        let now = self.clock.now();
        self.change_vendor(id, actor, "questionnaire_answered", |cur| {
            let mut v = cur.clone();
            v.determination = Some(Determination {
                role,
                reason: reason.into(),
                citation: citation.into(),
                answers,
                answered_by: actor.who.clone(),
                answered_at: now,
            });
            let detail = json!({"answers": answers, "determination": role, "citation": citation,
                "previous": cur.determination.as_ref().map(|d| d.role)});
            Ok((v, detail, None))
        })
    }

    /// Stores a due-diligence document (content-addressed) on the vendor's record.
    pub fn upload_vendor_document(
        &self,
        id: &str,
        kind: &str,
        issued: Option<&str>,
        expires: Option<&str>,
        bytes: Vec<u8>,
        actor: &Actor,
    ) -> Result<Vendor, ServiceError> {
        let mut f = Vec::new();
        let kind = DocKind::parse(kind);
        if kind.is_none() {
            f.push(Finding::field(
                "?kind",
                "one of soc2_type2, hitrust, iso27001, pen_test_summary, security_questionnaire, insurance_certificate",
            ));
        }
        for (p, d) in [("?issued", issued), ("?expires", expires)] {
            if let Some(Err(why)) = d.map(Date::parse) {
                f.push(Finding::field(p, why));
            }
        }
        check_upload(&bytes, false, &mut f);
        let (Some(kind), true) = (kind, f.is_empty()) else { return Err(invalid(f)) };
        let now = self.clock.now();
        let digest = sha(&bytes);
        let doc = VendorDocument {
            kind,
            sha256: digest.clone(),
            bytes: bytes.len() as u64,
            issued: issued.map(str::to_string),
            expires: expires.map(str::to_string),
            uploaded_by: actor.who.clone(),
            uploaded_at: now,
        };
        self.change_vendor(id, actor, "document_uploaded", |cur| {
            let mut v = cur.clone();
            v.documents.retain(|d| !(d.sha256 == digest && d.kind == kind));
            v.documents.push(doc.clone());
            Ok((v, json!({"kind": kind, "sha256": digest, "issued": issued, "expires": expires}), Some(bytes.clone())))
        })
    }

    /// Stores an executed agreement on the vendor's own paper, with its key terms.
    pub fn upload_vendor_paper(
        &self,
        id: &str,
        terms: PaperTerms,
        bytes: Vec<u8>,
        actor: &Actor,
    ) -> Result<Vendor, ServiceError> {
        let mut f = Vec::new();
        if !matches!(terms.kind.as_str(), "baa" | "dua" | "subcontractor_baa") {
            f.push(Finding::field("?kind", "one of baa, dua, subcontractor_baa"));
        }
        if terms.title.trim().is_empty() || terms.title.chars().count() > 300 {
            f.push(Finding::field("?title", "1–300 characters"));
        }
        if let Err(why) = Date::parse(&terms.effective_date) {
            f.push(Finding::field("?effective_date", why));
        }
        if terms.breach_notice_days.is_some_and(|d| !(1..=60).contains(&d)) {
            f.push(Finding::field("?breach_notice_days", "1–60 days (45 CFR 164.410(b))"));
        }
        if terms.return_or_destroy.as_deref().is_some_and(|r| !matches!(r, "return" | "destroy" | "return_or_destroy"))
        {
            f.push(Finding::field("?return_or_destroy", "one of return, destroy, return_or_destroy"));
        }
        check_upload(&bytes, true, &mut f);
        if !f.is_empty() {
            return Err(invalid(f));
        }
        let now = self.clock.now();
        let digest = sha(&bytes);
        let paper = VendorPaper {
            sha256: digest.clone(),
            bytes: bytes.len() as u64,
            terms,
            uploaded_by: actor.who.clone(),
            uploaded_at: now,
        };
        self.change_vendor(id, actor, "vendor_paper_uploaded", |cur| {
            let mut v = cur.clone();
            v.papers.retain(|p| p.sha256 != digest);
            v.papers.push(paper.clone());
            Ok((v, json!({"sha256": digest, "terms": paper.terms}), Some(bytes.clone())))
        })
    }

    /// Links an existing Countersign agreement to the vendor.
    pub fn link_agreement(&self, id: &str, agreement_id: &str, actor: &Actor) -> Result<Vendor, ServiceError> {
        self.store.vendors().vendor(id)?;
        let a = self.store.agreement(agreement_id).map_err(|e| match e {
            StoreError::NotFound => ServiceError::Field("/agreement_id".into(), "no such agreement".into()),
            e => e.into(),
        })?;
        self.change_vendor(id, actor, "agreement_linked", |cur| {
            let mut v = cur.clone();
            if !v.agreements.contains(&a.id) {
                v.agreements.push(a.id.clone());
            }
            Ok((v, json!({"agreement_id": a.id, "kind": a.kind, "title": a.title}), None))
        })
    }

    /// Creates an agreement from an intake and links it to the vendor: the counterparty links
    /// back through `GET /vendors?agreement=…`.
    pub fn create_agreement_for_vendor(
        &self,
        id: &str,
        intake: &str,
        actor: &Actor,
    ) -> Result<(crate::domain::agreement::Agreement, Vendor), ServiceError> {
        self.store.vendors().vendor(id)?;
        let a = self.create(intake, actor)?;
        let v = self.link_agreement(id, &a.id, actor)?;
        Ok((a, v))
    }

    /// The start of an intake for a new agreement with this vendor: its kind and relationship
    /// from the determination, the vendor's name and contacts, the data flows' US states and the
    /// disclosed subcontractors. The rest (our side, signers, dates) is the drafter's.
    pub fn vendor_intake(&self, id: &str) -> Result<Value, ServiceError> {
        let v = self.store.vendors().vendor(id)?;
        let role = v.determination.as_ref().map(|d| d.role);
        let dua = role == Some(vendor::Role::DuaNeeded);
        let mut party = json!({"legal_name": v.legal_name});
        if let Some(c) = &v.privacy_contact {
            party["privacy_contact"] = json!({"name": c.name, "email": c.email});
        }
        if let Some(c) = &v.security_contact {
            party["security_contact"] = json!({"name": c.name, "email": c.email});
        }
        let mut states: Vec<&str> =
            v.data_flows.locations.iter().filter_map(|l| l.state.as_deref()).collect::<Vec<_>>();
        states.sort_unstable();
        states.dedup();
        let mut intake = json!({"kind": if dua { "dua" } else { "baa" }, "states": states});
        if dua {
            intake["recipient"] = party;
        } else {
            intake["relationship"] = json!(if role == Some(vendor::Role::Subcontractor) {
                "business_associate_to_subcontractor"
            } else {
                "covered_entity_to_business_associate"
            });
            intake["business_associate"] = party;
            intake["subcontractors"] = json!(
                v.subcontractors
                    .iter()
                    .map(|s| json!({"legal_name": s.name, "services": s.services.clone().unwrap_or_default(), "baa_in_place": s.downstream_baa_confirmed}))
                    .collect::<Vec<_>>()
            );
        }
        Ok(intake)
    }

    /// Records a completed reassessment (today unless a date is given).
    pub fn record_reassessment(&self, id: &str, date: Option<&str>, actor: &Actor) -> Result<Vendor, ServiceError> {
        let day = match date {
            Some(d) => Date::parse(d).map_err(|why| ServiceError::Field("/date".into(), why.into()))?,
            None => self.today(),
        };
        if day > self.today() {
            return Err(ServiceError::Field("/date".into(), "a reassessment cannot be recorded in the future".into()));
        }
        self.change_vendor(id, actor, "reassessed", |cur| {
            let mut v = cur.clone();
            v.last_assessed = Some(day.to_string());
            Ok((v, json!({"date": day.to_string()}), None))
        })
    }

    /// The terms of every agreement with the vendor: linked Countersign agreements (from their
    /// record and current version's check report) and vendor paper.
    pub fn vendor_terms(&self, v: &Vendor) -> Vec<AgreementTerms> {
        let mut out = Vec::new();
        for id in &v.agreements {
            let Ok(a) = self.store.agreement(id) else { continue };
            let report = self.store.version(&a.id, a.version).map(|r| r.report).unwrap_or(Value::Null);
            let provision = |tag: &str| {
                report["provisions"]
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["tag"] == tag && r["enabled"] == true))
                    .map(|r| r["parameters"].clone())
            };
            let audit = provision("audit_rights")
                .map(|p| (p["notice_days"].as_u64().unwrap_or(0) as u32, p["per_year"].as_u64().unwrap_or(1) as u32));
            let cyber = provision("cyber_insurance").and_then(|p| p["minimum_usd"].as_u64().or(p.as_u64()));
            let sub = a.facts.parent_agreement_id.is_some();
            out.push(AgreementTerms {
                source: a.id.clone(),
                title: a.title.clone(),
                kind: if a.kind == "baa" && sub { "subcontractor_baa".into() } else { a.kind.clone() },
                status: a.status.as_str().to_string(),
                vendor_paper: false,
                effective: Date::parse(&a.facts.effective_date).ok(),
                term_months: Some(a.facts.term_months),
                auto_renew: a.facts.auto_renew,
                breach_notice_days: report["breach_clock"]["days"].as_u64().map(|d| d as u32),
                audit,
                return_or_destroy: None,
                notice_days: self.config.reminders.term_notice_days.try_into().unwrap_or(30),
                cyber_insurance: cyber,
                ended: a.termination.as_ref().and_then(|t| Date::parse(&t.date).ok()).filter(|d| *d <= self.today()),
            });
        }
        out.extend(v.papers.iter().map(AgreementTerms::from_paper));
        out
    }

    /// A vendor with its standing today.
    pub fn vendor_view(&self, v: Vendor) -> VendorView {
        let terms = self.vendor_terms(&v);
        let standing = vendor::standing(&v, &terms, self.today(), &self.config.vendors);
        VendorView { vendor: v, standing, agreement_terms: terms }
    }

    pub fn vendor(&self, id: &str) -> Result<VendorView, ServiceError> {
        Ok(self.vendor_view(self.store.vendors().vendor(id)?))
    }

    pub fn vendor_audit(&self, id: &str) -> Result<(Vec<VendorEvent>, bool), ServiceError> {
        self.store.vendors().vendor(id)?;
        let events = self.store.vendors().vendor_events(id)?;
        let intact = crate::store::vendors::verify_vendor_events(&events).is_ok();
        Ok((events, intact))
    }

    /// Every vendor with its standing, sorted by name (accent-insensitive), then id.
    pub fn all_vendors(&self) -> Result<Vec<VendorView>, ServiceError> {
        let mut all: Vec<VendorView> =
            self.store.vendors().vendors()?.into_iter().map(|v| self.vendor_view(v)).collect();
        all.sort_by_cached_key(|v| (vendor::fold(&v.vendor.legal_name), v.vendor.id.clone()));
        Ok(all)
    }

    /// Search with filters; `items`, `total`, `next_cursor` (keyset on name and id).
    pub fn list_vendors(&self, q: &VendorQuery) -> Result<VendorPage, ServiceError> {
        let words: Vec<String> =
            q.q.as_deref().map(vendor::fold).unwrap_or_default().split_whitespace().map(String::from).collect();
        let limit = q.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ServiceError::Field("?limit".into(), "1–500".into()));
        }
        let after = match q.cursor.as_deref() {
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| ServiceError::Field("?cursor".into(), "not a cursor from this list".into()))?,
            ),
            None => None,
        };
        if let Some(f) = q.figure.as_deref()
            && !vendor::FIGURES.contains(&f)
        {
            return Err(ServiceError::Field("?figure".into(), format!("one of {}", vendor::FIGURES.join(", "))));
        }
        let today = self.today();
        let matches: Vec<VendorView> = self
            .all_vendors()?
            .into_iter()
            .filter(|x| {
                let v = &x.vendor;
                let hay = vendor::fold(
                    &std::iter::once(v.legal_name.as_str())
                        .chain(v.other_names.iter().map(String::as_str))
                        .chain(v.papers.iter().map(|p| p.terms.title.as_str()))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                words.iter().all(|w| hay.contains(w.as_str()))
                    && q.tier.as_deref().is_none_or(|t| x.standing.tier.as_str() == t)
                    && q.determination
                        .as_deref()
                        .is_none_or(|d| v.determination.as_ref().map_or("undetermined", |x| x.role.as_str()) == d)
                    && q.baa_status.as_deref().is_none_or(|s| x.standing.baa_status == s)
                    && q.flag.as_deref().is_none_or(|f| x.standing.flags.iter().any(|g| g.code == f))
                    && q.agreement.as_deref().is_none_or(|a| v.agreements.iter().any(|x| x == a))
                    && q.figure.as_deref().is_none_or(|f| vendor::counts_toward(f, v, &x.standing, today) > 0)
            })
            .collect();
        let total = matches.len();
        let mut items: Vec<VendorView> = matches
            .into_iter()
            .filter(|x| after.as_ref().is_none_or(|k| (vendor::fold(&x.vendor.legal_name), x.vendor.id.clone()) > *k))
            .take(limit + 1)
            .collect();
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|x| encode_cursor(&vendor::fold(&x.vendor.legal_name), &x.vendor.id))
        } else {
            None
        };
        Ok(VendorPage { items, total, next_cursor })
    }

    /// The executive report's figures, as of today.
    pub fn vendor_report(&self) -> Result<Report, ServiceError> {
        let all = self.all_vendors()?;
        let pairs: Vec<(&Vendor, &Standing)> = all.iter().map(|x| (&x.vendor, &x.standing)).collect();
        Ok(vendor::report(&pairs, self.today()))
    }

    /// The report as a PDF (rendered off the async threads by the caller).
    pub fn vendor_report_pdf(&self) -> Result<Vec<u8>, ServiceError> {
        Ok(crate::render::vendor_report::pdf(&self.vendor_report()?, self.clock.now()))
    }

    /// A vendor document's bytes (re-checked against their SHA-256), if it belongs to the vendor.
    pub fn vendor_file(&self, id: &str, sha256: &str) -> Result<Vec<u8>, ServiceError> {
        let v = self.store.vendors().vendor(id)?;
        if !v.documents.iter().any(|d| d.sha256 == sha256) && !v.papers.iter().any(|p| p.sha256 == sha256) {
            return Err(ServiceError::NotFound);
        }
        Ok(self.store.vendors().vendor_document(sha256)?)
    }

    /// Vendor documents and vendor-paper agreements matching words (accent-insensitive, over
    /// the vendor's names, the title and kind) and/or a SHA-256: the staff search.
    pub fn search_vendor_copies(&self, q: Option<&str>, sha256: Option<&str>) -> Result<Vec<VendorCopy>, ServiceError> {
        let words: Vec<String> = q.map(vendor::fold).unwrap_or_default().split_whitespace().map(String::from).collect();
        let mut out = Vec::new();
        for v in self.store.vendors().vendors()? {
            for c in copies(&v) {
                let hay = vendor::fold(&format!("{} {} {} {}", v.legal_name, v.other_names.join(" "), c.title, c.kind));
                if words.iter().all(|w| hay.contains(w.as_str())) && sha256.is_none_or(|s| s == c.sha256) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// For staff verify: is this file a vendor-provided copy on file? Checked against the
    /// stored bytes (a corrupt copy is no match). Never consulted by the public verify.
    pub fn vendor_copy(&self, sha256: &str) -> Result<Option<VendorCopy>, ServiceError> {
        let Some(c) = self.search_vendor_copies(None, Some(sha256))?.into_iter().next() else { return Ok(None) };
        match self.store.vendors().vendor_document(sha256) {
            Ok(_) => Ok(Some(c)),
            Err(StoreError::Corrupt(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The reminder tick for vendors: one reminder per vendor on the day its reassessment falls
    /// due (or at the first tick after, if the server was down), to the account owner and
    /// `staff_notice_to`. The outbox id `vendor-reassessment:<vendor>:<due date>` is
    /// deterministic, so a second tick or a restart never queues it twice; recording the
    /// reassessment moves the due date and so starts a new one.
    pub fn queue_vendor_reminders(&self) -> Result<usize, ServiceError> {
        let today = self.today();
        let mut queued = 0;
        for v in self.store.vendors().vendors()? {
            let view = self.vendor_view(v);
            if !view.standing.reassessment_due {
                continue;
            }
            let v = &view.vendor;
            let id = format!("vendor-reassessment:{}:{}", v.id, view.standing.next_reassessment);
            let _g = self.write();
            match self.store.message(&id) {
                Ok(_) => continue,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            let m = self.reassessment_message(&view, id, today);
            self.commit(Change { messages: vec![m], ..Default::default() })?;
            queued += 1;
        }
        if queued > 0 {
            self.mail_wake.notify_one();
        }
        Ok(queued)
    }

    fn reassessment_message(&self, view: &VendorView, id: String, today: Date) -> Message {
        let v = &view.vendor;
        let to: Vec<String> =
            v.account_owner.iter().cloned().chain(self.config.staff_notice_to.iter().cloned()).collect();
        let url = format!("{}/api/v1/vendors/{}", self.config.base_url(), v.id);
        let due = Date::parse(&view.standing.next_reassessment).map(|d| d.long()).unwrap_or_default();
        let flags: String = view.standing.flags.iter().map(|f| format!("- {}\n", f.message)).collect();
        let subject = format!("[Countersign] Vendor reassessment due: {}", v.legal_name);
        let text = format!(
            "The {} risk reassessment of {} falls due on {due}.\n\nWhat needs attention today ({}):\n{}\nRecord the reassessment when it is done (POST …/reassessed):\n{url}\n",
            view.standing.tier.as_str(),
            v.legal_name,
            today.long(),
            if flags.is_empty() { "- nothing else\n".to_string() } else { flags },
        );
        let message_id = crate::mail::content::message_id_for(&id, &self.config);
        let to = ("Countersign staff".to_string(), to.join(", "));
        let m = Message::queued(id, message_id, "notice_vendor_reassessment", to, subject, text, self.clock.now());
        Message { agreement_id: v.id.clone(), ..m }
    }
}

/// The names print in the report: every character must be in the embedded font.
fn printable(v: &Vendor) -> Result<(), ServiceError> {
    let names = std::iter::once(("/legal_name".to_string(), &v.legal_name))
        .chain(v.other_names.iter().enumerate().map(|(i, n)| (format!("/other_names/{i}"), n)));
    let bad: Vec<Finding> = names
        .filter_map(|(p, n)| {
            n.chars()
                .find(|c| !crate::render::fonts::printable(*c))
                .map(|c| Finding::field(p, format!("the character {c:?} (U+{:04X}) cannot be printed", c as u32)))
        })
        .collect();
    if bad.is_empty() { Ok(()) } else { Err(invalid(bad)) }
}

fn check_upload(bytes: &[u8], pdf: bool, f: &mut Vec<Finding>) {
    if bytes.is_empty() {
        f.push(Finding::field("", "the body is empty: send the file's bytes"));
    } else if bytes.len() > MAX_UPLOAD {
        f.push(Finding::field("", "the file is larger than 32 MB"));
    } else if pdf && !bytes.starts_with(b"%PDF-") {
        f.push(Finding::field("", "not a PDF: send the executed agreement's PDF bytes"));
    }
}

fn copies(v: &Vendor) -> Vec<VendorCopy> {
    let make = |category, kind: String, title: String, sha: &str, by: &str, at: u64| VendorCopy {
        record_type: "vendor_document",
        vendor_id: v.id.clone(),
        vendor_name: v.legal_name.clone(),
        category,
        kind,
        message: format!("vendor-provided copy, uploaded by {by} on {}", crate::domain::time::long_date(at)),
        title,
        sha256: sha.to_string(),
        uploaded_by: by.to_string(),
        uploaded_at: crate::domain::time::rfc3339(at),
    };
    let mut out: Vec<VendorCopy> = v
        .papers
        .iter()
        .map(|p| {
            make("vendor_paper", p.terms.kind.clone(), p.terms.title.clone(), &p.sha256, &p.uploaded_by, p.uploaded_at)
        })
        .collect();
    out.extend(v.documents.iter().map(|d| {
        let kind = serde_json::to_value(d.kind).ok().and_then(|k| k.as_str().map(String::from)).unwrap_or_default();
        make("due_diligence", kind, d.kind.label().to_string(), &d.sha256, &d.uploaded_by, d.uploaded_at)
    }));
    out
}

fn encode_cursor(name: &str, id: &str) -> String {
    hex::encode(format!("{name}\u{1f}{id}"))
}

fn decode_cursor(c: &str) -> Option<(String, String)> {
    let raw = String::from_utf8(hex::decode(c).ok()?).ok()?;
    let (n, i) = raw.split_once('\u{1f}')?;
    Some((n.to_string(), i.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor("eclair labs", "v01");
        assert_eq!(decode_cursor(&c), Some(("eclair labs".into(), "v01".into())));
        assert_eq!(decode_cursor("zz"), None);
    }
}
