//! `compare`: window by window, both clusters at once, drilled down where they differ; the
//! differences go to the alarm table.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use super::check::{check_table, columns};
use super::clock::ZonedSessions;
use super::run::{application_name, handles};
use crate::cluster::Session;
use crate::compare::{compare_window, DrillSettings, Scope, WindowComparison};
use crate::config::{Config, Mode, TableSpec};
use crate::dialect::canonical::StoredText;
use crate::error::Error;
use crate::registry::Registry;
use crate::state::State;
use crate::window::Window;

/// What `compare` is asked to do.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// First window start (default: the job start).
    pub from: Option<NaiveDateTime>,
    /// No window ends after this (default: the table's cursor, i.e. what has been loaded).
    pub to: Option<NaiveDateTime>,
    /// Differences kept per window (a safety cap; all are counted). Reports show fewer.
    pub max_keys: usize,
    /// Explicit windows per table key (used after a repair), instead of from/to.
    pub windows: Option<BTreeMap<String, Vec<Window>>>,
    /// Write differences to the alarm table.
    pub record_alarms: bool,
}

/// The windows to compare for a table: `[from, to)` cut as the planner cuts it (a short last
/// window at the table's fixed end included).
fn windows_between(t: &TableSpec, from: NaiveDateTime, to: NaiveDateTime) -> Vec<Window> {
    crate::window::tile(t, from, to)
}

/// Compares the selected tables; returns one comparison per window.
pub async fn compare_tables(
    config: &Config,
    registry: &Registry,
    tables: &[TableSpec],
    options: &CompareOptions,
) -> Result<Vec<WindowComparison>, Error> {
    let application = application_name();
    let mut names = vec![config.state.cluster.clone()];
    for t in tables {
        names.push(t.from.clone());
        names.push(t.to.clone());
    }
    let clusters = handles(config, names)?;
    let handle = |name: &str| {
        clusters
            .get(name)
            .cloned()
            .ok_or_else(|| Error::State { cluster: name.into(), message: "not configured".into() })
    };
    let state = State::open(handle(&config.state.cluster)?, &config.state.schema, &application).await?;

    // A table's windows are read in its zone on both sides, as in `run`.
    let mut sessions = ZonedSessions::default();
    let mut out = Vec::new();
    for t in tables {
        let mut t = t.clone();
        let t = &mut t;
        let comparator = registry.comparator(t.compare.get_ref()).map_err(|e| Error::Check {
            job: t.job.clone(),
            table: t.display_name(),
            message: format!("compare: {e}"),
            hint: None,
        })?;
        let (src_key, _) = sessions.clock(t, &handle(&t.from)?, &application).await?;
        let dst_key = sessions.open(&handle(&t.to)?, t.timezone.as_deref(), &application).await?;
        let t: &TableSpec = t;
        let (Some(src), Some(dst)) = (sessions.get(&src_key), sessions.get(&dst_key)) else { continue };
        let (src_text, dst_text) = stored_text(registry, t, src, dst).await?;
        let check = check_table(t, src, &t.from, dst, &t.to).await?;
        let src_cols = columns(src, &t.from, &t.source_table, t).await?;
        let dst_cols = columns(dst, &t.to, &t.target_table, t).await?;
        let typed = |cols: &[super::check::Column]| -> Vec<(String, String)> {
            check
                .columns
                .iter()
                .map(|n| {
                    let ty = cols.iter().find(|c| &c.name == n).map_or("text".to_string(), |c| c.type_name.clone());
                    (n.clone(), ty)
                })
                .collect()
        };
        let condition = |cols: &[super::check::Column]| {
            t.condition_column.as_ref().map(|c| {
                let ty = cols.iter().find(|x| &x.name == c).map_or("timestamp".to_string(), |x| x.type_name.clone());
                (c.clone(), ty)
            })
        };
        let windowed = t.mode != Mode::Full && t.condition_column.is_some();
        let windows: Vec<Option<Window>> = if !windowed {
            vec![None]
        } else {
            let list = match &options.windows {
                Some(map) => map.get(&super::run::table_key(t)).cloned().unwrap_or_default(),
                None => {
                    let cursor = state.table_cursor(t).await?;
                    let to = options.to.or(cursor);
                    match to {
                        Some(to) => {
                            let windows = windows_between(t, options.from.unwrap_or(t.start), to);
                            super::clock::join_in_zone(src, t, check.condition_type.as_deref(), windows).await?
                        }
                        None => Vec::new(),
                    }
                }
            };
            list.into_iter().map(Some).collect()
        };
        let settings = DrillSettings { key: t.key.clone(), max_keys: options.max_keys };
        // Only the rows the source's filter lets through were moved: compare those.
        let source_filter = registry
            .source(t.source.get_ref())
            .map_err(|e| Error::Check {
                job: t.job.clone(),
                table: t.display_name(),
                message: format!("source: {e}"),
                hint: None,
            })?
            .row_filter();
        for w in windows {
            let scope = |table: &crate::dialect::QualifiedName,
                         cols: &[super::check::Column],
                         text,
                         filter: &Option<String>| Scope {
                table: table.clone(),
                columns: typed(cols),
                condition: if windowed { condition(cols) } else { None },
                range: w.map(|w| (w.start, w.end)),
                group: None,
                text,
                filter: filter.clone(),
            };
            let window_id = w.map_or("full".to_string(), |w| w.id());
            let c = compare_window(
                comparator.as_ref(),
                src,
                dst,
                scope(&t.source_table, &src_cols, src_text, &source_filter),
                scope(&t.target_table, &dst_cols, dst_text, &None),
                &settings,
                &t.job,
                // The entry, so each target of one source has its own alarms.
                &t.display_name(),
                &window_id,
            )
            .await;
            if options.record_alarms {
                state.record_alarms(&c, "window").await?;
            }
            out.push(c);
        }
    }
    if options.record_alarms {
        mirror_alarms(config, &clusters, &application, &out).await?;
    }
    Ok(out)
}

/// Copies each differing window into the configured mirror table (the seed's
/// `system_alarm` on another cluster), one row per window.
async fn mirror_alarms(
    config: &Config,
    clusters: &BTreeMap<String, crate::cluster::ClusterHandle>,
    application: &str,
    found: &[WindowComparison],
) -> Result<(), Error> {
    let Some((cluster, table)) = &config.alarm.mirror else { return Ok(()) };
    let differing: Vec<&WindowComparison> = found.iter().filter(|c| !c.equal).collect();
    if differing.is_empty() {
        return Ok(());
    }
    let handle = match clusters.get(cluster) {
        Some(h) => h.clone(),
        None => {
            let cfg = config.clusters.get(cluster).ok_or_else(|| Error::State {
                cluster: cluster.clone(),
                message: "alarm.mirror_cluster is not defined".into(),
            })?;
            crate::cluster::ClusterHandle::new(cluster, cfg)?
        }
    };
    let session = handle.connect(application, None).await?;
    let sql = format!(
        "INSERT INTO {} (data_name, evt_timestamp, message) VALUES ('GPTRANSFER', localtimestamp, $1)",
        table.quoted()
    );
    for c in differing {
        let message = match &c.error {
            Some(e) => format!("{} {} window {}: could not be compared: {e}", c.job, c.table, c.window),
            None => format!(
                "{} {} window {}: {} differences (source {} rows, target {} rows)",
                c.job, c.table, c.window, c.total_differences, c.source_count, c.target_count
            ),
        };
        session.timed(session.client.execute(sql.as_str(), &[&message])).await.map_err(|e| Error::State {
            cluster: cluster.clone(),
            message: format!("writing the alarm mirror {table}: {}", e.message),
        })?;
    }
    Ok(())
}

/// How each side's text is hashed (see [`StoredText`]): as it is in a UTF8 database; in its
/// UTF-8 form in a database with another real encoding; and GBK/GB18030 bytes in a SQL_ASCII
/// source (the `gp4` source's `source_encoding`) converted to UTF-8, as the transfer did.
async fn stored_text(
    registry: &Registry,
    t: &TableSpec,
    src: &Session,
    dst: &Session,
) -> Result<(StoredText, StoredText), Error> {
    let check_err = |message: String| Error::Check { job: t.job.clone(), table: t.display_name(), message, hint: None };
    let source = registry.source(t.source.get_ref()).map_err(|e| check_err(format!("source: {e}")))?;
    let mut sides = Vec::new();
    for (session, side, stored) in [(src, "source", source.stored_text_encoding()), (dst, "target", None)] {
        let encoding = session
            .show("server_encoding")
            .await
            .map_err(|e| check_err(format!("reading server_encoding on the {side}: {}", e.message)))?;
        sides.push(StoredText::for_server(&encoding, stored, session.flavour.kernel() < 83));
    }
    Ok((sides.first().copied().unwrap_or_default(), sides.get(1).copied().unwrap_or_default()))
}
