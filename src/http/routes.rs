//! Who may call each route, in one table, enforced by one layer before any handler runs.
//!
//! [`access`] answers for a matched route pattern and method: the staff API's rows come from
//! [`super::api::ROUTES`] (and [`super::api::PUBLIC`]), everything else from [`PAGES`].
//! [`authorize`] is a route layer (it runs only for a request that matched a route and method,
//! so unknown paths still get the 404 page and wrong methods axum's 405) and fails closed:
//!
//! * an API route (`/api/v1/…`) needs a valid key with one of the row's roles — else the JSON
//!   401/403 of `http::error`'s policy; the caller is handed to the handler as [`super::auth::Staff`];
//! * a staff page needs a session with one of the roles — signed out, 303 to `/login`; two-factor
//!   required but not enrolled, 303 to `/account`; another role, the 403 page in the layout; the
//!   session is handed to the handler as [`super::web::Viewer`];
//! * a method the table has no row for answers 405 (as axum does for a method a route lacks),
//!   and a route with no row at all is refused (403, and an error in the log): nothing runs
//!   unless the table says who may ask. `cargo test --test integration routes` checks that every route the
//!   routers are built from has a row, and every row a route.
//!
//! Finer rules — a `sales` caller sees only their own agreements — stay in the application layer
//! (`app::access`, [`super::api::visible`]).

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::AppState;
use super::error::ApiError;
use super::web::Viewer;
use crate::staff::Role::{self, Admin, Legal, Sales, VendorManager};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: assets, health, the sign-in and recovery forms, the public `/verify`, the API
    /// description.
    Public,
    /// The handler checks a credential of its own before doing anything: the signer's HMAC link
    /// (`/sign/{token}`), an invitation or reset token, the metrics scrape rule.
    Token,
    /// Any signed-in person, also before a required two-factor enrolment (the account pages).
    Session,
    /// A staff page: signed in, enrolled, with one of the roles.
    Page(&'static [Role]),
    /// A staff page allowed to whoever may call the API route (method, path under `/api/v1`):
    /// the page and its API twin cannot drift apart.
    AsApi(&'static str, &'static str),
    /// The API: a key with one of the roles.
    Key(&'static [Role]),
}

const ANY: &[Role] = &[Sales, Legal, VendorManager, Admin];
const ADMIN: &[Role] = &[Admin];

use Access::{AsApi, Page, Public, Session, Token};

/// Every route outside `/api/v1`: method, axum path pattern, access.
pub const PAGES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/metrics", Token),
    // The signer pages (`http::sign`): the link is the credential.
    ("GET", "/assets/countersign.css", Public),
    ("GET", "/sign", Public),
    ("GET", "/sign/", Public),
    ("GET", "/sign/{token}", Token),
    ("POST", "/sign/{token}", Token),
    ("GET", "/sign/{token}/document", Token),
    ("GET", "/download", Public),
    ("GET", "/download/", Public),
    ("GET", "/download/{token}", Token),
    ("POST", "/verify", Public),
    // The public verify page (`http::verify_pages`): its form posts to a path of its own.
    ("GET", "/verify", Public),
    ("POST", "/verify/upload", Public),
    // The staff web app (`http::web` and the page modules).
    ("GET", "/assets/app.css", Public),
    ("GET", "/login", Public),
    ("POST", "/login", Public),
    ("GET", "/forgot", Public),
    ("POST", "/forgot", Public),
    ("GET", "/reset/{token}", Token),
    ("POST", "/reset/{token}", Token),
    ("GET", "/invite/{token}", Token),
    ("POST", "/invite/{token}", Token),
    ("GET", "/setup/{token}", Token),
    ("POST", "/setup/{token}", Token),
    ("POST", "/logout", Page(ANY)),
    ("GET", "/account", Session),
    ("POST", "/account/totp", Session),
    ("POST", "/account/totp/confirm", Session),
    ("POST", "/account/password", Session),
    ("GET", "/", Page(ANY)),
    ("GET", "/agreements/new", AsApi("POST", "/agreements")),
    ("POST", "/agreements/new", AsApi("POST", "/agreements")),
    ("POST", "/agreements/new/upload", AsApi("POST", "/agreements")),
    ("GET", "/agreements/{id}", AsApi("GET", "/agreements/{id}")),
    ("GET", "/agreements/{id}/document", AsApi("GET", "/agreements/{id}/document")),
    ("GET", "/agreements/{id}/pdf", AsApi("GET", "/agreements/{id}/document")),
    ("POST", "/agreements/{id}/send", AsApi("POST", "/agreements/{id}/send")),
    ("POST", "/agreements/{id}/approve", AsApi("POST", "/agreements/{id}/approve")),
    ("POST", "/agreements/{id}/void", AsApi("POST", "/agreements/{id}/void")),
    ("POST", "/agreements/{id}/revise", AsApi("POST", "/agreements/{id}/revise")),
    ("POST", "/agreements/{id}/signers/{signer}/resend", AsApi("POST", "/agreements/{id}/signers/{signer}/resend")),
    ("POST", "/agreements/{id}/signers/{signer}/email", AsApi("PATCH", "/agreements/{id}/signers/{signer}")),
    ("POST", "/agreements/{id}/terminate", AsApi("POST", "/agreements/{id}/terminate")),
    ("POST", "/agreements/{id}/return-or-destroy", AsApi("POST", "/agreements/{id}/return-or-destroy")),
    ("POST", "/agreements/{id}/dispose", AsApi("POST", "/agreements/{id}/dispose")),
    (
        "GET",
        "/agreements/{id}/versions/{version}/document",
        AsApi("GET", "/agreements/{id}/versions/{version}/document"),
    ),
    ("GET", "/agreements/{id}/diff", AsApi("GET", "/agreements/{id}/diff")),
    ("GET", "/archive", AsApi("GET", "/agreements")),
    ("GET", "/archive/verify", AsApi("POST", "/verify")),
    ("POST", "/archive/verify", AsApi("POST", "/verify")),
    ("GET", "/archive/export.csv", AsApi("GET", "/agreements/export.csv")),
    ("GET", "/vendors", Page(ANY)),
    ("GET", "/vendors/new", AsApi("POST", "/vendors")),
    ("POST", "/vendors/new", AsApi("POST", "/vendors")),
    ("GET", "/vendors/{id}", Page(ANY)),
    ("POST", "/vendors/{id}/questionnaire", AsApi("POST", "/vendors/{id}/questionnaire")),
    // The edit pages (`http::vendor_forms`): every section's form edits through the API's
    // `PATCH /vendors/{id}` or `POST /vendors/{id}/agreements` (the same roles); the handler
    // checks its section's own route again (the 403 page otherwise).
    ("GET", "/vendors/{id}/edit/{section}", AsApi("PATCH", "/vendors/{id}")),
    ("POST", "/vendors/{id}/edit/{section}", AsApi("PATCH", "/vendors/{id}")),
    ("GET", "/vendors/{id}/edit/document", AsApi("POST", "/vendors/{id}/documents")),
    ("POST", "/vendors/{id}/edit/document", AsApi("POST", "/vendors/{id}/documents")),
    ("GET", "/vendors/{id}/edit/paper", AsApi("POST", "/vendors/{id}/papers")),
    ("POST", "/vendors/{id}/edit/paper", AsApi("POST", "/vendors/{id}/papers")),
    ("GET", "/vendors/{id}/files/{sha256}", AsApi("GET", "/vendors/{id}/files/{sha256}")),
    ("GET", "/vendor-report.pdf", Page(ANY)),
    ("GET", "/vendor-report.csv", Page(ANY)),
    ("GET", "/people", Page(ADMIN)),
    ("POST", "/people", Page(ADMIN)),
    ("POST", "/people/{id}/role", Page(ADMIN)),
    ("POST", "/people/{id}/disable", Page(ADMIN)),
    ("POST", "/people/{id}/reinvite", Page(ADMIN)),
    ("POST", "/people/{id}/totp/reset", Page(ADMIN)),
    ("GET", "/admin", Page(ADMIN)),
    ("POST", "/admin/keys", Page(ADMIN)),
    ("POST", "/admin/keys/{id}/revoke", Page(ADMIN)),
    ("POST", "/admin/outbox/{id}/retry", Page(ADMIN)),
    ("GET", "/admin/webhooks", Page(ADMIN)),
    ("POST", "/admin/webhooks", Page(ADMIN)),
    ("GET", "/admin/webhooks/{id}", Page(ADMIN)),
    ("POST", "/admin/webhooks/{id}/delete", Page(ADMIN)),
    ("POST", "/admin/webhooks/{id}/test", Page(ADMIN)),
    ("POST", "/admin/webhooks/{id}/deliveries/{delivery}/redeliver", Page(ADMIN)),
];

/// The prefix the staff API is nested under.
pub const API: &str = "/api/v1";

/// Who may call `method` on the route pattern `path` (as axum matched it, `/api/v1` included);
/// `None` when the table has no row (the route is then refused). `HEAD` is answered by `GET`.
pub fn access(method: &str, path: &str) -> Option<Access> {
    let method = if method == "HEAD" { "GET" } else { method };
    if let Some(rel) = path.strip_prefix(API).filter(|r| r.starts_with('/')) {
        if super::api::is_public(method, rel) {
            return Some(Access::Public);
        }
        return super::api::ROUTES.iter().find(|r| r.method == method && r.path == rel).map(|r| Access::Key(r.roles));
    }
    PAGES.iter().find(|(m, p, _)| *m == method && *p == path).map(|&(_, _, a)| a)
}

/// The roles a signed-in caller needs for `access` (`None`: no role asked).
fn roles_of(access: Access) -> Option<&'static [Role]> {
    match access {
        Access::Page(r) | Access::Key(r) => Some(r),
        Access::AsApi(m, p) => Some(super::api::allowed(m, p)),
        Access::Public | Access::Token | Access::Session => None,
    }
}

/// Whether `role` may call `method` on `path` (pages use it to show only the actions a person
/// may take; the layer decides).
pub fn allows(role: Role, method: &str, path: &str) -> bool {
    match access(method, path) {
        Some(Access::Public | Access::Token) => true,
        Some(Access::Session) => true,
        Some(a) => roles_of(a).is_some_and(|r| r.contains(&role)),
        None => false,
    }
}

/// The route layer: refuses before the handler runs unless the table lets this caller in.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // A refusal answers before the handler reads the request's body; hyper then closes the
    // connection. Saying so (`Connection: close`) keeps a client from sending its next request
    // on a connection that is about to close (seen as "peer disconnected" by keep-alive clients).
    let unread_body = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    match gate(&state, req, next).await {
        Gate::Ran(r) => r,
        Gate::Refused(mut r) => {
            if unread_body {
                r.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            r
        }
    }
}

/// What [`authorize`] did: ran the handler, or answered without it.
enum Gate {
    Ran(Response),
    Refused(Response),
}

async fn gate(state: &AppState, req: Request, next: Next) -> Gate {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let method = req.method().clone();
    let api = path.starts_with(API);
    let Some(rule) = access(method.as_str(), &path) else {
        // The layer also runs where axum would answer 405 (a method the route does not have):
        // answer that here, from the table, without running anything.
        let allow: Vec<&str> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
            .into_iter()
            .filter(|m| access(m, &path).is_some())
            .collect();
        if !allow.is_empty() {
            return Gate::Refused((StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, allow.join(","))]).into_response());
        }
        tracing::error!(%method, route = %path, "route has no row in the route table: refused");
        return Gate::Refused(if api {
            ApiError::Forbidden.into_response()
        } else {
            super::web::message(
                state,
                None,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This page is not open to anyone yet.",
            )
        });
    };
    match rule {
        Access::Public | Access::Token => Gate::Ran(next.run(req).await),
        Access::Key(roles) => {
            let (mut parts, body) = req.into_parts();
            let staff = match super::auth::Staff::authenticate(&parts, state).await {
                Ok(s) => s,
                Err(e) => return Gate::Refused(e.into_response()),
            };
            if !staff.is(roles) {
                return Gate::Refused(ApiError::Forbidden.into_response());
            }
            parts.extensions.insert(staff);
            Gate::Ran(next.run(Request::from_parts(parts, body)).await)
        }
        Access::Session | Access::Page(_) | Access::AsApi(..) => {
            let (mut parts, body) = req.into_parts();
            let viewer = match Viewer::from_request_parts(&mut parts, state).await {
                Ok(v) => v,
                Err(r) => return Gate::Refused(r),
            };
            let Some(w) = &viewer.who else {
                return Gate::Refused(Redirect::to("/login").into_response());
            };
            if let Some(roles) = roles_of(rule) {
                // `[web] require_mfa`: until enrolled, only the account pages are reachable.
                if state.people.must_enrol(&w.person) {
                    return Gate::Refused(Redirect::to("/account").into_response());
                }
                if !roles.contains(&w.role) {
                    return Gate::Refused(super::web::forbidden(state, &viewer));
                }
            }
            parts.extensions.insert(viewer);
            Gate::Ran(next.run(Request::from_parts(parts, body)).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_missing_from_the_table_has_no_access_and_head_follows_get() {
        assert_eq!(access("GET", "/nowhere"), None);
        assert_eq!(access("DELETE", "/agreements/{id}"), None);
        assert_eq!(access("GET", "/api/v1/nowhere"), None);
        assert_eq!(access("HEAD", "/healthz"), Some(Access::Public));
        assert_eq!(access("GET", "/api/v1/openapi.json"), Some(Access::Public));
        assert!(matches!(access("POST", "/api/v1/agreements"), Some(Access::Key(_))));
    }

    #[test]
    fn a_page_and_its_api_twin_allow_the_same_roles() {
        for role in [Sales, Legal, VendorManager, Admin] {
            assert_eq!(
                allows(role, "POST", "/agreements/{id}/approve"),
                allows(role, "POST", "/api/v1/agreements/{id}/approve")
            );
            assert_eq!(allows(role, "GET", "/archive"), allows(role, "GET", "/api/v1/agreements"));
        }
        assert!(!allows(Sales, "POST", "/agreements/{id}/approve"));
        assert!(!allows(Legal, "GET", "/admin"));
    }

    #[test]
    fn every_page_row_that_names_an_api_route_names_one_that_exists() {
        for (m, p, a) in PAGES {
            if let Access::AsApi(am, ap) = a {
                assert!(!super::super::api::allowed(am, ap).is_empty(), "{m} {p} names {am} {ap}");
            }
            assert!(!p.starts_with(API), "{p}: API routes come from api::ROUTES");
        }
    }
}
