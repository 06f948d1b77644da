//! The identity API over real HTTP, both listeners on 127.0.0.1:0 with Keystone auth: version
//! discovery, tokens and their use on the networking API (valid, bad, expired, revoked), a
//! catalog whose URLs answer, admin management in Keystone's shapes, and identity on
//! PostgreSQL too when `WEFT_TEST_POSTGRES_URL` is set.

mod support;

use std::time::Duration;

use controller::config::{AuthMode, Config};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use support::{Answer, Server, assert_neutron_error};

const ADMIN_PASSWORD: &str = "s3cret";

fn keystone(config: &mut Config) {
    config.auth = AuthMode::Keystone;
    config.bootstrap.admin_password = Some(ADMIN_PASSWORD.into());
}

/// A keep-alive client that can send any header.
#[derive(Clone)]
struct KeepAlive {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl KeepAlive {
    fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self
            .inner
            .request(request.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

/// A server, its two base URLs, a client and an admin token.
struct Setup {
    server: Server,
    identity: String,
    network: String,
    client: KeepAlive,
    admin: String,
}

async fn setup_with(tweak: impl FnOnce(&mut Config)) -> Setup {
    let server = Server::start(|config| {
        keystone(config);
        tweak(config);
    })
    .await;
    let identity = format!("http://{}", server.identity);
    let network = format!("http://{}", server.network);
    let client = KeepAlive::new();
    let mut setup = Setup {
        server,
        identity,
        network,
        client,
        admin: String::new(),
    };
    let answer = setup.login("admin", ADMIN_PASSWORD, Some("admin")).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    setup.admin = subject_token(&answer);
    setup
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

fn subject_token(answer: &Answer) -> String {
    answer.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_keystone_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.text);
    let error = &answer.body["error"];
    assert_eq!(error["code"], status, "{}", answer.text);
    assert!(error["title"].is_string(), "{}", answer.text);
    assert!(error["message"].is_string(), "{}", answer.text);
}

impl Setup {
    async fn login(&self, user: &str, password: &str, project: Option<&str>) -> Answer {
        let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}}});
        if let Some(project) = project {
            auth["scope"] = json!({"project": {"name": project, "domain": {"id": "default"}}});
        }
        self.client
            .send(
                Method::POST,
                &format!("{}/v3/auth/tokens", self.identity),
                &[],
                Some(json!({ "auth": auth })),
            )
            .await
    }

    /// An identity call as the admin.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = format!("{}{path}", self.identity);
        self.client
            .send(method, &url, &[("x-auth-token", &self.admin)], body)
            .await
    }

    async fn networks(&self, token: Option<&str>) -> Answer {
        let url = format!("{}/v2.0/networks", self.network);
        let headers: Vec<(&str, &str)> = token.map(|t| ("x-auth-token", t)).into_iter().collect();
        self.client.send(Method::GET, &url, &headers, None).await
    }

    /// A project `p1` with user `alice` (password `alice-pw`) as member; alice's token.
    async fn alice(&self) -> (String, String, String) {
        let project = self
            .admin(
                Method::POST,
                "/v3/projects",
                Some(json!({"project": {"name": "p1", "domain_id": "default"}})),
            )
            .await;
        assert_eq!(project.status, 201, "{}", project.text);
        let project_id = project.body["project"]["id"].as_str().unwrap().to_owned();
        let user = self
            .admin(
                Method::POST,
                "/v3/users",
                Some(json!({"user": {"name": "alice", "password": "alice-pw"}})),
            )
            .await;
        assert_eq!(user.status, 201, "{}", user.text);
        let user_id = user.body["user"]["id"].as_str().unwrap().to_owned();
        let roles = self.admin(Method::GET, "/v3/roles?name=member", None).await;
        let role_id = roles.body["roles"][0]["id"].as_str().unwrap().to_owned();
        let grant = self
            .admin(
                Method::PUT,
                &format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
                None,
            )
            .await;
        assert_eq!(grant.status, 204, "{}", grant.text);
        let login = self.login("alice", "alice-pw", Some("p1")).await;
        assert_eq!(login.status, 201, "{}", login.text);
        (project_id, user_id, subject_token(&login))
    }
}

#[tokio::test]
async fn version_discovery_points_back_at_the_server() {
    let s = setup().await;
    let root = s
        .client
        .send(Method::GET, &format!("{}/", s.identity), &[], None)
        .await;
    assert_eq!(root.status, 300, "{}", root.text);
    let version = &root.body["versions"]["values"][0];
    assert_eq!(version["id"], "v3.14");
    assert_eq!(version["status"], "stable");
    let href = version["links"][0]["href"].as_str().unwrap();
    assert_eq!(href, format!("{}/v3/", s.identity));
    // The client follows the href.
    let v3 = s.client.send(Method::GET, href, &[], None).await;
    assert_eq!(v3.status, 200);
    assert_eq!(v3.body["version"]["links"][0]["href"], href);
    let v3 = s
        .client
        .send(Method::GET, &format!("{}/v3", s.identity), &[], None)
        .await;
    assert_eq!(v3.body["version"]["id"], "v3.14");
    assert!(v3.headers.contains_key("x-openstack-request-id"));
}

#[tokio::test]
async fn a_token_opens_the_networking_api_and_its_catalog_answers() {
    let s = setup().await;
    let login = s.login("admin", ADMIN_PASSWORD, Some("admin")).await;
    let token = &login.body["token"];
    assert_eq!(token["methods"], json!(["password"]));
    assert_eq!(token["user"]["name"], "admin");
    assert_eq!(
        token["user"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(token["project"]["name"], "admin");
    let roles: Vec<&str> = token["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["admin", "member", "reader"]);
    let expires = token["expires_at"].as_str().unwrap();
    assert_eq!(
        expires.len(),
        "2026-11-21T10:00:00.000000Z".len(),
        "{expires}"
    );
    assert!(expires.ends_with('Z'));
    assert_eq!(token["audit_ids"].as_array().unwrap().len(), 1);

    // Every catalog URL answers (the networking API is on its own port).
    let catalog = token["catalog"].as_array().unwrap();
    let network = catalog.iter().find(|s| s["type"] == "network").unwrap();
    assert_eq!(network["name"], "neutron");
    for service in catalog {
        for endpoint in service["endpoints"].as_array().unwrap() {
            assert_eq!(endpoint["region_id"], "RegionOne");
            let url = endpoint["url"].as_str().unwrap();
            let answer = s
                .client
                .send(Method::GET, &format!("{url}/"), &[], None)
                .await;
            assert!(
                answer.status == 200 || answer.status == 300,
                "{url}: {}",
                answer.text
            );
        }
    }
    assert_eq!(
        network["endpoints"][0]["url"],
        format!("http://{}", s.server.network)
    );

    let answer = s.networks(Some(&s.admin)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["networks"], json!([]));

    // The same catalog as services, endpoints and regions (`openstack endpoint list`).
    let listed = s.admin(Method::GET, "/v3/endpoints", None).await;
    let listed = listed.body["endpoints"].as_array().unwrap();
    assert_eq!(listed.len(), 6);
    assert!(
        listed
            .iter()
            .any(|e| e["url"] == network["endpoints"][0]["url"])
    );
    let services = s.admin(Method::GET, "/v3/services", None).await;
    assert_eq!(services.body["services"][1]["id"], network["id"]);
    let regions = s.admin(Method::GET, "/v3/regions", None).await;
    assert_eq!(regions.body["regions"][0]["id"], "RegionOne");

    // `?nocatalog` leaves it out.
    let bare = s
        .client
        .send(
            Method::POST,
            &format!("{}/v3/auth/tokens?nocatalog", s.identity),
            &[],
            Some(
                json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
                "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}),
            ),
        )
        .await;
    assert_eq!(bare.status, 201, "{}", bare.text);
    assert!(bare.body["token"].get("catalog").is_none());
}

#[tokio::test]
async fn bad_missing_expired_and_revoked_tokens_are_401_with_a_body() {
    let s = setup_with(|config| config.token_ttl_secs = 1).await;
    assert_neutron_error_401(&s.networks(None).await);
    assert_neutron_error_401(&s.networks(Some("nonsense")).await);
    assert_neutron_error_401(&s.networks(Some(&"0".repeat(64))).await);
    let wrong = s.login("admin", "wrong", Some("admin")).await;
    assert_keystone_error(&wrong, 401);
    assert!(wrong.headers.contains_key("www-authenticate"));

    // Revoked: DELETE /v3/auth/tokens, then 404 on GET and 401 on use.
    let token = subject_token(&s.login("admin", ADMIN_PASSWORD, Some("admin")).await);
    assert_eq!(s.networks(Some(&token)).await.status, 200);
    let url = format!("{}/v3/auth/tokens", s.identity);
    let headers = [
        ("x-auth-token", s.admin.as_str()),
        ("x-subject-token", &token),
    ];
    let shown = s.client.send(Method::GET, &url, &headers, None).await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.headers["x-subject-token"], token.as_str());
    assert_eq!(shown.body["token"]["project"]["name"], "admin");
    let head = s.client.send(Method::HEAD, &url, &headers, None).await;
    assert_eq!(head.status, 200);
    let revoked = s.client.send(Method::DELETE, &url, &headers, None).await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert_neutron_error_401(&s.networks(Some(&token)).await);
    assert_keystone_error(&s.client.send(Method::GET, &url, &headers, None).await, 404);

    // Expired: the TTL is one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_neutron_error_401(&s.networks(Some(&s.admin)).await);
    let expired = s.admin(Method::GET, "/v3/users", None).await;
    assert_keystone_error(&expired, 401);
}

fn assert_neutron_error_401(answer: &Answer) {
    assert_neutron_error(answer, 401, "HTTPUnauthorized");
}

#[tokio::test]
async fn admin_manages_identity_in_keystones_shapes() {
    let s = setup().await;
    let domains = s.admin(Method::GET, "/v3/domains?name=Default", None).await;
    assert_eq!(domains.status, 200, "{}", domains.text);
    assert_eq!(domains.body["domains"][0]["id"], "default");
    assert_eq!(
        domains.body["domains"][0]["links"]["self"],
        format!("{}/v3/domains/default", s.identity)
    );
    assert_eq!(
        domains.body["links"]["self"],
        format!("{}/v3/domains", s.identity)
    );

    let (project_id, user_id, alice) = s.alice().await;
    // alice works on the networking API in her project.
    let net = s
        .client
        .send(
            Method::POST,
            &format!("{}/v2.0/networks", s.network),
            &[("x-auth-token", &alice)],
            Some(json!({"network": {"name": "n1"}})),
        )
        .await;
    assert_eq!(net.status, 201, "{}", net.text);
    assert_eq!(net.body["network"]["project_id"], project_id.as_str());

    // Duplicates are 409 Conflict; unknown ids 404; bad bodies 400; all Keystone-shaped.
    let duplicate = s
        .admin(
            Method::POST,
            "/v3/users",
            Some(json!({"user": {"name": "alice", "domain_id": "default"}})),
        )
        .await;
    assert_keystone_error(&duplicate, 409);
    assert_eq!(duplicate.body["error"]["title"], "Conflict");
    assert_keystone_error(&s.admin(Method::GET, "/v3/users/nope", None).await, 404);
    assert_keystone_error(&s.admin(Method::GET, "/v3/nothing/here", None).await, 404);
    let malformed = s
        .client
        .send(
            Method::POST,
            &format!("{}/v3/projects", s.identity),
            &[
                ("x-auth-token", &s.admin),
                ("content-type", "application/json"),
            ],
            None,
        )
        .await;
    assert_keystone_error(&malformed, 400);
    let unknown = s
        .admin(
            Method::POST,
            "/v3/projects",
            Some(json!({"project": {"nmae": "x"}})),
        )
        .await;
    assert_keystone_error(&unknown, 400);

    // A member manages nothing, but may read itself.
    let headers = [("x-auth-token", alice.as_str())];
    let forbidden = s
        .client
        .send(
            Method::GET,
            &format!("{}/v3/users", s.identity),
            &headers,
            None,
        )
        .await;
    assert_keystone_error(&forbidden, 403);
    let me = s
        .client
        .send(
            Method::GET,
            &format!("{}/v3/users/{user_id}", s.identity),
            &headers,
            None,
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert!(me.body["user"].get("password").is_none());
    let mine = s
        .client
        .send(
            Method::GET,
            &format!("{}/v3/auth/projects", s.identity),
            &headers,
            None,
        )
        .await;
    assert_eq!(mine.body["projects"][0]["id"], project_id.as_str());

    // Assignments: listed with names; HEAD checks one; deleting the user revokes alice.
    let list = s
        .admin(
            Method::GET,
            &format!("/v3/role_assignments?user.id={user_id}&include_names"),
            None,
        )
        .await;
    let entry = &list.body["role_assignments"][0];
    assert_eq!(entry["role"]["name"], "member");
    assert_eq!(entry["scope"]["project"]["name"], "p1");
    assert_eq!(entry["user"]["domain"]["name"], "Default");
    let grant = entry["links"]["assignment"].as_str().unwrap().to_owned();
    let check = s
        .client
        .send(Method::HEAD, &grant, &[("x-auth-token", &s.admin)], None)
        .await;
    assert_eq!(check.status, 204);
    let roles = s
        .admin(
            Method::GET,
            &format!("/v3/projects/{project_id}/users/{user_id}/roles"),
            None,
        )
        .await;
    assert_eq!(roles.body["roles"][0]["name"], "member");

    let deleted = s
        .admin(Method::DELETE, &format!("/v3/users/{user_id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    assert_neutron_error_401(&s.networks(Some(&alice)).await);
    let check = s
        .client
        .send(Method::HEAD, &grant, &[("x-auth-token", &s.admin)], None)
        .await;
    assert_eq!(check.status, 404);
}

#[tokio::test]
async fn removing_the_role_revokes_the_token_at_once() {
    let s = setup().await;
    let (project_id, user_id, alice) = s.alice().await;
    assert_eq!(s.networks(Some(&alice)).await.status, 200);
    let roles = s.admin(Method::GET, "/v3/roles?name=member", None).await;
    let role_id = roles.body["roles"][0]["id"].as_str().unwrap();
    let removed = s
        .admin(
            Method::DELETE,
            &format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_neutron_error_401(&s.networks(Some(&alice)).await);
    // The user can no longer get a token for that project either.
    assert_keystone_error(&s.login("alice", "alice-pw", Some("p1")).await, 401);
    // But still an unscoped one.
    assert_eq!(s.login("alice", "alice-pw", None).await.status, 201);
}

/// Identity on every configured backend (SQLite; PostgreSQL with `WEFT_TEST_POSTGRES_URL`):
/// bootstrap twice, log in, validate, revoke.
#[tokio::test]
async fn identity_on_every_backend() {
    for db in support::test_databases().await {
        let s = setup_with(|config| config.database_url = Some(db.url.clone())).await;
        let (_, user_id, alice) = s.alice().await;
        assert_eq!(s.networks(Some(&alice)).await.status, 200, "{}", db.name);
        let again = s
            .server
            .state
            .identity
            .bootstrap(&s.server.state.config.bootstrap)
            .await
            .unwrap();
        assert!(!again.created_admin, "{}", db.name);
        // An unscoped token (no project row to join) still validates.
        let unscoped = subject_token(&s.login("alice", "alice-pw", None).await);
        let projects = s
            .client
            .send(
                Method::GET,
                &format!("{}/v3/auth/projects", s.identity),
                &[("x-auth-token", &unscoped)],
                None,
            )
            .await;
        assert_eq!(projects.body["projects"][0]["name"], "p1", "{}", db.name);
        let effective = s
            .admin(
                Method::GET,
                &format!("/v3/role_assignments?user.id={user_id}&effective&include_names"),
                None,
            )
            .await;
        let names: Vec<&str> = effective.body["role_assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["role"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["member", "reader"], "{}", db.name);
        let disabled = s
            .admin(
                Method::PATCH,
                &format!("/v3/users/{user_id}"),
                Some(json!({"user": {"enabled": false}})),
            )
            .await;
        assert_eq!(disabled.status, 200, "{}: {}", db.name, disabled.text);
        assert_eq!(disabled.body["user"]["enabled"], false);
        assert_neutron_error_401(&s.networks(Some(&alice)).await);
        let dup = s
            .admin(
                Method::POST,
                "/v3/projects",
                Some(json!({"project": {"name": "p1"}})),
            )
            .await;
        assert_keystone_error(&dup, 409);
        // The failed insert left the (PostgreSQL) connection usable.
        let list = s.admin(Method::GET, "/v3/projects?name=p1", None).await;
        assert_eq!(
            list.body["projects"].as_array().unwrap().len(),
            1,
            "{}",
            db.name
        );
    }
}
