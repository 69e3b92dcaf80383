//! Counting rows in a COPY byte stream without parsing values, chunk by chunk, whatever the
//! chunk boundaries.

use crate::roles::CopyFormat;

/// Counts rows of one COPY stream.
#[derive(Debug, Clone)]
pub enum RowCounter {
    /// Text format: every raw newline ends a row (newlines in values are escaped as `\n`).
    Text,
    /// Binary format: walks the tuple headers and field lengths.
    Binary(BinaryCounter),
    /// CSV: newlines outside quotes end rows.
    Csv(CsvRows),
}

impl RowCounter {
    /// A counter for a stream in `format`.
    pub fn new(format: CopyFormat) -> Self {
        match format {
            CopyFormat::Text => RowCounter::Text,
            CopyFormat::Binary => RowCounter::Binary(BinaryCounter::default()),
            CopyFormat::Csv => RowCounter::Csv(CsvRows::default()),
        }
    }

    /// Rows completed in this chunk.
    pub fn count(&mut self, chunk: &[u8]) -> u64 {
        match self {
            RowCounter::Text => memchr::memchr_iter(b'\n', chunk).count() as u64,
            RowCounter::Binary(b) => b.count(chunk),
            RowCounter::Csv(c) => {
                let mut rows = 0;
                c.row_ends(chunk, |_| rows += 1);
                rows
            }
        }
    }

    /// Positions of the newlines in `chunk` that end a row (text: every raw newline; CSV: those
    /// outside quotes). Binary rows end without a marker: none.
    pub fn row_ends(&mut self, chunk: &[u8]) -> Vec<usize> {
        match self {
            RowCounter::Text => memchr::memchr_iter(b'\n', chunk).collect(),
            RowCounter::Csv(c) => {
                let mut ends = Vec::new();
                c.row_ends(chunk, |i| ends.push(i));
                ends
            }
            RowCounter::Binary(_) => Vec::new(),
        }
    }
}

/// Finds row ends in COPY CSV (`"` as quote and escape), chunk by chunk. An escaped quote
/// (`""`) toggles twice, so tracking "inside quotes" needs no look-ahead across chunks.
#[derive(Debug, Clone, Default)]
pub struct CsvRows {
    in_quotes: bool,
}

impl CsvRows {
    /// Calls `row_end` with the index of each newline in `chunk` that ends a row.
    pub fn row_ends(&mut self, chunk: &[u8], mut row_end: impl FnMut(usize)) {
        let mut at = 0;
        while at < chunk.len() {
            let found = if self.in_quotes {
                memchr::memchr(b'"', &chunk[at..])
            } else {
                memchr::memchr2(b'"', b'\n', &chunk[at..])
            };
            let Some(i) = found else { return };
            let i = at + i;
            if chunk[i] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else {
                row_end(i);
            }
            at = i + 1;
        }
    }
}

/// What the binary walker expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 11-byte signature, 4-byte flags, 4-byte extension length.
    Header,
    /// Extension bytes to skip.
    Extension,
    /// 2-byte field count (-1: trailer).
    Tuple,
    /// 4-byte field length (-1: NULL).
    FieldLength,
    /// Field bytes to skip.
    FieldData,
    /// After the trailer.
    Done,
}

/// State of the binary walker between chunks.
#[derive(Debug, Clone)]
pub struct BinaryCounter {
    expect: Expect,
    /// Bytes of a fixed-size header part gathered so far.
    pending: Vec<u8>,
    /// Bytes left to skip (extension or field data).
    skip: usize,
    /// Fields left in the current tuple.
    fields_left: u16,
}

impl Default for BinaryCounter {
    fn default() -> Self {
        BinaryCounter { expect: Expect::Header, pending: Vec::with_capacity(19), skip: 0, fields_left: 0 }
    }
}

impl BinaryCounter {
    fn need(&self) -> usize {
        match self.expect {
            Expect::Header => 19,
            Expect::Tuple => 2,
            Expect::FieldLength => 4,
            _ => 0,
        }
    }

    /// Rows completed in this chunk.
    pub fn count(&mut self, mut chunk: &[u8]) -> u64 {
        let mut rows = 0;
        while !chunk.is_empty() {
            match self.expect {
                Expect::Done => return rows,
                Expect::Extension | Expect::FieldData => {
                    let n = self.skip.min(chunk.len());
                    chunk = &chunk[n..];
                    self.skip -= n;
                    if self.skip == 0 {
                        if self.expect == Expect::Extension {
                            self.expect = Expect::Tuple;
                        } else {
                            rows += self.field_done();
                        }
                    }
                }
                _ => {
                    let need = self.need() - self.pending.len();
                    let n = need.min(chunk.len());
                    self.pending.extend_from_slice(&chunk[..n]);
                    chunk = &chunk[n..];
                    if self.pending.len() < self.need() {
                        continue;
                    }
                    let p = std::mem::take(&mut self.pending);
                    match self.expect {
                        Expect::Header => {
                            let ext = u32::from_be_bytes([p[15], p[16], p[17], p[18]]) as usize;
                            self.skip = ext;
                            self.expect = if ext == 0 { Expect::Tuple } else { Expect::Extension };
                        }
                        Expect::Tuple => {
                            let fields = i16::from_be_bytes([p[0], p[1]]);
                            if fields < 0 {
                                self.expect = Expect::Done;
                            } else if fields == 0 {
                                rows += 1;
                            } else {
                                self.fields_left = fields as u16;
                                self.expect = Expect::FieldLength;
                            }
                        }
                        Expect::FieldLength => {
                            let len = i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                            if len <= 0 {
                                rows += self.field_done();
                            } else {
                                self.skip = len as usize;
                                self.expect = Expect::FieldData;
                            }
                        }
                        _ => {}
                    }
                    self.pending = p;
                    self.pending.clear();
                }
            }
        }
        rows
    }

    fn field_done(&mut self) -> u64 {
        self.fields_left -= 1;
        if self.fields_left == 0 {
            self.expect = Expect::Tuple;
            1
        } else {
            self.expect = Expect::FieldLength;
            0
        }
    }
}

/// Counts rows like [`RowCounter`] and measures the longest one (newline included), for
/// loaders with a line limit (gpfdist refuses rows over 32 KB by default). Binary rows have no
/// line: their length is not measured.
#[derive(Debug, Clone)]
pub struct RowLengths {
    rows: RowCounter,
    /// Bytes of the row in progress so far.
    current: u64,
    longest: u64,
}

impl RowLengths {
    /// For a stream in `format`.
    pub fn new(format: CopyFormat) -> Self {
        RowLengths { rows: RowCounter::new(format), current: 0, longest: 0 }
    }

    /// Rows completed in this chunk.
    pub fn count(&mut self, chunk: &[u8]) -> u64 {
        if matches!(self.rows, RowCounter::Binary(_)) {
            return self.rows.count(chunk);
        }
        let ends = self.rows.row_ends(chunk);
        let mut start = 0;
        for &end in &ends {
            self.longest = self.longest.max(self.current + (end + 1 - start) as u64);
            self.current = 0;
            start = end + 1;
        }
        self.current += (chunk.len() - start) as u64;
        ends.len() as u64
    }

    /// The longest complete row so far, in bytes with its newline.
    pub fn longest(&self) -> u64 {
        self.longest
    }
}

/// Appends each row's position in the batch (1, 2, …) as a last column, right before the
/// newline that ends the row (COPY text: every raw newline; CSV: a newline outside quotes), so
/// that a merge can keep the last row of each key whatever order a cluster stores them in.
/// Also measures the longest row, for loaders with a line limit (gpfdist's 32 KB default).
#[derive(Debug, Clone)]
pub struct BatchNumbering {
    next: u64,
    /// `\t` in COPY text, `,` in CSV.
    separator: u8,
    /// Finds row ends across chunks (CSV: the quote state).
    rows: RowCounter,
    /// Bytes of the row in progress so far, as written (with its number).
    current: u64,
    /// The longest complete row written, newline included.
    longest: u64,
}

impl BatchNumbering {
    /// Numbering for a stream in `format` (text or CSV; binary rows cannot take a column).
    pub fn for_format(format: CopyFormat) -> Self {
        let separator = if format == CopyFormat::Csv { b',' } else { b'\t' };
        BatchNumbering { next: 0, separator, rows: RowCounter::new(format), current: 0, longest: 0 }
    }

    /// The chunk with a number appended to every row that ends in it.
    pub fn number(&mut self, chunk: &[u8]) -> bytes::Bytes {
        let (separator, ends) = (self.separator, self.rows.row_ends(chunk));
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 8);
        let mut start = 0;
        for end in ends {
            let before = out.len();
            out.extend_from_slice(&chunk[start..end]);
            self.next += 1;
            out.push(separator);
            out.extend_from_slice(self.next.to_string().as_bytes());
            out.push(b'\n');
            self.longest = self.longest.max(self.current + (out.len() - before) as u64);
            self.current = 0;
            start = end + 1;
        }
        // A row may continue in the next chunk: its newline, and so its number, comes there.
        out.extend_from_slice(&chunk[start..]);
        self.current += (chunk.len() - start) as u64;
        bytes::Bytes::from(out)
    }

    /// Rows numbered so far.
    pub fn rows(&self) -> u64 {
        self.next
    }

    /// The longest row written so far in bytes, its number and newline included.
    pub fn longest_row(&self) -> u64 {
        self.longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn binary_copy(rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        for r in rows {
            out.extend_from_slice(&(r.len() as i16).to_be_bytes());
            for f in r {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn binary_rows_whatever_the_chunking() {
        let data = binary_copy(&[
            vec![Some(b"abc"), None, Some(b"")],
            vec![Some(b"\n\n\n"), Some(b"x"), None],
            vec![None, None, None],
        ]);
        for size in 1..data.len() {
            let mut c = RowCounter::new(CopyFormat::Binary);
            let total: u64 = data.chunks(size).map(|ch| c.count(ch)).sum();
            assert_eq!(total, 3, "chunk size {size}");
        }
    }

    #[test]
    fn csv_rows_whatever_the_chunking() {
        let data: &[u8] = b"1,\"a\nb\"\n2,\"say \"\"hi\"\"\n\"\n3,,\"\"\n4,\"\\.\"\n";
        for size in 1..data.len() {
            let mut c = RowCounter::new(CopyFormat::Csv);
            let total: u64 = data.chunks(size).map(|ch| c.count(ch)).sum();
            assert_eq!(total, 4, "chunk size {size}");
        }
        let mut ends = Vec::new();
        CsvRows::default().row_ends(data, |i| ends.push(i));
        assert_eq!(ends.iter().map(|&i| data[i]).collect::<Vec<_>>(), b"\n\n\n\n");
        assert_eq!(ends[0], 7);
    }

    #[test]
    fn text_rows() {
        let mut c = RowCounter::new(CopyFormat::Text);
        assert_eq!(c.count(b"1\ta\\nb\n2\t\\N\n"), 2);
    }

    #[test]
    fn numbers_rows_across_chunks() {
        let mut n = BatchNumbering::for_format(CopyFormat::Text);
        let a = n.number(b"a\t1\nb\t2\nc\t");
        let b = n.number(b"3\n");
        assert_eq!(&a[..], b"a\t1\t1\nb\t2\t2\nc\t");
        assert_eq!(&b[..], b"3\t3\n");
        assert_eq!(n.rows(), 3);
        assert_eq!(n.longest_row(), 6);
    }

    #[test]
    fn numbers_csv_rows_not_quoted_newlines() {
        let mut n = BatchNumbering::for_format(CopyFormat::Csv);
        let a = n.number(b"a,\"x\ny\"\nb,\"");
        let b = n.number(b"\"\"\n\"\n");
        assert_eq!(&a[..], b"a,\"x\ny\",1\nb,\"");
        assert_eq!(&b[..], b"\"\"\n\",2\n");
        // `b,"""\n",2\n` is the longest: 10 bytes across both chunks.
        assert_eq!(n.longest_row(), 10);
    }

    #[test]
    fn measures_the_longest_row_across_chunks() {
        let mut r = RowLengths::new(CopyFormat::Csv);
        assert_eq!(r.count(b"a,\"x\ny\"\nbb"), 1);
        assert_eq!(r.count(b"bbbbbbbbb\nc\n"), 2);
        assert_eq!(r.longest(), 12);
    }
}

/// Any COPY stream, cut anywhere: the counters, the numbering and the longest row measured
/// chunk by chunk equal what one chunk gives, and what the rows are.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A value: NULL or bytes weighted towards what COPY escapes or quotes (newlines, tabs,
    /// backslashes, quotes, commas, `\N` and `\.` spelled out), sometimes long.
    fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"\n\r\t\\\",N.a ".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            1 => Just(None),
            6 => prop::collection::vec(byte, 0..12).prop_map(Some),
            1 => (1usize..5_000, any::<u8>()).prop_map(|(n, b)| Some(vec![b; n])),
        ]
    }

    fn rows() -> impl Strategy<Value = Vec<Vec<Option<Vec<u8>>>>> {
        (1usize..5).prop_flat_map(|width| prop::collection::vec(prop::collection::vec(value(), width), 0..30))
    }

    /// COPY text: `\N` for NULL, backslash escapes for `\`, newline, carriage return, tab.
    fn text_line(row: &[Option<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match v {
                None => out.extend_from_slice(b"\\N"),
                Some(v) => {
                    for &b in v {
                        match b {
                            b'\\' => out.extend_from_slice(b"\\\\"),
                            b'\n' => out.extend_from_slice(b"\\n"),
                            b'\r' => out.extend_from_slice(b"\\r"),
                            b'\t' => out.extend_from_slice(b"\\t"),
                            b => out.push(b),
                        }
                    }
                }
            }
        }
        out.push(b'\n');
        out
    }

    /// COPY CSV: NULL unquoted and empty, a value quoted when it must be (or when `quote_all`,
    /// as FORCE_QUOTE does), quotes doubled; newlines inside quotes stay raw.
    fn csv_line(row: &[Option<Vec<u8>>], quote_all: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let Some(v) = v {
                let special = v.is_empty() || v.iter().any(|b| b"\n\r\",\\".contains(b)) || v == b"\\.";
                if quote_all || special {
                    out.push(b'"');
                    for &b in v {
                        if b == b'"' {
                            out.push(b'"');
                        }
                        out.push(b);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(v);
                }
            }
        }
        out.push(b'\n');
        out
    }

    fn binary(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let rows: Vec<Vec<Option<&[u8]>>> = rows.iter().map(|r| r.iter().map(|v| v.as_deref()).collect()).collect();
        super::tests::binary_copy(&rows)
    }

    /// Cuts `data` at the given fractions (any number, any place, empty chunks too).
    fn chunks(data: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        at.sort_unstable();
        let mut out = Vec::new();
        let mut prev = 0;
        for a in at.into_iter().chain([data.len()]) {
            out.push(data[prev..a].to_vec());
            prev = a;
        }
        out
    }

    /// What every counter must say of `lines` (each a row with its newline) cut into `parts`.
    fn check_lines(format: CopyFormat, lines: &[Vec<u8>], parts: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let rows = lines.len() as u64;
        let mut counter = RowCounter::new(format);
        prop_assert_eq!(parts.iter().map(|p| counter.count(p)).sum::<u64>(), rows);

        let mut ends = RowCounter::new(format);
        let mut offset = 0;
        let mut found = Vec::new();
        for p in parts {
            found.extend(ends.row_ends(p).into_iter().map(|i| offset + i));
            offset += p.len();
        }
        let want: Vec<usize> = lines
            .iter()
            .scan(0, |at, l| {
                *at += l.len();
                Some(*at - 1)
            })
            .collect();
        prop_assert_eq!(found, want);

        let longest = lines.iter().map(|l| l.len() as u64).max().unwrap_or(0);
        let mut lengths = RowLengths::new(format);
        prop_assert_eq!(parts.iter().map(|p| lengths.count(p)).sum::<u64>(), rows);
        prop_assert_eq!(lengths.longest(), longest);

        let separator = if format == CopyFormat::Csv { b',' } else { b'\t' };
        let mut numbering = BatchNumbering::for_format(format);
        let numbered: Vec<u8> = parts.iter().flat_map(|p| numbering.number(p).to_vec()).collect();
        let mut want = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            want.extend_from_slice(&l[..l.len() - 1]);
            want.push(separator);
            want.extend_from_slice((i + 1).to_string().as_bytes());
            want.push(b'\n');
        }
        prop_assert_eq!(numbering.rows(), rows);
        let longest_numbered =
            lines.iter().enumerate().map(|(i, l)| (l.len() + 1 + (i + 1).to_string().len()) as u64).max().unwrap_or(0);
        prop_assert_eq!(numbering.longest_row(), longest_numbered);
        prop_assert!(numbered == want, "numbered stream differs");
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn text_rows_whatever_the_chunks(rows in rows(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let lines: Vec<Vec<u8>> = rows.iter().map(|r| text_line(r)).collect();
            let data = lines.concat();
            check_lines(CopyFormat::Text, &lines, &chunks(&data, &cuts))?;
        }

        #[test]
        fn csv_rows_whatever_the_chunks(
            rows in rows(),
            quote_all in any::<bool>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let lines: Vec<Vec<u8>> = rows.iter().map(|r| csv_line(r, quote_all)).collect();
            let data = lines.concat();
            check_lines(CopyFormat::Csv, &lines, &chunks(&data, &cuts))?;
        }

        #[test]
        fn binary_rows_whatever_the_chunks(rows in rows(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40)) {
            let data = binary(&rows);
            let mut counter = RowCounter::new(CopyFormat::Binary);
            let total: u64 = chunks(&data, &cuts).iter().map(|p| counter.count(p)).sum();
            prop_assert_eq!(total, rows.len() as u64);
            let mut lengths = RowLengths::new(CopyFormat::Binary);
            let total: u64 = chunks(&data, &cuts).iter().map(|p| lengths.count(p)).sum();
            prop_assert_eq!(total, rows.len() as u64);
        }
    }
}
