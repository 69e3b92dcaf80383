//! The summary and row queries. Valid from 8.2 on: no CTEs, no string_agg, no sha256, no
//! LATERAL. `OFFSET 0` keeps the subquery from being inlined, so every row is hashed once.

use gptransfer_core::compare::{Grouping, Scope};
use gptransfer_core::dialect::canonical::{key_text, md5_bits, md5_halves, row_md5, row_text};
use gptransfer_core::dialect::{quote_ident, sql as dsql};

/// `FROM t WHERE …`, with the group value bound as `$1` when there is one.
fn from_where(scope: &Scope) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let (Some((col, ty)), Some((start, end))) = (&scope.condition, scope.range) {
        conditions.push(dsql::window_predicate(col, ty, start, end));
    }
    if let Some(filter) = &scope.filter {
        conditions.push(format!("({filter})"));
    }
    if let Some((g, value)) = &scope.group {
        match value {
            Some(v) => {
                params.push(v.clone());
                conditions.push(format!("{}::text = $1", quote_ident(g)));
            }
            None => conditions.push(format!("{} IS NULL", quote_ident(g))),
        }
    }
    let mut from = format!("FROM {}", scope.table.quoted());
    if !conditions.is_empty() {
        from.push_str(" WHERE ");
        from.push_str(&conditions.join(" AND "));
    }
    (from, params)
}

/// The slice number of a row, from the scope's range start.
///
/// `date_part('epoch', interval)` is float8 on every version (`extract` became numeric in
/// PostgreSQL 14, and costs twice as much there). The float is exact enough: a row's slice must
/// agree with the key level's exact range predicate, and for a difference of at least a
/// microsecond from a slice bound `k * step` (whole seconds) the rounding errors stay far
/// below it while the window spans less than about a century.
fn slice_expr(scope: &Scope, step_seconds: i64) -> Option<String> {
    let ((col, ty), (start, _)) = (scope.condition.as_ref()?, scope.range?);
    let c = quote_ident(col);
    // Date minus date is a number of days, not an interval: compare as timestamps.
    let diff = match ty.as_str() {
        "date" => format!("({c}::timestamp - {})", dsql::bound_literal(start, "timestamp")),
        _ => format!("({c} - {})", dsql::bound_literal(start, ty)),
    };
    Some(format!("floor(date_part('epoch', {diff}) / {step_seconds})::bigint"))
}

/// Count (and hash sums) per (group, slice) bucket, in one pass.
///
/// Each row's canonical text is built inline (every column is read once), hashed once, and
/// the md5 is parsed once as `bit(128)`, of which the two halves are summed.
pub fn summary(scope: &Scope, grouping: &Grouping, with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let (g, group_key) = match &grouping.group_by {
        Some(col) => (format!("{}::text", quote_ident(col)), "g, s"),
        // No group column: grouping by a constant would only cost hashing.
        None => ("NULL::text".to_string(), "s"),
    };
    let s = grouping.slice_seconds.and_then(|step| slice_expr(scope, step)).unwrap_or_else(|| "NULL::bigint".into());
    let inner_g = if grouping.group_by.is_some() { format!("{g} AS g, ") } else { String::new() };
    let outer_g = if grouping.group_by.is_some() { "g".to_string() } else { g };
    let sql = if with_hash {
        let bits = md5_bits(&row_text(&scope.columns, scope.text), scope.text);
        let (h1, h2) = md5_halves("b");
        format!(
            "SELECT {outer_g}, s, count(*)::bigint, coalesce(sum({h1}), 0)::text, coalesce(sum({h2}), 0)::text \
             FROM (SELECT {inner_g}{s} AS s, {bits} AS b {from} OFFSET 0) m GROUP BY {group_key}"
        )
    } else {
        format!(
            "SELECT {outer_g}, s, count(*)::bigint, '0'::text, '0'::text \
             FROM (SELECT {inner_g}{s} AS s {from}) f GROUP BY {group_key}"
        )
    };
    (sql, params)
}

/// (key, hash, 1) per keyed row, or (row hash, '', multiplicity) without a key.
pub fn rows(scope: &Scope, key: &[String], with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let md5 = row_md5(&row_text(&scope.columns, scope.text), scope.text);
    let sql = if key.is_empty() {
        format!("SELECT h, ''::text, count(*)::bigint FROM (SELECT {md5} AS h {from} OFFSET 0) m GROUP BY h")
    } else {
        let key_cols: Vec<(String, String)> = key
            .iter()
            .map(|k| scope.columns.iter().find(|(n, _)| n == k).cloned().unwrap_or_else(|| (k.clone(), "text".into())))
            .collect();
        let hash = if with_hash { md5 } else { "''::text".to_string() };
        format!("SELECT {}, {hash}, 1::bigint {from}", key_text(&key_cols, scope.text))
    };
    (sql, params)
}
