//! SMTP delivery with lettre over tokio: plain, STARTTLS (required, never opportunistic) or
//! implicit TLS, through rustls with the *ring* crypto provider and the webpki (Mozilla) root
//! store, chosen explicitly; optionally a private CA (`ca_file`). Optional authentication; the
//! password lives in a `SecretString` and is handed to lettre only when the transport is built.
//!
//! Each attempt ends in one [`Outcome`]: accepted (with the server's reply), a transient failure
//! (4xx, connection refused, timeout, TLS trouble: retry later) or a permanent one (5xx, or a
//! message the client cannot send as is: retrying will not help).

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::settings::{SmtpSettings, TlsMode};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: the server's reply (`250 2.0.0 Ok: queued as …`).
    Sent(String),
    /// Try again later.
    Transient(String),
    /// Do not try again.
    Permanent(String),
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Address,
    timeout: Duration,
}

impl Smtp {
    /// Builds the transport (inside a tokio runtime: lettre's pool starts a task). `from` is
    /// the envelope sender.
    pub fn new(s: &SmtpSettings, from: Address) -> Result<Smtp, super::MailError> {
        let timeout = Duration::from_secs(s.timeout_secs.max(1));
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.as_str())
            .port(s.port())
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().min_idle(0).max_size(4).idle_timeout(Duration::from_secs(60)));
        if s.tls != TlsMode::None {
            let mut tls = TlsParameters::builder(s.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
            if let Some(path) = &s.ca_file {
                let ca_file = |reason: String| super::MailError::CaFile { path: path.clone(), reason };
                let pem = std::fs::read(path).map_err(|e| ca_file(e.to_string()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| ca_file(e.to_string()))?;
                tls = tls.add_root_certificate(cert);
            }
            let params = tls.build_rustls().map_err(|e| super::MailError::Tls(e.to_string()))?;
            b = b.tls(if s.tls == TlsMode::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
        } else {
            b = b.tls(Tls::None);
        }
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            b = b.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(Smtp { transport: b.build(), from, timeout })
    }

    /// One delivery attempt of the formatted message to `to`.
    pub async fn send(&self, to: Vec<Address>, bytes: &[u8]) -> Outcome {
        let envelope = match Envelope::new(Some(self.from.clone()), to) {
            Ok(e) => e,
            Err(e) => return Outcome::Permanent(format!("invalid envelope: {e}")),
        };
        // lettre applies the timeout per command; this bounds the whole exchange.
        let attempt = tokio::time::timeout(self.timeout * 4, self.transport.send_raw(&envelope, bytes)).await;
        match attempt {
            Err(_) => Outcome::Transient(format!("timed out after {} s", (self.timeout * 4).as_secs())),
            Ok(Ok(reply)) => {
                let text: Vec<&str> = reply.message().collect();
                Outcome::Sent(format!("{} {}", reply.code(), text.join(" ")).trim().to_string())
            }
            Ok(Err(e)) if e.is_permanent() || e.is_client() => Outcome::Permanent(describe(&e)),
            Ok(Err(e)) => Outcome::Transient(describe(&e)),
        }
    }

    pub async fn shutdown(&self) {
        self.transport.shutdown().await;
    }
}

/// The error with its causes, on one line (lettre's Display stops at the first source).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e).and_then(std::error::Error::source);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: TlsMode) -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example.com".into(),
            port: None,
            tls,
            username: Some("u".into()),
            password: Some(crate::secret::SecretString::new("p".into())),
            from: None,
            reply_to: None,
            timeout_secs: 5,
            ca_file: None,
        }
    }

    #[test]
    fn rustls_transports_build_for_every_tls_mode_and_a_bad_ca_file_is_named() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let from: Address = "countersign@example.com".parse().expect("address");
            for mode in [TlsMode::None, TlsMode::Starttls, TlsMode::Tls] {
                let s = Smtp::new(&settings(mode), from.clone()).expect("transport builds (ring + webpki roots)");
                s.shutdown().await;
            }
            let mut bad = settings(TlsMode::Tls);
            bad.ca_file = Some("/nonexistent/ca.pem".into());
            let err = Smtp::new(&bad, from).err().expect("a missing CA file is an error");
            assert!(matches!(err, super::super::MailError::CaFile { .. }), "{err}");
            assert!(err.to_string().contains("ca_file"), "{err}");
        });
    }
}
