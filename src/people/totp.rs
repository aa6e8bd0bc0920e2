//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP with HMAC-SHA1, 30-second
//! steps, 6 digits: what every authenticator app expects), the `otpauth://` enrolment URI, its
//! QR code as inline SVG, and recovery codes. Pure functions: the seed's storage (sealed by the
//! vault) and the replay rule's state live in [`super::Directory`].

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step (RFC 6238's default, and what authenticator apps assume).
pub const STEP: u64 = 30;
pub const DIGITS: u32 = 6;
/// Seed length in bytes (160 bits, RFC 4226's recommendation).
pub const SEED_LEN: usize = 20;
/// Recovery codes given at enrolment.
pub const RECOVERY_CODES: usize = 10;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (the form authenticator apps accept).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// HOTP (RFC 4226 §5.3): dynamic truncation of HMAC-SHA1(seed, counter).
pub fn hotp(seed: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes keys of any length, so this cannot fail; 0 would never match a real code.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(seed) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[off]) & 0x7f) << 24
        | u32::from(h[off + 1]) << 16
        | u32::from(h[off + 2]) << 8
        | u32::from(h[off + 3]);
    bin % 10u32.pow(digits)
}

/// The 6-digit code for a Unix time.
pub fn code_at(seed: &[u8], unix: u64) -> String {
    format!("{:06}", hotp(seed, unix / STEP, DIGITS))
}

/// The step a presented code matches, within one step either side of `unix` (clock drift)
/// and strictly after `last_step` (a code is accepted once: no replay within its window).
/// Compares in constant time.
pub fn verify(seed: &[u8], presented: &str, unix: u64, last_step: u64) -> Option<u64> {
    let code: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix / STEP;
    let mut found = None;
    for step in now.saturating_sub(1)..=now + 1 {
        let want = format!("{:06}", hotp(seed, step, DIGITS));
        let same = subtle::ConstantTimeEq::ct_eq(want.as_bytes(), code.as_bytes());
        if bool::from(same) && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A fresh random seed.
pub fn new_seed() -> Result<[u8; SEED_LEN], getrandom::Error> {
    let mut s = [0u8; SEED_LEN];
    getrandom::fill(&mut s)?;
    Ok(s)
}

/// The `otpauth://` URI authenticator apps read from the QR code (Key URI Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The QR code of `text` as an SVG element (one path, dark modules on a white quiet zone),
/// labelled for assistive technology.
pub fn qr_svg(text: &str, label: &str) -> Option<String> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let n = qr.size();
    let border = 4;
    let dim = n + 2 * border;
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let label = label.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"qr\" viewBox=\"0 0 {dim} {dim}\" role=\"img\" aria-label=\"{label}\" shape-rendering=\"crispEdges\"><rect width=\"{dim}\" height=\"{dim}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Ten recovery codes (80 random bits each, shown as `xxxx-xxxx-xxxx-xxxx`) and their stored
/// SHA-256 hashes. High-entropy, so a fast hash is enough (as for session ids).
pub fn recovery_codes() -> Result<Vec<(String, String)>, getrandom::Error> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut raw = [0u8; 10];
            getrandom::fill(&mut raw)?;
            let s = base32(&raw).to_lowercase();
            let code = format!("{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16]);
            Ok((code.clone(), recovery_hash(&code)))
        })
        .collect()
}

/// The stored form of a recovery code: case, spaces and dashes do not matter when typed.
pub fn recovery_hash(code: &str) -> String {
    let norm: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    super::token_hash(&norm)
}

/// True when `presented` looks like a recovery code rather than a 6-digit TOTP code.
pub fn looks_like_recovery(presented: &str) -> bool {
    presented.chars().filter(char::is_ascii_alphanumeric).count() == 16
}

/// Seeds travel to the vault as base64 text of the raw bytes.
pub fn encode_sealed(sealed: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

pub fn decode_sealed(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits, the 20-byte ASCII seed).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(seed, t / STEP, 8), want, "T = {t}");
        }
    }

    #[test]
    fn hotp_matches_the_rfc_4226_test_vectors() {
        let seed = b"12345678901234567890";
        let want = [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(seed, c as u64, 6), *w);
        }
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn a_code_is_accepted_within_one_step_of_drift_and_only_once() {
        let seed = b"12345678901234567890";
        let t = 1_700_000_000;
        let code = code_at(seed, t);
        let step = verify(seed, &code, t, 0).expect("accepted");
        assert_eq!(step, t / STEP);
        assert_eq!(verify(seed, &code, t + STEP, 0), Some(step), "a step late is fine");
        assert_eq!(verify(seed, &code, t + 3 * STEP, 0), None, "three steps late is not");
        assert_eq!(verify(seed, &code, t, step), None, "the same step again is a replay");
        assert_eq!(verify(seed, "12345", t, 0), None);
        assert_eq!(verify(seed, "abcdef", t, 0), None);
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_match_however_typed() {
        let codes = recovery_codes().expect("random");
        assert_eq!(codes.len(), 10);
        let mut seen: Vec<&str> = codes.iter().map(|(c, _)| c.as_str()).collect();
        seen.dedup();
        assert_eq!(seen.len(), 10);
        let (code, hash) = &codes[0];
        assert!(looks_like_recovery(code));
        assert_eq!(&recovery_hash(&code.to_uppercase().replace('-', " ")), hash);
    }

    #[test]
    fn the_qr_code_is_an_svg_with_a_label() {
        let svg = qr_svg(&otpauth_uri("Countersign", "a@example.com", "ABC"), "QR code").expect("encodes");
        assert!(svg.starts_with("<svg") && svg.contains("aria-label=\"QR code\"") && svg.contains("<path d=\"M"));
        assert!(otpauth_uri("Countersign", "a@example.com", "ABC").contains("Countersign:a%40example.com?secret=ABC"));
    }
}
