//! `compare`: window by window, both clusters at once, drilled down where they differ; the
//! differences go to the alarm table.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use super::check::check_table;
use super::clock::ZonedSessions;
use super::run::{application_name, handles};
use crate::cluster::Session;
use crate::compare::{compare_window, CompareKind, DrillSettings, Scope, WindowComparison};
use crate::config::{Config, Mode, TableSpec};
use crate::dialect::canonical::{self, CastTo, StoredText};
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
        let check_err = |t: &TableSpec, message: String| Error::Check {
            job: t.job.clone(),
            table: t.display_name(),
            message,
            hint: None,
        };
        let sink = registry.sink(t.sink.get_ref()).map_err(|e| check_err(t, format!("sink: {e}")))?;
        let comparator =
            comparator_for(registry, t, sink.as_ref()).map_err(|e| check_err(t, format!("compare: {e}")))?;
        match comparator.kind() {
            CompareKind::Skip => {
                tracing::info!(job = %t.job, table = %t.display_name(), "not compared (compare = \"none\")");
                continue;
            }
            CompareKind::SinkCount => {
                let (src_key, _) = sessions.clock(t, &handle(&t.from)?, &application).await?;
                let Some(src) = sessions.get(&src_key) else { continue };
                let check = super::check::check_source_for_sink(t, src, &t.from).await?;
                let windows = windows_to_compare(t, options, &state, src, check.condition_type.as_deref()).await?;
                let counter = registry
                    .comparator(&crate::config::PluginSpec::named("count"))
                    .map_err(|e| check_err(t, format!("compare: {e}")))?;
                let source_filter =
                    registry.source(t.source.get_ref()).map_err(|e| check_err(t, format!("source: {e}")))?.row_filter();
                let (src_text, _) = stored_text(registry, t, src, src).await?;
                let src_float = float_datetimes(t, src, "source").await?;
                for w in windows {
                    let scope = Scope {
                        table: t.source_table.clone(),
                        columns: Vec::new(),
                        condition: if w.is_some() {
                            t.condition_column.clone().zip(check.condition_type.clone())
                        } else {
                            None
                        },
                        range: w.map(|w| (w.start, w.end)),
                        group: None,
                        text: src_text,
                        float_datetimes: src_float,
                        text_form: Vec::new(),
                        cast_to: Vec::new(),
                        filter: source_filter.clone(),
                    };
                    let c =
                        count_against_sink(counter.as_ref(), sink.as_ref(), src, scope, t, w, &check.described).await;
                    if options.record_alarms {
                        state.record_alarms(&c, "window").await?;
                    }
                    out.push(c);
                }
                continue;
            }
            CompareKind::Rows => {}
        }
        let (src_key, _) = sessions.clock(t, &handle(&t.from)?, &application).await?;
        let dst_key = sessions.open(&handle(&t.to)?, t.timezone.as_deref(), &application).await?;
        let t: &TableSpec = t;
        let (Some(src), Some(dst)) = (sessions.get(&src_key), sessions.get(&dst_key)) else { continue };
        let (src_text, dst_text) = stored_text(registry, t, src, dst).await?;
        let (src_float, dst_float) =
            (float_datetimes(t, src, "source").await?, float_datetimes(t, dst, "target").await?);
        let check = check_table(t, src, &t.from, dst, &t.to).await?;
        let (src_cols, dst_cols) = (&check.described, &check.target_columns);
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
        // A column the target declares otherwise than the source was loaded through its text:
        // the source hashes it read into the target's type, as the load did, where the source
        // server has that type; else both sides hash the carried text.
        let (mut cast_to, mut cast_back, mut text_form) = (Vec::new(), Vec::new(), Vec::new());
        for name in &check.columns {
            let declared = |cols: &[super::check::Column]| cols.iter().position(|c| &c.name == name);
            let (Some(s), Some(d)) = (declared(src_cols), declared(dst_cols)) else { continue };
            let (s, d) = (&src_cols[s], &dst_cols[d]);
            if s.type_text == d.type_text {
                continue;
            }
            let float = matches!(s.type_name.as_str(), "float4" | "float8");
            if float && !t.lossy_columns.contains(name) {
                // A float's text depends on extra_float_digits, which Greenplum 6's reader
                // gangs do not take from the session (they print 15 digits where the transfer
                // wrote 17): the target's value is read back into the float type instead, which
                // its exact text gives bit for bit.
                cast_back.push(CastTo {
                    column: name.clone(),
                    type_text: s.type_text.clone(),
                    type_name: s.type_name.clone(),
                });
            } else if canonical::built_in_on(src.flavour.kernel(), &d.type_name) {
                cast_to.push(CastTo {
                    column: name.clone(),
                    type_text: d.type_text.clone(),
                    type_name: d.type_name.clone(),
                });
            } else if !canonical::same_binary_form(&s.type_name, &d.type_name) {
                text_form.push(name.clone());
            }
        }
        let condition = |cols: &[super::check::Column]| {
            t.condition_column.as_ref().map(|c| {
                let ty = cols.iter().find(|x| &x.name == c).map_or("timestamp".to_string(), |x| x.type_name.clone());
                (c.clone(), ty)
            })
        };
        let windowed = t.mode != Mode::Full && t.condition_column.is_some();
        let windows = windows_to_compare(t, options, &state, src, check.condition_type.as_deref()).await?;
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
                         float: bool,
                         filter: &Option<String>| Scope {
                table: table.clone(),
                columns: typed(cols),
                condition: if windowed { condition(cols) } else { None },
                range: w.map(|w| (w.start, w.end)),
                group: None,
                text,
                float_datetimes: float,
                text_form: text_form.clone(),
                cast_to: Vec::new(),
                filter: filter.clone(),
            };
            let window_id = w.map_or("full".to_string(), |w| w.id());
            let c = compare_window(
                comparator.as_ref(),
                src,
                dst,
                Scope {
                    cast_to: cast_to.clone(),
                    ..scope(&t.source_table, src_cols, src_text, src_float, &source_filter)
                },
                Scope { cast_to: cast_back.clone(), ..scope(&t.target_table, dst_cols, dst_text, dst_float, &None) },
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

/// The comparator a table is compared with: its own; or, for a sink that loads no database
/// and no `compare` set, `sink` when the sink counts its output, else `none`. A comparator
/// that reads a target table is refused for a sink that loads none.
pub fn comparator_for(
    registry: &Registry,
    t: &TableSpec,
    sink: &dyn crate::roles::Sink,
) -> Result<std::sync::Arc<dyn crate::compare::Comparator>, String> {
    let spec = if !sink.loads_target() && t.compare_is_default() {
        crate::config::PluginSpec::named(if sink.counts() { "sink" } else { "none" })
    } else {
        t.compare.get_ref().clone()
    };
    let comparator = registry.comparator(&spec)?;
    let sink_name = &t.sink.get_ref().plugin;
    match comparator.kind() {
        CompareKind::Rows if !sink.loads_target() => Err(format!(
            "{:?} reads target table {} on cluster {:?}, but sink {sink_name:?} loads no table there; use \
             compare = \"sink\" (when the sink counts its output) or \"none\"",
            spec.plugin, t.target_table, t.to
        )),
        CompareKind::SinkCount if !sink.counts() => Err(format!(
            "\"sink\" asks the sink for the rows it holds, but sink {sink_name:?} cannot count them; use \
             compare = \"hash\", \"count\" or \"none\""
        )),
        _ => Ok(comparator),
    }
}

/// The windows of a table to compare: the ones asked for (after a repair), else from the
/// job start (or `--from`) to the cursor (or `--to`), cut and joined as `run` cuts them;
/// one `None` for a table compared whole.
async fn windows_to_compare(
    t: &TableSpec,
    options: &CompareOptions,
    state: &State,
    src: &Session,
    condition_type: Option<&str>,
) -> Result<Vec<Option<Window>>, Error> {
    if t.mode == Mode::Full || t.condition_column.is_none() {
        return Ok(vec![None]);
    }
    let list = match &options.windows {
        Some(map) => map.get(&super::run::table_key(t)).cloned().unwrap_or_default(),
        None => match options.to.or(state.table_cursor(t).await?) {
            Some(to) => {
                let windows = windows_between(t, options.from.unwrap_or(t.start), to);
                super::clock::join_in_zone(src, t, condition_type, windows).await?
            }
            None => Vec::new(),
        },
    };
    Ok(list.into_iter().map(Some).collect())
}

/// One window: the source's rows (counted in the database) against the sink's own count.
async fn count_against_sink(
    counter: &dyn crate::compare::Comparator,
    sink: &dyn crate::roles::Sink,
    src: &Session,
    scope: Scope,
    t: &TableSpec,
    window: Option<Window>,
    described: &[super::check::Column],
) -> WindowComparison {
    let window_id = window.map_or("full".to_string(), |w| w.id());
    let mut out = WindowComparison::new(&t.job, &t.display_name(), &window_id);
    let source = counter.summarize(src, &scope, &crate::compare::Grouping::default()).await;
    let held = sink.count(t, window, described).await;
    match (source, held) {
        (Ok(buckets), Ok(held)) => {
            out.source_count = buckets.iter().map(|b| b.sums.count).sum();
            out.target_count = i64::try_from(held).unwrap_or(i64::MAX);
            out.equal = out.source_count == out.target_count;
            out.total_differences = usize::try_from(out.source_count.abs_diff(out.target_count)).unwrap_or(usize::MAX);
        }
        (Err(e), _) => out.error = Some(format!("counting the source: {}", e.message)),
        (_, Err(e)) => out.error = Some(format!("asking the sink: {}", e.message)),
    }
    out
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

/// Whether a side's server stores date/time values as float seconds (`integer_datetimes` off:
/// 8.2, possibly GP4), whose rows are hashed by a computed integer form (see
/// `canonical::datetime_bytes`).
async fn float_datetimes(t: &TableSpec, session: &Session, side: &str) -> Result<bool, Error> {
    let value = session.show("integer_datetimes").await.map_err(|e| Error::Check {
        job: t.job.clone(),
        table: t.display_name(),
        message: format!("reading integer_datetimes on the {side}: {}", e.message),
        hint: None,
    })?;
    Ok(value == "off")
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
