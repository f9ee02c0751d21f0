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
    /// Initial password (at least 8 characters); stored only as an Argon2id hash.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<String>,
    /// Require MFA at every sign-in.
    #[serde(default)]
    mfa_required: bool,
}

/// `PATCH /api/v1/users/{id}` body: fields left out stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New email; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    roles: Option<Vec<String>>,
    /// `false` disables the user and revokes everything they hold.
    enabled: Option<bool>,
    mfa_required: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `PUT /api/v1/users/{id}/password` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The new password; every session, refresh token, access token and PAT of the user is revoked.
    #[schema(format = Password)]
    password: String,
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
            password: b.password.map(portcullis_core::secret::SecretString::new),
            mfa_required: b.mfa_required,
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

/// All users.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    operation_id = "users_list",
    responses(
        (status = 200, body = [UserView]),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:read"])),
    tag = "users"
)]
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, Problem> {
    admin.require("users:read")?;
    Ok(Json(state.authority().list_users().await?).into_response())
}

/// Change a user's email, roles, enabled flag or MFA requirement. Disabling
/// revokes every session and token of the user at once.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    operation_id = "users_update",
    params(("id" = String, Path, description = "user id or username")),
    request_body = UpdateUser,
    responses(
        (status = 200, body = UserView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateUser>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    let u = state
        .authority()
        .update_user(
            &id,
            portcullis_service::users::UserUpdate {
                email: b.email,
                roles: b.roles,
                mfa_required: b.mfa_required,
                enabled: b.enabled,
            },
        )
        .await?;
    Ok(Json(u).into_response())
}

/// Set a user's password; revokes every session and token of the user.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}/password",
    operation_id = "users_set_password",
    params(("id" = String, Path, description = "user id or username")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "password set; everything the user held is revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "password outside the policy", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn set_password(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SetPassword>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    state
        .authority()
        .set_password(&id, &portcullis_core::secret::SecretString::new(b.password))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Remove a user's authenticator and recovery codes (they enrol again at next sign-in if MFA is required).
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/mfa/reset",
    operation_id = "users_reset_mfa",
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 204, description = "authenticator removed; sessions and tokens revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn reset_mfa(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    state.authority().reset_mfa(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Delete a user, after revoking everything they hold.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    operation_id = "users_delete",
    params(("id" = String, Path, description = "user id or username")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown user", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["users:write"])),
    tag = "users"
)]
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("users:write")?;
    state.authority().delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
