//! Admin auth as an extractor: a handler that takes [`Admin`] is only
//! called with one of `admin.tokens`, and says so in its signature.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};

use super::error::OpsError;
use crate::app::AppState;
use crate::providers::verify::{authorization_credentials, secret_matches};

/// Proof that the request carries one of the admin tokens.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

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
            Some(token) if secret_matches(tokens, token) => Ok(Admin),
            Some(_) => Err(OpsError::Unauthorized(
                "header Authorization carries a token that is not an admin token".into(),
            )),
            None => Err(OpsError::Unauthorized(
                "header Authorization is not of the form `Bearer <admin token>`".into(),
            )),
        })
    }
}
