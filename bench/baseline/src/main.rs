//! Baselines for `bench/run`, built with the same crates and profile as the server.
//!
//! - `GET /trivial`: a small JSON body (B1, the ceiling of axum on this machine).
//! - `POST /sign/{alg}`: signs a JWT with the same claims shape, key type and crypto
//!   crate as a `client_credentials` token, and returns it in a token-response body (B2).
//!
//! - `GET /jwks-shaped`: B1 with the answer of Portcullis's `/jwks.json` (a key set of
//!   the same four key types, 1.3 KB) and its response headers, served bare: what the
//!   same answer costs without a server's middleware (the ceiling for S5).
//!
//! - `POST /argon2`: verifies one password against an Argon2id hash made with the
//!   OWASP parameters Portcullis uses by default, off the runtime (`spawn_blocking`),
//!   through the very function sign-in calls (`portcullis_service::passwords::verify`:
//!   one hash per core at a time, in reused memory). B3 over HTTP: the hash rate a
//!   sign-in can at best reach on this machine.
//!
//! Usage: `portcullis-bench-baseline 127.0.0.1:PORT`
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use portcullis_core::claims::{AccessTokenClaims, Audience, ACCESS_TOKEN_TYP};
use portcullis_core::ids::TokenId;
use portcullis_core::jose::{SigningAlg, SigningKey};
use serde_json::{json, Value};

#[derive(Debug)]
struct Keys {
    es256: SigningKey,
    eddsa: SigningKey,
    /// Argon2id hash of [`PASSWORD`] with the default (OWASP) parameters.
    argon2: String,
    /// The server's own hasher: one verification per core at a time, in reused memory.
    hasher: Arc<portcullis_service::passwords::PasswordHasherCfg>,
    /// A JWK Set of one ES256, EdDSA, PS256 and RS256 key each, serialized once.
    jwks: axum::body::Bytes,
}

/// The password `/argon2` verifies.
const PASSWORD: &str = "bench-password-1";

async fn argon2(State(keys): State<Arc<Keys>>) -> Result<Json<Value>, StatusCode> {
    let ok = portcullis_service::passwords::verify(
        &keys.hasher,
        Some(&keys.argon2),
        &portcullis_core::secret::SecretString::new(PASSWORD),
    )
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if ok {
        Ok(Json(json!({"ok": true})))
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

async fn jwks_shaped(State(keys): State<Arc<Keys>>) -> impl IntoResponse {
    // Portcullis's JWKS response headers, values of the same length.
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (
                header::HeaderName::from_static("x-request-id"),
                "3f139ee2b52c4af1-0",
            ),
        ],
        keys.jwks.clone(),
    )
}

async fn trivial() -> Json<Value> {
    Json(json!({"status": "ok", "service": "baseline"}))
}

async fn sign(
    State(keys): State<Arc<Keys>>,
    Path(alg): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let key = match alg.as_str() {
        "ES256" => &keys.es256,
        "EdDSA" => &keys.eddsa,
        _ => return Err(StatusCode::NOT_FOUND),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = "01a201b3-8a34-704d-b45f-0029cc282ea6".to_owned();
    let claims = AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: id.clone(),
        aud: Audience::One("http://127.0.0.1:8080".into()),
        exp: now + 900,
        iat: now,
        jti: TokenId::new().to_string(),
        client_id: id,
        scope: "read write".into(),
        nbf: None,
        cnf: None,
    };
    let token = key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": "read write"}),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let es256 = SigningKey::generate(SigningAlg::ES256)?.0;
    let eddsa = SigningKey::generate(SigningAlg::EdDSA)?.0;
    let rsa = [
        SigningKey::generate(SigningAlg::PS256)?.0,
        SigningKey::generate(SigningAlg::RS256)?.0,
    ];
    let set: Vec<_> = [&es256, &eddsa, &rsa[0], &rsa[1]]
        .iter()
        .map(|k| k.public_jwk())
        .collect();
    let jwks = serde_json::to_vec(&json!({ "keys": set }))?.into();
    let keys = Arc::new(Keys {
        es256,
        eddsa,
        jwks,
        argon2: portcullis_service::passwords::PasswordHasherCfg::hash_blocking(
            portcullis_service::passwords::Argon2Params::default(),
            PASSWORD,
        )?,
        hasher: Arc::new(portcullis_service::passwords::PasswordHasherCfg::new(
            portcullis_service::passwords::Argon2Params::default(),
        )?),
    });
    let app = Router::new()
        .route("/trivial", get(trivial))
        .route("/jwks-shaped", get(jwks_shaped))
        .route("/sign/{alg}", post(sign))
        .route("/argon2", post(argon2))
        .with_state(keys);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("baseline listening on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
