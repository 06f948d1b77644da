//! What the agent builds is a configuration the switch accepts: read by the switch's own
//! configuration reader and turned into tables, with every cross-check that implies.

use agent::{Desired, HostConfig, TunnelType, View};
use serde_json::{Value, json};
use switch::daemon::{PortType, SwitchConfig};

fn port(
    id: &str,
    network: &str,
    mac: &str,
    ips: &[&str],
    host: &str,
    tunnel: &str,
    segment: Value,
) -> Value {
    let fixed: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"subnet_id": "s", "ip_address": ip}))
        .collect();
    json!({"id": id, "network_id": network, "mac_address": mac, "fixed_ips": fixed,
           "allowed_address_pairs": [{"ip_address": "10.0.0.200", "mac_address": mac},
                                     {"ip_address": "fd00::/64", "mac_address": mac}],
           "port_security_enabled": host != "h2",
           "weft:binding": {"host": host, "vif_type": "tap", "segment": segment,
                            "tunnel_ip": tunnel, "levels": []}})
}

#[test]
fn test_the_switch_reads_the_configuration() {
    let vx = |vni: u64| json!({"network_type": "vxlan", "physical_network": null, "segmentation_id": vni});
    let gre = json!({"network_type": "gre", "physical_network": null, "segmentation_id": 7});
    let nvgre = json!({"network_type": "nvgre", "physical_network": null, "segmentation_id": 8});
    let vlan =
        json!({"network_type": "vlan", "physical_network": "physnet1", "segmentation_id": 200});
    let flat =
        json!({"network_type": "flat", "physical_network": "physnet2", "segmentation_id": null});
    let local = json!({"network_type": "local", "physical_network": null, "segmentation_id": null});
    let networks: Vec<Value> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|id| json!({"id": id, "mtu": 1450}))
        .collect();
    let subnet = json!({"id": "s1", "network_id": "a", "ip_version": 4, "enable_dhcp": true,
                        "gateway_ip": null, "cidr": "10.0.0.0/24", "host_routes": [],
                        "dns_nameservers": []});
    // pa1 is a trunk parent: pd1 (VLAN network d) rides its device tagged 4.
    let mut parent = port(
        "pa1",
        "a",
        "fa:16:3e:00:00:01",
        &["10.0.0.1", "fd00::1"],
        "h1",
        "192.0.2.1",
        vx(100),
    );
    parent["trunk_details"] = json!({"trunk_id": "t", "sub_ports": [
        {"port_id": "pd1", "segmentation_type": "vlan", "segmentation_id": 4}]});
    let mut subport = port(
        "pd1",
        "d",
        "fa:16:3e:00:00:31",
        &["10.3.0.1"],
        "h1",
        "192.0.2.1",
        vlan.clone(),
    );
    subport["device_owner"] = json!("trunk:subport");
    let resync = json!({"type": "resync", "revision": 1, "networks": networks,
    "subnets": [subnet],
    "ports": [
        parent,
        port("pa2", "a", "fa:16:3e:00:00:02", &["10.0.0.2", "fd00::2"], "h2", "192.0.2.2", vx(100)),
        port("pa3", "a", "fa:16:3e:00:00:03", &["10.0.0.3"], "h3", "192.0.2.3", vx(100)),
        port("pb1", "b", "fa:16:3e:00:00:11", &["10.1.0.1"], "h1", "192.0.2.1", gre.clone()),
        port("pb2", "b", "fa:16:3e:00:00:12", &["10.1.0.2"], "h2", "192.0.2.2", gre),
        port("pc1", "c", "fa:16:3e:00:00:21", &["10.2.0.1"], "h1", "192.0.2.1", nvgre.clone()),
        port("pc2", "c", "fa:16:3e:00:00:22", &["10.2.0.2"], "h3", "192.0.2.3", nvgre),
        subport,
        port("pd2", "d", "fa:16:3e:00:00:32", &["10.3.0.2"], "h2", "192.0.2.2", vlan),
        port("pe1", "e", "fa:16:3e:00:00:41", &["10.4.0.1"], "h1", "192.0.2.1", flat),
        port("pf1", "f", "fa:16:3e:00:00:51", &[], "h1", "192.0.2.1", local),
    ]});
    let mut view = View::new();
    view.apply_line(resync.to_string().as_bytes()).unwrap();
    let host = HostConfig {
        host: "h1".into(),
        tunnel_ip: "192.0.2.1".parse().unwrap(),
        tunnel_types: [TunnelType::Vxlan, TunnelType::Gre, TunnelType::Nvgre].into(),
        bridge_mappings: [
            ("physnet1".to_owned(), "pn1".to_owned()),
            ("physnet2".to_owned(), "pn2".to_owned()),
        ]
        .into(),
        // An 802.1Qbg station's uplink: the switch must take the relay mode too.
        vepa: ["physnet2".to_owned()].into(),
        channel_networks: Default::default(),
        // The operator's choice reaches the switch, which takes it.
        vxlan_source_ports: Some(4),
        dhcp_lease_secs: 86_400,
    };
    let mut desired = Desired::new(host);
    desired.seed(
        &json!({"mac_aging_secs": 300, "busy_poll_us": 0, "switch": [], "port": [], "record": []}),
    );
    let problems = desired.rebuild(&view);
    assert!(problems.is_empty(), "{problems:?}");
    let assembled = desired.assemble();
    assert!(assembled.problems.is_empty());
    let config: Value = serde_json::from_str(&assembled.config).unwrap();
    let dhcp: usize = config["switch"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("dhcp").and_then(Value::as_array))
        .map(Vec::len)
        .sum();
    assert_eq!(dhcp, 1);
    let read = SwitchConfig::from_value(&config).unwrap_or_else(|err| panic!("{err}\n{config:#}"));
    read.tables(1)
        .unwrap_or_else(|err| panic!("{err}\n{config:#}"));
    assert_eq!(read.switches.len(), 6);
    assert_eq!(
        read.ports.len(),
        4 + 5,
        "vxlan0, gre0, two uplinks, five TAPs (the subport rides pa1's)"
    );
    let vxlan = read.ports.iter().find(|p| p.name == "vxlan0").unwrap();
    assert!(
        matches!(
            vxlan.kind,
            PortType::Vxlan {
                source_ports: 4,
                ..
            }
        ),
        "{:?}",
        vxlan.kind
    );
    let trunk = read.ports.iter().find(|p| p.name == "tappa1").unwrap();
    assert_eq!(trunk.kind.subports().len(), 1);
    assert_eq!(trunk.kind.subports()[0].vlan, 4);
    assert_eq!(
        read.records.len(),
        3 + 1 + 1,
        "a: 10.0.0.2, fd00::2, 10.0.0.3; b; c"
    );
    // What the switch lists back is what the agent would seed from, and gives the same ids.
    let mut again = Desired::new(desired.host().clone());
    again.seed(&read.to_value());
    again.rebuild(&view);
    let (a, b) = (again.assemble().config, assembled.config);
    assert_eq!(a, b, "\n{a}\n{b}");
}
