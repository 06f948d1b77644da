//! The running controller: shared state, the two HTTP listeners (networking on `listen`,
//! identity on `identity_listen`, as Neutron and Keystone run), and the request plumbing every
//! handler shares: token validation, JSON bodies with Neutron-shaped errors, request ids.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    middleware::{self, Next},
    response::Response,
};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::{
    agents::{AgentService, load_or_create_token, token_matches},
    auth::AuthContext,
    config::{AuthMode, Config, ConfigError, Ranges},
    error::ApiError,
    identity::{Bootstrapped, Identity},
    network::NetworkService,
    store::{Backend, Store, StoreError},
    watch::{Hub, HubError},
};

/// The largest request body accepted; larger ones get a 400 and change nothing.
pub const MAX_BODY: usize = 1 << 20;

/// Everything a handler can reach.
#[derive(Debug)]
pub struct App {
    /// The configuration in effect.
    pub config: Config,
    /// The database.
    pub store: Arc<Store>,
    /// Users, projects, roles, tokens.
    pub identity: Identity,
    /// Networks, subnets, ports.
    pub network: NetworkService,
    /// The agent registry.
    pub agents: Arc<AgentService>,
    /// The revision log's in-memory view, serving the agents' watches.
    pub hub: Arc<Hub>,
    /// The secret agents present on `/weft/v1`.
    pub agent_token: String,
    /// Where the networking API really listens (set once bound; port 0 in the config means
    /// "any"), so catalogs can point at it.
    pub network_addr: std::sync::OnceLock<SocketAddr>,
    /// Where the identity API really listens.
    pub identity_addr: std::sync::OnceLock<SocketAddr>,
    /// What identity bootstrap did at open (a generated admin password is shown once).
    pub bootstrapped: Bootstrapped,
}

/// Shared handle to [`App`].
pub type AppState = Arc<App>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Identity bootstrap (default domain, roles, first admin) failed.
    #[error("bootstrapping identity: {0}")]
    Bootstrap(ApiError),
    /// The agent secret could not be read or made.
    #[error("agent token {path}: {source}")]
    AgentToken {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The watch could not load the state.
    #[error(transparent)]
    Watch(#[from] HubError),
    /// A listener could not bind.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

impl App {
    /// Opens the store, applies migrations and bootstraps identity.
    pub async fn open(config: Config) -> Result<AppState, StartError> {
        let ranges: Ranges = config.ml2.ranges()?;
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.state_dir).map_err(|err| {
                ConfigError(format!("state_dir {}: {err}", config.state_dir.display()))
            })?;
        }
        let store = Arc::new(Store::open(&config.database_url()).await?);
        let identity = Identity::new(Arc::clone(&store), &config);
        let bootstrapped = identity
            .bootstrap(&config.bootstrap)
            .await
            .map_err(StartError::Bootstrap)?;
        let agents = Arc::new(AgentService::new(
            Arc::clone(&store),
            std::time::Duration::from_secs(config.agent_down_time_secs),
        ));
        let network = NetworkService::new(
            Arc::clone(&store),
            config.ml2.clone(),
            ranges,
            Arc::clone(&agents),
        )
        .with_vsi_vlans(config.vsi.vlans()?);
        let token_path = config.agent_token_file();
        let agent_token =
            load_or_create_token(&token_path).map_err(|source| StartError::AgentToken {
                path: token_path,
                source,
            })?;
        let hub = Hub::open(Arc::clone(&store)).await?;
        Ok(Arc::new(Self {
            config,
            store,
            identity,
            network,
            agents,
            hub,
            agent_token,
            network_addr: std::sync::OnceLock::new(),
            identity_addr: std::sync::OnceLock::new(),
            bootstrapped,
        }))
    }

    /// Checks a request's token (or, in noauth mode, grants admin).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthContext, ApiError> {
        if self.config.auth == AuthMode::Noauth {
            return Ok(AuthContext::noauth());
        }
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        self.identity.validate(token).await
    }
}

/// The base URL a client used to reach this server: the configured public URL, else built
/// from the request's Host header (what the version documents and links advertise).
pub fn base_url(configured: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The networking router (Neutron API), with the shared layers.
pub fn network_router(state: AppState) -> Router {
    crate::network::http::routes()
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The identity router (Keystone API), with the shared layers.
pub fn identity_router(state: AppState) -> Router {
    crate::identity::http::routes()
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Listeners {
    network: TcpListener,
    identity: TcpListener,
}

impl Listeners {
    /// Binds both listeners.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        Ok(Self {
            network: bind(config.listen).await?,
            identity: bind(config.identity_listen).await?,
        })
    }

    /// The networking API's address.
    pub fn network_addr(&self) -> SocketAddr {
        self.network
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The identity API's address.
    pub fn identity_addr(&self) -> SocketAddr {
        self.identity
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves both APIs until `shutdown` resolves.
    pub async fn serve(
        self,
        state: AppState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _ = state.network_addr.set(self.network_addr());
        let tail = tokio::spawn(Arc::clone(&state.hub).run());
        let listener = (state.store.backend() == Backend::Postgres).then(|| {
            tokio::spawn(Arc::clone(&state.hub).listen_postgres(state.config.database_url()))
        });
        let _ = state.identity_addr.set(self.identity_addr());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let network = axum::serve(self.network, network_router(Arc::clone(&state)))
            .with_graceful_shutdown(wait(stop_rx.clone()));
        let identity = axum::serve(self.identity, identity_router(state))
            .with_graceful_shutdown(wait(stop_rx));
        let stopper = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            Ok(())
        };
        let served = tokio::try_join!(async { network.await }, async { identity.await }, stopper,);
        tail.abort();
        if let Some(listener) = listener {
            listener.abort();
        }
        served?;
        Ok(())
    }
}

/// Adds `x-openstack-request-id: req-<uuid>` to every response, as Neutron does.
async fn request_id(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let id = format!("req-{}", uuid::Uuid::new_v4());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert("x-openstack-request-id", value);
    }
    response
}

/// Extractor: the validated caller of a networking request.
#[derive(Debug)]
pub struct Caller(pub AuthContext);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.authenticate(&parts.headers).await.map(Self)
    }
}

/// Extractor: a request from an agent (`Authorization: Bearer <agent secret>`). Keystone
/// tokens are not agent credentials.
#[derive(Debug)]
pub struct AgentCaller;

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if token_matches(presented.trim(), &state.agent_token) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Extractor: a JSON object body. Malformed JSON, a non-object or an oversized body is a 400
/// with a Neutron-shaped error (axum's own rejection is plain text).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::bad_request(format!("Request body is larger than {MAX_BODY} bytes"))
                } else {
                    ApiError::bad_request(format!("Malformed request body: {rejection}"))
                }
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_request(
                "Malformed request body: expected a JSON object",
            )),
            Err(err) => Err(ApiError::bad_request(format!(
                "Malformed request body: {err}"
            ))),
        }
    }
}
