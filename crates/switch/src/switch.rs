//! The switch driver: moves batches from devices through the pipeline and out again.
//!
//! It owns the devices, the buffers, the learned MAC table and the counters; it reads the
//! current [`Tables`] snapshot once per batch (an atomic load, no lock), so a control thread can
//! swap tables at any time. Egress is where verdicts become copies (flooding with head-end
//! replication to remote endpoints), where tunnel headers are written into headroom, and where
//! offloads a receiving device does not take are finished: a TCP super-frame from a TAP is cut
//! into segments (each encapsulated on its own for a tunnel), a partial checksum finished.
//!
//! The pipeline sees a super-frame once: its headers are those of every segment, so port
//! security, learning and the verdict hold for all of them. Receive counters count it once
//! (as the kernel counts a GSO packet), transmit counters count the segments sent.

use std::{collections::HashMap, io, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use wire::{EtherType, gre, gso::Gso, vlan, vxlan};

use crate::{
    PacketBuf,
    device::{Device, Medium, Offloads, Sent},
    dhcp,
    mac::MacTable,
    pipeline::{self, DropReason, Verdict},
    tables::{Location, LsId, PortId, PortKind, RelayMode, Segment, Tables, TunnelProtocol},
};

/// A tag to push on a port's way out of its parent's device: TPID and VLAN id.
type Tag = (EtherType, u16);

/// Frames read from one device per round.
pub const BATCH: usize = 32;
/// How long a learned MAC address lives without being seen.
pub const MAC_AGING: Duration = Duration::from_secs(300);

/// Packet and byte counts of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive calls that failed (other than "nothing waiting").
    pub rx_errors: u64,
    /// Send calls that failed outright.
    pub tx_errors: u64,
}

/// Everything the switch counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Per port, by port name.
    pub ports: HashMap<String, PortCounters>,
    /// Drops, indexed like [`DropReason::ALL`].
    pub drops: Vec<u64>,
    /// DHCP client messages the switch answered or consumed, indexed like
    /// [`dhcp::Outcome::ALL`].
    pub dhcp: Vec<u64>,
}

impl Counters {
    /// How many frames were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        let index = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.drops.get(index).copied().unwrap_or(0)
    }

    /// How many DHCP client messages came to `outcome`.
    pub fn dhcp(&self, outcome: dhcp::Outcome) -> u64 {
        self.dhcp.get(outcome.index()).copied().unwrap_or(0)
    }
}

/// Whether a device works, as the forwarding thread last found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The port's name.
    pub name: String,
    /// Why the device stopped working (its netdev is gone, say); `None` while it works.
    pub failure: Option<String>,
}

struct Attached {
    name: String,
    device: Box<dyn Device>,
    /// What the device takes unfinished (asked once, at attach).
    offloads: Offloads,
    tx: Vec<PacketBuf>,
    counters: PortCounters,
    /// Set when a receive failed in a way that does not heal (the netdev was destroyed): the
    /// device is no longer read or written, and its port reports down.
    failure: Option<String>,
    /// Whether [`Switch::poll`] reads it. Always, unless the driver [waits on
    /// descriptors](Switch::wait_on_descriptors): then a device with a descriptor is read from
    /// when the driver [says it is ready](Switch::ready) until a read finds nothing.
    armed: bool,
    /// The device has a descriptor to wait on.
    waitable: bool,
}

/// One host's switch: devices, tables, learning and counters.
pub struct Switch {
    tables: Arc<ArcSwap<Tables>>,
    devices: Vec<Attached>,
    /// `PortId` → device index, and the tag to push for a subport (802.1Q) or an S-channel
    /// (802.1ad, a bridge's or an uplink's), which go out of their parent's device, for the
    /// snapshot in `bound`.
    port_device: Vec<Option<(usize, Option<Tag>)>>,
    /// The snapshot `port_device` and the learned entries' ids refer to.
    bound: Option<Arc<Tables>>,
    /// Devices came or went since `port_device` was made.
    stale: bool,
    macs: MacTable,
    drops: Vec<u64>,
    dhcp: Vec<u64>,
    /// Names of devices that failed since the driver last asked.
    failed: Vec<String>,
    rx: Vec<PacketBuf>,
    pool: Vec<PacketBuf>,
    /// The latest device error, for the driver to report.
    last_error: Option<(String, io::Error)>,
    /// The driver waits on the devices' descriptors and says which are ready.
    readiness: bool,
}

impl Switch {
    /// A switch reading its tables from `tables`.
    pub fn new(tables: Arc<ArcSwap<Tables>>) -> Self {
        Self {
            tables,
            devices: Vec::new(),
            port_device: Vec::new(),
            bound: None,
            stale: true,
            macs: MacTable::new(MAC_AGING),
            drops: vec![0; DropReason::ALL.len()],
            dhcp: vec![0; dhcp::Outcome::ALL.len()],
            failed: Vec::new(),
            rx: (0..BATCH).map(|_| PacketBuf::new()).collect(),
            // Enough spare buffers for a batch flooded to a few dozen destinations.
            pool: (0..BATCH * 4).map(|_| PacketBuf::new()).collect(),
            last_error: None,
            readiness: false,
        }
    }

    /// From now on [`poll`](Self::poll) reads a device that has a descriptor only after the
    /// driver said it is [ready](Self::ready), and stops once a read finds it empty; devices
    /// without one are read every time. A driver that waits with epoll on hundreds of ports
    /// thus reads the few that have frames instead of all of them. Off by default: every
    /// device is read on every call.
    pub fn wait_on_descriptors(&mut self) {
        self.readiness = true;
    }

    /// Device `index` (in the order of attachment, less those detached) has frames waiting,
    /// or a condition to read: [`poll`](Self::poll) reads it until it is empty.
    pub fn ready(&mut self, index: usize) {
        if let Some(attached) = self.devices.get_mut(index) {
            attached.armed = true;
        }
    }

    /// Whether a device with a descriptor was made [ready](Self::ready) and has not been read
    /// empty since.
    pub fn any_ready(&self) -> bool {
        self.devices.iter().any(|d| d.waitable && d.armed)
    }

    /// Attaches the device for the port named `name` (the port may appear in the tables later).
    pub fn attach(&mut self, name: &str, device: Box<dyn Device>) {
        let waitable = device.fd().is_some();
        self.devices.push(Attached {
            name: name.to_owned(),
            offloads: device.offloads(),
            device,
            tx: Vec::with_capacity(BATCH * 4),
            counters: PortCounters::default(),
            failure: None,
            // Read once at first: frames may have come before the driver waits on it.
            armed: true,
            waitable,
        });
        self.stale = true;
    }

    /// Detaches and returns the device of port `name` (the first attached, while a port's
    /// new device and its old one are both attached).
    pub fn detach(&mut self, name: &str) -> Option<Box<dyn Device>> {
        let index = self.devices.iter().position(|d| d.name == name)?;
        self.stale = true;
        Some(self.devices.remove(index).device)
    }

    /// Every attached device and whether it works.
    pub fn device_status(&self) -> Vec<DeviceStatus> {
        self.devices
            .iter()
            .map(|d| DeviceStatus {
                name: d.name.clone(),
                failure: d.failure.clone(),
            })
            .collect()
    }

    /// The names of devices that failed since the last call (the driver stops waiting on
    /// them).
    pub fn take_failed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failed)
    }

    /// A copy of the counters so far.
    pub fn counters(&self) -> Counters {
        Counters {
            ports: self
                .devices
                .iter()
                .map(|d| (d.name.clone(), d.counters))
                .collect(),
            drops: self.drops.clone(),
            dhcp: self.dhcp.clone(),
        }
    }

    /// The learned MAC table.
    pub fn macs(&self) -> &MacTable {
        &self.macs
    }

    /// The tables handle (for swapping in a new snapshot).
    pub fn tables(&self) -> &Arc<ArcSwap<Tables>> {
        &self.tables
    }

    /// Sets how long a learned MAC address lives without being seen.
    pub fn set_mac_aging(&mut self, aging: Duration) {
        self.macs.set_aging(aging);
    }

    /// The latest device error since the last call, with the port's name (a device error is
    /// counted and skipped; the driver decides how loudly to report it).
    pub fn take_error(&mut self) -> Option<(String, io::Error)> {
        self.last_error.take()
    }

    /// Reads one batch from every device (every ready one, when the driver [waits on
    /// descriptors](Self::wait_on_descriptors)), forwards it, and flushes what is queued;
    /// returns how many frames were received. `now` is the time since the switch started.
    ///
    /// A device that fails is counted (`rx_errors`/`tx_errors`) and skipped for this round;
    /// the others carry on. [`take_error`](Self::take_error) returns the latest failure. A
    /// device whose failure does not heal ([`Device::is_gone`]) is marked failed and left
    /// alone from then on: frames for it are dropped (`tx_failed`).
    pub fn poll(&mut self, now: Duration) -> usize {
        let tables = self.tables.load_full();
        if self.stale || self.bound.as_ref().map(|t| t.generation()) != Some(tables.generation()) {
            self.rebind(&tables);
        }
        let mut received = 0;
        for index in 0..self.devices.len() {
            let attached = &self.devices[index];
            if attached.failure.is_some() || !attached.armed {
                continue;
            }
            let port = self.port_of(&tables, index);
            let result = self.devices[index].device.recv(&mut self.rx);
            let attached = &mut self.devices[index];
            if self.readiness && attached.waitable && !matches!(result, Ok(n) if n > 0) {
                // Read empty (or failed): not again until its descriptor says so.
                attached.armed = false;
            }
            let n = match result {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
                Err(err) => {
                    // One failing device must not starve the others: count it and go on.
                    let attached = &mut self.devices[index];
                    attached.counters.rx_errors += 1;
                    if attached.device.is_gone(&err) {
                        attached.failure = Some(err.to_string());
                        self.failed.push(attached.name.clone());
                    }
                    self.last_error = Some((attached.name.clone(), err));
                    0
                }
            };
            received += n;
            let Some(port) = port else {
                // A device whose port the current tables do not have (being added or removed):
                // read and count its frames rather than let its queue fill up.
                self.count_drop(DropReason::UnknownPort, n as u64);
                continue;
            };
            pipeline::prefetch(&tables, port, &self.rx[..n]);
            for i in 0..n {
                // Swap a spare buffer into the receive ring; the pool only runs dry if egress
                // queues hold more than it was sized for, and then a buffer is allocated.
                let spare = self.pool.pop().unwrap_or_default();
                let mut buf = std::mem::replace(&mut self.rx[i], spare);
                let counters = &mut self.devices[index].counters;
                counters.rx_packets += 1;
                counters.rx_bytes += buf.len() as u64;
                let verdict = pipeline::process(&tables, &mut self.macs, port, &mut buf, now);
                self.egress(&tables, port, verdict, buf);
            }
        }
        self.flush();
        if received == 0 {
            self.macs.expire(now);
        }
        received
    }

    fn rebind(&mut self, tables: &Arc<Tables>) {
        let ports = &tables.config().ports;
        let device = |name: &str| self.devices.iter().position(|d| d.name == name);
        self.port_device = ports
            .iter()
            .map(|p| match &p.kind {
                PortKind::Subport { parent, vlan, .. } => ports
                    .get(usize::from(parent.0))
                    .and_then(|parent| device(&parent.name))
                    .map(|index| (index, Some((EtherType::VLAN, *vlan)))),
                // The default channel (SVID 1) is the untagged one.
                PortKind::Channel(channel) => ports
                    .get(usize::from(channel.parent.0))
                    .and_then(|parent| device(&parent.name))
                    .map(|index| {
                        let tag = (channel.svid != 1).then_some((EtherType::QINQ, channel.svid));
                        (index, tag)
                    }),
                // An uplink's S-channel: never the default one, so always S-tagged.
                PortKind::UplinkChannel(channel) => ports
                    .get(usize::from(channel.parent.0))
                    .and_then(|parent| device(&parent.name))
                    .map(|index| (index, Some((EtherType::QINQ, channel.svid)))),
                _ => device(&p.name).map(|index| (index, None)),
            })
            .collect();
        if let Some(old) = &self.bound
            && old.generation() != tables.generation()
        {
            // Ids may have changed meaning: carry what was learned over by name.
            let (ls_map, port_map) = renumbering(old, tables);
            self.macs.remap(|ls, location| {
                let ls = ls_map.get(usize::from(ls.0)).copied().flatten()?;
                let location = match location {
                    Location::Local(port) => {
                        Location::Local(port_map.get(usize::from(port.0)).copied().flatten()?)
                    }
                    Location::Uplink(port) => {
                        Location::Uplink(port_map.get(usize::from(port.0)).copied().flatten()?)
                    }
                    remote @ Location::Remote(_) => remote,
                };
                Some((ls, location))
            });
        }
        self.bound = Some(Arc::clone(tables));
        self.stale = false;
    }

    fn port_of(&self, tables: &Tables, device: usize) -> Option<PortId> {
        let name = &self.devices[device].name;
        tables
            .config()
            .ports
            .iter()
            .position(|p| p.name == *name)
            .and_then(|i| u16::try_from(i).ok())
            .map(PortId)
    }

    /// The device that sends for `port`, and the tag to push last (a subport's or channel's).
    fn device_of(&self, port: PortId) -> Option<(usize, Option<Tag>)> {
        self.port_device.get(usize::from(port.0)).copied().flatten()
    }

    fn count_drop(&mut self, reason: DropReason, n: u64) {
        if let Some(index) = DropReason::ALL.iter().position(|r| *r == reason) {
            self.drops[index] += n;
        }
    }

    fn drop(&mut self, reason: DropReason, buf: PacketBuf) {
        self.count_drop(reason, 1);
        self.recycle(buf);
    }

    fn recycle(&mut self, mut buf: PacketBuf) {
        buf.clear();
        self.pool.push(buf);
    }

    fn enqueue(&mut self, port: PortId, mut buf: PacketBuf) {
        match self.device_of(port) {
            Some((device, None)) => self.push_tx(device, buf),
            Some((device, Some((tpid, vid)))) => match push_tag(&mut buf, tpid, vid) {
                Ok(()) => self.push_tx(device, buf),
                Err(reason) => self.drop(reason, buf),
            },
            None => self.drop(DropReason::TxFailed, buf),
        }
    }

    /// Queues `buf` on device `index`, first finishing the offloads the device does not take.
    fn push_tx(&mut self, index: usize, mut buf: PacketBuf) {
        let offloads = self.devices[index].offloads;
        if let Some(gso) = buf.offload.gso
            && !offloads.tso
        {
            return self.segment(index, buf, gso, None);
        }
        if buf.offload.csum_partial
            && !offloads.csum
            && let Err(reason) = finish_checksum(&mut buf)
        {
            return self.drop(reason, buf);
        }
        self.devices[index].tx.push(buf);
    }

    /// A spare buffer: from the pool; when that is empty, after sending what device `index`
    /// has queued (which returns its buffers to the pool); allocated only if other devices'
    /// queues hold the whole pool.
    fn spare(&mut self, index: usize) -> PacketBuf {
        if let Some(buf) = self.pool.pop() {
            return buf;
        }
        self.flush_device(index);
        self.pool.pop().unwrap_or_default()
    }

    /// Cuts the TCP super-frame in `buf` into segments and queues them on device `index`,
    /// each encapsulated for `tunnel` (the segment and remote endpoint) if given.
    fn segment(
        &mut self,
        index: usize,
        buf: PacketBuf,
        gso: Gso,
        tunnel: Option<(&Segment, core::net::IpAddr)>,
    ) {
        let mut segmenter = match wire::gso::segment(buf.frame(), gso) {
            Ok(segmenter) => segmenter,
            Err(err) => return self.drop(err.into(), buf),
        };
        let medium = self.devices[index].device.medium();
        for _ in 0..segmenter.count() {
            let mut segment = self.spare(index);
            match segmenter.next_into(segment.receive_area()) {
                Some(Ok(len)) => segment.set_received(len),
                Some(Err(err)) => {
                    self.drop(err.into(), segment);
                    break;
                }
                None => {
                    self.recycle(segment);
                    break;
                }
            }
            if let Some((tunnel, remote)) = tunnel {
                if let Err(reason) = encapsulate(&mut segment, tunnel, Some(medium)) {
                    self.drop(reason, segment);
                    continue;
                }
                segment.peer = Some(remote);
            }
            self.devices[index].tx.push(segment);
        }
        self.recycle(buf);
    }

    fn copy_of(&mut self, buf: &PacketBuf) -> Option<PacketBuf> {
        let mut copy = self.pool.pop()?;
        copy.set_frame(buf.frame());
        copy.peer = buf.peer;
        copy.offload = buf.offload;
        Some(copy)
    }

    fn egress(&mut self, tables: &Tables, in_port: PortId, verdict: Verdict, mut buf: PacketBuf) {
        match verdict {
            Verdict::Drop(reason) => self.drop(reason, buf),
            Verdict::Hairpin => self.enqueue(in_port, buf),
            Verdict::Dhcp(outcome) => {
                if let Some(count) = self.dhcp.get_mut(outcome.index()) {
                    *count += 1;
                }
                if outcome.replies() {
                    self.enqueue(in_port, buf);
                } else if outcome == dhcp::Outcome::Malformed {
                    self.drop(DropReason::Malformed, buf);
                } else {
                    self.recycle(buf);
                }
            }
            Verdict::Forward { port, vlan } => {
                if let Some(vid) = vlan
                    && let Err(reason) = push_vlan(&mut buf, vid)
                {
                    return self.drop(reason, buf);
                }
                self.enqueue(port, buf);
            }
            Verdict::Tunnel { ls, remote } => self.tunnel(tables, ls, remote, buf),
            Verdict::Flood { ls, from } => self.flood(tables, ls, from, buf),
        }
    }

    fn flood(&mut self, tables: &Tables, ls: LsId, in_port: PortId, buf: PacketBuf) {
        // A bridge's S-channel is a local port like a VM's: what its VSIs flood also goes to
        // the network's segment.
        let from_vm = tables
            .port(in_port)
            .is_some_and(|p| p.kind.vm().is_some() || matches!(p.kind, PortKind::Channel(_)));
        // Reflective relay: the channel's own stations get the flood too (a VEPA station
        // drops the copy for the sender itself).
        let hairpin = tables.reflects(in_port);
        for &member in tables.members(ls) {
            if member == in_port && !hairpin {
                continue;
            }
            match self.copy_of(&buf) {
                Some(mut copy) => match tables.egress_vlan(member, ls) {
                    Some(vid) => match push_vlan(&mut copy, vid) {
                        Ok(()) => self.enqueue(member, copy),
                        Err(reason) => self.drop(reason, copy),
                    },
                    None => self.enqueue(member, copy),
                },
                None => self.count_drop(DropReason::TxFailed, 1),
            }
        }
        // On a VEPA relay a VM's broadcast went to the bridge alone: a flood here is the
        // bridge's reflection, to local VMs only, never back to the bridge.
        let vepa = tables.port(in_port).and_then(|p| p.kind.vm()).is_some()
            && tables
                .switch(ls)
                .is_some_and(|switch| match &switch.segment {
                    Segment::Flat { physical_network }
                    | Segment::Vlan {
                        physical_network, ..
                    } => tables
                        .uplink(physical_network)
                        .is_some_and(|uplink| tables.relay(uplink) == RelayMode::Vepa),
                    _ => false,
                });
        if from_vm
            && !vepa
            && let Some(switch) = tables.switch(ls)
        {
            match &switch.segment {
                Segment::Local => {}
                Segment::Flat { physical_network }
                | Segment::Vlan {
                    physical_network, ..
                } => {
                    let vid = match switch.segment {
                        Segment::Vlan { vid, .. } => Some(vid),
                        _ => None,
                    };
                    if let (Some(uplink), Some(mut copy)) =
                        (tables.uplink(physical_network), self.copy_of(&buf))
                    {
                        match vid.map(|vid| push_vlan(&mut copy, vid)) {
                            Some(Err(reason)) => self.drop(reason, copy),
                            _ => self.enqueue(uplink, copy),
                        }
                    }
                }
                Segment::Vxlan(_) | Segment::Gre(_) | Segment::Nvgre(_) => {
                    for &remote in &switch.flood {
                        match self.copy_of(&buf) {
                            Some(copy) => self.tunnel(tables, ls, remote, copy),
                            None => self.count_drop(DropReason::TxFailed, 1),
                        }
                    }
                }
            }
        }
        self.recycle(buf);
    }

    fn tunnel(&mut self, tables: &Tables, ls: LsId, remote: core::net::IpAddr, mut buf: PacketBuf) {
        let Some(segment) = tables.switch(ls).map(|s| &s.segment) else {
            return self.drop(DropReason::UnknownPort, buf);
        };
        let protocol = match segment {
            Segment::Vxlan(_) => TunnelProtocol::Vxlan,
            _ => TunnelProtocol::Gre,
        };
        let Some(port) = tables.tunnel_port(protocol) else {
            return self.drop(DropReason::TxFailed, buf);
        };
        // No device for the tunnel port (being replaced): nothing can send it.
        let Some((device, _)) = self.device_of(port) else {
            return self.drop(DropReason::TxFailed, buf);
        };
        // A tunnel carries finished frames: cut super-frames, finish checksums, then
        // encapsulate.
        if let Some(gso) = buf.offload.gso {
            return self.segment(device, buf, gso, Some((segment, remote)));
        }
        if buf.offload.csum_partial
            && let Err(reason) = finish_checksum(&mut buf)
        {
            return self.drop(reason, buf);
        }
        let medium = self.devices[device].device.medium();
        match encapsulate(&mut buf, segment, Some(medium)) {
            Ok(()) => {
                buf.peer = Some(remote);
                self.devices[device].tx.push(buf);
            }
            Err(reason) => self.drop(reason, buf),
        }
    }

    fn flush(&mut self) {
        for index in 0..self.devices.len() {
            self.flush_device(index);
        }
    }

    /// Sends what device `index` has queued and returns the buffers to the pool.
    fn flush_device(&mut self, index: usize) {
        if self.devices[index].tx.is_empty() {
            return;
        }
        let attached = &mut self.devices[index];
        let result = if attached.failure.is_some() {
            Ok(Sent::default())
        } else {
            attached.device.send(&attached.tx)
        };
        // The device says what the frames it took weigh, since they need not be the first
        // ones (it skipped a refused frame, or sent from several sockets).
        let sent = match result {
            Ok(sent) => Sent {
                frames: sent.frames.min(attached.tx.len()),
                bytes: sent.bytes,
            },
            Err(err) => {
                attached.counters.tx_errors += 1;
                self.last_error = Some((attached.name.clone(), err));
                Sent::default()
            }
        };
        attached.counters.tx_packets += sent.frames as u64;
        attached.counters.tx_bytes += sent.bytes;
        let failed = (attached.tx.len() - sent.frames) as u64;
        self.count_drop(DropReason::TxFailed, failed);
        while let Some(mut buf) = self.devices[index].tx.pop() {
            buf.clear();
            self.pool.push(buf);
        }
    }
}

/// How the ids of `old` map onto `new`, for what was learned under `old`: a logical switch to
/// the one of the same name and segment (one whose segment changed is another network and
/// starts afresh), a port to the one of the same name and kind.
fn renumbering(old: &Tables, new: &Tables) -> (Vec<Option<LsId>>, Vec<Option<PortId>>) {
    let (old, new) = (old.config(), new.config());
    let switches = old
        .switches
        .iter()
        .map(|ls| {
            new.switches
                .iter()
                .position(|n| n.name == ls.name && n.segment == ls.segment)
                .and_then(|i| u16::try_from(i).ok())
                .map(LsId)
        })
        .collect();
    let ports = old
        .ports
        .iter()
        .map(|port| {
            let i = new.ports.iter().position(|n| n.name == port.name)?;
            let same_kind = match (&port.kind, &new.ports[i].kind) {
                (PortKind::Vm(a), PortKind::Vm(b))
                | (PortKind::Subport { vm: a, .. }, PortKind::Subport { vm: b, .. }) => {
                    old.switches.get(usize::from(a.ls.0)).map(|s| &s.name)
                        == new.switches.get(usize::from(b.ls.0)).map(|s| &s.name)
                }
                (PortKind::Uplink { .. }, PortKind::Uplink { .. })
                | (PortKind::Station, PortKind::Station)
                | (PortKind::Channel(_), PortKind::Channel(_))
                | (PortKind::UplinkChannel(_), PortKind::UplinkChannel(_)) => true,
                _ => false,
            };
            same_kind
                .then(|| u16::try_from(i).ok().map(PortId))
                .flatten()
        })
        .collect();
    (switches, ports)
}

fn finish_checksum(buf: &mut PacketBuf) -> Result<(), DropReason> {
    wire::gso::finish_checksum(buf.frame_mut())?;
    buf.offload.csum_partial = false;
    Ok(())
}

fn push_vlan(buf: &mut PacketBuf, vid: u16) -> Result<(), DropReason> {
    push_tag(buf, EtherType::VLAN, vid)
}

fn push_tag(buf: &mut PacketBuf, tpid: EtherType, vid: u16) -> Result<(), DropReason> {
    let (data, start, _) = buf.raw_mut();
    let start = vlan::push_tag(data, start, tpid, vid)?;
    buf.set_start(start);
    Ok(())
}

/// Writes the segment's tunnel header in front of the frame, as far as the tunnel device's
/// medium wants it (a UDP socket takes the VXLAN header, a raw socket the GRE header).
pub fn encapsulate(
    buf: &mut PacketBuf,
    segment: &Segment,
    medium: Option<Medium>,
) -> Result<(), DropReason> {
    let (data, start, end) = buf.raw_mut();
    let new_start = match (segment, medium) {
        (Segment::Vxlan(vni), Some(Medium::Vxlan)) => {
            wire::encap::push_vxlan(data, start, end, *vni)?
        }
        (Segment::Gre(key), Some(Medium::Gre)) => {
            let repr = gre::Repr {
                protocol: EtherType::TRANSPARENT_ETHERNET,
                checksum: false,
                key: Some(*key),
                sequence: None,
            };
            wire::encap::push_gre(data, start, end, &repr)?
        }
        (Segment::Nvgre(vsid), Some(Medium::Gre)) => {
            // RFC 7637 §3.2: the FlowID gives the underlay per-flow entropy.
            let flow_id = (vxlan::source_port(&data[start..end]) & 0xff).to_be_bytes()[1];
            wire::encap::push_gre(data, start, end, &gre::Repr::nvgre(*vsid, flow_id))?
        }
        _ => return Err(DropReason::EncapFailed),
    };
    buf.set_start(new_start);
    Ok(())
}
