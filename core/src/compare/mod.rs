//! Compare: per-bucket counts and order-independent hashes computed inside each database,
//! both clusters at once, drilled down (group_by value → time slices → keys) only where
//! buckets differ. The drill-down is here, the same for every comparator; comparators only
//! say how a bucket is summarised on one cluster.

mod drill;
mod report;

pub use drill::{compare_window, DrillSettings};
pub use report::{KeyDiff, KeyDiffKind, LevelStat, WindowComparison};

use async_trait::async_trait;
use chrono::NaiveDateTime;

use crate::cluster::Session;
use crate::dialect::QualifiedName;
use crate::error::RoleError;

/// What one cluster's query covers: a table, a time range, maybe one group value.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The table on this cluster.
    pub table: QualifiedName,
    /// Columns hashed, `(name, typname)` on this cluster, in one order shared by both sides.
    pub columns: Vec<(String, String)>,
    /// Condition column and its typname; None compares the whole table.
    pub condition: Option<(String, String)>,
    /// `[start, end)` of the condition column.
    pub range: Option<(NaiveDateTime, NaiveDateTime)>,
    /// `group_by` column and the value (`None` = NULL) this scope is limited to.
    pub group: Option<(String, Option<String>)>,
}

/// How a scope is split into buckets.
#[derive(Debug, Clone, PartialEq)]
pub enum Grouping {
    /// One bucket.
    Whole,
    /// One bucket per value of a column.
    Column(String),
    /// `count` slices of `step_seconds` from the scope's range start.
    Slices {
        /// Slice length.
        step_seconds: i64,
    },
}

/// Count and hash of one bucket on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSummary {
    /// The bucket: `*`, a group value (`None` for NULL), or a slice number.
    pub bucket: Option<String>,
    /// Rows.
    pub count: i64,
    /// Order-independent hash of the rows (empty for the `count` comparator).
    pub hash: String,
}

/// One row's key and hash (or, without a key, a row hash and how often it occurs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowHash {
    /// Canonical text of the key columns, or the row hash when the table has no key.
    pub key: String,
    /// Row hash (empty for `count`).
    pub hash: String,
    /// Occurrences (1 for keyed rows, the multiplicity for keyless ones).
    pub count: i64,
}

/// Summarises buckets of a table on one cluster.
#[async_trait]
pub trait Comparator: Send + Sync {
    /// `group_by` column for the first drill-down level, if any.
    fn group_by(&self) -> Option<&str>;
    /// How many time slices a differing bucket is cut into.
    fn slices(&self) -> u32;
    /// Per-bucket count and hash.
    async fn summarize(
        &self,
        session: &Session,
        scope: &Scope,
        grouping: &Grouping,
    ) -> Result<Vec<BucketSummary>, RoleError>;
    /// Every row of the scope as (key, hash); keyless tables give (row hash, count).
    async fn rows(&self, session: &Session, scope: &Scope, key: &[String]) -> Result<Vec<RowHash>, RoleError>;
}
