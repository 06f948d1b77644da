//! `weft server` as a process: ephemeral ports, `--write-clouds-yaml`, a token from the
//! credentials in that file used on the networking API, a clean stop on SIGTERM, and a restart
//! on the same state that keeps the admin as it was.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// The server process, killed if a test fails before stopping it.
struct Server {
    child: Option<Child>,
    dir: PathBuf,
}

impl Server {
    /// Starts `weft server` on ephemeral ports in `dir` and waits for its clouds.yaml.
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let clouds = dir.join("clouds.yaml");
        let _ = std::fs::remove_file(&clouds);
        let child = Command::new(WEFT)
            .args(["server", "--listen", "127.0.0.1:0"])
            .args(["--identity-listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--write-clouds-yaml")
            .arg(&clouds)
            .args(extra)
            .env_remove("WEFT_ADMIN_PASSWORD")
            .env_remove("WEFT_DATABASE_URL")
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn weft server");
        let server = Self {
            child: Some(child),
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clouds.exists() {
            assert!(
                Instant::now() < deadline,
                "no clouds.yaml: {}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn output(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", read("stdout"), read("stderr"))
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "no exit: {}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status, headers (lower-case), body.
fn http(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest
        .split_once('/')
        .map_or_else(|| (rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// `key: "value"` from the clouds.yaml `weft server` writes (JSON-quoted scalars).
fn yaml_value(yaml: &str, key: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let value = line.trim().strip_prefix(&format!("{key}: "))?;
        Some(serde_json::from_str::<String>(value).unwrap_or_else(|_| value.to_owned()))
    })
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-server-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn serves_both_apis_and_writes_a_working_clouds_yaml() {
    let dir = scratch("clouds");
    let server = Server::start(&dir, &[]);
    let yaml = std::fs::read_to_string(dir.join("clouds.yaml")).unwrap();
    assert!(yaml.contains("clouds:\n  weft:\n"), "{yaml}");
    for (key, value) in [
        ("username", "admin"),
        ("project_name", "admin"),
        ("user_domain_name", "Default"),
        ("project_domain_name", "Default"),
        ("region_name", "RegionOne"),
        ("interface", "public"),
        ("identity_api_version", "3"),
    ] {
        assert_eq!(
            yaml_value(&yaml, key).as_deref(),
            Some(value),
            "{key}: {yaml}"
        );
    }
    let auth_url = yaml_value(&yaml, "auth_url").unwrap();
    assert!(
        auth_url.starts_with("http://127.0.0.1:") && auth_url.ends_with("/v3"),
        "{auth_url}"
    );
    assert!(
        !auth_url.ends_with(":5000/v3"),
        "an ephemeral port: {auth_url}"
    );
    let password = yaml_value(&yaml, "password").unwrap();
    // Generated, printed once, and in the file (which only its owner may read).
    assert!(server.stdout().contains(&password), "{}", server.output());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("clouds.yaml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let (status, _, body) = http(&auth_url, "GET", &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"]["links"][0]["href"], format!("{auth_url}/"));

    // The credentials in the file work, and the catalog's network endpoint answers.
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let (status, headers, body) =
        http(&format!("{auth_url}/auth/tokens"), "POST", &[], Some(&auth));
    assert_eq!(status, 201, "{body}");
    let token = headers
        .iter()
        .find(|(k, _)| k == "x-subject-token")
        .map(|(_, v)| v.clone())
        .unwrap();
    let network = body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "network")
        .unwrap()["endpoints"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        server.stdout().contains(&network),
        "{network}: {}",
        server.output()
    );
    let (status, _, body) = http(
        &format!("{network}/v2.0/networks"),
        "GET",
        &[("X-Auth-Token", &token)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(&format!("{network}/v2.0/networks"), "GET", &[], None);
    assert_eq!(status, 401);
    assert_eq!(body["NeutronError"]["type"], "HTTPUnauthorized");

    assert_eq!(server.stop(), 0);

    // A restart keeps the admin: no new password, and a configured one that is not the
    // admin's is not written to clouds.yaml.
    let server = Server::start(&dir, &["--admin-password", "not-the-password"]);
    assert!(
        !server.stdout().contains("created admin"),
        "{}",
        server.output()
    );
    let yaml = std::fs::read_to_string(dir.join("clouds.yaml")).unwrap();
    assert_eq!(yaml_value(&yaml, "password"), None, "{yaml}");
    assert!(
        server.output().contains("password is not known"),
        "{}",
        server.output()
    );
    assert_eq!(server.stop(), 0);
    let server = Server::start(&dir, &["--admin-password", &password]);
    let yaml = std::fs::read_to_string(dir.join("clouds.yaml")).unwrap();
    assert_eq!(
        yaml_value(&yaml, "password").as_deref(),
        Some(password.as_str())
    );
    let auth_url = yaml_value(&yaml, "auth_url").unwrap();
    let (status, _, body) = http(&format!("{auth_url}/auth/tokens"), "POST", &[], Some(&auth));
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.stop(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_fails_with_exit_code_1() {
    let dir = scratch("badconfig");
    let config = dir.join("weft.toml");
    std::fs::write(&config, "listen_on = 3\n").unwrap();
    let output = Command::new(WEFT)
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_on"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
