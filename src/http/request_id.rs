//! Request ids: the client's own `X-Request-Id` when it is sane, else a
//! UUID v7 made for the request. The id is a field of the request's span,
//! the `X-Request-Id` of its answer and the `requestId` of an error body,
//! so a provider's failed delivery can be found in the logs.

use std::fmt;
use std::future::Future;
use std::pin::pin;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpRequest};
use serde::{Serialize, Serializer};
use tracing::Instrument;
use uuid::Uuid;

/// The header a client may send its own id in, and every answer carries.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id a client may choose; a longer one is replaced.
const LONGEST_SUPPLIED: usize = 128;

tokio::task_local! {
    /// The id of the request being answered, for error bodies, which
    /// `ResponseError` renders without the request.
    static CURRENT: RequestId;
}

/// The id of one request, as its answer's `X-Request-Id` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id of `req`: the one the client sent, or a new one.
    fn of(req: &HttpRequest) -> Self {
        if let Some(supplied) = req.headers().get(REQUEST_ID_HEADER).filter(|v| is_sane(v)) {
            return Self(supplied.clone());
        }
        let mut text = Uuid::encode_buffer();
        let text = Uuid::now_v7().hyphenated().encode_lower(&mut text);
        Self(HeaderValue::from_str(text).expect("a UUID is a valid header value"))
    }

    /// The id of the request being answered; `None` outside a request
    /// (a unit test that renders an error by itself).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Both kinds are printable ASCII, which `to_str` always accepts.
        self.0.to_str().unwrap_or_default()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Whether a client's id can be logged and echoed as it is: 1 to 128
/// printable ASCII characters, so it can neither break a log line nor
/// bloat every line of the request.
fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= LONGEST_SUPPLIED
        && bytes.iter().all(|b| (b' '..=b'~').contains(b))
}

/// Answers `req` through `service` in the request's span, with the
/// request's id current (for error bodies) and echoed in the answer's
/// `X-Request-Id`. For `App::wrap_fn`, outermost, so that every log line
/// of the request carries its id.
///
/// The span is at INFO, so it is on by default; where the level is
/// filtered out (as in the benchmark) it costs only the filter's check.
pub fn answer_in_request_span<S, B>(
    req: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    let id = RequestId::of(req.request());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        request_id = %id,
    );
    let answer = span.in_scope(|| service.call(req)).instrument(span);
    async move {
        let mut answer = pin!(CURRENT.scope(id, answer));
        let mut response = answer.as_mut().await?;
        if let Some(RequestId(value)) = answer.as_mut().take_value() {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supplied_id_is_kept_only_when_printable_and_short() {
        for sane in ["abc-123", "a b", &"x".repeat(LONGEST_SUPPLIED), "~!#"] {
            assert!(is_sane(&HeaderValue::from_str(sane).unwrap()), "{sane:?}");
        }
        let too_long = "x".repeat(LONGEST_SUPPLIED + 1);
        for insane in [&b""[..], b"tab\there", too_long.as_bytes(), b"caf\xc3\xa9"] {
            let value = HeaderValue::from_bytes(insane).unwrap();
            assert!(!is_sane(&value), "{insane:?}");
        }
    }

    #[test]
    fn outside_a_request_there_is_no_current_id() {
        assert_eq!(RequestId::current(), None);
    }
}
