//! `/api/v1/keyspaces`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::apikeys::{KeyspaceUpdate, NewKeyspace};
use serde::Deserialize;

use super::{double_option, duration};
use crate::admin_extract::{Admin, ApiJson};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/keyspaces` body.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchKeyspace {
    scopes: Option<Vec<String>>,
    default_scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    rate_limit: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    default_ttl: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    max_ttl: Option<Option<String>>,
}

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

/// List keyspaces.
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, Problem> {
    admin.require("keyspaces:read")?;
    Ok(Json(state.authority().list_keyspaces().await?).into_response())
}

/// Show a keyspace (by id or name).
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("keyspaces:read")?;
    Ok(Json(state.authority().get_keyspace(&id).await?).into_response())
}

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
