//! Requests refused before a handler runs, in the same shapes as every other error (issue 12).
//!
//! axum's extractors answer their own rejections in plain text: a path segment that does not
//! parse (`/versions/abc/document`), a query string that does not deserialize, a body over
//! the route's limit (413), a wrong method (405), an unknown route. [`shape`] sits outside every
//! route and re-shapes such an answer — a 4xx whose body is not already JSON or HTML — by the
//! policy in `http::error`: under `/api/v1` the error JSON (with a finding whose pointer names
//! the parameter, see [`pointer_in`]), elsewhere (the signer pages, the web app) an HTML page
//! with the same status. The public `/verify` is an API route and answers JSON too. Bodies of
//! such rejections are a line of text; at most 4 KiB of one is read.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::domain::findings::Finding;

/// The most of a rejection's body that is read.
const MAX_TEXT: usize = 4096;

/// Whether the answer is already in the policy's shape for its route: JSON under the API, JSON
/// or HTML elsewhere (an API path answered by the web app's HTML 404 is re-shaped).
fn shaped(r: &Response, api: bool) -> bool {
    let t = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    t.starts_with("application/json") || (!api && t.starts_with("text/html"))
}

/// The parameter a rejection's message names, as the pointer of its finding: `/limit` for a
/// query parameter (`?limit=`), `/version` for a path segment (`{version}`), `""` when the
/// message names none. `params` are the matched route's path parameters in order (axum names
/// a tuple's segment by its index).
pub fn pointer_in(text: &str, params: &[String]) -> String {
    let quoted = |marker: &str| {
        text.split_once(marker).and_then(|(_, rest)| rest.split_once('`')).map(|(name, _)| name.to_string())
    };
    let name = quoted("unknown field `")
        .or_else(|| quoted("missing field `"))
        .or_else(|| {
            text.split_once("at index ")
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok())
                .and_then(|i| params.get(i).cloned())
        })
        .or_else(|| quoted("Cannot parse `").filter(|k| params.contains(k)))
        .or_else(|| {
            // serde_path_to_error: "Failed to deserialize query string: limit: reason".
            let rest = text.split_once("query string: ")?.1;
            let (name, _) = rest.split_once(": ")?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| name.to_string())
        })
        .or_else(|| (params.len() == 1).then(|| params[0].clone()));
    name.map(|n| format!("/{n}")).unwrap_or_default()
}

/// The path parameters of a route pattern, in order (`/agreements/{id}/versions/{version}`).
fn params_of(pattern: &str) -> Vec<String> {
    pattern
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|s| s.trim_start_matches('*').to_string())
        .collect()
}

/// The error for a rejection with `status` and axum's `text`.
pub fn api_error(status: StatusCode, text: &str, params: &[String]) -> ApiError {
    let text = text.trim();
    let finding = |code: &'static str, status: StatusCode| ApiError::Rejected {
        status,
        code,
        message: if text.is_empty() {
            status.canonical_reason().unwrap_or("refused").to_lowercase()
        } else {
            text.into()
        },
        findings: vec![Finding::field(pointer_in(text, params), text.to_string())],
    };
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => finding("unsupported_media_type", status),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::Rejected {
            status,
            code: "method_not_allowed",
            message: "this route does not take that method".into(),
            findings: Vec::new(),
        },
        // A query value that does not parse is an invalid field, as the API's own query checks
        // answer it (422 `invalid_query`).
        _ if text.contains("query string") => finding("invalid_query", StatusCode::UNPROCESSABLE_ENTITY),
        _ => finding("bad_request", status),
    }
}

/// Whether a request path is answered under the API's policy (JSON errors).
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/verify"
}

/// Re-shapes an unshaped 4xx answer (see the module documentation): called by the one outer
/// middleware (`http::edge`) with what it took of the request before it ran (whether its path
/// is the API's, [`is_api`], and the matched route pattern, if any).
pub async fn shape(state: &AppState, api: bool, pattern: Option<&str>, resp: Response) -> Response {
    if !resp.status().is_client_error() || shaped(&resp, api) {
        return resp;
    }
    let status = resp.status();
    let allow = resp.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(resp.into_body(), MAX_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let params = pattern.map(params_of).unwrap_or_default();
    let mut out = if api {
        api_error(status, &text, &params).into_response()
    } else {
        let (status, _, message, _) = api_error(status, &text, &params).parts();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::PAYLOAD_TOO_LARGE => "That is too large",
            _ => "This request cannot be accepted",
        };
        state.pages.message(status, title, &message)
    };
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_rejection_names_the_parameter_it_is_about() {
        let q = "Failed to deserialize query string: limit: number too large to fit in target type";
        assert_eq!(pointer_in(q, &[]), "/limit");
        assert_eq!(
            pointer_in("Failed to deserialize query string: unknown field `bogus`, expected `status`", &[]),
            "/bogus"
        );
        assert_eq!(pointer_in("Failed to deserialize query string: missing field `from`", &[]), "/from");
        let ids = p(&["id", "version"]);
        assert_eq!(
            pointer_in("Invalid URL: Cannot parse value at index 1 with value `x` to a `u32`", &ids),
            "/version"
        );
        assert_eq!(pointer_in("Invalid URL: Cannot parse `version` with value `x` to a `u32`", &ids), "/version");
        assert_eq!(pointer_in("Invalid URL: something else", &p(&["id"])), "/id");
        assert_eq!(pointer_in("Invalid URL: something else", &ids), "");
        assert_eq!(params_of("/agreements/{id}/versions/{version}/document"), ids);
    }

    #[test]
    fn statuses_keep_their_meaning_in_the_error_shape() {
        let (s, code, _, f) =
            api_error(StatusCode::BAD_REQUEST, "Failed to deserialize query string: days: x", &[]).parts();
        assert_eq!(
            (s, code, f[0].pointer.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", Some("/days"))
        );
        assert_eq!(
            api_error(StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded", &[]).parts().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(api_error(StatusCode::METHOD_NOT_ALLOWED, "", &[]).parts().1, "method_not_allowed");
    }
}
