//! The black-box suite: every test starts the real application on a free
//! port with its own configuration and talks to it over HTTP only.
//! This binary runs it on the embedded backend; tests/api_redis runs the
//! same modules on Redis.

mod automations;
mod carriyo;
mod helpers;
mod openapi;
mod ops;
mod ops_surface;
mod redo;
mod request_id;
mod shopify;
mod shopify_rest;

/// The storage backend the suite runs on here (read by `helpers`).
const BACKEND: helpers::SuiteStore = helpers::SuiteStore::Memory;
