//! First start: the `Default` domain, the built-in roles, and — while the store has no users —
//! the admin project, the admin user and its admin role. Idempotent: a restart creates only
//! what is missing and never touches an existing user (a changed password stays changed).

use serde_json::json;
use sqlx::Row;

use crate::{
    config::Bootstrap,
    error::ApiError,
    identity::{
        BUILTIN_ROLES, DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, Domain, Identity, Project, Role,
        User, UserExtra, new_id, password, project_by_name, record, resources::insert_role,
        role_by_name,
    },
    store::{Operation, now},
};

/// What [`Identity::bootstrap`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bootstrapped {
    /// True when this start created the admin user (the store had no users).
    pub created_admin: bool,
    /// The admin's password when this start generated it: shown once, stored nowhere.
    pub generated_password: Option<String>,
}

async fn user_count(conn: &mut sqlx::AnyConnection) -> Result<i64, ApiError> {
    let row = sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

impl Identity {
    /// Creates what a first start needs; see the module documentation.
    pub async fn bootstrap(&self, config: &Bootstrap) -> Result<Bootstrapped, ApiError> {
        // Decide outside the transaction whether an admin is needed, so the slow password hash
        // is not computed while holding the writer lane; re-checked inside.
        let mut conn = self.store.pool().acquire().await?;
        let needs_admin = user_count(&mut conn).await? == 0;
        drop(conn);
        let (password, generated) = match (&config.admin_password, needs_admin) {
            (_, false) => (None, None),
            (Some(given), true) => (Some(given.clone()), None),
            (None, true) => {
                let fresh = password::generate()?;
                (Some(fresh.clone()), Some(fresh))
            }
        };
        let hash = match password {
            Some(password) => Some(password::hash(password).await?),
            None => None,
        };

        let mut tx = self.store.write().await?;
        let domain = Domain {
            id: DEFAULT_DOMAIN_ID.into(),
            name: DEFAULT_DOMAIN_NAME.into(),
            description: "The default domain".into(),
            enabled: true,
        };
        let done = sqlx::query(
            "INSERT INTO domains (id, name, description, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(domain.id.as_str())
        .bind(domain.name.as_str())
        .bind(domain.description.as_str())
        .bind(domain.enabled)
        .bind(now())
        .execute(tx.conn())
        .await?;
        if done.rows_affected() > 0 {
            record(
                &mut tx,
                "domain",
                &domain.id,
                Operation::Create,
                domain.to_json(),
            );
        }
        for name in BUILTIN_ROLES {
            let role = Role {
                id: new_id(),
                name: name.into(),
                description: String::new(),
            };
            if insert_role(tx.conn(), &role).await? {
                record(&mut tx, "role", &role.id, Operation::Create, role.to_json());
            }
        }

        let mut created_admin = false;
        // Another replica may have bootstrapped since the count above.
        if let Some(hash) = hash
            && user_count(tx.conn()).await? == 0
        {
            let project =
                match project_by_name(tx.conn(), DEFAULT_DOMAIN_ID, &config.admin_project).await? {
                    Some(project) => project,
                    None => {
                        let project = Project {
                            id: new_id(),
                            domain_id: DEFAULT_DOMAIN_ID.into(),
                            name: config.admin_project.clone(),
                            description: "Bootstrap project for initializing the cloud.".into(),
                            enabled: true,
                            tags: Vec::new(),
                        };
                        sqlx::query(
                        "INSERT INTO projects (id, domain_id, name, description, enabled, tags, \
                         created_at) VALUES ($1, $2, $3, $4, $5, '[]', $6)",
                    )
                    .bind(project.id.as_str())
                    .bind(project.domain_id.as_str())
                    .bind(project.name.as_str())
                    .bind(project.description.as_str())
                    .bind(project.enabled)
                    .bind(now())
                    .execute(tx.conn())
                    .await?;
                        record(
                            &mut tx,
                            "project",
                            &project.id,
                            Operation::Create,
                            project.to_json(),
                        );
                        project
                    }
                };
            let user = User {
                id: new_id(),
                domain_id: DEFAULT_DOMAIN_ID.into(),
                name: config.admin_user.clone(),
                enabled: true,
                default_project_id: None,
                extra: UserExtra::default(),
            };
            let done = sqlx::query(
                "INSERT INTO users (id, domain_id, name, enabled, password_hash, \
                 default_project_id, extra, created_at) \
                 VALUES ($1, $2, $3, $4, $5, '', '{}', $6) ON CONFLICT DO NOTHING",
            )
            .bind(user.id.as_str())
            .bind(user.domain_id.as_str())
            .bind(user.name.as_str())
            .bind(user.enabled)
            .bind(hash)
            .bind(now())
            .execute(tx.conn())
            .await?;
            if done.rows_affected() > 0 {
                record(&mut tx, "user", &user.id, Operation::Create, user.to_json());
                let admin = role_by_name(tx.conn(), "admin")
                    .await?
                    .ok_or_else(|| ApiError::Internal("the admin role vanished".into()))?;
                sqlx::query(
                    "INSERT INTO role_assignments (project_id, user_id, role_id) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(project.id.as_str())
                .bind(user.id.as_str())
                .bind(admin.id.as_str())
                .execute(tx.conn())
                .await?;
                record(
                    &mut tx,
                    "role_assignment",
                    &format!("{}/{}/{}", project.id, user.id, admin.id),
                    Operation::Create,
                    json!({"project_id": project.id, "user_id": user.id, "role_id": admin.id,
                        "role_name": admin.name}),
                );
                created_admin = true;
            }
        }
        tx.commit().await?;
        Ok(Bootstrapped {
            created_admin,
            generated_password: generated.filter(|_| created_admin),
        })
    }
}
