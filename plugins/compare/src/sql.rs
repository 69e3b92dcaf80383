//! The summary and row queries. Valid from 8.2 on: no CTEs, no string_agg, no sha256, no
//! LATERAL. `OFFSET 0` keeps each subquery from being inlined, so every value is converted
//! to text once and every row hashed once.

use gptransfer_core::compare::{Grouping, Scope};
use gptransfer_core::dialect::canonical::{key_text, text_expr, wrap};
use gptransfer_core::dialect::{quote_ident, sql as dsql};

/// `FROM t WHERE …`, with the group value bound as `$1` when there is one.
fn from_where(scope: &Scope) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let (Some((col, ty)), Some((start, end))) = (&scope.condition, scope.range) {
        conditions.push(dsql::window_predicate(col, ty, start, end));
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
fn slice_expr(scope: &Scope, step_seconds: i64) -> Option<String> {
    let ((col, ty), (start, _)) = (scope.condition.as_ref()?, scope.range?);
    let c = quote_ident(col);
    // Date minus date is a number of days, not an interval: compare as timestamps.
    let diff = match ty.as_str() {
        "date" => format!("({c}::timestamp - {})", dsql::bound_literal(start, "timestamp")),
        _ => format!("({c} - {})", dsql::bound_literal(start, ty)),
    };
    Some(format!("floor(extract(epoch from {diff}) / {step_seconds})::bigint"))
}

/// The canonical field texts as `f0, f1, …` of an inner select, and the md5 over them.
fn fields_and_md5(scope: &Scope) -> (String, String) {
    let fields: Vec<String> =
        scope.columns.iter().enumerate().map(|(i, (name, ty))| format!("{} AS f{i}", text_expr(name, ty))).collect();
    let row: Vec<String> = (0..scope.columns.len()).map(|i| format!("({})", wrap(&format!("f{i}")))).collect();
    let row = if row.is_empty() { "''".to_string() } else { row.join(" || '|' || ") };
    (fields.join(", "), format!("md5({row})"))
}

/// Count (and hash sums) per (group, slice) bucket, in one pass.
pub fn summary(scope: &Scope, grouping: &Grouping, with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let g = match &grouping.group_by {
        Some(col) => format!("{}::text", quote_ident(col)),
        None => "NULL::text".into(),
    };
    let s = grouping.slice_seconds.and_then(|step| slice_expr(scope, step)).unwrap_or_else(|| "NULL::bigint".into());
    let sql = if with_hash {
        let (fields, md5) = fields_and_md5(scope);
        let fields = if fields.is_empty() { String::new() } else { format!(", {fields}") };
        format!(
            "SELECT g, s, count(*)::bigint, \
             coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text, \
             coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text \
             FROM (SELECT g, s, {md5} AS h FROM (SELECT {g} AS g, {s} AS s{fields} {from} OFFSET 0) f OFFSET 0) m \
             GROUP BY g, s"
        )
    } else {
        format!("SELECT g, s, count(*)::bigint, '0'::text, '0'::text FROM (SELECT {g} AS g, {s} AS s {from}) f GROUP BY g, s")
    };
    (sql, params)
}

/// (key, hash, 1) per keyed row, or (row hash, '', multiplicity) without a key.
pub fn rows(scope: &Scope, key: &[String], with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let (fields, md5) = fields_and_md5(scope);
    let sep = if fields.is_empty() { "" } else { ", " };
    let sql = if key.is_empty() {
        format!("SELECT h, ''::text, count(*)::bigint FROM (SELECT {md5} AS h FROM (SELECT 1 AS one{sep}{fields} {from} OFFSET 0) f) m GROUP BY h")
    } else {
        let key_cols: Vec<(String, String)> = key
            .iter()
            .map(|k| scope.columns.iter().find(|(n, _)| n == k).cloned().unwrap_or_else(|| (k.clone(), "text".into())))
            .collect();
        let hash = if with_hash { md5 } else { "''::text".to_string() };
        format!("SELECT k, {hash}, 1::bigint FROM (SELECT {} AS k{sep}{fields} {from} OFFSET 0) f", key_text(&key_cols))
    };
    (sql, params)
}
