//! `weft bench dataplane`: the two-host VXLAN topology of `shared/bench/dataplane_baseline.sh`
//! built three ways in one run, measured side by side.
//!
//! ```text
//!  VM1 198.18.0.1 --- [switch in host1] ==VXLAN VNI 100, UDP 4789==> [switch in host2] --- VM2 198.18.0.2
//!                        192.0.2.1  <------ underlay veth, MTU 1600 ------>  192.0.2.2
//! ```
//!
//! - **weft**: one real `weft switch` process per host namespace, configured from a TOML file
//!   as `crates/weft/tests/switch_netns.rs` does: the VM's TAP moved into the VM namespace as
//!   `eth0`, a `vxlan` port on the underlay address, a flood list naming the other host, and a
//!   record for the other VM (its ARP is answered locally);
//! - **kernel**: a Linux bridge and a kernel vxlan device per host, the VM NIC a veth (with
//!   the kernel's offloads, what a kernel user gets);
//! - **direct**: the two VMs on one veth pair, no switch, no overlay: the ceiling of the box.
//!
//! VM NICs have MTU 1500 and the underlay MTU 1600, as in the reference script, so every
//! variant carries the same TCP segment size. All three are built first and the measurements
//! interleaved (each repeat runs TCP, then packets/s, then ping, on every variant, the order
//! of variants rotating), so drift on the shared machine hits them alike.
//!
//! Measurements, from VM1 to VM2:
//! - TCP: one iperf3 stream, receiver goodput;
//! - 64-byte packets/s: [`crate::pktgen`] in VM1 as fast as VM1's NIC takes frames, packets
//!   received counted on VM2's NIC (`/sys/class/net/*/statistics/rx_packets`) over the middle
//!   of the run;
//! - latency: `ping -i 0.01`, average and 99th percentile of the round trip times.

mod measure;
mod report;
mod topology;

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

use self::topology::Topology;
pub use self::{
    measure::{PingSample, PpsSample, SwitchCpu, TcpSample},
    report::{Goal, Report, Summary, VariantReport},
};
use crate::{Error, Result, interrupt, netns};

/// The VXLAN network identifier of the overlay.
pub const VNI: u32 = 100;
/// The VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;
/// The MTU of the VM NICs (as `dataplane_baseline.sh`).
pub const VM_MTU: u32 = 1500;
/// The MTU of the underlay veth (VM MTU + room for the 50 bytes of VXLAN over IPv4).
pub const UNDERLAY_MTU: u32 = 1600;
/// The hosts' underlay (VTEP) addresses, in a /24 (RFC 5737 documentation range).
pub const UNDERLAY_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
/// The VMs' addresses, in a /24 (RFC 2544 benchmarking range).
pub const VM_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)];
/// The VMs' MAC addresses (the same in every variant).
pub const VM_MACS: [&str; 2] = ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"];
/// The iperf3 server's port in VM2.
pub const IPERF_PORT: u16 = 5201;

/// Figures of the reference run (`shared/bench/README.md`, same topology, this machine):
/// Open vSwitch 3.1's userspace datapath, which cannot run here in the same binary run.
pub mod reference {
    /// OVS userspace TCP throughput, Gbit/s.
    pub const OVS_TCP_GBPS: f64 = 1.06;
    /// OVS userspace ping average, microseconds.
    pub const OVS_PING_US: f64 = 386.0;
    /// weft must do at least this many times better than OVS userspace.
    pub const OVS_FACTOR: f64 = 5.0;
    /// weft's ping may be at most this many times the kernel's.
    pub const PING_FACTOR: f64 = 1.5;
}

/// One way of building the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Two `weft switch` processes with a VXLAN tunnel.
    Weft,
    /// Linux bridge + kernel vxlan device per host.
    Kernel,
    /// A direct veth between the VMs.
    Direct,
}

impl Variant {
    /// All of them, in the table's order.
    pub const ALL: [Self; 3] = [Self::Weft, Self::Kernel, Self::Direct];

    /// The name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Weft => "weft",
            Self::Kernel => "kernel",
            Self::Direct => "direct",
        }
    }

    /// The one-letter tag in this variant's namespace and interface names.
    fn tag(self) -> &'static str {
        match self {
            Self::Weft => "w",
            Self::Kernel => "k",
            Self::Direct => "d",
        }
    }
}

impl core::fmt::Display for Variant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant {s:?} (weft, kernel, direct)"))
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Times each measurement is repeated (the table shows the median).
    pub repeats: u32,
    /// Seconds of each iperf3 TCP run.
    pub tcp_secs: u32,
    /// Seconds over which packets/s are counted (the generator runs a little longer).
    pub pps_secs: f64,
    /// Pings per latency run (10 ms apart).
    pub ping_count: u32,
    /// The variants, in the table's order.
    pub variants: Vec<Variant>,
    /// The `weft` binary: runs `weft switch` and `weft bench pktgen`.
    pub weft_exe: PathBuf,
    /// `busy_poll_us` of the weft switches (0, their default: no busy polling).
    pub weft_busy_poll_us: u64,
    /// Idle VM ports (TAPs nobody uses) each weft switch has besides its VM's: a hypervisor
    /// with many VMs, of which two talk.
    pub weft_idle_ports: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            repeats: 3,
            tcp_secs: 10,
            pps_secs: 5.0,
            ping_count: 200,
            variants: Variant::ALL.to_vec(),
            weft_exe: PathBuf::from("weft"),
            weft_busy_poll_us: 0,
            weft_idle_ports: 0,
        }
    }
}

/// What the machine must have.
fn preflight(options: &Options) -> Result<()> {
    if !netns::is_root() {
        return Err(Error::Failed(
            "weft bench dataplane needs root (network namespaces)".into(),
        ));
    }
    for program in ["ip", "iperf3", "ping", "sysctl"] {
        if !netns::have_program(program) {
            return Err(Error::Failed(format!(
                "`{program}` not found (apt-get install iproute2 iperf3 iputils-ping procps)"
            )));
        }
    }
    if options.variants.is_empty() {
        return Err(Error::Failed("no variants to run".into()));
    }
    if options.repeats == 0 || options.tcp_secs == 0 || options.ping_count == 0 {
        return Err(Error::Failed(
            "--repeats, --tcp-secs and --ping-count must be at least 1".into(),
        ));
    }
    if !(0.2..=3600.0).contains(&options.pps_secs) {
        return Err(Error::Failed("--pps-secs must be 0.2 to 3600".into()));
    }
    if options.variants.contains(&Variant::Weft) && !options.weft_exe.is_file() {
        return Err(Error::Failed(format!(
            "the weft binary {} does not exist",
            options.weft_exe.display()
        )));
    }
    Ok(())
}

/// Builds every variant, measures them interleaved, tears them down and returns the figures.
///
/// `progress` gets a line per step (for stderr). Call [`interrupt::install`] first if Ctrl-C
/// should tear down cleanly.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    // A signal makes whatever ran fail (its processes were terminated): say why.
    run_all(options, progress).map_err(|err| {
        if interrupt::interrupted() {
            Error::Interrupted
        } else {
            err
        }
    })
}

fn run_all(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    preflight(options)?;
    let started = Instant::now();
    let mut say = |text: &str| {
        progress(&format!(
            "[{:6.1}s] {text}",
            started.elapsed().as_secs_f64()
        ));
    };
    let stale = netns::remove_stale()?;
    if !stale.is_empty() {
        say(&format!(
            "removed namespaces left by an earlier run that was killed: {}",
            stale.join(" ")
        ));
    }
    let mut topologies = Vec::new();
    for &variant in &options.variants {
        say(&format!("{variant}: building the topology"));
        let mut topology = Topology::build(variant, options)?;
        topology.wait_connectivity()?;
        say(&format!("{variant}: VM1 reaches VM2"));
        topologies.push(topology);
    }
    let mut reports: Vec<VariantReport> = options
        .variants
        .iter()
        .map(|&variant| VariantReport::new(variant))
        .collect();
    let n = topologies.len();
    let repeats = usize::try_from(options.repeats).unwrap_or(usize::MAX);
    for repeat in 0..repeats {
        // Rotate which variant goes first, so none always runs right after another's load.
        let order: Vec<usize> = (0..n).map(|i| (i + repeat) % n).collect();
        for &i in &order {
            interrupt::check()?;
            let (topology, report) = (&mut topologies[i], &mut reports[i]);
            say(&format!(
                "{} run {}/{}: TCP, {} s",
                topology.variant,
                repeat + 1,
                options.repeats,
                options.tcp_secs
            ));
            let sample = topology.tcp(options.tcp_secs)?;
            say(&format!("  -> {}", sample.describe()));
            report.tcp.push(sample);
        }
        for &i in &order {
            interrupt::check()?;
            let (topology, report) = (&mut topologies[i], &mut reports[i]);
            say(&format!(
                "{} run {}/{}: 64-byte packets/s, {} s",
                topology.variant,
                repeat + 1,
                options.repeats,
                options.pps_secs
            ));
            let sample = topology.pps(options.pps_secs, &options.weft_exe)?;
            say(&format!("  -> {}", sample.describe()));
            report.pps.push(sample);
        }
        for &i in &order {
            interrupt::check()?;
            let (topology, report) = (&mut topologies[i], &mut reports[i]);
            say(&format!(
                "{} run {}/{}: ping x {}",
                topology.variant,
                repeat + 1,
                options.repeats,
                options.ping_count
            ));
            let sample = topology.ping(options.ping_count)?;
            say(&format!("  -> {}", sample.describe()));
            report.ping.push(sample);
        }
    }
    say("tearing down");
    drop(topologies);
    Ok(Report {
        options: options.clone(),
        variants: reports,
        elapsed: started.elapsed(),
    })
}

/// Sleeps `duration`, or less if interrupted.
fn sleep(duration: Duration) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        interrupt::check()?;
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_variants_parse_by_name() {
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>(), Ok(v));
        }
        assert!("ovs".parse::<Variant>().is_err());
    }
}
