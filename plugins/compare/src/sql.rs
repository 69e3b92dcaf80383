//! The summary and row queries. Valid from 8.2 on: no CTEs, no string_agg, no sha256.

use gptransfer_core::compare::{Grouping, Scope};
use gptransfer_core::dialect::canonical::{key_text, md5_halves, row_text};
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

/// The bucket expression of a grouping (text, NULL for the whole scope).
fn bucket_expr(scope: &Scope, grouping: &Grouping) -> String {
    match grouping {
        Grouping::Whole => "NULL::text".to_string(),
        Grouping::Column(g) => format!("{}::text", quote_ident(g)),
        Grouping::Slices { step_seconds } => match (&scope.condition, scope.range) {
            (Some((col, ty)), Some((start, _))) => {
                let c = quote_ident(col);
                // Date minus date is a number of days, not an interval: compare as timestamps.
                let diff = match ty.as_str() {
                    "date" => format!("({c}::timestamp - {})", dsql::bound_literal(start, "timestamp")),
                    _ => format!("({c} - {})", dsql::bound_literal(start, ty)),
                };
                format!("floor(extract(epoch from {diff}) / {step_seconds})::bigint::text")
            }
            _ => "NULL::text".to_string(),
        },
    }
}

/// Count (and hash) per bucket.
pub fn summary(scope: &Scope, grouping: &Grouping, with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let bucket = bucket_expr(scope, grouping);
    let sql = if with_hash {
        let (h1, h2) = md5_halves("h");
        format!(
            "SELECT b, count(*)::bigint, coalesce(sum({h1}), 0)::text || '/' || coalesce(sum({h2}), 0)::text \
             FROM (SELECT {bucket} AS b, md5({}) AS h {from}) rows_ GROUP BY b",
            row_text(&scope.columns)
        )
    } else {
        format!("SELECT b, count(*)::bigint, NULL::text FROM (SELECT {bucket} AS b {from}) rows_ GROUP BY b")
    };
    (sql, params)
}

/// (key, hash, 1) per keyed row, or (row hash, '', multiplicity) without a key.
pub fn rows(scope: &Scope, key: &[String], with_hash: bool) -> (String, Vec<String>) {
    let (from, params) = from_where(scope);
    let rt = row_text(&scope.columns);
    let sql = if key.is_empty() {
        format!("SELECT md5({rt}), ''::text, count(*)::bigint {from} GROUP BY 1")
    } else {
        let key_cols: Vec<(String, String)> = key
            .iter()
            .map(|k| scope.columns.iter().find(|(n, _)| n == k).cloned().unwrap_or_else(|| (k.clone(), "text".into())))
            .collect();
        let hash = if with_hash { format!("md5({rt})") } else { "''::text".to_string() };
        format!("SELECT {}, {hash}, 1::bigint {from}", key_text(&key_cols))
    };
    (sql, params)
}
