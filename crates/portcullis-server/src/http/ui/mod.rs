//! Server-rendered pages for people: sign-in, second factor, authenticator
//! enrolment, consent, the account page and logout. They work without
//! JavaScript, label every field, and carry a CSRF token in every form.
//!
//! - Cookies: the session (`__Host-portcullis_session`) and a random browser id
//!   (`__Host-portcullis_browser`) that CSRF tokens are bound to, both `HttpOnly;
//!   Secure; SameSite=Lax; Path=/`. Only for a loopback `http://` issuer (local
//!   development) are `Secure` and the `__Host-` prefix dropped, since browsers
//!   refuse both over plain http.
//! - CSRF: a form's token is a keyed digest of the browser id; a POST without the
//!   cookie, or with another token, is refused with 403 and changes nothing. Every
//!   state-changing form handler takes a [`CheckedForm`], which does the check; the
//!   consent decision checks by hand because the same route also accepts a
//!   form-POSTed authorization request (which carries no token, like its GET).
//! - Redirects after sign-in go only to our own authorization endpoint or account
//!   page (`continue` is never an absolute URL).

pub mod account;
pub mod authorize;
pub mod login;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use portcullis_service::signin::Session;

use crate::extract::OAuthForm;
use crate::state::AppState;

/// The content security policy of pages: our stylesheet, inline SVG (the QR
/// code), nothing else; never framed.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/// Where a browser goes when no `continue` is given.
pub const ACCOUNT_PATH: &str = "/account";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Portcullis</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error page (nothing redirects).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Something went wrong",
        &format!("<p role=\"alert\" class=\"error\">{}</p>", esc(message)),
    )
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /ui/style.css`.
pub async fn stylesheet() -> Response {
    let mut res = include_str!("style.css").into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// Cookie names and attributes for this issuer.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    secure: bool,
}

impl CookiePolicy {
    /// `Secure` unless the issuer is plain http (only allowed on loopback).
    pub fn for_issuer(issuer: &str) -> Self {
        Self {
            secure: !issuer.starts_with("http://"),
        }
    }

    /// The session cookie's name.
    pub fn session_name(self) -> &'static str {
        if self.secure {
            "__Host-portcullis_session"
        } else {
            "portcullis_session"
        }
    }

    /// The browser-id cookie's name.
    pub fn browser_name(self) -> &'static str {
        if self.secure {
            "__Host-portcullis_browser"
        } else {
            "portcullis_browser"
        }
    }

    fn build(self, name: &'static str, value: String, max_age_secs: i64) -> HeaderValue {
        let c = Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build();
        HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static(""))
    }
}

/// What a page request carries: the browser id (made now if absent), the session.
#[derive(Debug)]
pub struct Browser {
    /// The browser id CSRF tokens are bound to.
    pub id: String,
    /// The id cookie must be set on the response.
    new_id: bool,
    /// The live session, if any.
    pub session: Option<Session>,
    /// The session cookie as sent (live or not).
    pub session_cookie: Option<String>,
    policy: CookiePolicy,
}

impl Browser {
    /// The CSRF token for this browser's forms.
    pub fn csrf(&self, state: &AppState) -> String {
        state.authority().csrf_token(&self.id)
    }

    /// The hidden CSRF field.
    pub fn csrf_field(&self, state: &AppState) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            self.csrf(state)
        )
    }

    /// Checks the form's CSRF token; a browser that arrived without its id cookie
    /// cannot pass.
    #[expect(clippy::result_large_err, reason = "the error is the finished page")]
    pub fn check_csrf(&self, state: &AppState, form: &OAuthForm) -> Result<(), Response> {
        let ok = !self.new_id
            && form
                .get("csrf")
                .is_some_and(|t| state.authority().csrf_ok(&self.id, t));
        if ok {
            Ok(())
        } else {
            tracing::info!("form refused: CSRF token missing or wrong");
            Err(error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this site. Go back, reload the page and try again.",
            ))
        }
    }

    /// Adds the cookies this browser needs to `res`.
    pub fn finish(&self, mut res: Response) -> Response {
        if self.new_id {
            let v = self
                .policy
                .build(self.policy.browser_name(), self.id.clone(), 400 * 86_400);
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// Sets a new session cookie on `res`.
    pub fn set_session(&self, mut res: Response, value: &str, ttl_secs: i64) -> Response {
        let v = self
            .policy
            .build(self.policy.session_name(), value.to_owned(), ttl_secs);
        res.headers_mut().append(header::SET_COOKIE, v);
        self.finish(res)
    }

    /// Clears the session cookie on `res`.
    pub fn clear_session(&self, mut res: Response) -> Response {
        let v = self
            .policy
            .build(self.policy.session_name(), String::new(), 0);
        res.headers_mut().append(header::SET_COOKIE, v);
        self.finish(res)
    }
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let policy = CookiePolicy::for_issuer(&state.settings().server.issuer);
        let mut browser_id = None;
        let mut session_cookie = None;
        for v in parts.headers.get_all(header::COOKIE) {
            let Ok(text) = v.to_str() else { continue };
            for c in Cookie::split_parse(text).flatten() {
                if c.name() == policy.browser_name()
                    && c.value().len() == 64
                    && c.value().bytes().all(|b| b.is_ascii_hexdigit())
                {
                    browser_id = Some(c.value().to_owned());
                } else if c.name() == policy.session_name() && !c.value().is_empty() {
                    session_cookie = Some(c.value().to_owned());
                }
            }
        }
        let session = match &session_cookie {
            Some(v) => state.authority().session(v).await.map_err(|e| {
                tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "session lookup failed");
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable. Try again shortly.",
                )
            })?,
            None => None,
        };
        let (id, new_id) = match browser_id {
            Some(id) => (id, false),
            None => {
                // Two random UUIDs (244 random bits), hex: the id is no secret of value,
                // only unguessable (CSRF tokens are derived from it under the pepper).
                let id = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                (id, true)
            }
        };
        Ok(Self {
            id,
            new_id,
            session,
            session_cookie,
            policy,
        })
    }
}

/// A form posted by a page: parsed strictly, errors shown as a page.
#[derive(Debug)]
pub struct UiForm(pub OAuthForm);

impl FromRequest<AppState> for UiForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        OAuthForm::from_request(req, state)
            .await
            .map(UiForm)
            .map_err(|_| {
                error_page(
                    StatusCode::BAD_REQUEST,
                    "The form could not be read. Go back and try again.",
                )
            })
    }
}

/// A page's form POST whose CSRF token checked out, with the browser that sent it.
/// Handlers of state-changing forms take this, so none can forget the check.
#[derive(Debug)]
pub struct CheckedForm {
    /// The browser (cookies, session).
    pub browser: Browser,
    /// The form.
    pub form: OAuthForm,
}

impl FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        let form = match UiForm::from_request(Request::from_parts(parts, body), state).await {
            Ok(UiForm(f)) => f,
            Err(r) => return Err(browser.finish(r)),
        };
        if let Err(r) = browser.check_csrf(state, &form) {
            return Err(browser.finish(r));
        }
        Ok(Self { browser, form })
    }
}

/// Keeps `continue` on this server: our authorization endpoint or the account page.
pub fn safe_continue(c: Option<&str>) -> String {
    match c {
        Some(c)
            if (c.starts_with("/oauth/authorize?") || c == ACCOUNT_PATH)
                && !c.contains(['\r', '\n', '\\']) =>
        {
            c.to_owned()
        }
        _ => ACCOUNT_PATH.to_owned(),
    }
}

/// The `continue` of a page's query string (the first one; anything unsafe or
/// absent is the account page). Never an error: a page always renders.
pub fn continue_of(query: Option<&str>) -> String {
    let first = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "continue")
            .map(|(_, v)| v.into_owned())
    });
    safe_continue(first.as_deref())
}

/// `continue` after a fresh sign-in: `prompt=login` and `max_age` are satisfied
/// now, so they are dropped (else the request would ask again, forever).
pub fn after_sign_in(c: &str) -> String {
    let Some((path, query)) = c.split_once('?') else {
        return c.to_owned();
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "max_age" => {}
            "prompt" => {
                let rest: Vec<&str> = v.split(' ').filter(|p| *p != "login").collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            _ => {
                out.append_pair(&k, &v);
            }
        }
    }
    format!("{path}?{}", out.finish())
}

/// The alert paragraph of a form with an error (empty without one).
pub fn alert(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<p role=\"alert\" class=\"error\" id=\"error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default()
}

/// `aria-describedby` pointing a field at the form's alert, when there is one.
pub fn described_by(error: Option<&str>) -> &'static str {
    if error.is_some() {
        " aria-describedby=\"error\""
    } else {
        ""
    }
}

/// Sends the browser to sign in, then on to `next`.
pub fn to_sign_in(next: &str) -> Response {
    see_other(&format!("/login?continue={}", enc(next)))
}

/// URL-encodes one query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_never_leaves_the_server() {
        for bad in [
            "https://evil.example/",
            "//evil.example/oauth/authorize?x",
            "/oauth/authorizeX",
            "/oauth/authorize?a=1\r\nSet-Cookie: x",
            "/\\evil.example",
        ] {
            assert_eq!(safe_continue(Some(bad)), ACCOUNT_PATH, "{bad}");
        }
        assert_eq!(
            safe_continue(Some("/oauth/authorize?client_id=x")),
            "/oauth/authorize?client_id=x"
        );
    }

    #[test]
    fn a_fresh_sign_in_satisfies_prompt_login_and_max_age() {
        assert_eq!(
            after_sign_in("/oauth/authorize?client_id=a&prompt=login+consent&max_age=0&state=s"),
            "/oauth/authorize?client_id=a&prompt=consent&state=s"
        );
        assert_eq!(
            after_sign_in("/oauth/authorize?prompt=login"),
            "/oauth/authorize?"
        );
    }

    #[test]
    fn cookies_are_host_prefixed_and_secure_except_for_a_loopback_http_issuer() {
        let secure = CookiePolicy::for_issuer("https://auth.example.com");
        assert_eq!(secure.session_name(), "__Host-portcullis_session");
        let c = secure.build(secure.session_name(), "v".into(), 60);
        let c = c.to_str().expect("ascii");
        for attr in [
            "__Host-portcullis_session=v",
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(attr), "{attr} in {c}");
        }
        assert!(
            !c.contains("Domain"),
            "__Host- cookies carry no Domain: {c}"
        );
        let dev = CookiePolicy::for_issuer("http://127.0.0.1:8080");
        let c = dev.build(dev.browser_name(), "v".into(), 60);
        let c = c.to_str().expect("ascii");
        assert!(
            c.starts_with("portcullis_browser=v")
                && !c.contains("Secure")
                && c.contains("HttpOnly"),
            "{c}"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}
