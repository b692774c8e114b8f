//! How a defined provider authenticates its deliveries: an HMAC-SHA256 of
//! the raw body, a static token in a named header, HTTP Basic, or a bearer
//! token. Every comparison is in constant time and against every secret
//! the store lists, so a secret can be rotated without a gap.

use actix_web::http::header::HeaderMap;
use base64::Engine;
use unicode_normalization::UnicodeNormalization;

use crate::config::Secret;
use crate::providers::{header, verify, Rejection};

/// Carries Basic credentials and bearer tokens.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// How the HMAC is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    /// Lower- or upper-case hex.
    Hex,
}

/// Which bytes of a secret key the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretForm {
    /// The secret's UTF-8 bytes as configured.
    AsIs,
    /// The UTF-8 bytes of its Unicode NFKD form, as EasyPost's client
    /// libraries key the HMAC; the same bytes for an ASCII secret.
    Nfkd,
}

/// A definition's `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `header` holds `prefix` + the HMAC-SHA256 of the raw body.
    Hmac {
        header: String,
        encoding: Encoding,
        prefix: String,
        secret_form: SecretForm,
    },
    /// `header` holds one of the secrets as it is.
    Token { header: String },
    /// `Authorization: Basic`; each secret is a `user:password`.
    Basic,
    /// `Authorization: Bearer` with one of the secrets.
    Bearer,
}

impl Auth {
    /// The scheme's name as a definition writes it.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Hmac { .. } => "hmac-sha256",
            Self::Token { .. } => "token",
            Self::Basic => "basic",
            Self::Bearer => "bearer",
        }
    }

    /// Whether the credential is made from the body, so can be checked
    /// only once the body is read.
    pub fn signs_body(&self) -> bool {
        matches!(self, Self::Hmac { .. })
    }

    /// The header the credential comes in.
    pub fn header(&self) -> &str {
        match self {
            Self::Hmac { header, .. } | Self::Token { header } => header,
            Self::Basic | Self::Bearer => AUTHORIZATION_HEADER,
        }
    }

    /// Checks that the delivery carries a credential made with, or equal
    /// to, one of `secrets`; 401 naming the header otherwise.
    pub fn verify(
        &self,
        secrets: &[Secret],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Rejection> {
        let name = self.header();
        let presented = header(headers, name)?
            .ok_or_else(|| Rejection::Unauthorized(format!("header {name} is missing")))?;
        let matched = match self {
            Self::Hmac {
                encoding,
                prefix,
                secret_form,
                ..
            } => hmac_matches(secrets, body, presented, prefix, *encoding, *secret_form),
            Self::Token { .. } => verify::secret_matches(secrets, presented),
            Self::Basic => basic_credentials(presented)
                .is_some_and(|pair| verify::secret_matches(secrets, &pair)),
            Self::Bearer => verify::authorization_credentials(presented, "Bearer")
                .is_some_and(|token| verify::secret_matches(secrets, token)),
        };
        if matched {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }

    /// The refusal of a credential that is not one of the store's.
    pub fn refusal(&self) -> Rejection {
        Rejection::Unauthorized(format!(
            "header {} does not carry a valid {} credential of this store for this provider",
            self.header(),
            self.scheme()
        ))
    }

    /// The header value a sender holding `secret` sends with `body`: what
    /// `shipgate sign` prints and the load generator sends.
    pub fn credential(&self, secret: &str, body: &[u8]) -> String {
        match self {
            Self::Hmac {
                encoding,
                prefix,
                secret_form,
                ..
            } => {
                let mac = verify::hmac_sha256(&key(secret, *secret_form), body);
                let written = match encoding {
                    Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
                    Encoding::Hex => hex::encode(mac),
                };
                format!("{prefix}{written}")
            }
            Self::Token { .. } => secret.to_owned(),
            Self::Basic => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret)
            ),
            Self::Bearer => format!("Bearer {secret}"),
        }
    }
}

/// The HMAC key a secret stands for.
fn key(secret: &str, form: SecretForm) -> Vec<u8> {
    match form {
        SecretForm::AsIs => secret.as_bytes().to_vec(),
        SecretForm::Nfkd => secret.nfkd().collect::<String>().into_bytes(),
    }
}

/// Whether `presented` is `prefix` + the HMAC of `body` under any secret.
fn hmac_matches(
    secrets: &[Secret],
    body: &[u8],
    presented: &str,
    prefix: &str,
    encoding: Encoding,
    form: SecretForm,
) -> bool {
    let Some(written) = presented.strip_prefix(prefix) else {
        return false;
    };
    let decoded = match encoding {
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(written)
            .ok(),
        Encoding::Hex => hex::decode(written).ok(),
    };
    let Some(decoded) = decoded else {
        return false;
    };
    verify::hmac_matches_any(
        secrets.iter().map(|s| key(s.expose(), form)),
        body,
        &decoded,
    )
}

/// `user:password` from an `Authorization: Basic <base64>` value.
fn basic_credentials(value: &str) -> Option<String> {
    let encoded = verify::authorization_credentials(value, "Basic")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::headers;

    fn hmac(encoding: Encoding, prefix: &str, secret_form: SecretForm) -> Auth {
        Auth::Hmac {
            header: "x-signature".into(),
            encoding,
            prefix: prefix.into(),
            secret_form,
        }
    }

    #[test]
    fn hmac_in_hex_with_a_prefix_verifies_under_any_secret() {
        let auth = hmac(Encoding::Hex, "hmac-sha256-hex=", SecretForm::Nfkd);
        let body = br#"{"id":"evt_1"}"#;
        let signed = auth.credential("old", body);
        assert!(signed.starts_with("hmac-sha256-hex="));
        let secrets = [Secret::from("new"), Secret::from("old")];
        let sent = headers(&[("x-signature", &signed)]);
        assert!(auth.verify(&secrets, &sent, body).is_ok());
        let err = auth.verify(&secrets, &sent, b"{}").unwrap_err();
        assert!(err.to_string().contains("x-signature"), "{err}");
        let unprefixed = headers(&[("x-signature", &signed["hmac-sha256-hex=".len()..])]);
        assert!(auth.verify(&secrets, &unprefixed, body).is_err());
        let missing = auth.verify(&secrets, &headers(&[]), body).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }

    #[test]
    fn an_nfkd_secret_keys_with_its_decomposed_form() {
        // "é" composed (U+00E9) is "e" + U+0301 in NFKD: other key bytes.
        let body = b"{}";
        let nfkd = hmac(Encoding::Hex, "", SecretForm::Nfkd).credential("s\u{e9}cret", body);
        let decomposed =
            hmac(Encoding::Hex, "", SecretForm::AsIs).credential("se\u{301}cret", body);
        let as_is = hmac(Encoding::Hex, "", SecretForm::AsIs).credential("s\u{e9}cret", body);
        assert_eq!(nfkd, decomposed);
        assert_ne!(nfkd, as_is);
    }

    #[test]
    fn tokens_basic_and_bearer_compare_whole_credentials() {
        let secrets = [Secret::from("user:pass")];
        let basic = headers(&[("authorization", &Auth::Basic.credential("user:pass", b""))]);
        assert!(Auth::Basic.verify(&secrets, &basic, b"").is_ok());
        let wrong = headers(&[("authorization", &Auth::Basic.credential("user:pas", b""))]);
        assert!(Auth::Basic.verify(&secrets, &wrong, b"").is_err());
        let tokens = [Secret::from("tok")];
        let bearer = headers(&[("authorization", "bearer tok")]);
        assert!(Auth::Bearer.verify(&tokens, &bearer, b"").is_ok());
        let token = Auth::Token {
            header: "x-token".into(),
        };
        assert!(token
            .verify(&tokens, &headers(&[("x-token", "tok")]), b"")
            .is_ok());
        assert!(token
            .verify(&tokens, &headers(&[("x-token", "tok2")]), b"")
            .is_err());
    }
}
