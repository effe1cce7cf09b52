//! Secrets as `check-config` and `/sse/monitoring` show them.
//!
//! The settings are printed through `Serialize`; a field that holds a secret
//! names one of these serializers, so there is no second, hand-kept copy of
//! the configuration to forget a field in. `SecretString` has no `Serialize`
//! of its own: a secret field without one of these does not compile.

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer, ser::SerializeMap};

/// `raw` as [`masked_url`] shows it; `***` when it does not even parse.
pub(super) fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => masked_url(&url),
        Err(_) => "***".into(),
    }
}

/// `url` fit for logs and listings: a password and every query value become
/// `***` (API keys travel there), and so does a user name that comes with a
/// password (`https://user:pass@idp/...`). Scheme, host, port, path and the
/// query's parameter names stay, so an operator can still tell which
/// endpoint is meant.
pub fn masked_url(url: &url::Url) -> String {
    let mut masked = url.clone();
    if masked.password().is_some() {
        let _ = masked.set_password(Some("***"));
        let _ = masked.set_username("***");
    }
    if masked.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        masked
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name.as_str(), "***")));
    }
    masked.to_string()
}

/// A URL that may carry credentials (`redis://:password@host`), masked.
pub(super) fn secret_url<S: Serializer>(
    url: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    url.as_ref()
        .map(|url| mask_url(url.expose_secret()))
        .serialize(serializer)
}

/// A parsed URL that may carry credentials, masked.
pub(super) fn url<S: Serializer>(url: &Option<url::Url>, serializer: S) -> Result<S::Ok, S::Error> {
    url.as_ref().map(masked_url).serialize(serializer)
}

/// The HS256 keys, flattened into two keys: `jwt_secret` is `"***"` when
/// there is at least one (else `null`) and `jwt_secret_count` says how many,
/// which is what a rotation needs checked.
pub(super) fn secrets<S: Serializer>(
    secrets: &[SecretString],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(2))?;
    map.serialize_entry("jwt_secret", &(!secrets.is_empty()).then_some("***"))?;
    map.serialize_entry("jwt_secret_count", &secrets.len())?;
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_url_keeps_the_endpoint_and_hides_every_credential() {
        let url: url::Url = "https://user:pass@idp.example:8443/keys?key=K1&tenant=acme"
            .parse()
            .unwrap();
        assert_eq!(
            masked_url(&url),
            "https://***:***@idp.example:8443/keys?key=***&tenant=***"
        );
        let plain: url::Url = "https://idp.example/keys".parse().unwrap();
        assert_eq!(masked_url(&plain), "https://idp.example/keys");
    }

    #[test]
    fn an_unparsable_url_is_masked_whole() {
        assert_eq!(mask_url("redis://:pw@[bad"), "***");
    }
}
