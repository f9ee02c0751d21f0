//! `/api/v1/users` (minimal users) and their personal access tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::pats::{CreatedPat, NewUser, PatLifetime, PatView, UserView};
use serde::Deserialize;
use serde_json::json;

use super::duration;
use crate::admin_extract::{Admin, ApiJson, Me};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /api/v1/users/{id}/tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// Like `30d`, or `never` where policy allows; default: the policy maximum.
    expires_in: Option<String>,
}

/// Create a user.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    operation_id = "users_create",
    request_body = CreateUser,
    responses(
        (status = 201, body = UserView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    let u = state
        .authority()
        .create_user(NewUser {
            username: b.username,
            email: b.email,
            roles: b.roles,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(u)).into_response())
}

/// Show a user (id or username).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    operation_id = "users_show",
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 200, body = UserView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:read"])),
    tag = "users"
)]
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:read")?;
    Ok(Json(state.authority().get_user(&id).await?).into_response())
}

/// Create a personal access token for a user; shown once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/tokens",
    operation_id = "users_create_token",
    params(("id" = String, Path, description = "user id or username")),
    request_body = CreateToken,
    responses(
        (status = 201, body = CreatedPat),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "scope outside the user's roles, or lifetime beyond policy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn create_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CreateToken>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    let lifetime = match b.expires_in.as_deref() {
        None => PatLifetime::Default,
        Some("never") => PatLifetime::Never,
        Some(d) => PatLifetime::For(duration("expires_in", Some(d))?.unwrap_or_default()),
    };
    let t = state
        .authority()
        .create_pat(&id, &b.name, &b.scopes, lifetime)
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// A user's personal access tokens (never the tokens).
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/tokens",
    operation_id = "users_list_tokens",
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 200, body = Vec<PatView>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:read"])),
    tag = "users"
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:read")?;
    Ok(Json(state.authority().list_pats(&id).await?).into_response())
}

/// Offboarding: revoke every personal access token of a user, at once.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/tokens/revoke-all",
    operation_id = "users_revoke_all_tokens",
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 200, description = "how many were revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn revoke_all(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    let n = state.authority().revoke_all_pats(&id).await?;
    Ok(Json(json!({"revoked": n})).into_response())
}

/// Revoke one personal access token.
#[utoipa::path(
    post,
    path = "/api/v1/tokens/{id}/revoke",
    operation_id = "tokens_revoke",
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 200, body = PatView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    Ok(Json(state.authority().revoke_pat(&id).await?).into_response())
}

/// Self-service: the caller's own personal access tokens (authenticated by one of them).
#[utoipa::path(
    get,
    path = "/api/v1/me/tokens",
    operation_id = "me_list_tokens",
    responses(
        (status = 200, body = Vec<PatView>),
        (status = 401, description = "no live personal access token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("personal_access_token" = [])),
    tag = "self-service"
)]
pub async fn my_tokens(State(state): State<AppState>, me: Me) -> Result<Response, Problem> {
    Ok(Json(state.authority().list_pats(&me.0.user_id).await?).into_response())
}

/// Self-service: revoke one of the caller's own tokens.
#[utoipa::path(
    post,
    path = "/api/v1/me/tokens/{id}/revoke",
    operation_id = "me_revoke_token",
    params(("id" = String, Path, description = "token id")),
    responses(
        (status = 200, body = PatView),
        (status = 401, description = "no live personal access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown token, or another user's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("personal_access_token" = [])),
    tag = "self-service"
)]
pub async fn revoke_my_token(
    State(state): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(Json(state.authority().revoke_own_pat(&me.0, &id).await?).into_response())
}
