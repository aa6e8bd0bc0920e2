//! RFC 3161 signature timestamps (PAdES B-T): the request, the reply, the token's `TSTInfo`,
//! and a plain-HTTP transport.
//!
//! The timestamp covers the CMS signature value: `messageImprint` is the SHA-256 of the
//! `SignerInfo`'s `signature` octets, and the token (a CMS `ContentInfo` with a `SignedData`
//! over a `TSTInfo`) goes into the unsigned attribute `id-aa-signatureTimeStampToken`.

use std::time::Duration;

use der::asn1::{Any, BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, Sequence, SliceReader, Tag, Tagged};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::verify::Invalid;
use super::{SealError, oid};

/// Sends a DER `TimeStampReq` to a timestamp authority and returns the DER `TimeStampResp`.
pub type Timestamper<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, SealError>;

/// Connect timeout of [`http_timestamper`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read and write timeout of each socket operation of [`http_timestamper`].
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply accepted from a timestamp authority.
const MAX_REPLY: u64 = 256 * 1024;

/// A [`Timestamper`] that POSTs the request to `url` (`http://HOST[:PORT][/PATH]`) as
/// `application/timestamp-query`, the RFC 3161 HTTP transport. Plain HTTP only: the token is
/// signed by the authority, so transport security adds nothing to its integrity (and the HTTP
/// client is built without TLS). No proxy, no redirects; a reply larger than 256 KiB is an error.
pub fn http_timestamper(url: &str) -> impl Fn(&[u8]) -> Result<Vec<u8>, SealError> + '_ {
    move |request: &[u8]| {
        let failed = |e: String| SealError::Timestamp(format!("timestamp authority {url}: {e}"));
        if !url.starts_with("http://") {
            return Err(failed("the URL must start with http://".into()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(IO_TIMEOUT))
            .timeout_per_write(Some(IO_TIMEOUT))
            .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut resp = agent
            .post(url)
            .header("Content-Type", "application/timestamp-query")
            .header("Accept", "application/timestamp-reply")
            .send(request)
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(failed(format!("HTTP status {status}")));
        }
        resp.body_mut().with_config().limit(MAX_REPLY).read_to_vec().map_err(|e| failed(e.to_string()))
    }
}

/// RFC 3161 `MessageImprint`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct MessageImprint {
    pub hash_algorithm: AlgorithmIdentifierOwned,
    pub hashed_message: OctetString,
}

/// RFC 3161 `TimeStampReq` (no policy, no extensions).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    nonce: Option<u64>,
    #[asn1(default = "Default::default")]
    cert_req: bool,
}

/// RFC 3161 `TimeStampResp`; the token is kept as its DER.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<Any>,
}

/// RFC 3161 / 4210 `PKIStatusInfo`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct PkiStatusInfo {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// What Countersign reads of a `TSTInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TstInfo {
    pub imprint: MessageImprint,
    /// `genTime`, Unix seconds (fractions dropped).
    pub gen_time: u64,
    pub nonce: Option<u64>,
}

/// Asks `tsa` for a timestamp over `signature` (the `SignerInfo` signature octets) and returns
/// the token (DER `ContentInfo`), after checking the reply's status, imprint and nonce.
pub(super) fn fetch_token(tsa: Timestamper<'_>, signature: &[u8]) -> Result<Vec<u8>, SealError> {
    let fail = |what: String| SealError::Timestamp(what);
    let imprint = MessageImprint {
        hash_algorithm: AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: None },
        hashed_message: OctetString::new(Sha256::digest(signature).to_vec())
            .map_err(|e| fail(format!("imprint: {e}")))?,
    };
    // A positive 63-bit nonce, so it encodes as an INTEGER of at most 8 bytes.
    let nonce = getrandom::u64().map_err(|e| fail(format!("nonce: {e}")))? >> 1;
    let request = TimeStampReq { version: 1, message_imprint: imprint.clone(), nonce: Some(nonce), cert_req: true }
        .to_der()
        .map_err(|e| fail(format!("encoding the request: {e}")))?;
    let reply = tsa(&request)?;
    let resp =
        TimeStampResp::from_der(&reply).map_err(|e| fail(format!("the reply is not a DER TimeStampResp ({e})")))?;
    // granted (0) or grantedWithMods (1).
    if resp.status.status > 1 {
        let text = resp.status.status_string.unwrap_or_default().join("; ");
        return Err(fail(format!("the timestamp authority refused (PKIStatus {}): {text}", resp.status.status)));
    }
    let token = resp.time_stamp_token.ok_or_else(|| fail("the reply carries no timestamp token".into()))?;
    let token = token.to_der().map_err(|e| fail(format!("the token: {e}")))?;
    let info = token_info(&token).map_err(|e| fail(format!("the token: {e}")))?;
    if info.imprint != imprint {
        return Err(fail("the token's message imprint is not that of the signature".into()));
    }
    if info.nonce != Some(nonce) {
        return Err(fail("the token does not echo the request's nonce".into()));
    }
    Ok(token)
}

/// The `SignedData` of a token and its `TSTInfo` DER (the encapsulated content).
pub(super) fn token_parts(token: &[u8]) -> Result<(cms::signed_data::SignedData, Vec<u8>), Invalid> {
    let info =
        cms::content_info::ContentInfo::from_der(token).map_err(|e| Invalid::parse("not a CMS ContentInfo", e))?;
    if info.content_type != oid::SIGNED_DATA {
        return Err(Invalid::Malformed("not a CMS SignedData".into()));
    }
    let sd: cms::signed_data::SignedData =
        info.content.decode_as().map_err(|e| Invalid::parse("the SignedData does not parse", e))?;
    if sd.encap_content_info.econtent_type != oid::TST_INFO {
        return Err(Invalid::Malformed("the content is not a TSTInfo".into()));
    }
    let content =
        sd.encap_content_info.econtent.as_ref().ok_or_else(|| Invalid::Malformed("the TSTInfo is missing".into()))?;
    let tst =
        content.decode_as::<OctetString>().map_err(|e| Invalid::parse("the TSTInfo is not an OCTET STRING", e))?;
    let tst = tst.as_bytes().to_vec();
    Ok((sd, tst))
}

/// The `TSTInfo` of a timestamp token.
pub(super) fn token_info(token: &[u8]) -> Result<TstInfo, Invalid> {
    let (_, tst) = token_parts(token)?;
    parse_tst_info(&tst)
}

/// Reads version, policy, messageImprint, serialNumber, genTime and the optional nonce.
pub(super) fn parse_tst_info(der_bytes: &[u8]) -> Result<TstInfo, Invalid> {
    let bad = |e: der::Error| Invalid::parse("the TSTInfo does not parse", e);
    let seq = Any::from_der(der_bytes).map_err(bad)?;
    if seq.tag() != Tag::Sequence {
        return Err(Invalid::Malformed("the TSTInfo is not a SEQUENCE".into()));
    }
    let mut r = SliceReader::new(seq.value()).map_err(bad)?;
    let version: u8 = r.decode().map_err(bad)?;
    if version != 1 {
        return Err(Invalid::Unsupported(format!("TSTInfo version {version}")));
    }
    let _policy: ObjectIdentifier = r.decode().map_err(bad)?;
    let imprint: MessageImprint = r.decode().map_err(bad)?;
    let serial: Any = r.decode().map_err(bad)?;
    if serial.tag() != Tag::Integer {
        return Err(Invalid::Malformed("the TSTInfo serial number is not an INTEGER".into()));
    }
    let time: Any = r.decode().map_err(bad)?;
    if time.tag() != Tag::GeneralizedTime {
        return Err(Invalid::Malformed("the TSTInfo genTime is not a GeneralizedTime".into()));
    }
    let gen_time =
        generalized_time(time.value()).ok_or_else(|| Invalid::Malformed("the TSTInfo genTime is malformed".into()))?;
    let mut nonce = None;
    while !r.is_finished() {
        let item: Any = r.decode().map_err(bad)?;
        if item.tag() == Tag::Integer {
            nonce = item.decode_as::<u64>().ok();
        }
    }
    Ok(TstInfo { imprint, gen_time, nonce })
}

/// `YYYYMMDDHHMMSS[.fff]Z` as Unix seconds.
fn generalized_time(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let whole = text.split_once('.').map_or(text, |(w, _)| w);
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| whole[a..b].parse::<u16>().ok();
    let dt = der::DateTime::new(
        n(0, 4)?,
        n(4, 6)? as u8,
        n(6, 8)? as u8,
        n(8, 10)? as u8,
        n(10, 12)? as u8,
        n(12, 14)? as u8,
    )
    .ok()?;
    Some(dt.unix_duration().as_secs())
}

/// The digest of `data` with the hash algorithm `alg` (SHA-256/384/512), if supported.
pub(super) fn digest_with(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    match *alg {
        a if a == oid::SHA256 => Some(Sha256::digest(data).to_vec()),
        a if a == oid::SHA384 => Some(Sha384::digest(data).to_vec()),
        a if a == oid::SHA512 => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn generalized_times_parse_with_and_without_fractions() {
        assert_eq!(generalized_time(b"20270104120000Z"), Some(1_799_064_000));
        assert_eq!(generalized_time(b"20270104120000.123Z"), Some(1_799_064_000));
        assert_eq!(generalized_time(b"20270104120000"), None);
        assert_eq!(generalized_time(b"2027010412000Z"), None);
    }

    #[test]
    fn a_request_encodes_as_rfc_3161_says() {
        let req = TimeStampReq {
            version: 1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: None },
                hashed_message: OctetString::new(vec![7; 32]).unwrap(),
            },
            nonce: Some(5),
            cert_req: true,
        };
        let der = req.to_der().unwrap();
        assert_eq!(TimeStampReq::from_der(&der).unwrap(), req);
        // certReq TRUE is the last element: BOOLEAN 0xFF.
        assert!(der.ends_with(&[0x01, 0x01, 0xff]));
    }

    #[test]
    fn a_refusal_and_garbage_are_timestamp_errors() {
        let refuse = |_: &[u8]| -> Result<Vec<u8>, SealError> {
            // TimeStampResp { status { rejection (2), ["busy"] } }
            Ok(vec![0x30, 0x0d, 0x30, 0x0b, 0x02, 0x01, 0x02, 0x30, 0x06, 0x0c, 0x04, b'b', b'u', b's', b'y'])
        };
        let err = fetch_token(&refuse, b"sig").unwrap_err();
        assert!(matches!(err, SealError::Timestamp(ref m) if m.contains("refused") && m.contains("busy")), "{err}");
        let garbage = |_: &[u8]| -> Result<Vec<u8>, SealError> { Ok(b"<html>".to_vec()) };
        assert!(matches!(fetch_token(&garbage, b"sig"), Err(SealError::Timestamp(_))));
    }
}
