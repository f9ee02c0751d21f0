//! `GET /oauth/authorize` (OAuth 2.1 §4.1.1, OpenID Connect Core §3.1.2) and the
//! consent decision `POST /oauth/authorize`.
//!
//! The query is parsed strictly (a repeated parameter is an error). An unknown
//! client or an unregistered redirect URI gets an error page and never a
//! redirect; every other error goes back to the client's redirect URI with
//! `error`, `state` and `iss`. The consent form carries the original query and is
//! validated again when it comes back, so nothing in it is trusted.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::scope::ScopeSet;
use portcullis_service::authorize::{AuthorizeError, AuthorizeParams, AuthorizeRequest, Step};
use portcullis_service::signin::Session;

use super::login::service_error;
use super::{enc, error_page, esc, page, see_other, to_sign_in, Browser, UiForm};
use crate::extract::OAuthForm;
use crate::state::AppState;

/// Reads the authorization request's parameters.
#[expect(clippy::result_large_err, reason = "the error is the finished page")]
fn params(query: &str) -> Result<AuthorizeParams, Response> {
    let f = OAuthForm::parse(query.as_bytes()).map_err(|_| {
        error_page(
            StatusCode::BAD_REQUEST,
            "The authorization request repeats a parameter.",
        )
    })?;
    let get = |k: &str| f.get(k).map(str::to_owned);
    Ok(AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        nonce: get("nonce"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        acr_values: get("acr_values"),
        response_mode: get("response_mode"),
        request_object: f.get("request").is_some() || f.get("request_uri").is_some(),
    })
}

fn authorize_error(e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(m) => error_page(StatusCode::BAD_REQUEST, &m),
        AuthorizeError::Redirect(r) => see_other(&r.location()),
        AuthorizeError::Service(e) => service_error(e),
    }
}

/// Words for a scope on the consent page.
fn describe(scope: &str) -> String {
    match scope {
        "openid" => "Confirm who you are".into(),
        "profile" => "See your username".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay connected when you are not using it (refresh tokens)".into(),
        s => match s.split_once(':') {
            Some((what, "read")) => format!("Read your {}", what.replace(['_', '-'], " ")),
            Some((what, "write")) => format!("Change your {}", what.replace(['_', '-'], " ")),
            _ => format!("Use “{s}” on your behalf"),
        },
    }
}

fn consent_page(
    state: &AppState,
    b: &Browser,
    req: &AuthorizeRequest,
    query: &str,
    granted: &ScopeSet,
    session: &Session,
) -> Response {
    let items: String = granted
        .iter()
        .map(|s| {
            let s = s.to_string();
            format!(
                "<li><strong>{}</strong> <small>({})</small></li>",
                esc(&describe(&s)),
                esc(&s)
            )
        })
        .collect();
    let list = if items.is_empty() {
        "<p>It asks for no special permissions.</p>".to_owned()
    } else {
        format!("<p>It will be able to:</p><ul class=\"scopes\" id=\"scopes\">{items}</ul>")
    };
    let body = format!(
        "<p>Signed in as <strong>{user}</strong>.</p>\
         <p><strong id=\"client-name\">{client}</strong> wants to access your account.</p>{list}\
         <form method=\"post\" action=\"/oauth/authorize\">{csrf}\
         <input type=\"hidden\" name=\"request\" value=\"{query}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\" class=\"secondary\">Deny</button>\
         </form><p><small>You can withdraw this at any time on your <a href=\"/account\">account page</a>.</small></p>",
        user = esc(&session.user.username),
        client = esc(&req.client.name),
        csrf = b.csrf_field(state),
        query = esc(query),
    );
    page(StatusCode::OK, "Allow access?", &body)
}

/// Goes on from a validated request: the next page, or the code.
async fn proceed(state: &AppState, b: &Browser, req: &AuthorizeRequest, query: &str) -> Response {
    let here = format!("/oauth/authorize?{query}");
    let auth = state.authority();
    match auth.authorize_step(req, b.session.as_ref()).await {
        Err(e) => authorize_error(e),
        Ok(Step::Login) => to_sign_in(&here),
        Ok(Step::SecondFactor) => see_other(&format!("/login/mfa?continue={}", enc(&here))),
        Ok(Step::Enrol) => see_other(&format!("/account/mfa?continue={}", enc(&here))),
        Ok(Step::Consent(granted)) => match &b.session {
            Some(s) => consent_page(state, b, req, query, &granted, s),
            None => to_sign_in(&here),
        },
        Ok(Step::Issue(granted)) => match &b.session {
            Some(s) => match auth.issue_code(req, s, &granted).await {
                Ok(location) => see_other(&location),
                Err(e) => service_error(e),
            },
            None => to_sign_in(&here),
        },
    }
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    b: Browser,
    RawQuery(q): RawQuery,
) -> Response {
    let query = q.unwrap_or_default();
    let p = match params(&query) {
        Ok(p) => p,
        Err(r) => return b.finish(r),
    };
    let req = match state.authority().validate_authorize(&p).await {
        Ok(r) => r,
        Err(e) => return b.finish(authorize_error(e)),
    };
    let res = proceed(&state, &b, &req, &query).await;
    b.finish(res)
}

/// `POST /oauth/authorize`: the consent decision.
pub async fn decide(State(state): State<AppState>, b: Browser, UiForm(form): UiForm) -> Response {
    // OpenID Connect Core §3.1.2.1: an authorization request may also come as a
    // form POST. It is the same request as a GET, so it continues as one.
    if form.get("decision").is_none() && form.get("response_type").is_some() {
        return b.finish(see_other(&format!("/oauth/authorize?{}", form.to_query())));
    }
    if let Err(r) = b.check_csrf(&state, &form) {
        return b.finish(r);
    }
    let query = form.get("request").unwrap_or("").to_owned();
    let p = match params(&query) {
        Ok(p) => p,
        Err(r) => return b.finish(r),
    };
    let auth = state.authority();
    let req = match auth.validate_authorize(&p).await {
        Ok(r) => r,
        Err(e) => return b.finish(authorize_error(e)),
    };
    let Some(session) = &b.session else {
        return b.finish(see_other(&format!(
            "/login?continue={}",
            enc(&format!("/oauth/authorize?{query}"))
        )));
    };
    match form.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            let e = portcullis_service::authorize::ErrorRedirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: portcullis_core::oauth::ErrorCode::AccessDenied,
                description: "the user denied the request".into(),
                iss: state.settings().server.issuer.clone(),
            };
            return b.finish(see_other(&e.location()));
        }
        _ => return b.finish(error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny.")),
    }
    // Everything but consent must still hold (session, second factor).
    let granted = match auth.authorize_step(&req, Some(session)).await {
        Ok(Step::Consent(g) | Step::Issue(g)) => g,
        Ok(_) => {
            let res = proceed(&state, &b, &req, &query).await;
            return b.finish(res);
        }
        Err(e) => return b.finish(authorize_error(e)),
    };
    if let Err(e) = auth
        .remember_consent(&session.user.id, &req.client.id.to_string(), &granted)
        .await
    {
        return b.finish(service_error(e));
    }
    match auth.issue_code(&req, session, &granted).await {
        Ok(location) => b.finish(see_other(&location)),
        Err(e) => b.finish(service_error(e)),
    }
}
