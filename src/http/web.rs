//! The staff web app: server-rendered pages (tera), plain forms that work without JavaScript,
//! one stylesheet served from the binary at `/assets/app.css` (no inline style or script, so a
//! strict Content-Security-Policy holds).
//!
//! Sign-in state is a session cookie (HttpOnly, SameSite=Lax; `Secure` with the `__Host-`
//! prefix when `public_base_url` is https) checked by [`Viewer`]. Authorization is decided in
//! one place, the route table ([`super::routes`]), by a layer before the handler runs: anything
//! not allowed fails closed (signed out → 303 to `/login`, signed in with another role → the 403
//! page). Every state-changing form carries the session's CSRF token and is checked by
//! [`Viewer::form`] before anything else runs: without it, 403 and nothing changes. Handlers call the
//! application layer ([`crate::people::Directory`], the [`crate::app::service::Service`])
//! and never the store.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tera::{Context, Tera};

use super::error::ApiError;
use super::{AppState, blocking};
use crate::app::service::{Actor, Service, ServiceError};
use crate::archive::search;
use crate::people::{Acceptance, LoginStep, PeopleError, PersonView, SignedIn};
use crate::staff::Role::{self, Sales};
use crate::store::StoreError;

const LAYOUT: &str = include_str!("../../templates/web/app/layout.html.tera");
const FIELD: &str = include_str!("../../templates/web/app/field.html.tera");
const MESSAGE: &str = include_str!("../../templates/web/app/message.html.tera");
const LOGIN: &str = include_str!("../../templates/web/app/login.html.tera");
const ACCEPT: &str = include_str!("../../templates/web/app/accept.html.tera");
const HOME: &str = include_str!("../../templates/web/app/home.html.tera");
const PEOPLE: &str = include_str!("../../templates/web/app/people.html.tera");
const AGREEMENT: &str = include_str!("../../templates/web/app/agreement.html.tera");
const DRAFT: &str = include_str!("../../templates/web/app/draft.html.tera");
const DRAFT_INPUT: &str = include_str!("../../templates/web/app/draft_input.html.tera");
/// The stylesheet, embedded in the binary.
pub const APP_CSS: &str = include_str!("../../templates/web/app.css");

const ROLES: [(&str, &str); 4] =
    [("sales", "Sales"), ("legal", "Legal"), ("vendor_manager", "Vendor manager"), ("admin", "Administrator")];

pub(crate) fn role_label(r: &str) -> &'static str {
    ROLES.iter().find(|(v, _)| *v == r).map_or("staff", |(_, l)| l)
}

/// The web app's templates (autoescaped).
pub struct WebPages {
    tera: Tera,
}

impl WebPages {
    pub fn new() -> Result<WebPages, TemplateError> {
        let mut tera = crate::render::html::tera();
        for (n, s) in [
            ("layout.html.tera", LAYOUT),
            ("field.html.tera", FIELD),
            ("message.html.tera", MESSAGE),
            ("login.html.tera", LOGIN),
            ("accept.html.tera", ACCEPT),
            ("home.html.tera", HOME),
            ("people.html.tera", PEOPLE),
            ("action_field.html.tera", super::agreement_page::ACTION_FIELD),
            ("agreement.html.tera", AGREEMENT),
            ("draft_input.html.tera", DRAFT_INPUT),
            ("draft.html.tera", DRAFT),
        ]
        .into_iter()
        .chain(super::account::TEMPLATES.iter().copied())
        .chain(super::admin_pages::TEMPLATES.iter().copied())
        .chain(super::archive_pages::TEMPLATES.iter().copied())
        .chain(super::verify_pages::TEMPLATES.iter().copied())
        .chain(super::webhook_pages::TEMPLATES.iter().copied())
        .chain(super::agreement_page::TEMPLATES.iter().copied())
        {
            tera.add_raw_template(n, s).map_err(|e| TemplateError::WebPage { name: n, reason: e.to_string() })?;
        }
        Ok(WebPages { tera })
    }
}

/// An embedded page template that does not compile or render: a build defect, found at start-up
/// (or answered 500 and logged). The cause is tera's text, so the error can be cached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    #[error("web page {name}: {reason}")]
    WebPage { name: &'static str, reason: String },
    #[error("{name}: {reason}")]
    SignerPage { name: &'static str, reason: String },
    #[error("page {name}: {reason}")]
    Render { name: String, reason: String },
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/invite/{token}", get(invite_page).post(accept_invite))
        .route("/setup/{token}", get(setup_page).post(accept_setup))
        .route("/agreements/{id}", get(agreement_page))
        .route("/agreements/{id}/document", get(agreement_document))
        .route("/agreements/{id}/send", post(send))
        .route("/people", get(people_page).post(invite))
        .route("/people/{id}/role", post(change_role))
        .route("/people/{id}/disable", post(disable))
        .route("/people/{id}/reinvite", post(reinvite))
}

/// The signed-in person as the layout shows them.
#[derive(Serialize)]
pub(crate) struct Me {
    name: String,
    email: String,
    role: String,
    role_label: &'static str,
    csrf: String,
}

/// A form field as `field.html.tera` draws it.
#[derive(Serialize, Default)]
pub(crate) struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: String,
    error: Option<String>,
    hint: Option<&'static str>,
    autocomplete: &'static str,
    options: Vec<(&'static str, &'static str)>,
}

/// Who is asking: the live session (if any) and the source address.
#[derive(Clone)]
pub struct Viewer {
    pub who: Option<SignedIn>,
    pub ip: String,
    secure: bool,
    state: AppState,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The route layer looked the session up already (`http::routes::authorize`).
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
        let name = state.people.cookie_name();
        let cookie = cookie_value(&parts.headers, name).unwrap_or_default();
        let people = state.people.clone();
        let who = if cookie.is_empty() {
            None
        } else {
            match blocking(move || people.session(&cookie)).await {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => return Err(page_error(state, None, e)),
                Err(e) => return Err(e.into_response()),
            }
        };
        Ok(Viewer { who, ip, secure: state.people.secure_cookies(), state: state.clone() })
    }
}

impl Viewer {
    /// The signed-in person the route layer admitted ([`super::routes::authorize`] checked the
    /// route's roles before the handler ran); signed out, 303 to `/login`.
    pub(crate) fn signed_in(&self) -> Result<&SignedIn, Box<Response>> {
        self.who.as_ref().ok_or_else(|| Box::new(Redirect::to("/login").into_response()))
    }

    /// A state-changing form: [`Viewer::signed_in`], then the session's CSRF token; returns the
    /// remaining fields.
    pub(crate) fn form(
        &self,
        fields: HashMap<String, String>,
    ) -> Result<(&SignedIn, HashMap<String, String>), Box<Response>> {
        let w = self.signed_in()?;
        self.csrf(w, fields)
    }

    /// The CSRF check of [`Viewer::form`] for a person already known to be signed in.
    pub(crate) fn csrf<'a>(
        &self,
        w: &'a SignedIn,
        mut fields: HashMap<String, String>,
    ) -> Result<(&'a SignedIn, HashMap<String, String>), Box<Response>> {
        let token = fields.remove("csrf").unwrap_or_default();
        if !w.csrf_ok(&token) {
            return Err(Box::new(message(
                &self.state,
                Some(self),
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was sent without its security token, so nothing was changed. Go back, reload the page and try again.",
            )));
        }
        Ok((w, fields))
    }

    /// The actor a signed-in person's change is recorded under: their email, this address and
    /// the request's id.
    pub(crate) fn actor(&self, staff: &crate::staff::Staff, headers: &HeaderMap) -> Actor {
        super::staff_actor(staff, self.ip.parse().ok().map(|ip| SocketAddr::new(ip, 0)), headers)
    }

    pub(crate) fn me(&self) -> Option<Me> {
        self.who.as_ref().map(|w| Me {
            name: w.person.name.clone(),
            email: w.person.email.clone(),
            role: w.person.role.clone(),
            role_label: role_label(&w.person.role),
            csrf: w.session.csrf.clone(),
        })
    }
}

pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

pub(crate) fn render(
    state: &AppState,
    viewer: Option<&Viewer>,
    name: &str,
    nav: &str,
    mut ctx: Context,
    status: StatusCode,
) -> Response {
    ctx.insert("me", &viewer.and_then(Viewer::me));
    ctx.insert("nav", nav);
    match state.web.tera.render(name, &ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::Internal(format!("page {name}: {e}")).into_response(),
    }
}

pub(crate) fn message(
    state: &AppState,
    viewer: Option<&Viewer>,
    status: StatusCode,
    title: &str,
    body: &str,
) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", title);
    ctx.insert("body", body);
    ctx.insert("link", &None::<()>);
    render(state, viewer, "message.html.tera", "", ctx, status)
}

pub(crate) fn forbidden(state: &AppState, viewer: &Viewer) -> Response {
    message(
        state,
        Some(viewer),
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Your role does not allow this page. Ask an administrator if you need access.",
    )
}

/// A state-changing form's work: [`Viewer::form`] (signed in, then the CSRF token), then `work`
/// off the async threads with the person, their address and the form's other fields. `Err` is
/// the answer already made: the way to `/login`, the expired-form page, or the pool's failure.
pub(crate) async fn form_work<T: Send + 'static>(
    viewer: &Viewer,
    f: HashMap<String, String>,
    work: impl FnOnce(SignedIn, String, HashMap<String, String>) -> T + Send + 'static,
) -> Result<T, Box<Response>> {
    let (w, fields) = viewer.form(f)?;
    let (w, ip) = (w.clone(), viewer.ip.clone());
    blocking(move || work(w, ip, fields)).await.map_err(|e| Box::new(e.into_response()))
}

/// The 404 page of an agreement that does not exist or that the person may not see.
pub(crate) fn no_agreement(state: &AppState, viewer: &Viewer) -> Response {
    message(
        state,
        Some(viewer),
        StatusCode::NOT_FOUND,
        "Agreement not found",
        "There is no such agreement, or it is not yours to see.",
    )
}

/// What a page read off the async threads gives: its value, or the answer to its failure —
/// `missing()` for [`ServiceError::NotFound`], the error's own response otherwise.
pub(crate) fn read_or<T>(
    loaded: Result<Result<T, ServiceError>, ApiError>,
    missing: impl FnOnce() -> Response,
) -> Result<T, Box<Response>> {
    match loaded {
        Ok(Ok(x)) => Ok(x),
        Ok(Err(ServiceError::NotFound)) => Err(Box::new(missing())),
        Ok(Err(e)) => Err(Box::new(ApiError::from(e).into_response())),
        Err(e) => Err(Box::new(e.into_response())),
    }
}

/// A read of agreement `id` by the signed-in person: the agreement must be one they may see,
/// then `read` runs off the async threads under their actor (so the read of an archived copy is
/// logged). Signed out → `/login`; not found → `missing`.
pub(crate) async fn staff_read<T: Send + 'static>(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    id: String,
    missing: fn(&AppState, &Viewer) -> Response,
    read: impl FnOnce(&Service, &str, &Actor) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Box<Response>> {
    let staff = viewer.signed_in()?.staff();
    let who = viewer.actor(&staff, headers);
    let svc = state.service.clone();
    let loaded = blocking(move || {
        super::api::visible(&svc, &staff, &id)?;
        read(&svc, &id, &who)
    })
    .await;
    read_or(loaded, || missing(state, viewer))
}

/// The 404 page for every unknown path (JSON under `/api/`).
pub async fn not_found(State(state): State<AppState>, uri: Uri, viewer: Viewer) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::NotFound.into_response();
    }
    message(&state, Some(&viewer), StatusCode::NOT_FOUND, "Page not found", "There is nothing at this address.")
}

pub(crate) fn page_error(state: &AppState, viewer: Option<&Viewer>, e: PeopleError) -> Response {
    match e {
        PeopleError::NotFound => message(state, viewer, StatusCode::NOT_FOUND, "Not found", "There is no such person."),
        PeopleError::Link(m) => message(state, viewer, StatusCode::GONE, "This link does not work", m),
        PeopleError::Conflict(m) => message(state, viewer, StatusCode::CONFLICT, "Not done", &m),
        PeopleError::Store(e @ (StoreError::OutcomeUnknown(_) | StoreError::ConnectionLost(_))) => {
            let (status, code, text, _) = ApiError::from(PeopleError::Store(e)).parts();
            let title = if code == "outcome_unknown" { "Outcome unknown" } else { "Please try again" };
            let mut resp = message(state, viewer, status, title, &text);
            crate::http::error::retry_after(&mut resp);
            resp
        }
        e => ApiError::from(e).into_response(),
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        APP_CSS,
    )
        .into_response()
}

// ---- sign-in -------------------------------------------------------------------------------

fn login_form(
    state: &AppState,
    email: &str,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", "Sign in");
    ctx.insert("email", email);
    ctx.insert("error", &error);
    ctx.insert("notice", &notice);
    render(state, None, "login.html.tera", "", ctx, status)
}

async fn login_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if viewer.who.is_some() {
        return Redirect::to("/").into_response();
    }
    let notice = if q.contains_key("welcome") {
        Some("Your password is set. Sign in to continue.")
    } else if q.contains_key("changed") {
        Some("Your password is changed, and every session of yours has ended. Sign in with the new password.")
    } else {
        None
    };
    login_form(&state, "", None, notice, StatusCode::OK)
}

/// A cross-site form post shows a foreign Origin; refuse it (login CSRF, before any session
/// exists). `Origin: null` (sent under `Referrer-Policy: no-referrer`) is no evidence either way;
/// SameSite=Lax cookies and the per-session tokens cover the rest.
fn foreign_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let base = state.service.config.base_url();
    let same_base = base == origin || base.starts_with(&format!("{origin}/"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let same_host = origin.split_once("://").is_some_and(|(_, h)| h == host);
    !(same_base || same_host)
}

async fn login(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if foreign_origin(&state, &headers) {
        return message(&state, None, StatusCode::FORBIDDEN, "Not allowed", "Sign in from this site's own page.");
    }
    if let Some(pending) = f.get("pending") {
        return super::account::second_step(&state, &viewer, pending, f.get("code").map_or("", String::as_str)).await;
    }
    let email = f.get("email").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let (people, ip, e2) = (state.people.clone(), viewer.ip.clone(), email.clone());
    let result = match blocking(move || people.login(&e2, &password, &ip)).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let shown: String = email.chars().take(254).collect();
    match result {
        Ok(LoginStep::Done(cookie, _)) => signed_in_redirect(&state, &viewer, &cookie, "/"),
        Ok(LoginStep::Code { pending }) => super::account::code_form(&state, &pending, None, StatusCode::OK),
        Err(PeopleError::BadCredentials) => {
            login_form(&state, &shown, Some("The email or password is not right."), None, StatusCode::UNAUTHORIZED)
        }
        Err(PeopleError::TooMany) => login_form(
            &state,
            &shown,
            Some("Too many failed sign-ins. Wait 15 minutes and try again."),
            None,
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => page_error(&state, None, e),
    }
}

/// A 303 to `to` that sets the session cookie.
pub(crate) fn signed_in_redirect(state: &AppState, viewer: &Viewer, cookie: &str, to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    let attrs = if viewer.secure { "; Secure" } else { "" };
    let c = format!("{}={cookie}; Path=/; HttpOnly; SameSite=Lax{attrs}", state.people.cookie_name());
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let w = match viewer.form(f) {
        Ok((w, _)) => w.clone(),
        Err(r) => return *r,
    };
    let (people, ip) = (state.people.clone(), viewer.ip.clone());
    if let Ok(Err(e)) = blocking(move || people.logout(&w, &ip)).await {
        return page_error(&state, None, e);
    }
    let mut r = Redirect::to("/login").into_response();
    let attrs = if viewer.secure { "; Secure" } else { "" };
    let c = format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{attrs}", state.people.cookie_name());
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---- invitations and first-admin setup -----------------------------------------------------

fn accept_form(
    state: &AppState,
    action: String,
    person: Option<&crate::store::people::PersonRecord>,
    a: &Acceptance,
    errors: &[(String, String)],
    status: StatusCode,
) -> Response {
    let err = |n: &str| errors.iter().find(|(f, _)| f == n).map(|(_, m)| m.clone());
    let mut fields = Vec::new();
    if person.is_none() {
        fields.push(Field {
            name: "email",
            label: "Email",
            kind: "email",
            value: a.email.clone(),
            error: err("email"),
            autocomplete: "username",
            ..Field::default()
        });
        fields.push(Field {
            name: "name",
            label: "Name",
            kind: "text",
            value: a.name.clone(),
            error: err("name"),
            autocomplete: "name",
            ..Field::default()
        });
    }
    fields.push(Field {
        name: "password",
        label: "Password",
        kind: "password",
        error: err("password"),
        hint: Some("At least 12 characters; a short phrase is easiest to remember."),
        autocomplete: "new-password",
        ..Field::default()
    });
    fields.push(Field {
        name: "password_confirm",
        label: "Password again",
        kind: "password",
        error: err("password_confirm"),
        autocomplete: "new-password",
        ..Field::default()
    });
    let mut ctx = Context::new();
    ctx.insert("title", if person.is_some() { "Accept your invitation" } else { "Set up Countersign" });
    ctx.insert("action", &action);
    ctx.insert(
        "person",
        &person.map(|p| serde_json::json!({"name": p.name, "email": p.email, "role_label": role_label(&p.role)})),
    );
    ctx.insert("fields", &fields);
    render(state, None, "accept.html.tera", "", ctx, status)
}

async fn show_invite(state: AppState, token: String, path: &str) -> Response {
    let people = state.people.clone();
    let t = token.clone();
    match blocking(move || people.open_invite(&t)).await {
        Ok(Ok(open)) if (path == "setup") == open.person.is_none() => accept_form(
            &state,
            format!("/{path}/{token}"),
            open.person.as_ref(),
            &Acceptance::default(),
            &[],
            StatusCode::OK,
        ),
        Ok(Ok(_)) => message(&state, None, StatusCode::NOT_FOUND, "This link does not work", "This link is not valid."),
        Ok(Err(e)) => page_error(&state, None, e),
        Err(e) => e.into_response(),
    }
}

async fn invite_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    show_invite(state, token, "invite").await
}

async fn setup_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    show_invite(state, token, "setup").await
}

async fn accept(
    state: AppState,
    viewer: Viewer,
    headers: HeaderMap,
    token: String,
    a: Acceptance,
    path: &str,
) -> Response {
    if foreign_origin(&state, &headers) {
        return message(&state, None, StatusCode::FORBIDDEN, "Not allowed", "Use this site's own page.");
    }
    let people = state.people.clone();
    let (t, a2, ip) = (token.clone(), a.clone(), viewer.ip.clone());
    let result = blocking(move || {
        let open = people.open_invite(&t)?;
        people.accept(&t, &a2, &ip).map(|p| (p, open))
    })
    .await;
    match result {
        // Enrolment is part of accepting: sign the person in and take them to it.
        Ok(Ok((p, _))) if state.service.config.web.require_mfa => {
            let (people, ip, pw) = (state.people.clone(), viewer.ip.clone(), a.password.clone());
            match blocking(move || people.login(&p.email, &pw, &ip)).await {
                Ok(Ok(LoginStep::Done(cookie, _))) => signed_in_redirect(&state, &viewer, &cookie, "/account"),
                _ => Redirect::to("/login?welcome=1").into_response(),
            }
        }
        Ok(Ok(_)) => Redirect::to("/login?welcome=1").into_response(),
        Ok(Err(PeopleError::Fields(errors))) => {
            let people = state.people.clone();
            let t = token.clone();
            let person =
                blocking(move || people.open_invite(&t)).await.ok().and_then(Result::ok).and_then(|o| o.person);
            accept_form(
                &state,
                format!("/{path}/{token}"),
                person.as_ref(),
                &a,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Ok(Err(e)) => page_error(&state, None, e),
        Err(e) => e.into_response(),
    }
}

async fn accept_invite(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(a): Form<Acceptance>,
) -> Response {
    accept(state, viewer, headers, token, a, "invite").await
}

async fn accept_setup(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(a): Form<Acceptance>,
) -> Response {
    accept(state, viewer, headers, token, a, "setup").await
}

// ---- agreements ----------------------------------------------------------------------------

#[derive(Serialize)]
struct Row {
    id: String,
    title: String,
    kind: String,
    parties: [String; 2],
    states: Vec<String>,
    status: String,
    status_label: String,
    updated: String,
}

fn row(e: &search::Entry) -> Row {
    Row {
        id: e.id.clone(),
        title: e.title.clone(),
        kind: e.kind.clone(),
        parties: e.parties.clone(),
        states: e.states.clone(),
        status: e.status.clone(),
        status_label: e.status.replace('_', " "),
        updated: crate::clock::rfc3339(e.updated_at).replace('T', " ").trim_end_matches('Z').to_string(),
    }
}

const PAGE: usize = 25;

/// One page of the table, the total, the next page's cursor, and what needs attention.
type Listing = (Vec<search::Entry>, usize, Option<String>, Vec<search::Entry>);

/// `GET /`: what needs the person first, then the searchable table.
async fn home(State(state): State<AppState>, viewer: Viewer, uri: Uri) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let raw: HashMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let get = |k: &str| raw.get(k).cloned();
    let q = search::Query {
        q: get("q"),
        kind: get("kind"),
        status: get("status"),
        sort: get("sort"),
        cursor: get("cursor"),
        limit: Some(PAGE),
        ..search::Query::default()
    };
    let mut errors: HashMap<&str, Option<String>> = [("q", None), ("status", None)].into_iter().collect();
    let problems = q.validate().err().unwrap_or_default();
    for (p, m) in &problems {
        let key = if p.contains("status") { "status" } else { "q" };
        errors.insert(key, Some(m.clone()));
    }
    let svc = state.service.clone();
    let staff = w.staff();
    let valid = problems.is_empty();
    let q2 = q.clone();
    let listed = super::cpu(move || -> Result<Listing, ApiError> {
        // A `sales` person lists their own: the index keeps who created each entry, so this is
        // a filter on the index, not a decode of every stored agreement.
        let own = (staff.role == Sales).then(|| staff.who.clone());
        // Declined and expired ones, newest first (the default order): the first 20 of each,
        // merged.
        let mut attention: Vec<search::Entry> = Vec::new();
        for status in ["declined", "expired"] {
            let q = search::Query {
                status: Some(status.into()),
                created_by: own.clone(),
                limit: Some(20),
                ..search::Query::default()
            };
            attention.extend(svc.search(&q)?.items);
        }
        attention.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        attention.truncate(20);
        if !valid {
            return Ok((Vec::new(), 0, None, attention));
        }
        let page = svc.search(&search::Query { created_by: own, ..q2 })?;
        Ok((page.items, page.total, page.next_cursor, attention))
    })
    .await;
    let (items, total, next, attention) = match listed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) | Err(e) => return e.into_response(),
    };
    let next = next.map(|c| {
        let mut parts: Vec<String> = ["q", "kind", "status", "sort"]
            .iter()
            .filter_map(|k| raw.get(*k).map(|v| format!("{k}={}", encode(v))))
            .collect();
        parts.push(format!("cursor={}", encode(&c)));
        format!("/?{}", parts.join("&"))
    });
    let mut ctx = Context::new();
    ctx.insert("title", "Agreements");
    ctx.insert(
        "q",
        &serde_json::json!({"q": get("q").unwrap_or_default(), "kind": get("kind").unwrap_or_default(),
        "status": get("status").unwrap_or_default(), "sort": get("sort").unwrap_or_default()}),
    );
    ctx.insert("errors", &errors);
    ctx.insert("items", &items.iter().map(row).collect::<Vec<_>>());
    ctx.insert("attention", &attention.iter().map(row).collect::<Vec<_>>());
    ctx.insert("total", &total);
    ctx.insert("next", &next);
    ctx.insert("kinds", &[("baa", "BAA"), ("dua", "DUA")]);
    ctx.insert("statuses", &["draft", "sent", "partially_signed", "executed", "declined", "expired", "voided"]);
    ctx.insert(
        "sorts",
        &[("", "Last activity"), ("counterparty", "Counterparty"), ("effective_date", "Effective date")],
    );
    match super::vendor_pages::dashboard(&state, &viewer).await {
        Ok(register) => ctx.insert("register", &register),
        Err(e) => return e.into_response(),
    }
    let status = if valid { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(&state, Some(&viewer), "home.html.tera", "agreements", ctx, status)
}

pub(crate) fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |x: u8| (x as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---- one agreement -----------------------------------------------------------------------

/// The roles of the API route doing the same thing: one authorization table for both.
pub(crate) fn api_roles(method: &str, path: &str) -> &'static [Role] {
    super::api::allowed(method, path)
}

pub(crate) fn service_problem(e: ServiceError) -> Result<(String, Vec<crate::domain::findings::Finding>), ApiError> {
    match e {
        ServiceError::CheckFailed(f) => Ok(("The agreement does not pass its checks, so it was not sent.".into(), f)),
        ServiceError::NeedsApproval(f) => {
            Ok(("The agreement departs from policy: legal or an administrator must approve it first.".into(), f))
        }
        ServiceError::Invalid(f) => Ok(("The intake is invalid.".into(), f)),
        ServiceError::State(m) => Ok((m, Vec::new())),
        e => Err(ApiError::from(e)),
    }
}

pub(crate) async fn agreement_view(
    state: AppState,
    viewer: Viewer,
    id: String,
    done: Option<&str>,
    problem: Option<(String, Vec<crate::domain::findings::Finding>)>,
    status: StatusCode,
) -> Response {
    agreement_view_with(state, viewer, id, done, problem, None, status).await
}

/// [`agreement_view`] with a form sent back: its values, and its problem beside its field.
pub(crate) async fn agreement_view_with(
    state: AppState,
    viewer: Viewer,
    id: String,
    done: Option<&str>,
    problem: Option<(String, Vec<crate::domain::findings::Finding>)>,
    posted: Option<super::agreement_page::Posted>,
    status: StatusCode,
) -> Response {
    let w = match viewer.signed_in() {
        Ok(w) => w.clone(),
        Err(r) => return *r,
    };
    let staff = w.staff();
    let svc = state.service.clone();
    let role = w.role;
    let aid = id.clone();
    let loaded =
        blocking(move || -> Result<(serde_json::Value, Vec<crate::store::Event>, Vec<&'static str>), ServiceError> {
            let a = super::api::visible(&svc, &staff, &id)?;
            // What this person may do here now: the status allows it and the API's table gives
            // their role the route.
            use crate::domain::actions::Action;
            let can: Vec<&'static str> = [
                ("approve", Action::Approve, "POST", "/agreements/{id}/approve"),
                ("void", Action::Void, "POST", "/agreements/{id}/void"),
                ("revise", Action::Revise, "POST", "/agreements/{id}/revise"),
                ("resend", Action::Resend, "POST", "/agreements/{id}/signers/{signer}/resend"),
                ("correct", Action::UpdateSigner, "PATCH", "/agreements/{id}/signers/{signer}"),
                ("draft", Action::Replace, "POST", "/agreements"),
            ]
            .into_iter()
            .filter(|(k, act, m, p)| {
                (*k == "draft" || a.status.allows(*act).is_ok()) && api_roles(m, p).contains(&role)
            })
            .map(|(k, ..)| k)
            .collect();
            // Versions, the seal, renewal and retention, and the lifecycle actions allowed now.
            let (extras, more) = super::agreement_page::extras(&svc, &a, role)?;
            let mut view = super::api::view(&svc, &a)?;
            view["page"] = extras;
            Ok((view, svc.audit(&id)?, can.into_iter().chain(more).collect()))
        })
        .await;
    let (a, events, can) = match read_or(loaded, || no_agreement(&state, &viewer)) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let elements: Vec<serde_json::Value> = a["check"]["elements"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            serde_json::json!({"summary": e["summary"].as_str().or(e["id"].as_str()).unwrap_or(""),
                "clause": e["clause"].as_str().unwrap_or("—"), "citation": e["citation"].as_str().unwrap_or(""),
                "status": e["status"].as_str().unwrap_or("").replace('_', " ")})
        })
        .collect();
    let breach =
        a["check"]["breach_clock"]["text"].as_str().map(|t| match a["check"]["breach_clock"]["explanation"].as_str() {
            Some(x) => format!("Breach notice: {t} — {}.", x.trim_end_matches('.')),
            None => format!("Breach notice: {t}"),
        });
    let events: Vec<serde_json::Value> = events.iter().rev().map(super::agreement_page::timeline_entry).collect();
    let can_send = a["status"] == "draft" && api_roles("POST", "/agreements/{id}/send").contains(&w.role);
    let (problem, findings) = match problem {
        Some((m, f)) => (Some(m), f),
        None => (None, Vec::new()),
    };
    let mut ctx = Context::new();
    ctx.insert("title", a["title"].as_str().unwrap_or("Agreement"));
    ctx.insert("status_label", &a["status"].as_str().unwrap_or("").replace('_', " "));
    ctx.insert("a", &a);
    ctx.insert("elements", &elements);
    ctx.insert("breach", &breach);
    ctx.insert("events", &events);
    ctx.insert("can_send", &can_send);
    ctx.insert("can", &can);
    ctx.insert("done", &done);
    ctx.insert("problem", &problem);
    ctx.insert("findings", &findings);
    ctx.insert("x", &a["page"]);
    // The alert at the top links to the input whose problem is shown beside it.
    ctx.insert("problem_at", &posted.as_ref().and_then(|p| p.errors.keys().next().map(|f| format!("{}-{f}", p.form))));
    let (drawn, values, errors) = super::agreement_page::form_state(posted.as_ref());
    ctx.insert("ff", &drawn);
    ctx.insert("fv", &values);
    ctx.insert("fe", &errors);
    ctx.insert("vendors", &super::vendor_pages::linked_vendors(&state, role, aid).await);
    let mut r = render(&state, Some(&viewer), "agreement.html.tera", "agreements", ctx, status);
    if let Ok(v) = HeaderValue::from_str(&super::agreement_page::page_csp()) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

async fn agreement_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let done = if q.contains_key("sent") {
        Some("Sent: the first signer's link is on its way.")
    } else {
        q.contains_key("created")
            .then_some("Draft saved. Review the required elements below, then send it.")
            .or_else(|| q.get("done").and_then(|k| super::agreement_page::done_message(k)))
    };
    agreement_view(state, viewer, id, done, None, StatusCode::OK).await
}

/// The current PDF, logged in the access log under the person's email.
async fn agreement_document(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match staff_read(&state, &viewer, &headers, id, no_agreement, |svc, id, who| svc.document(id, who)).await {
        Ok((bytes, sha)) => super::api::pdf_response(bytes, &sha, "agreement.pdf"),
        Err(r) => *r,
    }
}

async fn send(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let w = match viewer.form(f) {
        Ok((w, _)) => w.clone(),
        Err(r) => return *r,
    };
    let staff = w.staff();
    let who = viewer.actor(&staff, &headers);
    let svc = state.service.clone();
    let id2 = id.clone();
    let result = blocking(move || {
        super::api::visible(&svc, &staff, &id2)?;
        svc.send(&id2, &who)?;
        svc.flush_outbox_of(&id2)
    })
    .await;
    match result {
        Ok(Ok(_)) => Redirect::to(&format!("/agreements/{id}?sent=1")).into_response(),
        Ok(Err(ServiceError::NotFound)) => no_agreement(&state, &viewer),
        Ok(Err(e)) => match service_problem(e) {
            Ok(p) => agreement_view(state, viewer, id, None, Some(p), StatusCode::UNPROCESSABLE_ENTITY).await,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

// ---- people (admin) ------------------------------------------------------------------------

struct Invited {
    email: String,
    url: String,
}

fn people_view(
    state: &AppState,
    viewer: &Viewer,
    (people, log): (Vec<PersonView>, Vec<crate::store::people::SecurityEvent>),
    form: &HashMap<String, String>,
    errors: &[(String, String)],
    (invited, problem): (Option<Invited>, Option<String>),
    status: StatusCode,
) -> Response {
    let err = |n: &str| errors.iter().find(|(f, _)| f.trim_start_matches('/') == n).map(|(_, m)| m.clone());
    let val = |n: &str| form.get(n).cloned().unwrap_or_default();
    let fields = vec![
        Field {
            name: "email",
            label: "Email",
            kind: "email",
            value: val("email"),
            error: err("email"),
            autocomplete: "off",
            ..Field::default()
        },
        Field {
            name: "name",
            label: "Name",
            kind: "text",
            value: val("name"),
            error: err("name"),
            autocomplete: "off",
            ..Field::default()
        },
        Field {
            name: "role",
            label: "Role",
            kind: "select",
            value: form.get("role").cloned().unwrap_or_else(|| "sales".into()),
            error: err("role"),
            options: ROLES.to_vec(),
            ..Field::default()
        },
    ];
    let verified = crate::store::people::verify_security_log(&log);
    let mut ctx = Context::new();
    ctx.insert("title", "People");
    ctx.insert("fields", &fields);
    ctx.insert("people", &people);
    ctx.insert("roles", &ROLES);
    ctx.insert("invited", &invited.map(|i| serde_json::json!({"email": i.email, "url": i.url})));
    ctx.insert("problem", &problem);
    ctx.insert("intact", &verified.is_ok());
    ctx.insert("broken_at", &verified.err());
    ctx.insert("log_total", &log.len());
    let rows: Vec<serde_json::Value> = log
        .iter()
        .rev()
        .take(100)
        .map(|e| {
            serde_json::json!({"when": crate::clock::rfc3339(e.at).replace('T', " ").trim_end_matches('Z'), "who": e.who,
                "action": e.action, "detail": e.detail, "ip": e.ip})
        })
        .collect();
    ctx.insert("log", &rows);
    render(state, Some(viewer), "people.html.tera", "people", ctx, status)
}

async fn people_page_with(
    state: AppState,
    viewer: Viewer,
    form: HashMap<String, String>,
    errors: Vec<(String, String)>,
    invited: Option<Invited>,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let people = state.people.clone();
    match blocking(move || Ok::<_, PeopleError>((people.people()?, people.security_log()?))).await {
        Ok(Ok(loaded)) => people_view(&state, &viewer, loaded, &form, &errors, (invited, problem), status),
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(e) => e.into_response(),
    }
}

async fn people_page(State(state): State<AppState>, viewer: Viewer) -> Response {
    people_page_with(state, viewer, HashMap::new(), Vec::new(), None, None, StatusCode::OK).await
}

async fn invite(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let (w, form) = match viewer.form(f) {
        Ok((w, form)) => (w.clone(), form),
        Err(r) => return *r,
    };
    let people = state.people.clone();
    let (ip, f2) = (viewer.ip.clone(), form.clone());
    let v = |k: &str| f2.get(k).cloned().unwrap_or_default();
    let (email, name, role) = (v("email"), v("name"), v("role"));
    let by = w.person.email.clone();
    match blocking(move || people.invite(&by, &ip, &email, &name, &role)).await {
        Ok(Ok((p, url))) => {
            let invited = Some(Invited { email: p.email, url });
            people_page_with(state, viewer, HashMap::new(), Vec::new(), invited, None, StatusCode::CREATED).await
        }
        Ok(Err(PeopleError::Fields(errors))) => {
            people_page_with(state, viewer, form, errors, None, None, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(e) => e.into_response(),
    }
}

/// One admin action on a person, then back to the people page (303, so reload does not repeat it).
async fn person_action(
    state: AppState,
    viewer: Viewer,
    f: HashMap<String, String>,
    act: impl FnOnce(
        &crate::people::Directory,
        &str,
        &str,
        &HashMap<String, String>,
    ) -> Result<Option<Invited>, PeopleError>
    + Send
    + 'static,
) -> Response {
    let people = state.people.clone();
    match form_work(&viewer, f, move |w, ip, form| act(&people, &w.person.email, &ip, &form)).await {
        Ok(Ok(None)) => Redirect::to("/people").into_response(),
        Ok(Ok(Some(invited))) => {
            people_page_with(state, viewer, HashMap::new(), Vec::new(), Some(invited), None, StatusCode::OK).await
        }
        Ok(Err(PeopleError::Fields(errors))) => {
            let problem = errors.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ");
            people_page_with(
                state,
                viewer,
                HashMap::new(),
                Vec::new(),
                None,
                Some(problem),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Ok(Err(PeopleError::Conflict(m))) => {
            people_page_with(state, viewer, HashMap::new(), Vec::new(), None, Some(m), StatusCode::CONFLICT).await
        }
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(r) => *r,
    }
}

async fn change_role(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    person_action(state, viewer, f, move |p, by, ip, form| {
        p.set_role(by, ip, &id, form.get("role").map_or("", String::as_str)).map(|_| None)
    })
    .await
}

async fn disable(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    person_action(state, viewer, f, move |p, by, ip, _| p.disable(by, ip, &id).map(|_| None)).await
}

async fn reinvite(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    person_action(state, viewer, f, move |p, by, ip, _| {
        let url = p.reinvite(by, ip, &id)?;
        let email = p.people()?.into_iter().find(|x| x.id == id).map(|x| x.email).unwrap_or_default();
        Ok(Some(Invited { email, url }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_compile() {
        WebPages::new().expect("templates compile");
    }

    #[test]
    fn query_values_decode_and_encode_back() {
        assert_eq!(decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(decode("bad%zz%"), "bad%zz%");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn a_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; countersign=xyz; b=2"));
        assert_eq!(cookie_value(&h, "countersign").as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "other"), None);
    }
}
