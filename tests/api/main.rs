//! The black-box suite: every test starts the real application on a free
//! port with its own configuration and talks to it over HTTP only.

mod helpers;
mod ops;
mod shopify;
