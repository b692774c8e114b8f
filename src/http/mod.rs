//! What the two HTTP boundaries, ingest and ops, share without importing
//! each other: the id that ties an answer to its log lines, the span each
//! request is logged in, and how long a client is told to wait when
//! storage is down.

mod request_id;

pub use request_id::{answer_in_request_span, RequestId, REQUEST_ID_HEADER};

/// Seconds a client is told to wait (`Retry-After`) when storage is down.
pub const RETRY_AFTER_SECS: u32 = 5;
