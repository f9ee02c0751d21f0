//! Typed identifiers. A client id is public (it travels in Basic auth and tokens);
//! token ids are the `jti` of JWTs and the handle of opaque tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not a valid identifier of this kind.
    #[error("invalid {kind}: {value:?}")]
    Invalid {
        /// Which kind of identifier.
        kind: &'static str,
        /// The offending text (identifiers are never secret).
        value: String,
    },
}

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident, $kind:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one spelling per id.
                if s.len() != 36 {
                    return Err(IdError::Invalid { kind: $kind, value: truncate(s) });
                }
                uuid::Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdError::Invalid { kind: $kind, value: truncate(s) })
            }
        }
    };
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

uuid_id!(
    /// An OAuth client's public identifier.
    ClientId,
    "client id"
);
uuid_id!(
    /// A token's unique id: the JWT `jti`, or the handle of an opaque token.
    TokenId,
    "token id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = ClientId::new();
        assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
    }

    #[test]
    fn non_canonical_ids_are_refused() {
        for bad in [
            "",
            "nope",
            "67e55044-10b1-426f-9247-bb680e5fe0c8x",
            "67e5504410b1426f9247bb680e5fe0c8",
        ] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad}");
        }
    }
}
