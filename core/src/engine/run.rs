//! A whole run: lock the jobs, check every table before anything moves, plan, then move the
//! windows: at most `--parallel` windows at once in all, from all tables; several windows of
//! one table at once in a backfill ([`super::backfill`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use futures_util::stream::{self, StreamExt};

use super::backfill::{run_table_windows, width, Stops};
use super::check::check_table;
use super::clock::ZonedSessions;
use super::frontier::Frontier;
use super::interrupt::Interrupt;
use super::window_run::{TableRun, WindowPlugins};
use crate::cluster::{ClusterHandle, Session};
use crate::config::{Config, TableProgress, TableSpec};
use crate::error::Error;
use crate::registry::Registry;
use crate::roles::CopyFormat;
use crate::roles::Counters;
use crate::state::State;
use crate::window::Window;

/// What `run` is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Only these jobs (all when empty).
    pub jobs: Vec<String>,
    /// Only these tables (all when empty).
    pub tables: Vec<String>,
    /// No window ends after this.
    pub until: Option<NaiveDateTime>,
    /// Windows moved at once, in all (several of one table in a backfill, see
    /// [`super::backfill`]).
    pub parallel: usize,
    /// Plan and check, move nothing.
    pub dry_run: bool,
    /// The clock (the machine's local time unless a test sets it).
    pub now: NaiveDateTime,
    /// Stop every table at the first failed window.
    pub stop_on_error: bool,
    /// Load exactly these windows per table (`table_key`) instead of the planned ones.
    pub windows: Option<BTreeMap<String, Vec<Window>>>,
    /// Why the windows run when not by a plain run (`repair`, `reload`): kept in history.
    pub reason: Option<&'static str>,
}

/// `job/name`, the key of per-entry maps: the source table, and its target when that differs
/// ([`TableSpec::display_name`]), so two targets of one source never share an entry.
pub fn table_key(t: &TableSpec) -> String {
    format!("{}/{}", t.job, t.display_name())
}

/// How a window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowStatus {
    /// Landed.
    Succeeded,
    /// Rolled back.
    Failed,
    /// Planned only (dry run).
    Planned,
}

/// One window's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowReport {
    /// Job.
    pub job: String,
    /// The table entry: its source table, and ` -> target` when the target differs.
    pub table: String,
    /// The target table.
    pub target_table: String,
    /// Window id.
    pub window: String,
    /// Outcome.
    pub status: WindowStatus,
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Bytes.
    pub bytes: u64,
    /// Seconds, two decimals.
    pub elapsed_seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// Every window attempted, in completion order.
    pub windows: Vec<WindowReport>,
    /// Signal that stopped the run.
    pub interrupted_by: Option<i32>,
    /// External cursors (config readers' job rows) moved after the windows committed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_cursors: Vec<ExternalCursorReport>,
}

/// What happened to one external cursor after the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExternalCursorReport {
    /// Job.
    pub job: String,
    /// The cursor (e.g. the MySQL job row).
    pub cursor: String,
    /// What was done, when it worked.
    pub message: Option<String>,
    /// Why it could not be moved (the windows stay committed; the next run re-loads them).
    pub error: Option<String>,
}

impl RunReport {
    /// Failed windows.
    pub fn failed(&self) -> usize {
        self.windows.iter().filter(|w| w.status == WindowStatus::Failed).count()
    }

    /// External cursors that could not be moved.
    pub fn external_cursor_errors(&self) -> impl Iterator<Item = &ExternalCursorReport> {
        self.external_cursors.iter().filter(|c| c.error.is_some())
    }
}

/// A table whose windows start from a config reader's job row: when the row starts after where
/// this table's loads stopped (the stored cursor), the rows between were never loaded — an
/// operator moved the row forward. Loud: a warning with the command that loads them, and a
/// `gap skipped` row in history (once: the next window moves the cursor past it).
async fn skipped_gap(state: &State, t: &TableSpec, dry_run: bool) -> Result<(), Error> {
    let Some(loaded_to) = state.table_cursor(t).await? else { return Ok(()) };
    if loaded_to >= t.start {
        return Ok(());
    }
    let reason = format!(
        "the job row starts at {} but this table was loaded up to {loaded_to}: rows from {loaded_to} to {} were \
         never loaded; load them with `gptransfer reload --job {} --table \"{}\" --from \"{loaded_to}\" --to \"{}\"`",
        t.start,
        t.start,
        t.job,
        t.display_name(),
        t.start
    );
    tracing::warn!(job = %t.job, table = %t.display_name(), "{reason}");
    if !dry_run {
        state.record_gap(t, (loaded_to, t.start), &reason).await?;
    }
    Ok(())
}

/// The state cursor of a table, or None when its windows start from a config reader's row.
async fn planning_cursor(state: &State, t: &TableSpec) -> Result<Option<NaiveDateTime>, Error> {
    if t.cursor_external {
        return Ok(None);
    }
    state.table_cursor(t).await
}

fn readers_missing(config: &Config, tables: &[TableSpec]) -> Result<(), Error> {
    if !config.needs_readers() {
        return Ok(());
    }
    match config.jobs.iter().find(|j| j.has_readers() && tables.iter().any(|t| t.job == j.name)) {
        Some(job) => Err(Error::Config(crate::config::ConfigError::file(
            &config.path,
            format!("job {:?} is defined by a config reader that this command did not run", job.name),
        ))),
        None => Ok(()),
    }
}

/// Start and end of a window id `YYYYMMDDHHMMSS^YYYYMMDDHHMMSS`.
fn window_bounds(id: &str) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let (start, end) = id.split_once('^')?;
    let parse = |t: &str| NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok();
    Some((parse(start)?, parse(end)?))
}

/// The end of the contiguous run of committed windows from a table's first window of this run:
/// windows that committed after one that did not (a parallel backfill) are not covered, as
/// the state cursor does not cover them either.
fn committed_prefix<'a>(windows: impl Iterator<Item = &'a WindowReport>) -> Option<NaiveDateTime> {
    let mut ran: Vec<((NaiveDateTime, NaiveDateTime), bool)> =
        windows.filter_map(|w| window_bounds(&w.window).map(|b| (b, w.status == WindowStatus::Succeeded))).collect();
    ran.sort_by_key(|(b, _)| *b);
    let mut reached: Option<NaiveDateTime> = None;
    for ((start, end), succeeded) in ran {
        if !succeeded || reached.is_some_and(|r| r < start) {
            break;
        }
        reached = reached.max(Some(end));
    }
    reached
}

/// After the windows committed: move each job's external cursors as far as its tables got.
async fn advance_external_cursors(
    config: &Config,
    jobs: &[String],
    windows: &[WindowReport],
    now: NaiveDateTime,
) -> Vec<ExternalCursorReport> {
    let mut out = Vec::new();
    for job in jobs {
        let Some(spec) = config.jobs.iter().find(|j| &j.name == job) else { continue };
        let cursors: Vec<_> = config.external_cursors.of_job(job).collect();
        if cursors.is_empty() {
            continue;
        }
        // How far each table got in *this* run, from the job row's start: the row is the
        // authority, so a state cursor ahead of it (a row an operator rewound to re-run the
        // job) says nothing about the row's span. A table this run did not load (left out by
        // `--table`) holds the row where it is.
        let progress: Vec<TableProgress> = spec
            .tables
            .iter()
            .filter(|t| t.enabled)
            .map(|t| {
                let entry = t.display_name();
                let this_table = || windows.iter().filter(|w| &w.job == job && w.table == entry);
                let cursor = committed_prefix(this_table());
                let failed_at = this_table()
                    .filter(|w| w.status == WindowStatus::Failed)
                    .filter_map(|w| window_bounds(&w.window).map(|(start, _)| start))
                    .min();
                TableProgress { table: t.source_table.to_string(), cursor, failed_at }
            })
            .collect();
        for c in cursors {
            let (message, error) = match c.advance(&progress, now).await {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e)),
            };
            if let Some(e) = &error {
                tracing::error!(job = %job, "{}: not advanced: {e}", c.describe());
            }
            out.push(ExternalCursorReport { job: job.to_string(), cursor: c.describe(), message, error });
        }
    }
    out
}

/// Hears about progress; the CLI draws bars and lines from it.
pub trait Observer: Send + Sync {
    /// A table's windows were planned.
    fn planned(&self, _table: &TableSpec, _windows: &[Window]) {}
    /// A window started; `counters` move while it runs.
    fn window_started(&self, _table: &TableSpec, _window: &Window, _counters: Arc<Counters>) {}
    /// An attempt of a window failed and the window is tried again after a wait; `report` is
    /// that attempt (its history row says failed). `window_finished` follows for the last one.
    fn window_retrying(&self, _report: &WindowReport) {}
    /// A window ended.
    fn window_finished(&self, _report: &WindowReport) {}
}

/// A table and its due windows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedTable {
    /// Job.
    pub job: String,
    /// Source table.
    pub table: String,
    /// Target table.
    pub target_table: String,
    /// Mode.
    pub mode: String,
    /// Plugin chain.
    pub chain: String,
    /// Stored cursor.
    pub cursor: Option<NaiveDateTime>,
    /// Bound of this plan.
    pub limit: NaiveDateTime,
    /// Due windows.
    pub windows: Vec<String>,
    /// More windows are due after these (a run takes at most
    /// [`crate::window::MAX_WINDOWS_PER_RUN`] of a table).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    /// The statements the first run will create the missing target with (`create_target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creates_target: Option<Vec<String>>,
}

pub(super) fn handles(
    config: &Config,
    names: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, ClusterHandle>, Error> {
    let mut out = BTreeMap::new();
    for name in names {
        if out.contains_key(&name) {
            continue;
        }
        let cfg = config.clusters.get(&name).ok_or_else(|| {
            Error::Config(crate::config::ConfigError::file(&config.path, format!("cluster {name:?} is not defined")))
        })?;
        out.insert(name.clone(), ClusterHandle::new(&name, cfg)?);
    }
    Ok(out)
}

pub(crate) fn application_name() -> String {
    // The pid first: PostgreSQL cuts application names at 63 bytes, and the pid is what
    // `kill` needs when the lock message names the holder.
    format!("gptransfer pid {} host {}", std::process::id(), crate::host_name())
}

/// The due windows of each table, from the stored cursors; moves nothing. Connects to the
/// state cluster (not even there if the state schema does not exist yet) and to each source,
/// for the clock of the table's zone (see [`super::clock`]).
pub async fn plan_tables(
    config: &Config,
    tables: &[TableSpec],
    until: Option<NaiveDateTime>,
) -> Result<Vec<PlannedTable>, Error> {
    let mut names = vec![config.state.cluster.clone()];
    names.extend(tables.iter().map(|t| t.from.clone()));
    names.extend(tables.iter().filter(|t| t.create_target).map(|t| t.to.clone()));
    let hs = handles(config, names)?;
    let handle = |name: &str| {
        hs.get(name).cloned().ok_or_else(|| {
            Error::Config(crate::config::ConfigError::file(&config.path, format!("cluster {name:?} is not defined")))
        })
    };
    readers_missing(config, tables)?;
    let application = application_name();
    let state = State::open_existing(handle(&config.state.cluster)?, &config.state.schema, &application).await?;
    let mut sources = ZonedSessions::default();
    let mut out = Vec::new();
    for t in tables {
        let cursor = match &state {
            Some(s) => planning_cursor(s, t).await?,
            None => None,
        };
        let (key, clock) = sources.clock(&mut t.clone(), &handle(&t.from)?, &application).await?;
        let src = sources
            .get(&key)
            .ok_or_else(|| Error::State { cluster: t.from.clone(), message: "session lost".into() })?;
        // The condition column's type decides whether bounds mean instants; a table that cannot
        // be read yet is planned as it stands (run checks it before anything moves).
        let condition_type = match &t.condition_column {
            Some(c) => super::check::columns(src, &t.from, &t.source_table, t)
                .await
                .ok()
                .and_then(|cols| cols.into_iter().find(|x| &x.name == c).map(|x| x.type_name)),
            None => None,
        };
        let p = super::clock::plan_in_zone(src, t, condition_type.as_deref(), cursor, clock.now, until).await?;
        let creates_target = if t.create_target {
            let dst_key = sources.open(&handle(&t.to)?, t.timezone.as_deref(), &application).await?;
            let (Some(src), Some(dst)) = (sources.get(&key), sources.get(&dst_key)) else {
                return Err(Error::State { cluster: t.to.clone(), message: "session lost".into() });
            };
            if super::create::target_exists(dst, t).await? {
                None
            } else {
                Some(super::create::target_ddl(src, dst, t).await?)
            }
        } else {
            None
        };
        // A config reader's row is the cursor of its tables.
        let cursor = if t.cursor_external { Some(t.start) } else { cursor };
        out.push(PlannedTable {
            job: t.job.clone(),
            table: t.source_table.to_string(),
            target_table: t.target_table.to_string(),
            mode: t.mode.as_str().to_string(),
            chain: t.chain(),
            cursor,
            limit: p.limit,
            windows: p.windows.iter().map(Window::id).collect(),
            more: p.more,
            creates_target,
        });
    }
    Ok(out)
}

/// The windows a repair loads. Those the cursor has passed are re-loaded as asked. Those
/// beyond it were never loaded: loading only them would move the cursor over the windows
/// between (empty when compared, their late rows then never loaded) and past `now - lag`. So
/// the table catches up to them as a run would — every window from the cursor, as far as
/// they reach and only as far as is due; the rest is left for a later run.
async fn repair_windows(
    src: &Session,
    t: &TableSpec,
    condition_type: Option<&str>,
    cursor: Option<NaiveDateTime>,
    now: NaiveDateTime,
    asked: Vec<Window>,
) -> Result<Vec<Window>, Error> {
    let loaded_to = cursor.unwrap_or(t.start);
    let (mut windows, beyond): (Vec<Window>, Vec<Window>) =
        asked.into_iter().partition(|w| t.mode == crate::config::Mode::Full || w.end <= loaded_to);
    let Some(reach) = beyond.iter().map(|w| w.end).max() else { return Ok(windows) };
    let catch_up = super::clock::plan_in_zone(src, t, condition_type, cursor, now, Some(reach)).await?;
    for w in beyond.iter().filter(|w| w.end > catch_up.limit) {
        tracing::warn!(
            job = %t.job,
            table = %t.display_name(),
            "window {w} is not due yet (windows end by {}): not repaired; a later run loads it",
            catch_up.limit
        );
    }
    windows.extend(catch_up.windows);
    windows.sort();
    windows.dedup();
    Ok(windows)
}

/// Runs the selected tables.
pub async fn run(
    config: &Config,
    registry: &Registry,
    mut tables: Vec<TableSpec>,
    options: &RunOptions,
    observer: Arc<dyn Observer>,
    interrupt: Interrupt,
) -> Result<RunReport, Error> {
    readers_missing(config, &tables)?;
    let application = application_name();
    let mut names = vec![config.state.cluster.clone()];
    for t in &tables {
        names.push(t.from.clone());
        names.push(t.to.clone());
    }
    let clusters = handles(config, names)?;
    let cluster = |name: &str| {
        clusters
            .get(name)
            .cloned()
            .ok_or_else(|| Error::State { cluster: name.into(), message: "not configured".into() })
    };

    // Plugins first: an unknown option fails before we touch any server.
    let mut plugins = Vec::new();
    for t in &tables {
        let build_err = |role: &str, e: String| Error::Check {
            job: t.job.clone(),
            table: t.display_name(),
            message: format!("{role}: {e}"),
            hint: None,
        };
        plugins.push(WindowPlugins {
            source: registry.source(t.source.get_ref()).map_err(|e| build_err("source", e))?,
            transport: registry.transport(t.transport.get_ref()).map_err(|e| build_err("transport", e))?,
            sink: registry.sink(t.sink.get_ref()).map_err(|e| build_err("sink", e))?,
            // Chosen with the columns, below.
            format: CopyFormat::Text,
        });
    }

    // Getting ready — state, locks, checks, plans — stops at Ctrl+C or SIGTERM: nothing has
    // moved yet, and a server that does not answer must not hold the signal up.
    let prepared = async {
        let state = State::open(cluster(&config.state.cluster)?, &config.state.schema, &application).await?;
        let mut job_names: Vec<String> = tables.iter().map(|t| t.job.clone()).collect();
        job_names.sort();
        job_names.dedup();
        let mut locks = Vec::new();
        for job in &job_names {
            locks.push(state.lock_job(job).await?);
        }

        // Every table is checked on both sides before the first byte moves, each in its zone.
        let mut sessions = ZonedSessions::default();
        let mut checks = Vec::new();
        let mut clocks = Vec::new();
        for (t, chain) in tables.iter_mut().zip(plugins.iter_mut()) {
            let (src_key, clock) = sessions.clock(t, &cluster(&t.from)?, &application).await?;
            clocks.push((src_key.clone(), clock.now));
            let dst_key = sessions.open(&cluster(&t.to)?, t.timezone.as_deref(), &application).await?;
            let (Some(src), Some(dst)) = (sessions.get(&src_key), sessions.get(&dst_key)) else {
                return Err(Error::State { cluster: t.from.clone(), message: "session lost".into() });
            };
            if t.source_is_default()
                && src.flavour == crate::dialect::Flavour::Gp4
                && t.source.get_ref().plugin == "copy"
            {
                // The flavour's source (SPEC §6): GP4 gets the 8.2 dialect's own plugin.
                // Options only a repair gives the default source (its `filter`) go along.
                let options = t.source.get_ref().options.clone();
                t.source = toml::Spanned::new(0..0, crate::config::PluginSpec { plugin: "gp4".into(), options });
                chain.source = registry.source(t.source.get_ref()).map_err(|e| Error::Check {
                    job: t.job.clone(),
                    table: t.display_name(),
                    message: format!("source: {e}"),
                    hint: None,
                })?;
            }
            // Under the job's lock: a missing target with create_target is created now (a dry run
            // creates nothing and plans from the source's columns).
            let check = if !chain.sink.loads_target() {
                // Nothing on the target cluster to check or create: the sink's output is its own.
                super::check::check_source_for_sink(t, src, &t.from).await?
            } else if t.create_target && options.dry_run && !super::create::target_exists(dst, t).await? {
                super::check::source_only_check(t, src, &t.from).await?
            } else {
                if !options.dry_run {
                    super::create::ensure_target(src, dst, t).await?;
                }
                check_table(t, src, &t.from, dst, &t.to).await?
            };
            super::check::check_append_atomic(t, &config.state.cluster, chain.sink.as_ref())?;
            chain.sink.check_table(t, &check.columns).map_err(|e| Error::Check {
                job: t.job.clone(),
                table: t.display_name(),
                message: format!("sink: {e}"),
                hint: None,
            })?;
            chain
                .transport
                .check_chain(&crate::roles::ChainCheck {
                    table: t,
                    source: chain.source.as_ref(),
                    sink: chain.sink.as_ref(),
                    source_flavour: src.flavour,
                    target_flavour: dst.flavour,
                })
                .map_err(|e| Error::Check {
                    job: t.job.clone(),
                    table: t.display_name(),
                    message: format!("transport: {e}"),
                    hint: None,
                })?;
            // What is cheap to know of the clusters (the roles' privileges), before any data moves.
            chain.transport.check_clusters(t, src, dst, false).await.map_err(|e| Error::Check {
                job: t.job.clone(),
                table: t.display_name(),
                message: format!("transport: {e}"),
                hint: None,
            })?;
            chain.format = chain.negotiate(t, &check).map_err(|e| Error::Check {
                job: t.job.clone(),
                table: t.display_name(),
                message: e,
                hint: None,
            })?;
            checks.push(check);
        }
        let mut work = Vec::new();
        for (((t, check), plugins), (src_key, now)) in tables.into_iter().zip(checks).zip(plugins).zip(clocks) {
            let cursor = planning_cursor(&state, &t).await?;
            if t.cursor_external && options.windows.is_none() {
                skipped_gap(&state, &t, options.dry_run).await?;
            }
            let src = sessions
                .get(&src_key)
                .ok_or_else(|| Error::State { cluster: t.from.clone(), message: "session lost".into() })?;
            let windows = match &options.windows {
                // Explicit windows (repair).
                Some(map) => {
                    let asked = map.get(&table_key(&t)).cloned().unwrap_or_default();
                    repair_windows(src, &t, check.condition_type.as_deref(), cursor, now, asked).await?
                }
                // Now in the table's zone, not the ETL host's: a host ahead of the data's zone
                // would load windows of the future empty and pass them.
                None => {
                    let p = super::clock::plan_in_zone(
                        src,
                        &t,
                        check.condition_type.as_deref(),
                        cursor,
                        now,
                        options.until,
                    )
                    .await?;
                    if p.more {
                        tracing::info!(
                            job = %t.job,
                            table = %t.display_name(),
                            "{} windows planned; more are due after them: the next run goes on",
                            p.windows.len()
                        );
                    }
                    p.windows
                }
            };
            observer.planned(&t, &windows);
            work.push((Arc::new(t), check, plugins, windows));
        }
        drop(sessions);
        Ok::<_, Error>((state, job_names, locks, work))
    };
    let (state, job_names, locks, work) = unless_interrupted(&interrupt, prepared).await?;

    let mut report = RunReport::default();
    if options.dry_run {
        for (t, _, _, windows) in &work {
            for w in windows {
                report.windows.push(WindowReport {
                    job: t.job.clone(),
                    table: t.display_name(),
                    target_table: t.target_table.to_string(),
                    window: w.id(),
                    status: WindowStatus::Planned,
                    rows_read: 0,
                    rows_written: 0,
                    bytes: 0,
                    elapsed_seconds: 0.0,
                    error: None,
                });
            }
        }
        return Ok(report);
    }

    let state = &state;
    let stop_all = tokio_util::sync::CancellationToken::new();
    // The `--parallel` slots, shared by every window of every table running: FIFO, so a
    // long backfill does not starve the other tables.
    let slots = tokio::sync::Semaphore::new(options.parallel.max(1));
    let slots = &slots;
    let per_table = work.into_iter().map(|(table, check, plugins, windows)| {
        let observer = observer.clone();
        let interrupt = interrupt.clone();
        let application = application.clone();
        let stop_all = stop_all.clone();
        let source = cluster(&table.from);
        let target = cluster(&table.to);
        async move {
            let (source, target) = match (source, target) {
                (Ok(s), Ok(t)) => (s, t),
                _ => return Vec::new(),
            };
            let frontier = Arc::new(Frontier::new(&windows));
            let run = TableRun {
                state,
                table: &table,
                check: &check,
                plugins: &plugins,
                source: &source,
                target: &target,
                application: &application,
                observer: observer.as_ref(),
                interrupt: &interrupt,
                reason: options.reason,
                frontier: &frontier,
            };
            let width = width(table.mode, options.parallel, plugins.sink.merges_in_turn());
            run_table_windows(&run, windows, width, slots, Stops { all: &stop_all, on_error: options.stop_on_error })
                .await
        }
    });
    // At most `parallel` tables at once too (in order, as before): `--parallel 1` moves one
    // table after the other, each window after the other.
    let results: Vec<Vec<WindowReport>> =
        stream::iter(per_table).buffer_unordered(options.parallel.max(1)).collect().await;
    report.windows = results.into_iter().flatten().collect();
    report.interrupted_by = interrupt.signal();
    // The targets have committed (and the state cursors with them); only now the cursors kept
    // elsewhere move. A crash in between leaves them behind: the next run re-loads from them,
    // which replace and merge make harmless. Still under the job locks.
    if report.interrupted_by.is_none() && options.windows.is_none() {
        crate::config::failpoint("after-commit-before-external-cursor");
        report.external_cursors = advance_external_cursors(config, &job_names, &report.windows, options.now).await;
    }
    for lock in locks {
        state.release(lock).await;
    }
    Ok(report)
}

/// Awaits `step` unless Ctrl+C or SIGTERM comes first (the step is dropped: its sessions close,
/// and the servers roll back what it began).
async fn unless_interrupted<T>(
    interrupt: &Interrupt,
    step: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        biased;
        () = interrupt.triggered() => Err(Error::InterruptedBeforeWindows { signal: interrupt.signal().unwrap_or(2) }),
        result = step => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(window: &str, status: WindowStatus) -> WindowReport {
        WindowReport {
            job: "j".into(),
            table: "t".into(),
            target_table: "t".into(),
            window: window.into(),
            status,
            rows_read: 0,
            rows_written: 0,
            bytes: 0,
            elapsed_seconds: 0.0,
            error: None,
        }
    }

    #[test]
    fn an_external_cursor_sees_only_the_committed_prefix() {
        use WindowStatus::{Failed, Succeeded};
        let day = |d: u32| format!("202403{d:02}000000^202403{:02}000000", d + 1);
        // In completion order: 3 before 1 and 2, 4 failed, 5 committed after it.
        let ran = [
            report(&day(3), Succeeded),
            report(&day(1), Succeeded),
            report(&day(2), Succeeded),
            report(&day(5), Succeeded),
            report(&day(4), Failed),
        ];
        let end_of_3 = window_bounds(&day(3)).map(|(_, end)| end);
        assert_eq!(committed_prefix(ran.iter()), end_of_3);
        // The first window failed: nothing is covered.
        let ran = [report(&day(2), Succeeded), report(&day(1), Failed)];
        assert_eq!(committed_prefix(ran.iter()), None);
        // A window missing from the run (never started) is a hole too.
        let ran = [report(&day(1), Succeeded), report(&day(3), Succeeded)];
        assert_eq!(committed_prefix(ran.iter()), window_bounds(&day(1)).map(|(_, end)| end));
    }
}
