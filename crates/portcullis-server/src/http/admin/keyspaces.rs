//! `/api/v1/keyspaces`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::apikeys::{KeyspaceUpdate, KeyspaceView, NewKeyspace};
use serde::Deserialize;

use super::{double_option, duration};
use crate::admin_extract::{Admin, ApiJson};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/keyspaces` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyspace {
    name: String,
    prefix: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    default_scopes: Vec<String>,
    rate_limit: Option<String>,
    default_ttl: Option<String>,
    max_ttl: Option<String>,
}

/// `PATCH /api/v1/keyspaces/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchKeyspace {
    scopes: Option<Vec<String>>,
    default_scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    rate_limit: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    default_ttl: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(nullable)]
    max_ttl: Option<Option<String>>,
}

#[utoipa::path(
    post,
    path = "/api/v1/keyspaces",
    operation_id = "keyspaces_create",
    request_body = CreateKeyspace,
    responses(
        (status = 201, body = KeyspaceView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keyspaces:write"])),
    tag = "keyspaces"
)]
/// Create a keyspace.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<CreateKeyspace>,
) -> Result<Response, Problem> {
    admin.require("keyspaces:write")?;
    let req = NewKeyspace {
        name: b.name,
        prefix: b.prefix,
        scopes: b.scopes,
        default_scopes: b.default_scopes,
        rate_limit: b.rate_limit,
        default_ttl: duration("default_ttl", b.default_ttl.as_deref())?,
        max_ttl: duration("max_ttl", b.max_ttl.as_deref())?,
    };
    let ks = state.authority().create_keyspace(req).await?;
    Ok((StatusCode::CREATED, Json(ks)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/keyspaces",
    operation_id = "keyspaces_list",
    responses(
        (status = 200, body = Vec<KeyspaceView>),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keyspaces:read"])),
    tag = "keyspaces"
)]
/// List keyspaces.
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, Problem> {
    admin.require("keyspaces:read")?;
    Ok(Json(state.authority().list_keyspaces().await?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/keyspaces/{id}",
    operation_id = "keyspaces_show",
    params(("id" = String, Path, description = "keyspace id or name")),
    responses(
        (status = 200, body = KeyspaceView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown keyspace", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keyspaces:read"])),
    tag = "keyspaces"
)]
/// Show a keyspace (by id or name).
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keyspaces:read")?;
    Ok(Json(state.authority().get_keyspace(&id).await?).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/keyspaces/{id}",
    operation_id = "keyspaces_patch",
    params(("id" = String, Path, description = "keyspace id or name")),
    request_body = PatchKeyspace,
    responses(
        (status = 200, body = KeyspaceView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keyspaces:write"])),
    tag = "keyspaces"
)]
/// Change a keyspace's scopes, defaults and lifetimes.
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PatchKeyspace>,
) -> Result<Response, Problem> {
    admin.require("keyspaces:write")?;
    let opt_dur = |field, v: Option<Option<String>>| -> Result<_, Problem> {
        v.map(|inner| duration(field, inner.as_deref())).transpose()
    };
    let u = KeyspaceUpdate {
        scopes: b.scopes,
        default_scopes: b.default_scopes,
        rate_limit: b.rate_limit,
        default_ttl: opt_dur("default_ttl", b.default_ttl)?,
        max_ttl: opt_dur("max_ttl", b.max_ttl)?,
    };
    Ok(Json(state.authority().update_keyspace(&id, u).await?).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/keyspaces/{id}",
    operation_id = "keyspaces_delete",
    params(("id" = String, Path, description = "keyspace id or name")),
    responses(
        (status = 204, body = ()),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the keyspace still holds keys", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["keyspaces:write"])),
    tag = "keyspaces"
)]
/// Delete an empty keyspace.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keyspaces:write")?;
    state.authority().delete_keyspace(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
