//! `/account` (who you are, two-step verification, the applications you allowed,
//! sign out), withdrawing consent, and RP-initiated logout at `/oauth/logout`
//! (OpenID Connect RP-Initiated Logout 1.0).
//!
//! Logout ends the browser's session and revokes the refresh and access tokens
//! issued from it. `post_logout_redirect_uri` must be registered by the client
//! named by `client_id` or `id_token_hint`, byte for byte; anything else shows a
//! page instead of redirecting (no open redirect). A GET without a valid
//! `id_token_hint` for this session asks for confirmation (a POST with a CSRF
//! token), so a third-party page cannot sign the user out.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::login::service_error;
use super::{
    enc, error_page, esc, page, see_other, to_sign_in, Browser, CheckedForm, ACCOUNT_PATH,
};
use crate::extract::OAuthForm;
use crate::state::AppState;

/// `GET /account`.
pub async fn show(State(state): State<AppState>, b: Browser) -> Response {
    let Some(s) = &b.session else {
        return b.finish(to_sign_in(ACCOUNT_PATH));
    };
    if !s.complete() {
        return b.finish(see_other(&format!(
            "/login/mfa?continue={}",
            enc(ACCOUNT_PATH)
        )));
    }
    let consents = match state.authority().list_consents(&s.user.id).await {
        Ok(c) => c,
        Err(e) => return b.finish(service_error(e)),
    };
    let csrf = b.csrf_field(&state);
    let rows: String = consents
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{name}</td><td>{scopes}</td><td><form class=\"inline\" method=\"post\" action=\"/account/consents/revoke\">{csrf}\
                 <input type=\"hidden\" name=\"client_id\" value=\"{id}\"><button type=\"submit\" aria-label=\"Remove access of {name}\">Remove access</button></form></td></tr>",
                name = esc(if c.client_name.is_empty() { &c.client_id } else { &c.client_name }),
                scopes = esc(&c.scopes.join(" ")),
                id = esc(&c.client_id),
            )
        })
        .collect();
    let apps = if rows.is_empty() {
        "<p>You have not allowed any application.</p>".to_owned()
    } else {
        format!("<table id=\"consents\"><thead><tr><th>Application</th><th>Access</th><th></th></tr></thead><tbody>{rows}</tbody></table>")
    };
    let mfa = if s.mfa_enrolled() {
        "<p>Two-step verification: <strong>on</strong>.</p>".to_owned()
    } else {
        "<p>Two-step verification: <strong>off</strong>. <a href=\"/account/mfa\">Turn it on</a></p>".to_owned()
    };
    let body = format!(
        "<p>Signed in as <strong id=\"username\">{user}</strong>.</p>{mfa}\
         <p><a href=\"/account/password\" id=\"change-password\">Change your password</a></p><h2>Applications</h2>{apps}\
         <form method=\"post\" action=\"/oauth/logout\">{csrf}<button type=\"submit\" id=\"logout\">Sign out</button></form>",
        user = esc(&s.user.username),
    );
    b.finish(page(StatusCode::OK, "Your account", &body))
}

/// `POST /account/consents/revoke`.
pub async fn revoke_consent(
    State(state): State<AppState>,
    CheckedForm { browser: b, form }: CheckedForm,
) -> Response {
    let Some(s) = b.session.as_ref().filter(|s| s.complete()) else {
        return b.finish(to_sign_in(ACCOUNT_PATH));
    };
    let client = form.get("client_id").unwrap_or("");
    match state.authority().revoke_consent(&s.user.id, client).await {
        Ok(_) => b.finish(see_other(ACCOUNT_PATH)),
        Err(e) => b.finish(service_error(e)),
    }
}

/// Where logout may send the browser, if anywhere: `Ok(None)` shows a page.
async fn logout_target(
    state: &AppState,
    f: &OAuthForm,
) -> Result<(Option<String>, Option<String>), Response> {
    let auth = state.authority();
    let hint = f.get("id_token_hint").map(|h| auth.id_token_hint(h));
    if matches!(hint, Some(None)) {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "The id_token_hint is not an ID token of this server.",
        ));
    }
    let hint = hint.flatten();
    let client_id = match (f.get("client_id"), &hint) {
        (Some(c), Some(h)) if c != h.aud => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "client_id does not match the id_token_hint.",
            ))
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    let Some(uri) = f.get("post_logout_redirect_uri") else {
        return Ok((None, hint.map(|h| h.sid)));
    };
    let client = match client_id.as_deref() {
        Some(id) => auth.find_client(id).await.map_err(service_error)?,
        None => None,
    };
    match client {
        Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            let mut u = url::Url::parse(uri).map_err(|_| error_page(StatusCode::BAD_REQUEST, "bad post_logout_redirect_uri"))?;
            if let Some(st) = f.get("state") {
                u.query_pairs_mut().append_pair("state", st);
            }
            Ok((Some(u.to_string()), hint.map(|h| h.sid)))
        }
        _ => Err(error_page(
            StatusCode::BAD_REQUEST,
            "The post_logout_redirect_uri is not registered for this application, so you are not being sent there.",
        )),
    }
}

async fn sign_out(state: &AppState, b: &Browser, target: Option<String>) -> Response {
    if let Some(s) = &b.session {
        if let Err(e) = state.authority().end_session(&s.id).await {
            return service_error(e);
        }
    }
    let res = match target {
        Some(t) => see_other(&t),
        None => page(
            StatusCode::OK,
            "Signed out",
            "<p id=\"signed-out\">You are signed out.</p>",
        ),
    };
    b.clear_session(res)
}

/// `GET /oauth/logout`.
pub async fn logout_get(
    State(state): State<AppState>,
    b: Browser,
    RawQuery(q): RawQuery,
) -> Response {
    let query = q.unwrap_or_default();
    let Ok(f) = OAuthForm::parse(query.as_bytes()) else {
        return b.finish(error_page(
            StatusCode::BAD_REQUEST,
            "The logout request repeats a parameter.",
        ));
    };
    let (target, hinted_sid) = match logout_target(&state, &f).await {
        Ok(t) => t,
        Err(r) => return b.finish(r),
    };
    // An ID token of this very session proves the request came from its client.
    let proven = match (&b.session, &hinted_sid) {
        (Some(s), Some(sid)) => &s.id == sid,
        (None, _) => true,
        _ => false,
    };
    if proven {
        return sign_out(&state, &b, target).await;
    }
    let body = format!(
        "<p>Do you want to sign out?</p><form method=\"post\" action=\"/oauth/logout\">{csrf}{fields}\
         <button type=\"submit\" id=\"confirm-logout\">Sign out</button></form>",
        csrf = b.csrf_field(&state),
        fields = ["post_logout_redirect_uri", "client_id", "state", "id_token_hint"]
            .iter()
            .filter_map(|k| f.get(k).map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v))))
            .collect::<String>(),
    );
    b.finish(page(StatusCode::OK, "Sign out", &body))
}

/// `POST /oauth/logout` (the confirmation, or the account page's button).
pub async fn logout_post(
    State(state): State<AppState>,
    CheckedForm { browser: b, form }: CheckedForm,
) -> Response {
    let (target, _) = match logout_target(&state, &form).await {
        Ok(t) => t,
        Err(r) => return b.finish(r),
    };
    sign_out(&state, &b, target).await
}

fn password_form(state: &AppState, b: &Browser, error: Option<&str>) -> String {
    format!(
        "<p>Changing your password signs you out everywhere, here included: every session, \
         app access and personal access token you hold is revoked.</p>{alert}\
         <form method=\"post\" action=\"/account/password\">{csrf}\
         <label for=\"current\">Current password</label>\
         <input type=\"password\" id=\"current\" name=\"current\" autocomplete=\"current-password\" required{d}>\
         <label for=\"new\">New password (at least {min} characters)</label>\
         <input type=\"password\" id=\"new\" name=\"new\" autocomplete=\"new-password\" minlength=\"{min}\" required>\
         <label for=\"confirm\">New password again</label>\
         <input type=\"password\" id=\"confirm\" name=\"confirm\" autocomplete=\"new-password\" required>\
         <button type=\"submit\">Change password</button></form>",
        alert = super::alert(error),
        csrf = b.csrf_field(state),
        d = super::described_by(error),
        min = portcullis_service::passwords::MIN_PASSWORD_CHARS,
    )
}

/// `GET /account/password`.
pub async fn show_password(State(state): State<AppState>, b: Browser) -> Response {
    match &b.session {
        Some(s) if s.complete() => {
            let body = password_form(&state, &b, None);
            b.finish(page(StatusCode::OK, "Change your password", &body))
        }
        Some(_) => b.finish(see_other(&format!(
            "/login/mfa?continue={}",
            enc(ACCOUNT_PATH)
        ))),
        None => b.finish(to_sign_in(ACCOUNT_PATH)),
    }
}

/// `POST /account/password`.
pub async fn change_password(
    State(state): State<AppState>,
    CheckedForm {
        browser: b,
        mut form,
    }: CheckedForm,
) -> Response {
    let Some(s) = b.session.as_ref().filter(|s| s.complete()) else {
        return b.finish(to_sign_in(ACCOUNT_PATH));
    };
    let current =
        portcullis_core::secret::SecretString::new(form.take("current").unwrap_or_default());
    let new = form.take("new").unwrap_or_default();
    let again = |msg: &str, status: StatusCode| {
        let body = password_form(&state, &b, Some(msg));
        b.finish(page(status, "Change your password", &body))
    };
    if form.take("confirm").as_deref() != Some(new.as_str()) {
        return again("The two new passwords differ.", StatusCode::BAD_REQUEST);
    }
    let new = portcullis_core::secret::SecretString::new(new);
    match state.authority().change_own_password(s, &current, &new).await {
        Ok(Ok(())) => b.clear_session(page(
            StatusCode::OK,
            "Password changed",
            "<p id=\"password-changed\">Your password is changed and you are signed out everywhere. <a href=\"/account\">Sign in again</a>.</p>",
        )),
        Ok(Err(portcullis_service::signin::LoginRefusal::Invalid)) => {
            again("The current password is wrong.", StatusCode::UNAUTHORIZED)
        }
        Ok(Err(r)) => again(r.message(), StatusCode::TOO_MANY_REQUESTS),
        Err(portcullis_service::ServiceError::Invalid { message, .. }) => {
            again(&format!("The new password {message}."), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => b.finish(service_error(e)),
    }
}
