//! Config readers (SPEC §6): jobs and tables defined outside the TOML file — the MySQL job
//! table whose row is the job's window, a table list kept in a cluster. The readers live in
//! their own crate; core only knows the hook they leave behind: an external cursor that the
//! engine advances after the windows of a run have committed.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDateTime;

/// Where one table of a job stands after a run, for an external cursor to decide how far the
/// job got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    /// Source table as people see it (`schema.table`).
    pub table: String,
    /// End of the newest window this run committed, if any (the windows of a table with an
    /// external cursor start at its row's start, so this is how far the row's span got).
    pub cursor: Option<NaiveDateTime>,
    /// Start of the first window that failed (or was interrupted) in this run, if any.
    pub failed_at: Option<NaiveDateTime>,
}

/// A cursor kept outside the state schema (the MySQL job row), moved after the target commit.
#[async_trait::async_trait]
pub trait ExternalCursor: Send + Sync {
    /// The job it belongs to.
    fn job(&self) -> &str;
    /// What it is, for messages (`MySQL job table etl_conf_d at host:port (…), row JOB_NAME = "datatransfer"`).
    fn describe(&self) -> String;
    /// Moves the external cursor as far as every table of the job got; returns what it did.
    /// Called once per run of the job, after every window committed, still under the job lock.
    async fn advance(&self, tables: &[TableProgress], now: NaiveDateTime) -> Result<String, String>;
}

/// The external cursors a config's readers registered.
#[derive(Clone, Default)]
pub struct ExternalCursors(pub Vec<Arc<dyn ExternalCursor>>);

impl ExternalCursors {
    /// The cursors of one job.
    pub fn of_job<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Arc<dyn ExternalCursor>> + 'a {
        self.0.iter().filter(move |c| c.job() == job)
    }
}

impl fmt::Debug for ExternalCursors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|c| c.describe())).finish()
    }
}

/// Test-only crash injection: when `$GPTRANSFER_FAILPOINT` names `point`, the process aborts
/// on the spot (SIGABRT, no cleanup), as a crash or `kill -9` would. Never set it in production.
pub fn failpoint(point: &str) {
    if std::env::var("GPTRANSFER_FAILPOINT").is_ok_and(|v| v == point) {
        eprintln!("GPTRANSFER_FAILPOINT={point}: aborting the process (test-only crash injection)");
        std::process::abort();
    }
}
