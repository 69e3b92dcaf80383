//! The gpload control file, written by hand in the layout of gpload's reference: `VERSION`,
//! the connection keys, then `GPLOAD:` with `INPUT`, `OUTPUT`, `PRELOAD` and `SQL` as lists of
//! one-key maps. Every string goes through [`yaml_quote`].

use std::fmt::Write;

/// gpload's `OUTPUT: MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Insert every row.
    Insert,
    /// Update matching rows only.
    Update,
    /// Update matching rows, insert the others.
    Merge,
}

impl LoadMode {
    /// As gpload spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Insert => "insert",
            LoadMode::Update => "update",
            LoadMode::Merge => "merge",
        }
    }
}

/// Everything one control file says.
#[derive(Debug, Clone)]
pub struct Control {
    /// `DATABASE`.
    pub database: String,
    /// `USER`.
    pub user: String,
    /// `HOST` (the master).
    pub host: String,
    /// `PORT` (the master).
    pub port: u16,
    /// `SOURCE: LOCAL_HOSTNAME` (the ETL host's names, as segments reach it).
    pub local_hostname: Vec<String>,
    /// `SOURCE: PORT` of gpfdist.
    pub gpfdist_port: Option<u16>,
    /// `SOURCE: PORT_RANGE` of gpfdist.
    pub gpfdist_port_range: Option<[u16; 2]>,
    /// `SOURCE: FILE`.
    pub files: Vec<String>,
    /// `COLUMNS`: name (quoted for SQL when it must be) and type.
    pub columns: Vec<(String, String)>,
    /// `ENCODING`.
    pub encoding: String,
    /// `ERROR_LIMIT`.
    pub error_limit: Option<u32>,
    /// `LOG_ERRORS`.
    pub log_errors: bool,
    /// `MAX_LINE_LENGTH`: gpfdist refuses a row longer than 32 KB without it.
    pub max_line_length: Option<u64>,
    /// `OUTPUT: TABLE`.
    pub table: String,
    /// `OUTPUT: MODE`.
    pub mode: LoadMode,
    /// `MATCH_COLUMNS`.
    pub match_columns: Vec<String>,
    /// `UPDATE_COLUMNS`.
    pub update_columns: Vec<String>,
    /// `UPDATE_CONDITION`.
    pub update_condition: Option<String>,
    /// `MAPPING`: target column → source column or expression.
    pub mapping: Vec<(String, String)>,
    /// `PRELOAD: TRUNCATE`.
    pub truncate: bool,
    /// `PRELOAD: REUSE_TABLES`.
    pub reuse_tables: bool,
    /// `SQL: BEFORE` statements.
    pub before: Vec<String>,
    /// `SQL: AFTER` statements.
    pub after: Vec<String>,
}

/// A YAML double-quoted scalar: backslash, double quote and control characters escaped, so
/// any name or SQL text survives unchanged.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Control {
    /// The control file's text.
    pub fn render(&self) -> String {
        let q = yaml_quote;
        let mut y = String::new();
        // `writeln!` into a String cannot fail.
        let mut line = |indent: usize, text: String| {
            let _ = writeln!(y, "{:indent$}{text}", "");
        };
        line(0, "---".into());
        line(0, "VERSION: 1.0.0.1".into());
        line(0, format!("DATABASE: {}", q(&self.database)));
        line(0, format!("USER: {}", q(&self.user)));
        line(0, format!("HOST: {}", q(&self.host)));
        line(0, format!("PORT: {}", self.port));
        line(0, "GPLOAD:".into());
        line(3, "INPUT:".into());
        line(4, "- SOURCE:".into());
        if !self.local_hostname.is_empty() {
            line(9, "LOCAL_HOSTNAME:".into());
            for h in &self.local_hostname {
                line(11, format!("- {}", q(h)));
            }
        }
        if let Some(p) = self.gpfdist_port {
            line(9, format!("PORT: {p}"));
        } else if let Some([a, b]) = self.gpfdist_port_range {
            line(9, format!("PORT_RANGE: [{a}, {b}]"));
        }
        line(9, "FILE:".into());
        for f in &self.files {
            line(11, format!("- {}", q(f)));
        }
        line(4, "- COLUMNS:".into());
        for (name, ty) in &self.columns {
            line(11, format!("- {}: {}", q(name), q(ty)));
        }
        // COPY's CSV, spelled out: comma, `"` quotes (and doubles them to escape), NULL as an
        // unquoted empty field, an empty string as `""`.
        line(4, "- FORMAT: csv".into());
        line(4, format!("- DELIMITER: {}", q(",")));
        line(4, format!("- QUOTE: {}", q("\"")));
        line(4, format!("- NULL_AS: {}", q("")));
        line(4, format!("- ENCODING: {}", q(&self.encoding)));
        if let Some(n) = self.max_line_length {
            line(4, format!("- MAX_LINE_LENGTH: {n}"));
        }
        if let Some(n) = self.error_limit {
            line(4, format!("- ERROR_LIMIT: {n}"));
            if self.log_errors {
                line(4, "- LOG_ERRORS: true".into());
            }
        }
        line(3, "OUTPUT:".into());
        line(4, format!("- TABLE: {}", q(&self.table)));
        line(4, format!("- MODE: {}", self.mode.as_str()));
        if self.mode != LoadMode::Insert {
            line(4, "- MATCH_COLUMNS:".into());
            for c in &self.match_columns {
                line(11, format!("- {}", q(c)));
            }
            line(4, "- UPDATE_COLUMNS:".into());
            for c in &self.update_columns {
                line(11, format!("- {}", q(c)));
            }
            if let Some(cond) = &self.update_condition {
                line(4, format!("- UPDATE_CONDITION: {}", q(cond)));
            }
        }
        if !self.mapping.is_empty() {
            line(4, "- MAPPING:".into());
            for (target, source) in &self.mapping {
                line(11, format!("{}: {}", q(target), q(source)));
            }
        }
        if self.truncate || self.reuse_tables {
            line(3, "PRELOAD:".into());
            line(4, format!("- TRUNCATE: {}", self.truncate));
            line(4, format!("- REUSE_TABLES: {}", self.reuse_tables));
        }
        if !self.before.is_empty() || !self.after.is_empty() {
            line(3, "SQL:".into());
            for s in &self.before {
                line(4, format!("- BEFORE: {}", q(s)));
            }
            for s in &self.after {
                line(4, format!("- AFTER: {}", q(s)));
            }
        }
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Control {
        Control {
            database: "edw".into(),
            user: "etl".into(),
            host: "mdw-1".into(),
            port: 5432,
            local_hostname: vec!["etl1-1".into(), "etl1-2".into()],
            gpfdist_port: None,
            gpfdist_port_range: Some([8081, 8089]),
            files: vec!["/data/gpload/edw^eda^defects^20240310000000^20240310030000/part-00001.csv.gz".into()],
            columns: vec![
                ("id".into(), "bigint".into()),
                ("evt_ts".into(), "timestamp without time zone".into()),
                ("\"Glass\"".into(), "character varying(200)".into()),
            ],
            encoding: "UTF8".into(),
            error_limit: Some(10),
            log_errors: true,
            max_line_length: None,
            table: "eda.defects".into(),
            mode: LoadMode::Merge,
            match_columns: vec!["id".into()],
            update_columns: vec!["evt_ts".into(), "qty".into()],
            update_condition: Some("qty > 0 AND note <> 'it''s'".into()),
            mapping: vec![],
            truncate: false,
            reuse_tables: true,
            before: vec!["DELETE FROM \"eda\".\"defects\" WHERE \"evt_ts\" >= '2024-03-10 00:00:00'".into()],
            after: vec![],
        }
    }

    #[test]
    fn control_file_snapshot() {
        insta::assert_snapshot!(sample().render());
    }

    #[test]
    fn insert_mode_has_no_match_or_update_columns() {
        let c = Control { mode: LoadMode::Insert, gpfdist_port: Some(8081), ..sample() };
        let y = c.render();
        assert!(!y.contains("MATCH_COLUMNS") && !y.contains("UPDATE_COLUMNS"), "{y}");
        assert!(y.contains("         PORT: 8081\n") && !y.contains("PORT_RANGE"), "{y}");
    }

    #[test]
    fn quoting_survives_anything() {
        assert_eq!(yaml_quote("a\"b\\c\td\n"), r#""a\"b\\c\td\n""#);
        assert_eq!(yaml_quote("\u{1}x"), r#""\x01x""#);
        assert_eq!(yaml_quote("缺陷: #1 - [x]"), "\"缺陷: #1 - [x]\"");
    }
}
