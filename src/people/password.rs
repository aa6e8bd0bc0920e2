//! Passwords: the policy and argon2id hashing.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use super::PeopleError;
use crate::store::StoreError;

/// Longest password accepted (bounds the hashing work a request can ask for).
pub const MAX_LEN: usize = 1024;
pub const MIN_LEN: usize = 12;

/// Passwords long enough for the length rule that people still pick.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "password1234",
    "password123!",
    "passwordpassword",
    "qwertyuiop12",
    "qwertyuiopasdf",
    "iloveyou1234",
    "administrator",
    "letmein12345",
    "welcome12345",
    "changeme1234",
    "000000000000",
    "111111111111",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
    "abc123abc123",
    "correcthorsebatterystaple",
    "trustno1trustno1",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "qazwsxedcrfv",
    "1q2w3e4r5t6y",
    "zaq12wsxcde3",
    "passw0rd1234",
    "countersign1",
    "countersign123",
    "hipaahipaa12",
];

/// Why a new password is refused; the message is shown beside the password field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("use at least {} characters", MIN_LEN)]
    TooShort,
    #[error("use at most {} characters", MAX_LEN)]
    TooLong,
    #[error("this password is too common; choose another")]
    TooCommon,
    #[error("do not use your email address as your password")]
    IsTheEmail,
}

/// Checks the policy.
pub fn acceptable(password: &str, email: &str) -> Result<(), Refusal> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(Refusal::TooShort);
    }
    if password.len() > MAX_LEN {
        return Err(Refusal::TooLong);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) || lower.chars().all(|c| lower.starts_with(c)) {
        return Err(Refusal::TooCommon);
    }
    if !email.is_empty() && lower == email.to_lowercase() {
        return Err(Refusal::IsTheEmail);
    }
    Ok(())
}

/// An argon2id PHC string with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PeopleError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PeopleError::Store(StoreError::Io(e.to_string())))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PeopleError::Store(StoreError::Io(e.to_string())))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PeopleError::Store(StoreError::Io(e.to_string())))
}

/// A hash of a password nobody knows: verifying against it costs what a real check costs, so a
/// missing account answers as slowly as a wrong password.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9P0ujYzBzLpb7VcD3aRkQnY1Z8b8bJq9C0xQm7b0o2A";

/// True when `password` matches `stored` (constant-time inside argon2); false for None.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let password = if password.len() > MAX_LEN { "" } else { password };
    let target = stored.unwrap_or(DUMMY);
    let ok = PasswordHash::new(target)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false);
    ok && stored.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_repeated_passwords_are_refused_with_a_reason() {
        assert!(acceptable("short", "").unwrap_err().to_string().contains("12"));
        assert!(acceptable("Password1234", "").unwrap_err().to_string().contains("common"));
        assert!(acceptable("zzzzzzzzzzzzzz", "").unwrap_err().to_string().contains("common"));
        assert_eq!(acceptable("ann@example.com", "ann@example.com"), Err(Refusal::IsTheEmail));
        assert_eq!(acceptable("a quiet harbour at dusk", "ann@example.com"), Ok(()));
    }

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let h = hash("a quiet harbour at dusk").expect("hashed");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("a quiet harbour at dusk", Some(&h)));
        assert!(!verify("a quiet harbour at dawn", Some(&h)));
        assert!(!verify("a quiet harbour at dusk", None));
    }

    #[test]
    fn the_dummy_hash_parses_so_a_missing_account_costs_a_real_check() {
        assert!(PasswordHash::new(DUMMY).is_ok());
    }
}
