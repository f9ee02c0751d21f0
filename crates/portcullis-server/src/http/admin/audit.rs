//! `GET /api/v1/audit`: the audit trail, filtered, with cursor pagination.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::audit::AuditPage;
use portcullis_store::AuditFilter;
use serde::Deserialize;

use crate::admin_extract::{Admin, ApiQuery};
use crate::error::Problem;
use crate::state::AppState;

/// Filters. Times are RFC 3339 or an age (`24h`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// At or after this time.
    since: Option<String>,
    /// Before this time.
    until: Option<String>,
    /// Event type (`token.revoked`) or a prefix ending in `.` (`token.`).
    kind: Option<String>,
    /// `success`, `failure` or `refused`.
    outcome: Option<String>,
    /// Who acted (`admin:<id>`, `cli`, a client id, `user:<id>`).
    actor: Option<String>,
    /// Whom it concerns.
    subject: Option<String>,
    /// Credential id (token, key, PAT).
    credential_id: Option<String>,
    /// Client IP.
    ip: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// `asc` (default, oldest first) or `desc`.
    order: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "audit_list",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, description = "no valid admin token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid filter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("admin_token" = ["audit:read"])),
    tag = "audit"
)]
/// Read the audit trail.
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, Problem> {
    admin.require("audit:read")?;
    let auth = state.authority();
    let invalid = |field, message: &str| {
        Problem::from_service(portcullis_service::ServiceError::Invalid {
            field,
            message: message.into(),
        })
    };
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid("order", "must be asc or desc")),
    };
    if let Some(o) = q.outcome.as_deref() {
        if !matches!(o, "success" | "failure" | "refused") {
            return Err(invalid("outcome", "must be success, failure or refused"));
        }
    }
    let after_seq = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| invalid("cursor", "not a cursor from a previous page"))
        })
        .transpose()?;
    let filter = AuditFilter {
        after_seq,
        since_ms: q
            .since
            .as_deref()
            .map(|s| auth.parse_audit_time("since", s))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|s| auth.parse_audit_time("until", s))
            .transpose()?,
        kind: q.kind,
        outcome: q.outcome,
        actor: q.actor,
        subject: q.subject,
        credential_id: q.credential_id,
        ip: q.ip,
        limit: q.limit.unwrap_or(100),
        newest_first,
    };
    Ok(Json(auth.audit_page(filter).await?).into_response())
}
