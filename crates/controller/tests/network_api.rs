//! The networking API over real HTTP (noauth, SQLite): the seed 002 flow as the `openstack` CLI
//! sends it, Neutron's answers to the error cases in `HTTP_TRANSCRIPT.md`, filters, fields,
//! sorting, pagination and tags.

mod support;

use serde_json::{Value, json};
use support::{Http, Server, assert_neutron_error};

async fn setup() -> (Server, Http) {
    let server = Server::start(|_| {}).await;
    let http = Http::new(server.network);
    (server, http)
}

async fn create(http: &Http, collection: &str, resource: &str, body: Value) -> Value {
    let answer = http
        .post(&format!("/v2.0/{collection}"), json!({ resource: body }))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.body[resource].clone()
}

#[tokio::test]
async fn version_document_points_back_at_the_server() {
    let (server, http) = setup().await;
    let answer = http.get("/").await;
    assert_eq!(answer.status, 200);
    let href = answer.body["versions"][0]["links"][0]["href"]
        .as_str()
        .unwrap();
    assert_eq!(href, format!("http://{}/v2.0/", server.network));
    assert!(
        http.get("/v2.0/networks")
            .await
            .headers
            .contains_key("x-openstack-request-id")
    );
}

/// On SQLite, and on PostgreSQL when `WEFT_TEST_POSTGRES_URL` is set (always in CI).
#[tokio::test]
async fn seed_002_steps_1_2_5() {
    for db in support::test_databases().await {
        let server = Server::start(|c| c.database_url = Some(db.url.clone())).await;
        seed_flow(Http::new(server.network)).await;
    }
}

async fn seed_flow(http: Http) {
    let mut nets = Vec::new();
    for (name, cidr) in [
        ("net0", "10.0.4.0/24"),
        ("net1", "10.0.5.0/24"),
        ("net2", "10.0.6.0/24"),
    ] {
        let net = create(
            &http,
            "networks",
            "network",
            json!({"name": name, "admin_state_up": true}),
        )
        .await;
        assert_eq!(net["provider:network_type"], "vxlan");
        assert_eq!(net["mtu"], 1450);
        assert_eq!(net["status"], "ACTIVE");
        assert_eq!(net["revision_number"], 1);
        assert_eq!(net["tenant_id"], "fake_project_id");
        // Name-or-id resolution: GET by name is a 404, then ?name= finds exactly one.
        let miss = http.get(&format!("/v2.0/networks/{name}")).await;
        assert_neutron_error(&miss, 404, "NetworkNotFound");
        assert_eq!(
            miss.body["NeutronError"]["message"],
            format!("Network {name} could not be found.")
        );
        let found = http.get(&format!("/v2.0/networks?name={name}")).await;
        assert_eq!(found.body["networks"].as_array().unwrap().len(), 1);
        let subnet = create(
            &http,
            "subnets",
            "subnet",
            json!({"cidr": cidr, "name": format!("subnet{}", &name[3..]),
            "ip_version": 4, "network_id": net["id"]}),
        )
        .await;
        let prefix = &cidr[..cidr.len() - 4];
        assert_eq!(subnet["gateway_ip"], format!("{prefix}1"));
        assert_eq!(
            subnet["allocation_pools"],
            json!([{"start": format!("{prefix}2"), "end": format!("{prefix}254")}])
        );
        assert_eq!(subnet["enable_dhcp"], true);
        nets.push(net);
    }
    let net0 = http
        .get(&format!(
            "/v2.0/networks/{}",
            nets[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        net0.body["network"]["revision_number"], 2,
        "subnet create bumps the network"
    );
    assert_eq!(net0.body["network"]["subnets"].as_array().unwrap().len(), 1);

    let mut ports = Vec::new();
    for (name, net) in [
        ("trunkparent", &nets[0]),
        ("subport1", &nets[1]),
        ("subport2", &nets[2]),
    ] {
        assert_eq!(
            http.get("/v2.0/extensions/tag-ports-during-bulk-creation")
                .await
                .status,
            404
        );
        assert_eq!(http.get("/v2.0/extensions").await.status, 200);
        let port = create(
            &http,
            "ports",
            "port",
            json!({"admin_state_up": true, "name": name, "network_id": net["id"]}),
        )
        .await;
        assert!(
            port["mac_address"]
                .as_str()
                .unwrap()
                .starts_with("fa:16:3e:")
        );
        assert_eq!(port["status"], "DOWN");
        assert_eq!(port["binding:vif_type"], "unbound");
        assert_eq!(port["fixed_ips"].as_array().unwrap().len(), 1);
        assert_eq!(port["security_groups"].as_array().unwrap().len(), 1);
        ports.push(port);
    }
    // All ports of the project share one default security group.
    assert_eq!(ports[0]["security_groups"], ports[1]["security_groups"]);
    // Step 5: port show subport1 resolves by name through the list, which carries every field.
    let listed = http.get("/v2.0/ports?name=subport1").await;
    let shown = &listed.body["ports"][0];
    assert_eq!(shown["mac_address"], ports[1]["mac_address"]);
    assert_eq!(
        shown["fixed_ips"][0]["ip_address"],
        ports[1]["fixed_ips"][0]["ip_address"]
    );
    assert!(
        shown["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("10.0.5.")
    );
    // port list --network net0 with repeated fields=.
    let path = format!(
        "/v2.0/ports?fields=id&fields=name&fields=mac_address&fields=fixed_ips&fields=status&network_id={}",
        nets[0]["id"].as_str().unwrap()
    );
    let list = http.get(&path).await;
    let items = list.body["ports"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let mut keys: Vec<&str> = items[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["fixed_ips", "id", "mac_address", "name", "status"]);
}

/// On SQLite, and on PostgreSQL when `WEFT_TEST_POSTGRES_URL` is set (always in CI).
#[tokio::test]
async fn transcript_error_cases() {
    for db in support::test_databases().await {
        let server = Server::start(|c| c.database_url = Some(db.url.clone())).await;
        error_cases(Http::new(server.network)).await;
    }
}

async fn error_cases(http: Http) {
    let vlan = create(&http, "networks", "network", json!({"provider:network_type": "vlan", "name": "pnet",
        "admin_state_up": true, "provider:segmentation_id": "200", "provider:physical_network": "physnet1"}))
    .await;
    assert_eq!(vlan["provider:segmentation_id"], 200);
    assert_eq!(vlan["mtu"], 1500);
    let again = http
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vlan",
        "provider:segmentation_id": "200", "provider:physical_network": "physnet1", "name": "x"}}),
        )
        .await;
    assert_neutron_error(&again, 409, "VlanIdInUse");
    assert_eq!(
        again.body["NeutronError"]["message"],
        "Unable to create the network. The VLAN 200 on physical network physnet1 is in use."
    );
    let range = http
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vlan",
        "provider:segmentation_id": "4095", "provider:physical_network": "physnet1"}}),
        )
        .await;
    assert_neutron_error(&range, 400, "InvalidInput");
    assert_eq!(
        range.body["NeutronError"]["message"],
        "Invalid input for operation: segmentation_id out of range (1 through 4094)."
    );
    let physnet = http
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vlan",
        "provider:segmentation_id": "150", "provider:physical_network": "physnet9"}}),
        )
        .await;
    assert_neutron_error(&physnet, 400, "InvalidInput");
    let vni = http
        .post(
            "/v2.0/networks",
            json!({"network": {"provider:network_type": "vxlan",
        "provider:segmentation_id": "20000000"}}),
        )
        .await;
    assert_neutron_error(&vni, 400, "InvalidInput");

    let net = create(&http, "networks", "network", json!({"name": "enet0"})).await;
    let id = net["id"].as_str().unwrap();
    create(
        &http,
        "subnets",
        "subnet",
        json!({"network_id": id, "cidr": "10.0.14.0/24", "ip_version": 4}),
    )
    .await;
    let overlap = http
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id, "cidr": "10.0.14.0/24", "ip_version": 4}}),
        )
        .await;
    assert_neutron_error(&overlap, 400, "InvalidInput");
    assert!(
        overlap.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .ends_with("overlaps with another subnet.")
    );
    let bad = http
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id, "cidr": "10.0.300.0/24", "ip_version": 4}}),
        )
        .await;
    assert_neutron_error(&bad, 400, "InvalidInput");
    assert_eq!(
        bad.body["NeutronError"]["message"],
        "Invalid input for operation: 10.0.300.0/24 is not in a CIDR format."
    );

    let port = create(
        &http,
        "ports",
        "port",
        json!({"network_id": id, "fixed_ips": [{"ip_address": "10.0.14.10"}]}),
    )
    .await;
    let taken = http
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": id, "fixed_ips": [{"ip_address": "10.0.14.10"}]}}),
        )
        .await;
    assert_neutron_error(&taken, 409, "IpAddressAlreadyAllocated");
    let mac = http
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": id, "mac_address": port["mac_address"]}}),
        )
        .await;
    assert_neutron_error(&mac, 409, "MacAddressInUse");
    let in_use = http.delete(&format!("/v2.0/networks/{id}")).await;
    assert_neutron_error(&in_use, 409, "NetworkInUse");
    assert!(
        in_use.body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .contains(port["id"].as_str().unwrap())
    );

    // Bad requests change nothing.
    let before = http.get("/v2.0/ports").await.body["ports"]
        .as_array()
        .unwrap()
        .len();
    for body in [
        &b"{not json"[..],
        b"[]",
        b"{\"port\": {\"network_id\": 5}}",
        b"{\"port\": {\"network_id\": \"x\", \"colour\": 1}}",
    ] {
        let answer = http
            .raw(hyper::Method::POST, "/v2.0/ports", Some(body.to_vec()))
            .await;
        assert_neutron_error(&answer, 400, "HTTPBadRequest");
    }
    let huge = vec![b' '; 2 << 20];
    assert_neutron_error(
        &http
            .raw(hyper::Method::POST, "/v2.0/ports", Some(huge))
            .await,
        400,
        "HTTPBadRequest",
    );
    let bad_mac = http
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": id, "mac_address": "not-a-mac"}}),
        )
        .await;
    assert_neutron_error(&bad_mac, 400, "HTTPBadRequest");
    assert_eq!(
        http.get("/v2.0/ports").await.body["ports"]
            .as_array()
            .unwrap()
            .len(),
        before
    );
    assert_neutron_error(
        &http.get("/v2.0/ports?colour=red").await,
        400,
        "HTTPBadRequest",
    );

    // Deleting the port frees its address and MAC; then the network goes.
    assert_eq!(
        http.delete(&format!("/v2.0/ports/{}", port["id"].as_str().unwrap()))
            .await
            .status,
        204
    );
    create(&http, "ports", "port", json!({"network_id": id, "fixed_ips": [{"ip_address": "10.0.14.10"}], "mac_address": port["mac_address"]})).await;
}

#[tokio::test]
async fn ipam_exhaustion_and_requested_addresses() {
    let (_server, http) = setup().await;
    let net = create(&http, "networks", "network", json!({"name": "small"})).await;
    let id = net["id"].as_str().unwrap();
    let subnet = create(
        &http,
        "subnets",
        "subnet",
        json!({"network_id": id, "cidr": "192.168.9.0/29", "ip_version": 4}),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let port = create(&http, "ports", "port", json!({"network_id": id})).await;
        let ip = port["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!seen.contains(&ip), "{ip} handed out twice");
        assert_ne!(ip, "192.168.9.1", "the gateway is never allocated");
        seen.push(ip);
    }
    let full = http
        .post("/v2.0/ports", json!({"port": {"network_id": id}}))
        .await;
    assert_neutron_error(&full, 409, "IpAddressGenerationFailure");
    let gateway = http.post("/v2.0/ports", json!({"port": {"network_id": id, "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": "192.168.9.1"}]}})).await;
    assert_neutron_error(&gateway, 409, "IpAddressAlreadyAllocated");
    let outside = http.post("/v2.0/ports", json!({"port": {"network_id": id, "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": "10.9.9.9"}]}})).await;
    assert_neutron_error(&outside, 400, "InvalidInput");
    let in_use = http
        .delete(&format!("/v2.0/subnets/{}", subnet["id"].as_str().unwrap()))
        .await;
    assert_neutron_error(&in_use, 409, "SubnetInUse");
}

#[tokio::test]
async fn update_port_moves_addresses() {
    let (_server, http) = setup().await;
    let net = create(&http, "networks", "network", json!({"name": "n"})).await;
    let id = net["id"].as_str().unwrap();
    create(
        &http,
        "subnets",
        "subnet",
        json!({"network_id": id, "cidr": "10.1.0.0/24", "ip_version": 4}),
    )
    .await;
    let port = create(
        &http,
        "ports",
        "port",
        json!({"network_id": id, "fixed_ips": [{"ip_address": "10.1.0.5"}]}),
    )
    .await;
    let pid = port["id"].as_str().unwrap();
    let moved = http
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"fixed_ips": [{"ip_address": "10.1.0.6"}],
        "name": "renamed", "allowed_address_pairs": [{"ip_address": "10.1.0.128/25"}]}}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(moved.body["port"]["fixed_ips"][0]["ip_address"], "10.1.0.6");
    assert_eq!(moved.body["port"]["revision_number"], 2);
    assert_eq!(
        moved.body["port"]["allowed_address_pairs"][0]["mac_address"],
        port["mac_address"]
    );
    // 10.1.0.5 is free again.
    create(
        &http,
        "ports",
        "port",
        json!({"network_id": id, "fixed_ips": [{"ip_address": "10.1.0.5"}]}),
    )
    .await;
    let no_security = http
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"port_security_enabled": false}}),
        )
        .await;
    assert_neutron_error(&no_security, 409, "AddressPairAndPortSecurityRequired");
    let off = http
        .put(
            &format!("/v2.0/ports/{pid}"),
            json!({"port": {"port_security_enabled": false,
        "allowed_address_pairs": [], "security_groups": []}}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(off.body["port"]["security_groups"], json!([]));
}

#[tokio::test]
async fn sorting_pagination_and_tags() {
    let (server, http) = setup().await;
    let mut ids = Vec::new();
    for name in ["c", "a", "e", "b", "d"] {
        ids.push(
            create(&http, "networks", "network", json!({"name": name})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let sorted = http.get("/v2.0/networks?sort_key=name&sort_dir=desc").await;
    let names: Vec<&str> = sorted.body["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e", "d", "c", "b", "a"]);
    // Walk pages of two by name.
    let mut path = "/v2.0/networks?sort_key=name&sort_dir=asc&limit=2".to_owned();
    let mut walked = Vec::new();
    loop {
        let page = http.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        walked.extend(
            page.body["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["name"].as_str().unwrap().to_owned()),
        );
        let next = page.body["networks_links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .cloned();
        let Some(next) = next else { break };
        let href = next["href"].as_str().unwrap();
        let prefix = format!("http://{}", server.network);
        path = href.strip_prefix(&prefix).unwrap().to_owned();
    }
    assert_eq!(walked, ["a", "b", "c", "d", "e"]);
    // A previous link walks back.
    let page2 = http
        .get(&format!("/v2.0/networks?limit=2&marker={}", {
            let mut sorted_ids = ids.clone();
            sorted_ids.sort();
            sorted_ids[1].clone()
        }))
        .await;
    assert!(
        page2.body["networks_links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "previous")
    );

    let net = &ids[0];
    assert_eq!(
        http.call(
            hyper::Method::PUT,
            &format!("/v2.0/networks/{net}/tags/red"),
            None
        )
        .await
        .status,
        201
    );
    let replaced = http
        .put(
            &format!("/v2.0/networks/{net}/tags"),
            json!({"tags": ["red", "blue"]}),
        )
        .await;
    assert_eq!(replaced.body["tags"], json!(["red", "blue"]));
    assert_eq!(
        http.get(&format!("/v2.0/networks/{net}/tags/blue"))
            .await
            .status,
        204
    );
    assert_neutron_error(
        &http.get(&format!("/v2.0/networks/{net}/tags/green")).await,
        404,
        "TagNotFound",
    );
    let tagged = http.get("/v2.0/networks?tags=red,blue").await;
    assert_eq!(tagged.body["networks"].as_array().unwrap().len(), 1);
    let untagged = http.get("/v2.0/networks?not-tags-any=red").await;
    assert_eq!(untagged.body["networks"].as_array().unwrap().len(), 4);
    assert_eq!(
        http.delete(&format!("/v2.0/networks/{net}/tags"))
            .await
            .status,
        204
    );
    let shown = http.get(&format!("/v2.0/networks/{net}")).await;
    assert_eq!(shown.body["network"]["tags"], json!([]));
    assert_eq!(shown.body["network"]["revision_number"], 4);
}
