//! GBK and GB18030 decoded exactly as the servers convert them to UTF-8.
//!
//! The segment path (external tables declared ENCODING 'GBK') and `compare` (`convert(…,
//! 'GBK', 'UTF8')`) have the server convert; the master path decodes here. The servers' tables
//! (PostgreSQL's `gbk_to_utf8.map`, from Microsoft's CP936.TXT, and `gb18030_to_utf8.map`, from
//! GB18030-2000) are not WHATWG's index, which encoding_rs follows (GB18030-2005, with the
//! user-defined areas mapped to private use). Measured with tests/gbk_mapping.rs over every
//! 2-byte code and every 4-byte code 0x81308130–0x8439FE39: PostgreSQL 8.2.15, Greenplum
//! 4.3.99, 6 and 7 and PostgreSQL 15 all convert identically, and differ from encoding_rs only
//! at the codes listed below. So encoding_rs decodes, and these tables correct it.

use std::borrow::Cow;

use crate::text::SourceEncoding;

/// GBK codes the servers refuse (`character with byte sequence 0xa8 0xbc in encoding "GBK"
/// has no equivalent in encoding "UTF8"`) but encoding_rs maps: CP936's user-defined areas and
/// the codes only GB18030 assigned. Inclusive ranges of lead·trail (trail 0x7F is never a
/// trail).
#[rustfmt::skip]
const GBK_REFUSED: &[(u16, u16)] = &[
    (0xA140, 0xA1A0), (0xA240, 0xA2A0), (0xA2AB, 0xA2B0), (0xA2E3, 0xA2E4), (0xA2EF, 0xA2F0), (0xA2FD, 0xA2FE),
    (0xA340, 0xA3A0), (0xA440, 0xA4A0), (0xA4F4, 0xA4FE), (0xA540, 0xA5A0), (0xA5F7, 0xA5FE), (0xA640, 0xA6A0),
    (0xA6B9, 0xA6C0), (0xA6D9, 0xA6DF), (0xA6EC, 0xA6ED), (0xA6F3, 0xA6F3), (0xA6F6, 0xA6FE), (0xA740, 0xA7A0),
    (0xA7C2, 0xA7D0), (0xA7F2, 0xA7FE), (0xA896, 0xA8A0), (0xA8BC, 0xA8BC), (0xA8BF, 0xA8BF), (0xA8C1, 0xA8C4),
    (0xA8EA, 0xA8FE), (0xA958, 0xA958), (0xA95B, 0xA95B), (0xA95D, 0xA95F), (0xA989, 0xA995), (0xA997, 0xA9A3),
    (0xA9F0, 0xA9FE), (0xAAA1, 0xAAFE), (0xABA1, 0xABFE), (0xACA1, 0xACFE), (0xADA1, 0xADFE), (0xAEA1, 0xAEFE),
    (0xAFA1, 0xAFFE), (0xD7FA, 0xD7FE), (0xF8A1, 0xF8FE), (0xF9A1, 0xF9FE), (0xFAA1, 0xFAFE), (0xFBA1, 0xFBFE),
    (0xFCA1, 0xFCFE), (0xFDA1, 0xFDFE), (0xFE50, 0xFEFE),
];

/// GB18030 codes the servers map (GB18030-2000) to another character than encoding_rs
/// (GB18030-2005): 2-byte codes as lead·trail, 4-byte ones as their four bytes.
const GB18030_OTHER: &[(u32, char)] = &[
    (0x8135F437, '\u{1E3F}'),
    (0xA3A0, '\u{E5E5}'),
    (0xA6D9, '\u{E78D}'),
    (0xA6DA, '\u{E78E}'),
    (0xA6DB, '\u{E78F}'),
    (0xA6DC, '\u{E790}'),
    (0xA6DD, '\u{E791}'),
    (0xA6DE, '\u{E792}'),
    (0xA6DF, '\u{E793}'),
    (0xA6EC, '\u{E794}'),
    (0xA6ED, '\u{E795}'),
    (0xA6F3, '\u{E796}'),
    (0xA8BC, '\u{E7C7}'),
    (0xFE59, '\u{E81E}'),
    (0xFE61, '\u{E826}'),
    (0xFE66, '\u{E82B}'),
    (0xFE67, '\u{E82C}'),
    (0xFE6D, '\u{E832}'),
    (0xFE7E, '\u{E843}'),
    (0xFE90, '\u{E854}'),
    (0xFEA0, '\u{E864}'),
];

/// Bytes the servers refuse: where they start in the input and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// 0-based offset of the first refused byte.
    pub at: usize,
    /// How many bytes make the refused character (1 for a stray byte or a cut character).
    pub len: usize,
}

/// `raw` (GBK or GB18030 bytes) as UTF-8, or the first character the servers would refuse.
pub(crate) fn decode(encoding: SourceEncoding, raw: &[u8]) -> Result<Cow<'_, str>, Refused> {
    let gb18030 = encoding == SourceEncoding::Gb18030;
    let whatwg = if gb18030 { encoding_rs::GB18030 } else { encoding_rs::GBK };
    // Pieces encoding_rs decodes as the servers do, between the corrected characters.
    let mut out = String::new();
    let mut piece = 0;
    let mut i = 0;
    while i < raw.len() {
        let lead = raw[i];
        if lead < 0x80 {
            i += 1;
            continue;
        }
        let refused = |len: usize| Refused { at: i, len: len.min(raw.len() - i) };
        // 0x80 and 0xFF lead nothing (WHATWG reads 0x80 as €; the servers refuse it).
        if lead == 0x80 || lead == 0xFF || i + 1 == raw.len() {
            return Err(refused(if lead == 0x80 || lead == 0xFF { 2 } else { 1 }));
        }
        let trail = raw[i + 1];
        let (code, len) = match trail {
            0x40..=0x7E | 0x80..=0xFE => (u32::from(lead) << 8 | u32::from(trail), 2),
            // Only GB18030 has 4-byte codes (WHATWG's GBK decoder reads them too).
            0x30..=0x39 if gb18030 => match raw.get(i + 2..i + 4) {
                Some(&[third @ 0x81..=0xFE, fourth @ 0x30..=0x39]) => {
                    (u32::from_be_bytes([lead, trail, third, fourth]), 4)
                }
                _ => return Err(refused(2)),
            },
            _ => return Err(refused(2)),
        };
        let other = if gb18030 {
            GB18030_OTHER.iter().find(|(c, _)| *c == code).map(|(_, ch)| *ch)
        } else {
            let next = GBK_REFUSED.partition_point(|&(_, to)| u32::from(to) < code);
            if GBK_REFUSED.get(next).is_some_and(|&(from, _)| u32::from(from) <= code) {
                return Err(refused(len));
            }
            None
        };
        if let Some(ch) = other {
            out.push_str(&decode_piece(whatwg, raw, piece, i)?);
            out.push(ch);
            piece = i + len;
        } else if len == 4 && whatwg.decode_without_bom_handling_and_without_replacement(&raw[i..i + 4]).is_none() {
            // 4-byte codes past the last one mapped (0x8431A439 in the BMP part).
            return Err(refused(4));
        }
        i += len;
    }
    if piece == 0 {
        return decode_piece(whatwg, raw, 0, raw.len());
    }
    out.push_str(&decode_piece(whatwg, raw, piece, raw.len())?);
    Ok(Cow::Owned(out))
}

/// `raw[from..to]`, already checked character by character, decoded by encoding_rs.
fn decode_piece<'a>(
    whatwg: &'static encoding_rs::Encoding,
    raw: &'a [u8],
    from: usize,
    to: usize,
) -> Result<Cow<'a, str>, Refused> {
    whatwg
        .decode_without_bom_handling_and_without_replacement(&raw[from..to])
        .ok_or(Refused { at: from, len: to - from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_apart() {
        assert!(GBK_REFUSED.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(GBK_REFUSED.iter().all(|(a, b)| a <= b));
    }

    #[test]
    fn corrections_and_refusals() {
        let gbk = |raw: &'static [u8]| decode(SourceEncoding::Gbk, raw);
        let gb = |raw: &'static [u8]| decode(SourceEncoding::Gb18030, raw);
        assert_eq!(gbk(b"\xd6\xd0\xce\xc4").unwrap(), "中文");
        assert_eq!(gbk(b"x\xa8\xbc"), Err(Refused { at: 1, len: 2 }));
        assert_eq!(gbk(b"\x80"), Err(Refused { at: 0, len: 1 }));
        assert_eq!(gbk(b"ab\x80c"), Err(Refused { at: 2, len: 2 }));
        assert_eq!(gbk(b"\xd6\xd0\x81\x30\x81\x30"), Err(Refused { at: 2, len: 2 }));
        assert_eq!(gbk(b"\xd6"), Err(Refused { at: 0, len: 1 }));
        assert_eq!(gbk(b"\xd6 "), Err(Refused { at: 0, len: 2 }));
        assert_eq!(gb(b"\xa8\xbc\xa6\xd9").unwrap(), "\u{E7C7}\u{E78D}");
        assert_eq!(gb(b"\xd6\xd0\xa8\xbcx\x81\x35\xf4\x37\xce\xc4").unwrap(), "中\u{E7C7}x\u{1E3F}文");
        assert_eq!(gb(b"\x95\x32\x82\x36").unwrap(), "𠀀");
        assert_eq!(gb(b"\x84\x31\xa5\x30"), Err(Refused { at: 0, len: 4 }));
        assert_eq!(gb(b"a\x81\x30\x81"), Err(Refused { at: 1, len: 2 }));
    }
}
