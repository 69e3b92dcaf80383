//! Identifiers and literals. Every name that reaches SQL goes through `quote_ident`, every
//! value that cannot be bound goes through `quote_literal`.

use std::fmt;

/// `schema.table`, each part kept exactly as the catalog spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct QualifiedName {
    /// Schema (namespace).
    pub schema: String,
    /// Relation name.
    pub name: String,
}

impl QualifiedName {
    /// Parses `schema.table`, `table` (schema `public`), or quoted parts `"My.Schema"."T"`.
    /// Unquoted parts are folded to lower case, as PostgreSQL does.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts = split_identifier(text)?;
        match parts.as_slice() {
            [name] => Ok(QualifiedName { schema: "public".into(), name: name.clone() }),
            [schema, name] => Ok(QualifiedName { schema: schema.clone(), name: name.clone() }),
            _ => Err(format!(
                "table name {text:?} has {} parts: write schema.table (quote a part with \" when it holds a dot)",
                parts.len()
            )),
        }
    }

    /// The quoted form for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |s: &str| {
            if is_plain(s) {
                s.to_string()
            } else {
                quote_ident(s)
            }
        };
        write!(f, "{}.{}", part(&self.schema), part(&self.name))
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn split_identifier(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("unterminated quote in table name {text:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return Err(format!(
                        "table name {text:?} holds {c:?}: quote the part with \" if it is really part of the name"
                    ));
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("table name {text:?} has an empty part"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("unexpected {c:?} in table name {text:?}")),
        }
    }
}

/// Quotes an identifier for any PostgreSQL or Greenplum version.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal. `E''` would not parse on every server, so backslashes are only
/// safe because every session runs with `standard_conforming_strings = on` where it exists;
/// for servers where it is off (8.2) the escape string form is used via `escape_backslashes`.
pub fn quote_literal(s: &str, escape_backslashes: bool) -> String {
    if escape_backslashes && s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_quotes() {
        let q = QualifiedName::parse("eda.wpp_fdefect_f_n").unwrap();
        assert_eq!(q.quoted(), "\"eda\".\"wpp_fdefect_f_n\"");
        let q = QualifiedName::parse("\"My.Schema\".\"Fact\"\"s\"").unwrap();
        assert_eq!(q.schema, "My.Schema");
        assert_eq!(q.name, "Fact\"s");
        assert_eq!(q.quoted(), "\"My.Schema\".\"Fact\"\"s\"");
        assert_eq!(QualifiedName::parse("Fact").unwrap().name, "fact");
        assert_eq!(QualifiedName::parse("t").unwrap().schema, "public");
    }

    #[test]
    fn refuses_sql_fragments() {
        for bad in ["a.b.c", "t; drop table x", "a..b", "\"open", "t--x", "a b"] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals() {
        assert_eq!(quote_literal("it's", false), "'it''s'");
        assert_eq!(quote_literal("a\\b", true), "E'a\\\\b'");
    }
}
