//! A person's own account: two-factor sign-in (TOTP enrolment, the code step of sign-in,
//! recovery codes, an admin's reset), changing one's password, and the forgotten-password
//! link.
//!
//! * The TOTP seed is sealed by the vault (`totp:<person id>`) before it is stored; it is
//!   opened only to show it during enrolment and to check a code.
//! * A code is accepted once: the step it matched is stored and only later steps count after
//!   it. Recovery codes are stored as SHA-256 hashes and removed when used.
//! * Between the password and the code, the sign-in waits in memory ([`Pending`]): a random
//!   token in a hidden field, 5 minutes. A restart forgets them, which only means typing the
//!   password again; nothing that was acknowledged is lost.
//! * Wrong codes count against the same per-account and per-address limits as passwords.
//! * A forgotten-password request answers the same whether or not the email exists, and is
//!   limited per address and per email asked about.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Directory, PeopleError, PersonView, SignedIn, password, token_hash, totp};
use crate::staff::Role;
use crate::store::people::{PersonRecord, ResetRecord, TotpRecord};
use crate::store::{Change, Message, StoreError};

/// A sign-in waits this long for its second factor.
pub const PENDING_SECS: u64 = 5 * 60;
/// A forgotten-password link works for this long.
pub const RESET_SECS: u64 = 3600;
/// Forgotten-password requests allowed per address and per email within the limiter window.
pub const RESET_ADDRESS_LIMIT: u32 = 10;
pub const RESET_ACCOUNT_LIMIT: u32 = 3;

/// What the password step of sign-in leads to.
pub enum LoginStep {
    /// Signed in: the cookie value and who.
    Done(String, Box<SignedIn>),
    /// The person has two-factor sign-in: the code step carries this token.
    Code { pending: String },
}

/// What the enrolment page shows while a seed waits for its first code.
pub struct Enrolment {
    /// The seed in base32, for typing into an authenticator app.
    pub secret: String,
    pub uri: String,
    /// The QR code of `uri`, as inline SVG.
    pub svg: String,
}

/// Sign-ins between their password and their code (hash of the token → person, deadline).
#[derive(Default)]
pub struct Pending {
    map: Mutex<HashMap<String, (String, u64)>>,
}

impl Pending {
    pub(super) fn start(&self, person_id: &str, now: u64) -> Result<String, PeopleError> {
        let (token, hash) = super::new_token()?;
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded whatever is sent (only a right password adds an entry, but still).
        if m.len() > 10_000 {
            m.retain(|_, &mut (_, until)| now < until);
        }
        m.insert(hash, (person_id.to_string(), now + PENDING_SECS));
        Ok(token)
    }

    fn get(&self, token: &str, now: u64) -> Option<String> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&token_hash(token)).filter(|&&(_, until)| now < until).map(|(id, _)| id.clone())
    }

    fn end(&self, token: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&token_hash(token));
    }
}

fn vault_err(e: impl std::fmt::Display) -> PeopleError {
    PeopleError::Store(StoreError::Io(format!("vault: {e}")))
}

fn code_error(m: &str) -> PeopleError {
    PeopleError::Fields(vec![("code".into(), m.into())])
}

impl Directory {
    fn seed(&self, p: &PersonRecord, t: &TotpRecord) -> Result<crate::secret::Secret, PeopleError> {
        let sealed = totp::decode_sealed(&t.sealed_seed).ok_or_else(|| vault_err("sealed seed is not base64"))?;
        self.svc.vault.open(&sealed, &format!("totp:{}", p.id)).map_err(vault_err)
    }

    /// True when the configuration requires two-factor sign-in and this person has none yet:
    /// every page but their account page sends them to enrol.
    pub fn must_enrol(&self, p: &PersonRecord) -> bool {
        self.svc.config.web.require_mfa && !p.has_totp()
    }

    /// The code step of sign-in: a TOTP code (once) or a recovery code (once).
    pub fn second_factor(&self, pending: &str, code: &str, ip: &str) -> Result<(String, SignedIn), PeopleError> {
        let now = self.now();
        let expired = PeopleError::Link("this sign-in took too long; enter your email and password again");
        if pending.len() > 100 {
            return Err(expired);
        }
        let Some(id) = self.pending.get(pending, now) else {
            return Err(expired);
        };
        let p = self.store().person(&id)?;
        let (acct, addr) = (format!("account:{}", p.email), format!("address:{ip}"));
        if self.limiter.count(&acct, now) >= super::ACCOUNT_LIMIT
            || self.limiter.count(&addr, now) >= super::ADDRESS_LIMIT
        {
            self.pending.end(pending);
            self.log("anonymous", "sign_in_limited", p.email.clone(), ip)?;
            return Err(PeopleError::TooMany);
        }
        let how = {
            let _one = self.mfa.lock().unwrap_or_else(|e| e.into_inner());
            let mut p = self.store().person(&id)?;
            let how = match p.totp.clone() {
                Some(mut t) if t.confirmed_at.is_some() && p.disabled_at.is_none() => {
                    let how = if totp::looks_like_recovery(code) {
                        let h = totp::recovery_hash(code);
                        let before = t.recovery.len();
                        t.recovery.retain(|x| x != &h);
                        (t.recovery.len() < before).then(|| format!("with a recovery code ({} left)", t.recovery.len()))
                    } else {
                        // A store restored without its vault key cannot open seeds: say so
                        // (an admin's reset is the way out), rather than "wrong code".
                        let seed = self.seed(&p, &t).map_err(|_| {
                            PeopleError::Conflict(
                                "your two-factor key cannot be read on this server (its vault key is missing); sign in with a recovery code or ask an administrator to reset your two-factor sign-in".into(),
                            )
                        })?;
                        totp::verify(seed.expose(), code, now, t.last_step).map(|step| {
                            t.last_step = step;
                            "with an authenticator code".to_string()
                        })
                    };
                    if how.is_some() {
                        p.totp = Some(t);
                        self.store().put_person(&p)?;
                    }
                    how
                }
                _ => None,
            };
            how.map(|h| (h, p))
        };
        match how {
            Some((how, p)) => {
                self.pending.end(pending);
                self.limiter.clear(&acct);
                let role = Role::parse(&p.role).ok_or(PeopleError::BadCredentials)?;
                let (cookie, session) = self.start_session(&p, ip)?;
                self.log(&p.email, "signed_in", how, ip)?;
                Ok((cookie, SignedIn { person: p, session, role }))
            }
            None => {
                self.limiter.fail(&acct, now);
                self.limiter.fail(&addr, now);
                self.log("anonymous", "two_factor_failed", p.email.clone(), ip)?;
                Err(code_error("That code is not right, or was already used. Enter the current code from your app."))
            }
        }
    }

    /// Starts (or restarts) enrolment: a new seed, sealed, waiting for its first code.
    pub fn totp_start(&self, who: &SignedIn, ip: &str) -> Result<(), PeopleError> {
        let _one = self.mfa.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.store().person(&who.person.id)?;
        if p.has_totp() {
            return Err(PeopleError::Conflict("two-factor sign-in is already on".into()));
        }
        let seed = totp::new_seed().map_err(vault_err)?;
        let sealed = self.svc.vault.seal(&seed, &format!("totp:{}", p.id)).map_err(vault_err)?;
        p.totp = Some(TotpRecord {
            sealed_seed: totp::encode_sealed(&sealed),
            created_at: self.now(),
            confirmed_at: None,
            last_step: 0,
            recovery: Vec::new(),
        });
        self.store().put_person(&p)?;
        self.log(&p.email, "two_factor_started", String::new(), ip)?;
        Ok(())
    }

    /// The seed waiting for its first code, as the enrolment page shows it.
    pub fn totp_enrolment(&self, person_id: &str) -> Result<Option<Enrolment>, PeopleError> {
        let p = self.store().person(person_id)?;
        let Some(t) = p.totp.as_ref().filter(|t| t.confirmed_at.is_none()) else {
            return Ok(None);
        };
        let seed = self.seed(&p, t)?;
        let secret = totp::base32(seed.expose());
        let uri = totp::otpauth_uri("Countersign", &p.email, &secret);
        let svg = totp::qr_svg(&uri, "QR code for your authenticator app")
            .ok_or_else(|| vault_err("the enrolment link does not fit a QR code"))?;
        Ok(Some(Enrolment { secret, uri, svg }))
    }

    /// Confirms enrolment with a first code; returns the ten recovery codes (shown once).
    pub fn totp_confirm(&self, who: &SignedIn, code: &str, ip: &str) -> Result<Vec<String>, PeopleError> {
        let _one = self.mfa.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.store().person(&who.person.id)?;
        let Some(mut t) = p.totp.clone().filter(|t| t.confirmed_at.is_none()) else {
            return Err(PeopleError::Conflict("there is no two-factor enrolment waiting for a code".into()));
        };
        let now = self.now();
        let seed = self.seed(&p, &t)?;
        let Some(step) = totp::verify(seed.expose(), code, now, 0) else {
            return Err(code_error("That code is not right. Enter the 6-digit code your app shows now."));
        };
        let codes = totp::recovery_codes().map_err(vault_err)?;
        t.confirmed_at = Some(now);
        t.last_step = step;
        t.recovery = codes.iter().map(|(_, h)| h.clone()).collect();
        p.totp = Some(t);
        self.store().put_person(&p)?;
        self.log(&p.email, "two_factor_enrolled", String::new(), ip)?;
        Ok(codes.into_iter().map(|(c, _)| c).collect())
    }

    /// An admin turns a person's two-factor sign-in off (lost phone); they enrol again.
    pub fn totp_reset(&self, by: &str, ip: &str, id: &str) -> Result<PersonView, PeopleError> {
        let _one = self.mfa.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.store().person(id)?;
        if p.totp.take().is_none() {
            return Err(PeopleError::Conflict(format!("{} has no two-factor sign-in to reset", p.email)));
        }
        self.store().put_person(&p)?;
        self.log(by, "two_factor_reset", p.email.clone(), ip)?;
        Ok(PersonView::from(&p))
    }

    /// Changes one's own password (the current one is asked again); every session of the
    /// person ends, this one included, so a stolen session does not survive the change.
    pub fn change_password(
        &self,
        who: &SignedIn,
        current: &str,
        new: &str,
        confirm: &str,
        ip: &str,
    ) -> Result<(), PeopleError> {
        let mut p = self.store().person(&who.person.id)?;
        let mut errors = Vec::new();
        if !password::verify(current, p.password_hash.as_deref()) {
            errors.push(("current_password".to_string(), "this is not your current password".to_string()));
        }
        if let Err(m) = password::acceptable(new, &p.email) {
            errors.push(("password".into(), m.to_string()));
        } else if new != confirm {
            errors.push(("password_confirm".into(), "does not match the new password".into()));
        }
        if !errors.is_empty() {
            return Err(PeopleError::Fields(errors));
        }
        p.password_hash = Some(password::hash(new)?);
        p.reset = None;
        self.store().put_person(&p)?;
        self.store().delete_sessions_of(&p.id)?;
        self.log(&p.email, "password_changed", String::new(), ip)?;
        Ok(())
    }

    /// Asks for a forgotten-password link. The answer is the same whether or not the email
    /// belongs to someone (only the address limit can refuse).
    pub fn request_reset(&self, email: &str, ip: &str) -> Result<(), PeopleError> {
        let now = self.now();
        let email: String = email.trim().to_lowercase().chars().take(254).collect();
        let (acct, addr) = (format!("reset-account:{email}"), format!("reset-address:{ip}"));
        if self.limiter.count(&addr, now) >= RESET_ADDRESS_LIMIT {
            return Err(PeopleError::TooMany);
        }
        self.limiter.fail(&addr, now);
        // Per email: quietly stop sending (saying so would tell who exists).
        let quiet = self.limiter.count(&acct, now) >= RESET_ACCOUNT_LIMIT;
        self.limiter.fail(&acct, now);
        let found = self
            .store()
            .people()?
            .into_iter()
            .find(|p| p.email == email && p.password_hash.is_some() && p.disabled_at.is_none());
        match found {
            Some(mut p) if !quiet => {
                let (token, hash) = super::new_token()?;
                p.reset = Some(ResetRecord { hash, expires_at: now + RESET_SECS });
                self.store().put_person(&p)?;
                let url = format!("{}/reset/{token}", self.svc.config.base_url());
                let text = format!(
                    "Hello {},\n\nSomeone (we hope you) asked to reset your Countersign password.\n\nChoose a new password here (the link works once, for 1 hour):\n{url}\n\nIf it was not you, ignore this email: your password stays as it is.\n",
                    p.name
                );
                self.queue_mail("password_reset", &p, "Reset your Countersign password", text)?;
                self.log("anonymous", "password_reset_requested", p.email.clone(), ip)?;
            }
            _ => {
                self.log("anonymous", "password_reset_requested", format!("{email} (no link sent)"), ip)?;
            }
        }
        Ok(())
    }

    fn reset_person(&self, token: &str) -> Result<PersonRecord, PeopleError> {
        let invalid = PeopleError::Link("this password link is not valid or has expired; ask for a new one");
        if token.len() > 100 {
            return Err(invalid);
        }
        let hash = token_hash(token);
        let now = self.now();
        self.store()
            .people()?
            .into_iter()
            .find(|p| {
                p.disabled_at.is_none()
                    && p.reset.as_ref().is_some_and(|r| {
                        now < r.expires_at
                            && bool::from(subtle::ConstantTimeEq::ct_eq(r.hash.as_bytes(), hash.as_bytes()))
                    })
            })
            .ok_or(invalid)
    }

    /// The person a forgotten-password link is for, if it still works.
    pub fn open_reset(&self, token: &str) -> Result<PersonView, PeopleError> {
        self.reset_person(token).map(|p| PersonView::from(&p))
    }

    /// Sets a new password through a forgotten-password link (once); every session ends.
    pub fn reset_password(&self, token: &str, new: &str, confirm: &str, ip: &str) -> Result<(), PeopleError> {
        // One at a time, so the link works exactly once.
        let _one = self.mfa.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = self.reset_person(token)?;
        if let Err(m) = password::acceptable(new, &p.email) {
            return Err(PeopleError::Fields(vec![("password".into(), m.to_string())]));
        }
        if new != confirm {
            return Err(PeopleError::Fields(vec![("password_confirm".into(), "does not match the password".into())]));
        }
        p.password_hash = Some(password::hash(new)?);
        p.reset = None;
        self.store().put_person(&p)?;
        self.store().delete_sessions_of(&p.id)?;
        self.log(&p.email, "password_reset", String::new(), ip)?;
        Ok(())
    }

    /// Queues an email to a person (no agreement) and wakes the sender.
    pub(super) fn queue_mail(
        &self,
        kind: &str,
        p: &PersonRecord,
        subject: &str,
        text: String,
    ) -> Result<(), PeopleError> {
        let now = self.now();
        let id = crate::store::ids::message_id(now);
        let message_id = crate::mail::content::message_id_for(&id, &self.svc.config);
        let to = (p.name.clone(), p.email.clone());
        let m = Message::queued(id, message_id, kind, to, subject.into(), text, now);
        self.svc.store.commit(Change { messages: vec![m], ..Default::default() })?;
        self.svc.mail_wake.notify_one();
        Ok(())
    }
}

impl Directory {
    /// Records an admin action that belongs to no agreement (API key changes from the web
    /// app) in the staff security log.
    pub fn record(&self, who: &str, action: &str, detail: String, ip: &str) -> Result<(), PeopleError> {
        self.log(who, action, detail, ip).map(|_| ())
    }
}
