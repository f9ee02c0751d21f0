//! The admin REST API under `/api/v1`: bearer admin tokens with scopes, JSON in,
//! JSON out, errors as RFC 9457 problem+json. Every handler names the scope it
//! needs before doing anything.

pub mod audit;
pub mod ip_blocks;
pub mod keys;
pub mod keyspaces;
pub mod users;
pub mod webhooks;

use std::time::Duration;

use portcullis_core::duration::parse_duration;
use serde::{Deserialize, Deserializer};

use crate::error::Problem;

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))` (for PATCH bodies).
pub(crate) fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Parses an optional duration member such as `"90d"`, naming the member on error.
pub(crate) fn duration(field: &'static str, s: Option<&str>) -> Result<Option<Duration>, Problem> {
    s.map(parse_duration).transpose().map_err(|e| {
        Problem::from_service(portcullis_service::ServiceError::Invalid {
            field,
            message: e.to_string(),
        })
    })
}

/// The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Portcullis admin API", description = "Keyspaces, API keys, key verification, users and tokens, and the audit trail. Errors are RFC 9457 problem+json."),
    paths(
        keyspaces::create, keyspaces::list, keyspaces::show, keyspaces::patch, keyspaces::delete,
        keys::create, keys::list, keys::show, keys::patch, keys::revoke, keys::verify, keys::roll, keys::usage, keys::leaked, keys::delete,
        users::create, users::list, users::update, users::set_password, users::reset_mfa, users::delete, users::show, users::create_token, users::list_tokens, users::revoke_all, users::revoke_token,
        users::my_tokens, users::revoke_my_token,
        audit::list,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::deliveries,
        ip_blocks::list, ip_blocks::create, ip_blocks::delete,
    ),
    modifiers(&AdminTokenScheme, &CommonErrors)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct AdminTokenScheme;

impl utoipa::Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin token (pcadm_…) from `portcullis admin-token create`",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "personal_access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of the caller's own personal access tokens (pcpat_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The problem+json answers every operation can give, added where an operation does
/// not list them itself: 400 (malformed JSON or query), 503 (database unreachable);
/// with a path parameter or a body 404; with a body 409, 413, 415 and 422. Found
/// missing by schemathesis (`st run …/openapi.json`), which checks that every status
/// the server sends is documented.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let has_path_param = op.parameters.as_ref().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| matches!(p.parameter_in, ParameterIn::Path))
                });
                let has_body = op.request_body.is_some();
                let mut add = |code: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| problem(description));
                };
                add(
                    "400",
                    "malformed request: JSON syntax, or a query parameter",
                );
                add("503", "the database is unreachable");
                if has_path_param || has_body {
                    add(
                        "404",
                        "no such resource (in the path, or named by the body)",
                    );
                }
                if has_body {
                    add(
                        "409",
                        "conflicts with the current state (a name or prefix taken)",
                    );
                    add("413", "body over server.max_body_bytes");
                    add("415", "body is not application/json");
                    add("422", "invalid input (the problem names the field)");
                }
            }
        }
    }
}

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<ApiDoc as utoipa::OpenApi>::openapi())
}
