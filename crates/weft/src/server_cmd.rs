//! `weft server`: the controller. Serves the networking API (Neutron v2.0) and the identity
//! API (Keystone v3) on their two listeners until SIGINT or SIGTERM, bootstrapping the first
//! admin on first start, and optionally writes a `clouds.yaml` for the `openstack` CLI.

use std::{
    io::{IsTerminal as _, Write as _},
    net::{IpAddr, SocketAddr},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};
use clap::Args;
use controller::{
    App, Listeners,
    config::{AuthMode, Config},
    identity::token::{DomainSelector, UserSelector},
};

/// `weft server`'s flags: a config file, and overrides of its most common settings.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// TOML configuration (listen addresses, store, bootstrap admin, ML2 type drivers).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the networking API (Neutron), e.g. 127.0.0.1:9696; port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address of the identity API (Keystone), e.g. 127.0.0.1:5000; port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    identity_listen: Option<SocketAddr>,
    /// Base URL clients reach the networking API at (default: built from each request).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Base URL clients reach the identity API at (default: built from each request).
    #[arg(long, value_name = "URL")]
    identity_public_url: Option<String>,
    /// Directory of the SQLite database.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... instead of the state directory's SQLite file.
    #[arg(
        long,
        value_name = "URL",
        env = "WEFT_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Password of the admin created on first start (default: generated and printed once).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "WEFT_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    admin_password: Option<String>,
    /// No authentication: every request is admin in project fake_project_id.
    #[arg(long)]
    noauth: bool,
    /// The shared secret agents present (default: <state-dir>/agent-token, made on first start).
    #[arg(long, value_name = "PATH")]
    agent_token_file: Option<PathBuf>,
    /// Write a clouds.yaml with a cloud named `weft` (the admin) here once listening.
    #[arg(long, value_name = "PATH")]
    write_clouds_yaml: Option<PathBuf>,
}

impl ServerArgs {
    /// The configuration in effect: the file (or defaults), then the flags.
    fn config(&self) -> Result<Config> {
        let mut config = match &self.config {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Config::from_toml(&text).with_context(|| format!("{}", path.display()))?
            }
        };
        if let Some(addr) = self.listen {
            config.listen = addr;
        }
        if let Some(addr) = self.identity_listen {
            config.identity_listen = addr;
        }
        if let Some(url) = &self.public_url {
            config.public_url = Some(url.clone());
        }
        if let Some(url) = &self.identity_public_url {
            config.identity_public_url = Some(url.clone());
        }
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
        if let Some(password) = &self.admin_password {
            config.bootstrap.admin_password = Some(password.clone());
        }
        if self.noauth {
            config.auth = AuthMode::Noauth;
        }
        if let Some(path) = &self.agent_token_file {
            config.agent_token_file = Some(path.clone());
        }
        Ok(config)
    }
}

/// Runs the server until SIGINT or SIGTERM (then exits 0).
pub(crate) fn run(args: ServerArgs) -> Result<()> {
    let config = args.config()?;
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(config, args.write_clouds_yaml))
}

/// Logs to stderr; `RUST_LOG` filters (default: info).
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve(config: Config, clouds_yaml: Option<PathBuf>) -> Result<()> {
    let stop = stop_signal()?;
    // Bind first: a busy port fails before the store is touched, and ephemeral ports are
    // known before anything is printed or written.
    let listeners = Listeners::bind(&config).await?;
    let app = App::open(config).await?;
    let network_url = public_url(app.config.public_url.as_deref(), listeners.network_addr());
    let identity_url = public_url(
        app.config.identity_public_url.as_deref(),
        listeners.identity_addr(),
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "weft server: networking API (Neutron v2.0) on {} at {network_url}",
        listeners.network_addr()
    )?;
    writeln!(
        out,
        "weft server: identity API (Keystone v3) on {} at {identity_url}/v3",
        listeners.identity_addr()
    )?;
    let bootstrap = &app.config.bootstrap;
    if app.config.auth == AuthMode::Noauth {
        writeln!(
            out,
            "weft server: noauth: every request is admin in project fake_project_id"
        )?;
    } else if let Some(password) = &app.bootstrapped.generated_password {
        writeln!(
            out,
            "weft server: created admin user {:?} (project {:?}, domain Default) with the \
             generated password {password} — shown only now",
            bootstrap.admin_user, bootstrap.admin_project
        )?;
    } else if app.bootstrapped.created_admin {
        writeln!(
            out,
            "weft server: created admin user {:?} (project {:?}, domain Default) with the \
             configured password",
            bootstrap.admin_user, bootstrap.admin_project
        )?;
    }
    if let Some(path) = &clouds_yaml {
        let password = clouds_password(&app).await?;
        let cloud = Cloud {
            auth_url: format!("{identity_url}/v3"),
            network_url: &network_url,
            username: &bootstrap.admin_user,
            password,
            project: &bootstrap.admin_project,
            region: &bootstrap.region,
            noauth: app.config.auth == AuthMode::Noauth,
        };
        write_atomically(path, &cloud.to_yaml())?;
        if password.is_none() && !cloud.noauth {
            eprintln!(
                "weft server: the admin's password is not known (generated on first start, or \
                 changed since): {} has none; add it, or export OS_PASSWORD",
                path.display()
            );
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        writeln!(
            out,
            "weft server: wrote {} (cloud \"weft\", the admin); from that directory run\n    \
             cd {} && openstack --os-cloud weft network list\nor from anywhere\n    \
             OS_CLIENT_CONFIG_FILE={} openstack --os-cloud weft network list",
            path.display(),
            dir.display(),
            path.display()
        )?;
    }
    out.flush()?;
    drop(out);

    listeners
        .serve(Arc::clone(&app), stop)
        .await
        .context("serving")?;
    tracing::info!("stopping");
    app.store.close().await;
    Ok(())
}

/// The admin password clouds.yaml can carry: the one generated now, or the configured one if
/// it is still the admin's (bootstrap never resets a password, so it may have changed).
async fn clouds_password(app: &App) -> Result<Option<&str>> {
    let bootstrap = &app.config.bootstrap;
    if let Some(generated) = &app.bootstrapped.generated_password {
        return Ok(Some(generated));
    }
    let Some(configured) = bootstrap.admin_password.as_deref() else {
        return Ok(None);
    };
    if app.bootstrapped.created_admin {
        return Ok(Some(configured));
    }
    let admin = UserSelector::Name {
        name: bootstrap.admin_user.clone(),
        domain: DomainSelector::Id("default".into()),
    };
    let current = app
        .identity
        .verify_password(&admin, configured)
        .await
        .map_err(|err| anyhow::anyhow!("checking the admin password: {err}"))?;
    Ok(current.then_some(configured))
}

/// Watches SIGINT and SIGTERM from now on and returns a future that resolves on the first.
///
/// A daemon calls it first thing inside its runtime, before it binds or announces anything:
/// a signal is only caught once watched, and one that came before would kill the process by
/// its default action instead of stopping it cleanly (a supervisor, or a test, that stops a
/// daemon right after seeing it start).
pub(crate) fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

/// The URL a client on this host uses for a listener: the configured one, else the bound
/// address (a wildcard bind is reached on loopback).
fn public_url(configured: Option<&str>, bound: SocketAddr) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    let host = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", bound.port())
}

/// What `clouds.yaml` says about the `weft` cloud.
struct Cloud<'a> {
    auth_url: String,
    network_url: &'a str,
    username: &'a str,
    password: Option<&'a str>,
    project: &'a str,
    region: &'a str,
    noauth: bool,
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl Cloud<'_> {
    fn to_yaml(&self) -> String {
        let mut yaml =
            String::from("# Written by `weft server --write-clouds-yaml`.\nclouds:\n  weft:\n");
        if self.noauth {
            // The CLI's `none` auth sends a fixed token; every service is at `endpoint`.
            yaml.push_str("    auth_type: none\n    auth:\n");
            yaml.push_str(&format!("      endpoint: {}\n", quoted(self.network_url)));
        } else {
            yaml.push_str("    auth:\n");
            yaml.push_str(&format!("      auth_url: {}\n", quoted(&self.auth_url)));
            yaml.push_str(&format!("      username: {}\n", quoted(self.username)));
            if let Some(password) = self.password {
                yaml.push_str(&format!("      password: {}\n", quoted(password)));
            }
            yaml.push_str(&format!("      project_name: {}\n", quoted(self.project)));
            yaml.push_str("      user_domain_name: \"Default\"\n");
            yaml.push_str("      project_domain_name: \"Default\"\n");
        }
        yaml.push_str(&format!("    region_name: {}\n", quoted(self.region)));
        yaml.push_str("    identity_api_version: 3\n    interface: public\n");
        yaml
    }
}

/// Writes `path` whole or not at all (a reader polling for it never sees half a file), owner
/// read/write only: it holds a password.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path)
        .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_yaml_for_the_admin() {
        let cloud = Cloud {
            auth_url: "http://127.0.0.1:5000/v3".into(),
            network_url: "http://127.0.0.1:9696",
            username: "admin",
            password: Some("p\"w"),
            project: "admin",
            region: "RegionOne",
            noauth: false,
        };
        let yaml = cloud.to_yaml();
        assert!(
            yaml.contains("      auth_url: \"http://127.0.0.1:5000/v3\"\n"),
            "{yaml}"
        );
        assert!(yaml.contains("      password: \"p\\\"w\"\n"), "{yaml}");
        assert!(yaml.contains("    identity_api_version: 3\n"), "{yaml}");
        assert!(yaml.contains("    region_name: \"RegionOne\"\n"), "{yaml}");
    }

    #[test]
    fn urls_for_wildcard_binds() {
        let any: SocketAddr = "0.0.0.0:9696".parse().unwrap();
        assert_eq!(public_url(None, any), "http://127.0.0.1:9696");
        assert_eq!(
            public_url(None, "[::]:5000".parse().unwrap()),
            "http://[::1]:5000"
        );
        assert_eq!(
            public_url(Some("https://api.example/"), any),
            "https://api.example"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let args = ServerArgs {
            config: None,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            identity_listen: None,
            public_url: None,
            identity_public_url: Some("http://id.example:5000".into()),
            state_dir: Some("/tmp/x".into()),
            database_url: None,
            admin_password: Some("pw".into()),
            noauth: true,
            agent_token_file: None,
            write_clouds_yaml: None,
        };
        let config = args.config().unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.identity_listen.port(), 5000);
        assert_eq!(config.bootstrap.admin_password.as_deref(), Some("pw"));
        assert_eq!(config.auth, AuthMode::Noauth);
        assert_eq!(
            config.identity_public_url.as_deref(),
            Some("http://id.example:5000")
        );
    }
}
