//! Verification shared by every adapter: HMAC signatures and presented
//! keys, always compared in constant time, always against every configured
//! secret (several are live while one is rotated).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `body` under `key`.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The base64 HMAC-SHA256 a sender signing `body` with `secret` sends.
pub fn hmac_sha256_base64(secret: &str, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body))
}

/// Whether `signature` (base64) is `body`'s HMAC-SHA256 under any secret.
pub fn base64_hmac_matches(secrets: &[Secret], body: &[u8], signature: &str) -> bool {
    let Ok(presented) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    hmac_matches_any(
        secrets.iter().map(|s| s.expose().as_bytes()),
        body,
        &presented,
    )
}

/// Whether `presented` is `body`'s HMAC-SHA256 under any of `keys`, in
/// constant time. Every key is tried, so timing does not tell which one
/// matched.
pub fn hmac_matches_any<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    body: &[u8],
    presented: &[u8],
) -> bool {
    keys.into_iter().fold(false, |matched, key| {
        let expected = hmac_sha256(key.as_ref(), body);
        matched | bool::from(expected.ct_eq(presented))
    })
}

/// Whether `presented` equals any of `secrets`, in constant time.
pub fn secret_matches(secrets: &[Secret], presented: &str) -> bool {
    secrets.iter().fold(false, |matched, secret| {
        matched | bool::from(secret.expose().as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// The credentials of an `Authorization` header's value when its scheme
/// is `scheme`: `<scheme> <credentials>`, the scheme in any case
/// (RFC 9110, section 11.1), so `bearer x` is `Bearer x`. The one parser
/// of the header, for the ops API and every provider.
pub fn authorization_credentials<'v>(value: &'v str, scheme: &str) -> Option<&'v str> {
    let (given, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (given.eq_ignore_ascii_case(scheme) && !credentials.is_empty()).then_some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_scheme_is_read_in_any_case() {
        for value in ["Bearer tok", "bearer tok", "BEARER  tok ", " Bearer tok"] {
            assert_eq!(
                authorization_credentials(value, "Bearer"),
                Some("tok"),
                "{value}"
            );
        }
        for value in ["Bearer", "Bearer ", "Basic tok", "Bearertok", "tok", ""] {
            assert_eq!(authorization_credentials(value, "Bearer"), None, "{value}");
        }
        assert_eq!(
            authorization_credentials("basic dTpw", "Basic"),
            Some("dTpw")
        );
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn any_configured_secret_verifies_and_others_do_not() {
        let body = br#"{"id":1}"#;
        let secrets = [Secret::from("new"), Secret::from("old")];
        let by_old = hmac_sha256_base64("old", body);
        assert!(base64_hmac_matches(&secrets, body, &by_old));
        assert!(!base64_hmac_matches(
            &secrets,
            body,
            &hmac_sha256_base64("other", body)
        ));
        assert!(!base64_hmac_matches(&secrets, b"{\"id\":2}", &by_old));
        assert!(!base64_hmac_matches(&secrets, body, "not base64!"));
        assert!(!base64_hmac_matches(&[], body, &by_old));
    }

    #[test]
    fn keys_compare_whole() {
        let keys = [Secret::from("abc123")];
        assert!(secret_matches(&keys, "abc123"));
        assert!(!secret_matches(&keys, "abc12"));
        assert!(!secret_matches(&keys, "abc1234"));
        assert!(!secret_matches(&keys, ""));
    }
}
