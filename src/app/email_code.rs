//! Signer verification by a one-time code sent to the signer's email address (issue 11 §2.9).
//!
//! A forwarded signing email would otherwise let anyone sign. When a signer's record requires
//! it (the intake's `verify_email_code`, or the policy switch `signer_email_code`), the signer
//! page asks for a six-digit code that [`Service::send_code`] emails to the signer's address
//! through the outbox, and [`Service::sign_with_code`] accepts the signature only with it.
//!
//! * The code is never stored: the signer record keeps its HMAC under the link key (kept outside
//!   the store), compared in constant time. The outbox message that carries it is the transport,
//!   like the signing link itself; no log line names it.
//! * A code works once, for [`EmailCode::VALID_SECS`]; asking for a new one replaces it.
//! * Wrong codes are counted durably (committed like any change, so a restart forgets nothing);
//!   after [`EmailCode::MAX_FAILURES`] the link is locked until staff send a new link (resend or
//!   correction), which resets the counters. One link may ask for at most
//!   [`EmailCode::MAX_SENT`] codes, so a link holder cannot flood the signer's mailbox.
//! * Every step is in the audit trail (`code_sent`, `code_failed` with the count and whether the
//!   link locked), and the `signed` event and the signature record name the method
//!   (`email_link+email_code`), which the certificate of completion prints.

use crate::domain::agreement::{Agreement, EmailCode};
use crate::store::Change;

use super::service::{Actor, Link, Service, ServiceError};

/// The verification method of a signature made with the link alone.
pub const BY_LINK: &str = "email_link";
/// The verification method of a signature made with the link and a one-time email code.
pub const BY_LINK_AND_CODE: &str = "email_link+email_code";

const LOCKED: &str = "Too many wrong codes: this link is locked. Reply to the email that brought you the link and ask the sender for a new one.";

/// What the HMAC covers: the code bound to this agreement, signer and link generation, so a
/// code never works for another link.
fn mac_input(a: &Agreement, signer_id: &str, generation: u32, code: &str) -> Vec<u8> {
    format!("{}\u{1f}{signer_id}\u{1f}{generation}\u{1f}{code}", a.id).into_bytes()
}

/// Six uniformly random digits.
fn six_digits() -> Result<String, ServiceError> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|e| ServiceError::Internal(format!("random: {e}")))?;
        let n = u32::from_le_bytes(b);
        // Rejection sampling: 4,294,000,000 is the largest multiple of 10^6 below 2^32.
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// `j•••@example.com`: enough for the signer to recognise the address, not to harvest it.
pub fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "your address".into(),
    }
}

impl Service {
    /// Emails the signer of `token` a new one-time code (replacing any earlier one). Returns
    /// the masked address it went to. Refused when the link does not ask for a code, is
    /// locked, or has asked for [`EmailCode::MAX_SENT`] codes already.
    pub fn send_code(&self, token: &str, actor: &Actor) -> Result<String, ServiceError> {
        let id = self.resolve_open(token)?.agreement.id.clone();
        let (_, to) = self.update(&id, |a, change| {
            let link = self.open_link_in(a, token)?;
            let snapshot = a.clone();
            let now = self.clock.now();
            let s = a.signers.iter_mut().find(|s| s.id == link.signer.id).ok_or(ServiceError::NotFound)?;
            if !s.email_code.required {
                return Err(ServiceError::Field("/action".into(), "this link does not ask for a code".into()));
            }
            if s.email_code.locked() {
                return Err(ServiceError::Field("/code".into(), LOCKED.into()));
            }
            if s.email_code.sent >= EmailCode::MAX_SENT {
                return Err(ServiceError::Field(
                    "/code".into(),
                    "No more codes can be sent for this link: use the latest one, or ask the sender for a new link."
                        .into(),
                ));
            }
            // Decided afresh on every attempt of the update: only the committed code is mailed.
            let code = six_digits()?;
            let mac = self.keys.mac("email-code", &mac_input(&snapshot, &s.id, s.generation, &code));
            s.email_code.mac = Some(hex::encode(mac));
            s.email_code.expires = Some(now + EmailCode::VALID_SECS);
            s.email_code.sent += 1;
            let msg = crate::mail::code_message(&self.config, &snapshot, s, &code, EmailCode::VALID_SECS / 60, now);
            change.events.push(self.event(
                &snapshot,
                "code_sent",
                actor,
                snapshot.sent_sha256.as_deref().unwrap_or_default(),
                serde_json::json!({"signer": s.id, "email": s.email, "generation": s.generation,
                    "expires": crate::clock::rfc3339(now + EmailCode::VALID_SECS), "message_id": msg.message_id}),
            ));
            change.messages.push(msg);
            Ok(masked(&s.email))
        })?;
        Ok(to)
    }

    /// Inside the signing update: the verification method when the signer may sign, or the
    /// reason a wrong code was refused (the failure is then recorded in `a` and `change`, to be
    /// committed instead of the signature). Errors commit nothing: a locked link, no code
    /// given, none sent yet, or an expired one (those count as no attempt).
    pub(crate) fn check_code(
        &self,
        a: &mut Agreement,
        link: &Link,
        code: Option<&str>,
        actor: &Actor,
        change: &mut Change,
    ) -> Result<Result<&'static str, CodeRefusal>, ServiceError> {
        let snapshot = a.clone();
        let now = self.clock.now();
        let s = a.signers.iter_mut().find(|s| s.id == link.signer.id).ok_or(ServiceError::NotFound)?;
        if !s.email_code.required {
            return Ok(Ok(BY_LINK));
        }
        let field = |m: &str| Err(ServiceError::Field("/code".into(), m.into()));
        if s.email_code.locked() {
            return field(LOCKED);
        }
        let code: String = code.unwrap_or("").chars().filter(|c| !c.is_whitespace()).collect();
        let (Some(mac), Some(expires)) = (s.email_code.mac.clone(), s.email_code.expires) else {
            return field("This agreement asks for a code sent to your email address: choose “Email me a code” first.");
        };
        if code.is_empty() {
            return field("Enter the six-digit code from the email we sent you.");
        }
        if now > expires {
            return field("This code has expired: choose “Email me a code” for a new one.");
        }
        let tag = hex::decode(mac).unwrap_or_default();
        if self.keys.verify_mac("email-code", &mac_input(&snapshot, &s.id, s.generation, &code), &tag) {
            // Used once: a second signature attempt cannot reuse it.
            s.email_code.mac = None;
            s.email_code.expires = None;
            return Ok(Ok(BY_LINK_AND_CODE));
        }
        s.email_code.failures += 1;
        let (failures, locked) = (s.email_code.failures, s.email_code.locked());
        change.events.push(self.event(
            &snapshot,
            "code_failed",
            actor,
            snapshot.sent_sha256.as_deref().unwrap_or_default(),
            serde_json::json!({"signer": s.id, "failures": failures, "locked": locked}),
        ));
        if locked {
            s.email_code.mac = None;
            return Ok(Err(CodeRefusal::Locked));
        }
        Ok(Err(CodeRefusal::Wrong { left: EmailCode::MAX_FAILURES - failures }))
    }
}

/// A wrong code, counted and committed instead of the signature; the text is shown beside the
/// code field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRefusal {
    #[error("That code is not right. {left} {} left before this link locks.", if *left == 1 { "try" } else { "tries" })]
    Wrong { left: u32 },
    /// That was the last try: the link is locked.
    #[error("{}", LOCKED)]
    Locked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..50).map(|_| six_digits().expect("random")).collect();
        assert!(codes.iter().all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())), "{codes:?}");
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 40, "50 draws from 10^6 barely collide: {distinct:?}");
    }

    #[test]
    fn the_address_is_masked_but_recognisable() {
        assert_eq!(masked("jordan@example.com"), "j•••@example.com");
        assert_eq!(masked("nonsense"), "your address");
    }
}
