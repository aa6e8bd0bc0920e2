//! Writing the seal: the incremental update with placeholders, then the byte range, the digest
//! and the CMS signature filled into the written bytes.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, StringFormat, dictionary};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Signer;
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::certs::{Cert, asn1_time};
use super::timestamp::Timestamper;
use super::{SealError, SealKeys, oid};

/// Written in place of the three unknown `/ByteRange` numbers; ten digits, so any offset of a
/// file below 10 GB fits in its place.
const RANGE_PLACEHOLDER: i64 = 9_999_999_999;
/// Base name of the signature field; a second seal gets "Countersign seal 2", and so on.
const FIELD_NAME: &str = "Countersign seal";
const REASON: &str = "Sealed by Countersign: the document as countersigned by both parties";
/// Longest DER encoding of an ECDSA P-256 signature (SEQUENCE of two 33-byte INTEGERs).
const MAX_SIGNATURE_LEN: usize = 72;
/// Spare bytes in `/Contents` beyond the computed CMS size.
const CONTENTS_SLACK: usize = 32;

/// Space reserved in `/Contents` for a timestamp token at first (DER bytes): a token from an
/// authority with a P-256 or RSA-2048 certificate fits. A larger one is fetched again with
/// room for its size.
const TOKEN_RESERVE: usize = 6 * 1024;
/// Room for the unsigned-attribute wrapping around the token and the longer DER lengths of
/// the structures that enclose it.
const TOKEN_OVERHEAD: usize = 64;

/// Seals `pdf` with the current sealing key: one incremental update carrying a PAdES B-B
/// signature over the whole file, made at `signing_time_unix` (the signed signing-time
/// attribute and the `/M` entry). The input bytes are an exact prefix of the output.
///
/// `signing_time_unix` should be the time of sealing (the service clock's now): it must lie
/// within the sealing certificate's validity, or validators would call the certificate
/// expired or not yet valid, so a time outside it is refused.
pub fn seal(pdf: &[u8], keys: &SealKeys, signing_time_unix: u64) -> Result<Vec<u8>, SealError> {
    seal_with(pdf, keys, signing_time_unix, None)
}

/// [`seal`], and with `tsa` a PAdES B-T seal: the signature value is timestamped by the
/// authority (RFC 3161) and the token is added as the unsigned attribute
/// `id-aa-signatureTimeStampToken`. When the authority fails, the error is
/// [`SealError::Timestamp`] and nothing is sealed: the caller decides whether to seal without
/// a timestamp.
pub fn seal_with(
    pdf: &[u8],
    keys: &SealKeys,
    signing_time_unix: u64,
    tsa: Option<Timestamper<'_>>,
) -> Result<Vec<u8>, SealError> {
    let first = if tsa.is_some() { TOKEN_RESERVE } else { 0 };
    match seal_once(pdf, keys, signing_time_unix, tsa, first)? {
        Ok(sealed) => Ok(sealed),
        // The token did not fit: once more (with a new timestamp) with room for its size.
        Err(needed) => match seal_once(pdf, keys, signing_time_unix, tsa, needed + 512)? {
            Ok(sealed) => Ok(sealed),
            Err(needed) => Err(SealError::Timestamp(format!(
                "the timestamp token keeps outgrowing its space ({needed} bytes needed)"
            ))),
        },
    }
}

/// One attempt: `Ok(Err(n))` when the timestamp token did not fit in `token_reserve` bytes and
/// `n` bytes would have been needed.
fn seal_once(
    pdf: &[u8],
    keys: &SealKeys,
    signing_time_unix: u64,
    tsa: Option<Timestamper<'_>>,
    token_reserve: usize,
) -> Result<Result<Vec<u8>, usize>, SealError> {
    // lopdf reads offsets relative to the `%PDF-` header but writes the update's offsets
    // relative to the start of the buffer; they agree only if the header comes first.
    let (from, to) = keys.current.validity_unix();
    if signing_time_unix < from || signing_time_unix > to {
        return Err(SealError::Keys(format!(
            "signing time {signing_time_unix} is outside the sealing certificate's validity ({from}..{to}); \
             seal with the current time, or rotate the keys"
        )));
    }
    if !pdf.starts_with(b"%PDF-") {
        return Err(SealError::Parse("it does not start with a %PDF- header".into()));
    }
    let prev = Document::load_mem(pdf).map_err(|e| SealError::Parse(e.to_string()))?;
    if prev.is_encrypted() || prev.was_encrypted() {
        return Err(SealError::Structure("the PDF is encrypted".into()));
    }
    let structure = |what: &str| SealError::Structure(what.to_string());
    let root_id = prev
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| structure("the trailer has no /Root reference"))?;
    let catalog = prev.get_dictionary(root_id).map_err(|_| structure("the catalog is not a dictionary"))?;
    let last_page = prev.page_iter().last().ok_or_else(|| structure("the PDF has no pages"))?;
    let field_name = unique_field_name(&prev, catalog);
    let pdf_version = effective_version(&prev, catalog);

    let first_id = crate::pdf::append::next_object_id(&prev).ok_or_else(|| structure("object numbers exhausted"))?;
    let sig_id: ObjectId = (first_id, 0);
    let field_id: ObjectId = (first_id.checked_add(1).ok_or_else(|| structure("object numbers exhausted"))?, 0);

    // The CMS is built once with a maximum-length dummy signature to size `/Contents`.
    let base_reserve = build_cms(keys, &[0; 32], signing_time_unix, None, None)?.len() + CONTENTS_SLACK;
    let reserve = if tsa.is_some() { base_reserve + token_reserve + TOKEN_OVERHEAD } else { base_reserve };

    let sig = dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => vec![Object::Integer(0), RANGE_PLACEHOLDER.into(), RANGE_PLACEHOLDER.into(), RANGE_PLACEHOLDER.into()],
        "Contents" => Object::String(vec![0; reserve], StringFormat::Hexadecimal),
        "M" => Object::string_literal(pdf_date(signing_time_unix)?),
        "Reason" => Object::string_literal(REASON),
    };
    let field = dictionary! {
        "Type" => "Annot",
        "Subtype" => "Widget",
        "FT" => "Sig",
        "T" => Object::string_literal(field_name),
        "V" => sig_id,
        "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
        "F" => 132,
        "P" => last_page,
    };

    // Trailer facts, taken before `prev` moves into the incremental document.
    let revision_id = crate::render::pdf::id_of(&[pdf, &signing_time_unix.to_be_bytes()]);
    let revision_id = Object::String(revision_id.to_vec(), StringFormat::Hexadecimal);
    let revision = crate::pdf::append::Revision::of(&prev, revision_id.clone())
        .ok_or_else(|| structure("startxref out of range"))?;

    let mut inc = IncrementalDocument::create_from(pdf.to_vec(), prev);
    inc.new_document.objects.insert(sig_id, Object::Dictionary(sig));
    inc.new_document.objects.insert(field_id, Object::Dictionary(field));

    // The last page, with the widget in its /Annots.
    inc.opt_clone_object_to_new_document(last_page).map_err(|_| structure("the last page cannot be read"))?;
    let annots = inc.new_document.get_dictionary(last_page).map(|p| p.get(b"Annots").ok().cloned());
    match annots.map_err(|_| structure("the last page is not a dictionary"))? {
        Some(Object::Reference(id)) => push_to_array_object(&mut inc, id, field_id, "the last page's /Annots")?,
        Some(Object::Array(mut items)) => {
            items.push(Object::Reference(field_id));
            set(&mut inc, last_page, "Annots", Object::Array(items))?;
        }
        _ => set(&mut inc, last_page, "Annots", Object::Array(vec![Object::Reference(field_id)]))?,
    }

    // The catalog, with the field in /AcroForm /Fields, /SigFlags 3 (signatures exist, append
    // only), and the PAdES version and extension declarations.
    inc.opt_clone_object_to_new_document(root_id).map_err(|_| structure("the catalog cannot be read"))?;
    let catalog = inc.new_document.get_dictionary(root_id).map_err(|_| structure("the catalog is not a dictionary"))?;
    let acroform = catalog.get(b"AcroForm").ok().cloned();
    let extensions = catalog.get(b"Extensions").ok().cloned();
    match acroform {
        Some(Object::Reference(id)) => {
            inc.opt_clone_object_to_new_document(id).map_err(|_| structure("/AcroForm cannot be read"))?;
            let mut form =
                inc.new_document.get_dictionary(id).map_err(|_| structure("/AcroForm is not a dictionary"))?.clone();
            add_field(&mut inc, &mut form, field_id)?;
            inc.new_document.objects.insert(id, Object::Dictionary(form));
        }
        Some(Object::Dictionary(mut form)) => {
            add_field(&mut inc, &mut form, field_id)?;
            set(&mut inc, root_id, "AcroForm", Object::Dictionary(form))?;
        }
        _ => {
            let mut form = Dictionary::new();
            add_field(&mut inc, &mut form, field_id)?;
            set(&mut inc, root_id, "AcroForm", Object::Dictionary(form))?;
        }
    }
    if pdf_version < (2, 0) {
        // ETSI EN 319 142-1: a PAdES signature in a PDF 1.x file declares the ESIC extension.
        let esic = Object::Dictionary(dictionary! { "BaseVersion" => "1.7", "ExtensionLevel" => 2 });
        match extensions {
            Some(Object::Reference(id)) => {
                inc.opt_clone_object_to_new_document(id).map_err(|_| structure("/Extensions cannot be read"))?;
                let ext = inc
                    .new_document
                    .get_dictionary_mut(id)
                    .map_err(|_| structure("/Extensions is not a dictionary"))?;
                if !ext.has(b"ESIC") {
                    ext.set("ESIC", esic);
                }
            }
            Some(Object::Dictionary(mut ext)) => {
                if !ext.has(b"ESIC") {
                    ext.set("ESIC", esic);
                    set(&mut inc, root_id, "Extensions", Object::Dictionary(ext))?;
                }
            }
            _ => set(&mut inc, root_id, "Extensions", Object::Dictionary(dictionary! { "ESIC" => esic }))?,
        }
    }
    if pdf_version < (1, 7) {
        set(&mut inc, root_id, "Version", Object::Name(b"1.7".to_vec()))?;
    }

    revision.finish(&mut inc, root_id, field_id.0, revision_id);

    let mut out = Vec::with_capacity(pdf.len() + 2 * reserve + 4096);
    inc.save_to(&mut out).map_err(|e| structure(&format!("writing the update: {e}")))?;
    if !out.starts_with(pdf) {
        return Err(structure("the update did not preserve the original bytes"));
    }

    // Fill in the byte range around the /Contents hole, then the signature.
    let update = pdf.len();
    let range_at = find_unique(&out[update..], format!("[0 {0} {0} {0}]", RANGE_PLACEHOLDER).as_bytes())
        .map(|i| i + update)
        .ok_or_else(|| structure("the /ByteRange placeholder is not in the update"))?;
    let mut hole_pattern = Vec::with_capacity(2 * reserve + 2);
    hole_pattern.push(b'<');
    hole_pattern.resize(2 * reserve + 1, b'0');
    hole_pattern.push(b'>');
    let hole_start = find_unique(&out[update..], &hole_pattern)
        .map(|i| i + update)
        .ok_or_else(|| structure("the /Contents placeholder is not in the update"))?;
    let hole_end = hole_start + hole_pattern.len();
    let range = format!("[0 {hole_start} {hole_end} {}", out.len() - hole_end);
    let width = format!("[0 {0} {0} {0}", RANGE_PLACEHOLDER).len();
    if range.len() > width {
        return Err(structure("the file is too large for the /ByteRange placeholder"));
    }
    out[range_at..range_at + width].copy_from_slice(format!("{range:width$}").as_bytes());

    let mut digest = Sha256::new();
    digest.update(&out[..hole_start]);
    digest.update(&out[hole_end..]);
    let digest: [u8; 32] = digest.finalize().into();
    let cms = build_cms(keys, &digest, signing_time_unix, Some(&keys.key), tsa)?;
    if cms.len() > reserve {
        if tsa.is_some() && cms.len() > base_reserve {
            return Ok(Err(cms.len() - base_reserve));
        }
        return Err(SealError::Crypto(format!("the signature ({} bytes) outgrew its space ({reserve})", cms.len())));
    }
    let hex = hex::encode_upper(&cms);
    out[hole_start + 1..hole_start + 1 + hex.len()].copy_from_slice(hex.as_bytes());
    Ok(Ok(out))
}

/// ESS `SigningCertificateV2` (RFC 5035).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub policies: Option<Vec<Any>>,
}

/// ESS `ESSCertIDv2`; `hash_algorithm` absent means SHA-256 (its DER default).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// ESS `IssuerSerial`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct IssuerSerial {
    pub issuer: GeneralNames,
    pub serial_number: SerialNumber,
}

/// The DER `ContentInfo` of a detached CMS `SignedData` over a document whose SHA-256 is
/// `digest`, signed by `key` — or, with `None`, a same-size stand-in with a maximum-length
/// dummy signature, to size the `/Contents` placeholder. With `tsa` (and a key), the
/// signature value is timestamped and the token added as an unsigned attribute.
fn build_cms(
    keys: &SealKeys,
    digest: &[u8; 32],
    signing_time: u64,
    key: Option<&p256::ecdsa::SigningKey>,
    tsa: Option<Timestamper<'_>>,
) -> Result<Vec<u8>, SealError> {
    let crypto = |what: &str, e: der::Error| SealError::Crypto(format!("{what}: {e}"));
    let seal_cert: &Cert = &keys.current;
    let tbs = &seal_cert.cert.tbs_certificate;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(Sha256::digest(&seal_cert.der).to_vec()).map_err(|e| crypto("cert hash", e))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                serial_number: tbs.serial_number.clone(),
            }),
        }],
        policies: None,
    };
    let attribute = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, SealError> {
        let values = SetOfVec::try_from(vec![value]).map_err(|e| crypto("attribute", e))?;
        Ok(Attribute { oid, values })
    };
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(oid::CONTENT_TYPE, any("content type", &oid::DATA)?)?,
        attribute(oid::SIGNING_TIME, any("signing time", &asn1_time(signing_time)?)?)?,
        attribute(
            oid::MESSAGE_DIGEST,
            any("message digest", &OctetString::new(digest.to_vec()).map_err(|e| crypto("digest", e))?)?,
        )?,
        attribute(oid::SIGNING_CERTIFICATE_V2, any("signing certificate", &ess)?)?,
    ])
    .map_err(|e| crypto("signed attributes", e))?;
    // The signature covers the DER of the attributes as a SET OF (RFC 5652, 5.4).
    let signature = match key {
        Some(key) => {
            let to_sign = signed_attrs.to_der().map_err(|e| crypto("signed attributes", e))?;
            let signature: Signature =
                key.try_sign(&to_sign).map_err(|e| SealError::Crypto(format!("signing: {e}")))?;
            signature.to_der().as_bytes().to_vec()
        }
        None => vec![0; MAX_SIGNATURE_LEN],
    };
    let unsigned_attrs = match (key, tsa) {
        (Some(_), Some(tsa)) => {
            let token = super::timestamp::fetch_token(tsa, &signature)?;
            let token = Any::from_der(&token).map_err(|e| SealError::Timestamp(format!("the token: {e}")))?;
            let attrs = vec![attribute(oid::SIGNATURE_TIMESTAMP_TOKEN, token)?];
            Some(SetOfVec::try_from(attrs).map_err(|e| crypto("unsigned attributes", e))?)
        }
        _ => None,
    };
    let sha256 = AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: None };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned { oid: oid::ECDSA_WITH_SHA256, parameters: None },
        signature: OctetString::new(signature).map_err(|e| crypto("signature", e))?,
        unsigned_attrs,
    };
    let certificates =
        [seal_cert].into_iter().chain(&keys.chain).map(|c| CertificateChoices::Certificate(c.cert.clone()));
    let certificates = SetOfVec::try_from(certificates.collect::<Vec<_>>()).map_err(|e| crypto("certificates", e))?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(|e| crypto("digest algorithms", e))?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: oid::DATA, econtent: None },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(|e| crypto("signer infos", e))?),
    };
    let content_info = ContentInfo { content_type: oid::SIGNED_DATA, content: any("signed data", &signed_data)? };
    content_info.to_der().map_err(|e| crypto("content info", e))
}

/// `value` as an ASN.1 `ANY`.
fn any(what: &str, value: &impl Encode) -> Result<Any, SealError> {
    let crypto = |e: der::Error| SealError::Crypto(format!("{what}: {e}"));
    Any::from_der(&value.to_der().map_err(crypto)?).map_err(crypto)
}

/// `D:YYYYMMDDHHmmSS+00'00'`.
fn pdf_date(unix: u64) -> Result<String, SealError> {
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix))
        .map_err(|e| SealError::Crypto(format!("signing time {unix}: {e}")))?;
    Ok(format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds()
    ))
}

/// "Countersign seal", or with the lowest number ≥ 2 that no top-level field already uses.
fn unique_field_name(doc: &Document, catalog: &Dictionary) -> String {
    let fields = catalog
        .get(b"AcroForm")
        .and_then(|f| doc.dereference(f))
        .and_then(|(_, f)| f.as_dict())
        .and_then(|f| f.get(b"Fields"))
        .and_then(|f| doc.dereference(f))
        .and_then(|(_, f)| f.as_array());
    let taken: Vec<Vec<u8>> = fields
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| doc.dereference(f).ok())
                .filter_map(|(_, f)| f.as_dict().ok())
                .filter_map(|f| f.get(b"T").and_then(Object::as_str).ok())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default();
    let mut name = FIELD_NAME.to_string();
    let mut n = 2;
    while taken.iter().any(|t| t == name.as_bytes()) {
        name = format!("{FIELD_NAME} {n}");
        n += 1;
    }
    name
}

/// The later of the header's version and the catalog's `/Version`; (0, 0) if neither parses.
fn effective_version(doc: &Document, catalog: &Dictionary) -> (u32, u32) {
    let parse = |v: &[u8]| -> Option<(u32, u32)> {
        let (major, minor) = std::str::from_utf8(v).ok()?.trim().split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let header = parse(doc.version.as_bytes());
    let catalog = catalog.get(b"Version").and_then(Object::as_name).ok().and_then(parse);
    header.max(catalog).unwrap_or((0, 0))
}

/// Adds `field` to `form`'s `/Fields` (cloning an indirect array into the update) and sets
/// `/SigFlags 3`.
fn add_field(inc: &mut IncrementalDocument, form: &mut Dictionary, field: ObjectId) -> Result<(), SealError> {
    match form.get(b"Fields").ok().cloned() {
        Some(Object::Reference(id)) => push_to_array_object(inc, id, field, "/AcroForm /Fields")?,
        Some(Object::Array(mut fields)) => {
            fields.push(Object::Reference(field));
            form.set("Fields", Object::Array(fields));
        }
        _ => form.set("Fields", Object::Array(vec![Object::Reference(field)])),
    }
    form.set("SigFlags", Object::Integer(3));
    Ok(())
}

/// Appends a reference to the indirect array `array_id`, as a new revision of that array.
fn push_to_array_object(
    inc: &mut IncrementalDocument,
    array_id: ObjectId,
    item: ObjectId,
    what: &str,
) -> Result<(), SealError> {
    inc.opt_clone_object_to_new_document(array_id)
        .map_err(|_| SealError::Structure(format!("{what} cannot be read")))?;
    match inc.new_document.get_object_mut(array_id) {
        Ok(Object::Array(items)) => {
            items.push(Object::Reference(item));
            Ok(())
        }
        _ => Err(SealError::Structure(format!("{what} is not an array"))),
    }
}

/// Sets `key` in the dictionary `id` of the update.
fn set(inc: &mut IncrementalDocument, id: ObjectId, key: &str, value: Object) -> Result<(), SealError> {
    inc.new_document
        .get_dictionary_mut(id)
        .map_err(|_| SealError::Structure(format!("object {} is not a dictionary", id.0)))?
        .set(key, value);
    Ok(())
}

/// The offset of the only occurrence of `needle` in `haystack`.
fn find_unique(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = find(haystack, needle, 0)?;
    find(haystack, needle, first + 1).is_none().then_some(first)
}

/// The offset of the first occurrence of `needle` in `haystack` at or after `from`.
pub(super) fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        let offset = haystack[i..=haystack.len() - needle.len()].iter().position(|&b| b == first)?;
        i += offset;
        if &haystack[i + 1..i + needle.len()] == rest {
            return Some(i);
        }
        i += 1;
    }
    None
}
