//! Connections to clusters: where, as whom, with which secret, and the session settings that
//! make every flavour speak the same COPY text.

mod copy_out;
mod export;
mod idle;
mod pgpass;
mod tls;

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

pub use copy_out::{end_after_error, SessionDone};
pub use export::{export_window, external_statement};
pub use idle::{IdleSessions, Taken};
pub use tls::name as sslmode_name;
use tls::Tls;

use crate::config::ClusterConfig;
use crate::dialect::{sql, Flavour};
use crate::error::{pg_message, Error, RoleError};

/// Used when the parameters carry no connect timeout (the config always sets one).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured cluster, password resolved, ready to open sessions.
#[derive(Clone)]
pub struct ClusterHandle {
    /// Name in the config.
    pub name: String,
    /// `user@host:port/db`, for messages.
    pub address: String,
    pg: tokio_postgres::Config,
    forced_flavour: Option<Flavour>,
    read_timeout: Duration,
    password_source: Option<String>,
    tls: Tls,
    /// The CA file of verify-ca / verify-full, for tools that connect by themselves.
    sslrootcert: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ClusterHandle {
    // Hand-written so the password inside `pg` can never be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle").field("name", &self.name).field("address", &self.address).finish()
    }
}

/// An open session with its detected flavour.
pub struct Session {
    /// The client; its connection task runs in the background.
    pub client: Client,
    /// What the server is.
    pub flavour: Flavour,
    /// Backend pid, to find the session in `pg_stat_activity`.
    pub backend_pid: i32,
    /// Timeout for each read on this session.
    pub read_timeout: Duration,
    /// Closes the connection once the session is dropped (see [`ConnectionTask`]).
    _connection: ConnectionTask,
}

/// How long a dropped session's connection may take to end by itself.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The task driving a session's connection. Dropping the client ends it only once no
/// statement is in flight: a session given up on after a read_timeout kept its socket until
/// the server answered — never, through a stalled network — and the server kept the window's
/// transaction and its locks (a full table's TRUNCATE blocked every later load of it). So a
/// moment after the session is dropped, the socket is closed.
struct ConnectionTask(Option<tokio::task::AbortHandle>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        if let (Some(task), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                tokio::time::sleep(CLOSE_GRACE).await;
                task.abort();
            });
        }
    }
}

impl Session {
    /// Runs one future on this session's client under its read timeout.
    pub async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, RoleError> {
        match tokio::time::timeout(self.read_timeout, fut).await {
            Ok(result) => result.map_err(|e| role_error(&e)),
            Err(_) => {
                self.close();
                Err(stalled(self.read_timeout))
            }
        }
    }

    /// Closes the connection now; the server rolls back what is open. After a statement got
    /// no answer the session is of no more use: whatever is sent next waits behind it, each
    /// for its own read_timeout (a compare of many windows took as many timeouts).
    pub fn close(&self) {
        if let Some(task) = &self._connection.0 {
            task.abort();
        }
    }
}

/// Where a cluster's config points, as libpq would take it: the url, else `host`, `port`,
/// `dbname`, `user`, each else from `$PGHOST`, `$PGPORT`, `$PGDATABASE`, `$PGUSER` (then
/// localhost, 5432, the user, the OS user). No password is read.
fn located(cfg: &ClusterConfig) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let mut pg = match &cfg.url {
        Some(url) => url.parse::<tokio_postgres::Config>()?,
        None => tokio_postgres::Config::new(),
    };
    if pg.get_hosts().is_empty() {
        let host = cfg.host.clone().or_else(|| std::env::var("PGHOST").ok()).unwrap_or_else(|| "localhost".into());
        pg.host(&host);
    }
    if pg.get_ports().is_empty() {
        let port = cfg.port.or_else(|| std::env::var("PGPORT").ok().and_then(|p| p.parse().ok())).unwrap_or(5432);
        pg.port(port);
    }
    if pg.get_user().is_none() {
        let user = cfg
            .user
            .clone()
            .or_else(|| std::env::var("PGUSER").ok())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".into());
        pg.user(&user);
    }
    if pg.get_dbname().is_none() {
        let user = pg.get_user().unwrap_or("postgres").to_string();
        let db = cfg.dbname.clone().or_else(|| std::env::var("PGDATABASE").ok()).unwrap_or(user);
        pg.dbname(&db);
    }
    Ok(pg)
}

/// `$PGSSLMODE`, read as libpq reads it (`allow` tries TLS first here, as `prefer`); `prefer`
/// when unset.
fn env_ssl_mode() -> Result<crate::config::SslMode, String> {
    use crate::config::SslMode;
    let Ok(text) = std::env::var("PGSSLMODE") else { return Ok(SslMode::Prefer) };
    Ok(match text.as_str() {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(format!(
                "PGSSLMODE is {other:?}, not an sslmode: unset it, or write disable, allow, prefer, require, \
                 verify-ca or verify-full (or set sslmode in the cluster's config, which wins)"
            ))
        }
    })
}

/// The database a cluster's config names, as `host:port/database` (the first host, in lower
/// case): two clusters with the same one are one database whatever their users. None when the
/// url does not parse.
pub fn database_address(cfg: &ClusterConfig) -> Option<String> {
    let pg = located(cfg).ok()?;
    let host = match pg.get_hosts().first()? {
        Host::Tcp(h) => h.to_lowercase(),
        #[cfg(unix)]
        Host::Unix(p) => p.display().to_string(),
    };
    Some(format!("{host}:{}/{}", pg.get_ports().first().copied().unwrap_or(5432), pg.get_dbname().unwrap_or("")))
}

impl ClusterHandle {
    /// Builds the connection parameters; reads the password source (env, file, url, .pgpass,
    /// `$PGPASSWORD`) but connects nowhere.
    pub fn new(name: &str, cfg: &ClusterConfig) -> Result<ClusterHandle, Error> {
        let cluster_err = |address: &str, message: String, hint: Option<String>| Error::Cluster {
            cluster: name.to_string(),
            address: address.to_string(),
            message,
            hint,
        };
        let mut pg = located(cfg).map_err(|e| {
            cluster_err(
                "url",
                format!("the url does not parse: {e}"),
                Some("write postgres://user@host:port/database".into()),
            )
        })?;
        let user = pg.get_user().unwrap_or("postgres").to_string();
        let host = match pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let db = pg.get_dbname().unwrap_or("").to_string();
        let address = format!("{user}@{host}:{port}/{db}");

        let mut password_source = None;
        if let Some(var) = &cfg.password_env {
            let value = std::env::var(var).map_err(|_| {
                cluster_err(
                    &address,
                    format!("password_env names ${var}, which is not set"),
                    Some(format!("export {var}=… before running, or use password_file / .pgpass")),
                )
            })?;
            pg.password(value);
            password_source = Some(format!("${var}"));
        } else if let Some(path) = &cfg.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                cluster_err(&address, format!("cannot read password_file {}: {e}", path.display()), None)
            })?;
            pg.password(text.lines().next().unwrap_or(""));
            password_source = Some(path.display().to_string());
        } else if pg.get_password().is_some() {
            password_source = Some("the url".into());
        } else if let Some(p) = pgpass::default_path().and_then(|path| pgpass::lookup(&path, &host, port, &db, &user)) {
            pg.password(p);
            password_source = Some(".pgpass".into());
        } else if let Ok(p) = std::env::var("PGPASSWORD") {
            pg.password(p);
            password_source = Some("$PGPASSWORD".into());
        }

        // The config's sslmode, else the url's (tokio-postgres knows disable/prefer/require),
        // else `$PGSSLMODE`, as libpq takes them.
        let url_mode = cfg.url.as_deref().is_some_and(|u| u.contains("sslmode=")).then(|| match pg.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => crate::config::SslMode::Disable,
            tokio_postgres::config::SslMode::Require => crate::config::SslMode::Require,
            _ => crate::config::SslMode::Prefer,
        });
        let mode = match cfg.sslmode.or(url_mode) {
            Some(mode) => mode,
            None => env_ssl_mode().map_err(|m| cluster_err(&address, m, None))?,
        };
        // `$PGSSLROOTCERT` only where a verify mode uses it (libpq ignores it elsewhere).
        let verifies = matches!(mode, crate::config::SslMode::VerifyCa | crate::config::SslMode::VerifyFull);
        let sslrootcert = cfg
            .sslrootcert
            .clone()
            .or_else(|| std::env::var_os("PGSSLROOTCERT").filter(|_| verifies).map(std::path::PathBuf::from));
        let tls = tls::setup(mode, sslrootcert.as_deref(), &mut pg).map_err(|m| {
            cluster_err(&address, m, Some("see sslmode and sslrootcert in the README's cluster keys".into()))
        })?;

        pg.connect_timeout(cfg.connect_timeout.0);
        pg.keepalives(true);
        pg.keepalives_idle(Duration::from_secs(30));
        pg.keepalives_interval(Duration::from_secs(10));
        pg.keepalives_retries(6);
        Ok(ClusterHandle {
            name: name.to_string(),
            address,
            pg,
            forced_flavour: cfg.flavor.map(Flavour::from_name),
            read_timeout: cfg.read_timeout.0,
            password_source,
            tls,
            sslrootcert,
        })
    }

    /// `PGSSLMODE` / `PGSSLROOTCERT` for tools that connect by themselves (gpload), so they
    /// secure their sessions as ours are.
    pub fn libpq_tls_env(&self) -> Vec<(String, String)> {
        let mode = match &self.tls {
            Tls::Off => crate::config::SslMode::Disable,
            Tls::On { mode, .. } => *mode,
        };
        let mut env = vec![("PGSSLMODE".to_string(), sslmode_name(mode).to_string())];
        if let Some(ca) = &self.sslrootcert {
            env.push(("PGSSLROOTCERT".to_string(), ca.display().to_string()));
        }
        env
    }

    /// One connection attempt, with or without TLS; the connection task is spawned.
    async fn open(&self, pg: &tokio_postgres::Config, plain: bool) -> Result<Connected, tokio_postgres::Error> {
        match (&self.tls, plain) {
            (Tls::On { connector, .. }, false) => spawn_connection(pg, connector.clone(), &self.name).await,
            _ => spawn_connection(pg, NoTls, &self.name).await,
        }
    }

    /// Connects as `pg` says; `prefer` falls back to plain TCP when the TLS handshake fails
    /// (libpq does the same), e.g. an old server whose TLS this OpenSSL refuses.
    async fn open_bounded(
        &self,
        pg: &tokio_postgres::Config,
    ) -> Result<Result<Connected, tokio_postgres::Error>, Error> {
        // tokio-postgres bounds only the TCP connect by connect_timeout; a server (or anything
        // between) that accepts it and then stalls in TLS, startup or authentication would be
        // waited for forever, its keepalives answered all along. libpq bounds the whole of it.
        let limit = self.pg.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        tokio::time::timeout(limit, self.open_prefer(pg)).await.map_err(|_| {
            self.error(
                format!("cannot connect: no answer within {limit:?} (connect_timeout)"),
                Some(
                    "check that the server (and anything between: a proxy, a pooler) answers; raise connect_timeout \
                     if it is only slow"
                        .into(),
                ),
            )
        })
    }

    async fn open_prefer(&self, pg: &tokio_postgres::Config) -> Result<Connected, tokio_postgres::Error> {
        match self.open(pg, false).await {
            // Only a failed handshake: an unreachable server would just be waited for twice.
            Err(e)
                if e.code().is_none()
                    && pg_message(&e).contains("TLS")
                    && matches!(self.tls, Tls::On { mode: crate::config::SslMode::Prefer, .. }) =>
            {
                tracing::debug!(cluster = %self.name, "TLS failed ({}); sslmode prefer: plain TCP", pg_message(&e));
                let mut plain = pg.clone();
                plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
                self.open(&plain, true).await
            }
            r => r,
        }
    }

    /// Opens a session named `application` (visible in `pg_stat_activity`), detects the
    /// flavour and applies the common session settings.
    pub async fn connect(&self, application: &str, timezone: Option<&str>) -> Result<Session, Error> {
        let mut pg = self.pg.clone();
        pg.application_name(application);
        let (client, task) = match self.open_bounded(&pg).await? {
            Ok(c) => c,
            // 8.x servers (GP4, GP5) refuse the application_name startup parameter.
            Err(e) if e.code().map(|c| c.code()) == Some("42704") => {
                self.open_bounded(&self.pg).await?.map_err(|e| self.connect_error(&e))?
            }
            Err(e) => return Err(self.connect_error(&e)),
        };
        let row = timed(self.read_timeout, client.query_one("SELECT version(), pg_backend_pid()", &[]))
            .await
            .map_err(|m| self.error(format!("cannot read version(): {m}"), None))?;
        let version: String = row.get(0);
        let backend_pid: i32 = row.get(1);
        let flavour = self.forced_flavour.unwrap_or_else(|| Flavour::detect(&version));
        timed(self.read_timeout, client.batch_execute(&sql::session_setup(flavour, timezone)))
            .await
            .map_err(|m| self.error(format!("cannot apply session settings: {m}"), None))?;
        Ok(Session { client, flavour, backend_pid, read_timeout: self.read_timeout, _connection: task })
    }

    /// The connection parameters (host, port, user, database, password), for tools such as
    /// gpload that connect by themselves. `tokio_postgres::Config`'s Debug hides the password.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// An error about this cluster.
    pub fn error(&self, message: String, hint: Option<String>) -> Error {
        Error::Cluster { cluster: self.name.clone(), address: self.address.clone(), message, hint }
    }

    fn connect_error(&self, e: &tokio_postgres::Error) -> Error {
        let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
        let message = pg_message(e);
        let hint = match code.as_str() {
            "28000" if message.contains("no encryption") => Some(
                "the server takes this user over TLS only: set sslmode = \"require\" (or verify-ca / verify-full)"
                    .into(),
            ),
            "28P01" | "28000" => Some(match &self.password_source {
                Some(src) => format!("the password comes from {src}; check it, or the server's pg_hba.conf"),
                None => "no password was configured: set password_env or password_file, or add a .pgpass line".into(),
            }),
            "3D000" => Some("create the database, or fix the url".into()),
            "" if message.contains("TLS") || message.contains("certificate") || message.contains("SSL") => Some(
                "check sslmode and sslrootcert: verify-ca needs the server's certificate signed by sslrootcert, \
                 verify-full also needs it issued for the host in the url; require needs ssl = on on the server"
                    .into(),
            ),
            "" => Some("check host and port, that the server runs and accepts TCP connections from this host".into()),
            _ => None,
        };
        let message = if code.is_empty() { format!("cannot connect: {message}") } else { message };
        self.error(message, hint)
    }
}

/// Runs one statement under a read timeout, the error in words.
pub async fn timed<T>(
    read_timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, RoleError> {
    match tokio::time::timeout(read_timeout, fut).await {
        Ok(result) => result.map_err(|e| role_error(&e)),
        Err(_) => Err(stalled(read_timeout)),
    }
}

fn role_error(e: &tokio_postgres::Error) -> RoleError {
    RoleError { message: pg_message(e), retriable: crate::error::is_connection_error(e) }
}

fn stalled(read_timeout: Duration) -> RoleError {
    RoleError::retriable(format!("no answer from the server within {read_timeout:?} (read_timeout)"))
}

/// A client and the task of its connection.
type Connected = (Client, ConnectionTask);

/// Connects and spawns the connection's task, so callers need not name its TLS stream type.
async fn spawn_connection<T>(
    pg: &tokio_postgres::Config,
    tls: T,
    cluster: &str,
) -> Result<Connected, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = pg.connect(tls).await?;
    let cluster = cluster.to_string();
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(cluster = %cluster, "connection ended: {}", pg_message(&e));
        }
    });
    Ok((client, ConnectionTask(Some(task.abort_handle()))))
}
