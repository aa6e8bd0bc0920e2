//! Checking a seal: the file's last signature, from the raw bytes.
//!
//! The signature is found by its `/ByteRange` in the file's bytes rather than through the
//! document structure, so a file whose structure was damaged after sealing is still checked
//! (and found changed) instead of being reported as unsealed.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, SliceReader};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::time::Time;

use super::certs::Cert;
use super::sign::{SigningCertificateV2, find};
use super::timestamp::{digest_with, parse_tst_info, token_parts};
use super::{SealKeys, fingerprint_of, oid};

/// What [`verify`] found out about a PDF's last signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SealReport {
    /// The file carries a signature (a `/ByteRange` with a `/Contents` hole).
    pub sealed: bool,
    /// The signature is intact: the signed bytes hash to the signed message digest, the CMS
    /// signature verifies with the embedded signer certificate, and the signing-certificate-v2
    /// attribute (when present) names that certificate. Says nothing about who signed: see
    /// `signed_by_our_ca`.
    pub valid: bool,
    /// The byte range starts at 0 and ends at the end of the file: everything but the
    /// signature itself is signed.
    pub covers_whole_file: bool,
    /// Bytes follow the signed range: something was appended after sealing (another
    /// incremental update, or anything else).
    pub modified_after_seal: bool,
    /// SHA-256 of the signer certificate's DER, in [`SealKeys::fingerprint`]'s format.
    pub certificate_fingerprint: Option<String>,
    /// The signer certificate's subject (`CN=…,O=…`).
    pub certificate_subject: Option<String>,
    /// The signer certificate was issued by our CA (its signature verifies with the CA key):
    /// the current sealing certificate or an older one.
    pub signed_by_our_ca: bool,
    /// The signed signing-time attribute, Unix seconds (the sealing server's clock).
    pub signing_time: Option<u64>,
    /// The signature carries an RFC 3161 signature timestamp (PAdES B-T) whose message
    /// imprint is that of the signature value (a mismatch makes the seal not valid).
    pub timestamped: bool,
    /// The timestamp's `genTime`, Unix seconds (the timestamp authority's clock).
    pub timestamp_time: Option<u64>,
    /// The subject of the certificate that signed the timestamp token.
    pub timestamp_authority: Option<String>,
    /// The timestamp token's own signature was checked with the certificate in the token
    /// (ECDSA P-256 with SHA-256; other algorithms are not checked here). Whether that
    /// certificate is a trusted timestamp authority is not checked.
    pub timestamp_signature_checked: bool,
    /// One or two sentences for people: what was found, or what failed.
    pub detail: String,
}

/// Checks the last signature in `pdf` (the one whose byte range reaches furthest) against
/// `keys`: byte range, digest, CMS signature with the embedded certificate, chain to our CA
/// (any of our sealing certificates, current or older), and bytes after the signed range.
pub fn verify(pdf: &[u8], keys: &SealKeys) -> SealReport {
    let mut report = SealReport {
        sealed: false,
        valid: false,
        covers_whole_file: false,
        modified_after_seal: false,
        certificate_fingerprint: None,
        certificate_subject: None,
        signed_by_our_ca: false,
        signing_time: None,
        timestamped: false,
        timestamp_time: None,
        timestamp_authority: None,
        timestamp_signature_checked: false,
        detail: String::new(),
    };
    let Some(sig) = last_signature(pdf) else {
        // Signature markers without a usable byte range: a signature was there and its
        // dictionary was changed.
        if [&b"/ByteRange"[..], b"/ETSI.CAdES.detached", b"/adbe.pkcs7.detached"]
            .iter()
            .any(|m| find(pdf, m, 0).is_some())
        {
            report.sealed = true;
            report.detail = "The signature is not valid: its /ByteRange or /Contents is damaged, so the file was \
                             changed after sealing."
                .into();
        } else {
            report.detail = "No signature: the file is not sealed.".into();
        }
        return report;
    };
    report.sealed = true;
    let end = sig.range[2] + sig.range[3];
    report.covers_whole_file = sig.range[0] == 0 && end == pdf.len();
    report.modified_after_seal = end < pdf.len();

    let outcome = check(pdf, &sig, keys, &mut report);
    let mut detail = match outcome {
        Ok(signer) => {
            report.valid = true;
            let when = report.signing_time.map(format_time).unwrap_or_else(|| "an unstated time".into());
            if report.signed_by_our_ca {
                format!("Sealed by Countersign ({signer}) at {when}; the signature is valid.")
            } else {
                format!(
                    "Signed at {when} with a valid signature, but not by a Countersign sealing certificate ({signer})."
                )
            }
        }
        Err(problem) => format!("The signature is not valid: {problem}."),
    };
    if report.valid && report.timestamped {
        let when = report.timestamp_time.map(format_time).unwrap_or_default();
        let by = report.timestamp_authority.as_deref().unwrap_or("an unnamed authority");
        let checked = if report.timestamp_signature_checked {
            "its signature verifies"
        } else {
            "its signature was not checked (unsupported algorithm)"
        };
        detail.push_str(&format!(" Timestamped (RFC 3161) by {by} at {when}; {checked}."));
    }
    if report.modified_after_seal {
        detail.push_str(&format!(" {} bytes were added after the signed range.", pdf.len() - end));
    } else if !report.covers_whole_file {
        detail.push_str(" The signed range does not cover the whole file.");
    } else if report.valid {
        detail.push_str(" It covers the whole file: nothing was changed after sealing.");
    }
    report.detail = detail;
    report
}

/// A signature's byte range and its `/Contents` value.
struct Candidate {
    range: [usize; 4],
    contents: Vec<u8>,
}

/// How many of the file's last `/ByteRange` markers are considered. The seal is the last
/// incremental update, so its dictionary is among the last markers; looking at every marker
/// made a file of repeated markers quadratic work (each hole was decoded).
pub const LAST_CANDIDATES: usize = 8;

/// The largest `/Contents` hole decoded, in bytes of the file (hex digits and white space). Our
/// seals reserve a few KiB; other signers' with long chains and timestamps stay well below.
pub const MAX_HOLE: usize = 1024 * 1024;

#[cfg(test)]
thread_local! {
    /// Bytes of `/Contents` holes read by [`last_signature`] on this thread (tests count work
    /// instead of timing it).
    pub(super) static HOLE_BYTES_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The signature whose byte range ends last (on a tie, the one written last), among the last
/// [`LAST_CANDIDATES`] markers. Each range is checked (bounds, hole size, the `<`…`>` around
/// the hole) before its hole is decoded, and holes are decoded best first, so the work is one
/// scan for the markers plus at most a few bounded holes.
fn last_signature(pdf: &[u8]) -> Option<Candidate> {
    let mut marks = std::collections::VecDeque::with_capacity(LAST_CANDIDATES);
    let mut from = 0;
    while let Some(at) = find(pdf, b"/ByteRange", from) {
        from = at + 1;
        if marks.len() == LAST_CANDIDATES {
            marks.pop_front();
        }
        marks.push_back(at);
    }
    let mut ranges: Vec<(usize, [usize; 4])> = marks
        .iter()
        .enumerate()
        .filter_map(|(i, &at)| Some((i, parse_range(pdf, at + b"/ByteRange".len())?)))
        .collect();
    // Best first: the furthest end, then the one written last.
    ranges.sort_by(|(i, a), (j, b)| (b[2] + b[3], j).cmp(&(a[2] + a[3], i)));
    ranges.into_iter().find_map(|(_, range)| Some(Candidate { range, contents: decode_hole(pdf, &range)? }))
}

/// `[a b c d]` at `at` (after optional white space), checked against the file without reading
/// the hole: inside the file, a hole of at most [`MAX_HOLE`] bytes between `<` and `>`.
fn parse_range(pdf: &[u8], mut at: usize) -> Option<[usize; 4]> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0');
    let skip = |at: &mut usize| {
        // Bounded: a marker followed by megabytes of white space is not a signature.
        let start = *at;
        while pdf.get(*at).is_some_and(|&b| is_space(b)) && *at - start < 256 {
            *at += 1;
        }
    };
    skip(&mut at);
    if pdf.get(at) != Some(&b'[') {
        return None;
    }
    at += 1;
    let mut range = [0usize; 4];
    for slot in &mut range {
        skip(&mut at);
        let start = at;
        while pdf.get(at).is_some_and(u8::is_ascii_digit) && at - start < 16 {
            at += 1;
        }
        *slot = std::str::from_utf8(pdf.get(start..at)?).ok()?.parse().ok()?;
    }
    skip(&mut at);
    if pdf.get(at) != Some(&b']') {
        return None;
    }
    let [a, b, c, d] = range;
    let hole_start = a.checked_add(b)?;
    let end = c.checked_add(d)?;
    if hole_start.checked_add(2)? > c || c - hole_start > MAX_HOLE || end > pdf.len() {
        return None;
    }
    if pdf[hole_start] != b'<' || pdf[c - 1] != b'>' {
        return None;
    }
    Some(range)
}

/// The hole's bytes decoded from hex (white space ignored, an odd digit padded with 0).
fn decode_hole(pdf: &[u8], range: &[usize; 4]) -> Option<Vec<u8>> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0');
    let hole = &pdf[range[0] + range[1] + 1..range[2] - 1];
    #[cfg(test)]
    HOLE_BYTES_READ.with(|n| n.set(n.get() + hole.len()));
    let mut digits: Vec<u8> = hole.iter().copied().filter(|&b| !is_space(b)).collect();
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    if digits.len() % 2 == 1 {
        digits.push(b'0');
    }
    hex::decode(&digits).ok()
}

/// Checks the signature; fills in what it learns on the way. `Ok` names the signer
/// certificate, `Err` says what is wrong.
/// Why a seal's signature or its timestamp token does not verify; the text completes "The
/// signature is not valid: …" in the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Invalid {
    /// A structure that is missing, of the wrong type or does not parse; the text says which.
    #[error("{0}")]
    Malformed(String),
    /// An algorithm or form Countersign does not check; the text says which.
    #[error("{0}")]
    Unsupported(String),
    /// A signed digest that does not match the bytes: they changed after signing.
    #[error("digest mismatch: {0}")]
    DigestMismatch(&'static str),
    /// A signature value that does not verify with its certificate.
    #[error("{0}")]
    BadSignature(&'static str),
    #[error("the timestamp token is over another signature (message imprint mismatch)")]
    ImprintMismatch,
    /// The timestamp token itself does not parse.
    #[error("the timestamp token is malformed: {0}")]
    Token(Box<Invalid>),
    /// The timestamp authority's signature on the token does not verify.
    #[error("the timestamp token's signature: {0}")]
    TokenSignature(Box<Invalid>),
}

impl Invalid {
    /// `what (cause)`: a structure that does not parse or encode.
    pub(super) fn parse(what: &str, cause: impl std::fmt::Display) -> Invalid {
        Invalid::Malformed(format!("{what} ({cause})"))
    }
}

fn check(pdf: &[u8], sig: &Candidate, keys: &SealKeys, report: &mut SealReport) -> Result<String, Invalid> {
    let [a, b, c, d] = sig.range;
    let mut hasher = Sha256::new();
    hasher.update(&pdf[a..a + b]);
    hasher.update(&pdf[c..c + d]);
    let digest = hasher.finalize();

    let content_info = decode_padded(&sig.contents)
        .ok_or_else(|| Invalid::Malformed("/Contents is not a DER CMS ContentInfo".into()))?;
    if content_info.content_type != oid::SIGNED_DATA {
        return Err(Invalid::Malformed("/Contents is not a CMS SignedData".into()));
    }
    let signed_data: SignedData =
        content_info.content.decode_as().map_err(|e| Invalid::parse("the CMS SignedData does not parse", e))?;
    if signed_data.encap_content_info.econtent.is_some() {
        return Err(Invalid::Malformed("the CMS signature is not detached".into()));
    }
    let [signer]: [&SignerInfo; 1] = signed_data
        .signer_infos
        .0
        .iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| Invalid::Malformed("the CMS SignedData does not have exactly one signer".into()))?;
    let certs = certs_in(&signed_data);
    let SignerIdentifier::IssuerAndSerialNumber(id) = &signer.sid else {
        return Err(Invalid::Unsupported(
            "the signer is identified by key identifier, which Countersign seals do not use".into(),
        ));
    };
    let signer_cert = certs
        .iter()
        .find(|c| {
            c.cert.tbs_certificate.issuer == id.issuer && c.cert.tbs_certificate.serial_number == id.serial_number
        })
        .ok_or_else(|| Invalid::Malformed("the signer certificate is not in the CMS".into()))?;
    report.certificate_fingerprint = Some(fingerprint_of(&signer_cert.der));
    report.certificate_subject = Some(signer_cert.cert.tbs_certificate.subject.to_string());
    report.signed_by_our_ca = keys.issued_by_ours(signer_cert);
    let which = if keys.is_ours(&signer_cert.der) {
        if signer_cert.der == keys.current.der {
            match keys.current_index() {
                0 => format!("sealing certificate {}", signer_cert.cert.tbs_certificate.subject),
                n => format!("current sealing certificate seal-{n}"),
            }
        } else {
            "an older sealing certificate".to_string()
        }
    } else {
        format!("certificate {}", signer_cert.cert.tbs_certificate.subject)
    };

    // Signed attributes.
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| Invalid::Malformed("the CMS signer has no signed attributes".into()))?;
    let attr = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0));
    if let Some(time) = attr(oid::SIGNING_TIME).and_then(|v| Time::from_der(&v.to_der().ok()?).ok()) {
        report.signing_time = Some(time.to_unix_duration().as_secs());
    }
    if attr(oid::CONTENT_TYPE).and_then(|v| v.decode_as::<ObjectIdentifier>().ok()) != Some(oid::DATA) {
        return Err(Invalid::Malformed("the content-type attribute is missing or not id-data".into()));
    }
    if signer.digest_alg.oid != oid::SHA256 {
        return Err(Invalid::Unsupported(format!("unsupported digest algorithm {}", signer.digest_alg.oid)));
    }
    let signed_digest = attr(oid::MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| Invalid::Malformed("the message-digest attribute is missing".into()))?;
    if signed_digest.as_bytes() != digest.as_slice() {
        return Err(Invalid::DigestMismatch("the signed bytes of the file were changed after sealing"));
    }
    if let Some(value) = attr(oid::SIGNING_CERTIFICATE_V2) {
        let ess: SigningCertificateV2 =
            value.decode_as().map_err(|e| Invalid::parse("the signing-certificate-v2 attribute does not parse", e))?;
        let first = ess
            .certs
            .first()
            .ok_or_else(|| Invalid::Malformed("the signing-certificate-v2 attribute is empty".into()))?;
        let hash_ok = first.hash_algorithm.as_ref().is_none_or(|alg| alg.oid == oid::SHA256)
            && first.cert_hash.as_bytes() == Sha256::digest(&signer_cert.der).as_slice();
        if !hash_ok {
            return Err(Invalid::Malformed("the signing-certificate-v2 attribute names another certificate".into()));
        }
    }

    // The signature over the DER of the signed attributes.
    if !matches!(signer.signature_algorithm.oid, o if o == oid::ECDSA_WITH_SHA256 || o == oid::EC_PUBLIC_KEY) {
        return Err(Invalid::Unsupported(format!(
            "unsupported signature algorithm {}",
            signer.signature_algorithm.oid
        )));
    }
    let key =
        signer_cert.p256_key().ok_or_else(|| Invalid::Unsupported("the signer certificate has no P-256 key".into()))?;
    let signature = Signature::from_der(signer.signature.as_bytes())
        .map_err(|_| Invalid::Malformed("the signature value is malformed".into()))?;
    let signed = attrs.to_der().map_err(|e| Invalid::parse("cannot encode the signed attributes", e))?;
    key.verify(&signed, &signature)
        .map_err(|_| Invalid::BadSignature("the CMS signature does not verify with the signer certificate"))?;

    // The signature timestamp (PAdES B-T), an unsigned attribute over the signature value.
    let token = signer
        .unsigned_attrs
        .iter()
        .flat_map(|attrs| attrs.iter())
        .find(|a| a.oid == oid::SIGNATURE_TIMESTAMP_TOKEN)
        .and_then(|a| a.values.get(0));
    if let Some(token) = token {
        report.timestamped = true;
        let token = token.to_der().map_err(|e| Invalid::parse("the timestamp token does not encode", e))?;
        let (token_sd, tst) = token_parts(&token).map_err(|e| Invalid::Token(Box::new(e)))?;
        let info = parse_tst_info(&tst).map_err(|e| Invalid::Token(Box::new(e)))?;
        report.timestamp_time = Some(info.gen_time);
        let expected = digest_with(&info.imprint.hash_algorithm.oid, signer.signature.as_bytes()).ok_or_else(|| {
            Invalid::Unsupported(format!("unsupported timestamp hash algorithm {}", info.imprint.hash_algorithm.oid))
        })?;
        if info.imprint.hashed_message.as_bytes() != expected.as_slice() {
            report.timestamped = false;
            return Err(Invalid::ImprintMismatch);
        }
        let (authority, checked) =
            check_token_signature(&token_sd, &tst).map_err(|e| Invalid::TokenSignature(Box::new(e)))?;
        report.timestamp_authority = Some(authority);
        report.timestamp_signature_checked = checked;
    }

    if let Some(t) = report.signing_time {
        let (from, to) = signer_cert.validity_unix();
        if t < from || t > to {
            return Ok(format!("{which}, which was not valid at the signing time"));
        }
    }
    Ok(which)
}

/// The certificates a CMS SignedData carries (other kinds of certificate choice are skipped).
fn certs_in(sd: &SignedData) -> Vec<Cert> {
    sd.certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(cert) => cert_with_der(cert),
            _ => None,
        })
        .collect()
}

/// Checks the timestamp token's signer: its message-digest attribute against the `TSTInfo`, and
/// (for ECDSA P-256 with SHA-256) its signature with the certificate in the token. Returns the
/// signer's subject and whether the signature was checked.
fn check_token_signature(sd: &SignedData, tst: &[u8]) -> Result<(String, bool), Invalid> {
    let [signer]: [&SignerInfo; 1] = sd
        .signer_infos
        .0
        .iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| Invalid::Malformed("not exactly one signer".into()))?;
    let certs = certs_in(sd);
    let cert = certs.iter().find(|c| match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            c.cert.tbs_certificate.issuer == id.issuer && c.cert.tbs_certificate.serial_number == id.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(skid) => {
            c.cert.tbs_certificate.extensions.iter().flatten().filter(|e| e.extn_id == SUBJECT_KEY_IDENTIFIER).any(
                |e| OctetString::from_der(e.extn_value.as_bytes()).is_ok_and(|v| v.as_bytes() == skid.0.as_bytes()),
            )
        }
    });
    let cert = cert.ok_or_else(|| Invalid::Malformed("the authority's certificate is not in the token".into()))?;
    let subject = cert.cert.tbs_certificate.subject.to_string();
    let attrs = signer.signed_attrs.as_ref().ok_or_else(|| Invalid::Malformed("no signed attributes".into()))?;
    let attr = |oid: ObjectIdentifier| attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.get(0));
    if attr(oid::CONTENT_TYPE).and_then(|v| v.decode_as::<ObjectIdentifier>().ok()) != Some(oid::TST_INFO) {
        return Err(Invalid::Malformed("the content-type attribute is not id-ct-TSTInfo".into()));
    }
    let expected = digest_with(&signer.digest_alg.oid, tst)
        .ok_or_else(|| Invalid::Unsupported(format!("unsupported digest algorithm {}", signer.digest_alg.oid)))?;
    let signed_digest = attr(oid::MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| Invalid::Malformed("the message-digest attribute is missing".into()))?;
    if signed_digest.as_bytes() != expected.as_slice() {
        return Err(Invalid::DigestMismatch("the TSTInfo was changed"));
    }
    let ecdsa_sha256 = signer.digest_alg.oid == oid::SHA256
        && matches!(signer.signature_algorithm.oid, o if o == oid::ECDSA_WITH_SHA256 || o == oid::EC_PUBLIC_KEY);
    let Some(key) = cert.p256_key().filter(|_| ecdsa_sha256) else {
        return Ok((subject, false));
    };
    let signature = Signature::from_der(signer.signature.as_bytes())
        .map_err(|_| Invalid::Malformed("the signature value is malformed".into()))?;
    let signed = attrs.to_der().map_err(|e| Invalid::parse("cannot encode the signed attributes", e))?;
    key.verify(&signed, &signature)
        .map_err(|_| Invalid::BadSignature("it does not verify with the authority's certificate"))?;
    Ok((subject, true))
}

/// id-ce-subjectKeyIdentifier.
const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// The `ContentInfo` at the start of `bytes`; what follows it must be zero padding.
fn decode_padded(bytes: &[u8]) -> Option<ContentInfo> {
    let mut reader = SliceReader::new(bytes).ok()?;
    let info = ContentInfo::decode(&mut reader).ok()?;
    let used = usize::try_from(reader.position()).ok()?;
    bytes[used..].iter().all(|&b| b == 0).then_some(info)
}

fn cert_with_der(cert: &Certificate) -> Option<Cert> {
    Some(Cert { cert: cert.clone(), der: cert.to_der().ok()? })
}

/// `2026-05-01T12:00:00Z`.
fn format_time(unix: u64) -> String {
    der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix))
        .map_or_else(|_| format!("{unix} (Unix time)"), |dt| dt.to_string())
}
