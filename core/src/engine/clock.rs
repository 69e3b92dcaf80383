//! The zone and the clock a table's windows are cut in. Window bounds are wall-clock
//! timestamps; on a `timestamptz` column each server reads them in its session's TimeZone, so
//! both sides must read them in the same zone, and "now" must be that zone's now, not the ETL
//! host's. The zone is the job's `timezone`, else the source server's own; now is read from the
//! source in that zone (the clock the rows were written by).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;

use crate::cluster::{ClusterHandle, Session};
use crate::config::TableSpec;
use crate::dialect::sql::bound_literal;
use crate::error::Error;
use crate::window::{fixed_end, join_skipped, plan, Plan, Window};

/// A table's zone and the current wall-clock time there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableClock {
    /// An IANA zone name or offset as the server spells it (`UTC`, `Asia/Shanghai`, `PRC`).
    pub zone: String,
    /// The latest time in `zone` whose instant has passed, to the microsecond: the wall clock,
    /// except in the first pass of an hour the clocks go back over ([`clock_query`]).
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
    let messages = src.timed(src.client.simple_query(&clock_query("now()"))).await.map_err(|e| fail(e.to_string()))?;
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

/// The query [`read`] sends: the session's zone and the time that is due there at the instant
/// `now` (an SQL expression: `now()`, or a pinned `timestamptz` in tests).
///
/// Due is not simply the wall clock. When the clocks go back, an hour of local time happens
/// twice, and the server reads such a time as its second pass (standard time). During the first
/// pass a window ending at, say, 01:30 would look due at 01:30 daylight time although its end
/// means 01:30 standard time, an hour later: loaded before its rows exist and passed, the rows
/// arriving in that hour would never be loaded. So when the wall clock read back means an
/// instant still to come, due is the wall clock of `now` less that lead (the shift): every
/// local time up to it means an instant that has passed, and it meets the wall clock at the
/// instant the clocks go back.
pub fn clock_query(now: &str) -> String {
    // to_char: the same text on every version (8.2 has float timestamps and prints `.20`).
    format!(
        "SELECT current_setting('TimeZone'), to_char(CASE WHEN n::timestamp::timestamptz <= n THEN n::timestamp \
         ELSE (n - (n::timestamp::timestamptz - n))::timestamp END, 'YYYY-MM-DD HH24:MI:SS.US') \
         FROM (SELECT ({now})::timestamptz AS n) AS clock"
    )
}

/// The query listing which of `bounds` do not exist in the session's zone (the clocks jumped
/// over them): read as an instant and back, they come out as another local time.
pub fn skipped_query(bounds: &[NaiveDateTime]) -> String {
    let values: Vec<String> = bounds.iter().map(|b| format!("({})", bound_literal(*b, "timestamp"))).collect();
    format!(
        "SELECT to_char(b, 'YYYY-MM-DD HH24:MI:SS') FROM (VALUES {}) AS v(b) WHERE b::timestamptz::timestamp <> b",
        values.join(", ")
    )
}

/// The times among `bounds` that `src`'s zone skips (see [`join_skipped`]).
pub async fn skipped(src: &Session, t: &TableSpec, bounds: &[NaiveDateTime]) -> Result<BTreeSet<NaiveDateTime>, Error> {
    let fail = |message: String| Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message: format!("cannot ask the source which window bounds its time zone skips: {message}"),
        hint: Some("check that the source answers simple queries in the job's time zone".into()),
    };
    let mut out = BTreeSet::new();
    for chunk in bounds.chunks(1000) {
        let messages =
            src.timed(src.client.simple_query(&skipped_query(chunk))).await.map_err(|e| fail(e.to_string()))?;
        for m in &messages {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                let text = r.get(0).ok_or_else(|| fail("NULL bound".into()))?;
                let bound = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                    .map_err(|e| fail(format!("unexpected bound {text:?}: {e}")))?;
                out.insert(bound);
            }
        }
    }
    Ok(out)
}

/// [`plan`] in the source's zone: on a `timestamptz` condition column (`condition_type`, the
/// source's `typname`), windows ending at a local time the zone skips are joined to the next
/// ([`join_in_zone`]).
pub async fn plan_in_zone(
    src: &Session,
    t: &TableSpec,
    condition_type: Option<&str>,
    cursor: Option<NaiveDateTime>,
    now: NaiveDateTime,
    until: Option<NaiveDateTime>,
) -> Result<Plan, Error> {
    let mut p = plan(t, cursor, now, until);
    p.windows = join_in_zone(src, t, condition_type, p.windows).await?;
    Ok(p)
}

/// `windows` (consecutive) with those ending at a time `src`'s zone skips joined to the next,
/// on a `timestamptz` condition column (a naive column compares naive bounds: no instant is
/// involved; full mode reloads the whole table). Refused when the first starts, or the table's
/// fixed end is, at a skipped time: the server reads it as a later instant (02:30 as 03:30
/// daylight time), so the rows just after the jump would be in no window, or rows past the end
/// in the last one.
pub async fn join_in_zone(
    src: &Session,
    t: &TableSpec,
    condition_type: Option<&str>,
    windows: Vec<Window>,
) -> Result<Vec<Window>, Error> {
    if condition_type != Some("timestamptz") || t.mode == crate::config::Mode::Full {
        return Ok(windows);
    }
    let Some(first) = windows.first().map(|w| w.start) else { return Ok(windows) };
    let mut probes: Vec<NaiveDateTime> = windows.iter().map(|w| w.end).collect();
    probes.push(first);
    let skipped = skipped(src, t, &probes).await?;
    let fixed = fixed_end(t);
    let zone = t.timezone.as_deref().unwrap_or("of the source");
    let refuse = |message: String, hint: &str| Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message: format!(
            "{message}: it does not exist in time zone {zone} (its clocks jump over it), and the server \
             would read it as a later instant"
        ),
        hint: Some(format!("{hint} to the first time after the jump (e.g. the next whole hour)")),
    };
    if skipped.contains(&first) {
        return Err(refuse(
            format!("window {} starts at {first}", windows[0]),
            "move the start, the cursor (gptransfer cursor set) or --from",
        ));
    }
    if let Some(end) = fixed.filter(|e| skipped.contains(e)) {
        return Err(refuse(format!("the table ends at {end}"), "move end or final_end"));
    }
    Ok(join_skipped(windows, &skipped, fixed))
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

    /// The session opened under `key`.
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
