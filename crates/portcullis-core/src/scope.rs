//! OAuth 2.0 scopes (RFC 6749 §3.3): a scope is a token of printable ASCII other
//! than space, `"` and `\`; a scope list is tokens separated by single spaces.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest scope token we accept; longer ones are almost certainly abuse.
pub const MAX_SCOPE_LEN: usize = 128;
/// Most scopes in one set.
pub const MAX_SCOPES: usize = 64;

/// Why a scope or scope list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError {
    /// A token is empty, too long, or has a character RFC 6749 forbids.
    #[error("invalid scope {0:?}: a scope is 1 to 128 printable ASCII characters other than space, '\"' and '\\'")]
    InvalidToken(String),
    /// Two spaces in a row, or a leading or trailing space.
    #[error("invalid scope list: scopes are separated by single spaces")]
    BadSeparator,
    /// More scopes than [`MAX_SCOPES`].
    #[error("too many scopes: at most {MAX_SCOPES}")]
    TooMany,
}

/// One scope token, such as `read` or `devices:write`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

impl Scope {
    /// Parses one scope token.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ScopeError::InvalidToken(
                s.chars().take(MAX_SCOPE_LEN).collect(),
            ))
        }
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ordered, duplicate-free set of scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a space-separated list (the `scope` parameter). The empty string is the empty set.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.is_empty() {
            return Ok(Self::empty());
        }
        let mut set = BTreeSet::new();
        for tok in s.split(' ') {
            if tok.is_empty() {
                return Err(ScopeError::BadSeparator);
            }
            set.insert(Scope::parse(tok)?);
            if set.len() > MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
        }
        Ok(Self(set))
    }

    /// Builds a set from individual tokens (as the CLI's repeated `--scope` gives them).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: AsRef<str>>(
        tokens: I,
    ) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for t in tokens {
            set.insert(Scope::parse(t.as_ref())?);
            if set.len() > MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
        }
        Ok(Self(set))
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// True when the set holds no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
            first = false;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_scope_list_parses_sorted_and_deduplicated() {
        let s = ScopeSet::parse("write read read").expect("valid");
        assert_eq!(s.to_string(), "read write");
    }

    #[test]
    fn bad_scope_lists_are_refused() {
        assert_eq!(ScopeSet::parse("a  b"), Err(ScopeError::BadSeparator));
        assert_eq!(ScopeSet::parse(" a"), Err(ScopeError::BadSeparator));
        assert!(matches!(
            ScopeSet::parse("a\"b"),
            Err(ScopeError::InvalidToken(_))
        ));
        assert!(matches!(
            ScopeSet::parse("a\\b"),
            Err(ScopeError::InvalidToken(_))
        ));
        assert!(matches!(
            ScopeSet::parse("é"),
            Err(ScopeError::InvalidToken(_))
        ));
        let many = (0..=MAX_SCOPES)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(ScopeSet::parse(&many), Err(ScopeError::TooMany));
    }

    #[test]
    fn subset_is_what_oauth_needs() {
        let allowed = ScopeSet::parse("read write").expect("valid");
        assert!(ScopeSet::parse("read").expect("valid").is_subset(&allowed));
        assert!(ScopeSet::empty().is_subset(&allowed));
        assert!(!ScopeSet::parse("admin").expect("valid").is_subset(&allowed));
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(tokens in proptest::collection::vec("[a-z:._-]{1,12}", 0..10)) {
            let set = ScopeSet::from_tokens(&tokens).expect("valid tokens");
            prop_assert_eq!(ScopeSet::parse(&set.to_string()).expect("round trip"), set);
        }

        /// requested ⊆ allowed exactly when every requested scope is allowed; the
        /// relation is reflexive and transitive, and the empty set is below everything.
        #[test]
        fn subset_is_membership_and_an_order(
            a in proptest::collection::vec("[a-e]{1,2}", 0..6),
            b in proptest::collection::vec("[a-e]{1,2}", 0..6),
            c in proptest::collection::vec("[a-e]{1,2}", 0..6),
        ) {
            let (a, b, c) = (
                ScopeSet::from_tokens(&a).expect("a"),
                ScopeSet::from_tokens(&b).expect("b"),
                ScopeSet::from_tokens(&c).expect("c"),
            );
            prop_assert_eq!(a.is_subset(&b), a.iter().all(|s| b.contains(s.as_str())));
            prop_assert!(a.is_subset(&a));
            prop_assert!(ScopeSet::empty().is_subset(&a));
            if a.is_subset(&b) && b.is_subset(&c) {
                prop_assert!(a.is_subset(&c));
            }
            if a.is_subset(&b) && b.is_subset(&a) {
                prop_assert_eq!(a, b);
            }
        }
    }
}
