//! Every way an API request can fail, and the one place that turns a failure into an HTTP
//! status and a body: Neutron's `{"NeutronError": {"type", "message", "detail"}}` on the
//! networking API, Keystone's `{"error": {"code", "title", "message"}}` on the identity API.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// The kind of resource a lookup missed; names the Neutron `<Kind>NotFound` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A network.
    Network,
    /// A subnet.
    Subnet,
    /// A port.
    Port,
    /// A security group.
    SecurityGroup,
    /// A tag on a resource.
    Tag,
    /// An extension alias.
    Extension,
    /// A Keystone domain.
    Domain,
    /// A Keystone project.
    Project,
    /// A Keystone user.
    User,
    /// A Keystone role.
    Role,
    /// A Keystone token.
    Token,
    /// A Keystone role assignment (a user's role on a project).
    RoleAssignment,
    /// A network agent.
    Agent,
    /// A trunk.
    Trunk,
    /// A trunk's subport.
    SubPort,
    /// A VSI type (`/v2.0/vsi-types`).
    VsiType,
    /// A VDP association record (`/v2.0/vsi-associations`).
    VsiAssociation,
    /// Any other path.
    Resource,
}

impl Kind {
    /// The name Neutron and Keystone use in messages ("Network", "Port", ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Network => "Network",
            Self::Subnet => "Subnet",
            Self::Port => "Port",
            Self::SecurityGroup => "SecurityGroup",
            Self::Tag => "Tag",
            Self::Extension => "Extension",
            Self::Domain => "Domain",
            Self::Project => "Project",
            Self::User => "User",
            Self::Role => "Role",
            Self::Token => "Token",
            Self::RoleAssignment => "RoleAssignment",
            Self::Agent => "Agent",
            Self::Trunk => "Trunk",
            Self::SubPort => "SubPort",
            Self::VsiType => "VsiType",
            Self::VsiAssociation => "VsiAssociation",
            Self::Resource => "Resource",
        }
    }
}

/// Why a request conflicts with the current state (HTTP 409); the variant name is the
/// Neutron exception type clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A requested fixed IP is already held by another port.
    IpAddressAlreadyAllocated,
    /// No free address is left in the subnets a port could use.
    IpAddressGenerationFailure,
    /// A requested MAC is already used on the network.
    MacAddressInUse,
    /// The network still has ports.
    NetworkInUse,
    /// The subnet still has allocated addresses.
    SubnetInUse,
    /// The VLAN id is taken on that physical network.
    VlanIdInUse,
    /// The VXLAN VNI, GRE key or NVGRE VSID is taken.
    TunnelIdInUse,
    /// The flat physical network already carries a network.
    FlatNetworkInUse,
    /// Allowed address pairs need port security.
    AddressPairAndPortSecurityRequired,
    /// Security groups need port security and an IP.
    PortSecurityAndIPRequiredForSecurityGroups,
    /// The security group is still used by ports.
    SecurityGroupInUse,
    /// The MAC of a bound port cannot change.
    PortBound,
    /// A Keystone entity with that name already exists.
    Duplicate,
    /// The port already belongs to a trunk.
    TrunkPortInUse,
    /// The VLAN id is already taken on the trunk.
    DuplicateSubPort,
    /// The trunk's parent is bound: it cannot be deleted.
    TrunkInUse,
    /// The trunk is administratively down: its subports cannot change.
    TrunkDisabled,
    /// The port is a trunk's parent: it cannot be deleted.
    PortInUseAsTrunkParent,
    /// The port is a trunk's subport: it cannot be deleted.
    PortInUseAsSubPort,
    /// The VSI type has live associations: it cannot be deleted or change its profile.
    VsiTypeInUse,
    /// A VSI type with that (type_id, type_version) already exists.
    DuplicateVsiType,
}

impl Conflict {
    /// The exception type name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IpAddressAlreadyAllocated => "IpAddressAlreadyAllocated",
            Self::IpAddressGenerationFailure => "IpAddressGenerationFailure",
            Self::MacAddressInUse => "MacAddressInUse",
            Self::NetworkInUse => "NetworkInUse",
            Self::SubnetInUse => "SubnetInUse",
            Self::VlanIdInUse => "VlanIdInUse",
            Self::TunnelIdInUse => "TunnelIdInUse",
            Self::FlatNetworkInUse => "FlatNetworkInUse",
            Self::AddressPairAndPortSecurityRequired => "AddressPairAndPortSecurityRequired",
            Self::PortSecurityAndIPRequiredForSecurityGroups => {
                "PortSecurityAndIPRequiredForSecurityGroups"
            }
            Self::SecurityGroupInUse => "SecurityGroupInUse",
            Self::PortBound => "PortBound",
            Self::Duplicate => "Conflict",
            Self::TrunkPortInUse => "TrunkPortInUse",
            Self::DuplicateSubPort => "DuplicateSubPort",
            Self::TrunkInUse => "TrunkInUse",
            Self::TrunkDisabled => "TrunkDisabled",
            Self::PortInUseAsTrunkParent => "PortInUseAsTrunkParent",
            Self::PortInUseAsSubPort => "PortInUseAsSubPort",
            Self::VsiTypeInUse => "VsiTypeInUse",
            Self::DuplicateVsiType => "DuplicateVsiType",
        }
    }
}

/// A failed request. Each variant maps to exactly one status in [`ApiError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no such resource visible to the caller (other projects' resources included).
    #[error("{} {id} could not be found.", kind.as_str())]
    NotFound {
        /// What was looked up.
        kind: Kind,
        /// The id or name the client gave.
        id: String,
    },
    /// 400 `InvalidInput`: the request is well formed but a value breaks a rule.
    #[error("Invalid input for operation: {0}")]
    InvalidInput(String),
    /// 400 `HTTPBadRequest`: malformed JSON, wrong types, unknown attributes, bad values.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or a token that is invalid, expired or revoked.
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    /// 401 on `POST /v3/auth/tokens`: wrong user or password.
    #[error("The request you have made requires authentication.")]
    BadCredentials,
    /// 403: the policy forbids this for the caller's roles; names the rule.
    #[error("({0}) is disallowed by policy")]
    Forbidden(String),
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Which conflict.
        kind: Conflict,
        /// What the operator is told.
        message: String,
    },
    /// 405: the path exists but not with this method.
    #[error("The method is not allowed for the requested URL.")]
    MethodNotAllowed,
    /// 503 `NoNetworkAvailable`: every tenant segment id is taken.
    #[error("Unable to create the network. No tenant network is available for allocation.")]
    NoNetworkAvailable,
    /// 500: the store failed; the request changed nothing.
    #[error("Request Failed: internal server error while processing your request.")]
    Store(#[from] sqlx::Error),
    /// 500: an invariant broke; logged with the detail, the client gets a generic message.
    #[error("Request Failed: internal server error while processing your request.")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidInput(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoNetworkAvailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Neutron exception type (`NetworkNotFound`, `InvalidInput`, `MacAddressInUse`...).
    pub fn neutron_type(&self) -> String {
        match self {
            Self::NotFound { kind, .. } => format!("{}NotFound", kind.as_str()),
            Self::InvalidInput(_) => "InvalidInput".into(),
            Self::BadRequest(_) => "HTTPBadRequest".into(),
            Self::Unauthorized | Self::BadCredentials => "HTTPUnauthorized".into(),
            Self::Forbidden(_) => "PolicyNotAuthorized".into(),
            Self::Conflict { kind, .. } => kind.as_str().into(),
            Self::MethodNotAllowed => "HTTPMethodNotAllowed".into(),
            Self::NoNetworkAvailable => "NoNetworkAvailable".into(),
            Self::Store(_) | Self::Internal(_) => "HTTPInternalServerError".into(),
        }
    }

    /// Shorthand for a 409.
    pub fn conflict(kind: Conflict, message: impl Into<String>) -> Self {
        Self::Conflict {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for a 404.
    pub fn not_found(kind: Kind, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// Shorthand for a 400 `InvalidInput`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// Shorthand for a 400 `HTTPBadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    fn log(&self) {
        match self {
            Self::Store(err) => tracing::error!(error = %err, "store error"),
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            _ => {}
        }
    }

    /// The networking API's rendering: `{"NeutronError": {...}}`.
    pub fn into_neutron_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = json!({"NeutronError": {
            "type": self.neutron_type(),
            "message": self.to_string(),
            "detail": "",
        }});
        with_auth_challenge(status, (status, axum::Json(body)).into_response())
    }

    /// The identity API's rendering: `{"error": {"code", "title", "message"}}`.
    pub fn into_keystone_response(self) -> Response {
        self.log();
        let status = self.status();
        let message = match &self {
            Self::NotFound { kind, id } => format!("Could not find {}: {id}.", kind_lower(*kind)),
            Self::BadCredentials => "The request you have made requires authentication.".into(),
            Self::InvalidInput(message) | Self::BadRequest(message) => message.clone(),
            Self::Forbidden(rule) => {
                format!("You are not authorized to perform the requested action: {rule}.")
            }
            other => other.to_string(),
        };
        let body = json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }});
        with_auth_challenge(status, (status, axum::Json(body)).into_response())
    }
}

fn kind_lower(kind: Kind) -> &'static str {
    match kind {
        Kind::Domain => "domain",
        Kind::Project => "project",
        Kind::User => "user",
        Kind::Role => "role",
        Kind::Token => "token",
        Kind::RoleAssignment => "role assignment",
        _ => kind.as_str(),
    }
}

/// A 401 tells the client where to authenticate, as keystonemiddleware does.
fn with_auth_challenge(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Keystone uri=\"/v3\""),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_neutron_response()
    }
}

/// An [`ApiError`] on the identity API, rendered in Keystone's shape.
#[derive(Debug)]
pub struct IdentityError(pub ApiError);

impl<E: Into<ApiError>> From<E> for IdentityError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        self.0.into_keystone_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_neutron() {
        let err = ApiError::not_found(Kind::Network, "net0");
        assert_eq!(err.to_string(), "Network net0 could not be found.");
        assert_eq!(err.neutron_type(), "NetworkNotFound");
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn invalid_input_prefix() {
        let err = ApiError::invalid("segmentation_id out of range (1 through 4094).");
        assert_eq!(
            err.to_string(),
            "Invalid input for operation: segmentation_id out of range (1 through 4094)."
        );
    }
}
