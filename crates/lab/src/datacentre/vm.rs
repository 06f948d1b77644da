//! `weft lab vm`: the lab plays Nova and libvirt. It binds a Neutron port to a host, waits for
//! the host's agent to make the port's TAP and report it up, moves that TAP into a namespace
//! of the VM's own as `eth0`, and runs a DHCP client there.
//!
//! A VM on a trunk's parent port (the port has `trunk_details`) is VLAN-aware (seed 002): its
//! TAP goes in as `wire0`, the NIC's wire, and a VLAN multiplexer ([`crate::vlanmux`], `weft
//! lab vm-mux`) runs in the VM's namespace with `eth0` on it; `weft lab vm vlan add` gives
//! the VM VLAN interfaces (`eth0.1`, tagged 1 on the wire) and `weft lab vm dhcp` runs the
//! lab's DHCP client on one.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;

use super::{
    ADMIN_CLOUD, LabDir, Progress, State, Vm,
    evb::{self, VmVsi},
    open_ready, state, wait_for,
};
use crate::{
    BindingError, Error, Result,
    api::{Cloud, Port, Token},
    netns::{self, run, spawn_detached},
    topology::valid_vm_name,
};

/// How long a bound port gets to become ACTIVE.
const PORT_ACTIVE: Duration = Duration::from_secs(60);
/// How long DHCP gets to address eth0.
const DHCP_LEASE: Duration = Duration::from_secs(60);
/// ISC dhclient, preferred.
const DHCLIENT: &str = "/usr/sbin/dhclient";
/// What a trunk VM's TAP is called inside it: the NIC's wire.
pub const WIRE: &str = "wire0";
/// The untagged interface of a VM's NIC.
pub const LINK: &str = "eth0";
/// How long the VLAN multiplexer gets to make `eth0` and listen.
const MUX_READY: Duration = Duration::from_secs(10);

/// The script both DHCP clients run (`dhclient -sf`, `udhcpc -s`). Debian's own
/// dhclient-script runs hooks that act on the whole machine (the timesyncd hook restarts a
/// host service), so the lab brings its own: it only touches the VM's interface, the VM
/// namespace's routes and the VM's own resolv.conf.
///
/// ISC dhclient runs its script with an environment of its own making, so the VM's
/// resolv.conf cannot come in through the environment: [`dhcp_script`] writes it into the
/// first line of a copy per VM.
const DHCP_SCRIPT: &str = r#"# Written by `weft lab`: applies a DHCP lease inside a VM's namespace. Called by ISC dhclient
# ($reason, $new_*) or by busybox udhcpc ($1, $ip, $mask, ...). Touches only $interface, the
# namespace's routes and $WEFT_LAB_RESOLV.
set -u
prefix_of() { # dotted mask -> prefix length
    n=0
    for octet in $(echo "$1" | tr . ' '); do
        case $octet in
            255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;; 248) n=$((n + 5)) ;;
            240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;; 192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;;
        esac
    done
    echo "$n"
}
classless() { # RFC 3442 option as dhclient prints it: "24 10 0 5 10 0 4 1 ..."
    set -- $1
    while [ $# -ge 5 ]; do
        width=$1; shift
        octets=$(( (width + 7) / 8 ))
        dest=""
        i=0
        while [ $i -lt 4 ]; do
            if [ $i -lt $octets ]; then dest="$dest${dest:+.}$1"; shift; else dest="$dest${dest:+.}0"; fi
            i=$((i + 1))
        done
        gw="$1.$2.$3.$4"; shift 4
        if [ "$gw" = "0.0.0.0" ]; then
            ip -4 route replace "$dest/$width" dev "$interface"
        else
            ip -4 route replace "$dest/$width" via "$gw" dev "$interface" onlink
        fi
    done
}
apply() { # address prefix mtu routers dns
    [ -n "$3" ] && ip link set dev "$interface" mtu "$3"
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$1/$2" dev "$interface"
    for r in $4; do ip -4 route replace default via "$r" dev "$interface" onlink; break; done
    if [ -n "${WEFT_LAB_RESOLV:-}" ]; then
        : > "$WEFT_LAB_RESOLV"
        for d in $5; do echo "nameserver $d" >> "$WEFT_LAB_RESOLV"; done
    fi
}
clear_lease() {
    ip -4 route flush dev "$interface" 2>/dev/null
    ip -4 addr flush dev "$interface"
}
if [ -n "${reason:-}" ]; then
    case $reason in
        PREINIT) ip link set dev "$interface" up ;;
        BOUND|RENEW|REBIND|REBOOT)
            routers=${new_routers:-}
            # RFC 3442 §3: with classless routes the router option is ignored.
            [ -n "${new_rfc3442_classless_static_routes:-}" ] && routers=""
            apply "$new_ip_address" "$(prefix_of "$new_subnet_mask")" "${new_interface_mtu:-}" \
                "$routers" "${new_domain_name_servers:-}"
            [ -n "${new_rfc3442_classless_static_routes:-}" ] && classless "$new_rfc3442_classless_static_routes"
            ;;
        EXPIRE|FAIL|RELEASE|STOP) clear_lease ;;
    esac
else
    case ${1:-} in
        deconfig) ip link set dev "$interface" up; clear_lease ;;
        bound|renew)
            routers=${router:-}
            [ -n "${staticroutes:-}" ] && routers=""
            apply "$ip" "${mask:-24}" "${mtu:-}" "$routers" "${dns:-}"
            if [ -n "${staticroutes:-}" ]; then
                set -- $staticroutes
                while [ $# -ge 2 ]; do
                    if [ "$2" = "0.0.0.0" ]; then ip -4 route replace "$1" dev "$interface"
                    else ip -4 route replace "$1" via "$2" dev "$interface" onlink; fi
                    shift 2
                done
            fi
            ;;
    esac
fi
exit 0
"#;

/// The DHCP script of a VM whose resolvers go to `resolv_conf`.
fn dhcp_script(resolv_conf: &Path) -> String {
    // Single quotes keep the path literal; a quote inside it is closed, escaped and reopened.
    let quoted = resolv_conf.to_string_lossy().replace('\'', r"'\''");
    format!("#!/bin/sh\nWEFT_LAB_RESOLV='{quoted}'\n{DHCP_SCRIPT}")
}

/// What `weft lab vm create` is asked for.
#[derive(Debug, Clone)]
pub struct VmCreate {
    /// The VM's name.
    pub name: String,
    /// Create a port on this network (name or id)...
    pub network: Option<String>,
    /// ...or use this existing port (name or id).
    pub port: Option<String>,
    /// The host (default: the next one, round robin).
    pub host: Option<String>,
    /// The cloud of clouds.yaml whose user makes or finds the port.
    pub cloud: String,
    /// On the EVB fabric: the VSI type (name, id or `TYPE_ID[:VERSION]`; default: the one
    /// whose profile is the port's network).
    pub vsi_type: Option<String>,
}

/// The TAP a host's switch makes for a port: Nova's name, `tap` and the id's first 11
/// characters.
pub fn tap_name(port_id: &str) -> String {
    let end = port_id
        .char_indices()
        .nth(11)
        .map_or(port_id.len(), |(i, _)| i);
    format!("tap{}", &port_id[..end])
}

/// Creates a VM; prints progress and returns it with its address.
pub fn vm_create(dir: &Path, request: &VmCreate, progress: &mut Progress<'_>) -> Result<Vm> {
    let (lab, mut state) = open_ready(dir)?;
    if !valid_vm_name(&request.name) {
        return Err(Error::Failed(format!(
            "VM name {:?}: 1 to 32 of a-z, 0-9 and '-', not starting with '-'",
            request.name
        )));
    }
    if state.vms.iter().any(|v| v.name == request.name) {
        return Err(Error::Failed(format!("VM {:?} exists", request.name)));
    }
    let ns = state.topology.vm_ns(&request.name);
    let hosts = &state.topology.hosts;
    let host = match &request.host {
        Some(h) => hosts
            .iter()
            .find(|x| x.name == *h)
            .map(|x| x.name.clone())
            .ok_or_else(|| {
                Error::Failed(format!(
                    "no host {h:?} (the lab has {})",
                    hosts
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => {
            let h = hosts[state.next_host % hosts.len()].name.clone();
            state.next_host += 1;
            h
        }
    };

    if state.process("agent", Some(&host)).is_none() {
        // Without an agent nothing binds the port: say so now rather than after a timeout.
        return Err(Error::Failed(format!(
            "no weft agent runs on host {host} (this lab's weft has no `weft agent`), so no \
             port can be bound there"
        )));
    }
    let cloud = Cloud::new(&state.network_url)?;
    let user = cloud.token(state.cloud(&request.cloud)?)?;
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    let (port, created_port) = match (&request.network, &request.port) {
        (Some(network), None) => {
            let network = cloud.network(&user, network)?;
            let port = cloud.create_port(
                &user,
                json!({"network_id": network.id, "name": request.name}),
            )?;
            progress.step(format!(
                "port {} on network {} ({})",
                port.id, network.name, request.cloud
            ));
            (port, true)
        }
        (None, Some(port)) => {
            let port = cloud.port(&user, port)?;
            if !port.device_id.is_empty() {
                return Err(Error::Failed(format!(
                    "port {} is in use by device {}",
                    port.id, port.device_id
                )));
            }
            progress.step(format!("port {} ({})", port.id, request.cloud));
            (port, false)
        }
        _ => {
            return Err(Error::Failed(
                "give exactly one of --network and --port".into(),
            ));
        }
    };
    // Recorded before anything else happens to the port, so `vm delete` or `down` can undo it.
    state.vms.push(Vm {
        name: request.name.clone(),
        host: host.clone(),
        ns: ns.clone(),
        port_id: port.id.clone(),
        created_port,
        cloud: request.cloud.clone(),
        dhcp_pid: None,
        ip: None,
        wire: None,
        mux_pid: None,
        vsi: None,
    });
    lab.save(&state)?;

    let vsi_type = request.vsi_type.as_deref();
    match attach(&lab, &mut state, &cloud, &admin, &port, vsi_type, progress) {
        Ok(vm) => Ok(vm),
        Err(err) => {
            progress.step(format!("failed: {err}"));
            progress.step(format!("removing VM {}", request.name));
            let _ = remove(&lab, &mut state, &request.name, &cloud, &admin);
            Err(err)
        }
    }
}

/// Binds the port, waits for it, associates its VSI on the EVB fabric, builds the VM's
/// namespace and runs DHCP in it.
fn attach(
    lab: &LabDir,
    state: &mut State,
    cloud: &Cloud,
    admin: &Token,
    port: &Port,
    vsi_type: Option<&str>,
    progress: &mut Progress<'_>,
) -> Result<Vm> {
    let index = state.vms.len() - 1;
    let vm = state.vms[index].clone();
    let host_ns = state.topology.host_ns(&vm.host);
    let device_id = uuid::Uuid::new_v4().to_string();
    cloud.update_port(
        admin,
        &port.id,
        json!({"device_id": device_id, "device_owner": "compute:nova",
               "binding:host_id": vm.host}),
    )?;
    progress.step(format!(
        "bound to host {} (device {device_id}); waiting for ACTIVE",
        vm.host
    ));
    let mut last: Option<Port> = None;
    let active = wait_for(PORT_ACTIVE, || {
        let now = cloud.port(admin, &port.id)?;
        if now.vif_type == "binding_failed" {
            return Err(Error::Binding(Box::new(BindingError {
                port: port.id.clone(),
                host: vm.host.clone(),
                reason: "binding failed (is a live weft agent on that host, with the \
                         network's type or physical network?)"
                    .into(),
                status: now.status,
                vif_type: now.vif_type,
                detail: String::new(),
            })));
        }
        let done = now.status == "ACTIVE";
        last = Some(now);
        Ok(done)
    })?;
    let bound = last.unwrap_or_else(|| port.clone());
    if !active {
        let detail = state
            .process("agent", Some(&vm.host))
            .map(|p| state::log_tail(&p.log, 10))
            .unwrap_or_default();
        return Err(Error::Binding(Box::new(BindingError {
            port: port.id.clone(),
            host: vm.host.clone(),
            reason: format!("not ACTIVE after {} s", PORT_ACTIVE.as_secs()),
            status: bound.status,
            vif_type: bound.vif_type,
            detail,
        })));
    }
    let tap = tap_name(&port.id);
    progress.step(format!("port ACTIVE; {tap} in {host_ns}"));

    let network = cloud.network(admin, &bound.network_id)?;
    if let Some((type_id, type_version)) = evb::vsi_type(state, cloud, admin, &network, vsi_type)? {
        // Seed 000 figure 14/15: the VSI associates before the VM's NIC comes up; the bridge
        // asks the controller, which gives the profile (and the VLAN).
        let scid = state
            .topology
            .evb
            .as_ref()
            .zip(network.physical_network.as_deref())
            .and_then(|(evb, physnet)| evb.scid_of(physnet))
            .unwrap_or(1);
        let mut vsi = VmVsi {
            type_id,
            type_version,
            vsi_id: port.id.clone(),
            vlan: None,
            scid,
        };
        state.vms[index].vsi = Some(vsi.clone());
        lab.save(state)?;
        let done = evb::request(
            lab.path(),
            &vm.host,
            "associate",
            &vsi,
            &bound.mac_address,
            false,
        )?;
        vsi.vlan = done.vlan;
        state.vms[index].vsi = Some(vsi);
        lab.save(state)?;
        progress.step(format!(
            "VSI {} (type {type_id} version {type_version}) associated through {}'s EVB \
             station on S-channel {scid} in {} ms: the bridge's profile gives VLAN {}",
            port.id,
            vm.host,
            done.took.as_millis(),
            done.vlan.map_or_else(|| "-".into(), |v| v.to_string())
        ));
    }
    run(&["ip", "netns", "add", &vm.ns])?;
    state.namespaces.push(vm.ns.clone());
    // The DHCP script writes the VM's resolvers here; `ip netns exec` shows this file as
    // /etc/resolv.conf inside the VM, so nothing in there ever sees the machine's own.
    let etc = PathBuf::from("/etc/netns").join(&vm.ns);
    fs::create_dir_all(&etc)
        .map_err(|err| Error::io(format!("cannot create {}", etc.display()), err))?;
    state.etc_netns.push(etc.clone());
    let resolv = etc.join("resolv.conf");
    fs::write(&resolv, "# weft lab: filled by DHCP\n")
        .map_err(|err| Error::io(format!("cannot write {}", resolv.display()), err))?;
    lab.save(state)?;
    let _ = run(&[
        "ip",
        "netns",
        "exec",
        &vm.ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ]);
    run(&["ip", "-n", &vm.ns, "link", "set", "lo", "up"])?;
    run(&["ip", "-n", &host_ns, "link", "set", &tap, "netns", &vm.ns])?;
    let vm_dir = lab.path().join("vms").join(&vm.name);
    fs::create_dir_all(&vm_dir)
        .map_err(|err| Error::io(format!("cannot create {}", vm_dir.display()), err))?;
    let mtu = network.mtu.map(|m| m.to_string());
    if let Some(trunk) = &bound.trunk_details {
        progress.step(format!(
            "port is trunk {}'s parent ({} subports): {tap} is the NIC's wire {WIRE}",
            trunk.trunk_id,
            trunk.sub_ports.len()
        ));
        plug_trunk(lab, state, index, &tap, &bound.mac_address, mtu.as_deref())?;
        progress.step(format!(
            "VLAN multiplexer (pid {}) gives the VM {LINK}",
            state.vms[index].mux_pid.unwrap_or_default(),
        ));
        // The guest makes its VLAN interfaces itself (seed 002 step 7); say how.
        for sub in &trunk.sub_ports {
            progress.step(format!(
                "subport {} is VLAN {}: weft lab vm vlan add {} --link {LINK} --id {} --mac {}",
                sub.port_id, sub.segmentation_id, vm.name, sub.segmentation_id, sub.mac_address
            ));
        }
    } else {
        become_nic(&vm.ns, &tap, &bound.mac_address, mtu.as_deref())?;
    }

    let script = vm_dir.join("dhcp-script");
    state::write_atomically(&script, dhcp_script(&resolv).as_bytes())?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o700))
        .map_err(|err| Error::io(format!("cannot chmod {}", script.display()), err))?;
    let (client, pid, address) = dhcp(lab, state, index, LINK, progress).map_err(|err| {
        // Say which addresses the port has, to compare with what DHCP did.
        let addresses = bound
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match err {
            Error::Failed(message) => {
                Error::Failed(format!("{message} (port {} has {addresses})", port.id))
            }
            other => other,
        }
    })?;
    state.vms[index].dhcp_pid = Some(pid);
    state.vms[index].ip = Some(address.clone());
    lab.save(state)?;
    progress.step(format!(
        "VM {} has {address} on {LINK} from {client} (namespace {})",
        vm.name, vm.ns
    ));
    Ok(state.vms[index].clone())
}

/// Makes the TAP `tap`, just moved into namespace `ns`, the VM's `eth0`. A moved link is down,
/// and a down link can be renamed; its MAC must be the port's, as a guest's NIC has it, or the
/// switch's anti-spoofing drops everything it sends.
fn become_nic(ns: &str, tap: &str, mac: &str, mtu: Option<&str>) -> Result<()> {
    let mut set = vec![
        "ip", "-n", ns, "link", "set", tap, "name", LINK, "address", mac,
    ];
    if let Some(mtu) = mtu {
        set.extend(["mtu", mtu]);
    }
    run(&set)?;
    run(&["ip", "-n", ns, "link", "set", LINK, "up"])?;
    Ok(())
}

/// Makes the moved TAP `tap` the wire of VM `state.vms[index]`'s NIC and starts the VLAN
/// multiplexer on it, which makes `eth0` with `mac`.
fn plug_trunk(
    lab: &LabDir,
    state: &mut State,
    index: usize,
    tap: &str,
    mac: &str,
    mtu: Option<&str>,
) -> Result<()> {
    let vm = state.vms[index].clone();
    let mut set = vec!["ip", "-n", &vm.ns, "link", "set", tap, "name", WIRE];
    if let Some(mtu) = mtu {
        set.extend(["mtu", mtu]);
    }
    run(&set)?;
    // The wire is no interface of the VM's stack: it answers no ARP and takes no IPv4 (strict
    // reverse path: nothing is routed through it), so only eth0 speaks for the VM.
    let _ = run(&[
        "ip",
        "netns",
        "exec",
        &vm.ns,
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.{WIRE}.arp_ignore=8"),
        &format!("net.ipv4.conf.{WIRE}.rp_filter=1"),
    ]);
    state.vms[index].wire = Some(WIRE.to_owned());
    lab.save(state)?;
    let vm_dir = lab.path().join("vms").join(&vm.name);
    let socket = mux_socket(lab.path(), &vm.name);
    let socket_arg = socket.to_string_lossy().into_owned();
    let log = vm_dir.join("mux.log");
    let weft = state.weft.to_string_lossy().into_owned();
    let mut args = vec![
        weft.as_str(),
        "lab",
        "vm-mux",
        "--wire",
        WIRE,
        "--link",
        LINK,
        "--mac",
        mac,
        "--socket",
        &socket_arg,
    ];
    if let Some(mtu) = mtu {
        args.extend(["--mtu", mtu]);
    }
    let _ = fs::remove_file(&socket);
    let marker = state.topology.name.clone();
    let mut mux = spawn_detached(Some(&vm.ns), &args, &marker, &[], &log)?;
    state.vms[index].mux_pid = Some(mux.pid());
    state.processes.push(state::Process {
        role: "mux".into(),
        host: Some(vm.name.clone()),
        ns: Some(vm.ns.clone()),
        pid: mux.pid(),
        log: log.clone(),
    });
    lab.save(state)?;
    let ready = wait_for(MUX_READY, || {
        if let Some(status) = mux.exited() {
            return Err(Error::Failed(format!(
                "the VLAN multiplexer exited ({status}){}",
                state::log_tail(&log, 15)
            )));
        }
        Ok(socket.exists() && netns::succeeds(&["ip", "-n", &vm.ns, "link", "show", LINK]))
    })?;
    if !ready {
        return Err(Error::Failed(format!(
            "the VLAN multiplexer made no {LINK} within {} s{}",
            MUX_READY.as_secs(),
            state::log_tail(&log, 15)
        )));
    }
    Ok(())
}

/// The control socket of VM `name`'s VLAN multiplexer.
pub fn mux_socket(lab_dir: &Path, name: &str) -> PathBuf {
    lab_dir.join("vms").join(name).join("mux.sock")
}

/// Starts the lab's DHCP client on interface `iface` of VM `state.vms[index]` and waits for
/// the address; returns the client's name, its process id and the address (with prefix).
fn dhcp(
    lab: &LabDir,
    state: &mut State,
    index: usize,
    iface: &str,
    progress: &mut Progress<'_>,
) -> Result<(&'static str, u32, String)> {
    let vm = state.vms[index].clone();
    let vm_dir = lab.path().join("vms").join(&vm.name);
    let script = vm_dir.join("dhcp-script");
    if !script.exists() {
        let resolv = PathBuf::from("/etc/netns").join(&vm.ns).join("resolv.conf");
        state::write_atomically(&script, dhcp_script(&resolv).as_bytes())?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700))
            .map_err(|err| Error::io(format!("cannot chmod {}", script.display()), err))?;
    }
    // eth0 keeps the file names it always had; other interfaces get their own.
    let suffix = if iface == LINK {
        String::new()
    } else {
        format!("-{iface}")
    };
    let log = vm_dir.join(format!("dhcp{suffix}.log"));
    let script_arg = script.to_string_lossy().into_owned();
    let name = state.topology.name.clone();
    let (client, mut child) = if Path::new(DHCLIENT).exists() {
        let pid_file = vm_dir
            .join(format!("dhclient{suffix}.pid"))
            .to_string_lossy()
            .into_owned();
        let lease_file = vm_dir
            .join(format!("dhclient{suffix}.leases"))
            .to_string_lossy()
            .into_owned();
        let args = [
            DHCLIENT,
            "-4",
            "-d",
            "-v",
            "-sf",
            &script_arg,
            "-pf",
            &pid_file,
            "-lf",
            &lease_file,
            iface,
        ];
        let child = spawn_detached(Some(&vm.ns), &args, &name, &[], &log)?;
        ("dhclient", child)
    } else if netns::have_program("busybox") {
        let args = ["busybox", "udhcpc", "-f", "-i", iface, "-s", &script_arg];
        let child = spawn_detached(Some(&vm.ns), &args, &name, &[], &log)?;
        ("udhcpc", child)
    } else {
        return Err(Error::Failed(format!(
            "no DHCP client: install isc-dhcp-client ({DHCLIENT}) or busybox"
        )));
    };
    state.processes.push(state::Process {
        role: "dhcp".into(),
        host: Some(vm.name.clone()),
        ns: Some(vm.ns.clone()),
        pid: child.pid(),
        log: log.clone(),
    });
    lab.save(state)?;
    progress.step(format!("{client} (pid {}) on {iface}", child.pid()));

    let mut address = None;
    let leased = wait_for(DHCP_LEASE, || {
        if let Some(status) = child.exited() {
            return Err(Error::Failed(format!(
                "{client} exited ({status}){}",
                state::log_tail(&log, 15)
            )));
        }
        address = ipv4_of(&vm.ns, iface);
        Ok(address.is_some())
    })?;
    match address.filter(|_| leased) {
        Some(address) => Ok((client, child.pid(), address)),
        None => Err(Error::Failed(format!(
            "{iface} of VM {} got no address by DHCP within {} s{}",
            vm.name,
            DHCP_LEASE.as_secs(),
            state::log_tail(&log, 15)
        ))),
    }
}

/// `weft lab vm vlan add NAME --link eth0 --id N --mac MAC`: gives a trunk VM the VLAN
/// interface `eth0.N` with `mac`, up (seed 002 step 7's `ip link add link eth0 eth0.N address
/// MAC type vlan id N`); returns its name.
pub fn vm_vlan_add(dir: &Path, name: &str, link: &str, id: u16, mac: &str) -> Result<String> {
    let socket = trunk_vm_socket(dir, name)?;
    if link != LINK {
        return Err(Error::Failed(format!(
            "--link {link}: the VM's NIC is {LINK} (VLANs stack on it only)"
        )));
    }
    let iface = format!("{link}.{id}");
    crate::vlanmux::request(
        &socket,
        &json!({"op": "add", "name": iface, "vlan": id, "mac": mac}),
    )?;
    Ok(iface)
}

/// `weft lab vm vlan del NAME IFACE`: removes a trunk VM's VLAN interface.
pub fn vm_vlan_del(dir: &Path, name: &str, iface: &str) -> Result<()> {
    let socket = trunk_vm_socket(dir, name)?;
    crate::vlanmux::request(&socket, &json!({"op": "del", "name": iface}))?;
    Ok(())
}

/// `weft lab vm vlan list NAME`: the VM NIC's interfaces, as the multiplexer has them.
pub fn vm_vlan_list(dir: &Path, name: &str) -> Result<serde_json::Value> {
    let socket = trunk_vm_socket(dir, name)?;
    crate::vlanmux::request(&socket, &json!({"op": "list"}))
}

/// The multiplexer socket of trunk VM `name`.
fn trunk_vm_socket(dir: &Path, name: &str) -> Result<PathBuf> {
    // Without the lock: the multiplexer serialises its own changes.
    let state =
        state::peek(dir)?.ok_or_else(|| Error::Failed(format!("no lab in {}", dir.display())))?;
    let vm = state
        .vms
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| Error::Failed(format!("no VM {name:?}")))?;
    if vm.mux_pid.is_none() {
        return Err(Error::Failed(format!(
            "VM {name} is not on a trunk's parent port, so it has no VLAN interfaces (its \
             {LINK} is the port's TAP)"
        )));
    }
    Ok(mux_socket(dir, name))
}

/// `weft lab vm dhcp NAME IFACE`: runs the lab's DHCP client on `iface` inside the VM (seed
/// 002 step 8's `dhclient eth0.1`, with the lab's script, which touches only the VM), waits
/// for the lease and returns the address (with prefix).
pub fn vm_dhcp(dir: &Path, name: &str, iface: &str, progress: &mut Progress<'_>) -> Result<String> {
    let (lab, mut state) = open_ready(dir)?;
    let index = state
        .vms
        .iter()
        .position(|v| v.name == name)
        .ok_or_else(|| Error::Failed(format!("no VM {name:?}")))?;
    let ns = state.vms[index].ns.clone();
    if !netns::succeeds(&["ip", "-n", &ns, "link", "show", iface]) {
        return Err(Error::Failed(format!("VM {name} has no interface {iface}")));
    }
    let (client, _, address) = dhcp(&lab, &mut state, index, iface, progress)?;
    progress.step(format!("VM {name} has {address} on {iface} from {client}"));
    Ok(address)
}

/// The first IPv4 address (with prefix) of `dev` in namespace `ns`.
fn ipv4_of(ns: &str, dev: &str) -> Option<String> {
    let out = run(&["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", dev]).ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(str::to_owned)
}

/// `weft lab vm exec NAME -- CMD...`: runs the command inside the VM with this terminal,
/// returns its exit code (128 + signal if a signal ended it).
pub fn vm_exec(dir: &Path, name: &str, command: &[String]) -> Result<i32> {
    // Without the lock: a long command inside a VM must not hold up changes to the lab.
    let state =
        state::peek(dir)?.ok_or_else(|| Error::Failed(format!("no lab in {}", dir.display())))?;
    let vm = state
        .vms
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| Error::Failed(format!("no VM {name:?}")))?;
    if command.is_empty() {
        return Err(Error::Failed("no command to run".into()));
    }
    let ns = vm.ns.clone();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(command)
        .stdin(Stdio::inherit())
        .status()
        .map_err(|err| Error::Command {
            command: format!("ip netns exec {ns} {}", command.join(" ")),
            message: err.to_string(),
        })?;
    use std::os::unix::process::ExitStatusExt as _;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// `weft lab vm delete NAME`.
pub fn vm_delete(dir: &Path, name: &str, progress: &mut Progress<'_>) -> Result<()> {
    let (lab, mut state) = open_ready(dir)?;
    if !state.vms.iter().any(|v| v.name == name) {
        return Err(Error::Failed(format!("no VM {name:?}")));
    }
    let cloud = Cloud::new(&state.network_url)?;
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    if let Some(index) = state.vms.iter().position(|v| v.name == name)
        && let Some(vsi) = state.vms[index].vsi.clone()
    {
        let host = state.vms[index].host.clone();
        let took = evb::deassociate(lab.path(), &host, &vsi)?;
        progress.step(format!(
            "VSI {} de-associated through {host}'s EVB station in {} ms: the bridge removed \
             its profile",
            vsi.vsi_id,
            took.as_millis()
        ));
        state.vms[index].vsi = None;
        lab.save(&state)?;
    }
    remove(&lab, &mut state, name, &cloud, &admin)?;
    progress.step(format!("VM {name} deleted"));
    Ok(())
}

/// Stops the VM's DHCP client, hands its TAP back to the host, deletes its namespace, and
/// deletes or unbinds its port; forgets the VM.
fn remove(lab: &LabDir, state: &mut State, name: &str, cloud: &Cloud, admin: &Token) -> Result<()> {
    let Some(index) = state.vms.iter().position(|v| v.name == name) else {
        return Ok(());
    };
    let vm = state.vms[index].clone();
    if let Some(vsi) = &vm.vsi {
        // Seed 000 figure 17 steps 6-8: the host de-associates, the bridge removes the profile
        // and tells the controller. A station that is gone cannot: the bridge's keep-alive
        // timer ends the VSI then.
        if let Err(err) = evb::deassociate(lab.path(), &vm.host, vsi) {
            eprintln!("weft lab: VM {name}: {err}");
        }
    }
    let marker = state.topology.name.clone();
    let mut pids: Vec<u32> = vm
        .dhcp_pid
        .into_iter()
        .chain(vm.mux_pid)
        .filter(|&p| netns::is_marked(p, &marker))
        .collect();
    pids.extend(netns::pids_inside(&vm.ns));
    netns::terminate(&pids, Duration::from_secs(3));
    state
        .processes
        .retain(|p| !(p.role == "dhcp" && p.host.as_deref() == Some(name)));

    state
        .processes
        .retain(|p| !(p.role == "mux" && p.host.as_deref() == Some(name)));

    if netns::list_netns()?.contains(&vm.ns) {
        // Back to the host under its own name, so the switch closes it as it would a TAP whose
        // VM stopped, instead of losing it with the namespace. A trunk VM's TAP is its wire
        // (its eth0 was the multiplexer's, gone with it).
        let tap = tap_name(&vm.port_id);
        let host_ns = state.topology.host_ns(&vm.host);
        let inside = vm.wire.as_deref().unwrap_or(LINK);
        let _ = run(&["ip", "-n", &vm.ns, "link", "set", inside, "down"]);
        let _ = run(&["ip", "-n", &vm.ns, "link", "set", inside, "name", &tap]);
        let _ = run(&["ip", "-n", &vm.ns, "link", "set", &tap, "netns", &host_ns]);
        run(&["ip", "netns", "delete", &vm.ns])?;
    }
    state.namespaces.retain(|n| *n != vm.ns);
    let etc = PathBuf::from("/etc/netns").join(&vm.ns);
    let _ = fs::remove_dir_all(&etc);
    state.etc_netns.retain(|p| *p != etc);
    let _ = fs::remove_dir_all(lab.path().join("vms").join(name));

    let gone = |err: &crate::api::ApiError| err.status() == Some(hyper::StatusCode::NOT_FOUND);
    if vm.created_port {
        match cloud.delete_port(admin, &vm.port_id) {
            Err(err) if !gone(&err) => return Err(err.into()),
            _ => {}
        }
    } else {
        let unbind = json!({"binding:host_id": "", "device_id": "", "device_owner": ""});
        match cloud.update_port(admin, &vm.port_id, unbind) {
            Err(err) if !gone(&err) => return Err(err.into()),
            _ => {}
        }
    }
    state.vms.remove(index);
    lab.save(state)?;
    Ok(())
}

/// The VM table of `vm list` and `status`.
pub(super) fn list_text(state: &State) -> String {
    let mut text = String::from(
        "VM               HOST    ADDRESS            PORT                                  NAMESPACE\n",
    );
    for vm in &state.vms {
        let ip = ipv4_of(&vm.ns, "eth0")
            .or_else(|| vm.ip.clone())
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "{:<16} {:<7} {:<18} {:<37} {}\n",
            vm.name, vm.host, ip, vm.port_id, vm.ns
        ));
    }
    if state.vms.is_empty() {
        text.push_str("(no VMs: `weft lab vm create NAME --network NET`)\n");
    }
    text
}

/// `weft lab vm migrate NAME --to HOST`: moves a VM to another host as Nova's migration does
/// to its port: the binding moves (`binding:host_id`), the source host's agent unplugs the
/// TAP, the target's plugs a new one, and the VM's `eth0` is that one, with its address from
/// DHCP again. Returns how long the VM had no NIC: from the binding change until `eth0` was
/// up with its address on the target (an upper bound on the traffic gap).
pub fn vm_migrate(
    dir: &Path,
    name: &str,
    to: &str,
    progress: &mut Progress<'_>,
) -> Result<Duration> {
    let (lab, mut state) = open_ready(dir)?;
    let index = state
        .vms
        .iter()
        .position(|v| v.name == name)
        .ok_or_else(|| Error::Failed(format!("no VM {name:?}")))?;
    let vm = state.vms[index].clone();
    if vm.wire.is_some() {
        return Err(Error::Failed(format!(
            "VM {name} is on a trunk: migrating VLAN-aware VMs is not supported yet"
        )));
    }
    if vm.host == to {
        return Err(Error::Failed(format!("VM {name} is on {to} already")));
    }
    if !state.topology.hosts.iter().any(|h| h.name == to) {
        return Err(Error::Failed(format!("no host {to:?} in this lab")));
    }
    if state.process("agent", Some(to)).is_none() {
        return Err(Error::Failed(format!("no weft agent runs on host {to}")));
    }
    let cloud = Cloud::new(&state.network_url)?;
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    let tap = tap_name(&vm.port_id);
    let target_ns = state.topology.host_ns(to);
    if let Some(vsi) = &vm.vsi {
        // Seed 000 figure 16: the target pre-associates first (M-bit: migrating here); a
        // target the bridge refuses leaves the VM where it is.
        let mac = cloud.port(&admin, &vm.port_id)?.mac_address;
        let pre = evb::request(lab.path(), to, "preassociate", vsi, &mac, true)?;
        progress.step(format!(
            "VSI {} pre-associated through {to}'s EVB station in {} ms",
            vsi.vsi_id,
            pre.took.as_millis()
        ));
    }
    let started = std::time::Instant::now();
    cloud.update_port(&admin, &vm.port_id, json!({"binding:host_id": to}))?;
    progress.step(format!(
        "port {} bound to {to} (was {}); waiting for ACTIVE there",
        vm.port_id, vm.host
    ));
    let mut last = None;
    let plugged = wait_for(PORT_ACTIVE, || {
        let now = cloud.port(&admin, &vm.port_id)?;
        if now.vif_type == "binding_failed" {
            return Err(Error::Failed(format!(
                "port {} cannot be bound on {to} (binding_failed)",
                vm.port_id
            )));
        }
        let here = netns::succeeds(&["ip", "-n", &target_ns, "link", "show", &tap]);
        let done = now.status == "ACTIVE" && here;
        last = Some(now);
        Ok(done)
    })?;
    let port = last.ok_or_else(|| Error::Failed("the port vanished".into()))?;
    if !plugged {
        return Err(Error::Failed(format!(
            "port {} not ACTIVE with {tap} on {to} after {} s (status {})",
            vm.port_id,
            PORT_ACTIVE.as_secs(),
            port.status
        )));
    }
    progress.step(format!("port ACTIVE; {tap} in {target_ns}"));
    if let Some(mut vsi) = vm.vsi.clone() {
        // Figure 17: the source de-associates (the bridge removes the profile there and tells
        // the controller), then the target associates and takes the traffic over.
        let gone = evb::deassociate(lab.path(), &vm.host, &vsi)?;
        let done = evb::request(lab.path(), to, "associate", &vsi, &port.mac_address, true)?;
        progress.step(format!(
            "VSI {} de-associated through {}'s station in {} ms, associated through {to}'s in \
             {} ms (VLAN {})",
            vsi.vsi_id,
            vm.host,
            gone.as_millis(),
            done.took.as_millis(),
            done.vlan.map_or_else(|| "-".into(), |v| v.to_string())
        ));
        vsi.vlan = done.vlan.or(vsi.vlan);
        state.vms[index].vsi = Some(vsi);
    }
    // The source switch closed the old TAP, so the old eth0 is gone; its DHCP client goes too.
    if let Some(pid) = vm.dhcp_pid {
        netns::terminate(&[pid], Duration::from_secs(3));
        state.processes.retain(|p| p.pid != pid);
    }
    let _ = netns::succeeds(&["ip", "-n", &vm.ns, "link", "del", LINK]);
    let network = cloud.network(&admin, &port.network_id)?;
    let mtu = network.mtu.map(|m| m.to_string());
    run(&["ip", "-n", &target_ns, "link", "set", &tap, "netns", &vm.ns])?;
    become_nic(&vm.ns, &tap, &port.mac_address, mtu.as_deref())?;
    state.vms[index].host = to.to_owned();
    state.vms[index].dhcp_pid = None;
    lab.save(&state)?;
    let (client, pid, address) = dhcp(&lab, &mut state, index, LINK, progress)?;
    let gap = started.elapsed();
    state.vms[index].dhcp_pid = Some(pid);
    state.vms[index].ip = Some(address.clone());
    lab.save(&state)?;
    progress.step(format!(
        "VM {name} is on {to} with {address} from {client}; its NIC was away {} ms",
        gap.as_millis()
    ));
    Ok(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_tap_names_are_novas() {
        assert_eq!(
            tap_name("3f2b8c1e-9a4d-4c6e-8f00-112233445566"),
            "tap3f2b8c1e-9a"
        );
        assert_eq!(tap_name("short"), "tapshort");
        assert!(tap_name("3f2b8c1e-9a4d-4c6e-8f00-112233445566").len() <= 15);
    }

    #[test]
    fn test_dhcp_script_is_valid_shell() {
        let dir = std::env::temp_dir().join(format!("weft-lab-script-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let script = dhcp_script(Path::new("/etc/netns/it's/resolv.conf"));
        assert!(
            script.starts_with("#!/bin/sh\nWEFT_LAB_RESOLV='/etc/netns/it'\\''s/resolv.conf'\n")
        );
        fs::write(&path, script).unwrap();
        let ok = Command::new("sh").arg("-n").arg(&path).status().unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert!(ok.success());
    }
}
