//! The trunk API (seed 002) over HTTP: shapes, Neutron's rules, subports following the
//! parent's binding, and the trunk's status following the agent — on SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use support::{Http, Server, assert_neutron_error, test_databases};

async fn net(api: &Http, name: &str, cidr: &str) -> String {
    let n = api
        .post("/v2.0/networks", json!({"network": {"name": name}}))
        .await;
    let id = n.body["network"]["id"].as_str().unwrap().to_owned();
    let s = api
        .post(
            "/v2.0/subnets",
            json!({"subnet": {"network_id": id, "cidr": cidr, "ip_version": 4, "name": name}}),
        )
        .await;
    assert_eq!(s.status, 201, "{}", s.text);
    id
}

async fn port(api: &Http, network: &str, name: &str) -> Value {
    let p = api
        .post(
            "/v2.0/ports",
            json!({"port": {"network_id": network, "name": name}}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);
    p.body["port"].clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn show_port(api: &Http, port: &str) -> Value {
    api.get(&format!("/v2.0/ports/{port}")).await.body["port"].clone()
}

#[tokio::test]
async fn the_seed_002_trunk_lifecycle() {
    for db in test_databases().await {
        let url = db.url.clone();
        let server = Server::start(move |c| c.database_url = Some(url)).await;
        let api = Http::new(server.network);
        let net0 = net(&api, "net0", "10.0.4.0/24").await;
        let net1 = net(&api, "net1", "10.0.5.0/24").await;
        let net2 = net(&api, "net2", "10.0.6.0/24").await;
        let parent = port(&api, &net0, "trunkparent").await;
        let sub1 = port(&api, &net1, "subport1").await;
        let sub2 = port(&api, &net2, "subport2").await;
        let created = api
            .post(
                "/v2.0/trunks",
                json!({"trunk": {"name": "mytrunk", "port_id": id(&parent), "sub_ports": [
                    {"port_id": id(&sub1), "segmentation_type": "vlan", "segmentation_id": 1},
                    {"port_id": id(&sub2), "segmentation_type": "vlan", "segmentation_id": 2}]}}),
            )
            .await;
        assert_eq!(created.status, 201, "{}: {}", db.name, created.text);
        let trunk = created.body["trunk"].clone();
        let trunk_id = id(&trunk);
        assert_eq!(trunk["status"], "DOWN");
        assert_eq!(trunk["admin_state_up"], true);
        assert_eq!(trunk["revision_number"], 1);
        assert_eq!(trunk["port_id"], parent["id"]);
        assert_eq!(
            trunk["sub_ports"],
            json!([
                {"port_id": id(&sub1), "segmentation_type": "vlan", "segmentation_id": 1},
                {"port_id": id(&sub2), "segmentation_type": "vlan", "segmentation_id": 2}
            ])
        );
        for key in [
            "tenant_id",
            "project_id",
            "created_at",
            "updated_at",
            "description",
            "tags",
        ] {
            assert!(trunk.get(key).is_some(), "{key}");
        }
        // Subports follow the trunk; the parent shows its trunk details.
        let s1 = show_port(&api, &id(&sub1)).await;
        assert_eq!(s1["device_owner"], "trunk:subport");
        assert_eq!(s1["device_id"], trunk_id.as_str());
        let p = show_port(&api, &id(&parent)).await;
        assert_eq!(p["trunk_details"]["trunk_id"], trunk_id.as_str());
        assert_eq!(
            p["trunk_details"]["sub_ports"][0]["mac_address"],
            sub1["mac_address"]
        );
        assert_eq!(p["trunk_details"]["sub_ports"][1]["segmentation_id"], 2);

        let listed = api.get("/v2.0/trunks?name=mytrunk").await;
        assert_eq!(listed.body["trunks"][0]["id"], trunk_id.as_str());
        let subs = api
            .get(&format!("/v2.0/trunks/{trunk_id}/get_subports"))
            .await;
        assert_eq!(subs.body["sub_ports"], trunk["sub_ports"]);

        // Neutron's rules.
        let again = api
            .post("/v2.0/trunks", json!({"trunk": {"port_id": id(&parent)}}))
            .await;
        assert_neutron_error(&again, 409, "TrunkPortInUse");
        let spare = port(&api, &net0, "spare").await;
        let sub_elsewhere = api
            .post(
                "/v2.0/trunks",
                json!({"trunk": {"port_id": id(&spare), "sub_ports": [
                    {"port_id": id(&sub1), "segmentation_type": "vlan", "segmentation_id": 9}]}}),
            )
            .await;
        assert_neutron_error(&sub_elsewhere, 409, "TrunkPortInUse");
        // The failed request made nothing: the spare port can still be a parent.
        let ok = api
            .post("/v2.0/trunks", json!({"trunk": {"port_id": id(&spare)}}))
            .await;
        assert_eq!(ok.status, 201, "{}", ok.text);
        let sub3 = port(&api, &net2, "subport3").await;
        let dup = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/add_subports"),
                json!({"sub_ports": [{"port_id": id(&sub3), "segmentation_type": "vlan",
                                      "segmentation_id": 2}]}),
            )
            .await;
        assert_neutron_error(&dup, 409, "DuplicateSubPort");
        let range = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/add_subports"),
                json!({"sub_ports": [{"port_id": id(&sub3), "segmentation_type": "vlan",
                                      "segmentation_id": 4095}]}),
            )
            .await;
        assert_neutron_error(&range, 400, "InvalidInput");
        let inherit = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/add_subports"),
                json!({"sub_ports": [{"port_id": id(&sub3), "segmentation_type": "inherit"}]}),
            )
            .await;
        assert_neutron_error(&inherit, 400, "InvalidInput");
        let itself = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/add_subports"),
                json!({"sub_ports": [{"port_id": id(&parent), "segmentation_type": "vlan",
                                      "segmentation_id": 7}]}),
            )
            .await;
        assert_neutron_error(&itself, 409, "TrunkPortInUse");
        assert_neutron_error(
            &api.delete(&format!("/v2.0/ports/{}", id(&parent))).await,
            409,
            "PortInUseAsTrunkParent",
        );
        assert_neutron_error(
            &api.delete(&format!("/v2.0/ports/{}", id(&sub1))).await,
            409,
            "PortInUseAsSubPort",
        );

        // Live add and remove answer the bare trunk.
        let added = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/add_subports"),
                json!({"sub_ports": [{"port_id": id(&sub3), "segmentation_type": "vlan",
                                      "segmentation_id": 3}]}),
            )
            .await;
        assert_eq!(added.status, 200, "{}", added.text);
        assert_eq!(added.body["sub_ports"].as_array().unwrap().len(), 3);
        let removed = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/remove_subports"),
                json!({"sub_ports": [{"port_id": id(&sub2)}]}),
            )
            .await;
        assert_eq!(removed.status, 200, "{}", removed.text);
        assert_eq!(removed.body["sub_ports"].as_array().unwrap().len(), 2);
        let freed = show_port(&api, &id(&sub2)).await;
        assert_eq!(freed["device_owner"], "");
        assert_eq!(freed["device_id"], "");
        let missing = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/remove_subports"),
                json!({"sub_ports": [{"port_id": id(&sub2)}]}),
            )
            .await;
        assert_neutron_error(&missing, 404, "SubPortNotFound");

        // Disabled: subports frozen.
        let off = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}"),
                json!({"trunk": {"admin_state_up": false}}),
            )
            .await;
        assert_eq!(off.body["trunk"]["admin_state_up"], false);
        let frozen = api
            .put(
                &format!("/v2.0/trunks/{trunk_id}/remove_subports"),
                json!({"sub_ports": [{"port_id": id(&sub3)}]}),
            )
            .await;
        assert_neutron_error(&frozen, 409, "TrunkDisabled");
        api.put(
            &format!("/v2.0/trunks/{trunk_id}"),
            json!({"trunk": {"admin_state_up": true}}),
        )
        .await;

        // Binding: the parent bound on h1 takes its subports along; the trunk goes ACTIVE
        // when the agent reports the parent up; a bound trunk cannot be deleted.
        let mut agent = Http::new(server.network);
        agent.bearer = Some(server.state.agent_token.clone());
        agent
            .post(
                "/weft/v1/agents",
                json!({"agent": {"host": "h1", "agent_type": "weft agent", "configurations":
                    {"tunnel_types": ["vxlan"], "tunneling_ip": "192.0.2.11"}}}),
            )
            .await;
        let bound = api
            .put(
                &format!("/v2.0/ports/{}", id(&parent)),
                json!({"port": {"binding:host_id": "h1", "device_id": "vm1",
                                "device_owner": "compute:nova"}}),
            )
            .await;
        assert_eq!(
            bound.body["port"]["binding:vif_type"], "tap",
            "{}",
            bound.text
        );
        let s1 = show_port(&api, &id(&sub1)).await;
        assert_eq!(s1["binding:host_id"], "h1");
        assert_eq!(s1["binding:vif_type"], "tap");
        let t = api.get(&format!("/v2.0/trunks/{trunk_id}")).await;
        assert_eq!(t.body["trunk"]["status"], "DOWN");
        agent
            .post(
                "/weft/v1/devices",
                json!({"host": "h1", "up": [id(&parent), id(&sub1), id(&sub3)]}),
            )
            .await;
        let t = api.get(&format!("/v2.0/trunks/{trunk_id}")).await;
        assert_eq!(t.body["trunk"]["status"], "ACTIVE", "{}", t.text);
        assert_neutron_error(
            &api.delete(&format!("/v2.0/trunks/{trunk_id}")).await,
            409,
            "TrunkInUse",
        );
        // Nova unplugs: the subports are unbound, the trunk goes DOWN and can go.
        api.put(
            &format!("/v2.0/ports/{}", id(&parent)),
            json!({"port": {"binding:host_id": ""}}),
        )
        .await;
        let s1 = show_port(&api, &id(&sub1)).await;
        assert_eq!(s1["binding:host_id"], "");
        let t = api.get(&format!("/v2.0/trunks/{trunk_id}")).await;
        assert_eq!(t.body["trunk"]["status"], "DOWN");
        assert_eq!(
            api.delete(&format!("/v2.0/trunks/{trunk_id}")).await.status,
            204
        );
        let s1 = show_port(&api, &id(&sub1)).await;
        assert_eq!(s1["device_owner"], "");
        let p = show_port(&api, &id(&parent)).await;
        assert!(p.get("trunk_details").is_none(), "{p}");
        assert_eq!(
            api.delete(&format!("/v2.0/ports/{}", id(&sub1)))
                .await
                .status,
            204
        );
    }
}
