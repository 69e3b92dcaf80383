//! SSH for gptransfer: the SSH layer other plugins use (module [`session`], re-exported here:
//! [`connect`], [`Ssh::run`], [`Ssh::put`], [`Ssh::get`], [`explain_exit`], [`shell_quote`]) and
//! the `ssh` transport.
//!
//! The `ssh` transport writes each window exactly as `shared-mount` does (gzip parts +
//! `manifest.json` with sha256, same names), but on a remote host over SFTP, for hosts that do
//! not share a mount:
//!
//! ```text
//! <root on the remote host>/<db>^<schema>^<table>^<window id>/
//!     part-00001.csv.gz  (COPY CSV; text: .txt.gz, binary: .bin.gz)
//!     manifest.json      (uploaded last)
//! ```
//!
//! Per window: the source's bytes are written as parts in a local staging directory and
//! uploaded (each file under a temporary name, then renamed; the manifest last). A sink that
//! runs on that host and reads files (gpload over SSH) loads them there, in place; any other
//! sink gets them read back over SFTP, verified against the manifest and streamed into
//! `sink.load`. The remote directory is removed after a successful load unless `keep_files`. The host key and the login are checked when the
//! transport is built, before the run touches any server.

pub mod session;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, Delivered, SinkWindow, StagedFiles, Transport, WindowCtx};
use gptransfer_core::RoleError;
use gptransfer_plugin_shared_mount::{Manifest, SharedMountConfig, SharedMountTransport, MANIFEST};

pub use session::{
    command_line, connect, default_known_hosts, explain_exit, shell_quote, Interactive, Output, Ssh, SshConfig,
    SshError, Watch,
};

/// Options of the `ssh` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshTransportConfig {
    /// Remote host.
    pub host: String,
    /// Remote sshd port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Private key; left out, ssh-agent's keys are used.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase.
    #[serde(default)]
    pub passphrase_env: Option<String>,
    /// known_hosts file (default `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// Trust (and record) a host key missing from known_hosts; a changed key is refused anyway.
    #[serde(default)]
    pub accept_new_host_keys: bool,
    /// Remote directory (absolute, existing) the window directories are created under.
    pub root: PathBuf,
    /// gzip level, 0 (store) to 9.
    #[serde(default = "default_compression")]
    pub compression: u32,
    /// Keep the remote window directory after a successful load.
    #[serde(default)]
    pub keep_files: bool,
    /// TCP connect limit, e.g. `"10s"`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde_str")]
    pub connect_timeout: Duration,
    /// Limit for any one SSH read or write, e.g. `"5m"`.
    #[serde(default = "default_read_timeout", with = "humantime_serde_str")]
    pub read_timeout: Duration,
}

fn default_port() -> u16 {
    22
}
fn default_compression() -> u32 {
    6
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(300)
}

mod humantime_serde_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration such as \"10s\": {e}")))
    }
}

impl SshTransportConfig {
    fn check_values(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err("host must not be empty".into());
        }
        if self.user.is_empty() {
            return Err("user must not be empty".into());
        }
        if !self.root.is_absolute() {
            return Err(format!(
                "root must be an absolute remote directory path, not {:?}",
                self.root.display().to_string()
            ));
        }
        if self.compression > 9 {
            return Err(format!("compression must be 0 (none) to 9 (best), not {}", self.compression));
        }
        if self.connect_timeout.is_zero() {
            return Err("connect_timeout must be more than zero".into());
        }
        Ok(())
    }

    /// The session settings.
    /// `host:port` of the sshd, as staged files name their host.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The SSH session settings.
    pub fn ssh(&self) -> SshConfig {
        SshConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            key_file: self.key_file.clone(),
            passphrase_env: self.passphrase_env.clone(),
            known_hosts: self.known_hosts.clone().unwrap_or_else(default_known_hosts),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
        }
    }

    /// Connects (host key, login) and checks that `root` is a remote directory (blocking).
    pub fn preflight(&self) -> Result<Ssh, String> {
        let ssh = connect(&self.ssh()).map_err(|e| e.0)?;
        let sftp = ssh.sftp().map_err(|e| e.0)?;
        match sftp.stat(&self.root) {
            Ok(s) if s.is_dir() => Ok(ssh),
            Ok(_) => Err(format!("ssh {}: root {} is not a directory", ssh.target, self.root.display())),
            Err(e) => Err(format!("ssh {}: root {} cannot be used: {e}", ssh.target, self.root.display())),
        }
    }
}

/// The `ssh` transport.
#[derive(Debug, Clone)]
pub struct SshTransport {
    config: SshTransportConfig,
}

/// Registers `ssh`.
pub struct SshTransportFactory;

impl Factory<dyn Transport> for SshTransportFactory {
    fn name(&self) -> &'static str {
        "ssh"
    }
    fn describe(&self) -> &'static str {
        "window as gzip parts + manifest written on a remote host over SFTP (host key checked), loaded from there"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        let c: SshTransportConfig = parse_options(options)?;
        c.check_values()
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Transport>, String> {
        let config: SshTransportConfig = parse_options(options)?;
        config.check_values()?;
        // Before the run touches any server: an unknown host key or a refused login fails now.
        config.preflight()?;
        Ok(Arc::new(SshTransport { config }))
    }
}

fn join_err(what: &str, e: tokio::task::JoinError) -> RoleError {
    RoleError::new(format!("ssh: {what} stopped unexpectedly: {e}"))
}

/// Uploads the local window directory's files to `remote` (a fresh directory), manifest last.
fn upload(ssh: &Ssh, local: &Path, remote: &Path, manifest: &Manifest) -> Result<(), SshError> {
    let sftp = ssh.sftp()?;
    session::remove_dir_all(ssh, &sftp, remote)?;
    sftp.mkdir(remote, 0o700).map_err(|e| ssh.sftp_failed("create", remote, &e))?;
    for f in &manifest.files {
        session::put_with(ssh, &sftp, &local.join(&f.name), &remote.join(&f.name))?;
    }
    session::put_with(ssh, &sftp, &local.join(MANIFEST), &remote.join(MANIFEST))?;
    Ok(())
}

/// Downloads the remote window directory (manifest, then the files it lists) into `local`.
fn download(ssh: &Ssh, remote: &Path, local: &Path) -> Result<(), SshError> {
    let sftp = ssh.sftp()?;
    std::fs::create_dir_all(local).map_err(|e| SshError(format!("cannot create {}: {e}", local.display())))?;
    session::get_with(ssh, &sftp, &remote.join(MANIFEST), &local.join(MANIFEST))?;
    let text = std::fs::read(local.join(MANIFEST)).map_err(|e| SshError(format!("cannot read the manifest: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        SshError(format!("ssh {}: {} is not a valid manifest: {e}", ssh.target, remote.join(MANIFEST).display()))
    })?;
    for f in &manifest.files {
        if f.name.contains('/') || f.name.starts_with('.') {
            return Err(SshError(format!("the manifest lists a file outside the window directory: {:?}", f.name)));
        }
        session::get_with(ssh, &sftp, &remote.join(&f.name), &local.join(&f.name))?;
    }
    Ok(())
}

#[async_trait]
impl Transport for SshTransport {
    fn formats(&self) -> Vec<CopyFormat> {
        // The files are CSV when both ends can: what gpload and people read.
        vec![CopyFormat::Csv, CopyFormat::Text, CopyFormat::Binary]
    }

    async fn deliver(
        &self,
        ctx: &WindowCtx,
        rows: ByteStream,
        sink: &mut dyn SinkWindow,
    ) -> Result<Delivered, RoleError> {
        let staging = tempfile::Builder::new()
            .prefix("gptransfer-ssh-")
            .tempdir()
            .map_err(|e| RoleError::new(format!("ssh: cannot create a local staging directory: {e}")))?;
        let out = SharedMountTransport::staging(SharedMountConfig {
            root: staging.path().join("out"),
            compression: self.config.compression,
            split_bytes: None,
            keep_files: true,
            sink_uid: None,
            sink_gid: None,
            stall_timeout: gptransfer_core::config::ConfigDuration(self.config.read_timeout),
        });
        let back = SharedMountTransport::staging(SharedMountConfig {
            root: staging.path().join("back"),
            compression: self.config.compression,
            split_bytes: None,
            keep_files: true,
            sink_uid: None,
            sink_gid: None,
            stall_timeout: gptransfer_core::config::ConfigDuration(self.config.read_timeout),
        });
        let local_out = out.window_dir(ctx);
        let local_back = back.window_dir(ctx);
        let name = local_out.file_name().map(PathBuf::from).unwrap_or_default();
        let remote = self.config.root.join(&name);
        std::fs::create_dir_all(&local_out)
            .map_err(|e| RoleError::new(format!("ssh: cannot create {}: {e}", local_out.display())))?;

        // Source → local parts + manifest.
        let (rows_read, bytes) = out.write_window(ctx, &local_out, rows).await?;

        // Local → remote, over SFTP.
        let config = self.config.clone();
        let (up_local, up_remote) = (local_out.clone(), remote.clone());
        let (ssh, manifest) = tokio::task::spawn_blocking(move || -> Result<(Ssh, Manifest), SshError> {
            let ssh = connect(&config.ssh())?;
            let text = std::fs::read(up_local.join(MANIFEST))
                .map_err(|e| SshError(format!("cannot read the staged manifest: {e}")))?;
            let manifest: Manifest = serde_json::from_slice(&text)
                .map_err(|e| SshError(format!("the staged manifest is not valid: {e}")))?;
            upload(&ssh, &up_local, &up_remote, &manifest)?;
            Ok((ssh, manifest))
        })
        .await
        .map_err(|e| join_err("the SFTP transfer", e))?
        .map_err(|e| {
            RoleError::new(format!("ssh: {e} (the window's remote files, if any, are in {})", remote.display()))
        })?;

        // A sink running on that host (gpload over SSH) loads the files where they are; any
        // other gets them back over SFTP, verified against the manifest.
        let staged = StagedFiles {
            root: self.config.root.clone(),
            files: manifest.files.iter().map(|f| PathBuf::from(&name).join(&f.name)).collect(),
            format: ctx.format,
            rows: manifest.rows,
            longest_row: manifest.longest_row,
            host: Some(self.config.host_port()),
        };
        let kept =
            |e: RoleError| RoleError::new(format!("{e} (the window's remote files are kept in {})", remote.display()));
        let (ssh, rows_written) = match sink.load_staged(&staged).await {
            Some(loaded) => (ssh, loaded.map_err(kept)?),
            None => {
                let (from, to) = (remote.clone(), local_back.clone());
                let ssh = tokio::task::spawn_blocking(move || download(&ssh, &from, &to).map(|()| ssh))
                    .await
                    .map_err(|e| join_err("the SFTP transfer", e))?
                    .map_err(|e| RoleError::new(format!("ssh: {e}")))
                    .map_err(kept)?;
                (ssh, back.load_window(ctx, &local_back, sink).await.map_err(kept)?)
            }
        };

        if !self.config.keep_files {
            let dir = remote.clone();
            let removed = tokio::task::spawn_blocking(move || {
                let sftp = ssh.sftp()?;
                session::remove_dir_all(&ssh, &sftp, &dir)
            })
            .await;
            if let Ok(Err(e)) = removed {
                tracing::warn!("ssh: the window was loaded but {} could not be removed: {e}", remote.display());
            }
        }
        drop(staging);
        Ok(Delivered { rows_read, bytes, rows_written, ..Delivered::default() })
    }
}
