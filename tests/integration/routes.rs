//! The route table and the routers agree: every route the HTTP modules' `router()`s are built
//! from has a row in `http::routes` (API rows from `api::ROUTES`), and every row names a route
//! that is built — so the one layer that authorizes from the table has an answer for every
//! request, and a route without a row (refused, fail closed) cannot slip in unnoticed.
//!
//! Run alone: `cargo test --test integration routes`.

use std::collections::BTreeSet;

use countersign::http::routes::{API, Access, PAGES, access};

use crate::app::spawn_app;

/// Methods a `MethodRouter` is built with.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The text of the balanced parentheses that start at `open` (exclusive).
fn balanced(text: &str) -> &str {
    let mut depth = 1usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// `(METHOD, path)` of every `.route("path", get(…).post(…))` in one source file.
fn routes_in(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in src.split(".route(").skip(1) {
        let args = balanced(chunk);
        let Some(rest) = args.trim_start().strip_prefix('"') else { continue };
        let Some(end) = rest.find('"') else { continue };
        let (path, handlers) = (&rest[..end], &rest[end + 1..]);
        let bytes = handlers.as_bytes();
        for m in METHODS {
            let needle = format!("{m}(");
            let mut from = 0;
            while let Some(at) = handlers[from..].find(&needle) {
                let at = from + at;
                // A method function, not the tail of another name (`target(`).
                if at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                    out.push((m.to_uppercase(), path.to_string()));
                }
                from = at + needle.len();
            }
        }
    }
    out
}

/// Every route the application's routers are built from, with the `/api/v1` prefix on the API
/// modules' (`api.rs` and the modules its `router()` merges).
fn built_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"));
    let api = std::fs::read_to_string(dir.join("api.rs")).expect("api.rs");
    let nested: BTreeSet<String> = api
        .split("super::")
        .skip(1)
        .filter_map(|s| s.split_once("::router()").map(|(m, _)| m.to_string()))
        .filter(|m| m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .chain(["api".to_string()])
        .collect();
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).expect("src/http") {
        let path = e.expect("entry").path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let module = path.file_stem().expect("stem").to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).expect("source");
        let prefix = if nested.contains(&module) { API } else { "" };
        for (m, p) in routes_in(&src) {
            out.insert((m, format!("{prefix}{p}")));
        }
    }
    out
}

#[test]
fn the_route_scan_reads_methods_and_paths_of_a_router() {
    let src = r#"Router::new().route("/a", get(x).post(y)).route(
            "/b/{id}",
            axum::routing::patch(z).layer(DefaultBodyLimit::max(super::api::MAX_PDF)),
        ).route("/c", delete(target(1)))"#;
    let got: Vec<(String, String)> = routes_in(src);
    let want: Vec<(String, String)> = [("GET", "/a"), ("POST", "/a"), ("PATCH", "/b/{id}"), ("DELETE", "/c")]
        .map(|(m, p)| (m.into(), p.into()))
        .into();
    assert_eq!(got, want);
}

#[test]
fn every_route_the_routers_build_has_a_row_in_the_route_table_and_every_row_a_route() {
    let built = built_routes();
    assert!(built.len() >= 100, "the scan found only {built:?}");
    let missing: Vec<_> = built.iter().filter(|(m, p)| access(m, p).is_none()).collect();
    assert!(missing.is_empty(), "routes without a row (the layer refuses them): {missing:?}");
    let table: BTreeSet<(String, String)> = PAGES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(countersign::http::api::ROUTES.iter().map(|r| (r.method.to_string(), format!("{API}{}", r.path))))
        .chain(countersign::http::api::PUBLIC.iter().map(|(m, p)| (m.to_string(), format!("{API}{p}"))))
        .collect();
    let stale: Vec<_> = table.difference(&built).collect();
    assert!(stale.is_empty(), "rows naming no route: {stale:?}");
    // Staff-only is the rule: the open rows are few and named here.
    let open: BTreeSet<&str> = PAGES.iter().filter(|(_, _, a)| *a == Access::Public).map(|(_, p, _)| *p).collect();
    assert_eq!(
        open,
        BTreeSet::from([
            "/assets/app.css",
            "/assets/countersign.css",
            "/download",
            "/download/",
            "/forgot",
            "/healthz",
            "/login",
            "/sign",
            "/sign/",
            "/verify",
            "/verify/upload",
        ])
    );
}

#[test]
fn a_staff_page_refuses_a_signed_out_caller_before_reading_the_form() {
    let (app, _dir) = spawn_app();
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    // Not a form at all: before the route layer, the form extractor answered 415 first.
    for path in ["/people", "/agreements/ag_0/approve", "/admin/keys"] {
        let r = http
            .post(format!("{}{path}", app.base))
            .header("Content-Type", "application/octet-stream")
            .send(&b"\xff\xfe"[..])
            .expect("answers");
        let location = r.headers().get("location").and_then(|v| v.to_str().ok());
        assert_eq!((r.status().as_u16(), location), (303, Some("/login")), "POST {path}");
    }
    // An API route: the key is asked for before the JSON body is read.
    let r = app.req("POST", "/api/v1/agreements", None, "application/json", b"{not json");
    assert_eq!(r.status, 401, "{}", r.text());
    // A sales key on an admin route: 403 before the body is read.
    let (sales, _) = app.key_for("sales", None);
    let r = app.req("POST", "/api/v1/apikeys", Some(&sales), "application/json", b"{not json");
    assert_eq!(r.status, 403, "{}", r.text());
}
