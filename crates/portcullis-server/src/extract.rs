//! Request extraction for the OAuth endpoints: a strict form parser and client
//! authentication. Every rejection is an [`OAuthError`], never a framework default.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::secret::SecretString;

use crate::error::OAuthError;
use crate::state::AppState;

/// Parameters that may legitimately repeat (RFC 8707 `resource`).
const REPEATABLE: &[&str] = &["resource"];

/// An `application/x-www-form-urlencoded` body, parsed strictly: a repeated
/// parameter (other than `resource`) is `invalid_request`, as RFC 6749 §3.2 requires,
/// and empty values count as absent (RFC 6749 §3.1).
#[derive(Debug)]
pub struct OAuthForm {
    single: HashMap<String, String>,
    resources: Vec<String>,
}

impl OAuthForm {
    /// Parses a body already read.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        // Room for a token request's parameters without growing.
        let mut single = HashMap::with_capacity(4);
        let mut resources = Vec::new();
        for (k, v) in form_pairs(body) {
            if v.is_empty() {
                continue;
            }
            if REPEATABLE.contains(&k.as_ref()) {
                resources.push(v.into_owned());
                continue;
            }
            match single.entry(k.into_owned()) {
                Entry::Occupied(e) => {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter {:?} is repeated",
                        e.key()
                    )));
                }
                Entry::Vacant(e) => {
                    e.insert(v.into_owned());
                }
            }
        }
        Ok(Self { single, resources })
    }

    /// A single-valued parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// Removes and returns a parameter (used for secrets, so they are not kept around).
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.single.remove(name)
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("missing required parameter {name:?}"))
        })
    }

    /// Every `resource` value.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The parameters as a query string again (sorted by name, `resource` last).
    pub fn to_query(&self) -> String {
        let mut names: Vec<&String> = self.single.keys().collect();
        names.sort();
        let mut out = form_urlencoded::Serializer::new(String::new());
        for k in names {
            out.append_pair(k, &self.single[k]);
        }
        for r in &self.resources {
            out.append_pair("resource", r);
        }
        out.finish()
    }
}

/// The name-value pairs of a form body, exactly as `form_urlencoded::parse` gives
/// them. A body with nothing to decode (no `%`, no `+`, valid UTF-8: a token,
/// a grant type) is split in place, without the byte-by-byte decoding pass the
/// crate makes over every value (a fifth of a JWT introspection's instructions);
/// any other body goes to the crate.
fn form_pairs(body: &[u8]) -> Box<dyn Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_> {
    match std::str::from_utf8(body) {
        Ok(text) if !body.contains(&b'%') && !body.contains(&b'+') => {
            Box::new(text.split('&').filter(|seq| !seq.is_empty()).map(|seq| {
                let (k, v) = seq.split_once('=').unwrap_or((seq, ""));
                (Cow::Borrowed(k), Cow::Borrowed(v))
            }))
        }
        _ => Box::new(form_urlencoded::parse(body)),
    }
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "content type must be application/x-www-form-urlencoded",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let limit = state.settings().server.max_body_bytes;
        let too_large = || {
            OAuthError::invalid_request(format!("request body is larger than {limit} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        Self::parse(&body)
    }
}

/// How the client presented its credentials.
#[derive(Debug)]
pub struct ClientCredentials {
    /// The client id as sent.
    pub client_id: String,
    /// The secret as sent.
    pub secret: SecretString,
    /// True for `client_secret_basic`.
    pub basic: bool,
}

/// Reads client authentication from the `Authorization: Basic` header
/// (`client_secret_basic`, with RFC 6749 §2.3.1 form-urlencoding of id and secret)
/// or from the body (`client_secret_post`). Using both is `invalid_request`;
/// neither, or a malformed header, is `invalid_client`.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &mut OAuthForm,
) -> Result<ClientCredentials, OAuthError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let basic = auth.and_then(|a| {
        let (scheme, rest) = a.split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
    });
    let in_body = form.get("client_secret").is_some();
    match basic {
        Some(_) if in_body => Err(OAuthError::invalid_request(
            "use one client authentication method: Basic header or client_secret in the body",
        )
        .with_basic(true)),
        Some(b64) => {
            let fail = || OAuthError::invalid_client(true);
            let raw = STANDARD.decode(b64.as_bytes()).map_err(|_| fail())?;
            let text = String::from_utf8(raw).map_err(|_| fail())?;
            let (id, secret) = text.split_once(':').ok_or_else(fail)?;
            let id = form_decode(id).ok_or_else(fail)?;
            let secret = form_decode(secret).ok_or_else(fail)?;
            if let Some(body_id) = form.get("client_id") {
                if body_id != id {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body differs from the Basic header",
                    )
                    .with_basic(true));
                }
            }
            Ok(ClientCredentials {
                client_id: id,
                secret: SecretString::new(secret),
                basic: true,
            })
        }
        None => {
            let secret = form.take("client_secret");
            match (form.get("client_id"), secret) {
                (Some(id), Some(secret)) => Ok(ClientCredentials {
                    client_id: id.to_owned(),
                    secret: SecretString::new(secret),
                    basic: false,
                }),
                _ => Err(OAuthError::invalid_client(false)),
            }
        }
    }
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential part.
fn form_decode(s: &str) -> Option<String> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        // Nothing to decode (every secret and client id Portcullis issues).
        return Some(s.to_owned());
    }
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&v).expect("header"),
        );
        h
    }

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        let e = OAuthForm::parse(b"grant_type=a&grant_type=b").expect_err("repeat");
        assert_eq!(e.code().as_str(), "invalid_request");
        // A repeat spelled differently is the same parameter once decoded.
        let e = OAuthForm::parse(b"grant_type=a&grant%5Ftype=b").expect_err("encoded repeat");
        assert_eq!(e.code().as_str(), "invalid_request");
        let f = OAuthForm::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&scope=")
            .expect("ok");
        assert_eq!(f.resources(), ["https://a", "https://b"]);
        assert_eq!(f.get("scope"), None, "empty means absent");
    }

    #[test]
    fn form_pairs_split_plain_bodies_in_place_and_decode_the_rest() {
        let plain: Vec<_> = form_pairs(b"token=a.b.c&&hint&x=1=2&=v").collect();
        assert!(plain
            .iter()
            .all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_)))));
        assert_eq!(
            plain,
            [("token", "a.b.c"), ("hint", ""), ("x", "1=2"), ("", "v")]
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
        );
        let coded: Vec<_> = form_pairs(b"a=b+c&d=%41%ff").collect();
        assert_eq!(coded[0], (Cow::Borrowed("a"), Cow::Borrowed("b c")));
        assert_eq!(coded[1].1, "A\u{fffd}");
    }

    proptest::proptest! {
        /// The in-place split gives exactly what the crate gives, for any bytes.
        #[test]
        fn form_pairs_match_form_urlencoded(body in proptest::collection::vec(
            proptest::sample::select(b"ab=&%+4F1\xc3\xa9\xff ".to_vec()), 0..40)) {
            let ours: Vec<_> = form_pairs(&body).collect();
            let theirs: Vec<_> = form_urlencoded::parse(&body).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }

        /// A Basic credential part decodes as before the shortcut for parts with
        /// nothing to decode.
        #[test]
        fn form_decode_matches_the_full_decoding(s in "[a-zA-Z0-9_.%+ 4Fé]{0,30}") {
            let full = percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned());
            proptest::prop_assert_eq!(form_decode(&s), full);
        }

        /// The same over bodies with nothing to decode, which all take the in-place split.
        #[test]
        fn plain_form_pairs_match_form_urlencoded(body in "[ab.=&1é_-]{0,60}") {
            let ours: Vec<_> = form_pairs(body.as_bytes()).collect();
            let theirs: Vec<_> = form_urlencoded::parse(body.as_bytes()).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut f = OAuthForm::parse(b"").expect("empty");
        let c = client_credentials(&basic("my%20id", "a%2Bb+c"), &mut f).expect("basic");
        assert_eq!(
            (c.client_id.as_str(), c.secret.expose(), c.basic),
            ("my id", "a+b c", true)
        );
    }

    #[test]
    fn mixed_missing_and_malformed_authentication() {
        let mut f = OAuthForm::parse(b"client_id=x&client_secret=y").expect("form");
        assert_eq!(
            client_credentials(&basic("x", "y"), &mut f)
                .expect_err("both")
                .code()
                .as_str(),
            "invalid_request"
        );
        let mut f = OAuthForm::parse(b"client_id=x").expect("form");
        assert_eq!(
            client_credentials(&HeaderMap::new(), &mut f)
                .expect_err("none")
                .code()
                .as_str(),
            "invalid_client"
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        let mut f = OAuthForm::parse(b"").expect("form");
        assert_eq!(
            client_credentials(&h, &mut f)
                .expect_err("garbage")
                .code()
                .as_str(),
            "invalid_client"
        );
        let mut f = OAuthForm::parse(b"client_id=other").expect("form");
        assert_eq!(
            client_credentials(&basic("x", "y"), &mut f)
                .expect_err("mismatch")
                .code()
                .as_str(),
            "invalid_request"
        );
        let mut f = OAuthForm::parse(b"client_id=x&client_secret=y").expect("form");
        let c = client_credentials(&HeaderMap::new(), &mut f).expect("post");
        assert!(!c.basic);
        assert_eq!(
            f.get("client_secret"),
            None,
            "the secret is taken out of the form"
        );
    }
}
