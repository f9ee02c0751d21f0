//! Client authentication: any `Authorization` header value (with or without a
//! form body naming a client) is read or refused, never a panic.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_server::extract::{client_credentials, OAuthForm};

fuzz_target!(|data: &[u8]| {
    // The header value, a newline, then the form body.
    let cut = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (head, body) = (&data[..cut], data.get(cut + 1..).unwrap_or(&[]));
    let Ok(value) = HeaderValue::from_bytes(head) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let Ok(mut form) = OAuthForm::parse(body) else {
        return;
    };
    let _ = client_credentials(&headers, &mut form);
});
