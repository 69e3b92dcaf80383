//! What a compare found, per window.

/// How a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDiffKind {
    /// On the source, not on the target.
    Missing,
    /// On the target, not on the source.
    Extra,
    /// On both, with different values.
    Changed,
}

impl KeyDiffKind {
    /// As written in reports and alarms.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyDiffKind::Missing => "missing",
            KeyDiffKind::Extra => "extra",
            KeyDiffKind::Changed => "changed",
        }
    }
}

/// One differing key (or, without a key, one differing row hash with its surplus count).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct KeyDiff {
    /// missing / extra / changed.
    pub kind: KeyDiffKind,
    /// Key text (`col=value, …`), or the row hash for keyless tables.
    pub key: String,
    /// The bucket it was found in (group value and slice).
    pub bucket: String,
    /// How many rows differ under this key (more than 1 only for keyless duplicates).
    pub rows: i64,
}

/// Queries made at one drill-down level: how many buckets were compared and differed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LevelStat {
    /// `window`, `group_by`, `slices`, `keys`.
    pub level: String,
    /// Buckets compared at this level.
    pub buckets: usize,
    /// Of which differing.
    pub differing: usize,
}

/// One window's comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowComparison {
    /// Job.
    pub job: String,
    /// Table (source name).
    pub table: String,
    /// Window id.
    pub window: String,
    /// Rows on the source.
    pub source_count: i64,
    /// Rows on the target.
    pub target_count: i64,
    /// Whether both sides agree.
    pub equal: bool,
    /// Differing keys (at most the configured number; `total_differences` counts all).
    pub differences: Vec<KeyDiff>,
    /// All differing keys found.
    pub total_differences: usize,
    /// Buckets compared per level: shows where the drill-down stopped.
    pub levels: Vec<LevelStat>,
    /// An error that stopped this window's compare.
    pub error: Option<String>,
}

impl WindowComparison {
    /// A window not compared yet: nothing counted, nothing equal.
    pub fn new(job: &str, table: &str, window: &str) -> Self {
        WindowComparison {
            job: job.to_string(),
            table: table.to_string(),
            window: window.to_string(),
            source_count: 0,
            target_count: 0,
            equal: false,
            differences: Vec::new(),
            total_differences: 0,
            levels: Vec::new(),
            error: None,
        }
    }

    /// Both sides were read and they differ. A window that could not be compared (`error`)
    /// is not "different": nothing is known about it, and it is reported as an error.
    pub fn differs(&self) -> bool {
        !self.equal && self.error.is_none()
    }
}
