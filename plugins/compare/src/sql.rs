//! The summary and row queries. Valid from 8.2 on: no CTEs, no string_agg, no sha256, no
//! LATERAL. `OFFSET 0` keeps the subquery from being inlined, so every row is hashed once.

use gptransfer_core::compare::{Grouping, Scope};
use gptransfer_core::dialect::canonical::{key_text, md5_bits, md5_halves, row_bytes, row_md5};
use gptransfer_core::dialect::{quote_ident, sql as dsql};

/// A scope's own conditions: its range and its group value (bound as the next `$n`).
fn own_conditions(scope: &Scope, params: &mut Vec<String>) -> Vec<String> {
    let mut conditions = Vec::new();
    if let (Some((col, ty)), Some((start, end))) = (&scope.condition, scope.range) {
        conditions.push(dsql::window_predicate(col, ty, start, end));
    }
    if let Some((g, value)) = &scope.group {
        match value {
            Some(v) => {
                params.push(v.clone());
                conditions.push(format!("{}::text = ${}", quote_ident(g), params.len()));
            }
            None => conditions.push(format!("{} IS NULL", quote_ident(g))),
        }
    }
    conditions
}

/// `FROM t WHERE …`: the `filter` and `conditions`, all of them.
fn from_where_all(scope: &Scope, mut conditions: Vec<String>) -> String {
    if let Some(filter) = &scope.filter {
        conditions.push(format!("({filter})"));
    }
    let mut from = format!("FROM {}", scope.table.quoted());
    if !conditions.is_empty() {
        from.push_str(" WHERE ");
        from.push_str(&conditions.join(" AND "));
    }
    from
}

/// `FROM t WHERE …`, with the group value bound as `$1` when there is one.
fn from_where(scope: &Scope) -> (String, Vec<String>) {
    let mut params = Vec::new();
    let conditions = own_conditions(scope, &mut params);
    (from_where_all(scope, conditions), params)
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
/// Each row's canonical bytes are built inline (every column is read once, one `record_send`),
/// hashed once, and the md5 is parsed once as `bit(128)`, of which the two halves are summed.
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
        let bits =
            md5_bits(&row_bytes(&scope.columns, scope.text, scope.float_datetimes, &scope.text_form, &scope.cast_to));
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

/// (scope index, key, hash, 1) per keyed row, or (scope index, row hash, '', multiplicity)
/// without a key, of every scope of `scopes` in ONE pass over the table: the scopes (differing
/// slices of one window) share the table, columns and filter and are disjoint, so each row
/// belongs to one of them. One statement instead of one per slice: on Greenplum, where the
/// slice's range is read by a sequential scan on every segment, that is one scan instead of
/// one per slice.
pub fn rows(scopes: &[Scope], key: &[String], with_hash: bool) -> (String, Vec<String>) {
    let Some(first) = scopes.first() else {
        return ("SELECT 0::int, ''::text, ''::text, 0::bigint WHERE false".into(), Vec::new());
    };
    let mut params = Vec::new();
    let mut which = Vec::new();
    for (i, scope) in scopes.iter().enumerate() {
        let own = own_conditions(scope, &mut params);
        let own = if own.is_empty() { "true".to_string() } else { own.join(" AND ") };
        which.push((i, format!("({own})")));
    }
    let any: Vec<&str> = which.iter().map(|(_, c)| c.as_str()).collect();
    let from = from_where_all(first, vec![format!("({})", any.join(" OR "))]);
    let bucket = match which.as_slice() {
        [_] => "0".to_string(),
        _ => format!(
            "CASE {} END",
            which.iter().map(|(i, c)| format!("WHEN {c} THEN {i}")).collect::<Vec<_>>().join(" ")
        ),
    };
    let md5 = row_md5(&row_bytes(&first.columns, first.text, first.float_datetimes, &first.text_form, &first.cast_to));
    let sql = if key.is_empty() {
        format!(
            "SELECT b, h, ''::text, count(*)::bigint FROM (SELECT {bucket} AS b, {md5} AS h {from} OFFSET 0) m GROUP BY b, h"
        )
    } else {
        let key_cols: Vec<(String, String)> = key
            .iter()
            .map(|k| first.columns.iter().find(|(n, _)| n == k).cloned().unwrap_or_else(|| (k.clone(), "text".into())))
            .collect();
        let hash = if with_hash { md5 } else { "''::text".to_string() };
        format!("SELECT {bucket}, {}, {hash}, 1::bigint {from}", key_text(&key_cols, first.text, &first.cast_to))
    };
    (sql, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use gptransfer_core::dialect::canonical::StoredText;
    use gptransfer_core::dialect::QualifiedName;

    fn slice(group: Option<&str>, hour: u32) -> Scope {
        let at = |h: u32| NaiveDate::from_ymd_opt(2024, 1, 1).and_then(|d| d.and_hms_opt(h, 0, 0)).unwrap();
        Scope {
            table: QualifiedName { schema: "eda".into(), name: "t".into() },
            columns: vec![("id".into(), "int8".into()), ("ts".into(), "timestamp".into())],
            condition: Some(("ts".into(), "timestamp".into())),
            range: Some((at(hour), at(hour + 1))),
            group: Some(("site".into(), group.map(str::to_string))),
            text: StoredText::AsIs,
            float_datetimes: false,
            text_form: Vec::new(),
            cast_to: Vec::new(),
            filter: Some("id > 0".into()),
        }
    }

    #[test]
    fn differing_slices_are_listed_in_one_statement() {
        let (sql, params) = rows(&[slice(Some("B1"), 1), slice(None, 2), slice(Some("B2"), 3)], &["id".into()], true);
        assert_eq!(params, vec!["B1".to_string(), "B2".to_string()]);
        // Each slice's predicate numbers its rows and selects them; one scan of the table.
        assert_eq!(sql.matches(" FROM ").count(), 1, "{sql}");
        assert!(sql.contains("THEN 0 WHEN") && sql.contains("THEN 2 END"), "{sql}");
        assert!(
            sql.contains(r#""site"::text = $1"#)
                && sql.contains(r#""site" IS NULL"#)
                && sql.contains(r#""site"::text = $2"#)
        );
        assert!(sql.contains("(id > 0)"), "{sql}");
        // One slice: no CASE.
        let (one, _) = rows(&[slice(Some("B1"), 1)], &[], false);
        assert!(one.starts_with("SELECT b, h, ''::text, count(*)::bigint FROM (SELECT 0 AS b"), "{one}");
    }
}
