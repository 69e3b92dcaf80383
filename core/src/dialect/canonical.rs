//! The canonical text of a row for compare: byte-identical for equal data on GP4 (8.2), GP6
//! (9.4), GP7 and PostgreSQL 12+, whatever the session's DateStyle, TimeZone,
//! extra_float_digits or bytea_output. Only functions that exist on 8.2 are used.

use super::quote_ident;

/// The SQL expression rendering one column as text, never NULL.
///
/// Each field is `N` for NULL or `<length>:<text>`, so no value can imitate a separator
/// or a NULL, and the fields are simply concatenated.
pub fn field(column: &str, type_name: &str) -> String {
    wrap(&text_expr(column, type_name))
}

/// `N` for NULL, else `<length>:<text>`. Pass a column of a subquery that already holds the
/// text, so the conversion is not evaluated twice.
pub fn wrap(text: &str) -> String {
    format!("CASE WHEN {text} IS NULL THEN 'N' ELSE length({text})::text || ':' || {text} END")
}

/// The value's canonical text (NULL stays NULL).
pub fn text_expr(column: &str, type_name: &str) -> String {
    let c = quote_ident(column);
    match type_name {
        // The IEEE bits: exact, and free of float formatting, which changed in PostgreSQL 12.
        "float8" => format!("encode(float8send({c}), 'hex')"),
        "float4" => format!("encode(float4send({c}), 'hex')"),
        // `BC` prints the era (AD/BC); to_char gives NULL for ±infinity, whose plain text
        // ('infinity', '-infinity') does not depend on DateStyle. 'infinity'::date does not
        // exist on 8.2, so the fallback is by NULL, not by comparison.
        "timestamp" => format!("coalesce(to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US BC'), {c}::text)"),
        // The instant, in UTC: independent of the session and server TimeZone.
        "timestamptz" => format!("coalesce(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'), {c}::text)"),
        "date" => format!("coalesce(to_char({c}, 'YYYY-MM-DD BC'), {c}::text)"),
        "bool" => format!("CASE WHEN {c} THEN 't' ELSE 'f' END"),
        // Independent of bytea_output (hex on 9.0+, escape on 8.x).
        "bytea" => format!("encode({c}, 'hex')"),
        // Exact decimal text; equal declared scale gives equal text on every version.
        "numeric" | "int2" | "int4" | "int8" | "oid" => format!("{c}::text"),
        _ => format!("{c}::text"),
    }
}

/// A readable key, `col=value, col=value`, for reports and alarms.
pub fn key_text(columns: &[(String, String)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| {
            let label = super::quote_literal(&format!("{name}="), false);
            format!("{label} || coalesce({}, 'NULL')", text_expr(name, ty))
        })
        .collect::<Vec<_>>()
        .join(" || ', ' || ")
}

/// The canonical text of a whole row: the fields of `columns` in the given order.
pub fn row_text(columns: &[(String, String)]) -> String {
    if columns.is_empty() {
        return "''".to_string();
    }
    columns.iter().map(|(name, ty)| format!("({})", field(name, ty))).collect::<Vec<_>>().join(" || '|' || ")
}

/// The two 64-bit halves of the row md5 as bigints, to be summed (order-independent).
/// `bit(64)::bigint` exists from 8.2 on; the sums are taken as numeric so they cannot overflow.
pub fn md5_halves(md5_expr: &str) -> (String, String) {
    (
        format!("('x' || substr({md5_expr}, 1, 16))::bit(64)::bigint::numeric"),
        format!("('x' || substr({md5_expr}, 17, 16))::bit(64)::bigint::numeric"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_explicit_and_8_2_safe() {
        let f = field("x", "float8");
        assert!(f.contains("float8send"));
        let t = row_text(&[("a".into(), "timestamptz".into()), ("B".into(), "text".into())]);
        assert!(t.contains("AT TIME ZONE 'UTC'"));
        assert!(t.contains("\"B\"::text"));
        for banned in ["sha256", "hashtext", "string_agg", "WITH ("] {
            assert!(!t.contains(banned));
        }
    }
}
