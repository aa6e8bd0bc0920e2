//! The sender: a tokio task that delivers due messages from the sled outbox and runs the
//! reminder tick.
//!
//! Due messages go in batches (64 `.eml` copies; one message at a time by SMTP, see
//! `batch_size`): one store step and one wait for the disk lease the whole batch, one more
//! records its outcomes; on sled the write lock is held for each step, never for the wait.
//! Delivery of each message:
//!
//! 1. Reminders and expiry warnings that are no longer wanted (the signer acted, a newer link
//!    went out, the agreement closed) are marked `skipped`; so are staff notices when no
//!    `staff_notice_to` is configured (they stay in the outbox and `.eml` copies).
//! 2. **Lease**: `attempts + 1` and `next_attempt_at = now + backoff` are made durable *before*
//!    the attempt, so a crash during the attempt neither loses the message nor retries it in a
//!    tight loop, and a message that crashes the process every time still runs out of attempts.
//! 3. The `.eml` copy is written (with `eml_outbox`), then the same bytes go to the SMTP server.
//! 4. Accepted: `sent` with the time and the server's reply. Transient failure: stays `queued`
//!    with `last_error`, and is retried at `next_attempt_at`. Permanent failure, or the last
//!    attempt failed: `failed` with the reason, in one commit with an audit event and the staff
//!    notice.
//!
//! A crash after the server accepted a message but before step 4 was made durable sends it again
//! after restart: at least once, with the same Message-ID, so a rare duplicate is possible and
//! receivers that deduplicate by Message-ID drop it.
//!
//! Timing comes from the service's [`crate::clock::Clock`] (attempt times and backoff) and from
//! `[delivery] poll_ms` / `[reminders] tick_secs` (how often the task looks); it is woken through
//! `Service::mail_wake` after every commit that queued messages.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;

use super::schedule::still_wanted;
use crate::app::service::{Pending, Service, ServiceError};
use crate::config::mail::DeliverySettings;
use crate::mail::smtp::{Outcome, Smtp};
use crate::mail::{Durability, notices};
use crate::store::{Change, Message, MessageStatus, NewEvent, QueuedHead, StoreError};

/// How messages leave.
pub enum Transport {
    Smtp(Smtp),
    /// No SMTP: writing the `.eml` copy is the delivery (an operator sends it by hand).
    Eml,
    /// Neither SMTP nor `.eml` copies: messages stay queued.
    Nothing,
}

impl Transport {
    /// From the configuration. Call inside the runtime (lettre's pool starts a task).
    pub fn from_config(service: &Service) -> Result<Transport, crate::mail::MailError> {
        let c = &service.config;
        match &c.smtp {
            Some(s) => {
                let from = crate::mail::mime::from_mailbox(c)?.email;
                Ok(Transport::Smtp(Smtp::new(s, from)?))
            }
            None if c.eml_outbox => Ok(Transport::Eml),
            None => Ok(Transport::Nothing),
        }
    }
}

/// Delay before the next attempt after `attempt` attempts (1-based): `initial · 2^(attempt-1)`,
/// capped at `max`, shortened by up to `jitter` of itself (`unit` is a random number in [0, 1)).
pub fn backoff_secs(attempt: u32, d: &DeliverySettings, unit: f64) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    let base = d.backoff_initial_secs.saturating_mul(1u64 << exp).min(d.backoff_max_secs);
    let cut = (base as f64 * d.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0)).floor() as u64;
    base - cut.min(base)
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Starts the sender and the reminder tick; both stop when `shutdown` resolves (an attempt in
/// flight finishes first, bounded by the SMTP timeout).
pub fn spawn(
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let transport = match Transport::from_config(&service) {
            Ok(t) => {
                match &t {
                    Transport::Smtp(_) => tracing::info!("mail: delivering by SMTP"),
                    Transport::Eml => {
                        tracing::info!("mail: no SMTP configured; messages are written to the .eml outbox")
                    }
                    Transport::Nothing => {
                        tracing::warn!("mail: no SMTP and eml_outbox = false; messages stay queued")
                    }
                }
                t
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "mail transport cannot start; messages stay queued (their .eml copies are written with eml_outbox)"
                );
                Transport::Nothing
            }
        };
        tokio::pin!(shutdown);
        let poll = Duration::from_millis(service.config.delivery.poll_ms.max(10));
        let tick_every = Duration::from_secs(service.config.reminders.tick_secs.max(1));
        let mut next_tick = tokio::time::Instant::now();
        loop {
            // Other instances' commits (one database, several instances) wake this loop.
            let svc = service.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || svc.catch_up()).await {
                tracing::error!(error = %e, "search index catch-up panicked");
            }
            let ticked = tokio::time::Instant::now() >= next_tick;
            if ticked {
                let svc = service.clone();
                match tokio::task::spawn_blocking(move || svc.queue_due_messages()).await {
                    Ok(Ok(n)) if n > 0 => tracing::info!(queued = n, "reminders and notices queued"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "reminder tick failed"),
                    Err(e) => tracing::error!(error = %e, "reminder tick panicked"),
                }
                next_tick = tokio::time::Instant::now() + tick_every;
            }
            let next_due = match deliver_due(&service, &transport).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "outbox pass failed");
                    None
                }
            };
            if ticked {
                // After the start-up passes (the index built, the first tick and delivery pass
                // done) and after each tick: what they freed goes back to the system.
                if let Err(e) = tokio::task::spawn_blocking(super::memory::return_freed).await {
                    tracing::error!(error = %e, "returning freed memory panicked");
                }
            }
            service.sender_passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut wait = poll.min(next_tick.saturating_duration_since(tokio::time::Instant::now()));
            if let Some(at) = next_due {
                wait = wait.min(Duration::from_secs(at.saturating_sub(service.clock.now())));
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = service.mail_wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
        if let Transport::Smtp(s) = &transport {
            s.shutdown().await;
        }
    })
}

async fn blocking<T: Send + 'static>(
    service: &Arc<Service>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let svc = service.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|e| ServiceError::Internal(format!("task failed: {e}")))?
}

/// At most this many due messages share one lease commit and one outcome commit: two fsyncs
/// for the batch instead of two per message.
const BATCH: usize = 64;

/// How many messages one batch leases before its first attempt. `.eml` copies are local files:
/// [`BATCH`]. SMTP: one. Every lease of a batch is taken before its first attempt and its
/// outcome recorded after the last, and an SMTP send may take four times the SMTP timeout
/// (lettre's timeout is per command): a batch of sends could outlast its leases, and another
/// instance would then take a message and send it too.
fn batch_size(transport: &Transport) -> usize {
    match transport {
        Transport::Smtp(_) => 1,
        _ => BATCH,
    }
}

/// One pass: delivers every due message, oldest first, in batches (`batch_size`). Returns
/// when the next queued message falls due (clock seconds), if any.
pub async fn deliver_due(service: &Arc<Service>, transport: &Transport) -> Result<Option<u64>, ServiceError> {
    if matches!(transport, Transport::Nothing) {
        // Nothing delivers (no SMTP and no `.eml` outbox, or an SMTP configuration that cannot
        // start): the messages stay queued, but with the `.eml` outbox on each gets its copy,
        // as a staff action's do (a signature leaves its copies to this task).
        blocking(service, |s| s.copy_queued()).await?;
        return Ok(None);
    }
    let now = service.clock.now();
    let mut due: Vec<QueuedHead> = blocking(service, |s| Ok(s.store.queued_heads()?))
        .await?
        .into_iter()
        .filter(|m| m.status == MessageStatus::Queued && m.next_attempt_at.unwrap_or(0) <= now)
        .collect();
    due.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let ids: Vec<String> = due.into_iter().map(|m| m.id).collect();
    for batch in ids.chunks(batch_size(transport)) {
        if let Err(e) = deliver(service, transport, batch.to_vec()).await {
            tracing::error!(messages = batch.len(), error = %e, "delivery bookkeeping failed");
        }
    }
    let pending = blocking(service, |s| Ok(s.store.queued_heads()?)).await?;
    // The sender reads the queue anyway: the scrape reads this number, not the store.
    service.metrics.outbox_queued(pending.iter().filter(|m| m.status == MessageStatus::Queued).count());
    // A message still due after the pass was left by it (leased by another instance, a body
    // that cannot be read or decided): the next pass for it comes a second on, not at once
    // (the loop would spin every 5 ms). Mail queued meanwhile wakes the loop anyway.
    Ok(pending
        .iter()
        .filter(|m| m.status == MessageStatus::Queued)
        .map(|m| m.next_attempt_at.unwrap_or(0).max(now + 1))
        .min())
}

/// One batch: lease (one fsync), attempt each, record the outcomes (one fsync).
async fn deliver(service: &Arc<Service>, transport: &Transport, ids: Vec<String>) -> Result<(), ServiceError> {
    let leased = blocking(service, move |s| lease(s, &ids)).await?;
    if leased.is_empty() {
        return Ok(());
    }
    let config = &service.config;
    let outcomes: Vec<Outcome> = match transport {
        Transport::Nothing => return Ok(()),
        Transport::Eml => {
            let dir = config.data_dir.join("outbox");
            let (ms, c, d) = (leased.clone(), config.clone(), dir.clone());
            match tokio::task::spawn_blocking(move || crate::mail::write_eml_all(&d, &ms, &c)).await {
                Ok(written) => written
                    .into_iter()
                    .zip(&leased)
                    .map(|(w, m)| match w {
                        Ok(_) => Outcome::Sent(format!(
                            "written to {} (no SMTP server configured)",
                            crate::mail::eml_path(&dir, m).display()
                        )),
                        Err(e) => Outcome::Transient(format!("cannot write the .eml copy: {e}")),
                    })
                    .collect(),
                Err(e) => leased.iter().map(|_| Outcome::Transient(format!("task failed: {e}"))).collect(),
            }
        }
        Transport::Smtp(smtp) => {
            let mut outcomes = Vec::with_capacity(leased.len());
            for m in &leased {
                outcomes.push(send_smtp(smtp, m, config).await);
            }
            outcomes
        }
    };
    for (m, outcome) in leased.iter().zip(&outcomes) {
        match outcome {
            Outcome::Sent(_) => {
                tracing::info!(message = %m.id, kind = %m.kind, attempt = m.attempts, "message delivered")
            }
            Outcome::Transient(e) => {
                tracing::warn!(message = %m.id, kind = %m.kind, attempt = m.attempts, error = %e, "delivery failed; will retry")
            }
            Outcome::Permanent(e) => {
                tracing::warn!(message = %m.id, kind = %m.kind, attempt = m.attempts, error = %e, "delivery refused")
            }
        }
    }
    let results: Vec<(Message, Outcome)> = leased.into_iter().zip(outcomes).collect();
    blocking(service, move |s| record(s, results)).await
}

/// One attempt by SMTP (the `.eml` copy first, when configured).
async fn send_smtp(smtp: &Smtp, m: &Message, config: &crate::config::Config) -> Outcome {
    let built = crate::mail::mime::format(m, config).and_then(|bytes| {
        let to: Result<Vec<Address>, crate::mail::MailError> =
            crate::mail::mime::recipients(m, config).map(|v| v.into_iter().map(|mb| mb.email).collect());
        Ok((bytes, to?))
    });
    match built {
        Err(e) => Outcome::Permanent(e.to_string()),
        Ok((bytes, to)) => {
            if config.eml_outbox {
                let dir = config.data_dir.join("outbox");
                let (m2, c) = (m.clone(), config.clone());
                if let Ok(Err(e)) =
                    tokio::task::spawn_blocking(move || crate::mail::write_eml(&dir, &m2, &c, Durability::Later)).await
                {
                    tracing::warn!(message = %m.id, error = %e, "cannot write the .eml copy; sending anyway");
                }
            }
            smtp.send(to, &bytes).await
        }
    }
}

/// Leases each message of a batch for one attempt (or marks it skipped) in one step of the
/// store, under the write lock, then waits once for the disk outside it: every lease is durable
/// before any attempt. On sled the step is one transaction, so a signer's commit waits for the
/// batch's bookkeeping, never for an fsync; on PostgreSQL each row is leased in a transaction of
/// its own (`FOR UPDATE SKIP LOCKED`), as before batches. A message that cannot be read or
/// decided is logged and left for the next pass; the rest of the batch goes on. The `.eml` copies
/// of skipped messages are written after the lock (best effort, as before). Returns the messages
/// to attempt.
fn lease(s: &Service, ids: &[String]) -> Result<Vec<Message>, ServiceError> {
    let now = s.clock.now();
    let (written, ticket) = {
        let _g = s.write();
        s.store.lease_messages_nowait(ids, &mut |m| {
            let id = m.id.clone();
            decide(s, m, now).or_else(|e| {
                tracing::error!(message = %id, error = %e, "cannot decide on the message; left for the next pass");
                Ok(None)
            })
        })?
    };
    s.store.sync(ticket)?;
    // `decide` leaves a leased message queued; a skipped one is no longer queued.
    let (attempt, skipped): (Vec<Message>, Vec<Message>) =
        written.into_iter().partition(|m| m.status == MessageStatus::Queued);
    if s.config.eml_outbox && !skipped.is_empty() {
        let _ = crate::mail::write_eml_all(&s.config.data_dir.join("outbox"), &skipped, &s.config);
    }
    Ok(attempt)
}

/// Under the write lock, on the stored message: None when it is no longer due (sent, leased by
/// another pass or instance); skipped when it is no longer wanted (the signer acted, a newer link
/// went out, the agreement closed) or has nowhere to go; else leased for one attempt (one more
/// attempt counted, the next one after the backoff), still queued. With several instances on one
/// database the store leases row by row ([`crate::store::Store::lease_messages_nowait`]): the
/// instance that finds a message locked or already leased leaves it.
fn decide(s: &Service, mut m: Message, now: u64) -> Result<Option<Message>, StoreError> {
    if m.status != MessageStatus::Queued || m.next_attempt_at.unwrap_or(0) > now {
        return Ok(None);
    }
    let skip = if m.to.trim().is_empty() {
        Some("no staff_notice_to configured: kept in the outbox only".to_string())
    } else {
        match s.store.agreement(&m.agreement_id) {
            Ok(a) => still_wanted(&a, &m, now).err().map(|why| why.to_string()),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        }
    };
    if let Some(reason) = skip {
        m.status = MessageStatus::Skipped;
        m.last_error = Some(reason);
        m.next_attempt_at = None;
        return Ok(Some(m));
    }
    m.attempts += 1;
    m.last_attempt_at = Some(now);
    m.next_attempt_at = Some(now + backoff_secs(m.attempts, &s.config.delivery, unit_random()));
    Ok(Some(m))
}

/// Records the outcomes of a batch's attempts under the write lock — sent and retried messages
/// in one step of the store, each final failure in a commit of its own with its audit event and
/// staff notice — then waits once for the disk outside it (and wakes the sender when a notice was
/// queued), also when part of it failed. A failure that cannot be recorded is logged: its message
/// stays leased and is attempted again when the lease runs out. The outcome metrics count what
/// is on disk.
fn record(s: &Service, results: Vec<(Message, Outcome)>) -> Result<(), ServiceError> {
    let mut pending = Pending { ticket: 0, queued: false };
    let mut counted: Vec<&'static str> = Vec::with_capacity(results.len());
    let mut plain_counts: Vec<&'static str> = Vec::with_capacity(results.len());
    let put = {
        let _g = s.write();
        let mut plain = Vec::with_capacity(results.len());
        for (m, outcome) in results {
            match outcome_of(s, &m, outcome) {
                Recorded::Plain(m, what) => {
                    plain.push(*m);
                    plain_counts.push(what);
                }
                Recorded::Failed(change) => match s.apply(*change) {
                    Ok((_, ticket, queued)) => {
                        pending.ticket = pending.ticket.max(ticket);
                        pending.queued |= queued;
                        counted.push("final");
                    }
                    Err(e) => tracing::error!(message = %m.id, error = %e, "cannot record the final failure"),
                },
            }
        }
        s.store.put_messages_nowait(&plain)
    };
    if let Ok(ticket) = &put {
        pending.ticket = pending.ticket.max(*ticket);
        counted.append(&mut plain_counts);
    }
    s.durable(pending)?;
    for what in counted {
        match what {
            "sent" => s.metrics.outbox_sent(),
            failure => s.metrics.outbox_failure(failure),
        }
    }
    put.map(|_| ()).map_err(ServiceError::from)
}

/// How an attempt's outcome is stored.
enum Recorded {
    /// The message alone: sent, or queued for a retry (`"sent"` or `"transient"`, its metric).
    Plain(Box<Message>, &'static str),
    /// Failed for good: the message with its audit event and staff notice, through the service.
    Failed(Box<Change>),
}

/// Under the write lock: the outcome of the attempt on the leased message.
fn outcome_of(s: &Service, leased: &Message, outcome: Outcome) -> Recorded {
    let now = s.clock.now();
    // Fresh copy: staff may have acted on it meanwhile (retry).
    let mut m = s.store.message(&leased.id).unwrap_or_else(|_| leased.clone());
    let reason = match outcome {
        Outcome::Sent(reply) => {
            m.status = MessageStatus::Sent;
            m.sent_at = Some(now);
            m.reply = Some(reply);
            m.last_error = None;
            m.next_attempt_at = None;
            return Recorded::Plain(Box::new(m), "sent");
        }
        Outcome::Transient(e) if m.attempts < s.config.delivery.max_attempts => {
            m.last_error = Some(e);
            return Recorded::Plain(Box::new(m), "transient");
        }
        Outcome::Transient(e) => format!("{e} (gave up after {} attempts)", m.attempts),
        Outcome::Permanent(e) => e,
    };
    m.status = MessageStatus::Failed;
    m.last_error = Some(reason.clone());
    m.next_attempt_at = None;
    let mut change = Change::default();
    if let Ok(a) = s.store.agreement(&m.agreement_id) {
        change.events.push(NewEvent {
            agreement_id: a.id.clone(),
            kind: "message_failed".into(),
            at: now,
            actor: "system".into(),
            ip: String::new(),
            user_agent: String::new(),
            document_sha256: a.sent_sha256.clone().unwrap_or_else(|| a.document_sha256.clone()),
            detail: serde_json::json!({"message": m.id, "kind": m.kind, "signer": m.signer_id, "attempts": m.attempts, "reason": reason}),
        });
        if !notices::is_notice(&m.kind) {
            let notice = notices::failed(&s.config, &a, &m, &s.notice_to(&a), now);
            if s.store.message(&notice.id).is_err() {
                change.messages.push(notice);
            }
        }
    }
    change.messages.push(m);
    // Through the service: the `message_failed` event queues its `delivery.failed` webhooks,
    // and the notice wakes the sender once durable.
    Recorded::Failed(Box::new(change))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let d = DeliverySettings::default();
        let plain: Vec<u64> = (1..=9).map(|n| backoff_secs(n, &d, 0.0)).collect();
        assert_eq!(plain, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        for n in 1..=12 {
            let b = backoff_secs(n, &d, 0.0);
            let j = backoff_secs(n, &d, 0.999_999);
            assert!(j <= b && j as f64 >= b as f64 * 0.8 - 1.0, "attempt {n}: {j} vs {b}");
        }
        assert_eq!(backoff_secs(u32::MAX, &d, 0.0), 3600, "no overflow");
        let none = DeliverySettings { backoff_initial_secs: 0, backoff_max_secs: 0, ..d };
        assert_eq!(backoff_secs(3, &none, 0.5), 0);
        let r = unit_random();
        assert!((0.0..1.0).contains(&r));
    }
}
