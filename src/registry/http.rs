//! HTTP helpers shared by the registry client and the token flow: what a
//! transport failure means, whose origin a URL has, registry error bodies.

use crate::error::NetworkKind;

/// What kind of failure a transport error is. Only
/// [`NetworkKind::Transfer`] (a refused or broken connection, a timeout)
/// may go away by itself and is retried; an unknown host or a rejected
/// certificate is a setting to fix. ureq hands both of those over inside
/// I/O errors whose types it does not export (std's resolver error, rustls'
/// error), so they are told apart here, once, by their messages.
pub(crate) fn kind_of(error: &ureq::Error) -> NetworkKind {
    match error {
        ureq::Error::HostNotFound => NetworkKind::HostNotFound,
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => NetworkKind::Tls,
        ureq::Error::Io(e) => {
            let text = e.to_string().to_ascii_lowercase();
            if text.contains("failed to lookup address") {
                NetworkKind::HostNotFound
            } else if text.contains("certificate") {
                NetworkKind::Tls
            } else {
                NetworkKind::Transfer
            }
        }
        _ => NetworkKind::Transfer,
    }
}

/// The host of an `http(s)://host[:port]/...` URL, without the port.
pub(crate) fn host_of(url: &str) -> String {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    host.to_ascii_lowercase()
}

/// Whether `url` has the scheme, host and port of `base` (an `http(s)://host[:port]`).
pub(crate) fn same_origin(base: &str, url: &str) -> bool {
    let origin = |u: &str| -> Option<String> {
        let (scheme, rest) = u.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit('@').next()?.to_ascii_lowercase();
        let scheme = scheme.to_ascii_lowercase();
        let default = if scheme == "https" { ":443" } else { ":80" };
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority
        } else {
            format!("{authority}{default}")
        };
        Some(format!("{scheme}://{with_port}"))
    };
    origin(base).is_some() && origin(base) == origin(url)
}

pub(crate) fn with_auth<B>(
    request: ureq::RequestBuilder<B>,
    auth: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match auth {
        Some(value) => request.header("Authorization", value),
        None => request,
    }
}

/// A `Location` made absolute: it may be absolute or relative.
#[cfg(feature = "producer")]
pub(crate) fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

/// The human message of a registry error body
/// (`{"errors":[{"code":…,"message":…,"detail":…}]}`), or a short excerpt.
pub(crate) fn registry_message(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(errors) = json.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errors
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let message = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {message}")
                })
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let trimmed: String = body.trim().chars().take(200).collect();
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_by_kind() {
        let io = |text: &str| ureq::Error::Io(std::io::Error::other(text.to_string()));
        assert_eq!(
            kind_of(&io(
                "failed to lookup address information: Name or service not known"
            )),
            NetworkKind::HostNotFound
        );
        assert_eq!(
            kind_of(&ureq::Error::HostNotFound),
            NetworkKind::HostNotFound
        );
        assert_eq!(
            kind_of(&io("invalid peer certificate: UnknownIssuer")),
            NetworkKind::Tls
        );
        assert_eq!(
            kind_of(&io("Connection refused (os error 111)")),
            NetworkKind::Transfer
        );
    }

    #[test]
    fn origins_are_compared_with_default_ports() {
        assert!(same_origin("https://h", "https://h:443/v2/x?y"));
        assert!(same_origin(
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/upload"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5001/upload"
        ));
        assert!(!same_origin("https://h", "http://h/v2"));
        assert!(!same_origin("https://h", "https://h.evil/v2"));
        assert!(!same_origin("https://h", "https://h@evil/v2"));
        assert!(same_origin("http://[::1]:5000", "http://[::1]:5000/v2"));
    }

    #[test]
    fn registry_messages_are_extracted() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(registry_message("plain text"), "plain text");
    }
}
