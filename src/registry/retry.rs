//! When and how long to wait before trying a request again.
//!
//! Transfer failures ([`crate::error::NetworkKind::Transfer`]: refused,
//! broken or stalled connections), HTTP 5xx and HTTP 429 are retried, [`MAX_ATTEMPTS`]
//! attempts in all, with exponential backoff (0.25 s, 0.5 s, 1 s, ±50 %
//! jitter) or the server's `Retry-After` (at most [`MAX_RETRY_AFTER`]). A
//! download broken midway resumes with `Range` up to [`MAX_RESUMES`] times.

use std::time::Duration;

/// Attempts per request, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 4;
/// Times a broken download is resumed.
pub(crate) const MAX_RESUMES: u32 = 4;
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Whether a response status is worth another attempt.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub(crate) fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// How long to wait after failed attempt number `attempt` (1-based).
pub(crate) fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after;
    }
    let base = Duration::from_millis(250) * 2u32.saturating_pow(attempt.saturating_sub(1).min(6));
    // Jitter in [0.5, 1.5) from the clock: enough to spread concurrent builds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for attempt in 1..=3 {
            let d = backoff(attempt, None);
            let base = 250u64 << (attempt - 1);
            assert!(d >= Duration::from_millis(base / 2), "{d:?}");
            assert!(d < Duration::from_millis(base * 3 / 2), "{d:?}");
        }
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        let mut headers = ureq::http::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after", "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        assert!(retryable_status(503) && retryable_status(429) && !retryable_status(404));
    }
}
