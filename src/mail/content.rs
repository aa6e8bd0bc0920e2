//! Email content from tera templates (`templates/email/`): a plain-text and an HTML alternative
//! of every message, rendered when the message is queued and stored with it, so a retry or a
//! restart sends exactly what was queued.
//!
//! The HTML templates are autoescaped (every value is HTML-escaped); the text templates are not
//! escaped (there is nothing to escape in plain text). Messages carry no PHI: the agreement
//! title, the parties' names, the recipient's name and role, who asked, the link and its expiry.

use std::sync::OnceLock;

use tera::{Context, Tera};

use super::MailError;
use crate::config::Config;
use crate::domain::agreement::Agreement;
use crate::store::Message;

const TEMPLATES: [(&str, &str); 9] = [
    ("email/base.html.tera", include_str!("../../templates/email/base.html.tera")),
    ("email/signer.txt.tera", include_str!("../../templates/email/signer.txt.tera")),
    ("email/signer.html.tera", include_str!("../../templates/email/signer.html.tera")),
    ("email/completion.txt.tera", include_str!("../../templates/email/completion.txt.tera")),
    ("email/completion.html.tera", include_str!("../../templates/email/completion.html.tera")),
    ("email/notice.txt.tera", include_str!("../../templates/email/notice.txt.tera")),
    ("email/notice.html.tera", include_str!("../../templates/email/notice.html.tera")),
    ("email/code.txt.tera", include_str!("../../templates/email/code.txt.tera")),
    ("email/code.html.tera", include_str!("../../templates/email/code.html.tera")),
];

fn tera() -> Result<&'static Tera, MailError> {
    static TERA: OnceLock<Result<Tera, MailError>> = OnceLock::new();
    TERA.get_or_init(|| {
        let mut t = crate::render::html::tera();
        for (name, src) in TEMPLATES {
            t.add_raw_template(name, src)
                .map_err(|e| MailError::Template { what: name.to_string(), reason: e.to_string() })?;
        }
        Ok(t)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Loads the templates (called at start-up so a broken template stops the server early).
pub fn check() -> Result<(), MailError> {
    tera().map(|_| ())
}

/// Renders `email/<name>.txt.tera` and `email/<name>.html.tera`.
pub fn render(name: &str, ctx: &Context) -> Result<(String, String), MailError> {
    let t = tera()?;
    let part = |ext: &str| {
        t.render(&format!("email/{name}.{ext}.tera"), ctx)
            .map_err(|e| MailError::Template { what: format!("{name}.{ext}"), reason: e.to_string() })
    };
    let text = part("txt")?;
    let html = part("html")?;
    Ok((text, html))
}

/// The domain part of Message-IDs: the From address's domain.
pub fn domain(config: &Config) -> String {
    super::settings::from_header(config)
        .rsplit('@')
        .next()
        .map(|d| d.trim_end_matches('>').trim().to_string())
        .filter(|d| !d.is_empty() && !d.contains(['<', ' ', '"']))
        .unwrap_or_else(|| "countersign.local".into())
}

/// A stable RFC 5322 Message-ID (without angle brackets) for a message id: ids may contain
/// `:` (deterministic reminder ids), which a msg-id may not.
pub fn message_id_for(id: &str, config: &Config) -> String {
    let left: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '.' }).collect();
    format!("{left}@{}", domain(config))
}

/// Who asked: the staff member who sent the agreement when that is an address, otherwise the
/// disclosing party (API keys are not people yet).
pub fn requester(a: &Agreement) -> String {
    match a.sent_by.as_deref() {
        Some(who) if who.contains('@') && !who.contains(':') => who.to_string(),
        _ => a.upstream_name.clone(),
    }
}

/// Where a recipient's reply should go, never the service's own From address (nobody reads
/// it): the person who sent the agreement when that is an address; else the operator's
/// configured `reply_to`; else the disclosing party's privacy contact from the intake.
pub fn reply_to(a: &Agreement, config: &Config) -> Option<String> {
    match a.sent_by.as_deref() {
        Some(who) if who.contains('@') && !who.contains(':') => Some(who.to_string()),
        _ => config.smtp.as_ref().and_then(|s| s.reply_to.clone()).or_else(|| {
            a.facts.upstream_contact.as_ref().map(|(name, email)| {
                let name = name.replace(['"', '\\'], "");
                if name.is_empty() { email.clone() } else { format!("\"{name}\" <{email}>") }
            })
        }),
    }
}

/// The shared context of every message about an agreement.
pub fn agreement_context(a: &Agreement) -> Context {
    let mut ctx = Context::new();
    ctx.insert("title", &a.title);
    ctx.insert("up", &a.upstream_name);
    ctx.insert("down", &a.downstream_name);
    ctx.insert("agreement_id", &a.id);
    ctx.insert("status", a.status.as_str());
    ctx.insert("requester", &requester(a));
    ctx
}

/// What a message is, before it becomes a [`Message`].
pub struct Draft {
    /// The outbox id; None: a fresh time-ordered id.
    pub id: Option<String>,
    pub kind: String,
    pub to_name: String,
    pub to: String,
    pub subject: String,
    pub signer_id: Option<String>,
    /// The template pair (`signer`, `completion`, `notice`).
    pub template: &'static str,
    pub ctx: Context,
    /// Plain text used if the templates fail (they are compiled in and tested; this keeps a
    /// message from being lost to a template bug).
    pub fallback: String,
}

/// Renders a draft into a queued message.
pub fn build(config: &Config, a: &Agreement, mut d: Draft, now: u64) -> Message {
    d.ctx.insert("subject", &d.subject);
    let (text, html) = match render(d.template, &d.ctx) {
        Ok((t, h)) => (t, Some(h)),
        Err(e) => {
            tracing::error!(error = %e, kind = %d.kind, "email template failed; sending plain text");
            (d.fallback, None)
        }
    };
    let id = d.id.unwrap_or_else(|| crate::store::ids::message_id(now));
    let message_id = message_id_for(&id, config);
    Message {
        agreement_id: a.id.clone(),
        html,
        signer_id: d.signer_id,
        reply_to: reply_to(a, config),
        ..Message::queued(id, message_id, &d.kind, (d.to_name, d.to), d.subject, text, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_load() {
        check().expect("email templates compile");
    }

    #[test]
    fn message_ids_are_valid_msg_ids() {
        let c = Config::default();
        assert_eq!(message_id_for("reminder:ag_1:s1:2:3", &c), "reminder.ag_1.s1.2.3@localhost");
        let c = Config { mail_from: "no-reply@sign.example.com".into(), ..Config::default() };
        assert_eq!(message_id_for("m1", &c), "m1@sign.example.com");
    }
}
