//! Staff notices: a signer declined, a message finally failed, every open link expired
//! unsigned, an executed agreement's renewal or termination date approaches.
//!
//! Recipients (`to`, comma-separated) are chosen by the caller
//! (`Service::notice_to` in the app layer): `staff_notice_to`, the agreement's creator
//! when the creator is a person with an email (not an API key such as `admin:bootstrap`), and
//! every active person with the `legal` role, each once. With none of them a notice is still
//! queued (visible in the API and `countersign outbox list`, and written as an `.eml` copy) and
//! marked `skipped`, never sent.
//!
//! Each notice has a deterministic outbox id (`notice:<agreement>:<what>:<which>`), so the same
//! event never queues two notices, across restarts too. Notices say what happened and where to
//! look; they carry no decline reason (free text that could hold anything) and no PHI.

use tera::Context;

use super::content::{self, Draft};
use crate::clock::long_date;
use crate::config::Config;
use crate::domain::agreement::{Agreement, SignerRecord};
use crate::domain::intake::Date;
use crate::store::Message;

/// True for kinds that are staff notices (their own failure never causes another notice).
pub fn is_notice(kind: &str) -> bool {
    kind.starts_with("notice_")
}

#[allow(clippy::too_many_arguments)]
fn notice(
    config: &Config,
    a: &Agreement,
    id: String,
    kind: &str,
    subject: String,
    headline: String,
    details: Vec<String>,
    action: &str,
    to: &str,
    now: u64,
) -> Message {
    let mut ctx: Context = content::agreement_context(a);
    ctx.insert("headline", &headline);
    ctx.insert("details", &details);
    ctx.insert("action", action);
    let api_url = format!("{}/api/v1/agreements/{}", config.base_url(), a.id);
    ctx.insert("api_url", &api_url);
    let fallback = format!("{headline}\n\n{}\n{}\n\n{action}\n{api_url}\n", a.title, details.join("\n"));
    content::build(
        config,
        a,
        Draft {
            id: Some(id),
            kind: kind.into(),
            to_name: "Countersign staff".into(),
            to: to.to_string(),
            subject: format!("[Countersign] {subject}: {} — {} and {}", a.title, a.upstream_name, a.downstream_name),
            signer_id: None,
            template: "notice",
            ctx,
            fallback,
        },
        now,
    )
}

/// A signer declined (queued with the decline).
pub fn declined(config: &Config, a: &Agreement, s: &SignerRecord, to: &str, now: u64) -> Message {
    notice(
        config,
        a,
        format!("notice:{}:declined:v{}", a.id, a.version),
        "notice_declined",
        "Declined".into(),
        format!("{} ({}) declined to sign.", s.name, s.party_name),
        vec![format!("Declined by: {}, {} of {}", s.name, s.title, s.party_name)],
        "The reason is recorded in Countersign. To change the terms and send again, revise the agreement (POST …/revise).",
        to,
        now,
    )
}

/// Every open link expired unsigned (queued with the change to `expired`). `which`: the latest
/// link expiry, so a later expiry after a resend is a new notice.
pub fn expired(config: &Config, a: &Agreement, to: &str, now: u64) -> Message {
    let which = a.signers.iter().filter_map(|s| s.link_expires).max().unwrap_or(now);
    let waiting: Vec<String> = a
        .signers
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                crate::domain::agreement::SignerStatus::Notified | crate::domain::agreement::SignerStatus::Opened
            )
        })
        .map(|s| {
            format!(
                "Not signed: {} ({}), link expired {}",
                s.name,
                s.party_name,
                long_date(s.link_expires.unwrap_or(now))
            )
        })
        .collect();
    notice(
        config,
        a,
        format!("notice:{}:expired:{which}", a.id),
        "notice_expired",
        "Expired unsigned".into(),
        "The signing links expired before every signer signed.".into(),
        waiting,
        "To continue, send the signer a new link (POST …/signers/{signer}/resend).",
        to,
        now,
    )
}

/// A message failed for good (queued with the failure).
pub fn failed(config: &Config, a: &Agreement, m: &Message, to: &str, now: u64) -> Message {
    notice(
        config,
        a,
        format!("notice:{}:failed:{}", a.id, m.id),
        "notice_failed",
        "Email not delivered".into(),
        format!("A {} email to {} could not be delivered.", m.kind.replace('_', " "), m.to),
        vec![
            format!("Message: {} ({})", m.id, m.kind),
            format!("Attempts: {}", m.attempts),
            format!("Reason: {}", m.last_error.as_deref().unwrap_or("unknown")),
        ],
        "Check the address, then retry it (POST /api/v1/outbox/{id}/retry or `countersign outbox retry ID`), or correct the signer and resend.",
        to,
        now,
    )
}

/// Whether a term date is a renewal or the end of the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermEvent {
    Renewal,
    Termination,
}

/// An executed agreement renews or terminates on `date` (queued by the tick).
pub fn term(config: &Config, a: &Agreement, event: TermEvent, date: Date, to: &str, now: u64) -> Message {
    let (what, kind, headline, action) = match event {
        TermEvent::Renewal => (
            "renewal",
            "notice_renewal",
            format!("This agreement renews automatically on {}.", date.long()),
            "If it should not renew, give notice under its term clause before that date.",
        ),
        TermEvent::Termination => (
            "termination",
            "notice_termination",
            format!("This agreement's term ends on {}.", date.long()),
            "If the relationship continues, put a new agreement in place before that date.",
        ),
    };
    notice(
        config,
        a,
        format!("notice:{}:{what}:{date}", a.id),
        kind,
        format!("{} on {}", if event == TermEvent::Renewal { "Renews" } else { "Ends" }, date.long()),
        headline,
        vec![],
        action,
        to,
        now,
    )
}
