//! Agents, port binding, device status and the watch stream, over HTTP, on SQLite and (when
//! configured) PostgreSQL — including two replicas on one PostgreSQL.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Http, Server, assert_neutron_error, test_databases};

const WAIT: Duration = Duration::from_secs(10);
/// How long to listen to be sure nothing comes (bookmarks aside).
const QUIET: Duration = Duration::from_millis(700);

fn agent(host: &str, ip: &str) -> Value {
    json!({"agent": {"host": host, "agent_type": "weft agent", "binary": "weft-agent",
        "start_flag": true, "configurations": {"tunnel_types": ["vxlan"], "tunneling_ip": ip,
        "bridge_mappings": {"physnet1": "pn1"}, "l2_population": true, "devices": 0}}})
}

async fn network_with_subnet(api: &Http, name: &str, cidr: &str) -> (String, String) {
    let net = api
        .post("/v2.0/networks", json!({"network": {"name": name}}))
        .await;
    assert_eq!(net.status, 201, "{}", net.text);
    let net_id = net.body["network"]["id"].as_str().unwrap().to_owned();
    let subnet = api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net_id, "cidr": cidr, "ip_version": 4}}),
        )
        .await;
    assert_eq!(subnet.status, 201, "{}", subnet.text);
    (
        net_id,
        subnet.body["subnet"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn bound_port(api: &Http, net: &str, host: &str) -> Value {
    let port = api
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": net, "binding:host_id": host,
                            "device_owner": "compute:nova"}}),
        )
        .await;
    assert_eq!(port.status, 201, "{}", port.text);
    port.body["port"].clone()
}

fn secret(server: &Server) -> Http {
    let mut http = Http::new(server.network);
    http.bearer = Some(server.state.agent_token.clone());
    http
}

#[tokio::test]
async fn agent_credentials_are_separate_from_users() {
    let server = Server::start(|c| c.auth = controller::config::AuthMode::Keystone).await;
    let anonymous = Http::new(server.network);
    let answer = anonymous
        .post("/weft/v1/agents", agent("h1", "192.0.2.11"))
        .await;
    assert_neutron_error(&answer, 401, "HTTPUnauthorized");
    let mut wrong = Http::new(server.network);
    wrong.bearer = Some("0".repeat(64));
    let (status, _) = wrong.lines("/weft/v1/watch?host=h1").await;
    assert_eq!(status, 401);
    let agent_http = secret(&server);
    let answer = agent_http
        .post("/weft/v1/agents", agent("h1", "192.0.2.11"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // The agent secret is not a Keystone token.
    let mut as_user = Http::new(server.network);
    as_user.token = Some(server.state.agent_token.clone());
    assert_neutron_error(&as_user.get("/v2.0/agents").await, 401, "HTTPUnauthorized");
}

#[tokio::test]
async fn agents_register_heartbeat_and_list() {
    for db in test_databases().await {
        let url = db.url.clone();
        let server = Server::start(move |c| c.database_url = Some(url)).await;
        let api = Http::new(server.network);
        let agent_http = secret(&server);
        let first = agent_http
            .post("/weft/v1/agents", agent("h1", "192.0.2.11"))
            .await;
        assert_eq!(first.status, 200, "{}: {}", db.name, first.text);
        let id = first.body["agent"]["id"].as_str().unwrap().to_owned();
        let again = agent_http
            .post("/weft/v1/agents", agent("h1", "192.0.2.12"))
            .await;
        assert_eq!(again.body["agent"]["id"], id.as_str(), "stable id");
        assert_eq!(
            again.body["agent"]["configurations"]["tunneling_ip"],
            "192.0.2.12"
        );
        let list = api.get("/v2.0/agents").await;
        assert_eq!(list.status, 200);
        let agents = list.body["agents"].as_array().unwrap();
        assert_eq!(agents.len(), 1);
        let a = &agents[0];
        for key in [
            "id",
            "agent_type",
            "binary",
            "topic",
            "host",
            "admin_state_up",
            "alive",
            "configurations",
            "created_at",
            "started_at",
            "heartbeat_timestamp",
            "description",
            "availability_zone",
        ] {
            assert!(a.get(key).is_some(), "{key} missing in {a}");
        }
        assert_eq!(a["alive"], true);
        assert_eq!(a["agent_type"], "weft agent");
        let filtered = api.get("/v2.0/agents?host=h2").await;
        assert_eq!(filtered.body["agents"], json!([]));
        assert_neutron_error(
            &api.get("/v2.0/agents?colour=red").await,
            400,
            "HTTPBadRequest",
        );
        let off = api
            .put(
                &format!("/v2.0/agents/{id}"),
                json!({"agent": {"admin_state_up": false}}),
            )
            .await;
        assert_eq!(off.body["agent"]["admin_state_up"], false, "{}", off.text);
        let bad = api
            .put(
                &format!("/v2.0/agents/{id}"),
                json!({"agent": {"host": "x"}}),
            )
            .await;
        assert_neutron_error(&bad, 400, "HTTPBadRequest");
        assert_eq!(api.delete(&format!("/v2.0/agents/{id}")).await.status, 204);
        assert_neutron_error(
            &api.get(&format!("/v2.0/agents/{id}")).await,
            404,
            "AgentNotFound",
        );
        let malformed = agent_http
            .post("/weft/v1/agents", json!({"agent": {"host": "h1"}}))
            .await;
        assert_neutron_error(&malformed, 400, "HTTPBadRequest");
    }
}

#[tokio::test]
async fn binding_follows_the_agents_and_status_follows_the_devices() {
    for db in test_databases().await {
        let url = db.url.clone();
        let server = Server::start(move |c| {
            c.database_url = Some(url);
            c.ml2.network_vlan_ranges.push("physnet2".into());
        })
        .await;
        let api = Http::new(server.network);
        let agent_http = secret(&server);
        let (net, _) = network_with_subnet(&api, "n1", "10.0.0.0/24").await;
        // No agent on h1 yet: the binding fails, with the port still usable.
        let port = bound_port(&api, &net, "h1").await;
        let id = port["id"].as_str().unwrap().to_owned();
        assert_eq!(port["binding:vif_type"], "binding_failed", "{}", db.name);
        assert_eq!(port["status"], "DOWN");
        agent_http
            .post("/weft/v1/agents", agent("h1", "192.0.2.11"))
            .await;
        // Nova sets the host again; now it binds.
        let bound = api
            .put(
                &format!("/v2.0/ports/{id}"),
                json!({"port": {"binding:host_id": "h1"}}),
            )
            .await;
        let p = &bound.body["port"];
        assert_eq!(p["binding:vif_type"], "tap", "{}", bound.text);
        assert_eq!(p["binding:vif_details"]["port_filter"], true);
        assert_eq!(p["binding:vif_details"]["bound_drivers"]["0"], "weft");
        assert_eq!(p["status"], "DOWN");
        // Another host's agent cannot change it; its own can.
        let answer = agent_http
            .post("/weft/v1/devices", json!({"host": "h2", "up": [id]}))
            .await;
        assert_eq!(answer.body["ignored"], json!([id]));
        let answer = agent_http
            .post(
                "/weft/v1/devices",
                json!({"host": "h1", "up": [id, "nope"]}),
            )
            .await;
        assert_eq!(answer.body["updated"], json!([id]), "{}", answer.text);
        assert_eq!(answer.body["ignored"], json!(["nope"]));
        let shown = api.get(&format!("/v2.0/ports/{id}")).await;
        assert_eq!(shown.body["port"]["status"], "ACTIVE");
        agent_http
            .post("/weft/v1/devices", json!({"host": "h1", "down": [id]}))
            .await;
        let shown = api.get(&format!("/v2.0/ports/{id}")).await;
        assert_eq!(shown.body["port"]["status"], "DOWN");
        // A VLAN network on a physnet the agent does not map cannot bind.
        let vlan = api
            .post(
                "/v2.0/networks",
                json!({"network": {"name": "v", "provider:network_type": "vlan",
                    "provider:physical_network": "physnet2", "provider:segmentation_id": 7}}),
            )
            .await;
        let vlan_id = vlan.body["network"]["id"].as_str().unwrap().to_owned();
        let p = bound_port(&api, &vlan_id, "h1").await;
        assert_eq!(p["binding:vif_type"], "binding_failed");
        // Unbinding.
        let unbound = api
            .put(
                &format!("/v2.0/ports/{id}"),
                json!({"port": {"binding:host_id": ""}}),
            )
            .await;
        assert_eq!(unbound.body["port"]["binding:vif_type"], "unbound");
        let malformed = agent_http
            .post("/weft/v1/devices", json!({"host": "h1", "up": "x"}))
            .await;
        assert_neutron_error(&malformed, 400, "HTTPBadRequest");
    }
}

fn port_ids(lines: &Value) -> Vec<String> {
    let mut ids: Vec<String> = lines["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_watch_sends_each_host_its_networks_and_resumes_exactly() {
    for db in test_databases().await {
        let url = db.url.clone();
        let server = Server::start(move |c| c.database_url = Some(url)).await;
        let api = Http::new(server.network);
        let agent_http = secret(&server);
        for (host, ip) in [
            ("h1", "192.0.2.11"),
            ("h2", "192.0.2.12"),
            ("h3", "192.0.2.13"),
        ] {
            agent_http.post("/weft/v1/agents", agent(host, ip)).await;
        }
        let (_, mut w1) = agent_http.lines("/weft/v1/watch?host=h1").await;
        let first = w1.event(WAIT).await.unwrap();
        assert_eq!(first["type"], "resync", "{}", db.name);
        assert_eq!(first["ports"], json!([]));
        let (_, mut w3) = agent_http.lines("/weft/v1/watch?host=h3&since=0").await;
        assert_eq!(w3.event(WAIT).await.unwrap()["type"], "resync");

        let (net, subnet) = network_with_subnet(&api, "blue", "10.0.0.0/24").await;
        let (other_net, _) = network_with_subnet(&api, "red", "10.0.0.0/24").await;
        // Nothing yet: no host has a port on either network.
        let p1 = bound_port(&api, &net, "h1").await;
        let join = w1.event(WAIT).await.unwrap();
        assert_eq!(join["type"], "join", "{join}");
        assert_eq!(join["network"]["id"], net.as_str());
        assert_eq!(join["subnets"][0]["id"], subnet.as_str());
        assert_eq!(join["subnets"][0]["cidr"], "10.0.0.0/24");
        let binding = &join["ports"][0]["weft:binding"];
        assert_eq!(binding["host"], "h1");
        assert_eq!(binding["tunnel_ip"], "192.0.2.11");
        assert_eq!(binding["segment"]["network_type"], "vxlan");
        assert!(binding["segment"]["segmentation_id"].is_u64());
        let joined_at = join["revision"].as_i64().unwrap();

        // A port on h2 of the same network: h1 hears of it, h2 joins.
        let p2 = bound_port(&api, &net, "h2").await;
        let put = w1.event(WAIT).await.unwrap();
        assert_eq!(put["type"], "put");
        assert_eq!(put["kind"], "port");
        assert_eq!(put["object"]["id"], p2["id"]);
        assert_eq!(put["object"]["weft:binding"]["tunnel_ip"], "192.0.2.12");
        assert!(put["revision"].as_i64().unwrap() > joined_at);
        // A port on the other network, bound to h2: nothing of it reaches h1 or h3.
        bound_port(&api, &other_net, "h2").await;
        assert!(w1.event(QUIET).await.is_none(), "h1 saw the red network");
        assert!(w3.event(QUIET).await.is_none(), "h3 saw something");

        // h1 goes away; meanwhile a subnet changes and a port is updated.
        let last_seen = put["revision"].as_i64().unwrap();
        drop(w1);
        api.put(
            &format!("/v2.0/subnets/{subnet}"),
            json!({"subnet": {"dns_nameservers": ["192.0.2.53"]}}),
        )
        .await;
        let p2_id = p2["id"].as_str().unwrap();
        api.put(
            &format!("/v2.0/ports/{p2_id}"),
            json!({"port": {"name": "renamed"}}),
        )
        .await;
        // Resuming gets exactly the two missed lines, in order, then live ones.
        let (_, mut w1) = agent_http
            .lines(&format!("/weft/v1/watch?host=h1&since={last_seen}"))
            .await;
        let a = w1.event(WAIT).await.unwrap();
        assert_eq!(
            (a["type"].as_str(), a["kind"].as_str()),
            (Some("put"), Some("subnet"))
        );
        assert_eq!(a["object"]["dns_nameservers"], json!(["192.0.2.53"]));
        let b = w1.event(WAIT).await.unwrap();
        assert_eq!(b["object"]["name"], "renamed");
        assert!(b["revision"].as_i64() > a["revision"].as_i64());
        assert!(w1.event(QUIET).await.is_none(), "a line came twice");
        // The bookmark says where to resume from once idle.
        let mark = w1.next(WAIT).await.unwrap();
        assert_eq!(mark["type"], "bookmark");
        assert!(mark["revision"].as_i64() >= b["revision"].as_i64());

        // A revision this server never had (its database was replaced): a resync.
        let (_, mut stale) = agent_http
            .lines("/weft/v1/watch?host=h1&since=999999999")
            .await;
        let resync = stale.event(WAIT).await.unwrap();
        assert_eq!(resync["type"], "resync");
        assert_eq!(resync["networks"].as_array().unwrap().len(), 1);
        let mut want = vec![p1["id"].as_str().unwrap().to_owned(), p2_id.to_owned()];
        want.sort();
        assert_eq!(port_ids(&resync), want);

        // h1's port goes: h1 leaves the network; h2 hears of the delete.
        let (_, mut w2) = agent_http
            .lines(&format!("/weft/v1/watch?host=h2&since={}", b["revision"]))
            .await;
        let p1_id = p1["id"].as_str().unwrap();
        assert_eq!(
            api.delete(&format!("/v2.0/ports/{p1_id}")).await.status,
            204
        );
        let leave = w1.event(WAIT).await.unwrap();
        assert_eq!(leave["type"], "leave");
        assert_eq!(leave["network_id"], net.as_str());
        let gone = w2.event(WAIT).await.unwrap();
        assert_eq!(gone["type"], "delete");
        assert_eq!(gone["id"], p1_id);
        assert!(w3.event(QUIET).await.is_none());

        let (status, _) = agent_http.lines("/weft/v1/watch?since=3").await;
        assert_eq!(status, 400);
        let (status, _) = agent_http.lines("/weft/v1/watch?host=h1&since=-4").await;
        assert_eq!(status, 400);
    }
}

/// Two servers on one PostgreSQL: a watch on one sees what is written through the other.
#[tokio::test]
async fn replicas_on_one_postgres_serve_each_others_writes() {
    let Some(db) = test_databases()
        .await
        .into_iter()
        .find(|db| db.name == "postgres")
    else {
        eprintln!("skipped: WEFT_TEST_POSTGRES_URL is not set");
        return;
    };
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("agent-token");
    let (url_a, url_b) = (db.url.clone(), db.url.clone());
    let (file_a, file_b) = (token_file.clone(), token_file.clone());
    let a = Server::start(move |c| {
        c.database_url = Some(url_a);
        c.agent_token_file = Some(file_a);
    })
    .await;
    let b = Server::start(move |c| {
        c.database_url = Some(url_b);
        c.agent_token_file = Some(file_b);
    })
    .await;
    assert_eq!(a.state.agent_token, b.state.agent_token);
    let api_a = Http::new(a.network);
    secret(&a)
        .post("/weft/v1/agents", agent("h1", "192.0.2.11"))
        .await;
    let (_, mut watch_b) = secret(&b).lines("/weft/v1/watch?host=h1").await;
    assert_eq!(watch_b.event(WAIT).await.unwrap()["type"], "resync");
    let (net, _) = network_with_subnet(&api_a, "n", "10.0.7.0/24").await;
    let port = bound_port(&api_a, &net, "h1").await;
    let join = watch_b.event(WAIT).await.unwrap();
    assert_eq!(join["type"], "join");
    assert_eq!(join["ports"][0]["id"], port["id"]);
}
