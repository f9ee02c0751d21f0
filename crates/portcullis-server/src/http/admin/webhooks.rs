//! `/api/v1/webhooks`: subscriptions to audit events, and their delivery log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::webhooks::{CreatedWebhook, DeliveryAttempt, WebhookView};
use serde::Deserialize;

use crate::admin_extract::{Admin, ApiJson, ApiQuery};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/webhooks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST events (http or https).
    url: String,
    /// Event types (`token.revoked`), prefixes (`anomaly.`) or `*`.
    events: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "webhooks_create",
    request_body = CreateWebhook,
    responses(
        (status = 201, body = CreatedWebhook, description = "the signing secret is shown once"),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["webhooks:write"])),
    tag = "webhooks"
)]
/// Subscribe a URL to audit events.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<CreateWebhook>,
) -> Result<Response, Problem> {
    admin.require("webhooks:write")?;
    let created = state.authority().create_webhook(&b.url, &b.events).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "webhooks_list",
    responses(
        (status = 200, body = Vec<WebhookView>),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["webhooks:read"])),
    tag = "webhooks"
)]
/// List subscriptions (never their secrets).
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, Problem> {
    admin.require("webhooks:read")?;
    Ok(Json(state.authority().list_webhooks().await?).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    operation_id = "webhooks_delete",
    params(("id" = String, Path, description = "webhook id")),
    responses(
        (status = 204, body = ()),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown webhook", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["webhooks:write"])),
    tag = "webhooks"
)]
/// Delete a subscription and its pending deliveries.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    admin.require("webhooks:write")?;
    state.authority().delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Delivery log query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// Most attempts returned, 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    operation_id = "webhooks_deliveries",
    params(("id" = String, Path, description = "webhook id"), AttemptsQuery),
    responses(
        (status = 200, body = Vec<DeliveryAttempt>, description = "newest first"),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown webhook", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["webhooks:read"])),
    tag = "webhooks"
)]
/// The delivery log of a subscription: every attempt, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AttemptsQuery>,
) -> Result<Response, Problem> {
    admin.require("webhooks:read")?;
    Ok(Json(
        state
            .authority()
            .webhook_attempts(&id, q.limit.unwrap_or(100))
            .await?,
    )
    .into_response())
}
