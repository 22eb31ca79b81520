//! Limits on a JWT-SVID's audience, checked wherever an audience arrives from a peer: the
//! Workload API, the agent's Delegated Identity API and the server's `NewJWTSVID` /
//! `MintJWTSVID`.
//!
//! SPIRE has no such limits. sigil adds them because an audience is copied into the token,
//! into the agent's JWT-SVID cache key and into the server's signing input: without a limit
//! any workload with an identity makes the agent and the server hold and sign megabytes per
//! call. Audiences are service names and URLs; the limits are far above any real one (see
//! ARCHITECTURE.md, "Audience limits").

/// Most audiences one JWT-SVID may name.
pub const MAX_AUDIENCES: usize = 32;

/// Longest single audience, in bytes: twice an already unusually long URL (2,048 characters).
pub const MAX_AUDIENCE_BYTES: usize = 4096;

/// Most bytes all audiences of one JWT-SVID may have together. The token carries them
/// base64-encoded; a larger one would not fit the 8–16 KiB header limits of common HTTP
/// servers and proxies anyway.
pub const MAX_AUDIENCE_TOTAL_BYTES: usize = 8192;

/// An audience over one of the limits. The message names the limit and the value found, never
/// the audience itself (a peer's megabytes are not echoed back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// More than [`MAX_AUDIENCES`] audiences.
    #[error("audience: {count} audiences given, at most {MAX_AUDIENCES} are allowed")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// One audience longer than [`MAX_AUDIENCE_BYTES`].
    #[error(
        "audience[{index}]: {bytes} bytes, at most {MAX_AUDIENCE_BYTES} bytes per audience are allowed"
    )]
    TooLong {
        /// The position of the audience in the request.
        index: usize,
        /// Its length in bytes.
        bytes: usize,
    },
    /// All audiences together longer than [`MAX_AUDIENCE_TOTAL_BYTES`].
    #[error(
        "audience: {bytes} bytes in total, at most {MAX_AUDIENCE_TOTAL_BYTES} bytes are allowed"
    )]
    TooLarge {
        /// The total length in bytes.
        bytes: usize,
    },
}

/// Checks `audience` against the limits. An empty list is the caller's to refuse (each API
/// words that error its own way).
pub fn check_audience<S: AsRef<str>>(audience: &[S]) -> Result<(), AudienceError> {
    if audience.len() > MAX_AUDIENCES {
        return Err(AudienceError::TooMany {
            count: audience.len(),
        });
    }
    let mut total: usize = 0;
    for (index, one) in audience.iter().enumerate() {
        let bytes = one.as_ref().len();
        if bytes > MAX_AUDIENCE_BYTES {
            return Err(AudienceError::TooLong { index, bytes });
        }
        total = total.saturating_add(bytes);
    }
    if total > MAX_AUDIENCE_TOTAL_BYTES {
        return Err(AudienceError::TooLarge { bytes: total });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_at_the_limits_pass_and_one_byte_more_is_refused() {
        let at_count = vec!["svc"; MAX_AUDIENCES];
        assert_eq!(check_audience(&at_count), Ok(()));
        let over_count = vec!["svc"; MAX_AUDIENCES + 1];
        assert_eq!(
            check_audience(&over_count),
            Err(AudienceError::TooMany { count: 33 })
        );

        let longest = "a".repeat(MAX_AUDIENCE_BYTES);
        assert_eq!(check_audience(&[longest.as_str()]), Ok(()));
        let too_long = "a".repeat(MAX_AUDIENCE_BYTES + 1);
        let refused = check_audience(&["ok", too_long.as_str()]);
        assert_eq!(
            refused,
            Err(AudienceError::TooLong {
                index: 1,
                bytes: 4097
            })
        );
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("4097") && message.contains("4096"),
            "{message}"
        );

        let half = "a".repeat(MAX_AUDIENCE_TOTAL_BYTES / 2);
        assert_eq!(check_audience(&[half.as_str(), half.as_str()]), Ok(()));
        let refused = check_audience(&[half.as_str(), half.as_str(), "x"]);
        assert_eq!(refused, Err(AudienceError::TooLarge { bytes: 8193 }));
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("8193") && message.contains("8192"),
            "{message}"
        );
    }

    #[test]
    fn a_megabyte_audience_is_not_echoed() {
        let huge = "z".repeat(1 << 20);
        let message = check_audience(&[huge])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.len() < 200, "{message}");
    }
}
