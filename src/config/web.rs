//! `[web]`: the staff web app's sessions.

use serde::Deserialize;

/// `[web]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// …and this many hours after sign-in, whatever happens.
    pub session_max_hours: u64,
    /// Two-factor sign-in (TOTP) for everyone: accepting an invitation leads straight to
    /// enrolment, and someone without it can reach only their account page until enrolled.
    pub require_mfa: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings { session_idle_minutes: 30, session_max_hours: 12, require_mfa: false }
    }
}
