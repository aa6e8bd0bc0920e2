//! The MIME form of a message, built with lettre: `multipart/alternative` with a text/plain and
//! a text/html part (text/plain alone for messages without HTML).
//!
//! Deterministic: the Date header is the message's creation time and the MIME boundary is
//! derived from its id, so the `.eml` copy and every SMTP attempt carry the same bytes and the
//! same Message-ID.

use std::time::{Duration, UNIX_EPOCH};

use lettre::Address;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use sha2::{Digest, Sha256};

use super::{MailError, settings};
use crate::config::Config;
use crate::store::Message;

/// The From mailbox.
pub fn from_mailbox(config: &Config) -> Result<Mailbox, MailError> {
    let from = settings::from_header(config);
    from.parse::<Mailbox>().map_err(|e| MailError::From { from: from.to_string(), reason: e.to_string() })
}

/// The recipients: `to` may list several addresses separated by commas (staff notices). An
/// empty `to` (a staff notice with no `staff_notice_to`) is addressed to the From mailbox in the
/// `.eml` copy and never sent.
pub fn recipients(m: &Message, config: &Config) -> Result<Vec<Mailbox>, MailError> {
    let parts: Vec<&str> = m.to.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(vec![from_mailbox(config)?]);
    }
    let named = parts.len() == 1 && !m.to_name.is_empty();
    parts
        .into_iter()
        .map(|p| {
            let addr =
                p.parse::<Address>().map_err(|e| MailError::Recipient { to: p.to_string(), reason: e.to_string() })?;
            Ok(Mailbox::new(named.then(|| m.to_name.clone()), addr))
        })
        .collect()
}

fn boundary(id: &str) -> String {
    let h = hex::encode(Sha256::digest(id.as_bytes()));
    format!("countersign-{}", &h[..32])
}

/// Builds the lettre message.
pub fn build(m: &Message, config: &Config) -> Result<lettre::Message, MailError> {
    let mut b = lettre::Message::builder()
        .from(from_mailbox(config)?)
        .subject(m.subject.clone())
        .date(UNIX_EPOCH + Duration::from_secs(m.created_at))
        .message_id(Some(format!("<{}>", m.message_id)))
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Countersign-Agreement"),
            m.agreement_id.clone(),
        ));
    for to in recipients(m, config)? {
        b = b.to(to);
    }
    // The message's own Reply-To (who sent the agreement) wins over the configured default.
    if let Some(r) = m.reply_to.as_ref().or_else(|| config.smtp.as_ref().and_then(|s| s.reply_to.as_ref())) {
        b = b.reply_to(
            r.parse::<Mailbox>().map_err(|e| MailError::ReplyTo { reply_to: r.to_string(), reason: e.to_string() })?,
        );
    }
    let built = match &m.html {
        Some(html) => b.multipart(
            MultiPart::alternative()
                .boundary(boundary(&m.id))
                .singlepart(SinglePart::plain(m.text.clone()))
                .singlepart(SinglePart::html(html.clone())),
        ),
        None => b.singlepart(SinglePart::plain(m.text.clone())),
    };
    built.map_err(|e| MailError::Build(e.to_string()))
}

/// The message as RFC 5322 bytes (CRLF line ends).
pub fn format(m: &Message, config: &Config) -> Result<Vec<u8>, MailError> {
    Ok(build(m, config)?.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageStatus;

    fn message() -> Message {
        Message {
            id: "m0001".into(),
            agreement_id: "ag_1".into(),
            kind: "link".into(),
            to_name: "Zoë Ångström".into(),
            to: "zoe@lakeside.example".into(),
            subject: "Please sign: Business Associate Agreement — Lakeside and Northwind".into(),
            text: "Hello Zoë,\n\nhttps://sign.example.com/sign/abc\n".into(),
            html: Some("<p>Hello Zoë, <a href=\"https://sign.example.com/sign/abc\">sign</a></p>".into()),
            message_id: "m0001@localhost".into(),
            created_at: 1_799_064_000,
            status: MessageStatus::Queued,
            attempts: 0,
            last_error: None,
            sent_at: None,
            signer_id: Some("s2".into()),
            next_attempt_at: None,
            last_attempt_at: None,
            reply: None,
            reply_to: None,
        }
    }

    #[test]
    fn an_eml_copy_cut_short_before_writeback_is_replaced_when_the_sender_makes_it_durable() {
        use crate::mail::{Durability, eml_path, write_eml};
        let c = Config::default();
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("outbox");
        let m = message();
        let whole = format(&m, &c).expect("formats");
        // A request writes its copy without waiting for the disk; a second write is a no-op.
        assert!(write_eml(&dir, &m, &c, Durability::Later).expect("writes"));
        assert!(!write_eml(&dir, &m, &c, Durability::Later).expect("exists"));
        assert_eq!(std::fs::read(eml_path(&dir, &m)).expect("reads"), whole);
        // What a crash before writeback can leave: the renamed file, empty or cut short.
        for damaged in [Vec::new(), whole[..whole.len() / 2].to_vec()] {
            std::fs::write(eml_path(&dir, &m), &damaged).expect("damages");
            // The sender's durable write does not trust it: the whole message is on disk after.
            assert!(!write_eml(&dir, &m, &c, Durability::Now).expect("rewrites"));
            assert_eq!(std::fs::read(eml_path(&dir, &m)).expect("reads"), whole);
        }
        // An intact copy is kept as it is.
        assert!(!write_eml(&dir, &m, &c, Durability::Now).expect("syncs"));
        assert_eq!(std::fs::read(eml_path(&dir, &m)).expect("reads"), whole);
        assert_eq!(names_in(&dir), ["m0001.eml"], "no temporary file left behind");
    }

    #[test]
    fn the_senders_batch_writes_every_copy_into_a_new_outbox_and_repairs_a_damaged_one() {
        use crate::mail::{eml_path, write_eml_all};
        let c = Config::default();
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("outbox");
        let first = message();
        let second = Message { id: "m0002".into(), message_id: "m0002@localhost".into(), ..message() };
        // A new directory: both copies written and synced, the directory once.
        let written = write_eml_all(&dir, &[first.clone(), second.clone()], &c);
        assert_eq!(written.into_iter().map(|r| r.expect("written")).collect::<Vec<_>>(), [true, true]);
        // A copy cut short (a crash before writeback) is replaced; an intact one is kept.
        std::fs::write(eml_path(&dir, &second), b"From: cut").expect("damages");
        let again = write_eml_all(&dir, &[first.clone(), second.clone()], &c);
        assert_eq!(again.into_iter().map(|r| r.expect("synced")).collect::<Vec<_>>(), [false, false]);
        for m in [&first, &second] {
            assert_eq!(std::fs::read(eml_path(&dir, m)).expect("reads"), format(m, &c).expect("formats"));
        }
        assert_eq!(names_in(&dir), ["m0001.eml", "m0002.eml"], "no temporary file left behind");
    }

    /// The file names in `dir`, sorted.
    fn names_in(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_same_message_gives_the_same_bytes_with_both_alternatives() {
        let c = Config::default();
        let a = format(&message(), &c).expect("formats");
        let b = format(&message(), &c).expect("formats");
        assert_eq!(a, b, "deterministic: .eml copy and SMTP attempts match");
        let parsed = mailparse::parse_mail(&a).expect("valid MIME");
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        let types: Vec<&str> = parsed.subparts.iter().map(|p| p.ctype.mimetype.as_str()).collect();
        assert_eq!(types, ["text/plain", "text/html"]);
        assert!(parsed.subparts[0].get_body().expect("text").contains("https://sign.example.com/sign/abc"));
        let h = |n: &str| parsed.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(n)).map(|h| h.get_value());
        assert_eq!(h("Message-ID").as_deref(), Some("<m0001@localhost>"));
        assert_eq!(h("To").as_deref(), Some("Zoë Ångström <zoe@lakeside.example>"));
        assert!(h("Subject").is_some_and(|s| s.contains("Lakeside")));
        assert_eq!(h("X-Countersign-Agreement").as_deref(), Some("ag_1"));
    }

    #[test]
    fn no_header_injection_and_no_recipient_means_the_from_mailbox() {
        let c = Config::default();
        let mut m = message();
        m.subject = "hi\r\nBcc: evil@example.com".into();
        m.to = String::new();
        let bytes = format(&m, &c).expect("formats");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
        let parsed = mailparse::parse_mail(&bytes).expect("valid");
        let to = parsed.headers.iter().find(|h| h.get_key() == "To").map(|h| h.get_value()).unwrap_or_default();
        assert!(to.contains("countersign@localhost"), "{to}");
        m.to = "a@example.com, b@example.com".into();
        assert_eq!(recipients(&m, &c).expect("two").len(), 2);
        m.to = "not an address".into();
        assert!(format(&m, &c).is_err());
    }
}
