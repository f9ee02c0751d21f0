//! `/api/v1/ip-blocks`: temporary denies of client networks (set by anomaly
//! response or by hand); each lifts itself at `expires_at`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::anomaly::IpBlockView;
use serde::Deserialize;

use super::duration;
use crate::admin_extract::{Admin, ApiJson};
use crate::error::Problem;
use crate::state::AppState;

/// `POST /api/v1/ip-blocks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBlock {
    /// An address or CIDR.
    network: String,
    /// Why (shown in the list and the audit trail).
    reason: String,
    /// How long, like `1h` or `7d`.
    duration: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/ip-blocks",
    operation_id = "ip_blocks_list",
    responses(
        (status = 200, body = Vec<IpBlockView>),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["ipblocks:read"])),
    tag = "ip-blocks"
)]
/// Denies in force.
pub async fn list(State(state): State<AppState>, admin: Admin) -> Result<Response, Problem> {
    admin.require("ipblocks:read")?;
    Ok(Json(state.authority().list_ip_blocks().await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/ip-blocks",
    operation_id = "ip_blocks_create",
    request_body = CreateBlock,
    responses(
        (status = 201, body = IpBlockView),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["ipblocks:write"])),
    tag = "ip-blocks"
)]
/// Deny a network for a while.
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(b): ApiJson<CreateBlock>,
) -> Result<Response, Problem> {
    admin.require("ipblocks:write")?;
    let d = duration("duration", Some(&b.duration))?.unwrap_or_default();
    let view = state.authority().block(&b.network, &b.reason, d).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/ip-blocks/{network}",
    operation_id = "ip_blocks_delete",
    params(("network" = String, Path, description = "address or CIDR, e.g. 203.0.113.0/24")),
    responses(
        (status = 204, body = ()),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such deny", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "not an address or CIDR", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["ipblocks:write"])),
    tag = "ip-blocks"
)]
/// Lift a deny.
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(network): Path<String>,
) -> Result<Response, Problem> {
    admin.require("ipblocks:write")?;
    state.authority().unblock_ip(&network).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
