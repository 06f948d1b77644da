//! Keystone v3 routes.

use axum::Router;

use crate::server::AppState;

/// The identity API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
