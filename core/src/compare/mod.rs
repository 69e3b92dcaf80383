//! Compare: per-bucket counts and order-independent hashes computed inside each database,
//! both clusters at once, drilled down (group_by value → time slices → keys) only where
//! buckets differ. The drill-down is here, the same for every comparator; comparators only
//! say how a bucket is summarised on one cluster.

mod drill;
mod report;

pub use drill::{compare_window, DrillSettings};

/// Differing slices whose keys are listed by one statement per side (one pass over the table).
pub const KEY_SCOPES_PER_QUERY: usize = 64;
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
    /// How this cluster's text columns are read (converted when a SQL_ASCII database holds
    /// GBK/GB18030 bytes).
    pub text: crate::dialect::canonical::StoredText,
    /// This cluster stores date/time values as float seconds (`integer_datetimes` off: 8.2,
    /// possibly GP4), whose binary form is computed as an integer build's.
    pub float_datetimes: bool,
    /// Columns whose two sides' types differ beyond what the binary form evens out (an int
    /// loaded into numeric, anything into text): the transfer carried them as text, so both
    /// sides hash that text ([`crate::dialect::canonical::carried_text_expr`]).
    pub text_form: Vec<String>,
    /// Columns this side hashes read into the other side's type
    /// ([`crate::dialect::canonical::CastTo`]): on the source, a column whose declared types
    /// differ, as the target holds it; on the target, a float the source holds, read back.
    pub cast_to: Vec<crate::dialect::canonical::CastTo>,
    /// The source plugin's `filter` (source side only): only rows matching it were moved.
    pub filter: Option<String>,
}

/// How a scope is split into buckets, all in one pass over the rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grouping {
    /// One bucket per value of this column.
    pub group_by: Option<String>,
    /// And, within each, one per slice of this many seconds from the scope's range start.
    pub slice_seconds: Option<i64>,
}

/// Count and hash of one bucket on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Rows.
    pub count: i64,
    /// Sum of the first 64-bit halves of the row md5s (0 for `count`).
    pub h1: i128,
    /// Sum of the second halves.
    pub h2: i128,
}

impl std::ops::AddAssign for Sums {
    fn add_assign(&mut self, o: Sums) {
        self.count += o.count;
        self.h1 = self.h1.wrapping_add(o.h1);
        self.h2 = self.h2.wrapping_add(o.h2);
    }
}

/// One bucket of a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSummary {
    /// Group value (`None`: NULL, or no grouping).
    pub group: Option<String>,
    /// Slice number (`None`: no slicing).
    pub slice: Option<i64>,
    /// Its count and hash sums.
    pub sums: Sums,
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

/// What a comparator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareKind {
    /// Rows on both clusters, summarised in each database and drilled down to keys.
    Rows,
    /// The source's row count per window against what the sink says its output holds (a sink
    /// that loads no database).
    SinkCount,
    /// Nothing: the table is not compared (and never alarms).
    Skip,
}

/// Summarises buckets of a table on one cluster.
#[async_trait]
pub trait Comparator: Send + Sync {
    /// What it compares; the engine asks [`Comparator::summarize`] and [`Comparator::rows`]
    /// only of a [`CompareKind::Rows`] comparator.
    fn kind(&self) -> CompareKind {
        CompareKind::Rows
    }
    /// `group_by` column for the first drill-down level, if any.
    fn group_by(&self) -> Option<&str>;
    /// How many time slices a differing bucket is cut into.
    fn slices(&self) -> u32;
    /// Per-bucket count and hash, for every (group, slice) bucket of the scope, in one pass.
    async fn summarize(
        &self,
        session: &Session,
        scope: &Scope,
        grouping: &Grouping,
    ) -> Result<Vec<BucketSummary>, RoleError>;
    /// Every row of each scope as (key, hash); keyless tables give (row hash, count). One list
    /// per scope, in order. The scopes are disjoint parts (differing slices) of one window's
    /// scope, read together so that the table is scanned once, not once per slice.
    async fn rows(&self, session: &Session, scopes: &[Scope], key: &[String]) -> Result<Vec<Vec<RowHash>>, RoleError>;
}
