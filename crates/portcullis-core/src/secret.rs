//! Opaque secrets: client secrets, opaque access tokens, refresh tokens, personal
//! access tokens and API keys all share one format (DESIGN.md §3):
//!
//! ```text
//! <prefix>_<44 base62 chars of 32 random bytes><6 base62 chars of CRC32 of everything before>
//! ```
//!
//! The checksum lets secret scanners (and our own endpoints) reject typos and
//! fabricated strings offline, before any database lookup. The secret itself
//! never leaves this type by accident: `Debug` is redacted and there is no
//! `Display`.

use std::fmt;

/// Client secret prefix. Never change: scanners and users rely on it.
pub const CLIENT_SECRET_PREFIX: &str = "pcs";
/// Opaque access token prefix. Never change.
pub const ACCESS_TOKEN_PREFIX: &str = "pcat";
/// Refresh token prefix. Never change.
pub const REFRESH_TOKEN_PREFIX: &str = "pcrt";
/// Personal access token prefix. Never change.
pub const PERSONAL_ACCESS_TOKEN_PREFIX: &str = "pcpat";
/// Admin API token prefix. Never change.
pub const ADMIN_TOKEN_PREFIX: &str = "pcadm";
/// Webhook signing secret prefix. Never change.
pub const WEBHOOK_SECRET_PREFIX: &str = "pcwhsec";
/// Authorization code prefix. Never change.
pub const AUTHORIZATION_CODE_PREFIX: &str = "pcac";
/// Browser session cookie prefix. Never change.
pub const SESSION_PREFIX: &str = "pcsess";

/// Prefixes Portcullis uses itself; a keyspace may not take one of them.
pub const RESERVED_PREFIXES: &[&str] = &[
    CLIENT_SECRET_PREFIX,
    ACCESS_TOKEN_PREFIX,
    REFRESH_TOKEN_PREFIX,
    PERSONAL_ACCESS_TOKEN_PREFIX,
    ADMIN_TOKEN_PREFIX,
    WEBHOOK_SECRET_PREFIX,
    AUTHORIZATION_CODE_PREFIX,
    SESSION_PREFIX,
];

const RANDOM_CHARS: usize = 44;
const CHECKSUM_CHARS: usize = 6;
const BODY_CHARS: usize = RANDOM_CHARS + CHECKSUM_CHARS;
/// Longest prefix we allow (keyspace prefixes are user-chosen).
pub const MAX_PREFIX_LEN: usize = 32;

/// A string that must never be logged or displayed: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text, for the few places that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Why a string is not a well-formed opaque secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The prefix is not the one expected here.
    #[error("wrong prefix: expected {expected}_")]
    WrongPrefix {
        /// The prefix this kind of secret has.
        expected: String,
    },
    /// Wrong length or a character outside base62.
    #[error("malformed secret")]
    Malformed,
    /// The CRC32 does not match: a typo or a forgery.
    #[error("secret checksum mismatch")]
    BadChecksum,
    /// The prefix itself is not acceptable for a new kind of secret.
    #[error("invalid prefix {0:?}: 1 to 32 characters a-z, 0-9 or '_', starting with a letter")]
    InvalidPrefix(String),
}

/// Checks that `prefix` can name a kind of secret (letters, digits, `_`; starts with a letter).
pub fn validate_prefix(prefix: &str) -> Result<(), FormatError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.as_bytes()[0].is_ascii_lowercase()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FormatError::InvalidPrefix(
            prefix.chars().take(MAX_PREFIX_LEN).collect(),
        ))
    }
}

fn checksum(head: &str) -> String {
    checksum_digits(head)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// The CRC32 of `head` as six base62 digits, zero-padded (what `pad62` writes for
/// it), on the stack: every presented secret is checked before any lookup.
fn checksum_digits(head: &str) -> [u8; CHECKSUM_CHARS] {
    base62_digits(crc32fast::hash(head.as_bytes()))
}

/// `n` in six base62 digits, zero-padded, in the `base62` crate's alphabet.
fn base62_digits(mut n: u32) -> [u8; CHECKSUM_CHARS] {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; CHECKSUM_CHARS];
    for d in out.iter_mut().rev() {
        // 62^6 > 2^32: six digits hold any CRC32.
        *d = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn pad62(n: u128, width: usize) -> String {
    let s = base62::encode(n);
    format!("{s:0>width$}")
}

/// A well-formed opaque secret (generated here, or parsed and checksum-verified).
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueSecret {
    text: SecretString,
    prefix_len: usize,
}

impl OpaqueSecret {
    /// A fresh secret with 256 bits from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the prefix is invalid (prefixes are constants or validated keyspace prefixes),
    /// or the system's random generator fails.
    pub fn generate(prefix: &str) -> Self {
        assert!(validate_prefix(prefix).is_ok(), "invalid secret prefix");
        let mut bytes = [0u8; 32];
        #[expect(
            clippy::expect_used,
            reason = "a failing OS CSPRNG leaves nothing safe to do"
        )]
        aws_lc_rs::rand::fill(&mut bytes).expect("system random generator failed");
        let (hi, lo) = bytes.split_at(16);
        let hi = u128::from_be_bytes(hi.try_into().unwrap_or_default());
        let lo = u128::from_be_bytes(lo.try_into().unwrap_or_default());
        let head = format!("{prefix}_{}{}", pad62(hi, 22), pad62(lo, 22));
        let text = format!("{head}{}", checksum(&head));
        Self {
            text: SecretString(text),
            prefix_len: prefix.len(),
        }
    }

    /// Parses a presented secret, which must carry `expected_prefix` and a valid checksum.
    pub fn parse(s: &str, expected_prefix: &str) -> Result<Self, FormatError> {
        let wrong = || FormatError::WrongPrefix {
            expected: expected_prefix.to_owned(),
        };
        let rest = s.strip_prefix(expected_prefix).ok_or_else(wrong)?;
        let body = rest.strip_prefix('_').ok_or_else(wrong)?;
        Self::check_body(s, body)?;
        Ok(Self {
            text: SecretString(s.to_owned()),
            prefix_len: expected_prefix.len(),
        })
    }

    /// Parses a secret of any valid prefix: the prefix is everything before the final
    /// fixed-length body. Used where several kinds are accepted (introspection).
    pub fn parse_any(s: &str) -> Result<Self, FormatError> {
        if s.len() < BODY_CHARS + 2 || !s.is_ascii() {
            return Err(FormatError::Malformed);
        }
        let (head, body) = s.split_at(s.len() - BODY_CHARS);
        let prefix = head.strip_suffix('_').ok_or(FormatError::Malformed)?;
        validate_prefix(prefix).map_err(|_| FormatError::Malformed)?;
        Self::check_body(s, body)?;
        Ok(Self {
            text: SecretString(s.to_owned()),
            prefix_len: prefix.len(),
        })
    }

    fn check_body(whole: &str, body: &str) -> Result<(), FormatError> {
        if body.len() != BODY_CHARS || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FormatError::Malformed);
        }
        let (head, sum) = whole.split_at(whole.len() - CHECKSUM_CHARS);
        if checksum_digits(head) != sum.as_bytes() {
            return Err(FormatError::BadChecksum);
        }
        Ok(())
    }

    /// The kind prefix (`pcs`, `pcat`, a keyspace prefix …), without the `_`.
    pub fn prefix(&self) -> &str {
        &self.text.expose()[..self.prefix_len]
    }

    /// A safe display hint: the prefix and the last four characters.
    pub fn hint(&self) -> String {
        let t = self.text.expose();
        format!("{}_…{}", self.prefix(), &t[t.len() - 4..])
    }

    /// The secret text, for the one response that shows it and for hashing.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }
}

impl fmt::Debug for OpaqueSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueSecret({}_[redacted])", self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The checksum digits written on the stack are the ones `pad62` (the
        /// `base62` crate) writes, so every secret issued before still parses.
        #[test]
        fn checksum_digits_are_the_base62_crates(n in any::<u32>()) {
            let ours = base62_digits(n);
            let theirs = pad62(u128::from(n), CHECKSUM_CHARS);
            prop_assert_eq!(std::str::from_utf8(&ours).ok(), Some(theirs.as_str()));
        }
    }

    #[test]
    fn checksum_digits_at_the_edges_of_a_crc32() {
        for n in [0, 1, 61, 62, 62 * 62 - 1, u32::MAX - 1, u32::MAX] {
            assert_eq!(
                std::str::from_utf8(&base62_digits(n)).ok(),
                Some(pad62(u128::from(n), CHECKSUM_CHARS).as_str()),
                "{n}"
            );
        }
    }

    #[test]
    fn a_generated_secret_has_the_documented_shape() {
        let s = OpaqueSecret::generate(CLIENT_SECRET_PREFIX);
        let t = s.expose();
        assert!(t.starts_with("pcs_"));
        assert_eq!(t.len(), 4 + BODY_CHARS);
        assert_eq!(OpaqueSecret::parse(t, "pcs"), Ok(s.clone()));
        assert_eq!(
            OpaqueSecret::parse_any(t).map(|p| p.prefix().to_owned()),
            Ok("pcs".to_owned())
        );
        assert_ne!(
            OpaqueSecret::generate("pcs").expose(),
            t,
            "two secrets differ"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = OpaqueSecret::generate("pcat");
        let dbg = format!("{s:?} {:?}", SecretString::new(s.expose()));
        assert!(!dbg.contains(&s.expose()[5..]), "{dbg}");
    }

    #[test]
    fn keyspace_style_prefixes_with_underscores_work() {
        let s = OpaqueSecret::generate("acme_live");
        assert_eq!(
            OpaqueSecret::parse_any(s.expose()).map(|p| p.prefix().to_owned()),
            Ok("acme_live".into())
        );
        assert!(s.hint().starts_with("acme_live_…"));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        let good = OpaqueSecret::generate("pcs");
        let t = good.expose();
        assert!(matches!(
            OpaqueSecret::parse(t, "pcat"),
            Err(FormatError::WrongPrefix { .. })
        ));
        assert_eq!(
            OpaqueSecret::parse(&t[..t.len() - 1], "pcs"),
            Err(FormatError::Malformed)
        );
        assert_eq!(
            OpaqueSecret::parse(&format!("{t}x"), "pcs"),
            Err(FormatError::Malformed)
        );
        assert!(OpaqueSecret::parse(&t.replace('_', "-"), "pcs").is_err());
        assert_eq!(
            OpaqueSecret::parse_any("short"),
            Err(FormatError::Malformed)
        );
        assert!(validate_prefix("Bad").is_err());
        assert!(validate_prefix("9x").is_err());
        assert!(validate_prefix("").is_err());
    }

    proptest! {
        #[test]
        fn any_single_character_change_is_detected(pos in 4usize..54, replacement in "[0-9A-Za-z]") {
            let s = OpaqueSecret::generate("pcs");
            let mut chars: Vec<char> = s.expose().chars().collect();
            let r = replacement.chars().next().unwrap_or('0');
            prop_assume!(chars[pos] != r);
            chars[pos] = r;
            let changed: String = chars.into_iter().collect();
            prop_assert!(OpaqueSecret::parse(&changed, "pcs").is_err());
        }

        #[test]
        fn every_generated_secret_parses_back_to_itself(prefix in "[a-z][a-z0-9]{1,8}(_[a-z0-9]{1,6})?") {
            prop_assume!(validate_prefix(&prefix).is_ok());
            let s = OpaqueSecret::generate(&prefix);
            let parsed = OpaqueSecret::parse(s.expose(), &prefix).expect("round trip");
            prop_assert_eq!(parsed.expose(), s.expose());
            let any = OpaqueSecret::parse_any(s.expose()).expect("any prefix");
            prop_assert_eq!(any.expose(), s.expose());
            // The hint never shows the random part.
            prop_assert!(!s.hint().contains(&s.expose()[prefix.len() + 1..prefix.len() + 40]));
        }

        #[test]
        fn a_dropped_or_added_character_is_detected(pos in 4usize..54, extra in "[0-9A-Za-z]") {
            let s = OpaqueSecret::generate("pcs");
            let mut dropped: Vec<char> = s.expose().chars().collect();
            dropped.remove(pos);
            let dropped: String = dropped.into_iter().collect();
            prop_assert!(OpaqueSecret::parse(&dropped, "pcs").is_err());
            let mut added: Vec<char> = s.expose().chars().collect();
            added.insert(pos, extra.chars().next().unwrap_or('0'));
            let added: String = added.into_iter().collect();
            prop_assert!(OpaqueSecret::parse(&added, "pcs").is_err());
        }
    }
}
