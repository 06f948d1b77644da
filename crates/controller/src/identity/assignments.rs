//! Role assignments (a user's role on a project): grant, check, revoke, list; and the projects
//! a user can scope to. Removing an assignment takes effect on the next validation of the
//! user's tokens for that project, because validation reads roles from here.

use sqlx::Row;

use crate::{
    auth::{AuthContext, imply_roles},
    error::{ApiError, Kind},
    identity::{
        Identity, PROJECT_COLUMNS, Project, Role, project_from, record,
        resources::{existing_project, existing_role, existing_user},
        role_by_name,
    },
    network::input::parse_bool_str,
    store::Operation,
};

/// The filters of `GET /v3/role_assignments`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentFilter {
    /// `user.id`.
    pub user_id: Option<String>,
    /// `scope.project.id`.
    pub project_id: Option<String>,
    /// `role.id`.
    pub role_id: Option<String>,
    /// `include_names`: add names (and domains) to each entry.
    pub include_names: bool,
    /// `effective`: add the roles implied by the assigned ones.
    pub effective: bool,
    /// A filter on what weft has no assignments of (groups, domain or system scope): the
    /// answer is empty.
    pub matches_nothing: bool,
}

/// A query flag: present without a value, or with a true value.
fn flag(value: &str) -> bool {
    value.is_empty() || parse_bool_str(value).unwrap_or(true)
}

impl AssignmentFilter {
    /// Parses a query string; unknown parameters are ignored, as Keystone does.
    pub fn parse(query: &str) -> Self {
        let mut filter = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "user.id" => filter.user_id = Some(value.into_owned()),
                "scope.project.id" => filter.project_id = Some(value.into_owned()),
                "role.id" => filter.role_id = Some(value.into_owned()),
                "include_names" => filter.include_names = flag(&value),
                "effective" => filter.effective = flag(&value),
                "group.id" | "scope.domain.id" | "scope.system" => filter.matches_nothing = true,
                _ => {}
            }
        }
        filter
    }
}

/// One assignment with the names `include_names` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The role.
    pub role_id: String,
    /// Its name.
    pub role_name: String,
    /// The user.
    pub user_id: String,
    /// Its name.
    pub user_name: String,
    /// Its domain.
    pub user_domain_id: String,
    /// That domain's name.
    pub user_domain_name: String,
    /// The project.
    pub project_id: String,
    /// Its name.
    pub project_name: String,
    /// Its domain.
    pub project_domain_id: String,
    /// That domain's name.
    pub project_domain_name: String,
    /// True for an entry `effective` added: implied by another role, not assigned.
    pub implied: bool,
}

fn assignment_id(project_id: &str, user_id: &str, role_id: &str) -> String {
    format!("{project_id}/{user_id}/{role_id}")
}

impl Identity {
    /// `PUT /v3/projects/{p}/users/{u}/roles/{r}`: idempotent.
    pub async fn grant(
        &self,
        ctx: &AuthContext,
        project_id: &str,
        user_id: &str,
        role_id: &str,
    ) -> Result<(), ApiError> {
        ctx.require_admin("identity:create_grant")?;
        let mut tx = self.store.write().await?;
        existing_project(tx.conn(), project_id).await?;
        existing_user(tx.conn(), user_id).await?;
        let role = existing_role(tx.conn(), role_id).await?;
        let done = sqlx::query(
            "INSERT INTO role_assignments (project_id, user_id, role_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(role_id)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() > 0 {
            record(
                &mut tx,
                "role_assignment",
                &assignment_id(project_id, user_id, role_id),
                Operation::Create,
                serde_json::json!({"project_id": project_id, "user_id": user_id,
                    "role_id": role_id, "role_name": role.name}),
            );
        }
        tx.commit().await?;
        // A token validated while the user had no role here was refused, not cached; one
        // cached with fewer roles must see the new one.
        self.cache.evict_grant(user_id, project_id);
        Ok(())
    }

    /// `HEAD /v3/projects/{p}/users/{u}/roles/{r}`: 404 unless assigned.
    pub async fn check_grant(
        &self,
        ctx: &AuthContext,
        project_id: &str,
        user_id: &str,
        role_id: &str,
    ) -> Result<(), ApiError> {
        if ctx.user_id != user_id || ctx.user_id.is_empty() {
            ctx.require_admin("identity:check_grant")?;
        }
        let mut conn = self.store.pool().acquire().await?;
        existing_project(&mut conn, project_id).await?;
        existing_user(&mut conn, user_id).await?;
        existing_role(&mut conn, role_id).await?;
        let row = sqlx::query(
            "SELECT 1 FROM role_assignments WHERE project_id = $1 AND user_id = $2 \
             AND role_id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(role_id)
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(
                Kind::RoleAssignment,
                assignment_id(project_id, user_id, role_id),
            )),
        }
    }

    /// `DELETE /v3/projects/{p}/users/{u}/roles/{r}`: the user's tokens for that project lose
    /// the role at once (and are refused when no role is left).
    pub async fn revoke_grant(
        &self,
        ctx: &AuthContext,
        project_id: &str,
        user_id: &str,
        role_id: &str,
    ) -> Result<(), ApiError> {
        ctx.require_admin("identity:revoke_grant")?;
        let mut tx = self.store.write().await?;
        existing_project(tx.conn(), project_id).await?;
        existing_user(tx.conn(), user_id).await?;
        let role = existing_role(tx.conn(), role_id).await?;
        let done = sqlx::query(
            "DELETE FROM role_assignments WHERE project_id = $1 AND user_id = $2 AND role_id = $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(role_id)
        .execute(tx.conn())
        .await?;
        let id = assignment_id(project_id, user_id, role_id);
        if done.rows_affected() == 0 {
            return Err(ApiError::not_found(Kind::RoleAssignment, id));
        }
        record(
            &mut tx,
            "role_assignment",
            &id,
            Operation::Delete,
            serde_json::json!({"project_id": project_id, "user_id": user_id,
                "role_id": role_id, "role_name": role.name}),
        );
        tx.commit().await?;
        self.cache.evict_grant(user_id, project_id);
        Ok(())
    }

    /// `GET /v3/projects/{p}/users/{u}/roles`: the roles assigned (not implied).
    pub async fn list_grants(
        &self,
        ctx: &AuthContext,
        project_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, ApiError> {
        if ctx.user_id != user_id || ctx.user_id.is_empty() {
            ctx.require_admin("identity:list_grants")?;
        }
        let mut conn = self.store.pool().acquire().await?;
        existing_project(&mut conn, project_id).await?;
        existing_user(&mut conn, user_id).await?;
        let rows = sqlx::query(
            "SELECT r.id, r.name, r.description FROM role_assignments a \
             JOIN roles r ON r.id = a.role_id WHERE a.project_id = $1 AND a.user_id = $2 \
             ORDER BY r.name",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(super::role_from).collect()
    }

    /// `GET /v3/role_assignments`: admin, or a user asking about itself (`user.id`).
    pub async fn list_assignments(
        &self,
        ctx: &AuthContext,
        filter: &AssignmentFilter,
    ) -> Result<Vec<Assignment>, ApiError> {
        let own = !ctx.user_id.is_empty() && filter.user_id.as_deref() == Some(&ctx.user_id);
        if !own {
            ctx.require_admin("identity:list_role_assignments")?;
        }
        if filter.matches_nothing {
            return Ok(Vec::new());
        }
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        for (column, value) in [
            ("a.user_id", &filter.user_id),
            ("a.project_id", &filter.project_id),
        ] {
            if let Some(value) = value {
                binds.push(value.clone());
                clauses.push(format!("{column} = ${}", binds.len()));
            }
        }
        // With `effective`, the role filter applies after implication.
        if let Some(role) = filter.role_id.as_ref().filter(|_| !filter.effective) {
            binds.push(role.clone());
            clauses.push(format!("a.role_id = ${}", binds.len()));
        }
        let mut sql = String::from(
            "SELECT a.role_id, r.name, a.user_id, u.name, u.domain_id, ud.name, a.project_id, \
             p.name, p.domain_id, pd.name FROM role_assignments a \
             JOIN roles r ON r.id = a.role_id JOIN users u ON u.id = a.user_id \
             JOIN domains ud ON ud.id = u.domain_id JOIN projects p ON p.id = a.project_id \
             JOIN domains pd ON pd.id = p.domain_id",
        );
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY a.project_id, a.user_id, r.name");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = query.bind(bind);
        }
        let mut conn = self.store.pool().acquire().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        let mut list = Vec::with_capacity(rows.len());
        for row in &rows {
            list.push(Assignment {
                role_id: row.try_get(0)?,
                role_name: row.try_get(1)?,
                user_id: row.try_get(2)?,
                user_name: row.try_get(3)?,
                user_domain_id: row.try_get(4)?,
                user_domain_name: row.try_get(5)?,
                project_id: row.try_get(6)?,
                project_name: row.try_get(7)?,
                project_domain_id: row.try_get(8)?,
                project_domain_name: row.try_get(9)?,
                implied: false,
            });
        }
        if filter.effective {
            list = self.with_implied(&mut conn, list).await?;
            if let Some(role) = &filter.role_id {
                list.retain(|a| a.role_id == *role);
            }
        }
        Ok(list)
    }

    /// Adds, per (project, user), the roles its assigned ones imply.
    async fn with_implied(
        &self,
        conn: &mut sqlx::AnyConnection,
        list: Vec<Assignment>,
    ) -> Result<Vec<Assignment>, ApiError> {
        let mut out: Vec<Assignment> = Vec::with_capacity(list.len());
        let mut start = 0;
        while start < list.len() {
            let key = (&list[start].project_id, &list[start].user_id);
            let end = list[start..]
                .iter()
                .position(|a| (&a.project_id, &a.user_id) != key)
                .map_or(list.len(), |n| start + n);
            let group = &list[start..end];
            out.extend(group.iter().cloned());
            for name in imply_roles(group.iter().map(|a| a.role_name.clone())) {
                if group.iter().any(|a| a.role_name == name) {
                    continue;
                }
                if let Some(role) = role_by_name(conn, &name).await? {
                    out.push(Assignment {
                        role_id: role.id,
                        role_name: role.name,
                        implied: true,
                        ..group[0].clone()
                    });
                }
            }
            start = end;
        }
        Ok(out)
    }

    /// `GET /v3/users/{id}/projects`: the projects the user has a role on (admin or itself).
    pub async fn user_projects(
        &self,
        ctx: &AuthContext,
        user_id: &str,
    ) -> Result<Vec<Project>, ApiError> {
        if ctx.user_id != user_id || ctx.user_id.is_empty() {
            ctx.require_admin("identity:list_user_projects")?;
        }
        let mut conn = self.store.pool().acquire().await?;
        existing_user(&mut conn, user_id).await?;
        self.projects_of(&mut conn, user_id, false).await
    }

    /// `GET /v3/auth/projects`: the enabled projects the caller can scope a token to.
    pub async fn auth_projects(&self, ctx: &AuthContext) -> Result<Vec<Project>, ApiError> {
        let mut conn = self.store.pool().acquire().await?;
        self.projects_of(&mut conn, &ctx.user_id, true).await
    }

    async fn projects_of(
        &self,
        conn: &mut sqlx::AnyConnection,
        user_id: &str,
        enabled_only: bool,
    ) -> Result<Vec<Project>, ApiError> {
        let enabled = if enabled_only {
            " AND enabled = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id IN \
             (SELECT project_id FROM role_assignments WHERE user_id = $1){enabled} \
             ORDER BY name, id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id);
        if enabled_only {
            query = query.bind(true);
        }
        let rows = query.fetch_all(conn).await?;
        rows.iter().map(project_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignment_filters() {
        assert_eq!(
            AssignmentFilter::parse("user.id=u&scope.project.id=p&include_names"),
            AssignmentFilter {
                user_id: Some("u".into()),
                project_id: Some("p".into()),
                include_names: true,
                ..AssignmentFilter::default()
            }
        );
        let filter = AssignmentFilter::parse("role.id=r&effective=True&include_names=False");
        assert_eq!(filter.role_id.as_deref(), Some("r"));
        assert!(filter.effective);
        assert!(!filter.include_names);
        assert!(AssignmentFilter::parse("group.id=g").matches_nothing);
        assert!(AssignmentFilter::parse("scope.domain.id=default").matches_nothing);
        assert!(!AssignmentFilter::parse("user.domain.id=default").matches_nothing);
    }
}
