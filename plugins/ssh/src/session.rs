//! The SSH layer on `ssh2` (libssh2): key authentication, host keys checked against a
//! `known_hosts` file, connect/read timeouts, remote commands with every argument shell-quoted,
//! SFTP put/get, and remote exit codes explained in words.
//!
//! Everything here is **blocking** (libssh2 is): async callers run it inside
//! `tokio::task::spawn_blocking`. A [`Ssh`] is cheap to clone (the session is shared) and may be
//! moved to a blocking thread.
//!
//! ```ignore
//! let ssh = gptransfer_plugin_ssh::connect(&SshConfig { host: "etl1".into(), user: "gpadmin".into(), ..SshConfig::default() })?;
//! let out = ssh.run(&["gpload", "-f", "/tmp/control file.yml"])?;
//! if out.code != 0 {
//!     return Err(explain_exit(out.code, &out.stderr));
//! }
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh2::{CheckResult, HashType, KnownHostFileKind, KnownHostKeyFormat, Session};

/// Everything needed to open a session.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port (22).
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Private key file; `None` authenticates through ssh-agent (`SSH_AUTH_SOCK`).
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase, when it has one.
    pub passphrase_env: Option<String>,
    /// The `known_hosts` file the host key is checked against.
    pub known_hosts: PathBuf,
    /// Trust a host missing from `known_hosts` and append its key there. A *changed* key is
    /// refused even then.
    pub accept_new_host_keys: bool,
    /// Limit for the TCP connect.
    pub connect_timeout: Duration,
    /// Limit for any one blocking libssh2 call (handshake, auth, SFTP), and how long data sent
    /// may stay unacknowledged before the connection counts as dead (`TCP_USER_TIMEOUT`); zero:
    /// none. A remote command may stay silent for longer: keepalives show the host is there.
    pub read_timeout: Duration,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            host: String::new(),
            port: 22,
            user: String::new(),
            key_file: None,
            passphrase_env: None,
            known_hosts: default_known_hosts(),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// `~/.ssh/known_hosts` of the user running gptransfer.
pub fn default_known_hosts() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".ssh").join("known_hosts")
}

/// An SSH failure, in words meant for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshError(pub String);

impl fmt::Display for SshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SshError {}

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; a command killed by signal n reports 128 + n, as a shell would.
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// [`explain_exit`] of this output.
    pub fn explain(&self) -> String {
        explain_exit(self.code, &self.stderr)
    }
}

/// A remote exit code in words: 0 succeeded, 126 not executable, 127 command not found,
/// 128+n killed by signal n, 255 SSH failure, anything else "failed" with the remote stderr.
pub fn explain_exit(code: i32, stderr: &str) -> String {
    let stderr = stderr.trim();
    let with_stderr = |words: String| if stderr.is_empty() { words } else { format!("{words}: {stderr}") };
    match code {
        0 => "succeeded".to_string(),
        126 => with_stderr("exit 126: the command was found but is not executable (permission or format)".into()),
        127 => with_stderr(
            "exit 127: command not found on the remote host (check its PATH and that it is installed)".into(),
        ),
        255 => with_stderr("exit 255: SSH failure (connection, authentication or the remote sshd)".into()),
        129..=192 => {
            let n = code - 128;
            let name = signal_name(n).map_or(String::new(), |s| format!(" (SIG{s})"));
            with_stderr(format!("exit {code}: killed by signal {n}{name}"))
        }
        _ => {
            if stderr.is_empty() {
                format!("exit {code}: failed (no message on stderr)")
            } else {
                format!("exit {code}: failed: {stderr}")
            }
        }
    }
}

const SIGNALS: &[(i32, &str)] = &[
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (4, "ILL"),
    (5, "TRAP"),
    (6, "ABRT"),
    (7, "BUS"),
    (8, "FPE"),
    (9, "KILL"),
    (10, "USR1"),
    (11, "SEGV"),
    (12, "USR2"),
    (13, "PIPE"),
    (14, "ALRM"),
    (15, "TERM"),
];

fn signal_name(n: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(k, _)| *k == n).map(|(_, s)| *s)
}

fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim_start_matches("SIG");
    SIGNALS.iter().find(|(_, s)| *s == name).map(|(k, _)| *k)
}

/// One argument quoted for a POSIX shell: left alone when it is plain, else single-quoted with
/// embedded single quotes as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'=' | b':' | b',' | b'+' | b'@')
        });
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The command line sent to the remote shell: every argument quoted.
pub fn command_line(args: &[&str]) -> String {
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// An open, authenticated session.
#[derive(Clone)]
pub struct Ssh {
    session: Session,
    /// The session's socket, to close it under libssh2 ([`Ssh::abandon`]).
    socket: Arc<TcpStream>,
    /// `user@host:port`, for messages.
    pub target: String,
}

impl fmt::Debug for Ssh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ssh").field("target", &self.target).finish()
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The name a host has in `known_hosts`: `host` on port 22, `[host]:port` otherwise.
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Opens a session: TCP connect (with `connect_timeout`), handshake, host key check, key auth.
pub fn connect(config: &SshConfig) -> Result<Ssh, SshError> {
    let target = format!("{}@{}:{}", config.user, config.host, config.port);
    let fail = |what: &str, e: &dyn fmt::Display| SshError(format!("ssh {target}: {what}: {e}"));
    let addrs: Vec<_> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| fail("cannot resolve the host", &e))?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, config.connect_timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = match (tcp, last) {
        (Some(t), _) => t,
        (None, Some(e)) => return Err(fail(&format!("cannot connect within {:?}", config.connect_timeout), &e)),
        (None, None) => return Err(SshError(format!("ssh {target}: the host resolves to no address"))),
    };
    let mut session = Session::new().map_err(|e| fail("cannot start a session", &e))?;
    let ms = u32::try_from(config.read_timeout.as_millis()).unwrap_or(u32::MAX);
    session.set_timeout(ms);
    if !config.read_timeout.is_zero() {
        // A host that vanished mid-command never answers; the kernel gives up on it once the
        // keepalives below stay unacknowledged this long, and the read fails.
        if let Err(e) = rustix::net::sockopt::set_tcp_user_timeout(&tcp, ms) {
            tracing::debug!("ssh {target}: TCP_USER_TIMEOUT not set: {e}");
        }
    }
    let socket = Arc::new(tcp.try_clone().map_err(|e| fail("cannot keep the socket", &e))?);
    session.set_tcp_stream(tcp);
    session.handshake().map_err(|e| fail("handshake failed", &e))?;
    if !config.read_timeout.is_zero() {
        session.set_keepalive(true, keepalive_interval(config.read_timeout));
    }
    check_host_key(&session, config, &target)?;
    authenticate(&session, config, &target)?;
    Ok(Ssh { session, socket, target })
}

/// Seconds between keepalives: often enough that a dead host is noticed within `read_timeout`.
fn keepalive_interval(read_timeout: Duration) -> u32 {
    u32::try_from((read_timeout.as_secs() / 4).clamp(1, 15)).unwrap_or(15)
}

fn check_host_key(session: &Session, config: &SshConfig, target: &str) -> Result<(), SshError> {
    let (key, key_type) =
        session.host_key().ok_or_else(|| SshError(format!("ssh {target}: the server sent no host key")))?;
    let fingerprint =
        session.host_key_hash(HashType::Sha256).map_or_else(String::new, |h| format!("SHA256:{}", base64(h)));
    let name = known_hosts_name(&config.host, config.port);
    let mut known = session.known_hosts().map_err(|e| SshError(format!("ssh {target}: {e}")))?;
    let path = &config.known_hosts;
    if path.exists() {
        known
            .read_file(path, KnownHostFileKind::OpenSSH)
            .map_err(|e| SshError(format!("ssh {target}: cannot read known_hosts {}: {e}", path.display())))?;
    }
    let how_to_trust = format!(
        "to trust it, check the fingerprint with the host's owner, then run `ssh-keyscan -p {port} {host} >> {file}` \
         (or set accept_new_host_keys = true to add unknown hosts automatically)",
        port = config.port,
        host = config.host,
        file = path.display()
    );
    match known.check_port(&config.host, config.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound if config.accept_new_host_keys => {
            let format = KnownHostKeyFormat::from(key_type);
            known
                .add(&name, key, "added by gptransfer (accept_new_host_keys)", format)
                .and_then(|()| known.write_file(path, KnownHostFileKind::OpenSSH))
                .map_err(|e| SshError(format!("ssh {target}: cannot add the host key to {}: {e}", path.display())))?;
            tracing::warn!("ssh {target}: host key {fingerprint} was unknown; added to {}", path.display());
            Ok(())
        }
        CheckResult::NotFound => Err(SshError(format!(
            "ssh {target}: host key refused: {name} is not in {} (its {key_type:?} key has fingerprint {fingerprint}); {how_to_trust}",
            path.display()
        ))),
        CheckResult::Mismatch => Err(SshError(format!(
            "ssh {target}: host key refused: the key of {name} ({key_type:?}, fingerprint {fingerprint}) does not match the \
             one in {}: the host was reinstalled or someone is in the middle; if the change is expected, remove the old \
             line (`ssh-keygen -R '{name}' -f {}`) and trust the new key by running `ssh-keyscan -p {} {} >> {}`",
            path.display(),
            path.display(),
            config.port,
            config.host,
            path.display()
        ))),
        CheckResult::Failure => Err(SshError(format!("ssh {target}: cannot check the host key against {}", path.display()))),
    }
}

fn authenticate(session: &Session, config: &SshConfig, target: &str) -> Result<(), SshError> {
    let result = match &config.key_file {
        Some(key) => {
            if !key.exists() {
                return Err(SshError(format!("ssh {target}: key_file {} does not exist", key.display())));
            }
            let passphrase = match &config.passphrase_env {
                Some(var) => Some(
                    std::env::var(var)
                        .map_err(|_| SshError(format!("ssh {target}: passphrase_env names {var}, which is not set")))?,
                ),
                None => None,
            };
            session.userauth_pubkey_file(&config.user, None, key, passphrase.as_deref())
        }
        None => {
            // libssh2's own words for a missing agent are "failed connecting with agent".
            if std::env::var_os("SSH_AUTH_SOCK").is_none_or(|v| v.is_empty()) {
                return Err(SshError(format!(
                    "ssh {target}: no key_file is set and no ssh-agent is reachable (SSH_AUTH_SOCK is not set): \
                     set key_file, or start ssh-agent and `ssh-add` the key in the environment gptransfer runs in"
                )));
            }
            session.userauth_agent(&config.user)
        }
    };
    let how = config
        .key_file
        .as_ref()
        .map_or_else(|| "the keys of ssh-agent".to_string(), |k| format!("key {}", k.display()));
    match result {
        Ok(()) if session.authenticated() => Ok(()),
        Ok(()) => Err(SshError(format!("ssh {target}: authentication failed with {how}"))),
        // The key could not be read or decrypted here: nothing reached the server.
        Err(e) if e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_FILE) => Err(SshError(format!(
            "ssh {target}: cannot use {how}: {} (is it a private key, and is the passphrase in passphrase_env right?)",
            e.message()
        ))),
        // The server said no to the user and key.
        Err(e)
            if matches!(
                e.code(),
                ssh2::ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED | LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
            ) =>
        {
            Err(SshError(refused(target, &config.user, &how, e.message())))
        }
        // Anything else happened before the server judged a key (an empty agent, …).
        Err(e) => Err(SshError(format!("ssh {target}: authentication failed with {how}: {}", e.message()))),
    }
}

/// libssh2's code for a key file it cannot read or decrypt.
const LIBSSH2_ERROR_FILE: i32 = -16;
/// libssh2's codes for a login the server refused.
const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;
const LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;

/// The server refused the login. sshd sends the client no reason, and refuses a user it does
/// not let in at all (a locked or expired account, a shell it does not allow, AllowUsers)
/// exactly as it refuses a key it does not know: both causes are named, and where the answer is.
fn refused(target: &str, user: &str, how: &str, message: &str) -> String {
    format!(
        "ssh {target}: the server refused user {user:?} with {how}: {message}. sshd does not tell the client why: \
         either this public key is not in {user:?}'s authorized_keys on the host, or sshd does not let {user:?} \
         log in at all (a locked account — e.g. one created without a password while sshd runs with UsePAM no —, \
         an expired account, a shell or AllowUsers/DenyUsers rule that refuses it); the host's sshd log says which \
         (journalctl -u ssh, or /var/log/auth.log)"
    )
}

impl Ssh {
    /// The underlying libssh2 session, for what this API does not cover.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs `args` on the remote host, every argument shell-quoted (no word splitting, no
    /// injection); captures stdout, stderr and the exit code. A non-zero exit is not an error
    /// here: look at [`Output::code`] and [`explain_exit`].
    ///
    /// While the command runs the session is switched to non-blocking mode (both streams are
    /// drained together): do not use clones of this `Ssh` from other threads during a `run`.
    pub fn run(&self, args: &[&str]) -> Result<Output, SshError> {
        self.run_line(&command_line(args))
    }

    /// Runs a command line as the remote shell reads it, unquoted: only for lines built from
    /// constants or [`shell_quote`]d parts.
    pub fn run_line(&self, line: &str) -> Result<Output, SshError> {
        self.run_line_with_input(line, &[])
    }

    /// [`Ssh::run_line`] with `input` written to the command's standard input (then closed):
    /// the way to hand a secret to a remote command without its argv or a file showing it.
    pub fn run_line_with_input(&self, line: &str, input: &[u8]) -> Result<Output, SshError> {
        self.run_line_watched(line, input, Watch::default())
    }

    /// [`Ssh::run_line_with_input`] that ends the command when it runs past `watch.timeout` or
    /// when `watch.stop` is set: its whole process group (the command and whatever it started,
    /// such as gpload's gpfdist) is killed on the host before this returns the error. A command
    /// left running would go on loading after the window was reported failed.
    pub fn run_line_watched(&self, line: &str, input: &[u8], watch: Watch<'_>) -> Result<Output, SshError> {
        let t = &self.target;
        let fail = |what: &str, e: &dyn fmt::Display| SshError(format!("ssh {t}: {what}: {e}"));
        let mut channel = self.session.channel_session().map_err(|e| fail("cannot open a channel", &e))?;
        // sshd starts a command without a terminal in a new session (setsid): the shell leads a
        // process group, and `exec` keeps its pid, so that pid names the group to kill.
        channel.exec(&format!("echo {PID_MARK}$$; {line}")).map_err(|e| fail("cannot start the command", &e))?;
        if !input.is_empty() {
            channel.write_all(input).map_err(|e| fail("cannot write the command's input", &e))?;
        }
        channel.send_eof().map_err(|e| fail("cannot close the command's input", &e))?;
        // Drain both streams as data comes: reading one to its end first would stall a command
        // that fills the other's channel window (megabytes of stderr before any stdout).
        self.session.set_blocking(false);
        let deadline = watch.timeout.map(|d| Instant::now() + d);
        let drained = drain(&mut channel, &self.session, deadline, watch.stop);
        self.session.set_blocking(true);
        let (stdout, stderr) = match drained.map_err(|e| fail("cannot read the command's output", &e))? {
            Drained::Ended(stdout, stderr) => (stdout, stderr),
            Drained::Stopped(stdout) => {
                let why = match watch.timeout {
                    Some(limit) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        format!("it ran longer than its timeout of {}", humantime::format_duration(limit))
                    }
                    _ => "it was interrupted".to_string(),
                };
                let pid = split_pid(&stdout).0;
                let killed = match pid {
                    Some(pid) => self.kill_group(pid),
                    None => Err("the remote shell never said its process id".to_string()),
                };
                // What is left of the channel ends with the group; do not wait for it long.
                self.session.set_blocking(false);
                let _ = drain(&mut channel, &self.session, Some(Instant::now() + Duration::from_secs(5)), None);
                self.session.set_blocking(true);
                let _ = channel.close();
                return Err(SshError(match (killed, pid) {
                    (Ok(()), Some(pid)) => format!(
                        "ssh {t}: {why}; it was stopped (process group {pid} on the host — the command and all it \
                         started — killed)"
                    ),
                    (Err(e), _) => format!(
                        "ssh {t}: {why}, and it could not be stopped ({e}): it may still be running on the host"
                    ),
                    (Ok(()), None) => format!("ssh {t}: {why}"),
                }));
            }
        };
        channel.wait_close().map_err(|e| fail("cannot close the channel", &e))?;
        let signal = channel.exit_signal().map_err(|e| fail("cannot read the exit signal", &e))?;
        let code = match signal.exit_signal.as_deref() {
            Some(name) => 128 + signal_number(name).unwrap_or(0),
            None => channel.exit_status().map_err(|e| fail("cannot read the exit status", &e))?,
        };
        let stdout = split_pid(&stdout).1;
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Kills process group `pid` on the host: SIGTERM, then SIGKILL after 5 s; fails when it is
    /// still there 10 s on. A pid that leads no group (a shell that is not sshd's child) is
    /// killed alone.
    fn kill_group(&self, pid: u32) -> Result<(), String> {
        let line = format!(
            "p={pid}; kill -TERM -$p 2>/dev/null || kill -TERM $p 2>/dev/null; n=0; \
             while kill -0 -$p 2>/dev/null || kill -0 $p 2>/dev/null; do \
             n=$((n+1)); [ $n -eq 50 ] && {{ kill -KILL -$p 2>/dev/null || kill -KILL $p 2>/dev/null; }}; \
             [ $n -ge 100 ] && exit 1; sleep 0.1; done; exit 0"
        );
        let watch = Watch { timeout: Some(Duration::from_secs(30)), stop: None };
        match self.run_line_watched(&line, &[], watch) {
            Ok(out) if out.code == 0 => Ok(()),
            Ok(out) => Err(format!("process group {pid} was still there 10 s after SIGKILL ({})", out.explain())),
            Err(e) => Err(e.0),
        }
    }

    /// Closes the connection under libssh2. After a timeout the session is of no more use, and
    /// every call still made on it — closing the remote file, the SFTP channel, the session
    /// itself when dropped — would wait out a read_timeout of its own: a stall mid-upload cost
    /// four read_timeouts (20 minutes at the default) instead of one.
    pub fn abandon(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// `e` from an SFTP call on this session, in words; a timeout abandons the session.
    pub fn sftp_failed(&self, what: &str, p: &Path, e: &dyn fmt::Display) -> SshError {
        let text = e.to_string();
        if text.contains("Timed out") || text.contains("Timeout") || text.contains("timed out") {
            self.abandon();
        }
        SshError(format!("ssh {}: cannot {what} {}: {text}", self.target, p.display()))
    }

    /// Opens an SFTP channel.
    pub fn sftp(&self) -> Result<ssh2::Sftp, SshError> {
        self.session.sftp().map_err(|e| SshError(format!("ssh {}: cannot start SFTP: {e}", self.target)))
    }

    /// Copies a local file to `remote` over SFTP (mode 0600: window rows and control files are
    /// for this user): written as a new file under `remote`'s name with a `.tmp` suffix, then
    /// renamed, so a reader never sees half a file.
    pub fn put(&self, local: &Path, remote: &Path) -> Result<u64, SshError> {
        let sftp = self.sftp()?;
        put_with(self, &sftp, local, remote)
    }

    /// Copies `remote` to a local file over SFTP.
    pub fn get(&self, remote: &Path, local: &Path) -> Result<u64, SshError> {
        let sftp = self.sftp()?;
        get_with(self, &sftp, remote, local)
    }
}

/// A remote command talked to while it runs (see [`Ssh::start_line`]): lines written to its
/// stdin, its stdout read line by line as it comes. The session is in non-blocking mode for the
/// command's life: give it a connection of its own. Dropping it closes the connection, so the
/// command's stdin reaches EOF on the host.
pub struct Interactive {
    ssh: Ssh,
    channel: ssh2::Channel,
    out: Vec<u8>,
    err: Vec<u8>,
    out_done: bool,
    err_done: bool,
}

impl fmt::Debug for Interactive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interactive").field("target", &self.ssh.target).finish()
    }
}

impl Ssh {
    /// Starts `line` (built with [`command_line`] / [`shell_quote`]) and keeps its stdin open.
    pub fn start_line(&self, line: &str) -> Result<Interactive, SshError> {
        let t = &self.target;
        let mut channel =
            self.session.channel_session().map_err(|e| SshError(format!("ssh {t}: cannot open a channel: {e}")))?;
        channel.exec(line).map_err(|e| SshError(format!("ssh {t}: cannot start the command: {e}")))?;
        self.session.set_blocking(false);
        Ok(Interactive {
            ssh: self.clone(),
            channel,
            out: Vec::new(),
            err: Vec::new(),
            out_done: false,
            err_done: false,
        })
    }
}

impl Interactive {
    /// The complete stdout lines that arrived (without waiting), and whether stdout has ended.
    /// Sends a keepalive when nothing came, so a dead connection fails a later read.
    pub fn poll_lines(&mut self) -> Result<(Vec<String>, bool), SshError> {
        let mut buf = [0u8; 8192];
        for (done, into, stream) in [(&mut self.out_done, &mut self.out, 0), (&mut self.err_done, &mut self.err, 1)] {
            while !*done {
                match self.channel.stream(stream).read(&mut buf) {
                    Ok(0) => *done = true,
                    Ok(n) => into.extend_from_slice(&buf[..n]),
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => break,
                    Err(e) => {
                        return Err(SshError(format!("ssh {}: cannot read the command's output: {e}", self.ssh.target)))
                    }
                }
            }
        }
        if !self.out_done {
            let _ = self.ssh.session.keepalive_send();
        }
        let mut lines = Vec::new();
        while let Some(end) = self.out.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.out.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        if self.out_done && !self.out.is_empty() {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.out)).into_owned());
        }
        Ok((lines, self.out_done))
    }

    /// Writes `line` and a newline to the command's stdin.
    pub fn write_line(&mut self, line: &str) -> Result<(), SshError> {
        let mut data = format!("{line}\n").into_bytes();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !data.is_empty() {
            match self.channel.write(&data) {
                Ok(n) => {
                    data.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(SshError(format!("ssh {}: cannot write to the command: {e}", self.ssh.target))),
            }
        }
        let _ = self.channel.flush();
        Ok(())
    }

    /// What the command wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err).into_owned()
    }

    /// `user@host:port`, for messages.
    pub fn target(&self) -> &str {
        &self.ssh.target
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        // EOF on its stdin, then the connection closed under libssh2 (no waiting on a dead host):
        // sshd ends the session, and the command sees EOF either way.
        let _ = self.channel.send_eof();
        self.ssh.abandon();
    }
}

/// What may end a remote command before it ends by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watch<'a> {
    /// The longest it may run.
    pub timeout: Option<Duration>,
    /// Set (from any thread) to stop it: Ctrl+C, or a window given up.
    pub stop: Option<&'a AtomicBool>,
}

/// The first line of every command's stdout: the remote shell's pid (see `run_line_watched`).
const PID_MARK: &str = "gptransfer-remote-pid:";

/// The pid line split off a command's stdout: (pid, the command's own stdout).
fn split_pid(stdout: &[u8]) -> (Option<u32>, &[u8]) {
    let Some(rest) = stdout.strip_prefix(PID_MARK.as_bytes()) else {
        return (None, stdout);
    };
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return (None, stdout);
    };
    let pid = std::str::from_utf8(&rest[..end]).ok().and_then(|p| p.trim().parse().ok());
    (pid, &rest[end + 1..])
}

/// How a drained command ended.
enum Drained {
    /// Both streams ended: (stdout, stderr).
    Ended(Vec<u8>, Vec<u8>),
    /// The deadline passed or `stop` was set first: stdout so far.
    Stopped(Vec<u8>),
}

/// Reads stdout and stderr of a non-blocking channel until both end, the deadline passes or
/// `stop` is set. A command may stay silent for hours (gpload prints nothing while it loads):
/// keepalives, not output, show the connection is alive; a dead one fails the read.
fn drain(
    channel: &mut ssh2::Channel,
    session: &Session,
    deadline: Option<Instant>,
    stop: Option<&AtomicBool>,
) -> io::Result<Drained> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut out_done, mut err_done) = (false, false);
    let mut buf = vec![0u8; 32 * 1024];
    let mut last = Instant::now();
    while !(out_done && err_done) {
        let mut progressed = false;
        for (done, into, stream) in [(&mut out_done, &mut out, 0), (&mut err_done, &mut err, 1)] {
            if *done {
                continue;
            }
            match channel.stream(stream).read(&mut buf) {
                Ok(0) => *done = true,
                Ok(n) => {
                    into.extend_from_slice(&buf[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if progressed {
            last = Instant::now();
            continue;
        }
        if out_done && err_done {
            break;
        }
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Drained::Stopped(out));
        }
        // Would-block is libssh2's answer while a keepalive cannot be sent yet: not a failure.
        let _ = session.keepalive_send();
        // Quick while output flows, gentle on a command that has been quiet for a while.
        let nap = if last.elapsed() < Duration::from_millis(200) { 2 } else { 25 };
        std::thread::sleep(Duration::from_millis(nap));
    }
    Ok(Drained::Ended(out, err))
}

/// [`Ssh::put`] on an open SFTP channel.
pub fn put_with(ssh: &Ssh, sftp: &ssh2::Sftp, local: &Path, remote: &Path) -> Result<u64, SshError> {
    let fail = |what: &str, p: &Path, e: &dyn fmt::Display| ssh.sftp_failed(what, p, e);
    let mut tmp_name = remote.file_name().map_or_else(Default::default, |n| n.to_os_string());
    tmp_name.push(".tmp");
    let mut dot = std::ffi::OsString::from(".");
    dot.push(tmp_name);
    let tmp = remote.with_file_name(dot);
    let mut from = File::open(local).map_err(|e| SshError(format!("cannot open {}: {e}", local.display())))?;
    // A new file, never one found there: another user's (planted in a shared directory) could
    // be read or changed by them before the reader comes. An earlier attempt's is ours to remove.
    let _ = sftp.unlink(&tmp);
    let mut to = sftp
        .open_mode(
            &tmp,
            ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::EXCLUSIVE,
            0o600,
            ssh2::OpenType::File,
        )
        .map_err(|e| {
            let failed = fail("create", &tmp, &e);
            SshError(format!("{} (as a new private file: another user's file may be in the way)", failed.0))
        })?;
    let n = io::copy(&mut from, &mut to).map_err(|e| fail("write", &tmp, &e))?;
    to.fsync().ok();
    to.flush().map_err(|e| fail("write", &tmp, &e))?;
    drop(to);
    if let Err(e) = sftp.rename(&tmp, remote, None) {
        // SFTP v3 servers (OpenSSH) refuse to rename over an existing file: remove it, retry.
        if sftp.lstat(remote).is_err() || sftp.unlink(remote).is_err() {
            return Err(fail("rename", &tmp, &e));
        }
        sftp.rename(&tmp, remote, None).map_err(|e| fail("rename", &tmp, &e))?;
    }
    Ok(n)
}

/// [`Ssh::get`] on an open SFTP channel.
pub fn get_with(ssh: &Ssh, sftp: &ssh2::Sftp, remote: &Path, local: &Path) -> Result<u64, SshError> {
    let mut from = sftp.open(remote).map_err(|e| ssh.sftp_failed("open", remote, &e))?;
    let mut to = File::create(local).map_err(|e| SshError(format!("cannot create {}: {e}", local.display())))?;
    let n = io::copy(&mut from, &mut to)
        .map_err(|e| ssh.sftp_failed("read", remote, &format!("{e} (into {})", local.display())))?;
    to.sync_all().map_err(|e| SshError(format!("cannot write {}: {e}", local.display())))?;
    Ok(n)
}

/// Removes a remote directory and everything in it over SFTP; a missing directory is fine.
pub fn remove_dir_all(ssh: &Ssh, sftp: &ssh2::Sftp, dir: &Path) -> Result<(), SshError> {
    let fail = |what: &str, p: &Path, e: &dyn fmt::Display| ssh.sftp_failed(what, p, e);
    match sftp.lstat(dir) {
        Ok(stat) if stat.is_dir() => {}
        Ok(_) => return sftp.unlink(dir).map_err(|e| fail("remove", dir, &e)),
        Err(_) => return Ok(()),
    }
    for (path, stat) in sftp.readdir(dir).map_err(|e| fail("list", dir, &e))? {
        if stat.is_dir() {
            remove_dir_all(ssh, sftp, &path)?;
        } else {
            sftp.unlink(&path).map_err(|e| fail("remove", &path, &e))?;
        }
    }
    sftp.rmdir(dir).map_err(|e| fail("remove", dir, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_arguments_whole() {
        assert_eq!(shell_quote("gpload"), "gpload");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's; rm -rf /"), r"'it'\''s; rm -rf /'");
        assert_eq!(command_line(&["echo", "$HOME", "`x`"]), "echo '$HOME' '`x`'");
    }

    #[test]
    fn exit_codes_in_words() {
        assert!(explain_exit(127, "sh: 1: nope: not found").contains("command not found"));
        assert!(explain_exit(126, "").contains("not executable"));
        assert!(explain_exit(137, "").contains("killed by signal 9 (SIGKILL)"));
        assert!(explain_exit(255, "").contains("SSH failure"));
        assert_eq!(explain_exit(1, "bad input\n"), "exit 1: failed: bad input");
    }

    #[test]
    fn the_pid_line_is_split_off_stdout() {
        assert_eq!(split_pid(b"gptransfer-remote-pid:4242\nhello\n"), (Some(4242), &b"hello\n"[..]));
        assert_eq!(split_pid(b"hello\n"), (None, &b"hello\n"[..]));
        assert_eq!(split_pid(b"gptransfer-remote-pid:42"), (None, &b"gptransfer-remote-pid:42"[..]));
    }

    #[test]
    fn base64_matches_openssh_fingerprints() {
        assert_eq!(base64(b"hello"), "aGVsbG8");
        assert_eq!(base64(b"hel"), "aGVs");
    }
}
