//! `weft evb`: the 802.1Qbg EVB bridge (the ToR side) or station on one interface, and `weft
//! evb ctl`, the client of their control socket. The runtime is `evbd`.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, IsTerminal as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use evb::{Role, Timing};
use evbd::{
    Decider, Options,
    decide::DecideClient,
    gating::SwitchGlue,
    policy::LocalPolicy,
    port::CdcpConfig,
    schannels::{ChannelNetworkArg, UplinkGlue},
};

/// `weft evb ...`.
#[derive(Debug, Args)]
pub(crate) struct EvbArgs {
    #[command(subcommand)]
    command: EvbCommand,
}

#[derive(Debug, Subcommand)]
enum EvbCommand {
    /// Run the EVB bridge (ToR side) on an interface: EVB TLV, ECP, VDP, optionally CDCP
    /// (then EVB TLV, ECP and VDP run on every S-channel granted too).
    Bridge(BridgeArgs),
    /// Run weft's EVB station on an interface: EVB TLV, ECP, VDP and CDCP (and EVB TLV, ECP
    /// and VDP on every S-channel granted).
    Station(StationArgs),
    /// Send one JSON request to a running bridge or station and print the answer.
    Ctl(CtlArgs),
}

/// What both roles take.
#[derive(Debug, Args)]
struct CommonArgs {
    /// The interface (in this network namespace).
    #[arg(long, value_name = "IF")]
    iface: String,
    /// The control socket (JSON lines: status, associate, preassociate, preassociate_rr,
    /// deassociate, channels). A station's VSI requests take "scid" (default 1: the default
    /// channel) for a granted S-channel.
    #[arg(long, value_name = "PATH", alias = "status-socket")]
    control: Option<PathBuf>,
    /// ECP retries R (0-7).
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u8,
    /// ECP acknowledgement timer exponent RTE: 10 us x 2^N.
    #[arg(long, value_name = "N", default_value_t = 14)]
    rte: u8,
    /// VDP resource-wait exponent RWD.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rwd: u8,
    /// VDP keep-alive exponent RKA.
    #[arg(long, value_name = "N", default_value_t = 20)]
    rka: u8,
    /// Do not offer (bridge) or ask for (station) reflective relay.
    #[arg(long)]
    no_reflective_relay: bool,
    /// The most S-channels, the default one included (CDCP ChnCap).
    #[arg(long, value_name = "N", default_value_t = 167)]
    chn_cap: u16,
}

impl CommonArgs {
    fn timing(&self) -> Result<Timing> {
        if self.retries > 7 || [self.rte, self.rwd, self.rka].iter().any(|&e| e > 31) {
            bail!("--retries is 0-7; --rte, --rwd and --rka are 0-31");
        }
        Ok(Timing {
            max_retries: self.retries,
            rte: self.rte,
            rwd: self.rwd,
            rka: self.rka,
        })
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("decider").required(true).args(["policy", "decide"]))]
struct BridgeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Decide from a local TOML file of VSI types (`[[vsi_type]] type_id, type_version, vlan`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Ask the controller at URL (`POST /weft/v1/vdp/decide`, docs/vsi.md).
    #[arg(long, value_name = "URL", requires = "token_file")]
    decide: Option<String>,
    /// The agent secret for --decide.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// This bridge's name in the controller's records (default: the host name).
    #[arg(long, value_name = "NAME")]
    bridge_name: Option<String>,
    /// Run CDCP and grant S-channels these S-VLANs (e.g. `100-103,200`).
    #[arg(long, value_name = "LIST")]
    cdcp_svids: Option<String>,
    /// Gate a `weft switch` through its control socket: a VSI's (MAC, VLAN) filters are let
    /// in (`associate_vsi`) on its S-channel (IF.sSVID, on the station port named like the
    /// interface) once it associates, and shut out when it de-associates. With CDCP, every
    /// channel change sets the port's S-channels (`set_s_channels`): SVID 1 and each SVID
    /// granted, with reflective relay as offered.
    #[arg(long, value_name = "PATH")]
    switch_socket: Option<PathBuf>,
    /// The switch's name for the default S-channel (SVID 1) the VSIs are on (default: IF.s1,
    /// the interface's default channel on a station port named like the interface). Other
    /// channels are always IF.sSVID.
    #[arg(long, value_name = "NAME", requires = "switch_socket")]
    switch_channel: Option<String>,
    /// The logical switch of a profile's VLAN: `VID=SWITCH`, or `SWITCH` for every VLAN not
    /// named otherwise (repeatable). With --decide the controller's answer names the network
    /// instead: its logical switch, named by the network's id, is made when first needed.
    #[arg(long, value_name = "VID=SWITCH", requires = "switch_socket")]
    switch_network: Vec<String>,
}

#[derive(Debug, Args)]
struct StationArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The S-channels to ask for at start, by SCID (e.g. `2,3`).
    #[arg(long, value_name = "LIST")]
    channels: Option<String>,
    /// Program a host `weft switch` through its control socket: every channel change sets
    /// the S-channels (`set_s_channels`) of its uplink named like the interface to the
    /// granted channels that --channel-network names.
    #[arg(long, value_name = "PATH")]
    switch_socket: Option<PathBuf>,
    /// The physical network an S-channel carries on the host switch's uplink, and its relay
    /// (default veb): `SCID=PHYSNET[:veb|vepa]` (repeatable). The SCID is asked for at start,
    /// with --channels.
    #[arg(long, value_name = "SCID=PHYSNET", requires = "switch_socket")]
    channel_network: Vec<ChannelNetworkArg>,
    /// Keep the VSIs the station is asked to hold, and the S-channels it asks for, in this
    /// JSON file (written atomically at every change), and after a restart ask the bridge for
    /// them again as soon as their channel is up, so that the bridge, which ends a VSI once
    /// its keep-alives stop, never notices. A file that does not read is moved to PATH.bad.
    /// Put it where a reboot clears it, as the reboot ends the VMs (e.g.
    /// /run/weft/evb-station-IF.json). Without it the station forgets its VSIs when it stops.
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CtlArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH")]
    control: PathBuf,
    /// The request, e.g. '{"op":"status"}' (default).
    #[arg(value_name = "JSON", default_value = r#"{"op":"status"}"#)]
    request: String,
}

/// Runs `weft evb ...`.
pub(crate) fn run(args: EvbArgs) -> Result<()> {
    match args.command {
        EvbCommand::Bridge(bridge) => run_daemon(bridge_options(bridge)?),
        EvbCommand::Station(station) => run_daemon(station_options(station)?),
        EvbCommand::Ctl(ctl) => run_ctl(&ctl.control, &ctl.request),
    }
}

/// `100-103,200` -> [100, 101, 102, 103, 200].
fn parse_list(text: &str, what: &str) -> Result<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<u16>()
                .with_context(|| format!("{what}: {s:?} is not a number"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    bail!("{what}: {part} is an empty range");
                }
                out.extend(low..=high);
            }
            None => out.push(number(part)?),
        }
    }
    Ok(out)
}

fn bridge_options(args: BridgeArgs) -> Result<Options> {
    let timing = args.common.timing()?;
    let decider = match (&args.policy, &args.decide) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Decider::Local(
                LocalPolicy::from_toml(&text)
                    .map_err(|err| anyhow!("{}: {err}", path.display()))?,
            )
        }
        (None, Some(url)) => {
            let token_file = args
                .token_file
                .as_deref()
                .ok_or_else(|| anyhow!("--decide needs --token-file"))?;
            let secret = std::fs::read_to_string(token_file)
                .with_context(|| format!("cannot read {}", token_file.display()))?;
            let bridge = match &args.bridge_name {
                Some(name) => name.clone(),
                None => nix::unistd::gethostname()
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .unwrap_or_else(|| "bridge".into()),
            };
            // The controller must answer within the resource-wait delay T(RWD), after which
            // the bridge refuses on its own; leave room for the answer to travel.
            let timeout = timing.resource_wait().mul_f64(0.75);
            Decider::Remote(Box::new(DecideClient::new(
                url,
                &secret,
                &bridge,
                &args.common.iface,
                timeout,
            )))
        }
        (None, None) => bail!("give --policy FILE or --decide URL"),
    };
    let switch = match &args.switch_socket {
        Some(socket) => {
            let mut networks = BTreeMap::new();
            let mut default_network = None;
            for entry in &args.switch_network {
                match entry.split_once('=') {
                    Some((vid, name)) => {
                        let vid: u16 = vid
                            .trim()
                            .parse()
                            .ok()
                            .filter(|vid| *vid <= 4094)
                            .with_context(|| {
                                format!("--switch-network {entry:?}: VID is 0-4094")
                            })?;
                        networks.insert(vid, name.trim().to_owned());
                    }
                    None => default_network = Some(entry.trim().to_owned()),
                }
            }
            if networks.is_empty() && default_network.is_none() && args.decide.is_none() {
                bail!(
                    "--switch-socket with --policy needs at least one --switch-network (with \
                     --decide the controller's profile names the network)"
                );
            }
            Some(SwitchGlue {
                socket: socket.clone(),
                port: args.common.iface.clone(),
                channel: args
                    .switch_channel
                    .clone()
                    .unwrap_or_else(|| format!("{}.s1", args.common.iface)),
                networks,
                default_network,
            })
        }
        None => None,
    };
    let cdcp = match &args.cdcp_svids {
        Some(list) => Some(CdcpConfig {
            chn_cap: args.common.chn_cap,
            svids: parse_list(list, "--cdcp-svids")?,
        }),
        None => None,
    };
    Ok(Options {
        iface: args.common.iface.clone(),
        role: Role::Bridge,
        timing,
        reflective_relay: !args.common.no_reflective_relay,
        cdcp,
        decider,
        control: args.common.control,
        channels: Vec::new(),
        switch,
        uplink: None,
        state_file: None,
    })
}

fn station_options(args: StationArgs) -> Result<Options> {
    let mut channels = match &args.channels {
        Some(list) => parse_list(list, "--channels")?,
        None => Vec::new(),
    };
    let mut networks = BTreeMap::new();
    for arg in args.channel_network {
        if networks.insert(arg.scid, arg.network).is_some() {
            bail!("--channel-network names SCID {} twice", arg.scid);
        }
    }
    // The channels with a network are asked for too.
    for &scid in networks.keys() {
        if !channels.contains(&scid) {
            channels.push(scid);
        }
    }
    let uplink = args
        .switch_socket
        .map(|socket| UplinkGlue { socket, networks });
    Ok(Options {
        iface: args.common.iface.clone(),
        role: Role::Station,
        timing: args.common.timing()?,
        reflective_relay: !args.common.no_reflective_relay,
        cdcp: Some(CdcpConfig {
            chn_cap: args.common.chn_cap,
            svids: Vec::new(),
        }),
        decider: Decider::Local(LocalPolicy::default()),
        control: args.common.control,
        channels,
        switch: None,
        uplink,
        state_file: args.state_file,
    })
}

/// Runs a bridge or station until SIGTERM or SIGINT.
fn run_daemon(options: Options) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    // One thread: the engines, the socket and the control requests share one loop.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let shutdown = crate::server_cmd::stop_signal()?;
        evbd::run(options, shutdown)
            .await
            .map_err(anyhow::Error::from)
    })
}

/// Sends one request line and prints the answer line.
fn run_ctl(control: &Path, request: &str) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(request).context("the request is not JSON")?;
    let mut stream = UnixStream::connect(control)
        .with_context(|| format!("cannot connect to {}", control.display()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .context("cannot set a timeout")?;
    writeln!(stream, "{value}").context("cannot send the request")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("no answer")?;
    let answer: serde_json::Value =
        serde_json::from_str(&line).context("the answer is not JSON")?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    if answer.get("error").is_some() {
        bail!("the daemon refused the request");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use evbd::schannels::{ChannelNetwork, Relay};

    use super::*;

    /// `weft evb ...` alone, for parsing.
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        evb: EvbArgs,
    }

    fn station(args: &[&str]) -> Result<Options> {
        let cli = Cli::try_parse_from(["evb", "station", "--iface", "eth0"].iter().chain(args))?;
        match cli.evb.command {
            EvbCommand::Station(station) => station_options(station),
            other => bail!("not a station: {other:?}"),
        }
    }

    #[test]
    fn test_station_channel_networks() {
        let options = station(&[
            "--channels",
            "3,2",
            "--switch-socket",
            "/run/sw.sock",
            "--channel-network",
            "4=storage:vepa",
            "--channel-network",
            "2=tenant",
        ])
        .unwrap();
        // The channels with a network are asked for too.
        assert_eq!(options.channels, [3, 2, 4]);
        let uplink = options.uplink.unwrap();
        assert_eq!(uplink.socket, Path::new("/run/sw.sock"));
        assert_eq!(
            uplink.networks,
            BTreeMap::from([
                (
                    2,
                    ChannelNetwork {
                        physical_network: "tenant".into(),
                        relay: Relay::Veb
                    }
                ),
                (
                    4,
                    ChannelNetwork {
                        physical_network: "storage".into(),
                        relay: Relay::Vepa
                    }
                ),
            ])
        );
        assert!(station(&[]).unwrap().uplink.is_none());
        // A network needs the switch to program, an SCID is named once, and it is not 1.
        assert!(station(&["--channel-network", "2=a"]).is_err());
        let twice = ["--switch-socket", "/s", "--channel-network", "2=a"];
        assert!(station(&[&twice[..], &["--channel-network", "2=b"]].concat()).is_err());
        assert!(station(&["--switch-socket", "/s", "--channel-network", "1=a"]).is_err());
    }

    #[test]
    fn test_lists_parse() {
        assert_eq!(
            parse_list("100-103,200", "x").unwrap(),
            [100, 101, 102, 103, 200]
        );
        assert_eq!(parse_list(" 2 , 3 ", "x").unwrap(), [2, 3]);
        assert!(parse_list("5-3", "x").is_err());
        assert!(parse_list("a", "x").is_err());
        assert!(parse_list("", "x").unwrap().is_empty());
    }
}
