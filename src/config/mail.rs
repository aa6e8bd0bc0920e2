//! Mail configuration: the `[smtp]`, `[delivery]` and `[reminders]` sections and
//! `staff_notice_to`, with their `COUNTERSIGN_*` environment variables.
//!
//! The sections are fields of [`crate::config::Config`]; this module holds their types, defaults,
//! environment handling and the start-up check ([`validate`]), so the rest of the configuration
//! code stays as it was.

use serde::Deserialize;

use crate::config::{Config, ConfigError, env_error};
use crate::secret::SecretString;

/// How to reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on localhost or a trusted network only).
    None,
    /// Connect in plain text, then upgrade with STARTTLS; refuse if the server cannot (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", port 465).
    Tls,
}

impl TlsMode {
    pub fn parse(s: &str) -> Result<TlsMode, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::Starttls),
            "tls" => Ok(TlsMode::Tls),
            other => Err(ConfigError::TlsMode(other.to_string())),
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// `[smtp]`: present means "deliver by SMTP".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 587 for starttls, 465 for tls, 25 for none.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// With a password: authenticate (PLAIN or LOGIN, whichever the server offers).
    #[serde(default)]
    pub username: Option<String>,
    /// Never logged or serialized.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// From header and envelope sender; default: the top-level `mail_from`.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Seconds for connecting and for each SMTP command.
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// A PEM file of extra root certificates (a relay with a private CA); the Mozilla roots
    /// are always trusted.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_smtp_timeout() -> u64 {
    30
}

impl SmtpSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls.default_port())
    }
}

/// `[delivery]`: the sender task and its retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Attempts before a message is marked failed (transient errors only; a permanent 5xx
    /// refusal fails at once).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time up to `backoff_max_secs`.
    pub backoff_initial_secs: u64,
    pub backoff_max_secs: u64,
    /// Each delay is shortened by a random fraction up to this (0.0–1.0), so messages that
    /// failed together do not retry together.
    pub jitter: f64,
    /// The sender also looks at the outbox this often (milliseconds), besides being woken
    /// after every commit that queues a message.
    pub poll_ms: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 10,
            backoff_initial_secs: 60,
            backoff_max_secs: 3600,
            jitter: 0.2,
            poll_ms: 30_000,
        }
    }
}

/// `[reminders]`: reminders, expiry warnings and term notices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReminderSettings {
    /// First reminder this many days after the link was sent (0 turns reminders off).
    pub first_after_days: u32,
    /// Then every this many days, until the signer acts, the agreement is voided or the link
    /// expires (0: only the first reminder).
    pub every_days: u32,
    /// Warn the signer this many days before their link expires (0 turns the warning off).
    pub expiry_warning_days: u32,
    /// Tell staff this many days before an executed agreement renews or terminates
    /// (0 turns term notices off).
    pub term_notice_days: u32,
    /// How often the server looks for due reminders and notices (seconds).
    pub tick_secs: u64,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        ReminderSettings {
            first_after_days: 3,
            every_days: 4,
            expiry_warning_days: 2,
            term_notice_days: 30,
            tick_secs: 300,
        }
    }
}

fn parse_num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse().map_err(|e| env_error(key, e))
}

/// Applies the mail variables: `COUNTERSIGN_SMTP_HOST`, `_PORT`, `_TLS`, `_USERNAME`,
/// `_PASSWORD`, `_FROM`, `_REPLY_TO`, `_TIMEOUT_SECS`; `COUNTERSIGN_STAFF_NOTICE_TO`;
/// `COUNTERSIGN_DELIVERY_MAX_ATTEMPTS`, `_BACKOFF_INITIAL_SECS`, `_BACKOFF_MAX_SECS`;
/// `COUNTERSIGN_REMINDER_FIRST_AFTER_DAYS`, `_EVERY_DAYS`, `COUNTERSIGN_EXPIRY_WARNING_DAYS`,
/// `COUNTERSIGN_TERM_NOTICE_DAYS`. Setting `COUNTERSIGN_SMTP_HOST` turns SMTP on; the other
/// SMTP variables need it (or an `[smtp]` section). Error messages never contain a value.
pub fn apply_env(c: &mut Config, get: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    if let Some(host) = get("COUNTERSIGN_SMTP_HOST") {
        match &mut c.smtp {
            Some(s) => s.host = host,
            None => {
                c.smtp = Some(SmtpSettings {
                    host,
                    port: None,
                    tls: TlsMode::default(),
                    username: None,
                    password: None,
                    from: None,
                    reply_to: None,
                    timeout_secs: default_smtp_timeout(),
                    ca_file: None,
                })
            }
        }
    }
    let smtp_keys = [
        "COUNTERSIGN_SMTP_PORT",
        "COUNTERSIGN_SMTP_TLS",
        "COUNTERSIGN_SMTP_USERNAME",
        "COUNTERSIGN_SMTP_PASSWORD",
        "COUNTERSIGN_SMTP_FROM",
        "COUNTERSIGN_SMTP_REPLY_TO",
        "COUNTERSIGN_SMTP_TIMEOUT_SECS",
    ];
    match &mut c.smtp {
        Some(s) => {
            if let Some(v) = get("COUNTERSIGN_SMTP_PORT") {
                s.port = Some(parse_num("COUNTERSIGN_SMTP_PORT", &v)?);
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_TLS") {
                s.tls = TlsMode::parse(&v).map_err(|e| env_error("COUNTERSIGN_SMTP_TLS", e))?;
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_USERNAME") {
                s.username = Some(v);
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_PASSWORD") {
                s.password = Some(SecretString::new(v));
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_FROM") {
                s.from = Some(v);
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_REPLY_TO") {
                s.reply_to = Some(v);
            }
            if let Some(v) = get("COUNTERSIGN_SMTP_TIMEOUT_SECS") {
                s.timeout_secs = parse_num("COUNTERSIGN_SMTP_TIMEOUT_SECS", &v)?;
            }
        }
        None => {
            if let Some(k) = smtp_keys.iter().find(|k| get(k).is_some()) {
                return Err(ConfigError::NoSmtpHost(k));
            }
        }
    }
    if let Some(v) = get("COUNTERSIGN_STAFF_NOTICE_TO") {
        c.staff_notice_to = Some(v).filter(|v| !v.trim().is_empty());
    }
    let d = &mut c.delivery;
    if let Some(v) = get("COUNTERSIGN_DELIVERY_MAX_ATTEMPTS") {
        d.max_attempts = parse_num("COUNTERSIGN_DELIVERY_MAX_ATTEMPTS", &v)?;
    }
    if let Some(v) = get("COUNTERSIGN_DELIVERY_BACKOFF_INITIAL_SECS") {
        d.backoff_initial_secs = parse_num("COUNTERSIGN_DELIVERY_BACKOFF_INITIAL_SECS", &v)?;
    }
    if let Some(v) = get("COUNTERSIGN_DELIVERY_BACKOFF_MAX_SECS") {
        d.backoff_max_secs = parse_num("COUNTERSIGN_DELIVERY_BACKOFF_MAX_SECS", &v)?;
    }
    let r = &mut c.reminders;
    if let Some(v) = get("COUNTERSIGN_REMINDER_FIRST_AFTER_DAYS") {
        r.first_after_days = parse_num("COUNTERSIGN_REMINDER_FIRST_AFTER_DAYS", &v)?;
    }
    if let Some(v) = get("COUNTERSIGN_REMINDER_EVERY_DAYS") {
        r.every_days = parse_num("COUNTERSIGN_REMINDER_EVERY_DAYS", &v)?;
    }
    if let Some(v) = get("COUNTERSIGN_EXPIRY_WARNING_DAYS") {
        r.expiry_warning_days = parse_num("COUNTERSIGN_EXPIRY_WARNING_DAYS", &v)?;
    }
    if let Some(v) = get("COUNTERSIGN_TERM_NOTICE_DAYS") {
        r.term_notice_days = parse_num("COUNTERSIGN_TERM_NOTICE_DAYS", &v)?;
    }
    Ok(())
}

/// The From header: `[smtp] from`, else `mail_from`.
pub fn from_header(c: &Config) -> &str {
    c.smtp.as_ref().and_then(|s| s.from.as_deref()).unwrap_or(&c.mail_from)
}

/// Checks the mail settings at start-up, so a typo stops the server instead of failing every
/// message later.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    let mailbox = |what: &'static str, v: &str| -> Result<(), ConfigError> {
        v.parse::<lettre::message::Mailbox>().map(|_| ()).map_err(|e| ConfigError::NotAnAddress {
            what,
            value: v.to_string(),
            reason: e.to_string(),
        })
    };
    mailbox(
        if c.smtp.as_ref().and_then(|s| s.from.as_ref()).is_some() { "[smtp] from" } else { "mail_from" },
        from_header(c),
    )?;
    if let Some(to) = &c.staff_notice_to {
        for part in to.split(',') {
            mailbox("staff_notice_to", part.trim())?;
        }
    }
    if let Some(s) = &c.smtp {
        if s.host.trim().is_empty() {
            return Err(ConfigError::Setting("[smtp] host is empty"));
        }
        if let Some(r) = &s.reply_to {
            mailbox("[smtp] reply_to", r)?;
        }
        if let Some(p) = &s.ca_file {
            std::fs::metadata(p).map_err(|source| ConfigError::CaFile { path: p.clone(), source })?;
        }
        if s.username.is_some() != s.password.is_some() {
            return Err(ConfigError::Setting("[smtp] username and password go together: give both or neither"));
        }
    }
    let d = &c.delivery;
    if d.max_attempts == 0 {
        return Err(ConfigError::Setting("[delivery] max_attempts must be at least 1"));
    }
    if !(0.0..=1.0).contains(&d.jitter) {
        return Err(ConfigError::Setting("[delivery] jitter must be between 0.0 and 1.0"));
    }
    if d.backoff_max_secs < d.backoff_initial_secs {
        return Err(ConfigError::Setting("[delivery] backoff_max_secs must not be below backoff_initial_secs"));
    }
    if c.reminders.tick_secs == 0 {
        return Err(ConfigError::Setting("[reminders] tick_secs must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn smtp_comes_from_the_file_and_the_environment() {
        let mut c: Config = toml::from_str(
            "[smtp]\nhost = \"mail.example.com\"\ntls = \"tls\"\nusername = \"cs\"\npassword = \"hunter2\"\n",
        )
        .expect("parses");
        let s = c.smtp.as_ref().expect("smtp");
        assert_eq!((s.tls, s.port()), (TlsMode::Tls, 465));
        c.apply_env(env(&[("COUNTERSIGN_SMTP_PORT", "2465"), ("COUNTERSIGN_SMTP_PASSWORD", "s3cret")])).expect("env");
        let s = c.smtp.as_ref().expect("smtp");
        assert_eq!(s.port(), 2465);
        assert_eq!(s.password.as_ref().map(|p| p.expose()), Some("s3cret"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("hunter2"), "{shown}");
        validate(&c).expect("valid");
    }

    #[test]
    fn the_environment_alone_turns_smtp_on() {
        let mut c = Config::default();
        assert!(c.smtp.is_none());
        c.apply_env(env(&[("COUNTERSIGN_SMTP_HOST", "127.0.0.1"), ("COUNTERSIGN_SMTP_TLS", "none")])).expect("env");
        let s = c.smtp.as_ref().expect("smtp on");
        assert_eq!((s.host.as_str(), s.tls, s.port()), ("127.0.0.1", TlsMode::None, 25));
        let mut c = Config::default();
        let e = c.apply_env(env(&[("COUNTERSIGN_SMTP_PASSWORD", "x")])).expect_err("no host");
        assert!(matches!(e, ConfigError::NoSmtpHost("COUNTERSIGN_SMTP_PASSWORD")), "{e}");
        assert!(e.to_string().contains("COUNTERSIGN_SMTP_HOST"), "{e}");
        let e = Config::default().apply_env(env(&[("COUNTERSIGN_SMTP_HOST", "h"), ("COUNTERSIGN_SMTP_TLS", "ssl")]));
        assert!(e.is_err());
    }

    #[test]
    fn defaults_and_bad_values() {
        let c = Config::default();
        assert_eq!(c.reminders.first_after_days, 3);
        assert_eq!(c.reminders.every_days, 4);
        assert_eq!(c.reminders.expiry_warning_days, 2);
        assert_eq!(c.reminders.term_notice_days, 30);
        assert_eq!(c.delivery.max_attempts, 10);
        validate(&c).expect("defaults are valid");
        let mut bad = Config { staff_notice_to: Some("not an address".into()), ..Config::default() };
        assert!(validate(&bad).is_err());
        bad.staff_notice_to = Some("legal@example.com, ops@example.com".into());
        validate(&bad).expect("a list of addresses");
        assert!(toml::from_str::<Config>("[smtp]\nhost = \"h\"\nprot = 1\n").is_err(), "unknown keys are rejected");
    }
}
