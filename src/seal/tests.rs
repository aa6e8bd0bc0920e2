//! Tests with the real tools: poppler's `pdfsig` (and NSS's `certutil`, when installed, to
//! make `pdfsig` trust our CA), `qpdf --check`.

use super::*;
use lopdf::{Document, Object};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::pdf::append::tests::{assert_qpdf_clean, run};

/// A PDF from `render::pdf` with the embedded Noto Serif, one entry of `pages` per page.
fn render(pages: &[&[&str]]) -> Vec<u8> {
    crate::pdf::append::tests::render("F1", pages)
}

fn agreement() -> Vec<u8> {
    render(&[
        &["Business Associate Agreement", "Covered Entity: Zoë Ångström"],
        &["Section 2. Permitted uses"],
        &["Section 3. Term and termination"],
        &["Executed signature page", "Signed by Łukasz Żółć"],
        &["Certificate of completion", "Envelope 7f3a, both parties signed"],
    ])
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn has_certutil() -> bool {
    Command::new("certutil").arg("-H").output().is_ok()
}

/// An NSS database that trusts `keys`' CA, if `certutil` is installed.
fn nss_db(keys: &SealKeys) -> Option<tempfile::TempDir> {
    if !has_certutil() {
        eprintln!("certutil not found (Debian: libnss3-tools): pdfsig runs without trusting our CA");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sql:{}", dir.path().display());
    let status = Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]).status().unwrap();
    assert!(status.success());
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, keys.ca_pem()).unwrap();
    let ca = ca.to_str().unwrap();
    let status = Command::new("certutil")
        .args(["-A", "-d", &db, "-n", "Countersign seal CA", "-t", "C,C,C", "-a", "-i", ca])
        .status()
        .unwrap();
    assert!(status.success());
    Some(dir)
}

/// `pdfsig` on `pdf`, trusting `keys`' CA when an NSS database could be made; (output,
/// whether the CA was trusted).
fn pdfsig(pdf: &[u8], keys: &SealKeys) -> (String, bool) {
    let db = nss_db(keys);
    let (_, out) = match &db {
        Some(dir) => run("pdfsig", &["-nssdir", &format!("sql:{}", dir.path().display())], pdf),
        None => run("pdfsig", &[], pdf),
    };
    (out, db.is_some())
}

fn keys_in(dir: &Path) -> SealKeys {
    SealKeys::load_or_create(&dir.join("seal")).unwrap()
}

fn assert_pdfsig_valid(pdf: &[u8], keys: &SealKeys) -> String {
    let (out, trusted) = pdfsig(pdf, keys);
    assert!(out.contains("Signature is Valid"), "{out}");
    assert!(out.contains("Total document signed"), "{out}");
    assert!(out.contains("Signature Type: ETSI.CAdES.detached"), "{out}");
    assert!(out.contains("Signer Certificate Common Name: Countersign document seal"), "{out}");
    assert!(out.contains("Signing Hash Algorithm: SHA-256"), "{out}");
    if trusted {
        assert!(out.contains("Certificate is Trusted"), "{out}");
    } else {
        // Without an NSS database that trusts our CA (no certutil), poppler 22 says "isn't
        // Trusted"; other versions say "is unknown".
        let untrusted = ["Certificate issuer isn't Trusted", "Certificate issuer is unknown", "Certificate is Trusted"];
        assert!(untrusted.iter().any(|u| out.contains(u)), "{out}");
    }
    out
}

#[test]
fn sealed_pdf_is_valid_for_pdfsig_and_qpdf() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    assert_qpdf_clean(&original);
    let t = now();
    let sealed = seal(&original, &keys, t).unwrap();

    assert!(sealed.starts_with(&original), "the input must be a byte prefix");
    assert!(sealed.len() - original.len() <= 8 * 1024, "the seal adds {} bytes", sealed.len() - original.len());
    assert_qpdf_clean(&sealed);
    let out = assert_pdfsig_valid(&sealed, &keys);
    eprintln!("{out}");
    let (ok, info) = run("pdfinfo", &[], &sealed);
    assert!(ok && info.contains("Pages:           5"), "{info}");

    let report = verify(&sealed, &keys);
    assert_eq!(
        report,
        SealReport {
            sealed: true,
            valid: true,
            covers_whole_file: true,
            modified_after_seal: false,
            certificate_fingerprint: Some(keys.fingerprint()),
            certificate_subject: Some("CN=Countersign document seal,O=Countersign".into()),
            signed_by_our_ca: true,
            signing_time: Some(t),
            timestamped: false,
            timestamp_time: None,
            timestamp_authority: None,
            timestamp_signature_checked: false,
            detail: report.detail.clone(),
        }
    );
    assert!(report.detail.contains("seal-1"), "{}", report.detail);

    // The structure: one field on the last page, in /AcroForm with /SigFlags 3.
    let doc = Document::load_mem(&sealed).unwrap();
    let catalog = doc.catalog().unwrap();
    let form = catalog.get(b"AcroForm").unwrap().as_dict().unwrap();
    assert_eq!(form.get(b"SigFlags").unwrap().as_i64().unwrap(), 3);
    let fields = form.get(b"Fields").unwrap().as_array().unwrap();
    assert_eq!(fields.len(), 1);
    let field_id = fields[0].as_reference().unwrap();
    let field = doc.get_dictionary(field_id).unwrap();
    assert_eq!(field.get(b"FT").unwrap().as_name().unwrap(), b"Sig");
    assert_eq!(field.get(b"F").unwrap().as_i64().unwrap(), 132);
    let last = doc.page_iter().last().unwrap();
    assert_eq!(field.get(b"P").unwrap().as_reference().unwrap(), last);
    let annots = doc.get_dictionary(last).unwrap().get(b"Annots").unwrap().as_array().unwrap();
    assert!(annots.contains(&Object::Reference(field_id)));
    let sig = doc.get_dictionary(field.get(b"V").unwrap().as_reference().unwrap()).unwrap();
    assert_eq!(sig.get(b"SubFilter").unwrap().as_name().unwrap(), b"ETSI.CAdES.detached");
    assert_eq!(sig.get(b"Filter").unwrap().as_name().unwrap(), b"Adobe.PPKLite");
    assert!(sig.get(b"M").unwrap().as_str().unwrap().starts_with(b"D:20"));
    assert_eq!(catalog.get(b"Version").unwrap().as_name().unwrap(), b"1.7");
}

#[test]
fn cms_carries_the_pades_attributes_and_both_certificates() {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::{Decode, Encode};
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let sealed = seal(&agreement(), &keys, now()).unwrap();
    let doc = Document::load_mem(&sealed).unwrap();
    let sig = doc.objects.values().filter_map(|o| o.as_dict().ok()).find(|d| d.has(b"ByteRange")).unwrap();
    let contents = sig.get(b"Contents").unwrap().as_str().unwrap();
    let mut reader = der::SliceReader::new(contents).unwrap();
    let info = <ContentInfo as der::Decode>::decode(&mut reader).unwrap();
    let sd: SignedData = info.content.decode_as().unwrap();
    assert_eq!(sd.certificates.as_ref().unwrap().0.len(), 2);
    let signer = sd.signer_infos.0.get(0).unwrap();
    let attrs: Vec<String> = signer.signed_attrs.as_ref().unwrap().iter().map(|a| a.oid.to_string()).collect();
    for oid in [oid::CONTENT_TYPE, oid::MESSAGE_DIGEST, oid::SIGNING_TIME, oid::SIGNING_CERTIFICATE_V2] {
        assert!(attrs.contains(&oid.to_string()), "{oid} missing from {attrs:?}");
    }
    let ess = signer.signed_attrs.as_ref().unwrap().iter().find(|a| a.oid == oid::SIGNING_CERTIFICATE_V2).unwrap();
    let ess: sign::SigningCertificateV2 = ess.values.get(0).unwrap().decode_as().unwrap();
    let seal_der = keys.current.cert.to_der().unwrap();
    use sha2::Digest;
    assert_eq!(ess.certs[0].cert_hash.as_bytes(), sha2::Sha256::digest(&seal_der).as_slice());
    assert!(ess.certs[0].hash_algorithm.is_none(), "SHA-256 is the DER default and must be omitted");
    // The sealing certificate: our subject, digitalSignature + nonRepudiation, the EKUs.
    let cert = x509_cert::Certificate::from_der(&seal_der).unwrap();
    assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=Countersign document seal,O=Countersign");
    let (ok, text) = {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(keys.seal_cert_pem().as_bytes()).unwrap();
        let out = Command::new("openssl").args(["x509", "-noout", "-text", "-in"]).arg(f.path()).output();
        match out {
            Ok(out) => (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()),
            Err(_) => (false, String::new()),
        }
    };
    if ok {
        assert!(text.contains("Digital Signature, Non Repudiation"), "{text}");
        assert!(text.contains("E-mail Protection"), "{text}");
        assert!(text.contains("1.3.6.1.5.5.7.3.36") || text.contains("Document Signing"), "{text}");
    }
}

/// The `/Contents` hole of the last signature: (offset of `<`, offset after `>`).
fn hole(pdf: &[u8]) -> (usize, usize) {
    let doc = Document::load_mem(pdf).unwrap();
    let range = doc
        .objects
        .values()
        .filter_map(|o| o.as_dict().ok())
        .filter_map(|d| d.get(b"ByteRange").ok())
        .map(|r| r.as_array().unwrap().iter().map(|n| n.as_i64().unwrap() as usize).collect::<Vec<_>>())
        .max_by_key(|r| r[2] + r[3])
        .unwrap();
    (range[0] + range[1], range[2])
}

#[test]
fn a_changed_byte_is_a_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    let sealed = seal(&original, &keys, now()).unwrap();
    let hole = hole(&sealed);
    // In the header's binary comment, in the middle of the original, at the start of the
    // update, and in the trailer after the hole.
    for at in [10, original.len() / 2, original.len() + 5, sealed.len() - 30] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        let report = verify(&bad, &keys);
        assert!(report.sealed && !report.valid, "byte {at}: {report:?}");
        assert!(report.detail.contains("digest mismatch"), "byte {at}: {}", report.detail);
        if at == 10 || at == original.len() / 2 {
            let (out, _) = pdfsig(&bad, &keys);
            assert!(out.contains("Digest Mismatch") || out.contains("Signature is Invalid"), "byte {at}:\n{out}");
            assert!(!out.contains("Signature is Valid"), "byte {at}:\n{out}");
        }
    }
    // A changed /ByteRange no longer frames the signature: sealed, not valid.
    let range_at = sealed[..hole.0].windows(10).rposition(|w| w == b"/ByteRange").unwrap();
    let mut bad = sealed.clone();
    bad[range_at + 14] = if bad[range_at + 14] == b'1' { b'2' } else { b'1' };
    let report = verify(&bad, &keys);
    assert!(report.sealed && !report.valid, "{report:?}");
    let (out, _) = pdfsig(&bad, &keys);
    assert!(!out.contains("Signature is Valid"), "{out}");
    // A change inside the signature itself breaks the CMS signature, not the digest.
    // (The ECDSA value is the last thing in the DER, before the zero padding.)
    let mut bad = sealed.clone();
    let last_digit = sealed[..hole.1 - 1].iter().rposition(|&b| b != b'0').unwrap();
    let in_signature = last_digit - 20;
    assert!(in_signature > hole.0);
    bad[in_signature] = if bad[in_signature] == b'A' { b'B' } else { b'A' };
    let report = verify(&bad, &keys);
    assert!(report.sealed && !report.valid, "{report:?}");
}

#[test]
fn bytes_after_the_seal_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let sealed = seal(&agreement(), &keys, now()).unwrap();
    let mut more = sealed.clone();
    more.extend_from_slice(b"\n% appended later\n");
    let report = verify(&more, &keys);
    assert!(report.sealed && report.valid && report.signed_by_our_ca, "{report:?}");
    assert!(report.modified_after_seal && !report.covers_whole_file, "{report:?}");
    assert!(report.detail.contains("18 bytes were added"), "{}", report.detail);
    let (out, _) = pdfsig(&more, &keys);
    assert!(out.contains("Not total document signed"), "{out}");
}

#[test]
fn keys_are_private_and_reloaded_identically() {
    let dir = tempfile::tempdir().unwrap();
    let seal_dir = dir.path().join("data").join("seal");
    let keys = SealKeys::load_or_create(&seal_dir).unwrap();
    let mode = |name: &str| std::fs::metadata(seal_dir.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca-key.pem"), 0o600);
    assert_eq!(mode("seal-1-key.pem"), 0o600);
    assert_eq!(std::fs::metadata(&seal_dir).unwrap().permissions().mode() & 0o777, 0o700);
    for name in ["ca.pem", "seal-1.pem"] {
        let text = std::fs::read_to_string(seal_dir.join(name)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{name}");
    }
    assert!(
        std::fs::read_to_string(seal_dir.join("seal-1-key.pem")).unwrap().starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(keys.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(keys.ca_pem(), std::fs::read_to_string(seal_dir.join("ca.pem")).unwrap());
    let fp = keys.fingerprint();
    assert_eq!(fp.len(), 95);
    assert!(fp.bytes().all(|b| b == b':' || b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{fp}");
    // openssl agrees on the fingerprint format and value, where it is installed.
    if let Ok(out) = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(seal_dir.join("seal-1.pem"))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&fp), "{text} vs {fp}");
    }

    let files = |dir: &Path| {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let before: Vec<(String, Vec<u8>)> =
        files(&seal_dir).into_iter().map(|n| (n.clone(), std::fs::read(seal_dir.join(&n)).unwrap())).collect();
    let again = SealKeys::load_or_create(&seal_dir).unwrap();
    assert_eq!(again.fingerprint(), fp);
    assert_eq!(again.ca_pem(), keys.ca_pem());
    assert_eq!(again.key.to_bytes(), keys.key.to_bytes());
    let after: Vec<(String, Vec<u8>)> =
        files(&seal_dir).into_iter().map(|n| (n.clone(), std::fs::read(seal_dir.join(&n)).unwrap())).collect();
    assert_eq!(before, after, "reloading must not rewrite anything");
    assert_eq!(files(&seal_dir), [".lock", "ca-key.pem", "ca.pem", "seal-1-key.pem", "seal-1.pem"]);

    // A seal made with the first keys verifies with the reloaded ones.
    let sealed = seal(&agreement(), &keys, now()).unwrap();
    assert!(verify(&sealed, &again).signed_by_our_ca);

    // A key others can read is refused.
    let key = seal_dir.join("seal-1-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SealKeys::load_or_create(&seal_dir).unwrap_err();
    assert!(matches!(err, SealError::Keys(ref m) if m.contains("0600")), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A key that is not the certificate's is refused.
    std::fs::copy(seal_dir.join("ca-key.pem"), &key).unwrap();
    let err = SealKeys::load_or_create(&seal_dir).unwrap_err();
    assert!(matches!(err, SealError::Keys(ref m) if m.contains("does not match")), "{err}");
    // A garbled certificate is an error, not a new CA.
    std::fs::write(seal_dir.join("ca.pem"), "not a certificate").unwrap();
    assert!(SealKeys::load_or_create(&seal_dir).is_err());
}

#[test]
fn rotation_keeps_old_seals_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let seal_dir = dir.path().join("seal");
    let first = SealKeys::load_or_create(&seal_dir).unwrap();
    let old_seal = seal(&agreement(), &first, now()).unwrap();

    let second = SealKeys::rotate(&seal_dir).unwrap();
    assert_eq!(second.current_index(), 2);
    assert_ne!(second.fingerprint(), first.fingerprint());
    assert_eq!(second.ca_pem(), first.ca_pem());
    assert_eq!(second.known_fingerprints(), vec![first.fingerprint(), second.fingerprint()]);
    for name in ["seal-1.pem", "seal-1-key.pem", "seal-2.pem", "seal-2-key.pem"] {
        assert!(seal_dir.join(name).exists(), "{name}");
    }
    // Reloading picks the rotated certificate.
    assert_eq!(SealKeys::load_or_create(&seal_dir).unwrap().fingerprint(), second.fingerprint());

    let report = verify(&old_seal, &second);
    assert!(report.valid && report.signed_by_our_ca && report.covers_whole_file, "{report:?}");
    assert_eq!(report.certificate_fingerprint, Some(first.fingerprint()));
    assert!(report.detail.contains("older sealing certificate"), "{}", report.detail);

    let new_seal = seal(&agreement(), &second, now()).unwrap();
    let report = verify(&new_seal, &second);
    assert!(report.valid && report.signed_by_our_ca, "{report:?}");
    assert_eq!(report.certificate_fingerprint, Some(second.fingerprint()));
    assert_pdfsig_valid(&new_seal, &second);
    assert_pdfsig_valid(&old_seal, &second);

    let third = SealKeys::rotate(&seal_dir).unwrap();
    assert_eq!(third.current_index(), 3);
    assert!(verify(&old_seal, &third).signed_by_our_ca);
    assert!(verify(&new_seal, &third).signed_by_our_ca);
}

#[test]
fn another_installations_seal_is_valid_but_not_ours() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ours, theirs) = (keys_in(a.path()), keys_in(b.path()));
    assert_ne!(ours.ca_pem(), theirs.ca_pem());
    let sealed = seal(&agreement(), &theirs, now()).unwrap();
    let report = verify(&sealed, &ours);
    assert!(report.sealed && report.valid && !report.signed_by_our_ca, "{report:?}");
    assert_eq!(report.certificate_fingerprint, Some(theirs.fingerprint()));
    assert!(report.detail.contains("not by a Countersign sealing certificate"), "{}", report.detail);
}

#[test]
fn sealing_a_sealed_file_and_other_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let once = seal(&agreement(), &keys, now()).unwrap();
    let twice = seal(&once, &keys, now() + 1).unwrap();
    assert!(twice.starts_with(&once));
    assert_qpdf_clean(&twice);
    let report = verify(&twice, &keys);
    assert!(report.valid && report.covers_whole_file && report.signed_by_our_ca, "{report:?}");
    let (out, _) = pdfsig(&twice, &keys);
    assert!(out.contains("Signature #2"), "{out}");
    assert_eq!(out.matches("Signature is Valid").count(), 2, "{out}");
    let doc = Document::load_mem(&twice).unwrap();
    let form = doc.catalog().unwrap().get(b"AcroForm").unwrap().as_dict().unwrap();
    let names: Vec<Vec<u8>> = form
        .get(b"Fields")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| doc.get_dictionary(f.as_reference().unwrap()).unwrap().get(b"T").unwrap().as_str().unwrap().to_vec())
        .collect();
    assert_eq!(names, [b"Countersign seal".to_vec(), b"Countersign seal 2".to_vec()]);

    // An original written with a cross-reference stream and object streams.
    let mut doc = Document::load_mem(&agreement()).unwrap();
    let mut modern = Vec::new();
    doc.save_modern(&mut modern).unwrap();
    assert_qpdf_clean(&modern);
    let sealed = seal(&modern, &keys, now()).unwrap();
    assert!(sealed.starts_with(&modern));
    assert_qpdf_clean(&sealed);
    assert_pdfsig_valid(&sealed, &keys);
    assert!(verify(&sealed, &keys).valid);

    // An original with an indirect /AcroForm holding an indirect /Fields array, and an
    // indirect /Annots array on its last page.
    let mut doc = Document::load_mem(&agreement()).unwrap();
    let fields = doc.add_object(Object::Array(vec![]));
    let form =
        doc.add_object(lopdf::dictionary! { "Fields" => fields, "DA" => Object::string_literal("/Helv 0 Tf 0 g") });
    let root = doc.trailer.get(b"Root").unwrap().as_reference().unwrap();
    doc.get_dictionary_mut(root).unwrap().set("AcroForm", form);
    let last = doc.page_iter().last().unwrap();
    let annots = doc.add_object(Object::Array(vec![]));
    doc.get_dictionary_mut(last).unwrap().set("Annots", annots);
    let mut with_form = Vec::new();
    doc.save_to(&mut with_form).unwrap();
    let sealed = seal(&with_form, &keys, now()).unwrap();
    assert_qpdf_clean(&sealed);
    assert_pdfsig_valid(&sealed, &keys);
    let doc = Document::load_mem(&sealed).unwrap();
    assert_eq!(doc.get_object(fields).unwrap().as_array().unwrap().len(), 1);
    assert_eq!(doc.get_object(annots).unwrap().as_array().unwrap().len(), 1);
    assert_eq!(doc.get_dictionary(form).unwrap().get(b"SigFlags").unwrap().as_i64().unwrap(), 3);
}

#[test]
fn unsealed_damaged_and_foreign_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    let report = verify(&original, &keys);
    assert!(!report.sealed && !report.valid && report.certificate_fingerprint.is_none(), "{report:?}");
    assert!(!verify(b"", &keys).sealed);

    for junk in [&b""[..], b"hello", b"%PDF-1.7\n%%EOF", &original[..original.len() / 2], &[0xff; 512]] {
        assert!(seal(junk, &keys, now()).is_err());
    }
    // A signing time the sealing certificate does not cover.
    assert!(matches!(seal(&original, &keys, 946_684_800), Err(SealError::Keys(ref m)) if m.contains("validity")));
    assert!(seal(&original, &keys, now() + 30 * 365 * 86_400).is_err());
    let mut shifted = b"junk".to_vec();
    shifted.extend_from_slice(&original);
    assert!(matches!(seal(&shifted, &keys, now()), Err(SealError::Parse(_))));

    // Truncations of a sealed file never panic and are never valid and whole.
    let sealed = seal(&original, &keys, now()).unwrap();
    for cut in (0..sealed.len()).step_by(97) {
        let report = verify(&sealed[..cut], &keys);
        assert!(!(report.valid && report.covers_whole_file), "cut {cut}: {report:?}");
    }
    // A /ByteRange that frames no signature: reported as a damaged one.
    let fake = [&original[..], b"\n% /ByteRange [0 10 20 30] /ByteRange[0 99999999 5 5]\n"].concat();
    let report = verify(&fake, &keys);
    assert!(report.sealed && !report.valid && report.detail.contains("damaged"), "{report:?}");

    // Encrypted input is refused.
    let tmp = tempfile::tempdir().unwrap();
    let (plain, locked) = (tmp.path().join("plain.pdf"), tmp.path().join("locked.pdf"));
    std::fs::write(&plain, &original).unwrap();
    let status =
        Command::new("qpdf").args(["--encrypt", "", "owner", "256", "--"]).arg(&plain).arg(&locked).status().unwrap();
    assert!(status.success());
    let locked = std::fs::read(&locked).unwrap();
    assert!(matches!(seal(&locked, &keys, now()), Err(SealError::Structure(_))));
}

#[test]
fn the_seal_adds_at_most_eight_kilobytes() {
    // Time is measured by the `seal_final_pdf` bench, never asserted in tests.
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    let sealed = seal(&original, &keys, now()).unwrap();
    let added = sealed.len() - original.len();
    assert!(added <= 8 * 1024, "the seal adds {added} bytes");
}

/// Runs openssl with `args` in `dir`; false if openssl is missing or fails.
fn openssl(dir: &Path, args: &[&str]) -> bool {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            false
        }
        Err(_) => false,
    }
}

/// A PKCS#12 file made by OpenSSL: a P-256 CA (or an RSA one with `rsa`), a leaf with
/// emailProtection, exported with `extra` options. `None` without openssl.
fn openssl_p12(dir: &Path, rsa: bool, extra: &[&str]) -> Option<Vec<u8>> {
    let key = if rsa {
        ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    } else {
        ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    std::fs::write(
        dir.join("leaf.cnf"),
        "[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n\
         extendedKeyUsage=emailProtection\n",
    )
    .unwrap();
    let steps: [&[&str]; 5] = [
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Acme Signing CA/O=Acme",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
        &["genpkey", key[0], key[1], key[2], key[3], "-out", "leaf.key"],
        &["req", "-new", "-key", "leaf.key", "-subj", "/CN=Countersign document seal/O=Acme", "-out", "leaf.csr"],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "leaf.cnf",
            "-extensions",
            "v3",
            "-out",
            "leaf.pem",
        ],
    ];
    for step in steps {
        if !openssl(dir, step) {
            return None;
        }
    }
    let mut export = vec![
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.key",
        "-in",
        "leaf.pem",
        "-certfile",
        "ca.pem",
        "-passout",
        "pass:s3cret",
    ];
    export.extend_from_slice(extra);
    export.extend_from_slice(&["-out", "seal.p12"]);
    if !openssl(dir, &export) {
        return None;
    }
    Some(std::fs::read(dir.join("seal.p12")).unwrap())
}

#[test]
fn keys_from_a_pkcs12_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(p12) = openssl_p12(tmp.path(), false, &[]) else {
        eprintln!("openssl not available: PKCS#12 test skipped");
        return;
    };
    assert!(matches!(SealKeys::from_pkcs12(&p12, "wrong"), Err(SealError::Keys(ref m)) if m.contains("password")));
    let keys = SealKeys::from_pkcs12(&p12, "s3cret").unwrap();
    assert_eq!(keys.ca_pem(), std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap());
    assert_eq!(keys.current_index(), 0);
    let sealed = seal(&agreement(), &keys, now()).unwrap();
    assert_qpdf_clean(&sealed);
    assert_pdfsig_valid(&sealed, &keys);
    let report = verify(&sealed, &keys);
    assert!(report.valid && report.signed_by_our_ca && report.covers_whole_file, "{report:?}");
    assert_eq!(report.certificate_fingerprint, Some(keys.fingerprint()));

    // Switching from generated keys keeps their seals verifiable with also_trust.
    let generated = keys_in(tmp.path());
    let old_seal = seal(&agreement(), &generated, now()).unwrap();
    assert!(!verify(&old_seal, &keys).signed_by_our_ca);
    let both = SealKeys::from_pkcs12(&p12, "s3cret").unwrap().also_trust(&generated);
    assert_eq!(both.fingerprint(), keys.fingerprint());
    assert!(verify(&old_seal, &both).signed_by_our_ca);
    assert!(verify(&sealed, &both).signed_by_our_ca);

    // Unsupported: legacy encryption (where this OpenSSL can still write it), RSA keys.
    let legacy = tempfile::tempdir().unwrap();
    if let Some(p12) = openssl_p12(legacy.path(), false, &["-legacy"]) {
        let err = SealKeys::from_pkcs12(&p12, "s3cret").unwrap_err();
        assert!(err.to_string().contains("legacy"), "{err}");
    }
    let rsa = tempfile::tempdir().unwrap();
    let p12 = openssl_p12(rsa.path(), true, &[]).unwrap();
    let err = SealKeys::from_pkcs12(&p12, "s3cret").unwrap_err();
    assert!(err.to_string().contains("P-256"), "{err}");
    assert!(SealKeys::from_pkcs12(b"not a p12", "x").is_err());
}

#[test]
fn existing_keys_load_from_a_read_only_directory() {
    let dir = tempfile::tempdir().unwrap();
    let seal_dir = dir.path().join("seal");
    let keys = SealKeys::load_or_create(&seal_dir).unwrap();
    std::fs::remove_file(seal_dir.join(".lock")).unwrap();
    std::fs::set_permissions(&seal_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let again = SealKeys::load_or_create(&seal_dir);
    std::fs::set_permissions(&seal_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(again.unwrap().fingerprint(), keys.fingerprint());
    assert!(!seal_dir.join(".lock").exists());
}

/// A timestamp authority on loopback: `openssl ts -reply` behind a tiny HTTP handler. Its CA,
/// key and certificate (P-256, extendedKeyUsage critical timeStamping) live in `dir`.
struct OpensslTsa {
    url: String,
    dir: tempfile::TempDir,
}

const TSA_CNF: &str = "\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = .
serial = ./tsaserial
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_alg = sha256
";

/// Starts an [`OpensslTsa`]; `None` (with a note) if openssl is missing.
fn openssl_tsa() -> Option<OpensslTsa> {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not available: timestamp test skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tsa.cnf"), TSA_CNF).unwrap();
    std::fs::write(d.join("tsaserial"), "01\n").unwrap();
    std::fs::write(
        d.join("tsa-ext.cnf"),
        "[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n\
         extendedKeyUsage=critical,timeStamping\n",
    )
    .unwrap();
    let steps: [&[&str]; 5] = [
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key"],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Test TSA CA/O=Loopback",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
        &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "tsa.key"],
        &["req", "-new", "-key", "tsa.key", "-subj", "/CN=Test TSA/O=Loopback", "-out", "tsa.csr"],
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "tsa-ext.cnf",
            "-extensions",
            "v3",
            "-out",
            "tsa.crt",
        ],
    ];
    for step in steps {
        assert!(openssl(d, step), "openssl {step:?}");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tsa", listener.local_addr().unwrap());
    let root = d.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = answer_timestamp_request(stream, &root);
        }
    });
    Some(OpensslTsa { url, dir })
}

/// Reads one POST, runs `openssl ts -reply` on its body, writes the reply.
fn answer_timestamp_request(mut s: std::net::TcpStream, dir: &Path) -> std::io::Result<()> {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let body_start = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&chunk[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..body_start]).to_lowercase();
    assert!(head.starts_with("post /tsa http/1.1"), "{head}");
    assert!(head.contains("content-type: application/timestamp-query"), "{head}");
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap();
    while raw.len() < body_start + length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    std::fs::write(dir.join("req.tsq"), &raw[body_start..])?;
    let args = [
        "ts",
        "-reply",
        "-config",
        "tsa.cnf",
        "-queryfile",
        "req.tsq",
        "-inkey",
        "tsa.key",
        "-signer",
        "tsa.crt",
        "-out",
        "resp.tsr",
    ];
    let reply = if openssl(dir, &args) { std::fs::read(dir.join("resp.tsr"))? } else { Vec::new() };
    let status = if reply.is_empty() { "500 Internal Server Error" } else { "200 OK" };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/timestamp-reply\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&reply)
}

/// The CMS SignedData in the last signature's `/Contents`.
fn signed_data_of(pdf: &[u8]) -> cms::signed_data::SignedData {
    let (start, end) = hole(pdf);
    let contents = hex::decode(&pdf[start + 1..end - 1]).unwrap();
    let mut reader = der::SliceReader::new(&contents).unwrap();
    let info = <cms::content_info::ContentInfo as der::Decode>::decode(&mut reader).unwrap();
    info.content.decode_as().unwrap()
}

#[test]
fn a_b_t_seal_carries_a_timestamp_that_verify_pdfsig_and_openssl_accept() {
    use der::Encode;
    use sha2::Digest;
    let Some(tsa) = openssl_tsa() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    let t = now();
    let timestamper = http_timestamper(&tsa.url);
    let sealed = seal_with(&original, &keys, t, Some(&timestamper)).unwrap();
    assert!(sealed.starts_with(&original));
    eprintln!("B-T seal adds {} bytes", sealed.len() - original.len());
    assert_qpdf_clean(&sealed);

    let report = verify(&sealed, &keys);
    assert!(report.valid && report.signed_by_our_ca && report.covers_whole_file, "{report:?}");
    assert!(report.timestamped, "{report:?}");
    let gen_time = report.timestamp_time.unwrap();
    assert!(gen_time + 120 >= t && gen_time <= now() + 120, "genTime {gen_time} vs {t}");
    assert!(report.timestamp_authority.as_deref().is_some_and(|a| a.contains("CN=Test TSA")), "{report:?}");
    assert!(report.timestamp_signature_checked, "{report:?}");
    assert!(
        report.detail.contains("Timestamped (RFC 3161) by") && report.detail.contains("CN=Test TSA"),
        "{}",
        report.detail
    );

    // pdfsig still calls it valid (poppler 22 does not show the timestamp; see the README).
    let out = assert_pdfsig_valid(&sealed, &keys);
    eprintln!("{out}");

    // openssl checks the token against the TSA's CA and the signature value's SHA-256.
    let sd = signed_data_of(&sealed);
    let signer = sd.signer_infos.0.get(0).unwrap();
    let attr = signer.unsigned_attrs.as_ref().unwrap().iter().find(|a| a.oid == oid::SIGNATURE_TIMESTAMP_TOKEN);
    let token = attr.unwrap().values.get(0).unwrap().to_der().unwrap();
    std::fs::write(tsa.dir.path().join("token.der"), &token).unwrap();
    let imprint = hex::encode(sha2::Sha256::digest(signer.signature.as_bytes()));
    let args = ["ts", "-verify", "-in", "token.der", "-token_in", "-digest", &imprint, "-CAfile", "ca.pem"];
    assert!(openssl(tsa.dir.path(), &args), "openssl ts -verify refused the token");
    let wrong = hex::encode([0u8; 32]);
    let args = ["ts", "-verify", "-in", "token.der", "-token_in", "-digest", &wrong, "-CAfile", "ca.pem"];
    assert!(!openssl(tsa.dir.path(), &args));

    // A second B-T seal on top verifies too.
    let twice = seal_with(&sealed, &keys, now(), Some(&timestamper)).unwrap();
    assert!(verify(&twice, &keys).timestamped);
    assert_qpdf_clean(&twice);
}

#[test]
fn a_token_over_another_signature_is_not_valid() {
    use der::{Decode, Encode};
    let Some(tsa) = openssl_tsa() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let original = agreement();
    let t = now();
    let timestamper = http_timestamper(&tsa.url);
    let a = seal_with(&original, &keys, t, Some(&timestamper)).unwrap();
    // Another signing time, so another signature (ECDSA here is deterministic, RFC 6979).
    let b = seal_with(&original, &keys, t + 1, Some(&timestamper)).unwrap();
    assert!(verify(&b, &keys).valid);
    // B's CMS with A's timestamp token: /Contents is not signed, so only the imprint tells.
    let token_of = |sd: &cms::signed_data::SignedData| sd.signer_infos.0.get(0).unwrap().unsigned_attrs.clone();
    let mut sd = signed_data_of(&b);
    let mut signer = sd.signer_infos.0.get(0).unwrap().clone();
    signer.unsigned_attrs = token_of(&signed_data_of(&a));
    sd.signer_infos = cms::signed_data::SignerInfos(der::asn1::SetOfVec::try_from(vec![signer]).unwrap());
    let info = cms::content_info::ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: der::asn1::Any::from_der(&sd.to_der().unwrap()).unwrap(),
    };
    let cms = hex::encode_upper(info.to_der().unwrap());
    let (start, end) = hole(&b);
    let mut spliced = b.clone();
    spliced[start + 1..end - 1].fill(b'0');
    spliced[start + 1..start + 1 + cms.len()].copy_from_slice(cms.as_bytes());
    let report = verify(&spliced, &keys);
    assert!(report.sealed && !report.valid && !report.timestamped, "{report:?}");
    assert!(report.detail.contains("message imprint mismatch"), "{}", report.detail);
}

#[test]
fn an_unreachable_timestamp_authority_is_a_timestamp_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let url = format!("http://127.0.0.1:{port}/tsa");
    let err = seal_with(&agreement(), &keys, now(), Some(&http_timestamper(&url))).unwrap_err();
    assert!(matches!(err, SealError::Timestamp(ref m) if m.contains(&url)), "{err}");
    let err = seal_with(&agreement(), &keys, now(), Some(&http_timestamper("https://tsa.example"))).unwrap_err();
    assert!(matches!(err, SealError::Timestamp(ref m) if m.contains("http://")), "{err}");
    // A server that answers with an HTTP error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            use std::io::Read;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let err = seal_with(&agreement(), &keys, now(), Some(&http_timestamper(&url))).unwrap_err();
    assert!(matches!(err, SealError::Timestamp(ref m) if m.contains("503")), "{err}");
}

#[test]
fn many_byte_range_markers_cost_one_scan_and_a_few_bounded_holes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_in(dir.path());
    let sealed = seal(&agreement(), &keys, now()).unwrap();
    // Markers whose ranges each frame a hole of nearly the whole sealed file (non-hex inside):
    // an earlier verifier decoded every one of them, quadratic in the number of markers.
    let open = sealed.iter().position(|&b| b == b'<').unwrap();
    let close = sealed.iter().rposition(|&b| b == b'>').unwrap() + 1;
    let mut pdf = sealed.clone();
    for _ in 0..20_000 {
        pdf.extend_from_slice(format!("/ByteRange [0 {open} {close} 0]\n").as_bytes());
    }
    verify::HOLE_BYTES_READ.with(|n| n.set(0));
    let report = verify(&pdf, &keys);
    let read = verify::HOLE_BYTES_READ.with(|n| n.get());
    assert!(report.sealed && !report.valid, "{report:?}");
    assert!(read <= verify::LAST_CANDIDATES * sealed.len(), "{read} hole bytes read for 20,000 markers");

    // A few unusable markers after a real seal leave the seal found: valid, modified after.
    let mut appended = sealed.clone();
    appended.extend_from_slice(b"\n% /ByteRange [x] /ByteRange [0 1 2]\n");
    let report = verify(&appended, &keys);
    assert!(report.sealed && report.valid && report.modified_after_seal, "{report:?}");
}
