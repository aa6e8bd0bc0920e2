//! Secrets that never print.
//!
//! [`Secret`] holds key bytes (link-signing keys), [`SecretString`] holds text secrets from
//! configuration (passwords, API keys). Both:
//!
//! * format as `[redacted]` with `{:?}` and `{}`, so a secret inside a logged struct or error
//!   stays out of the log;
//! * implement no `Serialize`, so a secret cannot end up in a JSON response or a written config;
//!   [`SecretString`] implements `Deserialize`, so configuration files can hold secrets;
//! * give their contents out only through `expose()`, which is easy to grep for;
//! * compare in constant time with `ct_eq` (there is no `PartialEq`, so `==` cannot be used by
//!   mistake);
//! * overwrite their buffer (including spare capacity) with zeros when dropped.
//!
//! Zeroing on drop covers this value's own buffer only: copies made before the value was
//! constructed (a reallocated `Vec`, a deserializer's scratch buffer) or by the code that uses
//! `expose()` are not covered.

pub mod sealed_file;
pub mod vault;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use subtle::ConstantTimeEq;

const REDACTED: &str = "[redacted]";

/// Secret bytes: key material.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes`; they are zeroed when the secret is dropped.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// `n` bytes from the operating system's random number generator.
    pub fn random(n: usize) -> Result<Secret, getrandom::Error> {
        let mut secret = Secret(vec![0; n]);
        getrandom::fill(&mut secret.0)?;
        Ok(secret)
    }

    /// The secret bytes. Do not log them, and do not keep copies longer than needed.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality with `other` (the time taken depends on the lengths only).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// A secret text: a password or API key from configuration.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    /// Takes ownership of `text`; it is zeroed when the secret is dropped.
    pub fn new(text: String) -> SecretString {
        SecretString(text)
    }

    /// The secret text. Do not log it, and do not keep copies longer than needed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality with `other` (the time taken depends on the lengths only).
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl From<String> for SecretString {
    fn from(text: String) -> SecretString {
        SecretString(text)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // `into_bytes` hands over the same allocation; zero bytes are valid UTF-8 anyway.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        wipe(&mut bytes);
    }
}

/// Deserializes from a string. A value of another type is rejected with an error that does not
/// contain the value (serde's usual "invalid type: integer `1234`" would print it).
impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
        // `deserialize_any`, not `deserialize_string`: with the latter, serde_json builds the
        // type-mismatch error itself, value included, without asking the visitor.
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn wrong_type<E: de::Error>(&self) -> Result<SecretString, E> {
        Err(E::custom("invalid type: expected a string for a secret value (value not shown)"))
    }
}

impl Visitor<'_> for SecretVisitor {
    type Value = SecretString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretString, E> {
        Ok(SecretString(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<SecretString, E> {
        Ok(SecretString(v))
    }

    // The defaults of the following put the value into the error message.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretString, E> {
        self.wrong_type()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<SecretString, E> {
        self.wrong_type()
    }
}

/// Overwrites `bytes` and its spare capacity with zeros in a way the optimizer does not remove
/// (`zeroize`: volatile writes and a compiler fence; it also sets the length to 0).
fn wipe(bytes: &mut Vec<u8>) {
    zeroize::Zeroize::zeroize(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new(vec![0xAB; 32]);
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "[redacted]");
        let t = SecretString::new("hunter2-password".to_owned());
        assert_eq!(format!("{t:?}"), "[redacted]");
        assert_eq!(format!("{t}"), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            password: SecretString,
            key: Secret,
        }
        let shown = format!("{:?}", Config { password: t, key: s });
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn expose_and_ct_eq() {
        let s = Secret::new(b"0123456789".to_vec());
        assert_eq!(s.expose(), b"0123456789");
        assert_eq!(s.len(), 10);
        assert!(s.ct_eq(b"0123456789"));
        assert!(!s.ct_eq(b"0123456788"));
        assert!(!s.ct_eq(b"012345678"));
        assert!(!s.ct_eq(b""));
        let t = SecretString::from("api-key".to_owned());
        assert_eq!(t.expose(), "api-key");
        assert!(t.ct_eq("api-key"));
        assert!(!t.ct_eq("api-kez"));
        assert!(!t.ct_eq("api-key "));
    }

    #[test]
    fn random_has_requested_length_and_differs() {
        let a = Secret::random(32).unwrap();
        let b = Secret::random(32).unwrap();
        assert_eq!(a.len(), 32);
        assert!(!a.ct_eq(b.expose()));
        assert!(Secret::random(0).unwrap().is_empty());
    }

    #[test]
    fn wipe_zeroes_contents_and_spare_capacity() {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0x5A; 48]);
        v.truncate(16);
        wipe(&mut v);
        assert!(v.is_empty(), "the length is reset");
        // The bytes past `len` were zeroed too.
        // SAFETY: `wipe` initialized the whole capacity.
        #[allow(unsafe_code)]
        let whole = unsafe { std::slice::from_raw_parts(v.as_ptr(), v.capacity()) };
        assert!(whole.iter().all(|&b| b == 0));
    }

    #[test]
    fn secret_string_deserializes_from_config() {
        #[derive(serde::Deserialize)]
        struct Config {
            smtp_password: SecretString,
        }
        let c: Config = serde_json::from_str(r#"{"smtp_password": "p\u00e4ss"}"#).unwrap();
        assert_eq!(c.smtp_password.expose(), "päss");
        let c: Config = toml::from_str("smtp_password = \"s3cret\"\n").unwrap();
        assert_eq!(c.smtp_password.expose(), "s3cret");
    }

    #[test]
    fn wrong_type_error_does_not_show_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            pin: SecretString,
        }
        for json in [r#"{"pin": 98765432}"#, r#"{"pin": -98765432}"#, r#"{"pin": 98765432.5}"#, r#"{"pin": true}"#] {
            let err = serde_json::from_str::<Config>(json).unwrap_err().to_string();
            assert!(err.contains("value not shown"), "{err}");
            assert!(!err.contains("98765432") && !err.contains("true"), "{err}");
        }
    }
}
