//! `weft lab`: a small data centre on this machine (`lab::datacentre`): up, down, status, and
//! VMs that are network namespaces on Neutron ports.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lab::{
    datacentre::{self, ADMIN_CLOUD, CLOUDS_YAML, DEFAULT_DIR, Options, Progress, VmCreate},
    interrupt,
    topology::Topology,
};

/// `weft lab ...`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// The lab directory: state, configs, logs, sockets, the controller's database.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR, global = true)]
    dir: PathBuf,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Build the data centre (default: two hosts, h1 and h2) and start weft server, and weft
    /// switch and weft agent on every host; writes clouds.yaml here (root).
    Up {
        /// The topology file (TOML); default: the built-in two-host topology.
        topology: Option<PathBuf>,
        /// Where to write clouds.yaml.
        #[arg(long, value_name = "PATH", default_value = CLOUDS_YAML)]
        clouds_yaml: PathBuf,
    },
    /// Remove everything the lab made, also after a crash (processes, namespaces, links,
    /// bridges, /etc/netns entries, clouds.yaml, the lab directory).
    Down {
        /// The lab's name, when its directory is gone (default: the directory's, else weft).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// The tour: bring the lab up if it is not, then two tenants with the same subnet on two
    /// hosts, a VM of each on each host, and the pings that must work and those that must
    /// not (exit 1 if any goes the wrong way).
    Demo {
        /// The topology file for `up` (default: the built-in two-host topology).
        topology: Option<PathBuf>,
    },
    /// Restart the controller (`server`), a host's agent (`agent --host H`) or, in an EVB lab,
    /// a host's 802.1Qbg station (`station --host H`, which asks for its VSIs again); switches
    /// keep forwarding meanwhile.
    Restart {
        /// `server`, `agent` or `station`.
        #[arg(value_parser = ["server", "agent", "station"])]
        daemon: String,
        /// The host, for `agent` and `station`.
        #[arg(long, required_if_eq_any([("daemon", "agent"), ("daemon", "station")]))]
        host: Option<String>,
    },
    /// Show the lab's processes, hosts and VMs.
    Status,
    /// VMs: namespaces whose eth0 is a Neutron port's TAP.
    #[command(subcommand)]
    Vm(VmCommand),
    /// A trunk VM's NIC: moves frames between the wire (the switch's TAP) and eth0 and its
    /// VLAN interfaces, tagging in userspace. Started by `weft lab vm create` inside the VM.
    #[command(hide = true)]
    VmMux(VmMuxArgs),
}

/// `weft lab vm-mux` (see `lab::vlanmux`).
#[derive(Debug, Args)]
struct VmMuxArgs {
    /// The wire: the switch's TAP in this namespace.
    #[arg(long, value_name = "IFACE")]
    wire: String,
    /// The untagged interface to make.
    #[arg(long, value_name = "IFACE", default_value = datacentre::LINK)]
    link: String,
    /// Its MAC address (the parent port's).
    #[arg(long, value_name = "MAC")]
    mac: String,
    /// Its MTU and the VLAN interfaces'.
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// The control socket to listen on.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
}

#[derive(Debug, Subcommand)]
enum VmCommand {
    /// Create a VM: make (or take) a port, bind it to a host, move its TAP into the VM's
    /// namespace as eth0 and run DHCP there.
    Create {
        /// The VM's name.
        name: String,
        /// Make a port on this network (name or id).
        #[arg(
            long,
            value_name = "NET",
            required_unless_present = "port",
            conflicts_with = "port"
        )]
        network: Option<String>,
        /// Use this port (name or id).
        #[arg(long, value_name = "PORT")]
        port: Option<String>,
        /// The host (default: the next one, round robin).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// The cloud of clouds.yaml that makes or finds the port.
        #[arg(long, value_name = "CLOUD", default_value = ADMIN_CLOUD)]
        os_cloud: String,
        /// On the EVB fabric (`[evb]`): the VSI type to associate with, by name, id or
        /// TYPE_ID[:VERSION] (default: the one VSI type whose profile is the network).
        #[arg(long, value_name = "TYPE")]
        vsi_type: Option<String>,
    },
    /// Run a command inside a VM (its exit code is weft's).
    Exec {
        /// The VM.
        name: String,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Delete a VM: its DHCP client, its namespace, and its port (or its binding, for a port
    /// it was given).
    Delete {
        /// The VM.
        name: String,
    },
    /// List the VMs.
    List,
    /// Move a VM to another host: its port's binding moves, the target's agent plugs a new
    /// TAP, the VM gets it as eth0 and DHCP again; prints how long the VM had no NIC. On the
    /// EVB fabric its VSI pre-associates on the target, de-associates on the source and
    /// associates on the target (seed 000).
    Migrate {
        /// The VM.
        name: String,
        /// The host to move it to.
        #[arg(long)]
        to: String,
    },
    /// A trunk VM's VLAN interfaces (the VM's port is a trunk's parent).
    #[command(subcommand)]
    Vlan(VlanCommand),
    /// Run the lab's DHCP client on an interface of a VM (e.g. a VLAN interface) and wait for
    /// its address.
    Dhcp {
        /// The VM.
        name: String,
        /// The interface, e.g. eth0.1.
        iface: String,
    },
}

#[derive(Debug, Subcommand)]
enum VlanCommand {
    /// Give the VM a VLAN interface LINK.ID with a MAC, up (as `ip link add link eth0 eth0.1
    /// address MAC type vlan id 1` would); its frames are tagged ID on the wire.
    Add {
        /// The VM.
        name: String,
        /// The interface the VLAN stacks on.
        #[arg(long, value_name = "IFACE", default_value = datacentre::LINK)]
        link: String,
        /// The VLAN id (the subport's segmentation id).
        #[arg(long, value_name = "VID", value_parser = clap::value_parser!(u16).range(1..=4094))]
        id: u16,
        /// Its MAC address (the subport's).
        #[arg(long, value_name = "MAC")]
        mac: String,
    },
    /// Remove a VLAN interface.
    Del {
        /// The VM.
        name: String,
        /// The interface, e.g. eth0.1.
        iface: String,
    },
    /// List the VM NIC's interfaces.
    List {
        /// The VM.
        name: String,
    },
}

/// Runs `weft lab ...`; `Ok(code)` is the exit code (non-zero only from `vm exec`).
pub(crate) fn run(args: LabArgs) -> Result<u8> {
    // Commands that build or remove turn Ctrl-C into an orderly stop. `vm exec` must not: the
    // handler's blocked signals would be inherited by the command, which Ctrl-C should stop.
    if !matches!(
        args.command,
        LabCommand::Vm(VmCommand::Exec { .. } | VmCommand::List | VmCommand::Vlan(_))
            | LabCommand::Status
            | LabCommand::VmMux(_)
    ) {
        interrupt::install()?;
    }
    let mut stdout = std::io::stdout();
    let mut progress = Progress::new(&mut stdout);
    match args.command {
        LabCommand::Up {
            topology,
            clouds_yaml,
        } => {
            let topology = read_topology(topology.as_deref())?;
            let weft = std::env::current_exe().context("cannot find the weft executable")?;
            let options = Options {
                dir: args.dir.clone(),
                weft,
                clouds_yaml,
            };
            let state = datacentre::up(topology, &options, &mut progress)?;
            let dir = args.dir.display();
            let clouds = state
                .clouds_yaml
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string());
            progress.step(format!("lab {:?} is up", state.topology.name));
            progress.say(format!(
                "\nclouds.yaml: {clouds}. From this directory:\n  \
                 openstack --os-cloud weft network create net1\n  \
                 openstack --os-cloud weft subnet create --network net1 --subnet-range \
                 10.0.1.0/24 sub1\n  \
                 weft lab vm create vm1 --network net1\n  \
                 weft lab vm create vm2 --network net1\n  \
                 weft lab vm exec vm1 -- ping -c 3 <vm2's address>\n  \
                 weft lab status\n  \
                 weft lab down\n\
                 The demo user's cloud is weft-demo. Logs are in {dir}."
            ));
            Ok(0)
        }
        LabCommand::Down { name } => {
            let removed = datacentre::down(&args.dir, name.as_deref(), &mut progress)?;
            if removed.is_empty() {
                progress.step("nothing to remove");
            } else {
                progress.step("lab removed");
            }
            Ok(0)
        }
        LabCommand::Status => {
            datacentre::status(&args.dir, &mut std::io::stdout())?;
            Ok(0)
        }
        LabCommand::Demo { topology } => {
            if !args.dir.join("state.json").exists() {
                let topology = read_topology(topology.as_deref())?;
                let weft = std::env::current_exe().context("cannot find the weft executable")?;
                let options = Options {
                    dir: args.dir.clone(),
                    weft,
                    clouds_yaml: PathBuf::from(CLOUDS_YAML),
                };
                datacentre::up(topology, &options, &mut progress)?;
            }
            let checks = datacentre::demo(&args.dir, &mut progress)?;
            datacentre::demo_report(&checks, &mut std::io::stdout());
            if checks.iter().all(datacentre::Check::passed) {
                println!(
                    "\nEvery tenant reaches its own VMs across hosts and never the other's. \
                     Look around:"
                );
                println!("  weft lab status");
                println!("  weft lab vm exec blue1 -- ip addr");
                println!("  openstack --os-cloud weft port list");
                println!("  weft lab down");
                Ok(0)
            } else {
                println!("\nSome pings went the wrong way (see above).");
                Ok(1)
            }
        }
        LabCommand::Restart { daemon, host } => {
            let which = match (daemon.as_str(), host) {
                ("agent", Some(host)) => datacentre::Daemon::Agent(host),
                ("station", Some(host)) => datacentre::Daemon::Station(host),
                _ => datacentre::Daemon::Server,
            };
            datacentre::restart(&args.dir, &which, &mut progress)?;
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Create {
            name,
            network,
            port,
            host,
            os_cloud,
            vsi_type,
        }) => {
            let request = VmCreate {
                name,
                network,
                port,
                host,
                cloud: os_cloud,
                vsi_type,
            };
            let vm = datacentre::vm_create(&args.dir, &request, &mut progress)?;
            println!("{}", vm.ip.unwrap_or_default());
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Exec { name, command }) => {
            let code = datacentre::vm_exec(&args.dir, &name, &command)?;
            Ok(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
        }
        LabCommand::Vm(VmCommand::Delete { name }) => {
            datacentre::vm_delete(&args.dir, &name, &mut progress)?;
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Migrate { name, to }) => {
            let gap = datacentre::vm_migrate(&args.dir, &name, &to, &mut progress)?;
            println!("{} ms", gap.as_millis());
            Ok(0)
        }
        LabCommand::Vm(VmCommand::List) => {
            datacentre::vm_list(&args.dir, &mut std::io::stdout())?;
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Vlan(VlanCommand::Add {
            name,
            link,
            id,
            mac,
        })) => {
            let iface = datacentre::vm_vlan_add(&args.dir, &name, &link, id, &mac)?;
            println!("{iface}");
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Vlan(VlanCommand::Del { name, iface })) => {
            datacentre::vm_vlan_del(&args.dir, &name, &iface)?;
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Vlan(VlanCommand::List { name })) => {
            let list = datacentre::vm_vlan_list(&args.dir, &name)?;
            println!("{}", serde_json::to_string_pretty(&list)?);
            Ok(0)
        }
        LabCommand::Vm(VmCommand::Dhcp { name, iface }) => {
            let address = datacentre::vm_dhcp(&args.dir, &name, &iface, &mut progress)?;
            println!("{address}");
            Ok(0)
        }
        LabCommand::VmMux(mux) => {
            let mac = mux
                .mac
                .parse()
                .map_err(|_| anyhow::anyhow!("--mac {:?}: not a MAC address", mux.mac))?;
            lab::vlanmux::run_mux(lab::vlanmux::MuxOptions {
                wire: mux.wire,
                link: mux.link,
                mac,
                mtu: mux.mtu,
                socket: mux.socket,
            })?;
            Ok(0)
        }
    }
}

/// The topology file, or the built-in one.
fn read_topology(path: Option<&Path>) -> Result<Topology> {
    let Some(path) = path else {
        return Ok(Topology::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match Topology::from_toml(&text) {
        Ok(topology) => Ok(topology),
        Err(err) => bail!("{}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_arguments_are_consistent() {
        use clap::Args as _;
        LabArgs::augment_args(clap::Command::new("lab")).debug_assert();
    }
}
