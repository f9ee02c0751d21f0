//! HTTP handlers, one file per action.
//!
//! - [`oauth`]: token, introspection, revocation endpoints.
//! - [`discovery`]: RFC 8414 / OpenID discovery and the JWKS.
//! - [`ops`]: health, readiness, metrics.
//! - [`forward_auth`]: `/auth/verify` for reverse proxies.
//! - [`ui`]: pages for people: sign-in, MFA, consent, account, logout.

pub mod admin;
pub mod discovery;
pub mod forward_auth;
pub mod oauth;
pub mod ops;
pub mod ui;

/// A header value formatted on the stack: one allocation, the value's own (`format!`
/// would grow a string two or three times, then the value would copy or wrap it).
/// Values longer than 128 bytes are formatted on the heap.
pub(crate) fn header_value(args: std::fmt::Arguments<'_>) -> Option<axum::http::HeaderValue> {
    let mut buf = [0u8; 128];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    if std::io::Write::write_fmt(&mut cur, args).is_ok() {
        let n = usize::try_from(cur.position()).unwrap_or(0);
        axum::http::HeaderValue::from_bytes(&buf[..n]).ok()
    } else {
        axum::http::HeaderValue::from_str(&args.to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_are_formatted_whatever_their_length() {
        let short = super::header_value(format_args!("\"{}\";q={};w={}", "token-ip", 20, 1));
        assert_eq!(
            short.expect("short").to_str().ok(),
            Some("\"token-ip\";q=20;w=1")
        );
        let long = "x".repeat(300);
        let v = super::header_value(format_args!("{long};r={}", u64::MAX)).expect("long");
        assert_eq!(
            v.to_str().ok(),
            Some(format!("{long};r={}", u64::MAX).as_str())
        );
        // Not a valid header value: no value, not a panic.
        assert!(super::header_value(format_args!("a\nb")).is_none());
    }
}
