//! The archive page over real HTTP: the API's filters, a download byte-identical to the API's
//! and recorded in the access log under the person's email, the CSV of the same filter equal
//! to the API's export, bad filters reported beside their field, and `sales` seeing only
//! their own agreements.

use crate::app::*;
use crate::archive::{execute, intake_named};
use crate::web::{Client, signed_in};

fn bytes(app: &TestApp, c: &Client, path: &str) -> (u16, Vec<u8>) {
    let mut r = app.http.get(app.url(path)).header("Cookie", &c.cookie).call().expect("answers");
    (r.status().as_u16(), r.body_mut().with_config().limit(50 << 20).read_to_vec().expect("body"))
}

#[test]
fn the_archive_page_filters_downloads_the_api_copy_into_the_access_log_and_exports_the_same_filter() {
    let (app, _dir) = spawn_app();
    let north =
        app.create(&intake_named("Northwind Analytics LLC", "Lakeside Health"))["id"].as_str().expect("id").to_string();
    let blue =
        app.create(&intake_named("Bluebird Labs Inc.", "Lakeside Health"))["id"].as_str().expect("id").to_string();
    execute(&app, &north);
    let mut vm = signed_in(&app, "vera@example.com", "vendor_manager");

    let (status, _, page) = vm.send("GET", "/archive?counterparty=Northwind&status=executed&kind=", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("/agreements/{north}/document")) && !page.contains(&blue), "{page}");
    assert!(page.contains("1 agreement(s)"), "{page}");
    let (_, _, all) = vm.send("GET", "/archive", &[]);
    assert!(all.contains(&north) && all.contains(&blue));
    // A bad filter is reported beside its field.
    let (status, _, page) = vm.send("GET", "/archive?status=bogus&effective_from=yesterday", &[]);
    assert_eq!(status, 422);
    for f in ["status", "effective_from"] {
        assert!(
            page.contains(&format!("id=\"e-{f}\"")) && page.contains(&format!("aria-describedby=\"e-{f}")),
            "{f}: {page}"
        );
    }

    // The download is the API's copy, byte for byte, and is in the access log under Vera.
    let (status, pdf) = bytes(&app, &vm, &format!("/agreements/{north}/document"));
    assert_eq!(status, 200);
    let api = app.get(&format!("/api/v1/agreements/{north}/document"));
    assert_eq!(api.status, 200);
    assert!(pdf.starts_with(b"%PDF-") && pdf == api.body, "byte-identical");
    let log = app.get(&format!("/api/v1/agreements/{north}/access-log")).json();
    let items = log["items"].as_array().expect("items");
    assert!(items.iter().any(|e| e["who"] == "vera@example.com" && e["ip"] == "127.0.0.1"), "{log}");

    // The CSV of the same filter is the API's export of it.
    let (status, csv) = bytes(&app, &vm, "/archive/export.csv?counterparty=Northwind");
    assert_eq!(status, 200);
    let api_csv = app.get("/api/v1/agreements/export.csv?counterparty=Northwind");
    assert_eq!(String::from_utf8_lossy(&csv), api_csv.text());
    assert!(api_csv.text().contains(&north) && !api_csv.text().contains(&blue));

    // A sales person sees only what they created: none of these.
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    let (status, _, page) = sam.send("GET", "/archive", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("0 agreement(s)") && !page.contains(&north), "{page}");
    let (_, csv) = bytes(&app, &sam, "/archive/export.csv");
    assert!(!String::from_utf8_lossy(&csv).contains(&north));
    // Once Sam has drafted two, he sees those two.
    let as_sam = countersign::app::service::Actor {
        who: "sam@example.com".into(),
        ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        own_only: true,
    };
    let svc = app.service();
    let own: Vec<String> = (0..2)
        .map(|i| svc.create(&intake_named(&format!("Sam's Vendor {i}"), "Sam's Clinic"), &as_sam).expect("drafted").id)
        .collect();
    drop(svc);
    let (status, _, page) = sam.send("GET", "/archive", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("2 agreement(s)") && own.iter().all(|id| page.contains(id)), "{page}");
    assert!(!page.contains(&north) && !page.contains(&blue), "{page}");
    // The export is for reviewers (the API's route table): refused, whatever he has.
    let (status, page) = bytes(&app, &sam, "/archive/export.csv");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&page));
    assert_eq!(Client::new(&app).send("GET", "/archive", &[]).1, "/login");
}

/// A multipart upload (`csrf` when given, then `file`), as the verify forms send it.
pub(crate) fn upload(app: &TestApp, cookie: &str, path: &str, csrf: Option<&str>, file: &[u8]) -> (u16, String) {
    let b = "----countersign-test-boundary";
    let mut body = Vec::new();
    if let Some(t) = csrf {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{t}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"copy.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let mut r = app
        .http
        .post(app.url(path))
        .header("Cookie", cookie)
        .header("Content-Type", format!("multipart/form-data; boundary={b}"))
        .send(&body[..])
        .expect("answers");
    (r.status().as_u16(), r.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default())
}

#[test]
fn staff_verify_names_the_archived_copy_and_its_seal_and_never_calls_a_draft_or_an_altered_file_archived() {
    let (app, _dir) = spawn_app();
    let id =
        app.create(&intake_named("Northwind Analytics LLC", "Lakeside Health"))["id"].as_str().expect("id").to_string();
    execute(&app, &id);
    let draft_id =
        app.create(&intake_named("Bluebird Labs Inc.", "Lakeside Health"))["id"].as_str().expect("id").to_string();
    let final_pdf = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    let draft_pdf = app.get(&format!("/api/v1/agreements/{draft_id}/document")).body;
    assert!(final_pdf.starts_with(b"%PDF-") && draft_pdf.starts_with(b"%PDF-"));
    let mut vm = signed_in(&app, "vera@example.com", "vendor_manager");

    let (status, _, page) = vm.send("GET", "/archive/verify", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("enctype=\"multipart/form-data\"") && page.contains("<label for=\"f-file\">"), "{page}");
    let (_, _, archive) = vm.send("GET", "/archive", &[]);
    assert!(archive.contains("href=\"/archive/verify\""), "linked from the archive page and the menu");
    let csrf = vm.csrf("/archive/verify");

    // The countersigned copy: the agreement linked, which copy, version, status, a valid seal.
    let (status, page) = upload(&app, &vm.cookie, "/archive/verify", Some(&csrf), &final_pdf);
    assert_eq!(status, 200, "{page}");
    for want in [
        "<strong>Archived copy.</strong>",
        &format!("href=\"/agreements/{id}\""),
        "the countersigned copy",
        "<dt>Version</dt><dd>1</dd>",
        "<dt>Status</dt><dd>executed</dd>",
        "Valid seal by Countersign",
    ] {
        assert!(page.contains(want), "{want}: {page}");
    }
    // A draft is not an archived copy; an altered copy is said to be one, plainly.
    let (status, page) = upload(&app, &vm.cookie, "/archive/verify", Some(&csrf), &draft_pdf);
    assert_eq!(status, 200);
    assert!(page.contains("<strong>Not an archived copy.</strong>") && !page.contains(&draft_id), "{page}");
    assert!(page.contains("No seal"), "{page}");
    let mut altered = final_pdf.clone();
    let at = altered.len() / 2;
    altered[at] ^= 0x20;
    let (_, page) = upload(&app, &vm.cookie, "/archive/verify", Some(&csrf), &altered);
    assert!(page.contains("Not an archived copy.") && page.contains("byte(s) differ"), "{page}");
    assert!(page.contains("The seal is not valid"), "{page}");

    // No file, or not a PDF: the problem beside the file input.
    for (file, says) in [(&b""[..], "Choose a PDF file"), (&b"hello"[..], "not a PDF")] {
        let (status, page) = upload(&app, &vm.cookie, "/archive/verify", Some(&csrf), file);
        assert_eq!(status, 422);
        assert!(
            page.contains("aria-invalid=\"true\" aria-describedby=\"e-file h-file\"") && page.contains(says),
            "{page}"
        );
    }
    // Without the CSRF token: 403, nothing verified.
    let (status, page) = upload(&app, &vm.cookie, "/archive/verify", None, &final_pdf);
    assert_eq!(status, 403);
    assert!(page.contains("This form has expired") && !page.contains("Archived copy"), "{page}");
    // Sales may not verify (the API's route table): the 403 page; signed out: the sign-in page.
    let mut sam = signed_in(&app, "sam@example.com", "sales");
    assert_eq!(sam.send("GET", "/archive/verify", &[]).0, 403);
    let sam_csrf = sam.csrf("/account");
    assert_eq!(upload(&app, &sam.cookie, "/archive/verify", Some(&sam_csrf), &final_pdf).0, 403);
    assert_eq!(Client::new(&app).send("GET", "/archive/verify", &[]).1, "/login");
}

#[test]
fn staff_verify_calls_a_vendor_paper_a_vendor_provided_copy_with_who_uploaded_it() {
    let (app, _dir) = spawn_app();
    let (vm_key, _) = app.key_for("vendor_manager", None);
    let r = app.req("POST", "/api/v1/vendors", Some(&vm_key), "application/json", br#"{"legal_name": "Acme Scribes"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let vendor = r.json()["id"].as_str().expect("id").to_string();
    let pdf = b"%PDF-1.7\n% the vendor's own BAA, on their paper\n%%EOF\n".to_vec();
    let q = "kind=baa&title=Vendor%20BAA&effective_date=2026-06-01&term_months=24&breach_notice_days=15&return_or_destroy=destroy";
    let r = app.req("POST", &format!("/api/v1/vendors/{vendor}/papers?{q}"), Some(&vm_key), "application/pdf", &pdf);
    assert_eq!(r.status, 201, "{}", r.text());
    let vm = signed_in(&app, "vera@example.com", "vendor_manager");
    let mut vm = vm;
    let csrf = vm.csrf("/archive/verify");
    let (status, page) = upload(&app, &vm.cookie, "/archive/verify", Some(&csrf), &pdf);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Not an archived copy: a vendor-provided copy, uploaded by"), "{page}");
    assert!(
        page.contains(&format!("href=\"/vendors/{vendor}\"")) && !page.contains("<strong>Archived copy."),
        "{page}"
    );
    // The public page never says so.
    let (_, page) = upload(&app, "", "/verify/upload", None, &pdf);
    assert!(page.contains("<strong>Not an archived copy.</strong>") && !page.contains("vendor"), "{page}");
}

#[test]
fn the_public_verify_page_answers_match_and_seal_only_within_the_json_routes_budget() {
    let (app, _dir) = spawn_app();
    let id =
        app.create(&intake_named("Northwind Analytics LLC", "Lakeside Health"))["id"].as_str().expect("id").to_string();
    execute(&app, &id);
    let pdf = app.get(&format!("/api/v1/agreements/{id}/document")).body;
    let page = app.get_anon("/verify");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("action=\"/verify/upload\"") && !html.contains("name=\"csrf\""), "{html}");
    let (status, html) = upload(&app, "", "/verify/upload", None, &pdf);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<strong>Archived copy.</strong>") && html.contains("Valid seal by Countersign"), "{html}");
    assert!(!html.contains(&id) && !html.contains("Northwind") && !html.contains("Certificate SHA-256"), "{html}");
    // The JSON route is unchanged: a PDF body, a JSON answer.
    let json = app.req("POST", "/verify", None, "application/pdf", &pdf);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.json()["match"], true);
    // One budget for both: spend it on the form, then the JSON route is refused too, and the
    // form is refused from its headers alone, before a 30 MB body is read.
    let mut spent = 0;
    while upload(&app, "", "/verify/upload", None, b"%PDF-1.7\n%%EOF\n").0 == 200 {
        spent += 1;
        assert!(spent <= 1000, "no budget");
    }
    assert_eq!(app.req("POST", "/verify", None, "application/pdf", &pdf).status, 429);
    let head = format!(
        "POST /verify/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 30000000\r\nConnection: close\r\n\r\n",
        app.addr()
    );
    let (status, body) = crate::security::read_answer(crate::security::send_raw(&app, &head, b""));
    assert_eq!(status, 429);
    assert!(body.contains("Too many checks") && body.contains("<html"), "an HTML page: {body}");
}

#[test]
fn a_verify_upload_over_the_limit_gets_the_too_large_page() {
    let (app, _dir) = spawn_app();
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(33 * 1024 * 1024, b' ');
    let (status, html) = upload(&app, "", "/verify/upload", None, &big);
    assert_eq!(status, 413);
    assert!(html.contains("That file is too large") && html.contains("<html"), "{html}");
}
