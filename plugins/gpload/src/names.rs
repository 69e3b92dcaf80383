//! gpload's merge and update modes do not support column names that need quoting: capitals,
//! reserved words, anything but lower-case letters, digits, `_` and `$`.

/// PostgreSQL's reserved key words (those that cannot be a column name unquoted), as in 9.4,
/// the kernel of Greenplum 6.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    // Greenplum adds these.
    "decode",
    "distributed",
    "exclude",
    "fill",
    "log",
    "partition",
    "scatter",
];

/// `Ok` when gpload can use `name` in MATCH_COLUMNS / UPDATE_COLUMNS; otherwise the reason.
pub fn check_merge_column(name: &str, mode: &str) -> Result<(), String> {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    let why = if name.chars().any(|c| c.is_ascii_uppercase()) {
        "has capital letters"
    } else if !plain {
        "needs quoting"
    } else if RESERVED.contains(&name) {
        "is a reserved word"
    } else {
        return Ok(());
    };
    Err(format!(
        "column {name:?} {why}: gpload does not support such column names in {mode} mode \
         (rename the column, or use the copy sink, or gpload mode = \"insert\")"
    ))
}

#[cfg(test)]
mod tests {
    use super::check_merge_column;

    #[test]
    fn refuses_capitals_reserved_words_and_quoting() {
        assert!(check_merge_column("glass_id", "merge").is_ok());
        assert!(check_merge_column("qty$2", "merge").is_ok());
        assert!(check_merge_column("GlassId", "merge").unwrap_err().contains("has capital letters"));
        assert!(check_merge_column("order", "update").unwrap_err().contains("is a reserved word"));
        assert!(check_merge_column("a b", "merge").unwrap_err().contains("needs quoting"));
        assert!(check_merge_column("1x", "merge").unwrap_err().contains("needs quoting"));
    }
}
