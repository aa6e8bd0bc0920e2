//! Sealing keys from a configured PKCS#12 (`.p12`/`.pfx`) file instead of generated ones.
//!
//! Supported: an ECDSA P-256 key with its certificate and the issuing CA (plus any
//! intermediates) in the file, encrypted the way OpenSSL 3 and current Windows/macOS export
//! (PBES2: PBKDF2 + AES-CBC), or unencrypted. Not supported, with an error that says so: RSA
//! or other keys (the seal signs with ECDSA P-256), and the legacy RC2/3DES PKCS#12
//! encryption (`openssl pkcs12 -legacy`; re-export without it). The file's MAC is not checked:
//! a wrong password is caught when the key does not decrypt.

use cms::encrypted_data::EncryptedData;
use der::asn1::OctetString;
use der::{Decode, Encode};
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use pkcs12::cert_type::CertBag;
use pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::SafeBag;
use x509_cert::Certificate;

use super::certs::{Cert, cert_pem};
use super::{SealError, SealKeys};

const ID_DATA: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const PBES2: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");

impl SealKeys {
    /// Keys from a PKCS#12 file: its P-256 private key signs, its certificate for that key is
    /// the sealing certificate, and the certificate that issued it (which the file must
    /// contain, or the sealing certificate must be self-signed) is the CA that [`ca_pem`]
    /// returns and [`verify`](super::verify()) trusts. Every other certificate in the file is
    /// embedded in each seal, for validators that need intermediates.
    ///
    /// There is no `seal-N` numbering ([`current_index`] is 0) and no rotation: a new file is
    /// a new configuration. To keep verifying seals made with the generated keys, combine with
    /// [`also_trust`](SealKeys::also_trust).
    ///
    /// [`ca_pem`]: SealKeys::ca_pem
    /// [`current_index`]: SealKeys::current_index
    pub fn from_pkcs12(p12: &[u8], password: &str) -> Result<SealKeys, SealError> {
        let bad = |what: &str| SealError::Keys(format!("PKCS#12: {what}"));
        let pfx = Pfx::from_der(p12).map_err(|e| bad(&format!("not a PKCS#12 file ({e})")))?;
        if pfx.auth_safe.content_type != ID_DATA {
            return Err(bad("public-key integrity mode is not supported"));
        }
        let safe = pfx.auth_safe.content.decode_as::<OctetString>().map_err(|e| bad(&e.to_string()))?;
        let parts = Vec::<cms::content_info::ContentInfo>::from_der(safe.as_bytes())
            .map_err(|e| bad(&format!("authenticated safe: {e}")))?;

        let mut certs: Vec<Cert> = Vec::new();
        let mut keys: Vec<SigningKey> = Vec::new();
        for part in parts {
            let contents = if part.content_type == ID_DATA {
                part.content.decode_as::<OctetString>().map_err(|e| bad(&e.to_string()))?.as_bytes().to_vec()
            } else if part.content_type == ID_ENCRYPTED_DATA {
                let data: EncryptedData = part.content.decode_as().map_err(|e| bad(&e.to_string()))?;
                let info = data.enc_content_info;
                let ciphertext = info.encrypted_content.ok_or_else(|| bad("encrypted data without content"))?;
                decrypt(&info.content_enc_alg, ciphertext.as_bytes(), password)?
            } else {
                return Err(bad(&format!("unsupported content type {}", part.content_type)));
            };
            let bags = Vec::<SafeBag>::from_der(&contents)
                .map_err(|_| bad("cannot read the safe contents (wrong password?)"))?;
            for bag in bags {
                let value = explicit_value(&bag.bag_value).ok_or_else(|| bad("malformed bag"))?;
                if bag.bag_id == pkcs12::PKCS_12_CERT_BAG_OID {
                    let cert_bag = CertBag::from_der(value).map_err(|e| bad(&format!("certificate bag: {e}")))?;
                    if cert_bag.cert_id != pkcs12::PKCS_12_X509_CERT_OID {
                        continue;
                    }
                    let cert = Certificate::from_der(cert_bag.cert_value.as_bytes())
                        .map_err(|e| bad(&format!("certificate: {e}")))?;
                    certs.push(Cert::new(cert)?);
                } else if bag.bag_id == pkcs12::PKCS_12_PKCS8_KEY_BAG_OID {
                    let info = EncryptedPrivateKeyInfo::from_der(value).map_err(|e| bad(&format!("key bag: {e}")))?;
                    let pkcs8 = decrypt(&info.encryption_algorithm, info.encrypted_data.as_bytes(), password)?;
                    keys.push(p256_key(&pkcs8)?);
                } else if bag.bag_id == pkcs12::PKCS_12_KEY_BAG_OID {
                    keys.push(p256_key(value)?);
                }
            }
        }

        let [key]: [SigningKey; 1] = keys.try_into().map_err(|_| bad("the file must hold exactly one private key"))?;
        let position = certs
            .iter()
            .position(|c| c.p256_key().as_ref() == Some(key.verifying_key()))
            .ok_or_else(|| bad("no certificate for the private key"))?;
        let current = certs.remove(position);
        let ca = if current.issued_by(&current) {
            current.clone()
        } else {
            certs.iter().find(|c| current.issued_by(c)).cloned().ok_or_else(|| {
                bad("the certificate that issued the sealing certificate is not in the file (or is not P-256)")
            })?
        };
        let ca_pem = cert_pem(&ca.cert)?;
        let trusted = vec![ca.clone()];
        Ok(SealKeys {
            ca,
            ca_pem,
            ca_key: None,
            current,
            current_index: 0,
            key,
            older: Vec::new(),
            chain: certs,
            trusted,
        })
    }
}

/// The content of a `[0] EXPLICIT` value (the `pkcs12` crate hands the bag value over with
/// its context tag), or the bytes themselves if they are untagged.
fn explicit_value(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&0xa0) {
        return Some(bytes);
    }
    let any = der::AnyRef::from_der(bytes).ok()?;
    Some(any.value())
}

fn decrypt(
    algorithm: &x509_cert::spki::AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &str,
) -> Result<Vec<u8>, SealError> {
    let bad = |what: String| SealError::Keys(format!("PKCS#12: {what}"));
    if algorithm.oid != PBES2 {
        return Err(bad(format!(
            "legacy encryption {} is not supported; re-export the file with PBES2/AES \
             (OpenSSL 3's default, i.e. without -legacy)",
            algorithm.oid
        )));
    }
    let der = algorithm.to_der().map_err(|e| bad(e.to_string()))?;
    let scheme = pkcs5::EncryptionScheme::try_from(der.as_slice()).map_err(|e| bad(format!("encryption: {e}")))?;
    scheme.decrypt(password, ciphertext).map_err(|_| bad("cannot decrypt (wrong password?)".into()))
}

fn p256_key(pkcs8: &[u8]) -> Result<SigningKey, SealError> {
    SigningKey::from_pkcs8_der(pkcs8).map_err(|_| {
        SealError::Keys("PKCS#12: the private key is not an ECDSA P-256 key (the seal signs with P-256)".into())
    })
}
