//! `weft`: the single binary of weft (multi-tenant network virtualization).
//!
//! Subcommands arrive with the crates that implement them; today: `weft server`,
//! `weft agent`, `weft decode`, `weft switch` (with its client, `weft switch ctl`), `weft
//! bench`, `weft lab`, `weft vsi` and `weft evb`.

// The doc comments on the command-line structs are clap's help text, written for a terminal
// (`<state-dir>`, `TYPE_ID[:VERSION]`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod agent_cmd;
mod bench_api;
mod bench_cmd;
mod bench_scale;
mod decode;
mod evb_cmd;
mod lab_cmd;
mod server_cmd;
mod switch_cmd;
mod vsi_cmd;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// weft: multi-tenant network virtualization for data centres.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: the networking API (Neutron v2.0) and the identity API (Keystone v3).
    Server(Box<server_cmd::ServerArgs>),
    /// Run the agent on this host: watch the controller and program the local switch.
    Agent(Box<agent_cmd::AgentArgs>),
    /// Print every packet of a pcap or pcapng file on one line, outer headers to inner.
    Decode {
        /// The capture to read (pcap or pcapng; Ethernet, Linux cooked or raw IP link types).
        file: PathBuf,
        /// Also read this UDP destination port as VXLAN (4789 always is).
        #[arg(long, value_name = "PORT")]
        vxlan_port: Option<u16>,
    },
    /// Run the virtual switch daemon on this host, or talk to one (`weft switch ctl`).
    Switch(Box<switch_cmd::SwitchArgs>),
    /// Run the 802.1Qbg EVB bridge or station on an interface, or talk to one (root).
    Evb(evb_cmd::EvbArgs),
    /// Measure weft on real topologies built in network namespaces (root).
    Bench(bench_cmd::BenchArgs),
    /// A small data centre on this machine: controller, hosts, VMs in namespaces (root).
    Lab(lab_cmd::LabArgs),
    /// The controller's VSI type database and VDP associations (through its REST API).
    Vsi(vsi_cmd::VsiArgs),
}

/// Exit codes: 0 success (also `weft server`, `weft agent` and `weft switch` stopped by
/// SIGINT/SIGTERM), 1 the command failed (the message says why), 2 bad usage (clap), 130
/// interrupted (SIGINT/SIGTERM/SIGHUP during `weft bench` or `weft lab`, after cleaning up);
/// `weft lab vm exec` exits with its command's code.
const EXIT_FAILURE: u8 = 1;
/// See [`EXIT_FAILURE`].
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server_cmd::run(*args),
        Command::Agent(args) => agent_cmd::run(*args),
        Command::Decode { file, vxlan_port } => {
            decode::run(&file, vxlan_port, &mut std::io::stdout().lock())
        }
        Command::Switch(args) => switch_cmd::run(*args),
        Command::Evb(args) => evb_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Vsi(args) => vsi_cmd::run(args),
        Command::Lab(args) => match lab_cmd::run(args) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code),
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weft: {err:#}");
            if matches!(err.downcast_ref(), Some(lab::Error::Interrupted)) {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}
