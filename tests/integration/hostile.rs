//! The hostile-input suite (issue 11 §5): named cases over the API, the signer pages, the
//! public verify and the CLI, each answered with a clear 4xx (the API's error shape with a JSON
//! pointer and a reason; HTML on pages) or a clear exit code, and **nothing written**: a
//! fingerprint of the store (every agreement, its versions, its audit events, the outbox, the
//! API keys) is taken before and after each area, and the server must still serve afterwards.
//! Each test collects every failing case and names them all.
//!
//! Template and markup syntax in free text is not an error (a company may be called
//! "A&B <Health>"); it is data, so its own test checks that it stays inert everywhere it goes.

use serde_json::{Value, json};

use crate::app::*;
use crate::helpers::*;
use crate::smtp::eventually;

/// Everything the store holds that a request could change, through the API. Fields that
/// reading itself moves (an API key's `last_used`) are left out.
fn fingerprint(app: &TestApp) -> String {
    let mut out = Vec::new();
    let list = app.get("/api/v1/agreements?limit=500").json();
    for it in list["items"].as_array().cloned().unwrap_or_default() {
        let id = it["id"].as_str().expect("id");
        let a = app.get(&format!("/api/v1/agreements/{id}")).json();
        let versions = app.get(&format!("/api/v1/agreements/{id}/versions")).json();
        let audit = app.get(&format!("/api/v1/agreements/{id}/audit")).json();
        let events: Vec<&Value> = audit["items"].as_array().map(|e| e.iter().collect()).unwrap_or_default();
        out.push(format!("{id} {a} versions={versions} events={} last={:?}", events.len(), events.last()));
    }
    out.push(format!("outbox={}", app.get("/api/v1/outbox").json()));
    let mut keys = app.get("/api/v1/apikeys").json();
    for k in keys["items"].as_array_mut().into_iter().flatten() {
        if let Some(o) = k.as_object_mut() {
            o.remove("last_used");
        }
    }
    out.push(format!("apikeys={keys}"));
    out.join("\n")
}

/// What a failed case said, to list them all at the end.
fn report(failures: &[String], area: &str, n: usize) {
    assert!(failures.is_empty(), "{} of {n} {area} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// The API's error shape: `{"error": {"code", "message", "findings"?}}`; with a pointer
/// expected, a finding carries it and a reason.
fn api_shape(r: &Resp, pointer: Option<&str>) -> Result<(), String> {
    let v: Value = serde_json::from_slice(&r.body).map_err(|_| format!("not JSON: {}", r.text()))?;
    let e = &v["error"];
    if !e["code"].is_string() || e["message"].as_str().is_none_or(|m| m.is_empty()) {
        return Err(format!("no error code and message: {v}"));
    }
    if let Some(p) = pointer {
        let found = e["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["pointer"].as_str() == Some(p) && f["message"].as_str().is_some_and(|m| !m.is_empty()));
        if !found {
            return Err(format!("no finding at {p:?} with a reason: {v}"));
        }
    }
    Ok(())
}

/// Waits until the outbox has delivered everything (the `.eml` sender runs in the background),
/// so the fingerprint does not move by itself.
fn settled(app: &TestApp) {
    eventually(20, "the outbox drains", || {
        app.get("/api/v1/outbox?status=queued").json()["items"].as_array().is_some_and(|a| a.is_empty())
    });
}

fn with(base: &Value, pointer: &str, v: Value) -> Vec<u8> {
    let mut x = base.clone();
    *x.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in the example")) = v;
    x.to_string().into_bytes()
}

struct Fixture {
    app: TestApp,
    _dir: tempfile::TempDir,
    /// Sent, first signer signed: `used` is that signer's (spent) link, `open` the second's.
    a: String,
    used: String,
    open: String,
    open_csrf: String,
    used_csrf: String,
    /// Another sent agreement, unsigned.
    b_link: String,
    b_csrf: String,
    draft: String,
}

fn fixture() -> Fixture {
    let (app, dir) = spawn_app();
    let sent = |text: &str| {
        let id = app.create(text)["id"].as_str().expect("id").to_string();
        let r = app.post(&format!("/api/v1/agreements/{id}/send"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        id
    };
    let a = sent(&example_text(BAA));
    let used = app.sign_link("priya@northwind.example");
    let (_, _, used_csrf) = app.open(&used);
    let r = app.sign(&used, "Priya Raman", "VP, Legal");
    assert_eq!(r.status, 200, "{}", r.text());
    let open = app.sign_link("zoe@lakeside.example");
    let (_, _, open_csrf) = app.open(&open);
    let _b = sent(&example_text(DUA));
    let b_link = app.sign_link("irene@cori.example");
    let (_, _, b_csrf) = app.open(&b_link);
    let draft = app.create(&example_text(BAA))["id"].as_str().expect("id").to_string();
    settled(&app);
    Fixture { app, _dir: dir, a, used, open, open_csrf, used_csrf, b_link, b_csrf, draft }
}

struct ApiCase {
    name: &'static str,
    method: &'static str,
    path: String,
    key: Option<String>,
    ctype: &'static str,
    body: Vec<u8>,
    status: u16,
    pointer: Option<&'static str>,
}

#[test]
fn the_api_answers_hostile_requests_with_a_clear_4xx_and_writes_nothing() {
    let f = fixture();
    let app = &f.app;
    let admin = Some(app.key.clone());
    let baa = example_json(BAA);
    let json = "application/json";
    let case = |name, method, path: String, body: Vec<u8>, status, pointer| ApiCase {
        name,
        method,
        path,
        key: admin.clone(),
        ctype: json,
        body,
        status,
        pointer,
    };
    let create = "/api/v1/agreements".to_string();
    let (a, d) = (&f.a, &f.draft);
    let mut nested = "[".repeat(400_000);
    nested.push_str(&"]".repeat(400_000));
    let mut big = b"{\"kind\":\"baa\",\"services\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 11 * 1024 * 1024));
    big.extend(b"\"}");
    let mut bad_utf8 = example_text(BAA).into_bytes();
    let at = bad_utf8.windows(9).position(|w| w == b"Lakeside ").expect("name");
    bad_utf8[at] = 0xff;
    let cases = vec![
        case("an 11 MB intake", "POST", create.clone(), big, 413, None),
        case("a truncated intake", "POST", create.clone(), example_text(BAA).as_bytes()[..500].to_vec(), 422, Some("")),
        case("an empty body", "POST", create.clone(), Vec::new(), 422, Some("")),
        case("invalid UTF-8 in a name", "POST", create.clone(), bad_utf8, 400, None),
        case("400,000 nested brackets", "POST", create.clone(), nested.into_bytes(), 422, Some("")),
        case("a JSON array instead of an object", "POST", create.clone(), b"[1,2,3]".to_vec(), 422, Some("")),
        case(
            "a duplicate key",
            "POST",
            create.clone(),
            format!("{{\"breach_notice_days\": 5, {}", &example_text(BAA).trim_start()[1..]).into_bytes(),
            422,
            Some("/breach_notice_days"),
        ),
        case(
            "NUL in a legal name",
            "POST",
            create.clone(),
            with(&baa, "/covered_entity/legal_name", "Lake\u{0}side".into()),
            422,
            Some("/covered_entity/legal_name"),
        ),
        case(
            "CR/LF in a signer name",
            "POST",
            create.clone(),
            with(&baa, "/signers/0/name", "Priya\r\nBcc: x@evil.example".into()),
            422,
            Some("/signers/0/name"),
        ),
        case(
            "a bidi override in a legal name",
            "POST",
            create.clone(),
            with(&baa, "/business_associate/legal_name", "Northwind \u{202e}cnI".into()),
            422,
            Some("/business_associate/legal_name"),
        ),
        case(
            "an escape character in services",
            "POST",
            create.clone(),
            with(&baa, "/services", "Messaging \u{1b}[31m".into()),
            422,
            Some("/services"),
        ),
        case(
            "a zero-width space in a title",
            "POST",
            create.clone(),
            with(&baa, "/signers/0/title", "VP\u{200b}".into()),
            422,
            Some("/signers/0/title"),
        ),
        case(
            "a breach clock of 1e999",
            "POST",
            create.clone(),
            example_text(BAA).replace("\"breach_notice_days\": 10", "\"breach_notice_days\": 1e999").into_bytes(),
            422,
            Some(""),
        ),
        case(
            "a breach clock of 2^64",
            "POST",
            create.clone(),
            with(&baa, "/breach_notice_days", json!(18_446_744_073_709_551_615u64)),
            422,
            Some("/breach_notice_days"),
        ),
        case(
            "a negative breach clock",
            "POST",
            create.clone(),
            with(&baa, "/breach_notice_days", json!(-1)),
            422,
            Some("/breach_notice_days"),
        ),
        case(
            "a 61-day breach clock",
            "POST",
            create.clone(),
            with(&baa, "/breach_notice_days", json!(61)),
            422,
            Some("/breach_notice_days"),
        ),
        case(
            "a fractional breach clock",
            "POST",
            create.clone(),
            with(&baa, "/breach_notice_days", json!(2.5)),
            422,
            Some("/breach_notice_days"),
        ),
        case(
            "a zero-month term",
            "POST",
            create.clone(),
            with(&baa, "/term/months", json!(0)),
            422,
            Some("/term/months"),
        ),
        case(
            "a signing order of 70,000",
            "POST",
            create.clone(),
            with(&baa, "/signers/0/order", json!(70_000)),
            422,
            Some("/signers/0/order"),
        ),
        case(
            "February 30",
            "POST",
            create.clone(),
            with(&baa, "/effective_date", "2027-02-30".into()),
            422,
            Some("/effective_date"),
        ),
        case(
            "a state code of ../",
            "POST",
            create.clone(),
            with(&baa, "/states", json!(["../"])),
            422,
            Some("/states/0"),
        ),
        case(
            "an unknown field",
            "POST",
            create.clone(),
            {
                let mut x = baa.clone();
                x["covred_entity"] = json!({});
                x.to_string().into_bytes()
            },
            422,
            Some("/covred_entity"),
        ),
        ApiCase {
            name: "a form body",
            ctype: "application/x-www-form-urlencoded",
            ..case("", "POST", create.clone(), b"kind=baa".to_vec(), 415, Some(""))
        },
        ApiCase {
            name: "a valid intake sent as text/plain",
            ctype: "text/plain",
            ..case("", "POST", create.clone(), example_text(BAA).into_bytes(), 415, Some(""))
        },
        case("an unknown query parameter", "GET", "/api/v1/agreements?lmit=5".into(), Vec::new(), 422, Some("/lmit")),
        case("an unknown outbox filter", "GET", "/api/v1/outbox?state=x".into(), Vec::new(), 422, Some("/state")),
        case(
            "a diff without its versions",
            "GET",
            format!("/api/v1/agreements/{a}/diff"),
            Vec::new(),
            422,
            Some("/from"),
        ),
        case("a wrong method", "DELETE", "/api/v1/agreements".into(), Vec::new(), 405, None),
        case("an unknown API route", "GET", "/api/v1/nothing-here".into(), Vec::new(), 404, None),
        ApiCase {
            name: "no key",
            key: None,
            ..case("", "POST", create.clone(), example_text(BAA).into_bytes(), 401, None)
        },
        ApiCase {
            name: "a malformed bearer",
            key: Some("not-a-key".into()),
            ..case("", "POST", create.clone(), example_text(BAA).into_bytes(), 401, None)
        },
        case("../ in an id", "GET", "/api/v1/agreements/%2e%2e%2fapikeys".into(), Vec::new(), 404, None),
        case("%2e%2e as an id, sending", "POST", "/api/v1/agreements/%2e%2e/send".into(), Vec::new(), 404, None),
        case(
            "NUL in an id, voiding",
            "POST",
            "/api/v1/agreements/ag_%00/void".into(),
            br#"{"reason":"x"}"#.to_vec(),
            404,
            None,
        ),
        case(
            "an absolute path as an id",
            "PUT",
            "/api/v1/agreements/%2fetc%2fpasswd".into(),
            example_text(BAA).into_bytes(),
            404,
            None,
        ),
        case(
            "a version of ../",
            "GET",
            format!("/api/v1/agreements/{a}/versions/..%2f1/document"),
            Vec::new(),
            400,
            Some("/version"),
        ),
        case(
            "a version out of range",
            "GET",
            format!("/api/v1/agreements/{a}/versions/99999999999999999999/document"),
            Vec::new(),
            400,
            Some("/version"),
        ),
        case(
            "replacing a sent agreement",
            "PUT",
            format!("/api/v1/agreements/{a}"),
            example_text(BAA).into_bytes(),
            409,
            None,
        ),
        case("sending twice", "POST", format!("/api/v1/agreements/{a}/send"), Vec::new(), 409, None),
        case(
            "voiding with an empty reason",
            "POST",
            format!("/api/v1/agreements/{a}/void"),
            br#"{"reason":""}"#.to_vec(),
            422,
            Some("/reason"),
        ),
        case(
            "voiding with a number for a reason",
            "POST",
            format!("/api/v1/agreements/{a}/void"),
            br#"{"reason":5}"#.to_vec(),
            422,
            Some(""),
        ),
        case(
            "voiding with duplicate reasons",
            "POST",
            format!("/api/v1/agreements/{a}/void"),
            br#"{"reason":"a","reason":"b"}"#.to_vec(),
            422,
            Some(""),
        ),
        case(
            "approving a draft that needs no approval",
            "POST",
            format!("/api/v1/agreements/{d}/approve"),
            br#"{"reason":"ok"}"#.to_vec(),
            409,
            None,
        ),
        case(
            "terminating a draft",
            "POST",
            format!("/api/v1/agreements/{d}/terminate"),
            br#"{"date":"2027-05-01","reason":"x"}"#.to_vec(),
            409,
            None,
        ),
        case(
            "return-or-destroy without a date",
            "POST",
            format!("/api/v1/agreements/{d}/return-or-destroy"),
            br#"{"method":"destroyed"}"#.to_vec(),
            422,
            Some(""),
        ),
        case(
            "a signer correction with CR/LF in the email",
            "PATCH",
            format!("/api/v1/agreements/{a}/signers/s2"),
            br#"{"email":"zoe@lakeside.example\r\nBcc: x@evil.example"}"#.to_vec(),
            422,
            Some("/email"),
        ),
        case("a search limit of 0", "GET", "/api/v1/agreements?limit=0".into(), Vec::new(), 422, Some("/limit")),
        case(
            "a search limit beyond u64",
            "GET",
            "/api/v1/agreements?limit=99999999999999999999999".into(),
            Vec::new(),
            422,
            Some("/limit"),
        ),
        case(
            "a garbled cursor",
            "GET",
            "/api/v1/agreements?cursor=%00%ff..%2f".into(),
            Vec::new(),
            422,
            Some("/cursor"),
        ),
        case(
            "a negative renewal window",
            "GET",
            "/api/v1/agreements/renewal-due?days=-5".into(),
            Vec::new(),
            422,
            None,
        ),
        case("a diff from a word", "GET", format!("/api/v1/agreements/{d}/diff?from=abc&to=1"), Vec::new(), 422, None),
        case(
            "an API key with the role root",
            "POST",
            "/api/v1/apikeys".into(),
            br#"{"name":"x","role":"root"}"#.to_vec(),
            422,
            Some("/role"),
        ),
        case(
            "an API key named with a newline",
            "POST",
            "/api/v1/apikeys".into(),
            br#"{"name":"a\nb","role":"sales"}"#.to_vec(),
            422,
            Some("/name"),
        ),
        case("revoking the key ../", "DELETE", "/api/v1/apikeys/..%2f..".into(), Vec::new(), 404, None),
        case("retrying message %00", "POST", "/api/v1/outbox/%00/retry".into(), Vec::new(), 404, None),
    ];
    let before = fingerprint(app);
    let mut failures = Vec::new();
    let n = cases.len();
    for c in cases {
        let r = if c.body.len() > 1024 * 1024 {
            let auth = c.key.as_ref().map(|k| format!("Bearer {k}")).unwrap_or_default();
            tcp(app, c.method, &c.path, &[("Authorization", &auth), ("Content-Type", c.ctype)], &c.body)
        } else {
            app.req(c.method, &c.path, c.key.as_deref(), c.ctype, &c.body)
        };
        if r.status != c.status {
            failures.push(format!(
                "{}: expected {}, got {}: {}",
                c.name,
                c.status,
                r.status,
                r.text().chars().take(300).collect::<String>()
            ));
            continue;
        }
        // axum's own rejections (a body over the limit, a path segment that is not a number, a
        // query that does not parse) answer the same shape (issue 12).
        if let Err(e) = api_shape(&r, c.pointer) {
            failures.push(format!("{}: {e}", c.name));
        }
    }
    let after = fingerprint(app);
    if before != after {
        failures.push(format!("the store changed:\nbefore: {before}\nafter:  {after}"));
    }
    assert_eq!(app.get("/api/v1/agreements").status, 200, "the server still serves");
    report(&failures, "API", n);
}

/// A request with any headers; the body as given.
fn raw(app: &TestApp, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut b =
        ureq::http::Request::builder().method(method).uri(app.url(url)).header("User-Agent", "countersign-test/1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = app.http.run(b.body(body.to_vec()).expect("request")).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = r.body_mut().with_config().limit(50 * 1024 * 1024).read_to_vec().expect("body");
    Resp { status, body, headers }
}

fn form_body(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

struct PageCase {
    name: &'static str,
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

#[test]
fn signer_pages_answer_hostile_requests_with_an_html_4xx_and_write_nothing() {
    let f = fixture();
    let app = &f.app;
    let form = "application/x-www-form-urlencoded";
    let get = |name, url: String, status| PageCase { name, method: "GET", url, headers: vec![], body: vec![], status };
    let post = |name, url: &str, fields: &[(&str, &str)], status| PageCase {
        name,
        method: "POST",
        url: url.to_string(),
        headers: vec![("Content-Type", form.to_string())],
        body: form_body(fields),
        status,
    };
    let sign = |csrf: &str, name: &str| -> Vec<(&'static str, String)> {
        vec![
            ("action", "sign".into()),
            ("consent", "yes".into()),
            ("typed_name", name.to_string()),
            ("typed_title", "Chief Compliance Officer".into()),
            ("csrf", csrf.to_string()),
        ]
    };
    let open = f.open.clone();
    let token = open.rsplit('/').next().expect("token").to_string();
    let mut altered = token.clone().into_bytes();
    let i = altered.len() - 10;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = format!("/sign/{}", String::from_utf8(altered).expect("ascii"));
    let good = sign(&f.open_csrf, "Zoë Ångström");
    let refs = |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let body_of = |v: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form_body(&pairs)
    };
    let with_field = |k: &'static str, val: &str| {
        let mut v = refs(&good);
        if let Some(slot) = v.iter_mut().find(|(kk, _)| *kk == k) {
            slot.1 = val.to_string();
        } else {
            v.push((k, val.to_string()));
        }
        v
    };
    let without = |k: &str| refs(&good).into_iter().filter(|(kk, _)| *kk != k).collect::<Vec<_>>();
    let p = |name, url: &str, body: Vec<u8>, status| PageCase {
        name,
        method: "POST",
        url: url.to_string(),
        headers: vec![("Content-Type", form.to_string())],
        body,
        status,
    };
    let mut big = body_of(refs(&good));
    big.extend(b"&reason=");
    big.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    let mut bad_utf8 = body_of(without("typed_title"));
    bad_utf8.extend(b"&typed_title=\xff\xfe%FF");
    let cases = vec![
        get("a garbled token", "/sign/notatoken".into(), 404),
        get("an altered token", altered.clone(), 403),
        get("../ in the token", "/sign/..%2F..%2Fapi%2Fv1%2Fapikeys".into(), 404),
        get("%2e%2e as the token", "/sign/%2e%2e".into(), 404),
        get("NUL in the token", format!("/sign/{}%00", &token[..20]), 404),
        get("a 5,000-character token", format!("/sign/{}", "A".repeat(5000)), 404),
        get("the document of an altered token", format!("{altered}/document"), 403),
        p("no CSRF token", &open, body_of(without("csrf")), 403),
        p("a garbled CSRF token", &open, body_of(with_field("csrf", "zz")), 403),
        p("another agreement's CSRF token", &open, body_of(with_field("csrf", &f.b_csrf)), 403),
        p("this CSRF token on another agreement's link", &f.b_link, body_of(refs(&good)), 403),
        PageCase {
            name: "a foreign Origin",
            headers: vec![("Content-Type", form.into()), ("Origin", "https://evil.example".into())],
            ..p("", &open, body_of(refs(&good)), 403)
        },
        p("a replayed signature on a spent link", &f.used, body_of(sign(&f.used_csrf, "Priya Raman")), 409),
        p("signing through an altered token", &altered, body_of(refs(&good)), 403),
        PageCase {
            name: "a JSON body",
            headers: vec![("Content-Type", "application/json".into())],
            ..p("", &open, br#"{"action":"sign"}"#.to_vec(), 415)
        },
        PageCase { name: "no content type", headers: vec![], ..p("", &open, body_of(refs(&good)), 415) },
        p("a 2 MB form", &open, big, 413),
        p("invalid UTF-8 in a field", &open, bad_utf8, 422),
        p("no consent", &open, body_of(without("consent")), 422),
        p("an empty typed name", &open, body_of(with_field("typed_name", "")), 422),
        p("CR/LF in the typed name", &open, body_of(with_field("typed_name", "Zoë\r\nBcc: x@evil.example")), 422),
        p("a bidi override in the typed name", &open, body_of(with_field("typed_name", "Zoë \u{202e}mörtsgnÅ")), 422),
        p("NUL in the typed title", &open, body_of(with_field("typed_title", "Officer\u{0}")), 422),
        p("a 10,000-character typed name", &open, body_of(with_field("typed_name", &"Z".repeat(10_000))), 422),
        p("an unknown action", &open, body_of(with_field("action", "countersign-everything")), 422),
        p("a decline without a reason", &open, body_of(with_field("action", "decline")), 422),
        post("an empty form", &open, &[], 403),
    ];
    let before = fingerprint(app);
    let mut failures = Vec::new();
    let n = cases.len();
    for c in cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = if c.body.len() > 1024 * 1024 {
            tcp(app, c.method, c.url.trim_start_matches(&app.base), &headers, &c.body)
        } else {
            raw(app, c.method, &c.url, &headers, &c.body)
        };
        if r.status != c.status {
            failures.push(format!(
                "{}: expected {}, got {}: {}",
                c.name,
                c.status,
                r.status,
                r.text().chars().take(300).collect::<String>()
            ));
            continue;
        }
        if !r.header("content-type").is_some_and(|t| t.starts_with("text/html")) {
            failures.push(format!(
                "{}: not an HTML page ({:?}): {}",
                c.name,
                r.header("content-type"),
                r.text().chars().take(200).collect::<String>()
            ));
        }
    }
    let after = fingerprint(app);
    if before != after {
        failures.push(format!("the store changed:\nbefore: {before}\nafter:  {after}"));
    }
    // still serving: the open link still signs
    let r = app.sign(&f.open, "Zoë Ångström", "Chief Compliance Officer");
    if r.status != 200 {
        failures.push(format!("the untouched link no longer signs: {} {}", r.status, r.text()));
    }
    report(&failures, "signer page", n);
}

#[test]
fn the_public_verify_refuses_hostile_uploads_with_a_clear_4xx_and_writes_nothing() {
    let f = fixture();
    let app = &f.app;
    let pdf = app.get(&format!("/api/v1/agreements/{}/document", f.a)).body;
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("an empty upload", "application/pdf", Vec::new(), 200),
        ("a 40 MB upload", "application/pdf", vec![b'%'; 40 * 1024 * 1024], 413),
        ("a JSON body", "application/json", br#"{"pdf":"x"}"#.to_vec(), 400),
        ("a multipart body", "multipart/form-data; boundary=x", b"--x\r\n\r\n%PDF-1.7\r\n--x--".to_vec(), 400),
        ("not a PDF", "application/pdf", b"hello, world".to_vec(), 200),
        ("a PDF cut in half", "application/pdf", pdf[..pdf.len() / 2].to_vec(), 200),
    ];
    let before = fingerprint(app);
    let mut failures = Vec::new();
    let n = cases.len();
    for (name, ctype, body, status) in cases {
        let r = if body.len() > 1024 * 1024 {
            tcp(app, "POST", "/verify", &[("Content-Type", ctype)], &body)
        } else {
            raw(app, "POST", "/verify", &[("Content-Type", ctype)], &body)
        };
        if r.status != status {
            failures.push(format!(
                "{name}: expected {status}, got {}: {}",
                r.status,
                r.text().chars().take(300).collect::<String>()
            ));
            continue;
        }
        // "no match" is the answer to any file that is not archived, PDF or not
        if status == 200 && r.json()["match"] != false {
            failures.push(format!("{name}: said it might be archived: {}", r.text()));
        }
        if status >= 400
            && status != 413
            && let Err(e) = api_shape(&r, None)
        {
            failures.push(format!("{name}: {e}"));
        }
    }
    let after = fingerprint(app);
    if before != after {
        failures.push(format!("the store changed:\nbefore: {before}\nafter:  {after}"));
    }
    let r = raw(app, "POST", "/verify", &[("Content-Type", "application/pdf")], &pdf);
    if r.status != 200 {
        failures.push(format!("the archived PDF no longer verifies: {} {}", r.status, r.text()));
    }
    report(&failures, "public verify", n);
}

/// Issue 11 §2.1: `/verify` hashed the upload once per `%%EOF` (quadratic) under the lock every
/// commit needs. A 120 KB upload of `%%EOF` lines must be answered promptly and leave writes
/// free (the test waits for both answers, it does not time them).
#[test]
fn a_verify_upload_of_repeated_eof_markers_is_answered_and_does_not_hold_up_writes() {
    let (app, _dir) = spawn_app();
    let eofs = b"%%EOF\n".repeat(20_000);
    let r = raw(&app, "POST", "/verify", &[("Content-Type", "application/pdf")], &eofs);
    assert!(r.status == 200 || r.status == 400, "{} {}", r.status, r.text());
    assert_eq!(app.create(&example_text(BAA))["status"], "draft");
}

/// Issue 11 §2.8: correcting a signer accepted a 100,000-character name (intake caps at 200).
#[test]
fn a_signer_correction_with_a_100000_character_name_is_refused_and_changes_nothing() {
    let f = fixture();
    let before = fingerprint(&f.app);
    let body = json!({"name": "x".repeat(100_000)}).to_string();
    let r = f.app.patch(&format!("/api/v1/agreements/{}/signers/s2", f.a), &body);
    assert_eq!(r.status, 422, "{}", r.text());
    api_shape(&r, Some("/name")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fingerprint(&f.app), before, "nothing written");
}

/// Every file under `dir` with its size and SHA-256: what a CLI run could have written.
fn tree(dir: &std::path::Path) -> Vec<String> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(format!("{}/", p.display()));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push(format!("{} {}", p.display(), hex::encode(sha2::Sha256::digest(&bytes))));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_cli_refuses_hostile_files_and_arguments_with_a_clear_exit_code_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let w = |name: &str, bytes: &[u8]| std::fs::write(cwd.join(name), bytes).expect("write");
    let mut bad = example_text(BAA).into_bytes();
    let at = bad.windows(9).position(|x| x == b"Lakeside ").expect("name");
    bad[at] = 0xff;
    w("invalid-utf8.json", &bad);
    w("truncated.json", &example_text(BAA).as_bytes()[..400]);
    w("nested.json", format!("{}{}", "[".repeat(400_000), "]".repeat(400_000)).as_bytes());
    let mut v = example_json(BAA);
    v["covered_entity"]["legal_name"] = "Lake\u{0}side".into();
    w("nul.json", v.to_string().as_bytes());
    v = example_json(BAA);
    v["signers"][0]["name"] = "Priya \u{202e}namaR".into();
    w("bidi.json", v.to_string().as_bytes());
    w("dup.json", format!("{{\"kind\": \"dua\", {}", &example_text(BAA).trim_start()[1..]).as_bytes());
    w("garbage.bin", b"\x00\x01not a backup");
    w("one.json", example_text(BAA).as_bytes());
    std::fs::create_dir(cwd.join("empty-data")).expect("dir");
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        ("render: invalid UTF-8", vec!["render", "--intake", "invalid-utf8.json", "--out", "x.pdf"], 2, "UTF-8"),
        ("render: truncated JSON", vec!["render", "--intake", "truncated.json", "--out", "x.pdf"], 1, "malformed JSON"),
        (
            "render: 400,000 nested brackets",
            vec!["render", "--intake", "nested.json", "--out", "x.pdf"],
            1,
            "malformed JSON",
        ),
        (
            "render: NUL in a name",
            vec!["render", "--intake", "nul.json", "--out", "x.pdf"],
            1,
            "/covered_entity/legal_name",
        ),
        (
            "render: a bidi override in a name",
            vec!["render", "--intake", "bidi.json", "--out", "x.pdf"],
            1,
            "/signers/0/name",
        ),
        ("render: a duplicate key", vec!["render", "--intake", "dup.json", "--out", "x.pdf"], 1, "duplicate"),
        ("render: a missing file", vec!["render", "--intake", "missing.json", "--out", "x.pdf"], 2, "missing.json"),
        (
            "render: a directory as the intake",
            vec!["render", "--intake", "empty-data", "--out", "x.pdf"],
            2,
            "empty-data",
        ),
        (
            "check: ../ to a non-intake",
            vec!["check", "--intake", "../../../../../../etc/hostname"],
            1,
            "malformed JSON",
        ),
        ("diff: one intake", vec!["diff", "--intake", "one.json"], 2, "two intakes"),
        ("verify: a missing file", vec!["verify", "missing.pdf", "--data", "empty-data"], 2, "missing.pdf"),
        ("restore: garbage", vec!["restore", "--from", "garbage.bin", "--data", "restored"], 2, ""),
        ("apikey: the role root", vec!["apikey", "create", "--role", "root", "--name", "x"], 2, "root"),
        ("render: an unknown flag", vec!["render", "--intake", "one.json", "--out", "x.pdf", "--evil"], 2, "--evil"),
    ];
    let before = tree(cwd);
    let mut failures = Vec::new();
    let n = cases.len();
    for (name, args, code, needle) in cases {
        let out = countersign(&args, cwd);
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(code) {
            failures.push(format!("{name}: expected exit {code}, got {:?}: {text}", out.status.code()));
        } else if !text.contains(needle) || text.contains("panicked") {
            failures.push(format!("{name}: the message does not say {needle:?}: {text}"));
        }
        let after = tree(cwd);
        if after != before {
            failures.push(format!(
                "{name}: files changed: {:?}",
                after.iter().filter(|x| !before.contains(x)).collect::<Vec<_>>()
            ));
        }
    }
    report(&failures, "CLI", n);
}

/// Template, markup and HTML syntax in every free-text field is data: the agreement is created,
/// the PDF prints it literally, the signer page and the email escape it.
#[test]
fn template_and_markup_syntax_in_every_free_text_field_stays_inert() {
    let (app, _dir) = spawn_app();
    let payloads = [
        ("tera expression", "{{ intake.kind }}"),
        ("tera statement", "{% if true %}x{% endif %}"),
        ("HTML", "<script>alert(1)</script>"),
        ("markdown", "**bold** [link](http://evil.example)"),
        ("entity", "&lt;b&gt;"),
    ];
    let mut failures = Vec::new();
    for (name, payload) in payloads {
        let mut v = example_json(BAA);
        for ptr in [
            "/covered_entity/legal_name",
            "/business_associate/legal_name",
            "/services",
            "/signers/0/title",
            "/use_cases/0",
        ] {
            *v.pointer_mut(ptr).expect("field") = format!("Acme {payload}").into();
        }
        v["signers"][0]["email"] = format!("priya.{}@northwind.example", name.replace(' ', "-")).into();
        let r = app.post("/api/v1/agreements", &v.to_string());
        if r.status != 201 {
            failures.push(format!("{name}: not accepted as data: {} {}", r.status, r.text()));
            continue;
        }
        let id = r.json()["id"].as_str().expect("id").to_string();
        let pdf = app.get(&format!("/api/v1/agreements/{id}/document")).body;
        let text = fold(&pdftotext(&pdf));
        if !text.contains(&fold(&format!("Acme {payload}"))) {
            failures.push(format!("{name}: the PDF does not print {payload:?} literally"));
        }
        assert_eq!(app.post(&format!("/api/v1/agreements/{id}/send"), "").status, 200);
        let link = app.sign_link(&format!("priya.{}@northwind.example", name.replace(' ', "-")));
        let (_, html, _) = app.open(&link);
        if html.contains(payload) && payload.contains('<') {
            failures.push(format!("{name}: the signer page carries {payload:?} unescaped"));
        }
        if html.contains("<script>alert") {
            failures.push(format!("{name}: a script tag reached the page"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A request over a plain socket with `Expect: 100-continue`: the body goes only if the server
/// asks for it, so a refusal by `Content-Length` (413) is read instead of a broken pipe.
fn tcp(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(app.addr()).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n",
        app.addr(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("head");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    // the interim answer, or the final one
    loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    if buf.starts_with(b"HTTP/1.1 100") {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("interim") + 4;
        buf.drain(..end);
        let _ = s.write_all(body);
    }
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            r = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_string()
    };
    Resp { status, body: body.into_bytes(), headers }
}
