//! A resource server protected by `portcullis-verify`.
//!
//! ```text
//! PORTCULLIS_ISSUER=http://127.0.0.1:8080 \
//! API_AUDIENCE=https://api.example.com API_URL=http://127.0.0.1:3000 \
//! API_CLIENT_ID=… API_CLIENT_SECRET=… \
//! cargo run -p portcullis-verify --example protected_api
//! ```
//!
//! - `GET /hello`: any valid token (JWT offline, opaque tokens and API keys by
//!   introspection, DPoP-bound tokens with their proof); answers who called.
//! - `GET /admin/stats`: behind the `RequireToken` layer, which also demands the
//!   `admin` scope.
//!
//! Refusals are RFC 6750 / RFC 9449: 401 with `WWW-Authenticate: Bearer …` and
//! `DPoP …` challenges, 403 `insufficient_scope`, 503 when revocation cannot be
//! checked.

use axum::routing::get;
use axum::{Json, Router};
use portcullis_verify::axum::{Authenticated, RequireToken};
use portcullis_verify::Verifier;
use serde_json::{json, Value};

/// The service's routes.
pub(crate) fn app(verifier: Verifier) -> Router {
    let admin = Router::new()
        .route("/admin/stats", get(stats))
        .layer(RequireToken::new(verifier.clone()).scopes(["admin"]));
    Router::new()
        .route("/hello", get(hello))
        .merge(admin)
        .with_state(verifier)
}

async fn hello(Authenticated(who): Authenticated) -> Json<Value> {
    Json(json!({
        "hello": who.subject,
        "client_id": who.client_id,
        "scopes": who.scopes,
        "token_type": who.token_type,
    }))
}

async fn stats(Authenticated(who): Authenticated) -> Json<Value> {
    Json(json!({ "admin": who.subject, "requests": 1 }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("set {k}"));
    let url = env("API_URL")?;
    let verifier = Verifier::builder(env("PORTCULLIS_ISSUER")?, env("API_AUDIENCE")?)
        .client_credentials(env("API_CLIENT_ID")?, env("API_CLIENT_SECRET")?)
        .resource_url(url.clone())
        .build()
        .await?;
    let addr = url
        .split("://")
        .nth(1)
        .unwrap_or("127.0.0.1:3000")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {url}");
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
