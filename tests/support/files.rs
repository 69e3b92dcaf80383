//! Reading what the file-based transports leave behind: directory listings, gzip parts and
//! the rows of COPY CSV.

use std::fs;
use std::io::Read;
use std::path::Path;

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A gzip file's contents.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{} does not decode as gzip: {e}", path.display()));
    out
}

/// Rows of COPY CSV: newlines outside quotes (a doubled quote toggles twice).
pub fn csv_rows(bytes: &[u8]) -> u64 {
    let mut quoted = false;
    let mut rows = 0;
    for &b in bytes {
        if b == b'"' {
            quoted = !quoted;
        } else if b == b'\n' && !quoted {
            rows += 1;
        }
    }
    assert!(!quoted, "the bytes end inside a quoted field");
    rows
}
