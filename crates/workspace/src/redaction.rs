//! What counts as a secret inside a connection's URL, and how URLs and texts are shown with
//! their secrets masked (`***`): in `list`/`show connection`, run logs, error messages and
//! everything the agent sends to the model.
//!
//! A URL carries secrets in its user info (`https://user:pass@host`, `https://TOKEN@host`) and
//! in query parameters whose names look like credentials (`?api_key=…`, `&password=…`,
//! `&sig=…`). Such a URL is sealed at rest like any other secret parameter.

use url::Url;

/// Words that make a parameter name a credential (`api_key`, `X-Access-Token`,
/// `client_secret`, `sslpassword`, …), compared with each `_`/`-`/`.` separated part and
/// with the whole name.
const CREDENTIAL_WORDS: &[&str] = &[
    "key",
    "apikey",
    "token",
    "accesstoken",
    "secret",
    "password",
    "passwd",
    "pass",
    "pwd",
    "auth",
    "authorization",
    "sig",
    "signature",
    "credential",
    "credentials",
    "session",
    "sslpassword",
];

/// Whether a query parameter (or header) name looks like it carries a credential.
pub fn is_credential_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let whole: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    CREDENTIAL_WORDS.contains(&whole.as_str())
        || lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|part| CREDENTIAL_WORDS.contains(&part))
}

/// Whether a URL (as text) carries a secret: a password, http(s) user info (often a token),
/// or a credential query parameter. A database user name alone is not a secret.
pub fn url_has_secret(text: &str) -> bool {
    match Url::parse(text.trim()) {
        Ok(url) => {
            (matches!(url.scheme(), "http" | "https") && !url.username().is_empty())
                || url.password().is_some()
                || url.query_pairs().any(|(name, _)| is_credential_name(&name))
        }
        // Not a URL we can read: judge by its look, so nothing that may be a secret is kept
        // in clear.
        Err(_) => text.contains('@') || text.contains('?'),
    }
}

/// A URL safe to show: the password and the values of credential query parameters masked;
/// for http(s) the whole user info (often a token), for databases the password only (the
/// user name identifies the role).
pub fn mask_url(url: &Url) -> String {
    let mut shown = url.clone();
    let is_web = matches!(url.scheme(), "http" | "https");
    if url.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if is_web && !url.username().is_empty() {
        let _ = shown.set_username("***");
        if url.password().is_some() {
            let _ = shown.set_password(None);
        }
    }
    if url.query_pairs().any(|(name, _)| is_credential_name(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_credential_name(&name) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// A URL given as text, masked; text that is not a URL is masked whole.
pub fn mask_url_text(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(url) => mask_url(&url),
        Err(_) => "***".to_string(),
    }
}

/// The secret values inside a connection parameter (its whole value, or the parts of a URL
/// that are secret), to scrub from any text before it is shown.
pub fn secret_parts(key: &str, value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    if key == "url" {
        if let Ok(url) = Url::parse(value.trim()) {
            if let Some(password) = url.password() {
                parts.push(password.to_string());
                parts.push(decoded(password));
            }
            if matches!(url.scheme(), "http" | "https") && !url.username().is_empty() {
                parts.push(url.username().to_string());
                parts.push(decoded(url.username()));
            }
            for (name, secret) in url.query_pairs() {
                if is_credential_name(&name) {
                    parts.push(secret.into_owned());
                }
            }
        }
    } else {
        parts.push(value.to_string());
        // `Bearer abc` in a header: the token alone may show up too.
        if let Some((_, token)) = value.split_once(' ') {
            parts.push(token.to_string());
        }
    }
    // Short values would mask ordinary words; they are not worth guessing anyway.
    parts.retain(|p| p.chars().count() >= 4);
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts.dedup();
    parts
}

fn decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

/// `text` with every one of `secrets` replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names() {
        for name in [
            "api_key",
            "apikey",
            "APIKEY",
            "access_token",
            "X-Api-Key",
            "password",
            "pwd",
            "client_secret",
            "sig",
            "signature",
            "auth",
            "sslpassword",
            "token",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in [
            "page", "per_page", "sort", "q", "design", "monkeys", "limit",
        ] {
            assert!(!is_credential_name(name), "{name}");
        }
    }

    #[test]
    fn urls_with_secrets_are_recognised_and_masked() {
        assert!(url_has_secret("http://h/?api_key=X"));
        assert!(url_has_secret("postgres://u@h/db?password=X"));
        assert!(url_has_secret("postgres://u:pw@h/db"));
        assert!(url_has_secret("https://TOKEN@api.github.com/"));
        assert!(!url_has_secret("https://api.example.com/v1?page=2"));
        assert!(!url_has_secret("postgres://h:5432/db"));

        let masked = mask_url_text("http://h/orders?api_key=X1234&page=2");
        assert_eq!(masked, "http://h/orders?api_key=***&page=2");
        assert_eq!(
            mask_url_text("postgres://etl:pw@db:5432/a?sslmode=require&password=zz"),
            "postgres://etl:***@db:5432/a?sslmode=require&password=***"
        );
        assert_eq!(mask_url_text("https://user:pass@h/x"), "https://***@h/x");
        assert_eq!(mask_url_text("https://tok3n@h/x"), "https://***@h/x");
    }

    #[test]
    fn secrets_are_scrubbed_from_text() {
        let mut secrets = secret_parts("url", "http://h/?api_key=SUPERSECRET&page=1");
        secrets.extend(secret_parts("header.Authorization", "Bearer tok-123456"));
        secrets.extend(secret_parts("url", "postgres://u:p%40ss-word@h/db"));
        let text = "GET http://h/?api_key=SUPERSECRET failed; header Bearer tok-123456; p@ss-word";
        let clean = scrub(text, &secrets);
        assert!(!clean.contains("SUPERSECRET"), "{clean}");
        assert!(!clean.contains("tok-123456"), "{clean}");
        assert!(!clean.contains("p@ss-word"), "{clean}");
    }
}
