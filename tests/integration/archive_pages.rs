//! The archive page over real HTTP: the API's filters, a download byte-identical to the API's
//! and recorded in the access log under the person's email, the CSV of the same filter equal
//! to the API's export, bad filters reported beside their field, and `sales` seeing only
//! their own agreements.

use crate::app::*;
use crate::archive::{execute, intake_named};
use crate::web::{Client, PASSWORD, accept, invite};

fn signed_in(app: &TestApp, email: &str, role: &str) -> Client {
    let (_, url) = invite(app, email, "Someone", role);
    let mut c = Client::new(app);
    accept(&mut c, &url);
    assert_eq!(c.login(email, PASSWORD).0, 303);
    c
}

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
    assert_eq!(Client::new(&app).send("GET", "/archive", &[]).1, "/login");
}
