//! `weft lab` on real namespaces (root): `up` serves the real `openstack` CLI with both clouds,
//! runs a switch (and, once this weft has it, an agent) in every host, and `down` leaves
//! nothing behind — also after `up` was SIGKILLed half way and after a host's daemons died.
//!
//! Each test's lab has its own name (a letter and this process's id in base 36) and its own
//! management network in 198.19.0.0/16, so tests and test runs in parallel do not collide; a
//! drop guard runs `weft lab down`, so a failing test cleans up too.

use std::{
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// Why a test cannot run here, if it cannot.
fn cannot_run() -> Option<&'static str> {
    if !lab::netns::is_root() {
        return Some("not root");
    }
    if !Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("no `ip` (iproute2)");
    }
    None
}

/// The `openstack` executable: `WEFT_OPENSTACK_CLI`, else the repo's `.venv`.
fn openstack_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEFT_OPENSTACK_CLI") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/openstack");
    venv.exists().then_some(venv)
}

/// The `openstack` CLI, when this machine can run lab tests with it (else says why not).
fn lab_and_cli() -> Option<PathBuf> {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return None;
    }
    let cli = openstack_cli();
    if cli.is_none() {
        eprintln!("no openstack CLI: skipped");
    }
    cli
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// One test's lab: a working directory (clouds.yaml goes there) and the lab directory in it;
/// `weft lab down` on drop.
struct TestLab {
    name: String,
    work: tempfile::TempDir,
    management: String,
}

impl TestLab {
    /// A lab named `<tag><pid in base 36>` with management network number `slot` (0-9: one per
    /// test, as the tests run at once).
    fn new(tag: char, slot: u32) -> Self {
        let pid = std::process::id();
        let name = format!("{tag}{}", base36(pid));
        assert!(name.len() <= 6, "{name}");
        let third = (pid % 25) * 10 + slot;
        let lab = Self {
            name,
            work: tempfile::tempdir().unwrap(),
            management: format!("198.19.{third}.0/24"),
        };
        // Leftovers of an earlier run of this very name (a reused pid) would fail `up`.
        lab.weft(&["lab", "down", "--name", &lab.name]);
        let topology = format!(
            "name = \"{}\"\nmanagement = \"{}\"\n[[host]]\nname = \"h1\"\n[[host]]\nname = \"h2\"\n",
            lab.name, lab.management
        );
        fs::write(lab.work.path().join("topology.toml"), topology).unwrap();
        lab
    }

    fn dir(&self) -> PathBuf {
        self.work.path().join(".weft-lab")
    }

    fn controller(&self) -> String {
        let base = self.management.trim_end_matches(".0/24");
        format!("{base}.1")
    }

    /// Runs `weft ARGS` in the working directory.
    fn weft(&self, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(args)
            .current_dir(self.work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `weft ARGS` and insists it succeeds; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.weft(args);
        assert!(
            out.status.success(),
            "weft {} failed: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn up(&self) -> String {
        self.ok(&["lab", "up", "topology.toml"])
    }

    /// `openstack --os-cloud CLOUD ARGS` in the working directory.
    fn openstack(&self, cli: &Path, cloud: &str, args: &str) -> String {
        let out = Command::new(cli)
            .current_dir(self.work.path())
            .args(["--os-cloud", cloud])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openstack --os-cloud {cloud} {args}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// VSI type `id` version 1, named `name`, whose profile is network `network`
    /// (`weft vsi type create`).
    fn vsi_type(&self, id: u32, network: &str, name: &str) {
        let id = id.to_string();
        self.ok(&[
            "vsi",
            "--os-cloud",
            "weft",
            "type",
            "create",
            "--type-id",
            &id,
            "--type-version",
            "1",
            "--network",
            network,
            "--name",
            name,
        ]);
    }

    /// A VLAN provider network `name` (`physnet`, `vid`) and its subnet (`subnet`, `cidr`),
    /// made by the admin with the `openstack` CLI.
    fn vlan_network(
        &self,
        cli: &Path,
        (physnet, vid): (&str, u16),
        name: &str,
        (subnet, cidr): (&str, &str),
    ) {
        self.openstack(
            cli,
            "weft",
            &format!(
                "network create --provider-network-type vlan --provider-physical-network \
                 {physnet} --provider-segment {vid} {name}"
            ),
        );
        self.openstack(
            cli,
            "weft",
            &format!("subnet create --network {name} --subnet-range {cidr} {subnet}"),
        );
    }

    /// What the lab left: namespaces and links with its prefix, processes with its marker,
    /// /etc/netns entries, its directory and clouds.yaml.
    fn leftovers(&self) -> Vec<String> {
        let prefix = format!("{}-", self.name);
        let mut left: Vec<String> = ip_names(&["netns", "list"])
            .into_iter()
            .chain(ip_names(&["-o", "link", "show"]))
            .filter(|n| n.starts_with(&prefix))
            .collect();
        left.extend(marked(&self.name).iter().map(|p| format!("process {p}")));
        if let Ok(entries) = fs::read_dir("/etc/netns") {
            left.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix)),
            );
        }
        for path in [self.dir(), self.work.path().join("clouds.yaml")] {
            if path.exists() {
                left.push(path.display().to_string());
            }
        }
        left
    }

    fn assert_clean(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "lab {} left {left:?}", self.name);
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = self.weft(&["lab", "down", "--name", &self.name]);
    }
}

/// Names from `ip ARGS` output (first word, or the link name of `-o link show`).
fn ip_names(args: &[&str]) -> Vec<String> {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            if args.contains(&"link") {
                let name = line.split(": ").nth(1)?;
                Some(name.split('@').next().unwrap_or(name).to_owned())
            } else {
                line.split_whitespace().next().map(str::to_owned)
            }
        })
        .collect()
}

/// Live processes carrying `WEFT_LAB=name`.
fn marked(name: &str) -> Vec<u32> {
    let wanted = format!("WEFT_LAB={name}");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            !zombie
                && fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()))
        })
        .collect()
}

/// The command lines of the processes inside namespace `ns`.
fn commands_in(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
        .collect()
}

/// `GET http://addr/path`'s status line.
fn http_status(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

fn has_agent() -> bool {
    Command::new(WEFT)
        .args(["agent", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn lab_up_serves_both_clouds_and_down_leaves_nothing() {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return;
    }
    let lab = TestLab::new('u', 0);
    let out = lab.up();
    assert!(out.contains("is up"), "{out}");
    let controller = lab.controller();

    // The controller answers on the management bridge, both APIs.
    let status = http_status(&format!("{controller}:5000"), "/v3");
    assert!(status.contains(" 200"), "{status}");
    let status = http_status(&format!("{controller}:9696"), "/");
    assert!(status.starts_with("HTTP/1.1"), "{status}");

    // Every host runs its switch (and its agent, once this weft has one).
    for host in ["h1", "h2"] {
        let ns = format!("{}-{host}", lab.name);
        let commands = commands_in(&ns);
        assert!(
            commands.iter().any(|c| c.contains(" switch --control ")),
            "{ns}: {commands:?}"
        );
        if has_agent() {
            assert!(
                commands
                    .iter()
                    .any(|c| c.contains(" agent ") && c.contains(&format!("--host {host}"))),
                "{ns}: {commands:?}"
            );
        } else {
            eprintln!("this weft has no `weft agent` yet: the agent-process check is skipped");
        }
        // No default route anywhere: only the lab's own networks.
        let routes = Command::new("ip")
            .args(["-n", &ns, "route", "show", "default"])
            .output()
            .unwrap();
        assert!(routes.stdout.is_empty(), "{ns} has a default route");
    }
    let status = lab.ok(&["lab", "status"]);
    assert!(
        status.contains("(up)") && !status.contains("GONE"),
        "{status}"
    );

    match openstack_cli() {
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the openstack CLI part"
            );
            eprintln!("no openstack CLI (set WEFT_OPENSTACK_CLI): CLI part skipped");
        }
        Some(cli) => {
            let _ = lab.openstack(&cli, "weft", "network list");
            lab.openstack(&cli, "weft", "network create adminnet");
            lab.openstack(&cli, "weft-demo", "network create demonet");
            let admin = lab.openstack(&cli, "weft", "network list -f value -c Name");
            assert!(
                admin.contains("adminnet") && admin.contains("demonet"),
                "{admin}"
            );
            let demo = lab.openstack(&cli, "weft-demo", "network list -f value -c Name");
            assert_eq!(demo.trim(), "demonet", "the demo project sees only its own");
        }
    }

    let out = lab.ok(&["lab", "down"]);
    assert!(out.contains("lab removed"), "{out}");
    lab.assert_clean();
    // Idempotent.
    let out = lab.ok(&["lab", "down", "--name", &lab.name]);
    assert!(out.contains("nothing to remove"), "{out}");
}

#[test]
fn lab_down_cleans_up_after_up_was_killed() {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return;
    }
    let lab = TestLab::new('k', 1);
    let mut up = Command::new(WEFT)
        .args(["lab", "up", "topology.toml"])
        .current_dir(lab.work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed right after it started the server: bridges, hosts and a detached daemon exist,
    // the state is mid-way.
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.contains("weft server (pid");
        seen.push(line);
        if started {
            break;
        }
    }
    up.kill().unwrap();
    let _ = up.wait();
    assert!(
        seen.iter().any(|l| l.contains("weft server (pid")),
        "{seen:?}"
    );
    assert!(
        !marked(&lab.name).is_empty(),
        "the server should outlive a killed `lab up`"
    );
    assert!(!lab.leftovers().is_empty());

    lab.ok(&["lab", "down"]);
    lab.assert_clean();
}

#[test]
fn lab_down_after_a_hosts_processes_were_killed() {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return;
    }
    let lab = TestLab::new('h', 2);
    lab.up();
    let ns = format!("{}-h1", lab.name);
    let pids = String::from_utf8(
        Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!pids.trim().is_empty());
    for pid in pids.split_whitespace() {
        Command::new("kill").args(["-KILL", pid]).status().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = lab.ok(&["lab", "status"]);
    assert!(status.contains("GONE"), "{status}");

    lab.ok(&["lab", "down"]);
    lab.assert_clean();
}

#[test]
fn lab_up_refuses_a_bad_topology_naming_the_field() {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return;
    }
    let lab = TestLab::new('t', 3);
    fs::write(
        lab.work.path().join("bad.toml"),
        "name = \"x\"\nmanagement = \"10.1.0.0/24\"\n",
    )
    .unwrap();
    let out = lab.weft(&["lab", "up", "bad.toml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("name:"), "{stderr}");
    lab.assert_clean();
}

/// The whole VM lifecycle over real agents: two VMs on two hosts ping each other over VXLAN,
/// and a VM of the demo user's.
///
/// Ignored until `weft agent` (and the controller's binding and `weft switch`'s `replace`)
/// are merged: without an agent no port binds. The integrator enables it.
#[test]
fn lab_vms_get_addresses_and_reach_each_other() {
    let Some(cli) = lab_and_cli() else {
        return;
    };
    assert!(has_agent(), "this weft has no `weft agent`");
    let lab = TestLab::new('v', 4);
    lab.up();
    lab.openstack(&cli, "weft", "network create net1");
    lab.openstack(
        &cli,
        "weft",
        "subnet create --network net1 --subnet-range 10.0.1.0/24 sub1",
    );
    let ip1 = lab.ok(&[
        "lab",
        "vm",
        "create",
        "vm1",
        "--network",
        "net1",
        "--host",
        "h1",
    ]);
    let ip2 = lab.ok(&[
        "lab",
        "vm",
        "create",
        "vm2",
        "--network",
        "net1",
        "--host",
        "h2",
    ]);
    let ip1 = ip1
        .lines()
        .last()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let ip2 = ip2
        .lines()
        .last()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(ip1.starts_with("10.0.1."), "{ip1}");
    assert!(ip2.starts_with("10.0.1."), "{ip2}");
    lab.ok(&[
        "lab", "vm", "exec", "vm1", "--", "ping", "-c", "3", "-W", "2", &ip2,
    ]);
    lab.ok(&[
        "lab", "vm", "exec", "vm2", "--", "ping", "-c", "3", "-W", "2", &ip1,
    ]);
    // The exit code of the command comes through.
    let out = lab.weft(&["lab", "vm", "exec", "vm1", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let list = lab.ok(&["lab", "vm", "list"]);
    assert!(list.contains("vm1") && list.contains("vm2"), "{list}");
    // Migration: vm2 moves to h1 (its port's binding moves with it) and keeps its address.
    let gap = lab.ok(&["lab", "vm", "migrate", "vm2", "--to", "h1"]);
    assert!(gap.trim().ends_with(" ms"), "{gap}");
    lab.ok(&[
        "lab", "vm", "exec", "vm1", "--", "ping", "-c", "2", "-W", "2", &ip2,
    ]);
    let list = lab.ok(&["lab", "vm", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("vm2") && l.contains(" h1 ")),
        "{list}"
    );

    // A port of the demo user's, made by the CLI, used as it is and only unbound on delete.
    lab.openstack(&cli, "weft-demo", "network create dnet");
    lab.openstack(
        &cli,
        "weft-demo",
        "subnet create --network dnet --subnet-range 10.0.2.0/24 dsub",
    );
    lab.openstack(&cli, "weft-demo", "port create --network dnet dport");
    let ip3 = lab.ok(&[
        "lab",
        "vm",
        "create",
        "vm3",
        "--port",
        "dport",
        "--os-cloud",
        "weft-demo",
    ]);
    assert!(ip3.contains("10.0.2."), "{ip3}");
    lab.ok(&["lab", "vm", "delete", "vm3"]);
    let port = lab.openstack(&cli, "weft", "port show dport -f value -c device_id");
    assert!(port.trim().is_empty(), "dport still has a device: {port}");

    lab.ok(&["lab", "vm", "delete", "vm1"]);
    let ports = lab.openstack(&cli, "weft", "port list -f value -c Name");
    assert!(!ports.contains("vm1"), "{ports}");
    assert!(!ip_names(&["netns", "list"]).contains(&format!("{}-vm-vm1", lab.name)));

    lab.ok(&["lab", "down"]);
    lab.assert_clean();
}

/// The address `weft lab vm create` printed (its last line, `10.0.1.5/24`), without the prefix.
fn printed_ip(out: &str) -> String {
    out.lines()
        .last()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

impl TestLab {
    /// `weft lab vm exec VM -- ARGS`, its output and whether it succeeded.
    fn vm(&self, vm: &str, args: &[&str]) -> (bool, String) {
        let mut all = vec!["lab", "vm", "exec", vm, "--"];
        all.extend_from_slice(args);
        let out = self.weft(&all);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn pings(&self, vm: &str, ip: &str) -> bool {
        self.vm(vm, &["ping", "-c", "2", "-W", "2", ip]).0
    }

    /// The MAC the VM's neighbour table holds for `ip` (after traffic to it).
    fn neighbour(&self, vm: &str, ip: &str) -> String {
        let (_, out) = self.vm(vm, &["ip", "neigh", "show", ip]);
        out.split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    /// Starts `ping -i 0.1 -c COUNT ip` in a VM; the child prints the summary when done.
    fn ping_in_background(&self, vm: &str, ip: &str, count: u32) -> std::process::Child {
        self.ping_via(vm, None, ip, count)
    }

    /// The same through interface `iface` (`ping -I`).
    fn ping_via(&self, vm: &str, iface: Option<&str>, ip: &str, count: u32) -> std::process::Child {
        let through = iface.map(|i| vec!["-I", i]).unwrap_or_default();
        Command::new(WEFT)
            .args([
                "lab", "vm", "exec", vm, "--", "ping", "-n", "-i", "0.1", "-W", "1",
            ])
            .args(["-c", &count.to_string()])
            .args(through)
            .arg(ip)
            .current_dir(self.work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn lost_none(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "pings were lost:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 5 end to end with the stock CLI: VXLAN across hosts, a VLAN provider network across
/// the underlay, an overlapping second tenant kept apart, a deleted port that stops
/// traffic, and agent and controller restarts that lose no ping.
#[test]
fn lab_tenants_vlans_restarts_end_to_end() {
    let Some(cli) = lab_and_cli() else {
        return;
    };
    let lab = TestLab::new('e', 5);
    lab.up();
    let agents = lab.openstack(&cli, "weft", "network agent list -f value -c Host -c Alive");
    assert!(
        agents.contains("h1 True") && agents.contains("h2 True"),
        "{agents}"
    );

    // The admin's tenant network (VXLAN), with a port whose address the other tenant reuses.
    lab.openstack(&cli, "weft", "network create blue");
    lab.openstack(
        &cli,
        "weft",
        "subnet create --network blue --subnet-range 10.0.1.0/24 blue-sub",
    );
    lab.openstack(
        &cli,
        "weft",
        "port create --network blue --fixed-ip ip-address=10.0.1.50 blue-b2",
    );
    let b1 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "b1",
        "--network",
        "blue",
        "--host",
        "h1",
    ]));
    let b2 = printed_ip(&lab.ok(&[
        "lab", "vm", "create", "b2", "--port", "blue-b2", "--host", "h2",
    ]));
    assert_eq!(b2, "10.0.1.50");
    assert!(lab.pings("b1", &b2), "blue VMs on two hosts cannot talk");
    let mtu = lab.vm("b1", &["cat", "/sys/class/net/eth0/mtu"]).1;
    assert_eq!(mtu.trim(), "1450", "DHCP's MTU on a VXLAN network");

    // The demo tenant: the same subnet, the same address, on the same two hosts.
    lab.openstack(&cli, "weft-demo", "network create red");
    lab.openstack(
        &cli,
        "weft-demo",
        "subnet create --network red --subnet-range 10.0.1.0/24 red-sub",
    );
    lab.openstack(
        &cli,
        "weft-demo",
        "port create --network red --fixed-ip ip-address=10.0.1.50 red-d2",
    );
    lab.ok(&[
        "lab",
        "vm",
        "create",
        "d1",
        "--network",
        "red",
        "--host",
        "h1",
        "--os-cloud",
        "weft-demo",
    ]);
    let d2 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "d2",
        "--port",
        "red-d2",
        "--host",
        "h2",
        "--os-cloud",
        "weft-demo",
    ]));
    assert_eq!(d2, "10.0.1.50");
    let d2_mac = lab.openstack(&cli, "weft", "port show red-d2 -f value -c mac_address");
    let b2_mac = lab.openstack(&cli, "weft", "port show blue-b2 -f value -c mac_address");
    let d1_mac = lab.vm("d1", &["cat", "/sys/class/net/eth0/address"]).1;
    // While d1 talks to 10.0.1.50, b2 (blue's 10.0.1.50) sees none of it.
    let capture = Command::new(WEFT)
        .args([
            "lab", "vm", "exec", "b2", "--", "timeout", "4", "tcpdump", "-i", "eth0", "-n", "-e",
        ])
        .args(["ether", "host", d1_mac.trim()])
        .current_dir(lab.work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(lab.pings("d1", "10.0.1.50"), "red VMs cannot talk");
    assert_eq!(
        lab.neighbour("d1", "10.0.1.50"),
        d2_mac.trim(),
        "d1 reached the wrong 10.0.1.50"
    );
    assert!(lab.pings("b1", "10.0.1.50"));
    assert_eq!(
        lab.neighbour("b1", "10.0.1.50"),
        b2_mac.trim(),
        "b1 reached the wrong 10.0.1.50"
    );
    let seen = capture.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(seen.trim().is_empty(), "blue's b2 saw red frames:\n{seen}");

    // A VLAN provider network on physnet1, across the hosts' physical uplinks.
    lab.vlan_network(
        &cli,
        ("physnet1", 150),
        "green",
        ("green-sub", "10.0.3.0/24"),
    );
    let g1 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "g1",
        "--network",
        "green",
        "--host",
        "h1",
    ]));
    let g2 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "g2",
        "--network",
        "green",
        "--host",
        "h2",
    ]));
    assert!(
        g1.starts_with("10.0.3.") && g2.starts_with("10.0.3."),
        "{g1} {g2}"
    );
    assert!(
        lab.pings("g1", &g2),
        "the VLAN network does not carry traffic across hosts"
    );
    let mtu = lab.vm("g1", &["cat", "/sys/class/net/eth0/mtu"]).1;
    assert_eq!(mtu.trim(), "1500", "DHCP's MTU on a VLAN network");

    // Agents and the controller restart under a continuous ping: nothing is lost.
    let mut ping = lab.ping_in_background("g1", &g2, 200);
    std::thread::sleep(Duration::from_secs(1));
    lab.ok(&["lab", "restart", "agent", "--host", "h1"]);
    lab.ok(&["lab", "restart", "agent", "--host", "h2"]);
    lab.ok(&["lab", "restart", "server"]);
    assert!(
        ping.try_wait().unwrap().is_none(),
        "the ping ended before the restarts did: lengthen it"
    );
    lost_none(ping);
    // The restarted agents and controller still serve: a new VM binds, gets DHCP, talks.
    let g3 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "g3",
        "--network",
        "green",
        "--host",
        "h1",
    ]));
    assert!(g3.starts_with("10.0.3."), "{g3}");
    assert!(
        lab.pings("g3", &g2),
        "a VM made after the restarts cannot talk"
    );
    let status = lab.openstack(&cli, "weft", "port show blue-b2 -f value -c status");
    assert_eq!(status.trim(), "ACTIVE");

    // Deleting a VM's port stops its traffic (the agent unplugs it).
    lab.openstack(&cli, "weft", "port delete blue-b2");
    let mut stopped = false;
    for _ in 0..20 {
        if !lab.pings("b1", &b2) {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "b2 still answers after its port was deleted");
    assert!(lab.pings("d1", "10.0.1.50"), "red's 10.0.1.50 went too");
    let _ = b1;
    drop(lab);
}

/// README's main command: `weft lab demo` brings a lab up and every check goes the right way.
#[test]
fn lab_demo_passes() {
    if let Some(why) = cannot_run() {
        eprintln!("weft lab test skipped: {why}");
        return;
    }
    let lab = TestLab::new('d', 6);
    let out = lab.ok(&["lab", "demo", "topology.toml"]);
    assert_eq!(out.matches(" ok\n").count(), 5, "{out}");
    assert!(!out.contains("WRONG"), "{out}");
    // Running it again keeps what is there and checks again.
    let again = lab.ok(&["lab", "demo"]);
    assert_eq!(again.matches(" ok\n").count(), 5, "{again}");
    drop(lab);
}

/// Polls `f` for up to 20 s.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Seed 002, steps 1-9, with the stock CLI against the lab, then a subport added and one
/// removed on the running VM while pings on the parent and on another subport go on.
#[test]
fn lab_seed_002_trunk_flow() {
    let Some(cli) = lab_and_cli() else {
        return;
    };
    let lab = TestLab::new('s', 7);
    lab.up();
    let os = |args: &str| lab.openstack(&cli, "weft", args);
    // Steps 1 and 2, verbatim.
    for net in ["net0", "net1", "net2"] {
        os(&format!("network create {net}"));
    }
    os("subnet create --network net0 --subnet-range 10.0.4.0/24 subnet0");
    os("subnet create --network net1 --subnet-range 10.0.5.0/24 subnet1");
    os("subnet create --network net2 --subnet-range 10.0.6.0/24 subnet2");
    os("port create --network net0 trunkparent");
    os("port create --network net1 subport1");
    os("port create --network net2 subport2");
    // Step 3.
    let created = os("network trunk create --parent-port trunkparent \
         --subport port=subport1,segmentation-type=vlan,segmentation-id=1 \
         --subport port=subport2,segmentation-type=vlan,segmentation-id=2 mytrunk -f json");
    let trunk: serde_json::Value = serde_json::from_str(&created).unwrap();
    let parent_id = os("port show trunkparent -f value -c id").trim().to_owned();
    let sub1_id = os("port show subport1 -f value -c id").trim().to_owned();
    let sub2_id = os("port show subport2 -f value -c id").trim().to_owned();
    assert_eq!(trunk["name"], "mytrunk");
    assert_eq!(trunk["status"], "DOWN");
    assert_eq!(trunk["port_id"], parent_id.as_str());
    assert_eq!(trunk["revision_number"], 1);
    let subs = trunk["sub_ports"].as_array().unwrap();
    assert_eq!(subs.len(), 2, "{trunk}");
    assert_eq!(subs[0]["port_id"], sub1_id.as_str());
    assert_eq!(subs[0]["segmentation_id"], 1);
    assert_eq!(subs[0]["segmentation_type"], "vlan");
    assert_eq!(subs[1]["port_id"], sub2_id.as_str());
    assert_eq!(subs[1]["segmentation_id"], 2);
    // Step 4.
    let list = os("network trunk list");
    assert!(
        list.contains("mytrunk") && list.contains(&parent_id),
        "{list}"
    );
    let show = os("network trunk show mytrunk");
    // The seed's 2016 client printed `admin_state_up UP`; python-openstackclient 10 prints
    // `is_admin_state_up True`. The sub_ports lines are the seed's, character for character.
    for want in [
        "is_admin_state_up | True".to_owned(),
        "| DOWN".to_owned(),
        format!("port_id='{sub1_id}', segmentation_id='1', segmentation_type='vlan'"),
        format!("port_id='{sub2_id}', segmentation_id='2', segmentation_type='vlan'"),
    ] {
        assert!(show.contains(&want), "{want} missing in\n{show}");
    }
    // Step 5.
    let mac1 = os("port show subport1 -f value -c mac_address")
        .trim()
        .to_owned();
    let mac2 = os("port show subport2 -f value -c mac_address")
        .trim()
        .to_owned();
    let shown = os("port show subport1");
    assert!(
        shown.contains(&mac1) && shown.contains("subport1"),
        "{shown}"
    );
    // Step 6: the VM on the parent port; the trunk becomes ACTIVE.
    lab.ok(&[
        "lab",
        "vm",
        "create",
        "trunk-vm1",
        "--port",
        "trunkparent",
        "--host",
        "h1",
    ]);
    assert!(
        eventually(|| os("network trunk show mytrunk -f value -c status").trim() == "ACTIVE"),
        "the trunk never became ACTIVE"
    );
    // Step 7: VLAN interfaces with the subports' MACs.
    lab.ok(&[
        "lab",
        "vm",
        "vlan",
        "add",
        "trunk-vm1",
        "--link",
        "eth0",
        "--id",
        "1",
        "--mac",
        &mac1,
    ]);
    lab.ok(&[
        "lab",
        "vm",
        "vlan",
        "add",
        "trunk-vm1",
        "--link",
        "eth0",
        "--id",
        "2",
        "--mac",
        &mac2,
    ]);
    let links = lab.vm("trunk-vm1", &["ip", "-o", "link", "show"]).1;
    assert!(links.contains("eth0.1") && links.contains(&mac1), "{links}");
    assert!(links.contains("eth0.2") && links.contains(&mac2), "{links}");
    // Step 8: DHCP on eth0.1 and eth0.2.
    lab.ok(&["lab", "vm", "dhcp", "trunk-vm1", "eth0.1"]);
    lab.ok(&["lab", "vm", "dhcp", "trunk-vm1", "eth0.2"]);
    let addrs = lab.vm("trunk-vm1", &["ip", "-o", "-4", "addr", "show"]).1;
    assert!(
        addrs.contains("eth0.1") && addrs.contains("inet 10.0.5."),
        "{addrs}"
    );
    assert!(
        addrs.contains("eth0.2") && addrs.contains("inet 10.0.6."),
        "{addrs}"
    );
    // Step 9: ping through eth0.1 (to a VM of net1 on the other host); the VM's wire shows
    // 802.1Q vlan 1 frames, as the seed's tcpdump does.
    let p1 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "p1",
        "--network",
        "net1",
        "--host",
        "h2",
    ]));
    let p0 = printed_ip(&lab.ok(&[
        "lab",
        "vm",
        "create",
        "p0",
        "--network",
        "net0",
        "--host",
        "h2",
    ]));
    let capture = Command::new(WEFT)
        .args([
            "lab",
            "vm",
            "exec",
            "trunk-vm1",
            "--",
            "timeout",
            "6",
            "tcpdump",
            "-en",
            "-i",
        ])
        .args(["wire0", "-c", "2", "vlan", "1", "and", "icmp"])
        .current_dir(lab.work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        lab.vm(
            "trunk-vm1",
            &["ping", "-c", "3", "-W", "2", "-I", "eth0.1", &p1]
        )
        .0
    );
    let seen = capture.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(
        seen.contains("802.1Q") && seen.contains("vlan 1,") && seen.contains(&mac1),
        "no 802.1Q vlan 1 frames on the wire:\n{seen}"
    );
    assert!(
        lab.vm(
            "trunk-vm1",
            &["ping", "-c", "2", "-W", "2", "-I", "eth0", &p0]
        )
        .0
    );

    // A third subport added live, subport2 removed live; the parent and subport1 never stop.
    let on_parent = lab.ping_in_background("trunk-vm1", &p0, 150);
    let on_sub1 = lab.ping_via("trunk-vm1", Some("eth0.1"), &p1, 150);
    os("network create net3");
    os("subnet create --network net3 --subnet-range 10.0.7.0/24 subnet3");
    os("port create --network net3 subport3");
    os(
        "network trunk set --subport port=subport3,segmentation-type=vlan,segmentation-id=3 mytrunk",
    );
    let mac3 = os("port show subport3 -f value -c mac_address")
        .trim()
        .to_owned();
    lab.ok(&[
        "lab",
        "vm",
        "vlan",
        "add",
        "trunk-vm1",
        "--link",
        "eth0",
        "--id",
        "3",
        "--mac",
        &mac3,
    ]);
    assert!(
        eventually(|| lab
            .weft(&["lab", "vm", "dhcp", "trunk-vm1", "eth0.3"])
            .status
            .success()),
        "eth0.3 got no address"
    );
    let addrs = lab
        .vm("trunk-vm1", &["ip", "-o", "-4", "addr", "show", "eth0.3"])
        .1;
    assert!(addrs.contains("inet 10.0.7."), "{addrs}");
    os("network trunk unset --subport subport2 mytrunk");
    let show = os("network trunk show mytrunk -f json");
    let trunk: serde_json::Value = serde_json::from_str(&show).unwrap();
    let vlans: Vec<u64> = trunk["sub_ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["segmentation_id"].as_u64())
        .collect();
    assert_eq!(vlans, [1, 3], "{trunk}");
    lost_none(on_parent);
    lost_none(on_sub1);
    drop(lab);
}

impl TestLab {
    /// Gives the lab an EVB fabric: a ToR as the 802.1Qbg bridge, each host a station.
    fn with_evb(self) -> Self {
        let path = self.work.path().join("topology.toml");
        let mut topology = fs::read_to_string(&path).unwrap();
        topology.push_str(
            "[evb]\nvlan_range = \"200:209\"\n\
             [[evb.channel]]\nscid = 2\nphysical_network = \"evbveb\"\nvlan_range = \"300:309\"\n",
        );
        fs::write(&path, topology).unwrap();
        self
    }

    /// The controller's VSI associations (`weft vsi assoc list`), as JSON rows.
    fn associations(&self) -> Vec<serde_json::Value> {
        let out = self.ok(&["vsi", "--os-cloud", "weft", "assoc", "list", "-f", "json"]);
        serde_json::from_str(&out).unwrap()
    }

    /// The ToR switch's rx packets on its port facing `host`.
    fn tor_rx(&self, host: &str) -> u64 {
        self.tor("counters")["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == host)
            .and_then(|p| p["rx_packets"].as_u64())
            .unwrap_or(0)
    }

    /// The ToR switch's `list` or `counters`, as JSON.
    fn tor(&self, op: &str) -> serde_json::Value {
        let socket = self.dir().join("tor").join("switch.sock");
        let out = self.ok(&[
            "switch",
            "ctl",
            "--json",
            "--control",
            socket.to_str().unwrap(),
            op,
        ]);
        serde_json::from_str(&out).unwrap()
    }
}

/// The association of VSI `id` among `rows`.
fn association<'a>(rows: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["VSI ID"] == id)
        .unwrap_or_else(|| panic!("no association of {id}: {rows:?}"))
}

/// The longest time between two consecutive echo replies in `ping -D` output, in ms.
fn longest_silence(ping: &str) -> f64 {
    let stamps: Vec<f64> = ping
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect();
    stamps
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .fold(0.0, f64::max)
}

/// Issue 7 part 5, seed 000 part three, on the lab's EVB fabric with the stock CLI: a VM's VSI
/// (its port) associates through its host's station before its NIC comes up, and the
/// controller records it; a VSI type the controller does not know is refused and the VM is
/// not made; a migration pre-associates on the target, de-associates on the source and
/// associates on the target while a ping runs (its silence is reported), the binding moving
/// along; afterwards two VMs on one VEPA host reach each other through the ToR's reflection;
/// deleting a VM de-associates it and the ToR drops its profile.
#[test]
fn lab_evb_vms_associate_migrate_and_deassociate() {
    let Some(cli) = lab_and_cli() else {
        return;
    };
    let lab = TestLab::new('q', 8).with_evb();
    lab.up();
    lab.vlan_network(&cli, ("evb", 200), "evbnet", ("evbsub", "10.0.20.0/24"));
    let create = |name: &str, host: &str, extra: &[&str]| {
        let mut args = vec![
            "lab",
            "vm",
            "create",
            name,
            "--network",
            "evbnet",
            "--host",
            host,
        ];
        args.extend_from_slice(extra);
        lab.weft(&args)
    };
    // No VSI type names the network yet: the lab (the VMM) has nothing to associate with.
    let out = create("x", "h1", &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no VSI type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.vsi_type(100, "evbnet", "web");
    let made = |name: &str, host: &str| {
        let out = create(name, host, &[]);
        assert!(
            out.status.success(),
            "vm create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed_ip(&String::from_utf8_lossy(&out.stdout))
    };
    let ip_a = made("a", "h1");
    let ip_b = made("b", "h2");
    assert!(ip_a.starts_with("10.0.20.") && ip_b.starts_with("10.0.20."));
    let port_of = |vm: &str| {
        lab.openstack(&cli, "weft", &format!("port show {vm} -f value -c id"))
            .trim()
            .to_owned()
    };
    let (port_a, port_b) = (port_of("a"), port_of("b"));
    let rows = lab.associations();
    for (port, at) in [(&port_a, "h1"), (&port_b, "h2")] {
        let row = association(&rows, port);
        assert_eq!(row["State"], "associated", "{row}");
        assert_eq!(row["Bridge"], "tor", "{row}");
        assert_eq!(row["Port"], at, "{row}");
        assert_eq!(row["Filters"][0]["vlan"], 200, "{row}");
    }
    assert!(lab.pings("a", &ip_b), "a cannot reach b across the ToR");

    // Figure 12 C: a VSI type the NMS does not know is refused, and the VM is not made.
    let out = create("c", "h2", &["--vsi-type", "999"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused"), "{err}");
    let ports = lab.openstack(&cli, "weft", "port list -f value -c Name");
    assert!(!ports.lines().any(|p| p == "c"), "{ports}");

    // Seed 000 part three: b moves to h1 while a pings it.
    let pinger = Command::new(WEFT)
        .args([
            "lab", "vm", "exec", "a", "--", "ping", "-D", "-n", "-i", "0.02",
        ])
        .args(["-W", "1", "-c", "500", &ip_b])
        .current_dir(lab.work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let gap = lab.ok(&["lab", "vm", "migrate", "b", "--to", "h1"]);
    let pinged = pinger.wait_with_output().unwrap();
    let ping = String::from_utf8_lossy(&pinged.stdout);
    let silence = longest_silence(&ping);
    eprintln!(
        "EVB migration: NIC away {}, ping silent {silence:.0} ms",
        gap.lines().last().unwrap_or_default()
    );
    let last = ping.lines().rfind(|l| l.contains("bytes from"));
    assert!(
        last.is_some_and(|l| l.contains("icmp_seq=500")),
        "pings stopped for good:\n{ping}"
    );
    assert!(silence < 10_000.0, "{silence} ms\n{ping}");
    let host = lab.openstack(&cli, "weft", "port show b -f value -c binding_host_id");
    assert_eq!(host.trim(), "h1");
    let rows = lab.associations();
    let row = association(&rows, &port_b);
    assert_eq!(
        (&row["State"], &row["Port"]),
        (&"associated".into(), &"h1".into()),
        "{row}"
    );

    // Both on h1, whose relay is VEPA: a reaches b only through the ToR, which reflects.
    let before = lab.tor_rx("h1");
    assert!(lab.pings("a", &ip_b), "a cannot reach b on the same host");
    let after = lab.tor_rx("h1");
    assert!(after >= before + 4, "the ToR saw {} frames", after - before);

    // h1's station restarts (SIGTERM) with its state file: it asks for a's and b's VSIs again,
    // so the bridge, whose keep-alive timeout is about 16 s at the default timers, keeps them
    // and the ToR keeps letting their traffic in.
    lab.ok(&["lab", "restart", "station", "--host", "h1"]);
    std::thread::sleep(Duration::from_secs(17));
    let rows = lab.associations();
    assert_eq!(
        association(&rows, &port_b)["State"],
        "associated",
        "the restart lost b's VSI: {rows:?}"
    );
    assert!(
        lab.pings("a", &ip_b),
        "a cannot reach b after h1's station restarted"
    );

    // Deleting b de-associates it: the record ends, and the ToR forgets b's MAC.
    let mac_b = lab.openstack(&cli, "weft", "port show b -f value -c mac_address");
    lab.ok(&["lab", "vm", "delete", "b"]);
    let rows = lab.associations();
    assert_eq!(association(&rows, &port_b)["State"], "deassociated");
    let vsis = lab.tor("list")["vsi"].clone();
    assert!(
        !vsis.to_string().contains(mac_b.trim()),
        "the ToR still lets b in: {vsis}"
    );
    assert!(!lab.pings("a", &ip_b));

    // A second edge relay per host, VEB, on the S-channel CDCP granted (SCID 2): its VSIs
    // associate on that channel's bridge port, its traffic crosses the ToR S-tagged, and two
    // of its VMs on one host switch locally.
    lab.vlan_network(&cli, ("evbveb", 300), "vebnet", ("vebsub", "10.0.30.0/24"));
    lab.vsi_type(300, "vebnet", "veb");
    let on_veb = |name: &str, host: &str| {
        let out = lab.weft(&[
            "lab",
            "vm",
            "create",
            name,
            "--network",
            "vebnet",
            "--host",
            host,
        ]);
        assert!(
            out.status.success(),
            "vm create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed_ip(&String::from_utf8_lossy(&out.stdout))
    };
    let (_, ip_d, ip_e) = (on_veb("c", "h1"), on_veb("d", "h2"), on_veb("e", "h1"));
    let rows = lab.associations();
    for (vm, host) in [("c", "h1"), ("d", "h2"), ("e", "h1")] {
        let row = association(&rows, &port_of(vm));
        let port = row["Port"].as_str().unwrap();
        assert!(
            port.starts_with(&format!("{host}.s")) && row["State"] == "associated",
            "{row}"
        );
        assert_eq!(row["Filters"][0]["vlan"], 300, "{row}");
    }
    assert!(
        lab.pings("c", &ip_d),
        "c cannot reach d across the S-channel"
    );
    let before = lab.tor_rx("h1");
    assert!(lab.pings("c", &ip_e), "c cannot reach e on its VEB relay");
    let after = lab.tor_rx("h1");
    assert!(
        after < before + 4,
        "VEB traffic went through the ToR ({} frames)",
        after - before
    );
    let status = lab.ok(&["lab", "status"]);
    assert!(status.contains("S-channel 2"), "{status}");
    lab.ok(&["lab", "down"]);
    lab.assert_clean();
}
