//! The VSI type database and VDP associations (issue 7, seed 000's network manager) over HTTP:
//! type CRUD and its rules in Neutron's shapes, a bridge's decisions (figure 12's A, B and C),
//! the association states, migration between bridges, VLAN assignment and exhaustion, and
//! concurrent decides — on SQLite and PostgreSQL.

mod support;

use std::collections::HashSet;

use controller::config::AuthMode;
use serde_json::{Value, json};
use sqlx::Row;
use support::{Http, Server, assert_neutron_error, test_databases};

const VSI: &str = "00000000-0000-0000-0000-00000000beef";
const MAC: &str = "52:54:00:8e:aa:11";

async fn start(url: &str, tweak: impl FnOnce(&mut controller::config::Config)) -> Server {
    let url = url.to_owned();
    Server::start(move |c| {
        c.database_url = Some(url);
        tweak(c);
    })
    .await
}

fn agent(server: &Server) -> Http {
    let mut http = Http::new(server.network);
    http.bearer = Some(server.state.agent_token.clone());
    http
}

async fn network(api: &Http, body: Value) -> String {
    let created = api.post("/v2.0/networks", json!({ "network": body })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["network"]["id"].as_str().unwrap().to_owned()
}

async fn vsi_type(api: &Http, body: Value) -> Value {
    let created = api
        .post("/v2.0/vsi-types", json!({ "vsi_type": body }))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["vsi_type"].clone()
}

/// Asks the controller as bridge `bridge` would for a station on `port`.
async fn decide(
    agent: &Http,
    bridge: &str,
    port: &str,
    mode: &str,
    (type_id, version): (u32, u8),
    vsi: &str,
    vlan: u16,
) -> Value {
    let answer = agent
        .post(
            "/weft/v1/vdp/decide",
            json!({"bridge": bridge, "port": port, "request": {
                "mode": mode, "type_id": type_id, "type_version": version, "id_format": 5,
                "vsi_id": vsi, "manager_id": "evmgr1",
                "filters": [{"vlan": vlan, "mac_address": MAC, "group_id": null}]}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body
}

fn assert_accept(decision: &Value, vlan: u16, state: &str) {
    assert_eq!(decision["decision"], "accept", "{decision}");
    assert_eq!(decision["filters"][0]["vlan"], vlan, "{decision}");
    assert_eq!(decision["filters"][0]["mac_address"], MAC, "{decision}");
    assert_eq!(decision["association"]["state"], state, "{decision}");
}

fn assert_reject(decision: &Value, error: &str) {
    assert_eq!(decision["decision"], "reject", "{decision}");
    assert_eq!(decision["error"], error, "{decision}");
    assert!(
        decision["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{decision}"
    );
    assert!(decision.get("association").is_none(), "{decision}");
}

async fn associations(api: &Http, query: &str) -> Vec<Value> {
    let listed = api.get(&format!("/v2.0/vsi-associations{query}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.body["vsi_associations"].as_array().unwrap().clone()
}

async fn revisions_of(server: &Server, resource: &str) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) FROM revisions WHERE resource = $1")
        .bind(resource)
        .fetch_one(server.state.store.pool())
        .await
        .unwrap();
    row.try_get(0).unwrap()
}

#[tokio::test]
async fn vsi_types_crud_with_neutron_rules_and_shapes() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let extension = api.get("/v2.0/extensions/weft-vsi").await;
        assert_eq!(extension.status, 200, "{}", extension.text);
        assert_eq!(extension.body["extension"]["alias"], "weft-vsi");

        let net = network(&api, json!({"name": "web-net"})).await;
        let web = vsi_type(
            &api,
            json!({"name": "web", "type_id": 100, "type_version": 1, "network_id": net}),
        )
        .await;
        let id = web["id"].as_str().unwrap().to_owned();
        assert_eq!(web["type_id"], 100);
        assert_eq!(web["type_version"], 1);
        assert_eq!(web["network_id"], net.as_str());
        assert_eq!(web["vlan"], Value::Null);
        assert_eq!(web["port_security_enabled"], true);
        assert_eq!(web["revision_number"], 1);
        assert_eq!(web["project_id"], web["tenant_id"]);
        for key in ["description", "created_at", "updated_at"] {
            assert!(web.get(key).is_some(), "{}: {key}", db.name);
        }
        let shown = api.get(&format!("/v2.0/vsi-types/{id}")).await;
        assert_eq!(shown.body["vsi_type"], web, "{}", db.name);
        let top = vsi_type(
            &api,
            json!({"name": "top", "type_id": 16_777_215, "type_version": 255,
                   "network_id": net, "vlan": 4094, "port_security_enabled": false}),
        )
        .await;
        assert_eq!(top["vlan"], 4094);

        // Lists filter on any attribute, numbers included, and page.
        let listed = api.get("/v2.0/vsi-types?type_id=100").await;
        let names: Vec<&str> = listed.body["vsi_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web"], "{}", db.name);
        let page = api.get("/v2.0/vsi-types?limit=1&sort_key=name").await;
        assert_eq!(page.body["vsi_types"][0]["name"], "top", "{}", db.name);
        assert!(page.body["vsi_types_links"].is_array(), "{}", page.text);
        let fields = api
            .get(&format!("/v2.0/vsi-types/{id}?fields=type_id"))
            .await;
        assert_eq!(fields.body, json!({"vsi_type": {"type_id": 100}}));

        // Rules.
        let duplicate = api
            .post(
                "/v2.0/vsi-types",
                json!({"vsi_type": {"type_id": 100, "type_version": 1, "network_id": net}}),
            )
            .await;
        assert_neutron_error(&duplicate, 409, "DuplicateVsiType");
        for bad in [
            json!({"type_id": 16_777_216, "type_version": 1, "network_id": net}),
            json!({"type_id": 7, "type_version": 256, "network_id": net}),
            json!({"type_id": 7, "type_version": 1, "network_id": net, "vlan": 1}),
            json!({"type_id": 7, "type_version": 1, "network_id": net, "vlan": 4095}),
            json!({"type_id": 7, "type_version": 1}),
            json!({"type_id": 7, "type_version": 1, "network_id": net, "colour": "red"}),
        ] {
            let answer = api
                .post("/v2.0/vsi-types", json!({ "vsi_type": bad }))
                .await;
            assert_neutron_error(&answer, 400, "HTTPBadRequest");
        }
        let nowhere = api
            .post(
                "/v2.0/vsi-types",
                json!({"vsi_type": {"type_id": 7, "type_version": 1,
                                    "network_id": "00000000-0000-0000-0000-000000000000"}}),
            )
            .await;
        assert_neutron_error(&nowhere, 404, "NetworkNotFound");
        let read_only = api
            .put(
                &format!("/v2.0/vsi-types/{id}"),
                json!({"vsi_type": {"type_id": 5}}),
            )
            .await;
        assert_neutron_error(&read_only, 400, "HTTPBadRequest");
        // The network cannot go while a type's profile names it.
        let in_use = api.delete(&format!("/v2.0/networks/{net}")).await;
        assert_neutron_error(&in_use, 409, "NetworkInUse");

        let renamed = api
            .put(
                &format!("/v2.0/vsi-types/{id}"),
                json!({"vsi_type": {"name": "www", "vlan": 20}}),
            )
            .await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);
        assert_eq!(renamed.body["vsi_type"]["name"], "www");
        assert_eq!(renamed.body["vsi_type"]["vlan"], 20);
        assert_eq!(renamed.body["vsi_type"]["revision_number"], 2);
        let back = api
            .put(
                &format!("/v2.0/vsi-types/{id}"),
                json!({"vsi_type": {"vlan": null}}),
            )
            .await;
        assert_eq!(back.body["vsi_type"]["vlan"], Value::Null, "{}", back.text);

        assert_eq!(
            api.delete(&format!("/v2.0/vsi-types/{id}")).await.status,
            204
        );
        let gone = api.get(&format!("/v2.0/vsi-types/{id}")).await;
        assert_neutron_error(&gone, 404, "VsiTypeNotFound");
        let gone = api.delete(&format!("/v2.0/vsi-types/{id}")).await;
        assert_neutron_error(&gone, 404, "VsiTypeNotFound");
        let missing = api.get("/v2.0/vsi-associations/nope").await;
        assert_neutron_error(&missing, 404, "VsiAssociationNotFound");
        // Created, updated twice, deleted; the other type created.
        assert_eq!(revisions_of(&server, "vsi_type").await, 5, "{}", db.name);
    }
}

#[tokio::test]
async fn a_bridge_decides_and_the_association_walks_its_states() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let bridge = agent(&server);
        // A VXLAN tenant network: no VLAN of its own, so the port picks one.
        let net = network(&api, json!({"name": "web-net"})).await;
        let web = vsi_type(
            &api,
            json!({"name": "web", "type_id": 100, "type_version": 1, "network_id": net}),
        )
        .await;
        let web_id = web["id"].as_str().unwrap();

        // Figure 12 A: nothing asked, nothing recorded. C: an unknown type (or version) is
        // refused with other_failure and leaves no record.
        assert!(associations(&api, "").await.is_empty());
        let unknown = decide(&bridge, "tor1", "sw1p1", "associate", (100, 2), VSI, 0).await;
        assert_reject(&unknown, "other_failure");
        let unknown = decide(&bridge, "tor1", "sw1p1", "associate", (999, 1), VSI, 0).await;
        assert_reject(&unknown, "other_failure");
        assert!(associations(&api, "").await.is_empty(), "{}", db.name);

        // B: pre-associate, VID 0 gets the lowest free VLAN of the port.
        let pre = decide(&bridge, "tor1", "sw1p1", "preassociate", (100, 1), VSI, 0).await;
        assert_accept(&pre, 2, "preassociated");
        let record = &pre["association"];
        let id = record["id"].as_str().unwrap().to_owned();
        assert_eq!(record["vsi_id"], VSI);
        assert_eq!(record["id_format"], 5);
        assert_eq!(record["type_id"], 100);
        assert_eq!(record["vsi_type_id"], web_id);
        assert_eq!(record["network_id"], net.as_str());
        assert_eq!(record["manager_id"], "evmgr1");
        assert_eq!(record["bridge"], "tor1");
        assert_eq!(record["port"], "sw1p1");
        assert_eq!(
            record["filters"],
            json!([{"vlan": 2, "mac_address": MAC, "group_id": null}])
        );
        // The station now uses the assigned VID (lldpad insists), and the same VSI spelled as
        // 32 hex digits is the same record.
        let assoc = decide(
            &bridge,
            "tor1",
            "sw1p1",
            "associate",
            (100, 1),
            "0000000000000000000000000000BEEF",
            2,
        )
        .await;
        assert_accept(&assoc, 2, "associated");
        assert_eq!(assoc["association"]["id"], id.as_str());
        assert_eq!(assoc["association"]["revision_number"], 2);
        // A keep-alive changes nothing and records nothing.
        let before = revisions_of(&server, "vsi_association").await;
        let alive = decide(&bridge, "tor1", "sw1p1", "associate", (100, 1), VSI, 2).await;
        assert_accept(&alive, 2, "associated");
        assert_eq!(alive["association"]["revision_number"], 2);
        assert_eq!(revisions_of(&server, "vsi_association").await, before);

        let listed = associations(&api, "?state=associated").await;
        assert_eq!(listed.len(), 1, "{}", db.name);
        assert_eq!(listed[0]["id"], id.as_str());
        let shown = api.get(&format!("/v2.0/vsi-associations/{id}")).await;
        assert_eq!(shown.body["vsi_association"]["state"], "associated");
        // Read-only through the public API.
        let post = api
            .post("/v2.0/vsi-associations", json!({"vsi_association": {}}))
            .await;
        assert_neutron_error(&post, 405, "HTTPMethodNotAllowed");

        // A type in use stays, profile included.
        let busy = api.delete(&format!("/v2.0/vsi-types/{web_id}")).await;
        assert_neutron_error(&busy, 409, "VsiTypeInUse");
        let busy = api
            .put(
                &format!("/v2.0/vsi-types/{web_id}"),
                json!({"vsi_type": {"vlan": 30}}),
            )
            .await;
        assert_neutron_error(&busy, 409, "VsiTypeInUse");
        let renamed = api
            .put(
                &format!("/v2.0/vsi-types/{web_id}"),
                json!({"vsi_type": {"name": "w"}}),
            )
            .await;
        assert_eq!(renamed.status, 200, "{}", renamed.text);

        // Another VSI of the same network on the same port shares its VLAN; one of another
        // network gets the next.
        let other_net = network(&api, json!({"name": "db-net"})).await;
        vsi_type(
            &api,
            json!({"name": "db", "type_id": 200, "type_version": 1, "network_id": other_net}),
        )
        .await;
        let second = "00000000-0000-0000-0000-0000000000b2";
        let shared = decide(&bridge, "tor1", "sw1p1", "associate", (100, 1), second, 0).await;
        assert_accept(&shared, 2, "associated");
        let third = "00000000-0000-0000-0000-0000000000b3";
        let next = decide(&bridge, "tor1", "sw1p1", "associate", (200, 1), third, 0).await;
        assert_accept(&next, 3, "associated");
        // VID 3 on this port carries db-net: web cannot have it.
        let taken = decide(&bridge, "tor1", "sw1p1", "associate", (100, 1), VSI, 3).await;
        assert_reject(&taken, "invalid_vid_group_mac");
        // The bridge answered with a De-Associate: the record says so.
        let shown = api.get(&format!("/v2.0/vsi-associations/{id}")).await;
        assert_eq!(shown.body["vsi_association"]["state"], "deassociated");
        let again = decide(&bridge, "tor1", "sw1p1", "associate", (100, 1), VSI, 0).await;
        assert_accept(&again, 2, "associated");
        assert_eq!(again["association"]["id"], id.as_str());

        // De-associate: always accepted, VID filled in from the record.
        let gone = decide(&bridge, "tor1", "sw1p1", "deassociate", (100, 1), VSI, 0).await;
        assert_accept(&gone, 2, "deassociated");
        let unknown_gone = decide(
            &bridge,
            "tor1",
            "sw1p1",
            "deassociate",
            (555, 1),
            "00000000-0000-0000-0000-0000000000ff",
            0,
        )
        .await;
        assert_eq!(unknown_gone["decision"], "accept");
        assert_eq!(unknown_gone["association"], Value::Null);
        let history = associations(&api, "?state=deassociated").await;
        assert_eq!(history.len(), 1, "{}", db.name);
        assert_eq!(history[0]["vsi_id"], VSI);

        // The bridge ends one on its own (keep-alive timeout).
        let report = bridge
            .post(
                "/weft/v1/vdp/state",
                json!({"bridge": "tor1", "port": "sw1p1", "vsi_id": second,
                       "state": "deassociated", "reason": "keep-alive timeout"}),
            )
            .await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.body["association"]["state"], "deassociated");
        let bad_report = bridge
            .post(
                "/weft/v1/vdp/state",
                json!({"bridge": "tor1", "port": "sw1p1", "vsi_id": second,
                       "state": "associated"}),
            )
            .await;
        assert_neutron_error(&bad_report, 400, "HTTPBadRequest");
        // Only history uses web now: it can go.
        let deleted = api.delete(&format!("/v2.0/vsi-types/{web_id}")).await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        assert!(revisions_of(&server, "vsi_association").await >= 7);
        // Garbage shapes are the agent's bug.
        let garbage = bridge
            .post(
                "/weft/v1/vdp/decide",
                json!({"bridge": "tor1", "port": "p"}),
            )
            .await;
        assert_neutron_error(&garbage, 400, "HTTPBadRequest");
    }
}

#[tokio::test]
async fn the_profile_decides_the_vlan() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let bridge = agent(&server);
        let net = network(&api, json!({"name": "n"})).await;
        vsi_type(
            &api,
            json!({"type_id": 10, "type_version": 1, "network_id": net, "vlan": 10}),
        )
        .await;
        let provider = network(
            &api,
            json!({"name": "pnet", "provider:network_type": "vlan",
                   "provider:physical_network": "physnet1", "provider:segmentation_id": 200}),
        )
        .await;
        vsi_type(
            &api,
            json!({"type_id": 20, "type_version": 1, "network_id": provider}),
        )
        .await;

        // The type's VLAN: VID 0 gets it, the same VID is fine, another is not.
        let a = "00000000-0000-0000-0000-00000000000a";
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (10, 1), a, 0).await,
            10,
            "associated",
        );
        let b = "00000000-0000-0000-0000-00000000000b";
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (10, 1), b, 10).await,
            10,
            "associated",
        );
        let c = "00000000-0000-0000-0000-00000000000c";
        let wrong = decide(&bridge, "tor1", "p1", "associate", (10, 1), c, 11).await;
        assert_reject(&wrong, "invalid_vid_group_mac");
        // A VLAN network's segmentation id.
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (20, 1), c, 0).await,
            200,
            "associated",
        );
        // Filters the profile cannot take.
        let bad_mac = bridge
            .post(
                "/weft/v1/vdp/decide",
                json!({"bridge": "tor1", "port": "p1", "request": {
                    "mode": "associate", "type_id": 10, "type_version": 1, "id_format": 5,
                    "vsi_id": "00000000-0000-0000-0000-00000000000d",
                    "filters": [{"vlan": 0, "mac_address": "01:00:5e:00:00:01"}]}}),
            )
            .await;
        assert_reject(&bad_mac.body, "invalid_vid_group_mac");
        let vid_one = decide(
            &bridge,
            "tor1",
            "p1",
            "associate",
            (10, 1),
            "00000000-0000-0000-0000-00000000000d",
            1,
        )
        .await;
        assert_reject(&vid_one, "invalid_vid_group_mac");
        let no_filters = bridge
            .post(
                "/weft/v1/vdp/decide",
                json!({"bridge": "tor1", "port": "p1", "request": {
                    "mode": "associate", "type_id": 10, "type_version": 1, "id_format": 5,
                    "vsi_id": "00000000-0000-0000-0000-00000000000d", "filters": []}}),
            )
            .await;
        assert_reject(&no_filters.body, "invalid_format");
        assert_eq!(associations(&api, "").await.len(), 3, "{}", db.name);
    }
}

#[tokio::test]
async fn an_exhausted_vlan_pool_is_insufficient_resources() {
    for db in test_databases().await {
        let server = start(&db.url, |c| c.vsi.vlan_range = "2:3".into()).await;
        let api = Http::new(server.network);
        let bridge = agent(&server);
        for type_id in 1..=3 {
            let net = network(&api, json!({"name": format!("n{type_id}")})).await;
            vsi_type(
                &api,
                json!({"type_id": type_id, "type_version": 0, "network_id": net}),
            )
            .await;
        }
        let vsi = |n: u8| format!("00000000-0000-0000-0000-0000000000{n:02x}");
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (1, 0), &vsi(1), 0).await,
            2,
            "associated",
        );
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (2, 0), &vsi(2), 0).await,
            3,
            "associated",
        );
        let full = decide(&bridge, "tor1", "p1", "associate", (3, 0), &vsi(3), 0).await;
        assert_reject(&full, "insufficient_resources");
        // VLANs are per port: another port has the whole pool.
        assert_accept(
            &decide(&bridge, "tor1", "p2", "associate", (3, 0), &vsi(3), 0).await,
            2,
            "associated",
        );
        // A de-association frees its VLAN.
        decide(&bridge, "tor1", "p1", "deassociate", (1, 0), &vsi(1), 2).await;
        assert_accept(
            &decide(&bridge, "tor1", "p1", "associate", (3, 0), &vsi(4), 0).await,
            2,
            "associated",
        );
    }
}

#[tokio::test]
async fn a_vsi_migrates_between_bridges() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let bridge = agent(&server);
        let net = network(&api, json!({"name": "n"})).await;
        vsi_type(
            &api,
            json!({"type_id": 100, "type_version": 1, "network_id": net}),
        )
        .await;
        let old = decide(&bridge, "tor1", "sw1p1", "associate", (100, 1), VSI, 0).await;
        assert_accept(&old, 2, "associated");
        let old_id = old["association"]["id"].as_str().unwrap().to_owned();
        // Seed 000: the new VM pre-associates on its bridge while the old one still runs...
        let new = decide(&bridge, "tor2", "sw2p4", "preassociate", (100, 1), VSI, 0).await;
        assert_accept(&new, 2, "preassociated");
        let new_id = new["association"]["id"].as_str().unwrap().to_owned();
        assert_ne!(new_id, old_id);
        let shown = api.get(&format!("/v2.0/vsi-associations/{old_id}")).await;
        assert_eq!(shown.body["vsi_association"]["state"], "associated");
        // ...and takes over when it associates: the old record ends.
        let moved = decide(&bridge, "tor2", "sw2p4", "associate", (100, 1), VSI, 2).await;
        assert_accept(&moved, 2, "associated");
        let shown = api.get(&format!("/v2.0/vsi-associations/{old_id}")).await;
        assert_eq!(
            shown.body["vsi_association"]["state"], "deassociated",
            "{}",
            db.name
        );
        let live = associations(&api, &format!("?vsi_id={VSI}&state=associated")).await;
        assert_eq!(live.len(), 1);
        assert_eq!(live[0]["bridge"], "tor2");
        // The old bridge's late De-Associate changes nothing more.
        let late = decide(&bridge, "tor1", "sw1p1", "deassociate", (100, 1), VSI, 2).await;
        assert_eq!(late["association"]["state"], "deassociated");
        let live = associations(&api, "?state=associated").await;
        assert_eq!(live.len(), 1, "{}", db.name);
        // Moving ports on one bridge keeps the one record.
        let port_move = decide(&bridge, "tor2", "sw2p5", "associate", (100, 1), VSI, 0).await;
        assert_accept(&port_move, 2, "associated");
        assert_eq!(port_move["association"]["id"], new_id.as_str());
        assert_eq!(port_move["association"]["port"], "sw2p5");
        assert_eq!(associations(&api, "").await.len(), 2);
        // A migration between two ports of one bridge, in seed 000's order: pre-associate on
        // the target port, De-Associate on the source, associate on the target. The source's
        // De-Associate, and its daemon's state report, leave the moved record alone.
        let pre = decide(&bridge, "tor2", "sw2p6", "preassociate", (100, 1), VSI, 0).await;
        assert_accept(&pre, 2, "preassociated");
        assert_eq!(pre["association"]["port"], "sw2p6");
        let source = decide(&bridge, "tor2", "sw2p5", "deassociate", (100, 1), VSI, 0).await;
        assert_eq!(source["association"]["state"], "preassociated", "{source}");
        assert_eq!(source["association"]["port"], "sw2p6");
        let report = bridge
            .post(
                "/weft/v1/vdp/state",
                json!({"bridge": "tor2", "port": "sw2p5", "vsi_id": VSI,
                       "state": "deassociated", "reason": "keep-alive timeout"}),
            )
            .await;
        assert_eq!(report.status, 200, "{}", report.text);
        assert_eq!(report.body["association"]["state"], "preassociated");
        let target = decide(&bridge, "tor2", "sw2p6", "associate", (100, 1), VSI, 0).await;
        assert_accept(&target, 2, "associated");
        assert_eq!(target["association"]["port"], "sw2p6");
        assert_eq!(target["association"]["network_id"], net.as_str());
        let done = decide(&bridge, "tor2", "sw2p6", "deassociate", (100, 1), VSI, 0).await;
        assert_eq!(done["association"]["state"], "deassociated", "{}", db.name);
    }
}

#[tokio::test]
async fn a_vsi_that_is_a_port_must_agree_with_the_port() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let bridge = agent(&server);
        let net = network(&api, json!({"name": "n"})).await;
        let other = network(&api, json!({"name": "o"})).await;
        vsi_type(
            &api,
            json!({"type_id": 100, "type_version": 1, "network_id": net}),
        )
        .await;
        vsi_type(
            &api,
            json!({"type_id": 200, "type_version": 1, "network_id": other}),
        )
        .await;
        let created = api
            .post(
                "/v2.0/ports",
                json!({"port": {"network_id": net, "mac_address": MAC}}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let port = created.body["port"]["id"].as_str().unwrap().to_owned();
        // The type of another network: the VM would land on a network its port is not on.
        let wrong_net = decide(&bridge, "tor1", "p1", "associate", (200, 1), &port, 0).await;
        assert_reject(&wrong_net, "other_failure");
        // Another MAC than the port's.
        let answer = bridge
            .post(
                "/weft/v1/vdp/decide",
                json!({"bridge": "tor1", "port": "p1", "request": {
                    "mode": "associate", "type_id": 100, "type_version": 1, "id_format": 5,
                    "vsi_id": port, "manager_id": "m",
                    "filters": [{"vlan": 0, "mac_address": "52:54:00:00:00:99"}]}}),
            )
            .await;
        assert_reject(&answer.body, "invalid_vid_group_mac");
        // The port's own network and MAC.
        let right = decide(&bridge, "tor1", "p1", "associate", (100, 1), &port, 0).await;
        assert_accept(&right, 2, "associated");
        assert_eq!(right["association"]["vsi_id"], port.as_str(), "{}", db.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decides_for_one_vsi_make_one_record() {
    for db in test_databases().await {
        let server = start(&db.url, |_| {}).await;
        let api = Http::new(server.network);
        let net = network(&api, json!({"name": "n"})).await;
        vsi_type(
            &api,
            json!({"type_id": 100, "type_version": 1, "network_id": net}),
        )
        .await;
        for round in 0..3u8 {
            let vsi = format!("00000000-0000-0000-0000-0000000001{round:02x}");
            let mut tasks = Vec::new();
            for n in 0..12 {
                let bridge = agent(&server);
                let vsi = vsi.clone();
                // Several ports of one bridge, so the per-port lock does not serialise them:
                // the unique (bridge, vsi_id) index must.
                let port = format!("p{}", n % 4);
                tasks.push(tokio::spawn(async move {
                    decide(&bridge, "tor1", &port, "associate", (100, 1), &vsi, 0).await
                }));
            }
            let mut ids = HashSet::new();
            for task in tasks {
                let decision = task.await.unwrap();
                assert_eq!(decision["decision"], "accept", "{}: {decision}", db.name);
                ids.insert(decision["association"]["id"].as_str().unwrap().to_owned());
            }
            assert_eq!(ids.len(), 1, "{}: {ids:?}", db.name);
            let records = associations(&api, &format!("?vsi_id={vsi}")).await;
            assert_eq!(records.len(), 1, "{}", db.name);
        }
        // Every live association holds exactly one VLAN row.
        let rows = sqlx::query("SELECT COUNT(*) FROM vsi_vlans")
            .fetch_one(server.state.store.pool())
            .await
            .unwrap();
        assert_eq!(rows.try_get::<i64, _>(0).unwrap(), 3, "{}", db.name);
    }
}

/// A Keystone token for `user` in `project`.
async fn login(server: &Server, user: &str, password: &str, project: &str) -> String {
    let identity = Http::new(server.identity);
    let answer = identity
        .post(
            "/v3/auth/tokens",
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.headers["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn only_admins_write_types_and_only_agents_decide() {
    let server = Server::start(|c| {
        c.auth = AuthMode::Keystone;
        c.bootstrap.admin_password = Some("s3cret".into());
    })
    .await;
    let admin_token = login(&server, "admin", "s3cret", "admin").await;
    let mut admin = Http::new(server.network);
    admin.token = Some(admin_token.clone());
    let mut identity = Http::new(server.identity);
    identity.token = Some(admin_token.clone());
    let project = identity
        .post(
            "/v3/projects",
            json!({"project": {"name": "p1", "domain_id": "default"}}),
        )
        .await;
    let project_id = project.body["project"]["id"].as_str().unwrap().to_owned();
    let user = identity
        .post(
            "/v3/users",
            json!({"user": {"name": "alice", "password": "alice-pw"}}),
        )
        .await;
    let user_id = user.body["user"]["id"].as_str().unwrap().to_owned();
    let roles = identity.get("/v3/roles?name=member").await;
    let role_id = roles.body["roles"][0]["id"].as_str().unwrap().to_owned();
    let grant = identity
        .call(
            hyper::Method::PUT,
            &format!("/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
            None,
        )
        .await;
    assert_eq!(grant.status, 204, "{}", grant.text);
    let mut alice = Http::new(server.network);
    alice.token = Some(login(&server, "alice", "alice-pw", "p1").await);

    let alice_net = network(&alice, json!({"name": "alice-net"})).await;
    let refused = alice
        .post(
            "/v2.0/vsi-types",
            json!({"vsi_type": {"type_id": 1, "type_version": 1, "network_id": alice_net}}),
        )
        .await;
    assert_neutron_error(&refused, 403, "PolicyNotAuthorized");
    // The admin makes one for alice's project, and one of its own.
    let hers = vsi_type(
        &admin,
        json!({"type_id": 1, "type_version": 1, "network_id": alice_net,
               "project_id": project_id}),
    )
    .await;
    let admin_net = network(&admin, json!({"name": "admin-net"})).await;
    let own = vsi_type(
        &admin,
        json!({"type_id": 2, "type_version": 1, "network_id": admin_net}),
    )
    .await;
    let listed = alice.get("/v2.0/vsi-types").await;
    let ids: Vec<&Value> = listed.body["vsi_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&hers["id"]], "{}", listed.text);
    let hidden = alice
        .get(&format!("/v2.0/vsi-types/{}", own["id"].as_str().unwrap()))
        .await;
    assert_neutron_error(&hidden, 404, "VsiTypeNotFound");
    let deleting = alice
        .delete(&format!("/v2.0/vsi-types/{}", hers["id"].as_str().unwrap()))
        .await;
    assert_neutron_error(&deleting, 403, "PolicyNotAuthorized");
    // An admin may give its own type another project's network.
    let unseen = vsi_type(
        &admin,
        json!({"type_id": 3, "type_version": 1, "network_id": alice_net}),
    )
    .await;
    assert_eq!(unseen["network_id"], alice_net.as_str());

    // The VDP endpoints take the agent secret only.
    let body = json!({"bridge": "tor1", "port": "p1", "request": {"mode": "associate",
        "type_id": 1, "type_version": 1, "id_format": 5, "vsi_id": VSI,
        "filters": [{"vlan": 0, "mac_address": MAC}]}});
    let anonymous = Http::new(server.network);
    for path in ["/weft/v1/vdp/decide", "/weft/v1/vdp/state"] {
        assert_neutron_error(
            &anonymous.post(path, body.clone()).await,
            401,
            "HTTPUnauthorized",
        );
        assert_neutron_error(
            &admin.post(path, body.clone()).await,
            401,
            "HTTPUnauthorized",
        );
        let mut bearer_user = Http::new(server.network);
        bearer_user.bearer = Some(admin_token.clone());
        assert_neutron_error(
            &bearer_user.post(path, body.clone()).await,
            401,
            "HTTPUnauthorized",
        );
    }
    let decided = agent(&server).post("/weft/v1/vdp/decide", body).await;
    assert_eq!(decided.body["decision"], "accept", "{}", decided.text);
    // The owner of the type reads the association; other projects do not see it.
    let hers_listed = alice.get("/v2.0/vsi-associations").await;
    assert_eq!(
        hers_listed.body["vsi_associations"][0]["vsi_id"], VSI,
        "{}",
        hers_listed.text
    );
    assert_eq!(
        admin.get("/v2.0/vsi-associations").await.body["vsi_associations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
