//! Every route, and the middleware stack around them.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

use crate::http::discovery::{
    self, AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, LOGOUT_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::http::{admin, forward_auth, oauth, ops, ui};
use crate::metrics;
use crate::state::AppState;

async fn not_found() -> Response {
    let mut res = (
        StatusCode::NOT_FOUND,
        Json(json!({"type": "about:blank", "title": "Not Found", "status": 404})),
    )
        .into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// Builds the application: the routes inside [`crate::edge::Edge`], which every
/// request passes (request id, timeout, load shedding, client address, IP rules,
/// rate limits, security headers).
///
/// Nothing is added with `Router::layer` around every route: axum boxes such a layer
/// around each route and clones that box chain on every request, which cost about a
/// sixth of a light request (JWKS, forward-auth). Only what needs the matched route
/// stays inside (metrics, by route template) or belongs to a few routes (CORS).
pub fn router(state: AppState) -> impl crate::listener::App {
    // CORS only where RFC 9700 allows browsers to call cross-origin: metadata, JWKS
    // and the token endpoint. Never the admin API (and never an authorization endpoint).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("dpop"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
        // No `Vary`: with any origin allowed and fixed method and header lists, the
        // answer does not depend on the request's CORS headers (and an empty list
        // costs nothing to clone on each request).
        .vary([]);
    // The public documents answer CORS themselves (static headers, see
    // `discovery::preflight`); the token endpoint through the layer.
    let token = Router::new()
        .route(TOKEN_PATH, post(oauth::token::token))
        .layer(cors);
    let routes = Router::new()
        .merge(token)
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata).options(discovery::preflight),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata).options(discovery::preflight),
        )
        .route(
            JWKS_PATH,
            get(discovery::jwks).options(discovery::preflight),
        )
        .route(INTROSPECT_PATH, post(oauth::introspect::introspect))
        .route(oauth::events::PATH, get(oauth::events::stream))
        .route(
            AUTHORIZE_PATH,
            get(ui::authorize::authorize).post(ui::authorize::decide),
        )
        .route(
            USERINFO_PATH,
            get(oauth::userinfo::userinfo).post(oauth::userinfo::userinfo),
        )
        .route(
            LOGOUT_PATH,
            get(ui::account::logout_get).post(ui::account::logout_post),
        )
        .route("/login", get(ui::login::show).post(ui::login::submit))
        .route(
            "/login/mfa",
            get(ui::login::show_mfa).post(ui::login::submit_mfa),
        )
        .route(
            "/account/mfa",
            get(ui::login::show_enrol).post(ui::login::submit_enrol),
        )
        .route("/account", get(ui::account::show))
        .route(
            "/account/password",
            get(ui::account::show_password).post(ui::account::change_password),
        )
        .route(
            "/account/consents/revoke",
            post(ui::account::revoke_consent),
        )
        .route("/ui/style.css", get(ui::stylesheet))
        .route(REVOKE_PATH, post(oauth::revoke::revoke))
        .route(forward_auth::PATH, any(forward_auth::verify))
        .route("/auth/verify/{*rest}", any(forward_auth::verify))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route(
            "/api/v1/keyspaces",
            post(admin::keyspaces::create).get(admin::keyspaces::list),
        )
        .route(
            "/api/v1/keyspaces/{id}",
            get(admin::keyspaces::show)
                .patch(admin::keyspaces::patch)
                .delete(admin::keyspaces::delete),
        )
        .route(
            "/api/v1/keys",
            post(admin::keys::create).get(admin::keys::list),
        )
        .route("/api/v1/keys/verify", post(admin::keys::verify))
        .route(
            "/api/v1/keys/{id}",
            get(admin::keys::show)
                .patch(admin::keys::patch)
                .delete(admin::keys::delete),
        )
        .route("/api/v1/keys/{id}/revoke", post(admin::keys::revoke))
        .route("/api/v1/keys/{id}/roll", post(admin::keys::roll))
        .route("/api/v1/keys/{id}/usage", get(admin::keys::usage))
        .route("/api/v1/keys/leaked", post(admin::keys::leaked))
        .route("/api/v1/openapi.json", get(admin::openapi))
        .route("/oauth/openapi.json", get(oauth::doc::openapi))
        .route("/api/v1/audit", get(admin::audit::list))
        .route(
            "/api/v1/webhooks",
            post(admin::webhooks::create).get(admin::webhooks::list),
        )
        .route("/api/v1/webhooks/{id}", delete(admin::webhooks::delete))
        .route(
            "/api/v1/ip-blocks",
            get(admin::ip_blocks::list).post(admin::ip_blocks::create),
        )
        .route(
            "/api/v1/ip-blocks/{*network}",
            delete(admin::ip_blocks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(admin::webhooks::deliveries),
        )
        .route(
            "/api/v1/users",
            post(admin::users::create).get(admin::users::list),
        )
        .route(
            "/api/v1/users/{id}",
            get(admin::users::show)
                .patch(admin::users::update)
                .delete(admin::users::delete),
        )
        .route(
            "/api/v1/users/{id}/password",
            axum::routing::put(admin::users::set_password),
        )
        .route(
            "/api/v1/users/{id}/mfa/reset",
            post(admin::users::reset_mfa),
        )
        .route(
            "/api/v1/users/{id}/tokens",
            post(admin::users::create_token).get(admin::users::list_tokens),
        )
        .route(
            "/api/v1/users/{id}/tokens/revoke-all",
            post(admin::users::revoke_all),
        )
        .route(
            "/api/v1/tokens/{id}/revoke",
            post(admin::users::revoke_token),
        )
        .route("/api/v1/me/tokens", get(admin::users::my_tokens))
        .route(
            "/api/v1/me/tokens/{id}/revoke",
            post(admin::users::revoke_my_token),
        )
        .fallback(not_found)
        .route_layer(metrics::TrackLayer::new(state.clone()))
        .with_state(state.clone());
    // The body limit only marks the request (extractors read it); as a layer around
    // the router it is not boxed per route.
    let routes = tower::Layer::layer(
        &axum::extract::DefaultBodyLimit::max(state.settings().server.max_body_bytes),
        routes,
    );
    crate::edge::Edge::new(state, routes)
}
