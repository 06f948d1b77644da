//! `weft agent`: the hypervisor agent. Watches the controller for this host's part of the
//! state, programs the local `weft switch` through its control socket, and reports heartbeats
//! and port status, until SIGINT or SIGTERM (which leave the switch forwarding as it is).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::Duration,
};

use agent::{AgentConfig, HostConfig, TunnelType, desired::DEFAULT_DHCP_LEASE_SECS};
use anyhow::{Context, Result, bail};
use clap::Args;
use switch::daemon::DEFAULT_CONTROL_PATH;

use crate::server_cmd::{init_logging, stop_signal};

/// `weft agent`'s flags.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// This host's name, as ports' `binding:host_id` names it.
    #[arg(long, value_name = "NAME")]
    host: String,
    /// The controller's networking API, e.g. http://192.0.2.10:9696.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The file holding the agent secret (the server's `<state_dir>/agent-token`).
    #[arg(long, value_name = "PATH")]
    token_file: PathBuf,
    /// This host's tunnel endpoint (underlay) address.
    #[arg(long, value_name = "IP")]
    tunnel_ip: IpAddr,
    /// Tunnel types this host terminates, comma separated: vxlan, gre, nvgre.
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        default_value = "vxlan"
    )]
    tunnel_types: Vec<TunnelType>,
    /// A physical network and the interface that reaches it; repeat for more.
    #[arg(long = "bridge-mapping", value_name = "PHYSNET:IFACE", value_parser = parse_mapping)]
    bridge_mappings: Vec<(String, String)>,
    /// A physical network (of a --bridge-mapping) whose uplink is a VEPA edge relay (802.1Qbg
    /// station): VM-to-VM traffic on it goes through the adjacent bridge. Repeatable.
    #[arg(long, value_name = "PHYSNET")]
    vepa: Vec<String>,
    /// A physical network served by an S-channel of an uplink, whose edge relay the EVB
    /// station daemon adds to the switch once CDCP grants the channel (`weft evb station
    /// --channel-network`): ports may be bound to it; the agent makes no uplink for it.
    /// Repeatable.
    #[arg(long, value_name = "PHYSNET")]
    channel_network: Vec<String>,
    /// How many outer UDP source ports the switch's VXLAN port spreads flows over (RFC 7348
    /// per-flow ports, for ECMP and RSS in the underlay); 1 sends everything from 4789, as an
    /// underlay filter on that port may need. Default: the switch's (16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    vxlan_source_ports: Option<u16>,
    /// The switch's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_PATH)]
    switch_socket: PathBuf,
    /// Seconds between heartbeats.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    report_interval: u64,
    /// The DHCP lease the switch hands out, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_DHCP_LEASE_SECS, value_parser = clap::value_parser!(u32).range(60..))]
    dhcp_lease_secs: u32,
}

/// `PHYSNET:IFACE`, both non-empty, the interface a valid Linux name.
fn parse_mapping(text: &str) -> Result<(String, String), String> {
    let Some((physnet, interface)) = text.split_once(':') else {
        return Err(format!("expected PHYSNET:IFACE, got {text:?}"));
    };
    if physnet.is_empty() {
        return Err(format!("{text:?}: the physical network is empty"));
    }
    let bad_interface = interface.is_empty()
        || interface.len() > 15
        || interface == "."
        || interface == ".."
        || interface
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad_interface {
        return Err(format!(
            "{text:?}: {interface:?} is not an interface name (1-15 bytes, no '/', ':' or spaces)"
        ));
    }
    Ok((physnet.to_owned(), interface.to_owned()))
}

impl AgentArgs {
    /// The agent's configuration: the flags checked, the token read.
    fn config(&self) -> Result<AgentConfig> {
        if self.host.trim().is_empty() {
            bail!("--host must not be empty");
        }
        if self.tunnel_ip.is_unspecified() || self.tunnel_ip.is_multicast() {
            bail!(
                "--tunnel-ip {}: must be this host's unicast address",
                self.tunnel_ip
            );
        }
        let mut bridge_mappings = BTreeMap::new();
        for (physnet, interface) in &self.bridge_mappings {
            if bridge_mappings
                .insert(physnet.clone(), interface.clone())
                .is_some()
            {
                bail!("--bridge-mapping: {physnet:?} is mapped twice");
            }
        }
        let mut interfaces = BTreeSet::new();
        for interface in bridge_mappings.values() {
            if !interfaces.insert(interface) {
                bail!("--bridge-mapping: interface {interface:?} serves two physical networks");
            }
        }
        for physnet in &self.vepa {
            if !bridge_mappings.contains_key(physnet) {
                bail!("--vepa {physnet}: no --bridge-mapping for that physical network");
            }
        }
        for physnet in &self.channel_network {
            if bridge_mappings.contains_key(physnet) {
                bail!("--channel-network {physnet}: it has a --bridge-mapping already");
            }
        }
        let token = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("cannot read the token file {}", self.token_file.display()))?;
        let token = token.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", self.token_file.display());
        }
        let host = HostConfig {
            host: self.host.clone(),
            tunnel_ip: self.tunnel_ip,
            tunnel_types: self.tunnel_types.iter().copied().collect(),
            bridge_mappings,
            vepa: self.vepa.iter().cloned().collect(),
            channel_networks: self.channel_network.iter().cloned().collect(),
            vxlan_source_ports: self.vxlan_source_ports,
            dhcp_lease_secs: self.dhcp_lease_secs,
        };
        let mut config = AgentConfig::new(
            host,
            self.server.clone(),
            token.to_owned(),
            self.switch_socket.clone(),
        );
        config.report_interval = Duration::from_secs(self.report_interval);
        Ok(config)
    }
}

/// Runs the agent until SIGINT or SIGTERM (then exits 0).
pub(crate) fn run(args: AgentArgs) -> Result<()> {
    let config = args.config()?;
    init_logging();
    // The agent is a handful of tasks waiting on sockets; two workers are plenty.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let stop = stop_signal()?;
        agent::run(config, stop).await.context("agent")
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: AgentArgs,
    }

    fn parse(extra: &[&str], token_file: &std::path::Path) -> Result<AgentConfig> {
        let mut argv = vec![
            "weft-agent",
            "--host",
            "h1",
            "--server",
            "http://127.0.0.1:9696",
            "--tunnel-ip",
            "192.0.2.1",
            "--token-file",
        ];
        let path = token_file.to_str().unwrap();
        argv.push(path);
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        cli.args.config()
    }

    #[test]
    fn flags_make_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\n").unwrap();
        let config = parse(
            &[
                "--tunnel-types",
                "vxlan,nvgre",
                "--bridge-mapping",
                "physnet1:pn1",
                "--bridge-mapping",
                "physnet2:pn2",
                "--report-interval",
                "5",
            ],
            &token,
        )
        .unwrap();
        assert_eq!(config.token, "abc");
        assert_eq!(
            config.host.tunnel_types,
            [TunnelType::Vxlan, TunnelType::Nvgre].into()
        );
        assert_eq!(config.host.bridge_mappings["physnet2"], "pn2");
        assert_eq!(config.report_interval, Duration::from_secs(5));
        assert_eq!(config.host.dhcp_lease_secs, 86_400);
        assert_eq!(
            config.switch_socket,
            std::path::Path::new(DEFAULT_CONTROL_PATH)
        );
        let defaults = parse(&[], &token).unwrap();
        assert_eq!(defaults.host.tunnel_types, [TunnelType::Vxlan].into());
    }

    #[test]
    fn bad_flags_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc").unwrap();
        let cases: [(&[&str], &str); 5] = [
            (
                &["--tunnel-types", "geneve"],
                "unknown tunnel type \"geneve\"",
            ),
            (&["--bridge-mapping", "physnet1"], "expected PHYSNET:IFACE"),
            (
                &["--bridge-mapping", "p:a", "--bridge-mapping", "p:b"],
                "\"p\" is mapped twice",
            ),
            (
                &["--bridge-mapping", "p:much-too-long-name"],
                "is not an interface name",
            ),
            (&["--report-interval", "0"], "report-interval"),
        ];
        for (flags, expected) in cases {
            let err = parse(flags, &token).unwrap_err().to_string();
            assert!(err.contains(expected), "{flags:?}: {err}");
        }
        std::fs::write(&token, " \n").unwrap();
        let err = parse(&[], &token).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
    }
}
