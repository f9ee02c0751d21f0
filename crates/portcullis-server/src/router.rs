//! Every route, and the middleware stack around them.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{middleware, Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;

use crate::http::discovery::{
    self, AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, LOGOUT_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::http::{admin, forward_auth, oauth, ops, ui};
use crate::metrics;
use crate::state::AppState;

/// The request-id header, set when absent and echoed on the response.
pub const REQUEST_ID: &str = "x-request-id";

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

/// Request ids: a random per-process prefix and a counter. Unique across restarts
/// and nodes without a system call per request (a UUIDv4 reads the OS RNG each time).
#[derive(Debug, Clone)]
pub struct RequestIds {
    prefix: u64,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().as_u64_pair().0,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::http::header_value(format_args!("{:016x}-{n:x}", self.prefix)).map(RequestId::new)
    }
}

/// Headers every response carries unless its handler set its own (in one pass, not a
/// layer each: every layer adds a future around the request's).
fn security_headers(mut res: Response, hsts: bool) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        // Anything that does not say otherwise (discovery and JWKS do) is not
        // cached: many responses carry a secret shown once.
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    if hsts {
        h.entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    res
}

/// Builds the application: the routes inside the layers every request passes.
///
/// The layers wrap the router from outside (`ServiceBuilder::service`) rather than
/// through `Router::layer`: axum boxes a `Router::layer` around every route and clones
/// that box chain on every request, which cost about a sixth of a light request
/// (JWKS, forward-auth). Only what needs the matched route stays inside (metrics, by
/// route template) or belongs to a few routes (CORS).
pub fn router(state: AppState) -> impl crate::listener::App {
    let timeout = state.settings().server.request_timeout;
    let header_name = header::HeaderName::from_static(REQUEST_ID);
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
    let browser_facing = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route(JWKS_PATH, get(discovery::jwks))
        .route(TOKEN_PATH, post(oauth::token::token))
        .layer(cors);
    // HSTS only when this server terminates TLS itself.
    let hsts = state.settings().server.tls_cert_file.is_some();
    let routes = Router::new()
        .merge(browser_facing)
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
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state.clone());
    ServiceBuilder::new()
        // The listener serves axum's body type.
        .map_response(|res: axum::http::Response<_>| res.map(axum::body::Body::new))
        .layer(SetRequestIdLayer::new(
            header_name.clone(),
            RequestIds::new(),
        ))
        // No trace layer: a span per request cost 6-10% of a light request. The edge
        // middleware puts the method, path (never the query string or a header) and
        // request id in the request's context, and the log formatter adds them to
        // every line written while it runs. A 5xx is logged where it arises (a
        // handler's error, the store).
        .layer(PropagateRequestIdLayer::new(header_name))
        .map_response(move |res| security_headers(res, hsts))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // One edge middleware: shed load, resolve the client IP, apply IP rules and
        // denies, the per-IP rate limit of the route class, and open the request's
        // audit context.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::net::edge,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.settings().server.max_body_bytes,
        ))
        .service(routes)
}
