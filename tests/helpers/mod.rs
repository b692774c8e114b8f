//! What the test binaries share, one concern a file: starting the app on a
//! backend ([`app`]), talking to it as each provider does ([`providers`]),
//! throwaway Redis servers and Clusters ([`redis_server`]), an automation
//! subscriber ([`receiver`]) and reading `/metrics` ([`metrics`]).
//! Each binary includes this folder once with `#[path]`.

// Each binary uses the part of these it needs; what one leaves unused
// another uses.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod app;
pub mod metrics;
pub mod providers;
pub mod receiver;
pub mod redis_server;

pub use app::*;
pub use metrics::*;
pub use providers::*;
pub use receiver::*;

/// How long any wait in the tests may take before it fails: generous, so
/// that a loaded machine slows the suite down but does not fail it.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
