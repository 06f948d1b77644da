//! The EVB data plane (802.1Qbg, seed 000): on the bridge, a station-facing port whose
//! S-channels (802.1ad S-tags) are bridge ports of their own, reflective relay on a channel,
//! and VDP gating (only associated VSIs' frames enter, on the network their profile gave); on
//! the station, an edge relay in VEB or VEPA mode. The switch is built from a TOML
//! configuration as the daemon reads it, with memory devices the test plays the stations and
//! VMs through.

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use switch::{
    daemon::SwitchConfig,
    device::{Medium, memory},
    pipeline::DropReason,
    switch::Switch,
    tables::{Location, PortId},
};
use wire::{EtherType, MacAddr, vlan};

/// The ToR bridge: a server on net1, station port `st` with VDP gating (default channel with
/// reflective relay, channel 20 without), and an ungated station port `open`.
const BRIDGE: &str = r#"
[[switch]]
name = "net1"
local_vlan = 1
segment = "local"

[[switch]]
name = "net2"
local_vlan = 2
segment = "local"

[[port]]
name = "srv"
type = "memory"
switch = "net1"
mac = "02:00:00:00:00:01"
port_security = false

[[port]]
name = "st"
type = "station"
vdp_gating = true
s_channels = [{ svid = 1, reflective_relay = true }, { svid = 20 }]

[[port]]
name = "open"
type = "station"

[[vsi]]
port = "st.s1"
mac = "52:54:00:00:00:01"
vlan = 100
switch = "net1"

[[vsi]]
port = "st.s1"
mac = "52:54:00:00:00:02"
vlan = 100
switch = "net1"

[[vsi]]
port = "st.s20"
mac = "52:54:00:00:00:03"
switch = "net1"

[[vsi]]
port = "st.s20"
mac = "52:54:00:00:00:04"
switch = "net1"

[[vsi]]
port = "open.s1"
mac = "52:54:00:00:00:05"
vlan = 7
switch = "net2"
"#;

/// A station: two VMs on net1, whose traffic leaves by uplink `up` tagged 100.
const STATION: &str = r#"
[[switch]]
name = "net1"
local_vlan = 1
segment = "vlan:evb:100"

[[port]]
name = "vm1"
type = "memory"
switch = "net1"
mac = "52:54:00:00:00:01"
ips = ["10.0.0.11"]
port_security = false

[[port]]
name = "vm2"
type = "memory"
switch = "net1"
mac = "52:54:00:00:00:02"
ips = ["10.0.0.12"]
port_security = false

[[port]]
name = "up"
type = "uplink"
physical_network = "evb"
relay = "RELAY"
"#;

const SRV: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const V1: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const V2: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
const V3: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
const V4: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 4]);
const V5: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 5]);
const STRANGER: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0x99]);
const BROADCAST: MacAddr = MacAddr([0xff; 6]);

/// A switch with a memory device per port of `config`, and the test's ends of them.
struct Host {
    switch: Switch,
    peers: Vec<(String, memory::MemoryPeer)>,
    now: Duration,
}

impl Host {
    fn new(config: &str) -> Self {
        let config = SwitchConfig::from_toml(config).expect("config");
        let tables = config.tables(1).expect("tables");
        let mut switch = Switch::new(Arc::new(ArcSwap::from_pointee(tables)));
        let mut peers = Vec::new();
        for port in &config.ports {
            let (device, peer) = memory::pair(Medium::Ethernet);
            switch.attach(&port.name, Box::new(device));
            peers.push((port.name.clone(), peer));
        }
        Self {
            switch,
            peers,
            now: Duration::ZERO,
        }
    }

    /// Sends `frame` from port `from`; returns what each port received, by name.
    fn send(&mut self, from: &str, frame: &[u8]) -> Vec<(String, Vec<Vec<u8>>)> {
        let peer = &self.peers.iter().find(|(n, _)| n == from).expect("port").1;
        peer.inject(frame);
        self.now += Duration::from_millis(1);
        while self.switch.poll(self.now) > 0 {}
        self.peers
            .iter()
            .map(|(name, peer)| {
                let frames = peer.drain().into_iter().map(|(f, _)| f).collect();
                (name.clone(), frames)
            })
            .filter(|(_, frames): &(String, Vec<Vec<u8>>)| !frames.is_empty())
            .collect()
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.switch.counters().dropped(reason)
    }
}

fn frame(src: MacAddr, dst: MacAddr) -> Vec<u8> {
    wire::build::udp_ipv4(
        src,
        dst,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        (5000, 6000),
        b"evb",
    )
}

/// `frame` with a tag pushed (outermost).
fn tag(tpid: EtherType, vid: u16, frame: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 4];
    buf.extend_from_slice(frame);
    let start = vlan::push_tag(&mut buf, 4, tpid, vid).expect("push");
    buf[start..].to_vec()
}

fn c_tag(vid: u16, frame: &[u8]) -> Vec<u8> {
    tag(EtherType::VLAN, vid, frame)
}

fn s_tag(svid: u16, frame: &[u8]) -> Vec<u8> {
    tag(EtherType::QINQ, svid, frame)
}

fn one(port: &str, frames: &[Vec<u8>]) -> Vec<(String, Vec<Vec<u8>>)> {
    vec![(port.to_owned(), frames.to_vec())]
}

#[test]
fn vdp_gating_lets_only_associated_vsis_in_with_their_vlan() {
    let mut bridge = Host::new(BRIDGE);
    // B: associated V1 on the default channel (no S-tag), C-VLAN 100: in, untagged, on net1.
    let to_srv = frame(V1, SRV);
    assert_eq!(
        bridge.send("st", &c_tag(100, &to_srv)),
        one("srv", &[to_srv])
    );
    // A: a MAC nobody associated sends nothing through, nor does V1 on another VLAN or
    // untagged (the profile gave it VLAN 100 only).
    assert!(
        bridge
            .send("st", &c_tag(100, &frame(STRANGER, SRV)))
            .is_empty()
    );
    assert!(bridge.send("st", &c_tag(200, &frame(V1, SRV))).is_empty());
    assert!(bridge.send("st", &frame(V1, SRV)).is_empty());
    assert_eq!(bridge.dropped(DropReason::VsiNotAssociated), 3);
    // Back to V1: out of `st` with its C-VLAN, and no S-tag on the default channel.
    let to_v1 = frame(SRV, V1);
    assert_eq!(bridge.send("srv", &to_v1), one("st", &[c_tag(100, &to_v1)]));
}

#[test]
fn s_channels_are_bridge_ports_reached_by_their_s_tag() {
    let mut bridge = Host::new(BRIDGE);
    // V3 is on channel 20, untagged inside it: the S-tag comes off on the way in...
    let to_srv = frame(V3, SRV);
    assert_eq!(
        bridge.send("st", &s_tag(20, &to_srv)),
        one("srv", &[to_srv])
    );
    // ...and goes on on the way out.
    let to_v3 = frame(SRV, V3);
    assert_eq!(bridge.send("srv", &to_v3), one("st", &[s_tag(20, &to_v3)]));
    // The same MAC on the default channel is not V3's association.
    assert!(bridge.send("st", &frame(V3, SRV)).is_empty());
    assert_eq!(bridge.dropped(DropReason::VsiNotAssociated), 1);
    // An S-VLAN the port has no channel for.
    assert!(bridge.send("st", &s_tag(30, &frame(V3, SRV))).is_empty());
    assert_eq!(bridge.dropped(DropReason::UnknownSChannel), 1);
    // A broadcast from the server reaches each channel once, each with its own tags.
    let flood = frame(SRV, BROADCAST);
    let got = bridge.send("srv", &flood);
    assert_eq!(got.len(), 1, "{got:?}");
    let mut at_st = got[0].1.clone();
    at_st.sort();
    let mut want = vec![c_tag(100, &flood), s_tag(20, &flood)];
    want.sort();
    assert_eq!(at_st, want);
}

#[test]
fn reflective_relay_hairpins_only_where_negotiated() {
    let mut bridge = Host::new(BRIDGE);
    // The default channel has reflective relay: V1 to V2 goes back out of `st`.
    let to_v2 = frame(V1, V2);
    assert_eq!(
        bridge.send("st", &c_tag(100, &to_v2)),
        one("st", &[c_tag(100, &to_v2)])
    );
    // And so does its broadcast (with a copy to the server).
    let flood = frame(V1, BROADCAST);
    let got = bridge.send("st", &c_tag(100, &flood));
    let at = |port: &str| got.iter().find(|(n, _)| n == port).map(|(_, f)| f.clone());
    assert_eq!(at("srv"), Some(vec![flood.clone()]));
    let mut at_st = at("st").unwrap_or_default();
    at_st.sort();
    // Reflected on channel 1, and flooded to channel 20 as well.
    let mut want = vec![c_tag(100, &flood), s_tag(20, &flood)];
    want.sort();
    assert_eq!(at_st, want);
    // Channel 20 has none: V3 to V4 (both on it) is dropped, and V3's broadcast does not
    // come back on channel 20 (only on channel 1, another bridge port).
    assert!(bridge.send("st", &s_tag(20, &frame(V3, V4))).is_empty());
    assert_eq!(bridge.dropped(DropReason::Loopback), 1);
    let flood = frame(V3, BROADCAST);
    let got = bridge.send("st", &s_tag(20, &flood));
    let at = |port: &str| got.iter().find(|(n, _)| n == port).map(|(_, f)| f.clone());
    assert_eq!(at("st"), Some(vec![c_tag(100, &flood)]));
    assert_eq!(at("srv"), Some(vec![flood]));
}

#[test]
fn ungated_channels_map_vlans_by_their_vsis_and_drop_link_local_frames() {
    let mut bridge = Host::new(BRIDGE);
    // No gating: any MAC on a C-VLAN some VSI of the channel uses is on that VSI's network.
    let frame7 = frame(STRANGER, V5);
    assert!(bridge.send("open", &c_tag(7, &frame7)).is_empty());
    assert_eq!(
        bridge.dropped(DropReason::Loopback),
        1,
        "V5 is behind `open`"
    );
    assert!(
        bridge
            .send("open", &c_tag(8, &frame(STRANGER, V5)))
            .is_empty()
    );
    assert_eq!(bridge.dropped(DropReason::UnknownVlan), 1);
    assert_eq!(bridge.dropped(DropReason::VsiNotAssociated), 0);
    // LLDP (and ECP/VDP, CDCP) to the 802.1 reserved group addresses are the EVB daemon's.
    let lldp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    assert!(bridge.send("st", &frame(V1, lldp)).is_empty());
    assert_eq!(bridge.dropped(DropReason::LinkLocalGroup), 1);
}

/// On a VEPA station: `frame` from VM port `vm` leaves by the uplink `up` tagged with VLAN 100
/// alone, and the bridge's reflection of it is delivered to VM port `to` alone.
fn reflected(station: &mut Host, vm: &str, frame: &[u8], to: &str) {
    assert_eq!(station.send(vm, frame), one("up", &[c_tag(100, frame)]));
    assert_eq!(
        station.send("up", &c_tag(100, frame)),
        one(to, &[frame.to_vec()])
    );
}

#[test]
fn vepa_sends_everything_to_the_bridge_and_delivers_reflections_but_not_to_the_sender() {
    let mut station = Host::new(&STATION.replace("RELAY", "vepa"));
    // A local destination still goes to the bridge, tagged with the network's VLAN; the
    // bridge reflects it, and it is delivered to vm2.
    let to_vm2 = frame(V1, V2);
    reflected(&mut station, "vm1", &to_vm2, "vm2");
    // A broadcast goes to the bridge only; its reflection reaches vm2 but never vm1 (who sent
    // it) and never goes back to the bridge.
    let flood = frame(V1, BROADCAST);
    reflected(&mut station, "vm1", &flood, "vm2");
    // A reflected frame addressed to its own sender is not delivered.
    assert!(station.send("up", &c_tag(100, &frame(V1, V1))).is_empty());
    // Traffic from beyond the bridge is delivered as always.
    let from_far = frame(SRV, V1);
    assert_eq!(
        station.send("up", &c_tag(100, &from_far)),
        one("vm1", &[from_far])
    );
}

#[test]
fn vepa_knows_its_vms_by_their_allowed_pair_macs_too() {
    // vm1 may also send as PAIR (a Neutron allowed address pair, e.g. a VRRP address).
    let config = STATION.replace("RELAY", "vepa").replacen(
        "ips = [\"10.0.0.11\"]",
        "ips = [\"10.0.0.11\"]\nallowed_pairs = [{ mac = \"52:54:00:00:00:aa\", ip = \"10.0.0.99\" }]",
        1,
    );
    let mut station = Host::new(&config);
    let pair = MacAddr([0x52, 0x54, 0, 0, 0, 0xaa]);
    let flood = frame(pair, BROADCAST);
    // The bridge's reflection reaches vm2, and not vm1, who sent it.
    reflected(&mut station, "vm1", &flood, "vm2");
    // Nor was PAIR learned behind the uplink: vm2's reply still leaves by the bridge and its
    // reflection comes to vm1.
    let reply = frame(V2, pair);
    reflected(&mut station, "vm2", &reply, "vm1");
}

#[test]
fn veb_switches_locally() {
    let mut station = Host::new(&STATION.replace("RELAY", "veb"));
    let to_vm2 = frame(V1, V2);
    assert_eq!(station.send("vm1", &to_vm2), one("vm2", &[to_vm2]));
    let flood = frame(V1, BROADCAST);
    let got = station.send("vm1", &flood);
    assert_eq!(
        got,
        vec![
            ("vm2".to_owned(), vec![flood.clone()]),
            ("up".to_owned(), vec![c_tag(100, &flood)]),
        ]
    );
}

/// A station whose uplink `up` carries three edge relays: the default channel (untagged) a
/// VEPA relay for `evb`, with vm1 and vm2 on VLAN 100; S-channel 20 a VEB relay for `evb2`,
/// with vm3 and vm4 on VLAN 300 and vm7 on VLAN 100 (the same C-VLAN as the default
/// channel's network, another network); S-channel 30 a VEPA relay for the flat `evb3`, with
/// vm5 and vm6.
const CHANNELS: &str = r#"
[[switch]]
name = "def"
local_vlan = 1
segment = "vlan:evb:100"

[[switch]]
name = "red"
local_vlan = 2
segment = "vlan:evb2:300"

[[switch]]
name = "blue"
local_vlan = 3
segment = "vlan:evb2:100"

[[switch]]
name = "flat"
local_vlan = 4
segment = "flat:evb3"

[[port]]
name = "vm1"
type = "memory"
switch = "def"
mac = "52:54:00:00:00:01"
port_security = false

[[port]]
name = "vm2"
type = "memory"
switch = "def"
mac = "52:54:00:00:00:02"
port_security = false

[[port]]
name = "vm3"
type = "memory"
switch = "red"
mac = "52:54:00:00:00:03"
port_security = false

[[port]]
name = "vm4"
type = "memory"
switch = "red"
mac = "52:54:00:00:00:04"
port_security = false

[[port]]
name = "vm5"
type = "memory"
switch = "flat"
mac = "52:54:00:00:00:05"
port_security = false

[[port]]
name = "vm6"
type = "memory"
switch = "flat"
mac = "52:54:00:00:00:06"
port_security = false

[[port]]
name = "vm7"
type = "memory"
switch = "blue"
mac = "52:54:00:00:00:07"
port_security = false

[[port]]
name = "up"
type = "uplink"
physical_network = "evb"
relay = "vepa"
s_channels = [
    { svid = 20, physical_network = "evb2", relay = "veb" },
    { svid = 30, physical_network = "evb3", relay = "vepa" },
]
"#;

const V6: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 6]);
const V7: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 7]);

#[test]
fn an_uplink_channel_pushes_its_s_tag_outside_the_c_tag_and_pops_it_on_the_way_in() {
    let mut station = Host::new(CHANNELS);
    // vm3's frame to a MAC beyond the bridge: VEB floods it to vm4 and out of channel 20,
    // S-tag 20 outside the network's C-tag 300.
    let out = frame(V3, SRV);
    let got = station.send("vm3", &out);
    assert_eq!(
        got,
        vec![
            ("vm4".to_owned(), vec![out.clone()]),
            ("up".to_owned(), vec![s_tag(20, &c_tag(300, &out))]),
        ]
    );
    // The answer comes back with both tags: both come off, and it is vm3's.
    let back = frame(SRV, V3);
    assert_eq!(
        station.send("up", &s_tag(20, &c_tag(300, &back))),
        one("vm3", std::slice::from_ref(&back))
    );
    // SRV is now known beyond channel 20: unicast to it goes there alone, tagged.
    assert_eq!(
        station.send("vm3", &out),
        one("up", &[s_tag(20, &c_tag(300, &out))])
    );
    // Learned behind the channel's port (up.s20, after the eight ports), not the device's.
    let learned: Vec<_> = station
        .switch
        .macs()
        .entries(Duration::ZERO)
        .map(|(_, mac, at, _)| (mac, at))
        .collect();
    assert_eq!(learned, [(SRV, Location::Uplink(PortId(8)))]);
    // An S-VLAN the uplink has no channel for, a C-VLAN the channel's physical network does
    // not use, and a second S-tag.
    assert!(
        station
            .send("up", &s_tag(40, &c_tag(300, &back)))
            .is_empty()
    );
    assert_eq!(station.dropped(DropReason::UnknownSChannel), 1);
    assert!(
        station
            .send("up", &s_tag(20, &c_tag(301, &back)))
            .is_empty()
    );
    assert_eq!(station.dropped(DropReason::UnknownVlan), 1);
    assert!(station.send("up", &s_tag(20, &s_tag(30, &back))).is_empty());
    assert_eq!(station.dropped(DropReason::UnexpectedTag), 1);
    // Link-local group frames stay the link's own, on every channel.
    let lldp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    assert!(station.send("up", &frame(SRV, lldp)).is_empty());
    assert!(station.send("up", &s_tag(30, &frame(SRV, lldp))).is_empty());
    assert_eq!(station.dropped(DropReason::LinkLocalGroup), 2);
}

#[test]
fn a_veb_channel_switches_locally() {
    let mut station = Host::new(CHANNELS);
    let to_vm4 = frame(V3, V4);
    assert_eq!(station.send("vm3", &to_vm4), one("vm4", &[to_vm4]));
}

#[test]
fn a_vepa_channel_reflects_through_the_bridge_but_never_to_the_sender() {
    let mut station = Host::new(CHANNELS);
    // vm5 to vm6, both local: out of channel 30 (a flat network: S-tag only).
    let to_vm6 = frame(V5, V6);
    assert_eq!(
        station.send("vm5", &to_vm6),
        one("up", &[s_tag(30, &to_vm6)])
    );
    // The bridge reflects it on channel 30: delivered to vm6.
    assert_eq!(
        station.send("up", &s_tag(30, &to_vm6)),
        one("vm6", std::slice::from_ref(&to_vm6))
    );
    // A broadcast goes to the bridge alone; its reflection reaches vm6, never vm5 nor the
    // bridge again.
    let flood = frame(V5, BROADCAST);
    assert_eq!(station.send("vm5", &flood), one("up", &[s_tag(30, &flood)]));
    assert_eq!(
        station.send("up", &s_tag(30, &flood)),
        one("vm6", std::slice::from_ref(&flood))
    );
    // A reflection addressed to its own sender is not delivered.
    assert!(station.send("up", &s_tag(30, &frame(V5, V5))).is_empty());
    // Nothing was learned behind the uplink from the reflections.
    assert!(station.switch.macs().is_empty());
}

#[test]
fn the_default_vepa_relay_and_a_veb_channel_on_one_uplink_do_not_mix() {
    let mut station = Host::new(CHANNELS);
    // VLAN 100 untagged-S is the default channel's network (VEPA): vm1 to vm2 goes to the
    // bridge with the C-tag alone, and comes back to vm2 only.
    let to_vm2 = frame(V1, V2);
    reflected(&mut station, "vm1", &to_vm2, "vm2");
    // VLAN 100 in channel 20 is `blue` (VEB): the same frame there is not a reflection of
    // vm1's and reaches only blue's vm7 (V2 is unknown on blue).
    assert_eq!(
        station.send("up", &s_tag(20, &c_tag(100, &to_vm2))),
        one("vm7", std::slice::from_ref(&to_vm2))
    );
    // Broadcasts stay on their own relay: from the bridge on the default channel to vm1 and
    // vm2 only; vm7's leaves by channel 20 only.
    let flood = frame(SRV, BROADCAST);
    let got = station.send("up", &c_tag(100, &flood));
    let ports: Vec<&str> = got.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(ports, ["vm1", "vm2"]);
    let flood7 = frame(V7, BROADCAST);
    assert_eq!(
        station.send("vm7", &flood7),
        one("up", &[s_tag(20, &c_tag(100, &flood7))])
    );
    // The default channel's VEPA never hairpins a channel's frames locally either: vm7 to
    // vm1 (another network) is not delivered.
    let cross = frame(V7, V1);
    assert_eq!(
        station.send("vm7", &cross),
        one("up", &[s_tag(20, &c_tag(100, &cross))])
    );
}
