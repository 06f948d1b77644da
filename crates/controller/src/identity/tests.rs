//! Service tests without HTTP, on a temporary SQLite store: bootstrap, password
//! authentication, scoping, validation, expiry and every way a token gets revoked.

use std::{sync::Arc, time::Duration};

use sqlx::Row;

use super::{
    assignments::AssignmentFilter,
    resources::{ChangePassword, CreateProject, CreateRole, CreateUser, ListFilter, UpdateUser},
    token::{AuthIdentity, AuthRequest, DomainSelector, ProjectSelector, Scope, UserSelector},
    *,
};
use crate::{auth::AuthContext, config::Bootstrap};

const ADMIN_PASSWORD: &str = "admin-pw";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    identity: Identity,
    admin: AuthContext,
}

async fn fixture_with(ttl_secs: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Arc::new(Store::open(&url).await.unwrap());
    let config = Config {
        token_ttl_secs: ttl_secs,
        ..Config::default()
    };
    let identity = Identity::new(Arc::clone(&store), &config);
    let done = identity.bootstrap(&bootstrap_config()).await.unwrap();
    assert!(done.created_admin);
    assert_eq!(done.generated_password, None);
    let token = password_login(&identity, "admin", ADMIN_PASSWORD, Some("admin"))
        .await
        .unwrap()
        .token;
    let admin = identity.validate(&token).await.unwrap();
    Fixture {
        _dir: dir,
        store,
        identity,
        admin,
    }
}

async fn fixture() -> Fixture {
    fixture_with(3600).await
}

fn bootstrap_config() -> Bootstrap {
    Bootstrap {
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..Bootstrap::default()
    }
}

fn by_name(name: &str) -> UserSelector {
    UserSelector::Name {
        name: name.into(),
        domain: DomainSelector::Name("Default".into()),
    }
}

async fn password_login(
    identity: &Identity,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> Result<Issued, ApiError> {
    identity
        .issue(AuthRequest {
            identity: AuthIdentity::Password {
                user: by_name(user),
                password: password.into(),
            },
            scope: match project {
                Some(name) => Scope::Project(ProjectSelector::Name {
                    name: name.into(),
                    domain: DomainSelector::Id("default".into()),
                }),
                None => Scope::Unscoped,
            },
        })
        .await
}

/// A project `p1` and a user `alice` (password `alice-pw`) with `member` on it.
async fn alice(f: &Fixture) -> (Project, User) {
    let project = f
        .identity
        .create_project(
            &f.admin,
            CreateProject {
                name: "p1".into(),
                domain_id: None,
                parent_id: None,
                description: String::new(),
                enabled: true,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let user = f
        .identity
        .create_user(
            &f.admin,
            CreateUser {
                name: "alice".into(),
                domain_id: None,
                password: Some("alice-pw".into()),
                enabled: true,
                default_project_id: None,
                extra: UserExtra::default(),
            },
        )
        .await
        .unwrap();
    let member = role_named(f, "member").await;
    f.identity
        .grant(&f.admin, &project.id, &user.id, &member.id)
        .await
        .unwrap();
    (project, user)
}

async fn role_named(f: &Fixture, name: &str) -> Role {
    let filter = ListFilter {
        name: Some(name.into()),
        ..ListFilter::default()
    };
    f.identity
        .list_roles(&f.admin, &filter)
        .await
        .unwrap()
        .remove(0)
}

fn assert_unauthorized<T: std::fmt::Debug>(result: Result<T, ApiError>) {
    match result {
        Err(err) => assert_eq!(err.status(), 401, "{err}"),
        Ok(value) => panic!("expected a 401, got {value:?}"),
    }
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_keeps_a_changed_password() {
    let f = fixture().await;
    let filter = ListFilter::default();
    let roles: Vec<String> = f
        .identity
        .list_roles(&f.admin, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(roles, ["admin", "member", "reader"]);
    let domains = f
        .identity
        .list_domains(
            &f.admin,
            &ListFilter {
                name: Some("Default".into()),
                ..ListFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].id, "default");

    let admin_id = f.admin.user_id.clone();
    f.identity
        .update_user(
            &f.admin,
            &admin_id,
            UpdateUser {
                password: Some("changed".into()),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap();
    let again = f.identity.bootstrap(&bootstrap_config()).await.unwrap();
    assert_eq!(again, Bootstrapped::default());
    assert_unauthorized(password_login(&f.identity, "admin", ADMIN_PASSWORD, None).await);
    password_login(&f.identity, "admin", "changed", Some("admin"))
        .await
        .unwrap();
    let users = f
        .identity
        .list_users(&f.admin_after("changed").await, &filter)
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        f.identity
            .list_roles(&f.admin_after("changed").await, &filter)
            .await
            .unwrap()
            .len(),
        3
    );
}

impl Fixture {
    /// A fresh admin context (the admin's tokens are revoked when its password changes).
    async fn admin_after(&self, password: &str) -> AuthContext {
        let issued = password_login(&self.identity, "admin", password, Some("admin"))
            .await
            .unwrap();
        self.identity.validate(&issued.token).await.unwrap()
    }
}

#[tokio::test]
async fn bootstrap_generates_a_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Arc::new(Store::open(&url).await.unwrap());
    let identity = Identity::new(store, &Config::default());
    let first = identity.bootstrap(&Bootstrap::default()).await.unwrap();
    let password = first.generated_password.clone().unwrap();
    assert!(first.created_admin);
    password_login(&identity, "admin", &password, Some("admin"))
        .await
        .unwrap();
    assert_eq!(
        identity.bootstrap(&Bootstrap::default()).await.unwrap(),
        Bootstrapped::default()
    );
}

#[tokio::test]
async fn password_auth_by_name_or_id_and_scoping() {
    let f = fixture().await;
    let (project, user) = alice(&f).await;

    let issued = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap();
    assert_eq!(issued.token.len(), 64);
    let info = &issued.info;
    assert_eq!(info.methods, ["password"]);
    assert_eq!(info.user.id, user.id);
    assert_eq!(info.user_domain.name, "Default");
    assert_eq!(info.project.as_ref().unwrap().0.id, project.id);
    let roles: Vec<&str> = info.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(roles, ["member", "reader"]);
    assert_eq!(
        info.expires_at_us - info.issued_at_us,
        3600 * 1_000_000,
        "token_ttl_secs"
    );
    let ctx = f.identity.validate(&issued.token).await.unwrap();
    assert_eq!(
        ctx,
        AuthContext {
            user_id: user.id.clone(),
            project_id: project.id.clone(),
            roles: vec!["member".into(), "reader".into()],
        }
    );

    // By user id and project id, with the domain given by id.
    let by_id = f
        .identity
        .issue(AuthRequest {
            identity: AuthIdentity::Password {
                user: UserSelector::Id(user.id.clone()),
                password: "alice-pw".into(),
            },
            scope: Scope::Project(ProjectSelector::Id(project.id.clone())),
        })
        .await
        .unwrap();
    assert_eq!(by_id.info.project.unwrap().0.name, "p1");

    // Unscoped: no project, no roles; the networking policy then refuses everything.
    let unscoped = password_login(&f.identity, "alice", "alice-pw", None)
        .await
        .unwrap();
    assert!(unscoped.info.project.is_none());
    let ctx = f.identity.validate(&unscoped.token).await.unwrap();
    assert_eq!(ctx.project_id, "");
    assert!(ctx.require_read("get_network").is_err());

    // No scope and no default project: unscoped too; with a default project: scoped to it.
    let request = |scope| AuthRequest {
        identity: AuthIdentity::Password {
            user: by_name("alice"),
            password: "alice-pw".into(),
        },
        scope,
    };
    let plain = f.identity.issue(request(Scope::Default)).await.unwrap();
    assert!(plain.info.project.is_none());
    f.identity
        .update_user(
            &f.admin,
            &user.id,
            UpdateUser {
                default_project_id: Some(Some(project.id.clone())),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap();
    let defaulted = f.identity.issue(request(Scope::Default)).await.unwrap();
    assert_eq!(defaulted.info.project.unwrap().0.id, project.id);

    // A project the user has no role on, a missing project, a domain scope: all 401.
    assert_unauthorized(password_login(&f.identity, "alice", "alice-pw", Some("admin")).await);
    assert_unauthorized(password_login(&f.identity, "alice", "alice-pw", Some("nope")).await);
    assert_unauthorized(f.identity.issue(request(Scope::Other("domain"))).await);
    // Wrong password, unknown user, unknown domain.
    assert_unauthorized(password_login(&f.identity, "alice", "wrong", Some("p1")).await);
    assert_unauthorized(password_login(&f.identity, "bob", "alice-pw", Some("p1")).await);
    assert_unauthorized(
        f.identity
            .issue(AuthRequest {
                identity: AuthIdentity::Password {
                    user: UserSelector::Name {
                        name: "alice".into(),
                        domain: DomainSelector::Name("Nope".into()),
                    },
                    password: "alice-pw".into(),
                },
                scope: Scope::Unscoped,
            })
            .await,
    );
}

#[tokio::test]
async fn rescoping_with_the_token_method() {
    let f = fixture().await;
    let (project, _) = alice(&f).await;
    let unscoped = password_login(&f.identity, "alice", "alice-pw", None)
        .await
        .unwrap();
    let scoped = f
        .identity
        .issue(AuthRequest {
            identity: AuthIdentity::Token {
                token: unscoped.token.clone(),
            },
            scope: Scope::Project(ProjectSelector::Id(project.id.clone())),
        })
        .await
        .unwrap();
    assert_eq!(scoped.info.methods, ["password", "token"]);
    assert_eq!(scoped.info.expires_at_us, unscoped.info.expires_at_us);
    assert_eq!(scoped.info.audit_ids[1], unscoped.info.audit_ids[0]);
    assert_eq!(
        f.identity.validate(&scoped.token).await.unwrap().project_id,
        project.id
    );
}

#[tokio::test]
async fn tokens_expire() {
    let f = fixture_with(1).await;
    let (_, _) = alice(&f).await;
    let issued = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap();
    f.identity.validate(&issued.token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The cached entry knows its expiry; so does the store.
    assert_unauthorized(f.identity.validate(&issued.token).await);
    assert_eq!(
        f.identity
            .token_info(&f.admin_after(ADMIN_PASSWORD).await, &issued.token)
            .await
            .unwrap_err()
            .status(),
        404
    );
}

#[tokio::test]
async fn revoked_when_the_user_is_deleted_or_disabled_or_its_password_changes() {
    let f = fixture().await;
    let (_, user) = alice(&f).await;
    let login = || password_login(&f.identity, "alice", "alice-pw", Some("p1"));

    let token = login().await.unwrap().token;
    f.identity.validate(&token).await.unwrap();
    f.identity
        .update_user(
            &f.admin,
            &user.id,
            UpdateUser {
                enabled: Some(false),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    assert_unauthorized(login().await);
    f.identity
        .update_user(
            &f.admin,
            &user.id,
            UpdateUser {
                enabled: Some(true),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap();
    // Re-enabling does not bring revoked tokens back.
    assert_unauthorized(f.identity.validate(&token).await);

    let token = login().await.unwrap().token;
    let alice_ctx = f.identity.validate(&token).await.unwrap();
    f.identity
        .change_password(
            &alice_ctx,
            &user.id,
            ChangePassword {
                original_password: "alice-pw".into(),
                password: "new-pw".into(),
            },
        )
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    assert_unauthorized(login().await);

    let token = password_login(&f.identity, "alice", "new-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    f.identity.validate(&token).await.unwrap();
    f.identity.delete_user(&f.admin, &user.id).await.unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    let remaining = sqlx::query("SELECT COUNT(*) FROM tokens WHERE user_id = $1")
        .bind(user.id.as_str())
        .fetch_one(f.store.pool())
        .await
        .unwrap();
    assert_eq!(remaining.try_get::<i64, _>(0).unwrap(), 0);
}

#[tokio::test]
async fn revoked_when_the_role_is_removed_or_the_token_deleted() {
    let f = fixture().await;
    let (project, user) = alice(&f).await;
    let member = role_named(&f, "member").await;
    let reader = role_named(&f, "reader").await;
    f.identity
        .grant(&f.admin, &project.id, &user.id, &reader.id)
        .await
        .unwrap();
    let token = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    assert!(
        f.identity
            .validate(&token)
            .await
            .unwrap()
            .has_role("member")
    );
    // Roles are recomputed: removing member leaves reader, at once (the cache is evicted).
    f.identity
        .revoke_grant(&f.admin, &project.id, &user.id, &member.id)
        .await
        .unwrap();
    let ctx = f.identity.validate(&token).await.unwrap();
    assert_eq!(ctx.roles, ["reader"]);
    assert!(ctx.require_write("create_network").is_err());
    // No role left: the token is no longer valid.
    f.identity
        .revoke_grant(&f.admin, &project.id, &user.id, &reader.id)
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    assert_eq!(
        f.identity
            .revoke_grant(&f.admin, &project.id, &user.id, &reader.id)
            .await
            .unwrap_err()
            .status(),
        404
    );

    // DELETE /v3/auth/tokens: by its own user.
    f.identity
        .grant(&f.admin, &project.id, &user.id, &member.id)
        .await
        .unwrap();
    let token = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    let ctx = f.identity.validate(&token).await.unwrap();
    let info = f.identity.token_info(&ctx, &token).await.unwrap();
    assert_eq!(info.user.name, "alice");
    f.identity.revoke_token(&ctx, &token).await.unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    assert_eq!(
        f.identity
            .revoke_token(&f.admin, &token)
            .await
            .unwrap_err()
            .status(),
        404
    );

    // Deleting the project revokes the tokens scoped to it.
    let token = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    f.identity.validate(&token).await.unwrap();
    f.identity
        .delete_project(&f.admin, &project.id)
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
}

#[tokio::test]
async fn revoked_when_the_domain_is_disabled() {
    let f = fixture().await;
    let domain = f
        .identity
        .create_domain(
            &f.admin,
            resources::CreateDomain {
                name: "d2".into(),
                description: String::new(),
                enabled: true,
            },
        )
        .await
        .unwrap();
    let project = f
        .identity
        .create_project(
            &f.admin,
            CreateProject {
                name: "p2".into(),
                domain_id: Some(domain.id.clone()),
                parent_id: None,
                description: String::new(),
                enabled: true,
                tags: Vec::new(),
            },
        )
        .await
        .unwrap();
    let user = f
        .identity
        .create_user(
            &f.admin,
            CreateUser {
                name: "bob".into(),
                domain_id: Some(domain.id.clone()),
                password: Some("bob-pw".into()),
                enabled: true,
                default_project_id: None,
                extra: UserExtra::default(),
            },
        )
        .await
        .unwrap();
    let member = role_named(&f, "member").await;
    f.identity
        .grant(&f.admin, &project.id, &user.id, &member.id)
        .await
        .unwrap();
    let login = || {
        f.identity.issue(AuthRequest {
            identity: AuthIdentity::Password {
                user: UserSelector::Name {
                    name: "bob".into(),
                    domain: DomainSelector::Name("d2".into()),
                },
                password: "bob-pw".into(),
            },
            scope: Scope::Project(ProjectSelector::Id(project.id.clone())),
        })
    };
    let token = login().await.unwrap().token;
    f.identity.validate(&token).await.unwrap();
    let disable = |enabled| resources::UpdateDomain {
        enabled: Some(enabled),
        ..resources::UpdateDomain::default()
    };
    f.identity
        .update_domain(&f.admin, &domain.id, disable(false))
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    assert_unauthorized(login().await);
    // Disabled but still holding a project and a user: not deletable yet (409).
    assert_eq!(
        f.identity
            .delete_domain(&f.admin, &domain.id)
            .await
            .unwrap_err()
            .status(),
        409
    );
    f.identity
        .update_domain(&f.admin, &domain.id, disable(true))
        .await
        .unwrap();
    assert_unauthorized(f.identity.validate(&token).await);
    login().await.unwrap();
    assert_eq!(
        f.identity
            .update_domain(&f.admin, "default", disable(false))
            .await
            .unwrap_err()
            .status(),
        403
    );
}

#[tokio::test]
async fn another_replica_sees_a_revocation_within_the_cache_window() {
    let f = fixture().await;
    let (_, user) = alice(&f).await;
    let config = Config::default();
    let window = Duration::from_millis(300);
    let other = Identity::new(Arc::clone(&f.store), &config).with_cache_window(window);
    let token = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    other.validate(&token).await.unwrap();
    f.identity.delete_user(&f.admin, &user.id).await.unwrap();
    // `other` trusts its cache for the window, then asks the store.
    other.validate(&token).await.unwrap();
    tokio::time::sleep(window + Duration::from_millis(50)).await;
    assert_unauthorized(other.validate(&token).await);
}

#[tokio::test]
async fn management_policy_and_conflicts() {
    let f = fixture().await;
    let (project, user) = alice(&f).await;
    let token = password_login(&f.identity, "alice", "alice-pw", Some("p1"))
        .await
        .unwrap()
        .token;
    let alice_ctx = f.identity.validate(&token).await.unwrap();
    let all = ListFilter::default();

    // A member manages nothing, but reads itself and its project.
    let forbidden = |r: Result<_, ApiError>| match r {
        Err(err) => assert_eq!(err.status(), 403, "{err}"),
        Ok(()) => panic!("allowed"),
    };
    forbidden(f.identity.list_users(&alice_ctx, &all).await.map(drop));
    forbidden(f.identity.list_projects(&alice_ctx, &all).await.map(drop));
    forbidden(
        f.identity
            .create_role(
                &alice_ctx,
                CreateRole {
                    name: "x".into(),
                    description: String::new(),
                },
            )
            .await
            .map(drop),
    );
    forbidden(
        f.identity
            .user(&alice_ctx, &f.admin.user_id)
            .await
            .map(drop),
    );
    assert_eq!(
        f.identity.user(&alice_ctx, &user.id).await.unwrap().name,
        "alice"
    );
    assert_eq!(
        f.identity
            .project(&alice_ctx, &project.id)
            .await
            .unwrap()
            .name,
        "p1"
    );
    let mine = f.identity.auth_projects(&alice_ctx).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        f.identity
            .user_projects(&alice_ctx, &user.id)
            .await
            .unwrap(),
        mine
    );

    // Duplicate names are Keystone's 409 Conflict.
    let conflict = f
        .identity
        .create_user(
            &f.admin,
            CreateUser {
                name: "alice".into(),
                domain_id: Some("default".into()),
                password: None,
                enabled: true,
                default_project_id: None,
                extra: UserExtra::default(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(conflict.status(), 409);
    assert!(
        conflict.to_string().contains("Duplicate entry"),
        "{conflict}"
    );
    let conflict = f
        .identity
        .update_user(
            &f.admin,
            &user.id,
            UpdateUser {
                name: Some("admin".into()),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(conflict.status(), 409);
    let role = CreateRole {
        name: "observer".into(),
        description: String::new(),
    };
    f.identity
        .create_role(&f.admin, role.clone())
        .await
        .unwrap();
    assert_eq!(
        f.identity
            .create_role(&f.admin, role)
            .await
            .unwrap_err()
            .status(),
        409
    );
    let builtin = role_named(&f, "member").await;
    assert_eq!(
        f.identity
            .delete_role(&f.admin, &builtin.id)
            .await
            .unwrap_err()
            .status(),
        403
    );

    // Assignments, with names and implied roles.
    let filter = AssignmentFilter::parse(&format!("user.id={}&include_names", user.id));
    let list = f
        .identity
        .list_assignments(&alice_ctx, &filter)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].role_name, "member");
    assert_eq!(list[0].project_name, "p1");
    let filter = AssignmentFilter::parse(&format!("user.id={}&effective", user.id));
    let names: Vec<String> = f
        .identity
        .list_assignments(&f.admin, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.role_name)
        .collect();
    assert_eq!(names, ["member", "reader"]);
    forbidden(
        f.identity
            .list_assignments(&alice_ctx, &AssignmentFilter::default())
            .await
            .map(drop),
    );
}

#[tokio::test]
async fn every_write_is_logged_without_secrets() {
    let f = fixture().await;
    let (_, user) = alice(&f).await;
    f.identity
        .update_user(
            &f.admin,
            &user.id,
            UpdateUser {
                password: Some("other".into()),
                ..UpdateUser::default()
            },
        )
        .await
        .unwrap();
    let rows = sqlx::query("SELECT resource, operation, body FROM revisions ORDER BY rev")
        .fetch_all(f.store.pool())
        .await
        .unwrap();
    let log: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect();
    let count = |resource: &str| log.iter().filter(|(r, _)| r == resource).count();
    // Bootstrap: the domain, three roles, the admin project, user and assignment.
    assert_eq!(count("domain"), 1);
    assert_eq!(count("role"), 3);
    assert_eq!(count("project"), 2);
    assert_eq!(count("user"), 3, "{log:?}");
    assert_eq!(count("role_assignment"), 2);
    for row in &rows {
        let body: String = row.try_get(2).unwrap();
        assert!(!body.contains("argon2"), "{body}");
        assert!(!body.contains("password\""), "{body}");
    }
}
