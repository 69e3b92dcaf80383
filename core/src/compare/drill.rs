//! The drill-down: whole window → `group_by` values → time slices → keys, refining only the
//! buckets that differ (the seed's "no site difference, no event difference").
//!
//! The first three levels come from ONE pass per cluster: each side returns count and hash
//! sums per (group, slice); the window and group totals are their sums. Only the differing
//! slices are read again, to list their keys.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    BucketSummary, Comparator, Grouping, KeyDiff, KeyDiffKind, LevelStat, RowHash, Scope, Sums, WindowComparison,
    KEY_SCOPES_PER_QUERY,
};
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
    let mut out = WindowComparison::new(job, table, window);
    let whole = Pair { src: src_scope, dst: dst_scope, label: String::new() };
    if let Err(e) = drill(cmp, src, dst, whole, settings, &mut out).await {
        out.error = Some(e.message);
        out.equal = false;
    }
    out
}

type Cells = BTreeMap<(Option<String>, Option<i64>), Sums>;

fn cells(v: Vec<BucketSummary>) -> Cells {
    let mut m = Cells::new();
    for b in v {
        *m.entry((b.group, b.slice)).or_default() += b.sums;
    }
    m
}

fn total(c: &Cells) -> Sums {
    let mut t = Sums::default();
    for s in c.values() {
        t += *s;
    }
    t
}

fn by_group(c: &Cells) -> BTreeMap<Option<String>, Sums> {
    let mut m: BTreeMap<Option<String>, Sums> = BTreeMap::new();
    for ((g, _), s) in c {
        *m.entry(g.clone()).or_default() += *s;
    }
    m
}

fn union<K: Ord + Clone, V>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> BTreeSet<K> {
    a.keys().chain(b.keys()).cloned().collect()
}

async fn drill(
    cmp: &dyn Comparator,
    src: &Session,
    dst: &Session,
    whole: Pair,
    settings: &DrillSettings,
    out: &mut WindowComparison,
) -> Result<(), RoleError> {
    let range = whole.src.range;
    let step = match (range, cmp.slices() > 1) {
        (Some((start, end)), true) => {
            let span = (end - start).num_seconds().max(1);
            let n = i64::from(cmp.slices());
            Some(((span + n - 1) / n).max(1))
        }
        _ => None,
    };
    let grouping = Grouping { group_by: cmp.group_by().map(str::to_string), slice_seconds: step };
    let (a, b) = both(cmp.summarize(src, &whole.src, &grouping), cmp.summarize(dst, &whole.dst, &grouping)).await?;
    let (a, b) = (cells(a), cells(b));

    // Level 1: the whole window.
    let (ta, tb) = (total(&a), total(&b));
    out.source_count = ta.count;
    out.target_count = tb.count;
    out.levels.push(LevelStat { level: "window".into(), buckets: 1, differing: usize::from(ta != tb) });
    if ta == tb {
        out.equal = true;
        return Ok(());
    }

    // Level 2: group_by values; only differing groups go on.
    let (ga, gb) = (by_group(&a), by_group(&b));
    let all_groups = union(&ga, &gb);
    let differing_groups: Vec<Option<String>> =
        all_groups.iter().filter(|g| ga.get(*g) != gb.get(*g)).cloned().collect();
    if cmp.group_by().is_some() {
        out.levels.push(LevelStat {
            level: "group_by".into(),
            buckets: all_groups.len(),
            differing: differing_groups.len(),
        });
    }

    // Level 3: time slices of the differing groups.
    let mut pairs = Vec::new();
    let mut stat = LevelStat { level: "slices".into(), ..Default::default() };
    for group in &differing_groups {
        let label_group = cmp.group_by().map(|g| format!("{g}={}", group.as_deref().unwrap_or("NULL")));
        let slices: BTreeSet<Option<i64>> =
            a.keys().chain(b.keys()).filter(|(g, _)| g == group).map(|(_, s)| *s).collect();
        for slice in slices {
            stat.buckets += 1;
            let key = (group.clone(), slice);
            if a.get(&key) == b.get(&key) {
                continue;
            }
            stat.differing += 1;
            let mut p = whole.clone();
            if let Some(g) = cmp.group_by() {
                p.src.group = Some((g.to_string(), group.clone()));
                p.dst.group = Some((g.to_string(), group.clone()));
            }
            let mut label = label_group.clone().unwrap_or_default();
            if let (Some(i), Some(step), Some((start, end))) = (slice, step, range) {
                let s = start + chrono::Duration::seconds(i * step);
                let e = (s + chrono::Duration::seconds(step)).min(end);
                p.src.range = Some((s, e));
                p.dst.range = Some((s, e));
                let when = format!("{}..{}", s.format("%H:%M:%S"), e.format("%H:%M:%S"));
                label = if label.is_empty() { when } else { format!("{label}, {when}") };
            }
            p.label = label;
            pairs.push(p);
        }
    }
    if step.is_some() {
        out.levels.push(stat);
    }

    // Level 4: keys of the differing slices, many slices per statement (one pass per side;
    // each side's session is one connection, which runs its statements one after another).
    let keyed = !settings.key.is_empty();
    let mut found_per_slice: Vec<Vec<KeyDiff>> = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(KEY_SCOPES_PER_QUERY) {
        let src_scopes: Vec<Scope> = chunk.iter().map(|p| p.src.clone()).collect();
        let dst_scopes: Vec<Scope> = chunk.iter().map(|p| p.dst.clone()).collect();
        let (a, b) = both(cmp.rows(src, &src_scopes, &settings.key), cmp.rows(dst, &dst_scopes, &settings.key)).await?;
        if a.len() != chunk.len() || b.len() != chunk.len() {
            return Err(RoleError::new(format!(
                "the comparator listed rows of {} and {} slices, asked for {}",
                a.len(),
                b.len(),
                chunk.len()
            )));
        }
        for ((p, a), b) in chunk.iter().zip(a).zip(b) {
            found_per_slice.push(diff_rows(a, b, keyed, &p.label));
        }
    }
    let mut diffs = Vec::new();
    let mut stat = LevelStat { level: "keys".into(), buckets: pairs.len(), differing: 0 };
    for found in found_per_slice {
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

/// Keyed rows: missing, extra, changed by key; a key that is not unique is changed when the
/// multisets of its rows' hashes differ (the rows come in no order). Keyless rows: a multiset
/// of row hashes.
fn diff_rows(src: Vec<RowHash>, dst: Vec<RowHash>, keyed: bool, bucket: &str) -> Vec<KeyDiff> {
    type Rows = BTreeMap<String, BTreeMap<String, i64>>;
    let collect = |rows: Vec<RowHash>| {
        let mut by_key = Rows::new();
        for r in rows {
            *by_key.entry(r.key).or_default().entry(r.hash).or_insert(0) += r.count;
        }
        by_key
    };
    let (a, b) = (collect(src), collect(dst));
    let count = |hashes: &BTreeMap<String, i64>| hashes.values().sum::<i64>();
    let mut out = Vec::new();
    let diff = |kind, key: &str, rows| KeyDiff { kind, key: key.to_string(), bucket: bucket.to_string(), rows };
    for (k, hashes) in &a {
        let n = count(hashes);
        match b.get(k) {
            None => out.push(diff(KeyDiffKind::Missing, k, n)),
            Some(other) if keyed && other != hashes => out.push(diff(KeyDiffKind::Changed, k, 1)),
            Some(other) if !keyed && count(other) < n => out.push(diff(KeyDiffKind::Missing, k, n - count(other))),
            Some(other) if !keyed && count(other) > n => out.push(diff(KeyDiffKind::Extra, k, count(other) - n)),
            _ => {}
        }
    }
    for (k, hashes) in &b {
        if !a.contains_key(k) {
            out.push(diff(KeyDiffKind::Extra, k, count(hashes)));
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

    /// A key held by several rows: the same rows in another order are equal; one row of it
    /// changed is named (the first row's hash alone decided, so order made a false "changed"
    /// and a change in a later row went unnamed).
    #[test]
    fn a_key_of_several_rows_is_compared_by_all_of_them() {
        let src = || vec![r("7", "a", 1), r("7", "b", 1), r("8", "c", 1)];
        assert!(diff_rows(src(), vec![r("8", "c", 1), r("7", "b", 1), r("7", "a", 1)], true, "").is_empty());
        let d = diff_rows(src(), vec![r("7", "a", 1), r("7", "x", 1), r("8", "c", 1)], true, "");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].key.as_str(), d[0].kind), ("7", KeyDiffKind::Changed));
        let d = diff_rows(src(), vec![r("7", "a", 1), r("8", "c", 1)], true, "");
        assert_eq!((d.len(), d[0].kind), (1, KeyDiffKind::Changed), "{d:?}");
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
