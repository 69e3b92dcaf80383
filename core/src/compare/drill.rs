//! The drill-down: whole window → `group_by` values → time slices → keys, refining only the
//! buckets that differ (the seed's "no site difference, no event difference").

use std::collections::BTreeMap;

use super::{BucketSummary, Comparator, Grouping, KeyDiff, KeyDiffKind, LevelStat, RowHash, Scope, WindowComparison};
use crate::cluster::Session;
use crate::error::RoleError;

/// What the drill-down needs besides the scopes.
#[derive(Debug, Clone)]
pub struct DrillSettings {
    /// Key columns; empty compares rows as a multiset.
    pub key: Vec<String>,
    /// Differences kept in the report (all are counted).
    pub max_keys: usize,
}

type Buckets = BTreeMap<Option<String>, (i64, String)>;

fn to_map(v: Vec<BucketSummary>) -> Buckets {
    v.into_iter().map(|b| (b.bucket, (b.count, b.hash))).collect()
}

/// Bucket ids whose count or hash differ, or that exist on one side only.
fn differing(a: &Buckets, b: &Buckets) -> Vec<Option<String>> {
    let mut keys: Vec<&Option<String>> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

async fn both<T, F>(src: F, dst: F) -> Result<(T, T), RoleError>
where
    F: std::future::Future<Output = Result<T, RoleError>>,
{
    let (a, b) = tokio::join!(src, dst);
    Ok((a.map_err(|e| side("source", e))?, b.map_err(|e| side("target", e))?))
}

fn side(which: &str, e: RoleError) -> RoleError {
    RoleError { message: format!("on the {which}: {}", e.message), ..e }
}

/// A pair of scopes (source side, target side) with a label for reports.
#[derive(Clone)]
struct Pair {
    src: Scope,
    dst: Scope,
    label: String,
}

/// Compares one window of one table.
#[allow(clippy::too_many_arguments)]
pub async fn compare_window(
    cmp: &dyn Comparator,
    src: &Session,
    dst: &Session,
    src_scope: Scope,
    dst_scope: Scope,
    settings: &DrillSettings,
    job: &str,
    table: &str,
    window: &str,
) -> WindowComparison {
    let mut out = WindowComparison {
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
    };
    if let Err(e) =
        drill(cmp, src, dst, Pair { src: src_scope, dst: dst_scope, label: String::new() }, settings, &mut out).await
    {
        out.error = Some(e.message);
        out.equal = false;
    }
    out
}

async fn drill(
    cmp: &dyn Comparator,
    src: &Session,
    dst: &Session,
    whole: Pair,
    settings: &DrillSettings,
    out: &mut WindowComparison,
) -> Result<(), RoleError> {
    // Level 1: the whole window.
    let (a, b) =
        both(cmp.summarize(src, &whole.src, &Grouping::Whole), cmp.summarize(dst, &whole.dst, &Grouping::Whole))
            .await?;
    let (a, b) = (to_map(a), to_map(b));
    out.source_count = a.values().map(|v| v.0).sum();
    out.target_count = b.values().map(|v| v.0).sum();
    let diff = differing(&a, &b);
    out.levels.push(LevelStat { level: "window".into(), buckets: 1, differing: usize::from(!diff.is_empty()) });
    if diff.is_empty() {
        out.equal = true;
        return Ok(());
    }

    // Level 2: group_by values; only differing groups go on.
    let mut pairs = vec![whole.clone()];
    if let Some(g) = cmp.group_by() {
        let by = Grouping::Column(g.to_string());
        let (a, b) = both(cmp.summarize(src, &whole.src, &by), cmp.summarize(dst, &whole.dst, &by)).await?;
        let (a, b) = (to_map(a), to_map(b));
        let diff = differing(&a, &b);
        let mut all: Vec<_> = a.keys().chain(b.keys()).collect();
        all.sort();
        all.dedup();
        out.levels.push(LevelStat { level: "group_by".into(), buckets: all.len(), differing: diff.len() });
        pairs = diff
            .into_iter()
            .map(|value| {
                let mut p = whole.clone();
                p.src.group = Some((g.to_string(), value.clone()));
                p.dst.group = Some((g.to_string(), value.clone()));
                p.label = format!("{g}={}", value.as_deref().unwrap_or("NULL"));
                p
            })
            .collect();
    }

    // Level 3: time slices of each differing bucket.
    if let (Some((start, end)), true) = (whole.src.range, cmp.slices() > 1) {
        let span = (end - start).num_seconds().max(1);
        let step = (span + i64::from(cmp.slices()) - 1) / i64::from(cmp.slices());
        let step = step.max(1);
        let mut refined = Vec::new();
        let mut stat = LevelStat { level: "slices".into(), ..Default::default() };
        for p in pairs {
            let by = Grouping::Slices { step_seconds: step };
            let (a, b) = both(cmp.summarize(src, &p.src, &by), cmp.summarize(dst, &p.dst, &by)).await?;
            let (a, b) = (to_map(a), to_map(b));
            let diff = differing(&a, &b);
            let mut all: Vec<_> = a.keys().chain(b.keys()).collect();
            all.sort();
            all.dedup();
            stat.buckets += all.len();
            stat.differing += diff.len();
            for slice in diff {
                let Some(i) = slice.as_deref().and_then(|s| s.parse::<i64>().ok()) else {
                    continue;
                };
                let s = start + chrono::Duration::seconds(i * step);
                let e = (s + chrono::Duration::seconds(step)).min(end);
                let mut q = p.clone();
                q.src.range = Some((s, e));
                q.dst.range = Some((s, e));
                let when = format!("{}..{}", s.format("%H:%M:%S"), e.format("%H:%M:%S"));
                q.label = if p.label.is_empty() { when } else { format!("{}, {when}", p.label) };
                refined.push(q);
            }
        }
        out.levels.push(stat);
        pairs = refined;
    }

    // Level 4: keys.
    let mut diffs = Vec::new();
    let mut stat = LevelStat { level: "keys".into(), ..Default::default() };
    for p in &pairs {
        let (a, b) = both(cmp.rows(src, &p.src, &settings.key), cmp.rows(dst, &p.dst, &settings.key)).await?;
        stat.buckets += 1;
        let found = diff_rows(a, b, !settings.key.is_empty(), &p.label);
        if !found.is_empty() {
            stat.differing += 1;
        }
        diffs.extend(found);
    }
    out.levels.push(stat);
    diffs.sort();
    out.total_differences = diffs.len();
    diffs.truncate(settings.max_keys);
    out.differences = diffs;
    Ok(())
}

/// Keyed rows: missing, extra, changed by key. Keyless rows: a multiset of row hashes.
fn diff_rows(src: Vec<RowHash>, dst: Vec<RowHash>, keyed: bool, bucket: &str) -> Vec<KeyDiff> {
    let mut a: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for r in src {
        let e = a.entry(r.key).or_insert((r.hash, 0));
        e.1 += r.count;
    }
    let mut b: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for r in dst {
        let e = b.entry(r.key).or_insert((r.hash, 0));
        e.1 += r.count;
    }
    let mut out = Vec::new();
    let diff = |kind, key: &str, rows| KeyDiff { kind, key: key.to_string(), bucket: bucket.to_string(), rows };
    for (k, (h, n)) in &a {
        match b.get(k) {
            None => out.push(diff(KeyDiffKind::Missing, k, *n)),
            Some((h2, n2)) if keyed && (h2 != h || n2 != n) => out.push(diff(KeyDiffKind::Changed, k, 1)),
            Some((_, n2)) if !keyed && n2 < n => out.push(diff(KeyDiffKind::Missing, k, n - n2)),
            Some((_, n2)) if !keyed && n2 > n => out.push(diff(KeyDiffKind::Extra, k, n2 - n)),
            _ => {}
        }
    }
    for (k, (_, n)) in &b {
        if !a.contains_key(k) {
            out.push(diff(KeyDiffKind::Extra, k, *n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str, hash: &str, count: i64) -> RowHash {
        RowHash { key: key.into(), hash: hash.into(), count }
    }

    #[test]
    fn keyed_and_keyless_differences() {
        let d = diff_rows(
            vec![r("1", "a", 1), r("2", "b", 1), r("3", "c", 1)],
            vec![r("2", "x", 1), r("3", "c", 1), r("4", "d", 1)],
            true,
            "",
        );
        let kinds: Vec<_> = d.iter().map(|d| (d.kind, d.key.as_str())).collect();
        assert_eq!(kinds, vec![(KeyDiffKind::Missing, "1"), (KeyDiffKind::Changed, "2"), (KeyDiffKind::Extra, "4")]);
        let d = diff_rows(vec![r("h1", "", 1)], vec![r("h1", "", 2)], false, "");
        assert_eq!(d, vec![KeyDiff { kind: KeyDiffKind::Extra, key: "h1".into(), bucket: String::new(), rows: 1 }]);
    }
}
