//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), so a
//! subscriber verifies our deliveries with any of the specification's
//! libraries: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed with the secret's decoded bytes.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix the specification gives secrets, so they are recognisable.
const PREFIX: &str = "whsec_";
/// The specification's smallest recommended key.
const MIN_KEY_BYTES: usize = 24;

/// A rule's signing key, decoded from its `whsec_` form; never printed.
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// Parses `whsec_<base64 key>`; the message never repeats the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("must be in the Standard Webhooks form {PREFIX}<base64 key>"))?;
        let key = BASE64
            .decode(encoded)
            .map_err(|_| format!("the part after {PREFIX} is not base64"))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the key is {} bytes; use at least {MIN_KEY_BYTES} random bytes",
                key.len()
            ));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` value for one attempt of message `id`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors published with the specification's reference libraries
    /// (standard-webhooks/standard-webhooks: `libraries/php/tests/
    /// WebhookTest.php` testSignFunctionWorks, and `libraries/rust/src/
    /// lib.rs` test_sign). Reproducing them is what says a subscriber's
    /// library accepts what we send.
    #[test]
    fn signatures_match_the_specification_test_vectors() {
        let vectors = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ];
        for (secret, id, timestamp, body, expected) in vectors {
            let secret = SigningSecret::parse(secret).unwrap();
            assert_eq!(secret.sign(id, timestamp, body.as_bytes()), expected);
        }
    }

    #[test]
    fn secrets_must_be_whsec_base64_keys_of_useful_length() {
        let no_prefix = SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err();
        assert!(no_prefix.contains("whsec_"), "{no_prefix}");
        let not_base64 = SigningSecret::parse("whsec_not base64!").unwrap_err();
        assert!(not_base64.contains("not base64"), "{not_base64}");
        assert!(
            !not_base64.contains("not base64!"),
            "never echoes the secret"
        );
        let short = SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err();
        assert!(short.contains("5 bytes"), "{short}");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{secret:?}"), "SigningSecret(***)");
    }
}
