//! Row-by-row checking and transcoding of COPY text read raw from a SQL_ASCII database.
//!
//! A SQL_ASCII server converts nothing and escapes COPY text byte by byte: a backslash becomes
//! `\\`, a tab `\t`, a newline `\n`, whatever byte precedes them. GBK and GB18030 use 0x40–0x7E
//! as the second byte of a character, so `\xe7\x5c` (a GBK character ending in `\`) reaches us
//! as `e7 5c 5c`. Decoding the escaped row as GBK would pair the wrong bytes. So each field is
//! unescaped back to the stored bytes, decoded, and escaped again as UTF-8 COPY text (UTF-8
//! never uses ASCII bytes inside a character, so escaping stays byte-wise on the target).
//! Raw row ends (0x0A) and field separators (0x09) never occur inside GBK/GB18030 characters,
//! whose bytes are all ≥ 0x30 after the first.
//!
//! CSV is simpler: the server escapes nothing byte-wise, and CSV's special bytes (`,` `"` CR
//! LF) are all below 0x30, so they never occur inside a GBK/GB18030 character either. A whole
//! CSV row decodes as it stands; only finding its end needs the quote state.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use gptransfer_core::roles::CopyFormat;
use gptransfer_core::rowcount::RowCounter;

use crate::server_map;
pub use crate::server_map::Refused;

/// The encoding the source's text is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceEncoding {
    /// UTF-8 (checked when the server cannot).
    #[default]
    Utf8,
    /// GBK (CP936).
    Gbk,
    /// GB18030.
    Gb18030,
}

impl SourceEncoding {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            SourceEncoding::Utf8 => "UTF-8",
            SourceEncoding::Gbk => "GBK",
            SourceEncoding::Gb18030 => "GB18030",
        }
    }

    /// Stored bytes → UTF-8 text, character for character as the servers' own conversion
    /// (`convert(…, 'GBK', 'UTF8')`, ENCODING 'GBK' external tables) gives it; the first
    /// character they refuse otherwise (never a replacement character).
    pub fn decode(self, raw: &[u8]) -> Result<Cow<'_, str>, Refused> {
        match self {
            SourceEncoding::Utf8 => match std::str::from_utf8(raw) {
                Ok(text) => Ok(Cow::Borrowed(text)),
                Err(e) => {
                    Err(Refused { at: e.valid_up_to(), len: e.error_len().unwrap_or(raw.len() - e.valid_up_to()) })
                }
            },
            SourceEncoding::Gbk | SourceEncoding::Gb18030 => server_map::decode(self, raw),
        }
    }
}

/// A row that is not valid in the source encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based position of the row in the window (bad rows included).
    pub row: u64,
    /// 0-based field index.
    pub field: usize,
    /// The raw row as the server sent it, without its newline.
    pub raw: Vec<u8>,
    /// Why, in words.
    pub reason: String,
}

impl BadRow {
    /// The row's first bytes in hex, for messages.
    pub fn head_hex(&self) -> String {
        let mut out = String::new();
        for (i, b) in self.raw.iter().take(24).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{b:02x}");
        }
        if self.raw.len() > 24 {
            out.push_str(" …");
        }
        out
    }
}

/// Splits a COPY text or CSV stream into rows and converts each to UTF-8.
#[derive(Debug)]
pub struct Transcoder {
    encoding: SourceEncoding,
    /// CSV rather than COPY text.
    csv: bool,
    /// Finds row ends across chunks (CSV: the quote state that tells them from quoted newlines).
    ends: RowCounter,
    /// The start of a row whose newline has not come yet.
    pending: Vec<u8>,
    /// Rows seen so far, bad ones included.
    rows: u64,
}

/// What one chunk gave.
#[derive(Debug, Default)]
pub struct Converted {
    /// Good rows, as UTF-8 COPY text.
    pub bytes: Bytes,
    /// Bad rows, in order.
    pub bad: Vec<BadRow>,
}

impl Transcoder {
    /// A transcoder of COPY text from `encoding`.
    pub fn new(encoding: SourceEncoding) -> Self {
        Transcoder { encoding, csv: false, ends: RowCounter::new(CopyFormat::Text), pending: Vec::new(), rows: 0 }
    }

    /// A transcoder of COPY CSV from `encoding`.
    pub fn csv(encoding: SourceEncoding) -> Self {
        Transcoder { encoding, csv: true, ends: RowCounter::new(CopyFormat::Csv), pending: Vec::new(), rows: 0 }
    }

    /// Converts the rows completed by `chunk`; a partial last row waits for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Converted {
        let mut out = BytesMut::with_capacity(chunk.len() + chunk.len() / 4);
        let mut bad = Vec::new();
        let mut start = 0;
        for end in self.ends.row_ends(chunk) {
            let row: &[u8] = if self.pending.is_empty() {
                &chunk[start..end]
            } else {
                self.pending.extend_from_slice(&chunk[start..end]);
                &self.pending
            };
            self.rows += 1;
            let row_start = out.len();
            let converted = if self.csv {
                convert_csv_row(self.encoding, row, &mut out)
            } else {
                convert_row(self.encoding, row, &mut out)
            };
            match converted {
                Ok(()) => out.extend_from_slice(b"\n"),
                Err((field, reason)) => {
                    // The fields converted before the bad one go too.
                    out.truncate(row_start);
                    bad.push(BadRow { row: self.rows, field, raw: row.to_vec(), reason });
                }
            }
            self.pending.clear();
            start = end + 1;
        }
        self.pending.extend_from_slice(&chunk[start..]);
        Converted { bytes: out.freeze(), bad }
    }

    /// Bytes after the last newline when the stream ended (COPY text always ends rows with
    /// a newline, so anything here means a cut stream).
    pub fn leftover(&self) -> &[u8] {
        &self.pending
    }
}

/// Appends `row` converted to UTF-8 COPY text (without newline) to `out`, or says which field
/// is bad and why.
fn convert_row(encoding: SourceEncoding, row: &[u8], out: &mut BytesMut) -> Result<(), (usize, String)> {
    if row.is_ascii() {
        out.extend_from_slice(row);
        return Ok(());
    }
    if encoding == SourceEncoding::Utf8 {
        // Escapes only ever involve ASCII bytes, which UTF-8 never uses inside a character:
        // the escaped row is valid exactly when the stored text is.
        return match std::str::from_utf8(row) {
            Ok(_) => {
                out.extend_from_slice(row);
                Ok(())
            }
            Err(e) => {
                let field = row[..e.valid_up_to()].iter().filter(|&&b| b == b'\t').count();
                Err((field, format!("invalid UTF-8 at byte {} of the row", e.valid_up_to() + 1)))
            }
        };
    }
    let mut raw = Vec::new();
    for (i, field) in row.split(|&b| b == b'\t').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\t");
        }
        if field.is_ascii() {
            out.extend_from_slice(field);
            continue;
        }
        raw.clear();
        unescape(field, &mut raw);
        match encoding.decode(&raw) {
            Ok(text) => escape(text.as_bytes(), out),
            Err(refused) => {
                return Err((i, format!("not valid {}: {} of the field", encoding.name(), describe(&raw, refused))));
            }
        }
    }
    Ok(())
}

/// Appends a CSV `row` converted to UTF-8 (without newline) to `out`, or says which field is
/// bad and why. Quotes, commas and newlines are ASCII and never inside a character, so the
/// whole row decodes at once.
fn convert_csv_row(encoding: SourceEncoding, row: &[u8], out: &mut BytesMut) -> Result<(), (usize, String)> {
    if row.is_ascii() {
        out.extend_from_slice(row);
        return Ok(());
    }
    let refused = match encoding.decode(row) {
        Ok(text) => {
            out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        Err(refused) => refused,
    };
    // The field: commas outside quotes before the bad byte.
    let mut quoted = false;
    let field = row[..refused.at].iter().filter(|&&b| {
        quoted ^= b == b'"';
        b == b',' && !quoted
    });
    let field = field.count();
    Err((field, format!("not valid {}: {} of the row", encoding.name(), describe(row, refused))))
}

/// A refused character as `bytes a8 bc at byte 3` (the bytes as PostgreSQL's own error names
/// them: `character with byte sequence 0xa8 0xbc in encoding "GBK" has no equivalent …`).
fn describe(raw: &[u8], refused: Refused) -> String {
    let end = (refused.at + refused.len).min(raw.len());
    let bytes = raw[refused.at..end].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
    format!("bytes {bytes} at byte {}", refused.at + 1)
}

/// COPY text field → stored bytes (the server's escapes undone).
fn unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                // Never written by COPY TO, but valid COPY text: up to three octal digits.
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
}

/// UTF-8 bytes → COPY text field.
fn escape(text: &[u8], out: &mut BytesMut) {
    for &b in text {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(enc: SourceEncoding, input: &[u8], chunk: usize) -> (Vec<u8>, Vec<BadRow>) {
        run(Transcoder::new(enc), input, chunk)
    }

    fn all_csv(enc: SourceEncoding, input: &[u8], chunk: usize) -> (Vec<u8>, Vec<BadRow>) {
        run(Transcoder::csv(enc), input, chunk)
    }

    fn run(mut t: Transcoder, input: &[u8], chunk: usize) -> (Vec<u8>, Vec<BadRow>) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for c in input.chunks(chunk) {
            let r = t.push(c);
            out.extend_from_slice(&r.bytes);
            bad.extend(r.bad);
        }
        assert!(t.leftover().is_empty());
        (out, bad)
    }

    #[test]
    fn gbk_rows_become_utf8_whatever_the_chunking() {
        // 中文 in GBK, a NULL, then a GBK char whose second byte is a backslash (escaped by the
        // server as \\), followed by a tab and a newline in the value.
        let input: &[u8] = b"1\t\xd6\xd0\xce\xc4\t\\N\n2\t\xe7\\\\x\\ty\\n\n3\tplain\n";
        let want_char = encoding_rs::GBK.decode_without_bom_handling(b"\xe7\x5c").0.into_owned();
        let want = format!("1\t中文\t\\N\n2\t{want_char}x\\ty\\n\n3\tplain\n");
        for size in 1..=input.len() {
            let (out, bad) = all(SourceEncoding::Gbk, input, size);
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(String::from_utf8(out).unwrap(), want, "chunk {size}");
        }
    }

    #[test]
    fn gbk_csv_rows_become_utf8_whatever_the_chunking() {
        // 中文; a GBK char whose second byte is a backslash (not escaped in CSV); a quoted
        // newline and a doubled quote next to GBK bytes; a NULL (empty) and an empty string.
        let input: &[u8] = b"1,\xd6\xd0\xce\xc4,\n2,\"\xe7\x5cx\ny\"\"\xd6\xd0\"\"\",\"\"\n";
        let want_char = encoding_rs::GBK.decode_without_bom_handling(b"\xe7\x5c").0.into_owned();
        let want = format!("1,中文,\n2,\"{want_char}x\ny\"\"中\"\"\",\"\"\n");
        for size in 1..=input.len() {
            let (out, bad) = all_csv(SourceEncoding::Gbk, input, size);
            assert!(bad.is_empty(), "{bad:?}");
            assert_eq!(String::from_utf8(out).unwrap(), want, "chunk {size}");
        }
        let (out, bad) = all_csv(SourceEncoding::Gbk, b"1,ok\n2,\"a,\nb\",x\xd6\xd0\xff\n3,\xd6\xd0\n", 3);
        assert_eq!(String::from_utf8(out).unwrap(), "1,ok\n3,中\n");
        assert_eq!((bad[0].row, bad[0].field), (2, 2), "{bad:?}");
        assert!(bad[0].reason.contains("ff at byte"), "{}", bad[0].reason);
    }

    #[test]
    fn gb18030_four_byte_sequences() {
        // U+20000 𠀀 is 95 32 82 36 in GB18030.
        let (out, bad) = all(SourceEncoding::Gb18030, b"\x95\x32\x82\x36\n", 3);
        assert!(bad.is_empty());
        assert_eq!(String::from_utf8(out).unwrap(), "𠀀\n");
    }

    #[test]
    fn bad_rows_are_named_and_left_out() {
        let input: &[u8] = b"1\tok\n2\tx\xd6\xd0\xff\n3\t\xd6\n4\t\xd6\xd0\n";
        let (out, bad) = all(SourceEncoding::Gbk, input, 4);
        assert_eq!(String::from_utf8(out).unwrap(), "1\tok\n4\t中\n");
        assert_eq!(bad.len(), 2);
        assert_eq!((bad[0].row, bad[0].field), (2, 1));
        assert_eq!(bad[0].raw, b"2\tx\xd6\xd0\xff");
        assert!(bad[0].reason.contains("ff at byte 4"), "{}", bad[0].reason);
        assert_eq!(bad[0].head_hex(), "32 09 78 d6 d0 ff");
        assert_eq!((bad[1].row, bad[1].field), (3, 1));
    }

    #[test]
    fn utf8_is_checked_without_rewriting() {
        let input = "1\t中\\\\文\n2\tb\n".as_bytes();
        let (out, bad) = all(SourceEncoding::Utf8, input, 2);
        assert!(bad.is_empty());
        assert_eq!(out, input);
        let (_, bad) = all(SourceEncoding::Utf8, b"1\ta\n2\tb\t\xd6\xd0\n", 5);
        assert_eq!((bad[0].row, bad[0].field), (2, 2));
    }

    #[test]
    fn escapes_round_trip() {
        let mut raw = Vec::new();
        unescape(b"a\\\\b\\tc\\nd\\r\\b\\f\\v\\101\\", &mut raw);
        assert_eq!(raw, b"a\\b\tc\nd\r\x08\x0c\x0bA\\");
        let mut out = BytesMut::new();
        escape(b"a\\b\tc\nd\r\x08\x0c\x0b", &mut out);
        assert_eq!(&out[..], b"a\\\\b\\tc\\nd\\r\\b\\f\\v");
    }
}
