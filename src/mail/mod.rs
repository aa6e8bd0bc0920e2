//! Outgoing mail: message content and the `.eml` outbox.
//!
//! Messages are queued in sled in the same transaction as the change that causes them
//! (`store::Change::messages`). With the default configuration each is also written as an
//! RFC 5322 file under `<data>/outbox/<id>.eml`, so a user without SMTP can still send links by
//! hand. Messages carry no PHI: only the agreement title, the parties' names and the link.

use std::io::Write;
use std::path::Path;

use base64::Engine;

use crate::clock::rfc5322;
use crate::config::Config;
use crate::domain::agreement::{Agreement, SignerRecord};
use crate::store::Message;

fn domain(config: &Config) -> String {
    config
        .mail_from
        .rsplit('@')
        .next()
        .map(|d| d.trim_end_matches('>').trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "countersign.local".into())
}

/// The invitation to sign.
pub fn link_message(config: &Config, a: &Agreement, s: &SignerRecord, url: &str, expires: &str, now: u64) -> Message {
    let subject = format!("Please sign: {} — {} and {}", a.title, a.upstream_name, a.downstream_name);
    let sender = a.sent_by.clone().unwrap_or_else(|| a.created_by.clone());
    let text = format!(
        "Hello {name},\n\n\
         {sender} has asked you to review and sign the {title} between {up} and {down}, \
         as {stitle} of {party}.\n\n\
         Open the agreement to read it, download the PDF, and sign or decline:\n\n\
         {url}\n\n\
         This link is personal to you: do not forward it. It expires on {expires}. \
         If it has expired, reply to this message to ask for a new one.\n\n\
         — Countersign, on behalf of {up}\n",
        name = s.name,
        title = a.title,
        up = a.upstream_name,
        down = a.downstream_name,
        stitle = s.title,
        party = s.party_name,
    );
    Message::new_link(a, s, "link", subject, text, now, &domain(config))
}

/// The completion notice with a download link to the countersigned copy.
pub fn completion_message(
    config: &Config,
    a: &Agreement,
    s: &SignerRecord,
    url: &str,
    expires: &str,
    now: u64,
) -> Message {
    let subject = format!("Completed: {} — {} and {}", a.title, a.upstream_name, a.downstream_name);
    let text = format!(
        "Hello {name},\n\n\
         Every party has signed the {title} between {up} and {down}. \
         The countersigned copy, with the executed signature page and the certificate of completion, \
         is ready to download:\n\n\
         {url}\n\n\
         This download link expires on {expires}. Keep a copy for at least six years \
         (45 CFR 164.316(b)(2)).\n\n\
         — Countersign\n",
        name = s.name,
        title = a.title,
        up = a.upstream_name,
        down = a.downstream_name,
    );
    Message::new_link(a, s, "completion", subject, text, now, &domain(config))
}

/// RFC 2047 encoded-word for a header value that is not plain ASCII.
fn header_text(s: &str) -> String {
    if s.is_ascii() && !s.contains(['\r', '\n']) {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s.replace(['\r', '\n'], " ")))
    }
}

fn mailbox(name: &str, addr: &str) -> String {
    let quoted = if name.is_ascii() { format!("\"{}\"", name.replace(['"', '\\'], "")) } else { header_text(name) };
    format!("{quoted} <{addr}>")
}

/// Renders the message as RFC 5322 text (8bit UTF-8 body, CRLF line ends).
pub fn to_rfc5322(m: &Message, config: &Config) -> String {
    let mut out = String::with_capacity(m.text.len() + 512);
    let mut h = |k: &str, v: &str| {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    };
    h("From", &config.mail_from);
    h("To", &mailbox(&m.to_name, &m.to));
    h("Subject", &header_text(&m.subject));
    h("Date", &rfc5322(m.created_at));
    h("Message-ID", &format!("<{}>", m.message_id));
    h("MIME-Version", "1.0");
    h("Content-Type", "text/plain; charset=utf-8");
    h("Content-Transfer-Encoding", "8bit");
    h("X-Countersign-Agreement", &m.agreement_id);
    out.push_str("\r\n");
    for line in m.text.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Writes `<dir>/<id>.eml` unless it exists. Returns whether it wrote. Written through a
/// temporary file and a rename, so a reader never sees half a message.
pub fn write_eml(dir: &Path, m: &Message, config: &Config) -> std::io::Result<bool> {
    let path = dir.join(format!("{}.eml", m.id));
    if path.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", m.id));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(to_rfc5322(m, config).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_headers_are_encoded_words() {
        assert_eq!(header_text("Hello"), "Hello");
        assert!(header_text("Zoë").starts_with("=?UTF-8?B?"));
        assert_eq!(mailbox("Priya Raman", "p@x.example"), "\"Priya Raman\" <p@x.example>");
        assert!(header_text("a\r\nBcc: evil@x").starts_with("=?UTF-8?B?"), "no header injection");
    }
}
