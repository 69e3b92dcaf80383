//! The zone and the clock a table's windows are cut in. Window bounds are wall-clock
//! timestamps; on a `timestamptz` column each server reads them in its session's TimeZone, so
//! both sides must read them in the same zone, and "now" must be that zone's now, not the ETL
//! host's. The zone is the job's `timezone`, else the source server's own; now is read from the
//! source in that zone (the clock the rows were written by).

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::cluster::{ClusterHandle, Session};
use crate::config::TableSpec;
use crate::error::Error;

/// A table's zone and the current wall-clock time there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableClock {
    /// An IANA zone name or offset as the server spells it (`UTC`, `Asia/Shanghai`, `PRC`).
    pub zone: String,
    /// Now in `zone`, to the microsecond.
    pub now: NaiveDateTime,
}

/// Reads the clock on a session of the table's source opened with the table's `timezone` (or
/// none: then the session is in the server's zone, which becomes the table's).
pub async fn read(src: &Session, t: &TableSpec) -> Result<TableClock, Error> {
    let fail = |message: String| Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message: format!("cannot read the source's time zone and clock: {message}"),
        hint: Some("check that the source answers simple queries (SHOW TimeZone, SELECT LOCALTIMESTAMP)".into()),
    };
    // to_char: the same text on every version (8.2 has float timestamps and prints `.20`).
    let messages = src
        .timed(
            src.client.simple_query(
                "SELECT current_setting('TimeZone'), to_char(LOCALTIMESTAMP, 'YYYY-MM-DD HH24:MI:SS.US')",
            ),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((r.get(0), r.get(1))),
            _ => None,
        })
        .ok_or_else(|| fail("no row".into()))?;
    let (Some(zone), Some(now)) = row else { return Err(fail("NULL zone or time".into())) };
    let now = NaiveDateTime::parse_from_str(now, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|e| fail(format!("unexpected LOCALTIMESTAMP {now:?}: {e}")))?;
    Ok(TableClock { zone: zone.to_string(), now })
}

/// A session's key: cluster name and the zone it was opened in (None: the server's own).
pub type SessionKey = (String, Option<String>);

/// Sessions per cluster and zone, opened on first use: two jobs in different zones must not
/// share one, or a window would mean other instants on one side.
#[derive(Default)]
pub struct ZonedSessions(BTreeMap<SessionKey, Session>);

impl ZonedSessions {
    /// The session on `cluster` in `zone`, opened when there is none yet.
    pub async fn open(
        &mut self,
        cluster: &ClusterHandle,
        zone: Option<&str>,
        application: &str,
    ) -> Result<SessionKey, Error> {
        let key = (cluster.name.clone(), zone.map(str::to_string));
        if !self.0.contains_key(&key) {
            let session = cluster.connect(application, zone).await?;
            self.0.insert(key.clone(), session);
        }
        Ok(key)
    }

    pub fn get(&self, key: &SessionKey) -> Option<&Session> {
        self.0.get(key)
    }

    /// The table's zone and clock, read on its source (`source`) in the job's zone; sets the
    /// table's `timezone` to that zone, so the target's sessions and every plugin's are opened
    /// in it. Returns the source session's key too.
    pub async fn clock(
        &mut self,
        t: &mut TableSpec,
        source: &ClusterHandle,
        application: &str,
    ) -> Result<(SessionKey, TableClock), Error> {
        let key = self.open(source, t.timezone.as_deref(), application).await?;
        let session =
            self.get(&key).ok_or_else(|| Error::State { cluster: t.from.clone(), message: "session lost".into() })?;
        let clock = read(session, t).await?;
        t.timezone = Some(clock.zone.clone());
        Ok((key, clock))
    }
}
