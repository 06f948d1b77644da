//! Building the three variants of the topology (see the module above).

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use super::{
    Options, UNDERLAY_IPS, UNDERLAY_MTU, VM_IPS, VM_MACS, VM_MTU, VNI, VXLAN_PORT, Variant, sleep,
};
use crate::{
    Error, Result,
    netns::{Lab, ProcId},
};

/// How long a `weft switch` gets to create its ports.
const SWITCH_START: Duration = Duration::from_secs(10);
/// Single pings tried before VM1 is declared unable to reach VM2.
const CONNECT_TRIES: u32 = 30;

/// One running switch daemon.
pub(super) struct SwitchProc {
    /// The process.
    pub(super) proc: ProcId,
    /// Its log file in the lab's scratch directory.
    pub(super) log: String,
}

/// A built variant: its namespaces, the VM NICs, and for weft the two switch processes.
pub(super) struct Topology {
    pub(super) variant: Variant,
    pub(super) lab: Lab,
    /// VM1's and VM2's namespaces.
    pub(super) vm_ns: [String; 2],
    /// The NIC names inside them.
    pub(super) vm_nic: [String; 2],
    /// The host namespaces (none for direct).
    pub(super) host_ns: Vec<String>,
    /// weft's switch daemons, host1 then host2.
    pub(super) switches: Vec<SwitchProc>,
}

impl Topology {
    /// Builds `variant`; `options.weft_exe` runs the weft switches, configured as `options`
    /// says. On error everything built so far is torn down (the lab drops).
    pub(super) fn build(variant: Variant, options: &Options) -> Result<Self> {
        let lab = Lab::new(variant.tag())?;
        match variant {
            Variant::Direct => direct(lab),
            Variant::Kernel => kernel(lab),
            Variant::Weft => weft(lab, options),
        }
    }

    /// Gives VM `i`'s NIC its MAC, MTU and address and brings it up.
    fn vm_nic_up(&self, i: usize) -> Result<()> {
        let (ns, nic) = (&self.vm_ns[i], &self.vm_nic[i]);
        let mtu = VM_MTU.to_string();
        self.lab.ip(
            ns,
            &["link", "set", nic, "address", VM_MACS[i], "mtu", &mtu],
        )?;
        self.lab.addr(ns, nic, &format!("{}/24", VM_IPS[i]))?;
        self.lab.ip(ns, &["link", "set", nic, "up"])?;
        Ok(())
    }

    /// Waits until VM1 pings VM2 (ARP, learning, switch start-up), then warms the path up.
    pub(super) fn wait_connectivity(&mut self) -> Result<()> {
        let dst = VM_IPS[1].to_string();
        for _ in 0..CONNECT_TRIES {
            self.check_switches()?;
            if self
                .lab
                .try_exec(&self.vm_ns[0], &["ping", "-c", "1", "-W", "1", &dst])
            {
                let _ = self.lab.try_exec(
                    &self.vm_ns[0],
                    &["ping", "-q", "-c", "50", "-i", "0.01", &dst],
                );
                return Ok(());
            }
            sleep(Duration::from_millis(100))?;
        }
        Err(Error::Failed(format!(
            "variant {}: VM1 cannot reach VM2 ({dst}) after {CONNECT_TRIES} pings{}",
            self.variant,
            self.switch_logs()
        )))
    }

    /// An error if a weft switch has exited.
    pub(super) fn check_switches(&mut self) -> Result<()> {
        for i in 0..self.switches.len() {
            let proc = self.switches[i].proc;
            if let Some(status) = self.lab.try_wait(proc) {
                return Err(Error::Failed(format!(
                    "weft switch in {} exited ({status}){}",
                    self.host_ns.get(i).map_or("?", String::as_str),
                    self.switch_logs()
                )));
            }
        }
        Ok(())
    }

    /// The switches' logs, for error messages ("" without switches).
    pub(super) fn switch_logs(&self) -> String {
        let mut text = String::new();
        for (i, switch) in self.switches.iter().enumerate() {
            let _ = write!(
                text,
                "\n--- weft switch in host{} ({}):\n{}",
                i + 1,
                self.lab.command(switch.proc),
                self.lab.log(&switch.log).trim_end()
            );
        }
        text
    }
}

/// Two VM namespaces joined by one veth pair.
fn direct(mut lab: Lab) -> Result<Topology> {
    let vm1 = lab.netns("v1")?;
    let vm2 = lab.netns("v2")?;
    let (a, b) = (lab.name("a")?, lab.name("b")?);
    lab.veth(&vm1, &a, &vm2, &b, VM_MTU)?;
    let topology = Topology {
        variant: Variant::Direct,
        lab,
        vm_ns: [vm1, vm2],
        vm_nic: [a, b],
        host_ns: Vec::new(),
        switches: Vec::new(),
    };
    topology.vm_nic_up(0)?;
    topology.vm_nic_up(1)?;
    Ok(topology)
}

/// Host namespaces h1, h2 joined by the underlay veth (MTU 1600, VTEP addresses on it), and
/// VM namespaces v1, v2 with nothing in them yet.
fn hosts_and_underlay(lab: &mut Lab) -> Result<([String; 2], [String; 2], [String; 2])> {
    let h = [lab.netns("h1")?, lab.netns("h2")?];
    let vm = [lab.netns("v1")?, lab.netns("v2")?];
    let ul = [lab.name("u1")?, lab.name("u2")?];
    lab.veth(&h[0], &ul[0], &h[1], &ul[1], UNDERLAY_MTU)?;
    for i in 0..2 {
        lab.addr(&h[i], &ul[i], &format!("{}/24", UNDERLAY_IPS[i]))?;
    }
    Ok((h, vm, ul))
}

/// Per host: a Linux bridge with the VM's veth and a kernel vxlan device (VNI 100, `remote`
/// the other VTEP, so flooding goes there and the bridge and vxlan learn the rest).
fn kernel(mut lab: Lab) -> Result<Topology> {
    let (h, vm, ul) = hosts_and_underlay(&mut lab)?;
    let mut nics = Vec::new();
    for i in 0..2 {
        let n = i + 1;
        let (host_end, vm_end) = (lab.name(&format!("v{n}h"))?, lab.name(&format!("v{n}"))?);
        let (vxlan, bridge) = (lab.name(&format!("x{n}"))?, lab.name(&format!("b{n}"))?);
        lab.veth(&h[i], &host_end, &vm[i], &vm_end, VM_MTU)?;
        lab.ip(
            &h[i],
            &[
                "link",
                "add",
                &vxlan,
                "type",
                "vxlan",
                "id",
                &VNI.to_string(),
                "local",
                &UNDERLAY_IPS[i].to_string(),
                "remote",
                &UNDERLAY_IPS[1 - i].to_string(),
                "dstport",
                &VXLAN_PORT.to_string(),
                "dev",
                &ul[i],
            ],
        )?;
        lab.ip(&h[i], &["link", "add", &bridge, "type", "bridge"])?;
        lab.ip(&h[i], &["link", "set", &vxlan, "master", &bridge])?;
        lab.ip(&h[i], &["link", "set", &host_end, "master", &bridge])?;
        for dev in [&vxlan, &bridge] {
            lab.ip(&h[i], &["link", "set", dev, "up"])?;
        }
        nics.push(vm_end);
    }
    let [nic1, nic2]: [String; 2] = nics
        .try_into()
        .map_err(|_| Error::Failed("two VM NICs expected".into()))?;
    let topology = Topology {
        variant: Variant::Kernel,
        lab,
        vm_ns: vm,
        vm_nic: [nic1, nic2],
        host_ns: h.to_vec(),
        switches: Vec::new(),
    };
    topology.vm_nic_up(0)?;
    topology.vm_nic_up(1)?;
    Ok(topology)
}

/// One host's `weft switch` configuration: the VM's TAP (moved into its namespace as eth0), a
/// VXLAN port on the underlay address, VNI 100 flooding to the other host, a record for the
/// other VM, `busy_poll_us`, and `idle` more VM ports on the same network: TAPs named `idle`
/// left in the host namespace, down, that nothing sends to.
pub(super) fn weft_config(
    i: usize,
    tap: &str,
    vm_ns: &str,
    busy_poll_us: u64,
    idle: &[String],
) -> String {
    let remote = UNDERLAY_IPS[1 - i];
    let mut config = format!(
        "# weft bench dataplane: host{n}\n\
         busy_poll_us = {busy_poll_us}\n\
         \n\
         [[switch]]\n\
         name = \"net1\"\n\
         local_vlan = 1\n\
         segment = \"vxlan:{VNI}\"\n\
         flood = [\"{remote}\"]\n\
         \n\
         [[port]]\n\
         name = \"{tap}\"\n\
         type = \"tap\"\n\
         switch = \"net1\"\n\
         mac = \"{mac}\"\n\
         ips = [\"{ip}\"]\n\
         netns = \"{vm_ns}\"\n\
         netns_ifname = \"eth0\"\n\
         \n\
         [[port]]\n\
         name = \"vxlan0\"\n\
         type = \"vxlan\"\n\
         local_ip = \"{local}\"\n\
         port = {VXLAN_PORT}\n\
         \n\
         [[record]]\n\
         switch = \"net1\"\n\
         ip = \"{peer_ip}\"\n\
         mac = \"{peer_mac}\"\n\
         remote = \"{remote}\"\n",
        n = i + 1,
        mac = VM_MACS[i],
        ip = VM_IPS[i],
        local = UNDERLAY_IPS[i],
        peer_ip = VM_IPS[1 - i],
        peer_mac = VM_MACS[1 - i],
    );
    for (k, name) in idle.iter().enumerate() {
        let mac = format!("fa:16:3e:{:02x}:{:02x}:{:02x}", 0x10 + i, k >> 8, k & 0xff);
        config.push_str(&format!(
            "\n[[port]]\nname = \"{name}\"\ntype = \"tap\"\nswitch = \"net1\"\nmac = \"{mac}\"\n"
        ));
    }
    config
}

/// Per host a `weft switch` process (`weft_exe switch --config ... --control ...`) inside the
/// host namespace.
fn weft(mut lab: Lab, options: &Options) -> Result<Topology> {
    let (h, vm, _ul) = hosts_and_underlay(&mut lab)?;
    let weft_exe = &options.weft_exe;
    let exe = weft_exe
        .to_str()
        .ok_or_else(|| Error::Failed(format!("{}: not UTF-8", weft_exe.display())))?
        .to_owned();
    let mut switches = Vec::new();
    for i in 0..2 {
        let tap = lab.name(&format!("t{}", i + 1))?;
        let config = lab.dir().join(format!("host{}.toml", i + 1));
        let idle = (0..options.weft_idle_ports)
            .map(|k| lab.name(&format!("{}i{k}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let text = weft_config(i, &tap, &vm[i], options.weft_busy_poll_us, &idle);
        std::fs::write(&config, text)
            .map_err(|err| Error::io(format!("cannot write {}", config.display()), err))?;
        let control = lab.dir().join(format!("host{}.sock", i + 1));
        let log = format!("switch-host{}.log", i + 1);
        let (config_s, control_s) = (path_str(&config)?, path_str(&control)?);
        let proc = lab.spawn(
            &h[i],
            &[
                &exe,
                "switch",
                "--config",
                &config_s,
                "--control",
                &control_s,
            ],
            &log,
        )?;
        switches.push(SwitchProc { proc, log });
    }
    let mut topology = Topology {
        variant: Variant::Weft,
        lab,
        vm_ns: vm,
        vm_nic: ["eth0".to_owned(), "eth0".to_owned()],
        host_ns: h.to_vec(),
        switches,
    };
    // The daemon creates the TAP and moves it into the VM namespace before it forwards.
    for i in 0..2 {
        let deadline = Instant::now() + SWITCH_START;
        loop {
            topology.check_switches()?;
            if topology
                .lab
                .ip(&topology.vm_ns[i], &["link", "show", "dev", "eth0"])
                .is_ok()
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Failed(format!(
                    "weft switch in host{} has not made VM{}'s eth0 after {} s{}",
                    i + 1,
                    i + 1,
                    SWITCH_START.as_secs(),
                    topology.switch_logs()
                )));
            }
            sleep(Duration::from_millis(20))?;
        }
        topology.vm_nic_up(i)?;
    }
    Ok(topology)
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::Failed(format!("{}: not UTF-8", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_weft_configs_are_accepted_by_the_switch() {
        for i in 0..2 {
            let idle: Vec<String> = (0..300).map(|k| format!("wb1w{i}i{k}")).collect();
            let text = weft_config(i, "wb1wt1", "wb1wv1", 20_000, &idle);
            let config = switch::daemon::SwitchConfig::from_toml(&text)
                .unwrap_or_else(|err| panic!("{err}\n{text}"));
            assert_eq!(config.busy_poll_us, 20_000);
            assert_eq!(config.switches.len(), 1);
            assert_eq!(config.ports.len(), 302);
            assert_eq!(config.records.len(), 1);
            assert_eq!(config.switches[0].flood.len(), 1);
            assert_eq!(
                config.records[0].remote.to_string(),
                UNDERLAY_IPS[1 - i].to_string()
            );
        }
    }
}
