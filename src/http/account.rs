//! A person's own pages: `/account` (two-factor enrolment, changing the password), the code
//! step of `/login`, the forgotten-password pages (`/forgot`, `/reset/{token}`), and the
//! admin's "reset two-factor" on the people page. Handlers call [`crate::people::Directory`].
//!
//! `/account` is the one page a person who must still enrol (`[web] require_mfa`) can reach:
//! its rows in the route table ([`super::routes::PAGES`]) ask for a session, not a role (a
//! role's page sends such a person here); every form on it still goes through the CSRF check.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tera::Context;

use super::web::{Viewer, form_work, message, page_error, render, signed_in_redirect};
use super::{AppState, blocking};
use crate::people::{PeopleError, SignedIn};

pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("login_code.html.tera", include_str!("../../templates/web/app/login_code.html.tera")),
    ("form.html.tera", include_str!("../../templates/web/app/form.html.tera")),
    ("account.html.tera", include_str!("../../templates/web/app/account.html.tera")),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/totp", post(totp_start))
        .route("/account/totp/confirm", post(totp_confirm))
        .route("/account/password", post(change_password))
        .route("/forgot", get(forgot_page).post(forgot))
        .route("/reset/{token}", get(reset_page).post(reset))
        .route("/people/{id}/totp/reset", post(totp_reset))
}

/// A form field as `field.html.tera` draws it (the same shape as the other pages' fields).
#[derive(Serialize, Default)]
pub(crate) struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub error: Option<String>,
    pub hint: Option<&'static str>,
    pub autocomplete: &'static str,
    pub options: Vec<(String, String)>,
}

fn err_of(errors: &[(String, String)], name: &str) -> Option<String> {
    errors.iter().find(|(f, _)| f.trim_start_matches('/') == name).map(|(_, m)| m.clone())
}

// ---- sign-in, second step -----------------------------------------------------------------

pub(crate) fn code_form(state: &AppState, pending: &str, error: Option<&str>, status: StatusCode) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", "Enter your code");
    ctx.insert("pending", pending);
    ctx.insert("error", &error);
    render(state, None, "login_code.html.tera", "", ctx, status)
}

/// `POST /login` with `pending` and `code`.
pub(crate) async fn second_step(state: &AppState, viewer: &Viewer, pending: &str, code: &str) -> Response {
    let (people, ip, p2, c2) = (state.people.clone(), viewer.ip.clone(), pending.to_string(), code.to_string());
    match blocking(move || people.second_factor(&p2, &c2, &ip)).await {
        Ok(Ok((cookie, _))) => signed_in_redirect(state, viewer, &cookie, "/"),
        Ok(Err(PeopleError::Fields(errors))) => code_form(
            state,
            pending,
            err_of(&errors, "code").as_deref().or(Some("That code is not right.")),
            StatusCode::UNAUTHORIZED,
        ),
        Ok(Err(PeopleError::TooMany)) => message(
            state,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            "Wait 15 minutes and sign in again.",
        ),
        Ok(Err(PeopleError::Link(m))) => {
            let mut ctx = Context::new();
            ctx.insert("title", "Sign in");
            ctx.insert("email", "");
            ctx.insert("error", &Some(m));
            ctx.insert("notice", &None::<&str>);
            render(state, None, "login.html.tera", "", ctx, StatusCode::UNAUTHORIZED)
        }
        Ok(Err(e)) => page_error(state, None, e),
        Err(e) => e.into_response(),
    }
}

// ---- /account -----------------------------------------------------------------------------

fn signed_in(viewer: &Viewer) -> Result<SignedIn, Box<Response>> {
    viewer.who.clone().ok_or_else(|| Box::new(Redirect::to("/login").into_response()))
}

struct AccountView {
    done: Option<&'static str>,
    problem: Option<String>,
    recovery: Vec<String>,
    code_error: Option<String>,
    password_errors: Vec<(String, String)>,
}

impl AccountView {
    fn plain() -> AccountView {
        AccountView { done: None, problem: None, recovery: Vec::new(), code_error: None, password_errors: Vec::new() }
    }
}

async fn account_view(state: AppState, viewer: Viewer, v: AccountView, status: StatusCode) -> Response {
    let w = match signed_in(&viewer) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let (people, id) = (state.people.clone(), w.person.id.clone());
    let loaded = blocking(move || {
        let enrolment = people.totp_enrolment(&id)?;
        Ok::<_, PeopleError>((enrolment, people.must_enrol(&w.person)))
    })
    .await;
    let (enrolment, must_enrol) = match loaded {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return page_error(&state, Some(&viewer), e),
        Err(e) => return e.into_response(),
    };
    let person = &viewer.who.as_ref().map(|w| w.person.clone());
    let t = person.as_ref().and_then(|p| p.totp.clone()).filter(|t| t.confirmed_at.is_some());
    let mut ctx = Context::new();
    ctx.insert("title", "Your account");
    ctx.insert("done", &v.done);
    ctx.insert("problem", &v.problem);
    ctx.insert("must_enrol", &(must_enrol && v.recovery.is_empty()));
    ctx.insert("recovery", &v.recovery);
    ctx.insert("mfa_on", &t.is_some());
    ctx.insert(
        "mfa_since",
        &t.as_ref()
            .and_then(|t| t.confirmed_at)
            .map(|at| crate::clock::rfc3339(at).replace('T', " "))
            .unwrap_or_default(),
    );
    ctx.insert("recovery_left", &t.as_ref().map_or(0, |t| t.recovery.len()));
    ctx.insert("enrolment", &enrolment.map(|e| serde_json::json!({"secret": e.secret, "svg": e.svg, "uri": e.uri})));
    ctx.insert(
        "code_fields",
        &[FormField {
            name: "code",
            label: "Code from the app",
            kind: "text",
            error: v.code_error,
            hint: Some("The 6 digits your app shows now."),
            autocomplete: "one-time-code",
            ..FormField::default()
        }],
    );
    let pe = &v.password_errors;
    ctx.insert(
        "password_fields",
        &[
            FormField {
                name: "current_password",
                label: "Current password",
                kind: "password",
                error: err_of(pe, "current_password"),
                autocomplete: "current-password",
                ..FormField::default()
            },
            FormField {
                name: "password",
                label: "New password",
                kind: "password",
                error: err_of(pe, "password"),
                hint: Some("At least 12 characters; a short phrase is easiest to remember."),
                autocomplete: "new-password",
                ..FormField::default()
            },
            FormField {
                name: "password_confirm",
                label: "New password again",
                kind: "password",
                error: err_of(pe, "password_confirm"),
                autocomplete: "new-password",
                ..FormField::default()
            },
        ],
    );
    render(&state, Some(&viewer), "account.html.tera", "account", ctx, status)
}

async fn account_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut v = AccountView::plain();
    v.done = q.contains_key("started").then_some("Now add Countersign to your authenticator app.");
    account_view(state, viewer, v, StatusCode::OK).await
}

async fn totp_start(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let people = state.people.clone();
    match form_work(&viewer, f, move |w, ip, _| people.totp_start(&w, &ip)).await {
        Ok(Ok(())) => Redirect::to("/account?started=1#two-factor").into_response(),
        Ok(Err(PeopleError::Conflict(m))) => {
            let mut v = AccountView::plain();
            v.problem = Some(m);
            account_view(state, viewer, v, StatusCode::CONFLICT).await
        }
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(r) => *r,
    }
}

async fn totp_confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let people = state.people.clone();
    let result = form_work(&viewer, f, move |w, ip, form| {
        people.totp_confirm(&w, form.get("code").map_or("", String::as_str), &ip)
    })
    .await;
    let mut v = AccountView::plain();
    match result {
        Ok(Ok(codes)) => {
            v.recovery = codes;
            // The codes are on this page only: do not let a shared cache or the back button keep it.
            let mut r = account_view(state, viewer, v, StatusCode::OK).await;
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(Err(PeopleError::Fields(errors))) => {
            v.code_error = err_of(&errors, "code");
            account_view(state, viewer, v, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Ok(Err(PeopleError::Conflict(m))) => {
            v.problem = Some(m);
            account_view(state, viewer, v, StatusCode::CONFLICT).await
        }
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(r) => *r,
    }
}

async fn change_password(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let people = state.people.clone();
    let result = form_work(&viewer, f, move |w, ip, form| {
        let v = |k: &str| form.get(k).map_or("", String::as_str);
        people.change_password(&w, v("current_password"), v("password"), v("password_confirm"), &ip)
    })
    .await;
    match result {
        Ok(Ok(())) => {
            let mut r = Redirect::to("/login?changed=1").into_response();
            let attrs = if state.people.secure_cookies() { "; Secure" } else { "" };
            let c = format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{attrs}", state.people.cookie_name());
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Ok(Err(PeopleError::Fields(errors))) => {
            let mut v = AccountView::plain();
            v.password_errors = errors;
            account_view(state, viewer, v, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(r) => *r,
    }
}

// ---- forgotten password ----------------------------------------------------------------------

struct FormPage<'a> {
    title: &'a str,
    intro: Option<&'a str>,
    notice: Option<&'a str>,
    problem: Option<&'a str>,
    action: String,
    button: &'a str,
    fields: Vec<FormField>,
}

fn form_page(state: &AppState, p: FormPage<'_>, status: StatusCode) -> Response {
    let mut ctx = Context::new();
    ctx.insert("title", p.title);
    ctx.insert("intro", &p.intro);
    ctx.insert("notice", &p.notice);
    ctx.insert("problem", &p.problem);
    ctx.insert("action", &p.action);
    ctx.insert("button", p.button);
    ctx.insert("fields", &p.fields);
    ctx.insert("after", &serde_json::json!({"href": "/login", "text": "Back to sign in"}));
    render(state, None, "form.html.tera", "", ctx, status)
}

fn forgot_form(state: &AppState, notice: Option<&str>, problem: Option<&str>, status: StatusCode) -> Response {
    let page = FormPage {
        title: "Forgot your password?",
        intro: Some(
            "Enter your email. If it belongs to an account, we send a link to choose a new password; it works once, for one hour.",
        ),
        notice,
        problem,
        action: "/forgot".into(),
        button: "Send the link",
        fields: vec![FormField {
            name: "email",
            label: "Email",
            kind: "email",
            autocomplete: "username",
            ..FormField::default()
        }],
    };
    form_page(state, page, status)
}

async fn forgot_page(State(state): State<AppState>) -> Response {
    forgot_form(&state, None, None, StatusCode::OK)
}

async fn forgot(State(state): State<AppState>, viewer: Viewer, Form(f): Form<HashMap<String, String>>) -> Response {
    let (people, ip) = (state.people.clone(), viewer.ip.clone());
    let email = f.get("email").cloned().unwrap_or_default();
    match blocking(move || people.request_reset(&email, &ip)).await {
        Ok(Ok(())) => forgot_form(
            &state,
            Some(
                "If that email belongs to an account, a link to choose a new password is on its way. Check your inbox.",
            ),
            None,
            StatusCode::OK,
        ),
        Ok(Err(PeopleError::TooMany)) => forgot_form(
            &state,
            None,
            Some("Too many requests from here. Wait 15 minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Ok(Err(e)) => page_error(&state, None, e),
        Err(e) => e.into_response(),
    }
}

fn reset_form(state: &AppState, token: &str, email: &str, errors: &[(String, String)], status: StatusCode) -> Response {
    let intro = format!("Choose a new password for {email}.");
    let page = FormPage {
        title: "Choose a new password",
        intro: Some(&intro),
        notice: None,
        problem: None,
        action: format!("/reset/{token}"),
        button: "Set password",
        fields: vec![
            FormField {
                name: "password",
                label: "New password",
                kind: "password",
                error: err_of(errors, "password"),
                hint: Some("At least 12 characters; a short phrase is easiest to remember."),
                autocomplete: "new-password",
                ..FormField::default()
            },
            FormField {
                name: "password_confirm",
                label: "New password again",
                kind: "password",
                error: err_of(errors, "password_confirm"),
                autocomplete: "new-password",
                ..FormField::default()
            },
        ],
    };
    form_page(state, page, status)
}

async fn reset_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (people, t) = (state.people.clone(), token.clone());
    match blocking(move || people.open_reset(&t)).await {
        Ok(Ok(p)) => reset_form(&state, &token, &p.email, &[], StatusCode::OK),
        Ok(Err(e)) => page_error(&state, None, e),
        Err(e) => e.into_response(),
    }
}

async fn reset(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(token): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (people, ip, t) = (state.people.clone(), viewer.ip.clone(), token.clone());
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    let (new, confirm) = (v("password"), v("password_confirm"));
    let result = blocking(move || -> Result<(), (PeopleError, String)> {
        let p = people.open_reset(&t).map_err(|e| (e, String::new()))?;
        people.reset_password(&t, &new, &confirm, &ip).map_err(|e| (e, p.email))
    })
    .await;
    match result {
        Ok(Ok(())) => Redirect::to("/login?changed=1").into_response(),
        Ok(Err((PeopleError::Fields(errors), email))) => {
            reset_form(&state, &token, &email, &errors, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Ok(Err((e, _))) => page_error(&state, None, e),
        Err(e) => e.into_response(),
    }
}

// ---- admin: reset someone's two-factor sign-in ----------------------------------------------

async fn totp_reset(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let people = state.people.clone();
    match form_work(&viewer, f, move |w, ip, _| people.totp_reset(&w.person.email, &ip, &id)).await {
        Ok(Ok(_)) => Redirect::to("/people").into_response(),
        Ok(Err(e)) => page_error(&state, Some(&viewer), e),
        Err(r) => *r,
    }
}
