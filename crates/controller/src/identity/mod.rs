//! The identity service (a Keystone v3 subset): domains, projects, users, roles, role
//! assignments and tokens.

pub mod http;

use std::sync::Arc;

use crate::{auth::AuthContext, config::Config, error::ApiError, store::Store};

/// Users, projects, roles and tokens, kept in the store.
#[derive(Debug)]
pub struct Identity {
    #[expect(dead_code, reason = "used once tokens are implemented")]
    store: Arc<Store>,
}

impl Identity {
    /// The identity service over `store`.
    pub fn new(store: Arc<Store>, _config: &Config) -> Self {
        Self { store }
    }

    /// Validates a token and returns who it belongs to.
    pub async fn validate(&self, _token: &str) -> Result<AuthContext, ApiError> {
        Err(ApiError::Unauthorized)
    }
}
