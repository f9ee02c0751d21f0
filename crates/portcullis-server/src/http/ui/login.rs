//! `/login` (username and password), `/login/mfa` (a TOTP or recovery code) and
//! `/account/mfa` (enrolling an authenticator with a QR code).
//!
//! A successful password sign-in always starts a new session (a session id set
//! before sign-in is never promoted: no fixation) and ends the one the browser
//! had. The answer to a wrong password, an unknown user and a disabled user is
//! the same page with the same message, after the same Argon2id work.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis_core::secret::SecretString;
use portcullis_service::signin::{LoginRefusal, AMR_PWD};

use super::{
    after_sign_in, alert, continue_of, described_by, enc, error_page, esc, page, safe_continue,
    see_other, to_sign_in, Browser, CheckedForm,
};
use crate::net::ClientIp;
use crate::state::AppState;

fn login_form(
    state: &AppState,
    b: &Browser,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> String {
    let alert = alert(error);
    format!(
        "{alert}<form method=\"post\" action=\"/login\">{csrf}\
         <input type=\"hidden\" name=\"continue\" value=\"{next}\">\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required{describe}>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        csrf = b.csrf_field(state),
        next = esc(next),
        user = esc(username),
        describe = described_by(error),
    )
}

/// `GET /login`.
pub async fn show(State(state): State<AppState>, b: Browser, RawQuery(q): RawQuery) -> Response {
    let next = continue_of(q.as_deref());
    // OIDC `login_hint` of the authorization request fills in the username.
    let hint: String = next
        .split_once('?')
        .and_then(|(_, query)| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "login_hint")
                .map(|(_, v)| v.chars().take(128).collect())
        })
        .unwrap_or_default();
    let body = login_form(&state, &b, &next, &hint, None);
    b.finish(page(StatusCode::OK, "Sign in", &body))
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    CheckedForm {
        browser: b,
        mut form,
    }: CheckedForm,
) -> Response {
    let next = safe_continue(form.get("continue"));
    let username = form.get("username").unwrap_or("").to_owned();
    let password = SecretString::new(form.take("password").unwrap_or_default());
    let auth = state.authority();
    let refused = |msg: &str, status: StatusCode| {
        let body = login_form(&state, &b, &next, &username, Some(msg));
        b.finish(page(status, "Sign in", &body))
    };
    let user = match auth.login(&username, &password, Some(ip), None).await {
        Ok(Ok(u)) => u,
        Ok(Err(r @ LoginRefusal::Invalid)) => {
            return refused(r.message(), StatusCode::UNAUTHORIZED)
        }
        Ok(Err(r @ LoginRefusal::Locked(_))) => {
            return refused(r.message(), StatusCode::TOO_MANY_REQUESTS)
        }
        Err(e) => return service_error(e),
    };
    // A new session id at every sign-in; whatever the browser had is ended.
    if let Some(old) = &b.session {
        if let Err(e) = auth.end_session(&old.id).await {
            return service_error(e);
        }
    }
    let (cookie, _session) = match auth.start_session(&user, &[AMR_PWD]).await {
        Ok(s) => s,
        Err(e) => return service_error(e),
    };
    let ttl = state.settings().signin.session_ttl.as_secs() as i64;
    b.set_session(see_other(&after_sign_in(&next)), cookie.expose(), ttl)
}

/// Logs a service failure once and shows an opaque page.
pub(crate) fn service_error(e: portcullis_service::ServiceError) -> Response {
    tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "page request failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The request failed. Try again shortly.",
    )
}

fn mfa_form(state: &AppState, b: &Browser, next: &str, error: Option<&str>) -> String {
    let alert = alert(error);
    format!(
        "<p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>\
         {alert}<form method=\"post\" action=\"/login/mfa\">{csrf}\
         <input type=\"hidden\" name=\"continue\" value=\"{next}\">\
         <label for=\"code\">Code</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required{describe}>\
         <button type=\"submit\">Verify</button></form>",
        csrf = b.csrf_field(state),
        next = esc(next),
        describe = described_by(error),
    )
}

/// `GET /login/mfa`.
pub async fn show_mfa(
    State(state): State<AppState>,
    b: Browser,
    RawQuery(q): RawQuery,
) -> Response {
    let next = continue_of(q.as_deref());
    let Some(s) = &b.session else {
        return b.finish(to_sign_in(&next));
    };
    if !s.mfa_enrolled() {
        return b.finish(see_other(&format!("/account/mfa?continue={}", enc(&next))));
    }
    let body = mfa_form(&state, &b, &next, None);
    b.finish(page(StatusCode::OK, "Two-step verification", &body))
}

/// `POST /login/mfa`.
pub async fn submit_mfa(
    State(state): State<AppState>,
    CheckedForm { browser: b, form }: CheckedForm,
) -> Response {
    let next = safe_continue(form.get("continue"));
    let Some(s) = &b.session else {
        return b.finish(to_sign_in(&next));
    };
    match state
        .authority()
        .verify_second_factor(s, form.get("code").unwrap_or(""))
        .await
    {
        Ok(Ok(())) => b.finish(see_other(&next)),
        Ok(Err(r)) => {
            let msg = match r {
                LoginRefusal::Invalid => "That code is not valid. Try the current code.",
                LoginRefusal::Locked(_) => r.message(),
            };
            let body = mfa_form(&state, &b, &next, Some(msg));
            b.finish(page(
                StatusCode::UNAUTHORIZED,
                "Two-step verification",
                &body,
            ))
        }
        Err(e) => b.finish(service_error(e)),
    }
}

fn enrol_body(
    state: &AppState,
    b: &Browser,
    next: &str,
    e: &portcullis_service::signin::Enrolment,
    error: Option<&str>,
) -> String {
    let alert = alert(error);
    format!(
        "<p>Scan this QR code with an authenticator app (any app that supports TOTP), then enter the 6-digit code it shows.</p>\
         <figure class=\"qr\" role=\"img\" aria-label=\"QR code for your authenticator app\">{svg}</figure>\
         <p>Can't scan it? Enter this key by hand: <code id=\"secret\">{secret}</code></p>\
         {alert}<form method=\"post\" action=\"/account/mfa\">{csrf}\
         <input type=\"hidden\" name=\"continue\" value=\"{next}\">\
         <label for=\"code\">Code from the app</label>\
         <input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
         <button type=\"submit\">Turn on two-step verification</button></form>",
        svg = strip_xml_prolog(&e.qr_svg),
        secret = esc(&e.secret_base32),
        csrf = b.csrf_field(state),
        next = esc(next),
    )
}

/// The QR renderer emits a standalone SVG document; inline it as an element.
fn strip_xml_prolog(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// `GET /account/mfa`: enrol an authenticator.
pub async fn show_enrol(
    State(state): State<AppState>,
    b: Browser,
    RawQuery(q): RawQuery,
) -> Response {
    let next = continue_of(q.as_deref());
    let Some(s) = &b.session else {
        return b.finish(see_other(&format!(
            "/login?continue={}",
            enc("/account/mfa")
        )));
    };
    if s.mfa_enrolled() {
        if !s.has_otp() {
            return b.finish(see_other(&format!("/login/mfa?continue={}", enc(&next))));
        }
        let body = format!(
            "<p>Two-step verification is on for your account.</p><p><a href=\"{}\">Continue</a></p>",
            esc(&next)
        );
        return b.finish(page(StatusCode::OK, "Two-step verification", &body));
    }
    match state.authority().begin_totp_enrolment(&s.user).await {
        Ok(e) => {
            let body = enrol_body(&state, &b, &next, &e, None);
            b.finish(page(StatusCode::OK, "Set up two-step verification", &body))
        }
        Err(e) => b.finish(service_error(e)),
    }
}

/// `POST /account/mfa`: confirm enrolment with a first code.
pub async fn submit_enrol(
    State(state): State<AppState>,
    CheckedForm { browser: b, form }: CheckedForm,
) -> Response {
    let next = safe_continue(form.get("continue"));
    let Some(s) = &b.session else {
        return b.finish(to_sign_in(&next));
    };
    if s.mfa_enrolled() {
        return b.finish(error_page(
            StatusCode::CONFLICT,
            "Two-step verification is already on for your account.",
        ));
    }
    let auth = state.authority();
    match auth
        .confirm_totp_enrolment(s, form.get("code").unwrap_or(""))
        .await
    {
        Ok(Some(codes)) => {
            let list: String = codes
                .iter()
                .map(|c| format!("<li>{}</li>", esc(c)))
                .collect();
            let body = format!(
                "<p>Two-step verification is on. Keep these recovery codes somewhere safe: each works once if you lose your authenticator. They are shown only now.</p>\
                 <ul class=\"codes\" id=\"recovery-codes\">{list}</ul>\
                 <p><a id=\"continue\" href=\"{}\">Continue</a></p>",
                esc(&next)
            );
            b.finish(page(StatusCode::OK, "Recovery codes", &body))
        }
        Ok(None) => match auth.begin_totp_enrolment(&s.user).await {
            Ok(e) => {
                let body = enrol_body(
                    &state,
                    &b,
                    &next,
                    &e,
                    Some("That code is not valid. Check the time on your device and try the current code."),
                );
                b.finish(page(
                    StatusCode::UNAUTHORIZED,
                    "Set up two-step verification",
                    &body,
                ))
            }
            Err(e) => b.finish(service_error(e)),
        },
        Err(e) => b.finish(service_error(e)),
    }
}
