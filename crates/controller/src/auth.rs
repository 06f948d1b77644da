//! Who is calling: the context every networking request carries once its token is validated,
//! and the role checks the policy is made of (admin ⊃ member ⊃ reader, as Keystone's default
//! implied roles).

use crate::error::ApiError;

/// The project Neutron's `noauth` mode acts in; weft's noauth mode uses it too.
pub const NOAUTH_PROJECT: &str = "fake_project_id";

/// A validated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    /// The user's id.
    pub user_id: String,
    /// The project the token is scoped to ('' for an unscoped token).
    pub project_id: String,
    /// Role names on that project, implied roles included.
    pub roles: Vec<String>,
}

impl AuthContext {
    /// The context of every request in noauth mode: admin in `fake_project_id`.
    pub fn noauth() -> Self {
        Self {
            user_id: String::new(),
            project_id: NOAUTH_PROJECT.into(),
            roles: vec!["admin".into(), "member".into(), "reader".into()],
        }
    }

    /// Holds `role` (after implication).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Admin: sees and changes everything.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    /// May read its project's resources.
    pub fn can_read(&self) -> bool {
        self.is_admin() || self.has_role("member") || self.has_role("reader")
    }

    /// Fails unless the caller may write (admin or member); `rule` names the policy rule.
    pub fn require_write(&self, rule: &str) -> Result<(), ApiError> {
        if !self.project_id.is_empty() && (self.is_admin() || self.has_role("member")) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(rule.to_owned()))
        }
    }

    /// Fails unless the caller may read.
    pub fn require_read(&self, rule: &str) -> Result<(), ApiError> {
        if !self.project_id.is_empty() && self.can_read() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(rule.to_owned()))
        }
    }

    /// Fails unless the caller is admin.
    pub fn require_admin(&self, rule: &str) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(rule.to_owned()))
        }
    }

    /// True when the caller owns `project_id` or is admin.
    pub fn owns(&self, project_id: &str) -> bool {
        self.is_admin() || self.project_id == project_id
    }
}

/// Expands role names with Keystone's default implications (admin ⇒ member ⇒ reader).
pub fn imply_roles(roles: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |role: &str| {
        if !out.iter().any(|r| r == role) {
            out.push(role.to_owned());
        }
    };
    for role in roles {
        push(&role);
        match role.as_str() {
            "admin" => {
                push("member");
                push("reader");
            }
            "member" => push("reader"),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_cannot_write() {
        let ctx = AuthContext {
            user_id: "u".into(),
            project_id: "p".into(),
            roles: imply_roles(["reader".to_owned()]),
        };
        assert!(ctx.require_read("get_network").is_ok());
        assert!(ctx.require_write("create_network").is_err());
        let admin = AuthContext {
            roles: imply_roles(["admin".to_owned()]),
            ..ctx.clone()
        };
        assert_eq!(admin.roles, ["admin", "member", "reader"]);
        assert!(admin.require_write("create_network").is_ok());
    }
}
