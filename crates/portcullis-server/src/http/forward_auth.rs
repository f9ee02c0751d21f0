//! `/auth/verify`: forward-auth for reverse proxies (nginx `auth_request`, Traefik
//! ForwardAuth, Caddy `forward_auth`, Envoy `ext_authz` over HTTP).
//!
//! The proxy forwards the client's `Authorization: Bearer …` (or an API key in
//! `forwardauth.api_key_header`) and, optionally, the original method and URI
//! (`X-Forwarded-Method`/`X-Forwarded-Uri`, or nginx's `X-Original-Method`/
//! `X-Original-URI`; Envoy appends the original path to `/auth/verify`). Required
//! scopes come from the `[[forwardauth.routes]]` table and from an
//! `X-Auth-Required-Scopes` header the proxy sets. Answers:
//! - 200 with `X-Auth-Subject`, `X-Auth-Client`, `X-Auth-Scopes`, `X-Auth-Token-Id`,
//!   `X-Auth-Kind` for the proxy to pass upstream;
//! - 401 `WWW-Authenticate: Bearer …error="invalid_token"` (RFC 6750 §3.1; no error
//!   code when no credential was sent);
//! - 403 `error="insufficient_scope"` (or a key used from a forbidden IP);
//! - 429 with `Retry-After` and the `RateLimit` headers.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use portcullis_service::gate::{DpopPresentation, GateDecision, GateRequest};
use portcullis_service::ratelimit::RouteClass;

use crate::config::ForwardAuthRoute;
use crate::error::Problem;
use crate::net::ClientIp;
use crate::state::AppState;

/// The forward-auth path (and prefix, for Envoy's appended original path).
pub const PATH: &str = "/auth/verify";

const REALM: &str = "portcullis";

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The bearer: `Authorization: Bearer` (or `DPoP`, RFC 9449 §7.1) first, then the
/// API-key header. The flag is true for the DPoP scheme.
fn credential<'a>(h: &'a HeaderMap, key_header: &str) -> Option<(&'a str, bool)> {
    if let Some(v) = header_str(h, header::AUTHORIZATION.as_str()) {
        return match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => Some((t.trim(), false)),
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("dpop") => Some((t.trim(), true)),
            _ => None,
        };
    }
    header_str(h, key_header).map(|k| (k, false))
}

/// The original request's absolute URL, for a DPoP proof's `htu`: the proxy's
/// `X-Forwarded-Proto` and `X-Forwarded-Host` with the original path.
fn original_url(h: &HeaderMap, path: &str) -> Option<String> {
    let proto = header_str(h, "x-forwarded-proto")?;
    let host = header_str(h, "x-forwarded-host")?;
    if !matches!(proto, "http" | "https") || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some(format!("{proto}://{host}{path}"))
}

/// The original request's method and path, as the proxy reports them.
fn original(h: &HeaderMap, method: &Method, uri: &Uri) -> (String, String) {
    let m = header_str(h, "x-forwarded-method")
        .or_else(|| header_str(h, "x-original-method"))
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| method.as_str().to_owned());
    let raw = header_str(h, "x-forwarded-uri")
        .or_else(|| header_str(h, "x-original-uri"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let rest = uri.path().strip_prefix(PATH).unwrap_or("");
            if rest.is_empty() {
                "/".into()
            } else {
                rest.to_owned()
            }
        });
    let path = raw.split(['?', '#']).next().unwrap_or("/").to_owned();
    (m, path)
}

/// Scopes the route table requires for (method, path): the longest matching prefix.
pub fn route_scopes<'a>(routes: &'a [ForwardAuthRoute], method: &str, path: &str) -> &'a [String] {
    routes
        .iter()
        .filter(|r| path.starts_with(&r.prefix))
        .filter(|r| {
            r.methods.is_empty() || r.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        })
        .max_by_key(|r| r.prefix.len())
        .map(|r| r.scopes.as_slice())
        .unwrap_or(&[])
}

/// 401 with a `DPoP` challenge (RFC 9449 §7.1), `use_dpop_nonce` and the nonce when
/// one is due.
fn dpop_challenge(reason: &str, nonce: Option<String>) -> Response {
    let error = if nonce.is_some() {
        "use_dpop_nonce"
    } else {
        "invalid_dpop_proof"
    };
    let desc: String = reason.chars().filter(|c| *c != '"' && *c != '\\').collect();
    let mut res = challenge(
        StatusCode::UNAUTHORIZED,
        format!(
            r#"DPoP realm="{REALM}", error="{error}", error_description="{desc}", algs="EdDSA ES256 RS256 PS256""#
        ),
        reason,
    );
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

fn challenge(status: StatusCode, www: String, detail: &str) -> Response {
    let mut res = Problem::new(status, detail).into_response();
    if let Ok(v) = HeaderValue::from_str(&www) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// `GET /auth/verify` (any method: proxies may forward the original one).
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let cfg = &state.settings().forwardauth;
    let Some((token, dpop_scheme)) = credential(&headers, &cfg.api_key_header) else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer realm="{REALM}""#),
            "a bearer token is required",
        );
    };
    let (m, path) = original(&headers, &method, &uri);
    let mut required: Vec<String> = route_scopes(&cfg.routes, &m, &path).to_vec();
    if let Some(extra) = header_str(&headers, "x-auth-required-scopes") {
        for s in extra.split([' ', ',']).filter(|s| !s.is_empty()) {
            if !required.iter().any(|r| r == s) {
                required.push(s.to_owned());
            }
        }
    }
    let Ok(proof) = crate::http::oauth::token::dpop_header(&headers) else {
        return dpop_challenge("exactly one DPoP header is allowed", None);
    };
    let htu = original_url(&headers, &path);
    let decision = match state
        .authority()
        .gate(&GateRequest {
            token,
            ip,
            required: &required,
            audiences: &cfg.audiences,
            dpop: DpopPresentation {
                scheme: dpop_scheme,
                proof,
                htm: &m,
                htu: htu.as_deref(),
            },
        })
        .await
    {
        Ok(d) => d,
        Err(e) => return Problem::from_service(e).into_response(),
    };
    match decision {
        GateDecision::Allow { principal, rate } => {
            tracing::debug!(token_id = %principal.token_id, kind = principal.kind.as_str(), %path, "forward-auth allowed");
            let mut res = StatusCode::OK.into_response();
            let h = res.headers_mut();
            let scopes = principal.scopes.join(" ");
            for (name, value) in [
                ("x-auth-subject", principal.subject.as_str()),
                (
                    "x-auth-client",
                    principal.client_id.as_deref().unwrap_or(""),
                ),
                ("x-auth-scopes", scopes.as_str()),
                ("x-auth-token-id", principal.token_id.as_str()),
                ("x-auth-kind", principal.kind.as_str()),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(HeaderName::from_static(name), v);
                }
            }
            if let Some(r) = rate {
                crate::ratelimit::add_headers(&mut res, &r);
            }
            res
        }
        GateDecision::InvalidToken { reason, token_id } => {
            tracing::info!(client_ip = %ip, token_id = token_id.as_deref().unwrap_or("-"), reason, "forward-auth refused");
            challenge(
                StatusCode::UNAUTHORIZED,
                format!(
                    r#"Bearer realm="{REALM}", error="invalid_token", error_description="{reason}""#
                ),
                reason,
            )
        }
        GateDecision::InsufficientScope {
            principal,
            required,
        } => {
            tracing::info!(client_ip = %ip, token_id = %principal.token_id, "forward-auth refused: insufficient scope");
            let scope = required.join(" ");
            challenge(
                StatusCode::FORBIDDEN,
                format!(r#"Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}""#),
                &format!("this route needs the scopes {scope:?}"),
            )
        }
        GateDecision::InvalidDpop {
            reason,
            nonce,
            token_id,
        } => {
            tracing::info!(client_ip = %ip, %token_id, %reason, "forward-auth refused: DPoP");
            dpop_challenge(&reason, nonce)
        }
        GateDecision::ForbiddenIp { token_id } => {
            tracing::info!(client_ip = %ip, %token_id, "forward-auth refused: address not allowed for this key");
            Problem::new(
                StatusCode::FORBIDDEN,
                "this credential may not be used from this address",
            )
            .into_response()
        }
        GateDecision::RateLimited { token_id, rate } => {
            tracing::info!(client_ip = %ip, %token_id, "forward-auth refused: rate limited");
            match rate {
                Some(r) => crate::ratelimit::refused(&state, RouteClass::ForwardAuth, &r),
                None => Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "this credential has no uses left",
                )
                .into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, methods: &[&str], scopes: &[&str]) -> ForwardAuthRoute {
        ForwardAuthRoute {
            prefix: prefix.into(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_longest_matching_prefix_and_method_decide_the_scopes() {
        let routes = vec![
            route("/", &[], &["read"]),
            route("/devices/", &["POST", "DELETE"], &["devices:write"]),
            route("/devices/", &["GET"], &["devices:read"]),
        ];
        assert_eq!(
            route_scopes(&routes, "POST", "/devices/7"),
            ["devices:write"]
        );
        assert_eq!(route_scopes(&routes, "get", "/devices/7"), ["devices:read"]);
        assert_eq!(route_scopes(&routes, "PATCH", "/devices/7"), ["read"]);
        assert_eq!(route_scopes(&routes, "GET", "/other"), ["read"]);
        assert!(route_scopes(&[], "GET", "/").is_empty());
    }

    #[test]
    fn the_original_uri_comes_from_the_proxy_headers_or_the_envoy_suffix() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/auth/verify/devices/1?x=1".parse().expect("uri");
        assert_eq!(
            original(&h, &Method::DELETE, &uri),
            ("DELETE".into(), "/devices/1".into())
        );
        h.insert("x-original-uri", HeaderValue::from_static("/a/b?q=1"));
        h.insert("x-original-method", HeaderValue::from_static("put"));
        assert_eq!(
            original(&h, &Method::GET, &uri),
            ("PUT".into(), "/a/b".into())
        );
        h.insert("x-forwarded-uri", HeaderValue::from_static("/c"));
        assert_eq!(
            original(&h, &Method::GET, &uri).1,
            "/c",
            "Traefik/Caddy header first"
        );
    }

    #[test]
    fn only_bearer_or_the_key_header_carry_a_credential() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h, "x-api-key"), None);
        h.insert("x-api-key", HeaderValue::from_static("acme_123"));
        assert_eq!(credential(&h, "x-api-key"), Some(("acme_123", false)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(
            credential(&h, "x-api-key"),
            None,
            "a non-bearer Authorization is not a key"
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  tok "),
        );
        assert_eq!(credential(&h, "x-api-key"), Some(("tok", false)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("DPoP tok"));
        assert_eq!(credential(&h, "x-api-key"), Some(("tok", true)));
    }
}
