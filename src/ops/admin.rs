//! Admin auth as an extractor: a handler that takes [`Admin`] is only
//! called with one of `admin.tokens`, and gets that token's stores and
//! role with it, so each handler says in its signature whose data it
//! answers.

use std::collections::BTreeSet;
use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::OpsError;
use crate::app::AppState;
use crate::config::{AdminToken, Role, StoreScope, TokenCredential};
use crate::providers::verify::{authorization_credentials, secret_matches};

/// Proof that the request carries one of the admin tokens, with what that
/// token may see and do.
#[derive(Debug, Clone)]
pub struct Admin {
    stores: StoreScope,
    role: Role,
}

impl Admin {
    /// Whether the token sees `store`: another store's data is answered
    /// as absent (404, never 403, so names do not leak).
    pub fn sees(&self, store: &str) -> bool {
        self.stores.sees(store)
    }

    /// Whether the token sees everything, including what belongs to no
    /// store (refused requests, counts from before stores were counted).
    pub fn sees_all(&self) -> bool {
        self.stores == StoreScope::All
    }

    /// The stores a listing is cut to: `None` for every store.
    pub fn scope(&self) -> Option<BTreeSet<String>> {
        match &self.stores {
            StoreScope::All => None,
            StoreScope::Only(stores) => Some(stores.clone()),
        }
    }

    /// Refuses with 403 unless the token's role includes `needed`; only
    /// asked once the data is known to be visible, so 403 leaks nothing.
    pub fn may(&self, needed: Role, what: &str) -> Result<(), OpsError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(OpsError::Forbidden(format!(
            "this token's role `{}` may not {what}; it needs `{}`",
            self.role.as_str(),
            needed.as_str()
        )))
    }
}

/// Whether `presented` is this entry's token, in constant time.
fn recognises(entry: &AdminToken, presented: &str) -> bool {
    match &entry.credential {
        TokenCredential::Token(secret) => secret_matches(std::slice::from_ref(secret), presented),
        TokenCredential::Sha256(digest) => bool::from(
            Sha256::digest(presented.as_bytes())
                .as_slice()
                .ct_eq(digest),
        ),
    }
}

impl FromRequest for Admin {
    type Error = OpsError;
    type Future = Ready<Result<Self, OpsError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Without the state there are no tokens to match: refused.
        let tokens = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.admin.tokens.as_slice())
            .unwrap_or_default();
        let Some(value) = req.headers().get(AUTHORIZATION) else {
            return ready(Err(OpsError::Unauthorized(
                "header Authorization is missing; send Authorization: Bearer <admin token>".into(),
            )));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| authorization_credentials(v, "Bearer"));
        ready(match presented {
            Some(token) => {
                let token = token.trim();
                // Every entry is compared, so the time taken does not say
                // which one matched (the load refuses a token given twice).
                let found = tokens.iter().fold(None, |found, entry| {
                    let matched = recognises(entry, token);
                    found.or(matched.then_some(entry))
                });
                found
                    .map(|entry| Admin {
                        stores: entry.stores.clone(),
                        role: entry.role,
                    })
                    .ok_or_else(|| {
                        OpsError::Unauthorized(
                            "header Authorization carries a token that is not an admin token"
                                .into(),
                        )
                    })
            }
            None => Err(OpsError::Unauthorized(
                "header Authorization is not of the form `Bearer <admin token>`".into(),
            )),
        })
    }
}
