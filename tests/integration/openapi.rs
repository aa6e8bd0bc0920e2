//! The public API description: fetched without a key, structurally valid OpenAPI 3.1, and
//! complete — every `/api/v1` route the running router serves is in it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::app::*;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Resolves a local `$ref` (`#/components/...`) against the document.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    r.strip_prefix('#').and_then(|p| doc.pointer(p))
}

/// Every `$ref` anywhere in `v`, with the JSON pointer where it was found.
fn refs(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.clone(), x.as_str().unwrap_or("(not a string)").to_string()));
                } else {
                    refs(x, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| refs(x, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// A structural check of the OpenAPI 3.1 rules the document relies on (no lean validator
/// crate exists): required top-level fields, operations with responses, path parameters
/// declared, operation ids unique, every `$ref` resolving.
fn openapi_problems(doc: &Value) -> Vec<String> {
    let mut p = Vec::new();
    if !doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")) {
        p.push("/openapi: not 3.1.x".into());
    }
    for f in ["title", "version"] {
        if !doc["info"][f].is_string() {
            p.push(format!("/info/{f}: missing"));
        }
    }
    let Some(paths) = doc["paths"].as_object() else {
        p.push("/paths: not an object".into());
        return p;
    };
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            p.push(format!("{path}: does not start with /"));
        }
        let Some(item) = item.as_object() else {
            p.push(format!("{path}: not an object"));
            continue;
        };
        let declared_params: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for (method, op) in item {
            let here = format!("{path} {method}");
            if !METHODS.contains(&method.as_str()) {
                p.push(format!("{here}: unexpected method"));
                continue;
            }
            match op["operationId"].as_str() {
                Some(id) if ids.insert(id.to_string()) => {}
                Some(id) => p.push(format!("{here}: duplicate operationId {id}")),
                None => p.push(format!("{here}: no operationId")),
            }
            match op["responses"].as_object() {
                Some(r) if !r.is_empty() => {
                    for (code, resp) in r {
                        let code_ok = code == "default"
                            || (code.len() == 3 && code.chars().all(|c| c.is_ascii_digit() || c == 'X'));
                        if !code_ok {
                            p.push(format!("{here}: response key {code}"));
                        }
                        if !(resp["description"].is_string() || resp["$ref"].is_string()) {
                            p.push(format!("{here}: response {code} has neither description nor $ref"));
                        }
                    }
                }
                _ => p.push(format!("{here}: no responses")),
            }
            let params: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|a| a.iter().filter(|x| x["in"] == "path").filter_map(|x| x["name"].as_str()).collect())
                .unwrap_or_default();
            if params != declared_params {
                p.push(format!("{here}: path parameters {params:?} ≠ {declared_params:?}"));
            }
            if !op["security"].is_array() {
                p.push(format!("{here}: security is not an array"));
            }
        }
    }
    let mut all = Vec::new();
    refs(doc, String::new(), &mut all);
    for (at, r) in all {
        if resolve(doc, &r).is_none() {
            p.push(format!("{at}: $ref {r} does not resolve"));
        }
    }
    p
}

#[test]
fn the_api_description_is_fetched_without_a_key_and_is_structurally_valid_openapi_3_1() {
    let (app, _dir) = spawn_app();
    let r = app.get_anon("/api/v1/openapi.json");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let doc = r.json();
    assert_eq!(openapi_problems(&doc), Vec::<String>::new());
    // The description itself says it needs no key; everything else needs one.
    assert_eq!(doc["paths"]["/api/v1/openapi.json"]["get"]["security"], serde_json::json!([]));
    assert_eq!(doc["paths"]["/api/v1/agreements"]["get"]["security"][0]["bearer"], serde_json::json!([]));
    // It holds no secret: the bootstrap key never appears in it.
    assert!(!r.text().contains(&app.key));
    // Pages, signer links, metrics and health are not part of the API.
    for p in doc["paths"].as_object().expect("paths").keys() {
        assert!(p.starts_with("/api/v1/"), "{p} is not an API route");
    }
}

#[test]
fn the_structural_check_catches_a_dangling_ref_and_an_operation_without_responses() {
    let doc = serde_json::json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/x/{id}": {"get": {"operationId": "a", "security": [], "responses": {},
            "parameters": [{"name": "id", "in": "path"}]},
            "post": {"operationId": "b", "security": [], "parameters": [{"name": "id", "in": "path"}],
            "responses": {"200": {"$ref": "#/components/responses/Nope"}}}}},
    });
    let p = openapi_problems(&doc);
    assert!(p.iter().any(|x| x.contains("get: no responses")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("Nope does not resolve")), "{p:?}");
}

/// Every `.route("…")` path literal in the HTTP modules' `router()`s — what the router is built
/// from, whether or not the route table names it.
fn route_literals() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http"))];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("src/http") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&path).expect("source");
                for chunk in src.split(".route(").skip(1) {
                    let chunk = chunk.trim_start();
                    if let Some(rest) = chunk.strip_prefix('"')
                        && let Some(end) = rest.find('"')
                    {
                        out.insert(rest[..end].to_string());
                    }
                }
            }
        }
    }
    out
}

/// Fills path parameters with plausible values.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') && s.ends_with('}') { "x1".to_string() } else { s.to_string() })
        .collect::<Vec<_>>()
        .join("/")
}

/// True when `path` is an instance of the documented `template` (`{…}` matches one segment).
fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.starts_with('{')))
}

#[test]
fn every_api_route_the_running_router_serves_is_in_the_description() {
    let (app, _dir) = spawn_app();
    let doc = app.get_anon("/api/v1/openapi.json").json();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(p, item)| {
            item.as_object().expect("item").keys().map(move |m| (m.to_uppercase(), p.clone())).collect::<Vec<_>>()
        })
        .collect();
    // Candidates: every path literal the routers are built from (as nested under /api/v1 and as
    // is), plus every documented path. The running server decides which are served, probed
    // without a key: "no such route" answers 404 (the fallback page) or 405 (axum, wrong
    // method); an API route answers before any lookup (401 without a key, 429 once the failure
    // limiter steps in, 400 for a malformed path parameter, 200 for the description itself).
    let mut candidates: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    for lit in route_literals() {
        candidates.insert(format!("/api/v1{lit}"));
        candidates.insert(lit);
    }
    let mut served = BTreeSet::new();
    for path in &candidates {
        for m in METHODS {
            let method = m.to_uppercase();
            let r = app.req(&method, &concrete(path), None, "application/json", b"");
            let axum_no_route = matches!(r.status, 404 | 405);
            if !axum_no_route && path.starts_with("/api/v1/") {
                // A web page's literal path (`/agreements/new`) probed under /api/v1 lands on a
                // documented template (`/agreements/{id}`): that route is the one served.
                let template = documented.iter().find(|(dm, dp)| *dm == method && matches_template(dp, path));
                served.insert(template.cloned().unwrap_or((method, path.clone())));
            }
        }
    }
    assert!(served.len() >= 30, "the probe found only {served:?}");
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    // And the converse: every documented operation is served.
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "documented but not served: {unserved:?}");
}
