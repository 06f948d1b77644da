//! `weft vsi` against a running `weft server` with Keystone auth: the clouds.yaml the server
//! writes (`--os-cloud`), `--url`/`--token`, tables and `-f json`, the API's errors as exit
//! code 1, and associations a bridge recorded through the agent API.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hyper::Method;
use lab::api::{Cloud, Credentials};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        let child = Command::new(WEFT)
            .args(["server", "--listen", "127.0.0.1:0"])
            .args(["--identity-listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--admin-password", "s3cret-admin"])
            .arg("--write-clouds-yaml")
            .arg(&clouds)
            .env_remove("WEFT_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let server = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clouds.exists() {
            assert!(
                Instant::now() < deadline,
                "no clouds.yaml: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    /// `key: "value"` of the clouds.yaml the server wrote.
    fn yaml(&self, key: &str) -> String {
        let text = std::fs::read_to_string(self.path().join("clouds.yaml")).unwrap();
        text.lines()
            .find_map(|line| {
                let value = line.trim().strip_prefix(&format!("{key}: "))?;
                serde_json::from_str::<String>(value).ok()
            })
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    }

    /// `weft vsi ARGS` in the server's directory: (success, stdout, stderr).
    fn vsi(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(WEFT)
            .arg("vsi")
            .args(args)
            .current_dir(self.path())
            // Only the server's clouds.yaml: no user's, no OS_CLOUD from outside.
            .env("HOME", self.path().join("home"))
            .env_remove("OS_CLOUD")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (success, stdout, stderr) = self.vsi(args);
        assert!(
            success,
            "weft vsi {args:?} failed:\n{stderr}\n{stdout}\nserver log:\n{}",
            self.log()
        );
        stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|err| panic!("{args:?}: {err}: {out}"))
    }
}

/// `POST path` on the networking API with the agent secret.
fn agent_post(network_url: &str, secret: &str, path: &str, body: &Value) -> Value {
    let authority = network_url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(body).unwrap()
}

/// The value of `field` in a `| Field | Value |` table.
fn field(table: &str, name: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        (cells.len() == 4 && cells[1] == name).then(|| cells[2].to_owned())
    })
}

#[test]
fn weft_vsi_manages_types_and_shows_associations() {
    let server = Server::start();
    let credentials = Credentials {
        auth_url: server.yaml("auth_url"),
        username: server.yaml("username"),
        password: server.yaml("password"),
        project: server.yaml("project_name"),
    };
    let identity = Cloud::new(&credentials.auth_url).unwrap();
    let token = identity.token(&credentials).unwrap();
    let network_url = identity
        .endpoint(&token, &credentials.auth_url, "network")
        .unwrap();
    let api = Cloud::new(&network_url).unwrap();
    let net = api
        .request(
            &token,
            Method::POST,
            "/v2.0/networks",
            Some(&json!({"network": {"name": "web-net"}})),
        )
        .unwrap();
    let net_id = net["network"]["id"].as_str().unwrap().to_owned();

    let cloud = ["--os-cloud", "weft"];
    let created = server.ok(&[
        &cloud[..],
        &[
            "type",
            "create",
            "--type-id",
            "100",
            "--type-version",
            "1",
            "--network",
            "web-net",
            "--name",
            "web",
        ],
    ]
    .concat());
    assert_eq!(
        field(&created, "type_id").as_deref(),
        Some("100"),
        "{created}"
    );
    assert_eq!(
        field(&created, "network_id").as_deref(),
        Some(net_id.as_str())
    );
    assert_eq!(field(&created, "vlan").as_deref(), Some("None"));
    assert_eq!(
        field(&created, "port_security_enabled").as_deref(),
        Some("True")
    );
    assert!(created.starts_with("+-"), "{created}");
    let second = server.json(
        &[
            &cloud[..],
            &[
                "type",
                "create",
                "--type-id",
                "200",
                "--type-version",
                "3",
                "--network",
                &net_id,
                "--vlan",
                "30",
                "--name",
                "db",
                "--no-port-security",
            ],
        ]
        .concat(),
    );
    assert_eq!(second["vlan"], 30);
    assert_eq!(second["port_security_enabled"], false);

    let listed = server.json(&[&cloud[..], &["type", "list"]].concat());
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["Name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["db", "web"], "{listed}");
    let table = server.ok(&[&cloud[..], &["type", "list"]].concat());
    assert!(
        table.lines().nth(1).unwrap().starts_with("| ID ") && table.contains("| web "),
        "{table}"
    );
    let shown = server.json(&[&cloud[..], &["type", "show", "web"]].concat());
    assert_eq!(shown["type_id"], 100);

    // The API's refusals are exit code 1 with its message.
    let (success, _, stderr) = server.vsi(
        &[
            &cloud[..],
            &[
                "type",
                "create",
                "--type-id",
                "100",
                "--type-version",
                "1",
                "--network",
                "web-net",
            ],
        ]
        .concat(),
    );
    assert!(!success);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (success, _, stderr) = server.vsi(&["type", "list"]);
    assert!(!success);
    assert!(stderr.contains("--os-cloud"), "{stderr}");
    let (success, _, stderr) = server.vsi(&["--os-cloud", "nowhere", "type", "list"]);
    assert!(!success);
    assert!(stderr.contains("no cloud \"nowhere\""), "{stderr}");

    // A bridge associates a VSI of type web; the CLI shows the record.
    let secret = std::fs::read_to_string(server.path().join("state/agent-token")).unwrap();
    let decision = agent_post(
        &network_url,
        secret.trim(),
        "/weft/v1/vdp/decide",
        &json!({"bridge": "tor1", "port": "sw1p1", "request": {"mode": "associate",
            "type_id": 100, "type_version": 1, "id_format": 5,
            "vsi_id": "00000000-0000-0000-0000-00000000beef", "manager_id": "evmgr1",
            "filters": [{"vlan": 0, "mac_address": "52:54:00:8e:aa:11"}]}}),
    );
    assert_eq!(decision["decision"], "accept", "{decision}");
    let assoc = server.ok(&[&cloud[..], &["assoc", "list", "--state", "associated"]].concat());
    assert!(
        assoc.contains("00000000-0000-0000-0000-00000000beef")
            && assoc.contains("2/52:54:00:8e:aa:11")
            && assoc.contains("| associated "),
        "{assoc}"
    );
    let none = server.json(&[&cloud[..], &["assoc", "list", "--state", "deassociated"]].concat());
    assert_eq!(none, json!([]));
    let (success, _, stderr) = server.vsi(&[&cloud[..], &["type", "delete", "web"]].concat());
    assert!(!success);
    assert!(stderr.contains("in use"), "{stderr}");

    // --url and --token instead of a cloud.
    let rows = server.json(&[
        "--url",
        &network_url,
        "--token",
        &token.token,
        "assoc",
        "list",
    ]);
    assert_eq!(rows[0]["Bridge"], "tor1", "{rows}");
    assert_eq!(rows[0]["State"], "associated");
    let id = rows[0]["ID"].as_str().unwrap();
    let one = server.json(&[
        "--url",
        &network_url,
        "--token",
        &token.token,
        "assoc",
        "show",
        id,
    ]);
    assert_eq!(one["filters"][0]["vlan"], 2);

    server.ok(&[&cloud[..], &["type", "delete", "db"]].concat());
    let left = server.json(&[&cloud[..], &["type", "list"]].concat());
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
}
