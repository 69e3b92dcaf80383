//! The `gp4` source: windows read from Greenplum 4 (PostgreSQL 8.2 kernel) with SQL that 8.2
//! accepts, and text stored as GBK / GB18030 delivered as UTF-8.
//!
//! * SQL: `COPY (SELECT … WHERE window) TO STDOUT` in text format or `… TO STDOUT WITH CSV`
//!   (what a shared mount and gpload take), never an option list (8.2 refuses `WITH (…)`);
//!   the session settings are the core's for the `gp4` flavour
//!   (`extra_float_digits = 2`, no `IntervalStyle`/`bytea_output`, `standard_conforming_strings`
//!   set on explicitly since 8.2 defaults to off). Never binary.
//! * Encoding: a database with a real server encoding (UTF8, EUC_CN, …) converts to the client
//!   encoding UTF8 itself. A SQL_ASCII database converts nothing: the bytes are read raw
//!   (`client_encoding = SQL_ASCII`) and each row is decoded from `source_encoding` here.
//! * Bad bytes fail the window naming the row, or, within `error_limit` rows per window, go to
//!   the window's reject file as raw rows (COPY text or CSV, as read); rows read then counts
//!   only the good rows, so rows read = rows written still holds. Each window has its own file,
//!   rewritten by every attempt, so a retried window never lists a row twice.

mod server_map;
mod text;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use serde::Deserialize;

use gptransfer_core::cluster::{end_after_error, export_window};
use gptransfer_core::config::Mode;
use gptransfer_core::dialect::{sql, Flavour, QualifiedName};
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::roles::{ByteStream, CopyFormat, ExternalLocation, Source, WindowCtx};
use gptransfer_core::window::Window;
use gptransfer_core::RoleError;

pub use text::{BadRow, Refused, SourceEncoding, Transcoder};

/// Options of the `gp4` source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gp4SourceConfig {
    /// Extra filter ANDed to the window predicate, written in 8.2 SQL.
    pub filter: Option<String>,
    /// How text is stored: `utf8` (default), `gbk`, `gb18030`. Only used where the server
    /// cannot convert (a SQL_ASCII database).
    #[serde(default)]
    pub source_encoding: SourceEncoding,
    /// Rows per window that may be invalid in `source_encoding` and go to `reject_file`
    /// instead of failing the window.
    #[serde(default)]
    pub error_limit: u64,
    /// Where a window's rejected rows are written, raw: `{window}` in the path is replaced by
    /// the window id (without it, `.<window id>` is appended). Required with `error_limit`.
    pub reject_file: Option<PathBuf>,
}

impl Gp4SourceConfig {
    fn parse(options: &toml::Table) -> Result<Self, String> {
        let c: Gp4SourceConfig = parse_options(options)?;
        if c.error_limit > 0 && c.reject_file.is_none() {
            return Err(format!(
                "error_limit = {} needs reject_file, the file the rejected rows are written to",
                c.error_limit
            ));
        }
        Ok(c)
    }
}

/// The `gp4` source.
#[derive(Debug, Clone)]
pub struct Gp4Source {
    config: Gp4SourceConfig,
}

/// Registers `gp4` as a source.
pub struct Gp4SourceFactory;

impl Factory<dyn Source> for Gp4SourceFactory {
    fn name(&self) -> &'static str {
        "gp4"
    }
    fn describe(&self) -> &'static str {
        "COPY (SELECT … WHERE window) TO STDOUT in the 8.2 dialect (GP4); GBK/GB18030 text to UTF-8"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        Gp4SourceConfig::parse(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Source>, String> {
        Ok(Arc::new(Gp4Source { config: Gp4SourceConfig::parse(options)? }))
    }
}

/// What reading the database's encoding sends (`Session::show`); `SHOW` exists on every version.
pub const SHOW_SERVER_ENCODING: &str = "SHOW server_encoding";

/// Whether the server converts text for us (any real server encoding) or not (SQL_ASCII).
fn server_converts(server_encoding: &str) -> bool {
    !server_encoding.eq_ignore_ascii_case("SQL_ASCII")
}

impl Gp4Source {
    /// A source with these options (tests).
    pub fn new(config: Gp4SourceConfig) -> Self {
        Gp4Source { config }
    }

    /// The statement that reads a window, in text or CSV format; never an option list.
    /// `select` is the SELECT list ([`sql::select_list`]).
    pub fn statement(
        &self,
        table: &QualifiedName,
        select: &str,
        mode: Mode,
        condition: Option<(&str, &str)>,
        window: Window,
        format: CopyFormat,
    ) -> String {
        let predicate = self.predicate(mode, condition, window);
        // Binary COPY differs between 8.2 and later kernels: text or CSV only.
        let format = if format == CopyFormat::Binary { CopyFormat::Text } else { format };
        sql::copy_out(table, select, predicate.as_deref(), format)
    }

    /// The window's rows: its predicate (none in `full` mode) and the `filter`.
    fn predicate(&self, mode: Mode, condition: Option<(&str, &str)>, window: Window) -> Option<String> {
        let predicate = match condition {
            Some((col, typ)) if mode != Mode::Full => Some(sql::window_predicate(col, typ, window.start, window.end)),
            _ => None,
        };
        match (predicate, &self.config.filter) {
            (Some(p), Some(f)) => Some(format!("{p} AND ({f})")),
            (None, Some(f)) => Some(format!("({f})")),
            (p, None) => p,
        }
    }

    /// Settings sent after the flavour's session setup, given the server's encoding.
    pub fn encoding_setup(&self, server_encoding: &str) -> Option<&'static str> {
        if server_converts(server_encoding) {
            // Already set by the session setup; the server converts from its encoding.
            None
        } else {
            // No conversion is possible; say so explicitly and read the stored bytes.
            Some("SET client_encoding = 'SQL_ASCII'")
        }
    }

    fn window_statement(&self, ctx: &WindowCtx, flavour: Flavour) -> String {
        let condition =
            ctx.table.condition_column.as_deref().map(|c| (c, ctx.condition_type.as_deref().unwrap_or("timestamp")));
        let select = ctx.select_list(flavour);
        self.statement(&ctx.table.source_table, &select, ctx.table.mode, condition, ctx.window, ctx.format)
    }
}

#[async_trait]
impl Source for Gp4Source {
    fn formats(&self) -> Vec<CopyFormat> {
        vec![CopyFormat::Text, CopyFormat::Csv]
    }

    fn row_filter(&self) -> Option<String> {
        self.config.filter.clone()
    }

    fn stored_text_encoding(&self) -> Option<&'static str> {
        match self.config.source_encoding {
            SourceEncoding::Utf8 => None,
            // The transfer decodes GBK with WHATWG's GBK decoder, which is GB18030's; the
            // server's own GBK table lacks some of its characters (0xA2E3, €), its GB18030
            // table has them, so compare converts GBK as GB18030 too.
            SourceEncoding::Gbk | SourceEncoding::Gb18030 => Some("GB18030"),
        }
    }

    /// GP4's segments write through writable external tables; rows with bad bytes would fail
    /// the window there, so not with an `error_limit` (which puts them in a reject file).
    fn exports(&self, flavour: Flavour) -> bool {
        flavour == Flavour::Gp4 && self.config.error_limit == 0
    }

    /// The segments write the window in the location's encoding: the server converts a real
    /// encoding to it; a SQL_ASCII database's stored bytes pass as they are, in the encoding
    /// `stored_text_encoding` names, and the target converts them.
    async fn export(&self, ctx: &WindowCtx, location: &ExternalLocation) -> Result<u64, RoleError> {
        let session = ctx
            .source
            .connect(&ctx.application, ctx.table.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let condition =
            ctx.table.condition_column.as_deref().map(|c| (c, ctx.condition_type.as_deref().unwrap_or("timestamp")));
        let predicate = self.predicate(ctx.table.mode, condition, ctx.window);
        export_window(&session, ctx, location, &ctx.select_list(session.flavour), predicate).await
    }

    async fn open(&self, ctx: &WindowCtx) -> Result<ByteStream, RoleError> {
        let cluster = ctx.source.name.clone();
        let src_err = {
            let cluster = cluster.clone();
            move |what: &str| {
                let prefix = format!("{what} on source cluster {cluster:?}");
                move |e: RoleError| RoleError { message: format!("{prefix}: {}", e.message), ..e }
            }
        };
        let session = ctx
            .source
            .connect(&ctx.application, ctx.table.timezone.as_deref())
            .await
            .map_err(|e| RoleError::retriable(e.to_string()))?;
        let server_encoding = session.show("server_encoding").await.map_err(src_err("reading server_encoding"))?;
        let transcode = match self.encoding_setup(&server_encoding) {
            Some(set) => {
                tracing::debug!(cluster = %cluster, "{set}");
                session.timed(session.client.batch_execute(set)).await.map_err(src_err("setting client_encoding"))?;
                Some(match ctx.format {
                    CopyFormat::Csv => Transcoder::csv(self.config.source_encoding),
                    _ => Transcoder::new(self.config.source_encoding),
                })
            }
            None => None,
        };
        let statement = self.window_statement(ctx, session.flavour);
        tracing::debug!(cluster = %cluster, server_encoding = %server_encoding, "{statement}");
        let raw = session.copy_out_stream(&statement, &cluster).await?;
        let rows: ByteStream = match transcode {
            None => Box::pin(raw),
            Some(transcoder) => {
                let check = RowCheck {
                    transcoder,
                    config: self.config.clone(),
                    window: ctx.window.id(),
                    table: ctx.table.source_table.to_string(),
                    columns: ctx.columns.clone(),
                    rejected: 0,
                    rejects: Vec::new(),
                };
                Box::pin(futures_util::stream::unfold((Box::pin(raw), Some(check)), |(mut raw, check)| async move {
                    let mut check = check?;
                    match raw.next().await {
                        Some(item) => {
                            let out = item.and_then(|chunk| check.chunk(&chunk));
                            Some((out, (raw, Some(check))))
                        }
                        None => check.finish().err().map(|e| (Err(e), (raw, None))),
                    }
                }))
            }
        };
        // The transcoder's own errors end the stream too.
        Ok(end_after_error(rows))
    }
}

/// The reject file of one window: `{window}` in `template` replaced, or `.<window>` appended.
pub fn reject_path(template: &std::path::Path, window: &str) -> PathBuf {
    let text = template.to_string_lossy();
    if text.contains("{window}") {
        PathBuf::from(text.replace("{window}", window))
    } else {
        let mut p = template.as_os_str().to_owned();
        p.push(".");
        p.push(window);
        PathBuf::from(p)
    }
}

/// The per-window state of transcoding: bad rows fail the window or go to the reject file.
struct RowCheck {
    transcoder: Transcoder,
    config: Gp4SourceConfig,
    window: String,
    table: String,
    columns: Arc<Vec<String>>,
    rejected: u64,
    /// This attempt's rejected rows (at most `error_limit`), written when the stream ends.
    rejects: Vec<u8>,
}

impl RowCheck {
    fn chunk(&mut self, chunk: &[u8]) -> Result<bytes::Bytes, RoleError> {
        let converted = self.transcoder.push(chunk);
        for bad in &converted.bad {
            self.rejected += 1;
            let column = self.columns.get(bad.field).map(String::as_str).unwrap_or("?");
            // The engine names the table and the window; the row number and its first bytes
            // (usually the key) find the row.
            let what = format!(
                "row {} of the window, column {column:?}: {}; the row begins with bytes {}",
                bad.row,
                bad.reason,
                bad.head_hex()
            );
            if self.rejected > self.config.error_limit {
                let hint = if self.config.error_limit == 0 {
                    format!(
                        "check that source_encoding = \"{}\" is how the text is stored, or set error_limit and \
                         reject_file to set such rows aside",
                        self.config.source_encoding.name().to_ascii_lowercase().replace('-', "")
                    )
                } else {
                    format!("more than error_limit = {} bad rows in this window", self.config.error_limit)
                };
                return Err(RoleError::new(format!("{what} ({hint})")));
            }
            self.reject(bad, &what)?;
        }
        Ok(converted.bytes)
    }

    /// At the end of the stream: a row cut short is an error; rejected rows are written (in
    /// place of an earlier attempt's) and reported.
    fn finish(&self) -> Result<(), RoleError> {
        if !self.transcoder.leftover().is_empty() {
            return Err(RoleError::retriable(format!(
                "the COPY stream of window {} of {} ended inside a row",
                self.window, self.table
            )));
        }
        self.write_rejects()?;
        if self.rejected > 0 {
            tracing::warn!(
                "window {} of {}: {} row(s) not valid {} written to reject_file and not loaded",
                self.window,
                self.table,
                self.rejected,
                self.config.source_encoding.name()
            );
        }
        Ok(())
    }

    fn reject(&mut self, bad: &BadRow, what: &str) -> Result<(), RoleError> {
        let Some(template) = &self.config.reject_file else {
            return Err(RoleError::new(what.to_string()));
        };
        self.rejects.extend_from_slice(&bad.raw);
        self.rejects.push(b'\n');
        let path = reject_path(template, &self.window);
        tracing::warn!("{} {}: {what}: goes to reject_file {}", self.table, self.window, path.display());
        Ok(())
    }

    /// Replaces the window's reject file with this attempt's rows (through a temporary name),
    /// or removes an earlier attempt's file when no row was rejected.
    fn write_rejects(&self) -> Result<(), RoleError> {
        let Some(template) = &self.config.reject_file else { return Ok(()) };
        let path = reject_path(template, &self.window);
        let result = if self.rejects.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::File::create(&tmp)
                .and_then(|mut f| f.write_all(&self.rejects).and_then(|()| f.sync_all()))
                .and_then(|()| std::fs::rename(&tmp, &path))
        };
        result.map_err(|e| RoleError::new(format!("cannot write reject_file {}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_default()
    }

    /// True when `sql` holds a COPY whose options are a parenthesised list: `WITH (…)`, or
    /// any parenthesis after `TO STDOUT`.
    fn has_option_list(sql: &str) -> bool {
        let upper = sql.to_ascii_uppercase();
        let squeezed: String = upper.split_whitespace().collect::<Vec<_>>().join(" ");
        squeezed.contains("WITH (")
            || squeezed.contains("WITH(")
            || squeezed.rsplit("TO STDOUT").next().is_some_and(|tail| tail.contains('(') && upper.contains("TO STDOUT"))
    }

    #[test]
    fn option_list_detector_works() {
        assert!(has_option_list("COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)"));
        assert!(has_option_list("COPY (SELECT 1) TO STDOUT (FORMAT csv)"));
        assert!(!has_option_list("COPY (SELECT 1) TO STDOUT WITH CSV HEADER"));
        assert!(!has_option_list("COPY (SELECT \"a\" FROM \"s\".\"t\" WHERE (x > 1)) TO STDOUT"));
    }

    #[test]
    fn no_statement_sent_to_a_gp4_source_has_a_parenthesised_copy_option_list() {
        let table = QualifiedName::parse("eda.\"Fact Table\"").unwrap_or_else(|e| panic!("{e}"));
        let columns: Vec<String> = vec!["id".into(), "Evt".into(), "select".into()];
        let types: Vec<String> = vec!["int4".into(), "timestamp".into(), "float4".into()];
        let select = sql::select_list(Flavour::Gp4, &columns, &types);
        assert!(select.contains("\"select\"::float8"), "{select}");
        let window = Window { start: ts("2024-03-10 00:00:00"), end: ts("2024-03-10 01:00:00") };
        let mut sent = Vec::new();
        for tz in [None, Some("Asia/Shanghai")] {
            sent.push(sql::session_setup(Flavour::Gp4, tz));
        }
        sent.push(SHOW_SERVER_ENCODING.to_string());
        for filter in [None, Some("site = 'B1' AND (qty > 0)".to_string())] {
            for encoding in [SourceEncoding::Utf8, SourceEncoding::Gbk, SourceEncoding::Gb18030] {
                for (error_limit, reject_file) in [(0, None), (5, Some(PathBuf::from("/tmp/r")))] {
                    let source = Gp4Source::new(Gp4SourceConfig {
                        filter: filter.clone(),
                        source_encoding: encoding,
                        error_limit,
                        reject_file: reject_file.clone(),
                    });
                    for server in ["UTF8", "SQL_ASCII", "EUC_CN"] {
                        sent.extend(source.encoding_setup(server).map(str::to_string));
                    }
                    for mode in [Mode::Replace, Mode::Append, Mode::Merge, Mode::Full] {
                        for format in [CopyFormat::Text, CopyFormat::Csv, CopyFormat::Binary] {
                            for typ in ["timestamp", "timestamptz", "date"] {
                                let condition = Some(("evt_timestamp", typ));
                                sent.push(source.statement(&table, &select, mode, condition, window, format));
                            }
                            sent.push(source.statement(&table, &select, mode, None, window, format));
                        }
                    }
                }
            }
        }
        assert!(sent.iter().any(|s| s.starts_with("COPY (SELECT")));
        assert!(sent.iter().any(|s| s.ends_with("TO STDOUT WITH CSV")));
        for s in &sent {
            assert!(!has_option_list(s), "parenthesised COPY option list sent to gp4: {s}");
            assert!(!s.contains(" BINARY"), "binary COPY sent to gp4: {s}");
            // 8.2 takes extra_float_digits up to 2, and has no bytea_output / IntervalStyle.
            assert!(!s.contains("extra_float_digits = 3"), "{s}");
            assert!(!s.contains("bytea_output") && !s.contains("IntervalStyle"), "{s}");
        }
    }

    #[test]
    fn server_encoding_decides_who_converts() {
        let s = Gp4Source::new(Gp4SourceConfig { source_encoding: SourceEncoding::Gbk, ..Default::default() });
        assert_eq!(s.encoding_setup("UTF8"), None);
        assert_eq!(s.encoding_setup("EUC_CN"), None);
        assert_eq!(s.encoding_setup("SQL_ASCII"), Some("SET client_encoding = 'SQL_ASCII'"));
    }

    fn row_check(error_limit: u64, reject_file: Option<PathBuf>) -> RowCheck {
        RowCheck {
            transcoder: Transcoder::new(SourceEncoding::Gbk),
            config: Gp4SourceConfig { source_encoding: SourceEncoding::Gbk, error_limit, reject_file, filter: None },
            window: "20240310000000^20240310010000".into(),
            table: "public.t".into(),
            columns: Arc::new(vec!["id".into(), "name".into()]),
            rejected: 0,
            rejects: Vec::new(),
        }
    }

    #[test]
    fn bad_rows_fail_the_window_past_the_error_limit() {
        let mut check = row_check(0, None);
        let e = check.chunk(b"1\t\xd6\xd0\n2\t\xff\n").map(|_| ()).unwrap_err();
        assert!(e.message.starts_with("row 2 of the window, column \"name\": not valid GBK"), "{}", e.message);
        assert!(!e.retriable);

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let template = dir.path().join("rejects-{window}.txt");
        let file = dir.path().join("rejects-20240310000000^20240310010000.txt");
        for _attempt in 0..2 {
            // A retried window rewrites its file: the bad row is listed once.
            let mut check = row_check(1, Some(template.clone()));
            let out = check.chunk(b"1\t\xd6\xd0\n2\t\xff\n3\tok\n").unwrap_or_default();
            assert_eq!(&out[..], "1\t中\n3\tok\n".as_bytes());
            assert!(check.finish().is_ok());
            assert_eq!(std::fs::read(&file).unwrap_or_default(), b"2\t\xff\n");
        }
        let mut check = row_check(1, Some(template.clone()));
        let _ = check.chunk(b"2\t\xff\n");
        let e = check.chunk(b"4\t\xff\n").map(|_| ()).unwrap_err();
        assert!(e.message.contains("row 2 of the window") && e.message.contains("error_limit = 1"), "{}", e.message);
        // An attempt without bad rows removes the stale file.
        let check = row_check(1, Some(template));
        assert!(check.finish().is_ok());
        assert!(!file.exists());
        assert_eq!(reject_path(std::path::Path::new("/r/x.txt"), "a^b"), std::path::PathBuf::from("/r/x.txt.a^b"));

        let mut check = row_check(0, None);
        let _ = check.chunk(b"1\tcut");
        assert!(check.finish().unwrap_err().message.contains("ended inside a row"));
    }

    #[test]
    fn error_limit_needs_a_reject_file() {
        let t: toml::Table = toml::from_str("error_limit = 3").unwrap_or_default();
        assert!(Gp4SourceConfig::parse(&t).unwrap_err().contains("reject_file"));
        let t: toml::Table = toml::from_str("source_encoding = \"big5\"").unwrap_or_default();
        assert!(Gp4SourceConfig::parse(&t).is_err());
        let t: toml::Table = toml::from_str("source_encoding = \"gb18030\"\nerror_limit = 3\nreject_file = \"/tmp/x\"")
            .unwrap_or_default();
        assert_eq!(Gp4SourceConfig::parse(&t).map(|c| c.error_limit), Ok(3));
    }
}
