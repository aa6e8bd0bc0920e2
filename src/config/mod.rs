//! Server configuration, layered: built-in defaults → TOML file (`--config`) → `COUNTERSIGN_*`
//! environment variables → command-line flags. `countersign.example.toml` documents every key.
//!
//! Secrets (link keys) are [`SecretString`]s: they deserialize but never print or serialize.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::SecretString;

pub mod http;
pub mod mail;
pub mod web;

/// A link-signing key given in the config file instead of the generated key file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkKey {
    pub id: String,
    /// At least 32 bytes, base64url.
    pub secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where sled, keys and the `.eml` outbox live (with `database_url`: the key files and the
    /// `.eml` outbox only).
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://user:password@host:port/dbname`) shared by several
    /// instances instead of the embedded sled store (`COUNTERSIGN_DATABASE_URL`,
    /// `--database-url`). None: sled in `data_dir`.
    pub database_url: Option<SecretString>,
    pub bind: SocketAddr,
    /// Absolute base for links in emails; default `http://<bind>`.
    pub public_base_url: Option<String>,
    /// Signing links expire after this many days.
    pub link_expiry_days: u32,
    /// Download links sent on completion expire after this many days.
    pub download_expiry_days: u32,
    /// The From header of outgoing mail.
    pub mail_from: String,
    /// Write each outgoing message as an RFC 5322 `.eml` file under `<data>/outbox/`.
    pub eml_outbox: bool,
    /// The version label of the electronic-signature consent text signers accept.
    pub consent_version: String,
    /// Link keys: the last signs, all verify. Empty: `<data>/link-keys` (generated on first start).
    pub link_keys: Vec<LinkKey>,
    /// The negotiation policy legal maintains; default: the shipped `policy/default.toml`.
    pub policy_file: Option<PathBuf>,
    /// A PKCS#12 file with the sealing certificate and key (P-256); default: a private CA and
    /// sealing certificate generated into `<data>/seal` on first start.
    pub seal_pkcs12: Option<PathBuf>,
    pub seal_pkcs12_password: Option<SecretString>,
    /// An RFC 3161 timestamp authority (`http://HOST[:PORT][/PATH]`): seals get a signature
    /// timestamp (PAdES B-T). None: the signing time is the server's (B-B).
    pub timestamp_url: Option<String>,
    /// `[smtp]`: deliver by SMTP. Absent: the `.eml` outbox is the transport.
    pub smtp: Option<crate::config::mail::SmtpSettings>,
    /// `[delivery]`: retries and backoff of the sender.
    pub delivery: crate::config::mail::DeliverySettings,
    /// `[reminders]`: signer reminders, expiry warnings, term notices.
    pub reminders: crate::config::mail::ReminderSettings,
    /// Where staff notices go (declines, failed messages, expiries, term dates); comma-separated.
    /// None: notices are kept in the outbox (and `.eml` copies) only.
    pub staff_notice_to: Option<String>,
    /// `[web]`: the staff web app's sessions.
    pub web: web::WebSettings,
    /// `[http]`: header and request timeouts, the connection cap, trusted proxies.
    pub http: crate::config::http::HttpLimits,
    /// `text` (default) or `json`: one JSON object a line, with the request id of each
    /// request's lines (`--log-format`, `COUNTERSIGN_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// `/metrics` needs `Authorization: Bearer <metrics_token>` (from any address) when set
    /// (`COUNTERSIGN_METRICS_TOKEN`).
    pub metrics_token: Option<SecretString>,
    /// Serve `/metrics` on this separate address instead of the main one
    /// (`COUNTERSIGN_METRICS_BIND`). Neither set: `/metrics` answers loopback callers only.
    pub metrics_bind: Option<SocketAddr>,
    /// The key that encrypts secrets at rest (two-factor seeds, webhook secrets); default
    /// `<data>/vault.key`, made on first start. Keep a copy apart from backups
    /// (`COUNTERSIGN_VAULT_KEY_FILE`).
    pub vault_key_file: Option<PathBuf>,
    /// Every signer gives a one-time code sent to their email address before signing (the
    /// policy-wide switch; an intake turns it on per signer with `verify_email_code`).
    /// `COUNTERSIGN_SIGNER_EMAIL_CODE`.
    pub signer_email_code: bool,
    /// `[vendors]`: reassessment interval by risk tier, in months (`high_months = 12`,
    /// `medium_months = 24`, `low_months = 36`).
    pub vendors: crate::domain::vendor::ReassessPolicy,
}

/// How the server writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<LogFormat, ConfigError> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::LogFormat(s.to_string())),
        }
    }
}

/// Why the configuration cannot be used. Messages name the file, line, variable or setting;
/// they never show the value of a variable (it may be a secret) except where it names a choice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML for [`Config`] (toml's own text quotes the line, which may
    /// hold a secret: only its message and the line number are kept).
    #[error("config {} line {line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    /// A `COUNTERSIGN_*` variable whose value does not parse.
    #[error("{var}: {reason}")]
    Env { var: &'static str, reason: String },
    /// An SMTP variable without a host to apply it to.
    #[error("{0} is set but no SMTP host is: set COUNTERSIGN_SMTP_HOST or [smtp] host")]
    NoSmtpHost(&'static str),
    #[error("log format {0:?}: expected text or json")]
    LogFormat(String),
    #[error("tls must be none, starttls or tls, not {0:?}")]
    TlsMode(String),
    #[error("timestamp_url {0:?}: only plain http:// timestamp authorities are supported")]
    TimestampScheme(String),
    /// A mail setting that does not parse as a mailbox (`what` names the setting).
    #[error("{what}: {value:?} is not an address: {reason}")]
    NotAnAddress { what: &'static str, value: String, reason: String },
    #[error("[smtp] ca_file {}: {source}", path.display())]
    CaFile { path: PathBuf, source: std::io::Error },
    /// A setting out of its range, or settings that contradict each other; the text says which.
    #[error("{0}")]
    Setting(&'static str),
}

/// The CLI prints configuration errors as they are.
impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("countersign-data"),
            database_url: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_base_url: None,
            link_expiry_days: 14,
            download_expiry_days: 90,
            mail_from: "Countersign <countersign@localhost>".into(),
            eml_outbox: true,
            consent_version: crate::signing::CONSENT_VERSION.into(),
            link_keys: Vec::new(),
            policy_file: None,
            seal_pkcs12: None,
            seal_pkcs12_password: None,
            timestamp_url: None,
            smtp: None,
            delivery: Default::default(),
            reminders: Default::default(),
            staff_notice_to: None,
            web: Default::default(),
            http: Default::default(),
            log_format: LogFormat::Text,
            metrics_token: None,
            metrics_bind: None,
            vault_key_file: None,
            signer_email_code: false,
            vendors: Default::default(),
        }
    }
}

/// A `COUNTERSIGN_*` variable's parse error.
pub(crate) fn env_error(var: &'static str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Env { var, reason: e.to_string() }
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    pub bind: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Where the vault key lives: `vault_key_file`, or `<data>/vault.key`.
    pub fn vault_key_path(&self) -> PathBuf {
        self.vault_key_file.clone().unwrap_or_else(|| crate::secret::vault::default_path(&self.data_dir))
    }

    /// Loads defaults → file → environment → overrides.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let mut c = match &o.config {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        c.apply_env(|k| std::env::var(k).ok())?;
        if let Some(d) = &o.data {
            c.data_dir = d.clone();
        }
        if let Some(u) = &o.database_url {
            c.database_url = Some(SecretString::new(u.clone()));
        }
        if let Some(b) = o.bind {
            c.bind = b;
        }
        if let Some(f) = o.log_format {
            c.log_format = f;
        }
        Ok(c)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        // toml's Display quotes the offending source line, which may hold a secret: report the
        // message and the line number only.
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(0);
            ConfigError::Syntax { path: path.to_path_buf(), line, message: e.message().to_string() }
        })
    }

    /// Applies `COUNTERSIGN_*` variables through `get` (injected so tests need not touch the
    /// process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("COUNTERSIGN_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("COUNTERSIGN_DATABASE_URL") {
            self.database_url = Some(SecretString::new(v)).filter(|u| !u.expose().trim().is_empty());
        }
        if let Some(v) = get("COUNTERSIGN_BIND") {
            self.bind = v.parse().map_err(|e| env_error("COUNTERSIGN_BIND", e))?;
        }
        if let Some(v) = get("COUNTERSIGN_VAULT_KEY_FILE") {
            self.vault_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("COUNTERSIGN_PUBLIC_BASE_URL") {
            self.public_base_url = Some(v);
        }
        if let Some(v) = get("COUNTERSIGN_LINK_EXPIRY_DAYS") {
            self.link_expiry_days = v.parse().map_err(|e| env_error("COUNTERSIGN_LINK_EXPIRY_DAYS", e))?;
        }
        if let Some(v) = get("COUNTERSIGN_DOWNLOAD_EXPIRY_DAYS") {
            self.download_expiry_days = v.parse().map_err(|e| env_error("COUNTERSIGN_DOWNLOAD_EXPIRY_DAYS", e))?;
        }
        if let Some(v) = get("COUNTERSIGN_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = get("COUNTERSIGN_SEAL_PKCS12") {
            self.seal_pkcs12 = Some(PathBuf::from(v));
        }
        if let Some(v) = get("COUNTERSIGN_SEAL_PKCS12_PASSWORD") {
            self.seal_pkcs12_password = Some(SecretString::new(v));
        }
        if let Some(v) = get("COUNTERSIGN_TIMESTAMP_URL") {
            self.timestamp_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(url) = &self.timestamp_url
            && !url.starts_with("http://")
        {
            return Err(ConfigError::TimestampScheme(url.clone()));
        }
        if let Some(v) = get("COUNTERSIGN_POLICY_FILE") {
            self.policy_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("COUNTERSIGN_LOG_FORMAT") {
            self.log_format = v.parse().map_err(|e| env_error("COUNTERSIGN_LOG_FORMAT", e))?;
        }
        if let Some(v) = get("COUNTERSIGN_METRICS_TOKEN") {
            self.metrics_token = Some(SecretString::new(v)).filter(|t| !t.expose().is_empty());
        }
        if let Some(v) = get("COUNTERSIGN_METRICS_BIND") {
            self.metrics_bind = Some(v.parse().map_err(|e| env_error("COUNTERSIGN_METRICS_BIND", e))?);
        }
        if let Some(v) = get("COUNTERSIGN_SIGNER_EMAIL_CODE") {
            self.signer_email_code = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = get("COUNTERSIGN_EML_OUTBOX") {
            self.eml_outbox = matches!(v.as_str(), "1" | "true" | "yes");
        }
        crate::config::mail::apply_env(self, &get)?;
        Ok(())
    }

    /// The base URL for links, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_defaults_file_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9000\"\nlink_expiry_days = 7\n").expect("write");
        let mut c = Config::from_file(&path).expect("loads");
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.link_expiry_days, 7);
        assert_eq!(c.download_expiry_days, 90, "unset keys keep defaults");
        c.apply_env(|k| (k == "COUNTERSIGN_LINK_EXPIRY_DAYS").then(|| "3".to_string())).expect("env");
        assert_eq!(c.link_expiry_days, 3);
        assert_eq!(c.base_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn the_timestamp_url_comes_from_file_or_env_and_must_be_plain_http() {
        let mut c: Config = toml::from_str("timestamp_url = \"http://tsa.example/tsr\"\n").expect("parses");
        c.apply_env(|_| None).expect("env");
        assert_eq!(c.timestamp_url.as_deref(), Some("http://tsa.example/tsr"));
        c.apply_env(|k| (k == "COUNTERSIGN_TIMESTAMP_URL").then(|| "http://127.0.0.1:3180".to_string())).expect("env");
        assert_eq!(c.timestamp_url.as_deref(), Some("http://127.0.0.1:3180"));
        let err = Config::default()
            .apply_env(|k| (k == "COUNTERSIGN_TIMESTAMP_URL").then(|| "https://tsa.example".to_string()))
            .unwrap_err();
        assert!(matches!(err, ConfigError::TimestampScheme(_)) && err.to_string().contains("http://"), "{err}");
        let mut c = Config::default();
        c.apply_env(|k| (k == "COUNTERSIGN_TIMESTAMP_URL").then(String::new)).expect("empty unsets");
        assert_eq!(c.timestamp_url, None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
    }

    #[test]
    fn secrets_in_config_never_print() {
        let c: Config =
            toml::from_str("[[link_keys]]\nid = \"k1\"\nsecret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"\n")
                .expect("parses");
        let shown = format!("{c:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../countersign.example.toml");
        toml::from_str::<Config>(text).expect("example config is valid");
    }
}
