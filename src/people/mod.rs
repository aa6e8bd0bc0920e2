//! Staff people and web sessions: the rules (passwords, emails, tokens, timeouts) and the
//! application-layer [`Directory`] that the web pages and the `/api/v1/users` routes call.
//!
//! * Passwords: argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes), at least 12
//!   characters, not on a short built-in list of common passwords.
//! * Invitations: a random token, stored as its SHA-256, one-time, 72 hours. When nobody exists
//!   yet, [`Directory::setup_link`] makes a first-admin link of the same kind (printed by
//!   `serve`).
//! * Sessions: a random id in a cookie, stored as its SHA-256, with an idle timeout and an
//!   absolute limit; each carries its own CSRF token. Nothing here depends on how a person
//!   proved who they are, so another sign-in method (OIDC) only needs to call
//!   [`Directory::start_session`].
//! * Failed sign-ins are limited per account and per source address (in memory: a restart
//!   forgives, which is acceptable for a limiter whose job is to slow guessing).
//! * Everything that belongs to no agreement goes to the hash-chained staff security log.

mod account;
pub mod password;
pub mod totp;

pub use account::{Enrolment, LoginStep};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::service::Service;
use crate::staff::{Role, Staff};
use crate::store::StoreError;
use crate::store::people::{InviteRecord, NewSecurityEvent, PeopleStore, PersonRecord, SecurityEvent, SessionRecord};

/// An invitation (and the first-admin link) works for this long.
pub const INVITE_SECS: u64 = 72 * 3600;
/// Failed sign-ins allowed per account, and per source address, within [`LIMIT_WINDOW`].
pub const ACCOUNT_LIMIT: u32 = 5;
pub const ADDRESS_LIMIT: u32 = 20;
pub const LIMIT_WINDOW: u64 = 15 * 60;

/// Why a people operation failed; the web pages show each beside its field.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// Field problems: (field name or JSON pointer, message).
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Fields(Vec<(String, String)>),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The one answer for a wrong email, wrong password, disabled or unaccepted account.
    #[error("the email or password is not right")]
    BadCredentials,
    #[error("too many failed sign-ins; try again in 15 minutes")]
    TooMany,
    /// An invitation that is unknown, used, superseded or expired.
    #[error("{0}")]
    Link(&'static str),
    #[error("storage: {0}")]
    Store(StoreError),
}

impl From<StoreError> for PeopleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => PeopleError::NotFound,
            e => PeopleError::Store(e),
        }
    }
}

/// A person as listed (never their password hash or tokens).
#[derive(Debug, Clone, Serialize)]
pub struct PersonView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    /// `invited`, `active` or `disabled`.
    pub status: &'static str,
    pub created_at: String,
    pub created_by: String,
    /// True when sign-in asks for a TOTP code.
    pub two_factor: bool,
}

impl From<&PersonRecord> for PersonView {
    fn from(p: &PersonRecord) -> Self {
        PersonView {
            id: p.id.clone(),
            email: p.email.clone(),
            name: p.name.clone(),
            role: p.role.clone(),
            status: status(p),
            created_at: crate::clock::rfc3339(p.created_at),
            created_by: p.created_by.clone(),
            two_factor: p.has_totp(),
        }
    }
}

fn status(p: &PersonRecord) -> &'static str {
    if p.disabled_at.is_some() {
        "disabled"
    } else if p.password_hash.is_none() {
        "invited"
    } else {
        "active"
    }
}

/// A signed-in person and their session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub person: PersonRecord,
    pub session: SessionRecord,
    pub role: Role,
}

impl SignedIn {
    /// The same identity the API uses: actions are recorded under the person's email.
    pub fn staff(&self) -> Staff {
        Staff { who: self.person.email.clone(), key_id: self.person.id.clone(), role: self.role }
    }

    /// True when `presented` is this session's CSRF token (constant-time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        let want = self.session.csrf.as_bytes();
        want.len() == presented.len() && bool::from(want.ct_eq(presented.as_bytes()))
    }
}

/// What an open invitation link is for.
#[derive(Debug, Clone)]
pub struct OpenInvite {
    pub invite: InviteRecord,
    /// None: the first-admin link (the page also asks for email and name).
    pub person: Option<PersonRecord>,
}

/// What accepting an invitation submits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Acceptance {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_confirm: String,
}

/// Counts failures per key within a window (sign-in limiter).
#[derive(Default)]
struct Limiter {
    seen: Mutex<HashMap<String, (u32, u64)>>,
}

impl Limiter {
    fn count(&self, key: &str, now: u64) -> u32 {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(key).filter(|&&(_, start)| now < start + LIMIT_WINDOW).map_or(0, |&(n, _)| n)
    }

    fn fail(&self, key: &str, now: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded memory whatever an attacker sends: forget expired entries when it grows.
        if seen.len() > 10_000 {
            seen.retain(|_, &mut (_, start)| now < start + LIMIT_WINDOW);
        }
        let e = seen.entry(key.to_string()).or_insert((0, now));
        if now >= e.1 + LIMIT_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    fn clear(&self, key: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// A fresh random token (32 bytes, base64url) and its stored SHA-256.
pub fn new_token() -> Result<(String, String), PeopleError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| PeopleError::Store(StoreError::Io(e.to_string())))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    Ok((token, hash))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why a person's email or name is refused; the text is shown beside the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersonFieldError {
    #[error("not an email address")]
    NotAnEmail,
    #[error("required")]
    Required,
    #[error("at most 200 characters, on one line")]
    NameTooLong,
}

/// Normalises and checks an email address (lower case; one `@`; a dotted domain).
pub fn parse_email(raw: &str) -> Result<String, PersonFieldError> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split('@').count() == 2
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'));
    if ok { Ok(e) } else { Err(PersonFieldError::NotAnEmail) }
}

fn parse_name(raw: &str) -> Result<String, PersonFieldError> {
    let n = raw.trim();
    if n.is_empty() {
        Err(PersonFieldError::Required)
    } else if n.chars().count() > 200 || n.chars().any(char::is_control) {
        Err(PersonFieldError::NameTooLong)
    } else {
        Ok(n.to_string())
    }
}

/// The application layer for people and sessions.
pub struct Directory {
    svc: Arc<Service>,
    limiter: Limiter,
    /// Sign-ins waiting for their second factor (see [`account`]).
    pending: account::Pending,
    /// Serialises read–check–write of a person's two-factor record, so two requests with
    /// the same code (or recovery code) cannot both see it unused.
    mfa: Mutex<()>,
}

impl Directory {
    pub fn new(svc: Arc<Service>) -> Directory {
        Directory { svc, limiter: Limiter::default(), pending: Default::default(), mfa: Mutex::new(()) }
    }

    fn store(&self) -> &dyn PeopleStore {
        self.svc.store.people()
    }

    fn now(&self) -> u64 {
        self.svc.clock.now()
    }

    fn log(&self, who: &str, action: &str, detail: String, ip: &str) -> Result<SecurityEvent, PeopleError> {
        Ok(self.store().append_security(NewSecurityEvent {
            at: self.now(),
            who: who.to_string(),
            action: action.to_string(),
            detail,
            ip: ip.to_string(),
        })?)
    }

    /// True when the session cookie must be `Secure` with the `__Host-` prefix.
    pub fn secure_cookies(&self) -> bool {
        self.svc.config.public_base_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies() { "__Host-countersign" } else { "countersign" }
    }

    pub fn people(&self) -> Result<Vec<PersonView>, PeopleError> {
        let mut ps = self.store().people()?;
        ps.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(ps.iter().map(PersonView::from).collect())
    }

    pub fn security_log(&self) -> Result<Vec<SecurityEvent>, PeopleError> {
        Ok(self.store().security_log()?)
    }

    /// A first-admin link when nobody exists yet (a new one each call); None otherwise.
    pub fn setup_link(&self) -> Result<Option<String>, PeopleError> {
        if !self.store().people()?.is_empty() {
            return Ok(None);
        }
        let (token, hash) = new_token()?;
        let now = self.now();
        self.store().put_invite(&InviteRecord {
            hash,
            person_id: None,
            created_at: now,
            expires_at: now + INVITE_SECS,
            used_at: None,
        })?;
        Ok(Some(format!("{}/setup/{token}", self.svc.config.base_url())))
    }

    /// Invites a person: stores them (no password yet) and a one-time link, and queues the
    /// invitation email. Returns the person and the link (shown once).
    pub fn invite(
        &self,
        by: &str,
        ip: &str,
        email: &str,
        name: &str,
        role: &str,
    ) -> Result<(PersonView, String), PeopleError> {
        let mut errors = Vec::new();
        let email = parse_email(email).map_err(|m| errors.push(("/email".to_string(), m.to_string()))).ok();
        let name = parse_name(name).map_err(|m| errors.push(("/name".to_string(), m.to_string()))).ok();
        let role = Role::parse(role)
            .ok_or_else(|| errors.push(("/role".to_string(), "one of sales, legal, vendor_manager, admin".into())))
            .ok();
        let (Some(email), Some(name), Some(role)) = (email, name, role) else {
            return Err(PeopleError::Fields(errors));
        };
        if self.store().people()?.iter().any(|p| p.email == email) {
            return Err(PeopleError::Fields(vec![("/email".into(), "someone with this email already exists".into())]));
        }
        let now = self.now();
        let id = crate::store::ids::new_id("p", 8);
        let person = PersonRecord {
            id,
            email,
            name,
            role: role.as_str().to_string(),
            password_hash: None,
            created_at: now,
            created_by: by.to_string(),
            disabled_at: None,
            invite_hash: None,
            totp: None,
            reset: None,
        };
        let url = self.issue_invite(person, by, ip, "invited")?;
        let p = self.store().person(&url.0)?;
        Ok((PersonView::from(&p), url.1))
    }

    /// A new invitation link for someone who has not accepted yet (the old one stops working).
    pub fn reinvite(&self, by: &str, ip: &str, id: &str) -> Result<String, PeopleError> {
        let p = self.store().person(id)?;
        if p.password_hash.is_some() || p.disabled_at.is_some() {
            return Err(PeopleError::Conflict(format!(
                "{} is {}: only invited people can be re-invited",
                p.email,
                status(&p)
            )));
        }
        Ok(self.issue_invite(p, by, ip, "reinvited")?.1)
    }

    fn issue_invite(
        &self,
        mut p: PersonRecord,
        by: &str,
        ip: &str,
        action: &str,
    ) -> Result<(String, String), PeopleError> {
        let (token, hash) = new_token()?;
        let now = self.now();
        let url = format!("{}/invite/{token}", self.svc.config.base_url());
        // The invitation before the person who points at it, the email last: a crash in
        // between leaves a person an admin can re-invite, never a link to nobody.
        self.store().put_invite(&InviteRecord {
            hash: hash.clone(),
            person_id: Some(p.id.clone()),
            created_at: now,
            expires_at: now + INVITE_SECS,
            used_at: None,
        })?;
        p.invite_hash = Some(hash);
        self.store().put_person(&p)?;
        let text = format!(
            "Hello {},\n\n{by} invited you to Countersign as {}.\n\nChoose your password here (the link works once, for 72 hours):\n{url}\n",
            p.name,
            Role::parse(&p.role).map_or("staff", |r| r.as_str())
        );
        self.queue_mail("invite", &p, "You are invited to Countersign", text)?;
        self.log(by, action, format!("{} as {}", p.email, p.role), ip)?;
        Ok((p.id, url))
    }

    /// Changes a person's role; their sessions end (they sign in again with the new role).
    pub fn set_role(&self, by: &str, ip: &str, id: &str, role: &str) -> Result<PersonView, PeopleError> {
        let role = Role::parse(role).ok_or_else(|| {
            PeopleError::Fields(vec![("/role".into(), "one of sales, legal, vendor_manager, admin".into())])
        })?;
        let mut p = self.store().person(id)?;
        let old = std::mem::replace(&mut p.role, role.as_str().to_string());
        self.store().put_person(&p)?;
        self.store().delete_sessions_of(&p.id)?;
        self.log(by, "role_changed", format!("{}: {old} → {}", p.email, p.role), ip)?;
        Ok(PersonView::from(&p))
    }

    /// Disables a person and ends every session of theirs at once.
    pub fn disable(&self, by: &str, ip: &str, id: &str) -> Result<PersonView, PeopleError> {
        let mut p = self.store().person(id)?;
        if p.email == by {
            return Err(PeopleError::Conflict("you cannot disable yourself".into()));
        }
        if p.disabled_at.is_none() {
            p.disabled_at = Some(self.now());
            p.invite_hash = None;
            self.store().put_person(&p)?;
        }
        let ended = self.store().delete_sessions_of(&p.id)?;
        self.log(by, "disabled", format!("{} ({ended} session(s) ended)", p.email), ip)?;
        Ok(PersonView::from(&p))
    }

    /// The invitation behind a link, if it still works.
    pub fn open_invite(&self, token: &str) -> Result<OpenInvite, PeopleError> {
        let invalid = PeopleError::Link("this invitation link is not valid; ask an administrator for a new one");
        if token.len() > 100 {
            return Err(invalid);
        }
        let inv = match self.store().invite(&token_hash(token)) {
            Ok(i) => i,
            Err(StoreError::NotFound) => return Err(invalid),
            Err(e) => return Err(e.into()),
        };
        if inv.used_at.is_some() {
            return Err(PeopleError::Link("this invitation has already been used; sign in instead"));
        }
        if inv.expires_at <= self.now() {
            return Err(PeopleError::Link("this invitation has expired; ask an administrator for a new one"));
        }
        let person = match &inv.person_id {
            None => {
                if !self.store().people()?.is_empty() {
                    return Err(PeopleError::Link("this setup link is no longer needed; sign in instead"));
                }
                None
            }
            Some(id) => {
                let p = self.store().person(id)?;
                if p.disabled_at.is_some() || p.invite_hash.as_deref() != Some(inv.hash.as_str()) {
                    return Err(PeopleError::Link("a newer invitation was sent; use the most recent email"));
                }
                Some(p)
            }
        };
        Ok(OpenInvite { invite: inv, person })
    }

    /// Accepts an invitation: sets the password (and for the setup link, creates the admin).
    pub fn accept(&self, token: &str, a: &Acceptance, ip: &str) -> Result<PersonView, PeopleError> {
        let open = self.open_invite(token)?;
        let mut errors = Vec::new();
        let mut person = match open.person.clone() {
            Some(p) => p,
            None => {
                let email = parse_email(&a.email).map_err(|m| errors.push(("email".into(), m.to_string()))).ok();
                let name = parse_name(&a.name).map_err(|m| errors.push(("name".into(), m.to_string()))).ok();
                PersonRecord {
                    id: crate::store::ids::new_id("p", 8),
                    email: email.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                    role: Role::Admin.as_str().into(),
                    password_hash: None,
                    created_at: self.now(),
                    created_by: "setup".into(),
                    disabled_at: None,
                    invite_hash: None,
                    totp: None,
                    reset: None,
                }
            }
        };
        if let Err(m) = password::acceptable(&a.password, &person.email) {
            errors.push(("password".into(), m.to_string()));
        } else if a.password != a.password_confirm {
            errors.push(("password_confirm".into(), "does not match the password".into()));
        }
        if !errors.is_empty() {
            return Err(PeopleError::Fields(errors));
        }
        person.password_hash = Some(password::hash(&a.password)?);
        person.invite_hash = None;
        let used = InviteRecord { used_at: Some(self.now()), ..open.invite };
        match self.store().accept_invite(&used, &person) {
            Err(StoreError::Conflict) => {
                return Err(PeopleError::Link("this invitation has already been used; sign in instead"));
            }
            r => r?,
        }
        let action = if open.person.is_none() { "first_admin_created" } else { "invite_accepted" };
        self.log(&person.email, action, person.email.clone(), ip)?;
        Ok(PersonView::from(&person))
    }

    /// Checks an email and password; on success starts a session and returns the cookie value,
    /// or, for a person with two-factor sign-in, a pending token for the code step
    /// ([`Directory::second_factor`]). Every failure gives the same answer and costs the same
    /// argon2 work.
    pub fn login(&self, email: &str, pass: &str, ip: &str) -> Result<LoginStep, PeopleError> {
        let now = self.now();
        let email = email.trim().to_lowercase();
        let (acct, addr) = (format!("account:{email}"), format!("address:{ip}"));
        if self.limiter.count(&acct, now) >= ACCOUNT_LIMIT || self.limiter.count(&addr, now) >= ADDRESS_LIMIT {
            self.log("anonymous", "sign_in_limited", email.chars().take(254).collect(), ip)?;
            return Err(PeopleError::TooMany);
        }
        let person = self.store().people()?.into_iter().find(|p| p.email == email);
        let stored = person.as_ref().and_then(|p| p.password_hash.clone());
        let matches = password::verify(pass, stored.as_deref());
        match person {
            Some(p) if matches && p.disabled_at.is_none() => {
                let role = Role::parse(&p.role).ok_or(PeopleError::BadCredentials)?;
                if p.has_totp() {
                    // The account limiter is cleared only once the code is right too.
                    self.log(&p.email, "password_accepted", "awaiting two-factor code".into(), ip)?;
                    return Ok(LoginStep::Code { pending: self.pending.start(&p.id, now)? });
                }
                self.limiter.clear(&acct);
                let (cookie, session) = self.start_session(&p, ip)?;
                self.log(&p.email, "signed_in", String::new(), ip)?;
                Ok(LoginStep::Done(cookie, Box::new(SignedIn { person: p, session, role })))
            }
            _ => {
                self.limiter.fail(&acct, now);
                self.limiter.fail(&addr, now);
                self.log("anonymous", "sign_in_failed", email.chars().take(254).collect(), ip)?;
                Err(PeopleError::BadCredentials)
            }
        }
    }

    /// Starts a session for a person whose identity has been proven; returns the cookie value.
    pub fn start_session(&self, p: &PersonRecord, ip: &str) -> Result<(String, SessionRecord), PeopleError> {
        let (id, hash) = new_token()?;
        let (csrf, _) = new_token()?;
        let now = self.now();
        let s = SessionRecord { hash, person_id: p.id.clone(), created_at: now, last_seen: now, csrf, ip: ip.into() };
        self.store().put_session(&s)?;
        Ok((id, s))
    }

    /// The person behind a session cookie, if the session is live; refreshes its idle timer.
    pub fn session(&self, cookie: &str) -> Result<Option<SignedIn>, PeopleError> {
        if cookie.is_empty() || cookie.len() > 100 {
            return Ok(None);
        }
        let hash = token_hash(cookie);
        let mut s = match self.store().session(&hash) {
            Ok(s) => s,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        let w = &self.svc.config.web;
        let idle = now.saturating_sub(s.last_seen) >= w.session_idle_minutes * 60;
        let old = now.saturating_sub(s.created_at) >= w.session_max_hours * 3600;
        let person = match self.store().person(&s.person_id) {
            Ok(p) => Some(p),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let role = person.as_ref().and_then(|p| Role::parse(&p.role));
        match (person, role) {
            (Some(p), Some(role)) if !idle && !old && p.disabled_at.is_none() => {
                // Touch at most once a minute: a page view is not worth a write each time.
                if now >= s.last_seen + 60 {
                    s.last_seen = now;
                    self.store().touch_session(&s)?;
                }
                Ok(Some(SignedIn { person: p, session: s, role }))
            }
            _ => {
                self.store().delete_session(&hash)?;
                Ok(None)
            }
        }
    }

    pub fn logout(&self, who: &SignedIn, ip: &str) -> Result<(), PeopleError> {
        self.store().delete_session(&who.session.hash)?;
        self.log(&who.person.email, "signed_out", String::new(), ip)?;
        Ok(())
    }
}
