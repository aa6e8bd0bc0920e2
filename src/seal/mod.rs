//! Sealing: the last incremental update of a countersigned PDF, carrying a PAdES baseline B-B
//! digital signature made with the service's sealing certificate.
//!
//! Years later, a vendor manager or an auditor can tell with the tools they already have —
//! Adobe Acrobat, poppler's `pdfsig` — that the file is exactly what both parties signed and
//! that Countersign sealed it.
//!
//! # What the seal is
//!
//! [`seal`] appends one update section to the finished PDF (the input bytes stay an exact
//! prefix of the output). The section holds:
//! - a signature dictionary `/Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached`
//!   with `/ByteRange [0 a b c]` covering the whole file except the `/Contents` hole, `/M`,
//!   `/Reason`, and `/Contents`: a detached CMS `SignedData` (hex) with SHA-256, the signed
//!   attributes content-type, message-digest, signing-time and ESS signing-certificate-v2
//!   (RFC 5035) naming the sealing certificate, the sealing and CA certificates, and an
//!   ECDSA-with-SHA256 signature;
//! - an invisible signature field (`/FT /Sig`, merged with its widget: `/Rect [0 0 0 0]`,
//!   `/F 132` = print + locked, `/P` the last page) on the last page — the certificate of
//!   completion: a new revision of that page with the widget in its `/Annots`, and a new
//!   revision of the catalog whose `/AcroForm` lists the field (`Countersign seal`, then
//!   `Countersign seal 2`, … if a file is sealed again) and has `/SigFlags 3`. The catalog
//!   also declares the ETSI `/ESIC` developer extension and `/Version /1.7` when the file says
//!   less, as PAdES asks of PDF 1.x files;
//! - a cross-reference section of the original's kind and a trailer with `/Prev`.
//!
//! [`seal_with`] and a [`Timestamper`] (such as [`http_timestamper`]) make it PAdES B-T: the
//! signature value is timestamped by an RFC 3161 authority and the token is added to the
//! SignerInfo as the unsigned attribute id-aa-signatureTimeStampToken (6 KB more is reserved
//! in `/Contents` for it). A failing authority is [`SealError::Timestamp`]; the caller decides
//! (the signing service seals without the timestamp and records the failure).
//!
//! The space for `/Contents` is sized from the certificates in use (the CMS is built once with
//! a maximum-length dummy signature), so the seal costs ~5 KB with the generated P-256
//! certificates, and keeps fitting if a larger configured chain is used later.
//!
//! # Keys
//!
//! [`SealKeys::load_or_create`] keeps a private CA and the sealing certificates in the data dir
//! (`ca.pem`, `ca-key.pem`, `seal-N.pem`, `seal-N-key.pem`; keys 0600, ECDSA P-256).
//! [`SealKeys::rotate`] issues `seal-N+1` from the same CA; older certificates stay for
//! [`verify()`]. [`SealKeys::from_pkcs12`] uses a configured PKCS#12 file instead (P-256 key,
//! PBES2 encryption), and [`SealKeys::also_trust`] keeps the generated keys' seals verifiable
//! after such a switch.
//!
//! To make `pdfsig` trust the CA: `certutil -N -d sql:DIR --empty-password`, then
//! `certutil -A -d sql:DIR -n "Countersign seal CA" -t C,C,C -a -i ca.pem`, then
//! `pdfsig -nssdir sql:DIR file.pdf` (Debian: `libnss3-tools`). In Acrobat: add `ca.pem` to
//! the trusted certificates, trusted for signatures and certified documents.
//!
//! # Verifying
//!
//! [`verify()`] checks the file's last signature (the one whose byte range reaches furthest):
//! the byte range and the `/Contents` hole, the SHA-256 digest, the CMS signature with the
//! embedded certificate, the signing-certificate-v2 binding, and whether the certificate
//! chains to our CA; it reports bytes that follow the signed range. A signature timestamp's
//! message imprint must match the signature value; its genTime and authority are reported, and
//! its signature is checked for P-256 authorities (the authority's trust chain is not).

mod certs;
mod pkcs12;
mod sign;
mod timestamp;
mod verify;

#[cfg(test)]
mod tests;

pub use certs::SealKeys;
pub use sign::{seal, seal_with};
pub use timestamp::{Timestamper, http_timestamper};
pub use verify::{SealReport, verify};

/// Why keys could not be loaded or created, or a PDF could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Reading or writing the key directory failed.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key directory holds something unusable: a malformed PEM file, a key that does not
    /// match its certificate, a key file readable by others, a certificate without its key.
    #[error("seal keys: {0}")]
    Keys(String),
    /// Building or signing a certificate or the CMS structure failed.
    #[error("seal crypto: {0}")]
    Crypto(String),
    /// The input is not a PDF lopdf can read.
    #[error("cannot read the PDF: {0}")]
    Parse(String),
    /// The PDF parses, but it cannot be sealed (encrypted, no pages, no catalog, …) or the
    /// update did not come out as expected.
    #[error("cannot seal the PDF: {0}")]
    Structure(String),
    /// The timestamp authority could not be reached, refused, or replied with something that
    /// is not a timestamp over this signature. The caller may seal without a timestamp.
    #[error("timestamp: {0}")]
    Timestamp(String),
}

/// SHA-256 of `der` as uppercase hex pairs joined by colons (`AB:01:…`), the form
/// `openssl x509 -fingerprint -sha256` and certificate viewers show.
fn fingerprint_of(der: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(der);
    let hex = hex::encode_upper(digest);
    let mut out = String::with_capacity(hex.len() * 3 / 2);
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.extend(pair.iter().map(|&b| char::from(b)));
    }
    out
}

/// OIDs used by the seal.
mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    /// id-aa-signingCertificateV2 (RFC 5035).
    pub const SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// id-ct-TSTInfo (RFC 3161).
    pub const TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");
    /// id-aa-signatureTimeStampToken (RFC 3161, appendix A).
    pub const SIGNATURE_TIMESTAMP_TOKEN: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.14");
    pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// id-kp-documentSigning (RFC 9336).
    pub const KP_DOCUMENT_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.36");
    /// id-kp-emailProtection: what NSS (and so `pdfsig`) requires of a document signer's
    /// extended key usage.
    pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
}
