//! `weft bench`: measurements on real topologies (`lab::dataplane`), and the packet generator
//! they run inside namespaces (`weft bench pktgen`, hidden: a tool of the benchmark).

use std::{io::Write, net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use lab::{
    dataplane::{self, Options, Variant},
    interrupt, pktgen,
};
use wire::MacAddr;

/// `weft bench ...`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Two hosts with a VM each over VXLAN, built with weft, the Linux kernel (bridge + vxlan)
    /// and a direct veth: TCP throughput, 64-byte packets/s and ping side by side (root).
    Dataplane(DataplaneArgs),
    /// Create, list and delete networks, subnets and ports through the HTTP API (an
    /// in-process weft server, or any Neutron endpoint with --url): requests/s and p50/p99.
    Api(crate::bench_api::ApiArgs),
    /// The controller with H simulated hosts (the real agent over in-memory switches): how
    /// long until all converge after P ports are created and bound, and the p50/p99 time from
    /// a port update to the last host applying it.
    Scale(crate::bench_scale::ScaleArgs),
    /// Send 64-byte UDP frames out of an interface as fast as it takes them (AF_PACKET,
    /// sendmmsg, qdisc bypassed) and print how many: the generator `weft bench dataplane`
    /// runs inside VM1's namespace.
    #[command(hide = true)]
    Pktgen(PktgenArgs),
}

#[derive(Debug, Args)]
struct DataplaneArgs {
    /// Times each measurement is repeated; the table shows the median.
    #[arg(long, default_value_t = 3, value_name = "N")]
    repeats: u32,
    /// Seconds of each iperf3 TCP run.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    tcp_secs: u32,
    /// Seconds over which 64-byte packets/s are counted.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pps_secs: f64,
    /// Pings per latency run (10 ms apart).
    #[arg(long, default_value_t = 200, value_name = "N")]
    ping_count: u32,
    /// Which variants, in the table's order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "weft,kernel,direct",
        value_name = "LIST"
    )]
    variants: Vec<Variant>,
    /// `busy_poll_us` of the weft switches: microseconds they keep polling after a frame
    /// before sleeping (0, their default: none).
    #[arg(long, default_value_t = 0, value_name = "US")]
    weft_busy_poll_us: u64,
    /// Idle VM ports each weft switch has besides its VM's (TAPs nobody sends to), as on a
    /// hypervisor with many VMs of which two talk
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    weft_idle_ports: u16,
    /// Print the figures as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PktgenArgs {
    /// The interface to send on.
    #[arg(long, value_name = "IFNAME")]
    ifname: String,
    /// The destination MAC address.
    #[arg(long, value_name = "MAC")]
    dst_mac: MacAddr,
    /// The source MAC address (default: the interface's).
    #[arg(long, value_name = "MAC")]
    src_mac: Option<MacAddr>,
    /// The source IPv4 address.
    #[arg(long, value_name = "IP")]
    src_ip: Ipv4Addr,
    /// The destination IPv4 address.
    #[arg(long, value_name = "IP")]
    dst_ip: Ipv4Addr,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    secs: f64,
    /// Frame length, Ethernet header included.
    #[arg(long, default_value_t = pktgen::FRAME_LEN, value_name = "BYTES")]
    len: usize,
}

/// Runs `weft bench ...`.
pub(crate) fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Dataplane(args) => run_dataplane(&args),
        BenchCommand::Api(args) => crate::bench_api::run(&args),
        BenchCommand::Scale(args) => crate::bench_scale::run(&args),
        BenchCommand::Pktgen(args) => run_pktgen(&args),
    }
}

fn run_dataplane(args: &DataplaneArgs) -> Result<()> {
    // First, before any thread starts: Ctrl-C then tears the namespaces down.
    interrupt::install()?;
    let options = Options {
        repeats: args.repeats,
        tcp_secs: args.tcp_secs,
        pps_secs: args.pps_secs,
        ping_count: args.ping_count,
        variants: args.variants.clone(),
        weft_exe: std::env::current_exe().context("cannot find the weft binary")?,
        weft_busy_poll_us: args.weft_busy_poll_us,
        weft_idle_ports: args.weft_idle_ports,
    };
    let mut stderr = std::io::stderr();
    let report = dataplane::run(&options, &mut |line| {
        let _ = writeln!(stderr, "{line}");
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{:#}", report.to_json())?;
    } else {
        out.write_all(report.table().as_bytes())?;
    }
    Ok(())
}

fn run_pktgen(args: &PktgenArgs) -> Result<()> {
    let duration = Duration::try_from_secs_f64(args.secs)
        .map_err(|_| anyhow!("--secs {}: not a duration", args.secs))?;
    if duration.is_zero() {
        bail!("--secs must be more than 0");
    }
    let stats = pktgen::run(&pktgen::Config {
        ifname: args.ifname.clone(),
        src_mac: args.src_mac,
        dst_mac: args.dst_mac,
        src_ip: args.src_ip,
        dst_ip: args.dst_ip,
        frame_len: args.len,
        duration,
    })?;
    println!("{}", stats.to_line());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_arguments_are_consistent() {
        use clap::Args as _;
        BenchArgs::augment_args(clap::Command::new("bench")).debug_assert();
    }
}
