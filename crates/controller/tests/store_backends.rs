//! The service on each store backend (SQLite always, PostgreSQL when `WEFT_TEST_POSTGRES_URL`
//! is set, as `.ci/run` does): allocation under concurrency, the revision log, and tenant
//! isolation and policy.

mod support;

use std::{collections::HashSet, sync::Arc};

use controller::{
    App, AppState,
    auth::{AuthContext, imply_roles},
    config::Config,
    error::ApiError,
    network::{
        NETWORKS, PORTS,
        networks::{CreateNetwork, UpdateNetwork},
        ports::CreatePort,
        subnets::CreateSubnet,
    },
};
use serde_json::{Map, Value, json};
use sqlx::Row;
use support::test_databases;

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn ctx(project: &str, role: &str) -> AuthContext {
    AuthContext {
        user_id: format!("user-{project}-{role}"),
        project_id: project.into(),
        roles: imply_roles([role.to_owned()]),
    }
}

async fn open(url: &str, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut config = Config {
        database_url: Some(url.to_owned()),
        ..Config::default()
    };
    tweak(&mut config);
    App::open(config).await.unwrap()
}

fn id_of(text: &str, resource: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap();
    value[resource]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_port_creates_never_share_an_address() {
    for db in test_databases().await {
        let app = open(&db.url, |_| {}).await;
        let admin = ctx("p1", "admin");
        let net = app
            .network
            .create_network(
                &admin,
                CreateNetwork::parse(obj(json!({"network": {"name": "n"}}))).unwrap(),
            )
            .await
            .unwrap();
        let net_id = id_of(&net, "network");
        // A /27 holds 29 addresses once the gateway is out.
        let subnet =
            json!({"subnet": {"network_id": net_id, "cidr": "10.9.0.0/27", "ip_version": 4}});
        app.network
            .create_subnet(&admin, CreateSubnet::parse(obj(subnet)).unwrap())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let app = Arc::clone(&app);
            let admin = admin.clone();
            let net_id = net_id.clone();
            tasks.push(tokio::spawn(async move {
                let cmd = CreatePort::parse(obj(json!({"port": {"network_id": net_id}}))).unwrap();
                app.network.create_port(&admin, cmd).await
            }));
        }
        let (mut ips, mut macs, mut exhausted) = (HashSet::new(), HashSet::new(), 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(text) => {
                    let port: Value = serde_json::from_str(&text).unwrap();
                    assert!(
                        ips.insert(
                            port["port"]["fixed_ips"][0]["ip_address"]
                                .as_str()
                                .unwrap()
                                .to_owned()
                        ),
                        "{}: duplicate IP",
                        db.name
                    );
                    assert!(
                        macs.insert(port["port"]["mac_address"].as_str().unwrap().to_owned()),
                        "{}: duplicate MAC",
                        db.name
                    );
                }
                Err(ApiError::Conflict { .. }) => exhausted += 1,
                Err(other) => panic!("{}: {other:?}", db.name),
            }
        }
        assert_eq!((ips.len(), exhausted), (29, 11), "{}", db.name);
        // Every acknowledged port has exactly its allocation rows, and nothing else exists.
        let rows = sqlx::query("SELECT COUNT(*) FROM ip_allocations")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(rows.try_get::<i64, _>(0).unwrap(), 29, "{}", db.name);
        let rows = sqlx::query("SELECT COUNT(*) FROM ports")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
        assert_eq!(rows.try_get::<i64, _>(0).unwrap(), 29, "{}", db.name);
        app.store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_network_creates_never_share_a_segment() {
    for db in test_databases().await {
        let app = open(&db.url, |c| c.ml2.vni_ranges = vec!["100:109".into()]).await;
        // Identity bootstrap logs its domain, roles and admin at open.
        let base = app.store.current_revision().await.unwrap();
        let member = ctx("p1", "member");
        let mut tasks = Vec::new();
        for i in 0..14 {
            let app = Arc::clone(&app);
            let member = member.clone();
            tasks.push(tokio::spawn(async move {
                let cmd = CreateNetwork::parse(obj(json!({"network": {"name": format!("n{i}")}})))
                    .unwrap();
                app.network.create_network(&member, cmd).await
            }));
        }
        let (mut created, mut unavailable) = (Vec::new(), 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(text) => created.push(id_of(&text, "network")),
                Err(ApiError::NoNetworkAvailable) => unavailable += 1,
                Err(other) => panic!("{}: {other:?}", db.name),
            }
        }
        assert_eq!((created.len(), unavailable), (10, 4), "{}", db.name);
        let admin = ctx("p1", "admin");
        let list = app
            .network
            .list(&NETWORKS, &admin, "", "http://x")
            .await
            .unwrap();
        let list: Value = serde_json::from_str(&list).unwrap();
        let vnis: HashSet<u64> = list["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["provider:segmentation_id"].as_u64().unwrap())
            .collect();
        assert_eq!(vnis, (100..110).collect(), "{}", db.name);
        // A deleted network's VNI goes back to the pool.
        app.network
            .delete_network(&member, &created[0])
            .await
            .unwrap();
        let again = app
            .network
            .create_network(
                &member,
                CreateNetwork::parse(obj(json!({"network": {}}))).unwrap(),
            )
            .await;
        assert!(again.is_ok(), "{}: {again:?}", db.name);
        // The revision log is contiguous and ends at the counter.
        let revs: Vec<i64> = sqlx::query("SELECT rev FROM revisions ORDER BY rev")
            .fetch_all(app.store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
        assert_eq!(revs, (1..=base + 12).collect::<Vec<i64>>(), "{}", db.name);
        assert_eq!(
            app.store.current_revision().await.unwrap(),
            base + 12,
            "{}",
            db.name
        );
        app.store.close().await;
    }
}

#[tokio::test]
async fn tenants_see_only_their_own() {
    for db in test_databases().await {
        let app = open(&db.url, |_| {}).await;
        let (a, b, reader_a, admin) = (
            ctx("pa", "member"),
            ctx("pb", "member"),
            ctx("pa", "reader"),
            ctx("padmin", "admin"),
        );
        let mk =
            |name: &str| CreateNetwork::parse(obj(json!({"network": {"name": name}}))).unwrap();
        let net_a = id_of(
            &app.network.create_network(&a, mk("a")).await.unwrap(),
            "network",
        );
        let port_a = app
            .network
            .create_port(
                &a,
                CreatePort::parse(obj(json!({"port": {"network_id": net_a}}))).unwrap(),
            )
            .await
            .unwrap();
        let port_a = id_of(&port_a, "port");
        // B sees none of it: 404, never 403.
        let list = app
            .network
            .list(&NETWORKS, &b, "", "http://x")
            .await
            .unwrap();
        assert_eq!(list, "{\"networks\":[]}", "{}", db.name);
        let r = app.network.show(&NETWORKS, &b, &net_a, &[]).await;
        assert!(matches!(r, Err(ApiError::NotFound { .. })), "{r:?}");
        assert!(matches!(
            app.network.show(&PORTS, &b, &port_a, &[]).await,
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            app.network.delete_network(&b, &net_a).await,
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            app.network.delete_port(&b, &port_a).await,
            Err(ApiError::NotFound { .. })
        ));
        let on_a = CreatePort::parse(obj(json!({"port": {"network_id": net_a}}))).unwrap();
        assert!(matches!(
            app.network.create_port(&b, on_a).await,
            Err(ApiError::NotFound { .. })
        ));
        // Members do not see provider attributes; admin does.
        let shown: Value =
            serde_json::from_str(&app.network.show(&NETWORKS, &a, &net_a, &[]).await.unwrap())
                .unwrap();
        assert!(
            shown["network"].get("provider:network_type").is_none(),
            "{}",
            db.name
        );
        let shown: Value = serde_json::from_str(
            &app.network
                .show(&NETWORKS, &admin, &net_a, &[])
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            shown["network"]["provider:network_type"], "vxlan",
            "{}",
            db.name
        );
        // Members may not create provider or shared networks; readers may not write at all.
        let provider = CreateNetwork::parse(obj(json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 120}}))).unwrap();
        assert!(matches!(
            app.network.create_network(&a, provider).await,
            Err(ApiError::Forbidden(_))
        ));
        let shared = CreateNetwork::parse(obj(json!({"network": {"shared": true}}))).unwrap();
        assert!(matches!(
            app.network.create_network(&a, shared).await,
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            app.network.create_network(&reader_a, mk("r")).await,
            Err(ApiError::Forbidden(_))
        ));
        assert!(
            app.network
                .show(&NETWORKS, &reader_a, &net_a, &[])
                .await
                .is_ok()
        );
        // A shared network is visible (and usable) to B but not B's to change.
        let shared =
            CreateNetwork::parse(obj(json!({"network": {"name": "pub", "shared": true}}))).unwrap();
        let net_s = id_of(
            &app.network.create_network(&admin, shared).await.unwrap(),
            "network",
        );
        let list: Value = serde_json::from_str(
            &app.network
                .list(&NETWORKS, &b, "", "http://x")
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(list["networks"].as_array().unwrap().len(), 1, "{}", db.name);
        let port_b = app
            .network
            .create_port(
                &b,
                CreatePort::parse(obj(json!({"port": {"network_id": net_s}}))).unwrap(),
            )
            .await;
        assert!(port_b.is_ok(), "{port_b:?}");
        let rename = UpdateNetwork {
            name: Some("mine".into()),
            ..UpdateNetwork::default()
        };
        assert!(matches!(
            app.network.update_network(&b, &net_s, rename).await,
            Err(ApiError::Forbidden(_))
        ));
        // Admin sees everything; A does not see B's port on the shared network.
        let ports: Value = serde_json::from_str(
            &app.network
                .list(&PORTS, &admin, "", "http://x")
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ports["ports"].as_array().unwrap().len(), 2, "{}", db.name);
        let ports: Value =
            serde_json::from_str(&app.network.list(&PORTS, &a, "", "http://x").await.unwrap())
                .unwrap();
        assert_eq!(ports["ports"].as_array().unwrap().len(), 1, "{}", db.name);
        // Filtering on an admin-only attribute is refused to members.
        assert!(
            app.network
                .list(&NETWORKS, &a, "provider:network_type=vxlan", "http://x")
                .await
                .is_err()
        );
        assert!(
            app.network
                .list(&NETWORKS, &admin, "provider:network_type=vxlan", "http://x")
                .await
                .is_ok()
        );
        app.store.close().await;
    }
}
