//! `weft lab demo`: the newcomer's tour. Two tenants with the same subnet (10.0.1.0/24) on the
//! same two hosts, a VM of each on each host, and the pings that must work and the ones that
//! must not: each tenant reaches its own VMs across hosts over VXLAN, the address both use
//! (10.0.1.12) answers each tenant from its own VM, and no tenant reaches the other's.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use serde_json::json;

use super::{ADMIN_CLOUD, DEMO_CLOUD, Progress, VmCreate, open_ready};
use crate::{Error, Result, api::Cloud};

/// One VM of the demo: name, tenant cloud, network, fixed address, host.
const VMS: [(&str, &str, &str, &str, &str); 4] = [
    ("blue1", ADMIN_CLOUD, "blue", "10.0.1.11", "h1"),
    ("blue2", ADMIN_CLOUD, "blue", "10.0.1.12", "h2"),
    ("red1", DEMO_CLOUD, "red", "10.0.1.21", "h1"),
    ("red2", DEMO_CLOUD, "red", "10.0.1.12", "h2"),
];

/// The checks: from, to, whose VM should answer (None: nobody may).
const CHECKS: [(&str, &str, Option<&str>); 5] = [
    ("blue1", "10.0.1.12", Some("blue2")),
    ("red1", "10.0.1.12", Some("red2")),
    ("red2", "10.0.1.21", Some("red1")),
    ("blue1", "10.0.1.21", None),
    ("red1", "10.0.1.11", None),
];

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The VM that pinged.
    pub from: String,
    /// The address it pinged.
    pub to: String,
    /// The VM that should have answered (None: nobody).
    pub expect: Option<String>,
    /// The VM that did (by the MAC in the pinging VM's neighbour table).
    pub answered: Option<String>,
}

impl Check {
    /// True when what happened is what must happen.
    pub fn passed(&self) -> bool {
        self.expect == self.answered
    }
}

/// Builds the demo in the lab in `dir` (what exists is kept) and runs the checks.
pub fn demo(dir: &Path, progress: &mut Progress<'_>) -> Result<Vec<Check>> {
    let (lab, state) = open_ready(dir)?;
    let hosts: Vec<String> = state
        .topology
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    if hosts.len() < 2 {
        return Err(Error::Failed(
            "the demo needs a lab with two hosts or more".into(),
        ));
    }
    let cloud = Cloud::new(&state.network_url)?;
    for tenant in [ADMIN_CLOUD, DEMO_CLOUD] {
        let token = cloud.token(state.cloud(tenant)?)?;
        let name = if tenant == ADMIN_CLOUD { "blue" } else { "red" };
        if cloud.network(&token, name).is_err() {
            let net = cloud.neutron_create(&token, "networks", "network", json!({"name": name}))?;
            let id = net.get("id").and_then(|v| v.as_str()).unwrap_or_default();
            cloud.neutron_create(
                &token,
                "subnets",
                "subnet",
                json!({"network_id": id, "name": format!("{name}-subnet"), "ip_version": 4,
                       "cidr": "10.0.1.0/24"}),
            )?;
            progress.step(format!(
                "tenant {tenant}: network {name}, subnet 10.0.1.0/24"
            ));
        }
    }
    let existing: Vec<String> = state.vms.iter().map(|v| v.name.clone()).collect();
    drop(lab);
    for (i, (name, tenant, network, ip, _)) in VMS.iter().enumerate() {
        if existing.iter().any(|v| v == name) {
            continue;
        }
        let host = &hosts[i % 2];
        let token = cloud.token(state.cloud(tenant)?)?;
        let net = cloud.network(&token, network)?;
        cloud.create_port(
            &token,
            json!({"network_id": net.id, "name": name, "fixed_ips": [{"ip_address": ip}]}),
        )?;
        let request = VmCreate {
            name: (*name).to_owned(),
            network: None,
            port: Some((*name).to_owned()),
            host: Some(host.clone()),
            cloud: (*tenant).to_owned(),
            vsi_type: None,
        };
        super::vm_create(dir, &request, progress)?;
    }
    let (lab, state) = open_ready(dir)?;
    drop(lab);
    let admin = cloud.token(state.cloud(ADMIN_CLOUD)?)?;
    let mut macs = Vec::new();
    for vm in &state.vms {
        if let Ok(port) = cloud.port(&admin, &vm.port_id) {
            macs.push((port.mac_address.to_lowercase(), vm.name.clone()));
        }
    }
    let mut checks = Vec::new();
    for (from, to, expect) in CHECKS {
        let vm = state
            .vms
            .iter()
            .find(|v| v.name == from)
            .ok_or_else(|| Error::Failed(format!("the demo VM {from} is missing")))?;
        // Forget earlier answers so the neighbour entry says who answered this time.
        let _ = in_vm(&vm.ns, &["ip", "neigh", "flush", "dev", "eth0"]);
        let replied =
            in_vm(&vm.ns, &["ping", "-c", "2", "-W", "2", "-q", to]).is_some_and(|(ok, _)| ok);
        let answered = if replied {
            in_vm(&vm.ns, &["ip", "neigh", "show", to]).and_then(|(_, text)| {
                let mac = text
                    .split_whitespace()
                    .skip_while(|w| *w != "lladdr")
                    .nth(1)?
                    .to_lowercase();
                macs.iter()
                    .find(|(m, _)| *m == mac)
                    .map(|(_, name)| name.clone())
                    .or_else(|| Some(format!("unknown {mac}")))
            })
        } else {
            None
        };
        checks.push(Check {
            from: from.to_owned(),
            to: to.to_owned(),
            expect: expect.map(str::to_owned),
            answered,
        });
    }
    Ok(checks)
}

/// Runs a command in a namespace; its success and output.
fn in_vm(ns: &str, args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Prints the checks as a table.
pub fn report(checks: &[Check], out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "\n  {:<6} {:<10} {:<22} was answered by",
        "from", "ping", "must be answered by"
    );
    for c in checks {
        let _ = writeln!(
            out,
            "  {:<6} {:<10} {:<22} {:<22} {}",
            c.from,
            c.to,
            c.expect.as_deref().unwrap_or("nobody"),
            c.answered.as_deref().unwrap_or("nobody"),
            if c.passed() { "ok" } else { "WRONG" }
        );
    }
}
