//! `weft switch`: runs the switch daemon (`switch::daemon`), and `weft switch ctl`, the
//! command-line client of its control socket.

use std::{
    fmt::Write as _,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use serde_json::{Map, Value, json};
use switch::{
    daemon::{Client, ClientError, DEFAULT_CONTROL_PATH, Daemon, PortType, SwitchConfig},
    tables::RelayMode,
};

/// `weft switch`: the daemon, or with `ctl` its client.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SwitchArgs {
    /// TOML file listing switches, ports and records to start with (default: start empty).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The control socket to listen on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONTROL_PATH)]
    control: PathBuf,
    #[command(subcommand)]
    command: Option<SwitchCommand>,
}

#[derive(Debug, Subcommand)]
enum SwitchCommand {
    /// Talk to a running `weft switch` through its control socket.
    Ctl(CtlArgs),
}

#[derive(Debug, Args)]
struct CtlArgs {
    /// The daemon's control socket.
    #[arg(
        long,
        value_name = "PATH",
        default_value = DEFAULT_CONTROL_PATH,
        global = true
    )]
    control: PathBuf,
    /// Print the result as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    op: CtlOp,
}

#[derive(Debug, Subcommand)]
enum CtlOp {
    /// Show the whole configuration: switches, ports, records.
    List,
    /// Show per-port packet and byte counts and drops by reason.
    Counters,
    /// Show the learned MAC addresses.
    Macs,
    /// Show whether each port's device is open and working.
    Status,
    /// Replace the whole configuration with FILE (TOML like the daemon's file, or JSON in the
    /// shape `list --json` prints); ports whose device is unchanged keep it.
    Replace {
        /// The configuration file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Add a logical switch.
    AddSwitch {
        /// Its name.
        name: String,
        /// The host-local VLAN id (1-4094).
        #[arg(long, value_name = "N")]
        local_vlan: String,
        /// local | flat:PHYSNET | vlan:PHYSNET:VID | vxlan:VNI | gre:KEY | nvgre:VSID.
        #[arg(long, value_name = "SEGMENT")]
        segment: String,
        /// A remote endpoint that gets broadcast and unknown unicast (repeatable).
        #[arg(long, value_name = "IP")]
        flood: Vec<String>,
        /// The most MAC addresses it learns.
        #[arg(long, value_name = "N")]
        mac_limit: Option<String>,
    },
    /// Remove a logical switch that no port or record uses.
    RemoveSwitch {
        /// Its name.
        name: String,
    },
    /// Add a port and open its device.
    AddPort(AddPort),
    /// Remove a port and close its device.
    RemovePort {
        /// Its name.
        name: String,
    },
    /// Add a lookup record: a tenant address behind a remote endpoint.
    AddRecord {
        /// The logical switch.
        #[arg(long)]
        switch: String,
        /// The tenant IP.
        #[arg(long)]
        ip: String,
        /// The tenant MAC.
        #[arg(long)]
        mac: String,
        /// The remote endpoint.
        #[arg(long)]
        remote: String,
    },
    /// Remove a switch's records for a MAC, an IP, or both.
    RemoveRecord {
        /// The logical switch.
        #[arg(long)]
        switch: String,
        /// The tenant MAC.
        #[arg(long, required_unless_present = "ip")]
        mac: Option<String>,
        /// The tenant IP.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Replace the S-channels of a station port or an uplink (its device stays open), e.g.
    /// '[{"svid":1,"reflective_relay":true},{"svid":20}]' for a station port or
    /// '[{"svid":20,"physical_network":"evb2","relay":"veb"}]' for an uplink.
    SetSChannels {
        /// The port.
        port: String,
        /// The whole list, as JSON ('[]' for none).
        #[arg(value_name = "JSON")]
        s_channels: String,
    },
    /// Replace a switch's flood list (no IPs: flood to no remote endpoint).
    SetFlood {
        /// The logical switch.
        #[arg(long)]
        switch: String,
        /// The remote endpoints.
        #[arg(value_name = "IP")]
        flood: Vec<String>,
    },
    /// Send one request given as JSON, e.g. '{"op":"list"}', and print its result.
    Request {
        /// The request.
        #[arg(value_name = "JSON")]
        request: String,
    },
}

#[derive(Debug, Args)]
struct AddPort {
    /// The port's name (for tap and uplink ports, the interface's).
    #[arg(required_unless_present = "body")]
    name: Option<String>,
    /// tap | uplink | vxlan | gre | memory.
    #[arg(long = "type", value_name = "TYPE", required_unless_present = "body")]
    kind: Option<String>,
    /// tap/memory: the logical switch.
    #[arg(long)]
    switch: Option<String>,
    /// tap/memory: the VM's MAC.
    #[arg(long)]
    mac: Option<String>,
    /// tap/memory: one of the VM's IPs (repeatable).
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<String>,
    /// tap/memory: an extra MAC and prefix the VM may send from (repeatable).
    #[arg(long = "allowed-pair", value_name = "MAC=PREFIX")]
    allowed_pairs: Vec<String>,
    /// tap/memory: no anti-spoofing.
    #[arg(long)]
    no_port_security: bool,
    /// tap: move the TAP into this named network namespace.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// tap: its name in there (default eth0).
    #[arg(long, value_name = "IFNAME")]
    netns_ifname: Option<String>,
    /// uplink: the physical network it serves.
    #[arg(long, value_name = "NAME")]
    physical_network: Option<String>,
    /// vxlan/gre: this host's underlay address.
    #[arg(long, value_name = "IP")]
    local_ip: Option<String>,
    /// vxlan: the UDP port (default 4789).
    #[arg(long, value_name = "PORT")]
    udp_port: Option<String>,
    /// vxlan: how many UDP source ports to send from, picked per flow (1-256, default 16).
    #[arg(long, value_name = "N")]
    source_ports: Option<String>,
    /// The whole port as JSON in the config file's shape, instead of the flags above.
    #[arg(long, value_name = "JSON", conflicts_with_all = [
        "name", "kind", "switch", "mac", "ips", "allowed_pairs", "no_port_security", "netns",
        "netns_ifname", "physical_network", "local_ip", "udp_port", "source_ports",
    ])]
    body: Option<String>,
}

/// Runs `weft switch ...`.
pub(crate) fn run(args: SwitchArgs) -> Result<()> {
    match args.command {
        Some(SwitchCommand::Ctl(ctl)) => run_ctl(ctl, &mut std::io::stdout().lock()),
        None => run_daemon(args.config.as_deref(), &args.control),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
fn run_daemon(config: Option<&Path>, control: &Path) -> Result<()> {
    let config = match config {
        None => SwitchConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            SwitchConfig::from_toml(&text).map_err(|err| anyhow!("{}: {err}", path.display()))?
        }
    };
    // Blocked before the daemon's threads start, so they inherit the mask and the signals
    // wait for `SigSet::wait` here instead of killing the process mid-change.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .context("cannot block SIGTERM and SIGINT")?;
    let daemon = Daemon::start(config, control)?;
    eprintln!("weft switch: listening on {}", control.display());
    let signal = signals.wait().context("waiting for a signal")?;
    eprintln!("weft switch: {}, stopping", signal.as_str());
    daemon.shutdown();
    Ok(())
}

fn run_ctl(ctl: CtlArgs, out: &mut impl Write) -> Result<()> {
    let request = match &ctl.op {
        CtlOp::List => json!({"op": "list"}),
        CtlOp::Counters => json!({"op": "counters"}),
        CtlOp::Macs => json!({"op": "macs"}),
        CtlOp::Status => json!({"op": "status"}),
        CtlOp::Replace { file } => json!({"op": "replace", "config": read_config(file)?}),
        CtlOp::AddSwitch {
            name,
            local_vlan,
            segment,
            flood,
            mac_limit,
        } => {
            let mut switch = json!({
                "name": name,
                "local_vlan": number(local_vlan),
                "segment": segment,
                "flood": flood,
            });
            if let Some(limit) = mac_limit {
                switch["mac_limit"] = number(limit);
            }
            json!({"op": "add_switch", "switch": switch})
        }
        CtlOp::RemoveSwitch { name } => json!({"op": "remove_switch", "name": name}),
        CtlOp::AddPort(port) => json!({"op": "add_port", "port": port_body(port)?}),
        CtlOp::RemovePort { name } => json!({"op": "remove_port", "name": name}),
        CtlOp::AddRecord {
            switch,
            ip,
            mac,
            remote,
        } => json!({"op": "add_record", "record": {
            "switch": switch, "ip": ip, "mac": mac, "remote": remote,
        }}),
        CtlOp::RemoveRecord { switch, mac, ip } => {
            let mut request = json!({"op": "remove_record", "switch": switch});
            if let Some(mac) = mac {
                request["mac"] = json!(mac);
            }
            if let Some(ip) = ip {
                request["ip"] = json!(ip);
            }
            request
        }
        CtlOp::SetFlood { switch, flood } => {
            json!({"op": "set_flood", "switch": switch, "flood": flood})
        }
        CtlOp::SetSChannels { port, s_channels } => {
            let list: Value = serde_json::from_str(s_channels)
                .map_err(|err| anyhow!("s_channels: not valid JSON: {err}"))?;
            json!({"op": "set_s_channels", "port": port, "s_channels": list})
        }
        CtlOp::Request { request } => serde_json::from_str(request)
            .map_err(|err| anyhow!("request: not valid JSON: {err}"))?,
    };
    let mut client = Client::connect(&ctl.control).with_context(|| {
        format!(
            "cannot connect to the control socket {} (is `weft switch` running?)",
            ctl.control.display()
        )
    })?;
    let result = match client.call(&request) {
        Ok(result) => result,
        Err(ClientError::Refused(message)) => bail!("{message}"),
        Err(err) => return Err(err.into()),
    };
    if ctl.json {
        writeln!(out, "{result}")?;
        return Ok(());
    }
    let text = match &ctl.op {
        CtlOp::List => show_list(&result)?,
        CtlOp::Counters => show_counters(&result),
        CtlOp::Macs => show_macs(&result),
        CtlOp::Status => show_status(&result),
        CtlOp::Request { .. } => format!("{:#}\n", result),
        _ => show_change(&result),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// A configuration file for `replace`: JSON if it reads as JSON, else TOML (read here, so a
/// syntax error names the line and a bad field the file; the daemon checks the rest and names
/// the field). Sent as written: what it leaves out (`vsi`, a port's `s_channels`) the daemon
/// keeps.
fn read_config(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        return Ok(value);
    }
    let value = SwitchConfig::value_from_toml(&text)
        .and_then(|value| SwitchConfig::read_fields(&value).map(|_| value))
        .map_err(|err| anyhow!("{}: {err}", path.display()))?;
    Ok(value)
}

/// A number as JSON if it is one, else the text as given (the daemon names the field when it
/// refuses it).
fn number(text: &str) -> Value {
    text.parse::<u64>()
        .map_or_else(|_| json!(text), |n| json!(n))
}

fn port_body(port: &AddPort) -> Result<Value> {
    if let Some(body) = &port.body {
        return serde_json::from_str(body).map_err(|err| anyhow!("--body: not valid JSON: {err}"));
    }
    let mut map = Map::new();
    let mut put = |key: &str, value: Value| {
        map.insert(key.to_owned(), value);
    };
    put("name", json!(port.name));
    put("type", json!(port.kind));
    for (key, value) in [
        ("switch", &port.switch),
        ("mac", &port.mac),
        ("netns", &port.netns),
        ("netns_ifname", &port.netns_ifname),
        ("physical_network", &port.physical_network),
        ("local_ip", &port.local_ip),
    ] {
        if let Some(value) = value {
            put(key, json!(value));
        }
    }
    if let Some(udp_port) = &port.udp_port {
        put("port", number(udp_port));
    }
    if let Some(source_ports) = &port.source_ports {
        put("source_ports", number(source_ports));
    }
    if !port.ips.is_empty() {
        put("ips", json!(port.ips));
    }
    if !port.allowed_pairs.is_empty() {
        let pairs = port
            .allowed_pairs
            .iter()
            .map(|pair| {
                let (mac, ip) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--allowed-pair {pair:?}: expected MAC=PREFIX"))?;
                Ok(json!({"mac": mac, "ip": ip}))
            })
            .collect::<Result<Vec<_>>>()?;
        put("allowed_pairs", Value::Array(pairs));
    }
    if port.no_port_security {
        put("port_security", json!(false));
    }
    Ok(Value::Object(map))
}

fn show_change(result: &Value) -> String {
    let generation = &result["generation"];
    if result["changed"] == json!(true) {
        format!("ok: generation {generation}\n")
    } else {
        format!("ok: nothing to change (generation {generation})\n")
    }
}

fn show_list(result: &Value) -> Result<String> {
    let config = SwitchConfig::from_value(result)
        .map_err(|err| anyhow!("the daemon's list is not a configuration: {err}"))?;
    let mut switches = Table::new(&[
        "SWITCH",
        "LOCAL_VLAN",
        "SEGMENT",
        "FLOOD",
        "MAC_LIMIT",
        "DHCP",
    ]);
    for s in &config.switches {
        let dhcp: Vec<String> = s
            .dhcp
            .iter()
            .map(|d| format!("{} server {}", d.cidr, d.server_ip))
            .collect();
        switches.row(vec![
            s.name.clone(),
            s.local_vlan.to_string(),
            s.segment.to_string(),
            join(&s.flood),
            s.mac_limit.to_string(),
            dhcp.join(", "),
        ]);
    }
    let mut ports = Table::new(&["PORT", "TYPE", "SWITCH", "MAC", "IPS", "DETAILS"]);
    for p in &config.ports {
        let (switch, mac, ips, details) = match &p.kind {
            PortType::Tap { vm, .. } | PortType::Memory { vm, .. } => {
                let mut details = Vec::new();
                if let PortType::Tap {
                    netns: Some(netns), ..
                } = &p.kind
                {
                    details.push(format!("netns {} as {}", netns.name, netns.ifname));
                }
                if !vm.port_security {
                    details.push("no port security".to_owned());
                }
                for (mac, net) in &vm.allowed_pairs {
                    details.push(format!("allows {mac} {net}"));
                }
                (
                    vm.switch.clone(),
                    vm.mac.to_string(),
                    join(&vm.ips),
                    details.join(", "),
                )
            }
            PortType::Uplink {
                physical_network,
                relay,
                channels,
            } => {
                let vepa = |relay: RelayMode| {
                    if relay == RelayMode::Vepa {
                        ", vepa"
                    } else {
                        ""
                    }
                };
                let mut details = format!("physical network {physical_network}{}", vepa(*relay));
                for c in channels {
                    let _ = write!(
                        details,
                        "; S-channel {}: physical network {}{}",
                        c.svid,
                        c.physical_network,
                        vepa(c.relay)
                    );
                }
                (String::new(), String::new(), String::new(), details)
            }
            PortType::Station {
                channels,
                vdp_gating,
            } => (
                String::new(),
                String::new(),
                String::new(),
                format!(
                    "S-channels {}{}",
                    channels
                        .iter()
                        .map(|c| if c.reflective_relay {
                            format!("{} (rr)", c.svid)
                        } else {
                            c.svid.to_string()
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    if *vdp_gating { ", VDP gating" } else { "" }
                ),
            ),
            PortType::Vxlan {
                local_ip,
                port,
                source_ports,
            } => (
                String::new(),
                String::new(),
                String::new(),
                format!(
                    "local {local_ip} udp {port}, {source_ports} source port{}",
                    if *source_ports == 1 { "" } else { "s" }
                ),
            ),
            PortType::Gre { local_ip } => (
                String::new(),
                String::new(),
                String::new(),
                format!("local {local_ip}"),
            ),
        };
        ports.row(vec![
            p.name.clone(),
            p.kind.to_string(),
            switch,
            mac,
            ips,
            details,
        ]);
        // A trunk's subports, each under its table name (`PORT.VLAN`).
        for sub in p.kind.subports() {
            let mut details = vec![format!("vlan {} of {}", sub.vlan, p.name)];
            if !sub.vm.port_security {
                details.push("no port security".to_owned());
            }
            for (mac, net) in &sub.vm.allowed_pairs {
                details.push(format!("allows {mac} {net}"));
            }
            ports.row(vec![
                switch::daemon::SubportSpec::table_name(&p.name, sub.vlan),
                "subport".to_owned(),
                sub.vm.switch.clone(),
                sub.vm.mac.to_string(),
                join(&sub.vm.ips),
                details.join(", "),
            ]);
        }
    }
    let mut records = Table::new(&["RECORD SWITCH", "IP", "MAC", "REMOTE"]);
    for r in &config.records {
        records.row(vec![
            r.switch.clone(),
            r.ip.to_string(),
            r.mac.to_string(),
            r.remote.to_string(),
        ]);
    }
    Ok(format!("{switches}\n{ports}\n{records}"))
}

fn show_counters(result: &Value) -> String {
    let mut ports = Table::new(&["PORT", "RX_PACKETS", "RX_BYTES", "TX_PACKETS", "TX_BYTES"]);
    for port in result["ports"].as_array().into_iter().flatten() {
        ports.row(
            ["name", "rx_packets", "rx_bytes", "tx_packets", "tx_bytes"]
                .iter()
                .map(|key| text(&port[*key]))
                .collect(),
        );
    }
    let mut drops = Table::new(&["DROP_REASON", "PACKETS"]);
    for (reason, count) in result["drops"].as_object().into_iter().flatten() {
        drops.row(vec![reason.clone(), text(count)]);
    }
    let mut dhcp = Table::new(&["DHCP", "MESSAGES"]);
    for (outcome, count) in result["dhcp"].as_object().into_iter().flatten() {
        dhcp.row(vec![outcome.clone(), text(count)]);
    }
    format!("{ports}\n{drops}\n{dhcp}")
}

fn show_status(result: &Value) -> String {
    let mut ports = Table::new(&["PORT", "TYPE", "UP", "REASON"]);
    for port in result["ports"].as_array().into_iter().flatten() {
        ports.row(vec![
            text(&port["name"]),
            text(&port["type"]),
            if port["up"] == json!(true) {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
            text(&port["reason"]),
        ]);
    }
    ports.to_string()
}

fn show_macs(result: &Value) -> String {
    let mut macs = Table::new(&["SWITCH", "MAC", "WHERE", "AGE"]);
    for entry in result.as_array().into_iter().flatten() {
        let place = ["port", "uplink", "remote"]
            .iter()
            .find_map(|key| entry.get(*key).map(|v| format!("{key} {}", text(v))))
            .unwrap_or_default();
        let age = entry["age_ms"].as_u64().unwrap_or(0);
        macs.row(vec![
            text(&entry["switch"]),
            text(&entry["mac"]),
            place,
            format!("{}.{:03}s", age / 1000, age % 1000),
        ]);
    }
    macs.to_string()
}

/// A JSON scalar as plain text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Left-aligned columns, two spaces apart.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{cell:<width$}  ");
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_arguments_are_consistent() {
        use clap::Args as _;
        SwitchArgs::augment_args(clap::Command::new("switch")).debug_assert();
    }

    #[test]
    fn test_table_aligns_columns() {
        let mut table = Table::new(&["A", "LONGER"]);
        table.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(table.to_string(), "A          LONGER\nwide cell  x\n");
    }

    #[test]
    fn test_numbers_pass_as_numbers_and_the_rest_as_text() {
        assert_eq!(number("12"), json!(12));
        assert_eq!(number("twelve"), json!("twelve"));
    }
}
