//! `WWW-Authenticate` challenges and the Bearer-token flow of the
//! distribution spec.

use crate::error::{Error, Result};
use crate::registry::credentials::Credential;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-cased scheme, e.g. `bearer` or `basic`.
    pub scheme: String,
    /// Parameters in order, names lower-cased.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value into its challenges (RFC 9110 §11.6.1):
/// quoted values may hold commas, several challenges may follow each other.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=') {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        // Look past spaces for '=' to tell a parameter from a new scheme.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    let ch_len = header[i..].chars().next().map_or(1, char::len_utf8);
                    v.push_str(&header[i..i + ch_len]);
                    i += ch_len;
                }
                i += 1; // closing quote
                v
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.params.push((word.to_ascii_lowercase(), value));
            }
        } else if !word.is_empty() {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        } else {
            i += 1;
        }
    }
    out
}

/// A token from a token server, and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub expires: std::time::Instant,
}

/// Asks the token server named by a Bearer challenge for a token with `scope`,
/// with `credential` if given (Basic auth for a user name and password; the
/// OAuth2 refresh-token grant for an identity token), anonymously otherwise.
/// A refusal (401/403) is `Ok(None)`.
pub(crate) fn fetch_token(
    agent: &ureq::Agent,
    challenge: &Challenge,
    scope: &str,
    registry: &str,
    credential: Option<&Credential>,
    allow_http: Option<&str>,
) -> Result<Option<Token>> {
    let action = format!("getting an access token for {registry}");
    let realm = challenge.param("realm").ok_or_else(|| Error::Registry {
        action: action.clone(),
        status: 401,
        message: "the Bearer challenge names no token realm".into(),
    })?;
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        return Err(Error::Registry {
            action,
            status: 401,
            message: format!("the token realm `{realm}` is not an http(s) URL"),
        });
    }
    let plain_ok = allow_http.is_some_and(|host| crate::registry::http::host_of(realm) == host);
    if realm.starts_with("http://") && !plain_ok {
        return Err(Error::refused(
            format!("the token realm of {registry}"),
            format!(
                "the registry sends clients to `{realm}`, plain HTTP on another host than an \
                 HTTPS or plain-HTTP registry's own, for tokens: credentials would travel in \
                 clear text to another host"
            ),
            "ask the registry's operator to serve the token realm over HTTPS; if the registry \
             really is plain HTTP, say so with `plain_http: true` in the registry \
             configuration (OCIPKG_CONFIG)",
        ));
    }
    let service = challenge.param("service");
    // Prefer the scope the registry asked for; it may differ from ours.
    let scope = challenge.param("scope").unwrap_or(scope);
    let mut secrets: Vec<String> = Vec::new();
    if let Some(c) = credential {
        secrets.push(c.secret.clone());
        if let Some(basic) = c.basic() {
            secrets.push(basic.trim_start_matches("Basic ").to_string());
        }
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let network = |e: ureq::Error| {
        let kind = crate::registry::http::kind_of(&e);
        let detail = scrub(&e.to_string(), &secrets);
        Error::network_from(action.clone(), kind, detail, e)
    };
    let mut response = match credential {
        Some(c) if c.username.is_none() => {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("client_id", "ocipkg"),
                ("refresh_token", c.secret.as_str()),
                ("scope", scope),
            ];
            if let Some(service) = service {
                form.push(("service", service));
            }
            agent.post(realm).send_form(form).map_err(network)?
        }
        _ => {
            let mut request = agent.get(realm);
            if let Some(service) = service {
                request = request.query("service", service);
            }
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                request = request.query("scope", s);
            }
            if let Some(basic) = credential.and_then(Credential::basic) {
                request = request.header("Authorization", basic);
            }
            request.call().map_err(network)?
        }
    };
    let status = response.status().as_u16();
    if status == 401 || status == 403 {
        return Ok(None);
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default();
    if status != 200 {
        return Err(Error::Registry {
            action,
            status,
            message: scrub(&crate::registry::http::registry_message(&body), &secrets),
        });
    }
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| Error::Registry {
        action: action.clone(),
        status,
        message: format!("the token server's answer is not JSON: {e}"),
    })?;
    let value = json
        .get("token")
        .or_else(|| json.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Registry {
            action,
            status,
            message: "the token server's answer has no `token` or `access_token`".into(),
        })?;
    // The spec's default lifetime is 60 s; renew a little early.
    let lifetime = json
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .filter(|&e| e > 0)
        .unwrap_or(60);
    let margin = (lifetime / 10).clamp(1, 30);
    Ok(Some(Token {
        value: value.to_string(),
        expires: std::time::Instant::now()
            + std::time::Duration::from_secs(lifetime.saturating_sub(margin)),
    }))
}

/// `text` with every secret, and whatever follows `Basic `/`Bearer `, masked.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(secret, "***");
    }
    for scheme in ["Basic ", "Bearer ", "basic ", "bearer "] {
        let mut masked = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(scheme) {
            masked.push_str(&rest[..i + scheme.len()]);
            rest = &rest[i + scheme.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';'))
                .unwrap_or(rest.len());
            if end > 0 {
                masked.push_str("***");
            }
            rest = &rest[end..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_scrubbed() {
        let text =
            "echo: Authorization: Basic dTpzZWNyZXRwdw== and password secretpw, Bearer abc.def";
        let clean = super::scrub(text, &["secretpw"]);
        assert!(
            !clean.contains("secretpw") && !clean.contains("dTpzZWNyZXRwdw"),
            "{clean}"
        );
        assert!(!clean.contains("abc.def"), "{clean}");
        assert!(clean.contains("Basic ***"), "{clean}");
    }

    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = parse_challenges(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://ghcr.io/token"));
        assert_eq!(c[0].param("service"), Some("ghcr.io"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn parses_several_challenges_case_insensitively() {
        let c = parse_challenges(r#"BASIC realm="x, y", Bearer realm=https://t/token , service=s"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("x, y"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://t/token"));
        assert_eq!(c[1].param("service"), Some("s"));
    }
}
