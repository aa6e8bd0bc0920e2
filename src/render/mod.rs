//! Render: intake → tera markup → document model → checked → laid out → PDF.
//!
//! The pipeline is pure and CPU-bound (about a millisecond per agreement); servers call it from
//! `spawn_blocking`, the batch command from rayon.

pub mod appendix;
pub mod check;
pub mod context;
pub mod diff;
pub mod fonts;
pub mod html;
pub mod layout;
pub mod model;
pub mod pdf;
mod shelf;
pub mod vendor_report;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::addenda::{self, BreachClock, Catalog};
use crate::domain::findings::{Finding, Level};
use crate::domain::intake::{Intake, Kind, Party, Relationship};
use crate::domain::provisions::{Policy, ProvisionChoices, ProvisionRow, Provisions};
use check::{Check, ElementRow};
use context::{TemplateError, Templates};
use model::{Article, Attachment, Block, Document, Run, SignatureLine};

/// Which copy to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Carries the DRAFT mark and the counsel-review notice.
    Draft,
    /// The copy sent for signature: no draft mark; the signature block points to the executed
    /// signature page that completion appends.
    ForSignature,
}

/// Render options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// The agreement version printed in the header and reported with the hash.
    pub version: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { mode: Mode::Draft, version: 1 }
    }
}

/// Why rendering failed. Intake problems never reach here (they are findings from `parse`);
/// this is a broken template.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The breach clock as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ClockReport {
    pub days: u32,
    pub unit: addenda::DayUnit,
    pub immediately: bool,
    pub text: String,
    pub explanation: String,
    /// The laws (with the margin each left the owner) that set the number.
    pub bound_by: Vec<String>,
    /// The policy's owner margins and floor that applied.
    pub margins: addenda::Margins,
}

/// The element report, printed by `render` and `check` and returned by the API.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    pub version: u32,
    pub mode: Mode,
    pub pages: usize,
    pub bytes: usize,
    pub sha256: String,
    pub breach_clock: ClockReport,
    pub addenda: Vec<String>,
    /// Required elements: each must be satisfied.
    pub elements: Vec<ElementRow>,
    /// Negotiated provisions (BAA): present or not, with their parameters and clause.
    pub provisions: Vec<ProvisionRow>,
    /// Departures from the negotiation policy: `needs_approval` findings.
    pub departures: Vec<Finding>,
    /// Everything else: errors and advisories.
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing blocks sending.
    pub fn passes(&self) -> bool {
        self.errors() == 0 && self.departures.is_empty()
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.level == Level::Error).count()
    }
}

/// A rendered agreement.
pub struct Rendered {
    pub pdf: Vec<u8>,
    pub document: Document,
    pub report: Report,
}

/// The renderer: templates loaded once, fonts shared by the process.
pub struct Renderer {
    templates: Templates,
    policy: Policy,
    /// Digest of the templates and the policy: with the intake and options, what fixes the bytes.
    fingerprint: String,
}

fn fingerprint(t: &Templates, p: &Policy) -> String {
    let mut h = Sha256::new();
    h.update(t.digest.as_bytes());
    h.update(serde_json::to_vec(p).unwrap_or_default());
    hex::encode(h.finalize())
}

impl Renderer {
    /// With the templates compiled into the binary.
    pub fn builtin() -> Result<Renderer, RenderError> {
        Ok(Self::with_templates(Templates::builtin()?))
    }

    pub fn with_templates(templates: Templates) -> Renderer {
        let policy = Policy::embedded().clone();
        Renderer { fingerprint: fingerprint(&templates, &policy), templates, policy }
    }

    /// Uses another negotiation policy (legal's file).
    pub fn with_policy(mut self, policy: Policy) -> Renderer {
        self.fingerprint = fingerprint(&self.templates, &policy);
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Builds the document model and runs every check, without laying out pages.
    pub fn document(&self, intake: &Intake, opts: Options) -> Result<(Document, BreachClock, Check), RenderError> {
        let catalog = Catalog::embedded();
        let subcontract =
            matches!(&intake.kind, Kind::Baa(b) if b.relationship == Relationship::BusinessAssociateToSubcontractor);
        let selection = addenda::select(
            catalog,
            &intake.states,
            addenda::ClockInput {
                intake_days: u32::from(intake.breach_notice_days),
                ca_licensed_facility: intake.ca_licensed_facility,
                subcontract,
                margins: self.policy.breach_clock.margins(),
            },
        );
        let addenda_names: Vec<(String, String)> =
            selection.addenda.iter().map(|s| (s.code.clone(), s.name.clone())).collect();
        // Negotiated provisions apply to BAAs; a DUA is still held to the policy's breach clock.
        let choices = match &intake.kind {
            Kind::Baa(b) => (*b.provisions).clone(),
            Kind::Dua(_) => ProvisionChoices::default(),
        };
        let (provisions, mut departures) =
            Provisions::resolve(&choices, &self.policy, intake.upstream.address.state, selection.clock.days);
        if matches!(intake.kind, Kind::Dua(_)) {
            departures.retain(|d| d.pointer.as_deref() == Some("/breach_notice_days"));
        }
        let ctx = context::context(intake, &selection.clock, &addenda_names, provisions.context());

        let body = self.templates.render(context::body_template(intake), &ctx)?;
        let (intro, mut articles) = model::articles(model::parse_markup_kept(&body));
        if !intro.is_empty() {
            articles.insert(0, Article { number: 0, heading: String::new(), intro, clauses: Vec::new() });
        }

        let mut attachments = Vec::new();
        for law in &selection.addenda {
            let name = format!("addenda/{}.md.tera", law.code);
            let (intro, clauses) = if self.templates.has(&name) {
                model::clauses(model::parse_markup_kept(&self.templates.render(&name, &ctx)?))
            } else {
                (Vec::new(), Vec::new())
            };
            let mut notes: Vec<String> =
                law.citations.iter().map(|c| format!("{} — {} [{}]", c.cite, c.subject, c.status.symbol())).collect();
            notes.push(format!(
                "Statements of state law current as of {}. ✓ checked against the statute; ◐ from secondary sources; ⚠ not yet checked: verify with counsel.",
                law.as_of
            ));
            attachments.push(Attachment {
                label: format!("Addendum {}", law.code),
                heading: format!("{} State-Law Addendum", law.name),
                notes,
                intro,
                clauses,
            });
        }
        for (i, e) in intake.exhibits.iter().enumerate() {
            attachments.push(Attachment {
                label: format!("Exhibit {}", context::exhibit_letter(i)),
                heading: e.title.clone(),
                notes: Vec::new(),
                intro: e
                    .paragraphs
                    .iter()
                    .map(|p| Block::Paragraph { runs: vec![Run { text: p.clone(), bold: false }] })
                    .collect(),
                clauses: Vec::new(),
            });
        }
        if !attachments.is_empty() {
            let number = articles.last().map_or(1, |a| a.number + 1);
            let mut intro = vec![Block::Paragraph {
                runs: vec![Run {
                    text: "The following addenda and exhibits are attached to and form part of this Agreement:".into(),
                    bold: false,
                }],
            }];
            intro.extend(attachments.iter().enumerate().map(|(i, a)| Block::Item {
                ordered: false,
                index: i,
                depth: 0,
                runs: vec![Run { text: format!("{} — {}", a.label, a.heading), bold: false }],
            }));
            articles.push(Article { number, heading: "Addenda and Exhibits".into(), intro, clauses: Vec::new() });
        }

        let title = context::title(intake).to_string();
        let (up, down) = (&intake.upstream, &intake.downstream);
        let doc = Document {
            subtitle: vec![
                format!("between {} and {}", up.legal_name, down.legal_name),
                format!("Effective {}", intake.effective_date.long()),
            ],
            parties: vec![party_runs(up), party_runs(down)],
            draft_notice: (opts.mode == Mode::Draft).then(|| DRAFT_NOTICE.to_string()),
            articles,
            attachments,
            signature_note: (opts.mode == Mode::ForSignature).then(|| SIGNED_ELECTRONICALLY.to_string()),
            signatures: intake
                .signers
                .iter()
                .map(|s| {
                    let p = if s.side == crate::domain::intake::Side::Upstream { up } else { down };
                    SignatureLine {
                        party_label: p.role.label().into(),
                        party_name: p.legal_name.clone(),
                        signer_name: s.name.clone(),
                        signer_title: s.title.clone(),
                        order: s.order,
                    }
                })
                .collect(),
            subject: format!("{title} between {} and {}", up.legal_name, down.legal_name),
            author: up.legal_name.clone(),
            title,
        };
        let mut checked = check::check(&doc, intake, &selection.clock);
        if matches!(intake.kind, Kind::Baa(_)) {
            checked.provisions = check::check_provisions(&doc, &provisions, &mut checked.findings);
        }
        checked.findings.extend(selection.findings);
        checked.findings.sort_by_key(|f| f.level);
        checked.departures = departures;
        Ok((doc, selection.clock, checked))
    }

    /// Renders the PDF and its report.
    pub fn render(&self, intake: &Intake, opts: Options) -> Result<Rendered, RenderError> {
        let (doc, clock, checked) = self.document(intake, opts)?;
        let fonts = fonts::fonts();
        let pages = layout::layout(fonts, &doc);

        // The /ID digest: the intake, the options and the software version determine every
        // byte of the document (templates and fonts are compiled in), at a fraction of the
        // cost of hashing the document itself.
        let id = pdf::id_of(&[
            &serde_json::to_vec(intake).unwrap_or_default(),
            format!("{:?}{}{}", opts.mode, opts.version, env!("CARGO_PKG_VERSION")).as_bytes(),
            self.fingerprint.as_bytes(),
        ]);

        let header_right = match opts.mode {
            Mode::Draft => "DRAFT — for review by counsel".to_string(),
            Mode::ForSignature => format!("Version {}", opts.version),
        };
        let meta = pdf::Meta {
            title: &doc.title,
            subject: &doc.subject,
            author: &doc.author,
            keywords: vec!["HIPAA".into(), doc.title.clone()],
            date_unix: intake.effective_date.days_since_epoch() * 86_400,
            header: &doc.title,
            header_right: &header_right,
            draft: opts.mode == Mode::Draft,
            id,
        };
        let bytes = pdf::write(fonts, &pages, &meta);
        let report = Report {
            title: doc.title.clone(),
            version: opts.version,
            mode: opts.mode,
            pages: pages.len(),
            bytes: bytes.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            breach_clock: ClockReport {
                days: clock.days,
                unit: clock.unit,
                immediately: clock.immediately,
                text: clock.text(),
                explanation: clock.explain(),
                bound_by: clock.bound_by(),
                margins: clock.margins,
            },
            addenda: doc
                .attachments
                .iter()
                .filter(|a| a.label.starts_with("Addendum"))
                .map(|a| a.label.clone())
                .collect(),
            elements: checked.elements,
            provisions: checked.provisions,
            departures: checked.departures,
            findings: checked.findings,
        };
        Ok(Rendered { pdf: bytes, document: doc, report })
    }
}

const DRAFT_NOTICE: &str = "This agreement was generated by Countersign from intake data. It is a draft for review by counsel and is not legal advice. Each clause names the regulation it is written to satisfy; counsel should confirm the text, the state-law addenda and the negotiated terms before it is sent for signature.";

const SIGNED_ELECTRONICALLY: &str = "This Agreement is signed electronically. Each signer’s typed name, title, date and signature ID appear on the Executed Signature Page appended to this document on execution, followed by a Certificate of Completion.";

fn party_runs(p: &Party) -> Vec<Run> {
    let contact = |label: &str, c: &crate::domain::intake::Contact| {
        let mut s = format!(" {label}: {}, {}", c.name, c.email.as_str());
        if let Some(ph) = &c.phone {
            s.push_str(", ");
            s.push_str(ph);
        }
        s.push('.');
        s
    };
    vec![
        Run { text: p.legal_name.clone(), bold: true },
        Run {
            text: format!(
                " (“{}”), {}.{}{}",
                p.role.label(),
                p.address.one_line(),
                contact("Privacy contact", &p.privacy_contact),
                contact("Security contact", &p.security_contact)
            ),
            bold: false,
        },
    ]
}
