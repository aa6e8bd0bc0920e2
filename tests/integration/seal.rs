//! The countersigned PDF carries a PAdES seal that standard tools validate: poppler's pdfsig
//! (with the Countersign CA trusted through an NSS database made by certutil), qpdf, and our
//! own verify — and one changed byte is caught by all of them.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::app::*;
use crate::helpers::*;

fn executed(app: &TestApp) -> (String, Vec<u8>) {
    let id = app.create(&example_text(DUA))["id"].as_str().expect("id").to_string();
    assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
    assert_eq!(app.sign(&app.sign_link("irene@cori.example"), "Irene Novak", "Principal Investigator").status, 200);
    assert_eq!(app.sign(&app.sign_link("grace@hvhs.example"), "Grace Kim", "Privacy Officer").status, 200);
    let pdf = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    (id, pdf)
}

/// Runs pdfsig on the bytes, trusting the CA in `ca_pem` when certutil is available.
fn pdfsig(pdf: &[u8], ca_pem: &str) -> (String, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("doc.pdf");
    std::fs::write(&file, pdf).expect("write");
    let nss = dir.path().join("nss");
    std::fs::create_dir(&nss).expect("nss dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("ca");
    let db = format!("sql:{}", nss.display());
    let trusted =
        Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]).status().is_ok_and(|s| s.success())
            && Command::new("certutil")
                .args(["-A", "-d", &db, "-n", "Countersign CA", "-t", "C,C,C", "-a"])
                .arg("-i")
                .arg(&ca)
                .status()
                .is_ok_and(|s| s.success());
    let mut cmd = Command::new("pdfsig");
    if trusted {
        cmd.args(["-nssdir", &db]);
    }
    let out = cmd.arg(&file).output().expect("pdfsig runs (poppler-utils)");
    (String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr), trusted)
}

#[test]
fn the_countersigned_pdf_is_sealed_and_pdfsig_validates_it() {
    let (app, dir) = spawn_app();
    let (id, pdf) = executed(&app);
    assert_qpdf_ok(&pdf);
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["final_sha256"], hex::encode(Sha256::digest(&pdf)).as_str(), "the sealed file is the archived one");

    let keys = countersign::seal::SealKeys::load_or_create(&dir.path().join("seal")).expect("seal keys");
    let (report, trusted) = pdfsig(&pdf, &keys.ca_pem());
    assert!(report.contains("Signature is Valid"), "{report}");
    assert!(report.contains("Total document signed"), "{report}");
    assert!(report.contains("ETSI.CAdES.detached"), "{report}");
    if trusted {
        assert!(report.contains("Certificate is Trusted"), "{report}");
    }
    // The certificate of completion names the sealing certificate.
    let text = fold(&pdftotext(&pdf));
    assert!(text.contains(&keys.fingerprint()), "certificate of completion names the seal's fingerprint");

    let (vm, _) = app.key_for("vendor_manager", None);
    let v = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &pdf).json();
    assert_eq!(v["match"], true);
    assert_eq!(v["seal"]["valid"], true);
    assert_eq!(v["seal"]["signed_by_our_ca"], true);
    assert_eq!(v["seal"]["modified_after_seal"], false);
    assert_eq!(v["seal"]["certificate_fingerprint"], keys.fingerprint().as_str());
    let public = app.req("POST", "/verify", None, "application/pdf", &pdf).json();
    assert_eq!(public["seal"]["valid"], true);
    assert_eq!(public["seal"]["signed_by_countersign"], true);
}

#[test]
fn one_changed_byte_in_the_signed_range_is_a_digest_mismatch_for_pdfsig_and_verify() {
    let (app, dir) = spawn_app();
    let (_, pdf) = executed(&app);
    let keys = countersign::seal::SealKeys::load_or_create(&dir.path().join("seal")).expect("seal keys");
    let mut altered = pdf.clone();
    // A byte early in the file, inside the document as sent (covered by the first range).
    let pos = altered.len() / 4;
    altered[pos] ^= 0x01;
    let (report, _) = pdfsig(&altered, &keys.ca_pem());
    assert!(report.contains("Digest Mismatch") || report.contains("Signature is Invalid"), "{report}");
    let (vm, _) = app.key_for("vendor_manager", None);
    let v = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &altered).json();
    assert_eq!(v["match"], false);
    assert_eq!(v["seal"]["valid"], false, "{v}");
    assert!(v["near_miss"].as_str().is_some_and(|m| m.contains("1 byte(s) differ")));

    // Bytes appended after the seal: the seal still holds for what it covers, but it no longer
    // covers the whole file.
    let mut appended = pdf.clone();
    appended.extend_from_slice(b"\n% appended\n");
    let v = app.req("POST", "/api/v1/verify", Some(&vm), "application/pdf", &appended).json();
    assert_eq!(v["seal"]["modified_after_seal"], true);
    assert_eq!(v["match"], false);
    assert!(
        v["near_miss"].as_str().is_some_and(
            |m| m.contains("begins with the archived countersigned copy") && m.contains("12 byte(s) added")
        ),
        "{v}"
    );
}

#[test]
fn the_seal_certificate_can_be_exported_and_rotated_keeping_old_seals_verifiable() {
    let (app, dir) = spawn_app();
    let (_, pdf) = executed(&app);
    app.stop();
    let data = dir.path().to_str().expect("p");
    let out = countersign(&["seal-cert", "export", "--out", "ca.pem", "--data", data], dir.path());
    assert!(out.status.success());
    assert!(std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca").contains("BEGIN CERTIFICATE"));
    let show =
        String::from_utf8_lossy(&countersign(&["seal-cert", "show", "--data", data], dir.path()).stdout).to_string();
    assert!(show.contains("sealing certificate #1"));
    assert!(countersign(&["seal-cert", "rotate", "--data", data], dir.path()).status.success());
    std::fs::write(dir.path().join("final.pdf"), &pdf).expect("write");
    let v = countersign(&["verify", "final.pdf", "--data", data], dir.path());
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(String::from_utf8_lossy(&v.stdout).contains("seal: valid"), "an older certificate's seal still verifies");
}

#[test]
fn a_timestamp_authority_that_is_down_does_not_lose_the_completion() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/tsa");
    let dir = tempfile::tempdir().expect("tempdir");
    let tsa = url.clone();
    let app = spawn_app_with(dir.path(), countersign::clock::ManualClock::at(T0), "127.0.0.1:0", move |c| {
        c.timestamp_url = Some(tsa);
    });
    let (id, pdf) = executed(&app);
    let a = app.get(&format!("/api/v1/agreements/{id}")).json();
    assert_eq!(a["status"], "executed", "{a}");
    assert_qpdf_ok(&pdf);
    let keys = countersign::seal::SealKeys::load_or_create(&dir.path().join("seal")).expect("seal keys");
    let report = countersign::seal::verify(&pdf, &keys);
    assert!(report.valid && report.covers_whole_file && !report.timestamped, "{report:?}");
    let (out, _) = pdfsig(&pdf, &keys.ca_pem());
    assert!(out.contains("Signature is Valid"), "{out}");

    let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
    let completed = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "completed")
        .expect("a completed event")
        .clone();
    let ts = &completed["detail"]["seal_timestamp"];
    assert_eq!(ts["status"], "failed", "{completed}");
    assert_eq!(ts["url"], url.as_str(), "{completed}");
    assert!(ts["error"].as_str().is_some_and(|e| e.contains(&url)), "{completed}");
    let v = app.get("/api/v1/audit/verify").json();
    assert_eq!(v["ok"], true, "{v}");
}
