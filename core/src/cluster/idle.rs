//! Sessions kept open between the windows of one table: a new session per window cost a
//! connection, authentication, `version()`, the session settings and, on Greenplum, a new gang
//! of processes on every segment — tens of milliseconds per window, more than small windows'
//! rows.

use std::sync::Mutex;

use super::{ClusterHandle, Session};
use crate::error::{Error, RoleError};

/// Idle sessions, each put back only by a window that ended cleanly (committed, or read to its
/// end): a failed window's session is dropped, which rolls back whatever it held open.
#[derive(Default)]
pub struct IdleSessions {
    idle: Mutex<Vec<(String, Session)>>,
}

/// A session taken from [`IdleSessions`], or freshly opened.
pub struct Taken {
    /// The session.
    pub session: Session,
    /// It served an earlier window: a connection error on its first statement may only mean
    /// the server closed it while idle, and a fresh one should be tried (see
    /// [`IdleSessions::first_statement`]).
    pub reused: bool,
}

impl std::fmt::Debug for IdleSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map(|i| i.len()).unwrap_or(0);
        f.debug_struct("IdleSessions").field("idle", &idle).finish()
    }
}

fn key(cluster: &ClusterHandle, application: &str, timezone: Option<&str>) -> String {
    format!("{}\u{0}{application}\u{0}{}", cluster.name, timezone.unwrap_or(""))
}

impl IdleSessions {
    /// An idle session of `cluster` opened with the same application name and time zone, else a
    /// new one.
    pub async fn take(
        &self,
        cluster: &ClusterHandle,
        application: &str,
        timezone: Option<&str>,
    ) -> Result<Taken, Error> {
        let wanted = key(cluster, application, timezone);
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // One the server closed while it waited is of no use.
            idle.retain(|(_, s)| !s.client.is_closed());
            idle.iter().position(|(k, _)| *k == wanted).map(|i| idle.swap_remove(i).1)
        };
        match found {
            Some(session) => Ok(Taken { session, reused: true }),
            None => Ok(Taken { session: cluster.connect(application, timezone).await?, reused: false }),
        }
    }

    /// Keeps `session` for the next window. Only for a session with no transaction open and
    /// nothing in flight.
    pub fn put(&self, cluster: &ClusterHandle, application: &str, timezone: Option<&str>, session: Session) {
        if session.client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push((key(cluster, application, timezone), session));
    }

    /// Runs a window's first statement (`run`, which must be harmless to send twice: `BEGIN`,
    /// a `COPY … TO STDOUT` not yet read) on a session taken from the pool. A reused session
    /// that fails it with a connection error (closed by the server while idle, a proxy timed
    /// it out) is dropped and the statement runs once more on a fresh session.
    pub async fn first_statement<T, F, Fut>(
        &self,
        cluster: &ClusterHandle,
        application: &str,
        timezone: Option<&str>,
        run: F,
    ) -> Result<(Session, T), RoleError>
    where
        F: Fn(Session) -> Fut,
        Fut: std::future::Future<Output = (Session, Result<T, RoleError>)>,
    {
        let connect_err = |e: Error| RoleError::retriable(e.to_string());
        let taken = self.take(cluster, application, timezone).await.map_err(connect_err)?;
        let (session, result) = run(taken.session).await;
        match result {
            Ok(v) => Ok((session, v)),
            Err(e) if taken.reused && e.retriable => {
                tracing::debug!(cluster = %cluster.name, "an idle session failed ({}); opening a new one", e.message);
                drop(session);
                let fresh = cluster.connect(application, timezone).await.map_err(connect_err)?;
                let (session, result) = run(fresh).await;
                result.map(|v| (session, v))
            }
            Err(e) => Err(e),
        }
    }
}
