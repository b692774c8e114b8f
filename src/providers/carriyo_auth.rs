//! How Carriyo authenticates to a store: the scheme the merchant chose for
//! its webhook (https://carriyo.com/docs/platform/webhooks/authentication/),
//! a static header (`x-api-key` unless named otherwise), HTTP Basic, or a
//! bearer token. Every comparison is in constant time, against every
//! configured secret (several are live while one is rotated).
//!
//! Status codes follow Carriyo's own API: a missing or wrong key or
//! tenant-id is 403 (https://carriyo.com/docs/reference/validation-errors/),
//! a missing or wrong token 401 (https://carriyo.com/docs/api/conventions/).

use actix_web::http::header::HeaderMap;
use base64::Engine;

use super::{header, verify, Rejection};
use crate::config::CarriyoAuth;

/// Carries the Basic credentials or the bearer token.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Checks that the request carries one of `tenant`'s credentials, in the
/// tenant's scheme.
pub fn verify_credentials(
    auth: &CarriyoAuth,
    tenant: &str,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    match auth {
        CarriyoAuth::Header { name, values } => {
            let name = name.as_str();
            let presented = header(headers, name)?
                .ok_or_else(|| Rejection::Forbidden(format!("header {name} is missing")))?;
            if verify::secret_matches(values, presented) {
                Ok(())
            } else {
                Err(Rejection::Forbidden(format!(
                    "header {name} is not an API key of tenant '{tenant}'"
                )))
            }
        }
        CarriyoAuth::Basic(pairs) => {
            let presented = basic_credentials(headers, tenant)?;
            if verify::secret_matches(pairs, &presented) {
                Ok(())
            } else {
                Err(Rejection::Unauthorized(format!(
                    "header {AUTHORIZATION_HEADER} carries Basic credentials that are not \
                     tenant '{tenant}''s"
                )))
            }
        }
        CarriyoAuth::Bearer(tokens) => {
            let presented = authorization(headers, "Bearer", tenant)?;
            if verify::secret_matches(tokens, presented) {
                Ok(())
            } else {
                Err(Rejection::Unauthorized(format!(
                    "header {AUTHORIZATION_HEADER} carries a bearer token that is not a token \
                     of tenant '{tenant}'"
                )))
            }
        }
    }
}

/// Whether the request carries one of these credentials: how a webhook
/// that names no tenant finds its store.
pub fn presents(auth: &CarriyoAuth, headers: &HeaderMap) -> bool {
    verify_credentials(auth, "", headers).is_ok()
}

/// The names of the headers a credential may come in, for a refusal that
/// found no store.
pub fn credential_headers<'a>(schemes: impl Iterator<Item = &'a CarriyoAuth>) -> String {
    let mut names: Vec<&str> = schemes
        .map(|auth| match auth {
            CarriyoAuth::Header { name, .. } => name.as_str(),
            CarriyoAuth::Basic(_) | CarriyoAuth::Bearer(_) => AUTHORIZATION_HEADER,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// The credentials of `Authorization: <scheme> <credentials>`; 401 when
/// the header is missing or of another scheme.
fn authorization<'h>(
    headers: &'h HeaderMap,
    scheme: &str,
    tenant: &str,
) -> Result<&'h str, Rejection> {
    let value = header(headers, AUTHORIZATION_HEADER)?.ok_or_else(|| {
        Rejection::Unauthorized(format!(
            "header {AUTHORIZATION_HEADER} is missing; tenant '{tenant}' takes `{scheme} ...`"
        ))
    })?;
    value
        .split_once(' ')
        .filter(|(given, _)| given.eq_ignore_ascii_case(scheme))
        .map(|(_, credentials)| credentials.trim())
        .ok_or_else(|| {
            Rejection::Unauthorized(format!(
                "header {AUTHORIZATION_HEADER} is not of the form `{scheme} ...`"
            ))
        })
}

/// `user:password` from `Authorization: Basic <base64>` (RFC 7617).
fn basic_credentials(headers: &HeaderMap, tenant: &str) -> Result<String, Rejection> {
    let encoded = authorization(headers, "Basic", tenant)?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Rejection::Unauthorized(format!(
                "header {AUTHORIZATION_HEADER}: the Basic credentials are not base64 of \
                 user:password"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HeaderName, Secret};
    use crate::providers::test_support::headers;

    fn header_scheme(name: &str) -> CarriyoAuth {
        let name: HeaderName = serde_json::from_value(serde_json::json!(name)).unwrap();
        CarriyoAuth::Header {
            name,
            values: vec![Secret::from("k1")],
        }
    }

    #[test]
    fn a_named_header_carries_the_key_and_a_wrong_one_is_forbidden() {
        let auth = header_scheme("X-Carriyo-Key");
        assert!(presents(&auth, &headers(&[("x-carriyo-key", "k1")])));
        let wrong = verify_credentials(&auth, "T", &headers(&[("x-carriyo-key", "k2")]));
        assert!(matches!(wrong, Err(Rejection::Forbidden(m)) if m.contains("x-carriyo-key")));
        let missing = verify_credentials(&auth, "T", &headers(&[("x-api-key", "k1")]));
        assert!(matches!(missing, Err(Rejection::Forbidden(m)) if m.contains("missing")));
    }

    #[test]
    fn basic_and_bearer_read_the_authorization_header() {
        let basic = CarriyoAuth::Basic(vec![Secret::from("carriyo:pw:1")]);
        let encoded = base64::engine::general_purpose::STANDARD.encode("carriyo:pw:1");
        assert!(presents(
            &basic,
            &headers(&[("authorization", &format!("basic {encoded}"))])
        ));
        let bad = verify_credentials(&basic, "T", &headers(&[("authorization", "Basic !!")]));
        assert!(matches!(bad, Err(Rejection::Unauthorized(m)) if m.contains("base64")));
        let bearer = CarriyoAuth::Bearer(vec![Secret::from("tok")]);
        assert!(presents(
            &bearer,
            &headers(&[("authorization", "Bearer tok")])
        ));
        assert!(!presents(
            &bearer,
            &headers(&[("authorization", "Bearer to")])
        ));
        let other = verify_credentials(&bearer, "T", &headers(&[("authorization", "Basic tok")]));
        assert!(matches!(other, Err(Rejection::Unauthorized(m)) if m.contains("`Bearer ...`")));
    }
}
