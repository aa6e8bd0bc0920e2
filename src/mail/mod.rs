//! Outgoing mail: content, MIME, the `.eml` outbox, SMTP, and staff notices. The sender task,
//! the outbox as staff see it and the reminder schedule use these from the application layer
//! (`app::sender`, `app::outbox`, `app::schedule`).
//!
//! * The sled outbox is the source of truth. A message is queued in the same transaction as the
//!   change that causes it (`store::Change::messages`), with its content already rendered from
//!   the templates ([`content`]) and a stable Message-ID.
//! * `app::sender` is a background task that delivers due messages ([`smtp`], or the `.eml` outbox
//!   when no SMTP server is configured), records the server's reply, and retries transient
//!   failures with exponential backoff and jitter up to a limit, then marks the message failed
//!   with the reason and tells staff ([`notices`]).
//! * `app::schedule` decides which reminders, expiry warnings and term notices are due (a pure
//!   function of the agreement, its messages and the time); the sender's tick queues them with
//!   deterministic ids, so a restart never queues one twice.
//! * With `eml_outbox` (the default) every message is also written as `<data>/outbox/<id>.eml`:
//!   the same MIME bytes that go to the SMTP server ([`mime`]).
//!
//! Messages carry no PHI: the agreement title, the parties' names, the recipient's name and
//! role, who asked, the link and its expiry.

pub mod content;
pub mod mime;
pub mod notices;
pub mod smtp;

/// The mail settings live with the rest of the configuration ([`crate::config::mail`]).
pub use crate::config::mail as settings;

use std::io::Write;
use std::path::{Path, PathBuf};

use tera::Context;

use crate::config::Config;
use crate::domain::agreement::{Agreement, SignerRecord};
use crate::store::Message;
use content::Draft;

/// Why a message cannot be rendered, built or handed to SMTP. Foreign causes (tera, lettre,
/// rustls) are kept as their text, so the error can be cloned into the template cache and the
/// message's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// An embedded template that does not load or render; `what` names it.
    #[error("{what}: {reason}")]
    Template { what: String, reason: String },
    #[error("the From address {from:?} is not valid: {reason}")]
    From { from: String, reason: String },
    #[error("recipient {to:?} is not an address: {reason}")]
    Recipient { to: String, reason: String },
    #[error("reply_to {reply_to:?} is not valid: {reason}")]
    ReplyTo { reply_to: String, reason: String },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("[smtp] ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Which signer email: the first invitation, a reminder, or the warning before the link expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerMail {
    Link,
    /// The n-th reminder (1-based).
    Reminder(u32),
    /// `days` before the link expires.
    ExpiryWarning(u32),
}

fn days_words(days: u32) -> String {
    match days {
        0 => "less than a day".into(),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

/// A signer email with a link to sign. `id`: the outbox id (deterministic for reminders).
#[allow(clippy::too_many_arguments)]
pub fn signer_message(
    config: &Config,
    a: &Agreement,
    s: &SignerRecord,
    which: SignerMail,
    url: &str,
    expires: &str,
    now: u64,
    id: Option<String>,
) -> Message {
    let parties = format!("{} — {} and {}", a.title, a.upstream_name, a.downstream_name);
    let (kind, subject) = match which {
        SignerMail::Link => ("link", format!("Please sign: {parties}")),
        SignerMail::Reminder(_) => ("reminder", format!("Reminder, please sign: {parties}")),
        SignerMail::ExpiryWarning(_) => {
            ("expiry_warning", format!("Your signing link expires on {expires}: {parties}"))
        }
    };
    let mut ctx = content::agreement_context(a);
    ctx.insert("kind", kind);
    ctx.insert("name", &s.name);
    ctx.insert("signer_title", &s.title);
    ctx.insert("party", &s.party_name);
    ctx.insert("url", url);
    ctx.insert("expires", expires);
    ctx.insert(
        "reminder_number",
        &match which {
            SignerMail::Reminder(n) => n,
            _ => 0,
        },
    );
    ctx.insert(
        "days_left",
        &days_words(match which {
            SignerMail::ExpiryWarning(d) => d,
            _ => 0,
        }),
    );
    let fallback = format!(
        "Hello {},\n\nPlease review and sign the {parties}, as {} of {}:\n\n{url}\n\nThis link is personal to you. It expires on {expires}.\n",
        s.name, s.title, s.party_name
    );
    content::build(
        config,
        a,
        Draft {
            id,
            kind: kind.into(),
            to_name: s.name.clone(),
            to: s.email.clone(),
            subject,
            signer_id: Some(s.id.clone()),
            template: "signer",
            ctx,
            fallback,
        },
        now,
    )
}

/// The invitation to sign.
pub fn link_message(config: &Config, a: &Agreement, s: &SignerRecord, url: &str, expires: &str, now: u64) -> Message {
    signer_message(config, a, s, SignerMail::Link, url, expires, now, None)
}

/// A signer's one-time code (issue 11 §2.9): the code is in the message and nowhere else in the
/// store (the signer record keeps only its HMAC); the message is never logged.
pub fn code_message(config: &Config, a: &Agreement, s: &SignerRecord, code: &str, minutes: u64, now: u64) -> Message {
    let subject = format!("Your code to sign: {} — {} and {}", a.title, a.upstream_name, a.downstream_name);
    let mut ctx: Context = content::agreement_context(a);
    ctx.insert("name", &s.name);
    ctx.insert("code", code);
    ctx.insert("minutes", &minutes);
    let fallback = format!(
        "Hello {},\n\nYour one-time code to sign the {} is {code}. It works once, for {minutes} minutes.\n",
        s.name, a.title
    );
    content::build(
        config,
        a,
        Draft {
            id: None,
            kind: "email_code".into(),
            to_name: s.name.clone(),
            to: s.email.clone(),
            subject,
            signer_id: Some(s.id.clone()),
            template: "code",
            ctx,
            fallback,
        },
        now,
    )
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
    let mut ctx: Context = content::agreement_context(a);
    ctx.insert("name", &s.name);
    ctx.insert("url", url);
    ctx.insert("expires", expires);
    let fallback = format!(
        "Hello {},\n\nEvery party has signed the {}. Download the countersigned copy:\n\n{url}\n\nThis link expires on {expires}.\n",
        s.name, a.title
    );
    content::build(
        config,
        a,
        Draft {
            id: None,
            kind: "completion".into(),
            to_name: s.name.clone(),
            to: s.email.clone(),
            subject,
            signer_id: Some(s.id.clone()),
            template: "completion",
            ctx,
            fallback,
        },
        now,
    )
}

/// Renders the message as RFC 5322 MIME: exactly the bytes the SMTP sender transmits.
pub fn to_rfc5322(m: &Message, config: &Config) -> Result<Vec<u8>, MailError> {
    mime::format(m, config)
}

/// The path of a message's `.eml` copy.
pub fn eml_path(dir: &Path, m: &Message) -> PathBuf {
    eml_path_of(dir, &m.id)
}

/// [`eml_path`] from the message's id alone.
pub fn eml_path_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{}.eml", file_stem(id)))
}

/// Outbox ids may contain `:`; file names keep to a portable set.
fn file_stem(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// When an `.eml` copy must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before it counts as written: the file and the directory synced. The no-SMTP
    /// sender writes its batches this way ([`write_eml_all`]: the directory synced once per
    /// batch) before it records the messages as delivered.
    Now,
    /// Whenever the kernel writes it back: the copy a staff action (or a decline, or a signer's
    /// request for a code) writes right after its commit so it can be read at once, and the
    /// copies the start-up flush and the SMTP sender write. The message itself is already
    /// durable in the store, and the no-SMTP sender makes the same file durable (`Now`) before
    /// recording it delivered, so a request does not wait for a second fsync of its own.
    Later,
}

/// Writes `<dir>/<id>.eml` unless it exists. Returns whether it wrote. Written through a
/// uniquely named temporary file and a rename, so a reader never sees half a message and two
/// writers (a request thread and the sender) cannot trip over each other. With
/// [`Durability::Now`] an existing copy is not trusted as it stands: one written `Later` and
/// caught by a crash before the kernel wrote it back can survive the rename empty or cut short
/// (delayed allocation), so it is compared with the message and replaced if it differs, then
/// synced with its directory.
pub fn write_eml(dir: &Path, m: &Message, config: &Config, durability: Durability) -> std::io::Result<bool> {
    write_one(dir, m, config, durability, Syncs::Each)
}

/// [`write_eml`] with [`Durability::Now`] for the sender's batch: every file synced, the
/// directory once at the end instead of once per message. A copy counts as written only once
/// that directory sync has returned: if it fails, every copy of the batch answers its error.
///
/// One `syncfs(2)` for the batch instead of an fsync per file (as `render --batch` does) was
/// measured and not kept: it flushes everything dirty on the filesystem, sled's writes and
/// the request's unsynced copies included, so its cost is not the batch's own, and the sign
/// runs spread from below every run without it to above (README, *Load test*).
pub fn write_eml_all(dir: &Path, ms: &[Message], config: &Config) -> Vec<std::io::Result<bool>> {
    let mut out: Vec<std::io::Result<bool>> =
        ms.iter().map(|m| write_one(dir, m, config, Durability::Now, Syncs::FileOnly)).collect();
    if out.iter().any(|r| r.is_ok())
        && let Err(e) = std::fs::File::open(dir).and_then(|f| f.sync_all())
    {
        for r in out.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(std::io::Error::new(e.kind(), format!("cannot sync the outbox directory: {e}")));
        }
    }
    out
}

/// Who syncs the directory after [`write_one`] writes with [`Durability::Now`] (the file, and
/// the parent of a directory it creates, are always synced there).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syncs {
    /// `write_one` itself, after each file.
    Each,
    /// The caller, once for a batch ([`write_eml_all`]).
    FileOnly,
}

/// [`write_eml`], with the directory's sync left to the caller for [`Syncs::FileOnly`].
fn write_one(dir: &Path, m: &Message, config: &Config, durability: Durability, syncs: Syncs) -> std::io::Result<bool> {
    let path = eml_path(dir, m);
    let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
    let existed = path.exists();
    if existed && durability == Durability::Later {
        return Ok(false);
    }
    let bytes = to_rfc5322(m, config).map_err(std::io::Error::other)?;
    let now = durability == Durability::Now;
    let sync_dir = |dir: &Path| if now && syncs == Syncs::Each { sync(dir) } else { Ok(()) };
    if existed && std::fs::read(&path).is_ok_and(|on_disk| on_disk == bytes) {
        sync(&path)?;
        sync_dir(dir)?;
        return Ok(false);
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        if now && let Some(parent) = dir.parent() {
            sync(parent)?;
        }
    }
    let tmp = dir.join(format!(".{}.{}.tmp", file_stem(&m.id), crate::store::ids::new_id("", 6)));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        if now {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|()| !existed)
}
