//! `/api/v1/keys`, including the verification hot path `POST /api/v1/keys/verify`.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::apikeys::{
    ApiKeyUpdate, ApiKeyView, CreatedApiKey, LeakReport, NewApiKey, UsageBucket, VerifyRequest,
    VerifyResponse,
};
use serde::Deserialize;
use serde_json::Value;

use super::{double_option, duration};
use crate::admin_extract::{Admin, ApiJson, ApiQuery};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    keyspace: String,
    owner: String,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    meta: Option<Value>,
    expires_in: Option<String>,
    expires_at: Option<i64>,
    uses: Option<i64>,
    rate_limit: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
}

/// `PATCH /api/v1/keys/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKey {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    meta: Option<Value>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    uses: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    rate_limit: Option<Option<String>>,
    allow_ips: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// `GET /api/v1/keys` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    keyspace: Option<String>,
    owner: Option<String>,
}

/// `POST /api/v1/keys/verify` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    key: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// The end client's address, for keys with an IP allow list.
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    ip: Option<IpAddr>,
}

#[utoipa::path(
    post,
    path = "/api/v1/keys",
    operation_id = "keys_create",
    request_body = CreateKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
/// Create a key; the response carries the key once.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    let req = NewApiKey {
        keyspace: b.keyspace,
        owner: b.owner,
        name: b.name,
        scopes: b.scopes,
        meta: b.meta,
        expires_in: duration("expires_in", b.expires_in.as_deref())?,
        expires_at: b.expires_at,
        uses: b.uses,
        rate_limit: b.rate_limit,
        allow_ips: b.allow_ips,
    };
    let created = state.authority().create_api_key(req).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    operation_id = "keys_list",
    params(ListQuery),
    responses(
        (status = 200, body = Vec<ApiKeyView>),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown keyspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:read"])),
    tag = "keys"
)]
/// List keys (never their secrets), optionally by keyspace and owner.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, Problem> {
    admin.require("keys:read")?;
    Ok(Json(
        state
            .authority()
            .list_api_keys(q.keyspace.as_deref(), q.owner.as_deref())
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/keys/{id}",
    operation_id = "keys_show",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, body = ApiKeyView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:read"])),
    tag = "keys"
)]
/// Show a key.
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keys:read")?;
    Ok(Json(state.authority().get_api_key(&id).await?).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/keys/{id}",
    operation_id = "keys_patch",
    params(("id" = String, Path, description = "key id")),
    request_body = PatchKey,
    responses(
        (status = 200, body = ApiKeyView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
/// Update a key's name, scopes, metadata, limits or enabled flag.
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PatchKey>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    let u = ApiKeyUpdate {
        name: b.name,
        scopes: b.scopes,
        meta: b.meta,
        uses: b.uses,
        rate_limit: b.rate_limit,
        allow_ips: b.allow_ips,
        enabled: b.enabled,
    };
    Ok(Json(state.authority().update_api_key(&id, u).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/revoke",
    operation_id = "keys_revoke",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, body = ApiKeyView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
/// Revoke a key (idempotent).
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    Ok(Json(state.authority().revoke_api_key(&id).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/verify",
    operation_id = "keys_verify",
    request_body = Verify,
    responses(
        (status = 200, body = VerifyResponse),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:verify"])),
    tag = "keys"
)]
/// Verify a key. Always 200 with `valid` and `code` for a well-formed request.
pub async fn verify(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<Verify>,
) -> Result<Response, Problem> {
    admin.require("keys:verify")?;
    let answer = state
        .authority()
        .verify_api_key(&VerifyRequest {
            key: b.key,
            scopes: b.scopes,
            ip: b.ip,
        })
        .await?;
    Ok(crate::http::json_no_store(&answer, false))
}

/// `POST /api/v1/keys/{id}/roll` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Roll {
    /// How long the old secret keeps working, like `24h` (default: none).
    grace: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/roll",
    operation_id = "keys_roll",
    params(("id" = String, Path, description = "key id")),
    request_body = Roll,
    responses(
        (status = 200, body = CreatedApiKey),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the key is revoked", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
/// Roll a key: a new secret for the same key; the old one works for `grace`.
pub async fn roll(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Roll>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    let grace = match b.grace.as_deref() {
        None | Some("0") | Some("0s") => std::time::Duration::ZERO,
        Some(g) => duration("grace", Some(g))?.unwrap_or_default(),
    };
    Ok(Json(state.authority().roll_api_key(&id, grace).await?).into_response())
}

/// `GET /api/v1/keys/{id}/usage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    from: Option<i64>,
    to: Option<i64>,
    granularity: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/keys/{id}/usage",
    operation_id = "keys_usage",
    params(("id" = String, Path, description = "key id"), UsageQuery),
    responses(
        (status = 200, body = Vec<UsageBucket>),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid range or granularity", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:read"])),
    tag = "keys"
)]
/// Verification counts of a key by bucket and outcome.
pub async fn usage(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, Problem> {
    admin.require("keys:read")?;
    let g = portcullis_service::apikeys::Granularity::parse(
        q.granularity.as_deref().unwrap_or("hour"),
    )?;
    Ok(Json(
        state
            .authority()
            .api_key_usage(&id, q.from, q.to, g)
            .await?,
    )
    .into_response())
}

/// `POST /api/v1/keys/leaked` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Leaked {
    candidates: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/leaked",
    operation_id = "keys_leaked",
    request_body = Leaked,
    responses(
        (status = 200, body = LeakReport),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "too many candidates", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
/// Leak response: revoke every live key among the candidates and report them.
pub async fn leaked(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<Leaked>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    Ok(Json(state.authority().report_leaked(&b.candidates).await?).into_response())
}

/// Delete a key for good (its usage counts go with it).
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    operation_id = "keys_delete",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keys:write"])),
    tag = "keys"
)]
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keys:write")?;
    state.authority().delete_api_key(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
