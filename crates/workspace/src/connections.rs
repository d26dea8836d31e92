//! Connection parameters: which ones each type takes, which are secrets (sealed with the
//! master key, shown as `***`), and the checks made when they are set.

use std::collections::BTreeMap;

use store::MasterKey;

use crate::connectors::{ConnectionSpec, ConnectionType};
use crate::redaction;

/// Whether a parameter's value is secret: passwords, tokens, headers, and URLs with user info
/// or credential query parameters (`crate::redaction`).
pub fn is_secret(key: &str, value: &str) -> bool {
    matches!(key, "password" | "token")
        || key.starts_with("header.")
        || (key == "url" && redaction::url_has_secret(value))
}

/// A parameter value as shown to people: secrets masked (a URL keeps everything but its
/// secrets).
pub fn display_value(key: &str, value: &str) -> String {
    if !is_secret(key, value) {
        return value.to_string();
    }
    if key == "url" {
        return redaction::mask_url_text(value);
    }
    "***".to_string()
}

/// The secret values of a connection's parameters, to scrub from logs and messages.
pub fn secret_values(params: &BTreeMap<String, String>) -> Vec<String> {
    let mut secrets: Vec<String> = params
        .iter()
        .filter(|(key, value)| is_secret(key, value))
        .flat_map(|(key, value)| redaction::secret_parts(key, value))
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// The `{{PLACEHOLDER}}`s still to fill in a connection's parameters.
pub fn unfilled(params: &BTreeMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    for value in params.values() {
        for name in unfilled_in(value) {
            if !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// The placeholder names (`{{NAME}}`) left in one value, in order, each once.
pub fn unfilled_in(value: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].to_string();
        if !found.contains(&name) {
            found.push(name);
        }
        rest = &after[end + 2..];
    }
    found
}

/// Checks parameters for a connection type (see `connectors::spec`): known names, required
/// ones present, values that parse. Values holding placeholders are checked when filled.
pub fn check(kind: ConnectionType, params: &BTreeMap<String, String>) -> Result<(), String> {
    crate::connectors::spec::Connection::check(kind, params)
}

/// Splits parameters into the plain ones (stored as JSON) and the sealed secrets.
pub fn seal(params: &BTreeMap<String, String>, key: &MasterKey) -> (String, String) {
    let (secret, plain): (BTreeMap<_, _>, BTreeMap<_, _>) =
        params.iter().partition(|(k, v)| is_secret(k, v));
    let plain = serde_json::to_string(&plain).unwrap_or_else(|_| "{}".into());
    let secret = serde_json::to_string(&secret).unwrap_or_else(|_| "{}".into());
    (plain, key.seal(&secret))
}

/// Joins stored plain parameters and decrypted secrets back together.
pub fn open(
    name: &str,
    kind: &str,
    plain: &str,
    sealed: &str,
    key: &MasterKey,
) -> Result<ConnectionSpec, String> {
    let kind = ConnectionType::parse(kind)
        .ok_or_else(|| format!("connection '{name}' has an unknown type '{kind}'"))?;
    let mut params: BTreeMap<String, String> =
        serde_json::from_str(plain).map_err(|e| format!("connection '{name}' is damaged: {e}"))?;
    let secrets = key.open(sealed).map_err(|_| {
        format!(
            "the secrets of connection '{name}' cannot be decrypted with this server's master key"
        )
    })?;
    let secrets: BTreeMap<String, String> = serde_json::from_str(&secrets)
        .map_err(|e| format!("connection '{name}' is damaged: {e}"))?;
    params.extend(secrets);
    Ok(ConnectionSpec {
        name: name.to_string(),
        kind,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_are_recognised_and_masked() {
        assert!(is_secret("password", "x"));
        assert!(is_secret("header.Authorization", "Bearer x"));
        assert!(is_secret("url", "postgres://u:pw@h/db"));
        assert!(is_secret("url", "postgres://u@h/db?password=X"));
        assert!(is_secret("url", "http://h/?api_key=X"));
        assert!(!is_secret("url", "postgres://u@h/db"));
        assert_eq!(
            display_value("url", "http://h/?api_key=X&page=1"),
            "http://h/?api_key=***&page=1"
        );
        assert_eq!(
            display_value("url", "postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(display_value("token", "abc"), "***");
        assert_eq!(display_value("records", "data"), "data");
    }

    #[test]
    fn parameters_are_checked() {
        assert!(check(
            ConnectionType::Http,
            &params(&[("url", "https://x"), ("header.X-Key", "k")])
        )
        .is_ok());
        assert!(check(ConnectionType::Http, &params(&[("url", "ftp://x")])).is_err());
        assert!(check(ConnectionType::Http, &params(&[("url", "{{API_URL}}")])).is_ok());
        assert!(
            check(ConnectionType::Http, &params(&[("uri", "https://x")]))
                .expect_err("unknown")
                .contains("uri")
        );
        assert!(check(
            ConnectionType::File,
            &params(&[("path", "../etc"), ("format", "csv")])
        )
        .is_err());
        assert!(check(ConnectionType::Sqlite, &params(&[("path", "/etc/passwd")])).is_err());
        assert!(check(ConnectionType::File, &params(&[("path", "exports")]))
            .expect_err("format")
            .contains("format"));
        assert_eq!(
            unfilled(&params(&[
                ("url", "https://{{HOST}}/{{V}}"),
                ("x", "{{HOST}}")
            ])),
            ["HOST", "V"]
        );
    }

    #[test]
    fn sealed_secrets_round_trip() {
        let key =
            MasterKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").expect("key");
        let given = params(&[("url", "https://x"), ("token", "t0ps3cret")]);
        let (plain, sealed) = seal(&given, &key);
        assert!(!plain.contains("t0ps3cret") && !sealed.contains("t0ps3cret"));
        let spec = open("api", "http", &plain, &sealed, &key).expect("open");
        assert_eq!(spec.params, given);
    }
}
