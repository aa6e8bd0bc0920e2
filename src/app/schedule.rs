//! Reminders, expiry warnings and term notices: what is due ([`due`], pure) and the tick that
//! queues it ([`Service::queue_due_messages`]).
//!
//! Schedule (defaults in `[reminders]`): a signer who has not acted gets a reminder
//! `first_after_days` (3) after their link was sent, then every `every_days` (4), until they sign
//! or decline, the agreement is voided or expires, or the expiry warning is due; the warning goes
//! `expiry_warning_days` (2) before the link expires. Staff are told `term_notice_days` (30)
//! before an executed agreement renews (auto-renewing term) or ends.
//!
//! Idempotency: every queued message has a deterministic outbox id —
//! `reminder:<agreement>:<signer>:<generation>:<n>`, `expiry:<agreement>:<signer>:<generation>`,
//! `notice:<agreement>:renewal|termination:<date>` — and the tick queues only ids that do not
//! exist yet, under the service's write lock. A restart, a second tick or a clock that jumps
//! ahead never queues one twice; after downtime only the latest due reminder is sent, not a
//! burst of the missed ones. A resend or correction bumps the signer's generation and so starts
//! their schedule afresh.

use std::collections::HashSet;

use crate::app::service::{Service, ServiceError};
use crate::clock::long_date;
use crate::config::mail::ReminderSettings;
use crate::domain::agreement::{Agreement, SignerRecord, SignerStatus, Status};
use crate::domain::intake::Date;
use crate::mail::notices::{self, TermEvent};
use crate::mail::{SignerMail, signer_message};
use crate::signing::token::Purpose;
use crate::store::{Change, Message, NewEvent, StoreError};

const DAY: u64 = 86_400;

/// An executed agreement's term, from its intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub effective: Date,
    pub months: u16,
    pub auto_renew: bool,
}

/// Something due, with its deterministic outbox id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// The `n`-th reminder (1-based) to a signer.
    Reminder { id: String, signer: String, n: u32 },
    /// The warning before the signer's link expires: `days` left (rounded up).
    ExpiryWarning { id: String, signer: String, days: u32 },
    /// Staff notice before a renewal or the end of the term.
    Term { id: String, event: TermEvent, date: Date },
}

impl Due {
    pub fn id(&self) -> &str {
        match self {
            Due::Reminder { id, .. } | Due::ExpiryWarning { id, .. } | Due::Term { id, .. } => id,
        }
    }
}

pub fn reminder_prefix(agreement: &str, signer: &str, generation: u32) -> String {
    format!("reminder:{agreement}:{signer}:{generation}:")
}

pub fn expiry_id(agreement: &str, signer: &str, generation: u32) -> String {
    format!("expiry:{agreement}:{signer}:{generation}")
}

fn date_secs(d: Date) -> u64 {
    u64::try_from(d.days_since_epoch()).unwrap_or(0) * DAY
}

/// When the signer's current link was sent: the latest `link` message to them.
fn link_sent_at(s: &SignerRecord, messages: &[Message]) -> Option<u64> {
    messages.iter().filter(|m| m.kind == "link" && m.signer_id.as_deref() == Some(&s.id)).map(|m| m.created_at).max()
}

/// The next term event after `now`: the next renewal date of an auto-renewing agreement
/// (bounded: at most 100 years of terms), or the end of its term. Pure.
fn next_term_event(t: &Term, now: u64) -> (TermEvent, Date) {
    if t.auto_renew {
        let mut k = 1u32;
        let mut d = t.effective.add_months(u32::from(t.months));
        while date_secs(d) <= now && k < 1200 {
            k += 1;
            d = t.effective.add_months(k * u32::from(t.months));
        }
        (TermEvent::Renewal, d)
    } else {
        (TermEvent::Termination, t.effective.add_months(u32::from(t.months)))
    }
}

/// Whether a renewal or termination notice can fall due at `now` for an executed agreement
/// with these terms: the same test [`due`] applies, without the messages. The reminder tick
/// asks it of the search index's facts so that it decodes only the agreements whose notice
/// window is open, not every executed one (100,000 agreements: a few hundred instead of
/// ~58,000 records and their intakes every tick).
pub fn term_notice_window(t: &Term, now: u64, r: &ReminderSettings) -> bool {
    if r.term_notice_days == 0 || t.months == 0 {
        return false;
    }
    let at = date_secs(next_term_event(t, now).1);
    now < at && now + u64::from(r.term_notice_days) * DAY >= at
}

/// One open signer's schedule, shared by [`due`] and [`wake_at`] so that both apply the same
/// times: their current link's expiry, the expiry warning's time (none when off or not after
/// the link was sent), the cutoff after which no reminder goes (the warning, or the expiry), and
/// the reminders' start and interval. None ([`signer_times`]) for a signer without a link sent
/// or whose link has expired at `now`.
struct SignerTimes {
    expires: u64,
    warn_at: Option<u64>,
    cutoff: u64,
    /// The first reminder's time and the interval (0: only the first); None when reminders are off.
    reminders: Option<(u64, u64)>,
}

fn signer_times(s: &SignerRecord, messages: &[Message], now: u64, r: &ReminderSettings) -> Option<SignerTimes> {
    let (Some(expires), Some(sent)) = (s.link_expires, link_sent_at(s, messages)) else { return None };
    if now >= expires {
        return None;
    }
    let warn_at = (r.expiry_warning_days > 0)
        .then(|| expires.saturating_sub(u64::from(r.expiry_warning_days) * DAY))
        .filter(|&w| w > sent);
    let reminders =
        (r.first_after_days > 0).then(|| (sent + u64::from(r.first_after_days) * DAY, u64::from(r.every_days) * DAY));
    Some(SignerTimes { expires, warn_at, cutoff: warn_at.unwrap_or(expires), reminders })
}

/// The version of the rules [`due`], [`wake_at`] and `Service::get`'s expiry apply. **Bump it
/// with any change to them**: it is part of every wake note's fingerprint, so notes written
/// under other rules (by another release) are not believed.
const WAKE_RULES: u32 = 1;

/// The fingerprint of the rules and settings [`wake_at`] depends on: a wake note made under
/// other settings (a changed `[reminders]` section) or other rules ([`WAKE_RULES`]) is not
/// believed.
pub fn settings_fingerprint(r: &ReminderSettings) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for v in [WAKE_RULES, r.first_after_days, r.every_days, r.expiry_warning_days, r.term_notice_days] {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
}

/// When the reminder tick next needs to read `a`, given the messages queued for it once
/// everything [`due`] at `now` has been queued: the earliest time after `now` at which [`due`]
/// could answer something or at which `Service::get` would move it to `expired` (`now` itself
/// when its links have all expired already: read at the next tick); `u64::MAX` when nothing can
/// happen until the record changes. For an agreement out for signature: a
/// signer's next reminder or expiry warning, or the moment every open link has expired. For an
/// executed one with a term (`term`, from its record): the opening of the next term notice's
/// window, or, while a window is open (its notice queued), that term date, after which the next
/// one counts. While the record keeps its revision nothing else moves these times: a new link,
/// a signer's answer, a correction, a void, a termination or a revised intake each write the
/// record, and messages queued meanwhile only answer what would be due. Pure.
///
/// The tick keeps the answer per agreement with the record's revision ([`ReminderWake`]) and
/// does not read the agreement until then: at 100,000 seeded agreements, of which 11,870 out
/// for signature and ~1,300 executed ones in a notice window, every tick read each of them with
/// its messages to find nothing due.
///
/// [`ReminderWake`]: crate::store::ReminderWake
pub fn wake_at(a: &Agreement, messages: &[Message], now: u64, r: &ReminderSettings, term: Option<&Term>) -> u64 {
    if a.status == Status::Executed {
        return match term {
            Some(t) if r.term_notice_days > 0 && t.months > 0 => {
                let date = date_secs(next_term_event(t, now).1);
                let opens = date.saturating_sub(u64::from(r.term_notice_days) * DAY);
                if now >= date {
                    u64::MAX // the end of a term that does not renew: no notice ever again
                } else if opens > now {
                    opens
                } else {
                    date
                }
            }
            _ => u64::MAX,
        };
    }
    if !a.status.is_out_for_signature() {
        return u64::MAX;
    }
    // The expiry `Service::get` applies: once every open signer's link has expired. Already
    // past (a record read without that check): at once.
    let mut at = a.open_links_expire_at().map_or(u64::MAX, |last| last.max(now));
    for s in a.signers.iter().filter(|s| matches!(s.status, SignerStatus::Notified | SignerStatus::Opened)) {
        let Some(SignerTimes { warn_at, cutoff, reminders, .. }) = signer_times(s, messages, now, r) else { continue };
        if let Some(w) = warn_at.filter(|&w| w > now) {
            at = at.min(w);
        }
        if let Some((first, every)) = reminders {
            // Reminder n falls due at first + (n - 1) × every, while before the cutoff; the ones
            // whose time has come by `now` are queued (or superseded) already.
            let next = if now < first {
                Some(first)
            } else {
                (now - first).checked_div(every).map(|k| first + (k + 1) * every)
            };
            if let Some(next) = next.filter(|&n| n < cutoff) {
                at = at.min(next);
            }
        }
    }
    at
}

/// What is due for `a` at `now`, given every message already queued for it. Pure.
pub fn due(a: &Agreement, messages: &[Message], now: u64, r: &ReminderSettings, term: Option<&Term>) -> Vec<Due> {
    let ids: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let mut out = Vec::new();
    if a.status.is_out_for_signature() {
        for s in &a.signers {
            if !matches!(s.status, SignerStatus::Notified | SignerStatus::Opened) {
                continue;
            }
            let Some(SignerTimes { expires, warn_at, cutoff, reminders }) = signer_times(s, messages, now, r) else {
                continue;
            };
            if let Some((first, every)) = reminders
                && now >= first
                && first < cutoff
            {
                // The latest reminder whose time has come (and is before the cutoff).
                let mut n = 1 + (now - first).checked_div(every).unwrap_or(0);
                while n > 1 && first + (n - 1) * every >= cutoff {
                    n -= 1;
                }
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                let prefix = reminder_prefix(&a.id, &s.id, s.generation);
                let sent_already = messages
                    .iter()
                    .any(|m| m.id.strip_prefix(&prefix).and_then(|k| k.parse::<u32>().ok()).is_some_and(|k| k >= n));
                if !sent_already {
                    out.push(Due::Reminder { id: format!("{prefix}{n}"), signer: s.id.clone(), n });
                }
            }
            if let Some(w) = warn_at {
                let id = expiry_id(&a.id, &s.id, s.generation);
                if now >= w && !ids.contains(id.as_str()) {
                    let days = u32::try_from((expires - now).div_ceil(DAY)).unwrap_or(u32::MAX);
                    out.push(Due::ExpiryWarning { id, signer: s.id.clone(), days });
                }
            }
        }
    }
    if a.status == Status::Executed
        && r.term_notice_days > 0
        && let Some(t) = term
        && t.months > 0
    {
        let notice = u64::from(r.term_notice_days) * DAY;
        let (event, date) = next_term_event(t, now);
        let at = date_secs(date);
        if now < at && now + notice >= at {
            let what = if event == TermEvent::Renewal { "renewal" } else { "termination" };
            let id = format!("notice:{}:{what}:{date}", a.id);
            if !ids.contains(id.as_str()) {
                out.push(Due::Term { id, event, date });
            }
        }
    }
    out
}

/// Parses `reminder:<agreement>:<signer>:<generation>:<n>` or `expiry:<agreement>:<signer>:<generation>`
/// into (agreement, signer, generation).
fn signer_mail_target(id: &str) -> Option<(&str, &str, u32)> {
    let mut parts = id.split(':');
    let kind = parts.next()?;
    let (a, s, g) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    matches!(kind, "reminder" | "expiry").then_some((a, s, g))
}

/// Why a queued message is skipped instead of sent; the text is kept as the message's
/// `last_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotWanted {
    #[error("no longer needed: the agreement was voided")]
    Voided,
    #[error("no longer needed: the agreement is {}", .0.as_str())]
    NotOutForSignature(Status),
    #[error("no longer needed: the signer was removed")]
    SignerRemoved,
    #[error("no longer needed: the signer has signed")]
    Signed,
    #[error("no longer needed: the signer has responded")]
    Responded,
    #[error("no longer needed: a newer link was sent")]
    Superseded,
    #[error("no longer needed: the link has expired")]
    LinkExpired,
}

/// For a reminder or expiry warning about to be sent: is it still wanted? `Err(reason)` when the
/// signer has acted, the agreement is no longer out for signature, a newer link replaced this
/// one, or the link expired. A link email is not wanted once its agreement is voided. Other
/// messages are always wanted.
pub fn still_wanted(a: &Agreement, m: &Message, now: u64) -> Result<(), NotWanted> {
    if m.kind == "link" && a.status == Status::Voided {
        // Its link is dead: sending it would only confuse the signer.
        return Err(NotWanted::Voided);
    }
    let Some((_, signer, generation)) = signer_mail_target(&m.id) else { return Ok(()) };
    if !a.status.is_out_for_signature() {
        return Err(NotWanted::NotOutForSignature(a.status));
    }
    let s = a.signer(signer).ok_or(NotWanted::SignerRemoved)?;
    if !matches!(s.status, SignerStatus::Notified | SignerStatus::Opened) {
        return Err(if s.status == SignerStatus::Signed { NotWanted::Signed } else { NotWanted::Responded });
    }
    if s.generation != generation {
        return Err(NotWanted::Superseded);
    }
    if s.link_expires.is_some_and(|e| now >= e) {
        return Err(NotWanted::LinkExpired);
    }
    Ok(())
}

impl Service {
    /// The tick: brings expired agreements to `expired` (queuing that notice), then queues every
    /// due reminder, expiry warning and term notice, one commit per agreement under the write
    /// lock. Returns how many messages it queued. Safe to call any number of times.
    pub fn queue_due_messages(&self) -> Result<usize, ServiceError> {
        let r = self.config.reminders.clone();
        let fingerprint = settings_fingerprint(&r);
        let mut queued = 0;
        let now = self.clock.now();
        let started = std::time::Instant::now();
        // A new day: auto-renewing terms' renewal dates in the index move with it.
        self.refresh_renewals();
        if self.wakes.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            // The first tick since start: the notes the last ticks left in the store. Advisory:
            // if they cannot be read, every candidate is read, as without them.
            let kept: std::collections::HashMap<_, _> = match self.store.reminder_wakes() {
                Ok(kept) => kept.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "reminder tick: the wake notes could not be read; reading every candidate");
                    Default::default()
                }
            };
            *self.wakes.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
        }
        // Candidates from the search index (out for signature, or executed in a term notice's
        // window): only those are decoded, not every stored agreement. One whose wake note is
        // current (its record's revision, these rules and settings) and still ahead is not read
        // at all: nothing can be due for it yet.
        let (candidates, stale, skipped) = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            let mut wakes = self.wakes.lock().unwrap_or_else(|p| p.into_inner());
            let wakes = wakes.get_or_insert_with(Default::default);
            let mut skipped = 0usize;
            let mut asleep = |id: &str, revision: u64| {
                let yes =
                    wakes.get(id).is_some_and(|w| w.revision == revision && w.settings == fingerprint && w.at > now);
                skipped += usize::from(yes);
                yes
            };
            let mut c: Vec<(String, String)> = index
                .lives()
                .filter(|(e, life)| match e.status() {
                    "sent" | "partially_signed" => !asleep(e.id(), life.revision),
                    // The record's facts are its current intake's (set on create and revise);
                    // without an effective date (a record from before facts existed) decode it.
                    "executed" => {
                        let window = match life.effective {
                            Some(effective) => term_notice_window(
                                &Term { effective, months: life.term_months, auto_renew: life.auto_renew },
                                now,
                                &r,
                            ),
                            None => r.term_notice_days > 0,
                        };
                        window && !asleep(e.id(), life.revision)
                    }
                    _ => false,
                })
                .map(|(e, _)| (e.id().to_string(), e.status().to_string()))
                .collect();
            c.sort();
            // Notes that can no longer save a read are dropped: their time has come, or their
            // agreement is gone or no longer out for signature or executed.
            let stale: Vec<String> = wakes
                .iter()
                .filter(|(id, w)| {
                    w.at <= now
                        || !index
                            .get_life(id)
                            .is_some_and(|(e, _)| matches!(e.status(), "sent" | "partially_signed" | "executed"))
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &stale {
                wakes.remove(id);
            }
            (c, stale, skipped)
        };
        let mut learned: Vec<(String, crate::store::ReminderWake)> = Vec::new();
        let mut note = |a: &Agreement, messages: &[Message], now: u64, term: Option<&Term>| {
            // An executed agreement without a term (no facts and an intake that could not be
            // read, perhaps for a passing error) gets no note: it is read again next tick.
            if a.status.is_out_for_signature() || (a.status == Status::Executed && term.is_some()) {
                let at = wake_at(a, messages, now, &r, term);
                learned.push((
                    a.id.clone(),
                    crate::store::ReminderWake { revision: a.revision, settings: fingerprint, at },
                ));
            }
        };
        let mut read = 0u64;
        for (id, status) in candidates {
            read += 1;
            let a = match status.as_str() {
                "executed" => match self.store.agreement(&id) {
                    Ok(a) => a,
                    Err(StoreError::NotFound) => continue,
                    Err(e) => return Err(e.into()),
                },
                _ => match self.get(&id) {
                    // may move it to expired
                    Ok(a) => a,
                    Err(ServiceError::NotFound) => continue,
                    Err(e) => return Err(e),
                },
            };
            if !(a.status.is_out_for_signature() || a.status == Status::Executed) {
                continue;
            }
            let term = if a.status == Status::Executed { self.term(&a) } else { None };
            // Through the outbox index: this agreement's messages only.
            let mine: Vec<Message> = self.store.agreement_messages(&a.id)?;
            let at = self.clock.now();
            if due(&a, &mine, at, &r, term.as_ref()).is_empty() {
                note(&a, &mine, at, term.as_ref());
                continue;
            }
            // Something is due: decide again under the lock from fresh data, then commit.
            let _g = self.write();
            let a = self.store.agreement(&a.id)?;
            // The term as this record says (a revision in between may have changed it).
            let term = if a.status == Status::Executed { self.term(&a) } else { None };
            let mut mine: Vec<Message> = self.store.agreement_messages(&a.id)?;
            let now = self.clock.now();
            let mut change = Change::default();
            // A due item without its message (a signer `due` named but not found: not expected)
            // stays due, so this agreement gets no note and is read again next tick.
            let mut all_queued = true;
            for d in due(&a, &mine, now, &r, term.as_ref()) {
                let Some(m) = self.due_message(&a, &d, now) else {
                    all_queued = false;
                    continue;
                };
                change.events.push(NewEvent {
                    agreement_id: a.id.clone(),
                    kind: "message_queued".into(),
                    at: now,
                    actor: "system".into(),
                    ip: String::new(),
                    user_agent: String::new(),
                    document_sha256: a.sent_sha256.clone().unwrap_or_else(|| a.document_sha256.clone()),
                    detail: serde_json::json!({"message": m.id, "kind": m.kind, "signer": m.signer_id, "message_id": m.message_id}),
                });
                change.messages.push(m);
            }
            queued += change.messages.len();
            if !change.messages.is_empty() {
                mine.extend(change.messages.iter().cloned());
                self.commit(change)?;
            }
            // The record is unchanged by the commit (messages and events only): its revision
            // still names what the note was computed from.
            if all_queued {
                note(&a, &mine, now, term.as_ref());
            }
        }
        self.reminder_reads.fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        self.metrics.reminder_tick(read, skipped);
        if read > 0 || skipped > 0 {
            let ms = started.elapsed().as_millis() as u64;
            tracing::debug!(read, skipped, ms, "reminder tick: {read} agreements read, {skipped} asleep, in {ms} ms");
        }
        {
            let mut wakes = self.wakes.lock().unwrap_or_else(|p| p.into_inner());
            let wakes = wakes.get_or_insert_with(Default::default);
            for (id, w) in &learned {
                wakes.insert(id.clone(), *w);
            }
        }
        if !learned.is_empty() || !stale.is_empty() {
            // Advisory: a note not kept only means the agreement is read at the next start.
            if let Err(e) = self.store.put_reminder_wakes(&learned, &stale) {
                tracing::warn!(error = %e, "reminder tick: the wake notes were not kept");
            }
        }
        // Vendor reassessment reminders (issue 16), with their own deterministic ids.
        queued += self.queue_vendor_reminders()?;
        if queued > 0 {
            self.mail_wake.notify_one();
        }
        Ok(queued)
    }

    fn due_message(&self, a: &Agreement, d: &Due, now: u64) -> Option<Message> {
        match d {
            Due::Reminder { id, signer, n } | Due::ExpiryWarning { id, signer, days: n } => {
                let which = if matches!(d, Due::Reminder { .. }) {
                    SignerMail::Reminder(*n)
                } else {
                    SignerMail::ExpiryWarning(*n)
                };
                let s = a.signer(signer)?;
                let expires = s.link_expires.unwrap_or(now);
                // The same claims as the link already sent (same generation and expiry): the
                // reminder does not extend or replace the link.
                let token = self.keys.issue(&a.id, s.index, Purpose::Sign, expires, s.generation);
                let url = format!("{}/sign/{token}", self.config.base_url());
                Some(signer_message(&self.config, a, s, which, &url, &long_date(expires), now, Some(id.clone())))
            }
            Due::Term { event, date, .. } => {
                Some(notices::term(&self.config, a, *event, *date, &self.notice_to(a), now))
            }
        }
    }

    /// The term of an executed agreement: from the record's facts, or, for a record from before
    /// the facts existed, from its current version's intake.
    fn term(&self, a: &Agreement) -> Option<Term> {
        // From the record's facts, which are its current intake's (set on create and revise),
        // as the tick's candidates were chosen: reading each executed candidate's version record
        // (~17 KB of intake and report JSON) pulled thousands of sled pages into memory at every
        // tick, ~100 MB at 100,000 agreements.
        let life = a.life();
        if let Some(effective) = life.effective {
            return Some(Term { effective, months: life.term_months, auto_renew: life.auto_renew });
        }
        // A record from before the facts existed: from its intake.
        let v = self.store.version(&a.id, a.version).ok()?;
        let intake = crate::app::load_intake(&v.intake).ok()?;
        Some(Term { effective: intake.effective_date, months: intake.term.months, auto_renew: intake.term.auto_renew })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::intake::Side;
    use crate::store::MessageStatus;

    const T0: u64 = 1_799_064_000; // 2027-01-04T12:00:00Z

    fn settings() -> ReminderSettings {
        ReminderSettings::default()
    }

    fn signer(id: &str, status: SignerStatus, expires: Option<u64>, generation: u32) -> SignerRecord {
        SignerRecord {
            id: id.into(),
            index: id[1..].parse::<u16>().unwrap_or(1) - 1,
            side: Side::Upstream,
            party_label: "Covered Entity".into(),
            party_name: "Lakeside".into(),
            name: "Zoë".into(),
            title: "CCO".into(),
            email: "zoe@lakeside.example".into(),
            order: 1,
            status,
            generation,
            link_expires: expires,
            signature: None,
            decline_reason: None,
            email_code: Default::default(),
        }
    }

    fn agreement(status: Status, signers: Vec<SignerRecord>) -> Agreement {
        Agreement {
            id: "ag_1".into(),
            kind: "baa".into(),
            title: "Business Associate Agreement".into(),
            upstream_name: "Lakeside".into(),
            downstream_name: "Northwind".into(),
            status,
            version: 1,
            document_sha256: String::new(),
            check_passes: true,
            created_at: T0,
            updated_at: T0,
            created_by: "admin:bootstrap".into(),
            sent_at: Some(T0),
            sent_by: Some("admin:bootstrap".into()),
            sent_sha256: None,
            executed_at: None,
            final_sha256: None,
            sent_bytes: None,
            final_bytes: None,
            void_reason: None,
            needs_approval: false,
            approval: None,
            facts: Default::default(),
            termination: None,
            disposition: None,
            disposed_at: None,
            signers,
            revision: 1,
        }
    }

    fn msg(id: &str, kind: &str, signer: &str, at: u64) -> Message {
        Message {
            id: id.into(),
            agreement_id: "ag_1".into(),
            kind: kind.into(),
            to_name: String::new(),
            to: "zoe@lakeside.example".into(),
            subject: String::new(),
            text: String::new(),
            html: None,
            message_id: format!("{id}@x"),
            created_at: at,
            status: MessageStatus::Sent,
            attempts: 1,
            last_error: None,
            sent_at: Some(at),
            signer_id: Some(signer.into()),
            next_attempt_at: None,
            last_attempt_at: None,
            reply: None,
            reply_to: None,
        }
    }

    /// Runs the schedule hour by hour from T0 to `until`, "queuing" whatever is due, and
    /// returns (day offset, id) of everything queued.
    fn simulate(a: &Agreement, until_days: u64, r: &ReminderSettings) -> Vec<(f64, String)> {
        let mut ms = vec![msg("m1", "link", "s1", T0)];
        let mut out = Vec::new();
        let mut now = T0;
        while now <= T0 + until_days * DAY {
            for d in due(a, &ms, now, r, None) {
                out.push(((now - T0) as f64 / DAY as f64, d.id().to_string()));
                ms.push(msg(d.id(), "reminder", "s1", now));
            }
            now += 3600;
        }
        out
    }

    #[test]
    fn default_schedule_for_a_fourteen_day_link() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 1)]);
        let got = simulate(&a, 20, &settings());
        let want = vec![
            (3.0, "reminder:ag_1:s1:1:1".to_string()),
            (7.0, "reminder:ag_1:s1:1:2".to_string()),
            (11.0, "reminder:ag_1:s1:1:3".to_string()),
            (12.0, "expiry:ag_1:s1:1".to_string()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn nothing_is_due_before_its_time_or_twice() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 1)]);
        let link = vec![msg("m1", "link", "s1", T0)];
        assert!(due(&a, &link, T0 + 3 * DAY - 1, &settings(), None).is_empty());
        let d = due(&a, &link, T0 + 3 * DAY, &settings(), None);
        assert_eq!(d, vec![Due::Reminder { id: "reminder:ag_1:s1:1:1".into(), signer: "s1".into(), n: 1 }]);
        let mut with = link.clone();
        with.push(msg("reminder:ag_1:s1:1:1", "reminder", "s1", T0 + 3 * DAY));
        assert!(due(&a, &with, T0 + 3 * DAY + 5, &settings(), None).is_empty(), "idempotent");
    }

    #[test]
    fn after_downtime_only_the_latest_reminder_goes() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Opened, Some(T0 + 30 * DAY), 1)]);
        let link = vec![msg("m1", "link", "s1", T0)];
        let d = due(&a, &link, T0 + 12 * DAY, &settings(), None);
        // Reminders at 3, 7, 11: the 3rd is the latest due.
        assert_eq!(d, vec![Due::Reminder { id: "reminder:ag_1:s1:1:3".into(), signer: "s1".into(), n: 3 }]);
        let mut with = link.clone();
        with.push(msg("reminder:ag_1:s1:1:3", "reminder", "s1", T0 + 12 * DAY));
        assert!(due(&a, &with, T0 + 12 * DAY, &settings(), None).is_empty(), "earlier ones are not back-filled");
    }

    #[test]
    fn signers_who_acted_voided_agreements_and_expired_links_get_nothing() {
        let link = vec![msg("m1", "link", "s1", T0)];
        let late = T0 + 5 * DAY;
        for (status, s_status, expires) in [
            (Status::Sent, SignerStatus::Signed, T0 + 14 * DAY),
            (Status::Declined, SignerStatus::Declined, T0 + 14 * DAY),
            (Status::Voided, SignerStatus::Notified, T0 + 14 * DAY),
            (Status::Sent, SignerStatus::Notified, T0 + 4 * DAY),
            (Status::Sent, SignerStatus::Waiting, T0 + 14 * DAY),
        ] {
            let a = agreement(status, vec![signer("s1", s_status, Some(expires), 1)]);
            assert!(due(&a, &link, late, &settings(), None).is_empty(), "{status:?} {s_status:?}");
        }
    }

    #[test]
    fn a_new_generation_restarts_the_schedule() {
        let mut ms = vec![msg("m1", "link", "s1", T0), msg("reminder:ag_1:s1:1:1", "reminder", "s1", T0 + 3 * DAY)];
        ms.push(msg("m2", "link", "s1", T0 + 4 * DAY)); // resent: generation 2
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 18 * DAY), 2)]);
        assert!(due(&a, &ms, T0 + 6 * DAY, &settings(), None).is_empty(), "3 days after the new link, not the old");
        let d = due(&a, &ms, T0 + 7 * DAY, &settings(), None);
        assert_eq!(d[0].id(), "reminder:ag_1:s1:2:1");
    }

    #[test]
    fn short_links_and_switched_off_settings() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 2 * DAY), 1)]);
        // A 2-day link: the warning would be at the moment of sending, so there is none, and
        // the first reminder (day 3) is after expiry.
        assert!(simulate(&a, 3, &settings()).is_empty());
        let off = ReminderSettings { first_after_days: 0, expiry_warning_days: 0, ..settings() };
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 1)]);
        assert!(simulate(&a, 14, &off).is_empty());
        let once = ReminderSettings { every_days: 0, ..settings() };
        let ids: Vec<String> = simulate(&a, 14, &once).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids, ["reminder:ag_1:s1:1:1", "expiry:ag_1:s1:1"]);
    }

    #[test]
    fn term_notices_before_renewal_or_termination() {
        let a = agreement(Status::Executed, vec![signer("s1", SignerStatus::Signed, None, 1)]);
        let eff = Date { year: 2027, month: 1, day: 1 };
        let renew = Term { effective: eff, months: 12, auto_renew: true };
        let jan_1_2028 = date_secs(Date { year: 2028, month: 1, day: 1 });
        assert!(due(&a, &[], jan_1_2028 - 31 * DAY, &settings(), Some(&renew)).is_empty());
        let d = due(&a, &[], jan_1_2028 - 30 * DAY, &settings(), Some(&renew));
        assert_eq!(
            d,
            vec![Due::Term {
                id: "notice:ag_1:renewal:2028-01-01".into(),
                event: TermEvent::Renewal,
                date: Date { year: 2028, month: 1, day: 1 }
            }]
        );
        // The next year's renewal is a new notice.
        let d = due(&a, &[], jan_1_2028 + 340 * DAY, &settings(), Some(&renew));
        assert_eq!(d[0].id(), "notice:ag_1:renewal:2029-01-01");
        let ends = Term { auto_renew: false, ..renew };
        let d = due(&a, &[], jan_1_2028 - DAY, &settings(), Some(&ends));
        assert_eq!(d[0].id(), "notice:ag_1:termination:2028-01-01");
        assert!(due(&a, &[], jan_1_2028 + DAY, &settings(), Some(&ends)).is_empty(), "after the end: nothing");
        let mut seen = vec![msg("notice:ag_1:termination:2028-01-01", "notice_termination", "", jan_1_2028 - DAY)];
        seen[0].signer_id = None;
        assert!(due(&a, &seen, jan_1_2028 - 1, &settings(), Some(&ends)).is_empty());
    }

    #[test]
    fn the_tick_skips_an_executed_agreement_exactly_when_no_term_notice_can_be_due() {
        // The reminder tick filters executed agreements with `term_notice_window` on the index's
        // facts before decoding them: it must keep every one for which `due` yields a notice.
        let a = agreement(Status::Executed, vec![signer("s1", SignerStatus::Signed, None, 1)]);
        let mut checked = 0;
        let mut open = 0;
        for (days, r) in [(30u32, settings()), (1, settings()), (0, settings())] {
            let r = ReminderSettings { term_notice_days: days, ..r };
            for effective in [Date { year: 2027, month: 1, day: 31 }, Date { year: 2024, month: 2, day: 29 }] {
                for months in [0u16, 1, 6, 12, 36] {
                    for auto_renew in [true, false] {
                        let t = Term { effective, months, auto_renew };
                        let start = date_secs(effective);
                        // Every half day over five years from the effective date.
                        for step in 0..3_650u64 {
                            let now = start + step * DAY / 2;
                            let notice = due(&a, &[], now, &r, Some(&t)).iter().any(|d| matches!(d, Due::Term { .. }));
                            assert_eq!(term_notice_window(&t, now, &r), notice, "{t:?} at {now} with {days} days");
                            checked += 1;
                            open += usize::from(notice);
                        }
                    }
                }
            }
        }
        assert!(open > 1_000 && open < checked, "both answers exercised: open {open} of {checked}");
    }
    /// Whether `Service::get` would move `a` to `expired` at `now`.
    fn expires_at(a: &Agreement, now: u64) -> bool {
        a.status.is_out_for_signature() && a.open_links_expire_at().is_some_and(|t| t <= now)
    }

    #[test]
    fn the_open_links_expire_when_the_last_open_one_does_and_never_when_one_has_no_expiry() {
        let s = |id, status, e| signer(id, status, e, 1);
        let a = agreement(Status::Sent, vec![]);
        assert_eq!(a.open_links_expire_at(), None, "nobody open");
        let a = agreement(
            Status::PartiallySigned,
            vec![
                s("s1", SignerStatus::Signed, Some(T0 + 9 * DAY)),
                s("s2", SignerStatus::Notified, Some(T0 + 3 * DAY)),
                s("s3", SignerStatus::Opened, Some(T0 + 5 * DAY)),
                s("s4", SignerStatus::Waiting, None),
            ],
        );
        assert_eq!(a.open_links_expire_at(), Some(T0 + 5 * DAY), "the later of s2 and s3; signed and waiting left out");
        let a = agreement(
            Status::Sent,
            vec![s("s1", SignerStatus::Notified, Some(T0 + 3 * DAY)), s("s2", SignerStatus::Opened, None)],
        );
        assert_eq!(a.open_links_expire_at(), None, "an open link without expiry never expires");
    }

    #[test]
    fn nothing_falls_due_and_nothing_expires_before_the_wake_time() {
        // Random agreements out for signature (one to three signers in every state, links of
        // 1-30 days, some resent), random settings, ticks at random gaps: at each tick queue
        // what is due, take the wake time, and check every hour before it, and the second
        // before it, that nothing is due and the agreement does not expire.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut checked, mut skipped_ticks, mut ticks) = (0u64, 0u64, 0u64);
        for case in 0..400 {
            let r = ReminderSettings {
                first_after_days: [0, 1, 3, 5][rnd(4) as usize],
                every_days: [0, 1, 4, 7][rnd(4) as usize],
                expiry_warning_days: [0, 1, 2, 10][rnd(4) as usize],
                ..settings()
            };
            let statuses = [
                SignerStatus::Notified,
                SignerStatus::Opened,
                SignerStatus::Signed,
                SignerStatus::Waiting,
                SignerStatus::Declined,
            ];
            let n = 1 + rnd(3) as usize;
            let mut signers = Vec::new();
            let mut ms = Vec::new();
            for i in 1..=n {
                let sent = T0 + rnd(5 * DAY);
                let expires = (rnd(8) != 0).then(|| sent + DAY + rnd(30 * DAY));
                let status = statuses[rnd(5) as usize];
                signers.push(signer(&format!("s{i}"), status, expires, 1));
                if status != SignerStatus::Waiting {
                    ms.push(msg(&format!("l{i}"), "link", &format!("s{i}"), sent));
                    if rnd(3) == 0 {
                        // A resend: a later link message (the record's expiry is the latest's).
                        ms.push(msg(&format!("l{i}b"), "link", &format!("s{i}"), sent + rnd(2 * DAY)));
                    }
                }
            }
            let status = if case % 2 == 0 { Status::Sent } else { Status::PartiallySigned };
            let a = agreement(status, signers);
            let mut now = T0 + rnd(3 * DAY);
            while now < T0 + 40 * DAY {
                ticks += 1;
                if expires_at(&a, now) {
                    break; // the tick would have moved it to `expired`
                }
                for d in due(&a, &ms, now, &r, None) {
                    let kind = if d.id().starts_with("expiry") { "expiry_warning" } else { "reminder" };
                    let signer = match &d {
                        Due::Reminder { signer, .. } | Due::ExpiryWarning { signer, .. } => signer.clone(),
                        Due::Term { .. } => unreachable!("not executed"),
                    };
                    ms.push(msg(d.id(), kind, &signer, now));
                }
                assert!(due(&a, &ms, now, &r, None).is_empty(), "everything due at {now} was queued");
                let wake = wake_at(&a, &ms, now, &r, None);
                assert!(wake >= now, "case {case}: wake {wake} before {now}");
                let until = wake.min(T0 + 60 * DAY);
                let mut t = now + 1;
                while t < until {
                    assert!(due(&a, &ms, t, &r, None).is_empty(), "case {case}: due at {t}, before the wake {wake}");
                    assert!(!expires_at(&a, t), "case {case}: expires at {t}, before the wake {wake}");
                    checked += 1;
                    t += 3600;
                }
                if until > now + 1 {
                    assert!(due(&a, &ms, until - 1, &r, None).is_empty(), "case {case}: due a second before {wake}");
                    assert!(!expires_at(&a, until - 1) || until != wake, "case {case}: expires before {wake}");
                }
                // The next tick: soon, or after the wake time (the tick's own period is 5 minutes).
                let gap = if rnd(2) == 0 { 300 } else { rnd(3 * DAY) };
                skipped_ticks += u64::from(now + gap < wake);
                now += gap.max(1);
            }
        }
        assert!(checked > 100_000, "checked {checked} hours");
        assert!(
            skipped_ticks * 4 > ticks,
            "over a quarter of the ticks find a wake time ahead: {skipped_ticks} of {ticks}"
        );
    }

    #[test]
    fn no_term_notice_falls_due_before_an_executed_agreements_wake_time() {
        let a = agreement(Status::Executed, vec![signer("s1", SignerStatus::Signed, None, 1)]);
        let (mut checked, mut notices, mut ticks, mut skipped) = (0u64, 0u64, 0u64, 0u64);
        for days in [30u32, 1, 90, 0] {
            let r = ReminderSettings { term_notice_days: days, ..settings() };
            for effective in [Date { year: 2027, month: 1, day: 31 }, Date { year: 2024, month: 2, day: 29 }] {
                for months in [0u16, 1, 6, 12, 36] {
                    for auto_renew in [true, false] {
                        let t = Term { effective, months, auto_renew };
                        let mut ms: Vec<Message> = Vec::new();
                        let mut now = date_secs(effective);
                        let end = now + 5 * 365 * DAY;
                        let mut gap = 0u64;
                        while now < end {
                            ticks += 1;
                            for d in due(&a, &ms, now, &r, Some(&t)) {
                                ms.push(msg(d.id(), "notice", "", now));
                                notices += 1;
                            }
                            let wake = wake_at(&a, &ms, now, &r, Some(&t));
                            assert!(wake > now, "{t:?} with {days} days: wake {wake} not after {now}");
                            // Up to 400 days on (later ticks probe further).
                            let mut probe = now + 1;
                            while probe < wake.min(end).min(now + 400 * DAY) {
                                assert!(
                                    due(&a, &ms, probe, &r, Some(&t)).is_empty(),
                                    "{t:?}: due at {probe} before {wake}"
                                );
                                checked += 1;
                                probe += DAY / 2;
                            }
                            if wake < end {
                                assert!(
                                    due(&a, &ms, wake - 1, &r, Some(&t)).is_empty(),
                                    "{t:?}: due a second before {wake}"
                                );
                            }
                            // Ticks at uneven gaps: a minute to 40 days.
                            gap = (gap * 7 + 13) % 40;
                            let next = now + 60 + gap * DAY;
                            skipped += u64::from(next < wake);
                            now = next;
                        }
                    }
                }
            }
        }
        assert!(checked > 50_000 && notices > 100, "checked {checked} half days, {notices} notices");
        assert!(skipped * 3 > ticks, "over a third of the ticks find the wake time ahead: {skipped} of {ticks}");
    }

    #[test]
    fn a_fourteen_day_link_wakes_the_tick_at_each_reminder_the_warning_and_the_expiry() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 1)]);
        let mut ms = vec![msg("m1", "link", "s1", T0)];
        let r = settings();
        // Each time with what was due by then queued, as the tick calls it.
        assert_eq!(wake_at(&a, &ms, T0, &r, None), T0 + 3 * DAY, "the first reminder");
        ms.push(msg("reminder:ag_1:s1:1:1", "reminder", "s1", T0 + 3 * DAY));
        assert_eq!(wake_at(&a, &ms, T0 + 3 * DAY, &r, None), T0 + 7 * DAY, "the second");
        ms.push(msg("reminder:ag_1:s1:1:2", "reminder", "s1", T0 + 7 * DAY));
        ms.push(msg("reminder:ag_1:s1:1:3", "reminder", "s1", T0 + 11 * DAY));
        assert!(due(&a, &ms, T0 + 11 * DAY, &r, None).is_empty());
        assert_eq!(wake_at(&a, &ms, T0 + 11 * DAY, &r, None), T0 + 12 * DAY, "the warning, two days before expiry");
        ms.push(msg("expiry:ag_1:s1:1", "expiry_warning", "s1", T0 + 12 * DAY));
        assert!(due(&a, &ms, T0 + 12 * DAY, &r, None).is_empty());
        assert_eq!(wake_at(&a, &ms, T0 + 12 * DAY, &r, None), T0 + 14 * DAY, "then the expiry");
        let signed = agreement(Status::Sent, vec![signer("s1", SignerStatus::Signed, Some(T0 + 14 * DAY), 1)]);
        assert_eq!(wake_at(&signed, &ms, T0, &r, None), u64::MAX, "nobody to remind: not until the record changes");
        let executed = agreement(Status::Executed, vec![signer("s1", SignerStatus::Signed, None, 1)]);
        assert_eq!(wake_at(&executed, &ms, T0, &r, None), u64::MAX);
        assert_ne!(settings_fingerprint(&r), settings_fingerprint(&ReminderSettings { every_days: 5, ..r.clone() }));
        assert_ne!(
            settings_fingerprint(&r),
            settings_fingerprint(&ReminderSettings { term_notice_days: 9, ..r.clone() })
        );
        assert_eq!(settings_fingerprint(&r), settings_fingerprint(&ReminderSettings { tick_secs: 1, ..r.clone() }));
    }

    #[test]
    fn still_wanted_checks_the_signer_and_generation() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 2)]);
        let m = msg("reminder:ag_1:s1:2:1", "reminder", "s1", T0);
        assert!(still_wanted(&a, &m, T0 + DAY).is_ok());
        assert!(still_wanted(&a, &m, T0 + 15 * DAY).is_err(), "expired");
        let old = msg("reminder:ag_1:s1:1:1", "reminder", "s1", T0);
        assert!(still_wanted(&a, &old, T0 + DAY).is_err(), "superseded");
        let signed =
            agreement(Status::PartiallySigned, vec![signer("s1", SignerStatus::Signed, Some(T0 + 14 * DAY), 2)]);
        assert!(still_wanted(&signed, &m, T0 + DAY).is_err());
        assert!(still_wanted(&signed, &msg("m9", "link", "s1", T0), T0).is_ok(), "other kinds always go");
        let voided = agreement(Status::Voided, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 2)]);
        assert!(still_wanted(&voided, &msg("m9", "link", "s1", T0), T0).is_err(), "a dead link is not mailed");
        assert!(still_wanted(&voided, &msg("m9", "completion", "s1", T0), T0).is_ok());
    }

    #[test]
    fn each_reason_a_message_is_skipped_is_its_own_variant_with_the_text_kept_in_the_outbox() {
        let a = agreement(Status::Sent, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 2)]);
        let m = msg("reminder:ag_1:s1:2:1", "reminder", "s1", T0);
        let expired = still_wanted(&a, &m, T0 + 15 * DAY);
        assert_eq!(expired, Err(NotWanted::LinkExpired));
        assert_eq!(expired.unwrap_err().to_string(), "no longer needed: the link has expired");
        let old = msg("reminder:ag_1:s1:1:1", "reminder", "s1", T0);
        assert_eq!(still_wanted(&a, &old, T0 + DAY), Err(NotWanted::Superseded));
        let signed =
            agreement(Status::PartiallySigned, vec![signer("s1", SignerStatus::Signed, Some(T0 + 14 * DAY), 2)]);
        assert_eq!(still_wanted(&signed, &m, T0 + DAY), Err(NotWanted::Signed));
        assert_eq!(NotWanted::Signed.to_string(), "no longer needed: the signer has signed");
        let voided = agreement(Status::Voided, vec![signer("s1", SignerStatus::Notified, Some(T0 + 14 * DAY), 2)]);
        let why = still_wanted(&voided, &m, T0 + DAY).expect_err("not out for signature");
        assert_eq!(why, NotWanted::NotOutForSignature(Status::Voided));
        assert_eq!(why.to_string(), "no longer needed: the agreement is voided");
        assert_eq!(still_wanted(&voided, &msg("m9", "link", "s1", T0), T0), Err(NotWanted::Voided));
    }
}
