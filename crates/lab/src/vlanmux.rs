//! `weft lab vm-mux`: a VM NIC with VLAN interfaces, in userspace.
//!
//! A VLAN-aware VM (seed 002) has one NIC (`eth0`) and VLAN interfaces on it (`eth0.1`,
//! `eth0.2`) whose frames leave the NIC 802.1Q-tagged; in a real cloud the guest's 8021q
//! driver tags them and QEMU carries them to the host's TAP. This machine's kernel has no
//! 8021q, so the lab plays both: the switch's TAP stays in the VM's namespace as the NIC's
//! wire (`wire0`), and this process, running in that namespace, owns TAP devices `eth0`
//! (untagged) and `eth0.N` (one per VLAN) with the MACs asked for, and moves frames between
//! them and the wire: untagged both ways for `eth0`; tag N pushed on the way out of `eth0.N`
//! and popped on the way in. The tags on the wire are real 802.1Q: a capture on `wire0` shows
//! them.
//!
//! The wire is read and written through an `AF_PACKET` socket ([`PacketDevice`]): the kernel
//! strips the tag of a received frame into `PACKET_AUXDATA` before a packet socket sees it,
//! and the device puts it back, so a tag is never lost. The VLAN interfaces are TAPs without
//! offloads, so the namespace's stack hands over finished, MTU-sized frames.
//!
//! The process is told what to do over a Unix stream socket, one JSON request per line and
//! one JSON answer per line ([`request`]):
//!
//! | op | fields | result |
//! |---|---|---|
//! | `add` | `name`, `vlan` (1-4094), `mac` | the interface |
//! | `del` | `name` | the interface removed |
//! | `list` | | `{wire, interfaces: [{name, vlan?, mac}], unknown_vlan}` |
//!
//! Answers are `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`. Killing the
//! process removes its interfaces (its TAPs are not persistent); the wire stays.

use std::{
    fs,
    io::{self, BufRead, BufReader, Write},
    os::{
        fd::AsFd,
        unix::net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    time::Duration,
};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};
use switch::{
    PacketBuf,
    device::{Device, packet::PacketDevice, tap::TapDevice},
};
use wire::{EtherType, MacAddr, ethernet, vlan};

use crate::{Error, Result, netns::run};

/// Frames moved per read.
const BATCH: usize = 32;
/// How long a control client may take to send its request line or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request line read.
const MAX_REQUEST: u64 = 4096;

/// What `weft lab vm-mux` is started with.
#[derive(Debug, Clone)]
pub struct MuxOptions {
    /// The wire: the switch's TAP, in this namespace.
    pub wire: String,
    /// The untagged interface to create (`eth0`).
    pub link: String,
    /// Its MAC address (the parent port's).
    pub mac: MacAddr,
    /// The MTU of it and of the VLAN interfaces (as a VLAN device inherits its link's).
    pub mtu: Option<u32>,
    /// The control socket to listen on.
    pub socket: PathBuf,
}

/// One interface of the NIC: the untagged link or a VLAN on it.
struct Interface {
    name: String,
    vlan: Option<u16>,
    mac: MacAddr,
    tap: TapDevice,
}

/// The running multiplexer.
struct Mux {
    options: MuxOptions,
    wire: PacketDevice,
    /// `interfaces[0]` is the untagged link; VLANs follow.
    interfaces: Vec<Interface>,
    bufs: Vec<PacketBuf>,
    /// Frames from the wire whose VLAN has no interface here (a kernel drops them as well).
    unknown_vlan: u64,
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// A TAP named `name` in this namespace, with `mac` and `mtu`, up.
fn create_interface(
    name: &str,
    vlan: Option<u16>,
    mac: MacAddr,
    mtu: Option<u32>,
) -> Result<Interface> {
    let tap = TapDevice::create_without_offloads(name)
        .map_err(io_error(format!("cannot create TAP {name:?}")))?;
    let mac_text = mac.to_string();
    let mtu_text = mtu.map(|m| m.to_string());
    let mut set = vec!["ip", "link", "set", "dev", name, "address", &mac_text];
    if let Some(mtu) = &mtu_text {
        set.extend(["mtu", mtu]);
    }
    set.push("up");
    run(&set)?;
    Ok(Interface {
        name: name.to_owned(),
        vlan,
        mac,
        tap,
    })
}

/// Runs the multiplexer until it is killed (or a fatal error).
pub fn run_mux(options: MuxOptions) -> Result<()> {
    // Up first: a packet socket bound to a down interface reports ENETDOWN on its first read.
    run(&["ip", "link", "set", "dev", &options.wire, "up"])?;
    let wire = PacketDevice::open(&options.wire).map_err(io_error(format!(
        "cannot open a packet socket on {:?}",
        options.wire
    )))?;
    let link = create_interface(&options.link, None, options.mac, options.mtu)?;
    // A socket file left by a killed predecessor would make bind fail.
    let _ = fs::remove_file(&options.socket);
    let listener = UnixListener::bind(&options.socket).map_err(io_error(format!(
        "cannot listen on {}",
        options.socket.display()
    )))?;
    listener
        .set_nonblocking(true)
        .map_err(io_error("cannot make the control socket non-blocking"))?;
    let mut mux = Mux {
        options,
        wire,
        interfaces: vec![link],
        bufs: (0..BATCH).map(|_| PacketBuf::new()).collect(),
        unknown_vlan: 0,
    };
    eprintln!(
        "weft lab vm-mux: {} on wire {}, control {}",
        mux.options.link,
        mux.options.wire,
        mux.options.socket.display()
    );
    loop {
        mux.wait(&listener)?;
        mux.receive_wire()?;
        for index in 0..mux.interfaces.len() {
            mux.send_wire(index)?;
        }
        mux.serve(&listener);
    }
}

impl Mux {
    /// Sleeps until the wire, an interface or the control socket has something.
    fn wait(&self, listener: &UnixListener) -> Result<()> {
        let flags = PollFlags::POLLIN;
        let mut fds = vec![PollFd::new(listener.as_fd(), flags)];
        if let Some(fd) = self.wire.fd() {
            fds.push(PollFd::new(fd, flags));
        }
        fds.extend(
            self.interfaces
                .iter()
                .filter_map(|i| i.tap.fd())
                .map(|fd| PollFd::new(fd, flags)),
        );
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(err) => Err(Error::Io {
                context: "poll".into(),
                source: err.into(),
            }),
        }
    }

    /// Hands what came in on the wire to the interfaces: untagged frames to the link, frames
    /// tagged N (tag popped) to VLAN N.
    fn receive_wire(&mut self) -> Result<()> {
        loop {
            let n = match self.wire.recv(&mut self.bufs) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // The wire went down (its switch side closed or reopened the TAP): a NIC
                // without carrier, not the end; the socket reads again once it is up.
                Err(err) if err.raw_os_error() == Some(libc::ENETDOWN) => {
                    eprintln!("weft lab vm-mux: the wire {} is down", self.options.wire);
                    return Ok(());
                }
                Err(err) => return Err(io_error("cannot read the wire")(err)),
            };
            for buf in &mut self.bufs[..n] {
                let Some(index) = classify(&self.interfaces, buf) else {
                    self.unknown_vlan += 1;
                    continue;
                };
                if self.interfaces[index].vlan.is_some() {
                    let (data, start, _) = buf.raw_mut();
                    let Ok((start, _)) = vlan::pop_tag(data, start) else {
                        continue;
                    };
                    buf.set_start(start);
                }
                // A full queue (nobody reads the interface) drops the frame, as a NIC would.
                let _ = self.interfaces[index]
                    .tap
                    .send(core::slice::from_ref(&*buf));
            }
            if n < self.bufs.len() {
                return Ok(());
            }
        }
    }

    /// Sends what interface `index` has sent out onto the wire, tagged with its VLAN.
    fn send_wire(&mut self, index: usize) -> Result<()> {
        loop {
            let interface = &mut self.interfaces[index];
            let n = match interface.tap.recv(&mut self.bufs) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => {
                    return Err(io_error(format!("cannot read {}", interface.name))(err));
                }
            };
            if let Some(vid) = interface.vlan {
                for buf in &mut self.bufs[..n] {
                    let (data, start, _) = buf.raw_mut();
                    if let Ok(start) = vlan::push_tag(data, start, EtherType::VLAN, vid) {
                        buf.set_start(start);
                    }
                }
            }
            let _ = self.wire.send(&self.bufs[..n]);
            if n < self.bufs.len() {
                return Ok(());
            }
        }
    }

    /// Answers the control clients waiting, one request each.
    fn serve(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            if let Err(err) = self.client(stream) {
                eprintln!("weft lab vm-mux: control client: {err}");
            }
        }
    }

    fn client(&mut self, stream: UnixStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(io::Read::take(&stream, MAX_REQUEST)).read_line(&mut line)?;
        let answer = match self.execute(line.trim()) {
            Ok(result) => json!({"ok": true, "result": result}),
            Err(err) => json!({"ok": false, "error": err}),
        };
        let mut text = answer.to_string();
        text.push('\n');
        (&stream).write_all(text.as_bytes())
    }

    fn execute(&mut self, line: &str) -> core::result::Result<Value, String> {
        let request: Value =
            serde_json::from_str(line).map_err(|err| format!("request: not JSON: {err}"))?;
        let text = |key: &str| {
            request[key]
                .as_str()
                .ok_or_else(|| format!("{key}: missing, or not a string"))
        };
        match text("op")? {
            "list" => Ok(self.list()),
            "add" => {
                let name = text("name")?;
                let vlan = request["vlan"]
                    .as_u64()
                    .and_then(|v| u16::try_from(v).ok())
                    .filter(|v| (1..=4094).contains(v))
                    .ok_or("vlan: must be 1-4094")?;
                let mac: MacAddr = text("mac")?
                    .parse()
                    .map_err(|_| format!("mac: {:?} is not a MAC address", request["mac"]))?;
                if !mac.is_unicast() {
                    return Err(format!("mac: {mac} is not a unicast address"));
                }
                if self.interfaces.iter().any(|i| i.name == name) {
                    return Err(format!("name: {name} exists"));
                }
                if let Some(other) = self.interfaces.iter().find(|i| i.vlan == Some(vlan)) {
                    return Err(format!(
                        "vlan: {vlan} is {}'s (delete that first)",
                        other.name
                    ));
                }
                let interface = create_interface(name, Some(vlan), mac, self.options.mtu)
                    .map_err(|err| err.to_string())?;
                let value = interface_value(&interface);
                self.interfaces.push(interface);
                Ok(value)
            }
            "del" => {
                let name = text("name")?;
                let index = self
                    .interfaces
                    .iter()
                    .position(|i| i.name == name && i.vlan.is_some())
                    .ok_or_else(|| format!("name: no VLAN interface {name:?}"))?;
                // Closing the TAP's descriptor removes the netdev.
                let interface = self.interfaces.remove(index);
                Ok(interface_value(&interface))
            }
            other => Err(format!(
                "op: unknown operation {other:?}; expected add, del or list"
            )),
        }
    }

    fn list(&self) -> Value {
        json!({
            "wire": self.options.wire,
            "interfaces": self.interfaces.iter().map(interface_value).collect::<Vec<_>>(),
            "unknown_vlan": self.unknown_vlan,
        })
    }
}

/// Which interface a frame from the wire is for: the link when untagged, VLAN N's when it
/// has one 802.1Q tag N; `None` for a VLAN no interface has (or a tag stack it cannot be).
fn classify(interfaces: &[Interface], buf: &PacketBuf) -> Option<usize> {
    let frame = buf.frame();
    let ethertype = ethernet::Frame::new_checked(frame).ok()?.ethertype();
    if ethertype != EtherType::VLAN {
        // Untagged, or a tag kind no VLAN interface here takes (the link's stack drops it).
        return Some(0);
    }
    let vid = vlan::Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?)
        .ok()?
        .vid();
    interfaces.iter().position(|i| i.vlan == Some(vid))
}

fn interface_value(interface: &Interface) -> Value {
    let mut value = json!({"name": interface.name, "mac": interface.mac.to_string()});
    if let Some(vlan) = interface.vlan {
        value["vlan"] = json!(vlan);
    }
    value
}

/// Sends one request to the multiplexer listening on `socket` and returns its result.
pub fn request(socket: &Path, request: &Value) -> Result<Value> {
    let answer =
        crate::netns::call_json_line("VLAN multiplexer", socket, request, CLIENT_TIMEOUT * 5)?;
    Ok(answer["result"].clone())
}
