//! The admin REST API under `/api/v1`: bearer admin tokens with scopes, JSON in,
//! JSON out, errors as RFC 9457 problem+json. Every handler names the scope it
//! needs before doing anything.

pub mod keys;
pub mod keyspaces;

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
