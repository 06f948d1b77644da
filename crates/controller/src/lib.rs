//! weft's controller: the one source of truth for tenant networks. It speaks the OpenStack
//! Networking API v2.0 and a Keystone v3 subset, keeps everything in a SQLite or PostgreSQL
//! store, and appends every change to a revision log in the same transaction.
//!
//! Shape (STYLE.md 1.1, Firecracker's separation): HTTP handlers only parse and check, producing
//! a typed command; a service runs it in one transaction; [`error::ApiError`] is mapped to a
//! status and body in exactly one place.

pub mod agent_api;
pub mod agents;
pub mod auth;
pub mod config;
pub mod error;
pub mod identity;
pub mod network;
pub mod server;
pub mod store;
pub mod watch;

pub use server::{App, AppState, Listeners};
