//! The one place the daemon turns a port's configuration into a device: a TAP (moved into a
//! VM namespace if asked), an `AF_PACKET` uplink, a VXLAN UDP socket, a raw GRE socket, or an
//! in-memory pair whose far end the caller keeps.
//!
//! Called on the control thread, before the tables that name the port are swapped in; the
//! device then goes to the forwarding thread.

use std::{
    fs::File,
    io,
    net::SocketAddr,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use super::config::{NetnsSpec, PortSpec, PortType};
use crate::device::{
    Device, Medium,
    memory::{self, MemoryPeer},
    packet::PacketDevice,
    rawip::GreSocket,
    tap::TapDevice,
    udp::VxlanSocket,
};

/// Where `ip netns add NAME` leaves a named network namespace.
pub const NETNS_DIR: &str = "/run/netns";

/// A freshly opened port device.
pub struct Opened {
    /// The switch's end.
    pub device: Box<dyn Device>,
    /// The far end of a memory port, for whoever plays the VM.
    pub peer: Option<MemoryPeer>,
}

impl core::fmt::Debug for Opened {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opened")
            .field("medium", &self.device.medium())
            .field("peer", &self.peer.is_some())
            .finish()
    }
}

/// Opens the device of `port`, in the caller's network namespace.
///
/// Errors say what was being opened; the caller names the port.
pub fn open(port: &PortSpec) -> io::Result<Opened> {
    let device: Box<dyn Device> =
        match &port.kind {
            PortType::Memory { .. } => {
                let (device, peer) = memory::pair(Medium::Ethernet);
                return Ok(Opened {
                    device: Box::new(device),
                    peer: Some(peer),
                });
            }
            PortType::Tap { netns, .. } => {
                let tap = TapDevice::create(&port.name)
                    .map_err(|err| context(err, format!("cannot create TAP {:?}", port.name)))?;
                if let Some(netns) = netns {
                    move_to_netns(&tap, netns)?;
                }
                Box::new(tap)
            }
            // A station-facing port is an uplink-like socket; its S-tags are the pipeline's.
            PortType::Uplink { .. } | PortType::Station { .. } => {
                Box::new(PacketDevice::open(&port.name).map_err(|err| {
                    context(
                        err,
                        format!("cannot open a packet socket on interface {:?}", port.name),
                    )
                })?)
            }
            PortType::Vxlan {
                local_ip,
                port,
                source_ports,
            } => Box::new(open_vxlan(
                SocketAddr::new(*local_ip, *port),
                *source_ports,
            )?),
            PortType::Gre { local_ip } => Box::new(GreSocket::bind(*local_ip).map_err(|err| {
                context(err, format!("cannot open a raw GRE socket on {local_ip}"))
            })?),
        };
    Ok(Opened { device, peer: None })
}

/// A VXLAN socket bound to `local`, sending to its port from `source_ports` source ports.
fn open_vxlan(local: SocketAddr, source_ports: u16) -> io::Result<VxlanSocket> {
    VxlanSocket::with_source_ports(local, local.port(), usize::from(source_ports)).map_err(|err| {
        let pool = if source_ports > 1 {
            format!(" and {source_ports} source ports")
        } else {
            String::new()
        };
        context(err, format!("cannot bind UDP {local}{pool}"))
    })
}

/// The path of a named network namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn move_to_netns(tap: &TapDevice, netns: &NetnsSpec) -> io::Result<()> {
    let path = netns_path(&netns.name);
    let file = File::open(&path).map_err(|err| {
        context(
            err,
            format!("cannot open network namespace {}", path.display()),
        )
    })?;
    tap.move_to_netns(file.as_fd(), &netns.ifname)
        .map_err(|err| {
            context(
                err,
                format!(
                    "cannot move it into namespace {:?} as {:?}",
                    netns.name, netns.ifname
                ),
            )
        })
}

fn context(err: io::Error, what: String) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::VmSpec;

    #[test]
    fn test_memory_port_has_a_peer() {
        let port = PortSpec {
            name: "m".into(),
            kind: PortType::Memory {
                vm: VmSpec {
                    switch: "s".into(),
                    mac: wire::MacAddr([2, 0, 0, 0, 0, 1]),
                    ips: vec![],
                    allowed_pairs: vec![],
                    port_security: true,
                },
                subports: vec![],
            },
        };
        let opened = open(&port).unwrap();
        assert!(opened.peer.is_some());
        assert_eq!(opened.device.medium(), Medium::Ethernet);
    }
}
