//! Human durations as the CLI and config files write them: `30s`, `15m`, `12h`, `90d`.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationError {
    /// Not of the form `<number><unit>`.
    #[error("invalid duration {0:?}: expected a number and a unit, like 30s, 15m, 12h or 90d")]
    Invalid(String),
    /// Zero is never a useful lifetime or interval.
    #[error("invalid duration {0:?}: must be greater than zero")]
    Zero(String),
}

/// Parses `30s`, `15m`, `12h`, `90d` (and anything `humantime` reads, like `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let d =
        humantime::parse_duration(s.trim()).map_err(|_| DurationError::Invalid(s.to_owned()))?;
    if d.is_zero() {
        return Err(DurationError::Zero(s.to_owned()));
    }
    Ok(d)
}

/// Formats a duration compactly (`15m`, `90d`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= n && s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_units_parse() {
        for (input, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("12h", 43_200),
            ("90d", 7_776_000),
        ] {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
            assert_eq!(format_duration(Duration::from_secs(secs)), input);
        }
    }

    #[test]
    fn garbage_and_zero_are_refused() {
        assert!(matches!(
            parse_duration("soon"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("15"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("-5m"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(parse_duration("0s"), Err(DurationError::Zero(_))));
    }
}
