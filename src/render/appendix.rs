//! The pages appended on completion: the executed signature page and the certificate of
//! completion. Laid out and written by the same engine as the agreement, then appended to the
//! sent PDF as an incremental update (`pdf::append`), so the sent bytes stay a prefix.

use super::fonts::fonts;
use super::model::{Article, Attachment, Block, Clause, Document, Run};
use super::{layout, pdf};
use crate::domain::agreement::Agreement;
use crate::domain::audit::Event;
use crate::domain::time::rfc3339;

fn para(text: impl Into<String>) -> Block {
    Block::Paragraph { runs: vec![Run { text: text.into(), bold: false }] }
}

fn labeled(label: &str, value: impl Into<String>) -> Block {
    Block::Paragraph {
        runs: vec![Run { text: format!("{label}: "), bold: true }, Run { text: value.into(), bold: false }],
    }
}

fn item(i: usize, text: String) -> Block {
    Block::Item { ordered: false, index: i, depth: 0, runs: vec![Run { text, bold: false }] }
}

/// How a signer was verified, in words (records from before the code existed: the link alone).
fn verification(method: &str) -> String {
    match method {
        "email_link+email_code" => {
            "personal link sent to the signer’s email address, and a one-time code sent to that address".into()
        }
        "" | "email_link" => "personal link sent to the signer’s email address".into(),
        other => other.into(),
    }
}

/// Renders the appendix PDF for an executed agreement.
pub fn render(a: &Agreement, events: &[Event], sent_sha256: &str, now: u64, seal_fingerprint: &str) -> Vec<u8> {
    let mut sig_blocks = vec![para(
        "The parties signed the agreement identified below electronically. Each signature is the signer’s typed name, \
         adopted with intent to sign after consenting to electronic signature, and is attributed to the signer by the \
         personal link sent to the signer’s email address (UETA § 9).",
    )];
    let mut signer_clauses = Vec::new();
    for (i, s) in a.signers.iter().enumerate() {
        let Some(sig) = &s.signature else { continue };
        sig_blocks.push(Block::Paragraph {
            runs: vec![Run { text: format!("{} ({})", s.party_name, s.party_label), bold: true }],
        });
        sig_blocks.push(labeled("Signed electronically by", format!("/{}/", sig.typed_name)));
        sig_blocks.push(labeled("Name", sig.typed_name.clone()));
        sig_blocks.push(labeled("Title", sig.typed_title.clone()));
        sig_blocks.push(labeled("Date", rfc3339(sig.signed_at)));
        sig_blocks.push(labeled("Signature ID", sig.signature_id.clone()));

        let mut body = vec![
            labeled("Signer of record", format!("{} <{}>, {} of {}", s.name, s.email, s.title, s.party_name)),
            labeled("Signing order", s.order.to_string()),
            labeled("Consent", format!("accepted, text version {}", sig.consent_version)),
            labeled("Verification", verification(&sig.verification)),
            labeled("IP address", sig.ip.clone()),
            labeled("Browser", sig.user_agent.clone()),
        ];
        let mine: Vec<&Event> =
            events.iter().filter(|e| e.detail.get("signer").and_then(|v| v.as_str()) == Some(s.id.as_str())).collect();
        body.extend(mine.iter().enumerate().map(|(k, e)| {
            let from = if e.ip.is_empty() { String::new() } else { format!(" from {} ({})", e.ip, e.user_agent) };
            item(k, format!("{} — {}{}", e.time, e.kind.replace('_', " "), from))
        }));
        signer_clauses.push(Clause {
            number: (i + 1).to_string(),
            heading: format!("{} — {}", s.name, s.party_label),
            elements: Vec::new(),
            body,
        });
    }

    let mut cert_intro = vec![
        labeled("Agreement", format!("{} — {} and {}", a.title, a.upstream_name, a.downstream_name)),
        labeled("Agreement ID", a.id.clone()),
        labeled("Version", a.version.to_string()),
        labeled("SHA-256 of the document as sent", sent_sha256.to_string()),
        labeled("Sealed by", format!("Countersign document seal, certificate SHA-256 fingerprint {seal_fingerprint}")),
        labeled("Sent", a.sent_at.map(rfc3339).unwrap_or_default()),
        labeled("Completed", rfc3339(now)),
        para(
            "The document as sent is unchanged: its bytes are the beginning of this file, and these pages were \
             appended as an incremental update. Its SHA-256 above can be checked against the archive. The whole \
             file is then sealed with a PAdES digital signature by the certificate named above, which Adobe \
             Acrobat and poppler's pdfsig can validate once the Countersign CA is trusted.",
        ),
    ];
    let created = events.iter().find(|e| e.kind == "created").map(|e| e.time.clone()).unwrap_or_default();
    cert_intro.push(labeled("Created", created));

    let doc = Document {
        title: "Executed Signature Page".into(),
        subtitle: vec![
            a.title.clone(),
            format!("between {} and {}", a.upstream_name, a.downstream_name),
            format!("Agreement {}", a.id),
        ],
        parties: Vec::new(),
        draft_notice: None,
        articles: vec![Article { number: 0, heading: String::new(), intro: sig_blocks, clauses: Vec::new() }],
        attachments: vec![Attachment {
            label: "Certificate".into(),
            heading: "Certificate of Completion".into(),
            notes: vec![format!("Issued by Countersign on {}", rfc3339(now))],
            intro: cert_intro,
            clauses: signer_clauses,
        }],
        signature_note: None,
        signatures: Vec::new(),
        subject: format!("Executed signature page and certificate of completion for {}", a.id),
        author: "Countersign".into(),
    };
    let f = fonts();
    let pages = layout::layout(f, &doc);
    let id = pdf::id_of(&[&serde_json::to_vec(&doc).unwrap_or_default()]);
    let header = format!("{} — executed", a.title);
    let right = format!("Agreement {}", a.id);
    pdf::write(
        f,
        &pages,
        &pdf::Meta {
            title: &doc.title,
            subject: &doc.subject,
            author: &doc.author,
            keywords: vec!["HIPAA".into(), "certificate of completion".into()],
            date_unix: now as i64,
            header: &header,
            header_right: &right,
            draft: false,
            id,
        },
    )
}
