//! A real OpenSSH server on 127.0.0.1 for the SSH tests: generated host and client keys, its own
//! config (`AuthorizedKeysFile` in a temp dir, `StrictModes no`, `UsePAM no`, key login only,
//! internal SFTP), run in the foreground as a child process and killed on drop.
//!
//! ```ignore
//! let sshd = support::sshd::Sshd::start();
//! sshd.write_known_hosts(&env.dir().join("known_hosts"));
//! // connect to 127.0.0.1:sshd.port as sshd.user with sshd.client_key
//! ```
//!
//! It never skips: a missing `/usr/sbin/sshd` or `ssh-keygen` fails the test, saying what to
//! install (`scripts/setup.sh` installs openssh-server).

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The sshd binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd, stopped on drop.
pub struct Sshd {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// The user to log in as (the one running the tests).
    pub user: String,
    /// Private key whose public half is in the server's authorized keys.
    pub client_key: PathBuf,
    /// The server's ed25519 host public key file (`<type> <base64> <comment>`).
    pub host_pub: PathBuf,
    /// sshd's log (stderr, `-e`).
    pub log: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

/// `ssh-keygen -t ed25519 -N '' -f path`: a fresh key pair.
pub fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gptransfer-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({e}): install openssh-client (scripts/setup.sh)"));
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("cannot run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free port")
}

impl Sshd {
    /// Starts a server; panics (fails the test) when it cannot.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/setup.sh) — the SSH tests need a real sshd"
        );
        let dir = tempfile::Builder::new().prefix("sshd-").tempdir().expect("cannot create the sshd directory");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        // sshd insists on its privilege separation directory, even in the foreground.
        let _ = fs::create_dir_all("/run/sshd");
        let user = current_user();
        let log = dir.path().join("sshd.log");
        let config = dir.path().join("sshd_config");
        // The remote user's temporary directory: one per server, so what a test leaves or
        // plants there stays its own.
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\nStrictModes no\n\
                     UsePAM no\nPidFile {pid}\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowAgentForwarding no\n\
                     X11Forwarding no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\nSetEnv TMPDIR={tmp}\n",
                    host = host_key.display(),
                    auth = authorized.display(),
                    pid = dir.path().join("sshd.pid").display(),
                    tmp = tmp.display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd { port, user, client_key, host_pub: host_key.with_extension("pub"), log, child, dir };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let text = fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("Address already in use") {
                        break; // another process took the port: try another
                    }
                    panic!("sshd exited with {status} before listening:\n{text}");
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("sshd did not listen on 127.0.0.1:{port} within 10 s:\n{}", self_log(&log));
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("sshd could not bind a free port in 5 attempts:\n{}", self_log(&log));
    }

    /// The server's directory (config, keys, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `known_hosts` line for this server: `[127.0.0.1]:<port> ssh-ed25519 <key>`.
    pub fn known_hosts_line(&self) -> String {
        let text = fs::read_to_string(&self.host_pub).unwrap();
        let mut parts = text.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// Writes a `known_hosts` file trusting this server.
    pub fn write_known_hosts(&self, path: &Path) {
        fs::write(path, self.known_hosts_line()).unwrap();
    }

    /// A new client key pair that the server does not know.
    pub fn stranger_key(&self) -> PathBuf {
        let path = self.dir.path().join("stranger_ed25519");
        if !path.exists() {
            keygen(&path);
        }
        path
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self_log(&self.log)
    }
}

fn self_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
