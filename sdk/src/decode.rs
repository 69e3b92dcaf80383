//! Decoding the rows a sink receives: PostgreSQL COPY text (or CSV) bytes, in chunks that may
//! end anywhere (mid-row, mid-escape, mid-character), into rows of `Option<String>` values.
//!
//! ```
//! use gptransfer_sdk::decode::{Decoder, Format};
//!
//! let mut decoder = Decoder::new(Format::Text).with_columns(2);
//! for chunk in [&b"1\tline\\none\n2\t\\"[..], &b"N\n"[..]] {
//!     decoder.push(chunk);
//!     while let Some(row) = decoder.next_row()? {
//!         let _id = row.get(0); // None when NULL
//!     }
//! }
//! decoder.finish()?; // Err when the stream was cut inside a row
//! assert_eq!(decoder.rows(), 2);
//! # Ok::<(), gptransfer_sdk::PluginError>(())
//! ```
//!
//! **Text** is what `COPY ... TO STDOUT` writes: fields separated by a tab, rows ended by a
//! newline, `\N` alone for NULL, and a backslash escaping the bytes that would break that
//! layout (`\b \f \n \r \t \v \\`). `COPY FROM` also reads `\` + 1–3 octal digits and `\x` +
//! 1–2 hex digits as one byte, and any other `\c` as `c`; all of these are accepted here. A
//! value is decoded to bytes first and then checked as UTF-8, so escapes whose bytes only form
//! a character together are fine. `\N` means NULL only as the whole field (`\Nx` is `Nx`, as
//! in `COPY FROM`); `\\N` is the two characters `\N`.
//!
//! Where `COPY FROM` is lenient with bytes `COPY TO` never writes, this decoder refuses them,
//! because they mean the stream is not what the server sent, and guessing would change data:
//! - a raw carriage return (text, or CSV outside quotes): the server writes `\r` (text) or
//!   quotes the field (CSV) and always ends rows with a lone newline. `COPY FROM` accepts
//!   `\r\n` or `\r` row ends only when the first row ends that way, and otherwise fails with
//!   "literal carriage return found in data";
//! - every raw newline ends a row (as the host counts rows), so a backslash right before it is
//!   a truncated escape (`COPY FROM` would read a newline into the value);
//! - `\.`, the end-of-data marker, which `COPY TO STDOUT` never sends (`COPY FROM` ends the
//!   data at `\.` alone on a line and fails with "end-of-copy marker corrupt" elsewhere);
//! - a NUL byte in a value (from `\0` or raw), which PostgreSQL text cannot hold;
//! - a stream ending after an incomplete row (see [`Decoder::finish`]).
//!
//! **CSV** is `COPY ... WITH CSV`: comma, `"` as quote and escape (`""` inside quotes is one
//! `"`), an unquoted empty field is NULL and a quoted empty one (`""`) the empty string, and
//! a quoted field may hold commas, newlines and carriage returns.
//!
//! Memory stays bounded by the longest row (rows already returned are dropped), and decoding
//! is linear whatever the chunking: a partial row is not searched again at each push.

use crate::PluginError;

/// The COPY format of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `COPY ... TO STDOUT` (text): tab-delimited, `\N` for NULL, backslash escapes.
    Text,
    /// `COPY ... TO STDOUT WITH CSV`: comma, `"` quote and escape, unquoted empty for NULL.
    Csv,
}

/// One decoded row: a value per column, `None` for NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    values: Vec<Option<String>>,
}

impl Row {
    /// A row of these values.
    pub fn new(values: Vec<Option<String>>) -> Self {
        Row { values }
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row without columns (never decoded: an empty line is one empty column).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of column `i` (0-based); `None` for NULL and for a column out of range.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.values.get(i).and_then(|v| v.as_deref())
    }

    /// True when column `i` (0-based) is NULL.
    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.values.get(i), Some(None))
    }

    /// All values, in column order.
    pub fn values(&self) -> &[Option<String>] {
        &self.values
    }

    /// All values, in column order, owned.
    pub fn into_values(self) -> Vec<Option<String>> {
        self.values
    }
}

/// Decodes COPY bytes pushed in chunks of any size into [`Row`]s.
///
/// Errors (all [`PluginError::fatal`]) name the row (1-based, counted from the start of the
/// stream) and the column (1-based, with its name when given by
/// [`Decoder::with_column_names`]). After an error in [`Decoder::next_row`] the bad row is
/// skipped: calling it again goes on with the next row.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: Format,
    columns: Option<usize>,
    names: Vec<String>,
    /// Bytes pushed and not yet returned as rows; `buf[start..]` is still to come.
    buf: Vec<u8>,
    start: usize,
    /// How far the current row was searched for its end (so a long row arriving in small
    /// chunks is scanned once), and, for CSV, whether that point is inside quotes.
    scan: usize,
    in_quotes: bool,
    /// Rows taken off the stream (decoded or refused) and rows decoded.
    seen: u64,
    decoded: u64,
    /// The value being decoded, reused between fields.
    scratch: Vec<u8>,
}

impl Decoder {
    /// A decoder of `format` bytes.
    pub fn new(format: Format) -> Self {
        Decoder {
            format,
            columns: None,
            names: Vec::new(),
            buf: Vec::new(),
            start: 0,
            scan: 0,
            in_quotes: false,
            seen: 0,
            decoded: 0,
            scratch: Vec::new(),
        }
    }

    /// Expects exactly `n` fields per row: a row with another count is an error naming it.
    pub fn with_columns(mut self, n: usize) -> Self {
        self.columns = Some(n);
        self
    }

    /// Expects one field per name (such as [`crate::WindowInfo::columns`]); errors then name
    /// the column as well as its number.
    pub fn with_column_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = names.into_iter().map(Into::into).collect();
        self.columns = Some(self.names.len());
        self
    }

    /// Appends the next chunk of bytes, split anywhere.
    pub fn push(&mut self, chunk: &[u8]) {
        // Drop the rows already returned, but only once they are at least half the buffer,
        // so each byte is moved O(1) times however the caller interleaves push and next_row.
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete row, or `Ok(None)` when the bytes pushed hold no complete row yet.
    pub fn next_row(&mut self) -> Result<Option<Row>, PluginError> {
        let Some(end) = self.find_row_end() else { return Ok(None) };
        let row_start = self.start;
        self.start = end + 1;
        self.scan = self.start;
        self.seen += 1;
        let at = At { row: self.seen, names: &self.names };
        let raw = &self.buf[row_start..end];
        let values = match self.format {
            Format::Text => parse_text(raw, &at, &mut self.scratch)?,
            Format::Csv => parse_csv(raw, &at, &mut self.scratch)?,
        };
        if let Some(n) = self.columns {
            if values.len() != n {
                return Err(PluginError::fatal(format!(
                    "row {} has {} columns, expected {n}{}",
                    self.seen,
                    values.len(),
                    if self.names.is_empty() { String::new() } else { format!(" ({})", self.names.join(", ")) }
                )));
            }
        }
        self.decoded += 1;
        Ok(Some(Row { values }))
    }

    /// Ends the stream: an error when bytes of an unfinished row are left (COPY ends every
    /// row, the last one too, with a newline), naming the row and how it was cut.
    pub fn finish(&mut self) -> Result<(), PluginError> {
        if self.start == self.buf.len() {
            return Ok(());
        }
        if self.find_row_end().is_some() {
            return Err(PluginError::fatal(format!(
                "the stream was ended with row {} and later rows not read: call next_row until it returns \
                 Ok(None) before finish",
                self.seen + 1
            )));
        }
        let rest = &self.buf[self.start..];
        let at = At { row: self.seen + 1, names: &self.names };
        let (column, inside) = match self.format {
            Format::Text => {
                let (column, in_escape) = text_tail(rest);
                (column, if in_escape { "inside an escape (a backslash with nothing after it)" } else { "" })
            }
            Format::Csv => {
                let column = csv_tail(rest);
                (column, if self.in_quotes { "inside a quoted value (no closing quote)" } else { "" })
            }
        };
        let inside = if inside.is_empty() { "without the newline that ends every row" } else { inside };
        Err(PluginError::fatal(format!(
            "{}: the stream ends {inside}, {} bytes into the row; the data was cut short",
            at.column(column),
            rest.len()
        )))
    }

    /// Rows decoded so far (refused rows not counted).
    pub fn rows(&self) -> u64 {
        self.decoded
    }

    /// Index in `buf` of the newline ending the current row, if it has arrived. Remembers how
    /// far it looked, so bytes are searched once.
    fn find_row_end(&mut self) -> Option<usize> {
        match self.format {
            Format::Text => match memchr::memchr(b'\n', &self.buf[self.scan..]) {
                Some(i) => Some(self.scan + i),
                None => {
                    self.scan = self.buf.len();
                    None
                }
            },
            Format::Csv => loop {
                let rest = &self.buf[self.scan..];
                let found =
                    if self.in_quotes { memchr::memchr(b'"', rest) } else { memchr::memchr2(b'"', b'\n', rest) };
                let Some(i) = found else {
                    self.scan = self.buf.len();
                    return None;
                };
                let i = self.scan + i;
                if self.buf[i] == b'\n' {
                    return Some(i);
                }
                // `""` (an escaped quote) toggles twice, so no look-ahead is needed.
                self.in_quotes = !self.in_quotes;
                self.scan = i + 1;
            },
        }
    }
}

/// Where in the stream an error is: the row number and the column names, if known.
struct At<'a> {
    row: u64,
    names: &'a [String],
}

impl At<'_> {
    /// `row 3, column 2` or `row 3, column 2 (note)`; `column` is 0-based.
    fn column(&self, column: usize) -> String {
        match self.names.get(column) {
            Some(name) => format!("row {}, column {} ({name})", self.row, column + 1),
            None => format!("row {}, column {}", self.row, column + 1),
        }
    }

    fn error(&self, column: usize, what: impl std::fmt::Display) -> PluginError {
        PluginError::fatal(format!("{}: {what}", self.column(column)))
    }
}

/// A value's bytes as a `String`: UTF-8 (COPY is sent in UTF8) and without NUL.
fn value(bytes: &[u8], at: &At<'_>, column: usize) -> Result<String, PluginError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let from = e.valid_up_to();
        let to = from + e.error_len().unwrap_or(bytes.len() - from).min(4);
        let hex = bytes[from..to].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        at.error(column, format!("not valid UTF-8 (bytes {hex} at byte {} of the value)", from + 1))
    })?;
    if let Some(i) = memchr::memchr(0, bytes) {
        return Err(
            at.error(column, format!("a NUL byte at byte {} of the value (PostgreSQL text cannot hold one)", i + 1))
        );
    }
    Ok(text.to_string())
}

/// Decodes one text row (without its newline).
fn parse_text(row: &[u8], at: &At<'_>, field: &mut Vec<u8>) -> Result<Vec<Option<String>>, PluginError> {
    let mut values = Vec::new();
    let mut field_start = 0;
    let mut i = 0;
    field.clear();
    loop {
        // Copy the plain run up to the next byte that needs a decision.
        let plain = memchr::memchr3(b'\t', b'\\', b'\r', &row[i..]).map_or(row.len(), |n| i + n);
        field.extend_from_slice(&row[i..plain]);
        i = plain;
        let column = values.len();
        if i == row.len() || row[i] == b'\t' {
            // `\N` is NULL only as the whole raw field.
            if &row[field_start..i] == b"\\N" {
                values.push(None);
            } else {
                values.push(Some(value(field, at, column)?));
            }
            if i == row.len() {
                return Ok(values);
            }
            field.clear();
            i += 1;
            field_start = i;
            continue;
        }
        if row[i] == b'\r' {
            return Err(at.error(column, "a raw carriage return (COPY text writes it as \\r)"));
        }
        // A backslash.
        let Some(&c) = row.get(i + 1) else {
            return Err(at.error(column, "a backslash ends the row (a truncated escape)"));
        };
        i += 2;
        match c {
            b'b' => field.push(0x08),
            b'f' => field.push(0x0c),
            b'n' => field.push(b'\n'),
            b'r' => field.push(b'\r'),
            b't' => field.push(b'\t'),
            b'v' => field.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match row.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // As COPY FROM: `\777` keeps the low byte.
                field.push((v & 0xff) as u8);
            }
            b'x' => {
                let mut v = None;
                for _ in 0..2 {
                    match row.get(i).and_then(|&d| char::from(d).to_digit(16)) {
                        Some(d) => {
                            v = Some(v.unwrap_or(0) * 16 + d);
                            i += 1;
                        }
                        None => break,
                    }
                }
                // As COPY FROM: `\x` without a hex digit is `x`.
                field.push(v.map_or(b'x', |v| v as u8));
            }
            b'.' => {
                return Err(at.error(
                    column,
                    "the end-of-data marker \\. inside the data (COPY TO never sends it; a backslash in a value \
                     is written \\\\)",
                ))
            }
            b'\r' => return Err(at.error(column, "a raw carriage return (COPY text writes it as \\r)")),
            other => field.push(other),
        }
    }
}

/// For the bytes of an unfinished text row: its last column (0-based) and whether they end
/// with a backslash still waiting for the byte it escapes.
fn text_tail(rest: &[u8]) -> (usize, bool) {
    let (mut column, mut escaped) = (0, false);
    for &b in rest {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'\t' {
            column += 1;
        }
    }
    (column, escaped)
}

/// Decodes one CSV row (without its final newline; newlines inside quotes are in it).
fn parse_csv(row: &[u8], at: &At<'_>, field: &mut Vec<u8>) -> Result<Vec<Option<String>>, PluginError> {
    let mut values = Vec::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut i = 0;
    field.clear();
    loop {
        let column = values.len();
        if in_quotes {
            // The row ends outside quotes, so a closing quote is always there.
            let Some(n) = memchr::memchr(b'"', &row[i..]) else {
                return Err(at.error(column, "a quoted value without its closing quote"));
            };
            field.extend_from_slice(&row[i..i + n]);
            i += n + 1;
            if row.get(i) == Some(&b'"') {
                field.push(b'"');
                i += 1;
            } else {
                in_quotes = false;
            }
            continue;
        }
        let plain = memchr::memchr3(b',', b'"', b'\r', &row[i..]).map_or(row.len(), |n| i + n);
        field.extend_from_slice(&row[i..plain]);
        i = plain;
        if i == row.len() || row[i] == b',' {
            // Only an unquoted empty field is NULL; `""` is the empty string.
            values.push(if !quoted && field.is_empty() { None } else { Some(value(field, at, column)?) });
            if i == row.len() {
                return Ok(values);
            }
            field.clear();
            quoted = false;
            i += 1;
        } else if row[i] == b'"' {
            quoted = true;
            in_quotes = true;
            i += 1;
        } else {
            return Err(at.error(column, "a raw carriage return outside quotes (COPY CSV quotes such values)"));
        }
    }
}

/// The last column (0-based) of the bytes of an unfinished CSV row.
fn csv_tail(rest: &[u8]) -> usize {
    let mut in_quotes = false;
    rest.iter()
        .filter(|&&b| {
            in_quotes ^= b == b'"';
            b == b',' && !in_quotes
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// Every row of `input` pushed in chunks of `chunk` bytes, then finished.
    fn decode_chunked(format: Format, input: &[u8], chunk: usize) -> Result<Vec<Vec<Option<String>>>, PluginError> {
        let mut d = Decoder::new(format);
        let mut rows = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            d.push(piece);
            while let Some(row) = d.next_row()? {
                rows.push(row.into_values());
            }
        }
        d.finish()?;
        assert_eq!(d.rows(), rows.len() as u64);
        Ok(rows)
    }

    fn decode(format: Format, input: &[u8]) -> Result<Vec<Vec<Option<String>>>, PluginError> {
        decode_chunked(format, input, input.len())
    }

    fn text(input: &[u8]) -> Vec<Vec<Option<String>>> {
        decode(Format::Text, input).unwrap()
    }

    fn csv(input: &[u8]) -> Vec<Vec<Option<String>>> {
        decode(Format::Csv, input).unwrap()
    }

    fn err(format: Format, input: &[u8]) -> String {
        match decode(format, input) {
            Ok(rows) => panic!("{input:?} decoded to {rows:?}, expected an error"),
            Err(e) => {
                assert!(!e.retriable, "{e:?}");
                e.message
            }
        }
    }

    #[test]
    fn text_escapes() {
        assert_eq!(
            text(b"\\b\t\\f\t\\n\t\\r\t\\t\t\\v\t\\\\\n"),
            vec![vec![s("\u{8}"), s("\u{c}"), s("\n"), s("\r"), s("\t"), s("\u{b}"), s("\\")]]
        );
        // Octal: 1 to 3 digits, a 4th digit is text; \501 (0x141) keeps the low byte (as COPY FROM).
        assert_eq!(text(b"\\101\t\\60\t\\7\t\\1011\t\\501\n"), vec![vec![s("A"), s("0"), s("\u{7}"), s("A1"), s("A")]]);
        // Hex: 1 or 2 digits, either case; without a digit `\x` is `x` (checked on PostgreSQL 15).
        assert_eq!(
            text(b"\\x41\t\\x4a\t\\x4A\t\\x9\t\\x414\t\\x\t\\xg\n"),
            vec![vec![s("A"), s("J"), s("J"), s("\t"), s("A4"), s("x"), s("xg")]]
        );
        // Any other escaped byte is itself, a tab too (it then does not separate fields).
        assert_eq!(text(b"\\a\\q\\ \\,\t\\\tx\n"), vec![vec![s("aq ,"), s("\tx")]]);
        // Raw control bytes other than tab, CR and LF are sent as they are.
        assert_eq!(text(b"\x01\x7f\x1b\n"), vec![vec![s("\u{1}\u{7f}\u{1b}")]]);
    }

    /// `COPY (SELECT E'a\rb\nc\\N', NULL, '', E'\\.', '中文😀', E'\x01\x7f\b\f\t') TO STDOUT`
    /// on PostgreSQL 15, byte for byte.
    #[test]
    fn a_row_as_postgresql_writes_it() {
        let wire = b"a\\rb\\nc\\\\N\t\\N\t\t\\\\.\t\xe4\xb8\xad\xe6\x96\x87\xf0\x9f\x98\x80\t\x01\x7f\\b\\fv\\t\n";
        assert_eq!(
            text(wire),
            vec![vec![s("a\rb\nc\\N"), None, s(""), s("\\."), s("中文😀"), s("\u{1}\u{7f}\u{8}\u{c}v\t")]]
        );
    }

    #[test]
    fn null_versus_a_backslash_n() {
        assert_eq!(text(b"\\N\t\\\\N\t\\Nx\tN\t\\N\n"), vec![vec![None, s("\\N"), s("Nx"), s("N"), None]]);
        let row = Decoder::new(Format::Text);
        let mut row = row;
        row.push(b"\\N\t\\\\N\n");
        let row = row.next_row().unwrap().unwrap();
        assert!(row.is_null(0) && !row.is_null(1) && !row.is_null(2));
        assert_eq!(
            (row.get(0), row.get(1), row.get(2), row.len(), row.is_empty()),
            (None, Some("\\N"), None, 2, false)
        );
    }

    #[test]
    fn empty_fields_and_rows() {
        assert_eq!(text(b"\t\t\n"), vec![vec![s(""), s(""), s("")]]);
        assert_eq!(text(b"\n\n"), vec![vec![s("")], vec![s("")]]);
        assert_eq!(text(b""), Vec::<Vec<Option<String>>>::new());
        assert_eq!(csv(b",,\n\n"), vec![vec![None, None, None], vec![None]]);
    }

    #[test]
    fn csv_empty_string_versus_null() {
        assert_eq!(csv(b"\"\",,x,\"\"\"\"\n"), vec![vec![s(""), None, s("x"), s("\"")]]);
        // As PostgreSQL 15 writes E'a\rb\nc\\N', NULL, '', 'x"y,z', '\.' WITH CSV.
        assert_eq!(
            csv(b"\"a\rb\nc\\N\",,\"\",\"x\"\"y,z\",\\.\n"),
            vec![vec![s("a\rb\nc\\N"), None, s(""), s("x\"y,z"), s("\\.")]]
        );
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            csv(b"\"a,b\",\"say \"\"hi\"\"\",plain text , x \n"),
            vec![vec![s("a,b"), s("say \"hi\""), s("plain text "), s(" x ")]]
        );
        // Quoted and unquoted parts join, as in COPY FROM.
        assert_eq!(csv(b"ab\"c,d\"e,a\"\"b\n"), vec![vec![s("abc,de"), s("ab")]]);
        // A quoted value spans lines; CR and CRLF inside quotes are data.
        assert_eq!(
            csv(b"1,\"line1\nline2\r\nline3\r\"\n2,\"\n\"\n"),
            vec![vec![s("1"), s("line1\nline2\r\nline3\r")], vec![s("2"), s("\n")]]
        );
        // Backslashes mean nothing in CSV.
        assert_eq!(csv(b"\\N,\\t,\"\\\"\n"), vec![vec![s("\\N"), s("\\t"), s("\\")]]);
    }

    #[test]
    fn raw_carriage_returns_are_refused() {
        assert_eq!(
            err(Format::Text, b"a\tb\rc\n"),
            "row 1, column 2: a raw carriage return (COPY text writes it as \\r)"
        );
        assert_eq!(
            err(Format::Text, b"ok\nx\ty\r\n"),
            "row 2, column 2: a raw carriage return (COPY text writes it as \\r)"
        );
        assert_eq!(
            err(Format::Text, b"a\\\r\n"),
            "row 1, column 1: a raw carriage return (COPY text writes it as \\r)"
        );
        assert_eq!(
            err(Format::Csv, b"a,\"b\r\",c\r\n"),
            "row 1, column 3: a raw carriage return outside quotes (COPY CSV quotes such values)"
        );
    }

    #[test]
    fn other_bytes_copy_to_never_writes_are_refused() {
        assert_eq!(err(Format::Text, b"1\tab\\\n"), "row 1, column 2: a backslash ends the row (a truncated escape)");
        assert!(
            err(Format::Text, b"1\n\\.\n").starts_with("row 2, column 1: the end-of-data marker \\. inside the data")
        );
        assert!(err(Format::Text, b"1\tx\\.y\n").starts_with("row 1, column 2: the end-of-data marker"));
        assert_eq!(
            err(Format::Text, b"1\ta\\0b\n"),
            "row 1, column 2: a NUL byte at byte 2 of the value (PostgreSQL text cannot hold one)"
        );
        assert_eq!(
            err(Format::Csv, b"1,\"a\0\"\n"),
            "row 1, column 2: a NUL byte at byte 2 of the value (PostgreSQL text cannot hold one)"
        );
    }

    #[test]
    fn invalid_utf8_names_row_column_and_bytes() {
        assert_eq!(
            err(Format::Text, b"1\tok\n2\tx\xff\n"),
            "row 2, column 2: not valid UTF-8 (bytes ff at byte 2 of the value)"
        );
        // An escape producing half a character.
        assert_eq!(
            err(Format::Text, b"\\344\\270\tz\n"),
            "row 1, column 1: not valid UTF-8 (bytes e4 b8 at byte 1 of the value)"
        );
        assert_eq!(
            err(Format::Csv, b"a,\"\xc3(\"\n"),
            "row 1, column 2: not valid UTF-8 (bytes c3 at byte 1 of the value)"
        );
        // With names, the column is named too.
        let mut d = Decoder::new(Format::Text).with_column_names(["id", "note"]);
        d.push(b"1\t\xe4\xb8\n");
        assert_eq!(
            d.next_row().unwrap_err().message,
            "row 1, column 2 (note): not valid UTF-8 (bytes e4 b8 at byte 1 of the value)"
        );
    }

    #[test]
    fn escapes_whose_bytes_form_a_character_together() {
        // 中 is e4 b8 ad: octal, hex, mixed with a raw byte, and a 4-byte emoji in hex.
        assert_eq!(
            text(b"\\344\\270\\255\t\\xe4\\xb8\\xad\t\\xe4\xb8\\255\t\\xf0\\x9f\\x98\\x80\n"),
            vec![vec![s("中"), s("中"), s("中"), s("😀")]]
        );
    }

    #[test]
    fn wrong_field_count() {
        let mut d = Decoder::new(Format::Text).with_columns(3);
        d.push(b"1\t2\t3\n1\t2\n1\t2\t3\t4\n\\N\t\t\n");
        assert_eq!(d.next_row().unwrap().map(Row::into_values), Some(vec![s("1"), s("2"), s("3")]));
        assert_eq!(d.next_row().unwrap_err().message, "row 2 has 2 columns, expected 3");
        assert_eq!(d.next_row().unwrap_err().message, "row 3 has 4 columns, expected 3");
        // The bad rows are skipped; numbering goes on.
        assert_eq!(d.next_row().unwrap().map(Row::into_values), Some(vec![None, s(""), s("")]));
        assert_eq!(d.next_row().unwrap(), None);
        assert_eq!(d.rows(), 2);
        d.finish().unwrap();

        let mut d = Decoder::new(Format::Csv).with_column_names(["id", "ts"]);
        d.push(b"1,\"a,\nb\",c\n");
        assert_eq!(d.next_row().unwrap_err().message, "row 1 has 3 columns, expected 2 (id, ts)");
    }

    #[test]
    fn truncated_input_at_finish() {
        assert_eq!(
            err(Format::Text, b"1\tok\n2\tcut"),
            "row 2, column 2: the stream ends without the newline that ends every row, 5 bytes into the row; the \
             data was cut short"
        );
        assert_eq!(
            err(Format::Text, b"1\tok\n2\ta\\tb\tc\\"),
            "row 2, column 3: the stream ends inside an escape (a backslash with nothing after it), 9 bytes into \
             the row; the data was cut short"
        );
        assert_eq!(
            err(Format::Text, b"1\t\xe4\xb8"),
            "row 1, column 2: the stream ends without the newline that ends every row, 4 bytes into the row; the \
             data was cut short"
        );
        assert_eq!(
            err(Format::Csv, b"1,x\n2,\"a,b\nc"),
            "row 2, column 2: the stream ends inside a quoted value (no closing quote), 8 bytes into the row; the \
             data was cut short"
        );
        assert_eq!(
            err(Format::Csv, b"1,\"x\"\"\",y"),
            "row 1, column 3: the stream ends without the newline that ends every row, 9 bytes into the row; the \
             data was cut short"
        );
        // Complete rows not read before finish are the caller's mistake, and said so.
        let mut d = Decoder::new(Format::Text);
        d.push(b"1\n2\n");
        assert!(d.finish().unwrap_err().message.starts_with("the stream was ended with row 1 and later rows not read"));
    }

    /// Chinese (3 bytes), GB18030 supplementary characters and emoji (4 bytes), split at every
    /// byte position.
    #[test]
    fn multibyte_utf8_split_at_every_byte() {
        let rows = "1\t缺陷，玻璃\t𠀀𪚥\n2\t😀🎉\t\\N\n3\t中\\t文\t\\344\\270\\255\n";
        let expected = vec![
            vec![s("1"), s("缺陷，玻璃"), s("𠀀𪚥")],
            vec![s("2"), s("😀🎉"), None],
            vec![s("3"), s("中\t文"), s("中")],
        ];
        let bytes = rows.as_bytes();
        for split in 0..=bytes.len() {
            let mut d = Decoder::new(Format::Text).with_columns(3);
            let mut got = Vec::new();
            for piece in [&bytes[..split], &bytes[split..]] {
                d.push(piece);
                while let Some(row) = d.next_row().unwrap() {
                    got.push(row.into_values());
                }
            }
            d.finish().unwrap();
            assert_eq!(got, expected, "split at byte {split}");
        }
        let csv_rows = "1,\"缺陷,\n玻璃\",𠀀😀\n";
        for split in 0..=csv_rows.len() {
            let mut d = Decoder::new(Format::Csv);
            d.push(&csv_rows.as_bytes()[..split]);
            let first = d.next_row().unwrap();
            d.push(&csv_rows.as_bytes()[split..]);
            let row = first.or_else(|| d.next_row().unwrap()).unwrap();
            assert_eq!(row.values(), &[s("1"), s("缺陷,\n玻璃"), s("𠀀😀")], "split at byte {split}");
            d.finish().unwrap();
        }
    }

    const SAMPLE_TEXT: &[u8] = "1\t2024-03-10 00:00:01\tline1\\nline2\n\
2\t2024-03-10 00:00:02\ttab\\there\n\
3\t2024-03-10 00:00:03\tback\\\\slash\n\
4\t2024-03-10 00:00:04\t\\N\n\
5\t2024-03-10 00:00:05\t缺陷，玻璃 😀\n\
6\t\t\\\\N\n"
        .as_bytes();

    const SAMPLE_CSV: &[u8] = "1,2024-03-10 00:00:01,\"line1\nline2\"\n\
2,2024-03-10 00:00:02,\"comma, \"\"quoted\"\"\"\n\
3,,\"\"\n\
4,2024-03-10 00:00:04,缺陷，玻璃 😀\n\
5,\"\r\n\",\\N\n"
        .as_bytes();

    #[test]
    fn the_same_rows_whole_in_halves_and_byte_by_byte() {
        for (format, sample) in [(Format::Text, SAMPLE_TEXT), (Format::Csv, SAMPLE_CSV)] {
            let whole = decode(format, sample).unwrap();
            assert!(whole.len() >= 5, "{whole:?}");
            assert_eq!(decode_chunked(format, sample, sample.len().div_ceil(2)).unwrap(), whole, "{format:?} halves");
            assert_eq!(decode_chunked(format, sample, 1).unwrap(), whole, "{format:?} byte by byte");
            assert_eq!(decode_chunked(format, sample, 7).unwrap(), whole, "{format:?} 7 bytes");
        }
        assert_eq!(decode(Format::Text, SAMPLE_TEXT).unwrap()[5], vec![s("6"), s(""), s("\\N")]);
        assert_eq!(decode(Format::Csv, SAMPLE_CSV).unwrap()[2], vec![s("3"), None, s("")]);
    }

    /// Memory: rows returned are dropped when more bytes come, so the buffer stays near the
    /// longest row whatever the window's size. Time: a long row arriving one byte at a time
    /// is not re-scanned at each push (a quadratic re-scan of 2,000,000 bytes would take hours).
    #[test]
    fn memory_follows_the_longest_row_and_time_is_linear() {
        for format in [Format::Text, Format::Csv] {
            let mut d = Decoder::new(format);
            let row = vec![b'x'; 1000];
            for _ in 0..10_000 {
                d.push(&row);
                d.push(b"\n");
                while d.next_row().unwrap().is_some() {}
            }
            assert!(d.buf.capacity() < 8 * 1024, "{format:?}: {} bytes kept", d.buf.capacity());
            assert_eq!(d.rows(), 10_000);

            // Text: many columns with escapes; CSV: one quoted value with commas, newlines
            // and escaped quotes, so the scan's quote state is carried between pushes.
            let (head, cycle, tail): (&[u8], &[u8], &[u8]) = match format {
                Format::Text => (b"", b"ab\\tc\t", b"\n"),
                Format::Csv => (b"\"", b"a,\n\"\"", b"\"\n"),
            };
            let started = std::time::Instant::now();
            d.push(head);
            for i in 0..2_000_000 {
                let at = i % cycle.len();
                d.push(&cycle[at..at + 1]);
                assert_eq!(d.next_row().unwrap(), None);
                // Fail in seconds, not hours, when it is quadratic.
                if i % 65_536 == 0 {
                    assert!(started.elapsed().as_secs() < 20, "{format:?}: {i} bytes took {:?}", started.elapsed());
                }
            }
            d.push(tail);
            let row = d.next_row().unwrap().unwrap();
            match format {
                Format::Text => assert_eq!(row.len(), 2_000_000 / 6 + 1),
                Format::Csv => assert_eq!(row.get(0).map(str::len), Some(2_000_000 / 5 * 4)),
            }
            d.finish().unwrap();
        }
    }

    /// A tiny deterministic PRNG (splitmix64), so the property test needs no dependency and
    /// a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A random value: NULL sometimes, else characters favouring the ones COPY treats specially.
    fn random_value(rng: &mut Rng) -> Option<String> {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', ' ', '\t', '\n', '\r', '\\', 'N', '.', ',', '"', '\u{8}', '\u{b}', '\u{c}', '\u{1}', 'é',
            '中', '缺', '，', '😀', '𠀀', '\u{7f}',
        ];
        if rng.below(8) == 0 {
            return None;
        }
        let len = rng.below(12);
        Some((0..len).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect())
    }

    /// Escapes a row as the server's COPY TO does, sometimes writing a byte as an octal or hex
    /// escape instead (valid COPY text the decoder must read too).
    fn encode_text(row: &[Option<String>], rng: &mut Rng, out: &mut Vec<u8>) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            let Some(v) = v else {
                out.extend_from_slice(b"\\N");
                continue;
            };
            for &b in v.as_bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    0x0b => out.extend_from_slice(b"\\v"),
                    0x0c => out.extend_from_slice(b"\\f"),
                    // Three octal digits and two hex digits so a following digit is not taken in.
                    _ if b >= 0x80 && rng.below(4) == 0 => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
                    _ if b >= 0x80 && rng.below(4) == 0 => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                    _ => out.push(b),
                }
            }
        }
        out.push(b'\n');
    }

    /// Writes a row as COPY CSV does: quoted when needed (and at random when not), NULL as an
    /// unquoted empty field.
    fn encode_csv(row: &[Option<String>], rng: &mut Rng, out: &mut Vec<u8>) {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let Some(v) = v else { continue };
            let needs = v.is_empty() || v.contains([',', '"', '\n', '\r']) || v == "\\.";
            if needs || rng.below(4) == 0 {
                out.push(b'"');
                out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
                out.push(b'"');
            } else {
                out.extend_from_slice(v.as_bytes());
            }
        }
        out.push(b'\n');
    }

    #[test]
    fn decode_of_encode_is_identity_for_random_rows_and_splits() {
        let mut rng = Rng(0x5eed_c0b7);
        for round in 0..300 {
            let format = if round % 2 == 0 { Format::Text } else { Format::Csv };
            let columns = 1 + rng.below(5);
            let rows: Vec<Vec<Option<String>>> =
                (0..rng.below(20)).map(|_| (0..columns).map(|_| random_value(&mut rng)).collect()).collect();
            let mut bytes = Vec::new();
            for row in &rows {
                match format {
                    Format::Text => encode_text(row, &mut rng, &mut bytes),
                    Format::Csv => encode_csv(row, &mut rng, &mut bytes),
                }
            }
            // Random chunk boundaries, including empty chunks.
            let mut d = Decoder::new(format).with_columns(columns);
            let mut got = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let n = rng.below(10.min(bytes.len() - at + 1));
                d.push(&bytes[at..at + n]);
                at += n;
                while let Some(row) = d.next_row().unwrap_or_else(|e| panic!("round {round}: {e}\n{bytes:?}")) {
                    got.push(row.into_values());
                }
            }
            d.finish().unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(got, rows, "round {round} ({format:?}): {}", String::from_utf8_lossy(&bytes));
        }
    }
}
