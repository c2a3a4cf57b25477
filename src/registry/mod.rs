//! Talking to registries: one client per repository (every endpoint of the
//! distribution spec through one request helper), authentication, the
//! credential stores, the registry configuration file, retries, resumable
//! downloads and uploads, transfer progress.

pub(crate) mod auth;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod credentials;
pub(crate) mod http;
pub(crate) mod progress;
pub(crate) mod retry;
